//! The store: what a node keeps of its calls, behind the one narrow `Store` trait the node uses.
//!
//! A backend (`sled`, embedded; `postgres`, shared by every node) owns its records and their
//! encoding; nothing outside `src/store/` sees either. `open` picks one by URL (`sled:PATH`,
//! `postgres://…`). The promises every backend keeps, checked by one conformance suite
//! (`tests/store.rs`):
//! - `commit` writes a session's state and the reply to one event at once, only if the session is
//!   still at the revision it was loaded at and the event has no reply yet, and returns once both
//!   are durable;
//! - the reply to an event is kept (at least a session's latest `REPLIES_KEPT` replies with their
//!   bytes), so a duplicate delivery is answered with the same bytes; an older event is known as
//!   `Journaled::Forgotten` (sled: for `EVENT_IDS_KEPT` more events; postgres: until the session
//!   is removed), never applied again;
//! - a script request of one event is claimed (`claim`) durably before it is made, and a claim is
//!   won once: a request is made at most once per store, whichever delivery of the event, on
//!   whichever node, comes first; a claim left by a delivery that cannot answer any more is
//!   `Claim::Lapsed` (sled: made by an earlier opening of the folder, whose process stopped;
//!   either: past the time its claimant waits);
//! - every record carries a format version; a record of an unknown format is an error, not a guess;
//! - a session `export`ed from one backend and `import`ed into another answers `load` there as it
//!   did here (`copy` moves a whole store so, for `phonetree store copy`).

mod copy;
mod postgres;
mod record;
mod sled;

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use metrics::{Unit, describe_histogram};

use crate::callflow::SessionSummary;
use crate::engine::transcript::Entry;
use crate::engine::{Answer, CallState, Request};
use crate::machine::Version;

pub use self::copy::{COPY_PAGE, Copied, CopyError, IMPORTS_IN_FLIGHT, KeyCopied, copy};
pub use self::postgres::{
    APPLICATION_NAME, CACHE_EXPIRE_BATCH, CONNECT_TIMEOUT, MIGRATIONS, OPERATION_TIMEOUT, POOL_SIZE_MAX,
    POOL_WAIT_MAX, PgStore, PgUrl, SCHEMA_VERSION, SESSION_COUNT_REFRESH,
};
pub use self::sled::BATCH_WRITES;
pub use self::sled::{CACHE_BYTES_MAX, Durability, FLUSH_QUEUE_MAX, LOCK_WAIT_MAX, SledStore};
use self::sled::{DURABILITY_WAIT_SECONDS, FSYNC_SECONDS};
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
    #[error("store: postgres: cannot {doing}: {detail}")]
    Postgres { doing: String, detail: String },
    /// A store URL that cannot be used; `url` is shown with its password redacted.
    #[error("store: bad store url `{url}`: {detail}")]
    Url { url: String, detail: String },
    #[error(
        "store: postgres: the database's schema is version {found}, newer than this phonetree's \
         ({known}): run a phonetree at least as new as the one that migrated it"
    )]
    SchemaTooNew { found: u32, known: u32 },
}

impl StoreError {
    /// True when every later operation will fail too, whatever is fixed outside: sled keeps the
    /// first I/O error (a full disk, a failed fsync) and refuses all work after it, so only
    /// reopening the store helps. A PostgreSQL error never is: the pool reconnects.
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            StoreError::Sled(
                ::sled::Error::Io(_) | ::sled::Error::Corruption { .. } | ::sled::Error::ReportableBug(_)
            ) | StoreError::Flush(_)
                | StoreError::FlusherGone
        )
    }
}

impl StoreError {
    /// True when the store's disk is full (ENOSPC, or a quota reached): waiting for space to be
    /// freed may help, unlike most other errors of opening a store.
    pub fn is_disk_full(&self) -> bool {
        match self {
            StoreError::Sled(::sled::Error::Io(e)) => {
                matches!(e.kind(), std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded)
                    || e.raw_os_error() == Some(ENOSPC)
            }
            _ => false,
        }
    }
}

/// Linux's "no space left on device", for an I/O error whose kind the standard library does not
/// name.
const ENOSPC: i32 = 28;

/// Where a session was when it was loaded; `commit` applies only if it is still there. Opaque:
/// each backend decides what it holds (sled: the record's bytes, and the record as decoded from
/// them, so that a commit need not decode them again; postgres: the row's revision number).
/// Revisions are equal when their bytes are.
#[derive(Debug, Clone)]
pub struct Revision(Vec<u8>, Option<Arc<record::SessionRecord>>);

impl PartialEq for Revision {
    fn eq(&self, other: &Revision) -> bool {
        self.0 == other.0
    }
}

impl Eq for Revision {}

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

/// What `claim` found for one script request of one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// This delivery made the claim: it alone makes the request.
    Won,
    /// Another delivery made it and may still be waiting for the API, until `until_ms`: its
    /// answer is journaled (`put_answers`) when it comes.
    Held { until_ms: u64 },
    /// Another delivery made it and will answer no more (its process stopped mid-request, or its
    /// time is past): the request may have reached the API, so it is never made again.
    Lapsed,
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
    /// The transcript entries of the events applied (one, or two when the outbound guard refused
    /// the transfer the event reached), appended in the same write (dropped once the session's
    /// transcript holds `transcript::ENTRIES_MAX`).
    pub entries: &'a [Entry],
    /// A scheduled call written (added, or replaced by its id) in the same durable write: the
    /// callback a summary's unanswered transfer asks for, the next attempt of one, or (with the
    /// new session of the call placed for it) one just sent, found by that session from then on.
    pub schedule: Option<&'a Scheduled>,
    /// The session summary that ends the call (with when it was received), kept by the same
    /// commit and made durable with it: a summary costs one durable write, not two.
    pub summary: Option<(&'a SessionSummary, u64)>,
    /// How long the commit may wait for the database where the store bounds its waits (a free
    /// connection, the session's row while another request holds it, the commit itself), never
    /// less than the store's own bound (`None`: that bound). A webhook gives what is left of its
    /// deadline, so that a duplicate waiting on a slow first delivery's transaction is not failed
    /// sooner than the webhook must be. sled does not wait on the database.
    pub wait: Option<Duration>,
}

/// Most scheduled calls one `scheduled` lists (the first by due time): the sweep deletes the
/// finished ones past the retention, and the pending ones are due within a week or so.
pub const SCHEDULED_LIST_MAX: usize = 1000;

/// Where a scheduled call is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScheduledState {
    /// Waiting for its time.
    Pending,
    /// Claimed by a node, which is sending it: never claimed again, even if that node stopped
    /// before or after sending it (a call is placed at most once).
    Sending,
    /// Placed (`session` is 8x8's id of the call): waiting for its summary.
    Sent,
    /// Answered, or its attempts ran out, or it could not be placed (`note` says why).
    Done,
    /// Cancelled by an operator before it was sent.
    Cancelled,
}

impl ScheduledState {
    pub fn as_str(self) -> &'static str {
        match self {
            ScheduledState::Pending => "pending",
            ScheduledState::Sending => "sending",
            ScheduledState::Sent => "sent",
            ScheduledState::Done => "done",
            ScheduledState::Cancelled => "cancelled",
        }
    }

    pub fn parse(text: &str) -> Option<ScheduledState> {
        [
            ScheduledState::Pending,
            ScheduledState::Sending,
            ScheduledState::Sent,
            ScheduledState::Done,
            ScheduledState::Cancelled,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }
}

/// A callback to a caller whose transfer was not answered (a transfer's `on_unanswered`), one
/// record through all its attempts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scheduled {
    /// `cb-` and the session whose transfer was not answered: one callback per call.
    pub id: String,
    pub origin: String,
    /// The machine the callback runs.
    pub machine: String,
    /// The caller, called back.
    pub to: String,
    /// When it may be placed (ms since the epoch).
    pub due_ms: u64,
    /// When 8x8 stops trying to place it (`validUntil`).
    pub valid_until_ms: u64,
    /// The attempt it is (1 for the first callback).
    pub attempt: u8,
    pub attempts: u8,
    /// The machine version and transfer node whose `on_unanswered` it follows (for the next
    /// attempt's time).
    pub from_machine: String,
    pub from_version: Version,
    pub node: String,
    pub state: ScheduledState,
    /// The session of the call placed for the latest attempt.
    pub session: Option<String>,
    /// Why it is done, or what the last attempt gave.
    pub note: Option<String>,
    pub updated_ms: u64,
}

/// What `cancel_scheduled` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cancelled {
    Done(Scheduled),
    /// It is not pending (sent, being sent, done, cancelled): left as it is.
    NotPending(Scheduled),
    Unknown,
}

/// One token bucket of the outbound guard's rate limits, kept in the store (shared by the nodes of
/// a store, surviving restarts) as its theoretical arrival time (GCRA): full once the time is
/// past; each token moves it `interval_ms` later; empty while it is more than `tolerance_ms`
/// ahead of now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bucket<'a> {
    /// What the bucket limits (`overall`, `to:+6598888888`).
    pub key: &'a str,
    /// Milliseconds one token takes to come back.
    pub interval_ms: u64,
    /// How far ahead of now the bucket may run: `(burst - 1)` intervals.
    pub tolerance_ms: u64,
}

impl Bucket<'_> {
    /// The bucket's new time when a token is taken at `now_ms` from a bucket at `tat_ms`, or how
    /// many milliseconds until one is there.
    pub fn take(&self, tat_ms: u64, now_ms: u64) -> Result<u64, u64> {
        let tat = tat_ms.max(now_ms);
        let ahead = tat.saturating_sub(now_ms);
        if ahead > self.tolerance_ms {
            return Err(ahead.saturating_sub(self.tolerance_ms));
        }
        Ok(tat.saturating_add(self.interval_ms))
    }
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
    /// The modules it was compiled with, each module file once: a version that uses modules
    /// compiles again from these, whatever the modules folder holds by then. Empty in a record of
    /// format 6 or older (kept before modules were).
    pub modules: Vec<StoredModule>,
}

/// A module file's source, kept with each machine version that uses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredModule {
    pub file: String,
    pub text: String,
}

/// The key a caller's interrupted call on a machine is kept under: the SHA-256 of the machine's
/// name and the caller's number, so that the store names no caller (and `store copy` moves the
/// record without ever knowing whose it is).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CallerKey(pub [u8; 32]);

impl CallerKey {
    pub fn of(machine: &str, caller: &str) -> CallerKey {
        CallerKey(record::unfinished_key(machine, caller))
    }

    /// A key as a backend stored it: 32 bytes, else an error naming the record.
    fn stored(raw: &[u8]) -> Result<CallerKey, StoreError> {
        <[u8; 32]>::try_from(raw).map(CallerKey).map_err(|_| StoreError::Decode {
            what: "interrupted call",
            key: String::from_utf8_lossy(raw).into_owned(),
            detail: format!("a key of {} bytes, not 32", raw.len()),
        })
    }

    /// The key in hex, as errors name a record.
    pub fn hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// A caller's interrupted call on a machine, kept (one per caller and machine, the latest) for the
/// resume offer of their next call: where it waited, with its call variables then (never sensitive
/// ones). Stored under a hash of the machine's name and the caller's number, never the number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unfinished {
    pub machine: String,
    pub version: Version,
    /// The node it waited at.
    pub node: String,
    pub vars: std::collections::BTreeMap<String, String>,
    /// The interrupted call's session id.
    pub session: String,
    /// When it ended (ms since the epoch): the resume window counts from it, the retention too.
    pub ended_ms: u64,
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

/// One event of a session's reply journal, as `export` reads it and `import` writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JournalEntry {
    /// An event answered with these bytes, which a duplicate delivery gets again.
    Replied { event_id: String, body: Vec<u8> },
    /// An event applied whose reply is no longer given again (`Journaled::Forgotten`).
    Forgotten { event_id: String },
    /// The same, for an event remembered only by a 64-bit hash of its id (sled forgets the ids of
    /// older events); a backend that keeps ids keeps these hashes beside them.
    ForgottenHash(u64),
}

/// Everything a store keeps of one session: what a copy to another store needs so that the
/// session answers there as it did here.
#[derive(Debug, Clone, PartialEq)]
pub struct Exported {
    pub session: String,
    pub state: CallState,
    /// The reply journal, oldest first: the replies a duplicate still gets (the latest
    /// `REPLIES_KEPT`, or all the backend serves), then nothing but the older events it knows.
    pub journal: Vec<JournalEntry>,
    /// The script answers journaled per webhook, by event id.
    pub answers: Vec<(String, Vec<Answer>)>,
    /// The script requests claimed (`Store::claim`), by event id and rank, in that order: imported
    /// as lapsed (whoever claimed them is gone), so a request in flight when its node stopped is
    /// not made again after a copy.
    pub claims: Vec<(String, u32)>,
    pub summary: Option<StoredSummary>,
    /// The call's transcript, oldest first.
    pub transcript: Vec<Entry>,
}

/// One page of exported sessions, in id order: each, or why it cannot be read.
pub struct ExportPage {
    pub sessions: Vec<(String, Result<Exported, StoreError>)>,
    /// Where the next page starts; `None` after the last page.
    pub next: Option<String>,
}

/// One page of summaries of sessions that have no state, in session id order.
pub struct SummaryPage {
    pub summaries: Vec<StoredSummary>,
    /// Where the next page starts; `None` after the last page.
    pub next: Option<String>,
}

/// Everything a node keeps. Methods that write return once the write is durable, except the
/// script cache (`put_cached`), which may be lost in a crash and asked again.
pub trait Store: Send + Sync {
    /// The session, and what its journal knows of `event_id`.
    fn load<'a>(&'a self, session: &'a str, event_id: Option<&'a str>) -> StoreFuture<'a, Lookup>;
    /// Writes a state (and a reply) if the session is still at `expected` and the reply's event
    /// has none yet (else `Changed`: reload, and find the reply); durable on `Done`.
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
    /// Claims script request `rank` of one event for this delivery, before the request is made;
    /// `until_ms`: when this delivery stops waiting for its answer. `Won` is durable on return,
    /// and is given to one delivery only; any other gets `Held` or `Lapsed` (judged at `now_ms`).
    fn claim<'a>(
        &'a self,
        session: &'a str,
        event_id: &'a str,
        rank: u32,
        until_ms: u64,
        now_ms: u64,
    ) -> StoreFuture<'a, Claim>;
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
    /// The transcript of a session, oldest first (empty for a session the store does not have).
    fn transcript<'a>(&'a self, session: &'a str) -> StoreFuture<'a, Vec<Entry>>;
    /// Deletes a session with everything kept for it (journal, answers, claims, summary,
    /// transcript).
    fn remove_session<'a>(&'a self, session: &'a str) -> StoreFuture<'a, ()>;
    /// Deletes the cached answers past their time; returns how many. (The cache holds one entry
    /// per distinct request within its `cache_minutes`, so a walk of it is short.)
    fn expire_cache(&self, now_ms: u64) -> StoreFuture<'_, usize>;

    /// At most `limit` (≤ `SCAN_PAGE_MAX`) sessions whose ids come after `after`, in id order,
    /// each with everything kept for it (`store::copy`; a node never calls it).
    fn export<'a>(&'a self, after: Option<&'a str>, limit: usize) -> StoreFuture<'a, ExportPage>;
    /// Writes an exported session with everything kept for it, all at once, so that it answers
    /// `load` as it did where it was exported; `Changed` (nothing written) when the session
    /// exists. Durable on `Done`.
    fn import<'a>(&'a self, session: &'a Exported) -> StoreFuture<'a, Committed>;
    /// Every stored machine version (one per edit of a machine file: a short list).
    fn machines(&self) -> StoreFuture<'_, Vec<(Version, StoredMachine)>>;
    /// At most `limit` (≤ `SCAN_PAGE_MAX`) summaries of sessions that have no state (a summary of
    /// a call this store never saw), whose session ids come after `after`, in id order.
    fn lone_summaries<'a>(&'a self, after: Option<&'a str>, limit: usize) -> StoreFuture<'a, SummaryPage>;

    /// The key `clientActionId`s are signed with, shared by every node of the store: the one kept,
    /// else `fresh` (a random key the caller made), kept now, durably. Atomic: nodes starting at
    /// once all get the key the first of them kept. `fresh: None` only reads (`None`: no key yet).
    fn action_key(&self, fresh: Option<[u8; 32]>) -> StoreFuture<'_, Option<[u8; 32]>>;

    /// Takes a token from every one of `buckets` at `now_ms`, or from none: `Ok(Ok(()))` taken
    /// (durable on return), `Ok(Err((i, wait_ms)))` bucket `i` is empty for `wait_ms` more.
    /// Atomic across the nodes of the store.
    fn take_tokens<'a>(
        &'a self,
        buckets: &'a [Bucket<'a>],
        now_ms: u64,
    ) -> StoreFuture<'a, Result<(), (usize, u64)>>;
    /// Deletes the rate records of buckets full again at `now_ms` (the same as none); returns how
    /// many.
    fn expire_rates(&self, now_ms: u64) -> StoreFuture<'_, usize>;

    /// The interrupted call of `caller` on `machine` kept by `put_unfinished`, if any.
    fn unfinished<'a>(&'a self, machine: &'a str, caller: &'a str) -> StoreFuture<'a, Option<Unfinished>>;
    /// Keeps `call` as `caller`'s interrupted call on its machine, replacing any; durable on return.
    fn put_unfinished<'a>(&'a self, caller: &'a str, call: &'a Unfinished) -> StoreFuture<'a, ()> {
        self.put_unfinished_at(CallerKey::of(&call.machine, caller), call)
    }
    /// Keeps `call` under `key`, replacing any; durable on return (`store copy`, which has the
    /// key and never the caller).
    fn put_unfinished_at<'a>(&'a self, key: CallerKey, call: &'a Unfinished) -> StoreFuture<'a, ()>;
    /// At most `limit` (≤ `SCAN_PAGE_MAX`) interrupted calls whose keys come after `after`, in key
    /// order (`store copy`).
    fn unfinished_page(
        &self,
        after: Option<CallerKey>,
        limit: usize,
    ) -> StoreFuture<'_, Vec<(CallerKey, Unfinished)>>;
    /// Forgets `caller`'s interrupted call on `machine` (none kept is no error); durable on return.
    fn remove_unfinished<'a>(&'a self, machine: &'a str, caller: &'a str) -> StoreFuture<'a, ()>;
    /// Deletes the interrupted calls that ended before `before_ms`; returns how many.
    fn expire_unfinished(&self, before_ms: u64) -> StoreFuture<'_, usize>;
    /// The scheduled calls kept, by due time (the first `SCHEDULED_LIST_MAX`).
    fn scheduled(&self) -> StoreFuture<'_, Vec<Scheduled>>;
    /// At most `limit` (≤ `SCAN_PAGE_MAX`) scheduled calls whose ids come after `after`, in id
    /// order, whatever their state (`store copy`).
    fn scheduled_page<'a>(&'a self, after: Option<&'a str>, limit: usize) -> StoreFuture<'a, Vec<Scheduled>>;
    /// Deletes the scheduled calls not pending whose last change is before `before_ms` (finished,
    /// cancelled, or sent or being sent with no summary since); returns how many.
    fn expire_scheduled(&self, before_ms: u64) -> StoreFuture<'_, usize>;
    /// Claims the pending call due first at `now_ms`, if one is: marks it `Sending` durably and
    /// returns it. Atomic across the nodes of a store: each call is claimed once.
    fn claim_scheduled(&self, now_ms: u64) -> StoreFuture<'_, Option<Scheduled>>;
    /// Writes a scheduled call (by id); durable on return.
    fn put_scheduled<'a>(&'a self, call: &'a Scheduled) -> StoreFuture<'a, ()>;
    /// The scheduled call whose latest attempt placed `session`.
    fn scheduled_by_session<'a>(&'a self, session: &'a str) -> StoreFuture<'a, Option<Scheduled>>;
    /// Cancels a pending scheduled call; durable on return.
    fn cancel_scheduled<'a>(&'a self, id: &'a str, now_ms: u64) -> StoreFuture<'a, Cancelled>;

    /// How many sessions are stored (for readiness and logs; may be approximate).
    fn session_count(&self) -> StoreFuture<'_, u64>;
    /// Writes and reads back a probe: the store is writable.
    fn probe(&self, now_ms: u64) -> StoreFuture<'_, ()>;
    /// Returns once every write made before the call is durable.
    fn flush(&self) -> StoreFuture<'_, ()>;
}

/// Where a store lives: `sled:PATH` (a folder of this node's) or `postgres://…` /
/// `postgresql://…` (a database every node shares). `Display` and `Debug` never show a password.
#[derive(Debug, Clone)]
pub enum StoreUrl {
    Sled(PathBuf),
    Postgres(Box<PgUrl>),
}

impl StoreUrl {
    pub fn parse(url: &str) -> Result<StoreUrl, StoreError> {
        if let Some(path) = url.strip_prefix("sled:") {
            if path.is_empty() {
                return Err(StoreError::Url { url: url.into(), detail: "`sled:` needs a folder".into() });
            }
            return Ok(StoreUrl::Sled(PathBuf::from(path)));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return PgUrl::parse(url).map(|u| StoreUrl::Postgres(Box::new(u)));
        }
        let scheme = url.split_once(':').map_or("none", |(s, _)| s);
        Err(StoreError::Url {
            url: postgres::redact(url),
            detail: format!("unknown scheme `{scheme}`: use `sled:PATH`, `postgres://…` or `postgresql://…`"),
        })
    }
}

impl StoreUrl {
    /// Whether two URLs name one store: the same sled folder (as the file system resolves it), or
    /// the same database and connection options (a `search_path` picks the tables) on the same
    /// hosts and ports, whoever connects.
    pub fn same_store(&self, other: &StoreUrl) -> bool {
        match (self, other) {
            (StoreUrl::Sled(a), StoreUrl::Sled(b)) => {
                let resolved = |p: &PathBuf| std::fs::canonicalize(p).unwrap_or_else(|_| p.clone());
                a == b || resolved(a) == resolved(b)
            }
            (StoreUrl::Postgres(a), StoreUrl::Postgres(b)) => a.same_database(b),
            _ => false,
        }
    }
}

impl std::fmt::Display for StoreUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreUrl::Sled(dir) => write!(f, "sled:{}", dir.display()),
            StoreUrl::Postgres(url) => url.fmt(f),
        }
    }
}

/// Opens the store at `url` (see `StoreUrl`), migrating an older format or schema.
/// `Durability::NoFsync` acknowledges writes before they are on disk (postgres: with
/// `synchronous_commit=off`); only for measuring what durability costs.
pub async fn open(url: &str, durability: Durability) -> Result<Arc<dyn Store>, StoreError> {
    match StoreUrl::parse(url)? {
        StoreUrl::Sled(dir) => Ok(Arc::new(SledStore::open_with(&dir, durability)?)),
        StoreUrl::Postgres(url) => Ok(Arc::new(PgStore::open(&url, durability).await?)),
    }
}

/// Brings the store at `url` up to this phonetree's format and returns its version: a postgres
/// database's schema version (`SCHEMA_VERSION`), or a sled folder's record format (`sled` migrates
/// as it opens). What a `phonetree migrate` runs before nodes of a new version start.
pub async fn migrate(url: &str) -> Result<u32, StoreError> {
    match StoreUrl::parse(url)? {
        StoreUrl::Sled(dir) => {
            drop(SledStore::open(&dir)?);
            Ok(u32::from(record::FORMAT))
        }
        StoreUrl::Postgres(url) => postgres::migrate(&url).await,
    }
}

/// Time of a `commit` (the swap and, with fsync, its durability), by `store` (`sled`,
/// `postgres`).
const COMMIT_SECONDS: &str = "phonetree_store_commit_duration_seconds";

/// Registers the help text of the store's metrics (the recorder must be installed first).
pub fn describe_metrics() {
    describe_histogram!(COMMIT_SECONDS, Unit::Seconds, "Time of a commit, its durability included.");
    describe_histogram!(
        DURABILITY_WAIT_SECONDS,
        Unit::Seconds,
        "sled: time a write waits for its group fsync."
    );
    describe_histogram!(FSYNC_SECONDS, Unit::Seconds, "sled: time of one group fsync.");
    describe_histogram!(BATCH_WRITES, Unit::Count, "sled: writes made durable by one group fsync.");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_urls_name_their_backend() {
        assert!(
            matches!(StoreUrl::parse("sled:/var/lib/phonetree"), Ok(StoreUrl::Sled(p)) if p == std::path::Path::new("/var/lib/phonetree"))
        );
        assert!(matches!(StoreUrl::parse("postgresql://u@db/x"), Ok(StoreUrl::Postgres(_))));
        let e = StoreUrl::parse("mysql://u:s3cret@db/x").unwrap_err().to_string();
        assert!(e.contains("unknown scheme `mysql`") && !e.contains("s3cret"), "{e}");
        assert!(StoreUrl::parse("/var/lib/phonetree").unwrap_err().to_string().contains("unknown scheme"));
        assert!(StoreUrl::parse("sled:").is_err());
        let url = StoreUrl::parse("postgres://u:s3cret@db/x").unwrap();
        assert!(!format!("{url} {url:?}").contains("s3cret"));
    }

    #[test]
    fn one_store_is_recognised_under_two_urls() {
        let dir = tempfile::tempdir().unwrap();
        let url = |u: String| StoreUrl::parse(&u).unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        let same = url(format!("sled:{}", a.display()));
        assert!(same.same_store(&url(format!("sled:{}", dir.path().join("b/../a").display()))));
        assert!(!same.same_store(&url(format!("sled:{}", b.display()))));
        assert!(!same.same_store(&url("postgres://u@db/x".into())));
    }

    #[tokio::test]
    async fn open_and_migrate_by_url() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sled:{}", dir.path().join("data").display());
        assert_eq!(migrate(&url).await.unwrap(), u32::from(record::FORMAT));
        let store = open(&url, Durability::Fsync).await.unwrap();
        assert_eq!(store.session_count().await.unwrap(), 0);
        // Nothing listens on port 1: the error says what failed, and never the password.
        let Err(e) = open("postgres://u:s3cret@127.0.0.1:1/x", Durability::Fsync).await else {
            panic!("opened a database on port 1")
        };
        let e = e.to_string();
        assert!(e.contains("postgres") && !e.contains("s3cret"), "{e}");
    }
}
