//! A module's `outputs` proven with each machine that uses it, on the call states `explore` found
//! and every caller transition between them (`policy::Walk`), like a policy: for each use and each
//! output it promises, a three-state automaton — outside the use, inside with the output unset,
//! inside with it set — run in product with the state graph, breadth first, so the first exit
//! found taken with the output unset is a shortest call that shows it. Entering the use from
//! outside starts it unset (a value from before the module is not the module's), what the engine
//! set or unset on the way is read from the step (`engine::Step::assigned`: an input's keys, a
//! script's stored value or its key missing, a set node, a sensitive value forgotten at the end of
//! a step), and an exit is an edge the compiler found leaving the use by one of the module's
//! exits (`machine::ExitEdge`). With `[resume]` the walks include the offer's `1` (`policy`): the
//! call that goes on enters its node and has the outputs the interrupted call kept set (restored
//! with its variables), so an output set before the interruption counts at the exit.

use super::policy::{self, Mark, States, Walk};
use crate::machine::policy::Origin;
use crate::machine::{ExitEdge, Machine, OutputDuty};

/// The call is outside the use.
const OUTSIDE: u32 = 0;
/// Inside the use, the output not set since it entered.
const UNSET: u32 = 1;
/// Inside the use, the output set.
const SET: u32 = 2;

/// An output a call leaves its module without: where it is promised, the module's `exit` node,
/// what happened, and the inputs that replay the call from its start.
#[derive(Debug, Clone)]
pub(super) struct Unset {
    pub origin: Origin,
    pub exit_node: String,
    pub message: String,
    pub inputs: Vec<String>,
    /// Across a resumed call: the interrupted call's inputs (`policy::Calls`).
    pub interrupted: Option<Vec<String>>,
}

/// The variables the machine's uses promise, which the explorer's marks follow.
pub(super) fn watched(m: &Machine) -> Vec<&str> {
    let mut vars: Vec<&str> =
        m.outputs().iter().filter(|d| !d.required.is_empty()).map(|d| d.output.as_str()).collect();
    vars.sort_unstable();
    vars.dedup();
    vars
}

/// Every promised output of `m` checked on its explored states and transitions (`out`:
/// `policy::outgoing`): at most one problem per use and output, its shortest call.
pub(super) fn check(m: &Machine, states: &States<'_>, walks: &[Walk], out: &[Vec<usize>]) -> Vec<Unset> {
    m.outputs()
        .iter()
        .filter(|d| !d.required.is_empty())
        .filter_map(|d| first_unset(m, d, states, walks, out))
        .collect()
}

fn first_unset(
    m: &Machine,
    d: &OutputDuty,
    states: &States<'_>,
    walks: &[Walk],
    out: &[Vec<usize>],
) -> Option<Unset> {
    let inside: Vec<bool> = m.graph().node_weights().map(|n| d.contains(&n.name)).collect();
    let is_inside = |id: crate::machine::NodeId| inside.get(id.index()).copied().unwrap_or(false);
    let advance = |mut at: u32, _waiting: bool, marks: &[Mark]| -> Result<u32, &ExitEdge> {
        for mark in marks {
            match mark {
                Mark::Enter(id) if !is_inside(*id) => at = OUTSIDE,
                Mark::Enter(_) if at == OUTSIDE => at = UNSET,
                Mark::Set(var) if *var == d.output && at == UNSET => at = SET,
                Mark::Unset(var) if *var == d.output && at == SET => at = UNSET,
                Mark::Take(from, edge) => {
                    if let Some(exit) = d.exits.iter().find(|e| e.from == *from && e.edge == *edge) {
                        if at == UNSET && d.required.iter().any(|(e, _)| *e == exit.exit) {
                            return Err(exit);
                        }
                        // Left: an exit mapped back into the use enters it anew.
                        at = OUTSIDE;
                    }
                }
                _ => {}
            }
        }
        Ok(at)
    };
    let (exit, calls) = policy::first_bad(states, walks, out, |_, _| None, advance)?;
    let origin = d.required.iter().find(|(e, _)| *e == exit.exit).map(|(_, o)| o.clone())?;
    let from = m.node(exit.from).map_or("", |n| n.name.as_str());
    Some(Unset {
        origin,
        exit_node: exit.exit_node.clone(),
        message: format!(
            "output `{}` of module `{}` is not set on every path to exit `{}`: in machine `{}`, a call \
             leaves module node `{}` by `{}` (the `{}` edge of `{from}`) without it",
            d.output,
            d.module,
            exit.exit,
            m.name(),
            d.namespace,
            exit.exit,
            exit.edge,
        ),
        inputs: calls.inputs,
        interrupted: calls.interrupted,
    })
}
