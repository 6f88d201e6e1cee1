//! Edges: each node's targets resolved to graph edges (unknown targets get a "did you mean"), and
//! the branch keys of menus checked to be typeable at that menu.

use std::collections::{BTreeMap, HashMap};

use petgraph::graph::DiGraph;

use super::super::definition::{Kind, Next, NodeDef};
use super::super::{Edge, ExitEdge, Node, NodeId};
use super::{At, Compiler};
use crate::callflow;
use crate::machine::diagnostic::{Severity, closest};

/// Most branches of one menu: 12 keys on a phone, and multi-digit codes for extensions.
const BRANCHES_MAX: usize = 1000;

/// A target named by a node: the field naming it, the edge's label, the target's name.
type Target<'d> = (Field<'d>, Edge, &'d String);

/// The field that names a target: its name is only formatted for a diagnostic.
#[derive(Clone, Copy)]
enum Field<'d> {
    Named(&'static str),
    /// `branches.KEY`
    Branch(&'d str),
    /// `rules.N.next`
    Rule(usize),
    /// `next.VARIANT` (a split's)
    Variant(&'d str),
}

impl Field<'_> {
    fn path(self) -> String {
        match self {
            Field::Named(f) => f.to_string(),
            Field::Branch(key) => format!("branches.{key}"),
            Field::Rule(i) => format!("rules.{i}.next"),
            Field::Variant(v) => format!("next.{v}"),
        }
    }
}

impl Compiler<'_> {
    /// Adds the edges of node `from` (`name`, defined by `n`); a target that does not exist is
    /// reported instead.
    pub(super) fn edges(
        &mut self,
        (from, name, n): (NodeId, &str, &NodeDef),
        by_name: &HashMap<String, NodeId>,
        graph: &mut DiGraph<Node, Edge, u32>,
    ) {
        for (field, edge, target) in self.targets(name, n) {
            match by_name.get(target.as_str()) {
                Some(&to) => {
                    // An edge that leaves a module's use by one of its exits.
                    if !self.exit_fields.is_empty()
                        && let Some(fields) = self.exit_fields.get(&(name.to_string(), field.path()))
                    {
                        for f in fields {
                            let exit = ExitEdge {
                                from,
                                edge: edge.clone(),
                                exit: f.exit.clone(),
                                exit_node: f.exit_node.clone(),
                            };
                            self.exit_edges.push((f.namespace.clone(), exit));
                        }
                    }
                    graph.add_edge(from, to, edge);
                }
                None => {
                    let hint = closest(target, by_name.keys().map(String::as_str)).map_or_else(
                        || "targets must name a `[nodes.*]` table".to_string(),
                        |c| format!("did you mean `{c}`?"),
                    );
                    let message = format!("unknown target node `{target}`");
                    self.error(At::Node(name, &field.path()), message, Some(hint));
                }
            }
        }
    }

    /// The targets a node names, by kind (a menu's keys that cannot be typed are left out).
    fn targets<'d>(&mut self, name: &str, n: &'d NodeDef) -> Vec<Target<'d>> {
        // Keys and branch values first: the order edges were always added in.
        let mut targets: Vec<Target<'d>> = match n.kind {
            Some(Kind::Menu) => self.key_targets(name, n),
            Some(Kind::Script) | None => n
                .branches
                .iter()
                .flatten()
                .map(|(value, t)| (Field::Branch(value), Edge::Response(value.clone()), t))
                .collect(),
            _ => Vec::new(),
        };
        if matches!(n.kind, Some(Kind::Route) | None) {
            let rules = n.rules.iter().flatten().enumerate();
            targets.extend(rules.filter_map(|(i, r)| {
                r.next.as_ref().map(|t| (Field::Rule(i), Edge::Rule(i, super::routes::rule_label(r)), t))
            }));
        }
        if let (Some(Kind::Split) | None, Some(Next::Variants(next))) = (n.kind, &n.next) {
            targets.extend(next.iter().map(|(v, t)| (Field::Variant(v), Edge::Variant(v.clone()), t)));
        }
        let mut push = |field: &'static str, edge: Edge, target: Option<&'d String>| {
            if let Some(t) = target {
                targets.push((Field::Named(field), edge, t));
            }
        };
        let no_input_field = if n.no_input.is_some() { "no_input" } else { "invalid" };
        let keypress = n.allow_keypress == Some(true);
        match n.kind {
            Some(Kind::Menu | Kind::Input) => {
                push("next", Edge::Next, n.next.as_ref().and_then(Next::node).filter(|_| n.kind == Some(Kind::Input)));
                push("invalid", Edge::Invalid, n.invalid.as_ref());
                push(no_input_field, Edge::NoInput, n.no_input.as_ref().or(n.invalid.as_ref()));
            }
            Some(Kind::Script) => {
                push("default", Edge::Default, n.default.as_ref());
                push("failure", Edge::Failure, n.failure.as_ref());
                push("no_input", Edge::NoInput, n.no_input.as_ref().filter(|_| keypress));
            }
            Some(Kind::Say | Kind::Play) => push("next", Edge::Next, n.next.as_ref().and_then(Next::node)),
            Some(Kind::Set) => {
                push("next", Edge::Next, n.next.as_ref().and_then(Next::node));
                push("not_number", Edge::NotNumber, n.not_number.as_ref());
            }
            Some(Kind::Route) => push("else", Edge::Else, n.otherwise.as_ref()),
            // 8x8's docs show a bridge ending the session (its summary), never a webhook after it.
            Some(Kind::Transfer) if n.after.is_some() => self.error(
                At::Node(name, "after"),
                "`after` is never taken: 8x8 sends no webhook when a bridged call ends, only the session summary".into(),
                Some("remove `after`: the call ends when the bridge ends; the summary's status (COMPLETED, BUSY, NO_ANSWER, ...) is stored with the call and counted per transfer node".into()),
            ),
            Some(Kind::Transfer) => push("failure", Edge::Failure, n.failure.as_ref()),
            Some(Kind::Hangup | Kind::Split | Kind::Exit) => {}
            // A module that did not inline: where its exits lead stays reachable.
            Some(Kind::Module) => {
                for t in n.exits.iter().flatten().map(|(_, t)| t) {
                    targets.push((Field::Named("exits"), Edge::Next, t));
                }
            }
            // A node of no known kind: whatever it names, so that no node it leads to looks
            // unreachable.
            None => {
                push("next", Edge::Next, n.next.as_ref().and_then(Next::node));
                push("invalid", Edge::Invalid, n.invalid.as_ref());
                push("no_input", Edge::NoInput, n.no_input.as_ref());
                push("default", Edge::Default, n.default.as_ref());
                push("failure", Edge::Failure, n.failure.as_ref());
                push("else", Edge::Else, n.otherwise.as_ref());
                push("not_number", Edge::NotNumber, n.not_number.as_ref());
            }
        }
        targets
    }

    /// A menu's branches whose keys can be typed there.
    fn key_targets<'d>(&mut self, name: &str, n: &'d NodeDef) -> Vec<Target<'d>> {
        let Some(branches) = &n.branches else { return Vec::new() };
        if branches.len() > BRANCHES_MAX {
            self.error(
                At::Node(name, "branches"),
                format!("{} branches; the limit is {BRANCHES_MAX}", branches.len()),
                None,
            );
        }
        let mut targets = Vec::new();
        for (key, target) in branches {
            if self.check_key(name, key, n) {
                targets.push((Field::Branch(key), Edge::Key(key.clone()), target));
            }
        }
        self.check_prefixes(name, branches, n);
        targets
    }

    /// A key that is the start of another only works if the caller finishes it with `#` or waits.
    fn check_prefixes(&mut self, name: &str, branches: &BTreeMap<String, String>, n: &NodeDef) {
        let on_hash = n.complete_on_hash.or(self.def.defaults.complete_on_hash) != Some(false);
        // Sorted keys: a key's extensions follow it directly.
        let keys: Vec<&String> = branches.keys().collect();
        for (i, short) in keys.iter().enumerate() {
            if let Some(long) = keys[i + 1..].iter().find(|k| k.starts_with(short.as_str())) {
                let finish = if on_hash { "press # or wait" } else { "wait" };
                self.report(
                    Severity::Warning,
                    At::Node(name, &format!("branches.{short}")),
                    format!("key `{short}` is the start of key `{long}`: callers who mean `{short}` must {finish} for the digit timeout"),
                    Some("give the keys of one menu the same length".into()),
                );
            }
        }
    }

    /// Checks that a branch key can be typed at this menu.
    fn check_key(&mut self, name: &str, key: &str, n: &NodeDef) -> bool {
        let problem = keypad_problem(key).or_else(|| {
            length_problem(key, self.digit_bounds(n), "menu")
                .map(|m| (m, "change the key or the menu's `min_digits` / `max_digits`"))
        });
        match problem {
            Some((message, hint)) => {
                self.error(At::Node(name, &Field::Branch(key).path()), message, Some(hint.into()));
                false
            }
            None => true,
        }
    }

    /// The digits a capturing node takes, as its fields (or `[defaults]`) say: (min, max).
    pub(super) fn digit_bounds(&self, n: &NodeDef) -> (i64, i64) {
        let d = &self.def.defaults;
        let min = n.min_digits.or(d.min_digits).unwrap_or(1);
        let max = n.max_digits.or(d.max_digits).unwrap_or(i64::from(callflow::DIGITS_MAX));
        (min, max)
    }
}

/// Why `key` cannot be typed on a keypad as a whole entry: (message, hint).
pub(super) fn keypad_problem(key: &str) -> Option<(String, &'static str)> {
    if key.contains('#') {
        return Some((
            format!("key `{key}` contains `#`, the key that completes input"),
            "8x8 ends capture on `#`; use digits and `*` only",
        ));
    }
    if key.is_empty() || !key.chars().all(|c| c.is_ascii_digit() || c == '*') {
        return Some((
            format!("key `{key}` cannot be typed on a phone keypad"),
            "keys are digits 0-9 and `*`",
        ));
    }
    None
}

/// Why `key` cannot be captured by a node (`what`) taking `min` to `max` digits (min above max is
/// reported on its own: every key would fail it).
pub(super) fn length_problem(key: &str, (min, max): (i64, i64), what: &str) -> Option<String> {
    let len = key.len() as i64;
    ((len < min || len > max) && min <= max).then(|| {
        format!(
            "key `{key}` has {len} digit{} but the {what} captures {}",
            if len == 1 { "" } else { "s" },
            if min == max { format!("exactly {min}") } else { format!("{min} to {max}") }
        )
    })
}
