//! The JSON document of a machine's graph, for the web console and other tools.

use serde_json::{Value, json};

use super::{ends, mermaid_id, summaries, summary};
use crate::machine::Machine;

/// The document's layout version: a consumer checks it before reading the rest.
const FORMAT: u32 = 1;

/// `{"format", "machine", "version", "description", "languages", "start", "nodes": [{"name",
/// "kind", "summary", "summaries", "mermaid_id", "start", "end"}], "edges": [{"from", "to",
/// "label"}]}`: nodes in graph order, each node's edges in `Machine::edges` order, labels as `Edge`
/// displays them. `summary` is in the first language; `summaries` (only on a machine of several
/// languages) in each, by language.
pub fn json(m: &Machine) -> Value {
    let g = m.graph();
    let nodes: Vec<Value> = g
        .node_indices()
        .map(|id| {
            let node = &g[id];
            let mut doc = json!({
                "name": node.name,
                "kind": node.kind.name(),
                "summary": summary(&node.kind),
                "mermaid_id": mermaid_id(&node.name),
                "start": id == m.start(),
                "end": ends(m, id),
            });
            if m.languages().len() > 1 {
                let each: serde_json::Map<String, Value> = summaries(m, id)
                    .into_iter()
                    .filter_map(|(l, text)| Some((l?.to_string(), Value::String(text))))
                    .collect();
                doc["summaries"] = Value::Object(each);
            }
            doc
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
        "languages": m.languages(),
        "start": g[m.start()].name,
        "nodes": nodes,
        "edges": edges,
    })
}
