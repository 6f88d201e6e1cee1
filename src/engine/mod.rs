//! The pure step engine: `step(machine, state, event, now) -> (state, reply)`.
//!
//! No I/O, no clock, no randomness: the same machine, state, event and `now` always give the same
//! step, which is what makes calls replayable offline, duplicate webhooks answerable byte for byte,
//! and every path of a machine explorable by `check`. The shells (node, simulator) feed events in
//! and carry replies out; anything the engine needs from the world arrives as an event.

pub mod script;
pub mod sensitive;
mod split;
mod state;
pub mod transcript;

use std::collections::BTreeMap;
use std::fmt;

use crate::callflow::{
    self, Action, Callflow, ClientActionId, MakeCall, PlayFile, Say, SayAndCapture, Use, Violation,
};
use crate::machine::route::{self, COUNTER_MAX, Route, SetVars};
use crate::machine::{
    CHAIN_ACTIONS_MAX, ChainError, Edge, Machine, NodeId, NodeKind, Script, Template, chain,
};
pub use script::{Answer, Request};
pub use state::{CallInfo, CallState, Direction, Outcome, Phase};

/// Most nodes kept in a call's path (most recent last): enough to explain how a call got somewhere,
/// small enough to keep a stored call under 256 bytes.
pub const PATH_LEN_MAX: usize = 16;
/// Longest keypress kept from one capture (and value of a set node): 8x8 captures at most 25
/// digits plus `#`. The compiler bounds templates with it (`template::VALUE_CHARS_MAX`).
pub const KEYPRESS_CHARS_MAX: usize = crate::machine::template::VALUE_CHARS_MAX;
/// Most HTTP requests one step makes: 8x8 waits for the reply while they run, so a chain of
/// scripts longer than this is a machine that keeps the caller in silence.
pub const SCRIPTS_PER_STEP_MAX: usize = 4;
/// Most dials the outbound guard may refuse in a row for one webhook (a transfer's `failure` that
/// leads to another templated transfer, itself refused, ...): past it the step is an error, not a
/// loop.
pub const DIALS_REFUSED_PER_STEP_MAX: usize = 4;
/// Most route nodes one step passes: the compiler rejects route/set loops without a waiting node,
/// so this only bounds a step on a machine that was never compiled (and keeps it from spinning).
pub const ROUTES_PER_STEP_MAX: usize = 64;

/// The input alphabet: what can happen to a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The call reached phonetree: an inbound `CALL_RECEIVED`, or the start of an outbound call.
    CallStarted,
    /// The caller pressed keys (as 8x8 reports them, possibly ending in `#`).
    Digits(String),
    /// The prompt finished and nothing was pressed (8x8 sent `dtmf: null`), or an action completed.
    NoInput,
    /// 8x8's session summary arrived: the call is over, whatever state it was in.
    SessionEnded { status: String },
    /// The outbound guard refused the number a transfer with a templated destination was filled
    /// with (the node asks it after the step that reached the transfer; nothing was dialled): the
    /// call takes the transfer's `failure` edge.
    DialRefused,
}

impl Event {
    /// The event of keys as 8x8 reports them: no input where nothing is left once white space and
    /// the completing `#` are cut (a caller who pressed only `#` entered nothing, and no node
    /// accepts an empty entry), else the keys. `step` reads `Digits` the same way.
    pub fn keys(d: &str) -> Event {
        if normalise_keys(d).is_empty() { Event::NoInput } else { Event::Digits(d.trim().to_string()) }
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::CallStarted => f.write_str("call started"),
            Event::Digits(d) => write!(f, "digits {d}"),
            Event::NoInput => f.write_str("no input"),
            Event::SessionEnded { status } => write!(f, "session ended ({status})"),
            Event::DialRefused => f.write_str("dial refused"),
        }
    }
}

/// One step's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub state: CallState,
    /// The callflow to answer the webhook with; `None` for a session summary.
    pub reply: Option<Callflow>,
    /// The nodes the step entered, in order.
    pub entered: Vec<NodeId>,
    /// The node each action of the reply comes from (the call's node for a repeated prompt).
    pub actors: Vec<NodeId>,
    /// Scripts whose answer took the failure branch, with why (for logs): (node, reason).
    pub script_failures: Vec<(String, String)>,
    /// Stored values the step's script answers cut to their `max_chars` (for logs).
    pub cuts: Vec<script::Cut>,
    /// The requests of the script nodes the step passed, in order, each answered by the answer
    /// of the same rank (history and replay).
    pub requests: Vec<Request>,
    /// The edges the step followed, in order (coverage and logs).
    pub edges: Vec<(NodeId, Edge, NodeId)>,
    /// Each call variable the step set or unset, in order, with how many of `edges` it followed
    /// before (the explorer proves a module's outputs set on the way to its exits with them).
    pub assigned: Vec<Assigned>,
    /// The step answered a resume offer with `1`: the call went on at this node of the caller's
    /// interrupted call (history and metrics).
    pub resumed: Option<NodeId>,
}

/// A call variable a step set (an input's keys, a script's stored value, a set node) or unset (a
/// script's answer without the stored key, a sensitive variable forgotten at the step's end).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assigned {
    /// How many of the step's `edges` it followed before.
    pub after_edges: usize,
    pub var: String,
    /// Set (true) or unset.
    pub set: bool,
}

/// Where a caller's interrupted call on a machine stopped, as the node found it in the store: the
/// waiting node and the call variables then (never sensitive ones). Data the node passes in; the
/// engine reads no store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unfinished {
    pub node: NodeId,
    pub vars: BTreeMap<String, String>,
}

/// The key that takes a resume offer: any other (or none) starts the call at `start`.
pub const RESUME_KEY: &str = "1";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StepError {
    #[error("call state is for machine `{state}` but machine `{machine}` was given")]
    MachineMismatch { state: String, machine: String },
    #[error("call state names node #{0}, which machine `{1}` does not have")]
    UnknownNode(u32, String),
    #[error("a `{0}` event arrived before the call started")]
    NotStarted(String),
    #[error("node `{node}`: the call has no variable `{var}`")]
    UnresolvedVariable { node: String, var: String },
    #[error("node `{node}`: {source}")]
    Chain { node: String, source: ChainError },
    #[error("node `{node}`: no `{edge}` branch")]
    NoBranch { node: String, edge: Edge },
    #[error("node `{node}`: more than {SCRIPTS_PER_STEP_MAX} requests in one step")]
    TooManyRequests { node: String },
    #[error("node `{node}`: a refused dial arrived, but the call is not at a transfer being dialled")]
    NotDialling { node: String },
    #[error(
        "node `{node}`: the outbound guard refused {DIALS_REFUSED_PER_STEP_MAX} transfers in a row; give the last `failure` a prompt or a hangup"
    )]
    TooManyRefusedDials { node: String },
    #[error(
        "node `{node}`: no resume offer to make (the machine has no `[resume]`, or the call has started)"
    )]
    NotOffered { node: String },
    #[error("node `{node}`: not a script node")]
    NotAScript { node: String },
    #[error("node `{node}`: the node has no action to send")]
    NoAction { node: String },
    #[error("node `{node}`: 8x8 would reject the reply: {violation}")]
    RejectedReply { node: String, violation: Violation },
    #[error(transparent)]
    Variable(#[from] VariableError),
    /// The step reached a script node and needs the answer to this request (see `step_with`).
    #[error("node `{}`: needs the answer to {} {}", .0.node, .0.method, .0.url)]
    NeedsAnswer(Box<Request>),
}

/// A step that ran to its end, or stopped at a script for the answer to a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stepped {
    Done(Box<Step>),
    /// Perform the request, then call `step_with` again with the same arguments and the answer
    /// appended to `answers`: the step replays to the same point and goes on.
    Needs(Request),
}

impl Stepped {
    /// The step, when it ran to its end; a request it stopped at is the error `NeedsAnswer`.
    pub fn done(self) -> Result<Step, StepError> {
        match self {
            Stepped::Done(step) => Ok(*step),
            Stepped::Needs(request) => Err(StepError::NeedsAnswer(Box::new(request))),
        }
    }
}

/// What a step carries along its walk: the answers it was given and how many it used, and the
/// node each action of the reply comes from.
struct Walk<'a> {
    given: &'a [Answer],
    used: usize,
    actors: Vec<NodeId>,
    failures: Vec<(String, String)>,
    cuts: Vec<script::Cut>,
    requests: Vec<Request>,
    /// The step's clock: route rules on time read it.
    now_ms: u64,
    /// Route and split nodes passed so far.
    routes: usize,
    /// The variables set and unset so far (`Step::assigned`).
    assigned: Vec<Assigned>,
    /// Where the caller's interrupted call stopped, for a step that answers a resume offer.
    unfinished: Option<&'a Unfinished>,
    /// The node a resume offer's answer went on at.
    resumed: Option<NodeId>,
}

impl Walk<'_> {
    /// Counts a decision the step makes without the caller (a route, a split, a set node's number
    /// check): past `ROUTES_PER_STEP_MAX` the machine loops (at node `name()`).
    fn decided(&mut self, name: impl FnOnce() -> String) -> Result<(), StepError> {
        self.routes += 1;
        if self.routes > ROUTES_PER_STEP_MAX {
            return Err(StepError::Chain { node: name(), source: ChainError::RouteLoop });
        }
        Ok(())
    }

    fn assign(&mut self, after_edges: usize, var: &str, set: bool) {
        self.assigned.push(Assigned { after_edges, var: var.to_string(), set });
    }
}

/// Applies one event to a call whose machine has no script on the way (a request it would need
/// is the error `NeedsAnswer`).
pub fn step(m: &Machine, s: &CallState, event: &Event, now_ms: u64) -> Result<Step, StepError> {
    step_with(m, s, event, now_ms, &[])?.done()
}

/// Applies one event to a call, with the answers to the requests of the script nodes it passes,
/// in order. Pure: the driver performs each request the step stops at and calls again.
pub fn step_with(
    m: &Machine,
    s: &CallState,
    event: &Event,
    now_ms: u64,
    answers: &[Answer],
) -> Result<Stepped, StepError> {
    step_resuming(m, s, event, now_ms, answers, None)
}

/// `step_with`, for a call that may be at a resume offer (`offer`): `unfinished` is where the
/// caller's interrupted call stopped (as the store keeps it), which the key `1` goes on at. Without
/// it, or with a node that does not wait for keys, any answer to the offer starts at `start`.
pub fn step_resuming(
    m: &Machine,
    s: &CallState,
    event: &Event,
    now_ms: u64,
    answers: &[Answer],
    unfinished: Option<&Unfinished>,
) -> Result<Stepped, StepError> {
    let mut walk = Walk {
        unfinished,
        resumed: None,
        given: answers,
        used: 0,
        actors: Vec::new(),
        failures: Vec::new(),
        cuts: Vec::new(),
        requests: Vec::new(),
        now_ms,
        routes: 0,
        assigned: Vec::new(),
    };
    match step_inner(m, s, event, now_ms, &mut walk) {
        Ok(step) => Ok(Stepped::Done(Box::new(step))),
        Err(StepError::NeedsAnswer(request)) => Ok(Stepped::Needs(*request)),
        Err(e) => Err(e),
    }
}

fn step_inner(
    m: &Machine,
    s: &CallState,
    event: &Event,
    now_ms: u64,
    walk: &mut Walk<'_>,
) -> Result<Step, StepError> {
    if s.machine != m.name || s.version != m.version {
        return Err(StepError::MachineMismatch { state: s.machine.clone(), machine: m.name.clone() });
    }
    if m.node(s.node).is_none() {
        return Err(StepError::UnknownNode(s.node.index() as u32, m.name.clone()));
    }
    // Keys that are nothing once the completing `#` is cut (a caller who pressed only `#`)
    // answer nothing: no input, as 8x8's empty `dtmf` (no node accepts an empty entry).
    let event = match event {
        Event::Digits(d) if normalise_keys(d).is_empty() => &Event::NoInput,
        other => other,
    };
    let mut st = s.clone();
    st.updated_ms = now_ms;
    let mut edges = Vec::new();
    // The answer to a resume offer enters the start (again) or the interrupted call's node.
    let mut entered_first = None;
    let reply = match (&s.phase, event) {
        (Phase::AwaitingInput, Event::Digits(_) | Event::NoInput) if s.offering() => {
            let keys = match event {
                Event::Digits(d) => normalise_keys(d),
                _ => String::new(),
            };
            st.keypress = Some(keys.chars().take(KEYPRESS_CHARS_MAX).collect());
            let waits = |u: &&Unfinished| m.node(u.node).is_some_and(|n| n.kind.capture().is_some());
            match walk.unfinished.filter(waits).filter(|_| keys == RESUME_KEY) {
                Some(u) => {
                    go_on(m, &mut st, u);
                    walk.resumed = Some(u.node);
                    entered_first = Some(u.node);
                    Some(current_reply(m, &st)?)
                }
                None => {
                    st.keypress = None;
                    entered_first = Some(m.start);
                    Some(enter(m, &mut st, m.start, &mut edges, walk)?)
                }
            }
        }
        (_, Event::SessionEnded { status }) => {
            if st.phase != Phase::Ended {
                st.outcome = Some(match &st.phase {
                    Phase::Bridged => transferred(m, &st, Some(status.clone()))?,
                    _ if never_answered(&st, status) => Outcome::Unanswered { status: status.clone() },
                    _ => Outcome::CallerLeft { status: status.clone() },
                });
                st.phase = Phase::Ended;
            }
            // A transfer that ended before its summary (a webhook came first) takes its status now.
            if let Some(Outcome::Transferred { status: at_end @ None, .. }) = &mut st.outcome {
                *at_end = Some(status.clone());
            }
            st.closed = true;
            None
        }
        // The call is over for phonetree; whatever 8x8 asks now, the answer is to hang up.
        (Phase::Ended, _) => Some(Callflow::hangup()),
        (Phase::New, Event::CallStarted) => Some(enter(m, &mut st, m.start, &mut edges, walk)?),
        (Phase::New, e) => return Err(StepError::NotStarted(e.to_string())),
        // A second start for a call already under way: say the current prompt again, unchanged.
        (Phase::AwaitingInput | Phase::Bridged, Event::CallStarted) => Some(current_reply(m, &st)?),
        (Phase::AwaitingInput, Event::Digits(d))
            if matches!(m.node(st.node).map(|n| &n.kind), Some(NodeKind::Input(_))) =>
        {
            // A sensitive input's keys are not kept as `{keypress}` either.
            st.keypress = Some(normalise_keys(d).chars().take(KEYPRESS_CHARS_MAX).collect())
                .filter(|_| !sensitive::masks(m, s, event));
            let accepted = match m.node(st.node).map(|n| &n.kind) {
                Some(NodeKind::Input(input)) => input.accept(d).map(|v| (input.variable.clone(), v)),
                _ => None,
            };
            let keys = normalise_keys(d);
            if let Some(reply) = machine_key(m, &mut st, &keys, &mut edges, walk) {
                Some(reply?)
            } else {
                match (accepted, m.target(st.node, &Edge::Next)) {
                    (Some((var, value)), Some(to)) => {
                        walk.assign(edges.len(), &var, true);
                        st.vars.insert(var, value.chars().take(KEYPRESS_CHARS_MAX).collect());
                        edges.push((st.node, Edge::Next, to));
                        Some(enter(m, &mut st, to, &mut edges, walk)?)
                    }
                    _ => Some(retry_or(m, &mut st, Edge::Invalid, &mut edges, walk)?),
                }
            }
        }
        (Phase::AwaitingInput, Event::Digits(d))
            if matches!(m.node(st.node).map(|n| &n.kind), Some(NodeKind::Script(_))) =>
        {
            st.keypress = Some(normalise_keys(d).chars().take(KEYPRESS_CHARS_MAX).collect());
            let to = ask(m, &mut st, &mut edges, walk)?;
            Some(enter(m, &mut st, to, &mut edges, walk)?)
        }
        (Phase::AwaitingInput, Event::Digits(d)) => {
            let keys = normalise_keys(d);
            st.keypress = Some(keys.chars().take(KEYPRESS_CHARS_MAX).collect());
            match m.target(st.node, &Edge::Key(keys.clone())).filter(|_| !keys.is_empty()) {
                Some(to) => {
                    edges.push((st.node, Edge::Key(keys), to));
                    Some(enter(m, &mut st, to, &mut edges, walk)?)
                }
                None => match machine_key(m, &mut st, &keys, &mut edges, walk) {
                    Some(reply) => Some(reply?),
                    None => Some(retry_or(m, &mut st, Edge::Invalid, &mut edges, walk)?),
                },
            }
        }
        (Phase::AwaitingInput, Event::NoInput) => {
            Some(retry_or(m, &mut st, Edge::NoInput, &mut edges, walk)?)
        }
        // The guard refused the number the transfer was filled with: nothing was dialled, the call
        // takes the transfer's `failure` edge.
        (Phase::Bridged, Event::DialRefused)
            if matches!(m.node(st.node).map(|n| &n.kind), Some(NodeKind::Transfer(_))) =>
        {
            let to = m.target(st.node, &Edge::Failure).ok_or_else(|| StepError::NoBranch {
                node: m.node(st.node).map_or_else(String::new, |n| n.name.clone()),
                edge: Edge::Failure,
            })?;
            edges.push((st.node, Edge::Failure, to));
            Some(enter(m, &mut st, to, &mut edges, walk)?)
        }
        (_, Event::DialRefused) => {
            return Err(StepError::NotDialling {
                node: m.node(st.node).map_or_else(String::new, |n| n.name.clone()),
            });
        }
        // 8x8 documents no webhook after a bridge (the session ends with its summary); one that
        // comes anyway ends the call, whose summary then gives the transfer's status.
        (Phase::Bridged, Event::Digits(_) | Event::NoInput) => {
            st.outcome = Some(transferred(m, &st, None)?);
            st.phase = Phase::Ended;
            Some(Callflow::hangup())
        }
    };
    for var in m.sensitive().iter().filter(|v| st.vars.contains_key(*v)) {
        walk.assign(edges.len(), var, false);
    }
    sensitive::forget(m, &mut st);
    let mut actors = std::mem::take(&mut walk.actors);
    let actions = reply.as_ref().map_or(0, |r| r.actions.len());
    actors.resize(actions, st.node);
    if let Some(r) = &reply
        && let Some(v) = callflow::validate(r, Use::WebhookReply).first()
    {
        return Err(rejected(m, actors.get(v.action).copied().unwrap_or(st.node), v));
    }
    let mut entered = entered_nodes(&s.phase, event, &edges, m.start);
    entered.splice(0..0, entered_first);
    let script_failures = std::mem::take(&mut walk.failures);
    let cuts = std::mem::take(&mut walk.cuts);
    let requests = std::mem::take(&mut walk.requests);
    let assigned = std::mem::take(&mut walk.assigned);
    let resumed = walk.resumed;
    Ok(Step { state: st, reply, entered, edges, actors, script_failures, cuts, requests, assigned, resumed })
}

/// Opens a new call with the machine's resume offer instead of its start: the caller's last call
/// on it was interrupted within the window (the node decides that from the store). The call waits
/// at the offer (`CallState::offering`); `step_resuming` answers it. An error for a call already
/// started, or a machine without `[resume]`.
pub fn offer(m: &Machine, s: &CallState, now_ms: u64) -> Result<Step, StepError> {
    if s.phase != Phase::New {
        return Err(StepError::NotOffered {
            node: m.node(s.node).map_or_else(String::new, |n| n.name.clone()),
        });
    }
    let mut st = s.clone();
    st.updated_ms = now_ms;
    st.node = m.start;
    st.phase = Phase::AwaitingInput;
    st.seq = OFFER_SEQ;
    let reply = offer_reply(m, &st)?;
    if let Some(v) = callflow::validate(&reply, Use::WebhookReply).first() {
        return Err(rejected(m, m.start, v));
    }
    let actors = vec![m.start; reply.actions.len()];
    Ok(Step {
        state: st,
        reply: Some(reply),
        entered: Vec::new(),
        actors,
        script_failures: Vec::new(),
        cuts: Vec::new(),
        requests: Vec::new(),
        edges: Vec::new(),
        assigned: Vec::new(),
        resumed: None,
    })
}

/// The `seq` of a call waiting at a resume offer: every other reply that waits has a `seq` of 1 or
/// more (`enter` counts from the call's start, at 0).
pub(crate) const OFFER_SEQ: u32 = 0;

/// The resume offer, in the call's language.
fn offer_reply(m: &Machine, st: &CallState) -> Result<Callflow, StepError> {
    let prompt = m.resume_prompt_in(m.language_of(|v| st.var(v))).ok_or_else(|| StepError::NotOffered {
        node: m.node(st.node).map_or_else(String::new, |n| n.name.clone()),
    })?;
    Ok(Callflow {
        client_action_id: Some(client_action_id(m, st).to_string()),
        actions: vec![Action::SayAndCapture(prompt.clone())],
    })
}

/// The call goes on where the caller's interrupted call stopped: that node, waiting for keys (its
/// prompt from the top), the machine's variables with the saved values over them (a sensitive one
/// is never restored).
fn go_on(m: &Machine, st: &mut CallState, u: &Unfinished) {
    st.vars = m.variables().clone();
    let kept = u.vars.iter().filter(|(k, _)| !m.sensitive().contains(*k));
    st.vars.extend(kept.map(|(k, v)| (k.clone(), v.chars().take(KEYPRESS_CHARS_MAX).collect())));
    st.node = u.node;
    st.tries = 0;
    st.path.push(u.node);
    if st.path.len() > PATH_LEN_MAX {
        st.path.remove(0);
    }
    st.phase = Phase::AwaitingInput;
    st.seq = st.seq.wrapping_add(1);
}

/// Most variables a placed call gives (`POST /calls`, `phonetree call --var`): each must be one
/// of the machine's `variables`, of which there are at most as many.
pub const OUTBOUND_VARIABLES_MAX: usize = crate::machine::VARIABLES_MAX;
/// Longest value a placed call gives a variable: the bound of every call variable.
pub const OUTBOUND_VARIABLE_CHARS_MAX: usize = crate::machine::VARIABLE_CHARS_MAX;
const _: () = assert!(OUTBOUND_VARIABLE_CHARS_MAX == KEYPRESS_CHARS_MAX);

/// A variable a placed call may not give.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VariableError {
    #[error("{count} variables; a call takes at most {OUTBOUND_VARIABLES_MAX}")]
    TooMany { count: usize },
    #[error("machine `{machine}` takes no variable `{name}` ({})", known_names(.known))]
    Unknown { machine: String, name: String, known: Vec<String> },
    #[error(
        "variable `{name}` has {chars} characters; a call variable keeps at most {OUTBOUND_VARIABLE_CHARS_MAX}"
    )]
    TooLong { name: String, chars: usize },
}

fn known_names(known: &[String]) -> String {
    if known.is_empty() {
        "it lists none: a placed call may give only the names its `variables` table lists, each with a default".into()
    } else {
        format!(
            "it takes {}: a placed call may give only the names its `variables` table lists",
            known.join(", ")
        )
    }
}

/// Checks the variables a placed call gives: at most `OUTBOUND_VARIABLES_MAX`, each one of the
/// machine's `variables`, each value within `OUTBOUND_VARIABLE_CHARS_MAX`. The first problem.
pub fn check_variables<'a>(
    m: &Machine,
    given: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<(), VariableError> {
    let given: Vec<(&str, &str)> = given.into_iter().collect();
    if given.len() > OUTBOUND_VARIABLES_MAX {
        return Err(VariableError::TooMany { count: given.len() });
    }
    for (name, value) in given {
        if !m.variables().contains_key(name) {
            return Err(VariableError::Unknown {
                machine: m.name.clone(),
                name: name.to_string(),
                known: m.variables().keys().cloned().collect(),
            });
        }
        let chars = value.chars().count();
        if chars > OUTBOUND_VARIABLE_CHARS_MAX {
            return Err(VariableError::TooLong { name: name.to_string(), chars });
        }
    }
    Ok(())
}

/// Starts an outbound call from `call.source` (a virtual number) to `call.destination`, with the
/// machine's `variables` set to `vars` (checked by `check_variables`, else `StepError::Variable`):
/// the step whose reply is the callflow for 8x8's Send Callflow API — `makeCall`, then the start
/// node's chain. Like `step_with`, it runs the script nodes the chain passes with `answers`, in
/// order, or stops with the request it needs next. 8x8 takes `clientActionId` only in webhook
/// replies, so the opening callflow carries none; the first webhook of the call (without one) is
/// the callee's answer to the node the opening waits at.
pub fn start_outbound(
    m: &Machine,
    call: CallInfo,
    vars: &BTreeMap<String, String>,
    now_ms: u64,
    answers: &[Answer],
) -> Result<Stepped, StepError> {
    check_variables(m, vars.iter().map(|(k, v)| (k.as_str(), v.as_str())))?;
    let dial =
        MakeCall { source: call.source.clone(), destination: call.destination.clone(), call_recording: None };
    let state = placed_state(m, call, vars, now_ms);
    let mut step = match step_with(m, &state, &Event::CallStarted, now_ms, answers)? {
        Stepped::Done(step) => step,
        needs @ Stepped::Needs(_) => return Ok(needs),
    };
    if let Some(flow) = &mut step.reply {
        flow.client_action_id = None;
        flow.actions.insert(0, Action::MakeCall(dial));
        step.actors.insert(0, m.start);
        if let Some(v) = callflow::validate(flow, Use::OutboundRequest).first() {
            return Err(rejected(m, step.actors.get(v.action).copied().unwrap_or(m.start), v));
        }
    }
    Ok(Stepped::Done(step))
}

/// The number a step is about to dial that the outbound guard must pass before its reply is sent:
/// the destination of the transfer the step entered and ends at, when the machine fills it from a
/// template (caller input, a stored or API value). A literal destination is checked once, when the
/// machine is loaded. When the guard refuses it, the driver steps `Event::DialRefused` from the
/// step's state instead of sending the reply.
pub fn templated_dial<'s>(m: &Machine, step: &'s Step) -> Option<&'s str> {
    let node = step.state.node;
    if step.state.phase != Phase::Bridged || step.entered.last() != Some(&node) {
        return None;
    }
    let Some(NodeKind::Transfer(t)) = m.node(node).map(|n| &n.kind) else { return None };
    if t.destination.as_literal().is_some() {
        return None;
    }
    match step.reply.as_ref()?.actions.last()? {
        Action::MakeCall(call) => Some(call.destination.as_str()),
        _ => None,
    }
}

/// A reply 8x8 would refuse, named by the node whose action breaks the rule.
fn rejected(m: &Machine, actor: NodeId, v: &Violation) -> StepError {
    let node = m.node(actor).map_or_else(String::new, |n| n.name.clone());
    StepError::RejectedReply { node, violation: v.clone() }
}

/// The state a placed call starts in: at the start node, `vars` set over the machine's defaults
/// (the opening's, before its step).
fn placed_state(m: &Machine, call: CallInfo, vars: &BTreeMap<String, String>, now_ms: u64) -> CallState {
    let mut state = CallState::new(m, call, now_ms);
    state.vars.extend(vars.iter().map(|(k, v)| (k.clone(), v.clone())));
    state
}

/// Whether a call ending with 8x8's summary `status` is one phonetree placed that the callee never
/// answered: it still waits at its opening's prompt (the first reply that waits, `seq` 1: any
/// webhook would have moved it on or counted a retry), and 8x8 does not report it `COMPLETED`.
fn never_answered(st: &CallState, status: &str) -> bool {
    st.call.direction == Direction::Outbound
        && st.phase == Phase::AwaitingInput
        && st.seq == 1
        && status != SUMMARY_COMPLETED
}

/// 8x8's session status of a call that was answered and ended normally.
const SUMMARY_COMPLETED: &str = "COMPLETED";

/// The nodes a step entered: the start when the call started, then every edge target.
fn entered_nodes(
    before: &Phase,
    event: &Event,
    edges: &[(NodeId, Edge, NodeId)],
    start: NodeId,
) -> Vec<NodeId> {
    let started = (*before == Phase::New && *event == Event::CallStarted).then_some(start);
    // A repeated prompt (`repeat`, or `back` with nowhere to go back to) enters nothing.
    let repeats = |e: &&(NodeId, Edge, NodeId)| matches!(e.1, Edge::Repeat(_) | Edge::Back(_)) && e.0 == e.2;
    started.into_iter().chain(edges.iter().filter(|e| !repeats(e)).map(|e| e.2)).collect()
}

/// The reply that waits at the call's current node, as it was sent (same id): for a repeated start.
pub fn current_reply(m: &Machine, st: &CallState) -> Result<Callflow, StepError> {
    if st.offering() {
        return offer_reply(m, st);
    }
    let kind = spoken(m, st, st.node)
        .ok_or_else(|| StepError::UnknownNode(st.node.index() as u32, m.name.clone()))?;
    let actions = match kind.capture() {
        Some(c) if st.tries > 0 => {
            let mut actions = lead(m, st, &c.relead)?;
            let mut action = render_capture(m, st, &c.capture, Some(&c.reprompt))?;
            if let (Action::SayAndCapture(a), Some((voice, speed))) = (&mut action, &c.revoice) {
                (a.voice_profile, a.speed) = (voice.clone(), *speed);
            }
            actions.push(action);
            actions
        }
        Some(c) => {
            let mut actions = lead(m, st, &c.lead)?;
            actions.push(render(m, st, st.node)?);
            actions
        }
        None => vec![render(m, st, st.node)?],
    };
    Ok(Callflow { client_action_id: Some(client_action_id(m, st).to_string()), actions })
}

/// The `say`s of a multi-part prompt's parts before the capture.
fn lead(m: &Machine, st: &CallState, parts: &[Say<Template>]) -> Result<Vec<Action>, StepError> {
    parts.iter().map(|say| render_say(m, st, say).map(Action::Say)).collect()
}

/// The id of the reply the call is waiting on.
pub fn client_action_id(m: &Machine, st: &CallState) -> ClientActionId {
    ClientActionId {
        machine: m.name.clone(),
        node: m.node(st.node).map_or_else(String::new, |n| n.name.clone()),
        seq: st.seq,
        version: m.version.short(),
    }
}

fn transferred(m: &Machine, st: &CallState, status: Option<String>) -> Result<Outcome, StepError> {
    let destination = match m.node(st.node).map(|n| &n.kind) {
        Some(NodeKind::Transfer(t)) => render_text(m, st, &t.destination)?,
        _ => String::new(),
    };
    Ok(Outcome::Transferred { destination, status })
}

/// A machine-wide key (`[keys]`) pressed at a menu or input, when `keys` is one of the node's:
/// the reply. `repeat` says the current prompt again with tries unchanged; `back` enters the
/// previous waiting node on the call's path, forgetting the path after it (so `back` twice goes
/// back two menus), and at the first menu (or once the path no longer holds one) repeats.
fn machine_key(
    m: &Machine,
    st: &mut CallState,
    keys: &str,
    edges: &mut Vec<(NodeId, Edge, NodeId)>,
    walk: &mut Walk<'_>,
) -> Option<Result<Callflow, StepError>> {
    let key = keys.to_string();
    if let Some(to) = m.target(st.node, &Edge::Key(key.clone())) {
        edges.push((st.node, Edge::Key(key), to));
        return Some(enter(m, st, to, edges, walk));
    }
    let back = m.target(st.node, &Edge::Back(key.clone())).is_some();
    if !back && m.target(st.node, &Edge::Repeat(key.clone())).is_none() {
        return None;
    }
    let previous = st
        .path
        .iter()
        .enumerate()
        .rev()
        .find(|&(_, &id)| id != st.node && m.node(id).is_some_and(|n| n.kind.capture().is_some()))
        .map(|(i, &id)| (i, id))
        .filter(|_| back);
    match previous {
        Some((i, to)) => {
            st.path.truncate(i);
            edges.push((st.node, Edge::Back(key), to));
            Some(enter(m, st, to, edges, walk))
        }
        None => {
            let edge = if back { Edge::Back(key) } else { Edge::Repeat(key) };
            edges.push((st.node, edge, st.node));
            st.seq = st.seq.wrapping_add(1);
            Some(current_reply(m, st))
        }
    }
}

/// A failed try at the current menu: prompt again while tries are left, else follow `edge`.
fn retry_or(
    m: &Machine,
    st: &mut CallState,
    edge: Edge,
    edges: &mut Vec<(NodeId, Edge, NodeId)>,
    walk: &mut Walk<'_>,
) -> Result<Callflow, StepError> {
    let tries = m.node(st.node).and_then(|n| n.kind.capture()).map_or(1, |c| c.tries);
    st.tries = st.tries.saturating_add(1);
    if st.tries < tries {
        st.seq = st.seq.wrapping_add(1);
        return current_reply(m, st);
    }
    let to = m.target(st.node, &edge).ok_or_else(|| StepError::NoBranch {
        node: m.node(st.node).map_or_else(String::new, |n| n.name.clone()),
        edge: edge.clone(),
    })?;
    edges.push((st.node, edge, to));
    enter(m, st, to, edges, walk)
}

/// A script node's request: resolved, answered (or the step stops for the answer), routed. Sets
/// the variables the answer gives and returns the node the call goes to.
fn ask(
    m: &Machine,
    st: &mut CallState,
    edges: &mut Vec<(NodeId, Edge, NodeId)>,
    walk: &mut Walk<'_>,
) -> Result<NodeId, StepError> {
    let node =
        m.node(st.node).ok_or_else(|| StepError::UnknownNode(st.node.index() as u32, m.name.clone()))?;
    let NodeKind::Script(s) = &node.kind else {
        return Err(StepError::NotAScript { node: node.name.clone() });
    };
    if walk.used >= SCRIPTS_PER_STEP_MAX {
        return Err(StepError::TooManyRequests { node: node.name.clone() });
    }
    let request = script::request(&node.name, &s.request, s.cache_minutes, |t, encoding| {
        t.render_with(
            |var| st.var(var).or((var == "node").then_some(node.name.as_str())),
            |v| match encoding {
                script::Encoding::Url => script::encode(v),
                script::Encoding::Plain => v.to_string(),
            },
        )
    })
    .map_err(|var| StepError::UnresolvedVariable { node: node.name.clone(), var })?;
    let Some(answer) = walk.given.get(walk.used) else {
        return Err(StepError::NeedsAnswer(Box::new(request)));
    };
    walk.used += 1;
    walk.requests.push(request);
    let branches: Vec<String> = m
        .edges(st.node)
        .into_iter()
        .filter_map(|(e, _)| if let Edge::Response(v) = e { Some(v) } else { None })
        .collect();
    let routed = script::route(&node.name, s, answer, &branches);
    if let Some(why) = routed.failure {
        walk.failures.push((node.name.clone(), why));
    }
    walk.cuts.extend(routed.cuts);
    for (var, value) in routed.vars {
        walk.assign(edges.len(), &var, true);
        st.vars.insert(var, value);
    }
    // An answer without the key: no value from an earlier answer is spoken as this one's.
    for var in routed.unset {
        walk.assign(edges.len(), &var, false);
        st.vars.remove(&var);
    }
    let (edge, to) = match m.target(st.node, &routed.edge) {
        Some(to) => (routed.edge, to),
        None => (
            Edge::Failure,
            m.target(st.node, &Edge::Failure)
                .ok_or_else(|| StepError::NoBranch { node: node.name.clone(), edge: Edge::Failure })?,
        ),
    };
    edges.push((st.node, edge, to));
    Ok(to)
}

/// A route node's decision: the first rule that holds for the step's clock and the call's
/// variables, else `else`. Returns the node the call goes to.
fn decide(
    m: &Machine,
    st: &CallState,
    route: &Route,
    edges: &mut Vec<(NodeId, Edge, NodeId)>,
    walk: &mut Walk<'_>,
) -> Result<NodeId, StepError> {
    let name = || m.node(st.node).map_or_else(String::new, |n| n.name.clone());
    walk.decided(name)?;
    let edge = match route.pick(m.timezone(), walk.now_ms, |v| st.var(v)) {
        Some(i) => Edge::Rule(i, route.rules[i].label.clone()),
        None => Edge::Else,
    };
    let to =
        m.target(st.node, &edge).ok_or_else(|| StepError::NoBranch { node: name(), edge: edge.clone() })?;
    edges.push((st.node, edge, to));
    Ok(to)
}

/// A set node: its values rendered against the call as it enters, then its counters added to
/// (a counter unset or not an integer counts as 0; the sum stops at `COUNTER_MAX`). Every value is
/// kept within `KEYPRESS_CHARS_MAX`, the bound of every call variable. `false`, and nothing set,
/// when a variable an `add` reads is not a number (`route::number`): the node's `not_number`.
fn assign(m: &Machine, st: &mut CallState, set: &SetVars) -> Result<bool, StepError> {
    let mut added = Vec::with_capacity(set.add.len());
    for (var, addend) in &set.add {
        let n = match addend {
            route::Addend::Constant(n) => *n,
            route::Addend::Var { name, .. } => match route::number(st.var(name)) {
                Some(n) => n,
                None => return Ok(false),
            },
        };
        added.push((var, n));
    }
    let rendered: Vec<(String, String)> = set
        .values
        .iter()
        .map(|(var, t)| Ok((var.clone(), render_text(m, st, t)?)))
        .collect::<Result<_, StepError>>()?;
    for (var, value) in rendered {
        st.vars.insert(var, value.chars().take(KEYPRESS_CHARS_MAX).collect());
    }
    for (var, n) in added {
        let now = route::integer(st.var(var)).unwrap_or(0);
        let sum = now.checked_add(n).unwrap_or(if n > 0 { COUNTER_MAX } else { -COUNTER_MAX });
        st.vars.insert(var.clone(), sum.clamp(-COUNTER_MAX, COUNTER_MAX).to_string());
    }
    Ok(true)
}

/// Where a set node that checks its `add`s for numbers goes: `next`, or `not_number` when
/// `assign` found a value that is not one.
fn counted(
    m: &Machine,
    st: &CallState,
    numbers: bool,
    edges: &mut Vec<(NodeId, Edge, NodeId)>,
    walk: &mut Walk<'_>,
) -> Result<NodeId, StepError> {
    let name = || m.node(st.node).map_or_else(String::new, |n| n.name.clone());
    walk.decided(name)?;
    let edge = if numbers { Edge::Next } else { Edge::NotNumber };
    let to =
        m.target(st.node, &edge).ok_or_else(|| StepError::NoBranch { node: name(), edge: edge.clone() })?;
    edges.push((st.node, edge, to));
    Ok(to)
}

/// Enters `to` and every node after it that needs no input, through script nodes (each answered
/// in turn); returns the reply for the whole chain.
fn enter(
    m: &Machine,
    st: &mut CallState,
    to: NodeId,
    edges: &mut Vec<(NodeId, Edge, NodeId)>,
    walk: &mut Walk<'_>,
) -> Result<Callflow, StepError> {
    let mut actions = Vec::new();
    let mut to = to;
    // Whether the last set node entered found every variable its `add`s read a number.
    let mut numbers = true;
    loop {
        let nodes = chain(m, to).map_err(|source| StepError::Chain {
            node: m.node(to).map_or_else(String::new, |n| n.name.clone()),
            source,
        })?;
        for (i, &id) in nodes.iter().enumerate() {
            if i > 0 {
                edges.push((nodes[i - 1], Edge::Next, id));
            }
            st.node = id;
            st.tries = 0;
            st.path.push(id);
            if st.path.len() > PATH_LEN_MAX {
                st.path.remove(0);
            }
            let before = actions.len();
            match spoken(m, st, id) {
                // A script that asks nothing says its prompt (if any) and is answered below.
                Some(NodeKind::Script(Script { capture: None, say, .. })) => {
                    if let Some(say) = say {
                        actions.extend(say_actions(m, st, say)?);
                    }
                }
                Some(NodeKind::Say(say)) => actions.extend(say_actions(m, st, say)?),
                Some(NodeKind::Set(set)) => {
                    numbers = assign(m, st, set)?;
                    if numbers {
                        let vars = set.values.iter().map(|(v, _)| v).chain(set.add.iter().map(|(v, _)| v));
                        for var in vars {
                            walk.assign(edges.len(), var, true);
                        }
                    }
                    // Only a set node that ends its chain (it has `not_number`) may find none.
                    if !numbers && i + 1 < nodes.len() {
                        let node = m.node(id).map_or_else(String::new, |n| n.name.clone());
                        return Err(StepError::NoBranch { node, edge: Edge::NotNumber });
                    }
                }
                Some(NodeKind::Route(_) | NodeKind::Split(_)) => {}
                Some(kind) if kind.capture().is_some() => {
                    actions.extend(lead(m, st, kind.capture().map_or(&[][..], |c| &c.lead))?);
                    actions.push(render(m, st, id)?);
                }
                _ => actions.push(render(m, st, id)?),
            }
            walk.actors.extend(std::iter::repeat_n(id, actions.len() - before));
        }
        if actions.len() > CHAIN_ACTIONS_MAX {
            return Err(StepError::Chain {
                node: m.node(st.node).map_or_else(String::new, |n| n.name.clone()),
                source: ChainError::TooLong(actions.len()),
            });
        }
        match m.node(st.node).map(|n| &n.kind) {
            Some(NodeKind::Script(Script { capture: None, .. })) => to = ask(m, st, edges, walk)?,
            Some(NodeKind::Route(route)) => to = decide(m, st, route, edges, walk)?,
            Some(NodeKind::Split(split)) => to = split::pick(m, st, split, edges, &mut walk.routes)?,
            Some(NodeKind::Set(_)) => to = counted(m, st, numbers, edges, walk)?,
            _ => break,
        }
    }
    let last = m.node(st.node).map(|n| &n.kind);
    let client_action_id = match last {
        Some(NodeKind::Menu(_) | NodeKind::Input(_) | NodeKind::Script(Script { capture: Some(_), .. })) => {
            st.phase = Phase::AwaitingInput;
            st.seq = st.seq.wrapping_add(1);
            Some(client_action_id(m, st).to_string())
        }
        Some(NodeKind::Transfer(_)) => {
            st.phase = Phase::Bridged;
            st.seq = st.seq.wrapping_add(1);
            Some(client_action_id(m, st).to_string())
        }
        _ => {
            st.phase = Phase::Ended;
            st.outcome = Some(Outcome::HungUp);
            None
        }
    };
    Ok(Callflow { client_action_id, actions })
}

/// Keys as a branch is written: no white space, no completing `#`.
fn normalise_keys(d: &str) -> String {
    d.trim().trim_end_matches('#').to_string()
}

/// Node `id` as the call hears it: its texts and voices in the call's language.
fn spoken<'m>(m: &'m Machine, st: &CallState, id: NodeId) -> Option<&'m NodeKind> {
    m.spoken(id, m.language_of(|v| st.var(v)))
}

fn render(m: &Machine, st: &CallState, id: NodeId) -> Result<Action, StepError> {
    let node = m.node(id).ok_or_else(|| StepError::UnknownNode(id.index() as u32, m.name.clone()))?;
    let kind = spoken(m, st, id).unwrap_or(&node.kind);
    if let Some(c) = kind.capture() {
        return render_capture(m, st, &c.capture, None);
    }
    Ok(match kind {
        NodeKind::Say(s) => Action::Say(render_say(m, st, s)?),
        NodeKind::Script(Script { say: Some(s), .. }) => Action::Say(render_say(m, st, s)?),
        // Capturing nodes were rendered above; a script that asks nothing and says nothing has
        // no action of its own (its reply is what its answer leads to).
        NodeKind::Script(_)
        | NodeKind::Menu(_)
        | NodeKind::Input(_)
        | NodeKind::Route(_)
        | NodeKind::Set(_)
        | NodeKind::Split(_) => {
            return Err(StepError::NoAction { node: node.name.clone() });
        }
        NodeKind::Play(p) => Action::PlayFile(PlayFile {
            file_url: render_text(m, st, &p.file_url)?,
            repetition: p.repetition,
        }),
        NodeKind::Transfer(t) => Action::MakeCall(MakeCall {
            source: render_text(m, st, &t.source)?,
            destination: render_text(m, st, &t.destination)?,
            call_recording: t.call_recording,
        }),
        NodeKind::Hangup => Action::Hangup,
    })
}

/// A say's actions: one `say`, or with `{play:$name}` in its text, says and `playFile`s in turn.
fn say_actions(m: &Machine, st: &CallState, s: &Say<Template>) -> Result<Vec<Action>, StepError> {
    if s.text.played().next().is_none() {
        return Ok(vec![Action::Say(render_say(m, st, s)?)]);
    }
    let node_name = m.node(st.node).map_or("", |n| n.name.as_str());
    let segments = s
        .text
        .segments(|var| st.var(var).or((var == "node").then_some(node_name)))
        .map_err(|var| StepError::UnresolvedVariable { node: node_name.to_string(), var })?;
    Ok(segments
        .into_iter()
        .map(|segment| match segment {
            crate::machine::template::Segment::Text(text) => Action::Say(Say {
                text,
                voice_profile: s.voice_profile.clone(),
                repetition: s.repetition,
                speed: s.speed,
            }),
            crate::machine::template::Segment::Play(url) => {
                Action::PlayFile(PlayFile { file_url: url, repetition: None })
            }
        })
        .collect())
}

fn render_say(m: &Machine, st: &CallState, s: &Say<Template>) -> Result<Say, StepError> {
    Ok(Say {
        text: render_text(m, st, &s.text)?,
        voice_profile: s.voice_profile.clone(),
        repetition: s.repetition,
        speed: s.speed,
    })
}

fn render_capture(
    m: &Machine,
    st: &CallState,
    c: &SayAndCapture<Template>,
    prompt: Option<&Template>,
) -> Result<Action, StepError> {
    let opt = |t: &Option<Template>| t.as_ref().map(|t| render_text(m, st, t)).transpose();
    Ok(Action::SayAndCapture(SayAndCapture {
        prompt_message: render_text(m, st, prompt.unwrap_or(&c.prompt_message))?,
        voice_profile: c.voice_profile.clone(),
        repetition: c.repetition,
        speed: c.speed,
        min_digits: c.min_digits,
        max_digits: c.max_digits,
        digit_timeout_ms: c.digit_timeout_ms,
        overall_timeout_ms: c.overall_timeout_ms,
        complete_on_hash: c.complete_on_hash,
        no_of_tries: c.no_of_tries,
        success_message: opt(&c.success_message)?,
        failure_message: opt(&c.failure_message)?,
    }))
}

fn render_text(m: &Machine, st: &CallState, t: &Template) -> Result<String, StepError> {
    let node_name = m.node(st.node).map_or("", |n| n.name.as_str());
    t.render(|var| st.var(var).or((var == "node").then_some(node_name)))
        .map_err(|var| StepError::UnresolvedVariable { node: node_name.to_string(), var })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reply 8x8 would refuse names the node whose action breaks the rule, not the node the
    /// call waits at: here the `greet` say, with a caller id no E.164 number is as long as.
    #[test]
    fn a_rejected_reply_names_the_node_whose_action_breaks_the_rule() {
        let text = r#"
name = "greeting"
start = "greet"
[defaults]
voice_profile = "en-US-BenjaminRUS"
[nodes.greet]
kind = "say"
text = "Hello {caller}."
next = "menu"
[nodes.menu]
kind = "menu"
prompt = "Press 1."
branches = { 1 = "bye" }
invalid = "bye"
[nodes.bye]
kind = "hangup"
"#;
        let m = crate::machine::compile(&crate::machine::Source::new("g.toml", text)).machine.unwrap();
        let call = CallInfo {
            session_id: "s".into(),
            direction: Direction::Inbound,
            source: "1".repeat(crate::callflow::TEXT_CHARS_MAX),
            destination: "+6568880001".into(),
            call_id: None,
        };
        match step(&m, &CallState::new(&m, call, 0), &Event::CallStarted, 0) {
            Err(StepError::RejectedReply { node, violation }) => {
                assert_eq!((node.as_str(), violation.action, violation.param), ("greet", 0, "text"));
            }
            other => panic!("{other:?}"),
        }
    }

    /// A call resumed from a `clientActionId` waits where the node's kind has a call wait: keys at
    /// a menu, bridged at a transfer, ended at a hangup; the node is its path, the id's seq its seq.
    #[test]
    fn a_resumed_call_waits_as_its_node_has_it_wait() {
        let text = r#"
name = "resume"
start = "menu"
[defaults]
voice_profile = "en-US-BenjaminRUS"
[nodes.menu]
kind = "menu"
prompt = "Press 1."
branches = { 1 = "agent", 2 = "bye" }
invalid = "bye"
[nodes.agent]
kind = "transfer"
destination = "+6568880002"
[nodes.bye]
kind = "hangup"
"#;
        let m = crate::machine::compile(&crate::machine::Source::new("r.toml", text)).machine.unwrap();
        let call = CallInfo {
            session_id: "s".into(),
            direction: Direction::Inbound,
            source: "+6568880001".into(),
            destination: "+6568880003".into(),
            call_id: None,
        };
        for (name, phase) in
            [("menu", Phase::AwaitingInput), ("agent", Phase::Bridged), ("bye", Phase::Ended)]
        {
            let node = m.node_id(name).unwrap();
            let st = CallState::resumed(&m, call.clone(), node, 7, 5);
            assert_eq!((st.node, st.phase, st.seq, &st.path[..]), (node, phase, 7, &[node][..]), "{name}");
            assert_eq!((st.started_ms, st.machine.as_str()), (5, "resume"));
        }
    }
}
