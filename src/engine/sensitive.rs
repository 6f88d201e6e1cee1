//! Sensitive call variables at run time (`sensitive = true`): the keys of a sensitive input are
//! shown masked wherever an event is shown or recorded, sensitive values are masked in recorded
//! script answers, and every sensitive variable is forgotten when the step that set it ends.

use super::{CallState, Event, Phase};
use crate::machine::{Machine, NodeKind};

/// What a transcript, a log or a recorded answer shows instead of a sensitive value.
pub const MASK: &str = "[masked]";

/// Whether `event` carries the keys of a sensitive input: a call waiting at one gets keys.
pub fn masks(m: &Machine, st: &CallState, event: &Event) -> bool {
    matches!(event, Event::Digits(_))
        && st.phase == Phase::AwaitingInput
        && matches!(m.node(st.node).map(|n| &n.kind), Some(NodeKind::Input(i)) if m.sensitive().contains(&i.variable))
}

/// The event as logs show it: a sensitive input's keys masked.
pub fn shown(m: &Machine, st: &CallState, event: &Event) -> String {
    if masks(m, st, event) { format!("keys {MASK}") } else { event.to_string() }
}

/// What a replay plays for masked keys at the input the call waits at: the input's `example`,
/// which the input accepts (so the replay goes on as the call did, its recorded script answers
/// deciding the rest). `None` when the call does not wait at an input.
pub fn stand_in(m: &Machine, st: &CallState) -> Option<Event> {
    match m.node(st.node).map(|n| &n.kind) {
        Some(NodeKind::Input(i)) => Some(Event::Digits(i.example.clone())),
        _ => None,
    }
}

/// Forgets every sensitive variable: the state a step leaves (and the store keeps) holds none.
pub(super) fn forget(m: &Machine, st: &mut CallState) {
    if !m.sensitive().is_empty() {
        st.vars.retain(|name, _| !m.sensitive().contains(name));
    }
}

/// A script answer's body as a transcript keeps it: the values of the script's sensitive stored
/// keys replaced by `MASK` (a body that is not JSON is dropped whole). `None`: nothing to mask.
pub(super) fn masked_body(m: &Machine, node: &str, body: &[u8]) -> Option<Vec<u8>> {
    let script = match m.node_id(node).and_then(|id| m.node(id)).map(|n| &n.kind) {
        Some(NodeKind::Script(s)) => s,
        _ => return None,
    };
    let paths: Vec<&[String]> =
        script.store.iter().filter(|s| m.sensitive().contains(&s.var)).map(|s| s.path.as_slice()).collect();
    if paths.is_empty() {
        return None;
    }
    let Ok(mut json) = serde_json::from_slice::<serde_json::Value>(body) else { return Some(Vec::new()) };
    for path in paths {
        let mut at = Some(&mut json);
        for part in path {
            at = match at {
                Some(serde_json::Value::Object(map)) => map.get_mut(part),
                Some(serde_json::Value::Array(items)) => {
                    part.parse::<usize>().ok().and_then(|i| items.get_mut(i))
                }
                _ => None,
            };
        }
        if let Some(value) = at {
            *value = serde_json::Value::String(MASK.into());
        }
    }
    Some(serde_json::to_vec(&json).unwrap_or_default())
}
