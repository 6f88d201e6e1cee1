//! The sweeps: sessions silent past the TTL are closed, closed sessions past their retention are
//! deleted, so are summaries of calls never seen, and cached script answers past their time are
//! dropped. Each walks the store in bounded pages and yields between them, so a store of
//! millions of sessions never holds a worker thread (or the webhooks queued behind it) for long.

use std::sync::Arc;
use std::time::Duration;

use tracing::{debug, info, warn};

use super::calls::Fault;
use super::metrics::EXPIRED;
use super::throttle::warn_limited;
use super::{App, now_ms};
use crate::engine::{self, Event};
use crate::store::{Commit, Committed, Loaded};

/// How often idle sessions are looked for, at most; short TTLs are swept twice per TTL.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(60);
/// The shortest sweep period, so a TTL of zero cannot turn the sweeper into a busy loop.
pub const SWEEP_INTERVAL_MIN: Duration = Duration::from_millis(100);
/// Sessions looked at per page of a sweep: about a millisecond of work between two yields to the
/// webhooks.
pub const SWEEP_PAGE: usize = 256;

/// What one sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Swept {
    pub closed: usize,
    pub deleted: usize,
    /// Summaries of calls this node never saw, deleted past the retention (anyone who reaches the
    /// port could post them, so they are kept no longer than a closed call).
    pub lone_deleted: usize,
}

/// Sweeps every `SWEEP_INTERVAL` at most (twice per TTL or retention when shorter), until dropped.
pub async fn sweep_forever(app: Arc<App>) {
    let shortest = app.config.session_ttl.min(app.config.retention) / 2;
    let mut tick = tokio::time::interval(shortest.clamp(SWEEP_INTERVAL_MIN, SWEEP_INTERVAL));
    loop {
        tick.tick().await;
        match sweep(&app, now_ms()).await {
            Ok(Swept { closed: 0, deleted: 0, lone_deleted: 0 }) => {}
            Ok(Swept { closed, deleted, lone_deleted }) => {
                info!(closed, deleted, lone_summaries_deleted = lone_deleted, "sessions swept")
            }
            Err(Fault::Store(e)) if app.note_store_error(&e) => {}
            Err(e) => warn!(error = %e, "sweep failed"),
        }
    }
}

/// Closes sessions silent for longer than the TTL and deletes closed ones past their retention.
/// A session that cannot be processed is logged and left for the next sweep.
pub async fn sweep(app: &App, now: u64) -> Result<Swept, Fault> {
    let ttl = u64::try_from(app.config.session_ttl.as_millis()).unwrap_or(u64::MAX);
    let retention = u64::try_from(app.config.retention.as_millis()).unwrap_or(u64::MAX);
    let mut swept = Swept::default();
    let mut after: Option<String> = None;
    loop {
        let page = app.store.scan(after.as_deref(), SWEEP_PAGE).await?;
        for (id, loaded) in &page.sessions {
            let loaded = match loaded {
                Ok(l) => l,
                Err(e) => {
                    warn_limited!(session = %id, error = %e, "unreadable session left as it is");
                    continue;
                }
            };
            let idle = now.saturating_sub(loaded.state.updated_ms);
            let done = if loaded.state.closed && idle > retention {
                app.store.remove_session(id).await.map(|()| swept.deleted += 1).map_err(Fault::from)
            } else if !loaded.state.closed && idle > ttl {
                expire(app, id, loaded, now).await.map(|expired| swept.closed += usize::from(expired))
            } else {
                Ok(())
            };
            if let Err(e) = done {
                warn_limited!(session = %id, error = %e, "session not swept");
            }
        }
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
        tokio::task::yield_now().await;
    }
    swept.lone_deleted = sweep_lone_summaries(app, now, retention).await?;
    match app.store.expire_cache(now).await {
        Ok(0) => {}
        Ok(n) => debug!(expired = n, "script answers dropped from the cache"),
        Err(e) => warn!(error = %e, "cache not swept"),
    }
    // An interrupted call is kept no longer than a closed one.
    match app.store.expire_unfinished(now.saturating_sub(retention)).await {
        Ok(0) => {}
        Ok(n) => debug!(expired = n, "interrupted calls past the retention dropped"),
        Err(e) => warn!(error = %e, "interrupted calls not swept"),
    }
    // A callback finished (or sent and never summarised) goes with the retention, as a call.
    match app.store.expire_scheduled(now.saturating_sub(retention)).await {
        Ok(0) => {}
        Ok(n) => debug!(expired = n, "finished scheduled callbacks dropped"),
        Err(e) => warn!(error = %e, "scheduled callbacks not swept"),
    }
    // A full rate bucket is the same as none: its record goes, so the records stay bounded.
    match app.store.expire_rates(now).await {
        Ok(0) => {}
        Ok(n) => debug!(expired = n, "full rate buckets dropped"),
        Err(e) => warn!(error = %e, "rate records not swept"),
    }
    Ok(swept)
}

/// Deletes the summaries of sessions that have no state once they are past the retention.
async fn sweep_lone_summaries(app: &App, now: u64, retention: u64) -> Result<usize, Fault> {
    let mut deleted = 0;
    let mut after: Option<String> = None;
    loop {
        let page = app.store.lone_summaries(after.as_deref(), SWEEP_PAGE).await?;
        for s in &page.summaries {
            if now.saturating_sub(s.received_ms) > retention {
                // `remove_session` deletes whatever is kept under the id: here, the summary alone.
                match app.store.remove_session(&s.summary.session_id).await {
                    Ok(()) => deleted += 1,
                    Err(e) => warn_limited!(session = %s.summary.session_id, error = %e, "summary not swept"),
                }
            }
        }
        match page.next {
            Some(next) => after = Some(next),
            None => return Ok(deleted),
        }
        tokio::task::yield_now().await;
    }
}

/// Closes one silent session (as if its summary said `EXPIRED`); false when it changed meanwhile.
async fn expire(app: &App, id: &str, loaded: &Loaded, now: u64) -> Result<bool, Fault> {
    let machine =
        app.registry.version(app.store.as_ref(), &loaded.state.machine, loaded.state.version).await?;
    let step = engine::step(&machine, &loaded.state, &Event::SessionEnded { status: EXPIRED.into() }, now)?;
    // Kept before the call is closed: a sweep that fails here finds the call open next time.
    super::resume::stepped(app, &machine, (&loaded.state, &step.state), now).await?;
    let commit = Commit {
        session: id,
        expected: Some(&loaded.rev),
        state: &step.state,
        reply: None,
        entries: &[],
        schedule: None,
        summary: None,
        wait: None,
    };
    let stored = app.store.commit(commit).await? == Committed::Done;
    if stored {
        super::metrics::ended(app, &machine, &loaded.state, &step.state, true);
        debug!(session = %id, "no summary within the TTL: session closed");
    }
    Ok(stored)
}
