//! A split node as a call passes it: the variant `machine::split` picks for the call's caller (or
//! session), and the edge to that variant's node. Pure: the same call gets the same variant on
//! every node that runs it, after a restart and in a replay.

use super::{CallState, ROUTES_PER_STEP_MAX, StepError};
use crate::machine::split::Split;
use crate::machine::{ChainError, Edge, Machine, NodeId};

/// The node a split sends the call to; records the edge taken. Splits count with routes against
/// `ROUTES_PER_STEP_MAX` (both send nothing and do not wait).
pub(super) fn pick(
    m: &Machine,
    st: &CallState,
    split: &Split,
    edges: &mut Vec<(NodeId, Edge, NodeId)>,
    routes: &mut usize,
) -> Result<NodeId, StepError> {
    let name = || m.node(st.node).map_or_else(String::new, |n| n.name.clone());
    *routes = routes.saturating_add(1);
    if *routes > ROUTES_PER_STEP_MAX {
        return Err(StepError::Chain { node: name(), source: ChainError::RouteLoop });
    }
    let at = split.pick(st.call.caller(), &st.call.session_id);
    let variant = split.variants.get(at).map(|(v, _)| v.clone()).unwrap_or_default();
    let edge = Edge::Variant(variant);
    let to =
        m.target(st.node, &edge).ok_or_else(|| StepError::NoBranch { node: name(), edge: edge.clone() })?;
    edges.push((st.node, edge, to));
    Ok(to)
}
