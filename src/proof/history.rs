//! Replay: plays a recorded call's inputs (its `engine::transcript`) through another machine
//! version and finds where the transcripts part.
//!
//! Pure: the command line reads exported calls.

use crate::engine::transcript::{Asked, Call, Entry, Happened, Resumption, Said, describe, said_line};
use crate::engine::{
    self, Answer, CallInfo, CallState, Direction, Event, Phase, SCRIPTS_PER_STEP_MAX, Stepped,
};
use crate::machine::Machine;

/// Most calls one replay reads.
pub const REPLAY_CALLS_MAX: usize = 10_000;

/// Where a replay's transcript first parts from the recorded one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    /// The entry (from 0).
    pub entry: usize,
    /// The event and the node it arrived at.
    pub event: String,
    pub node: String,
    pub recorded: String,
    pub replayed: String,
}

impl std::fmt::Display for Difference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let at = if self.node.is_empty() { String::new() } else { format!(" at node `{}`", self.node) };
        write!(
            f,
            "differs at entry {} ({}{at}): recorded {}; replayed {}",
            self.entry + 1,
            self.event,
            self.recorded,
            self.replayed
        )
    }
}

/// Plays a recorded call's inputs (events, script answers, times) through `m`; `None` when every
/// entry comes out the same.
pub fn replay(m: &Machine, call: &Call) -> Option<Difference> {
    replay_through(m, call).difference
}

/// A recorded call played through a machine to its last entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replayed {
    /// Where it first parts from the recording (`replay`'s answer).
    pub difference: Option<Difference>,
    /// How the replayed call stands after the last entry (`transcript::outcome`): `None` when the
    /// engine failed on the way.
    pub outcome: Option<&'static str>,
}

/// `replay`, going on past the first difference to see how the call ends on `m`.
pub fn replay_through(m: &Machine, call: &Call) -> Replayed {
    replay_into(m, call, &mut Vec::new())
}

/// A replay told as two transcripts (`Entry::lines`), the recorded one and the replayed one, each
/// up to and with the entry where they part (the whole call when they do not).
#[derive(Debug, Clone)]
pub struct Told {
    pub recorded: Vec<String>,
    pub replayed: Vec<String>,
    pub difference: Option<Difference>,
}

/// `replay`, with both transcripts told for a diff (`phonetree test` on an exported call).
pub fn replay_told(m: &Machine, call: &Call) -> Told {
    let mut replayed = Vec::new();
    let difference = replay_into(m, call, &mut replayed).difference;
    let kept = difference.as_ref().map_or(call.entries.len(), |d| d.entry + 1);
    Told {
        recorded: call.entries.iter().take(kept).flat_map(Entry::lines).collect(),
        replayed: replayed.iter().flat_map(Entry::lines).collect(),
        difference,
    }
}

/// `replay_through`, pushing each replayed entry onto `replayed` up to and with the first that
/// differs.
fn replay_into(m: &Machine, call: &Call, replayed: &mut Vec<Entry>) -> Replayed {
    let failed = |difference: Difference| Replayed { difference: Some(difference), outcome: None };
    let info = CallInfo {
        session_id: call.session.clone(),
        direction: if call.direction == "outbound" { Direction::Outbound } else { Direction::Inbound },
        source: call.source.clone(),
        destination: call.destination.clone(),
        call_id: None,
    };
    let mut state = CallState::new(m, info.clone(), call.started_ms);
    // A call placed (outbound) began with the start node's prompts sent through 8x8's API, not
    // in answer to a webhook: its first entry answers them.
    if call.entries.first().is_some_and(|e| e.event != Happened::CallStarted) {
        match engine::step(m, &state, &Event::CallStarted, call.started_ms) {
            Ok(step) => state = step.state,
            Err(e) => {
                let event = call.entries.first().map_or(Happened::NoInput, |e| e.event.clone());
                return failed(Difference {
                    entry: 0,
                    event: describe(&event),
                    node: String::new(),
                    recorded: "a call placed at the start node".into(),
                    replayed: format!("error: {e}"),
                });
            }
        }
    }
    // A call that opened with the resume offer (`[resume]`) waits at it from its start.
    if call
        .entries
        .first()
        .is_some_and(|e| e.event == Happened::CallStarted && e.resume == Some(Resumption::Offered))
    {
        match engine::offer(m, &state, call.started_ms) {
            Ok(step) => state = step.state,
            Err(e) => {
                return failed(Difference {
                    entry: 0,
                    event: describe(&Happened::CallStarted),
                    node: String::new(),
                    recorded: "the resume offer".into(),
                    replayed: format!("error: {e}"),
                });
            }
        }
    }
    let mut first = None;
    for (i, recorded) in call.entries.iter().enumerate() {
        // The offer's `1` went on where the interrupted call stopped, with the variables recorded.
        let unfinished = match (&recorded.resume, m.node_id(&recorded.entered)) {
            (Some(Resumption::WentOn { vars }), Some(node)) => {
                Some(engine::Unfinished { node, vars: vars.clone() })
            }
            _ => None,
        };
        let event = match &recorded.event {
            Happened::Masked => {
                engine::sensitive::stand_in(m, &state).unwrap_or_else(|| recorded.event.event())
            }
            happened => happened.event(),
        };
        let node = if state.phase == Phase::New {
            String::new()
        } else {
            m.node(state.node).map_or_else(String::new, |n| n.name.clone())
        };
        let differs = |recorded: String, replayed: String| Difference {
            entry: i,
            event: describe(&recorded_event(call, i)),
            node: node.clone(),
            recorded,
            replayed,
        };
        let mut answers: Vec<Answer> = recorded.requests.iter().map(Asked::answer).collect();
        // The opening of a call placed (its first entry since the opening's scripts are recorded)
        // is the Send Callflow request: `makeCall`, then the start node's chain.
        let placed = i == 0 && info.direction == Direction::Outbound && event == Event::CallStarted;
        let step = loop {
            let stepped = if placed {
                engine::start_outbound(m, info.clone(), &state.vars, recorded.at_ms, &answers)
            } else {
                engine::step_resuming(m, &state, &event, recorded.at_ms, &answers, unfinished.as_ref())
            };
            match stepped {
                Ok(Stepped::Done(step)) => break *step,
                Ok(Stepped::Needs(_)) if answers.len() <= SCRIPTS_PER_STEP_MAX => {
                    answers.push(Answer::Failed { reason: "not in the recording".into() });
                }
                Ok(Stepped::Needs(r)) => {
                    let here = differs("a step".into(), format!("too many requests at `{}`", r.node));
                    return failed(first.unwrap_or(here));
                }
                Err(e) => {
                    let here = differs(format!("entered `{}`", recorded.entered), format!("error: {e}"));
                    return failed(first.unwrap_or(here));
                }
            }
        };
        let got = Entry::of(m, &state, &event, &step, &answers);
        if first.is_none() {
            let differs_here = first_difference(recorded, &got);
            replayed.push(got);
            if let Some((was, is)) = differs_here {
                first = Some(differs(was, is));
            }
        }
        state = step.state;
    }
    Replayed { difference: first, outcome: Some(crate::engine::transcript::outcome(&state)) }
}

/// The entries whose keys were masked (a sensitive input), each as `entry N at `node``: a replay
/// plays the input's `example` for them.
pub fn masked(call: &Call) -> Vec<String> {
    (call.entries.iter().enumerate())
        .filter(|(_, e)| e.event == Happened::Masked)
        .map(|(i, e)| format!("entry {} at `{}`", i + 1, e.left))
        .collect()
}

fn recorded_event(call: &Call, i: usize) -> Happened {
    call.entries.get(i).map_or(Happened::NoInput, |e| e.event.clone())
}

/// What differs first between two entries of one event: the requests made, what was said, the
/// variants the splits gave, the node entered.
fn first_difference(recorded: &Entry, replayed: &Entry) -> Option<(String, String)> {
    let req = |a: &Asked| format!("{} {} (node `{}`)", a.method, a.url, a.node);
    for k in 0..recorded.requests.len().max(replayed.requests.len()) {
        let (was, is) = (recorded.requests.get(k), replayed.requests.get(k));
        let same = match (was, is) {
            // Hosts differ between deployments (a machine's `api` setting): the path is compared.
            (Some(a), Some(b)) => {
                (&a.node, &a.method, url_path(&a.url)) == (&b.node, &b.method, url_path(&b.url))
            }
            _ => false,
        };
        if !same {
            let show =
                |a: Option<&Asked>| a.map_or_else(|| "no request".into(), |a| format!("request {}", req(a)));
            return Some((show(was), show(is)));
        }
    }
    if recorded.said != replayed.said {
        let k = (0..recorded.said.len().max(replayed.said.len()))
            .find(|&k| recorded.said.get(k) != replayed.said.get(k))
            .unwrap_or(0);
        let show = |s: Option<&Said>| {
            s.map_or_else(|| "nothing more said".into(), |s| format!("[{}] {}", s.node, said_line(s)))
        };
        return Some((show(recorded.said.get(k)), show(replayed.said.get(k))));
    }
    if recorded.variants != replayed.variants {
        let show = |e: &Entry| {
            let v: Vec<String> =
                e.variants.iter().map(|v| format!("[{}] variant {}", v.node, v.variant)).collect();
            if v.is_empty() { "no split".to_string() } else { v.join(", ") }
        };
        return Some((show(recorded), show(replayed)));
    }
    if recorded.entered != replayed.entered {
        return Some((format!("entered `{}`", recorded.entered), format!("entered `{}`", replayed.entered)));
    }
    None
}

/// A URL's path: what follows `scheme://host[:port]`.
fn url_path(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    rest.find('/').map_or("/", |i| &rest[i..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_read_from_urls() {
        assert_eq!(url_path("http://127.0.0.1:8090/orders/1"), "/orders/1");
        assert_eq!(url_path("http://127.0.0.1:8090"), "/");
    }
}
