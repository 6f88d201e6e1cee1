//! Machine-wide keys: the `[keys]` table checked once (keypad keys, targets that exist) and
//! compiled into the edges of every menu and input that keeps them (`global_keys`), where the
//! node's own branch for the same key wins.

use std::collections::HashMap;

use petgraph::graph::DiGraph;

use super::super::definition::{GlobalKeys, Kind};
use super::super::{Edge, Node, NodeId};
use super::edges::{keypad_problem, length_problem};
use super::{At, Compiler};
use crate::machine::diagnostic::{Severity, closest};

/// Most machine-wide keys: a keypad has 12 keys; a few two-key codes on top is already a lot for
/// a caller to remember.
const KEYS_MAX: usize = 24;

/// The targets a machine-wide key may name besides a node, as written in `[keys]`.
const SPECIAL: &[&str] = &["repeat", "back", "start"];

impl Compiler<'_> {
    /// Each key a node's `global_keys` lists is one of the machine's `[keys]`.
    fn check_global_keys(&mut self) {
        let def = self.def;
        for (name, n) in &def.nodes {
            let Some(GlobalKeys::Only(listed)) = &n.global_keys else { continue };
            for (i, key) in listed.iter().enumerate() {
                if !def.keys.contains_key(key) {
                    let known: Vec<&str> = def.keys.keys().map(String::as_str).collect();
                    let hint = match known.as_slice() {
                        [] => "the machine has no `[keys]` table: remove `global_keys`".to_string(),
                        _ => format!("list some of {}", super::fields::quoted(&known)),
                    };
                    self.error(
                        At::Node(name, &format!("global_keys.{i}")),
                        format!("`{key}` is not a machine-wide key"),
                        Some(hint),
                    );
                }
            }
        }
    }
}

/// Where a machine-wide key leads.
#[derive(Debug, Clone, Copy)]
pub(super) enum KeyTarget {
    /// The current prompt again, tries unchanged.
    Repeat,
    /// The previous waiting node on the call's path.
    Back,
    /// A node (`start` is the start node).
    Node(NodeId),
}

impl Compiler<'_> {
    /// The `[keys]` table's keys that are valid, with their targets.
    pub(super) fn machine_keys(
        &mut self,
        by_name: &HashMap<String, NodeId>,
        start: Option<NodeId>,
    ) -> Vec<(String, KeyTarget)> {
        let def = self.def;
        if def.keys.len() > KEYS_MAX {
            self.error(
                At::Machine("keys"),
                format!("{} machine-wide keys; the limit is {KEYS_MAX}", def.keys.len()),
                None,
            );
            return Vec::new();
        }
        let mut keys = Vec::new();
        for (key, target) in &def.keys {
            let at = format!("keys.{key}");
            if let Some((message, hint)) = keypad_problem(key) {
                self.error(At::Machine(&at), format!("machine-wide {message}"), Some(hint.into()));
                continue;
            }
            let target = match target.as_str() {
                "repeat" => KeyTarget::Repeat,
                "back" => KeyTarget::Back,
                // A missing start is reported on its own.
                "start" => match start {
                    Some(start) => KeyTarget::Node(start),
                    None => continue,
                },
                node => match by_name.get(node) {
                    Some(&id) => KeyTarget::Node(id),
                    None => {
                        let names = SPECIAL.iter().copied().chain(by_name.keys().map(String::as_str));
                        let near =
                            closest(node, names).map_or(String::new(), |c| format!("did you mean `{c}`? "));
                        self.error(
                            At::Machine(&at),
                            format!("machine-wide key `{key}` leads to `{node}`, which is no node"),
                            Some(format!(
                                "{near}a key leads to `repeat`, `back`, `start` or a `[nodes.*]` table"
                            )),
                        );
                        continue;
                    }
                },
            };
            keys.push((key.clone(), target));
        }
        keys
    }

    /// Adds the machine-wide keys to every menu and input that keeps them: a node's own branch
    /// for a key wins (a warning), and a key the node cannot capture is left out (a warning).
    pub(super) fn key_edges(&mut self, keys: &[(String, KeyTarget)], graph: &mut DiGraph<Node, Edge, u32>) {
        let def = self.def;
        self.check_global_keys();
        if keys.is_empty() {
            return;
        }
        for (i, (name, n)) in def.nodes.iter().enumerate() {
            let what = match n.kind {
                Some(Kind::Menu) => "menu",
                Some(Kind::Input) => "input",
                _ => continue,
            };
            let from = NodeId::new(i);
            let kept = keys.iter().filter(|(key, _)| n.global_keys.as_ref().is_none_or(|g| g.keeps(key)));
            for (key, target) in kept {
                if let Some(own) = n.branches.as_ref().and_then(|b| b.get(key)) {
                    self.report(
                        Severity::Warning,
                        At::Node(name, &format!("branches.{key}")),
                        format!(
                            "branch `{key}` (to `{own}`) wins over the machine-wide key `{key}` (`{}`) at this menu",
                            def.keys[key]
                        ),
                        Some("pick another key, or set `global_keys = false` to turn the machine's keys off here".into()),
                    );
                    continue;
                }
                let longer =
                    n.branches.iter().flatten().map(|(b, _)| b).find(|b| b.starts_with(key.as_str()));
                if let Some(long) = longer {
                    let on_hash = n.complete_on_hash.or(def.defaults.complete_on_hash) != Some(false);
                    let finish = if on_hash { "press # or wait" } else { "wait" };
                    self.report(
                        Severity::Warning,
                        At::Node(name, &format!("branches.{long}")),
                        format!("machine-wide key `{key}` is the start of key `{long}`: callers who mean `{key}` must {finish} for the digit timeout"),
                        Some("give the machine's keys and the menu's keys the same length".into()),
                    );
                }
                if let Some(why) = length_problem(key, self.digit_bounds(n), what) {
                    self.report(
                        Severity::Warning,
                        At::NodeKey(name),
                        format!("machine-wide {why}: it cannot be pressed here"),
                        Some("set `global_keys = false` on the node, or change the key in `[keys]`".into()),
                    );
                    continue;
                }
                let (to, edge) = match *target {
                    KeyTarget::Repeat => (from, Edge::Repeat(key.clone())),
                    KeyTarget::Back => (from, Edge::Back(key.clone())),
                    KeyTarget::Node(to) => (to, Edge::Key(key.clone())),
                };
                graph.add_edge(from, to, edge);
            }
        }
    }
}
