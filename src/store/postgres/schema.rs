//! The PostgreSQL schema: an ordered list of migration steps built into the binary, applied at
//! open under a row lock so that nodes starting together migrate once.
//!
//! Portable SQL only (TEXT, BYTEA, BIGINT, INT, BOOLEAN, `ON CONFLICT`, `FOR UPDATE`), so that
//! CockroachDB and YugabyteDB serve as well as PostgreSQL. Every table is unqualified: it lives in
//! the first schema of the connection's `search_path`.

use std::time::Duration;

use deadpool_postgres::Pool;

use super::super::StoreError;
use super::connect::{detail, pool_detail};

/// The migration steps, oldest first: step `i` takes the schema from version `i` to `i + 1`. A
/// released step is never edited, only followed by new ones.
pub const MIGRATIONS: &[&str] = &[
    // 1: sessions and everything kept for them.
    "
    -- One row per call: the versioned MessagePack session record (`record::SessionRecord`, with
    -- an empty journal) and the revision `commit` compares and swaps. `replies` counts the
    -- replies given, numbering them in `phonetree_replies.n`.
    CREATE TABLE IF NOT EXISTS phonetree_sessions (
        id TEXT PRIMARY KEY,
        rev BIGINT NOT NULL,
        replies BIGINT NOT NULL,
        state BYTEA NOT NULL,
        updated_ms BIGINT NOT NULL,
        closed BOOLEAN NOT NULL
    );
    -- Every reply given, kept until its session is removed; the key is what makes an event
    -- answered once, whichever node answers it.
    CREATE TABLE IF NOT EXISTS phonetree_replies (
        session TEXT NOT NULL,
        event_id TEXT NOT NULL,
        n BIGINT NOT NULL,
        body BYTEA NOT NULL,
        PRIMARY KEY (session, event_id)
    );
    CREATE TABLE IF NOT EXISTS phonetree_answers (
        session TEXT NOT NULL,
        event_id TEXT NOT NULL,
        record BYTEA NOT NULL,
        PRIMARY KEY (session, event_id)
    );
    CREATE TABLE IF NOT EXISTS phonetree_cache (
        key BYTEA PRIMARY KEY,
        until_ms BIGINT NOT NULL,
        record BYTEA NOT NULL
    );
    CREATE INDEX IF NOT EXISTS phonetree_cache_until ON phonetree_cache (until_ms);
    CREATE TABLE IF NOT EXISTS phonetree_summaries (
        session TEXT PRIMARY KEY,
        record BYTEA NOT NULL
    );
    CREATE TABLE IF NOT EXISTS phonetree_machines (
        version BYTEA PRIMARY KEY,
        short TEXT NOT NULL,
        name TEXT NOT NULL,
        record BYTEA NOT NULL
    );
    CREATE INDEX IF NOT EXISTS phonetree_machines_name_short ON phonetree_machines (name, short);
    CREATE TABLE IF NOT EXISTS phonetree_meta (
        key TEXT PRIMARY KEY,
        value BYTEA NOT NULL
    );
    ",
    // 2: events a session remembers only by hash.
    "
    -- The hashes (`record::event_hash`, 8 bytes each, oldest first) of events older than the
    -- session's replies that a store copied from does not know by id (sled remembers older events
    -- by hash only): `load` answers them as forgotten. NULL for a session made here.
    ALTER TABLE phonetree_sessions ADD COLUMN IF NOT EXISTS forgotten BYTEA;
    ",
    // 3: call history.
    "
    -- Each session's transcript (`record::EntryRecord`, versioned), numbered from 1, at most
    -- `transcript::ENTRIES_MAX` per session; written in the transaction that commits the event.
    CREATE TABLE IF NOT EXISTS phonetree_transcripts (
        session TEXT NOT NULL,
        n BIGINT NOT NULL,
        record BYTEA NOT NULL,
        PRIMARY KEY (session, n)
    );
    ",
    // 4: claims on script requests.
    "
    -- One row per script request of one webhook (session, event id, rank of the request in the
    -- webhook's step), inserted and committed before the request is made: the key lets one
    -- delivery of the event, on one node, make the request. `record` is a versioned
    -- `record::ClaimRecord` (the opening that claimed it, and until when it waits).
    CREATE TABLE IF NOT EXISTS phonetree_claims (
        session TEXT NOT NULL,
        event_id TEXT NOT NULL,
        rank INT NOT NULL,
        record BYTEA NOT NULL,
        PRIMARY KEY (session, event_id, rank)
    );
    ",
    // 5: the outbound guard's rate limits.
    "
    -- One row per token bucket (`store::Bucket`: `overall`, `to:+6598888888`), shared by every
    -- node: `record` is a versioned `record::RateRecord` (when the bucket is full again), `tat_ms`
    -- the same time, for the sweep that deletes full buckets.
    CREATE TABLE IF NOT EXISTS phonetree_rates (
        key TEXT PRIMARY KEY,
        tat_ms BIGINT NOT NULL,
        record BYTEA NOT NULL
    );
    CREATE INDEX IF NOT EXISTS phonetree_rates_tat ON phonetree_rates (tat_ms);
    ",
    // 6: callers' interrupted calls, for the resume offer.
    "
    -- One row per caller and machine (`store::Unfinished`): `key` is the SHA-256 of the machine's
    -- name and the caller's number (`record::unfinished_key`), `record` a versioned
    -- `record::UnfinishedRecord`, `ended_ms` when the call ended, for the retention sweep.
    CREATE TABLE IF NOT EXISTS phonetree_unfinished (
        key BYTEA PRIMARY KEY,
        ended_ms BIGINT NOT NULL,
        record BYTEA NOT NULL
    );
    CREATE INDEX IF NOT EXISTS phonetree_unfinished_ended ON phonetree_unfinished (ended_ms);
    ",
    // 7: callbacks scheduled by unanswered transfers (`record::ScheduledRecord`); `state`,
    // `due_ms`, `session` and `updated_ms` are the record's, kept as columns for the claim
    // (`FOR UPDATE SKIP LOCKED`), the summary's lookup and the retention.
    "
    CREATE TABLE IF NOT EXISTS phonetree_scheduled (
        id TEXT PRIMARY KEY,
        state TEXT NOT NULL,
        due_ms BIGINT NOT NULL,
        session TEXT,
        updated_ms BIGINT NOT NULL,
        record BYTEA NOT NULL
    );
    CREATE INDEX IF NOT EXISTS phonetree_scheduled_due ON phonetree_scheduled (state, due_ms);
    CREATE INDEX IF NOT EXISTS phonetree_scheduled_session ON phonetree_scheduled (session);
    ",
];

/// The schema version this phonetree writes and reads.
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

/// How often creating the version table is tried again when another node created it at the same
/// moment (PostgreSQL's `CREATE TABLE IF NOT EXISTS` is not atomic against a concurrent one).
const CREATE_RACE_TRIES: u32 = 5;
/// The pause between those tries.
const CREATE_RACE_PAUSE: Duration = Duration::from_millis(50);

/// Brings the schema up to `SCHEMA_VERSION`; returns the version it is at. Refuses a schema newer
/// than this phonetree knows.
pub async fn migrate(pool: &Pool) -> Result<u32, StoreError> {
    let failed = |doing: &str| {
        let doing = doing.to_string();
        move |e: tokio_postgres::Error| StoreError::Postgres { doing, detail: detail(&e) }
    };
    let mut client = pool.get().await.map_err(|e| StoreError::Postgres {
        doing: "connect".into(),
        detail: pool_detail(&e, super::POOL_WAIT_MAX),
    })?;
    let mut tries = 0;
    loop {
        tries += 1;
        let created = client
            .batch_execute(
                "CREATE TABLE IF NOT EXISTS phonetree_schema (id INT PRIMARY KEY, version INT NOT NULL);
                 INSERT INTO phonetree_schema (id, version) VALUES (1, 0) ON CONFLICT DO NOTHING;",
            )
            .await;
        match created {
            Ok(()) => break,
            Err(e) if tries < CREATE_RACE_TRIES && is_race(&e) => tokio::time::sleep(CREATE_RACE_PAUSE).await,
            Err(e) => return Err(failed("create the schema version table")(e)),
        }
    }
    let tx = client.transaction().await.map_err(failed("begin the migration"))?;
    // The row lock: a second node waits here until the first has committed, then finds nothing
    // left to do.
    let row = tx
        .query_one("SELECT version FROM phonetree_schema WHERE id = 1 FOR UPDATE", &[])
        .await
        .map_err(failed("read the schema version"))?;
    let found: i32 = row.try_get(0).map_err(failed("read the schema version"))?;
    let found = u32::try_from(found).unwrap_or(u32::MAX);
    if found > SCHEMA_VERSION {
        return Err(StoreError::SchemaTooNew { found, known: SCHEMA_VERSION });
    }
    for (i, step) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        tx.batch_execute(step).await.map_err(failed(&format!("apply schema migration {}", i + 1)))?;
    }
    if found < SCHEMA_VERSION {
        tx.execute("UPDATE phonetree_schema SET version = $1 WHERE id = 1", &[&(SCHEMA_VERSION as i32)])
            .await
            .map_err(failed("record the schema version"))?;
        tracing::info!(from = found, to = SCHEMA_VERSION, "postgres schema migrated");
    }
    tx.commit().await.map_err(failed("commit the migration"))?;
    Ok(SCHEMA_VERSION)
}

/// A concurrent `CREATE TABLE IF NOT EXISTS` lost the race: the catalog's unique index
/// (23505), "already exists" (42P07), the table's row type already made by the other (42710:
/// `type "phonetree_schema" already exists`, seen with nodes starting together), or a
/// serialization failure (40001, CockroachDB).
fn is_race(e: &tokio_postgres::Error) -> bool {
    use tokio_postgres::error::SqlState;
    e.code().is_some_and(|c| {
        [
            SqlState::UNIQUE_VIOLATION,
            SqlState::DUPLICATE_TABLE,
            SqlState::DUPLICATE_OBJECT,
            SqlState::T_R_SERIALIZATION_FAILURE,
        ]
        .contains(c)
    })
}
