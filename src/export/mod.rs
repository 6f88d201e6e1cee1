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

/// What node `id` says or does in each of the machine's languages (`summary`): one unnamed summary
/// for a machine of one language; for several, each language's name with its summary, in the
/// machine's order, the same text once per language that says it.
fn summaries(m: &Machine, id: NodeId) -> Vec<(Option<&str>, String)> {
    let languages = m.languages();
    if languages.len() < 2 {
        return m.node(id).map(|n| vec![(None, summary(&n.kind))]).unwrap_or_default();
    }
    let spoken = languages.iter().enumerate().filter_map(|(i, l)| m.spoken(id, i).map(|k| (l, k)));
    spoken.map(|(l, kind)| (Some(l.as_str()), summary(kind))).collect()
}

/// The summaries of `summaries` on one line each, `en: …` where the machine has several languages
/// and they differ (one line, unnamed, where every language reads the same: a transfer's number);
/// none where the node says nothing (a hangup).
fn summary_lines(m: &Machine, id: NodeId) -> Vec<String> {
    let mut all = summaries(m, id);
    if all.windows(2).all(|w| w[0].1 == w[1].1) {
        all.truncate(1);
        all.iter_mut().for_each(|(language, _)| *language = None);
    }
    let lines = all.into_iter().filter(|(_, text)| !text.is_empty());
    lines.map(|(language, text)| language.map_or(text.clone(), |l| format!("{l}: {text}"))).collect()
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
    fn every_language_of_a_node_is_shown_once_where_they_differ() {
        let text = include_str!("../../machines/bank_balance.toml");
        let modules = include_str!("../../machines/modules/verify_pin.toml");
        let (modules, _) = crate::machine::Modules::of(vec![Source::new("verify_pin.toml", modules)]);
        let options = crate::machine::Options { modules: &modules, ..Default::default() };
        let m = crate::machine::compile_with(&Source::new("bank_balance.toml", text), options)
            .machine
            .expect("the bundled machine compiles");
        assert_eq!(m.languages(), ["en", "es"]);
        let chart = mermaid(&m);
        assert!(
            chart.contains("n_agent__intro[\"agent_intro<br/>say<br/>en: Let me connect you to an agent.<br/>es: Le comunico con un agente.\"]"),
            "{chart}"
        );
        // The same text in both: once, unnamed.
        assert!(chart.contains("n_agent[[\"agent<br/>transfer: to +6531589338\"]]"), "{chart}");
        let graph = dot(&m);
        assert!(
            graph.contains("label=\"agent_intro\\nsay\\nen: Let me connect you to an agent.\\nes: Le comunico con un agente.\""),
            "{graph}"
        );
        let doc = json(&m);
        assert_eq!(doc["languages"], serde_json::json!(["en", "es"]));
        let nodes = doc["nodes"].as_array().unwrap();
        let intro = nodes.iter().find(|n| n["name"] == "agent_intro").unwrap();
        assert_eq!(intro["summary"], "Let me connect you to an agent.");
        assert_eq!(intro["summaries"]["es"], "Le comunico con un agente.");
        // A machine of one language: no `summaries`, and its labels name no language.
        let abc = json(&abc());
        assert_eq!(abc["languages"], serde_json::json!([]));
        assert!(abc["nodes"].as_array().unwrap().iter().all(|n| n.get("summaries").is_none()));
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
