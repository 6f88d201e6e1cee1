//! The store: per-call state in sled, as versioned MessagePack records. The only module that knows
//! either.
//!
//! Trees: `sessions` (session id → `SessionRecord`), `replies` (session id, NUL, event id →
//! `ReplyRecord`: the journal that makes duplicate deliveries answer byte for byte), `summaries`
//! (session id → `SummaryRecord`) and `machines` (version → `MachineRecord`, the source a call's
//! machine version was compiled from). A state and the reply it implies are written in one
//! transaction, and `durable` returns once both are fsync'd: batches of concurrent requests share
//! one fsync (group commit).

pub mod record;

use std::path::Path;

use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionError};
use tokio::sync::{mpsc, oneshot};

use crate::engine::CallState;
use crate::engine::{Answer, Request};
use crate::machine::Version;
use record::{
    AnswerRecord, AnswersRecord, CacheRecord, FORMAT, FORMAT_OLDEST, MachineRecord, ReplyRecord,
    SessionRecord, SummaryRecord,
};

/// Requests waiting for the next fsync at most; more wait their turn to enqueue (back-pressure).
pub const FLUSH_QUEUE_MAX: usize = 4096;
/// sled's page cache: live calls are a few hundred bytes each, so this holds the hot set of a
/// busy node; sled's default (1 GiB) would let the process grow with the store.
pub const CACHE_BYTES_MAX: u64 = 64 * 1024 * 1024;
/// How long opening waits for the store's lock; another running phonetree keeps it, and is
/// refused after this.
pub const LOCK_WAIT_MAX: std::time::Duration = std::time::Duration::from_secs(2);
/// Deepest nesting a stored record may have: records nest four levels at most. rmp-serde's own
/// limit (1,024) lets a corrupt record overflow a 2 MiB thread stack (found by fuzzing).
pub const RECORD_DEPTH_MAX: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store: {0}")]
    Sled(#[from] sled::Error),
    #[error("store: cannot decode {what} `{key}`: {detail}")]
    Decode { what: &'static str, key: String, detail: String },
    #[error("store: cannot encode {what}: {detail}")]
    Encode { what: &'static str, detail: String },
    #[error("store: fsync failed: {0}")]
    Flush(String),
    #[error("store: the fsync thread has stopped")]
    FlusherGone,
}

/// A session as loaded: its state and the exact bytes it was stored as (for compare-and-swap).
#[derive(Debug, Clone)]
pub struct Loaded {
    pub state: CallState,
    raw: sled::IVec,
}

/// Why a commit did not happen; the caller reloads and decides again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Conflict {
    /// Another request changed the session since it was loaded.
    Changed,
    /// This event was already answered: here is the reply given then.
    Duplicate(Vec<u8>),
}

pub struct Store {
    db: sled::Db,
    sessions: sled::Tree,
    replies: sled::Tree,
    summaries: sled::Tree,
    machines: sled::Tree,
    answers: sled::Tree,
    cache: sled::Tree,
    flushes: mpsc::Sender<oneshot::Sender<Result<(), String>>>,
    /// The fsync thread; joined on drop so the directory's lock is free when `drop` returns.
    flusher: Option<std::thread::JoinHandle<()>>,
    /// False only for benchmarks comparing the durable path with the cost of its fsyncs.
    fsync: bool,
}

impl Store {
    /// Opens (or creates) the store in `dir` and starts its fsync thread.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        let db = open_waiting_for_lock(dir)?;
        let (flushes, mut waiting) = mpsc::channel::<oneshot::Sender<Result<(), String>>>(FLUSH_QUEUE_MAX);
        let syncing = db.clone();
        let flusher = std::thread::Builder::new()
            .name("phonetree-fsync".into())
            .spawn(move || {
                // Group commit: take every request queued so far, fsync once, answer them all. A
                // request is queued after its write, so the fsync that follows covers it.
                while let Some(first) = waiting.blocking_recv() {
                    let mut batch = vec![first];
                    while let Ok(next) = waiting.try_recv() {
                        batch.push(next);
                    }
                    let result = syncing.flush().map(|_| ()).map_err(|e| e.to_string());
                    for w in batch {
                        let _ = w.send(result.clone());
                    }
                }
            })
            .map_err(|e| StoreError::Flush(format!("cannot start the fsync thread: {e}")))?;
        Ok(Store {
            sessions: db.open_tree("sessions")?,
            replies: db.open_tree("replies")?,
            summaries: db.open_tree("summaries")?,
            machines: db.open_tree("machines")?,
            answers: db.open_tree("answers")?,
            cache: db.open_tree("cache")?,
            db,
            flushes,
            flusher: Some(flusher),
            fsync: true,
        })
    }

    /// This store with `durable` returning at once, without an fsync: a crash may lose
    /// acknowledged transitions. Only for measuring what durability costs.
    pub fn without_fsync(mut self) -> Store {
        self.fsync = false;
        self
    }

    pub fn load(&self, session: &str) -> Result<Option<Loaded>, StoreError> {
        let Some(raw) = self.sessions.get(session)? else { return Ok(None) };
        let state = decode_session(session, &raw)?;
        Ok(Some(Loaded { state, raw }))
    }

    /// The reply given to `event_id` of `session`, if it was answered.
    pub fn reply(&self, session: &str, event_id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let key = reply_key(session, event_id);
        let Some(raw) = self.replies.get(&key)? else { return Ok(None) };
        decode_reply(&key, &raw).map(Some)
    }

    /// Writes `state` and the reply to `event_id` in one transaction, if the session is still as
    /// `expected` (`None`: it must not exist) and the event was not answered yet.
    pub fn commit(
        &self,
        session: &str,
        expected: Option<&Loaded>,
        state: &CallState,
        event_id: &str,
        body: &[u8],
        now_ms: u64,
    ) -> Result<Result<(), Conflict>, StoreError> {
        let record = encode_session(state)?;
        let reply =
            encode("reply", &ReplyRecord { v: FORMAT, at: now_ms, body: record::Blob(body.to_vec()) })?;
        let key = reply_key(session, event_id);
        let expected = expected.map(|l| l.raw.clone());
        let outcome = (&self.sessions, &self.replies).transaction(|(sessions, replies)| {
            if let Some(given) = replies.get(&key)? {
                return Err(ConflictableTransactionError::Abort(Err(given)));
            }
            if sessions.get(session)? != expected {
                return Err(ConflictableTransactionError::Abort(Ok(())));
            }
            sessions.insert(session, record.as_slice())?;
            replies.insert(key.as_slice(), reply.as_slice())?;
            Ok(())
        });
        match outcome {
            Ok(()) => Ok(Ok(())),
            Err(TransactionError::Abort(Ok(()))) => Ok(Err(Conflict::Changed)),
            Err(TransactionError::Abort(Err(given))) => {
                Ok(Err(Conflict::Duplicate(decode_reply(&key, &given)?)))
            }
            Err(TransactionError::Storage(e)) => Err(e.into()),
        }
    }

    /// Writes a session without a reply (an outbound call placed, a session expired), if it is
    /// still as `expected`.
    pub fn put_session(
        &self,
        session: &str,
        expected: Option<&Loaded>,
        state: &CallState,
    ) -> Result<Result<(), Conflict>, StoreError> {
        let record = encode_session(state)?;
        let swapped =
            self.sessions.compare_and_swap(session, expected.map(|l| l.raw.clone()), Some(record))?;
        Ok(swapped.map_err(|_| Conflict::Changed))
    }

    /// Returns once every write made before the call is on disk (fsync'd).
    pub async fn durable(&self) -> Result<(), StoreError> {
        if !self.fsync {
            return Ok(());
        }
        let (tx, rx) = oneshot::channel();
        self.flushes.send(tx).await.map_err(|_| StoreError::FlusherGone)?;
        rx.await.map_err(|_| StoreError::FlusherGone)?.map_err(StoreError::Flush)
    }

    /// `durable` for code outside an async runtime.
    pub fn durable_blocking(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
    }

    pub fn put_summary(&self, session: &str, summary: &SummaryRecord) -> Result<(), StoreError> {
        self.summaries.insert(session, encode("summary", summary)?)?;
        Ok(())
    }

    pub fn summary(&self, session: &str) -> Result<Option<SummaryRecord>, StoreError> {
        let Some(raw) = self.summaries.get(session)? else { return Ok(None) };
        let s: SummaryRecord = decode("summary", session, &raw)?;
        check_format("summary", session, s.v)?;
        Ok(Some(s))
    }

    /// Keeps a machine's source under its version (idempotent: the version is the text's hash).
    pub fn put_machine(&self, version: Version, record: &MachineRecord) -> Result<(), StoreError> {
        self.machines.insert(version.0, encode("machine", record)?)?;
        Ok(())
    }

    pub fn machine(&self, version: Version) -> Result<Option<MachineRecord>, StoreError> {
        let Some(raw) = self.machines.get(version.0)? else { return Ok(None) };
        let m: MachineRecord = decode("machine", &version.short(), &raw)?;
        check_format("machine", &version.short(), m.v)?;
        Ok(Some(m))
    }

    /// Every machine version stored so far (calls pinned to them can still run).
    pub fn machine_versions(&self) -> Result<Vec<Version>, StoreError> {
        self.machines
            .iter()
            .keys()
            .map(|k| {
                let k = k?;
                <[u8; 32]>::try_from(k.as_ref()).map(Version).map_err(|_| StoreError::Decode {
                    what: "machine key",
                    key: format!("{k:?}"),
                    detail: "not 32 bytes".into(),
                })
            })
            .collect()
    }

    /// Every stored session id with its state (or the reason it cannot be read).
    pub fn sessions(&self) -> impl Iterator<Item = Result<(String, Loaded), StoreError>> + '_ {
        self.sessions.iter().map(|item| {
            let (k, raw) = item?;
            let id = String::from_utf8_lossy(&k).into_owned();
            let state = decode_session(&id, &raw)?;
            Ok((id, Loaded { state, raw }))
        })
    }

    /// Deletes a session with its reply journal and summary.
    pub fn remove_session(&self, session: &str) -> Result<(), StoreError> {
        let mut prefix = session.as_bytes().to_vec();
        prefix.push(0);
        for key in self.replies.scan_prefix(&prefix).keys() {
            self.replies.remove(key?)?;
        }
        for key in self.answers.scan_prefix(&prefix).keys() {
            self.answers.remove(key?)?;
        }
        self.summaries.remove(session)?;
        self.sessions.remove(session)?;
        Ok(())
    }

    /// The script answers journaled for one webhook (empty when none were).
    pub fn answers(&self, session: &str, event_id: &str) -> Result<Vec<Answer>, StoreError> {
        let key = reply_key(session, event_id);
        let Some(raw) = self.answers.get(&key)? else { return Ok(Vec::new()) };
        let name = String::from_utf8_lossy(&key).replace('\0', "/");
        let r: AnswersRecord = decode("answers", &name, &raw)?;
        check_format("answers", &name, r.v)?;
        Ok(r.answers.iter().map(AnswerRecord::to_answer).collect())
    }

    /// Journals the script answers of one webhook (all so far, in order); `durable` makes it stick.
    pub fn put_answers(&self, session: &str, event_id: &str, answers: &[Answer]) -> Result<(), StoreError> {
        let record =
            AnswersRecord { v: FORMAT, answers: answers.iter().map(AnswerRecord::from_answer).collect() };
        self.answers.insert(reply_key(session, event_id), encode("answers", &record)?)?;
        Ok(())
    }

    /// A cached answer to `request` still valid at `now_ms`.
    pub fn cached(&self, request: &Request, now_ms: u64) -> Result<Option<Answer>, StoreError> {
        let key = cache_key(request);
        let Some(raw) = self.cache.get(key)? else { return Ok(None) };
        let r: CacheRecord = decode("cache", &request.url, &raw)?;
        check_format("cache", &request.url, r.v)?;
        Ok((r.until > now_ms).then(|| r.answer.to_answer()))
    }

    /// Caches `answer` to `request` for the request's `cache_minutes` (nothing when it has none).
    pub fn put_cached(&self, request: &Request, answer: &Answer, now_ms: u64) -> Result<(), StoreError> {
        let Some(minutes) = request.cache_minutes else { return Ok(()) };
        let until = now_ms + u64::from(minutes) * 60_000;
        let record = CacheRecord { v: FORMAT, until, answer: AnswerRecord::from_answer(answer) };
        self.cache.insert(cache_key(request), encode("cache", &record)?)?;
        Ok(())
    }

    /// Deletes cached answers past their time; returns how many.
    pub fn expire_cache(&self, now_ms: u64) -> Result<usize, StoreError> {
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

    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// Bytes of the session record as stored (for the size budget).
    pub fn session_bytes(&self, session: &str) -> Result<Option<usize>, StoreError> {
        Ok(self.sessions.get(session)?.map(|v| v.len()))
    }

    /// Writes and reads back a probe key: the store is writable.
    pub fn probe(&self, now_ms: u64) -> Result<(), StoreError> {
        let meta = self.db.open_tree("meta")?;
        meta.insert("probe", &now_ms.to_be_bytes())?;
        match meta.get("probe")? {
            Some(v) if v.as_ref() == now_ms.to_be_bytes() => Ok(()),
            _ => Err(StoreError::Flush("the probe key did not read back".into())),
        }
    }
}

impl Drop for Store {
    /// Stops the fsync thread (closing its queue ends its loop) and waits for it, so that the
    /// store can be opened again at once, by this process or the next.
    fn drop(&mut self) {
        let (closed, _) = mpsc::channel(1);
        drop(std::mem::replace(&mut self.flushes, closed));
        if let Some(thread) = self.flusher.take() {
            let _ = thread.join();
        }
    }
}

/// Opens sled, waiting up to `LOCK_WAIT_MAX` for the directory's lock: sled releases it when its
/// I/O threads finish, shortly after the last handle of a store closed in this process drops.
fn open_waiting_for_lock(dir: &Path) -> Result<sled::Db, StoreError> {
    let deadline = std::time::Instant::now() + LOCK_WAIT_MAX;
    loop {
        match sled::Config::new().path(dir).cache_capacity(CACHE_BYTES_MAX).open() {
            Err(sled::Error::Io(e))
                if e.to_string().contains("could not acquire lock")
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            other => return Ok(other?),
        }
    }
}

/// The cache's key for a request: the SHA-256 of everything it sends.
fn cache_key(request: &Request) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(request.cache_key()).into()
}

fn reply_key(session: &str, event_id: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(session.len() + event_id.len() + 1);
    key.extend_from_slice(session.as_bytes());
    key.push(0);
    key.extend_from_slice(event_id.as_bytes());
    key
}

fn encode<T: serde::Serialize>(what: &'static str, value: &T) -> Result<Vec<u8>, StoreError> {
    rmp_serde::to_vec_named(value).map_err(|e| StoreError::Encode { what, detail: e.to_string() })
}

fn decode<T: serde::de::DeserializeOwned>(
    what: &'static str,
    key: &str,
    raw: &[u8],
) -> Result<T, StoreError> {
    let mut de = rmp_serde::Deserializer::from_read_ref(raw);
    de.set_max_depth(RECORD_DEPTH_MAX);
    T::deserialize(&mut de).map_err(|e| StoreError::Decode {
        what,
        key: key.to_string(),
        detail: e.to_string(),
    })
}

fn check_format(what: &'static str, key: &str, v: u8) -> Result<(), StoreError> {
    if (FORMAT_OLDEST..=FORMAT).contains(&v) {
        Ok(())
    } else {
        Err(StoreError::Decode {
            what,
            key: key.to_string(),
            detail: format!("format {v}, this phonetree reads {FORMAT_OLDEST} to {FORMAT}"),
        })
    }
}

/// Encodes engine state as the stored session record (MessagePack, with its format version).
pub fn encode_session(state: &CallState) -> Result<Vec<u8>, StoreError> {
    encode("session", &SessionRecord::from_state(state))
}

/// Decodes a stored session record into engine state.
pub fn decode_session(session: &str, raw: &[u8]) -> Result<CallState, StoreError> {
    let record: SessionRecord = decode("session", session, raw)?;
    record.to_state(session).map_err(|detail| StoreError::Decode {
        what: "session",
        key: session.to_string(),
        detail,
    })
}

fn decode_reply(key: &[u8], raw: &[u8]) -> Result<Vec<u8>, StoreError> {
    let name = String::from_utf8_lossy(key).replace('\0', "/");
    let r: ReplyRecord = decode("reply", &name, raw)?;
    check_format("reply", &name, r.v)?;
    Ok(r.body.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A session stored by a phonetree of format 1 (no call variables) still loads.
    #[test]
    fn a_format_1_session_record_still_decodes() {
        #[derive(serde::Serialize)]
        struct V1<'a> {
            v: u8,
            m: &'a str,
            h: record::Hash,
            #[serde(rename = "in")]
            inbound: bool,
            src: &'a str,
            dst: &'a str,
            n: u32,
            ph: u8,
            t: u8,
            q: u32,
            p: Vec<u32>,
            k: Option<&'a str>,
            o: Option<()>,
            c: bool,
            t0: u64,
            t1: u64,
        }
        let old = V1 {
            v: 1,
            m: "abc_restaurant",
            h: record::Hash([7; 32]),
            inbound: true,
            src: "+6591178965",
            dst: "+6568888888",
            n: 3,
            ph: 1,
            t: 1,
            q: 2,
            p: vec![0, 3],
            k: Some("9"),
            o: None,
            c: false,
            t0: 1,
            t1: 2,
        };
        let raw = rmp_serde::to_vec_named(&old).unwrap();
        let state = decode_session("s-old", &raw).unwrap();
        assert_eq!((state.node.index(), state.tries, state.seq), (3, 1, 2));
        assert!(state.vars.is_empty());
        let future = rmp_serde::to_vec_named(&V1 { v: 9, ..old }).unwrap();
        let e = decode_session("s-new", &future).unwrap_err().to_string();
        assert!(e.contains("session record format 9"), "{e}");
    }

    /// Regression (fuzz `stored_state`): a record with an unknown field holding 1,000 nested
    /// one-element arrays overflowed a test thread's stack under rmp-serde's default depth limit.
    #[test]
    fn deeply_nested_garbage_is_a_decode_error_not_a_stack_overflow() {
        let mut raw = vec![0x81u8, 0xa2, b'z', b'z'];
        raw.extend(std::iter::repeat_n(0x91u8, 1_000));
        raw.push(0xc0);
        let e = decode_session("s", &raw).unwrap_err();
        assert!(e.to_string().contains("depth limit exceeded"), "{e}");
    }
}
