//! The PostgreSQL backend: a node's calls in tables shared by every node, so that any node can
//! answer any webhook.
//!
//! Tables (see `schema`): `phonetree_sessions` (session id → revision, reply count, the versioned
//! MessagePack session record with an empty journal, and the hashes of older events a session
//! copied from sled knows by hash only), `phonetree_replies` (every reply given,
//! keyed by session and event id), `phonetree_answers`, `phonetree_claims` (a row per script
//! request claimed, whose key lets one delivery make it), `phonetree_cache`, `phonetree_summaries`,
//! `phonetree_machines` (the same records as sled's) and `phonetree_meta` (the readiness probe, and
//! under `action_key` the `ActionKeyRecord` every `clientActionId` is signed with).
//!
//! A commit is one transaction: the compare-and-swap of the session row on its revision, then the
//! reply's row, whose key refuses a second answer to one event; it returns `Done` once the
//! database has committed (`synchronous_commit` is the database's). A revision is the row's `rev`
//! number; a new row starts at a random 62-bit number, so that a revision loaded before a session
//! was removed does not match the session made again under its id (the compare-and-swap's ABA).
//!
//! Every statement is prepared once per connection (deadpool's statement cache), and every write
//! is a short transaction: no advisory lock, no long-held row lock.

mod connect;
mod schema;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::{Duration, Instant};

use deadpool_postgres::{Client, Pool, Timeouts};
use tokio_postgres::error::SqlState;

use super::record::{
    AnswerRecord, AnswersRecord, CacheRecord, ClaimRecord, EntryRecord, FORMAT, MachineRecord, REPLIES_KEPT,
    SummaryRecord, cache_key, check_format, decode, decode_action_key, decode_claim, decode_entry,
    decode_rate, decode_scheduled, decode_session, decode_unfinished, encode, encode_action_key, encode_rate,
    encode_scheduled, encode_session, encode_unfinished, event_hash, opening_id, pack_hashes, unfinished_key,
    unpack_hashes,
};
use super::{
    Bucket, CallerKey, Cancelled, Claim, Commit, Committed, Durability, ExportPage, Exported, JournalEntry,
    Journaled, Loaded, Lookup, Page, Revision, SCAN_PAGE_MAX, SCHEDULED_LIST_MAX, Scheduled, ScheduledState,
    Store, StoreError, StoreFuture, StoredMachine, StoredSummary, SummaryPage, Unfinished,
};
use crate::callflow::SessionSummary;
use crate::engine::transcript::{ENTRIES_MAX, Entry};
use crate::engine::{Answer, Request};
use crate::machine::Version;

pub use connect::{APPLICATION_NAME, CONNECT_TIMEOUT, POOL_SIZE_MAX, POOL_WAIT_MAX, PgUrl, redact};
pub use schema::{MIGRATIONS, SCHEMA_VERSION};

/// How stale `session_count` may be: it is this node's own count, kept by its writes, recounted
/// (one `COUNT(*)`, in the background) when older than this. A full count per readiness check
/// would scan the table every few seconds on every node.
pub const SESSION_COUNT_REFRESH: Duration = Duration::from_secs(30);
/// How long one operation of the store (a load, a commit, a probe, ...) waits for the database,
/// a free connection included, before it fails: a database that stops answering (a hung server, a
/// network that drops packets) would otherwise hold every webhook forever, and the caller would
/// hear silence instead of the fallback. 8x8 waits a few seconds for a webhook's reply; a
/// webhook's operations take milliseconds on a healthy database.
pub const OPERATION_TIMEOUT: Duration = Duration::from_secs(2);
/// Most cache entries one statement of `expire_cache` deletes: each batch is a short transaction,
/// however many entries expired at once.
pub const CACHE_EXPIRE_BATCH: i64 = 1000;

/// A PostgreSQL (or wire-compatible) database.
pub struct PgStore {
    pool: Pool,
    count: Arc<Count>,
    url: PgUrl,
    /// This opening of the store, in the claims it makes.
    opening: u64,
}

/// The session count: `base + own`, where `own` moves with this node's creations and removals
/// and `base` is set by each recount.
struct Count {
    base: AtomicI64,
    own: AtomicI64,
    /// Ms since `epoch` of the last recount.
    counted_ms: AtomicI64,
    epoch: Instant,
    counting: AtomicBool,
}

impl Count {
    fn estimate(&self) -> u64 {
        u64::try_from(self.base.load(Ordering::Relaxed) + self.own.load(Ordering::Relaxed)).unwrap_or(0)
    }

    fn elapsed_ms(&self) -> i64 {
        i64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(i64::MAX)
    }

    /// Counts the sessions; writes this node makes meanwhile may or may not be in the count.
    async fn recount(&self, pool: &Pool) -> Result<(), StoreError> {
        let own = self.own.load(Ordering::Relaxed);
        let client = client(pool).await?;
        let n: i64 = client
            .query_one("SELECT COUNT(*) FROM phonetree_sessions", &[])
            .await
            .and_then(|r| r.try_get(0))
            .map_err(failed("count the sessions".into()))?;
        self.base.store(n - own, Ordering::Relaxed);
        self.counted_ms.store(self.elapsed_ms(), Ordering::Relaxed);
        Ok(())
    }
}

impl PgStore {
    /// Connects, brings the schema up to date (refusing one newer than this phonetree knows), and
    /// counts the sessions.
    pub async fn open(url: &PgUrl, durability: Durability) -> Result<PgStore, StoreError> {
        let pool = url.pool(durability)?;
        schema::migrate(&pool).await?;
        let count = Arc::new(Count {
            base: AtomicI64::new(0),
            own: AtomicI64::new(0),
            counted_ms: AtomicI64::new(0),
            epoch: Instant::now(),
            counting: AtomicBool::new(false),
        });
        count.recount(&pool).await?;
        tracing::info!(url = %url, sessions = count.estimate(), "postgres store open");
        Ok(PgStore { pool, count, url: url.clone(), opening: opening_id() })
    }

    /// The URL this store was opened with, its password redacted.
    pub fn url(&self) -> &PgUrl {
        &self.url
    }

    async fn client(&self) -> Result<Client, StoreError> {
        client(&self.pool).await
    }

    /// A connection, waiting up to `wait` for a free one (the pool's own bound is `POOL_WAIT_MAX`).
    async fn client_within(&self, wait: Duration) -> Result<Client, StoreError> {
        let timeouts = Timeouts { wait: Some(wait), ..self.pool.timeouts() };
        self.pool.timeout_get(&timeouts).await.map_err(|e| StoreError::Postgres {
            doing: "get a connection".into(),
            detail: connect::pool_detail(&e, wait),
        })
    }

    async fn lookup(&self, session: &str, event_id: Option<&str>) -> Result<Lookup, StoreError> {
        let client = self.client().await?;
        let fail = || failed(format!("load session `{session}`"));
        let row = match event_id {
            None => {
                let st = client
                    .prepare_cached("SELECT rev, state FROM phonetree_sessions WHERE id = $1")
                    .await
                    .map_err(fail())?;
                client.query_opt(&st, &[&session]).await.map_err(fail())?
            }
            Some(event_id) => {
                let st = client
                    .prepare_cached(
                        "SELECT s.rev, s.state, s.replies, r.n, r.body, s.forgotten FROM phonetree_sessions s \
                         LEFT JOIN phonetree_replies r ON r.session = s.id AND r.event_id = $2 \
                         WHERE s.id = $1",
                    )
                    .await
                    .map_err(fail())?;
                client.query_opt(&st, &[&session, &event_id]).await.map_err(fail())?
            }
        };
        let Some(row) = row else { return Ok(Lookup::default()) };
        let loaded = loaded(session, &row)?;
        let replied = if let Some(event_id) = event_id {
            let replies: i64 = row.try_get(2).map_err(fail())?;
            let n: Option<i64> = row.try_get(3).map_err(fail())?;
            let body: Option<Vec<u8>> = row.try_get(4).map_err(fail())?;
            let forgotten: Option<Vec<u8>> = row.try_get(5).map_err(fail())?;
            match (n, body) {
                // The latest replies answer a duplicate with their bytes, as sled's journal does;
                // an older event is known, and answered with the current prompt.
                (Some(n), Some(body)) if replies - n < REPLIES_KEPT as i64 => Some(Journaled::Reply(body)),
                (Some(_), _) => Some(Journaled::Forgotten),
                // An older event of a session copied from a store that knew it by hash only.
                (None, _) if forgotten.is_some_and(|f| unpack_hashes(&f).contains(&event_hash(event_id))) => {
                    Some(Journaled::Forgotten)
                }
                (None, _) => None,
            }
        } else {
            None
        };
        Ok(Lookup { session: Some(loaded), replied })
    }

    /// The commit, waiting up to `wait` for a connection.
    async fn swap(&self, c: &Commit<'_>, wait: Duration) -> Result<Committed, StoreError> {
        let state = encode_session(c.state)?;
        let scheduled = c.schedule.map(|call| encode_scheduled(call).map(|raw| (call, raw))).transpose()?;
        let summary = c
            .summary
            .map(|(s, received_ms)| {
                encode("summary", &SummaryRecord::from_summary(s, received_ms)).map(|raw| (s, raw))
            })
            .transpose()?;
        let updated_ms = ms(c.state.updated_ms);
        let replied = i64::from(c.reply.is_some());
        let mut client = self.client_within(wait).await?;
        let fail = || failed(format!("commit session `{}`", c.session));
        let tx = client.transaction().await.map_err(fail())?;
        let row = match c.expected {
            Some(rev) => {
                let rev = rev_number(c.session, rev)?;
                let st = tx
                    .prepare_cached(
                        "UPDATE phonetree_sessions \
                         SET rev = rev + 1, replies = replies + $3, state = $4, updated_ms = $5, closed = $6 \
                         WHERE id = $1 AND rev = $2 RETURNING replies",
                    )
                    .await
                    .map_err(fail())?;
                tx.query_opt(&st, &[&c.session, &rev, &replied, &state, &updated_ms, &c.state.closed]).await
            }
            None => {
                let st = tx
                    .prepare_cached(
                        "INSERT INTO phonetree_sessions (id, rev, replies, state, updated_ms, closed) \
                         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING RETURNING replies",
                    )
                    .await
                    .map_err(fail())?;
                let rev = first_rev();
                tx.query_opt(&st, &[&c.session, &rev, &replied, &state, &updated_ms, &c.state.closed]).await
            }
        };
        let replies: i64 = match row {
            Ok(Some(row)) => row.try_get(0).map_err(fail())?,
            // Another request changed (or made) the session since it was loaded.
            Ok(None) => return Ok(Committed::Changed),
            Err(e) if lost(&e) => return Ok(Committed::Changed),
            Err(e) => return Err(fail()(e)),
        };
        if let Some((event_id, body)) = c.reply {
            let st = tx
                .prepare_cached(
                    "INSERT INTO phonetree_replies (session, event_id, n, body) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT DO NOTHING",
                )
                .await
                .map_err(fail())?;
            match tx.execute(&st, &[&c.session, &event_id, &replies, &body]).await {
                Ok(1) => {}
                // The event was answered already: dropping `tx` rolls the session's row back.
                Ok(_) => return Ok(Committed::Changed),
                Err(e) if lost(&e) => return Ok(Committed::Changed),
                Err(e) => return Err(fail()(e)),
            }
        }
        for entry in c.entries {
            let raw = encode("transcript", &EntryRecord::from_entry(entry))?;
            // Numbered after the latest; none once the transcript holds `ENTRIES_MAX`.
            let st = tx
                .prepare_cached(
                    "INSERT INTO phonetree_transcripts (session, n, record) \
                     SELECT $1, COALESCE(MAX(n), 0) + 1, $2 FROM phonetree_transcripts WHERE session = $1 \
                     HAVING COUNT(*) < $3",
                )
                .await
                .map_err(fail())?;
            match tx.execute(&st, &[&c.session, &raw, &(ENTRIES_MAX as i64)]).await {
                Ok(_) => {}
                Err(e) if lost(&e) => return Ok(Committed::Changed),
                Err(e) => return Err(fail()(e)),
            }
        }
        if let Some((summary, raw)) = summary {
            let st = tx.prepare_cached(PUT_SUMMARY).await.map_err(fail())?;
            match tx.execute(&st, &[&summary.session_id, &raw]).await {
                Ok(_) => {}
                Err(e) if lost(&e) => return Ok(Committed::Changed),
                Err(e) => return Err(fail()(e)),
            }
        }
        if let Some((call, raw)) = scheduled {
            match upsert_scheduled(&tx, call, &raw).await {
                Ok(_) => {}
                Err(e) if lost(&e) => return Ok(Committed::Changed),
                Err(e) => return Err(fail()(e)),
            }
        }
        match tx.commit().await {
            Ok(()) => {}
            Err(e) if lost(&e) => return Ok(Committed::Changed),
            Err(e) => return Err(fail()(e)),
        }
        if c.expected.is_none() {
            self.count.own.fetch_add(1, Ordering::Relaxed);
        }
        Ok(Committed::Done)
    }

    async fn all_scheduled(&self) -> Result<Vec<Scheduled>, StoreError> {
        let client = self.client().await?;
        let fail = || failed("list the scheduled calls".into());
        let rows = client
            .query(
                "SELECT id, record FROM phonetree_scheduled ORDER BY due_ms, id LIMIT $1",
                &[&(SCHEDULED_LIST_MAX as i64)],
            )
            .await
            .map_err(fail())?;
        let mut calls = Vec::with_capacity(rows.len());
        for row in rows {
            let (id, raw): (String, Vec<u8>) =
                (row.try_get(0).map_err(fail())?, row.try_get(1).map_err(fail())?);
            calls.push(decode_scheduled(&id, &raw)?);
        }
        Ok(calls)
    }

    /// The due call first in line that no other node holds (`SKIP LOCKED`), marked `sending` in
    /// the same transaction: two nodes never claim one call.
    async fn claim_due(&self, now_ms: u64) -> Result<Option<Scheduled>, StoreError> {
        let mut client = self.client().await?;
        let fail = || failed("claim a scheduled call".into());
        let tx = client.transaction().await.map_err(fail())?;
        let row = tx
            .query_opt(
                "SELECT id, record FROM phonetree_scheduled WHERE state = 'pending' AND due_ms <= $1 \
                 ORDER BY due_ms LIMIT 1 FOR UPDATE SKIP LOCKED",
                &[&ms(now_ms)],
            )
            .await
            .map_err(fail())?;
        let Some(row) = row else { return Ok(None) };
        let (id, raw): (String, Vec<u8>) = (row.try_get(0).map_err(fail())?, row.try_get(1).map_err(fail())?);
        let mut call = decode_scheduled(&id, &raw)?;
        call.state = ScheduledState::Sending;
        call.updated_ms = now_ms;
        upsert_scheduled(&tx, &call, &encode_scheduled(&call)?).await.map_err(fail())?;
        tx.commit().await.map_err(fail())?;
        Ok(Some(call))
    }

    async fn by_session(&self, session: &str) -> Result<Option<Scheduled>, StoreError> {
        let row = self
            .one(
                || format!("read the scheduled call of session `{session}`"),
                "SELECT id, record FROM phonetree_scheduled WHERE session = $1",
                &[&session],
            )
            .await?;
        let Some(row) = row else { return Ok(None) };
        let fail = || failed("read a scheduled call".into());
        let (id, raw): (String, Vec<u8>) = (row.try_get(0).map_err(fail())?, row.try_get(1).map_err(fail())?);
        decode_scheduled(&id, &raw).map(Some)
    }

    async fn cancel(&self, id: &str, now_ms: u64) -> Result<Cancelled, StoreError> {
        let mut client = self.client().await?;
        let fail = || failed(format!("cancel scheduled call `{id}`"));
        let tx = client.transaction().await.map_err(fail())?;
        let row = tx
            .query_opt("SELECT record FROM phonetree_scheduled WHERE id = $1 FOR UPDATE", &[&id])
            .await
            .map_err(fail())?;
        let Some(row) = row else { return Ok(Cancelled::Unknown) };
        let raw: Vec<u8> = row.try_get(0).map_err(fail())?;
        let mut call = decode_scheduled(id, &raw)?;
        if call.state != ScheduledState::Pending {
            return Ok(Cancelled::NotPending(call));
        }
        call.state = ScheduledState::Cancelled;
        call.updated_ms = now_ms;
        upsert_scheduled(&tx, &call, &encode_scheduled(&call)?).await.map_err(fail())?;
        tx.commit().await.map_err(fail())?;
        Ok(Cancelled::Done(call))
    }

    async fn page(&self, after: Option<&str>, limit: usize) -> Result<Page, StoreError> {
        let limit = limit.clamp(1, SCAN_PAGE_MAX);
        let client = self.client().await?;
        let fail = || failed("scan the sessions".into());
        let rows = match after {
            Some(after) => {
                let st = client
                    .prepare_cached(
                        "SELECT id, rev, state FROM phonetree_sessions WHERE id > $1 ORDER BY id LIMIT $2",
                    )
                    .await
                    .map_err(fail())?;
                client.query(&st, &[&after, &(limit as i64)]).await.map_err(fail())?
            }
            None => {
                let st = client
                    .prepare_cached("SELECT id, rev, state FROM phonetree_sessions ORDER BY id LIMIT $1")
                    .await
                    .map_err(fail())?;
                client.query(&st, &[&(limit as i64)]).await.map_err(fail())?
            }
        };
        let mut sessions = Vec::with_capacity(rows.len());
        for row in rows {
            let id: String = row.try_get(0).map_err(fail())?;
            let rest = (row.try_get::<_, i64>(1), row.try_get::<_, Vec<u8>>(2));
            let loaded = match rest {
                (Ok(rev), Ok(raw)) => {
                    decode_session(&id, &raw).map(|state| Loaded { state, rev: revision(rev) })
                }
                (Err(e), _) | (_, Err(e)) => Err(fail()(e)),
            };
            sessions.push((id, loaded));
        }
        let next = (sessions.len() == limit).then(|| sessions.last().map(|(id, _)| id.clone())).flatten();
        Ok(Page { sessions, next })
    }

    /// One page of sessions with everything kept for them, read in one snapshot: the sessions,
    /// then the replies and the script answers of the ids the page spans.
    async fn export_page(&self, after: Option<&str>, limit: usize) -> Result<ExportPage, StoreError> {
        let limit = limit.clamp(1, SCAN_PAGE_MAX);
        let mut client = self.client().await?;
        let fail = || failed("export the sessions".into());
        let tx = client
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await
            .map_err(fail())?;
        let st = tx
            .prepare_cached(
                "SELECT s.id, s.state, s.forgotten, m.record FROM phonetree_sessions s \
                 LEFT JOIN phonetree_summaries m ON m.session = s.id \
                 WHERE $1::TEXT IS NULL OR s.id > $1 ORDER BY s.id LIMIT $2",
            )
            .await
            .map_err(fail())?;
        let rows = tx.query(&st, &[&after, &(limit as i64)]).await.map_err(fail())?;
        let mut sessions: Vec<(String, Result<Exported, StoreError>)> = Vec::with_capacity(rows.len());
        for row in &rows {
            let id: String = row.try_get(0).map_err(fail())?;
            let exported = exported_row(&id, row);
            sessions.push((id, exported));
        }
        let Some(last) = sessions.last().map(|(id, _)| id.clone()) else {
            return Ok(ExportPage { sessions, next: None });
        };
        // By id, not by search: the database's collation orders ids, not Rust's byte order.
        let index: std::collections::HashMap<String, usize> =
            sessions.iter().enumerate().map(|(i, (id, _))| (id.clone(), i)).collect();
        let index = |id: &str| index.get(id).copied();
        // Every reply in id order; the bytes only of those a duplicate still gets.
        let st = tx
            .prepare_cached(
                "SELECT r.session, r.event_id, CASE WHEN s.replies - r.n < $3 THEN r.body END \
                 FROM phonetree_replies r JOIN phonetree_sessions s ON s.id = r.session \
                 WHERE ($1::TEXT IS NULL OR r.session > $1) AND r.session <= $2 ORDER BY r.session, r.n",
            )
            .await
            .map_err(fail())?;
        for row in tx.query(&st, &[&after, &last, &(REPLIES_KEPT as i64)]).await.map_err(fail())? {
            let (id, event_id): (String, String) =
                (row.try_get(0).map_err(fail())?, row.try_get(1).map_err(fail())?);
            let body: Option<Vec<u8>> = row.try_get(2).map_err(fail())?;
            let Some(i) = index(&id) else { continue };
            if let (_, Ok(e)) = &mut sessions[i] {
                e.journal.push(match body {
                    Some(body) => JournalEntry::Replied { event_id, body },
                    None => JournalEntry::Forgotten { event_id },
                });
            }
        }
        let st = tx
            .prepare_cached(
                "SELECT session, event_id, record FROM phonetree_answers \
                 WHERE ($1::TEXT IS NULL OR session > $1) AND session <= $2 ORDER BY session, event_id",
            )
            .await
            .map_err(fail())?;
        for row in tx.query(&st, &[&after, &last]).await.map_err(fail())? {
            let (id, event_id): (String, String) =
                (row.try_get(0).map_err(fail())?, row.try_get(1).map_err(fail())?);
            let raw: Vec<u8> = row.try_get(2).map_err(fail())?;
            // Answers journaled for a session that has no state (yet) are not exported.
            let Some(i) = index(&id) else { continue };
            let name = format!("{id}/{event_id}");
            let answers = decode::<AnswersRecord>("answers", &name, &raw)
                .and_then(|r| check_format("answers", &name, r.v).map(|()| r));
            match (&mut sessions[i].1, answers) {
                (Ok(e), Ok(r)) => {
                    e.answers.push((event_id, r.answers.iter().map(AnswerRecord::to_answer).collect()))
                }
                (slot @ Ok(_), Err(err)) => *slot = Err(err),
                (Err(_), _) => {}
            }
        }
        let st = tx
            .prepare_cached(
                "SELECT session, event_id, rank FROM phonetree_claims \
                 WHERE ($1::TEXT IS NULL OR session > $1) AND session <= $2 ORDER BY session, event_id, rank",
            )
            .await
            .map_err(fail())?;
        for row in tx.query(&st, &[&after, &last]).await.map_err(fail())? {
            let (id, event_id): (String, String) =
                (row.try_get(0).map_err(fail())?, row.try_get(1).map_err(fail())?);
            let rank: i32 = row.try_get(2).map_err(fail())?;
            let Some(i) = index(&id) else { continue };
            if let (_, Ok(e)) = &mut sessions[i] {
                e.claims.push((event_id, u32::try_from(rank).unwrap_or(0)));
            }
        }
        let st = tx
            .prepare_cached(
                "SELECT session, record FROM phonetree_transcripts \
                 WHERE ($1::TEXT IS NULL OR session > $1) AND session <= $2 ORDER BY session, n",
            )
            .await
            .map_err(fail())?;
        for row in tx.query(&st, &[&after, &last]).await.map_err(fail())? {
            let id: String = row.try_get(0).map_err(fail())?;
            let raw: Vec<u8> = row.try_get(1).map_err(fail())?;
            let Some(i) = index(&id) else { continue };
            match (&mut sessions[i].1, decode_entry(&id, &raw)) {
                (Ok(e), Ok(entry)) => e.transcript.push(entry),
                (slot @ Ok(_), Err(err)) => *slot = Err(err),
                (Err(_), _) => {}
            }
        }
        tx.commit().await.map_err(fail())?;
        let next = (sessions.len() == limit).then_some(last);
        Ok(ExportPage { sessions, next })
    }

    /// One transaction: the session's row (unless it exists), its replies, answers and summary.
    async fn import_one(&self, e: &Exported) -> Result<Committed, StoreError> {
        let state = encode_session(&e.state)?;
        let mut replied = Vec::new();
        let mut forgotten = Vec::new();
        for entry in &e.journal {
            match entry {
                JournalEntry::Replied { event_id, body } => {
                    replied.push((event_id.as_str(), body.as_slice()))
                }
                JournalEntry::Forgotten { event_id } => forgotten.push(event_hash(event_id)),
                JournalEntry::ForgottenHash(h) => forgotten.push(*h),
            }
        }
        let forgotten = (!forgotten.is_empty()).then(|| pack_hashes(&forgotten));
        let mut answers = Vec::with_capacity(e.answers.len());
        for (event_id, given) in &e.answers {
            let r =
                AnswersRecord { v: FORMAT, answers: given.iter().map(AnswerRecord::from_answer).collect() };
            answers.push((event_id.as_str(), encode("answers", &r)?));
        }
        let summary = match &e.summary {
            Some(s) => Some(encode("summary", &SummaryRecord::from_summary(&s.summary, s.received_ms))?),
            None => None,
        };
        let mut client = self.client().await?;
        let fail = || failed(format!("import session `{}`", e.session));
        let tx = client.transaction().await.map_err(fail())?;
        let st = tx
            .prepare_cached(
                "INSERT INTO phonetree_sessions (id, rev, replies, state, updated_ms, closed, forgotten) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
            )
            .await
            .map_err(fail())?;
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 7] = [
            &e.session,
            &first_rev(),
            &(replied.len() as i64),
            &state,
            &ms(e.state.updated_ms),
            &e.state.closed,
            &forgotten,
        ];
        if tx.execute(&st, &params).await.map_err(fail())? == 0 {
            return Ok(Committed::Changed);
        }
        // Numbered as `commit` numbers them: the latest reply is number `replies`.
        let st = tx
            .prepare_cached(
                "INSERT INTO phonetree_replies (session, event_id, n, body) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (session, event_id) DO UPDATE SET n = EXCLUDED.n, body = EXCLUDED.body",
            )
            .await
            .map_err(fail())?;
        for (n, (event_id, body)) in (1i64..).zip(&replied) {
            tx.execute(&st, &[&e.session, event_id, &n, body]).await.map_err(fail())?;
        }
        let st = tx
            .prepare_cached(
                "INSERT INTO phonetree_answers (session, event_id, record) VALUES ($1, $2, $3) \
                 ON CONFLICT (session, event_id) DO UPDATE SET record = EXCLUDED.record",
            )
            .await
            .map_err(fail())?;
        for (event_id, raw) in &answers {
            tx.execute(&st, &[&e.session, event_id, raw]).await.map_err(fail())?;
        }
        // Claimed by no opening, with no time left: lapsed.
        let lapsed = encode("claim", &ClaimRecord::new(0, 0))?;
        let st = tx
            .prepare_cached(
                "INSERT INTO phonetree_claims (session, event_id, rank, record) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (session, event_id, rank) DO NOTHING",
            )
            .await
            .map_err(fail())?;
        for (event_id, rank) in &e.claims {
            let rank = i32::try_from(*rank).unwrap_or(i32::MAX);
            tx.execute(&st, &[&e.session, event_id, &rank, &lapsed]).await.map_err(fail())?;
        }
        let st = tx
            .prepare_cached(
                "INSERT INTO phonetree_transcripts (session, n, record) VALUES ($1, $2, $3) \
                 ON CONFLICT (session, n) DO UPDATE SET record = EXCLUDED.record",
            )
            .await
            .map_err(fail())?;
        for (n, entry) in (1i64..).zip(e.transcript.iter().take(ENTRIES_MAX)) {
            let raw = encode("transcript", &EntryRecord::from_entry(entry))?;
            tx.execute(&st, &[&e.session, &n, &raw]).await.map_err(fail())?;
        }
        if let Some(raw) = &summary {
            let st = tx
                .prepare_cached(
                    "INSERT INTO phonetree_summaries (session, record) VALUES ($1, $2) \
                     ON CONFLICT (session) DO UPDATE SET record = EXCLUDED.record",
                )
                .await
                .map_err(fail())?;
            tx.execute(&st, &[&e.session, raw]).await.map_err(fail())?;
        }
        tx.commit().await.map_err(fail())?;
        self.count.own.fetch_add(1, Ordering::Relaxed);
        Ok(Committed::Done)
    }

    async fn every_machine(&self) -> Result<Vec<(Version, StoredMachine)>, StoreError> {
        let client = self.client().await?;
        let fail = || failed("list the machines".into());
        let st = client
            .prepare_cached("SELECT version, record FROM phonetree_machines ORDER BY version")
            .await
            .map_err(fail())?;
        let mut all = Vec::new();
        for row in client.query(&st, &[]).await.map_err(fail())? {
            let version: Vec<u8> = row.try_get(0).map_err(fail())?;
            let version =
                <[u8; 32]>::try_from(version.as_slice()).map(Version).map_err(|_| StoreError::Decode {
                    what: "machine version",
                    key: format!("{version:?}"),
                    detail: format!("{} bytes, not 32", version.len()),
                })?;
            let raw: Vec<u8> = row.try_get(1).map_err(fail())?;
            let m: MachineRecord = decode("machine", &version.short(), &raw)?;
            check_format("machine", &version.short(), m.v)?;
            all.push((version, m.into_stored()));
        }
        Ok(all)
    }

    async fn lone(&self, after: Option<&str>, limit: usize) -> Result<SummaryPage, StoreError> {
        let limit = limit.clamp(1, SCAN_PAGE_MAX);
        let client = self.client().await?;
        let fail = || failed("list the summaries of sessions not stored".into());
        let st = client
            .prepare_cached(
                "SELECT m.session, m.record FROM phonetree_summaries m \
                 WHERE ($1::TEXT IS NULL OR m.session > $1) \
                 AND NOT EXISTS (SELECT 1 FROM phonetree_sessions s WHERE s.id = m.session) \
                 ORDER BY m.session LIMIT $2",
            )
            .await
            .map_err(fail())?;
        let mut summaries = Vec::new();
        let mut last = None;
        for row in client.query(&st, &[&after, &(limit as i64)]).await.map_err(fail())? {
            let id: String = row.try_get(0).map_err(fail())?;
            let raw: Vec<u8> = row.try_get(1).map_err(fail())?;
            summaries.push(decode_summary(&id, &raw)?);
            last = Some(id);
        }
        let next = if summaries.len() == limit { last } else { None };
        Ok(SummaryPage { summaries, next })
    }

    async fn remove(&self, session: &str) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let fail = || failed(format!("remove session `{session}`"));
        let tx = client.transaction().await.map_err(fail())?;
        for sql in [
            "DELETE FROM phonetree_replies WHERE session = $1",
            "DELETE FROM phonetree_answers WHERE session = $1",
            "DELETE FROM phonetree_claims WHERE session = $1",
            "DELETE FROM phonetree_summaries WHERE session = $1",
            "DELETE FROM phonetree_transcripts WHERE session = $1",
        ] {
            let st = tx.prepare_cached(sql).await.map_err(fail())?;
            tx.execute(&st, &[&session]).await.map_err(fail())?;
        }
        let st = tx.prepare_cached("DELETE FROM phonetree_sessions WHERE id = $1").await.map_err(fail())?;
        let removed = tx.execute(&st, &[&session]).await.map_err(fail())?;
        tx.commit().await.map_err(fail())?;
        if removed > 0 {
            self.count.own.fetch_sub(1, Ordering::Relaxed);
        }
        Ok(())
    }

    async fn by_short(
        &self,
        name: &str,
        short: &str,
    ) -> Result<Option<(Version, StoredMachine)>, StoreError> {
        let Some(head) = hex_bytes(short) else { return Ok(None) };
        let client = self.client().await?;
        let fail = || failed(format!("read machine `{name}` {short}"));
        let rows = if short.len() == Version([0; 32]).short().len() {
            let st = client
                .prepare_cached(
                    "SELECT version, record FROM phonetree_machines WHERE name = $1 AND short = $2",
                )
                .await
                .map_err(fail())?;
            client.query(&st, &[&name, &short.to_ascii_lowercase()]).await.map_err(fail())?
        } else {
            // Another length than `Version::short`'s: match it as a prefix of the version.
            let st = client
                .prepare_cached(
                    "SELECT version, record FROM phonetree_machines \
                     WHERE name = $1 AND substring(version FROM 1 FOR $3) = $2",
                )
                .await
                .map_err(fail())?;
            client.query(&st, &[&name, &head, &(head.len() as i32)]).await.map_err(fail())?
        };
        for row in rows {
            let version: Vec<u8> = row.try_get(0).map_err(fail())?;
            let Ok(version) = <[u8; 32]>::try_from(version).map(Version) else { continue };
            let raw: Vec<u8> = row.try_get(1).map_err(fail())?;
            let m: MachineRecord = decode("machine", short, &raw)?;
            check_format("machine", short, m.v)?;
            return Ok(Some((version, m.into_stored())));
        }
        Ok(None)
    }

    async fn expire(&self, now_ms: u64) -> Result<usize, StoreError> {
        let sql = "DELETE FROM phonetree_cache WHERE key IN \
                   (SELECT key FROM phonetree_cache WHERE until_ms <= $1 LIMIT $2)";
        self.delete_in_batches("expire the script cache", sql, now_ms).await
    }

    /// Takes a token from every bucket or none, in one transaction whose row locks make it atomic
    /// across the nodes of the database.
    async fn take(
        &self,
        buckets: &[Bucket<'_>],
        now_ms: u64,
    ) -> Result<Result<(), (usize, u64)>, StoreError> {
        let mut client = self.client().await?;
        let fail = || failed("take rate tokens".into());
        let tx = client.transaction().await.map_err(fail())?;
        // Rows locked in key order: two nodes taking the same buckets never wait on each other in
        // a cycle.
        let mut order: Vec<usize> = (0..buckets.len()).collect();
        order.sort_by_key(|&i| buckets[i].key);
        let full = encode_rate(0)?;
        let mut times = vec![0u64; buckets.len()];
        for &i in &order {
            let b = &buckets[i];
            tx.execute(
                "INSERT INTO phonetree_rates (key, tat_ms, record) VALUES ($1, 0, $2) ON CONFLICT (key) DO NOTHING",
                &[&b.key, &full],
            )
            .await
            .map_err(fail())?;
            let row = tx
                .query_one("SELECT record FROM phonetree_rates WHERE key = $1 FOR UPDATE", &[&b.key])
                .await
                .map_err(fail())?;
            let raw: Vec<u8> = row.try_get(0).map_err(fail())?;
            match b.take(decode_rate(b.key, &raw)?, now_ms) {
                Ok(next) => times[i] = next,
                // Dropping `tx` rolls back: no bucket gave a token.
                Err(wait) => return Ok(Err((i, wait))),
            }
        }
        for &i in &order {
            tx.execute(
                "UPDATE phonetree_rates SET tat_ms = $2, record = $3 WHERE key = $1",
                &[&buckets[i].key, &ms(times[i]), &encode_rate(times[i])?],
            )
            .await
            .map_err(fail())?;
        }
        tx.commit().await.map_err(fail())?;
        Ok(Ok(()))
    }

    /// Deletes the rate records of full buckets, a batch at a time.
    async fn expire_rate_records(&self, now_ms: u64) -> Result<usize, StoreError> {
        let sql = "DELETE FROM phonetree_rates WHERE key IN \
                   (SELECT key FROM phonetree_rates WHERE tat_ms <= $1 LIMIT $2)";
        self.delete_in_batches("expire rate records", sql, now_ms).await
    }

    /// Runs `sql` (a DELETE of at most `$2` rows expired at `$1`) until a batch deletes fewer than
    /// `CACHE_EXPIRE_BATCH`: short transactions, so a large backlog never holds locks for long.
    async fn delete_in_batches(&self, what: &str, sql: &str, now_ms: u64) -> Result<usize, StoreError> {
        let client = self.client().await?;
        let fail = || failed(what.into());
        let st = client.prepare_cached(sql).await.map_err(fail())?;
        let mut removed = 0;
        loop {
            let n = client.execute(&st, &[&ms(now_ms), &CACHE_EXPIRE_BATCH]).await.map_err(fail())?;
            removed += n as usize;
            if n < CACHE_EXPIRE_BATCH as u64 {
                return Ok(removed);
            }
        }
    }

    /// Runs one prepared statement that returns at most one row.
    async fn one(
        &self,
        doing: impl Fn() -> String,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Option<tokio_postgres::Row>, StoreError> {
        let client = self.client().await?;
        let st = client.prepare_cached(sql).await.map_err(failed(doing()))?;
        client.query_opt(&st, params).await.map_err(failed(doing()))
    }

    /// Runs one prepared statement that writes.
    async fn write(
        &self,
        doing: impl Fn() -> String,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<u64, StoreError> {
        let client = self.client().await?;
        let st = client.prepare_cached(sql).await.map_err(failed(doing()))?;
        client.execute(&st, params).await.map_err(failed(doing()))
    }
}

/// Writes a scheduled call by its id, in `tx`; `raw` is its record (`encode_scheduled`).
async fn upsert_scheduled(
    tx: &deadpool_postgres::Transaction<'_>,
    call: &Scheduled,
    raw: &[u8],
) -> Result<u64, tokio_postgres::Error> {
    let st = tx
        .prepare_cached(
            "INSERT INTO phonetree_scheduled (id, state, due_ms, session, updated_ms, record) \
             VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (id) DO UPDATE SET state = $2, due_ms = $3, session = $4, updated_ms = $5, record = $6",
        )
        .await?;
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 6] =
        [&call.id, &call.state.as_str(), &ms(call.due_ms), &call.session, &ms(call.updated_ms), &raw];
    tx.execute(&st, &params).await
}

/// Keeps a session's summary, replacing one kept before (8x8 may deliver it again).
const PUT_SUMMARY: &str = "INSERT INTO phonetree_summaries (session, record) VALUES ($1, $2) \
                           ON CONFLICT (session) DO UPDATE SET record = EXCLUDED.record";

impl Store for PgStore {
    fn load<'a>(&'a self, session: &'a str, event_id: Option<&'a str>) -> StoreFuture<'a, Lookup> {
        timed("load a session", self.lookup(session, event_id))
    }

    /// Waits up to the commit's `wait` (at least `OPERATION_TIMEOUT`), the wait for a connection
    /// included: a commit may wait on the session's row while another delivery's transaction
    /// holds it, and on a starved node that transaction's round trips can take seconds.
    fn commit<'a>(&'a self, commit: Commit<'a>) -> StoreFuture<'a, Committed> {
        let wait = commit.wait.unwrap_or(OPERATION_TIMEOUT).max(OPERATION_TIMEOUT);
        timed_within("commit a session", wait, async move {
            let started = std::time::Instant::now();
            let done = self.swap(&commit, wait).await;
            metrics::histogram!(super::COMMIT_SECONDS, "store" => "postgres")
                .record(started.elapsed().as_secs_f64());
            done
        })
    }

    fn answers<'a>(&'a self, session: &'a str, event_id: &'a str) -> StoreFuture<'a, Vec<Answer>> {
        timed("read the script answers", async move {
            let name = format!("{session}/{event_id}");
            let row = self
                .one(
                    || format!("read the script answers of `{name}`"),
                    "SELECT record FROM phonetree_answers WHERE session = $1 AND event_id = $2",
                    &[&session, &event_id],
                )
                .await?;
            let Some(row) = row else { return Ok(Vec::new()) };
            let raw: Vec<u8> =
                row.try_get(0).map_err(failed(format!("read the script answers of `{name}`")))?;
            let r: AnswersRecord = decode("answers", &name, &raw)?;
            check_format("answers", &name, r.v)?;
            Ok(r.answers.iter().map(AnswerRecord::to_answer).collect())
        })
    }

    fn put_answers<'a>(
        &'a self,
        session: &'a str,
        event_id: &'a str,
        answers: &'a [Answer],
    ) -> StoreFuture<'a, ()> {
        timed("journal the script answers", async move {
            let record =
                AnswersRecord { v: FORMAT, answers: answers.iter().map(AnswerRecord::from_answer).collect() };
            let raw = encode("answers", &record)?;
            self.write(
                || format!("journal the script answers of `{session}/{event_id}`"),
                "INSERT INTO phonetree_answers (session, event_id, record) VALUES ($1, $2, $3) \
                 ON CONFLICT (session, event_id) DO UPDATE SET record = EXCLUDED.record",
                &[&session, &event_id, &raw],
            )
            .await?;
            Ok(())
        })
    }

    fn claim<'a>(
        &'a self,
        session: &'a str,
        event_id: &'a str,
        rank: u32,
        until_ms: u64,
        now_ms: u64,
    ) -> StoreFuture<'a, Claim> {
        timed("claim a script request", async move {
            let name = format!("{session}/{event_id}/{rank}");
            let doing = || format!("claim the script request `{name}`");
            let rank = i32::try_from(rank).unwrap_or(i32::MAX);
            let mine = encode("claim", &ClaimRecord::new(self.opening, until_ms))?;
            // Committed before it returns: the claim is durable before the request is made.
            let won = self
                .write(
                    doing,
                    "INSERT INTO phonetree_claims (session, event_id, rank, record) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (session, event_id, rank) DO NOTHING",
                    &[&session, &event_id, &rank, &mine],
                )
                .await?;
            if won == 1 {
                return Ok(Claim::Won);
            }
            let row = self
                .one(
                    doing,
                    "SELECT record FROM phonetree_claims WHERE session = $1 AND event_id = $2 AND rank = $3",
                    &[&session, &event_id, &rank],
                )
                .await?;
            // Gone meanwhile (its session was removed): the request may have been made.
            let Some(row) = row else { return Ok(Claim::Lapsed) };
            let raw: Vec<u8> = row.try_get(0).map_err(failed(doing()))?;
            let held = decode_claim(&name, &raw)?;
            // Another node's claim cannot be told from a stopped one's before its time is past.
            Ok(if held.u > now_ms { Claim::Held { until_ms: held.u } } else { Claim::Lapsed })
        })
    }

    fn cached<'a>(&'a self, request: &'a Request, now_ms: u64) -> StoreFuture<'a, Option<Answer>> {
        timed("read a cached answer", async move {
            let row = self
                .one(
                    || format!("read the cached answer of `{}`", request.url),
                    "SELECT record FROM phonetree_cache WHERE key = $1 AND until_ms > $2",
                    &[&cache_key(request).as_slice(), &ms(now_ms)],
                )
                .await?;
            let Some(row) = row else { return Ok(None) };
            let raw: Vec<u8> =
                row.try_get(0).map_err(failed(format!("read the cached answer of `{}`", request.url)))?;
            let r: CacheRecord = decode("cache", &request.url, &raw)?;
            check_format("cache", &request.url, r.v)?;
            Ok(r.answer_at(now_ms))
        })
    }

    fn put_cached<'a>(
        &'a self,
        request: &'a Request,
        answer: &'a Answer,
        now_ms: u64,
    ) -> StoreFuture<'a, ()> {
        timed("cache an answer", async move {
            let Some(record) = CacheRecord::of(request, answer, now_ms) else { return Ok(()) };
            let raw = encode("cache", &record)?;
            self.write(
                || format!("cache the answer of `{}`", request.url),
                "INSERT INTO phonetree_cache (key, until_ms, record) VALUES ($1, $2, $3) \
                 ON CONFLICT (key) DO UPDATE SET until_ms = EXCLUDED.until_ms, record = EXCLUDED.record",
                &[&cache_key(request).as_slice(), &ms(record.until), &raw],
            )
            .await?;
            Ok(())
        })
    }

    fn put_summary<'a>(&'a self, summary: &'a SessionSummary, received_ms: u64) -> StoreFuture<'a, ()> {
        timed("keep a session summary", async move {
            let raw = encode("summary", &SummaryRecord::from_summary(summary, received_ms))?;
            self.write(
                || format!("keep the summary of session `{}`", summary.session_id),
                PUT_SUMMARY,
                &[&summary.session_id, &raw],
            )
            .await?;
            Ok(())
        })
    }

    fn summary<'a>(&'a self, session: &'a str) -> StoreFuture<'a, Option<StoredSummary>> {
        timed("read a session summary", async move {
            let doing = || format!("read the summary of session `{session}`");
            let row = self
                .one(doing, "SELECT record FROM phonetree_summaries WHERE session = $1", &[&session])
                .await?;
            let Some(row) = row else { return Ok(None) };
            let raw: Vec<u8> = row.try_get(0).map_err(failed(doing()))?;
            decode_summary(session, &raw).map(Some)
        })
    }

    fn put_machine<'a>(&'a self, version: Version, machine: &'a StoredMachine) -> StoreFuture<'a, ()> {
        timed("keep a machine", async move {
            let record = MachineRecord::of(machine);
            let raw = encode("machine", &record)?;
            // A version is the hash of its text: a row once written never changes.
            self.write(
                || format!("keep machine `{}` {}", machine.name, version.short()),
                "INSERT INTO phonetree_machines (version, short, name, record) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (version) DO NOTHING",
                &[&version.0.as_slice(), &version.short(), &machine.name, &raw],
            )
            .await?;
            Ok(())
        })
    }

    fn machine(&self, version: Version) -> StoreFuture<'_, Option<StoredMachine>> {
        timed("read a machine", async move {
            let doing = || format!("read machine {}", version.short());
            let row = self
                .one(
                    doing,
                    "SELECT record FROM phonetree_machines WHERE version = $1",
                    &[&version.0.as_slice()],
                )
                .await?;
            let Some(row) = row else { return Ok(None) };
            let raw: Vec<u8> = row.try_get(0).map_err(failed(doing()))?;
            let m: MachineRecord = decode("machine", &version.short(), &raw)?;
            check_format("machine", &version.short(), m.v)?;
            Ok(Some(m.into_stored()))
        })
    }

    fn machine_by_short<'a>(
        &'a self,
        name: &'a str,
        short: &'a str,
    ) -> StoreFuture<'a, Option<(Version, StoredMachine)>> {
        timed("read a machine", self.by_short(name, short))
    }

    fn scan<'a>(&'a self, after: Option<&'a str>, limit: usize) -> StoreFuture<'a, Page> {
        timed("scan the sessions", self.page(after, limit))
    }

    fn transcript<'a>(&'a self, session: &'a str) -> StoreFuture<'a, Vec<Entry>> {
        timed("read a transcript", async move {
            let client = self.client().await?;
            let fail = || failed(format!("read the transcript of `{session}`"));
            let st = client
                .prepare_cached("SELECT record FROM phonetree_transcripts WHERE session = $1 ORDER BY n")
                .await
                .map_err(fail())?;
            let rows = client.query(&st, &[&session]).await.map_err(fail())?;
            let mut entries = Vec::with_capacity(rows.len());
            for row in rows {
                let raw: Vec<u8> = row.try_get(0).map_err(fail())?;
                entries.push(decode_entry(session, &raw)?);
            }
            Ok(entries)
        })
    }

    fn remove_session<'a>(&'a self, session: &'a str) -> StoreFuture<'a, ()> {
        timed("remove a session", self.remove(session))
    }

    fn expire_cache(&self, now_ms: u64) -> StoreFuture<'_, usize> {
        timed("expire the script cache", self.expire(now_ms))
    }

    fn take_tokens<'a>(
        &'a self,
        buckets: &'a [Bucket<'a>],
        now_ms: u64,
    ) -> StoreFuture<'a, Result<(), (usize, u64)>> {
        timed("take rate tokens", self.take(buckets, now_ms))
    }

    fn expire_rates(&self, now_ms: u64) -> StoreFuture<'_, usize> {
        timed("expire rate records", self.expire_rate_records(now_ms))
    }

    fn export<'a>(&'a self, after: Option<&'a str>, limit: usize) -> StoreFuture<'a, ExportPage> {
        Box::pin(self.export_page(after, limit))
    }

    fn import<'a>(&'a self, session: &'a Exported) -> StoreFuture<'a, Committed> {
        Box::pin(self.import_one(session))
    }

    fn machines(&self) -> StoreFuture<'_, Vec<(Version, StoredMachine)>> {
        Box::pin(self.every_machine())
    }

    fn scheduled(&self) -> StoreFuture<'_, Vec<Scheduled>> {
        timed("list the scheduled calls", self.all_scheduled())
    }

    fn expire_scheduled(&self, before_ms: u64) -> StoreFuture<'_, usize> {
        timed("expire scheduled calls", async move {
            let sql = "DELETE FROM phonetree_scheduled WHERE id IN (SELECT id FROM phonetree_scheduled \
                       WHERE state <> 'pending' AND updated_ms < $1 LIMIT $2)";
            self.delete_in_batches("expire scheduled calls", sql, before_ms).await
        })
    }

    fn claim_scheduled(&self, now_ms: u64) -> StoreFuture<'_, Option<Scheduled>> {
        timed("claim a scheduled call", self.claim_due(now_ms))
    }

    fn scheduled_page<'a>(&'a self, after: Option<&'a str>, limit: usize) -> StoreFuture<'a, Vec<Scheduled>> {
        timed("list the scheduled calls", async move {
            let client = self.client().await?;
            let fail = || failed("list the scheduled calls".into());
            let limit = limit.clamp(1, SCAN_PAGE_MAX) as i64;
            let rows = client
                .query(
                    "SELECT id, record FROM phonetree_scheduled WHERE id > $1 ORDER BY id LIMIT $2",
                    &[&after.unwrap_or(""), &limit],
                )
                .await
                .map_err(fail())?;
            let mut page = Vec::with_capacity(rows.len());
            for row in rows {
                let (id, raw): (String, Vec<u8>) =
                    (row.try_get(0).map_err(fail())?, row.try_get(1).map_err(fail())?);
                page.push(decode_scheduled(&id, &raw)?);
            }
            Ok(page)
        })
    }

    fn put_scheduled<'a>(&'a self, call: &'a Scheduled) -> StoreFuture<'a, ()> {
        timed("write a scheduled call", async move {
            let mut client = self.client().await?;
            let fail = || failed(format!("write scheduled call `{}`", call.id));
            let tx = client.transaction().await.map_err(fail())?;
            upsert_scheduled(&tx, call, &encode_scheduled(call)?).await.map_err(fail())?;
            tx.commit().await.map_err(fail())
        })
    }

    fn scheduled_by_session<'a>(&'a self, session: &'a str) -> StoreFuture<'a, Option<Scheduled>> {
        timed("read a scheduled call", self.by_session(session))
    }

    fn cancel_scheduled<'a>(&'a self, id: &'a str, now_ms: u64) -> StoreFuture<'a, Cancelled> {
        timed("cancel a scheduled call", self.cancel(id, now_ms))
    }

    fn lone_summaries<'a>(&'a self, after: Option<&'a str>, limit: usize) -> StoreFuture<'a, SummaryPage> {
        Box::pin(self.lone(after, limit))
    }

    fn unfinished<'a>(&'a self, machine: &'a str, caller: &'a str) -> StoreFuture<'a, Option<Unfinished>> {
        timed("read an interrupted call", async move {
            let key = unfinished_key(machine, caller);
            let doing = || "read an interrupted call".to_string();
            let row = self
                .one(doing, "SELECT record FROM phonetree_unfinished WHERE key = $1", &[&key.as_slice()])
                .await?;
            let Some(row) = row else { return Ok(None) };
            let raw: Vec<u8> = row.try_get(0).map_err(failed(doing()))?;
            decode_unfinished(machine, &raw).map(Some)
        })
    }

    fn put_unfinished_at<'a>(&'a self, key: CallerKey, call: &'a Unfinished) -> StoreFuture<'a, ()> {
        timed("keep an interrupted call", async move {
            self.write(
                || "keep an interrupted call".to_string(),
                "INSERT INTO phonetree_unfinished (key, ended_ms, record) VALUES ($1, $2, $3) \
                 ON CONFLICT (key) DO UPDATE SET ended_ms = EXCLUDED.ended_ms, record = EXCLUDED.record",
                &[&key.0.as_slice(), &ms(call.ended_ms), &encode_unfinished(call)?],
            )
            .await
            .map(drop)
        })
    }

    fn unfinished_page(
        &self,
        after: Option<CallerKey>,
        limit: usize,
    ) -> StoreFuture<'_, Vec<(CallerKey, Unfinished)>> {
        timed("list interrupted calls", async move {
            let client = self.client().await?;
            let fail = || failed("list interrupted calls".into());
            let after: &[u8] = after.as_ref().map_or(&[], |k| &k.0[..]);
            let limit = limit.clamp(1, SCAN_PAGE_MAX) as i64;
            let rows = client
                .query(
                    "SELECT key, record FROM phonetree_unfinished WHERE key > $1 ORDER BY key LIMIT $2",
                    &[&after, &limit],
                )
                .await
                .map_err(fail())?;
            let mut page = Vec::with_capacity(rows.len());
            for row in rows {
                let (key, raw): (Vec<u8>, Vec<u8>) =
                    (row.try_get(0).map_err(fail())?, row.try_get(1).map_err(fail())?);
                let key = CallerKey::stored(&key)?;
                page.push((key, decode_unfinished(&key.hex(), &raw)?));
            }
            Ok(page)
        })
    }

    fn remove_unfinished<'a>(&'a self, machine: &'a str, caller: &'a str) -> StoreFuture<'a, ()> {
        timed("forget an interrupted call", async move {
            let key = unfinished_key(machine, caller);
            self.write(
                || "forget an interrupted call".to_string(),
                "DELETE FROM phonetree_unfinished WHERE key = $1",
                &[&key.as_slice()],
            )
            .await
            .map(drop)
        })
    }

    fn expire_unfinished(&self, before_ms: u64) -> StoreFuture<'_, usize> {
        timed("expire interrupted calls", async move {
            let sql = "DELETE FROM phonetree_unfinished WHERE key IN \
                       (SELECT key FROM phonetree_unfinished WHERE ended_ms < $1 LIMIT $2)";
            self.delete_in_batches("expire interrupted calls", sql, before_ms).await
        })
    }

    fn session_count(&self) -> StoreFuture<'_, u64> {
        Box::pin(async move {
            let count = &self.count;
            let stale = count.elapsed_ms() - count.counted_ms.load(Ordering::Relaxed)
                >= SESSION_COUNT_REFRESH.as_millis() as i64;
            if stale && !count.counting.swap(true, Ordering::AcqRel) {
                let (count, pool) = (self.count.clone(), self.pool.clone());
                tokio::spawn(async move {
                    if let Err(e) = timed("count the sessions", count.recount(&pool)).await {
                        tracing::warn!(error = %e, "the session count stays as it was");
                    }
                    count.counting.store(false, Ordering::Release);
                });
            }
            Ok(count.estimate())
        })
    }

    fn action_key(&self, fresh: Option<[u8; 32]>) -> StoreFuture<'_, Option<[u8; 32]>> {
        timed("read the action key", async move {
            let doing = || "keep the action key".to_string();
            if let Some(fresh) = fresh {
                // The first node's key stays; the read below (a statement of its own, so it sees
                // a key another node committed meanwhile) gives everyone that one.
                self.write(
                    doing,
                    "INSERT INTO phonetree_meta (key, value) VALUES ('action_key', $1) \
                     ON CONFLICT (key) DO NOTHING",
                    &[&encode_action_key(&fresh)?],
                )
                .await?;
            }
            let row =
                self.one(doing, "SELECT value FROM phonetree_meta WHERE key = 'action_key'", &[]).await?;
            let Some(row) = row else { return Ok(None) };
            let raw: Vec<u8> = row.try_get(0).map_err(failed(doing()))?;
            decode_action_key(&raw).map(Some)
        })
    }

    fn probe(&self, now_ms: u64) -> StoreFuture<'_, ()> {
        timed("write the readiness probe", async move {
            let value = now_ms.to_be_bytes();
            let row = self
                .one(
                    || "write the readiness probe".into(),
                    "INSERT INTO phonetree_meta (key, value) VALUES ('probe', $1) \
                     ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value RETURNING value",
                    &[&value.as_slice()],
                )
                .await?;
            let back: Option<Vec<u8>> = row.and_then(|r| r.try_get(0).ok());
            if back.as_deref() == Some(value.as_slice()) {
                Ok(())
            } else {
                Err(StoreError::Postgres {
                    doing: "write the readiness probe".into(),
                    detail: "the probe did not read back".into(),
                })
            }
        })
    }

    /// Every write is committed before it returns: nothing is left to flush.
    fn flush(&self) -> StoreFuture<'_, ()> {
        Box::pin(async { Ok(()) })
    }
}

/// Connects (through `url`'s pool), migrates, and returns the schema version: what a
/// `phonetree migrate` runs before nodes of a new version start.
pub async fn migrate(url: &PgUrl) -> Result<u32, StoreError> {
    let pool = url.pool(Durability::Fsync)?;
    schema::migrate(&pool).await
}

async fn client(pool: &Pool) -> Result<Client, StoreError> {
    pool.get().await.map_err(|e| StoreError::Postgres {
        doing: "get a connection".into(),
        detail: connect::pool_detail(&e, POOL_WAIT_MAX),
    })
}

/// An error of the database while doing `doing` (lowercase, no value of the URL in it).
fn failed(doing: String) -> impl FnOnce(tokio_postgres::Error) -> StoreError {
    move |e| StoreError::Postgres { doing, detail: connect::detail(&e) }
}

/// The transaction lost to a concurrent one and wrote nothing (a serialization failure or a
/// deadlock, as CockroachDB and SERIALIZABLE PostgreSQL report): to the caller, the session
/// changed.
fn lost(e: &tokio_postgres::Error) -> bool {
    e.code()
        .is_some_and(|c| *c == SqlState::T_R_SERIALIZATION_FAILURE || *c == SqlState::T_R_DEADLOCK_DETECTED)
}

/// One operation of the store, failed once it has waited `OPERATION_TIMEOUT` for the database.
fn timed<'a, T: 'a>(
    doing: &'static str,
    op: impl Future<Output = Result<T, StoreError>> + Send + 'a,
) -> StoreFuture<'a, T> {
    timed_within(doing, OPERATION_TIMEOUT, op)
}

/// One operation of the store, failed once it has waited `bound` for the database.
fn timed_within<'a, T: 'a>(
    doing: &'static str,
    bound: Duration,
    op: impl Future<Output = Result<T, StoreError>> + Send + 'a,
) -> StoreFuture<'a, T> {
    Box::pin(async move {
        tokio::time::timeout(bound, op).await.unwrap_or_else(|_| {
            Err(StoreError::Postgres {
                doing: doing.into(),
                detail: format!("no answer from the database within {} ms", bound.as_millis()),
            })
        })
    })
}

fn loaded(session: &str, row: &tokio_postgres::Row) -> Result<Loaded, StoreError> {
    let fail = || failed(format!("load session `{session}`"));
    let rev: i64 = row.try_get(0).map_err(fail())?;
    let raw: Vec<u8> = row.try_get(1).map_err(fail())?;
    Ok(Loaded { state: decode_session(session, &raw)?, rev: revision(rev) })
}

/// A session row of an export (id, state, forgotten, summary), its journal and answers still
/// to come.
fn exported_row(id: &str, row: &tokio_postgres::Row) -> Result<Exported, StoreError> {
    let fail = || failed(format!("export session `{id}`"));
    let raw: Vec<u8> = row.try_get(1).map_err(fail())?;
    let forgotten: Option<Vec<u8>> = row.try_get(2).map_err(fail())?;
    let summary: Option<Vec<u8>> = row.try_get(3).map_err(fail())?;
    Ok(Exported {
        session: id.to_string(),
        state: decode_session(id, &raw)?,
        journal: unpack_hashes(forgotten.as_deref().unwrap_or_default())
            .into_iter()
            .map(JournalEntry::ForgottenHash)
            .collect(),
        answers: Vec::new(),
        claims: Vec::new(),
        summary: summary.map(|raw| decode_summary(id, &raw)).transpose()?,
        transcript: Vec::new(),
    })
}

fn decode_summary(session: &str, raw: &[u8]) -> Result<StoredSummary, StoreError> {
    let s: SummaryRecord = decode("summary", session, raw)?;
    check_format("summary", session, s.v)?;
    Ok(s.to_stored(session))
}

fn revision(rev: i64) -> Revision {
    Revision(rev.to_be_bytes().to_vec(), None)
}

fn rev_number(session: &str, rev: &Revision) -> Result<i64, StoreError> {
    <[u8; 8]>::try_from(rev.0.as_slice()).map(i64::from_be_bytes).map_err(|_| StoreError::Decode {
        what: "revision",
        key: session.to_string(),
        detail: format!("{} bytes, not a postgres revision (8)", rev.0.len()),
    })
}

/// A new row's revision: random below 2^62 (std's randomly keyed hasher, fresh keys per call), so
/// that counting up from it never overflows and two lives of one session id share no revision.
fn first_rev() -> i64 {
    use std::hash::BuildHasher;
    (std::collections::hash_map::RandomState::new().hash_one(0u8) >> 2) as i64
}

/// Milliseconds (or any u64) as a BIGINT, saturating.
fn ms(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// `Version::short`'s hex digits back to bytes; `None` when they are not an even run of hex.
fn hex_bytes(short: &str) -> Option<Vec<u8>> {
    if short.is_empty() || !short.len().is_multiple_of(2) || short.len() > 64 {
        return None;
    }
    (0..short.len()).step_by(2).map(|i| u8::from_str_radix(short.get(i..i + 2)?, 16).ok()).collect()
}
