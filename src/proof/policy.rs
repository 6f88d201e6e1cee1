//! Policies proven over every path (`machine::policy`): on the call states `explore` found and
//! every caller transition between them, with the nodes and edges each passes in order.
//!
//! "Every path" includes loops (tries, `repeat`, a wrong PIN again), so no path is enumerated:
//! each safety policy is a small automaton run in product with the state graph, and a breadth
//! first search of the product finds a bad state if one is reachable at all (the first found is
//! a shortest counterexample):
//! - `before`/`on_every_path_to`: two states, `first` passed or not; bad: a target entered before;
//! - `never`/`after`: two states, `after` passed or not; bad: a target entered after;
//! - `max_answers = N`: the answers so far, 0 to N; bad: a waiting state after N answers (the
//!   call asks for answer N + 1).
//!
//! A machine with `[resume]` is proven across its offer both ways, a violation under either being
//! one: the resumed call on its own (the offer's `1` is a walk from each offer root to where the
//! call goes on, entering that node, so a notice heard in the interrupted call does not count), and
//! the two calls as one (a crossing walk from the interrupted call's waiting state to the same
//! place: the automaton goes on with the state it had, the offer's answer one answer more; at most
//! one crossing a counterexample, replayed as two calls: a caller who hangs up and calls back
//! without end would break every `max_answers`).
//!
//! `reach`/`within_answers` says something of every waiting state: the fewest answers with which
//! the caller gets to the node whatever the scripts answer (the caller picks the keys, not the
//! API's answer: an input counts by its worst answer class) — a shortest-path distance over the
//! state graph read backwards (Knuth's generalisation of Dijkstra to such min-max distances: a
//! transition from a waiting state costs one answer, the call's start none) — and each waiting
//! node with a state beyond the bound is a violation, replayed to it.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};

use crate::engine::Assigned;
use crate::machine::policy::{After, Origin, Policy, Rule, Target, names_edge};
use crate::machine::{Edge, Machine, NodeId, NodeKind};

/// A policy that does not hold: where it was written, the node where it breaks, what happens
/// there, and the inputs that replay it from the call's start (`explore` makes it a violation).
#[derive(Debug, Clone)]
pub(super) struct Broken {
    pub origin: Origin,
    pub node: String,
    pub message: String,
    pub inputs: Vec<String>,
    /// Across a resumed call: the inputs of the interrupted call before it (the caller hangs up
    /// at its last prompt; `inputs` then go on from there).
    pub interrupted: Option<Vec<String>>,
}

/// The inputs that replay a counterexample: one call, or an interrupted call and the call that
/// goes on from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Calls {
    pub interrupted: Option<Vec<String>>,
    pub inputs: Vec<String>,
}

/// What a transition passes, in order.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) enum Mark {
    Enter(NodeId),
    Take(NodeId, Edge),
    /// A call variable a module promises (`outputs`) set, or unset.
    Set(String),
    Unset(String),
}

/// One caller transition between two explored call states.
#[derive(Debug, Clone)]
pub(super) struct Walk {
    pub from: usize,
    pub to: usize,
    /// What the caller presses (and the scripts answer), as `simulate` takes it.
    pub tokens: Vec<String>,
    pub marks: Vec<Mark>,
    /// A crossing (`[resume]`): `from` is where an interrupted call waits and `to` where the call
    /// that takes the offer's `1` goes on; that call opens at this offer root (its flags, then
    /// `tokens`). Not a transition of one call: only `first_bad` follows it, once a path.
    pub crossing: Option<usize>,
}

/// The explored call states, as the policies need them.
pub(super) struct States<'a> {
    /// The node each state is at.
    pub node: Vec<NodeId>,
    /// Whether each state waits for the caller's answer.
    pub waiting: Vec<bool>,
    /// The states a call starts in are `0..roots`.
    pub roots: usize,
    /// Whether each state waits at the resume offer.
    pub offering: Vec<bool>,
    /// The inputs that reach a state from the call's start (its clock and caller flags included).
    pub inputs: &'a dyn Fn(usize) -> Vec<String>,
}

/// The marks of one step: the start (when the call started), then each edge and the node it enters
/// (a repeated prompt enters nothing), with each variable of `watched` set or unset where the step
/// did it (`engine::Step::assigned`).
pub(super) fn marks(
    started: Option<NodeId>,
    edges: &[(NodeId, Edge, NodeId)],
    assigned: &[Assigned],
    watched: &[&str],
) -> Vec<Mark> {
    let mut marks: Vec<Mark> = started.into_iter().map(Mark::Enter).collect();
    let mut assigned = assigned.iter().filter(|a| watched.contains(&a.var.as_str())).peekable();
    let mut changes = |before: usize, marks: &mut Vec<Mark>| {
        while let Some(a) = assigned.next_if(|a| a.after_edges <= before) {
            marks.push(if a.set { Mark::Set(a.var.clone()) } else { Mark::Unset(a.var.clone()) });
        }
    };
    for (i, (from, edge, to)) in edges.iter().enumerate() {
        changes(i, &mut marks);
        marks.push(Mark::Take(*from, edge.clone()));
        let repeats = matches!(edge, Edge::Repeat(_) | Edge::Back(_)) && from == to;
        if !repeats {
            marks.push(Mark::Enter(*to));
        }
    }
    changes(usize::MAX, &mut marks);
    marks
}

/// The walks leaving each state, by index in `walks`.
pub(super) fn outgoing(states: usize, walks: &[Walk]) -> Vec<Vec<usize>> {
    let mut out: Vec<Vec<usize>> = vec![Vec::new(); states];
    for (i, w) in walks.iter().enumerate() {
        out[w.from].push(i);
    }
    out
}

/// Every policy of `m` checked on its explored states and transitions (`out`: `outgoing`).
pub(super) fn check(m: &Machine, states: &States<'_>, walks: &[Walk], out: &[Vec<usize>]) -> Vec<Broken> {
    let mut violations = Vec::new();
    for p in m.policies() {
        match &p.rule {
            Rule::Reach { node, within } => violations.extend(reach(m, p, states, walks, node, *within)),
            _ => violations.extend(safety(m, p, states, walks, out)),
        }
    }
    violations
}

fn is_target(m: &Machine, target: &Target, id: NodeId) -> bool {
    let Some(node) = m.node(id) else { return false };
    match (target, &node.kind) {
        (Target::Transfer, NodeKind::Transfer(_)) => true,
        (Target::RecordedTransfer, NodeKind::Transfer(t)) => t.call_recording == Some(true),
        (Target::Node(name), _) => node.name == *name,
        _ => false,
    }
}

fn is_named(m: &Machine, name: &str, id: NodeId) -> bool {
    m.node(id).is_some_and(|n| n.name == name)
}

/// The automaton of a safety policy, one transition on: its next state, or the node entered
/// where the policy breaks.
fn advance(m: &Machine, rule: &Rule, mut at: u32, answered: bool, marks: &[Mark]) -> Result<u32, NodeId> {
    match rule {
        Rule::MaxAnswers(_) => return Ok(at.saturating_add(u32::from(answered))),
        Rule::Reach { .. } => return Ok(at),
        Rule::Before { first, to } => {
            for mark in marks {
                if let Mark::Enter(id) = mark {
                    if is_named(m, first, *id) {
                        at = 1;
                    } else if at == 0 && is_target(m, to, *id) {
                        return Err(*id);
                    }
                }
            }
        }
        Rule::Never { what, after: After { node, edge } } => {
            for mark in marks {
                match mark {
                    Mark::Enter(id) if at == 1 && is_target(m, what, *id) => return Err(*id),
                    Mark::Enter(id) if edge.is_none() && is_named(m, node, *id) => at = 1,
                    Mark::Take(from, e)
                        if edge.as_deref().is_some_and(|t| names_edge(e, t)) && is_named(m, node, *from) =>
                    {
                        at = 1
                    }
                    _ => {}
                }
            }
        }
    }
    Ok(at)
}

/// A product state, (call state, automaton state, whether a crossing was taken), with the
/// product state and walk it came by.
type Product = ((usize, u32, bool), Option<(usize, usize)>);

/// A breadth-first search of the product of the call states with an automaton (from state 0 at
/// each call start) up to the first bad state, so the shortest counterexample: `bad_at` judges a
/// product state, `advance` runs the automaton over a transition's marks (`Err`: bad on the way).
/// A crossing walk is followed at most once a path. The bad thing found, and the calls that
/// replay it.
pub(super) fn first_bad<B>(
    states: &States<'_>,
    walks: &[Walk],
    out: &[Vec<usize>],
    bad_at: impl Fn(usize, u32) -> Option<B>,
    advance: impl Fn(u32, bool, &[Mark]) -> Result<u32, B>,
) -> Option<(B, Calls)> {
    // (state, automaton, crossed) → its index in `seen`; each with the product state and walk it
    // came by.
    let mut index: HashMap<(usize, u32, bool), usize> = HashMap::new();
    let mut seen: Vec<Product> = Vec::new();
    let mut queue = VecDeque::new();
    for root in 0..states.roots {
        index.insert((root, 0, false), seen.len());
        queue.push_back(seen.len());
        seen.push(((root, 0, false), None));
    }
    let calls_to = |seen: &[Product], mut at: usize, last: Option<usize>| {
        let mut path: Vec<usize> = last.into_iter().collect();
        while let Some((parent, walk)) = seen[at].1 {
            path.push(walk);
            at = parent;
        }
        path.reverse();
        calls(states, walks, seen[at].0.0, &path)
    };
    while let Some(at) = queue.pop_front() {
        let ((state, mon, crossed), _) = seen[at];
        if let Some(bad) = bad_at(state, mon) {
            return Some((bad, calls_to(&seen, at, None)));
        }
        for &w in &out[state] {
            let walk = &walks[w];
            if crossed && walk.crossing.is_some() {
                continue;
            }
            match advance(mon, states.waiting[state], &walk.marks) {
                Err(bad) => return Some((bad, calls_to(&seen, at, Some(w)))),
                Ok(next) => {
                    let key = (walk.to, next, crossed || walk.crossing.is_some());
                    if let std::collections::hash_map::Entry::Vacant(e) = index.entry(key) {
                        e.insert(seen.len());
                        queue.push_back(seen.len());
                        seen.push((key, Some((at, w))));
                    }
                }
            }
        }
    }
    None
}

/// The calls that replay the walks `path` from `root`: its inputs, and at a crossing a second
/// call from the crossing's offer root.
fn calls(states: &States<'_>, walks: &[Walk], root: usize, path: &[usize]) -> Calls {
    let mut interrupted = None;
    let mut inputs = (states.inputs)(root);
    for &w in path {
        if let Some(offer) = walks[w].crossing {
            interrupted = Some(std::mem::replace(&mut inputs, (states.inputs)(offer)));
        }
        inputs.extend(walks[w].tokens.iter().cloned());
    }
    Calls { interrupted: interrupted.map(going_on), inputs: going_on(inputs) }
}

/// The inputs of a call with the last `--resume-from` flag alone: a walk from an offer root goes
/// on at its own node, not at the one the root's flags name.
pub(super) fn going_on(inputs: Vec<String>) -> Vec<String> {
    let flag = |i: &String| i.starts_with(super::tokens::RESUME_FROM_FLAG);
    let Some(last) = inputs.iter().rposition(flag) else { return inputs };
    inputs.into_iter().enumerate().filter(|(i, input)| *i == last || !flag(input)).map(|(_, i)| i).collect()
}

/// The first state where a safety policy breaks (the shortest counterexample).
fn safety(
    m: &Machine,
    p: &Policy,
    states: &States<'_>,
    walks: &[Walk],
    out: &[Vec<usize>],
) -> Option<Broken> {
    let bad_at = |state: usize, mon: u32| match p.rule {
        Rule::MaxAnswers(n) if mon >= n && states.waiting[state] => {
            Some((states.node[state], format!("a caller is asked for answer {} here", n.saturating_add(1))))
        }
        _ => None,
    };
    let advance = |mon: u32, waiting: bool, marks: &[Mark]| {
        advance(m, &p.rule, mon, waiting, marks).map_err(|node| {
            let name = m.node(node).map_or("", |n| n.name.as_str());
            let message = match &p.rule {
                Rule::Before { first, .. } => {
                    format!("a call enters `{name}` without passing `{first}` first")
                }
                Rule::Never { after, .. } => {
                    let after = after
                        .edge
                        .as_ref()
                        .map_or(format!("`{}`", after.node), |e| format!("`{}`'s `{e}` edge", after.node));
                    format!("a call enters `{name}` after {after}")
                }
                _ => format!("a call enters `{name}`"),
            };
            (node, message)
        })
    };
    let ((node, message), calls) = first_bad(states, walks, out, bad_at, advance)?;
    let mut broken = violation(m, p, node, message, calls.inputs);
    broken.interrupted = calls.interrupted;
    Some(broken)
}

/// The waiting nodes from which `node` takes more than `within` answers, each once (at its state
/// the explorer reached first, so with the shortest inputs).
fn reach(
    m: &Machine,
    p: &Policy,
    states: &States<'_>,
    walks: &[Walk],
    node: &str,
    within: u32,
) -> Vec<Broken> {
    let n = states.node.len();
    // A crossing is two calls, not answers in one: `reach` is said of each call on its own.
    let walks: Vec<&Walk> = walks.iter().filter(|w| w.crossing.is_none()).collect();
    // One group per state and caller input: its outcomes, one per script answer class (at a
    // state that does not wait, every transition is one group: nothing there is the caller's).
    let mut group_of: HashMap<(usize, Vec<&str>), usize> = HashMap::new();
    // (state it leaves, outcomes not known yet, the largest known outcome)
    let mut groups: Vec<(usize, usize, u32)> = Vec::new();
    let mut outcome_group = Vec::with_capacity(walks.len());
    for w in &walks {
        // The offer's `1` goes on where the interrupted call stopped, which the caller does not
        // pick in this call: its walks (flags, then `1`) are one input, counted by the worst.
        let caller: Vec<&str> = if states.waiting[w.from] {
            w.tokens
                .iter()
                .map(String::as_str)
                .filter(|t| !t.starts_with('@') && !t.starts_with("--"))
                .collect()
        } else {
            Vec::new()
        };
        let g = *group_of.entry((w.from, caller)).or_insert_with(|| {
            groups.push((w.from, 0, 0));
            groups.len() - 1
        });
        groups[g].1 += 1;
        outcome_group.push(g);
    }
    let mut incoming: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut dist: Vec<u32> = vec![u32::MAX; n];
    let mut heap = BinaryHeap::new();
    for (i, id) in states.node.iter().enumerate() {
        if is_named(m, node, *id) {
            dist[i] = 0;
            heap.push(Reverse((0, i)));
        }
    }
    // An outcome is known once the state it reaches is settled, or at once when it enters the
    // node; a group once all its outcomes are: its worst outcome is what that input guarantees.
    let known = |w: usize, value: u32, groups: &mut Vec<(usize, usize, u32)>, heap: &mut BinaryHeap<_>| {
        let g = &mut groups[outcome_group[w]];
        g.1 -= 1;
        g.2 = g.2.max(value);
        if g.1 == 0 {
            heap.push(Reverse((g.2, g.0)));
        }
    };
    for (i, w) in walks.iter().enumerate() {
        let cost = u32::from(states.waiting[w.from]);
        let enters = w.marks.iter().any(|mark| matches!(mark, Mark::Enter(id) if is_named(m, node, *id)));
        if enters {
            known(i, cost, &mut groups, &mut heap);
        } else {
            incoming[w.to].push(i);
        }
    }
    let mut settled = vec![false; n];
    while let Some(Reverse((d, at))) = heap.pop() {
        if settled[at] {
            continue;
        }
        settled[at] = true;
        dist[at] = d;
        for &w in &incoming[at] {
            let cost = d.saturating_add(u32::from(states.waiting[walks[w].from]));
            known(w, cost, &mut groups, &mut heap);
        }
    }
    let mut reported = std::collections::HashSet::new();
    let mut violations = Vec::new();
    for (i, &d) in dist.iter().enumerate() {
        if !states.waiting[i] || d <= within || !reported.insert(states.node[i]) {
            continue;
        }
        let here = if states.offering[i] { "at the resume offer" } else { "from here" };
        let message = match d {
            u32::MAX => format!("{here} no answers reach `{node}`"),
            d => format!("{here} `{node}` takes {d} answers at the fewest"),
        };
        violations.push(violation(m, p, states.node[i], message, (states.inputs)(i)));
    }
    violations
}

fn violation(m: &Machine, p: &Policy, node: NodeId, message: String, inputs: Vec<String>) -> Broken {
    let name = m.node(node).map_or_else(String::new, |n| n.name.clone());
    let whose = if p.own { String::new() } else { format!(" in machine `{}`", m.name()) };
    Broken {
        origin: p.origin.clone(),
        node: name,
        message: format!("policy {} ({}) is broken{whose}: {message}", p.index.saturating_add(1), p.rule),
        inputs,
        interrupted: None,
    }
}
