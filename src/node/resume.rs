//! Resuming an interrupted call (a machine's `[resume]`): when a call ends at a node that waits
//! for keys (the caller hung up mid-menu, or the TTL closed it), the store keeps where it was with
//! its variables (`store::Unfinished`, one per caller and machine); when the caller calls one of
//! the machine's numbers again within the window, the new call opens with the offer
//! (`engine::offer`), and `1` goes on there (`engine::step_resuming`). The record goes once the
//! offer is answered, when a later call of the caller ends normally, or with the retention.
//!
//! Only a record of the very version a new call runs on is offered: a machine edited meanwhile
//! may have renamed, removed or changed the node and the variables it reads, so the call starts
//! at `start` (and the record stays until used, replaced or retained away).

use tracing::debug;

use super::App;
use super::throttle::warn_limited;
use crate::engine::{self, CallState, Outcome, Phase};
use crate::machine::Machine;
use crate::store::{StoreError, Unfinished};

/// Where `caller`'s interrupted call on `machine` can go on at `now`, if it can: the machine has
/// `[resume]`, the call ended within its window, on this version, at a node that waits for keys.
pub(super) async fn pending(
    app: &App,
    machine: &Machine,
    caller: &str,
    now: u64,
) -> Result<Option<engine::Unfinished>, StoreError> {
    let Some(resume) = machine.resume() else { return Ok(None) };
    let kept = match app.store.unfinished(machine.name(), caller).await {
        Ok(Some(kept)) => kept,
        Ok(None) => return Ok(None),
        // A record this phonetree cannot read (a newer format) offers nothing: the call starts
        // at `start`, and the next interruption replaces it.
        Err(e @ StoreError::Decode { .. }) => {
            warn_limited!(machine = machine.name(), error = %e, "an interrupted call not offered: unreadable");
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    // An end a little ahead of this node's clock (nodes' clocks differ slightly) is just now.
    let within = now.saturating_sub(kept.ended_ms) <= resume.within_ms;
    if !within || kept.version != machine.version() {
        debug!(
            machine = machine.name(),
            within, "an interrupted call not offered: past the window or another version"
        );
        return Ok(None);
    }
    let node = machine
        .node_id(&kept.node)
        .filter(|&id| machine.node(id).is_some_and(|n| n.kind.capture().is_some()));
    Ok(node.map(|node| engine::Unfinished { node, vars: kept.vars }))
}

/// For a step from `before` to `after`: when it ends the call, keeps the call as its caller's
/// interrupted one (it ends waiting for keys) or forgets the caller's (it ends any other way);
/// once a resume offer is answered, forgets it. Durable on return. A summary or the sweep calls
/// it before it closes the call (so a retry finds the call open and keeps it again); a webhook
/// after its commit (an offer answered is forgotten only once the answer is durable).
pub(super) async fn stepped(
    app: &App,
    machine: &Machine,
    (before, after): (&CallState, &CallState),
    now: u64,
) -> Result<(), StoreError> {
    if machine.resume().is_none() {
        return Ok(());
    }
    let caller = after.call.caller();
    let answered_offer = before.offering() && !after.offering();
    let ended = before.outcome.is_none() && after.outcome.is_some();
    // Hung up at the offer itself: the interrupted call is still there to go on with.
    if ended && before.offering() {
        return Ok(());
    }
    if ended
        && matches!(after.outcome, Some(Outcome::CallerLeft { .. }))
        && before.phase == Phase::AwaitingInput
        && machine.node(before.node).is_some_and(|n| n.kind.capture().is_some())
    {
        let node = machine.node(before.node).map_or_else(String::new, |n| n.name.clone());
        let vars = before.vars.iter().filter(|(k, _)| !machine.sensitive().contains(*k));
        let kept = Unfinished {
            machine: machine.name().to_string(),
            version: machine.version(),
            node,
            vars: vars.map(|(k, v)| (k.clone(), v.clone())).collect(),
            session: after.call.session_id.clone(),
            ended_ms: now,
        };
        app.store.put_unfinished(caller, &kept).await?;
        debug!(machine = machine.name(), node = %kept.node, "interrupted call kept for a resume offer");
    } else if ended || answered_offer {
        app.store.remove_unfinished(machine.name(), caller).await?;
    }
    Ok(())
}
