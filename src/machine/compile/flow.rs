//! Flow over the graph: every node reachable from the start, every call variable a template uses
//! set on every way to it (definite assignment), and `{play:$var}` only where 8x8 can play it.

use std::collections::{BTreeSet, HashMap, VecDeque};

use petgraph::Direction;
use petgraph::visit::EdgeRef;

use super::super::definition::Kind;
use super::super::diagnostic::Severity;
use super::super::template::Template;
use super::super::{Edge, Machine, Menu, NodeId, NodeKind};
use super::{At, Compiler};

/// The call variables certainly set on entering each node reached from the start.
type SetOnEntry = HashMap<NodeId, BTreeSet<String>>;

impl Compiler<'_> {
    /// Every node is reachable from the start. (Whether every call can end is proven by
    /// `explore`, which walks the engine itself and gives a counterexample.) A node a syntax error
    /// left unread may have named any node: once one is reached, every node counts as reached.
    pub(super) fn check_reachability(&mut self, m: &Machine) {
        let reachable = bfs(m, m.start);
        let unread: Vec<bool> =
            m.graph.node_indices().map(|id| self.unread.nodes.contains(&m.graph[id].name)).collect();
        if m.graph.node_indices().any(|id| reachable[id.index()] && unread[id.index()]) {
            return;
        }
        for id in m.graph.node_indices() {
            if !reachable[id.index()] && !unread[id.index()] {
                let name = m.graph[id].name.clone();
                self.error(
                    At::NodeKey(&name),
                    format!("node is unreachable from the start node `{}`", m.graph[m.start].name),
                    Some("link to it from another node, or remove it".into()),
                );
            }
        }
    }

    /// Every variable a node's templates use is set on every path to it.
    pub(super) fn check_assigned(&mut self, m: &Machine, failed: &[bool]) {
        if self.declared.is_empty() {
            return;
        }
        let set_on_entry = set_on_entry(m, failed, &self.declared);
        for id in m.graph.node_indices() {
            let Some(set) = set_on_entry.get(&id) else { continue };
            let name = m.graph[id].name.clone();
            // What `add` reads must be set too: it is not a number when unset.
            let added = match &m.graph[id].kind {
                NodeKind::Set(set) => set.add.iter().filter_map(|(c, a)| Some((c, a.var()?))).collect(),
                _ => Vec::new(),
            };
            for (counter, var) in added {
                if self.declared.contains(var) && !set.contains(var) {
                    self.error(
                        At::Node(&name, &format!("add.{counter}")),
                        format!(
                            "call variable `{var}` may be unset here: not every way to this node sets it"
                        ),
                        Some("reach this node only after the node that sets it, or add a number".into()),
                    );
                }
            }
            for (field, t) in templates_of(&m.graph[id].kind) {
                let unset: Vec<String> = t
                    .vars()
                    .filter(|v| self.declared.contains(*v) && !set.contains(*v))
                    .map(str::to_string)
                    .collect();
                for var in unset {
                    self.error(
                        At::Node(&name, field),
                        format!("call variable `{var}` may be unset here: not every way to this node passes an `input` that sets it"),
                        Some("reach this node only after the `input` node's `next`, or use another variable".into()),
                    );
                }
            }
        }
    }
}

impl Compiler<'_> {
    /// Every one of the machine's `variables` is read somewhere (a template, a route rule, a
    /// counter): a placed call could give one nothing reads, and its caller would think it used.
    pub(super) fn check_variables_read(&mut self, m: &Machine) {
        if m.variables.is_empty() {
            return;
        }
        let mut read = BTreeSet::new();
        // The language variable picks every text a call hears.
        read.extend(m.language_variable().map(str::to_string));
        for id in m.graph.node_indices() {
            let kind = &m.graph[id].kind;
            read.extend(templates_of(kind).into_iter().flat_map(|(_, t)| t.vars()).map(str::to_string));
            match kind {
                NodeKind::Route(route) => {
                    read.extend(route.rules.iter().filter_map(|r| r.var.as_ref()).map(|(v, _)| v.clone()));
                }
                NodeKind::Set(set) => {
                    read.extend(set.add.iter().map(|(v, _)| v.clone()));
                    read.extend(set.add.iter().filter_map(|(_, a)| a.var()).map(str::to_string));
                }
                _ => {}
            }
        }
        for name in m.variables.keys().filter(|v| !read.contains(*v)) {
            self.report(
                Severity::Warning,
                At::Machine(&format!("variables.{name}")),
                format!("no node reads variable `{name}`: a placed call that gives it changes nothing"),
                Some(format!("use `{{{name}}}` in a template or a route rule, or remove it")),
            );
        }
    }
}

/// The sets of variables certainly set on entering each node, to a fixed point: an `input` sets
/// its variable on its `next` edge only, a script its stored variables on the edges of an answer,
/// a set its values and counters on its `next`; the machine's `variables` are set from the start. (An answer without a stored key leaves its
/// variable unset, unless it has a `default`: that is `explore`'s "stored key missing" answer
/// class, reported with the answers that reach it.)
/// A node that did not compile is taken to set every variable: nothing after it is blamed on it.
fn set_on_entry(m: &Machine, failed: &[bool], declared: &BTreeSet<String>) -> SetOnEntry {
    // A call starts with the machine's `variables` set.
    let mut set_on_entry: SetOnEntry = HashMap::from([(m.start, m.variables.keys().cloned().collect())]);
    let mut queue = VecDeque::from([m.start]);
    while let Some(id) = queue.pop_front() {
        let here = set_on_entry[&id].clone();
        for e in m.graph.edges_directed(id, Direction::Outgoing) {
            let mut out = if failed[id.index()] { declared.clone() } else { here.clone() };
            match (&m.graph[id].kind, e.weight()) {
                (NodeKind::Input(input), Edge::Next) => {
                    out.insert(input.variable.clone());
                }
                (NodeKind::Script(script), Edge::Response(_) | Edge::Default) => {
                    out.extend(script.store.iter().map(|s| s.var.clone()));
                }
                (NodeKind::Set(set), Edge::Next) => {
                    out.extend(set.values.iter().map(|(v, _)| v.clone()));
                    out.extend(set.add.iter().map(|(v, _)| v.clone()));
                }
                _ => {}
            }
            let changed = match set_on_entry.get_mut(&e.target()) {
                None => {
                    set_on_entry.insert(e.target(), out);
                    true
                }
                Some(there) => {
                    let meet: BTreeSet<String> = there.intersection(&out).cloned().collect();
                    let shrunk = meet.len() < there.len();
                    *there = meet;
                    shrunk
                }
            };
            if changed {
                queue.push_back(e.target());
            }
        }
    }
    set_on_entry
}

impl Compiler<'_> {
    /// `{play:$name}` plays a file 8x8 fetches: only in a say node's text or a script's spoken
    /// prompt, and only a variable a script stores from its answer (whose value is then checked
    /// to be an http(s) URL when the answer comes).
    pub(super) fn check_play(&mut self, m: &mut Machine) {
        // From the definitions: a script that did not compile still stores what it names.
        let stored: BTreeSet<String> = (self.def.nodes.iter().map(|(_, n)| n))
            .filter(|n| matches!(n.kind, Some(Kind::Script) | None))
            .flat_map(|n| n.store.iter().flatten().map(|(v, _)| v.clone()))
            .collect();
        let mut played = BTreeSet::new();
        for id in m.graph.node_indices() {
            let node = &m.graph[id];
            let templates = templates_of(&node.kind);
            if templates.iter().all(|(_, t)| t.played().next().is_none()) {
                continue;
            }
            let name = node.name.clone();
            let mut problems = Vec::new();
            for (field, t) in templates {
                let spoken_text = matches!((&node.kind, field), (NodeKind::Say(_), "text"))
                    || matches!((&node.kind, field), (NodeKind::Script(s), "prompt") if s.capture.is_none());
                for var in t.played() {
                    if !spoken_text {
                        problems.push((field, format!("`{{play:${var}}}` only works in a say node's `text` or a script's spoken `prompt`"), None));
                    } else if !stored.contains(var) {
                        problems.push((field, format!("`{{play:${var}}}` plays a URL a script stores from its answer; `{var}` is not one"), Some("store it with a script's `store`, or use a `play` node".to_string())));
                    } else {
                        played.insert(var.to_string());
                    }
                }
            }
            // A re-prompt that is the prompt holds the same template: one report.
            problems.dedup_by(|a, b| a.1 == b.1);
            for (field, message, hint) in problems {
                self.error(At::Node(&name, field), message, hint);
            }
        }
        for node in m.graph.node_weights_mut() {
            if let NodeKind::Script(s) = &mut node.kind {
                s.played = s.store.iter().map(|s| s.var.clone()).filter(|v| played.contains(v)).collect();
            }
        }
    }
}

/// The templates a node renders, by field.
pub(super) fn templates_of(kind: &NodeKind) -> Vec<(&'static str, &Template)> {
    fn capture(m: &Menu) -> Vec<(&'static str, &Template)> {
        let mut t = vec![("prompt", &m.capture.prompt_message), ("reprompt", &m.reprompt)];
        t.extend(m.lead.iter().map(|s| ("prompt", &s.text)));
        t.extend(m.relead.iter().map(|s| ("reprompt", &s.text)));
        t.extend(m.capture.success_message.iter().map(|s| ("success_message", s)));
        t.extend(m.capture.failure_message.iter().map(|s| ("failure_message", s)));
        t
    }
    match kind {
        NodeKind::Menu(menu) => capture(menu),
        NodeKind::Input(input) => capture(&input.prompt),
        NodeKind::Say(s) => vec![("text", &s.text)],
        NodeKind::Play(p) => vec![("file_url", &p.file_url)],
        NodeKind::Transfer(t) => vec![("destination", &t.destination), ("source", &t.source)],
        NodeKind::Script(s) => {
            let mut t = s.capture.as_ref().map(capture).unwrap_or_default();
            t.extend(s.say.iter().map(|say| ("prompt", &say.text)));
            t.push(("url", &s.request.url));
            t.extend(s.request.body.iter().flatten().map(|(_, v)| ("body", v)));
            t.extend(s.request.headers.iter().map(|(_, v)| ("headers", v)));
            t
        }
        NodeKind::Set(set) => set.values.iter().map(|(_, t)| ("values", t)).collect(),
        NodeKind::Hangup | NodeKind::Route(_) | NodeKind::Split(_) => vec![],
    }
}

/// The nodes reachable from `from`, by `NodeId` index.
fn bfs(m: &Machine, from: NodeId) -> Vec<bool> {
    let mut seen = vec![false; m.graph.node_count()];
    seen[from.index()] = true;
    let mut queue = VecDeque::from([from]);
    while let Some(id) = queue.pop_front() {
        for other in m.graph.neighbors_directed(id, Direction::Outgoing) {
            if !std::mem::replace(&mut seen[other.index()], true) {
                queue.push_back(other);
            }
        }
    }
    seen
}
