//! Calls phonetree places: the machine's opening callflow sent through 8x8's Send Callflow API,
//! and the new session stored under the id 8x8 gives it, once the guard lets the call through.

use tracing::{info, warn};

use super::calls::{COMMIT_ATTEMPTS_MAX, Fault};
use super::guard::{self, Refused};
use super::{App, now_ms};
use crate::engine::{self, CallInfo, CallState, Direction};
use crate::store::{Commit, Committed};
use crate::webhook::outbound::{self, OutboundError};
use crate::webhook::wire;

/// A call the node did not place: the guard refused it (nothing was sent to 8x8), or placing it
/// failed.
#[derive(Debug, thiserror::Error)]
pub enum PlaceError {
    #[error(transparent)]
    Refused(#[from] Refused),
    #[error(transparent)]
    Outbound(#[from] OutboundError),
}

/// Places an outbound call: checks it against the guard (numbers, allow-list, barred ranges,
/// caller ID, rate limits), sends the machine's opening callflow to 8x8 and stores the new
/// session (at the start node, waiting for the callee's answer) under the id 8x8 returns.
pub async fn place_call(
    app: &App,
    machine: &str,
    to: &str,
    from: Option<&str>,
) -> Result<String, PlaceError> {
    guard::check_destination(&app.config.calls, to)?;
    let m =
        app.registry.current(machine).ok_or_else(|| OutboundError::UnknownMachine(machine.to_string()))?;
    let from = guard::caller_id(machine, m.numbers(), from)?.ok_or(OutboundError::NoCallerId)?;
    // The rate limit last: a call refused for another reason takes no token.
    app.limiter.lock().unwrap_or_else(std::sync::PoisonError::into_inner).admit(to, now_ms())?;
    let call = CallInfo {
        session_id: String::new(),
        direction: Direction::Outbound,
        source: from,
        destination: to.to_string(),
        call_id: None,
    };
    let mut step = engine::start_outbound(&m, call, now_ms()).map_err(OutboundError::Engine)?;
    let flow = step.reply.take().ok_or(OutboundError::NothingToSend)?;
    let body = wire::encode(&flow).map_err(OutboundError::Encode)?;
    let session = outbound::send_callflow(&app.http, &app.config.api, &body).await?;
    let mut state = step.state.clone();
    state.call.session_id = session.clone();
    store_new(app, &session, &state).await.map_err(|e| OutboundError::Store(e.to_string()))?;
    super::metrics::step(app, &m, &step.state, &engine::Event::CallStarted, &step);
    info!(machine, session = %session, "outbound call created");
    Ok(session)
}

/// Stores the state of a call 8x8 just created. 8x8 gives every call a new session id, so a
/// session stored under it already is a leftover (say, a stand-in API that reuses ids): the new
/// call replaces it.
async fn store_new(app: &App, session: &str, state: &CallState) -> Result<(), Fault> {
    for _ in 0..COMMIT_ATTEMPTS_MAX {
        let old = app.store.load(session, None).await?.session;
        if old.is_some() {
            warn!(session, "8x8 reused a stored session id; the new call replaces it");
        }
        let commit =
            Commit { session, expected: old.as_ref().map(|l| &l.rev), state, reply: None, entry: None };
        if app.store.commit(commit).await? == Committed::Done {
            return Ok(());
        }
    }
    Err(Fault::Contention)
}
