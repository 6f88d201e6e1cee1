//! Each node's funnel since the node started, as the console shows it: calls that entered it, that
//! left it by each exit, and that ended there (by how). Fed by the same recording points as the
//! node metrics (`metrics::step`, `metrics::ended`), with the same bounded labels, and kept in
//! process: the console reads it as JSON instead of parsing the Prometheus text back.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use serde::Serialize;

/// Most (machine, node) pairs counted: the labels are the loaded machines' nodes (and `other`),
/// but reloads that rename nodes add pairs; past this, new pairs are not counted (the metrics
/// still are). A node serving a few hundred menus stays far below it.
pub const NODES_MAX: usize = 4096;
/// Most exits or endings counted per node: a node's exits are its edges, so a machine bounds
/// them; this only caps what a reload that renames keys adds.
const LABELS_PER_NODE_MAX: usize = 64;

/// How calls ended at a node that its design did not end there (the caller hung up, or the call
/// expired), as `metrics::ended` names them.
const DROPS: &[&str] = &["caller_hung_up", "expired"];

/// One node's figures.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct NodeFunnel {
    /// Times calls entered the node.
    pub entered: u64,
    /// Exits taken from the node, by exit label (`key_1`, `next`, `invalid`, ...).
    pub exits: BTreeMap<String, u64>,
    /// Calls that ended at the node, by how (`hangup`, `transfer`, `caller_hung_up`, `expired`).
    pub ended: BTreeMap<String, u64>,
    /// Calls that ended at the node without the node ending them (caller hung up, expired): the
    /// `DROPS` of `ended`, summed when read.
    pub dropped: u64,
}

/// The funnels of every node counted, by (machine, node).
#[derive(Default)]
pub struct Funnels {
    nodes: Mutex<HashMap<(String, String), NodeFunnel>>,
}

impl Funnels {
    fn with(&self, machine: &str, node: &str, f: impl FnOnce(&mut NodeFunnel)) {
        let mut nodes = self.nodes.lock().unwrap_or_else(|e| e.into_inner());
        let key = (machine.to_string(), node.to_string());
        if let Some(n) = nodes.get_mut(&key) {
            f(n);
        } else if nodes.len() < NODES_MAX {
            f(nodes.entry(key).or_default());
        }
    }

    pub(super) fn entered(&self, machine: &str, node: &str) {
        self.with(machine, node, |n| n.entered = n.entered.saturating_add(1));
    }

    pub(super) fn exited(&self, machine: &str, node: &str, exit: &str) {
        self.with(machine, node, |n| bump(&mut n.exits, exit));
    }

    pub(super) fn ended(&self, machine: &str, node: &str, how: &str) {
        self.with(machine, node, |n| bump(&mut n.ended, how));
    }

    /// The funnel of every node of `machine` counted so far, by node name.
    pub fn of(&self, machine: &str) -> BTreeMap<String, NodeFunnel> {
        let nodes = self.nodes.lock().unwrap_or_else(|e| e.into_inner());
        let read = |f: &NodeFunnel| {
            let dropped =
                DROPS.iter().filter_map(|how| f.ended.get(*how)).fold(0u64, |a, b| a.saturating_add(*b));
            NodeFunnel { dropped, ..f.clone() }
        };
        nodes.iter().filter(|((m, _), _)| m == machine).map(|((_, n), f)| (n.clone(), read(f))).collect()
    }
}

fn bump(counts: &mut BTreeMap<String, u64>, label: &str) {
    if let Some(c) = counts.get_mut(label) {
        *c = c.saturating_add(1);
    } else if counts.len() < LABELS_PER_NODE_MAX {
        counts.insert(label.to_string(), 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_entries_exits_and_drops_per_node() {
        let f = Funnels::default();
        f.entered("m", "menu");
        f.entered("m", "menu");
        f.exited("m", "menu", "key_1");
        f.ended("m", "menu", "caller_hung_up");
        f.ended("m", "bye", "hangup");
        f.entered("other_machine", "menu");
        let m = f.of("m");
        assert_eq!(m["menu"].entered, 2);
        assert_eq!(m["menu"].exits["key_1"], 1);
        assert_eq!(m["menu"].dropped, 1);
        assert_eq!(m["bye"].dropped, 0, "a hangup node ending the call is no drop");
        assert_eq!(m["bye"].ended["hangup"], 1);
        assert_eq!(m.len(), 2);
    }

    #[test]
    fn stops_adding_nodes_at_the_bound() {
        let f = Funnels::default();
        for i in 0..NODES_MAX + 10 {
            f.entered("m", &format!("n{i}"));
        }
        assert_eq!(f.of("m").len(), NODES_MAX);
        f.entered("m", "n0");
        assert_eq!(f.of("m")["n0"].entered, 2, "pairs already counted go on counting");
    }
}
