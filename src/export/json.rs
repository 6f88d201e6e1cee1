//! The JSON document of a machine's graph, for the web console and other tools.

use serde_json::{Value, json};

use super::{ends, mermaid_id, summary};
use crate::machine::Machine;

/// The document's layout version: a consumer checks it before reading the rest.
const FORMAT: u32 = 1;

/// `{"format", "machine", "version", "description", "start", "nodes": [{"name", "kind",
/// "summary", "mermaid_id", "start", "end"}], "edges": [{"from", "to", "label"}]}`: nodes in graph
/// order, each node's edges in `Machine::edges` order, labels as `Edge` displays them.
pub fn json(m: &Machine) -> Value {
    let g = m.graph();
    let nodes: Vec<Value> = g
        .node_indices()
        .map(|id| {
            let node = &g[id];
            json!({
                "name": node.name,
                "kind": node.kind.name(),
                "summary": summary(&node.kind),
                "mermaid_id": mermaid_id(&node.name),
                "start": id == m.start(),
                "end": ends(m, id),
            })
        })
        .collect();
    let edges: Vec<Value> = g
        .node_indices()
        .flat_map(|id| {
            m.edges(id).into_iter().map(
                move |(edge, to)| json!({ "from": g[id].name, "to": g[to].name, "label": edge.to_string() }),
            )
        })
        .collect();
    json!({
        "format": FORMAT,
        "machine": m.name(),
        "version": m.version().hex(),
        "description": m.description(),
        "start": g[m.start()].name,
        "nodes": nodes,
        "edges": edges,
    })
}
