//! Offline proof of a machine: every input class at every reachable state, played through the pure
//! engine, with the properties a call relies on checked at each step.
//!
//! A call's control state is (node, phase, tries); everything else in `CallState` (sequence
//! numbers, path, keypress, clock) changes what is said, not where the call can go. So the
//! reachable control states are finite (at most nodes × tries × phases) and `explore` visits all
//! of them, running `engine::step` on each input class: each branch key (with and without `#`), a
//! key no branch takes, keypad junk, `#` alone, no input, and the session summary. That proves, for
//! every caller: every reply is a valid 8x8 callflow, tries stay under their limit, every node is
//! reachable and every edge is taken, and from every state some input leads to an end (no trap).
//! Then the simple paths through those states (no state twice) are walked to count them and find
//! the longest, which must stay within `DEPTH_MAX` answers.
//!
//! Every violation comes with the inputs that reach it, replayable with `phonetree simulate`.

use std::collections::{HashMap, HashSet, VecDeque};

use serde::Serialize;

use crate::callflow::{self, Use};
use crate::engine::{self, Answer, CallInfo, CallState, Direction, Event, Phase, Stepped};
use crate::machine::{Diagnostic, Edge, Machine, NodeId, NodeKind, Script, Severity, Source};

/// Most answers a caller may give on one path (without repeating a state) before the call ends.
/// A menu tree deeper than this is a design error: no caller listens through 64 prompts.
pub const DEPTH_MAX: usize = 64;
/// Most simple paths counted per machine. Beyond it the count and the longest path are lower
/// bounds (the report says so); every state and transition is still visited, so the per-step
/// properties stay proven.
pub const PATHS_MAX: u64 = 1_000_000;
/// The keys 8x8 can capture at most (25 digits): the junk input class.
const JUNK: &str = "1234567890123456789012345";

/// What `explore` found for one machine.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub machine: String,
    pub version: String,
    pub nodes: usize,
    pub edges: usize,
    pub edges_covered: usize,
    /// Reachable control states (node, phase, tries).
    pub states: usize,
    /// Steps run: every input class at every state.
    pub transitions: usize,
    /// Simple paths from the start to an end or back to a state already on the path.
    pub paths: u64,
    /// False when `PATHS_MAX` stopped the count.
    pub paths_complete: bool,
    /// The inputs of the longest simple path.
    pub longest: Vec<String>,
    pub violations: Vec<Violation>,
}

/// Which property does not hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// From this node no input leads to an end: the call can never end.
    Trap,
    /// A caller can answer `DEPTH_MAX` prompts without the call ending.
    TooLong,
    /// A reply 8x8 would reject, or one that waits without a clientActionId.
    InvalidReply,
    /// A node's tries were exceeded, or carried over to another node.
    Tries,
    /// The engine failed, or broke one of its own invariants.
    Engine,
    /// No input reaches the node.
    Unreachable,
    /// No input takes the edge.
    UncoveredEdge,
}

/// A property that does not hold, and how to see it happen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    pub kind: Kind,
    pub node: String,
    pub message: String,
    /// What the caller presses, from the start of the call (`-`: nothing).
    pub inputs: Vec<String>,
}

impl Report {
    pub fn proven(&self) -> bool {
        self.violations.is_empty()
    }
}

/// The command that plays `inputs` on `machine` (a file, or a name in `machines/`), quoted for a
/// POSIX shell where it must be (`*` would glob, a leading `#` would start a comment).
pub fn replay(machine: &str, inputs: &[String]) -> String {
    let quote = |word: &str| {
        if !word.is_empty() && word.chars().all(|c| c.is_ascii_alphanumeric() || "-_./+".contains(c)) {
            word.to_string()
        } else {
            format!("'{}'", word.replace('\'', r"'\''"))
        }
    };
    let mut cmd = format!("phonetree simulate {}", quote(machine));
    for i in inputs {
        cmd.push(' ');
        cmd.push_str(&quote(i));
    }
    cmd
}

/// A call's control state: where it is, what it waits for, tries used.
type Key = (NodeId, u8, u8);

fn key(s: &CallState) -> Key {
    let phase = match s.phase {
        Phase::New => 0,
        Phase::AwaitingInput => 1,
        Phase::Bridged => 2,
        Phase::Ended => 3,
    };
    (s.node, phase, if s.closed { u8::MAX } else { s.tries })
}

struct Visited {
    state: CallState,
    /// The state it was first reached from, and the inputs (keys, then any script answers).
    parent: Option<(usize, Vec<String>)>,
    /// Caller transitions (no summaries): inputs → state, one per distinct target.
    next: Vec<(Vec<String>, usize)>,
}

/// Explores `m` completely. Pure: no I/O, a fixed clock.
pub fn explore(m: &Machine) -> Report {
    let mut r = Report {
        machine: m.name().to_string(),
        version: m.version().short(),
        nodes: m.node_count(),
        edges: m.edge_count(),
        edges_covered: 0,
        states: 0,
        transitions: 0,
        paths: 0,
        paths_complete: true,
        longest: Vec::new(),
        violations: Vec::new(),
    };
    let number = m.numbers().first().cloned().unwrap_or_else(|| "+15550000000".into());
    let call = |direction| CallInfo {
        session_id: "explore".into(),
        direction,
        source: if direction == Direction::Inbound { "+15550000001".into() } else { number.clone() },
        destination: if direction == Direction::Inbound { number.clone() } else { "+15550000001".into() },
        call_id: Some("explore-call".into()),
    };
    let start_name = m.node(m.start()).map_or_else(String::new, |n| n.name.clone());
    match engine::start_outbound(m, call(Direction::Outbound), 0) {
        Ok(step) => {
            for v in step.reply.iter().flat_map(|f| callflow::validate(f, Use::OutboundRequest)) {
                r.violations.push(violation(
                    Kind::InvalidReply,
                    &start_name,
                    format!("outbound opening: {v}"),
                    &[],
                ));
            }
        }
        // A script before the first prompt needs its API to place an outbound call: not an error
        // of the machine (inbound calls run it), and `phonetree call` says so.
        Err(engine::StepError::NeedsAnswer(_)) => {}
        Err(e) => {
            r.violations.push(violation(Kind::Engine, &start_name, format!("outbound opening: {e}"), &[]))
        }
    }
    // Every reachable control state, breadth first from the call's start, so each one's parent
    // path is a shortest one.
    let root = CallState::new(m, call(Direction::Inbound), 0);
    let mut entered: HashSet<NodeId> = HashSet::new();
    let mut covered: HashSet<(NodeId, Edge)> = HashSet::new();
    let mut visited = vec![Visited { state: root, parent: None, next: Vec::new() }];
    let mut index: HashMap<Key, usize> = HashMap::from([(key(&visited[0].state), 0)]);
    let mut queue = VecDeque::from([0usize]);
    // One report per node for a failing engine, and one for broken invariants.
    let (mut failed, mut broken): (HashSet<NodeId>, HashSet<NodeId>) = Default::default();
    while let Some(at) = queue.pop_front() {
        let state = visited[at].state.clone();
        if state.closed {
            continue;
        }
        for event in inputs(m, &state) {
            for (answered, result) in steps(m, &state, &event) {
                r.transitions += 1;
                let mut tokens = token(&event);
                tokens.extend(answered);
                let path = || {
                    let mut p = inputs_to(&visited, at);
                    p.extend(tokens.iter().cloned());
                    p
                };
                let node = m.node(state.node).map_or_else(String::new, |n| n.name.clone());
                let step = match result {
                    Ok(step) => step,
                    Err(e) => {
                        if failed.insert(state.node) {
                            r.violations.push(violation(Kind::Engine, &node, e.to_string(), &path()));
                        }
                        continue;
                    }
                };
                if let Some(message) = broken_invariant(m, &state, &event, &step) {
                    if broken.insert(state.node) {
                        r.violations.push(violation(message.0, &node, message.1, &path()));
                    }
                    continue;
                }
                entered.extend(step.entered.iter().copied());
                covered.extend(step.edges.iter().map(|(f, e, _)| (*f, e.clone())));
                let k = key(&step.state);
                let to = *index.entry(k).or_insert_with(|| {
                    visited.push(Visited {
                        state: step.state.clone(),
                        parent: Some((at, tokens.clone())),
                        next: vec![],
                    });
                    queue.push_back(visited.len() - 1);
                    visited.len() - 1
                });
                let is_summary = matches!(event, Event::SessionEnded { .. });
                if !is_summary && !visited[at].next.iter().any(|(_, t)| *t == to) {
                    visited[at].next.push((tokens, to));
                }
            }
        }
    }
    r.states = visited.len();
    r.edges_covered = covered.len();

    for id in m.graph().node_indices() {
        if !entered.contains(&id) {
            let name = &m.graph()[id].name;
            r.violations.push(violation(Kind::Unreachable, name, "no input reaches this node".into(), &[]));
        }
    }
    for e in m.graph().edge_indices() {
        let Some((from, _)) = m.graph().edge_endpoints(e) else { continue };
        let label = &m.graph()[e];
        if !covered.contains(&(from, label.clone())) && entered.contains(&from) {
            let name = &m.graph()[from].name;
            r.violations.push(violation(
                Kind::UncoveredEdge,
                name,
                format!("no input takes the `{label}` edge"),
                &[],
            ));
        }
    }
    traps(m, &visited, &mut r);
    paths(m, &visited, &mut r);
    r
}

fn violation(kind: Kind, node: &str, message: String, inputs: &[String]) -> Violation {
    Violation { kind, node: node.to_string(), message, inputs: inputs.to_vec() }
}

impl Violation {
    /// The violation as a diagnostic at its node in `source`, with the inputs that replay it.
    pub fn diagnostic(&self, source: &Source) -> Diagnostic {
        let replay = format!("a caller gets there with `{}`", replay(&source.file, &self.inputs));
        let fix = match self.kind {
            Kind::Trap => {
                Some("give one of its branches (or `invalid`) a way to a `hangup` or `transfer` node")
            }
            Kind::TooLong => Some(
                "shorten the menu tree, or give deep menus a branch that ends the call or goes to an agent",
            ),
            _ => None,
        };
        Diagnostic {
            severity: Severity::Error,
            file: source.file.clone(),
            position: crate::machine::compile::locate_node(source, &self.node),
            node: (!self.node.is_empty()).then(|| self.node.clone()),
            field: None,
            message: self.message.clone(),
            hint: Some(match fix {
                Some(fix) => format!("{fix}; {replay}"),
                None => replay,
            }),
        }
    }
}

/// A property a step must keep, broken: (kind, message).
fn broken_invariant(
    m: &Machine,
    before: &CallState,
    event: &Event,
    step: &engine::Step,
) -> Option<(Kind, String)> {
    let after = &step.state;
    match (&step.reply, event) {
        (None, Event::SessionEnded { .. }) => {}
        (None, _) => return Some((Kind::InvalidReply, format!("`{event}` got no reply"))),
        (Some(flow), _) => {
            if let Some(v) = callflow::validate(flow, Use::WebhookReply).first() {
                return Some((Kind::InvalidReply, format!("8x8 would reject the reply: {v}")));
            }
            let waits = matches!(after.phase, Phase::AwaitingInput | Phase::Bridged);
            if waits != flow.client_action_id.is_some() {
                return Some((Kind::InvalidReply, "a reply that waits must carry a clientActionId".into()));
            }
        }
    }
    if let Some(limit) = m.node(after.node).and_then(|n| n.kind.capture()).map(|c| c.tries)
        && after.phase == Phase::AwaitingInput
        && after.tries >= limit
    {
        return Some((Kind::Tries, format!("{} tries used of {limit}", after.tries)));
    }
    if after.node != before.node && after.tries != 0 {
        return Some((Kind::Tries, "tries carried over to another node".into()));
    }
    if after.path.len() > engine::PATH_LEN_MAX {
        return Some((Kind::Engine, format!("path of {} nodes kept", after.path.len())));
    }
    if after.phase == Phase::Ended && after.outcome.is_none() {
        return Some((Kind::Engine, "the call ended without an outcome".into()));
    }
    None
}

/// The input classes of a state.
fn inputs(m: &Machine, s: &CallState) -> Vec<Event> {
    let summary = Event::SessionEnded { status: "COMPLETED".into() };
    match s.phase {
        Phase::AwaitingInput => {
            let mut events: Vec<Event> = Vec::new();
            match m.node(s.node).map(|n| &n.kind) {
                Some(NodeKind::Input(input)) => {
                    events.push(Event::Digits(input.example.clone()));
                    events.push(Event::Digits(format!("{}#", input.example)));
                }
                Some(NodeKind::Script(Script { capture: Some(c), .. })) => {
                    let keys = "1".repeat(usize::from(c.capture.min_digits.unwrap_or(1).max(1)));
                    events.push(Event::Digits(format!("{keys}#")));
                }
                _ => {}
            }
            for k in keys_of(m, s.node) {
                events.push(Event::Digits(k.clone()));
                events.push(Event::Digits(format!("{k}#")));
            }
            events.push(Event::Digits(invalid_key(m, s.node)));
            events.push(Event::Digits(JUNK.into()));
            events.push(Event::Digits("#".into()));
            events.push(Event::NoInput);
            events.push(summary);
            events
        }
        Phase::Bridged => vec![Event::NoInput, Event::Digits("1".into()), summary],
        // The call is over for phonetree: any further webhook is answered with a hangup.
        Phase::Ended => vec![Event::NoInput, summary],
        Phase::New => vec![Event::CallStarted],
    }
}

/// The keys `node` takes as a whole entry: its branches and the machine-wide keys it keeps.
fn keys_of(m: &Machine, node: NodeId) -> Vec<String> {
    m.edges(node)
        .into_iter()
        .filter_map(|(e, _)| match e {
            Edge::Key(k) | Edge::Repeat(k) | Edge::Back(k) => Some(k),
            _ => None,
        })
        .collect()
}

/// A key a caller can type at `node` that no branch takes (`#` alone when every key is taken).
fn invalid_key(m: &Machine, node: NodeId) -> String {
    if let Some(NodeKind::Input(input)) = m.node(node).map(|n| &n.kind) {
        let keys = keys_of(m, node);
        let candidates = ["*", "0", "1", "00", "#"];
        let invalid = |c: &&&str| input.accept(c).is_none() && !keys.iter().any(|k| k == **c);
        return candidates.iter().find(invalid).unwrap_or(&"#").to_string();
    }
    let keys: HashSet<String> = keys_of(m, node).into_iter().collect();
    let (min, max) = match m.node(node).map(|n| &n.kind) {
        Some(NodeKind::Menu(menu)) => {
            (menu.capture.min_digits.unwrap_or(1), menu.capture.max_digits.unwrap_or(1))
        }
        _ => (1, 1),
    };
    let pad = ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9', '*'];
    for len in min.max(1)..=max.clamp(1, 2) {
        for a in pad {
            let candidate: String = std::iter::repeat_n(a, len as usize).collect();
            if !keys.contains(&candidate) {
                return candidate;
            }
        }
    }
    "#".into()
}

/// The replay tokens of an event: what `simulate` takes (nothing for the start of the call).
fn token(e: &Event) -> Vec<String> {
    match e {
        Event::Digits(d) => vec![d.clone()],
        Event::NoInput => vec!["-".into()],
        Event::CallStarted => vec![],
        Event::SessionEnded { .. } => vec!["(summary)".into()],
    }
}

/// A step under every answer class of every script it passes: (answer tokens, result).
fn steps(
    m: &Machine,
    state: &CallState,
    event: &Event,
) -> Vec<(Vec<String>, Result<engine::Step, engine::StepError>)> {
    let mut out = Vec::new();
    let mut pending: Vec<(Vec<Answer>, Vec<String>)> = vec![(Vec::new(), Vec::new())];
    while let Some((answers, tokens)) = pending.pop() {
        match engine::step_with(m, state, event, 0, &answers) {
            Ok(Stepped::Done(step)) => out.push((tokens, Ok(*step))),
            Ok(Stepped::Needs(request)) => {
                for (token, answer) in answer_classes(m, &request.node) {
                    let mut a = answers.clone();
                    a.push(answer);
                    let mut t = tokens.clone();
                    t.push(token);
                    pending.push((a, t));
                }
            }
            Err(e) => out.push((tokens, Err(e))),
        }
    }
    out.reverse();
    out
}

/// A value no branch names, for the `default` class.
const OTHER_VALUE: &str = "phonetree-other";

/// One answer per way a script can go: each branch value (`@VALUE`), another value or any success
/// (`@*`), and no answer (`@!`, a timeout).
fn answer_classes(m: &Machine, node: &str) -> Vec<(String, Answer)> {
    let Some(id) = m.node_id(node) else { return Vec::new() };
    let Some(NodeKind::Script(script)) = m.node(id).map(|n| &n.kind) else { return Vec::new() };
    let mut classes = Vec::new();
    for (edge, _) in m.edges(id) {
        match edge {
            Edge::Response(v) => classes.push((format!("@{v}"), synthetic_answer(script, Some(&v)))),
            Edge::Default => classes.push(("@*".into(), synthetic_answer(script, Some(OTHER_VALUE)))),
            _ => {}
        }
    }
    classes.push(("@!".into(), Answer::Failed { reason: "timeout (explored)".into() }));
    classes
}

/// The answer a replay token stands for at `script`: `@VALUE` (the response key is VALUE),
/// `@*` (a value no branch names), `@!` (no answer). Stored fields get the value `1` (a URL for
/// the ones `{play:$name}` plays).
pub fn answer_for_token(script: &Script, token: &str) -> Option<Answer> {
    match token.strip_prefix('@')? {
        "!" => Some(Answer::Failed { reason: "timeout (simulated)".into() }),
        "*" => Some(synthetic_answer(script, Some(OTHER_VALUE))),
        value => Some(synthetic_answer(script, Some(value))),
    }
}

/// A 200 answer whose JSON has the response key set to `value` and every stored field set.
fn synthetic_answer(script: &Script, value: Option<&str>) -> Answer {
    fn set(root: &mut serde_json::Value, path: &[String], value: serde_json::Value) {
        let mut at = root;
        for (i, part) in path.iter().enumerate() {
            if !at.is_object() {
                *at = serde_json::json!({});
            }
            let map = at.as_object_mut().expect("made an object above");
            if i + 1 == path.len() {
                map.insert(part.clone(), value);
                return;
            }
            at = map.entry(part.clone()).or_insert_with(|| serde_json::json!({}));
        }
    }
    let mut body = serde_json::json!({});
    for (var, path) in &script.store {
        // A played value must be a URL; any other stored value is a short text.
        let value = if script.played.contains(var) { "https://example.com/explore.mp3" } else { "1" };
        set(&mut body, path, serde_json::json!(value));
    }
    if let (Some(path), Some(v)) = (&script.response_key, value) {
        set(&mut body, path, serde_json::json!(v));
    }
    Answer::Http { status: 200, body: serde_json::to_vec(&body).unwrap_or_default() }
}

fn inputs_to(visited: &[Visited], mut at: usize) -> Vec<String> {
    let mut steps = Vec::new();
    while let Some((parent, tokens)) = &visited[at].parent {
        steps.push(tokens.clone());
        at = *parent;
    }
    steps.reverse();
    steps.concat()
}

/// States from which no caller input leads to an end: the call could go on forever.
fn traps(m: &Machine, visited: &[Visited], r: &mut Report) {
    let mut incoming: Vec<Vec<usize>> = vec![Vec::new(); visited.len()];
    for (i, v) in visited.iter().enumerate() {
        for (_, to) in &v.next {
            incoming[*to].push(i);
        }
    }
    let mut can_end: Vec<bool> = visited.iter().map(|v| v.state.phase == Phase::Ended).collect();
    let mut queue: VecDeque<usize> = (0..visited.len()).filter(|&i| can_end[i]).collect();
    while let Some(i) = queue.pop_front() {
        for &p in &incoming[i] {
            if !can_end[p] {
                can_end[p] = true;
                queue.push_back(p);
            }
        }
    }
    let mut seen = HashSet::new();
    for (i, v) in visited.iter().enumerate() {
        if !can_end[i] && !v.state.closed && seen.insert(v.state.node) {
            let node = m.node(v.state.node).map_or_else(String::new, |n| n.name.clone());
            r.violations.push(violation(
                Kind::Trap,
                &node,
                "trap: from here no input leads to a hangup or transfer; the call can never end".into(),
                &inputs_to(visited, i),
            ));
        }
    }
}

/// Counts the simple paths from the start and finds the longest (depth first, without recursion).
fn paths(m: &Machine, visited: &[Visited], r: &mut Report) {
    let mut on_path = vec![false; visited.len()];
    // (state, next successor to try); the inputs of the path so far in `inputs`.
    let mut stack: Vec<(usize, usize)> = vec![(0, 0)];
    let mut inputs: Vec<String> = Vec::new();
    // How many tokens each step on the path added (answers to scripts ride with their keys).
    let mut lengths: Vec<usize> = Vec::new();
    on_path[0] = true;
    let mut too_long = false;
    while let Some(&mut (at, ref mut next)) = stack.last_mut() {
        let successors = &visited[at].next;
        let open = successors.iter().skip(*next).position(|(_, to)| !on_path[*to]);
        let is_leaf = *next == 0 && successors.iter().all(|(_, to)| on_path[*to]);
        if is_leaf {
            r.paths += 1;
            if inputs.len() > r.longest.len() {
                r.longest = inputs.clone();
            }
            if r.paths >= PATHS_MAX {
                r.paths_complete = false;
                break;
            }
        }
        match open {
            // The first step is the call's start, not an answer.
            Some(offset) if lengths.len() <= DEPTH_MAX => {
                let i = *next + offset;
                *next = i + 1;
                let (tokens, to) = &successors[i];
                on_path[*to] = true;
                lengths.push(tokens.len());
                inputs.extend(tokens.iter().cloned());
                stack.push((*to, 0));
            }
            Some(_) => {
                if !too_long {
                    too_long = true;
                    let node = m.node(visited[at].state.node).map_or("", |n| n.name.as_str());
                    r.violations.push(violation(
                        Kind::TooLong,
                        node,
                        format!("a caller can answer {DEPTH_MAX} prompts without the call ending"),
                        &inputs,
                    ));
                }
                on_path[at] = false;
                stack.pop();
                inputs.truncate(inputs.len() - lengths.pop().unwrap_or(0));
            }
            None => {
                on_path[at] = false;
                stack.pop();
                inputs.truncate(inputs.len() - lengths.pop().unwrap_or(0));
            }
        }
    }
}
