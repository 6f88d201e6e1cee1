//! Lengths after templates: the longest text each field 8x8 bounds can be once its variables are
//! filled, every variable at the longest value the engine can give it — a script's stored value at
//! its `max_chars`, an input's at its `max_digits`, `{caller}` at E.164's 16 characters — against
//! 8x8's limit for that field. What passes here, the engine's own check of every reply passes too.

use std::collections::BTreeMap;

use super::super::definition::{NodeDef, Prompt};
use super::super::route::COUNTER_MAX;
use super::super::template::{Part, Template, VALUE_CHARS_MAX};
use super::super::{Machine, Menu, NodeKind, Script};
use super::chains::sample_text;
use super::{At, Compiler};
use crate::callflow::{ID_BYTES_MAX, NUMBER_CHARS_MAX, TEXT_CHARS_MAX};

/// The longest value a call variable can hold, and where that bound comes from.
#[derive(Debug, Clone)]
struct Bound {
    chars: usize,
    /// What sets it, for the message: "stored by `lookup`, max_chars 512".
    origin: String,
    /// The script node and stored name whose `max_chars` sets the bound, for the hint.
    stored_by: Option<String>,
}

/// Every call variable's bound: built-ins by what 8x8 and the engine give them, the others by the
/// nodes that set them (the largest, when several do).
fn bounds(m: &Machine) -> BTreeMap<String, Bound> {
    let mut out: BTreeMap<String, Bound> = BTreeMap::new();
    let fixed = |chars: usize, origin: &str| Bound { chars, origin: origin.into(), stored_by: None };
    out.insert("caller".into(), fixed(NUMBER_CHARS_MAX, "a phone number"));
    out.insert("virtual_number".into(), fixed(NUMBER_CHARS_MAX, "a phone number"));
    out.insert("session_id".into(), fixed(ID_BYTES_MAX, "an 8x8 id"));
    out.insert("call_id".into(), fixed(ID_BYTES_MAX, "an 8x8 id"));
    out.insert("keypress".into(), fixed(VALUE_CHARS_MAX, "the keys pressed"));
    let counter = (-COUNTER_MAX).to_string().chars().count();
    let mut set = |var: &str, b: Bound| {
        if out.get(var).is_none_or(|old| old.chars < b.chars) {
            out.insert(var.to_string(), b);
        }
    };
    for node in m.graph.node_weights() {
        let name = &node.name;
        match &node.kind {
            NodeKind::Input(input) => {
                let max = input.prompt.capture.max_digits.map_or(VALUE_CHARS_MAX, usize::from);
                let chars = max.min(VALUE_CHARS_MAX);
                let origin = format!("keyed in at `{name}`");
                set(&input.variable, Bound { chars, origin, stored_by: None });
            }
            NodeKind::Script(script) => {
                for s in &script.store {
                    let origin = format!("stored by `{name}`");
                    let stored_by = Some(format!("`store.{}.max_chars` of `{name}`", s.var));
                    set(&s.var, Bound { chars: s.max_chars, origin, stored_by });
                }
            }
            NodeKind::Set(vars) => {
                for (var, _) in &vars.values {
                    let origin = format!("set by `{name}`");
                    set(var, Bound { chars: VALUE_CHARS_MAX, origin, stored_by: None });
                }
                for (var, _) in &vars.add {
                    let origin = format!("a counter of `{name}`");
                    set(var, Bound { chars: counter, origin, stored_by: None });
                }
            }
            _ => {}
        }
    }
    out
}

/// The longest a template renders to with each variable at its bound (`node`: the node's name),
/// and the variables it uses; `None` when it has none (the compiler checked its one text).
fn worst(
    t: &Template,
    bounds: &BTreeMap<String, Bound>,
    node: &str,
) -> Option<(usize, Vec<(String, Bound)>)> {
    t.vars().next()?;
    let mut chars = 0usize;
    let mut used: Vec<(String, Bound)> = Vec::new();
    for part in t.parts() {
        let var = match part {
            Part::Lit(s) => {
                chars = chars.saturating_add(s.chars().count());
                continue;
            }
            Part::Var(v) | Part::Say(v) | Part::Play(v) => v,
        };
        let b = if var == "node" {
            Bound { chars: node.chars().count(), origin: "the node's name".into(), stored_by: None }
        } else {
            bounds.get(var).cloned().unwrap_or(Bound {
                chars: VALUE_CHARS_MAX,
                origin: "a call variable".into(),
                stored_by: None,
            })
        };
        // `{say:$x}` speaks keypad keys one by one: `123` is said `1 2 3`.
        let n =
            if matches!(part, Part::Say(_)) { b.chars.saturating_mul(2).saturating_sub(1) } else { b.chars };
        chars = chars.saturating_add(n);
        if !used.iter().any(|(u, _)| u == var) {
            used.push((var.clone(), b));
        }
    }
    Some((chars, used))
}

/// What one field is, for 8x8's limit on it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Rule {
    /// A text 8x8 speaks: at most `TEXT_CHARS_MAX` characters.
    Text,
    /// A phone number: `+` and at most 15 digits.
    Number,
}

impl Compiler<'_> {
    /// Every field 8x8 bounds whose template has variables: its longest rendering within 8x8's
    /// limit (a field without variables was checked as written, with its node).
    pub(super) fn check_lengths(&mut self, m: &Machine, failed: &[bool]) {
        let bounds = bounds(m);
        let def = self.def;
        for id in m.graph.node_indices() {
            let (Some((_, n)), false) = (def.nodes.get(id.index()), failed[id.index()]) else { continue };
            let node = &m.graph[id];
            let name = node.name.as_str();
            let mut fields: Vec<(String, &Template, Rule)> = Vec::new();
            match &node.kind {
                NodeKind::Say(say) => {
                    for piece in say.text.between_plays() {
                        self.check_length(name, "text", &piece, Rule::Text, &bounds);
                    }
                }
                NodeKind::Script(Script { say: Some(say), .. }) => {
                    for piece in say.text.between_plays() {
                        self.check_length(name, "prompt", &piece, Rule::Text, &bounds);
                    }
                }
                NodeKind::Transfer(call) => {
                    fields.push(("destination".into(), &call.destination, Rule::Number));
                    fields.push(("source".into(), &call.source, Rule::Number));
                }
                _ => {}
            }
            if let Some(menu) = node.kind.capture() {
                prompt_fields(menu, n, self.language.as_deref(), &mut fields);
            }
            for (field, t, rule) in fields {
                self.check_length(name, &field, t, rule, &bounds);
            }
        }
    }

    fn check_length(
        &mut self,
        name: &str,
        field: &str,
        t: &Template,
        rule: Rule,
        bounds: &BTreeMap<String, Bound>,
    ) {
        let Some((chars, used)) = worst(t, bounds, name) else { return };
        let (limit, what) = match rule {
            Rule::Text => (TEXT_CHARS_MAX, "8x8 speaks texts of at most"),
            Rule::Number => (NUMBER_CHARS_MAX, "an E.164 number is at most"),
        };
        // Too long with sample values already: reported with the node, as 8x8's own rule.
        if chars <= limit || sample_text(t).chars().count() > limit {
            return;
        }
        let vars: Vec<String> =
            used.iter().map(|(v, b)| format!("`{{{v}}}` at {}, {}", b.chars, b.origin)).collect();
        let message = format!(
            "can be {chars} characters once its variables are filled ({}); {what} {limit}",
            vars.join("; ")
        );
        let stored: Vec<&str> = used.iter().filter_map(|(_, b)| b.stored_by.as_deref()).collect();
        let stored = stored.join(" or ");
        let hint = match (rule, stored.is_empty()) {
            (Rule::Number, _) => format!(
                "lower the `max_digits` or `max_chars` of what sets {} by {} characters, or shorten the written part",
                used.iter().map(|(v, _)| format!("`{v}`")).collect::<Vec<_>>().join(", "),
                chars - limit
            ),
            (Rule::Text, false) => {
                format!("lower {}, or shorten the text by {} characters", stored, chars - limit)
            }
            (Rule::Text, true) => {
                format!("shorten the text by {} characters, or split it over two nodes", chars - limit)
            }
        };
        self.error(At::Node(name, field), message, Some(hint));
    }
}

/// The fields of a capturing prompt, named as the machine file writes them: `prompt` (or its parts,
/// `prompt.0` ...), `reprompt` when the node has its own, and the success and failure messages.
fn prompt_fields<'m>(
    menu: &'m Menu,
    n: &NodeDef,
    language: Option<&str>,
    fields: &mut Vec<(String, &'m Template, Rule)>,
) {
    let mut parts = |field: &str,
                     given: Option<&Prompt>,
                     lead: &'m [crate::callflow::Say<Template>],
                     last: &'m Template| {
        match given {
            Some(Prompt::Parts(_)) => {
                for (i, say) in lead.iter().enumerate() {
                    fields.push((format!("{field}.{i}"), &say.text, Rule::Text));
                }
                fields.push((format!("{field}.{}", lead.len()), last, Rule::Text));
            }
            _ => fields.push((field.to_string(), last, Rule::Text)),
        }
    };
    parts(
        "prompt",
        n.prompt.as_ref().and_then(|p| p.pick(language)),
        &menu.lead,
        &menu.capture.prompt_message,
    );
    if n.reprompt.is_some() {
        parts("reprompt", n.reprompt.as_ref().and_then(|p| p.pick(language)), &menu.relead, &menu.reprompt);
    }
    let c = &menu.capture;
    for (field, t) in [("success_message", &c.success_message), ("failure_message", &c.failure_message)] {
        if let Some(t) = t {
            fields.push((field.to_string(), t, Rule::Text));
        }
    }
}
