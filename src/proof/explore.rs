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
//! Route nodes decide on the clock and on call variables, so for a machine with routes the control
//! state also holds the call's clock class and the values of the variables its rules test. A call
//! starts at each clock class — instants around every window edge and named date of the routes, one
//! per distinct set of time rules that hold (at most `CLOCKS_MAX`), fixed for the whole call — and
//! from each caller a rule on `caller` names; inputs also try each value a rule tests an input's
//! variable for, and script answers each value of a stored variable a rule tests (see
//! `stored_samples`), so that defensive rules on an API's answer are covered. A counter only positive `add`s write and only integer tests read is capped one
//! above its largest threshold (every test agrees beyond it); past `STATES_MAX` states `explore`
//! stops and reports it.
//!
//! A machine with languages speaks each reply in the call's language (`language_variable`): that
//! variable is part of the state's key like a routed one, so every reply is played and validated
//! in each language a call can be in at that state.
//!
//! A set node that adds a variable to a counter decides between `next` and `not_number`: the
//! variable's value is part of the key, an input it comes from is also answered with keys that
//! are not a number, and a script that stores it with a value that is not one (and its key missing).
//!
//! Split nodes give a call a variant from its caller (or session id), fixed for the call: a call
//! also starts from a caller (or session id) for each combination of variants the machine's splits
//! give, and those variants are part of its states' key. A caller's variants and the way route
//! rules on `caller` take are both fixed by its number, so callers are searched per route class
//! (`caller_split_classes`): every combination of route class and variants some caller has is
//! explored, or reported `Unexplored`.
//!
//! With `[resume]` a call also starts at the resume offer (each root again), and at every waiting
//! state a call can be interrupted at, the offer's `1` is played from the offer root of every clock
//! class and session class of that call's caller: the caller calls back at another time, in a new
//! session, and the routes after the node read the new clock. Where it goes on (the interrupted
//! call's node and variables, the new call's clock and session) is explored like any state.
//!
//! Every violation comes with the inputs that reach it, replayable with `phonetree simulate` (a
//! policy broken across a resumed call: two calls, `Replay::Resumed`, each at its own clock).

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use serde::Serialize;

use super::tokens::{AT_FLAG, FROM_FLAG, RESUME_FROM_FLAG, SESSION_FLAG, VAR_FLAG};
use super::{outputs, policy};
use crate::callflow::{self, Use};
use crate::engine::{self, Answer, CallInfo, CallState, Direction, Event, Phase, Stepped};
use crate::machine::route::{self, VarTest};
use crate::machine::split::{Split, StickyBy};
use crate::machine::{Diagnostic, Edge, Machine, Modules, NodeId, NodeKind, Script, Severity, Source};

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
    /// The edges some input takes: the node they leave, and their label (`check` counts a module's
    /// coverage across the machines that use it from these).
    #[serde(skip)]
    pub covered: Vec<(String, String)>,
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
    /// A variable a route tests takes more values than `STATES_MAX` states hold: not all explored.
    Unbounded,
    /// A node uses a call variable that a script's answer without the stored key left unset.
    UnsetVariable,
    /// A policy (`[[policies]]`, `policies.toml`) does not hold on some path.
    Policy,
    /// A call leaves a module by an exit without an output the module's `outputs` promise there.
    UnsetOutput,
    /// Callers whose route rules on `caller` all answer alike may get a combination of split
    /// variants no caller searched gives: their calls were not explored.
    Unexplored,
}

/// A property that does not hold, and how to see it happen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    pub kind: Kind,
    pub node: String,
    pub message: String,
    /// What the caller presses, from the start of the call (`-`: nothing).
    pub inputs: Vec<String>,
    /// How `inputs` replay.
    pub replay: Replay,
    /// With `Replay::Resumed`: what the caller pressed in the interrupted call before, from its
    /// start (they hang up at its last prompt, and `inputs` take the resume offer).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interrupted: Option<Vec<String>>,
    /// Where what it breaks was written, which is where the diagnostic points: a policy, or a
    /// module's `outputs` entry (its node is then the module's `exit` node).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub origin: Option<crate::machine::policy::Origin>,
}

/// How a violation is seen happening.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Replay {
    /// `phonetree simulate FILE INPUTS` plays an inbound call to it (for an edge no input takes:
    /// to the node it leaves).
    Inbound,
    /// `phonetree simulate FILE --outbound` plays the outbound opening.
    Outbound,
    /// Two calls (`[resume]`): `phonetree simulate FILE INTERRUPTED` plays the first, which the
    /// caller leaves at its last prompt, then `phonetree simulate FILE INPUTS` the call that takes
    /// the resume offer's `1` and goes on there.
    Resumed,
    /// The machine has other errors, which `simulate` refuses: the inputs replay once they are
    /// fixed.
    AfterFixes,
    /// No input reaches it: there is nothing to play.
    Nothing,
}

impl Report {
    pub fn proven(&self) -> bool {
        self.violations.is_empty()
    }
}

/// The command that plays `inputs` on `machine` (a file, or a name in `machines/`), quoted for a
/// POSIX shell where it must be (`*` would glob, a leading `#` would start a comment); with no
/// keys, stdin is empty (the call's start alone).
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
    // Without keys `simulate` reads them from stdin: none, the call's start alone.
    if inputs.iter().all(|i| i.starts_with("--")) {
        cmd.push_str(" < /dev/null");
    }
    cmd
}

/// A call's control state: where it is, what it waits for, tries used; for a machine with routes,
/// the call's clock class and the values of the variables its rules test; and which of the stored
/// variables an answer may leave unset (`may_miss`) are set.
type Key = (NodeId, u8, u8, u64, Vec<Option<String>>, Vec<bool>);

/// Adds a call's opening state as a root of the exploration (no parent; `clock`: the flags that
/// replay it), unless an equal state is one already.
fn add_root(
    index: &mut HashMap<Key, usize>,
    visited: &mut Vec<Visited>,
    k: Key,
    state: CallState,
    clock: Option<String>,
) {
    if let std::collections::hash_map::Entry::Vacant(e) = index.entry(k) {
        e.insert(visited.len());
        visited.push(Visited {
            state,
            parent: None,
            clock,
            next: Vec::new(),
            heard: Vec::new(),
            fails: false,
        });
    }
}

/// The index of the state a step reached from state `from` by `tokens`: a state seen before, or a
/// new one, queued for exploring.
fn reach(
    (index, visited, queue): (&mut HashMap<Key, usize>, &mut Vec<Visited>, &mut VecDeque<usize>),
    k: Key,
    state: &CallState,
    (from, tokens): (usize, &[String]),
) -> usize {
    *index.entry(k).or_insert_with(|| {
        visited.push(Visited {
            state: state.clone(),
            parent: Some((from, tokens.to_vec())),
            clock: None,
            next: vec![],
            heard: vec![],
            fails: false,
        });
        queue.push_back(visited.len() - 1);
        visited.len() - 1
    })
}

fn key(s: &CallState, routed: &Routed, may_miss: &[String]) -> Key {
    let phase = match s.phase {
        Phase::New => 0,
        // Waiting at the resume offer, at the start node: not the start node's own prompt.
        Phase::AwaitingInput if s.offering() => 4,
        Phase::AwaitingInput => 1,
        Phase::Bridged => 2,
        Phase::Ended => 3,
    };
    let mut values: Vec<Option<String>> =
        routed.vars.iter().map(|(name, cap)| routed_value(s.var(name), *cap)).collect();
    // The variant each split gives this call: fixed for the call, a class of its own.
    values.extend(
        routed.splits.iter().map(|sp| Some(sp.pick(s.call.caller(), &s.call.session_id).to_string())),
    );
    let set = may_miss.iter().map(|v| s.vars.contains_key(v)).collect();
    (s.node, phase, if s.closed { u8::MAX } else { s.tries }, s.started_ms, values, set)
}

/// A tested variable's value as the key holds it: a counter above `cap` is `cap` (every test on
/// it gives the same answer there, and it only grows).
fn routed_value(value: Option<&str>, cap: Option<i64>) -> Option<String> {
    match (value.and_then(|v| v.parse::<i64>().ok()), cap) {
        (Some(v), Some(cap)) if v > cap => Some(cap.to_string()),
        _ => value.map(str::to_string),
    }
}

/// Most control states explored. Counters and the variables route rules test multiply the states;
/// beyond this many, `explore` stops and says so (a counter a route never bounds).
pub const STATES_MAX: usize = 50_000;
/// Most clock classes a call is explored at (one per combination of route time rules that hold).
pub const CLOCKS_MAX: usize = 64;

/// What route rules read: the variables they test (with the cap of a counter that only grows,
/// above which every test on it agrees), the clock classes and the callers to explore.
struct Routed {
    vars: Vec<(String, Option<i64>)>,
    /// (now in ms, its RFC 3339 text) for each clock class; one class at 0 without time rules.
    clocks: Vec<(u64, Option<String>)>,
    callers: Vec<String>,
    /// The session ids to start from: `SESSION` alone, or one per class of the session-sticky
    /// splits.
    sessions: Vec<String>,
    /// The machine's splits: the variants a call gets are part of its state's key.
    splits: Vec<Split>,
    /// Combinations of a route class on `caller` and caller-sticky variants that real callers may
    /// have but the search found no caller for (`caller_split_classes`).
    unexplored: Vec<Violation>,
    /// The variables counters add that are not proven numbers: an input setting one is also
    /// answered with keys that are not a number.
    unproven: Vec<String>,
}

/// The session id of an explored call when no split reads it.
const SESSION: &str = "explore";
/// The caller of an explored inbound call when no rule or split asks for another.
const CALLER: &str = "+15550000001";
/// Most callers (`+6580000000` upward) and session ids (`explore-0` upward) tried to find a
/// caller for each class of a machine's splits: with weights of 1 in 10 000 or more, 10 000 tries
/// find every variant of one split.
const SPLIT_SEARCH_MAX: u64 = 10_000;
/// Most split classes (combinations of the variants the splits give) a call is explored from; for
/// splits sticky by caller, per route class on `caller` (those classes are bounded by the rules
/// a machine may hold, and every class multiplies the states: `STATES_MAX` bounds the product).
pub const SPLIT_CLASSES_MAX: usize = 64;

/// A session id for each class of the splits sticky by session: `explore-0` upward (callers are
/// searched per route class, `caller_split_classes`).
fn session_split_classes(splits: &[Split]) -> Vec<String> {
    let sticky: Vec<&Split> = splits.iter().filter(|s| s.sticky_by == StickyBy::Session).collect();
    if sticky.is_empty() {
        return Vec::new();
    }
    let class = |session: &str| -> Vec<usize> { sticky.iter().map(|s| s.pick(CALLER, session)).collect() };
    let mut seen: HashSet<Vec<usize>> = HashSet::new();
    let mut out = Vec::new();
    for session in (0..SPLIT_SEARCH_MAX).map(|i| format!("{SESSION}-{i}")) {
        if seen.len() >= SPLIT_CLASSES_MAX {
            break;
        }
        if seen.insert(class(&session)) {
            out.push(session);
        }
    }
    out
}

/// Trailing digits of a route class's representative the search for its split classes varies:
/// 10^4 numbers, `SPLIT_SEARCH_MAX`.
const PERTURBED_DIGITS: usize = 4;

/// The answers of the route rules on `caller` for a call from `caller`, evaluated by the rules'
/// own code: callers with equal answers take the same way through every route.
fn route_class(on_caller: &[&route::Rule], caller: &str) -> Vec<bool> {
    on_caller.iter().map(|r| r.vars_hold(|name| (name == "caller").then_some(caller))).collect()
}

/// The callers to explore: `reps` (one or more per route class on `caller`), then, for each
/// route class, a caller of that class for each class of the caller-sticky splits (`named`) it
/// lacks: forced callers and the representatives first, then `+6580000000` upward, then the
/// first representative with its last `PERTURBED_DIGITS` digits varied (or that many appended to
/// a shorter one; `SPLIT_SEARCH_MAX` tries each), at most `SPLIT_CLASSES_MAX` split classes per
/// route class. So every (route class, split class) combination a caller has is explored, as far
/// as the search finds one; a split class some caller has but none of a route class the search
/// tried is an `Unexplored` violation (at the first split whose variant no caller of the class
/// got), unless a rule holding for that class names its callers (`equals`, `one_of`: all tried).
fn caller_split_classes(
    named: &[(&str, &Split)],
    on_caller: &[&route::Rule],
    reps: Vec<String>,
) -> (Vec<String>, Vec<Violation>) {
    let sticky: Vec<&(&str, &Split)> =
        named.iter().filter(|(_, s)| s.sticky_by == StickyBy::Caller).collect();
    if sticky.is_empty() {
        return (reps, Vec::new());
    }
    let split_class = |c: &str| -> Vec<usize> { sticky.iter().map(|(_, s)| s.pick(c, SESSION)).collect() };
    // Every class the splits can give at most: the product of their variant counts.
    let possible = sticky
        .iter()
        .try_fold(1usize, |n, (_, s)| n.checked_mul(s.variants.len()))
        .unwrap_or(usize::MAX)
        .min(SPLIT_CLASSES_MAX);
    let forced: Vec<String> =
        sticky.iter().flat_map(|(_, s)| s.force.iter().map(|(c, _)| c.clone())).collect();
    // Each route class in order of its first representative, with the split classes seen.
    let mut classes: Vec<(Vec<bool>, String, Vec<Vec<usize>>)> = Vec::new();
    for rep in &reps {
        let rc = route_class(on_caller, rep);
        let sc = split_class(rep);
        match classes.iter_mut().find(|(c, _, _)| *c == rc) {
            Some((_, _, seen)) => {
                if !seen.contains(&sc) {
                    seen.push(sc);
                }
            }
            None => classes.push((rc, rep.clone(), vec![sc])),
        }
    }
    let mut callers = reps.clone();
    for (rc, rep, seen) in &mut classes {
        // Its last digits varied; a shorter number (a regex's example, `+44`) gets digits appended.
        let digits = rep.bytes().rev().take_while(u8::is_ascii_digit).count();
        let stem =
            if digits >= PERTURBED_DIGITS { &rep[..rep.len() - PERTURBED_DIGITS] } else { rep.as_str() };
        let perturbed = (0..SPLIT_SEARCH_MAX).map(|i| format!("{stem}{i:0width$}", width = PERTURBED_DIGITS));
        let searched = (0..SPLIT_SEARCH_MAX).map(|i| format!("+658{i:07}"));
        let candidates = forced.iter().chain(&reps).cloned().chain(searched).chain(perturbed);
        for c in candidates {
            if seen.len() >= possible {
                break;
            }
            if route_class(on_caller, &c) != *rc {
                continue;
            }
            let sc = split_class(&c);
            if !seen.contains(&sc) {
                seen.push(sc);
                if !callers.contains(&c) {
                    callers.push(c);
                }
            }
        }
    }
    // The split classes some caller has; a route class without one of them was not explored there.
    let mut all: Vec<&Vec<usize>> = Vec::new();
    for sc in classes.iter().flat_map(|(_, _, seen)| seen) {
        if !all.contains(&sc) {
            all.push(sc);
        }
    }
    let mut unexplored = Vec::new();
    for (rc, rep, seen) in &classes {
        // A rule that holds only for callers it names: every one of them was tried.
        let named_callers = on_caller.iter().zip(rc).any(|(r, holds)| {
            *holds
                && r.var.as_ref().is_some_and(|(_, tests)| {
                    tests.iter().any(|t| matches!(t, VarTest::Equals(_) | VarTest::OneOf(_)))
                })
        });
        let missing: Vec<&&Vec<usize>> = all.iter().filter(|sc| !seen.contains(sc)).collect();
        let Some(first) = missing.first() else { continue };
        if named_callers {
            continue;
        }
        let variants: Vec<String> = sticky
            .iter()
            .zip(first.iter())
            .map(|((node, s), &v)| {
                format!("`{}` at `{node}`", s.variants.get(v).map_or("?", |(n, _)| n.as_str()))
            })
            .collect();
        let message = format!(
            "callers whose route rules on `caller` answer like `{rep}`'s may get variant {} ({} such \
             combination(s) in all), but none of the {} callers searched does: their calls were not explored",
            variants.join(", "),
            missing.len(),
            2 * SPLIT_SEARCH_MAX,
        );
        let at = (0..sticky.len()).find(|&j| seen.iter().all(|sc| sc.get(j) != first.get(j))).unwrap_or(0);
        let mut v = violation(Kind::Unexplored, sticky[at].0, message, &[]);
        v.replay = Replay::Nothing;
        unexplored.push(v);
    }
    (callers, unexplored)
}

fn routed(m: &Machine) -> Routed {
    let routes: Vec<&route::Route> = m
        .graph()
        .node_weights()
        .filter_map(|n| if let NodeKind::Route(r) = &n.kind { Some(r) } else { None })
        .collect();
    let rules = || routes.iter().flat_map(|r| r.rules.iter());
    let mut vars: Vec<(String, Option<i64>)> = Vec::new();
    let mut callers = vec![CALLER.to_string()];
    for (name, tests) in rules().filter_map(|r| r.var.as_ref()) {
        if name == "caller" {
            callers.extend(tests.iter().flat_map(sample_values));
        }
        if !vars.iter().any(|(v, _)| v == name) {
            vars.push((name.clone(), counter_cap(m, name, rules().filter_map(|r| r.var.as_ref()))));
        }
    }
    // The call's language picks the texts every reply says: each language is a class of its own,
    // so that every reply is proven in every language the call can be in.
    if let Some(language) = m.language_variable().filter(|l| !vars.iter().any(|(v, _)| v == l)) {
        vars.push((language.to_string(), None));
    }
    // What a counter adds from a variable other than a counter: its value decides the counter's,
    // and whether the set node takes `not_number`.
    let added = added_vars(m);
    for name in added.iter().map(|(name, _)| name) {
        if !vars.iter().any(|(v, _)| v == name) && !is_counter(m, name) {
            vars.push((name.clone(), None));
        }
    }
    let unproven = added.into_iter().filter(|(_, proven)| !proven).map(|(name, _)| name).collect();
    let named: Vec<(&str, &Split)> = m
        .graph()
        .node_weights()
        .filter_map(|n| if let NodeKind::Split(s) = &n.kind { Some((n.name.as_str(), s)) } else { None })
        .collect();
    let splits: Vec<Split> = named.iter().map(|(_, s)| (*s).clone()).collect();
    let mut unique = Vec::new();
    for c in callers {
        if !unique.contains(&c) {
            unique.push(c);
        }
    }
    let on_caller: Vec<&route::Rule> =
        rules().filter(|r| r.var.as_ref().is_some_and(|(name, _)| name == "caller")).collect();
    let (callers, unexplored) = caller_split_classes(&named, &on_caller, unique);
    let mut sessions = session_split_classes(&splits);
    if sessions.is_empty() {
        sessions.push(SESSION.to_string());
    }
    Routed { vars, clocks: clocks(m, &routes), callers, sessions, splits, unproven, unexplored }
}

/// The variables set nodes add to counters, each with whether it is proven always a number.
fn added_vars(m: &Machine) -> Vec<(String, bool)> {
    let mut out: Vec<(String, bool)> = Vec::new();
    for n in m.graph().node_weights() {
        let NodeKind::Set(set) = &n.kind else { continue };
        for (_, addend) in &set.add {
            if let route::Addend::Var { name, numeric, .. } = addend {
                match out.iter_mut().find(|(v, _)| v == name) {
                    Some((_, proven)) => *proven &= *numeric,
                    None => out.push((name.clone(), *numeric)),
                }
            }
        }
    }
    out
}

/// Whether `var` is a counter: some `add` writes it.
fn is_counter(m: &Machine, var: &str) -> bool {
    m.graph()
        .node_weights()
        .any(|n| matches!(&n.kind, NodeKind::Set(s) if s.add.iter().any(|(v, _)| v == var)))
}

/// Keys an input accepts that are not a number (`route::number`), for an input whose variable a
/// counter adds without proof: `*` among them, or more digits than a counter holds.
fn not_a_number(input: &crate::machine::Input) -> Option<String> {
    let max = usize::from(input.prompt.capture.max_digits.unwrap_or(1));
    let candidates =
        [format!("{}*", input.example), format!("*{}", input.example), "*".repeat(max), "9".repeat(max)];
    candidates
        .into_iter()
        .find(|k| route::number(input.accept(k).as_deref()).is_none() && input.accept(k).is_some())
}

/// Values that make a test hold (for inputs and callers to try).
fn sample_values(t: &VarTest) -> Vec<String> {
    match t {
        VarTest::Equals(v) => vec![v.clone()],
        VarTest::OneOf(set) => set.clone(),
        VarTest::Prefix(p) => vec![format!("{p}1234567")],
        VarTest::AtLeast(n) | VarTest::AtMost(n) => vec![n.to_string()],
        VarTest::Matches(re) => regex_example(re).into_iter().collect(),
    }
}

/// Most characters of a regex example, and most nesting followed: a route's pattern is short.
const EXAMPLE_CHARS_MAX: usize = 64;
const EXAMPLE_DEPTH_MAX: usize = 32;

/// A short text the regex matches: each repetition at its minimum, each class's first character,
/// each alternation's first branch (`None` if that does not match, e.g. with look-arounds).
fn regex_example(re: &regex::Regex) -> Option<String> {
    fn walk(hir: &regex_syntax::hir::Hir, out: &mut String, depth: usize) -> Option<()> {
        use regex_syntax::hir::{Class, HirKind};
        if depth > EXAMPLE_DEPTH_MAX || out.len() > EXAMPLE_CHARS_MAX {
            return None;
        }
        match hir.kind() {
            HirKind::Empty | HirKind::Look(_) => {}
            HirKind::Literal(lit) => out.push_str(std::str::from_utf8(&lit.0).ok()?),
            // A character a caller's data would hold: a digit, a letter, else the class's first.
            HirKind::Class(Class::Unicode(c)) => {
                let has = |ch: char| c.ranges().iter().any(|r| r.start() <= ch && ch <= r.end());
                let first = c.ranges().first()?.start();
                out.push(
                    ['1', '0', 'a', 'A', '+', '-', '.'].into_iter().find(|&ch| has(ch)).unwrap_or(first),
                );
            }
            HirKind::Class(Class::Bytes(c)) => {
                let has = |b: u8| c.ranges().iter().any(|r| r.start() <= b && b <= r.end());
                let first = c.ranges().first()?.start();
                out.push(char::from([b'1', b'0', b'a', b'A'].into_iter().find(|&b| has(b)).unwrap_or(first)));
            }
            HirKind::Repetition(r) => {
                for _ in 0..r.min {
                    walk(&r.sub, out, depth + 1)?;
                }
            }
            HirKind::Capture(c) => walk(&c.sub, out, depth + 1)?,
            HirKind::Concat(parts) => {
                for part in parts {
                    walk(part, out, depth + 1)?;
                }
            }
            HirKind::Alternation(branches) => walk(branches.first()?, out, depth + 1)?,
        }
        Some(())
    }
    let hir = regex_syntax::Parser::new().parse(re.as_str()).ok()?;
    let mut out = String::new();
    walk(&hir, &mut out, 0)?;
    re.is_match(&out).then_some(out)
}

/// Most values a stored variable is explored with: each multiplies the states after its script.
pub const STORED_SAMPLES_MAX: usize = 32;

/// The values a script answer gives a stored variable that route rules test, besides the `1` of
/// every answer class: each value a test names or that makes it hold, the neighbours of the
/// numeric thresholds (so that either side of each is tried), and a value no test names; `None`
/// (the key missing) when the variable has no `default`. At most `STORED_SAMPLES_MAX`.
fn stored_samples(m: &Machine, var: &str, has_default: bool) -> Vec<Option<String>> {
    let mut values: Vec<String> = route_tests(m, var)
        .flat_map(|t| {
            let mut v = sample_values(t);
            match t {
                VarTest::AtLeast(n) => v.extend(n.checked_sub(1).map(|n| n.to_string())),
                VarTest::AtMost(n) => v.extend(n.checked_add(1).map(|n| n.to_string())),
                _ => {}
            }
            v
        })
        .collect();
    values.push(OTHER_VALUE.into());
    values.retain(|v| v != STORED_VALUE);
    values.sort();
    values.dedup();
    let mut samples: Vec<Option<String>> = values.into_iter().map(Some).collect();
    if !has_default {
        samples.insert(0, None);
    }
    samples.truncate(STORED_SAMPLES_MAX);
    samples
}

/// The tests route rules make of variable `var`.
fn route_tests<'m>(m: &'m Machine, var: &'m str) -> impl Iterator<Item = &'m VarTest> + 'm {
    m.graph()
        .node_weights()
        .filter_map(|n| if let NodeKind::Route(r) = &n.kind { Some(r) } else { None })
        .flat_map(|r| r.rules.iter())
        .filter_map(move |r| r.var.as_ref().filter(|(v, _)| v == var))
        .flat_map(|(_, tests)| tests.iter())
}

/// The cap of a variable only positive `add`s write and only integer tests read: its largest
/// threshold plus one. `None` when its values must be kept as they are.
fn counter_cap<'r>(
    m: &Machine,
    name: &str,
    tested: impl Iterator<Item = &'r (String, Vec<VarTest>)>,
) -> Option<i64> {
    let mut adds = m.graph().node_weights().filter_map(|n| match &n.kind {
        NodeKind::Set(set) => Some(set),
        _ => None,
    });
    let counted = adds.any(|s| s.add.iter().any(|(v, _)| v == name));
    let growing = m.graph().node_weights().all(|n| match &n.kind {
        NodeKind::Set(set) => set.add.iter().all(|(v, a)| v != name || a.never_lowers()),
        _ => true,
    });
    if !counted || !growing {
        return None;
    }
    let mut cap = 0i64;
    for (_, tests) in tested.filter(|(v, _)| v == name) {
        for t in tests {
            let n = match t {
                VarTest::AtLeast(n) | VarTest::AtMost(n) => *n,
                VarTest::Equals(v) => v.parse().ok()?,
                VarTest::OneOf(set) => set.iter().map(|v| v.parse::<i64>().ok()).max().flatten()?,
                VarTest::Matches(_) | VarTest::Prefix(_) => return None,
            };
            cap = cap.max(n);
        }
    }
    cap.checked_add(1)
}

/// The clock classes: instants around every time window and date the routes name, one per
/// distinct set of time rules that hold (so each rule is tried where it holds and where not).
fn clocks(m: &Machine, routes: &[&route::Route]) -> Vec<(u64, Option<String>)> {
    let timed: Vec<&route::Rule> =
        routes.iter().flat_map(|r| r.rules.iter()).filter(|r| r.uses_time()).collect();
    let Some(tz) = m.timezone().filter(|_| !timed.is_empty()) else { return vec![(0, None)] };
    let mut minutes: Vec<u16> = vec![0, 12 * 60];
    for h in timed.iter().filter_map(|r| r.hours) {
        let day = route::DAY_MINUTES;
        minutes.extend([h.from, (h.from + day - 1) % day, h.to % day, (h.to + day - 1) % day]);
    }
    minutes.sort_unstable();
    minutes.dedup();
    // A week of ordinary days (Monday 2026-01-05 on), and each named date and the day after it.
    let mut days: Vec<jiff::civil::Date> =
        (0..7).filter_map(|i| jiff::civil::Date::new(2026, 1, 5 + i).ok()).collect();
    for dates in timed.iter().filter_map(|r| r.dates.as_ref()) {
        for d in dates {
            days.push(*d);
            days.extend(d.tomorrow().ok());
        }
    }
    let mut seen: Vec<Vec<bool>> = Vec::new();
    let mut out = Vec::new();
    for day in days {
        for &minute in &minutes {
            let Ok(time) = jiff::civil::Time::new((minute / 60) as i8, (minute % 60) as i8, 0, 0) else {
                continue;
            };
            let Ok(ts) = tz.to_ambiguous_timestamp(day.to_datetime(time)).compatible() else { continue };
            let Ok(ms) = u64::try_from(ts.as_millisecond()) else { continue };
            let Some(local) = route::local_time(tz, ms) else { continue };
            let signature: Vec<bool> = timed.iter().map(|r| r.time_holds(local)).collect();
            if !seen.contains(&signature) && out.len() < CLOCKS_MAX {
                seen.push(signature);
                out.push((
                    ms,
                    Some(ts.to_zoned_datetime(tz.clone()).strftime("%Y-%m-%dT%H:%M:%S%:z").to_string()),
                ));
            }
        }
    }
    out
}

/// The stored variables some script may leave unset (a stored key without a `default`).
fn may_miss(m: &Machine) -> Vec<String> {
    let mut vars: Vec<String> = (m.graph().node_weights())
        .filter_map(|n| if let NodeKind::Script(s) = &n.kind { Some(s) } else { None })
        .flat_map(|s| s.store.iter().filter(|s| s.default.is_none()).map(|s| s.var.clone()))
        .collect();
    vars.sort();
    vars.dedup();
    vars
}

struct Visited {
    state: CallState,
    /// The state it was first reached from, and the inputs (keys, then any script answers); for a
    /// call that went on at the resume offer, the offer root and `--resume-from=NODE`, its
    /// `--var`s and `1` (`inputs_to` keeps the last `--resume-from`).
    parent: Option<(usize, Vec<String>)>,
    /// A start state's clock, as `simulate` takes it (`--at=TIME`), for a machine with time rules.
    clock: Option<String>,
    /// Caller transitions (no summaries): inputs → state, one per distinct target.
    next: Vec<(Vec<String>, usize)>,
    /// With `explore_heard_paths`: caller transitions, one per distinct target and reply.
    heard: Vec<(Vec<String>, usize)>,
    /// Some input makes the engine fail here: the node answers with the fallback and hangs up, an
    /// end (reported as its own violation), so no trap.
    fails: bool,
}

/// Explores `m` completely. Pure: no I/O, a fixed clock.
pub fn explore(m: &Machine) -> Report {
    explore_paths(m, &mut |_| {})
}

/// `explore`, handing the inputs of each simple path it counts to `path`, so another player of
/// the machine (the VoiceXML export's test interpreter) can replay every one.
pub fn explore_paths(m: &Machine, path: &mut dyn FnMut(&[String])) -> Report {
    explore_with(m, path, false)
}

/// `explore_paths` over the paths a caller can tell apart: where two inputs lead to the same
/// state, `explore_paths` follows one, this follows each that makes the caller hear something
/// else on the way (`1` to a message and `2` to another, both hanging up), so that `diff` can
/// compare what each one hears. Its report counts those paths.
pub fn explore_heard_paths(m: &Machine, path: &mut dyn FnMut(&[String])) -> Report {
    explore_with(m, path, true)
}

fn explore_with(m: &Machine, path: &mut dyn FnMut(&[String]), by_heard: bool) -> Report {
    let mut r = Report {
        machine: m.name().to_string(),
        version: m.version().short(),
        nodes: m.node_count(),
        edges: m.edge_count(),
        edges_covered: 0,
        covered: Vec::new(),
        states: 0,
        transitions: 0,
        paths: 0,
        paths_complete: true,
        longest: Vec::new(),
        violations: Vec::new(),
    };
    let number = m.numbers().first().cloned().unwrap_or_else(|| "+15550000000".into());
    let call = |direction| CallInfo {
        session_id: SESSION.into(),
        direction,
        source: if direction == Direction::Inbound { CALLER.into() } else { number.clone() },
        destination: if direction == Direction::Inbound { number.clone() } else { CALLER.into() },
        call_id: Some("explore-call".into()),
    };
    let start_name = m.node(m.start()).map_or_else(String::new, |n| n.name.clone());
    // The opening of a placed call, and when a placed call may give the call's language (one of
    // the machine's `variables`), its opening in each language.
    let mut placed = vec![BTreeMap::new()];
    if let Some(language) = m.language_variable().filter(|l| m.variables().contains_key(*l)) {
        placed = m.languages().iter().map(|l| BTreeMap::from([(language.to_string(), l.clone())])).collect();
    }
    for vars in &placed {
        let lang = vars.values().next().map_or_else(String::new, |l| format!(" (in `{l}`)"));
        match engine::start_outbound(m, call(Direction::Outbound), vars, 0, &[]) {
            Ok(engine::Stepped::Done(step)) => {
                for v in step.reply.iter().flat_map(|f| callflow::validate(f, Use::OutboundRequest)) {
                    let message = format!("outbound opening{lang}: {v}");
                    r.violations.push(outbound_violation(Kind::InvalidReply, &start_name, message));
                }
            }
            // A script before the first prompt: the node runs it before it places the call, and
            // what each answer leads to is explored as the inbound call's start.
            Ok(engine::Stepped::Needs(_)) => {}
            Err(e) => r.violations.push(outbound_violation(
                Kind::Engine,
                &start_name,
                format!("outbound opening{lang}: {e}"),
            )),
        }
    }
    // Every reachable control state, breadth first from the call's start, so each one's parent
    // path is a shortest one.
    // One start per clock class and caller the route rules tell apart.
    let routed = routed(m);
    r.violations.extend(routed.unexplored.iter().cloned());
    let may_miss = may_miss(m);
    let mut visited = Vec::new();
    let mut index: HashMap<Key, usize> = HashMap::new();
    for (now, text) in &routed.clocks {
        for caller in &routed.callers {
            for session in &routed.sessions {
                let mut info = call(Direction::Inbound);
                info.source = caller.clone();
                info.session_id = session.clone();
                let state = CallState::new(m, info, *now);
                let mut clock = text.as_ref().map(|t| format!("{AT_FLAG}{t}"));
                if caller != CALLER {
                    let from = format!("{FROM_FLAG}{caller}");
                    clock = Some(clock.map_or(from.clone(), |c| format!("{c} {from}")));
                }
                if session != SESSION {
                    let from = format!("{SESSION_FLAG}{session}");
                    clock = Some(clock.map_or(from.clone(), |c| format!("{c} {from}")));
                }
                let k = key(&state, &routed, &may_miss);
                add_root(&mut index, &mut visited, k, state, clock);
            }
        }
    }
    // With `[resume]`: each start again, opening with the offer instead (replayed with
    // `--resume-from` a node that waits for keys: the paths from it take the offer's other answers).
    let resume_from = m.graph().node_indices().find(|&id| m.graph()[id].kind.capture().is_some());
    if let (Some(_), Some(from)) = (m.resume(), resume_from) {
        let flag = format!("{RESUME_FROM_FLAG}{}", m.graph()[from].name);
        for root in 0..visited.len() {
            let offered = match engine::offer(m, &visited[root].state, visited[root].state.started_ms) {
                Ok(step) => step,
                Err(e) => {
                    r.violations.push(violation(
                        Kind::Engine,
                        &start_name,
                        format!("resume offer: {e}"),
                        &[],
                    ));
                    break;
                }
            };
            for v in offered.reply.iter().flat_map(|f| callflow::validate(f, Use::WebhookReply)) {
                let message = format!("resume offer: 8x8 would reject the reply: {v}");
                r.violations.push(violation(Kind::InvalidReply, &start_name, message, &[]));
            }
            let clock = Some(visited[root].clock.as_ref().map_or(flag.clone(), |c| format!("{c} {flag}")));
            let k = key(&offered.state, &routed, &may_miss);
            add_root(&mut index, &mut visited, k, offered.state, clock);
        }
    }
    let roots = visited.len();
    // The offer roots: a caller interrupted at a waiting state calls back at each of them.
    let offers: Vec<usize> = (0..roots).filter(|&o| visited[o].state.offering()).collect();
    // The offer's two answers taken: `1` going on somewhere, another answer starting again.
    let (mut went_on, mut started_again) = (false, false);
    // Stopped at `STATES_MAX`: the states past the frontier are unknown, so traps are not judged.
    let mut truncated = false;
    // Each node entered, with the inputs of the first call that entered it.
    let mut entered: HashMap<NodeId, Vec<String>> = HashMap::new();
    let mut covered: HashSet<(NodeId, Edge)> = HashSet::new();
    let mut queue: VecDeque<usize> = (0..roots).collect();
    // One report per node for a failing engine, and one for broken invariants.
    let (mut failed, mut broken): (HashSet<NodeId>, HashSet<NodeId>) = Default::default();
    // One report per node where resuming fails.
    let mut resume_failed: HashSet<NodeId> = HashSet::new();
    // Each interrupted call resumed (caller, node, kept variables), with what each offer root's `1`
    // led to (offer root, state, the walk's marks).
    type Resumed =
        HashMap<(String, NodeId, BTreeMap<String, String>), Vec<(usize, usize, Vec<policy::Mark>)>>;
    let mut resumed: Resumed = HashMap::new();
    // One report per node and variable it cannot render.
    let mut unset: HashSet<(String, String)> = HashSet::new();
    // Every caller transition with what it passes, once, when the machine states policies.
    let mut walks: Vec<policy::Walk> = Vec::new();
    let mut walked: HashSet<(usize, usize, Vec<policy::Mark>, Vec<String>)> = HashSet::new();
    // The variables module uses promise, whose setting the walks carry.
    let watched = outputs::watched(m);
    let walking = !m.policies().is_empty() || !watched.is_empty();
    // With `by_heard`: each (state, next state, what the reply says) followed once.
    let mut heard_seen: HashSet<(usize, usize, Option<String>)> = HashSet::new();
    while let Some(at) = queue.pop_front() {
        let state = visited[at].state.clone();
        if state.closed {
            continue;
        }
        if visited.len() >= STATES_MAX {
            truncated = true;
            let (loop_at, changed) = pumping(&visited, at, &routed, &may_miss);
            let node = m.node(visited[loop_at].state.node).map_or_else(String::new, |n| n.name.clone());
            r.violations.push(violation(
                Kind::Unbounded,
                &node,
                format!(
                    "more than {STATES_MAX} call states: the call comes back here with {changed} changed, \
                     so a variable a route tests takes unboundedly many values"
                ),
                &inputs_to(&visited, loop_at),
            ));
            break;
        }
        for event in inputs(m, &state, &routed) {
            for (answered, result) in steps(m, &state, &event) {
                r.transitions += 1;
                visited[at].fails |= result.is_err();
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
                    Err(engine::StepError::UnresolvedVariable { node: speaker, var }) => {
                        if unset.insert((speaker.clone(), var.clone())) {
                            let message = format!(
                                "call variable `{var}` may be unset here: a script's answer without its stored key leaves it unset"
                            );
                            r.violations.push(violation(Kind::UnsetVariable, &speaker, message, &path()));
                        }
                        continue;
                    }
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
                for id in &step.entered {
                    if !entered.contains_key(id) {
                        entered.insert(*id, path());
                    }
                }
                covered.extend(step.edges.iter().map(|(f, e, _)| (*f, e.clone())));
                let k = key(&step.state, &routed, &may_miss);
                let to = reach((&mut index, &mut visited, &mut queue), k, &step.state, (at, &tokens));
                let is_summary = matches!(event, Event::SessionEnded { .. });
                started_again |= state.offering() && !is_summary && !step.state.offering();
                if !is_summary && walking {
                    // A call's start enters `start`; the offer's answer (starting again) too.
                    let started = if state.offering() {
                        step.entered.first().copied()
                    } else {
                        (state.phase == Phase::New).then(|| m.start())
                    };
                    let marks = policy::marks(started, &step.edges, &step.assigned, &watched);
                    if walked.insert((at, to, marks.clone(), tokens.clone())) {
                        walks.push(policy::Walk {
                            from: at,
                            to,
                            tokens: tokens.clone(),
                            marks,
                            crossing: None,
                        });
                    }
                }
                if by_heard && !is_summary {
                    let reply = step.reply.as_ref().map(|f| format!("{:?}", f.actions));
                    if heard_seen.insert((at, to, reply)) {
                        visited[at].heard.push((tokens.clone(), to));
                    }
                }
                if !is_summary && !visited[at].next.iter().any(|(_, t)| *t == to) {
                    visited[at].next.push((tokens, to));
                }
            }
        }
        // With `[resume]`: the caller interrupted here calls back, at any clock class.
        if m.resume().is_none() || !resumable(m, &state) {
            continue;
        }
        let node = m.node(state.node).map_or_else(String::new, |n| n.name.clone());
        let vars = state.vars.iter().filter(|(k, _)| !m.sensitive().contains(*k));
        let saved = engine::Unfinished {
            node: state.node,
            vars: vars.map(|(k, v)| (k.clone(), v.clone())).collect(),
        };
        // Replayed as `simulate` takes it: the offer root's flags, then these.
        let mut tokens = vec![format!("{RESUME_FROM_FLAG}{node}")];
        let given = saved.vars.iter().filter(|(k, v)| m.variables().get(*k) != Some(*v));
        tokens.extend(given.map(|(k, v)| format!("{VAR_FLAG}{k}={v}")));
        tokens.push(engine::RESUME_KEY.into());
        // The same interrupted call (caller, node, kept variables) seen at another state (another
        // clock, session or tries): it resumes alike, so only its crossings are new.
        let once = (state.call.caller().to_string(), saved.node, saved.vars.clone());
        if let Some(done) = resumed.get(&once) {
            if walking {
                walks.extend(done.iter().map(|(o, to, marks)| policy::Walk {
                    from: at,
                    to: *to,
                    tokens: tokens.clone(),
                    marks: marks.clone(),
                    crossing: Some(*o),
                }));
            }
            continue;
        }
        let mut done = Vec::new();
        let event = Event::Digits(engine::RESUME_KEY.into());
        // The same caller (whose caller-sticky variants are theirs), in a new session (whose
        // session-sticky variants are drawn again): each offer root of that caller. (At most that
        // many states past `STATES_MAX`: the next state taken from the queue stops there.)
        let callers_offers =
            offers.iter().filter(|&&o| visited[o].state.call.caller() == state.call.caller());
        for &o in callers_offers.collect::<Vec<_>>() {
            let offer = visited[o].state.clone();
            r.transitions += 1;
            let resumed_inputs = || policy::going_on([inputs_to(&visited, o), tokens.clone()].concat());
            let stepped = engine::step_resuming(m, &offer, &event, offer.started_ms, &[], Some(&saved))
                .and_then(engine::Stepped::done);
            let problem = match &stepped {
                Err(e) => Some((Kind::Engine, format!("resuming here: {e}"))),
                Ok(step) => broken_invariant(m, &offer, &event, step)
                    .map(|(kind, why)| (kind, format!("resuming here: {why}"))),
            };
            let step = match (stepped, problem) {
                (Ok(step), None) => step,
                (_, problem) => {
                    let (kind, message) = problem.unwrap_or((Kind::Engine, "resuming here failed".into()));
                    if resume_failed.insert(state.node) {
                        r.violations.push(Violation {
                            replay: Replay::Resumed,
                            interrupted: Some(inputs_to(&visited, at)),
                            ..violation(kind, &node, message, &resumed_inputs())
                        });
                    }
                    continue;
                }
            };
            went_on = true;
            for id in &step.entered {
                if !entered.contains_key(id) {
                    entered.insert(*id, resumed_inputs());
                }
            }
            covered.extend(step.edges.iter().map(|(f, e, _)| (*f, e.clone())));
            let k = key(&step.state, &routed, &may_miss);
            let to = reach((&mut index, &mut visited, &mut queue), k, &step.state, (o, &tokens));
            if walking {
                // The call goes on at the node (entering it) with the restored variables.
                let mut marks = vec![policy::Mark::Enter(state.node)];
                marks.extend(watched.iter().map(|w| match step.state.vars.contains_key(*w) {
                    true => policy::Mark::Set(w.to_string()),
                    false => policy::Mark::Unset(w.to_string()),
                }));
                // The resumed call on its own, from the offer root it opens with.
                if walked.insert((o, to, marks.clone(), tokens.clone())) {
                    walks.push(policy::Walk {
                        from: o,
                        to,
                        tokens: tokens.clone(),
                        marks: marks.clone(),
                        crossing: None,
                    });
                }
                // The two calls as one: from where the interrupted call waits.
                walks.push(policy::Walk {
                    from: at,
                    to,
                    tokens: tokens.clone(),
                    marks: marks.clone(),
                    crossing: Some(o),
                });
                done.push((o, to, marks));
            }
            if by_heard {
                let reply = step.reply.as_ref().map(|f| format!("{:?}", f.actions));
                if heard_seen.insert((o, to, reply)) {
                    visited[o].heard.push((tokens.clone(), to));
                }
            }
            if !visited[o].next.iter().any(|(_, t)| *t == to) {
                visited[o].next.push((tokens.clone(), to));
            }
        }
        resumed.insert(once, done);
    }
    r.states = visited.len();
    r.edges_covered = covered.len();
    r.covered = covered.iter().map(|(from, e)| (m.graph()[*from].name.clone(), e.to_string())).collect();
    if m.resume().is_some() && !truncated {
        resume_coverage(went_on, started_again, &mut r);
    }
    r.covered.sort();

    for id in m.graph().node_indices() {
        if !entered.contains_key(&id) {
            let name = &m.graph()[id].name;
            let mut v = violation(Kind::Unreachable, name, "no input reaches this node".into(), &[]);
            v.replay = Replay::Nothing;
            r.violations.push(v);
        }
    }
    for e in m.graph().edge_indices() {
        let Some((from, _)) = m.graph().edge_endpoints(e) else { continue };
        let label = &m.graph()[e];
        let Some(reached) = entered.get(&from) else { continue };
        if !covered.contains(&(from, label.clone())) {
            let name = &m.graph()[from].name;
            let why = match label {
                Edge::Rule(..) | Edge::Else => {
                    " (explored: clocks around every window and date of the routes, the values the rules \
                     name for an input or the caller, the values `set` and `add` give, and for a \
                     script's stored value the values its rules name, their neighbours, another value \
                     and the key missing)"
                }
                _ => "",
            };
            r.violations.push(violation(
                Kind::UncoveredEdge,
                name,
                format!("no input takes the `{label}` edge{why}"),
                reached,
            ));
        }
    }
    if !truncated {
        traps(m, &visited, &mut r);
        let inputs = |i: usize| inputs_to(&visited, i);
        let states = policy::States {
            node: visited.iter().map(|v| v.state.node).collect(),
            waiting: visited.iter().map(|v| v.state.phase == Phase::AwaitingInput).collect(),
            roots,
            offering: visited.iter().map(|v| v.state.offering()).collect(),
            inputs: &inputs,
        };
        let out = policy::outgoing(visited.len(), &walks);
        r.violations.extend(policy::check(m, &states, &walks, &out).into_iter().map(|b| Violation {
            origin: Some(b.origin),
            replay: if b.interrupted.is_some() { Replay::Resumed } else { Replay::Inbound },
            interrupted: b.interrupted,
            ..violation(Kind::Policy, &b.node, b.message, &b.inputs)
        }));
        r.violations.extend(outputs::check(m, &states, &walks, &out).into_iter().map(|u| Violation {
            origin: Some(u.origin),
            replay: if u.interrupted.is_some() { Replay::Resumed } else { Replay::Inbound },
            interrupted: u.interrupted,
            ..violation(Kind::UnsetOutput, &u.exit_node, u.message, &u.inputs)
        }));
    }
    for root in 0..roots {
        paths(m, &visited, root, &mut r, path, by_heard);
    }
    r
}

/// The two answers of a machine's resume offer, as `check` counts them with the machine's edges:
/// `1` going on where an interrupted call stopped, and any other answer starting again.
pub const RESUME_EDGES: [&str; 2] = ["go on", "start again"];
/// The name the offer's answers are listed under in coverage (no node has brackets in its name).
pub const RESUME_NODE: &str = "[resume]";

/// Whether a caller can be interrupted at `s` and offered to go on there: a state that waits for
/// keys at a node that captures them (not the offer itself, not a closed call).
fn resumable(m: &Machine, s: &CallState) -> bool {
    let waits = m.node(s.node).is_some_and(|n| n.kind.capture().is_some());
    !s.closed && s.phase == Phase::AwaitingInput && !s.offering() && waits
}

/// The resume offer's answers as edges in coverage (a machine with `[resume]`): its `1` going on
/// where an interrupted call stopped, and any other answer starting again; each not taken is an
/// uncovered edge. Both are explored with the rest: the other answers as the offer roots' inputs,
/// and the `1` in `explore_with`, from the offer root of every clock class and session class of
/// the interrupted call's caller (a caller calls back at another time, in a new session), at
/// every waiting state a call can be interrupted at, with that call's variables but the sensitive
/// ones. Where the call goes on is a state like any other (its successors explored, counted,
/// judged by traps and policies), replayed with the offer root's flags, `--resume-from=NODE`, a
/// `--var` for each variable the interrupted call kept other than the machine's, then `1`; policies
/// see it both as the resumed call on its own and as the two calls as one (a crossing walk,
/// `policy::Walk::crossing`, from the interrupted state).
fn resume_coverage(went_on: bool, started_again: bool, r: &mut Report) {
    r.edges += RESUME_EDGES.len();
    for (label, taken) in RESUME_EDGES.iter().zip([went_on, started_again]) {
        if taken {
            r.edges_covered += 1;
            r.covered.push((RESUME_NODE.to_string(), label.to_string()));
        } else {
            let mut v = violation(
                Kind::UncoveredEdge,
                RESUME_NODE,
                format!(
                    "no call takes the resume offer's `{label}`: the offer is made to a caller interrupted at a \
                     node that waits for keys (a menu, an input, a script that asks), and no call waits at one"
                ),
                &[],
            );
            v.replay = Replay::Nothing;
            r.violations.push(v);
        }
    }
}

/// The traps of a machine that did not compile, explored as far as it did (each node that did not
/// compile a `hangup`, a missing target an engine failure: ends, so no trap is blamed on them):
/// so that a loop with no exit is reported in the same run as the other errors.
pub fn traps_of(m: &Machine) -> Vec<Violation> {
    let traps = explore(m).violations.into_iter().filter(|v| v.kind == Kind::Trap);
    traps.map(|v| Violation { replay: Replay::AfterFixes, ..v }).collect()
}

fn violation(kind: Kind, node: &str, message: String, inputs: &[String]) -> Violation {
    Violation {
        kind,
        node: node.to_string(),
        message,
        inputs: inputs.to_vec(),
        replay: Replay::Inbound,
        origin: None,
        interrupted: None,
    }
}

fn outbound_violation(kind: Kind, node: &str, message: String) -> Violation {
    Violation { replay: Replay::Outbound, ..violation(kind, node, message, &[]) }
}

impl Violation {
    /// The violation as a diagnostic at its node in `source` (machine `m`'s), with the inputs
    /// that replay it; at a node inlined from a module, at the node in the module's file (one of
    /// `modules`), naming the machine and the module node.
    pub fn diagnostic(&self, source: &Source, m: &Machine, modules: &Modules) -> Diagnostic {
        let file = &source.file;
        let replay = match self.replay {
            Replay::Inbound if self.kind == Kind::UncoveredEdge => {
                Some(format!("a caller reaches the node with `{}`", replay(file, &self.inputs)))
            }
            Replay::Inbound => Some(format!("a caller gets there with `{}`", replay(file, &self.inputs))),
            Replay::Resumed => Some(format!(
                "a caller gets there in two calls: `{}`, hanging up at its last prompt, then within the \
                 resume window `{}`",
                replay(file, self.interrupted.as_deref().unwrap_or_default()),
                replay(file, &self.inputs)
            )),
            Replay::Outbound => {
                let outbound = ["--outbound".to_string()];
                Some(format!("the opening plays with `{}`", replay(file, &outbound)))
            }
            Replay::AfterFixes if self.inputs.iter().all(|i| i.starts_with("--")) => {
                Some("a caller gets there as the call starts".into())
            }
            Replay::AfterFixes => Some(format!(
                "a caller gets there with the inputs `{}` (`phonetree simulate` plays them once the errors above are fixed)",
                self.inputs.join(" ")
            )),
            Replay::Nothing => None,
        };
        let fix = match self.kind {
            Kind::Trap => {
                Some("give one of its branches (or `invalid`) a way to a `hangup` or `transfer` node")
            }
            Kind::TooLong => Some(
                "shorten the menu tree, or give deep menus a branch that ends the call or goes to an agent",
            ),
            Kind::Unbounded => Some(
                "bound the counter: test it with `at_least` / `at_most` in a route that ends the call, and only `add` to it",
            ),
            Kind::UnsetVariable => Some(
                "give its `store` entry a `default` (`NAME = { path = \"...\", default = \"...\" }`), or do not say it where an answer may lack it",
            ),
            Kind::Unreachable => Some("link to it from a node a caller reaches, or remove it"),
            Kind::Policy => Some("change the machine so the policy holds on every path, or the policy"),
            Kind::UnsetOutput => Some(
                "set it on every path to that exit (a `set` node) or drop it from the module's `outputs`",
            ),
            Kind::Unexplored => Some(
                "list such a caller in the split's `force` with that variant, so that `check` explores it",
            ),
            _ => None,
        };
        // A broken policy points at the policy, in the machine or in its folder's policies file;
        // an unset output at the module's `outputs`.
        let inlined =
            m.modules().iter().find_map(|u| Some((u, u.local(&self.node)?, modules.get(&u.module)?)));
        let mut node = self.node.clone();
        let mut message = self.message.clone();
        let (file, position) = match (&self.origin, inlined) {
            (Some(origin), _) => (origin.file.clone(), origin.position),
            (None, Some((used, local, module))) => {
                message.push_str(&format!(" (in machine `{}`, module node `{}`)", m.name(), used.namespace));
                node = local.to_string();
                (module.file.clone(), crate::machine::compile::locate_node(module, local))
            }
            (None, None) => (source.file.clone(), crate::machine::compile::locate_node(source, &self.node)),
        };
        Diagnostic {
            severity: Severity::Error,
            file,
            position,
            node: (!node.is_empty()).then_some(node),
            field: None,
            message,
            hint: match (fix, replay) {
                (Some(fix), Some(replay)) => Some(format!("{fix}; {replay}")),
                (fix, replay) => replay.or(fix.map(str::to_string)),
            },
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
fn inputs(m: &Machine, s: &CallState, routed: &Routed) -> Vec<Event> {
    let summary = Event::SessionEnded { status: "COMPLETED".into() };
    match s.phase {
        // The offer's `2` (any key but `1`, or none) starts at `start`; its `1` goes on at a
        // waiting state of an interrupted call, explored apart (`explore_with`, from every offer root).
        Phase::AwaitingInput if s.offering() => vec![Event::Digits("2".into()), Event::NoInput, summary],
        Phase::AwaitingInput => {
            let mut events: Vec<Event> = Vec::new();
            match m.node(s.node).map(|n| &n.kind) {
                Some(NodeKind::Input(input)) => {
                    events.push(Event::Digits(input.example.clone()));
                    events.push(Event::Digits(format!("{}#", input.example)));
                    // Keys that are not a number, where a counter adds the variable unproven.
                    if routed.unproven.contains(&input.variable) {
                        events.extend(not_a_number(input).map(Event::Digits));
                    }
                    // Each value a route rule tests this variable for, that the input accepts.
                    if routed.vars.iter().any(|(v, _)| *v == input.variable) {
                        for value in route_values(m, &input.variable) {
                            if value != input.example && input.accept(&value).is_some() {
                                events.push(Event::Digits(value));
                            }
                        }
                    }
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
        // A templated destination is checked by the outbound guard: both classes, allowed (the
        // call stays bridged) and refused (the transfer's `failure`).
        Phase::Bridged => {
            let mut events = vec![Event::NoInput, Event::Digits("1".into()), summary];
            if let Some(NodeKind::Transfer(t)) = m.node(s.node).map(|n| &n.kind)
                && t.destination.as_literal().is_none()
            {
                events.push(Event::DialRefused);
            }
            events
        }
        // The call is over for phonetree: any further webhook is answered with a hangup.
        Phase::Ended => vec![Event::NoInput, summary],
        Phase::New => vec![Event::CallStarted],
    }
}

/// The values route rules test variable `var` for.
fn route_values(m: &Machine, var: &str) -> Vec<String> {
    let mut values: Vec<String> = route_tests(m, var).flat_map(sample_values).collect();
    values.sort();
    values.dedup();
    values
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
        // The guard's refusal is not an input: `simulate --call-allow-prefix` decides it.
        Event::CallStarted | Event::DialRefused => vec![],
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
        // The call's clock is fixed at its start (its clock class) for every step.
        match engine::step_with(m, state, event, state.started_ms, &answers) {
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
/// The value every stored field gets in an answer class (unless the token gives it another).
const STORED_VALUE: &str = "1";

/// A stored variable's value in an answer: `Some` text, or `None` (the key missing).
type Given = (String, Option<String>);

/// Most answer classes one script branch gets for the stored values routes test: all their
/// combinations up to this many (so that rules on two variables in a row are both reached), else
/// one variable at a time.
pub const STORED_COMBINATIONS_MAX: usize = 256;

/// One answer per way a script can go: each branch value (`@VALUE`), another value or any success
/// (`@*`), and no answer (`@!`, a timeout). A script with a stored key that has no `default` also
/// gets each of those values in an answer without its stored keys (`@?VALUE`, `@?*`): the stored
/// key missing, which leaves the variable unset. The stored variables a route reads after a
/// branch (before anything writes them again) are also given their `stored_samples`, in every
/// combination (`@VALUE&code=A&amount=100`; `&amount` alone: its key missing), so that every rule
/// on them and every `else` are reached where an answer can give them.
fn answer_classes(m: &Machine, node: &str) -> Vec<(String, Answer)> {
    let Some(id) = m.node_id(node) else { return Vec::new() };
    let Some(NodeKind::Script(script)) = m.node(id).map(|n| &n.kind) else { return Vec::new() };
    let may_miss = script.store.iter().any(|s| s.default.is_none());
    let values: Vec<(String, NodeId)> = m
        .edges(id)
        .into_iter()
        .filter_map(|(edge, to)| match edge {
            Edge::Response(v) => Some((v, to)),
            Edge::Default => Some((OTHER_VALUE.to_string(), to)),
            _ => None,
        })
        .collect();
    let mut classes = Vec::new();
    for missing in [false, true].into_iter().filter(|&m| !m || may_miss) {
        for (value, _) in &values {
            let answer = synthetic_answer(script, Some(value), missing, &[]);
            classes.push((token_of(value, missing, &[]), answer));
        }
    }
    for (value, to) in &values {
        for given in stored_combinations(m, script, *to) {
            let answer = synthetic_answer(script, Some(value), false, &given);
            classes.push((token_of(value, false, &given), answer));
        }
    }
    classes.push(("@!".into(), Answer::Failed { reason: "timeout (explored)".into() }));
    classes
}

/// The stored values to answer with on a branch to `to`: each combination of the samples of the
/// variables a route reads from there (each also at `1`, the base class, but not all at once).
fn stored_combinations(m: &Machine, script: &Script, to: NodeId) -> Vec<Vec<Given>> {
    let vars: Vec<(&str, Vec<Option<String>>)> = script
        .store
        .iter()
        .filter(|s| read_before_written(m, to, &s.var))
        .map(|s| {
            let mut samples = stored_samples(m, &s.var, s.default.is_some());
            // The key missing from an answer that stores nothing else is `@?VALUE` already.
            if script.store.len() == 1 {
                samples.retain(Option::is_some);
            }
            (s.var.as_str(), samples)
        })
        .collect();
    let product = vars.iter().try_fold(1usize, |n, (_, samples)| n.checked_mul(samples.len() + 1));
    let mut out: Vec<Vec<Given>> = Vec::new();
    if product.is_some_and(|n| n <= STORED_COMBINATIONS_MAX) {
        out.push(Vec::new());
        for (var, samples) in &vars {
            let mut next = Vec::with_capacity(out.len() * (samples.len() + 1));
            for given in &out {
                next.push(given.clone());
                for sample in samples {
                    let mut g = given.clone();
                    g.push((var.to_string(), sample.clone()));
                    next.push(g);
                }
            }
            out = next;
        }
        out.retain(|g| !g.is_empty());
    } else {
        for (var, samples) in &vars {
            out.extend(samples.iter().map(|sample| vec![(var.to_string(), sample.clone())]));
        }
    }
    out
}

/// The replay token of an answer class (see `answer_for_token`).
fn token_of(value: &str, missing: bool, given: &[Given]) -> String {
    let mark = if missing { "?" } else { "" };
    let value = if value == OTHER_VALUE { "*" } else { value };
    if given.is_empty() && !value.contains('&') {
        return format!("@{mark}{value}");
    }
    let encode = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let mut token = format!("@{mark}{}", encode(value));
    if given.is_empty() {
        token.push('&');
    }
    for (var, text) in given {
        token.push('&');
        token.push_str(&encode(var));
        if let Some(text) = text {
            token.push('=');
            token.push_str(&encode(text));
        }
    }
    token
}

/// The answer a replay token stands for at `script`: `@VALUE` (the response key is VALUE),
/// `@*` (a value no branch names), `@!` (no answer); `@?VALUE` and `@?*` are the same answers
/// without the stored keys. Stored fields get the value `1` (a URL for the ones `{play:$name}`
/// plays), but for those the token gives after an `&`: `@VALUE&NAME=TEXT` gives stored variable
/// NAME the value TEXT, `@VALUE&NAME` leaves its key out of the answer (`@ok&code=A&amount`).
/// Once a token holds an `&`, VALUE, NAME and TEXT are form-encoded (`%26` for `&`, `+` for a
/// space).
pub fn answer_for_token(script: &Script, token: &str) -> Option<Answer> {
    let token = token.strip_prefix('@')?;
    let (missing, token) = match token.strip_prefix('?') {
        Some(rest) if !rest.is_empty() => (true, rest),
        _ => (false, token),
    };
    let decode = |s: &str| -> String {
        url::form_urlencoded::parse(s.as_bytes()).next().map(|(k, _)| k.into_owned()).unwrap_or_default()
    };
    let (value, given) = match token.split_once('&') {
        None => (token.to_string(), Vec::new()),
        Some((value, pairs)) => {
            let mut given = Vec::new();
            for pair in pairs.split('&').filter(|p| !p.is_empty()) {
                let (var, text) = match pair.split_once('=') {
                    Some((var, text)) => (decode(var), Some(decode(text))),
                    None => (decode(pair), None),
                };
                if !script.store.iter().any(|s| s.var == var) {
                    return None;
                }
                given.push((var, text));
            }
            (decode(value), given)
        }
    };
    match value.as_str() {
        "!" if !missing && given.is_empty() => Some(Answer::Failed { reason: "timeout (simulated)".into() }),
        "*" => Some(synthetic_answer(script, Some(OTHER_VALUE), missing, &given)),
        value => Some(synthetic_answer(script, Some(value), missing, &given)),
    }
}

/// A 200 answer whose JSON has the response key set to `value` and every stored field set (none
/// when `missing`); `given` sets stored variables' fields to their texts, or leaves them out.
fn synthetic_answer(script: &Script, value: Option<&str>, missing: bool, given: &[Given]) -> Answer {
    fn set(root: &mut serde_json::Value, path: &[String], value: serde_json::Value) {
        let mut at = root;
        for (i, part) in path.iter().enumerate() {
            if !at.is_object() {
                *at = serde_json::json!({});
            }
            let Some(map) = at.as_object_mut() else { return };
            if i + 1 == path.len() {
                map.insert(part.clone(), value);
                return;
            }
            at = map.entry(part.clone()).or_insert_with(|| serde_json::json!({}));
        }
    }
    let mut body = serde_json::json!({});
    for stored in script.store.iter().filter(|_| !missing) {
        let value = match given.iter().find(|(var, _)| *var == stored.var) {
            Some((_, None)) => continue,
            Some((_, Some(text))) => text.as_str(),
            // A played value must be a URL; any other stored value is a short text.
            None if script.played.contains(&stored.var) => "https://example.com/explore.mp3",
            None => STORED_VALUE,
        };
        set(&mut body, &stored.path, serde_json::json!(value));
    }
    if let (Some(path), Some(v)) = (&script.response_key, value) {
        set(&mut body, path, serde_json::json!(v));
    }
    Answer::Http { status: 200, body: serde_json::to_vec(&body).unwrap_or_default() }
}

/// Whether some route testing `var` (or a set node adding it to a counter) is reached from `from`
/// without passing a node that writes `var` again (an input, a script that stores it, a set).
fn read_before_written(m: &Machine, from: NodeId, var: &str) -> bool {
    let writes = |kind: &NodeKind| match kind {
        NodeKind::Input(i) => i.variable == var,
        NodeKind::Script(s) => s.store.iter().any(|s| s.var == var),
        NodeKind::Set(set) => {
            set.values.iter().any(|(v, _)| v == var) || set.add.iter().any(|(v, _)| v == var)
        }
        _ => false,
    };
    let tests = |kind: &NodeKind| match kind {
        NodeKind::Route(r) => r.rules.iter().any(|r| r.var.as_ref().is_some_and(|(v, _)| v == var)),
        // A counter adding it: whether it is a number picks `next` or `not_number`.
        NodeKind::Set(set) => set.add.iter().any(|(_, a)| a.var() == Some(var)),
        _ => false,
    };
    let mut seen = HashSet::from([from]);
    let mut queue = VecDeque::from([from]);
    while let Some(id) = queue.pop_front() {
        let Some(node) = m.node(id) else { continue };
        if tests(&node.kind) {
            return true;
        }
        if writes(&node.kind) {
            continue;
        }
        for (_, to) in m.edges(id) {
            if seen.insert(to) {
                queue.push_back(to);
            }
        }
    }
    false
}

fn inputs_to(visited: &[Visited], mut at: usize) -> Vec<String> {
    let mut steps = Vec::new();
    while let Some((parent, tokens)) = &visited[at].parent {
        steps.push(tokens.clone());
        at = *parent;
    }
    if let Some(clock) = &visited[at].clock {
        steps.push(clock.split(' ').map(str::to_string).collect());
    }
    steps.reverse();
    // A call that goes on from the offer goes on at the node its last `--resume-from` names.
    policy::going_on(steps.concat())
}

/// The shortest evidence of an unbounded exploration: on the path to `at`, the first state that
/// repeats an earlier one in all but the values routes test (a loop that changes them each time
/// round), and those variables named (`\`n\``). `at` itself, and every variable, when no state
/// repeats (a path that never loops, only long).
fn pumping(visited: &[Visited], at: usize, routed: &Routed, may_miss: &[String]) -> (usize, String) {
    let mut path = vec![at];
    while let Some((parent, _)) = &visited[*path.last().unwrap_or(&at)].parent {
        path.push(*parent);
    }
    path.reverse();
    let mut seen: HashMap<Key, usize> = HashMap::new();
    for &i in &path {
        let mut k = key(&visited[i].state, routed, may_miss);
        let values = std::mem::take(&mut k.4);
        if let Some(&first) = seen.get(&k) {
            let before = key(&visited[first].state, routed, may_miss).4;
            let changed: Vec<String> = routed
                .vars
                .iter()
                .zip(before.iter().zip(&values))
                .filter(|(_, (a, b))| a != b)
                .map(|((name, _), _)| format!("`{name}`"))
                .collect();
            return (i, changed.join(", "));
        }
        seen.insert(k, i);
    }
    let all: Vec<String> = routed.vars.iter().map(|(name, _)| format!("`{name}`")).collect();
    (at, all.join(", "))
}

/// States from which no caller input leads to an end: the call could go on forever.
fn traps(m: &Machine, visited: &[Visited], r: &mut Report) {
    let mut incoming: Vec<Vec<usize>> = vec![Vec::new(); visited.len()];
    for (i, v) in visited.iter().enumerate() {
        for (_, to) in &v.next {
            incoming[*to].push(i);
        }
    }
    let mut can_end: Vec<bool> = visited.iter().map(|v| v.state.phase == Phase::Ended || v.fails).collect();
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

/// Counts the simple paths from a start and finds the longest (depth first, without recursion);
/// hands each one's inputs to `path`. `by_heard`: over the transitions a caller tells apart.
fn paths(
    m: &Machine,
    visited: &[Visited],
    root: usize,
    r: &mut Report,
    path: &mut dyn FnMut(&[String]),
    by_heard: bool,
) {
    // The bound is per machine, over all its starts: a start after it counts nothing.
    if r.paths >= PATHS_MAX {
        r.paths_complete = false;
        return;
    }
    let mut on_path = vec![false; visited.len()];
    // (state, next successor to try); the inputs of the path so far in `inputs`.
    let mut stack: Vec<(usize, usize)> = vec![(root, 0)];
    // A start's clock and caller, as `simulate` takes them.
    let mut inputs: Vec<String> = inputs_to(visited, root);
    let resumes = visited[root].state.offering();
    // How many tokens each step on the path added (answers to scripts ride with their keys).
    let mut lengths: Vec<usize> = Vec::new();
    on_path[root] = true;
    let mut too_long = false;
    while let Some(&mut (at, ref mut next)) = stack.last_mut() {
        let successors = if by_heard { &visited[at].heard } else { &visited[at].next };
        let open = successors.iter().skip(*next).position(|(_, to)| !on_path[*to]);
        let is_leaf = *next == 0 && successors.iter().all(|(_, to)| on_path[*to]);
        if is_leaf {
            // A path through the offer's `1` goes on at the node that answer names.
            let resumed;
            let whole: &[String] = if resumes {
                resumed = policy::going_on(inputs.clone());
                &resumed
            } else {
                &inputs
            };
            path(whole);
            r.paths += 1;
            if whole.len() > r.longest.len() {
                r.longest = whole.to_vec();
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
                        &policy::going_on(inputs.clone()),
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
