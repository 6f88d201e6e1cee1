//! The VoiceXML 2.1 document of a machine: one `<form>` per node, in a subset a test interpreter
//! (`tests/common/vxml.rs`) plays.
//!
//! The subset: document `<var>`s for the call variables (`caller` is
//! `session.connection.remote.uri`, `virtual_number` `session.connection.local.uri`,
//! `session_id`/`call_id` the platform's `session.phonetree.*`); a say node is a `<block>` with a
//! `<prompt>` (`{play:$name}` an `<audio expr>`, `{say:$name}` a `<say-as interpret-as="digits">`)
//! and a `<goto>`; a play node an `<audio>`; a menu, input or asking script a `<field>` with a
//! DTMF `<grammar>` (a menu's branch keys; keypad keys within the digit bounds for an input;
//! any keys for a script), its first prompt and re-prompt chosen by `cond` on the form's try
//! count, and `<nomatch>`/`<noinput>` counting phonetree's tries before following `invalid` /
//! `no_input`; an input's pattern an ECMAScript `RegExp` test in `<filled>`; a transfer a bridged
//! `<transfer>` whose `<filled>` follows `after` or disconnects; hangup `<disconnect/>`; a script a
//! `<data>` fetch of its URL (a JSON answer, read as an object), `<assign>`s of its stored fields
//! and an `<if>` on its response key, `error.badfetch` caught to its failure branch. Not in the
//! subset: voices and speeds, 8x8's own re-tries and success/failure messages, caller ID on
//! transfers, request headers and caching; a POST sends its body fields as `namelist` variables.

use std::fmt::Write;

use super::mermaid_id;
use crate::machine::template::{Part, spoken};
use crate::machine::{Edge, Machine, Menu, NodeId, NodeKind, Script, Template};

/// Most keys one DTMF capture takes (8x8 captures at most 25 digits and a `#`): the upper bound of
/// the keypad grammar of a script that asks for keys.
const KEYS_MAX: usize = 32;
/// The form variable counting phonetree's tries at a node (`$` keeps it apart from any call
/// variable's name).
const TRIES: &str = "pt$tries";
/// The field variable the caller's keys fill.
const KEYS: &str = "pt$keys";
/// The variable a script's answer is fetched into.
const ANSWER: &str = "pt$answer";

/// XML text or attribute content.
fn xml(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// An ECMAScript string literal.
fn js_string(text: &str) -> String {
    let mut out = String::from("'");
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// The form id of a node: its Mermaid id (letters, digits and `_`), a valid XML id.
fn form_id(m: &Machine, id: NodeId) -> String {
    mermaid_id(&m.graph()[id].name)
}

/// Where `edge` from `id` goes: a `<goto>` to the target's form, or `<exit/>` where the machine
/// has no such edge (the engine ends the call there).
fn goto(m: &Machine, id: NodeId, edge: &Edge) -> String {
    match m.target(id, edge) {
        Some(to) => format!("<goto next=\"#{}\"/>", form_id(m, to)),
        None => "<exit/>".into(),
    }
}

/// A template as prompt content: literal text escaped, variables as `<value>`s. `node` is the
/// node's own name (the `{node}` variable); `play`: `{play:$name}` plays its URL (else says it).
fn prompt_content(t: &Template, node: &str, play: bool) -> String {
    let value = |v: &str| format!("<value expr=\"{}\"/>", xml(v));
    let mut out = String::new();
    for part in t.parts() {
        match part {
            Part::Lit(s) => out.push_str(&xml(s)),
            Part::Var(v) if v == "node" => out.push_str(&xml(node)),
            Part::Say(v) if v == "node" => out.push_str(&xml(&spoken(node))),
            Part::Var(v) => out.push_str(&value(v)),
            Part::Say(v) => {
                let _ = write!(out, "<say-as interpret-as=\"digits\">{}</say-as>", value(v));
            }
            Part::Play(v) if play => {
                let _ = write!(out, "<audio expr=\"{}\"/>", xml(v));
            }
            Part::Play(v) => out.push_str(&value(v)),
        }
    }
    out
}

/// A template as an ECMAScript expression (`'text' + name`), each variable passed through
/// `encodeURIComponent` when `url`.
fn expr(t: &Template, node: &str, url: bool) -> String {
    let terms: Vec<String> = t
        .parts()
        .iter()
        .map(|part| match part {
            Part::Lit(s) => js_string(s),
            Part::Var(v) | Part::Say(v) | Part::Play(v) if v == "node" => js_string(node),
            Part::Var(v) | Part::Say(v) | Part::Play(v) if url => format!("encodeURIComponent({v})"),
            Part::Var(v) | Part::Say(v) | Part::Play(v) => v.clone(),
        })
        .collect();
    if terms.is_empty() { "''".into() } else { terms.join(" + ") }
}

/// A `<prompt>` saying `t`.
fn prompt(t: &Template, node: &str) -> String {
    format!("<prompt>{}</prompt>", prompt_content(t, node, true))
}

/// What a failed try does (in `<nomatch>`, `<noinput>`, or `<filled>` for an input the pattern
/// refuses): count it, prompt again while tries are left, else follow `edge`.
fn retry(m: &Machine, id: NodeId, menu: &Menu, edge: &Edge, reprompt: &str) -> String {
    format!(
        "<assign name=\"{TRIES}\" expr=\"{TRIES} + 1\"/><if cond=\"{TRIES} &lt; {}\">{reprompt}<else/>{}</if>",
        menu.tries,
        goto(m, id, edge)
    )
}

/// A capturing node's `<field>`: grammar, prompts, the handlers of no match and no input, and
/// `filled` (what accepted keys do).
fn field(m: &Machine, id: NodeId, menu: &Menu, grammar: &str, filled: &str) -> String {
    let name = &m.graph()[id].name;
    let c = &menu.capture;
    let mut out = format!("<field name=\"{KEYS}\">");
    if let Some(ms) = c.digit_timeout_ms {
        let _ = write!(out, "<property name=\"interdigittimeout\" value=\"{ms}ms\"/>");
    }
    if let Some(ms) = c.overall_timeout_ms {
        let _ = write!(out, "<property name=\"timeout\" value=\"{ms}ms\"/>");
    }
    let termchar = if c.complete_on_hash == Some(false) { "" } else { "#" };
    let _ = write!(out, "<property name=\"termchar\" value=\"{termchar}\"/>");
    let _ = write!(
        out,
        "<grammar mode=\"dtmf\" version=\"1.0\" root=\"keys\" xmlns=\"http://www.w3.org/2001/06/grammar\"><rule id=\"keys\" scope=\"public\">{grammar}</rule></grammar>"
    );
    let _ = write!(
        out,
        "<prompt cond=\"{TRIES} == 0\">{}</prompt><prompt cond=\"{TRIES} != 0\">{}</prompt>",
        prompt_content(&c.prompt_message, name, false),
        prompt_content(&menu.reprompt, name, false)
    );
    let keypress = "<assign name=\"keypress\" expr=\"application.lastresult$.utterance\"/>";
    let _ = write!(
        out,
        "<filled>{keypress}{filled}</filled><nomatch>{keypress}{}</nomatch><noinput>{}</noinput></field>",
        retry(m, id, menu, &Edge::Invalid, "<reprompt/>"),
        retry(m, id, menu, &Edge::NoInput, "<reprompt/>")
    );
    out
}

/// The value that picks an edge among its node's branches, tested one by one in `<filled>` or
/// after `<data>`: a menu's keys, a script's response values. The other edges are taken by a
/// handler (`Invalid`: `<nomatch>`, `NoInput`: `<noinput>`, `Failure`: `error.badfetch`) or a
/// `<goto>` of their own. Every label is matched here, so a new one is a compile error until the
/// export handles it.
fn branch_value(edge: &Edge) -> Option<&str> {
    match edge {
        Edge::Key(v) | Edge::Response(v) => Some(v),
        Edge::Invalid
        | Edge::NoInput
        | Edge::Next
        | Edge::Default
        | Edge::Failure
        | Edge::Rule(..)
        | Edge::Else
        | Edge::Repeat(_)
        | Edge::Back(_) => None,
    }
}

/// A DTMF item for keys: one token per key.
fn keys_item(keys: &str) -> String {
    let tokens: Vec<String> = keys.chars().map(|k| k.to_string()).collect();
    format!("<item>{}</item>", xml(&tokens.join(" ")))
}

/// Keypad keys (`keys`), between `min` and `max` of them.
fn keypad(keys: &str, min: usize, max: usize) -> String {
    let items: String = keys.chars().map(|k| format!("<item>{}</item>", xml(&k.to_string()))).collect();
    format!("<item repeat=\"{min}-{max}\"><one-of>{items}</one-of></item>")
}

/// A script's request and routing: `<data>`, the stored fields, the branch on the response key.
fn ask(m: &Machine, id: NodeId, s: &Script) -> String {
    let name = &m.graph()[id].name;
    let failure = goto(m, id, &Edge::Failure);
    let mut out = String::new();
    let src = xml(&expr(&s.request.url, name, true));
    let timeout = s.request.timeout_ms;
    match &s.request.body {
        None => {
            let _ = write!(
                out,
                "<data name=\"{ANSWER}\" srcexpr=\"{src}\" method=\"get\" fetchtimeout=\"{timeout}ms\"/>"
            );
        }
        Some(fields) => {
            for (field, value) in fields {
                let _ =
                    write!(out, "<var name=\"{}\" expr=\"{}\"/>", xml(field), xml(&expr(value, name, false)));
            }
            let names: Vec<&str> = fields.iter().map(|(f, _)| f.as_str()).collect();
            let enctype =
                if s.request.raw_json { "application/json" } else { "application/x-www-form-urlencoded" };
            let _ = write!(
                out,
                "<data name=\"{ANSWER}\" srcexpr=\"{src}\" method=\"post\" enctype=\"{enctype}\" namelist=\"{}\" fetchtimeout=\"{timeout}ms\"/>",
                xml(&names.join(" "))
            );
        }
    }
    let path = |p: &[String]| xml(&format!("{ANSWER}.{}", p.join(".")));
    // A stored key the answer lacks takes its default, or leaves the variable unset; it never
    // changes the branch (the engine's `script::route`).
    for st in &s.store {
        let missing = st.default.as_deref().map_or_else(|| "undefined".to_string(), js_string);
        let _ = write!(
            out,
            "<if cond=\"{} == undefined\"><assign name=\"{var}\" expr=\"{}\"/><else/><assign name=\"{var}\" expr=\"{}\"/></if>",
            path(&st.path),
            xml(&missing),
            path(&st.path),
            var = xml(&st.var),
        );
    }
    let default =
        m.target(id, &Edge::Default).map_or_else(|| failure.clone(), |_| goto(m, id, &Edge::Default));
    match &s.response_key {
        None => out.push_str(&default),
        Some(p) => {
            let _ = write!(out, "<if cond=\"{} == undefined\">{failure}", path(p));
            for (edge, _) in m.edges(id) {
                if let Some(v) = branch_value(&edge) {
                    let _ = write!(
                        out,
                        "<elseif cond=\"{} == {}\"/>{}",
                        path(p),
                        xml(&js_string(v)),
                        goto(m, id, &edge)
                    );
                }
            }
            let _ = write!(out, "<else/>{default}</if>");
        }
    }
    out
}

/// One node's form.
fn form(m: &Machine, id: NodeId) -> Result<String, Unsupported> {
    if let Some(unsupported) = unsupported(m, id) {
        return Err(unsupported);
    }
    let node = &m.graph()[id];
    let name = node.name.as_str();
    let next = goto(m, id, &Edge::Next);
    let body = match &node.kind {
        NodeKind::Route(_) | NodeKind::Set(_) => {
            return Err(Unsupported {
                node: name.to_string(),
                what: format!("a `{}` node", node.kind.name()),
            });
        }
        NodeKind::Say(say) => format!("<block>{}{next}</block>", prompt(&say.text, name)),
        NodeKind::Play(play) => format!(
            "<block><prompt><audio expr=\"{}\"/></prompt>{next}</block>",
            xml(&expr(&play.file_url, name, false))
        ),
        NodeKind::Hangup => "<block><disconnect/></block>".into(),
        NodeKind::Menu(menu) => {
            let keys: Vec<String> =
                m.edges(id).iter().filter_map(|(e, _)| branch_value(e)).map(str::to_string).collect();
            let grammar =
                format!("<one-of>{}</one-of>", keys.iter().map(|k| keys_item(k)).collect::<String>());
            let mut filled = String::new();
            for (i, k) in keys.iter().enumerate() {
                let cond = xml(&format!("{KEYS} == {}", js_string(k)));
                let tag = if i == 0 { "if" } else { "elseif" };
                let close = if i == 0 { "" } else { "/" };
                let _ =
                    write!(filled, "<{tag} cond=\"{cond}\"{close}>{}", goto(m, id, &Edge::Key(k.clone())));
            }
            if !keys.is_empty() {
                filled.push_str("</if>");
            }
            field(m, id, menu, &grammar, &filled)
        }
        NodeKind::Input(input) => {
            let c = &input.prompt.capture;
            let min = usize::from(c.min_digits.unwrap_or(1).max(1));
            let max = usize::from(c.max_digits.unwrap_or(u8::MAX));
            let accept = format!("<assign name=\"{}\" expr=\"{KEYS}\"/>{next}", xml(&input.variable));
            let filled = match &input.pattern {
                None => accept,
                Some(p) => format!(
                    "<if cond=\"{}\">{accept}<else/>{}</if>",
                    xml(&format!("/^(?:{})$/.test({KEYS})", p.as_str())),
                    retry(m, id, &input.prompt, &Edge::Invalid, &format!("<clear namelist=\"{KEYS}\"/>"))
                ),
            };
            field(m, id, &input.prompt, &keypad("0123456789*", min, max), &filled)
        }
        NodeKind::Script(s) => {
            let catch = format!("<catch event=\"error.badfetch\">{}</catch>", goto(m, id, &Edge::Failure));
            match &s.capture {
                Some(menu) => format!(
                    "{catch}{}",
                    field(m, id, menu, &keypad("0123456789*#", 0, KEYS_MAX), &ask(m, id, s))
                ),
                None => {
                    let say = s.say.as_ref().map(|say| prompt(&say.text, name)).unwrap_or_default();
                    format!("{catch}<block>{say}{}</block>", ask(m, id, s))
                }
            }
        }
        // 8x8 ends the call when the bridge ends; so does the export.
        NodeKind::Transfer(t) => {
            let after = "<disconnect/>";
            let dest = match t.destination.as_literal() {
                Some(d) => format!("dest=\"tel:{}\"", xml(d)),
                None => format!(
                    "destexpr=\"{}\"",
                    xml(&format!("'tel:' + {}", expr(&t.destination, name, false)))
                ),
            };
            format!(
                "<transfer name=\"pt$transfer\" {dest} bridge=\"true\"><filled>{after}</filled></transfer>"
            )
        }
    };
    Ok(format!("  <form id=\"{}\"><var name=\"{TRIES}\" expr=\"0\"/>{body}</form>\n", form_id(m, id)))
}

/// A node the VoiceXML export cannot express yet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("node `{node}`: {what} has no VoiceXML export yet (dot, mermaid and json export it)")]
pub struct Unsupported {
    pub node: String,
    pub what: String,
}

/// What of `id` the export cannot say yet (beyond its kind): machine-wide keys, prompt parts.
fn unsupported(m: &Machine, id: NodeId) -> Option<Unsupported> {
    let node = &m.graph()[id];
    let what = if m.edges(id).iter().any(|(e, _)| matches!(e, Edge::Repeat(_) | Edge::Back(_))) {
        "a machine-wide key (`[keys]`)"
    } else if node.kind.capture().is_some_and(|c| !c.lead.is_empty() || !c.relead.is_empty()) {
        "a prompt of several parts"
    } else {
        return None;
    };
    Some(Unsupported { node: node.name.clone(), what: what.into() })
}

/// The call variables every form may read: the built-ins, then each input's and script's.
fn variables(m: &Machine) -> String {
    let mut out = String::new();
    for (name, expr) in [
        ("caller", "session.connection.remote.uri"),
        ("virtual_number", "session.connection.local.uri"),
        ("session_id", "session.phonetree.session_id"),
        ("call_id", "session.phonetree.call_id"),
        ("keypress", "''"),
    ] {
        let _ = writeln!(out, "  <var name=\"{name}\" expr=\"{}\"/>", xml(expr));
    }
    let mut seen: Vec<&str> = Vec::new();
    for node in m.graph().node_weights() {
        let vars: Vec<&str> = match &node.kind {
            NodeKind::Input(input) => vec![input.variable.as_str()],
            NodeKind::Script(s) => s.store.iter().map(|st| st.var.as_str()).collect(),
            NodeKind::Set(set) => {
                let counters = set.add.iter().map(|(v, _)| v.as_str());
                set.values.iter().map(|(v, _)| v.as_str()).chain(counters).collect()
            }
            NodeKind::Menu(_)
            | NodeKind::Say(_)
            | NodeKind::Play(_)
            | NodeKind::Transfer(_)
            | NodeKind::Route(_)
            | NodeKind::Hangup => {
                vec![]
            }
        };
        for v in vars {
            if !seen.contains(&v) {
                seen.push(v);
                let _ = writeln!(out, "  <var name=\"{}\"/>", xml(v));
            }
        }
    }
    out
}

/// The VoiceXML document: the call variables, then the start node's form (where a VoiceXML
/// interpreter begins), then every other node's in graph order.
pub fn vxml(m: &Machine) -> Result<String, Unsupported> {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<vxml version=\"2.1\" xmlns=\"http://www.w3.org/2001/vxml\" xml:lang=\"en-US\">\n  <!-- phonetree machine {} version {} -->",
        xml(m.name()).replace("--", "- -"),
        m.version().hex()
    );
    out.push_str(&variables(m));
    out.push_str(&form(m, m.start())?);
    for id in m.graph().node_indices().filter(|&id| id != m.start()) {
        out.push_str(&form(m, id)?);
    }
    out.push_str("</vxml>\n");
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_for_xml_and_ecmascript() {
        assert_eq!(xml(r#"<a href="x">&'"#), "&lt;a href=&quot;x&quot;&gt;&amp;&apos;");
        assert_eq!(js_string(r"it's \ here"), r"'it\'s \\ here'");
    }

    #[test]
    fn templates_become_prompt_content_and_expressions() {
        let t = Template::parse("Order {say:$order} for {caller} at {node}: {play:$clip} <now>").unwrap();
        assert_eq!(
            prompt_content(&t, "n1", true),
            "Order <say-as interpret-as=\"digits\"><value expr=\"order\"/></say-as> for <value expr=\"caller\"/> at n1: <audio expr=\"clip\"/> &lt;now&gt;"
        );
        let url = Template::parse("http://h/o/{order}?n={node}").unwrap();
        assert_eq!(expr(&url, "n1", true), "'http://h/o/' + encodeURIComponent(order) + '?n=' + 'n1'");
    }

    #[test]
    fn the_start_form_comes_first_and_every_node_has_one() {
        let m = crate::export::tests::abc();
        let doc = vxml(&m).unwrap();
        let first = doc.find("<form id=").unwrap();
        assert!(doc[first..].starts_with("<form id=\"n_main__menu\">"), "{doc}");
        assert_eq!(doc.matches("<form id=").count(), m.node_count());
        assert!(doc.contains("<form id=\"n_post__call\"><var name=\"pt$tries\" expr=\"0\"/><transfer name=\"pt$transfer\" dest=\"tel:+6531589338\" bridge=\"true\"><filled><disconnect/></filled></transfer></form>"), "{doc}");
    }
}
