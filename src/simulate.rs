//! The offline simulator: plays a call through the pure engine and describes what the caller hears.
//!
//! The same `step` the server runs, with a counter for a clock; what it prints is a transcript a
//! person can read, or (`--json`) the exact callflows the server would answer with.

use crate::engine::callflow::{Action, Callflow};
use crate::engine::{self, CallInfo, CallState, Direction, Event, Outcome, Phase, Step, StepError};
use crate::machine::Machine;

/// Most inputs one simulation takes: far beyond any path a caller would press through.
pub const INPUTS_MAX: usize = 10_000;

/// What the caller does at a prompt: press keys, or nothing (`-`).
pub fn parse_input(s: &str) -> Result<Event, String> {
    let s = s.trim();
    if s == "-" {
        return Ok(Event::NoInput);
    }
    if s.is_empty() || !s.chars().all(|c| c.is_ascii_digit() || c == '*' || c == '#') {
        return Err(format!("`{s}` is not a keypress: use digits, `*` and `#`, or `-` for no input"));
    }
    if s.len() > engine::KEYPRESS_CHARS_MAX {
        return Err(format!("`{s}` is longer than {} keys", engine::KEYPRESS_CHARS_MAX));
    }
    Ok(Event::Digits(s.to_string()))
}

/// One simulated call.
pub struct Simulation<'m> {
    machine: &'m Machine,
    state: CallState,
    clock_ms: u64,
}

impl<'m> Simulation<'m> {
    /// A new inbound call from `caller` to `number`.
    pub fn new(machine: &'m Machine, caller: &str, number: &str) -> Simulation<'m> {
        let call = CallInfo {
            session_id: "simulated-session".into(),
            direction: Direction::Inbound,
            source: caller.into(),
            destination: number.into(),
        };
        Simulation { machine, state: CallState::new(machine, call, 0), clock_ms: 0 }
    }

    pub fn state(&self) -> &CallState {
        &self.state
    }

    /// Applies an event; one simulated second passes per event.
    pub fn apply(&mut self, event: &Event) -> Result<Step, StepError> {
        self.clock_ms += 1000;
        let step = engine::step(self.machine, &self.state, event, self.clock_ms)?;
        self.state = step.state.clone();
        Ok(step)
    }

    /// The transcript lines for one step: what the caller hears, node by node.
    pub fn describe(&self, step: &Step) -> Vec<String> {
        let Some(flow) = &step.reply else { return vec![] };
        let label = |i: usize| {
            let id = step.entered.get(i).copied().unwrap_or(step.state.node);
            self.machine.node(id).map_or_else(String::new, |n| format!("[{}] ", n.name))
        };
        flow.actions.iter().enumerate().map(|(i, a)| format!("{}{}", label(i), describe(a))).collect()
    }

    /// How the call stands: how it ended, or where it waits.
    pub fn status(&self) -> String {
        let node = self.machine.node(self.state.node).map_or("", |n| n.name.as_str());
        match (&self.state.phase, &self.state.outcome) {
            (Phase::Ended, Some(Outcome::HungUp)) => "call ended: hangup".into(),
            (Phase::Ended, Some(Outcome::Transferred { destination })) => {
                format!("call ended: transferred to {destination}")
            }
            (Phase::Ended, Some(Outcome::CallerLeft { status })) => {
                format!("call ended: the caller left ({status})")
            }
            (Phase::Ended, None) => "call ended".into(),
            (Phase::Bridged, _) => format!("call transferred at node `{node}`: the caller is bridged"),
            (Phase::AwaitingInput, _) => format!("no more input: the call waits at menu `{node}`"),
            (Phase::New, _) => "the call has not started".into(),
        }
    }
}

/// One action as the caller experiences it.
pub fn describe(action: &Action) -> String {
    match action {
        Action::Say(s) => format!("hears: \"{}\"", s.text),
        Action::SayAndCapture(c) => {
            let (min, max) =
                (c.min_digits.unwrap_or(1), c.max_digits.unwrap_or(crate::engine::callflow::DIGITS_MAX));
            let digits = if min == max {
                format!("{min} digit{}", if min == 1 { "" } else { "s" })
            } else {
                format!("{min} to {max} digits")
            };
            let hash = if c.complete_on_hash != Some(false) && max > 1 { ", # to finish" } else { "" };
            format!("hears: \"{}\" (press {digits}{hash})", c.prompt_message)
        }
        Action::PlayFile(p) => format!("hears the file {}", p.file_url),
        Action::MakeCall(m) => format!("transfer: bridged to {} (caller ID {})", m.destination, m.source),
        Action::Hangup => "hangup".into(),
    }
}

/// A whole call at once: the transcript lines and the callflows, or the first engine error.
pub fn run(
    machine: &Machine,
    caller: &str,
    number: &str,
    inputs: &[Event],
) -> Result<(Vec<String>, Vec<Callflow>), StepError> {
    let mut sim = Simulation::new(machine, caller, number);
    let mut lines =
        vec![format!("call to {} (version {}) from {caller} on {number}", machine.name(), machine.version())];
    let mut flows = Vec::new();
    let first = sim.apply(&Event::CallStarted)?;
    lines.extend(sim.describe(&first));
    flows.extend(first.reply);
    let mut ignored = 0;
    for input in inputs.iter().take(INPUTS_MAX) {
        if sim.state().ended() {
            ignored += 1;
            continue;
        }
        lines.push(match input {
            Event::Digits(d) => format!("caller presses {d}"),
            _ => "caller presses nothing".into(),
        });
        let step = sim.apply(input)?;
        lines.extend(sim.describe(&step));
        flows.extend(step.reply);
    }
    lines.push(sim.status());
    if ignored > 0 {
        lines.push(format!("note: {ignored} input(s) after the end of the call were not used"));
    }
    Ok((lines, flows))
}
