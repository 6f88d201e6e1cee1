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
//! and an `<if>` on its response key (each path read by a document function, `pt$scalar`, as the
//! engine reads it: own keys, array indexes, a string, number or boolean, else missing; an answer
//! without its response key fails before anything is stored), `error.badfetch` caught to its
//! failure branch; a stored value is kept as text, cut to its `max_chars` after the last whole word; a set node a `<block>`
//! of `<assign>`s (values rendered before any is stored; counters read as integers, unset or not
//! an integer as 0, held within ±`COUNTER_MAX`); a route node a `<block>` whose `<if>`/`<elseif>`
//! test its rules in order (each rule's conditions ANDed) and whose `<else>` follows `else`; a
//! multi-part prompt's leading parts `<prompt>`s queued before the capture's, on every prompt and
//! re-prompt; a machine-wide key (`[keys]`) at a menu or input an item of its grammar, tested
//! first in `<filled>`: a key to a node its `<goto>`, `repeat` the field cleared (prompted again,
//! the try not counted), `back` the previous waiting node of the call's path, which the document
//! keeps in a variable when the machine has a `back` key (the prompt again where there is none).
//! Not in the subset: voices and speeds, 8x8's own re-tries and success/failure messages, caller
//! ID on transfers, request headers and caching; a POST sends its body fields as `namelist`
//! variables.
//!
//! Assumed of the platform: VoiceXML has no clock in a time zone, so a route on time reads the
//! call's local time in the machine's `timezone` from platform variables, as it reads
//! `session.phonetree.session_id`: `session.phonetree.local.weekday` (0 Monday to 6 Sunday),
//! `.minutes` (since local midnight) and `.date` (`YYYY-MM-DD`), and
//! `session.phonetree.yesterday.weekday` and `.date` for the part of a window after midnight,
//! which belongs to the day the window started. Where ECMAScript differs from the engine: `matches`
//! runs as an ECMAScript `RegExp` (the engine's is Rust's `regex`; they agree on classes, groups,
//! repeats and alternation, not on Unicode classes or `\d` beyond ASCII); lengths (`max_chars`,
//! `prefix`, the 32 characters a set value keeps) count UTF-16 units, not characters; an integer
//! beyond 2^53 loses precision, and a number's text is ECMAScript's (`100.0` reads `100`, `1e21`
//! `1e+21`) where the engine's is serde_json's; a 2xx answer that is not JSON fails the `<data>`
//! even at a script that stores nothing and has no response key (the engine takes `default`).

use std::fmt::Write;

use super::mermaid_id;
use crate::machine::route::{Addend, COUNTER_MAX, Route as RouteNode, Rule, SetVars, VarTest};
use crate::machine::split::Split;
use crate::machine::template::{Part, VALUE_CHARS_MAX, spoken};
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

/// XML text or attribute content (a machine's texts in a VoiceXML document).
fn xml(text: &str) -> String {
    super::xml_text(text)
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

/// Node `id` in each of the machine's languages, with the ECMAScript condition under which a call
/// speaks it (the language variable names it; the first language otherwise, as in the engine):
/// the node alone, with no condition, for a machine of one language.
fn in_languages(m: &Machine, id: NodeId) -> Vec<(Option<String>, &NodeKind)> {
    let Some(var) = m.language_variable() else { return vec![(None, &m.graph()[id].kind)] };
    let is = |l: &str| format!("{var} == {}", js_string(l));
    let others: Vec<String> = m.languages().iter().skip(1).map(|l| is(l)).collect();
    (0..m.languages().len())
        .filter_map(|i| {
            let cond = if i == 0 { format!("!({})", others.join(" || ")) } else { others[i - 1].clone() };
            m.spoken(id, i).map(|kind| (Some(cond), kind))
        })
        .collect()
}

/// Block content said in the call's language: each language's `say(kind)` under its condition.
fn by_language(spoken: &[(Option<String>, &NodeKind)], say: impl Fn(&NodeKind) -> String) -> String {
    match spoken {
        [(None, kind)] => say(kind),
        [(_, first), rest @ ..] => {
            let mut out = String::new();
            for (i, (cond, kind)) in rest.iter().enumerate() {
                let tag = if i == 0 { "if" } else { "elseif" };
                let close = if i == 0 { ">" } else { "/>" };
                let _ = write!(
                    out,
                    "<{tag} cond=\"{}\"{close}{}",
                    xml(cond.as_deref().unwrap_or("true")),
                    say(kind)
                );
            }
            if rest.is_empty() {
                return say(first);
            }
            let _ = write!(out, "<else/>{}</if>", say(first));
            out
        }
        [] => String::new(),
    }
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
    // The prompts in each language (the capture settings are the same in all).
    let spoken: Vec<(Option<String>, &Menu)> =
        in_languages(m, id).into_iter().map(|(cond, kind)| (cond, kind.capture().unwrap_or(menu))).collect();
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
    // A multi-part prompt's leading parts are `<prompt>`s queued before the capture's, on every
    // prompt and re-prompt (the engine's `current_reply`).
    for (language, menu) in &spoken {
        let when = |tries: &str| match language {
            Some(l) => xml(&format!("{tries} && {l}")),
            None => tries.to_string(),
        };
        let first = when(&format!("{TRIES} == 0"));
        let again = when(&format!("{TRIES} != 0"));
        let c = &menu.capture;
        let parts = menu.lead.iter().map(|say| (&first, &say.text)).chain([(&first, &c.prompt_message)]);
        let reparts = menu.relead.iter().map(|say| (&again, &say.text)).chain([(&again, &menu.reprompt)]);
        for (cond, text) in parts.chain(reparts) {
            let _ = write!(out, "<prompt cond=\"{cond}\">{}</prompt>", prompt_content(text, name, false));
        }
    }
    let keypress = "<assign name=\"keypress\" expr=\"application.lastresult$.utterance\"/>";
    let _ = write!(
        out,
        "<filled>{keypress}{filled}</filled><nomatch>{keypress}{}</nomatch><noinput>{}</noinput></field>",
        retry(m, id, menu, &Edge::Invalid, "<reprompt/>"),
        retry(m, id, menu, &Edge::NoInput, "<reprompt/>")
    );
    out
}

/// What the keys of a menu's branches and the machine-wide keys (`[keys]`) of a menu or input do
/// in `<filled>`: a key that leads somewhere its `<goto>`; `repeat` clears the field, so its
/// prompts (leading parts too) play again with the try count unchanged. (`back` is refused by
/// `unsupported`.)
fn key_actions(m: &Machine, id: NodeId) -> Vec<(String, String)> {
    m.edges(id)
        .iter()
        .filter_map(|(e, _)| match e {
            Edge::Key(k) => Some((k.clone(), goto(m, id, e))),
            Edge::Repeat(k) => Some((k.clone(), format!("<clear namelist=\"{KEYS}\"/>"))),
            Edge::Back(k) => Some((k.clone(), back(m, id))),
            _ => None,
        })
        .collect()
}

/// What a `back` key does (the engine's `machine_key`): the path without this node's own last
/// entries; empty, the prompt again (as `repeat`); else the path loses its last node, entered
/// again (which puts it back on the path).
fn back(m: &Machine, id: NodeId) -> String {
    let here = form_id(m, id);
    format!(
        "<var name=\"{BACK}\" expr=\"{}\"/><if cond=\"{BACK} == &apos;&apos;\"><clear namelist=\"{KEYS}\"/><else/><assign name=\"{PATH}\" expr=\"{}\"/><goto expr=\"{}\"/></if>",
        xml(&format!("{PATH}.replace(/( {here})+$/, '')")),
        xml(&format!(r"{BACK}.replace(/ \S+$/, '')")),
        xml(&format!("'#' + {BACK}.replace(/^.* /, '')")),
    )
}

/// Whether a machine has `back` keys (and so its document keeps the call's path).
fn goes_back(m: &Machine) -> bool {
    m.graph().edge_weights().any(|e| matches!(e, Edge::Back(_)))
}

/// An `<if>` on the keys of `actions`, `otherwise` in its `<else>` (or `otherwise` alone when
/// there are none).
fn on_keys(actions: &[(String, String)], otherwise: &str) -> String {
    if actions.is_empty() {
        return otherwise.to_string();
    }
    let mut out = String::new();
    for (i, (k, action)) in actions.iter().enumerate() {
        let cond = xml(&format!("{KEYS} == {}", js_string(k)));
        let _ = if i == 0 {
            write!(out, "<if cond=\"{cond}\">{action}")
        } else {
            write!(out, "<elseif cond=\"{cond}\"/>{action}")
        };
    }
    if !otherwise.is_empty() {
        let _ = write!(out, "<else/>{otherwise}");
    }
    out.push_str("</if>");
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
        | Edge::NotNumber
        | Edge::Repeat(_)
        | Edge::Back(_)
        | Edge::Variant(_) => None,
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
    // A path of the answer as the engine's `script::scalar` reads it: the text of a string,
    // number or boolean there, else `undefined` (a missing key, an object, an array, null).
    let path = |p: &[String]| {
        let names: Vec<String> = p.iter().map(|name| js_string(name)).collect();
        xml(&format!("{SCALAR}({ANSWER}, [{}])", names.join(", ")))
    };
    let failure_on_missing_key =
        s.response_key.as_ref().map(|p| format!("<if cond=\"{} == undefined\">{failure}</if>", path(p)));
    // An answer without the response key fails before anything is stored (the engine's
    // `script::route`).
    out.push_str(failure_on_missing_key.as_deref().unwrap_or_default());
    // A stored key the answer lacks takes its default, or leaves the variable unset; it never
    // changes the branch.
    // A value is kept as text, cut to its `max_chars` after the last whole word that fits
    // (`script::cut`): the first `max_chars + 1` characters without their last (partial) word and
    // the space before it, or the first `max_chars` where that leaves nothing or no space was cut.
    for st in &s.store {
        let missing = st.default.as_deref().map_or_else(|| "undefined".to_string(), js_string);
        let (n, var) = (st.max_chars, xml(&st.var));
        let cut = format!(
            "<if cond=\"{var}.length &gt; {n}\"><var name=\"{CUT}\" expr=\"{}\"/><if cond=\"{CUT}.length == 0 || {CUT}.length &gt; {n}\"><assign name=\"{var}\" expr=\"{var}.substring(0, {n})\"/><else/><assign name=\"{var}\" expr=\"{CUT}\"/></if></if>",
            xml(&format!(r"{var}.substring(0, {}).replace(/\s+\S*$/, '')", n.saturating_add(1)))
        );
        let _ = write!(
            out,
            "<assign name=\"{var}\" expr=\"{}\"/><if cond=\"{var} == undefined\"><assign name=\"{var}\" expr=\"{}\"/><else/>{cut}</if>",
            path(&st.path),
            xml(&missing),
        );
    }
    let default =
        m.target(id, &Edge::Default).map_or_else(|| failure.clone(), |_| goto(m, id, &Edge::Default));
    match &s.response_key {
        None => out.push_str(&default),
        Some(p) => {
            let mut first = true;
            for (edge, _) in m.edges(id) {
                if let Some(v) = branch_value(&edge) {
                    let cond = format!("{} == {}", path(p), xml(&js_string(v)));
                    let _ = if first {
                        write!(out, "<if cond=\"{cond}\">{}", goto(m, id, &edge))
                    } else {
                        write!(out, "<elseif cond=\"{cond}\"/>{}", goto(m, id, &edge))
                    };
                    first = false;
                }
            }
            if first {
                out.push_str(&default);
            } else {
                let _ = write!(out, "<else/>{default}</if>");
            }
        }
    }
    out
}

/// The document function reading a path of a script's answer as the engine's `script::scalar`
/// does: an object's own key, an array's index (a `usize` as Rust reads one: an optional `+`,
/// digits), and at the end a string, number or boolean as text; anything else `undefined`.
const SCALAR_FUNCTION: &str = "function (v, path) { for (var i = 0; i < path.length; i++) { var k = path[i]; if (Array.isArray(v)) { if (!/^[+]?[0-9]+$/.test(k)) { return undefined; } k = Number(k); } else if (v === null || typeof v != 'object' || !Object.prototype.hasOwnProperty.call(v, k)) { return undefined; } v = v[k]; } return typeof v == 'string' || typeof v == 'number' || typeof v == 'boolean' ? '' + v : undefined; }";

/// The call's local time in the machine's `timezone`, which the platform hands the document (see
/// the module's head): `weekday` (0 Monday to 6 Sunday), `minutes` since local midnight, `date`
/// (`YYYY-MM-DD`).
const LOCAL: &str = "session.phonetree.local";
/// The same for the day before (its `weekday` and `date`): the part of a window after midnight
/// belongs to the day the window started (`route::Rule::time_holds`).
const YESTERDAY: &str = "session.phonetree.yesterday";
/// An integer's text as `route::integer` reads it: trimmed, an optional sign, digits.
const INTEGER: &str = r"/^\s*[+-]?[0-9]+\s*$/";
/// The document variable holding the call's path for `back` keys: the form ids of the waiting
/// nodes entered, each after a space.
const PATH: &str = "pt$path";
/// The variable a `back` key works out where it goes in.
const BACK: &str = "pt$back";
/// The variable a stored value's cut is built in.
const CUT: &str = "pt$cut";
/// The document variable holding [`SCALAR_FUNCTION`].
const SCALAR: &str = "pt$scalar";

/// Conditions ANDed (`true` when there are none).
fn all(parts: Vec<String>) -> String {
    if parts.is_empty() { "true".into() } else { parts.join(" && ") }
}

/// Alternatives ORed, in parentheses.
fn any(parts: Vec<String>) -> String {
    format!("({})", parts.join(" || "))
}

/// A regular expression as an ECMAScript literal (`/` escaped). Rust's `regex` and ECMAScript
/// agree on the patterns machines use (classes, groups, repeats, alternation); the module's head
/// says where they differ.
fn js_regex(re: &str) -> String {
    let mut out = String::from("/");
    let mut escaped = false;
    for c in re.chars() {
        if c == '/' && !escaped {
            out.push('\\');
        }
        escaped = c == '\\' && !escaped;
        out.push(c);
    }
    out.push('/');
    out
}

/// A rule's conditions on `day` (`LOCAL` or `YESTERDAY`): its days and dates.
fn day_holds(rule: &Rule, day: &str) -> Vec<String> {
    let mut parts = Vec::new();
    if let Some(days) = rule.days {
        let weekdays = (0..7u8).filter(|d| days.0 & (1 << d) != 0);
        parts.push(any(weekdays.map(|d| format!("{day}.weekday == {d}")).collect()));
    }
    if let Some(dates) = &rule.dates {
        parts.push(any(dates.iter().map(|d| format!("{day}.date == '{d}'")).collect()));
    }
    parts
}

/// A rule's time conditions (`route::Rule::time_holds`): the window's minutes, and the days and
/// dates of the day it started.
fn time_holds(rule: &Rule) -> Vec<String> {
    let minutes = format!("{LOCAL}.minutes");
    match rule.hours {
        None => day_holds(rule, LOCAL),
        Some(h) if !h.crosses_midnight() => {
            let mut parts = vec![format!("{minutes} >= {}", h.from), format!("{minutes} < {}", h.to)];
            parts.extend(day_holds(rule, LOCAL));
            parts
        }
        Some(h) => {
            let mut before = vec![format!("{minutes} >= {}", h.from)];
            before.extend(day_holds(rule, LOCAL));
            let mut after = vec![format!("{minutes} < {}", h.to)];
            after.extend(day_holds(rule, YESTERDAY));
            vec![any(vec![all(before), all(after)])]
        }
    }
}

/// A test on variable `v` (`route::VarTest::holds`): an unset variable (`undefined`) holds none
/// but the numeric ones, where it counts as 0; those take integers only.
fn var_holds(v: &str, test: &VarTest) -> String {
    let number = |op: &str, n: i64, unset: bool| {
        let number = format!("{INTEGER}.test({v}) && Number({v}) {op} {n}");
        if unset { format!("({v} == undefined || {number})") } else { format!("({number})") }
    };
    match test {
        VarTest::Equals(e) => format!("{v} == {}", js_string(e)),
        VarTest::OneOf(set) => any(set.iter().map(|e| format!("{v} == {}", js_string(e))).collect()),
        VarTest::Matches(re) => format!("({v} != undefined && {}.test({v}))", js_regex(re.as_str())),
        VarTest::Prefix(p) => {
            format!(
                "({v} != undefined && {v}.substring(0, {}) == {})",
                p.encode_utf16().count(),
                js_string(p)
            )
        }
        VarTest::AtLeast(n) => number(">=", *n, 0 >= *n),
        VarTest::AtMost(n) => number("<=", *n, 0 <= *n),
    }
}

/// A route's `<block>`: its rules in order, each one's conditions ANDed, then `else`.
fn route(m: &Machine, id: NodeId, r: &RouteNode) -> String {
    let mut out = String::from("<block>");
    for (i, rule) in r.rules.iter().enumerate() {
        let mut parts = time_holds(rule);
        if let Some((v, tests)) = &rule.var {
            parts.extend(tests.iter().map(|t| var_holds(v, t)));
        }
        let cond = xml(&all(parts));
        let to = goto(m, id, &Edge::Rule(i, rule.label.clone()));
        let _ = if i == 0 {
            write!(out, "<if cond=\"{cond}\">{to}")
        } else {
            write!(out, "<elseif cond=\"{cond}\"/>{to}")
        };
    }
    let otherwise = goto(m, id, &Edge::Else);
    if r.rules.is_empty() {
        out.push_str(&otherwise);
    } else {
        let _ = write!(out, "<else/>{otherwise}</if>");
    }
    out.push_str("</block>");
    out
}

/// A split's `<block>`: VoiceXML has no SHA-256, so the platform gives each split's variant (the
/// documented hash of its salt and the caller) as `session.phonetree.splits['NODE']`.
fn split(m: &Machine, id: NodeId, s: &Split) -> String {
    let name = &m.graph()[id].name;
    let mut out = String::from("<block>");
    for (i, (variant, _)) in s.variants.iter().enumerate() {
        let cond = xml(&format!("session.phonetree.splits[{}] == {}", js_string(name), js_string(variant)));
        let to = goto(m, id, &Edge::Variant(variant.clone()));
        let _ = if i == 0 {
            write!(out, "<if cond=\"{cond}\">{to}")
        } else {
            write!(out, "<elseif cond=\"{cond}\"/>{to}")
        };
    }
    out.push_str("<else/><disconnect/></if></block>");
    out
}

/// A set node's `<block>` (the engine's `assign`): each variable an `add` reads checked to be a
/// number first (else its `not_number`, nothing set); every value rendered before any is stored, each
/// kept to `VALUE_CHARS_MAX` (the engine's `KEYPRESS_CHARS_MAX`); then each counter read as an integer (unset or not an integer:
/// 0), added to and held within `COUNTER_MAX`, stored as text.
fn set(m: &Machine, id: NodeId, set: &SetVars) -> String {
    let name = &m.graph()[id].name;
    let mut out = String::from("<block>");
    // What each `add` of a variable adds, read before anything is set; not a number (an integer
    // within ±COUNTER_MAX): `not_number`, having set nothing.
    for (i, (_, addend)) in set.add.iter().enumerate() {
        if let Some(var) = addend.var() {
            let number = format!("!({INTEGER}.test({var}) && Math.abs(pt$add{i}) <= {COUNTER_MAX})");
            let _ = write!(
                out,
                "<var name=\"pt$add{i}\" expr=\"{}\"/><if cond=\"{}\">{}</if>",
                xml(&format!("Number({var})")),
                xml(&number),
                goto(m, id, &Edge::NotNumber)
            );
        }
    }
    for (i, (_, t)) in set.values.iter().enumerate() {
        let value = format!("({}).substring(0, {VALUE_CHARS_MAX})", expr(t, name, false));
        let _ = write!(out, "<var name=\"pt$value{i}\" expr=\"{}\"/>", xml(&value));
    }
    for (i, (var, _)) in set.values.iter().enumerate() {
        let _ = write!(out, "<assign name=\"{}\" expr=\"pt$value{i}\"/>", xml(var));
    }
    for (i, (var, addend)) in set.add.iter().enumerate() {
        let n = match addend {
            Addend::Constant(n) => n.to_string(),
            Addend::Var { .. } => format!("pt$add{i}"),
        };
        let v = xml(var);
        let _ = write!(
            out,
            "<if cond=\"{}\"><assign name=\"{v}\" expr=\"Number({v}) + {n}\"/><else/><assign name=\"{v}\" expr=\"{n}\"/></if>",
            xml(&format!("{INTEGER}.test({var})"))
        );
        let _ = write!(
            out,
            "<if cond=\"{v} &gt; {COUNTER_MAX}\"><assign name=\"{v}\" expr=\"{COUNTER_MAX}\"/><elseif cond=\"{v} &lt; -{COUNTER_MAX}\"/><assign name=\"{v}\" expr=\"-{COUNTER_MAX}\"/></if><assign name=\"{v}\" expr=\"'' + {v}\"/>"
        );
    }
    let _ = write!(out, "{}</block>", goto(m, id, &Edge::Next));
    out
}

/// One node's form.
fn form(m: &Machine, id: NodeId) -> String {
    let node = &m.graph()[id];
    let name = node.name.as_str();
    let next = goto(m, id, &Edge::Next);
    let body = match &node.kind {
        NodeKind::Route(r) => route(m, id, r),
        NodeKind::Set(s) => set(m, id, s),
        NodeKind::Split(s) => split(m, id, s),
        NodeKind::Say(_) => {
            let say = by_language(&in_languages(m, id), |kind| match kind {
                NodeKind::Say(say) => prompt(&say.text, name),
                _ => String::new(),
            });
            format!("<block>{say}{next}</block>")
        }
        NodeKind::Play(play) => format!(
            "<block><prompt><audio expr=\"{}\"/></prompt>{next}</block>",
            xml(&expr(&play.file_url, name, false))
        ),
        NodeKind::Hangup => "<block><disconnect/></block>".into(),
        NodeKind::Menu(menu) => {
            let actions = key_actions(m, id);
            let grammar =
                format!("<one-of>{}</one-of>", actions.iter().map(|(k, _)| keys_item(k)).collect::<String>());
            field(m, id, menu, &grammar, &on_keys(&actions, ""))
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
                    xml(&format!("{}.test({KEYS})", js_regex(&format!("^(?:{})$", p.as_str())))),
                    retry(m, id, &input.prompt, &Edge::Invalid, &format!("<clear namelist=\"{KEYS}\"/>"))
                ),
            };
            // The machine-wide keys come first, as in the engine; the grammar takes them too.
            let actions = key_actions(m, id);
            let mut grammar = keypad("0123456789*", min, max);
            if !actions.is_empty() {
                let keys: String = actions.iter().map(|(k, _)| keys_item(k)).collect();
                grammar = format!("<one-of>{grammar}{keys}</one-of>");
            }
            field(m, id, &input.prompt, &grammar, &on_keys(&actions, &filled))
        }
        NodeKind::Script(s) => {
            let catch = format!("<catch event=\"error.badfetch\">{}</catch>", goto(m, id, &Edge::Failure));
            match &s.capture {
                Some(menu) => format!(
                    "{catch}{}",
                    field(m, id, menu, &keypad("0123456789*#", 0, KEYS_MAX), &ask(m, id, s))
                ),
                None => {
                    let say = by_language(&in_languages(m, id), |kind| match kind {
                        NodeKind::Script(Script { say: Some(say), .. }) => prompt(&say.text, name),
                        _ => String::new(),
                    });
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
    // A waiting node goes on the path a `back` key reads.
    let entered = if node.kind.capture().is_some() && goes_back(m) {
        format!(
            "<block><assign name=\"{PATH}\" expr=\"{}\"/></block>",
            xml(&format!("{PATH} + ' {}'", form_id(m, id)))
        )
    } else {
        String::new()
    };
    format!("  <form id=\"{}\"><var name=\"{TRIES}\" expr=\"0\"/>{entered}{body}</form>\n", form_id(m, id))
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
    if goes_back(m) {
        let _ = writeln!(out, "  <var name=\"{PATH}\" expr=\"&apos;&apos;\"/>");
    }
    if m.graph().node_weights().any(|n| matches!(n.kind, NodeKind::Script(_))) {
        let _ = writeln!(out, "  <var name=\"{SCALAR}\" expr=\"{}\"/>", xml(SCALAR_FUNCTION));
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
            | NodeKind::Split(_)
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
pub fn vxml(m: &Machine) -> String {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<vxml version=\"2.1\" xmlns=\"http://www.w3.org/2001/vxml\" xml:lang=\"en-US\">\n  <!-- phonetree machine {} version {} -->",
        xml(m.name()).replace("--", "- -"),
        m.version().hex()
    );
    out.push_str(&variables(m));
    out.push_str(&form(m, m.start()));
    for id in m.graph().node_indices().filter(|&id| id != m.start()) {
        out.push_str(&form(m, id));
    }
    out.push_str("</vxml>\n");
    out
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

    /// The form of node `name` in `doc`.
    fn form_of<'d>(doc: &'d str, name: &str) -> &'d str {
        let at = doc.find(&format!("<form id=\"n_{name}\">")).unwrap_or_else(|| panic!("{name}: {doc}"));
        let end = doc[at..].find("</form>").unwrap();
        &doc[at..at + end]
    }

    #[test]
    fn routes_become_rules_in_order_and_sets_assignments() {
        let text = r#"
name = "forms"
start = "hours"
timezone = "Asia/Singapore"

[defaults]
voice_profile = "en-US-BenjaminRUS"
max_digits = 1

[nodes.hours]
kind = "route"
rules = [
  { dates = ["2026-12-25"], next = "count" },
  { days = "fri", hours = "22:00-06:00", next = "bye" },
  { days = "mon-fri", hours = "09:00-18:00", var = "caller", prefix = "+65", next = "bye" },
]
else = "bye"

[nodes.count]
kind = "set"
values = { a = "{caller}", b = "x{node}" }
add = { n = -2 }
next = "tests"

[nodes.tests]
kind = "route"
rules = [
  { var = "n", at_least = -3, at_most = 5, next = "bye" },
  { var = "a", one_of = ["1", "2"], matches = "[0-9/]+", next = "bye" },
]
else = "bye"

[nodes.bye]
kind = "hangup"
"#;
        let m = crate::machine::compile(&crate::machine::Source::new("forms.toml", text))
            .machine
            .expect("the machine compiles");
        let doc = vxml(&m);
        let l = LOCAL;
        let y = YESTERDAY;
        assert_eq!(
            form_of(&doc, "hours"),
            format!(
                "<form id=\"n_hours\"><var name=\"pt$tries\" expr=\"0\"/><block>\
                 <if cond=\"({l}.date == '2026-12-25')\"><goto next=\"#n_count\"/>\
                 <elseif cond=\"({l}.minutes &gt;= 1320 &amp;&amp; ({l}.weekday == 4) || {l}.minutes &lt; 360 &amp;&amp; ({y}.weekday == 4))\"/><goto next=\"#n_bye\"/>\
                 <elseif cond=\"{l}.minutes &gt;= 540 &amp;&amp; {l}.minutes &lt; 1080 &amp;&amp; ({l}.weekday == 0 || {l}.weekday == 1 || {l}.weekday == 2 || {l}.weekday == 3 || {l}.weekday == 4) &amp;&amp; (caller != undefined &amp;&amp; caller.substring(0, 3) == &apos;+65&apos;)\"/><goto next=\"#n_bye\"/>\
                 <else/><goto next=\"#n_bye\"/></if></block>"
            )
            .replace("'2026-12-25'", "&apos;2026-12-25&apos;")
        );
        let int = r"/^\s*[+-]?[0-9]+\s*$/";
        assert_eq!(
            form_of(&doc, "count"),
            format!(
                "<form id=\"n_count\"><var name=\"pt$tries\" expr=\"0\"/><block>\
                 <var name=\"pt$value0\" expr=\"(caller).substring(0, 32)\"/><var name=\"pt$value1\" expr=\"(&apos;x&apos; + &apos;count&apos;).substring(0, 32)\"/>\
                 <assign name=\"a\" expr=\"pt$value0\"/><assign name=\"b\" expr=\"pt$value1\"/>\
                 <if cond=\"{int}.test(n)\"><assign name=\"n\" expr=\"Number(n) + -2\"/><else/><assign name=\"n\" expr=\"-2\"/></if>\
                 <if cond=\"n &gt; 999999999\"><assign name=\"n\" expr=\"999999999\"/><elseif cond=\"n &lt; -999999999\"/><assign name=\"n\" expr=\"-999999999\"/></if>\
                 <assign name=\"n\" expr=\"'' + n\"/><goto next=\"#n_tests\"/></block>"
            )
        );
        // Unset counts as 0 for a numeric test that 0 passes; `matches` is anchored, `/` escaped.
        let tests = form_of(&doc, "tests");
        assert!(
            tests.contains(&xml(&format!(
                "(n == undefined || {int}.test(n) &amp;&amp; Number(n) >= -3) &amp;&amp; (n == undefined || {int}.test(n) &amp;&amp; Number(n) <= 5)"
            ).replace("&amp;&amp;", "&&"))),
            "{tests}"
        );
        assert!(
            tests.contains(&xml(r"(a == '1' || a == '2') && (a != undefined && /^(?:[0-9\/]+)$/.test(a))")),
            "{tests}"
        );
    }

    #[test]
    fn the_start_form_comes_first_and_every_node_has_one() {
        let m = crate::export::tests::abc();
        let doc = vxml(&m);
        let first = doc.find("<form id=").unwrap();
        assert!(doc[first..].starts_with("<form id=\"n_main__menu\">"), "{doc}");
        assert_eq!(doc.matches("<form id=").count(), m.node_count());
        assert!(doc.contains("<form id=\"n_post__call\"><var name=\"pt$tries\" expr=\"0\"/><transfer name=\"pt$transfer\" dest=\"tel:+6531589338\" bridge=\"true\"><filled><disconnect/></filled></transfer></form>"), "{doc}");
    }
}
