//! Copying one store into another (`phonetree store copy`): the upgrade path from a sled folder
//! to PostgreSQL, through the `Store` trait only, so any backend copies into any other.
//!
//! What is copied: the key `clientActionId`s are signed with (so the copied calls can still be
//! resumed from the ids 8x8 echoes), every machine version (first, so every copied call finds the version it runs
//! on), every session with its state, reply journal, script answers, claims on script requests
//! (lapsed in the target: their claimants are gone) and summary (each written at once by
//! `Store::import`), the summaries of sessions the source no longer has, callers' interrupted
//! calls (`[resume]`, moved by their key: the copy never learns whose they are) and the scheduled
//! callbacks in whatever state they are (a callback being sent stays so: it is never sent twice).
//! The script cache is not copied: it is only a cache. Memory stays bounded however large the store: the
//! sessions are read and written in pages of `COPY_PAGE`.
//!
//! Meant for stopped nodes: a session written to the source during the copy may or may not be
//! copied. A sled folder is locked by the node that has it open, so copying from it fails while
//! its node runs; nodes on a database must be stopped by hand.

use std::sync::Arc;

use super::{Committed, Store, StoreError};

/// Sessions read per page of the copy: an exported session is a few KiB (its state, the latest
/// replies, its script answers), so a page holds about a MiB in memory, and each page is one
/// round trip to a database rather than one per session.
pub const COPY_PAGE: usize = 256;
/// Imports in flight at once: sled shares one fsync among them (group commit), a database
/// pipelines them over its pool (`POOL_SIZE_MAX`); one at a time would wait out an fsync or a
/// round trip per session.
pub const IMPORTS_IN_FLIGHT: usize = 16;

/// What a copy wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Copied {
    pub machines: usize,
    pub sessions: usize,
    /// Replies a duplicate delivery gets again, over every session.
    pub replies: usize,
    /// Older events known (and never applied again), over every session.
    pub forgotten: usize,
    /// Webhooks with journaled script answers, over every session.
    pub answers: usize,
    /// Summaries of copied sessions.
    pub summaries: usize,
    /// Summaries of sessions the source no longer has.
    pub lone_summaries: usize,
    /// Callers' interrupted calls, kept for the resume offer.
    pub unfinished: usize,
    /// Scheduled callbacks, whatever their state.
    pub scheduled: usize,
    pub action_key: KeyCopied,
}

/// What became of the source's action key (the key `clientActionId`s are signed with).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum KeyCopied {
    /// The target signs and checks ids with the source's key.
    Copied,
    /// The source has none (no node ran on it since ids were signed): nothing to copy.
    #[default]
    NoneInSource,
    /// The target had a key of its own already (a node ran on it), which it keeps: ids the source
    /// issued are not resumable there (calls with stored state do not need them).
    TargetKeepsItsOwn,
}

#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error("the target holds {0} session(s) already: copy into a store with no sessions")]
    TargetNotEmpty(u64),
    #[error("session `{0}` is in the target already: copy into a store with no sessions")]
    Exists(String),
    #[error("cannot read session `{session}` from the source: {source}")]
    Unreadable { session: String, source: StoreError },
    #[error("cannot read the source: {0}")]
    Source(StoreError),
    #[error("cannot write session `{session}` to the target: {source}")]
    Import { session: String, source: StoreError },
    #[error("cannot write to the target: {0}")]
    Target(StoreError),
    #[error("an import stopped before it ended: {0}")]
    Task(String),
}

/// Copies everything `from` keeps into `to`, which must hold no session yet; returns the counts.
/// Stops at the first session that cannot be read or written: the target then holds part of the
/// source, and the copy is run again into an empty store.
pub async fn copy(from: &dyn Store, to: &Arc<dyn Store>) -> Result<Copied, CopyError> {
    let there = to.session_count().await.map_err(CopyError::Target)?;
    if there > 0 {
        return Err(CopyError::TargetNotEmpty(there));
    }
    let mut copied = Copied::default();
    if let Some(key) = from.action_key(None).await.map_err(CopyError::Source)? {
        let kept = to.action_key(Some(key)).await.map_err(CopyError::Target)?;
        copied.action_key = if kept == Some(key) { KeyCopied::Copied } else { KeyCopied::TargetKeepsItsOwn };
    }
    for (version, machine) in from.machines().await.map_err(CopyError::Source)? {
        to.put_machine(version, &machine).await.map_err(CopyError::Target)?;
        copied.machines += 1;
    }

    let mut after: Option<String> = None;
    loop {
        let page = from.export(after.as_deref(), COPY_PAGE).await.map_err(CopyError::Source)?;
        let mut sessions = Vec::with_capacity(page.sessions.len());
        for (session, exported) in page.sessions {
            sessions.push(exported.map_err(|source| CopyError::Unreadable { session, source })?);
        }
        let mut rest = sessions.into_iter().peekable();
        while rest.peek().is_some() {
            let mut writes = tokio::task::JoinSet::new();
            for e in rest.by_ref().take(IMPORTS_IN_FLIGHT) {
                let to = to.clone();
                writes.spawn(async move {
                    let done = to.import(&e).await;
                    (e, done)
                });
            }
            while let Some(joined) = writes.join_next().await {
                let (e, done) = joined.map_err(|j| CopyError::Task(j.to_string()))?;
                match done {
                    Ok(Committed::Done) => count(&mut copied, &e),
                    Ok(Committed::Changed) => return Err(CopyError::Exists(e.session)),
                    Err(source) => return Err(CopyError::Import { session: e.session, source }),
                }
            }
        }
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }

    let mut after: Option<String> = None;
    loop {
        let page = from.lone_summaries(after.as_deref(), COPY_PAGE).await.map_err(CopyError::Source)?;
        for s in &page.summaries {
            to.put_summary(&s.summary, s.received_ms).await.map_err(CopyError::Target)?;
            copied.lone_summaries += 1;
        }
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }

    let mut after = None;
    loop {
        let page = from.unfinished_page(after, COPY_PAGE).await.map_err(CopyError::Source)?;
        for (key, call) in &page {
            to.put_unfinished_at(*key, call).await.map_err(CopyError::Target)?;
            copied.unfinished += 1;
        }
        match page.last() {
            Some((key, _)) if page.len() == COPY_PAGE => after = Some(*key),
            _ => break,
        }
    }

    let mut after: Option<String> = None;
    loop {
        let page = from.scheduled_page(after.as_deref(), COPY_PAGE).await.map_err(CopyError::Source)?;
        for call in &page {
            to.put_scheduled(call).await.map_err(CopyError::Target)?;
            copied.scheduled += 1;
        }
        match page.last() {
            Some(call) if page.len() == COPY_PAGE => after = Some(call.id.clone()),
            _ => break,
        }
    }
    to.flush().await.map_err(CopyError::Target)?;
    Ok(copied)
}

fn count(copied: &mut Copied, e: &super::Exported) {
    use super::JournalEntry;
    copied.sessions += 1;
    let replies = e.journal.iter().filter(|j| matches!(j, JournalEntry::Replied { .. })).count();
    copied.replies += replies;
    copied.forgotten += e.journal.len() - replies;
    copied.answers += e.answers.len();
    copied.summaries += usize::from(e.summary.is_some());
}
