//! The offline simulator: plays a call through the pure engine and describes what the caller hears.
//!
//! The same `step` the server runs, with a counter for a clock; what it prints is a transcript a
//! person can read, or (`--json`) the exact callflows the server would answer with. Pure: the
//! command line reads the inputs and the `--answers` file, and prints.

use std::collections::{BTreeMap, HashMap, VecDeque};

use super::tokens::{AT_FLAG, FROM_FLAG, RESUME_FROM_FLAG, SESSION_FLAG, VAR_FLAG};
use crate::callflow::{Action, Callflow};
use crate::engine::{
    self, Answer, CallInfo, CallState, Direction, Event, Outcome, Phase, Request, Step, Stepped,
};
use crate::machine::{Edge, Machine, NodeId, NodeKind};

/// Most inputs one simulation takes: far beyond any path a caller would press through.
pub const INPUTS_MAX: usize = 10_000;
/// The person's number when none is given: the caller of an inbound call, the callee of an
/// outbound one.
pub const PERSON: &str = "+15550000001";
/// The machine's number when it declares none.
pub const NUMBER: &str = "+15550000000";

/// One input of a simulated call: what the caller does, or how the next script's API answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    Event(Event),
    /// `@VALUE`, `@*`, `@!`, `@?VALUE` or `@?*`: the answer of the next script request (see `explore::answer_for_token`).
    Answer(String),
}

/// Answers a script's request when the inputs give no `@` answer (canned answers, the live API).
pub type Answerer<'a> = dyn FnMut(&Request) -> Result<Answer, String> + 'a;

/// The outbound guard's word on the number a transfer with a templated destination is filled
/// with: `Err(why)` refuses it, and the call takes the transfer's `failure` as on the node.
pub type Guard<'a> = dyn Fn(&str) -> Result<(), String> + 'a;

/// Parses a simulate input: keys, `-` for nothing, or an `@` answer for the next script.
pub fn parse_input_or_answer(s: &str) -> Result<Input, String> {
    let s = s.trim();
    if s.starts_with('@') && s.len() > 1 {
        return Ok(Input::Answer(s.to_string()));
    }
    parse_input(s).map(Input::Event)
}

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

/// What one event of a simulated call produced.
#[derive(Debug, Clone)]
pub struct Turn {
    /// A line per script request and its answer, then what the caller hears.
    pub lines: Vec<String>,
    /// The callflow the server would answer with.
    pub reply: Option<Callflow>,
}

/// One simulated call.
pub struct Simulation<'m> {
    machine: &'m Machine,
    state: CallState,
    clock_ms: u64,
    /// The fixed clock of `--at`; without it, the clock starts at the Unix epoch and one
    /// simulated second passes per event.
    at_ms: Option<u64>,
    /// The outbound guard templated transfers pass (`guarded`); none: every number is dialled.
    guard: Option<&'m Guard<'m>>,
    /// Where the caller's interrupted call stopped, for a call that opens with the resume offer
    /// (`resuming_from`).
    unfinished: Option<engine::Unfinished>,
}

impl<'m> Simulation<'m> {
    /// A new inbound call from `caller` to `number`.
    pub fn new(machine: &'m Machine, caller: &str, number: &str) -> Simulation<'m> {
        let call = CallInfo {
            session_id: "simulated-session".into(),
            direction: Direction::Inbound,
            source: caller.into(),
            destination: number.into(),
            call_id: Some("simulated-call".into()),
        };
        Simulation {
            machine,
            state: CallState::new(machine, call, 0),
            clock_ms: 0,
            at_ms: None,
            guard: None,
            unfinished: None,
        }
    }

    /// The same call with transfers to templated destinations asking `guard` first, as the node
    /// asks its outbound guard.
    pub fn guarded(mut self, guard: &'m Guard<'m>) -> Simulation<'m> {
        self.guard = Some(guard);
        self
    }

    /// The same call with session id `session` (`simulate --session`), which a split sticky by
    /// session reads.
    pub fn session(mut self, session: &str) -> Simulation<'m> {
        self.state.call.session_id = session.to_string();
        self
    }

    /// The same call with its clock fixed at `at_ms` for every step (`simulate --at`).
    pub fn at(mut self, at_ms: u64) -> Simulation<'m> {
        self.state.started_ms = at_ms;
        self.state.updated_ms = at_ms;
        self.at_ms = Some(at_ms);
        self
    }

    /// A new outbound call from the machine's `number` to `callee`, with `vars` set, and its
    /// opening: the callflow for 8x8's Send Callflow API (`makeCall`, then the start node's
    /// chain), made by `engine::start_outbound` as the node's `place_call` makes it, asking
    /// `answer` for each script request before the first prompt.
    pub fn outbound(
        machine: &'m Machine,
        (number, callee): (&str, &str),
        vars: &BTreeMap<String, String>,
        at_ms: Option<u64>,
        answer: &mut Answerer<'_>,
    ) -> Result<(Simulation<'m>, Turn), String> {
        let call = CallInfo {
            session_id: "simulated-session".into(),
            direction: Direction::Outbound,
            source: number.into(),
            destination: callee.into(),
            call_id: None,
        };
        let now = at_ms.unwrap_or(0);
        let (step, notes) =
            drive(|answers| engine::start_outbound(machine, call.clone(), vars, now, answers), answer)?;
        let sim = Simulation {
            machine,
            state: step.state.clone(),
            clock_ms: 0,
            at_ms,
            guard: None,
            unfinished: None,
        };
        // The scripts run before the call is placed.
        let mut lines = notes;
        lines.push(format!("makeCall: dials {callee} (caller ID {number})"));
        let actions = step.reply.as_ref().map_or(&[][..], |f| f.actions.as_slice());
        for (i, action) in actions.iter().enumerate().skip(1) {
            let node = step.actors.get(i).and_then(|&id| machine.node(id)).map_or("", |n| n.name.as_str());
            lines.push(format!("[{node}] {}", describe(action)));
        }
        Ok((sim, Turn { lines, reply: step.reply }))
    }

    /// The same call opening with the machine's resume offer (`simulate --resume-from NODE`), as
    /// for a caller whose interrupted call stopped at `node` (a node that waits for keys) with the
    /// machine's variables at their defaults and `vars` over them: `1` goes on there, anything else
    /// starts at `start`.
    pub fn resuming_from(
        mut self,
        node: &str,
        vars: &BTreeMap<String, String>,
    ) -> Result<Simulation<'m>, String> {
        let m = self.machine;
        if m.resume().is_none() {
            return Err(format!("machine `{}` has no `[resume]` table: it offers no resume", m.name()));
        }
        let id = m
            .node_id(node)
            .filter(|&id| m.node(id).is_some_and(|n| n.kind.capture().is_some()))
            .ok_or_else(|| format!("`{node}` is not a node of `{}` that waits for keys (a menu, an input, a script that asks)", m.name()))?;
        let offered = engine::offer(m, &self.state, self.state.started_ms).map_err(|e| e.to_string())?;
        self.state = offered.state;
        let mut saved = m.variables().clone();
        saved.extend(vars.iter().map(|(k, v)| (k.clone(), v.clone())));
        self.unfinished = Some(engine::Unfinished { node: id, vars: saved });
        Ok(self)
    }

    pub fn state(&self) -> &CallState {
        &self.state
    }

    /// Applies an event (one simulated second passes per event), asking `answer` for each script
    /// request on the way; also returns a line per request and its answer.
    pub fn apply_with(
        &mut self,
        event: &Event,
        answer: &mut Answerer<'_>,
    ) -> Result<(Step, Vec<String>), String> {
        self.clock_ms = self.at_ms.unwrap_or(self.clock_ms + 1000);
        let (machine, state, now) = (self.machine, &self.state, self.clock_ms);
        let unfinished = self.unfinished.as_ref();
        let (mut step, mut notes) =
            drive(|answers| engine::step_resuming(machine, state, event, now, answers, unfinished), answer)?;
        if let Some(node) = step.resumed {
            let name = machine.node(node).map_or("", |n| n.name.as_str());
            notes.push(format!("[resume] the call goes on at `{name}`, where the interrupted call stopped"));
        }
        // A number the guard refuses is never dialled: the call takes the transfer's `failure`
        // (as many times in a row as the node allows).
        let mut refused = 0;
        while let (Some(guard), Some(to)) = (self.guard, engine::templated_dial(machine, &step))
            && let Err(why) = guard(to)
        {
            let node = machine.node(step.state.node).map_or("", |n| n.name.as_str());
            if refused >= engine::DIALS_REFUSED_PER_STEP_MAX {
                return Err(engine::StepError::TooManyRefusedDials { node: node.to_string() }.to_string());
            }
            refused += 1;
            notes.push(format!(
                "[{node}] the outbound guard refuses {to}: {why}; the transfer takes `failure`"
            ));
            let state = &step.state;
            let (next, more) = drive(
                |answers| engine::step_with(machine, state, &Event::DialRefused, now, answers),
                answer,
            )?;
            notes.extend(more);
            step = next;
        }
        self.state = step.state.clone();
        Ok((step, notes))
    }

    /// Applies an event as `apply_with` does and describes it: what the caller hears, after a line
    /// per script request.
    pub fn play(&mut self, event: &Event, answer: &mut Answerer<'_>) -> Result<Turn, String> {
        let (step, mut lines) = self.apply_with(event, answer)?;
        let name = |id: NodeId| self.machine.node(id).map_or("", |n| n.name.as_str());
        lines.extend(
            step.edges
                .iter()
                .filter(|(_, e, _)| matches!(e, Edge::Rule(..) | Edge::Else | Edge::Variant(_)))
                .map(|(from, edge, to)| format!("[{}] {edge} -> {}", name(*from), name(*to))),
        );
        lines.extend(self.describe(&step));
        Ok(Turn { lines, reply: step.reply })
    }

    /// The transcript lines for one step: what the caller hears, node by node.
    pub fn describe(&self, step: &Step) -> Vec<String> {
        let Some(flow) = &step.reply else { return vec![] };
        let label = |i: usize| {
            let id = step.actors.get(i).copied().unwrap_or(step.state.node);
            self.machine.node(id).map_or_else(String::new, |n| format!("[{}] ", n.name))
        };
        let name = |id: NodeId| self.machine.node(id).map_or("", |n| n.name.as_str());
        // Machine-wide keys move the call without a branch of its node: say which one it took.
        let keys = step.edges.iter().filter(|(_, e, _)| matches!(e, Edge::Repeat(_) | Edge::Back(_)));
        let keys = keys.map(|(from, e, to)| format!("[{}] {e} to `{}`", name(*from), name(*to)));
        keys.chain(flow.actions.iter().enumerate().map(|(i, a)| format!("{}{}", label(i), describe(a))))
            .collect()
    }

    /// How the call stands: how it ended, or where it waits.
    pub fn status(&self) -> String {
        let node = self.machine.node(self.state.node).map_or("", |n| n.name.as_str());
        match (&self.state.phase, &self.state.outcome) {
            (Phase::Ended, Some(Outcome::HungUp)) => "call ended: hangup".into(),
            (Phase::Ended, Some(Outcome::Transferred { destination, status })) => {
                let status = status.as_ref().map_or_else(String::new, |s| format!(" ({s})"));
                format!("call ended: transferred to {destination}{status}")
            }
            (Phase::Ended, Some(Outcome::CallerLeft { status })) => {
                format!("call ended: the caller left ({status})")
            }
            (Phase::Ended, Some(Outcome::Unanswered { status })) => {
                format!("call ended: never answered ({status})")
            }
            (Phase::Ended, None) => "call ended".into(),
            (Phase::Bridged, _) => format!("call transferred at node `{node}`: the caller is bridged"),
            (Phase::AwaitingInput, _) => format!("no more input: the call waits at menu `{node}`"),
            (Phase::New, _) => "the call has not started".into(),
        }
    }
}

/// Runs a step to its end, asking `answer` for each request it stops at; also returns a line per
/// request and its answer, failure branch and cut value.
fn drive(
    mut step: impl FnMut(&[Answer]) -> Result<Stepped, engine::StepError>,
    answer: &mut Answerer<'_>,
) -> Result<(Step, Vec<String>), String> {
    let mut answers = Vec::new();
    let mut notes = Vec::new();
    loop {
        match step(&answers).map_err(|e| e.to_string())? {
            Stepped::Done(step) => {
                notes.extend(
                    step.script_failures.iter().map(|(node, why)| format!("[{node}] failure branch: {why}")),
                );
                notes.extend(step.cuts.iter().map(|c| {
                    format!("[{}] `{}` cut from {} to {} characters", c.node, c.var, c.chars, c.kept)
                }));
                return Ok((*step, notes));
            }
            Stepped::Needs(request) => {
                let got = answer(&request)?;
                notes.push(format!(
                    "[{}] asks {} {} -> {}",
                    request.node,
                    request.method,
                    request.url,
                    describe_answer(&got)
                ));
                answers.push(got);
            }
        }
    }
}

/// The message for a script request nothing answers.
pub fn needs_answer(r: &Request) -> String {
    format!(
        "node `{}` asks {} {}: give its answer after the keys (`@VALUE` for a response value, `@*` for another value, `@!` for no answer, `@?VALUE` for an answer without the stored keys), or pass --answers FILE or --live",
        r.node, r.method, r.url
    )
}

fn describe_answer(a: &Answer) -> String {
    match a {
        Answer::Http { status, body } => {
            format!("HTTP {status} {}", String::from_utf8_lossy(body).chars().take(120).collect::<String>())
        }
        Answer::Failed { reason } => format!("no answer ({reason})"),
    }
}

/// One action as the caller experiences it.
pub fn describe(action: &Action) -> String {
    match action {
        Action::Say(s) => format!("hears: \"{}\"", s.text),
        Action::SayAndCapture(c) => {
            let (min, max) = (c.min_digits.unwrap_or(1), c.max_digits.unwrap_or(crate::callflow::DIGITS_MAX));
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

/// An RFC 3339 time (`2026-11-23T10:00:00+08:00`) as milliseconds since the Unix epoch.
pub fn parse_at(text: &str) -> Result<u64, String> {
    let at: jiff::Timestamp = text
        .parse()
        .map_err(|e| format!("`{text}` is not an RFC 3339 time ({e}); e.g. 2026-11-23T10:00:00+08:00"))?;
    u64::try_from(at.as_millisecond()).map_err(|_| format!("`{text}` is before 1970"))
}

/// An explored path's tokens (`explore`'s, which `check` and `diff` print as `simulate`
/// commands) read as `simulate` reads that command line: its flags, then the inputs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PathCall {
    pub at_ms: Option<u64>,
    pub from: Option<String>,
    pub session: Option<String>,
    pub resume_from: Option<String>,
    /// The interrupted call's variables (`--var=NAME=VALUE`), only with `resume_from`.
    pub vars: BTreeMap<String, String>,
    pub inputs: Vec<Input>,
}

/// `NAME=VALUE` (`--var`'s value, of `simulate` and `call`).
pub fn parse_var(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((name, value)) if !name.is_empty() => Ok((name.to_string(), value.to_string())),
        _ => Err(format!("`{text}` is not NAME=VALUE (e.g. --var amount=42.50)")),
    }
}

/// Reads a path's tokens as `simulate` reads its arguments: a flag given twice, a flag
/// `simulate` does not take from a path, a `--var` without `--resume-from` and an input that is
/// not one are errors, as there.
pub fn parse_path(tokens: &[String]) -> Result<PathCall, String> {
    let mut call = PathCall::default();
    let once = |slot: &mut Option<String>, flag: &str, value: &str| match slot {
        Some(_) => Err(format!("`{}` is given twice", flag.trim_end_matches('='))),
        None => {
            *slot = Some(value.to_string());
            Ok(())
        }
    };
    let mut at = None;
    for token in tokens {
        if let Some(t) = token.strip_prefix(AT_FLAG) {
            once(&mut at, AT_FLAG, t)?;
        } else if let Some(c) = token.strip_prefix(FROM_FLAG) {
            once(&mut call.from, FROM_FLAG, c)?;
        } else if let Some(s) = token.strip_prefix(SESSION_FLAG) {
            once(&mut call.session, SESSION_FLAG, s)?;
        } else if let Some(n) = token.strip_prefix(RESUME_FROM_FLAG) {
            once(&mut call.resume_from, RESUME_FROM_FLAG, n)?;
        } else if let Some(v) = token.strip_prefix(VAR_FLAG) {
            let (name, value) = parse_var(v)?;
            if call.vars.insert(name.clone(), value).is_some() {
                return Err(format!("--var {name} is given twice"));
            }
        } else if token.starts_with("--") {
            return Err(format!("`{token}` is not a flag a path gives `simulate`"));
        } else {
            call.inputs.push(parse_input_or_answer(token)?);
        }
    }
    if !call.vars.is_empty() && call.resume_from.is_none() {
        return Err("--var gives a variable to the interrupted call --resume-from goes on with".into());
    }
    call.at_ms = at.as_deref().map(parse_at).transpose()?;
    Ok(call)
}

/// Plays a path (`parse_path`) on an inbound call to `m`'s first number, as `phonetree simulate
/// FILE TOKENS...` does: the transcript lines and the callflows, or the first error.
pub fn run_path(
    m: &Machine,
    path: &PathCall,
    guard: Option<&Guard<'_>>,
    fallback: &mut Answerer<'_>,
) -> Result<(Vec<String>, Vec<Callflow>), String> {
    let to = m.numbers().first().cloned().unwrap_or_else(|| NUMBER.into());
    let parties = Parties {
        from: path.from.as_deref().unwrap_or(PERSON),
        to: &to,
        outbound: false,
        vars: &path.vars,
        guard,
        session: path.session.as_deref(),
        resume_from: path.resume_from.as_deref(),
    };
    run(m, parties, &path.inputs, path.at_ms, fallback)
}

/// Who calls whom in a simulated call.
#[derive(Clone, Copy)]
pub struct Parties<'a> {
    /// Inbound: the caller. Outbound: the machine's number (the caller ID).
    pub from: &'a str,
    /// Inbound: the machine's number. Outbound: the callee.
    pub to: &'a str,
    /// phonetree places the call (the opening is the Send Callflow request).
    pub outbound: bool,
    /// The variables a placed call gives (`--var NAME=VALUE`); with `resume_from`, those the
    /// interrupted call had set.
    pub vars: &'a BTreeMap<String, String>,
    /// The outbound guard transfers to templated destinations ask (see `Simulation::guarded`).
    pub guard: Option<&'a Guard<'a>>,
    /// Inbound: the call's session id (`--session`; default `simulated-session`), which a split
    /// sticky by session reads.
    pub session: Option<&'a str>,
    /// Inbound: the call opens with the resume offer, as for a caller interrupted at this node
    /// (`--resume-from`).
    pub resume_from: Option<&'a str>,
}

/// A whole call at once: the transcript lines and the callflows, or the first error. `@` inputs
/// answer the next script request; other requests go to `fallback`.
pub fn run(
    machine: &Machine,
    parties: Parties<'_>,
    inputs: &[Input],
    at_ms: Option<u64>,
    fallback: &mut Answerer<'_>,
) -> Result<(Vec<String>, Vec<Callflow>), String> {
    let (from, to) = (parties.from, parties.to);
    let mut inputs = inputs.iter().take(INPUTS_MAX).peekable();
    let (mut sim, mut lines, mut flows, mut event) =
        if parties.outbound {
            // The `@` answers before the first keys answer the scripts before the first prompt.
            let mut queued = leading_answers(&mut inputs);
            let (sim, opening) =
                Simulation::outbound(machine, (from, to), parties.vars, at_ms, &mut |r| match queued
                    .pop_front()
                {
                    Some(token) => token_answer(machine, r, &token),
                    None => fallback(r),
                })?;
            let head = format!(
                "outbound call from {} (version {}) on {from} to {to}",
                machine.name(),
                machine.version()
            );
            let mut lines = vec![head];
            lines.extend(opening.lines);
            let sim = match parties.guard {
                Some(guard) => sim.guarded(guard),
                None => sim,
            };
            (sim, lines, opening.reply.into_iter().collect(), None)
        } else {
            let head =
                format!("call to {} (version {}) from {from} on {to}", machine.name(), machine.version());
            let mut sim = Simulation::new(machine, from, to);
            if let Some(session) = parties.session {
                sim = sim.session(session);
            }
            if let Some(at) = at_ms {
                sim = sim.at(at);
            }
            if let Some(guard) = parties.guard {
                sim = sim.guarded(guard);
            }
            if let Some(node) = parties.resume_from {
                sim = sim.resuming_from(node, parties.vars)?;
            }
            (sim, vec![head], Vec::new(), Some(Event::CallStarted))
        };
    let mut ignored = 0;
    loop {
        if let Some(e) = event.take() {
            // The `@` answers that follow the keys answer the scripts this step reaches.
            let mut queued = leading_answers(&mut inputs);
            let turn = sim.play(&e, &mut |r: &Request| match queued.pop_front() {
                Some(token) => token_answer(machine, r, &token),
                None => fallback(r),
            })?;
            lines.extend(turn.lines);
            flows.extend(turn.reply);
        }
        for input in inputs.by_ref() {
            match input {
                Input::Event(next) if !sim.state().ended() => {
                    lines.push(match next {
                        Event::Digits(d) => format!("caller presses {d}"),
                        _ => "caller presses nothing".into(),
                    });
                    event = Some(next.clone());
                    break;
                }
                _ => ignored += 1,
            }
        }
        if event.is_none() {
            break;
        }
    }
    lines.push(sim.status());
    if ignored > 0 {
        lines.push(format!("note: {ignored} input(s) after the end of the call were not used"));
    }
    Ok((lines, flows))
}

/// The `@` answers at the head of `inputs`, taken from it.
fn leading_answers<'a>(
    inputs: &mut std::iter::Peekable<impl Iterator<Item = &'a Input>>,
) -> VecDeque<String> {
    let mut queued = VecDeque::new();
    while let Some(Input::Answer(token)) = inputs.peek() {
        queued.push_back(token.clone());
        inputs.next();
    }
    queued
}

/// The answer an `@` token stands for at the script that asks.
fn token_answer(m: &Machine, r: &Request, token: &str) -> Result<Answer, String> {
    let script = match m.node_id(&r.node).and_then(|id| m.node(id)).map(|n| &n.kind) {
        Some(NodeKind::Script(s)) => s,
        _ => return Err(format!("`{token}` answers no script")),
    };
    crate::proof::explore::answer_for_token(script, token)
        .ok_or_else(|| format!("`{token}` is not an answer"))
}

/// Canned answers for script requests (`--answers FILE`): each node's answers in order, its last
/// one again when they run out.
#[derive(Debug, Default)]
pub struct Canned {
    by_node: HashMap<String, (Vec<Answer>, usize)>,
}

impl Canned {
    /// Each node's answers, in order.
    pub fn of(answers: BTreeMap<String, Vec<Answer>>) -> Canned {
        Canned { by_node: answers.into_iter().map(|(node, list)| (node, (list, 0))).collect() }
    }

    /// Parses `{"NODE": [{"status": 200, "body": {...}}, {"failed": "timeout"}, ...]}`.
    pub fn parse(text: &str) -> Result<Canned, String> {
        let nodes: BTreeMap<String, Vec<serde_json::Value>> =
            serde_json::from_str(text).map_err(|e| format!("expected {{\"NODE\": [answers]}}: {e}"))?;
        let mut by_node = HashMap::new();
        for (node, list) in nodes {
            let answers = list
                .iter()
                .map(canned_answer)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("node `{node}`: {e}"))?;
            by_node.insert(node, (answers, 0));
        }
        Ok(Canned { by_node })
    }

    /// The next answer for a request of script node `node`, if any is canned for it.
    pub fn next(&mut self, node: &str) -> Option<Answer> {
        let (list, next) = self.by_node.get_mut(node)?;
        let answer = list.get((*next).min(list.len().saturating_sub(1)))?.clone();
        *next += 1;
        Some(answer)
    }
}

/// One canned answer: `{"status": 200, "body": <JSON, or a string sent as it is>}` or
/// `{"failed": "reason"}`.
pub fn canned_answer(v: &serde_json::Value) -> Result<Answer, String> {
    if let Some(reason) = v.get("failed") {
        return Ok(Answer::Failed { reason: reason.as_str().unwrap_or("failed").to_string() });
    }
    let status =
        v.get("status").and_then(serde_json::Value::as_u64).ok_or("an answer needs `status` or `failed`")?;
    let body = match v.get("body") {
        None => Vec::new(),
        Some(serde_json::Value::String(s)) => s.clone().into_bytes(),
        Some(json) => serde_json::to_vec(json).unwrap_or_default(),
    };
    Ok(Answer::Http { status: u16::try_from(status).map_err(|_| "status out of range")?, body })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canned_answers_come_in_order_then_the_last_again() {
        let mut c =
            Canned::parse(r#"{"a": [{"status": 200, "body": {"x": 1}}, {"failed": "timeout"}], "b": []}"#)
                .unwrap();
        assert_eq!(c.next("a"), Some(Answer::Http { status: 200, body: br#"{"x":1}"#.to_vec() }));
        let timeout = Some(Answer::Failed { reason: "timeout".into() });
        assert_eq!((c.next("a"), c.next("a")), (timeout.clone(), timeout));
        assert_eq!((c.next("b"), c.next("c")), (None, None));
    }

    #[test]
    fn canned_answers_say_what_is_wrong() {
        let bad = |text| Canned::parse(text).unwrap_err();
        assert!(bad("[1]").starts_with(r#"expected {"NODE": [answers]}: "#));
        assert_eq!(bad(r#"{"n": [{"nope": 1}]}"#), "node `n`: an answer needs `status` or `failed`");
        assert_eq!(bad(r#"{"n": [{"status": 70000}]}"#), "node `n`: status out of range");
        assert_eq!(
            canned_answer(&serde_json::json!({"status": 204, "body": "raw"})).unwrap(),
            Answer::Http { status: 204, body: b"raw".to_vec() }
        );
    }

    fn tokens(words: &str) -> Vec<String> {
        words.split(' ').map(str::to_string).collect()
    }

    #[test]
    fn a_resumed_path_reads_as_simulate_reads_its_flags() {
        let p = parse_path(&tokens(
            "--at=2026-11-23T10:00:00+08:00 --from=+6591234567 --session=s-2 --resume-from=confirm_day --var=day=14 --var=note=a=b 1 2 @200 -",
        ))
        .unwrap();
        assert_eq!(p.at_ms, Some(parse_at("2026-11-23T10:00:00+08:00").unwrap()));
        assert_eq!((p.from.as_deref(), p.session.as_deref()), (Some("+6591234567"), Some("s-2")));
        assert_eq!(p.resume_from.as_deref(), Some("confirm_day"));
        let vars: Vec<(&str, &str)> = p.vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(vars, [("day", "14"), ("note", "a=b")]);
        let keys = |k: &str| Input::Event(Event::Digits(k.into()));
        assert_eq!(
            p.inputs,
            [keys("1"), keys("2"), Input::Answer("@200".into()), Input::Event(Event::NoInput)]
        );
        assert_eq!(parse_path(&[]).unwrap(), PathCall::default());
    }

    #[test]
    fn a_path_simulate_would_refuse_is_an_error() {
        let err = |words: &str| parse_path(&tokens(words)).unwrap_err();
        assert_eq!(err("--resume-from=a --resume-from=b 1"), "`--resume-from` is given twice");
        assert_eq!(err("--resume-from=a --var=x=1 --var=x=2 1"), "--var x is given twice");
        assert_eq!(
            err("--var=x=1 1"),
            "--var gives a variable to the interrupted call --resume-from goes on with"
        );
        assert_eq!(err("--resume-from=a --var=x 1"), "`x` is not NAME=VALUE (e.g. --var amount=42.50)");
        assert_eq!(err("--outbound 1"), "`--outbound` is not a flag a path gives `simulate`");
        assert!(err("--at=noon").starts_with("`noon` is not an RFC 3339 time"));
        assert!(err("1 x").starts_with("`x` is not a keypress"));
    }
}
