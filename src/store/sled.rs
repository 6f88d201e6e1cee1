//! The embedded backend: sled trees of versioned MessagePack records, fsync'd by group commit.
//!
//! Trees: `sessions` (session id → `SessionRecord`: the state and its reply journal, written with
//! one `compare_and_swap` per webhook), `summaries` (session id → `SummaryRecord`), `machines`
//! (version → `MachineRecord`), `answers` (session id, NUL, event id → the script answers of one
//! webhook), `claims` (session id, NUL, event id, NUL, rank → the `ClaimRecord` of one script
//! request), `cache` (request hash → `CacheRecord`), `scheduled` (callback id →
//! `ScheduledRecord`), `scheduled_sessions` (the session of a callback's latest attempt → its id)
//! and `meta` (the readiness probe, and the `ActionKeyRecord` every `clientActionId` is signed
//! with). A write is
//! durable once the fsync thread has flushed after it: every request waiting meanwhile shares
//! that one fsync (group commit), and sled's own periodic flusher is off.

use std::ops::Bound;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use metrics::histogram;
use tokio::sync::{mpsc, oneshot};
use tracing::info;

use crate::engine::transcript::Entry;

use super::record::{
    AnswerRecord, AnswersRecord, CacheRecord, ClaimRecord, FORMAT, MachineRecord, ReplyRecord, SessionRecord,
    SummaryRecord, cache_key, check_format, decode, decode_action_key, decode_claim, decode_rate,
    decode_record, decode_scheduled, decode_unfinished, encode, encode_action_key, encode_rate,
    encode_record, encode_scheduled, encode_unfinished, opening_id, unfinished_key,
};
use super::{
    Bucket, CallerKey, Cancelled, Claim, Commit, Committed, ExportPage, Exported, Loaded, Lookup, Page,
    Revision, SCAN_PAGE_MAX, SCHEDULED_LIST_MAX, Scheduled, ScheduledState, Store, StoreError, StoreFuture,
    StoredMachine, StoredSummary, SummaryPage, Unfinished,
};
use crate::callflow::SessionSummary;
use crate::engine::{Answer, Request};
use crate::machine::Version;

/// The `meta` key of the store's `ActionKeyRecord`.
const ACTION_KEY: &str = "action_key";
/// How long a write waited for the group fsync that made it durable (histogram).
pub(super) const DURABILITY_WAIT_SECONDS: &str = "phonetree_store_durability_wait_seconds";
/// How long one group fsync took (histogram).
pub(super) const FSYNC_SECONDS: &str = "phonetree_store_fsync_duration_seconds";
/// How many writes one group fsync made durable (histogram).
pub const BATCH_WRITES: &str = "phonetree_store_group_commit_writes";

/// Requests waiting for the next fsync at most; more wait their turn to enqueue (back-pressure).
pub const FLUSH_QUEUE_MAX: usize = 4096;
/// sled's page cache: a live call is a few hundred bytes to a KiB with its journal, so this holds
/// the hot set of a busy node; sled's default (1 GiB) would let the process grow with the store.
pub const CACHE_BYTES_MAX: u64 = 64 * 1024 * 1024;
/// How long opening waits for the store's lock; another running phonetree keeps it, and is
/// refused after this.
pub const LOCK_WAIT_MAX: Duration = Duration::from_secs(2);

type Waiter = oneshot::Sender<Result<(), String>>;

/// A sled folder.
pub struct SledStore {
    db: sled::Db,
    sessions: sled::Tree,
    summaries: sled::Tree,
    machines: sled::Tree,
    answers: sled::Tree,
    claims: sled::Tree,
    cache: sled::Tree,
    meta: sled::Tree,
    /// The outbound guard's rate buckets (`RateRecord`s by bucket key).
    rates: sled::Tree,
    /// Callers' interrupted calls (`UnfinishedRecord`s by `unfinished_key`).
    unfinished: sled::Tree,
    /// Scheduled callbacks (`ScheduledRecord`s by id).
    scheduled: sled::Tree,
    /// The session a callback's latest attempt placed → the callback's id.
    scheduled_sessions: sled::Tree,
    /// This opening of the folder, in the claims it makes: sled lets one process open a folder at
    /// a time, so a claim another opening made was left by a process that stopped.
    opening: u64,
    /// Live sessions: counted once at open, then kept by the writes that add and remove them
    /// (sled's `len` walks the whole tree).
    live: AtomicU64,
    /// The group-commit queue; `None` without fsync.
    flushes: Option<mpsc::Sender<Waiter>>,
    /// The fsync thread; joined on drop so the folder's lock is free when `drop` returns.
    flusher: Option<std::thread::JoinHandle<()>>,
}

/// Whether a write waits for its fsync before it counts as done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Every acknowledged write is on disk (the default).
    Fsync,
    /// Writes are acknowledged before the fsync: a crash may lose them. Only for measuring what
    /// durability costs.
    NoFsync,
}

impl SledStore {
    /// Opens (or creates) the store in `dir`, migrating a store of an older format.
    pub fn open(dir: &Path) -> Result<SledStore, StoreError> {
        SledStore::open_with(dir, Durability::Fsync)
    }

    pub fn open_with(dir: &Path, durability: Durability) -> Result<SledStore, StoreError> {
        let db = open_waiting_for_lock(dir, durability)?;
        let sessions = db.open_tree("sessions")?;
        migrate_replies(&db, &sessions, dir)?;
        let (flushes, flusher) = match durability {
            Durability::Fsync => {
                let (tx, thread) = start_flusher(db.clone())?;
                (Some(tx), Some(thread))
            }
            Durability::NoFsync => (None, None),
        };
        Ok(SledStore {
            live: AtomicU64::new(sessions.len() as u64),
            sessions,
            summaries: db.open_tree("summaries")?,
            machines: db.open_tree("machines")?,
            answers: db.open_tree("answers")?,
            claims: db.open_tree("claims")?,
            opening: opening_id(),
            cache: db.open_tree("cache")?,
            meta: db.open_tree("meta")?,
            rates: db.open_tree("rates")?,
            unfinished: db.open_tree("unfinished")?,
            scheduled: db.open_tree("scheduled")?,
            scheduled_sessions: db.open_tree("scheduled_sessions")?,
            db,
            flushes,
            flusher,
        })
    }

    /// Returns once every write made before the call is on disk.
    async fn durable(&self) -> Result<(), StoreError> {
        let Some(flushes) = &self.flushes else { return Ok(()) };
        let waited = Instant::now();
        let (tx, rx) = oneshot::channel();
        flushes.send(tx).await.map_err(|_| StoreError::FlusherGone)?;
        let flushed = rx.await.map_err(|_| StoreError::FlusherGone)?.map_err(StoreError::Flush);
        histogram!(DURABILITY_WAIT_SECONDS).record(waited.elapsed().as_secs_f64());
        flushed
    }

    fn lookup(&self, session: &str, event_id: Option<&str>) -> Result<Lookup, StoreError> {
        let Some(raw) = self.sessions.get(session)? else { return Ok(Lookup::default()) };
        let record = decode_record(session, &raw)?;
        let replied = event_id.and_then(|e| record.replied(e));
        let state = record.to_state(session).map_err(|detail| StoreError::Decode {
            what: "session",
            key: session.to_string(),
            detail,
        })?;
        let rev = Revision(raw.to_vec(), Some(Arc::new(record)));
        Ok(Lookup { session: Some(Loaded { state, rev }), replied })
    }

    /// Writes a summary; durable once `durable` returns after it.
    fn put_summary_now(&self, summary: &SessionSummary, received_ms: u64) -> Result<(), StoreError> {
        let record = SummaryRecord::from_summary(summary, received_ms);
        self.summaries.insert(summary.session_id.as_bytes(), encode("summary", &record)?)?;
        Ok(())
    }

    /// The compare-and-swap of one commit; the caller waits for durability.
    fn swap(&self, c: &Commit<'_>) -> Result<Committed, StoreError> {
        let mut record = SessionRecord::from_state(c.state);
        if let Some(Revision(raw, decoded)) = c.expected {
            // The journal goes on from the record as loaded (the swap fails if it changed since),
            // decoded again only when the load did not keep it.
            match decoded {
                Some(old) => {
                    (record.j, record.jo, record.tr) = (old.j.clone(), old.jo.clone(), old.tr.clone())
                }
                None => {
                    let old = decode_record(c.session, raw)?;
                    (record.j, record.jo, record.tr) = (old.j, old.jo, old.tr);
                }
            }
        }
        if let Some((event_id, body)) = c.reply {
            if record.replied(event_id).is_some() {
                // Answered already (by a request that loaded the session after that answer).
                return Ok(Committed::Changed);
            }
            record.journal(event_id, body);
        }
        for entry in c.entries {
            record.append(c.session, entry)?;
        }
        let new = encode_record(&record)?;
        let expected = c.expected.map(|r| r.0.as_slice());
        // Before the swap and covered by its fsync; kept again (the same bytes) if it must retry.
        if let Some((summary, received_ms)) = c.summary {
            self.put_summary_now(summary, received_ms)?;
        }
        if let Some(call) = c.schedule {
            return self.swap_scheduling(c.session, expected, new, call);
        }
        match self.sessions.compare_and_swap(c.session, expected, Some(new))? {
            Ok(()) => {
                if expected.is_none() {
                    self.live.fetch_add(1, Ordering::Relaxed);
                }
                Ok(Committed::Done)
            }
            Err(_) => Ok(Committed::Changed),
        }
    }

    /// The session's compare-and-swap and a scheduled call's write, in one transaction.
    fn swap_scheduling(
        &self,
        session: &str,
        expected: Option<&[u8]>,
        new: Vec<u8>,
        call: &Scheduled,
    ) -> Result<Committed, StoreError> {
        use sled::Transactional;
        use sled::transaction::{ConflictableTransactionError, TransactionError};
        let raw = encode_scheduled(call)?;
        let trees = (&self.sessions, &self.scheduled, &self.scheduled_sessions);
        let written = trees.transaction(|(st, sc, by_session)| {
            if st.get(session)?.as_deref() != expected {
                return Err(ConflictableTransactionError::Abort(()));
            }
            st.insert(session, new.as_slice())?;
            sc.insert(call.id.as_bytes(), raw.as_slice())?;
            if let Some(placed) = &call.session {
                by_session.insert(placed.as_bytes(), call.id.as_bytes())?;
            }
            Ok(())
        });
        match written {
            Ok(()) => {
                if expected.is_none() {
                    self.live.fetch_add(1, Ordering::Relaxed);
                }
                Ok(Committed::Done)
            }
            Err(TransactionError::Abort(())) => Ok(Committed::Changed),
            Err(TransactionError::Storage(e)) => Err(e.into()),
        }
    }

    fn all_scheduled(&self) -> Result<Vec<Scheduled>, StoreError> {
        let mut calls = Vec::new();
        for item in self.scheduled.iter() {
            let (key, raw) = item?;
            calls.push(decode_scheduled(&String::from_utf8_lossy(&key), &raw)?);
        }
        calls.sort_by(|a, b| (a.due_ms, &a.id).cmp(&(b.due_ms, &b.id)));
        calls.truncate(SCHEDULED_LIST_MAX);
        Ok(calls)
    }

    fn expire_scheduled_records(&self, before_ms: u64) -> Result<usize, StoreError> {
        let mut removed = 0;
        for item in self.scheduled.iter() {
            let (key, raw) = item?;
            // A record this phonetree cannot read is left for one that can.
            let Ok(call) = decode_scheduled(&String::from_utf8_lossy(&key), &raw) else { continue };
            if call.state != ScheduledState::Pending && call.updated_ms < before_ms {
                if let Some(session) = &call.session {
                    self.scheduled_sessions.remove(session.as_bytes())?;
                }
                self.scheduled.remove(key)?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// One process opens a folder: a compare-and-swap of the record claims it.
    fn claim_due(&self, now_ms: u64) -> Result<Option<Scheduled>, StoreError> {
        for item in self.scheduled.iter() {
            let (key, raw) = item?;
            let mut call = decode_scheduled(&String::from_utf8_lossy(&key), &raw)?;
            if call.state != ScheduledState::Pending || call.due_ms > now_ms {
                continue;
            }
            call.state = ScheduledState::Sending;
            call.updated_ms = now_ms;
            let claimed = encode_scheduled(&call)?;
            if self.scheduled.compare_and_swap(&key, Some(raw), Some(claimed))?.is_ok() {
                return Ok(Some(call));
            }
        }
        Ok(None)
    }

    fn put_one_scheduled(&self, call: &Scheduled) -> Result<(), StoreError> {
        if let Some(session) = &call.session {
            self.scheduled_sessions.insert(session.as_bytes(), call.id.as_bytes())?;
        }
        self.scheduled.insert(call.id.as_bytes(), encode_scheduled(call)?)?;
        Ok(())
    }

    fn by_session(&self, session: &str) -> Result<Option<Scheduled>, StoreError> {
        let Some(id) = self.scheduled_sessions.get(session)? else { return Ok(None) };
        let Some(raw) = self.scheduled.get(&id)? else { return Ok(None) };
        let call = decode_scheduled(&String::from_utf8_lossy(&id), &raw)?;
        Ok((call.session.as_deref() == Some(session)).then_some(call))
    }

    fn cancel(&self, id: &str, now_ms: u64) -> Result<Cancelled, StoreError> {
        loop {
            let Some(raw) = self.scheduled.get(id)? else { return Ok(Cancelled::Unknown) };
            let mut call = decode_scheduled(id, &raw)?;
            if call.state != ScheduledState::Pending {
                return Ok(Cancelled::NotPending(call));
            }
            call.state = ScheduledState::Cancelled;
            call.updated_ms = now_ms;
            let new = encode_scheduled(&call)?;
            if self.scheduled.compare_and_swap(id, Some(raw), Some(new))?.is_ok() {
                return Ok(Cancelled::Done(call));
            }
        }
    }

    fn page(&self, after: Option<&str>, limit: usize) -> Result<Page, StoreError> {
        let limit = limit.clamp(1, SCAN_PAGE_MAX);
        let mut sessions = Vec::with_capacity(limit);
        for item in self.sessions.range::<sled::IVec, _>((after_bound(after), Bound::Unbounded)).take(limit) {
            let (key, raw) = item?;
            let id = String::from_utf8_lossy(&key).into_owned();
            let loaded = decode_record(&id, &raw).and_then(|r| {
                r.to_state(&id)
                    .map(|state| Loaded { state, rev: Revision(raw.to_vec(), Some(Arc::new(r))) })
                    .map_err(|detail| StoreError::Decode { what: "session", key: id.clone(), detail })
            });
            sessions.push((id, loaded));
        }
        let next = (sessions.len() == limit).then(|| sessions.last().map(|(id, _)| id.clone())).flatten();
        Ok(Page { sessions, next })
    }

    fn export_page(&self, after: Option<&str>, limit: usize) -> Result<ExportPage, StoreError> {
        let limit = limit.clamp(1, SCAN_PAGE_MAX);
        let mut sessions = Vec::with_capacity(limit);
        for item in self.sessions.range::<sled::IVec, _>((after_bound(after), Bound::Unbounded)).take(limit) {
            let (key, raw) = item?;
            let id = String::from_utf8_lossy(&key).into_owned();
            let exported = self.export_one(&id, &raw);
            sessions.push((id, exported));
        }
        let next = (sessions.len() == limit).then(|| sessions.last().map(|(id, _)| id.clone())).flatten();
        Ok(ExportPage { sessions, next })
    }

    fn export_one(&self, id: &str, raw: &[u8]) -> Result<Exported, StoreError> {
        let record = decode_record(id, raw)?;
        let state = record.to_state(id).map_err(|detail| StoreError::Decode {
            what: "session",
            key: id.to_string(),
            detail,
        })?;
        let mut answers = Vec::new();
        let head = prefix(id);
        for item in self.answers.scan_prefix(&head) {
            let (key, raw) = item?;
            let event_id = String::from_utf8_lossy(&key[head.len()..]).into_owned();
            answers.push((event_id.clone(), self.decode_answers(id, &event_id, &raw)?));
        }
        let mut claims = Vec::new();
        for key in self.claims.scan_prefix(&head).keys() {
            let key = key?;
            // session NUL event NUL rank (4 bytes, big-endian).
            let Some((event, rank)) = key[head.len()..].split_last_chunk::<4>() else { continue };
            let event = event.strip_suffix(&[0]).unwrap_or(event);
            claims.push((String::from_utf8_lossy(event).into_owned(), u32::from_be_bytes(*rank)));
        }
        let summary = match self.summaries.get(id)? {
            Some(raw) => Some(decode_summary(id, &raw)?),
            None => None,
        };
        let transcript = record.transcript(id)?;
        Ok(Exported {
            session: id.to_string(),
            state,
            journal: record.journal_entries(),
            answers,
            claims,
            summary,
            transcript,
        })
    }

    /// Writes the session's record, answers and summary in one transaction, if it does not exist.
    fn import_one(&self, e: &Exported) -> Result<Committed, StoreError> {
        use sled::Transactional;
        use sled::transaction::{ConflictableTransactionError, TransactionError};
        let mut record = SessionRecord::from_state(&e.state);
        record.restore_journal(&e.journal);
        for entry in &e.transcript {
            record.append(&e.session, entry)?;
        }
        let raw = encode_record(&record)?;
        let mut answers = Vec::with_capacity(e.answers.len());
        for (event_id, given) in &e.answers {
            let r =
                AnswersRecord { v: FORMAT, answers: given.iter().map(AnswerRecord::from_answer).collect() };
            answers.push((event_key(&e.session, event_id), encode("answers", &r)?));
        }
        let summary = match &e.summary {
            Some(s) => Some(encode("summary", &SummaryRecord::from_summary(&s.summary, s.received_ms))?),
            None => None,
        };
        // Claimed by no opening, with no time left: lapsed.
        let lapsed = encode("claim", &ClaimRecord::new(0, 0))?;
        let claims: Vec<Vec<u8>> =
            e.claims.iter().map(|(event_id, rank)| claim_key(&e.session, event_id, *rank)).collect();
        let trees = (&self.sessions, &self.answers, &self.summaries, &self.claims);
        let written = trees.transaction(|(st, at, mt, ct)| {
            if st.get(e.session.as_bytes())?.is_some() {
                return Err(ConflictableTransactionError::Abort(()));
            }
            st.insert(e.session.as_bytes(), raw.as_slice())?;
            for (key, value) in &answers {
                at.insert(key.as_slice(), value.as_slice())?;
            }
            if let Some(summary) = &summary {
                mt.insert(e.session.as_bytes(), summary.as_slice())?;
            }
            for key in &claims {
                ct.insert(key.as_slice(), lapsed.as_slice())?;
            }
            Ok(())
        });
        match written {
            Ok(()) => {
                self.live.fetch_add(1, Ordering::Relaxed);
                Ok(Committed::Done)
            }
            Err(TransactionError::Abort(())) => Ok(Committed::Changed),
            Err(TransactionError::Storage(e)) => Err(e.into()),
        }
    }

    fn every_machine(&self) -> Result<Vec<(Version, StoredMachine)>, StoreError> {
        let mut all = Vec::new();
        for item in self.machines.iter() {
            let (key, raw) = item?;
            let version =
                <[u8; 32]>::try_from(key.as_ref()).map(Version).map_err(|_| StoreError::Decode {
                    what: "machine version",
                    key: format!("{key:?}"),
                    detail: format!("{} bytes, not 32", key.len()),
                })?;
            let m: MachineRecord = decode("machine", &version.short(), &raw)?;
            check_format("machine", &version.short(), m.v)?;
            all.push((version, m.into_stored()));
        }
        Ok(all)
    }

    fn lone(&self, after: Option<&str>, limit: usize) -> Result<SummaryPage, StoreError> {
        let limit = limit.clamp(1, SCAN_PAGE_MAX);
        let mut summaries = Vec::with_capacity(limit);
        let mut last = None;
        for item in self.summaries.range::<sled::IVec, _>((after_bound(after), Bound::Unbounded)) {
            let (key, raw) = item?;
            if self.sessions.contains_key(&key)? {
                continue;
            }
            let id = String::from_utf8_lossy(&key).into_owned();
            summaries.push(decode_summary(&id, &raw)?);
            last = Some(id);
            if summaries.len() == limit {
                break;
            }
        }
        let next = if summaries.len() == limit { last } else { None };
        Ok(SummaryPage { summaries, next })
    }

    fn decode_answers(&self, session: &str, event_id: &str, raw: &[u8]) -> Result<Vec<Answer>, StoreError> {
        let name = format!("{session}/{event_id}");
        let r: AnswersRecord = decode("answers", &name, raw)?;
        check_format("answers", &name, r.v)?;
        Ok(r.answers.iter().map(AnswerRecord::to_answer).collect())
    }

    fn remove(&self, session: &str) -> Result<(), StoreError> {
        for key in self.answers.scan_prefix(prefix(session)).keys() {
            self.answers.remove(key?)?;
        }
        for key in self.claims.scan_prefix(prefix(session)).keys() {
            self.claims.remove(key?)?;
        }
        self.summaries.remove(session)?;
        if self.sessions.remove(session)?.is_some() {
            self.live.fetch_sub(1, Ordering::Relaxed);
        }
        Ok(())
    }

    fn by_short(&self, name: &str, short: &str) -> Result<Option<(Version, StoredMachine)>, StoreError> {
        let Some(head) = hex_bytes(short) else { return Ok(None) };
        for item in self.machines.scan_prefix(head) {
            let (key, raw) = item?;
            let Ok(version) = <[u8; 32]>::try_from(key.as_ref()).map(Version) else { continue };
            let m: MachineRecord = decode("machine", short, &raw)?;
            check_format("machine", short, m.v)?;
            if m.name == name {
                return Ok(Some((version, m.into_stored())));
            }
        }
        Ok(None)
    }

    /// Takes a token from every bucket or none, in one sled transaction.
    fn take(&self, buckets: &[Bucket<'_>], now_ms: u64) -> Result<Result<(), (usize, u64)>, StoreError> {
        use ::sled::transaction::{ConflictableTransactionError, TransactionError};
        let taken = self.rates.transaction(|tx| {
            let mut times = Vec::with_capacity(buckets.len());
            for (i, b) in buckets.iter().enumerate() {
                let tat = match tx.get(b.key)? {
                    Some(raw) => decode_rate(b.key, &raw).map_err(ConflictableTransactionError::Abort)?,
                    None => 0,
                };
                match b.take(tat, now_ms) {
                    Ok(next) => times.push(next),
                    Err(wait) => return Ok(Err((i, wait))),
                }
            }
            for (b, next) in buckets.iter().zip(times) {
                tx.insert(b.key, encode_rate(next).map_err(ConflictableTransactionError::Abort)?)?;
            }
            Ok(Ok(()))
        });
        match taken {
            Ok(taken) => Ok(taken),
            Err(TransactionError::Abort(e)) => Err(e),
            Err(TransactionError::Storage(e)) => Err(e.into()),
        }
    }

    /// Deletes the rate records of full buckets.
    fn expire_rate_records(&self, now_ms: u64) -> Result<usize, StoreError> {
        let mut removed = 0;
        for item in self.rates.iter() {
            let (key, raw) = item?;
            let name = String::from_utf8_lossy(&key).into_owned();
            // A record this phonetree cannot read limits nothing it knows of: dropped too.
            if decode_rate(&name, &raw).map_or(true, |tat| tat <= now_ms) {
                self.rates.remove(key)?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    fn expire(&self, now_ms: u64) -> Result<usize, StoreError> {
        let mut removed = 0;
        for item in self.cache.iter() {
            let (key, raw) = item?;
            let stale = decode::<CacheRecord>("cache", "entry", &raw).map_or(true, |r| r.until <= now_ms);
            if stale {
                self.cache.remove(key)?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

impl Store for SledStore {
    fn load<'a>(&'a self, session: &'a str, event_id: Option<&'a str>) -> StoreFuture<'a, Lookup> {
        Box::pin(async move { self.lookup(session, event_id) })
    }

    fn commit<'a>(&'a self, commit: Commit<'a>) -> StoreFuture<'a, Committed> {
        Box::pin(async move {
            let started = Instant::now();
            let done = self.swap(&commit)?;
            if done == Committed::Done {
                self.durable().await?;
            }
            histogram!(super::COMMIT_SECONDS, "store" => "sled").record(started.elapsed().as_secs_f64());
            Ok(done)
        })
    }

    fn answers<'a>(&'a self, session: &'a str, event_id: &'a str) -> StoreFuture<'a, Vec<Answer>> {
        Box::pin(async move {
            let key = event_key(session, event_id);
            let Some(raw) = self.answers.get(&key)? else { return Ok(Vec::new()) };
            self.decode_answers(session, event_id, &raw)
        })
    }

    fn put_answers<'a>(
        &'a self,
        session: &'a str,
        event_id: &'a str,
        answers: &'a [Answer],
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let record =
                AnswersRecord { v: FORMAT, answers: answers.iter().map(AnswerRecord::from_answer).collect() };
            self.answers.insert(event_key(session, event_id), encode("answers", &record)?)?;
            self.durable().await
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
        Box::pin(async move {
            let key = claim_key(session, event_id, rank);
            let mine = encode("claim", &ClaimRecord::new(self.opening, until_ms))?;
            match self.claims.compare_and_swap(&key, None as Option<&[u8]>, Some(mine))? {
                Ok(()) => {
                    self.durable().await?;
                    Ok(Claim::Won)
                }
                Err(found) => {
                    let name = format!("{session}/{event_id}/{rank}");
                    let raw = found.current.unwrap_or_default();
                    let held = decode_claim(&name, &raw)?;
                    Ok(if held.o == self.opening && held.u > now_ms {
                        Claim::Held { until_ms: held.u }
                    } else {
                        Claim::Lapsed
                    })
                }
            }
        })
    }

    fn cached<'a>(&'a self, request: &'a Request, now_ms: u64) -> StoreFuture<'a, Option<Answer>> {
        Box::pin(async move {
            let Some(raw) = self.cache.get(cache_key(request))? else { return Ok(None) };
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
        Box::pin(async move {
            let Some(record) = CacheRecord::of(request, answer, now_ms) else { return Ok(()) };
            self.cache.insert(cache_key(request), encode("cache", &record)?)?;
            Ok(())
        })
    }

    fn put_summary<'a>(&'a self, summary: &'a SessionSummary, received_ms: u64) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            self.put_summary_now(summary, received_ms)?;
            self.durable().await
        })
    }

    fn summary<'a>(&'a self, session: &'a str) -> StoreFuture<'a, Option<StoredSummary>> {
        Box::pin(async move {
            let Some(raw) = self.summaries.get(session)? else { return Ok(None) };
            decode_summary(session, &raw).map(Some)
        })
    }

    fn put_machine<'a>(&'a self, version: Version, machine: &'a StoredMachine) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let record = MachineRecord::of(machine);
            self.machines.insert(version.0, encode("machine", &record)?)?;
            self.durable().await
        })
    }

    fn machine(&self, version: Version) -> StoreFuture<'_, Option<StoredMachine>> {
        Box::pin(async move {
            let Some(raw) = self.machines.get(version.0)? else { return Ok(None) };
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
        Box::pin(async move { self.by_short(name, short) })
    }

    fn scan<'a>(&'a self, after: Option<&'a str>, limit: usize) -> StoreFuture<'a, Page> {
        Box::pin(async move { self.page(after, limit) })
    }

    fn transcript<'a>(&'a self, session: &'a str) -> StoreFuture<'a, Vec<Entry>> {
        Box::pin(async move {
            let Some(raw) = self.sessions.get(session)? else { return Ok(Vec::new()) };
            decode_record(session, &raw)?.transcript(session)
        })
    }

    fn remove_session<'a>(&'a self, session: &'a str) -> StoreFuture<'a, ()> {
        Box::pin(async move { self.remove(session) })
    }

    fn expire_cache(&self, now_ms: u64) -> StoreFuture<'_, usize> {
        Box::pin(async move { self.expire(now_ms) })
    }

    fn take_tokens<'a>(
        &'a self,
        buckets: &'a [Bucket<'a>],
        now_ms: u64,
    ) -> StoreFuture<'a, Result<(), (usize, u64)>> {
        Box::pin(async move {
            let taken = self.take(buckets, now_ms)?;
            if taken.is_ok() {
                self.durable().await?;
            }
            Ok(taken)
        })
    }

    fn expire_rates(&self, now_ms: u64) -> StoreFuture<'_, usize> {
        Box::pin(async move { self.expire_rate_records(now_ms) })
    }

    fn export<'a>(&'a self, after: Option<&'a str>, limit: usize) -> StoreFuture<'a, ExportPage> {
        Box::pin(async move { self.export_page(after, limit) })
    }

    fn import<'a>(&'a self, session: &'a Exported) -> StoreFuture<'a, Committed> {
        Box::pin(async move {
            let done = self.import_one(session)?;
            if done == Committed::Done {
                self.durable().await?;
            }
            Ok(done)
        })
    }

    fn machines(&self) -> StoreFuture<'_, Vec<(Version, StoredMachine)>> {
        Box::pin(async move { self.every_machine() })
    }

    fn scheduled(&self) -> StoreFuture<'_, Vec<Scheduled>> {
        Box::pin(async move { self.all_scheduled() })
    }

    fn expire_scheduled(&self, before_ms: u64) -> StoreFuture<'_, usize> {
        Box::pin(async move { self.expire_scheduled_records(before_ms) })
    }

    fn claim_scheduled(&self, now_ms: u64) -> StoreFuture<'_, Option<Scheduled>> {
        Box::pin(async move {
            let claimed = self.claim_due(now_ms)?;
            if claimed.is_some() {
                self.durable().await?;
            }
            Ok(claimed)
        })
    }

    fn scheduled_page<'a>(&'a self, after: Option<&'a str>, limit: usize) -> StoreFuture<'a, Vec<Scheduled>> {
        Box::pin(async move {
            let mut page = Vec::new();
            for item in self
                .scheduled
                .range((after_bound(after), Bound::Unbounded))
                .take(limit.clamp(1, SCAN_PAGE_MAX))
            {
                let (key, raw) = item?;
                page.push(decode_scheduled(&String::from_utf8_lossy(&key), &raw)?);
            }
            Ok(page)
        })
    }

    fn put_scheduled<'a>(&'a self, call: &'a Scheduled) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            self.put_one_scheduled(call)?;
            self.durable().await
        })
    }

    fn scheduled_by_session<'a>(&'a self, session: &'a str) -> StoreFuture<'a, Option<Scheduled>> {
        Box::pin(async move { self.by_session(session) })
    }

    fn cancel_scheduled<'a>(&'a self, id: &'a str, now_ms: u64) -> StoreFuture<'a, Cancelled> {
        Box::pin(async move {
            let done = self.cancel(id, now_ms)?;
            if matches!(done, Cancelled::Done(_)) {
                self.durable().await?;
            }
            Ok(done)
        })
    }

    fn lone_summaries<'a>(&'a self, after: Option<&'a str>, limit: usize) -> StoreFuture<'a, SummaryPage> {
        Box::pin(async move { self.lone(after, limit) })
    }

    fn action_key(&self, fresh: Option<[u8; 32]>) -> StoreFuture<'_, Option<[u8; 32]>> {
        Box::pin(async move {
            if let Some(fresh) = fresh {
                let record = encode_action_key(&fresh)?;
                // Only the first writer's key is kept; everyone reads it back.
                let swapped = self.meta.compare_and_swap(ACTION_KEY, None as Option<&[u8]>, Some(record))?;
                if swapped.is_ok() {
                    self.durable().await?;
                }
            }
            self.meta.get(ACTION_KEY)?.map(|raw| decode_action_key(&raw)).transpose()
        })
    }

    fn unfinished<'a>(&'a self, machine: &'a str, caller: &'a str) -> StoreFuture<'a, Option<Unfinished>> {
        Box::pin(async move {
            let key = unfinished_key(machine, caller);
            let Some(raw) = self.unfinished.get(key)? else { return Ok(None) };
            decode_unfinished(machine, &raw).map(Some)
        })
    }

    fn put_unfinished_at<'a>(&'a self, key: CallerKey, call: &'a Unfinished) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            self.unfinished.insert(key.0, encode_unfinished(call)?)?;
            self.durable().await
        })
    }

    fn unfinished_page(
        &self,
        after: Option<CallerKey>,
        limit: usize,
    ) -> StoreFuture<'_, Vec<(CallerKey, Unfinished)>> {
        Box::pin(async move {
            let from = after.map_or(Bound::Unbounded, |k| Bound::Excluded(sled::IVec::from(&k.0[..])));
            let mut page = Vec::new();
            for item in self.unfinished.range((from, Bound::Unbounded)).take(limit.clamp(1, SCAN_PAGE_MAX)) {
                let (key, raw) = item?;
                let key = CallerKey::stored(&key)?;
                page.push((key, decode_unfinished(&key.hex(), &raw)?));
            }
            Ok(page)
        })
    }

    fn remove_unfinished<'a>(&'a self, machine: &'a str, caller: &'a str) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            if self.unfinished.remove(unfinished_key(machine, caller))?.is_some() {
                self.durable().await?;
            }
            Ok(())
        })
    }

    fn expire_unfinished(&self, before_ms: u64) -> StoreFuture<'_, usize> {
        Box::pin(async move {
            let mut removed = 0;
            for item in self.unfinished.iter() {
                let (key, raw) = item?;
                // A record this phonetree cannot read offers nothing: dropped too.
                if decode_unfinished("?", &raw).map_or(true, |u| u.ended_ms < before_ms) {
                    self.unfinished.remove(key)?;
                    removed += 1;
                }
            }
            Ok(removed)
        })
    }

    fn session_count(&self) -> StoreFuture<'_, u64> {
        Box::pin(async move { Ok(self.live.load(Ordering::Relaxed)) })
    }

    fn probe(&self, now_ms: u64) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            self.meta.insert("probe", &now_ms.to_be_bytes())?;
            match self.meta.get("probe")? {
                Some(v) if v.as_ref() == now_ms.to_be_bytes() => Ok(()),
                _ => Err(StoreError::Flush("the probe key did not read back".into())),
            }
        })
    }

    fn flush(&self) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            self.db.flush_async().await?;
            Ok(())
        })
    }
}

impl Drop for SledStore {
    /// Stops the fsync thread (closing its queue ends its loop) and waits for it, then flushes,
    /// so that the store can be opened again at once, by this process or the next.
    fn drop(&mut self) {
        drop(self.flushes.take());
        if let Some(thread) = self.flusher.take() {
            let _ = thread.join();
        }
        let _ = self.db.flush();
    }
}

/// The group-commit thread: takes every request queued so far, fsyncs once, answers them all. A
/// request is queued after its write, so the fsync that follows covers it.
fn start_flusher(db: sled::Db) -> Result<(mpsc::Sender<Waiter>, std::thread::JoinHandle<()>), StoreError> {
    let (tx, mut waiting) = mpsc::channel::<Waiter>(FLUSH_QUEUE_MAX);
    let thread = std::thread::Builder::new()
        .name("phonetree-fsync".into())
        .spawn(move || {
            let mut batch = Vec::new();
            while let Some(first) = waiting.blocking_recv() {
                batch.push(first);
                while let Ok(next) = waiting.try_recv() {
                    batch.push(next);
                }
                let started = Instant::now();
                let result = db.flush().map(|_| ()).map_err(|e| e.to_string());
                histogram!(FSYNC_SECONDS).record(started.elapsed().as_secs_f64());
                histogram!(BATCH_WRITES).record(batch.len() as f64);
                for w in batch.drain(..) {
                    let _ = w.send(result.clone());
                }
            }
        })
        .map_err(|e| StoreError::Flush(format!("cannot start the fsync thread: {e}")))?;
    Ok((tx, thread))
}

/// Opens sled, waiting up to `LOCK_WAIT_MAX` for the folder's lock: sled releases it when its
/// I/O threads finish, shortly after the last handle of a store closed in this process drops.
fn open_waiting_for_lock(dir: &Path, durability: Durability) -> Result<sled::Db, StoreError> {
    let deadline = std::time::Instant::now() + LOCK_WAIT_MAX;
    let mut config = sled::Config::new().path(dir).cache_capacity(CACHE_BYTES_MAX);
    if durability == Durability::Fsync {
        // The group-commit thread flushes whenever a write waits; a second, periodic flusher
        // would only add fsyncs and context switches.
        config = config.flush_every_ms(None);
    }
    loop {
        match config.open() {
            Err(sled::Error::Io(e))
                if e.to_string().contains("could not acquire lock")
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(20));
            }
            other => return Ok(other?),
        }
    }
}

/// A format 2 store kept every reply in a `replies` tree; format 3 keeps the latest in the session
/// record. Moves each session's replies into its record (in the order they were given), then
/// drops the tree. Runs once, at the first open by a phonetree of format 3.
fn migrate_replies(db: &sled::Db, sessions: &sled::Tree, dir: &Path) -> Result<(), StoreError> {
    if !db.tree_names().iter().any(|n| n.as_ref() == b"replies") {
        return Ok(());
    }
    let fail = |detail: String| StoreError::Migrate { dir: dir.display().to_string(), from: 2, detail };
    let replies = db.open_tree("replies")?;
    let mut migrated = 0usize;
    for item in sessions.iter() {
        let (key, raw) = item?;
        let id = String::from_utf8_lossy(&key).into_owned();
        let mut record = decode_record(&id, &raw).map_err(|e| fail(e.to_string()))?;
        let mut given = Vec::new();
        for r in replies.scan_prefix(prefix(&id)) {
            let (k, v) = r?;
            let event = String::from_utf8_lossy(&k[id.len() + 1..]).into_owned();
            let reply: ReplyRecord = decode("reply", &event, &v).map_err(|e| fail(e.to_string()))?;
            given.push((reply.at, event, reply.body.0));
        }
        given.sort();
        for (_, event, body) in &given {
            record.journal(event, body);
        }
        record.v = FORMAT;
        sessions.insert(key, encode_record(&record)?)?;
        migrated += 1;
    }
    db.flush()?;
    db.drop_tree("replies")?;
    db.flush()?;
    info!(dir = %dir.display(), sessions = migrated, "store migrated from format 2 to {FORMAT}: replies moved into session records");
    Ok(())
}

/// Where a walk of a tree starts: after `after`, or at its first key.
fn after_bound(after: Option<&str>) -> Bound<sled::IVec> {
    match after {
        Some(a) => Bound::Excluded(sled::IVec::from(a.as_bytes())),
        None => Bound::Unbounded,
    }
}

fn decode_summary(session: &str, raw: &[u8]) -> Result<StoredSummary, StoreError> {
    let s: SummaryRecord = decode("summary", session, raw)?;
    check_format("summary", session, s.v)?;
    Ok(s.to_stored(session))
}

/// The key prefix of everything kept per session in the `answers` tree.
fn prefix(session: &str) -> Vec<u8> {
    let mut p = Vec::with_capacity(session.len() + 1);
    p.extend_from_slice(session.as_bytes());
    p.push(0);
    p
}

fn event_key(session: &str, event_id: &str) -> Vec<u8> {
    let mut key = prefix(session);
    key.extend_from_slice(event_id.as_bytes());
    key
}

/// The `claims` key of script request `rank` of one event.
fn claim_key(session: &str, event_id: &str, rank: u32) -> Vec<u8> {
    let mut key = event_key(session, event_id);
    key.push(0);
    key.extend_from_slice(&rank.to_be_bytes());
    key
}

/// `Version::short`'s hex digits back to bytes; `None` when they are not an even run of hex.
fn hex_bytes(short: &str) -> Option<Vec<u8>> {
    if short.is_empty() || !short.len().is_multiple_of(2) || short.len() > 64 {
        return None;
    }
    (0..short.len()).step_by(2).map(|i| u8::from_str_radix(short.get(i..i + 2)?, 16).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::super::record;
    use super::*;
    use crate::engine::{CallInfo, CallState, Direction, Phase};

    fn state(session: &str) -> CallState {
        let r = record::SessionRecord::from_state(&CallState {
            machine: "m".into(),
            version: Version([3; 32]),
            call: CallInfo {
                session_id: session.into(),
                direction: Direction::Inbound,
                source: "+6591178965".into(),
                destination: "+6568888888".into(),
                call_id: None,
            },
            node: crate::machine::NodeId::new(1),
            phase: Phase::AwaitingInput,
            tries: 0,
            seq: 1,
            path: vec![crate::machine::NodeId::new(1)],
            keypress: None,
            vars: Default::default(),
            outcome: None,
            closed: false,
            started_ms: 1,
            updated_ms: 2,
        });
        r.to_state(session).unwrap()
    }

    /// A store written by a phonetree of format 2 (replies in a tree of their own) opens: every
    /// session keeps its state, its latest replies answer duplicates, older events are known.
    #[tokio::test]
    async fn a_format_2_store_is_migrated_on_open() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = sled::open(dir.path()).unwrap();
            let sessions = db.open_tree("sessions").unwrap();
            let replies = db.open_tree("replies").unwrap();
            let mut v2 = record::SessionRecord::from_state(&state("s1"));
            v2.v = 2;
            sessions.insert("s1", encode("session", &v2).unwrap()).unwrap();
            for (at, event) in [(3u64, "e3"), (1, "e1"), (2, "e2")] {
                let reply =
                    ReplyRecord { v: 2, at, body: record::Blob(format!("reply {event}").into_bytes()) };
                replies.insert(event_key("s1", event), encode("reply", &reply).unwrap()).unwrap();
            }
            db.flush().unwrap();
        }
        let store = SledStore::open(dir.path()).unwrap();
        let got = store.load("s1", Some("e3")).await.unwrap();
        assert_eq!(got.session.unwrap().state, state("s1"));
        assert_eq!(got.replied, Some(super::super::Journaled::Reply(b"reply e3".to_vec())));
        let e1 = store.load("s1", Some("e1")).await.unwrap().replied;
        assert_eq!(e1, Some(super::super::Journaled::Forgotten), "older than REPLIES_KEPT = 2");
        assert!(!store.db.tree_names().iter().any(|n| n.as_ref() == b"replies"));
        assert_eq!(store.session_count().await.unwrap(), 1);
    }

    #[test]
    fn short_versions_decode_to_their_bytes() {
        assert_eq!(hex_bytes("0a0bff"), Some(vec![10, 11, 255]));
        assert_eq!(hex_bytes("0a0"), None);
        assert_eq!(hex_bytes("zz"), None);
        assert_eq!(hex_bytes(""), None);
    }
}
