//! Exports of a compiled machine's graph for other tools: Graphviz DOT (`dot`), Mermaid
//! (`mermaid`), VoiceXML 2.1 (`vxml`) and a JSON document (`json`).
//!
//! Every format is read from the compiled `Machine` (its graph, nodes and labelled edges), never
//! from the source text, so an export shows what calls run. Pure: each function returns text.

mod dot;
mod json;
mod mermaid;
mod vxml;

pub use dot::dot;
pub use json::json;
pub use mermaid::{mermaid, mermaid_id};
pub use vxml::vxml;

use crate::machine::{Machine, NodeId, NodeKind};

/// Most characters of a prompt an export shows on a node: enough to recognise the prompt, short
/// enough to keep a drawn node small.
pub const SUMMARY_CHARS_MAX: usize = 48;

/// What a node says or does, as written in the machine file, cut to `SUMMARY_CHARS_MAX`
/// characters (an ellipsis marks a cut).
fn summary(kind: &NodeKind) -> String {
    let text = match kind {
        NodeKind::Menu(menu) => menu.capture.prompt_message.to_string(),
        NodeKind::Input(input) => input.prompt.capture.prompt_message.to_string(),
        NodeKind::Say(say) => say.text.to_string(),
        NodeKind::Play(play) => play.file_url.to_string(),
        NodeKind::Transfer(call) => format!("to {}", call.destination),
        NodeKind::Script(script) => {
            let method = if script.request.body.is_some() { "POST" } else { "GET" };
            format!("{method} {}", script.request.url)
        }
        NodeKind::Route(route) => {
            let rules: Vec<&str> = route.rules.iter().map(|r| r.label.as_str()).collect();
            rules.join("; ")
        }
        NodeKind::Set(set) => {
            let values = set.values.iter().map(|(var, t)| format!("{var} = {t}"));
            let adds = set.add.iter().map(|(var, n)| format!("{var} + {n}"));
            values.chain(adds).collect::<Vec<_>>().join(", ")
        }
        NodeKind::Split(split) => {
            let weights: Vec<String> = split.variants.iter().map(|(v, w)| format!("{v} {w}")).collect();
            weights.join(" / ")
        }
        NodeKind::Hangup => String::new(),
    };
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if text.chars().count() <= SUMMARY_CHARS_MAX {
        return text;
    }
    let mut cut: String = text.chars().take(SUMMARY_CHARS_MAX - 1).collect();
    cut.push('…');
    cut
}

/// The nodes where a call ends: no edge leaves them.
fn ends(m: &Machine, id: NodeId) -> bool {
    m.edges(id).is_empty()
}

/// Text as XML character data or attribute content: markup escaped, and the characters XML 1.0
/// cannot hold at all (control characters but tab, newline and carriage return) as `?` (the
/// VoiceXML export, and `phonetree test`'s JUnit report).
pub(crate) fn xml_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' | '\t' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{fffe}' || c == '\u{ffff}' => out.push('?'),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::machine::{Source, compile};

    /// A bundled machine, compiled.
    pub(super) fn abc() -> Machine {
        let text = include_str!("../../machines/abc_restaurant.toml");
        compile(&Source::new("abc_restaurant.toml", text)).machine.expect("the bundled machine compiles")
    }

    /// A machine whose node `greet` uses the module `hello` (one say node, `greet/hi`).
    pub(super) fn with_module() -> Machine {
        let module = "name = \"hello\"\nstart = \"hi\"\nexits = [\"done\"]\n[nodes.hi]\nkind = \"say\"\n\
                      text = \"Hello.\"\nnext = \"out\"\n[nodes.out]\nkind = \"exit\"\nexit = \"done\"\n";
        let (modules, _) = crate::machine::Modules::of(vec![Source::new("hello.toml", module)]);
        let text = "name = \"m\"\nstart = \"greet\"\n[defaults]\nvoice_profile = \"en-US-BenjaminRUS\"\n\
                    [nodes.greet]\nkind = \"module\"\nmodule = \"hello\"\nexits = { done = \"bye\" }\n\
                    [nodes.bye]\nkind = \"hangup\"\n";
        let options = crate::machine::Options { modules: &modules, ..Default::default() };
        crate::machine::compile_with(&Source::new("m.toml", text), options).machine.expect("it compiles")
    }

    #[test]
    fn summaries_are_bounded_and_marked_when_cut() {
        let m = abc();
        let menu = &m.node(m.node_id("main_menu").unwrap()).unwrap().kind;
        let s = summary(menu);
        assert_eq!(s.chars().count(), SUMMARY_CHARS_MAX);
        assert!(s.starts_with("Welcome to ABC Restaurant, to book") && s.ends_with('…'), "{s}");
        let hours = &m.node(m.node_id("kept").unwrap()).unwrap().kind;
        assert_eq!(summary(hours), "Keeping your current reservation, thank you.");
        assert_eq!(summary(&NodeKind::Hangup), "");
    }

    #[test]
    fn json_has_every_node_and_edge() {
        let m = abc();
        let doc = json(&m);
        assert_eq!(doc["nodes"].as_array().unwrap().len(), m.node_count());
        assert_eq!(doc["edges"].as_array().unwrap().len(), m.edge_count());
        assert_eq!(doc["start"], "main_menu");
        let nodes = doc["nodes"].as_array().unwrap();
        let by_name = |name: &str| nodes.iter().find(|n| n["name"] == name).unwrap().clone();
        assert_eq!(by_name("main_menu")["start"], true);
        assert_eq!(by_name("goodbye")["end"], true);
        assert_eq!(by_name("goodbye")["kind"], "hangup");
        assert_eq!(by_name("hours")["mermaid_id"], "n_hours");
        let edges = doc["edges"].as_array().unwrap();
        assert!(
            edges.iter().any(|e| e["from"] == "main_menu" && e["to"] == "hours" && e["label"] == "key 3")
        );
        assert!(edges.iter().any(|e| e["from"] == "main_menu" && e["label"] == "no input"));
    }

    #[test]
    fn mermaid_declares_every_node_and_edge() {
        let m = abc();
        let chart = mermaid(&m);
        assert!(chart.starts_with("flowchart TD\n"));
        for id in m.graph().node_indices() {
            let mid = mermaid_id(&m.graph()[id].name);
            assert!(
                chart.lines().any(|l| l.trim_start().starts_with(&format!("{mid}["))
                    || l.trim_start().starts_with(&format!("{mid}(["))),
                "{mid}"
            );
        }
        assert_eq!(chart.matches(" -->|").count(), m.edge_count());
        assert!(chart.contains("  n_main__menu -->|\"key 3\"| n_hours\n"), "{chart}");
        assert!(chart.contains("  class n_main__menu startNode\n"));
        assert!(chart.contains("n_goodbye[[\"goodbye<br/>hangup\"]]"), "{chart}");
    }
}
