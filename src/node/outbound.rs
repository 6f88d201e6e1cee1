//! Calls phonetree places: the machine's opening callflow sent through 8x8's Send Callflow API,
//! and the new session stored under the id 8x8 gives it, once the guard lets the call through.

use std::collections::BTreeMap;

use tokio::time::Instant;
use tracing::info;

use super::calls::{self, COMMIT_ATTEMPTS_MAX, Fault, SCRIPTS_DEADLINE};
use super::dial::{admit, dial};
use super::guard::{self, Refused};
use super::{App, now_ms};
use crate::engine::transcript;
use crate::engine::{self, CallInfo, CallState, Direction, Event, Stepped};
use crate::store::{Commit, Committed, Scheduled, ScheduledState};
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
/// caller ID, rate limits) and its `vars` against the machine's `variables`, runs the script
/// nodes the opening passes (as a webhook's, within `SCRIPTS_DEADLINE`), sends the machine's
/// opening callflow to 8x8 and stores the new session (waiting for the callee's answer, the
/// opening in its history) under the id 8x8 returns.
pub async fn place_call(
    app: &App,
    machine: &str,
    to: &str,
    from: Option<&str>,
    vars: &BTreeMap<String, String>,
) -> Result<String, PlaceError> {
    place(app, machine, to, from, vars, None).await
}

/// Places a scheduled callback (`scheduler`): `place_call` with no `from` nor variables, asking
/// 8x8 to give up placing it at its `valid_until_ms` (`validUntil`), the callback written `sent`
/// (with the new session) in the same durable write as the new session, so that the call's
/// summary always finds it.
pub async fn place_callback(app: &App, callback: &Scheduled) -> Result<String, PlaceError> {
    place(app, &callback.machine, &callback.to, None, &BTreeMap::new(), Some(callback)).await
}

async fn place(
    app: &App,
    machine: &str,
    to: &str,
    from: Option<&str>,
    vars: &BTreeMap<String, String>,
    callback: Option<&Scheduled>,
) -> Result<String, PlaceError> {
    guard::check_destination(&app.config.calls, to)?;
    let m =
        app.registry.current(machine).ok_or_else(|| OutboundError::UnknownMachine(machine.to_string()))?;
    let from = guard::caller_id(machine, m.numbers(), from)?.ok_or(OutboundError::NoCallerId)?;
    engine::check_variables(&m, vars.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .map_err(OutboundError::Variable)?;
    // The rate limit last: a call refused for another reason takes no token.
    admit(app, to).await.map_err(|e| OutboundError::Store(e.to_string()))??;
    let call = CallInfo {
        session_id: String::new(),
        direction: Direction::Outbound,
        source: from,
        destination: to.to_string(),
        call_id: None,
    };
    let now = now_ms();
    let before = CallState::new(&m, call.clone(), now);
    let (step, answers) = opening(app, &m, call, vars, now).await?;
    // An opening that runs into a transfer with a templated destination dials it too.
    if let Some(dialled) = engine::templated_dial(&m, &step) {
        let node = m.node(step.state.node).map_or("", |n| n.name.as_str());
        dial(app, &m, node, dialled).await.map_err(|e| OutboundError::Store(e.to_string()))??;
    }
    let flow = step.reply.clone().ok_or(OutboundError::NothingToSend)?;
    let body = wire::encode(&flow).map_err(OutboundError::Encode)?;
    let valid_until_ms = callback.map(|c| c.valid_until_ms);
    let session = outbound::send_callflow(&app.http, &app.config.api, &body, valid_until_ms).await?;
    let mut state = step.state.clone();
    state.call.session_id = session.clone();
    let entry = transcript::Entry::of(&m, &before, &Event::CallStarted, &step, &answers);
    let sent = callback.map(|c| Scheduled {
        state: ScheduledState::Sent,
        session: Some(session.clone()),
        updated_ms: now_ms(),
        ..c.clone()
    });
    store_new(app, &session, &state, &entry, sent.as_ref())
        .await
        .map_err(|e| OutboundError::Store(e.to_string()))?;
    super::metrics::step(app, &m, &step.state, &engine::Event::CallStarted, &step);
    info!(machine, session = %session, "outbound call created");
    Ok(session)
}

/// The opening step of a placed call, with the answers of the script nodes it passes: each
/// request made as a webhook's would be (`calls::perform`: cache, metrics, the failure answer once
/// `SCRIPTS_DEADLINE` is spent), so a failed request takes the script's `failure` edge.
async fn opening(
    app: &App,
    m: &crate::machine::Machine,
    call: CallInfo,
    vars: &BTreeMap<String, String>,
    now: u64,
) -> Result<(engine::Step, Vec<engine::Answer>), OutboundError> {
    let deadline = Instant::now().checked_add(SCRIPTS_DEADLINE).unwrap_or_else(Instant::now);
    let mut answers = Vec::new();
    loop {
        match engine::start_outbound(m, call.clone(), vars, now, &answers)? {
            Stepped::Done(step) => {
                calls::log_scripts(m, &step);
                return Ok((*step, answers));
            }
            Stepped::Needs(request) => {
                let answer = calls::perform(app, m, &request, now, deadline)
                    .await
                    .map_err(|e| OutboundError::Store(e.to_string()))?;
                answers.push(answer);
            }
        }
    }
}

/// Stores the state of a call 8x8 just created. 8x8 gives every call a new session id, so a
/// session stored under it already is a leftover (say, a stand-in API that reuses ids): the new
/// call replaces it.
async fn store_new(
    app: &App,
    session: &str,
    state: &CallState,
    entry: &transcript::Entry,
    schedule: Option<&Scheduled>,
) -> Result<(), Fault> {
    for _ in 0..COMMIT_ATTEMPTS_MAX {
        let old = app.store.load(session, None).await?.session;
        if old.is_some() {
            super::throttle::warn_limited!(
                session,
                "8x8 reused a stored session id; the new call replaces it"
            );
        }
        let commit = Commit {
            session,
            expected: old.as_ref().map(|l| &l.rev),
            state,
            reply: None,
            entries: std::slice::from_ref(entry),
            schedule,
            summary: None,
            wait: None,
        };
        if app.store.commit(commit).await? == Committed::Done {
            return Ok(());
        }
    }
    Err(Fault::Contention)
}
