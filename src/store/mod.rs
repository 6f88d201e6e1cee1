//! The store: what a node keeps of its calls, behind the one narrow `Store` trait the node uses.
//!
//! A backend (today `sled`) owns its records and their encoding; nothing outside `src/store/`
//! sees either. The promises every backend keeps, checked by one conformance suite
//! (`tests/store.rs`):
//! - `commit` writes a session's state and the reply to one event at once, only if the session is
//!   still at the revision it was loaded at, and returns once both are durable;
//! - the reply to an event is kept (a bounded journal of a session's latest replies), so a
//!   duplicate delivery is answered with the same bytes; an event older than the journal is known
//!   as `Journaled::Forgotten`, never applied again;
//! - every record carries a format version; a record of an unknown format is an error, not a guess.

mod record;
mod sled;

use std::future::Future;
use std::pin::Pin;

use crate::callflow::SessionSummary;
use crate::engine::{Answer, CallState, Request};
use crate::machine::Version;

pub use self::sled::{CACHE_BYTES_MAX, Durability, FLUSH_QUEUE_MAX, LOCK_WAIT_MAX, SledStore};
pub use record::{EVENT_IDS_KEPT, RECORD_DEPTH_MAX, REPLIES_KEPT, decode_session, encode_session};

/// Most sessions one `scan` returns: sweeps walk the store in pages this size, so no call holds
/// a thread for long however many sessions are stored.
pub const SCAN_PAGE_MAX: usize = 1024;

/// A backend's answer, later: every method may wait on disk or on a database.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store: {0}")]
    Sled(#[from] ::sled::Error),
    #[error("store: cannot decode {what} `{key}`: {detail}")]
    Decode { what: &'static str, key: String, detail: String },
    #[error("store: cannot encode {what}: {detail}")]
    Encode { what: &'static str, detail: String },
    #[error("store: fsync failed: {0}")]
    Flush(String),
    #[error("store: the fsync thread has stopped")]
    FlusherGone,
    #[error("store: cannot migrate {dir} from format {from}: {detail}")]
    Migrate { dir: String, from: u8, detail: String },
}

/// Where a session was when it was loaded; `commit` applies only if it is still there. Opaque:
/// each backend decides what it holds (sled: the record's bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revision(Vec<u8>);

/// A session as loaded: its state and its revision.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub state: CallState,
    pub rev: Revision,
}

/// What the journal knows of one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Journaled {
    /// The event was answered with these bytes.
    Reply(Vec<u8>),
    /// The event was applied, but its reply is older than the journal keeps.
    Forgotten,
}

/// One `load`: the session, and what its journal knows of the event being answered.
#[derive(Debug, Clone, Default)]
pub struct Lookup {
    pub session: Option<Loaded>,
    pub replied: Option<Journaled>,
}

/// A state to write, with the reply to the event that led to it (none for writes that answer no
/// webhook: an outbound call placed, a summary, an expiry).
#[derive(Debug, Clone, Copy)]
pub struct Commit<'a> {
    pub session: &'a str,
    /// The revision it was loaded at; `None`: the session must not exist yet.
    pub expected: Option<&'a Revision>,
    pub state: &'a CallState,
    /// (event id, reply bytes).
    pub reply: Option<(&'a str, &'a [u8])>,
}

/// How a commit ended; `Changed` is an expected outcome, not an error: reload and decide again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Committed {
    /// Written and durable.
    Done,
    /// Another request changed the session since it was loaded; nothing was written.
    Changed,
}

/// A machine's source, kept under its version so a call can finish on the version it began on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMachine {
    pub name: String,
    pub file: String,
    pub text: String,
}

/// A session summary as stored, with when it arrived.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredSummary {
    pub received_ms: u64,
    pub summary: SessionSummary,
}

/// One page of sessions, in id order: each with its state or why it cannot be read.
pub struct Page {
    pub sessions: Vec<(String, Result<Loaded, StoreError>)>,
    /// Where the next page starts; `None` after the last page.
    pub next: Option<String>,
}

/// Everything a node keeps. Methods that write return once the write is durable, except the
/// script cache (`put_cached`), which may be lost in a crash and asked again.
pub trait Store: Send + Sync {
    /// The session, and what its journal knows of `event_id`.
    fn load<'a>(&'a self, session: &'a str, event_id: Option<&'a str>) -> StoreFuture<'a, Lookup>;
    /// Writes a state (and a reply) if the session is still at `expected`; durable on `Done`.
    fn commit<'a>(&'a self, commit: Commit<'a>) -> StoreFuture<'a, Committed>;

    /// The script answers journaled for one webhook, in order (empty when none were).
    fn answers<'a>(&'a self, session: &'a str, event_id: &'a str) -> StoreFuture<'a, Vec<Answer>>;
    /// Journals every script answer of one webhook so far; durable on return.
    fn put_answers<'a>(
        &'a self,
        session: &'a str,
        event_id: &'a str,
        answers: &'a [Answer],
    ) -> StoreFuture<'a, ()>;
    /// A cached answer to `request` still valid at `now_ms`.
    fn cached<'a>(&'a self, request: &'a Request, now_ms: u64) -> StoreFuture<'a, Option<Answer>>;
    /// Caches `answer` for the request's `cache_minutes` (nothing when it has none).
    fn put_cached<'a>(&'a self, request: &'a Request, answer: &'a Answer, now_ms: u64)
    -> StoreFuture<'a, ()>;

    /// Keeps a session summary; durable on return.
    fn put_summary<'a>(&'a self, summary: &'a SessionSummary, received_ms: u64) -> StoreFuture<'a, ()>;
    fn summary<'a>(&'a self, session: &'a str) -> StoreFuture<'a, Option<StoredSummary>>;

    /// Keeps a machine's source under its version (idempotent); durable on return.
    fn put_machine<'a>(&'a self, version: Version, machine: &'a StoredMachine) -> StoreFuture<'a, ()>;
    fn machine(&self, version: Version) -> StoreFuture<'_, Option<StoredMachine>>;
    /// The stored version of machine `name` whose short form (`Version::short`) is `short`.
    fn machine_by_short<'a>(
        &'a self,
        name: &'a str,
        short: &'a str,
    ) -> StoreFuture<'a, Option<(Version, StoredMachine)>>;

    /// At most `limit` (≤ `SCAN_PAGE_MAX`) sessions whose ids come after `after`, in id order.
    fn scan<'a>(&'a self, after: Option<&'a str>, limit: usize) -> StoreFuture<'a, Page>;
    /// Deletes a session with everything kept for it (journal, answers, summary).
    fn remove_session<'a>(&'a self, session: &'a str) -> StoreFuture<'a, ()>;
    /// Deletes the cached answers past their time; returns how many. (The cache holds one entry
    /// per distinct request within its `cache_minutes`, so a walk of it is short.)
    fn expire_cache(&self, now_ms: u64) -> StoreFuture<'_, usize>;

    /// How many sessions are stored (for readiness and logs; may be approximate).
    fn session_count(&self) -> StoreFuture<'_, u64>;
    /// Writes and reads back a probe: the store is writable.
    fn probe(&self, now_ms: u64) -> StoreFuture<'_, ()>;
    /// Returns once every write made before the call is durable.
    fn flush(&self) -> StoreFuture<'_, ()>;
}
