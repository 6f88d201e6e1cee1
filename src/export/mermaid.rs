//! The Mermaid flowchart of a machine, and the node ids the web console finds nodes by.

use std::fmt::Write;

use super::{ends, summary_lines};
use crate::machine::Machine;

/// The Mermaid id of the node named `name`: `n_` then the name with letters and digits kept, `_`
/// doubled and every other byte as `_` and two hex digits. Two names never share an id (the
/// escapes are prefix-free), and an id is never a Mermaid keyword (`end`) nor starts an arrow
/// (`o`, `x`).
pub fn mermaid_id(name: &str) -> String {
    let mut id = String::with_capacity(name.len() + 2);
    id.push_str("n_");
    for b in name.bytes() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' => id.push(char::from(b)),
            b'_' => id.push_str("__"),
            _ => {
                let _ = write!(id, "_{b:02X}");
            }
        }
    }
    id
}

/// Text inside a quoted Mermaid label: quotes, `#`, angle brackets, `&` and backticks as Mermaid
/// entities, line breaks as spaces.
fn label(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '"' => out.push_str("#quot;"),
            '#' => out.push_str("#35;"),
            '<' => out.push_str("#lt;"),
            '>' => out.push_str("#gt;"),
            '&' => out.push_str("#amp;"),
            '`' => out.push_str("#96;"),
            '\n' | '\r' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// A top-down flowchart: a node per graph node (name, kind and prompt summary; the start a
/// stadium, the ends double-bordered), an arrow per edge labelled as `Edge` displays it.
pub fn mermaid(m: &Machine) -> String {
    let mut out = String::from("flowchart TD\n");
    let g = m.graph();
    for id in g.node_indices() {
        let node = &g[id];
        // `kind: what it says`, or the kind, then what it says in each language a line each.
        let mut body = format!("{}<br/>{}", label(&node.name), node.kind.name());
        match summary_lines(m, id).as_slice() {
            [] => {}
            [one] => {
                let _ = write!(body, ": {}", label(one));
            }
            several => several.iter().for_each(|line| {
                let _ = write!(body, "<br/>{}", label(line));
            }),
        }
        let (open, close) = match (id == m.start(), ends(m, id)) {
            (true, _) => ("([", "])"),
            (false, true) => ("[[", "]]"),
            (false, false) => ("[", "]"),
        };
        let _ = writeln!(out, "  {}{open}\"{body}\"{close}", mermaid_id(&node.name));
    }
    // Each module use: a subgraph of the nodes it inlined (a nested use's nodes are in its own).
    for (i, u) in m.modules().iter().enumerate() {
        let _ =
            writeln!(out, "  subgraph module_{i}[\"module {} ({})\"]", label(&u.module), label(&u.namespace));
        for id in g.node_indices().filter(|&id| u.local(&g[id].name).is_some()) {
            let _ = writeln!(out, "    {}", mermaid_id(&g[id].name));
        }
        out.push_str("  end\n");
    }
    for id in g.node_indices() {
        for (edge, to) in m.edges(id) {
            let _ = writeln!(
                out,
                "  {} -->|\"{}\"| {}",
                mermaid_id(&g[id].name),
                label(&edge.to_string()),
                mermaid_id(&g[to].name)
            );
        }
    }
    let ends: Vec<String> =
        g.node_indices().filter(|&id| ends(m, id)).map(|id| mermaid_id(&g[id].name)).collect();
    out.push_str(
        "  classDef startNode stroke-width:3px\n  classDef endNode stroke-width:3px,stroke-dasharray:4\n",
    );
    let _ = writeln!(out, "  class {} startNode", mermaid_id(&g[m.start()].name));
    if !ends.is_empty() {
        let _ = writeln!(out, "  class {} endNode", ends.join(","));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_module_use_is_a_subgraph_of_its_nodes() {
        let f = mermaid(&crate::export::tests::with_module());
        assert!(
            f.contains("  subgraph module_0[\"module hello (greet)\"]\n    n_greet_2Fhi\n  end\n"),
            "{f}"
        );
    }

    #[test]
    fn ids_keep_letters_and_escape_the_rest() {
        assert_eq!(mermaid_id("main_menu"), "n_main__menu");
        assert_eq!(mermaid_id("end"), "n_end");
        assert_eq!(mermaid_id("a-b"), "n_a_2Db");
        assert_eq!(mermaid_id("o1"), "n_o1");
    }

    #[test]
    fn ids_never_collide() {
        // Names that a naive scheme (dropping or replacing `-` and `_`) would merge.
        let names = ["a-b", "a_b", "a__b", "a_2Db", "a_2db", "ab", "a--b", "a-_b", "a_-b", "A-b"];
        let ids: std::collections::HashSet<String> = names.iter().map(|n| mermaid_id(n)).collect();
        assert_eq!(ids.len(), names.len());
        for id in &ids {
            assert!(id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'), "{id}");
        }
    }

    #[test]
    fn labels_escape_what_mermaid_parses() {
        assert_eq!(label(r#"say "hi" #1 <b> & `x`"#), "say #quot;hi#quot; #35;1 #lt;b#gt; #amp; #96;x#96;");
        assert_eq!(label("[a]{b}(c)|d|"), "[a]{b}(c)|d|");
    }

    #[test]
    fn a_route_says_its_kind_once() {
        let text = r#"
name = "hours"
start = "open"
timezone = "Asia/Singapore"
[defaults]
voice_profile = "en-US-BenjaminRUS"
[nodes.open]
kind = "route"
rules = [{ days = "mon-fri", hours = "09:00-18:00", next = "bye" }]
else = "bye"
[nodes.bye]
kind = "hangup"
"#;
        let m = crate::machine::compile(&crate::machine::Source::new("h.toml", text)).machine.unwrap();
        let chart = mermaid(&m);
        assert!(chart.contains("open<br/>route: mon-fri 09:00-18:00"), "{chart}");
        assert!(!chart.contains("route: route:"), "{chart}");
    }
}
