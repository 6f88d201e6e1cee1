//! Callbacks: what a transfer's `on_unanswered` schedules when 8x8's summary says the bridged leg
//! was busy, not answered or failed, and what the summary of a callback does to it (the next
//! attempt, or done). Written in the same durable write as the summary's closing of the call
//! (`Commit::schedule`); `scheduler` places them.

use tracing::{info, warn};

use super::App;
use crate::engine::{CallState, Direction, Outcome};
use crate::machine::Machine;
use crate::machine::callback::UNANSWERED_STATUSES;
use crate::store::{Scheduled, ScheduledState, StoreError};

/// The callback a summary asks for, or the next step of the callback this call was: `before` is
/// the call as loaded, `after` as the summary leaves it, `machine` the version it ran on. With it,
/// what happened to it, as `phonetree_callbacks_total` counts it once the summary's commit is
/// durable (`scheduled`, `rescheduled`, `answered`, `unanswered`: its attempts ran out).
pub(super) async fn after_summary(
    app: &App,
    machine: &Machine,
    before: &CallState,
    after: &CallState,
    now: u64,
) -> Result<Option<(Scheduled, &'static str)>, StoreError> {
    let session = before.call.session_id.as_str();
    if let Some(Outcome::Transferred { status: Some(status), .. }) = &after.outcome
        && UNANSWERED_STATUSES.contains(&status.as_str())
        && before.call.direction == Direction::Inbound
        && let Some(cb) = machine.on_unanswered(before.node)
    {
        let Some((due, until)) = cb.due(machine.timezone(), now) else {
            warn!(session, "a callback's window never opens: none scheduled");
            return Ok(None);
        };
        let node = machine.node(before.node).map_or_else(String::new, |n| n.name.clone());
        info!(session, machine = machine.name(), node, status, due_ms = due, "callback scheduled");
        let call = Scheduled {
            id: format!("cb-{session}"),
            origin: session.to_string(),
            machine: cb.machine.clone(),
            to: before.call.source.clone(),
            due_ms: due,
            valid_until_ms: until,
            attempt: 1,
            attempts: cb.attempts,
            from_machine: machine.name().to_string(),
            from_version: machine.version(),
            node,
            state: ScheduledState::Pending,
            session: None,
            note: Some(status.clone()),
            updated_ms: now,
        };
        return Ok(Some((call, "scheduled")));
    }
    if before.call.direction != Direction::Outbound {
        return Ok(None);
    }
    let Some(mut call) = app.store.scheduled_by_session(session).await? else { return Ok(None) };
    if call.state != ScheduledState::Sent {
        return Ok(None);
    }
    call.updated_ms = now;
    let event = match &after.outcome {
        Some(Outcome::Unanswered { status }) if call.attempt < call.attempts => {
            let from =
                app.registry.version(app.store.as_ref(), &call.from_machine, call.from_version).await.ok();
            let due = from.as_ref().and_then(|m| {
                let node = m.node_id(&call.node)?;
                m.on_unanswered(node)?.due(m.timezone(), now)
            });
            match due {
                Some((due, until)) => {
                    call.attempt = call.attempt.saturating_add(1);
                    call.state = ScheduledState::Pending;
                    (call.due_ms, call.valid_until_ms) = (due, until);
                    call.note = Some(format!("attempt {} not answered: {status}", call.attempt - 1));
                    info!(
                        id = call.id,
                        attempt = call.attempt,
                        due_ms = due,
                        "callback not answered: rescheduled"
                    );
                    "rescheduled"
                }
                None => {
                    call.state = ScheduledState::Done;
                    call.note =
                        Some(format!("not answered ({status}); its transfer's `on_unanswered` is gone"));
                    "unanswered"
                }
            }
        }
        Some(Outcome::Unanswered { status }) => {
            call.state = ScheduledState::Done;
            call.note = Some(format!("not answered ({status}) after {} attempts", call.attempts));
            info!(id = call.id, "callback not answered: its attempts ran out");
            "unanswered"
        }
        _ => {
            call.state = ScheduledState::Done;
            call.note = Some("answered".into());
            "answered"
        }
    };
    Ok(Some((call, event)))
}
