//! The Graphviz DOT digraph of a machine.

use std::fmt::Write;

use super::{ends, summary_lines};
use crate::machine::Machine;

/// Text for inside a DOT quoted string: backslashes and quotes escaped (so no Graphviz escape
/// such as `\n` or `\l` comes from the text), line breaks as spaces.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' | '\r' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

fn quoted(text: &str) -> String {
    format!("\"{}\"", escape(text))
}

/// A digraph: a node per graph node, named by its name and labelled with its name, kind and
/// prompt summary (the start bold, the ends double-bordered), an edge per transition labelled as
/// `Edge` displays it.
pub fn dot(m: &Machine) -> String {
    let g = m.graph();
    let mut out = format!("digraph {} {{\n  node [shape=box];\n", quoted(m.name()));
    for id in g.node_indices() {
        let node = &g[id];
        // Name, then `kind: what it does`, or the kind and what it says in each language, a line
        // each (Graphviz's `\n`).
        let mut lines = vec![escape(&node.name)];
        match summary_lines(m, id).as_slice() {
            [] => lines.push(escape(node.kind.name())),
            [one] => lines.push(escape(&format!("{}: {one}", node.kind.name()))),
            several => {
                lines.push(escape(node.kind.name()));
                lines.extend(several.iter().map(|l| escape(l)));
            }
        }
        let mut attrs = format!("label=\"{}\"", lines.join("\\n"));
        if id == m.start() {
            attrs.push_str(", style=bold, xlabel=\"start\"");
        }
        if ends(m, id) {
            attrs.push_str(", peripheries=2");
        }
        let _ = writeln!(out, "  {} [{attrs}];", quoted(&node.name));
    }
    // Each module use: a cluster of the nodes it inlined (a nested use's nodes are in its own).
    for (i, u) in m.modules().iter().enumerate() {
        let label = format!("module {} ({})", u.module, u.namespace);
        let _ = writeln!(out, "  subgraph \"cluster_{i}\" {{\n    label={};", quoted(&label));
        for id in g.node_indices().filter(|&id| u.local(&g[id].name).is_some()) {
            let _ = writeln!(out, "    {};", quoted(&g[id].name));
        }
        out.push_str("  }\n");
    }
    for id in g.node_indices() {
        for (edge, to) in m.edges(id) {
            let (from, to) = (quoted(&g[id].name), quoted(&g[to].name));
            let _ = writeln!(out, "  {from} -> {to} [label={}];", quoted(&edge.to_string()));
        }
    }
    out.push_str("}\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_strings_escape_quotes_and_backslashes() {
        assert_eq!(quoted(r#"a "b" \n c"#), r#""a \"b\" \\n c""#);
        assert_eq!(quoted("two\nlines"), "\"two lines\"");
    }

    #[test]
    fn every_node_and_edge_is_drawn() {
        let m = crate::export::tests::abc();
        let d = dot(&m);
        assert!(d.starts_with("digraph \"abc_restaurant\" {\n"));
        assert!(d.contains("  \"main_menu\" -> \"hours\" [label=\"key 3\"];\n"), "{d}");
        assert!(d.contains("\"goodbye\" [label=\"goodbye\\nhangup\", peripheries=2];"), "{d}");
        assert_eq!(d.matches(" -> ").count(), m.edge_count());
        assert!(!d.contains("subgraph"), "{d}");
    }

    #[test]
    fn a_module_use_is_a_cluster_of_its_nodes() {
        let d = dot(&crate::export::tests::with_module());
        assert!(
            d.contains(
                "  subgraph \"cluster_0\" {\n    label=\"module hello (greet)\";\n    \"greet/hi\";\n  }\n"
            ),
            "{d}"
        );
    }
}
