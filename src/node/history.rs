//! Call history as the admin listener (`GET /calls`, `GET /calls/{session}`) and `phonetree calls`
//! read it: the store's sessions, filtered and paged, and one call with its transcript and summary.

use super::App;
use super::calls::Fault;
use crate::callflow::SessionSummary;
use crate::engine::CallState;
use crate::engine::transcript::{Call, Ended, OUTCOMES};
use crate::store::SCAN_PAGE_MAX;

/// Most calls one list answers.
pub const LIST_LIMIT_MAX: usize = 100;
/// Calls a list answers when it names no limit.
pub const LIST_LIMIT_DEFAULT: usize = 20;
/// Most sessions one list reads through while filtering: past it the list ends early with a
/// `next` to go on from, so a filter that matches little never walks the whole store at once.
pub const LIST_SCAN_MAX: usize = 4 * SCAN_PAGE_MAX;

/// What a list keeps.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub machine: Option<String>,
    /// Calls started at or after this time (ms since the epoch).
    pub since_ms: Option<u64>,
    /// One of `history::OUTCOMES`.
    pub outcome: Option<String>,
    /// At most `LIST_LIMIT_MAX` (0: `LIST_LIMIT_DEFAULT`).
    pub limit: usize,
    /// The session id the list goes on after (a previous list's `next`).
    pub after: Option<String>,
}

/// A filter the list cannot run.
#[derive(Debug, thiserror::Error)]
pub enum FilterError {
    #[error("limit {0} is above {LIST_LIMIT_MAX}")]
    Limit(usize),
    #[error("unknown outcome `{0}` (one of: {list})", list = OUTCOMES.join(", "))]
    Outcome(String),
}

impl Filter {
    pub fn check(&self) -> Result<(), FilterError> {
        if self.limit > LIST_LIMIT_MAX {
            return Err(FilterError::Limit(self.limit));
        }
        match &self.outcome {
            Some(o) if !OUTCOMES.contains(&o.as_str()) => Err(FilterError::Outcome(o.clone())),
            _ => Ok(()),
        }
    }

    fn keeps(&self, state: &CallState) -> bool {
        self.machine.as_ref().is_none_or(|m| *m == state.machine)
            && self.since_ms.is_none_or(|t| state.started_ms >= t)
            && self.outcome.as_ref().is_none_or(|o| o == crate::engine::transcript::outcome(state))
    }
}

/// One page of calls (without their transcripts), in session id order.
#[derive(Debug, Clone)]
pub struct Listed {
    pub calls: Vec<Call>,
    /// Where the next page starts (`Filter::after`); `None` after the last.
    pub next: Option<String>,
}

/// The calls the filter keeps, a page of them.
pub async fn list(app: &App, filter: &Filter) -> Result<Listed, Fault> {
    let limit = if filter.limit == 0 { LIST_LIMIT_DEFAULT } else { filter.limit.min(LIST_LIMIT_MAX) };
    let mut calls = Vec::new();
    let mut after = filter.after.clone();
    let mut read = 0;
    loop {
        let page = app.store.scan(after.as_deref(), SCAN_PAGE_MAX.min(LIST_SCAN_MAX - read)).await?;
        read += page.sessions.len();
        for (id, loaded) in page.sessions {
            after = Some(id);
            // A session that cannot be read is left out of lists (`show` says why).
            let Ok(loaded) = loaded else { continue };
            if filter.keeps(&loaded.state) {
                calls.push(call(app, &loaded.state, Vec::new(), None).await);
                if calls.len() == limit {
                    return Ok(Listed { calls, next: after });
                }
            }
        }
        match page.next {
            Some(next) if read < LIST_SCAN_MAX => after = Some(next),
            Some(next) => return Ok(Listed { calls, next: Some(next) }),
            None => return Ok(Listed { calls, next: None }),
        }
    }
}

/// One call with its transcript and summary; `None` when the store has no such session.
pub async fn show(app: &App, session: &str) -> Result<Option<Call>, Fault> {
    let Some(loaded) = app.store.load(session, None).await?.session else { return Ok(None) };
    let entries = app.store.transcript(session).await?;
    let summary = app.store.summary(session).await?.map(|s| ended(&s.summary));
    Ok(Some(call(app, &loaded.state, entries, summary).await))
}

async fn call(
    app: &App,
    state: &CallState,
    entries: Vec<crate::engine::transcript::Entry>,
    summary: Option<Ended>,
) -> Call {
    let node = match app.registry.version(app.store.as_ref(), &state.machine, state.version).await {
        Ok(m) => m.node(state.node).map_or_else(|| format!("#{}", state.node.index()), |n| n.name.clone()),
        Err(_) => format!("#{}", state.node.index()),
    };
    Call::of(state, &node, entries, summary)
}

fn ended(s: &SessionSummary) -> Ended {
    Ended { status: s.status.clone(), error_code: s.error_code, error_message: s.error_message.clone() }
}
