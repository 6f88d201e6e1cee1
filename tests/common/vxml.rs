//! A VoiceXML player for what `phonetree export --format vxml` emits (see `src/export/vxml.rs`):
//! it plays a document against a caller's inputs and writes what the caller hears, so a test can
//! compare it with `simulate`'s transcript of the same inputs.
//!
//! What checks what: the XML is read by a real parser (`roxmltree`: well-formedness, entities,
//! namespaces; every element must be VoiceXML's or, inside `<grammar>`, SRGS's); every ECMAScript
//! expression (`expr`, `cond`, `srcexpr`, `destexpr`, `<var>`, `<assign>`, `<clear>`, `<value>`,
//! `<audio expr>`, `goto expr`) runs in Node.js itself ([`Ecma`], `tests/data/vxml/scopes.cjs`),
//! where VoiceXML's scopes (session, application, document, dialog, anonymous) are real objects
//! and a `<data>` answer is parsed by `JSON.parse`. Only what no real engine here provides is
//! written in this file: the form interpretation algorithm (form items in order, a `<field>`'s
//! prompts, input and `<filled>`/`<nomatch>`/`<noinput>`, a bridged `<transfer>`, `<catch>` of
//! `error.badfetch`, the executable content's control flow: `if`/`elseif`/`else`, `goto`, `exit`,
//! `disconnect`, `reprompt`, `data`) and the DTMF grammars the export writes (`<one-of>`, `<item>`,
//! `<item repeat="m-n">`). The platform's variables: the session's numbers and ids, and, when the
//! test gives a clock, the call's local time (`session.phonetree.local.*`, `.yesterday.*`).

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use serde_json::{Value, json};

use super::needs::{Need, needs_tool};

/// Most forms one call enters: far beyond any explored path, it stops a document that loops.
const FORMS_MAX: usize = 10_000;
/// Most form items one form visit selects: far beyond any form the export writes (a field is
/// selected again after each re-prompt), it stops a form that loops.
const SELECTIONS_MAX: usize = 10_000;
/// The VoiceXML namespace.
const VXML_NS: &str = "http://www.w3.org/2001/vxml";
/// The SRGS grammar namespace.
const SRGS_NS: &str = "http://www.w3.org/2001/06/grammar";

#[derive(Debug, Clone)]
pub struct Element {
    pub name: String,
    pub attrs: Vec<(String, String)>,
    pub children: Vec<Xml>,
}

#[derive(Debug, Clone)]
pub enum Xml {
    Element(Element),
    Text(String),
}

impl Element {
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    pub fn elements(&self) -> impl Iterator<Item = &Element> {
        self.children.iter().filter_map(|c| if let Xml::Element(e) = c { Some(e) } else { None })
    }

    fn child(&self, name: &str) -> Option<&Element> {
        self.elements().find(|e| e.name == name)
    }
}

/// Reads a document with `roxmltree`: its root element, every element checked to be in
/// VoiceXML's namespace (SRGS's inside a `<grammar>`), comments and processing instructions left
/// out.
pub fn parse(doc: &str) -> Result<Element, String> {
    let parsed = roxmltree::Document::parse(doc).map_err(|e| format!("not well-formed XML: {e}"))?;
    element(parsed.root_element(), VXML_NS)
}

/// `node` as an [`Element`]; `ns` is the namespace it must be in.
fn element(node: roxmltree::Node<'_, '_>, ns: &str) -> Result<Element, String> {
    let name = node.tag_name().name().to_string();
    let ns = if name == "grammar" { SRGS_NS } else { ns };
    if node.tag_name().namespace() != Some(ns) {
        return Err(format!("<{name}> is in namespace {:?}, not {ns}", node.tag_name().namespace()));
    }
    let attrs = node
        .attributes()
        .filter(|a| a.namespace().is_none())
        .map(|a| (a.name().to_string(), a.value().to_string()))
        .collect();
    let mut children = Vec::new();
    for child in node.children() {
        if child.is_element() {
            children.push(Xml::Element(element(child, ns)?));
        } else if let Some(text) = child.text().filter(|_| child.is_text()) {
            children.push(Xml::Text(text.to_string()));
        }
    }
    Ok(Element { name, attrs, children })
}

/// Node.js evaluating a document's ECMAScript (`tests/data/vxml/scopes.cjs`): one long-lived
/// child per test, one JSON line per request and per answer, the scopes held as real objects.
pub struct Ecma {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Ecma {
    /// Starts `node` with the scopes script, or `None` after one `skipped:` line where there is
    /// no Node.js (a failure under `PHONETREE_REQUIRE_NODE=1`).
    pub fn start() -> Option<Ecma> {
        if !needs_tool(Need::Node, "node", "--version") {
            return None;
        }
        let script = super::repo().join("tests/data/vxml/scopes.cjs");
        let mut child = Command::new("node")
            .arg(&script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("node {}: {e}", script.display()));
        let stdin = child.stdin.take().expect("node's stdin is piped");
        let stdout = BufReader::new(child.stdout.take().expect("node's stdout is piped"));
        Some(Ecma { child, stdin, stdout })
    }

    /// One request and its answer's value (`{"ok": v}`), or the engine's error (`{"error": m}`).
    fn ask(&mut self, request: Value) -> Result<Value, String> {
        let mut line = request.to_string();
        line.push('\n');
        self.stdin.write_all(line.as_bytes()).map_err(|e| format!("node's stdin: {e}"))?;
        let mut answer = String::new();
        match self.stdout.read_line(&mut answer) {
            Ok(0) => return Err(format!("node exited before answering {request}")),
            Ok(_) => {}
            Err(e) => return Err(format!("node's stdout: {e}")),
        }
        let mut answer: Value =
            serde_json::from_str(&answer).map_err(|e| format!("node answered {answer:?}: {e}"))?;
        if let Some(error) = answer.get("error") {
            return Err(format!("ECMAScript: {} in {request}", error.as_str().unwrap_or_default()));
        }
        answer.get_mut("ok").map(Value::take).ok_or_else(|| format!("node answered {answer}"))
    }

    /// An expression's value as a string (ECMAScript's `String(v)`).
    fn string(&mut self, expr: &str) -> Result<String, String> {
        match self.ask(json!({ "op": "string", "expr": expr }))? {
            Value::String(s) => Ok(s),
            other => Err(format!("`{expr}` gave {other}, not a string")),
        }
    }

    /// A condition (ECMAScript's `ToBoolean`).
    fn cond(&mut self, expr: &str) -> Result<bool, String> {
        self.ask(json!({ "op": "cond", "expr": expr }))?
            .as_bool()
            .ok_or_else(|| format!("`{expr}`: not a boolean"))
    }

    /// Whether `name` holds a value other than `undefined`.
    fn defined(&mut self, name: &str) -> Result<bool, String> {
        self.ask(json!({ "op": "defined", "name": name }))?
            .as_bool()
            .ok_or_else(|| format!("{name}: not a boolean"))
    }

    /// `<var name [expr]>` in `scope`.
    fn var(&mut self, scope: &str, name: &str, expr: Option<&str>) -> Result<(), String> {
        let mut request = json!({ "op": "var", "scope": scope, "name": name });
        if let Some(e) = expr {
            request["expr"] = json!(e);
        }
        self.ask(request).map(drop)
    }

    /// The platform puts a JSON value in a variable of `scope`.
    fn put(&mut self, scope: &str, name: &str, value: Value) -> Result<(), String> {
        self.ask(json!({ "op": "put", "scope": scope, "name": name, "value": value })).map(drop)
    }

    /// A request that answers `true`.
    fn op(&mut self, request: Value) -> Result<(), String> {
        self.ask(request).map(drop)
    }
}

impl Drop for Ecma {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the caller hears or what happens to the call, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Heard {
    /// Text spoken (a `say`).
    Say(String),
    /// Text spoken while keys are captured (a `sayAndCapture`).
    Ask(String),
    /// An audio file played.
    Play(String),
    /// Bridged to a number.
    Transfer(String),
    Hangup,
}

/// The session a document plays in.
pub struct Session {
    pub caller: String,
    pub number: String,
    pub session_id: String,
    pub call_id: String,
    /// The call's local time in the machine's timezone, for its route rules on time.
    pub clock: Option<Clock>,
    /// Each split node's variant for this call (`session.phonetree.splits['NODE']`), as the
    /// platform computes the documented hash.
    pub splits: Vec<(String, String)>,
}

/// The local time the platform hands a document (`session.phonetree.local.*` and
/// `session.phonetree.yesterday.*`).
pub struct Clock {
    /// 0 Monday to 6 Sunday.
    pub weekday: u8,
    /// Since local midnight.
    pub minutes: u16,
    /// `YYYY-MM-DD`.
    pub date: String,
    pub yesterday_weekday: u8,
    pub yesterday_date: String,
}

impl Session {
    /// The session scope's variables.
    fn variables(&self) -> Value {
        let mut phonetree = json!({ "session_id": self.session_id, "call_id": self.call_id });
        if let Some(c) = &self.clock {
            phonetree["local"] = json!({ "weekday": c.weekday, "minutes": c.minutes, "date": c.date });
            phonetree["yesterday"] = json!({ "weekday": c.yesterday_weekday, "date": c.yesterday_date });
        }
        let splits: serde_json::Map<String, Value> =
            self.splits.iter().map(|(node, variant)| (node.clone(), json!(variant))).collect();
        phonetree["splits"] = Value::Object(splits);
        json!({
            "connection": { "remote": { "uri": self.caller }, "local": { "uri": self.number } },
            "phonetree": phonetree,
        })
    }
}

/// How executable content ended.
#[derive(Debug, Clone, PartialEq)]
enum Flow {
    Continue,
    Goto(String),
    /// Back to the form interpretation algorithm's selection of the next item: `<reprompt/>`
    /// (which plays an unfilled field's prompts again), or a `<catch>` that went nowhere.
    Select,
    /// `<exit/>`, `<disconnect/>` or the end of the inputs: the call is over (or waits).
    Stop,
}

/// Answers a `<data>` fetch: (form id, the `@` token of the inputs, URL) → the answer's body, or
/// `None` for a failed fetch (no answer, not 2xx): `error.badfetch`, as is a body that is not JSON.
pub type Fetch<'a> = dyn FnMut(&str, &str, &str) -> Option<String> + 'a;

struct Player<'d, 'f> {
    js: &'d mut Ecma,
    inputs: std::slice::Iter<'d, String>,
    fetch: &'d mut Fetch<'f>,
    form: String,
    heard: Vec<Heard>,
}

/// Plays `doc` with `inputs` (keys, `-` for no input, `@...` answering the next `<data>`), its
/// ECMAScript in `js`: everything the caller hears, until the document ends or waits for an input
/// there is not.
pub fn play(
    js: &mut Ecma,
    doc: &Element,
    session: &Session,
    inputs: &[String],
    fetch: &mut Fetch<'_>,
) -> Result<Vec<Heard>, String> {
    if doc.name != "vxml" || doc.attr("version") != Some("2.1") {
        return Err("not a VoiceXML 2.1 document".into());
    }
    js.op(json!({ "op": "session", "variables": session.variables() }))?;
    let mut p = Player { js, inputs: inputs.iter(), fetch, form: String::new(), heard: vec![] };
    for var in doc.elements().filter(|e| e.name == "var") {
        p.js.var("document", var.attr("name").ok_or("<var> without name")?, var.attr("expr"))?;
    }
    let mut form = doc.child("form").ok_or("no <form>")?;
    for _ in 0..FORMS_MAX {
        match p.run_form(form)? {
            Flow::Goto(next) => {
                let id = next.strip_prefix('#').ok_or_else(|| format!("goto {next} leaves the document"))?;
                form = doc
                    .elements()
                    .find(|f| f.name == "form" && f.attr("id") == Some(id))
                    .ok_or_else(|| format!("no form {id}"))?;
            }
            _ => return Ok(p.heard),
        }
    }
    Err(format!("more than {FORMS_MAX} forms entered"))
}

impl Player<'_, '_> {
    /// A form's visit: its variables and item variables initialised in a new dialog scope, then
    /// the form interpretation algorithm's loop: select the first item not yet done (a `<block>`
    /// not executed, a `<field>` or `<transfer>` whose variable is `undefined`), collect it and
    /// run its handlers, until one leaves the form or none is left (the document ends).
    fn run_form(&mut self, form: &Element) -> Result<Flow, String> {
        self.js.op(json!({ "op": "form" }))?;
        self.form = form.attr("id").unwrap_or_default().to_string();
        for item in form.elements() {
            match item.name.as_str() {
                "var" => self.js.var(
                    "dialog",
                    item.attr("name").ok_or("<var> without name")?,
                    item.attr("expr"),
                )?,
                "field" | "transfer" => {
                    let name = item.attr("name").ok_or_else(|| format!("<{}> without name", item.name))?;
                    self.js.var("dialog", name, None)?;
                }
                "block" | "catch" => {}
                other => return Err(format!("<{other}> is not in the subset")),
            }
        }
        let items: Vec<&Element> =
            form.elements().filter(|e| matches!(e.name.as_str(), "block" | "field" | "transfer")).collect();
        let mut executed = vec![false; items.len()];
        for _ in 0..SELECTIONS_MAX {
            let mut selected = None;
            for (i, item) in items.iter().enumerate() {
                let done = match item.name.as_str() {
                    "block" => executed[i],
                    _ => self.js.defined(item.attr("name").unwrap_or_default())?,
                };
                if !done {
                    selected = Some(i);
                    break;
                }
            }
            // No item left: falling off the end of a form ends the document.
            let Some(i) = selected else { return Ok(Flow::Stop) };
            let item = items[i];
            let flow = match item.name.as_str() {
                "block" => {
                    executed[i] = true;
                    self.handler(&item.children, form)?
                }
                "field" => self.field(item, form)?,
                _ => self.transfer(item, form)?,
            };
            match flow {
                Flow::Continue | Flow::Select => {}
                other => return Ok(other),
            }
        }
        Err(format!("more than {SELECTIONS_MAX} items selected in form {}", self.form))
    }

    /// A bridged `<transfer>`: the call bridged to its destination; the bridged leg ends with the
    /// next webhook, whatever it carries, which fills its variable and runs its `<filled>`.
    fn transfer(&mut self, item: &Element, form: &Element) -> Result<Flow, String> {
        let dest = match (item.attr("dest"), item.attr("destexpr")) {
            (Some(d), _) => d.to_string(),
            (None, Some(e)) => self.js.string(e)?,
            _ => return Err("<transfer> without dest".into()),
        };
        self.heard.push(Heard::Transfer(dest.strip_prefix("tel:").unwrap_or(&dest).to_string()));
        match self.inputs.next() {
            None => Ok(Flow::Stop),
            Some(t) if t.starts_with('@') => Err(format!("`{t}` answers no fetch")),
            Some(_) => {
                let name = item.attr("name").unwrap_or_default();
                self.js.put("dialog", name, json!("far_end_disconnect"))?;
                let filled = item.child("filled").ok_or("<transfer> without <filled>")?;
                self.handler(&filled.children, form)
            }
        }
    }

    /// A `<field>` selected: its prompts queued (each `cond` tested), one input collected, and the
    /// handler it throws run: `<filled>` (its variable set first), `<nomatch>` or `<noinput>`.
    fn field(&mut self, field: &Element, form: &Element) -> Result<Flow, String> {
        let name = field.attr("name").ok_or("<field> without name")?.to_string();
        let grammar = field.child("grammar").ok_or("<field> without <grammar>")?;
        let rule = grammar.child("rule").ok_or("<grammar> without <rule>")?;
        // The prompts queued before the field collects: the last is said while keys are
        // captured, the ones before it are said first.
        let mut shown = Vec::new();
        for prompt in field.elements().filter(|e| e.name == "prompt") {
            let queued = match prompt.attr("cond") {
                Some(c) => self.js.cond(c)?,
                None => true,
            };
            if queued {
                shown.push(self.text(&prompt.children)?);
            }
        }
        let ask = shown.pop().ok_or("a <field> without a prompt")?;
        self.heard.extend(shown.into_iter().map(Heard::Say));
        self.heard.push(Heard::Ask(ask));
        let handler = match self.inputs.next() {
            None => return Ok(Flow::Stop),
            Some(t) if t.starts_with('@') => return Err(format!("`{t}` answers no fetch")),
            Some(t) if t == "-" => "noinput",
            // Only the completing `#` (the field's termchar) with nothing before it: no input, as
            // phonetree's engine reads it.
            Some(t) if t.trim().trim_end_matches('#').is_empty() => "noinput",
            Some(keys) => {
                // 8x8 reports the keys with the completing `#`; the utterance is without it.
                let keys = keys.trim().trim_end_matches('#').to_string();
                self.js.put("application", "lastresult$", json!({ "utterance": keys }))?;
                if matches(rule, &keys)? {
                    self.js.put("dialog", &name, json!(keys))?;
                    "filled"
                } else {
                    "nomatch"
                }
            }
        };
        let body = field.child(handler).ok_or_else(|| format!("<field> without <{handler}>"))?;
        self.handler(&body.children, form)
    }

    /// A `<block>`, `<filled>` or `<catch>` (`<nomatch>`, `<noinput>`): its executable content in a
    /// new anonymous scope.
    fn handler(&mut self, content: &[Xml], form: &Element) -> Result<Flow, String> {
        self.js.op(json!({ "op": "anonymous" }))?;
        self.exec(content, form)
    }

    /// Runs executable content.
    fn exec(&mut self, content: &[Xml], form: &Element) -> Result<Flow, String> {
        for el in content.iter().filter_map(|c| if let Xml::Element(e) = c { Some(e) } else { None }) {
            let flow = match el.name.as_str() {
                "prompt" => {
                    self.prompt(&el.children)?;
                    Flow::Continue
                }
                "goto" => Flow::Goto(match (el.attr("next"), el.attr("expr")) {
                    (Some(next), _) => next.to_string(),
                    (None, Some(e)) => self.js.string(e)?,
                    _ => return Err("<goto> without next".into()),
                }),
                "exit" => Flow::Stop,
                "disconnect" => {
                    self.heard.push(Heard::Hangup);
                    Flow::Stop
                }
                "reprompt" => Flow::Select,
                "var" => {
                    self.js.var(
                        "anonymous",
                        el.attr("name").ok_or("<var> without name")?,
                        el.attr("expr"),
                    )?;
                    Flow::Continue
                }
                "assign" => {
                    let name = el.attr("name").ok_or("<assign> without name")?;
                    let expr = el.attr("expr").ok_or("<assign> without expr")?;
                    self.js.op(json!({ "op": "assign", "name": name, "expr": expr }))?;
                    Flow::Continue
                }
                "clear" => {
                    for name in el.attr("namelist").unwrap_or_default().split_whitespace() {
                        self.js.op(json!({ "op": "clear", "name": name }))?;
                    }
                    Flow::Continue
                }
                "if" => {
                    // Branches: the `if`'s own condition, then one per `elseif`, and `else`.
                    let mut branches: Vec<(Option<String>, Vec<Xml>)> =
                        vec![(Some(el.attr("cond").ok_or("<if> without cond")?.to_string()), vec![])];
                    for c in &el.children {
                        match c {
                            Xml::Element(e) if e.name == "elseif" => branches.push((
                                Some(e.attr("cond").ok_or("<elseif> without cond")?.to_string()),
                                vec![],
                            )),
                            Xml::Element(e) if e.name == "else" => branches.push((None, vec![])),
                            c => branches.last_mut().ok_or("no branch")?.1.push(c.clone()),
                        }
                    }
                    let mut flow = Flow::Continue;
                    for (cond, body) in branches {
                        let taken = match cond {
                            Some(c) => self.js.cond(&c)?,
                            None => true,
                        };
                        if taken {
                            flow = self.exec(&body, form)?;
                            break;
                        }
                    }
                    flow
                }
                "data" => self.data(el, form)?,
                other => return Err(format!("<{other}> is not in the subset")),
            };
            if flow != Flow::Continue {
                return Ok(flow);
            }
        }
        Ok(Flow::Continue)
    }

    /// `<data>`: the fetch answered by the next `@` input; its body parsed as JSON by the engine
    /// into the anonymous scope, or `error.badfetch` thrown to the form's `<catch>`.
    fn data(&mut self, el: &Element, form: &Element) -> Result<Flow, String> {
        let url = match (el.attr("src"), el.attr("srcexpr")) {
            (Some(s), _) => s.to_string(),
            (None, Some(e)) => self.js.string(e)?,
            _ => return Err("<data> without src".into()),
        };
        let token = match self.inputs.next() {
            Some(t) if t.starts_with('@') => t.clone(),
            other => return Err(format!("<data> at {} needs an `@` answer, got {other:?}", self.form)),
        };
        let name = el.attr("name").ok_or("<data> without name")?;
        let parsed = match (self.fetch)(&self.form, &token, &url) {
            Some(body) => self.js.ask(json!({ "op": "data", "name": name, "body": body }))? == json!(true),
            None => false,
        };
        if parsed {
            return Ok(Flow::Continue);
        }
        let catch = form
            .elements()
            .find(|c| c.name == "catch" && c.attr("event") == Some("error.badfetch"))
            .ok_or("error.badfetch is not caught")?;
        // The event ends the content that threw it; after its handler the algorithm selects again.
        match self.handler(&catch.children, form)? {
            Flow::Continue => Ok(Flow::Select),
            other => Ok(other),
        }
    }

    /// A `<prompt>` outside a field: one `Say` for its text, or with `<audio>`s in it, the text
    /// between them (blank text left out) and a `Play` per audio, in order.
    fn prompt(&mut self, content: &[Xml]) -> Result<(), String> {
        let has_audio = content.iter().any(|c| matches!(c, Xml::Element(e) if e.name == "audio"));
        if !has_audio {
            let text = self.text(content)?;
            self.heard.push(Heard::Say(text));
            return Ok(());
        }
        let mut text = String::new();
        for c in content {
            match c {
                Xml::Element(e) if e.name == "audio" => {
                    if !text.trim().is_empty() {
                        self.heard.push(Heard::Say(std::mem::take(&mut text)));
                    }
                    text.clear();
                    let src = match (e.attr("src"), e.attr("expr")) {
                        (Some(s), _) => s.to_string(),
                        (None, Some(x)) => self.js.string(x)?,
                        _ => return Err("<audio> without src".into()),
                    };
                    self.heard.push(Heard::Play(src));
                }
                c => text.push_str(&self.text(std::slice::from_ref(c))?),
            }
        }
        if !text.trim().is_empty() {
            self.heard.push(Heard::Say(text));
        }
        Ok(())
    }

    /// Prompt text: literal text, `<value>`s, `<say-as interpret-as="digits">` read key by key.
    fn text(&mut self, content: &[Xml]) -> Result<String, String> {
        let mut out = String::new();
        for c in content {
            match c {
                Xml::Text(t) => out.push_str(t),
                Xml::Element(e) if e.name == "value" => {
                    out.push_str(&self.js.string(e.attr("expr").ok_or("<value> without expr")?)?)
                }
                Xml::Element(e) if e.name == "say-as" && e.attr("interpret-as") == Some("digits") => {
                    let inner = self.text(&e.children)?;
                    out.push_str(&phonetree::machine::template::spoken(&inner));
                }
                Xml::Element(e) => return Err(format!("<{}> in a prompt is not in the subset", e.name)),
            }
        }
        Ok(out)
    }
}

/// Whether a DTMF grammar rule takes `keys`.
fn matches(rule: &Element, keys: &str) -> Result<bool, String> {
    takes(rule.elements().next().ok_or("empty <rule>")?, keys)
}

/// Whether a grammar element takes `keys`: one of a `<one-of>`'s items, an item's keys (separated
/// by spaces), or between m and n keys of an `<item repeat="m-n">`'s `<one-of>`.
fn takes(top: &Element, keys: &str) -> Result<bool, String> {
    let item_keys = |item: &Element| -> String {
        item.children
            .iter()
            .filter_map(|c| if let Xml::Text(t) = c { Some(t.replace(' ', "")) } else { None })
            .collect()
    };
    match top.name.as_str() {
        "one-of" => {
            for item in top.elements() {
                if takes(item, keys)? {
                    return Ok(true);
                }
            }
            Ok(false)
        }
        "item" if top.attr("repeat").is_none() => Ok(item_keys(top) == keys),
        "item" => {
            let repeat = top.attr("repeat").ok_or("<item> without repeat")?;
            let (min, max) = repeat.split_once('-').ok_or("repeat is not m-n")?;
            let (min, max): (usize, usize) =
                (min.parse().map_err(|_| "bad repeat")?, max.parse().map_err(|_| "bad repeat")?);
            let alphabet: Vec<String> =
                top.child("one-of").ok_or("repeat without <one-of>")?.elements().map(item_keys).collect();
            let n = keys.chars().count();
            Ok((min..=max).contains(&n) && keys.chars().all(|k| alphabet.contains(&k.to_string())))
        }
        other => Err(format!("<{other}> in a grammar is not in the subset")),
    }
}
