//! A VoiceXML interpreter for the subset `phonetree export --format vxml` emits (see
//! `src/export/vxml.rs`): it plays a document against a caller's inputs and writes what the caller
//! hears, so a test can compare it with `simulate`'s transcript of the same inputs.
//!
//! Its parts: a small XML reader (elements, attributes, text, comments, the five entities), the
//! form interpretation of a form's items in order (`<block>`, `<field>` with a DTMF grammar,
//! `<transfer>`), the executable content the export uses (`prompt`, `value`, `say-as`, `audio`,
//! `var`, `assign`, `if`/`elseif`/`else`, `goto` (`next` or `expr`), `clear`, `reprompt`, `data`, `exit`,
//! `disconnect`, `catch`), and the ECMAScript expressions it writes: string, number and regular
//! expression literals (no flags), `undefined`, `true`, `false`, variables and properties (a JSON
//! answer's keys, a string's `length`), `+`, `==`, `!=`, `<`, `<=`, `>`, `>=`, `&&`, `||`, `!`,
//! unary `-`, parentheses, `encodeURIComponent`, `Number`, a `RegExp`'s `test` and a string's
//! `substring` and `replace`, each with ECMAScript's semantics (`ToNumber`, `ToBoolean`, loose
//! `==`, UTF-16 lengths). The platform's variables: the session's numbers and ids, and, when the
//! test gives a clock, the call's local time (`session.phonetree.local.*`, `.yesterday.*`).

use std::collections::HashMap;

/// Most forms one call enters: far beyond any explored path, it stops a document that loops.
const FORMS_MAX: usize = 10_000;

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

fn unescape(text: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        let end = rest[at..].find(';').ok_or_else(|| format!("unterminated entity in {text:?}"))?;
        out.push(match &rest[at + 1..at + end] {
            "amp" => '&',
            "lt" => '<',
            "gt" => '>',
            "quot" => '"',
            "apos" => '\'',
            other => return Err(format!("unknown entity &{other};")),
        });
        rest = &rest[at + end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Reads a document: its root element.
pub fn parse(doc: &str) -> Result<Element, String> {
    let mut stack: Vec<Element> = vec![Element { name: String::new(), attrs: vec![], children: vec![] }];
    let mut rest = doc;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix("<?") {
            rest = &after[after.find("?>").ok_or("unclosed <?")? + 2..];
        } else if let Some(after) = rest.strip_prefix("<!--") {
            rest = &after[after.find("-->").ok_or("unclosed comment")? + 3..];
        } else if let Some(after) = rest.strip_prefix("</") {
            let end = after.find('>').ok_or("unclosed end tag")?;
            let name = after[..end].trim();
            let done = stack.pop().ok_or("end tag without start")?;
            if done.name != name {
                return Err(format!("</{name}> closes <{}>", done.name));
            }
            stack.last_mut().ok_or("end tag closes the document")?.children.push(Xml::Element(done));
            rest = &after[end + 1..];
        } else if let Some(after) = rest.strip_prefix('<') {
            let (tag, empty, next) = tag(after)?;
            rest = next;
            if empty {
                stack.last_mut().ok_or("no parent")?.children.push(Xml::Element(tag));
            } else {
                stack.push(tag);
            }
        } else {
            let end = rest.find('<').unwrap_or(rest.len());
            let text = unescape(&rest[..end])?;
            stack.last_mut().ok_or("no parent")?.children.push(Xml::Text(text));
            rest = &rest[end..];
        }
    }
    let mut top = stack.pop().ok_or("no document")?;
    if !stack.is_empty() {
        return Err(format!("<{}> is not closed", top.name));
    }
    top.children.retain(|c| matches!(c, Xml::Element(_)));
    match top.children.pop() {
        Some(Xml::Element(root)) if top.children.is_empty() => Ok(root),
        _ => Err("not one root element".into()),
    }
}

/// A start tag after its `<`: the element, whether it is empty (`/>`), and the text after it.
fn tag(s: &str) -> Result<(Element, bool, &str), String> {
    let name_end = s.find(|c: char| c.is_whitespace() || c == '>' || c == '/').ok_or("unclosed tag")?;
    let mut el = Element { name: s[..name_end].to_string(), attrs: vec![], children: vec![] };
    let mut rest = s[name_end..].trim_start();
    loop {
        if let Some(after) = rest.strip_prefix("/>") {
            return Ok((el, true, after));
        }
        if let Some(after) = rest.strip_prefix('>') {
            return Ok((el, false, after));
        }
        let eq = rest.find('=').ok_or_else(|| format!("attribute without value in <{}>", el.name))?;
        let key = rest[..eq].trim().to_string();
        let after = rest[eq + 1..].trim_start();
        let quote = after.chars().next().ok_or("attribute without value")?;
        if quote != '"' && quote != '\'' {
            return Err(format!("unquoted attribute {key}"));
        }
        let end = after[1..].find(quote).ok_or("unclosed attribute")?;
        el.attrs.push((key, unescape(&after[1..1 + end])?));
        rest = after[end + 2..].trim_start();
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

#[derive(Debug, Clone, PartialEq)]
enum Value {
    Undefined,
    Bool(bool),
    Str(String),
    Num(f64),
    Json(serde_json::Value),
    /// A regular expression literal's body.
    Regex(String),
}

impl Value {
    fn text(&self) -> String {
        match self {
            Value::Undefined => "undefined".into(),
            Value::Str(s) => s.clone(),
            Value::Num(n) if n.fract() == 0.0 && n.abs() < 1e15 => format!("{}", *n as i64),
            Value::Num(n) => n.to_string(),
            Value::Json(v) => v.to_string(),
            Value::Bool(b) => b.to_string(),
            Value::Regex(re) => format!("/{re}/"),
        }
    }

    /// ECMAScript's `ToBoolean`.
    fn truthy(&self) -> bool {
        match self {
            Value::Undefined => false,
            Value::Bool(b) => *b,
            Value::Num(n) => *n != 0.0 && !n.is_nan(),
            Value::Str(s) => !s.is_empty(),
            Value::Json(_) | Value::Regex(_) => true,
        }
    }

    /// ECMAScript's `ToNumber` (`Number(v)`): a string is trimmed, empty is 0, a decimal literal
    /// its number, anything else `NaN`.
    fn number(&self) -> f64 {
        match self {
            Value::Num(n) => *n,
            Value::Bool(b) => f64::from(u8::from(*b)),
            Value::Str(s) => {
                let t = s.trim();
                let decimal = t.trim_start_matches(['+', '-']);
                if t.is_empty() {
                    0.0
                } else if decimal.starts_with(|c: char| c.is_ascii_digit() || c == '.')
                    && decimal.chars().all(|c| c.is_ascii_digit() || ".eE+-".contains(c))
                {
                    t.parse().unwrap_or(f64::NAN)
                } else {
                    f64::NAN
                }
            }
            Value::Undefined | Value::Json(_) | Value::Regex(_) => f64::NAN,
        }
    }

    fn from_json(v: &serde_json::Value) -> Value {
        match v {
            serde_json::Value::Null => Value::Undefined,
            serde_json::Value::String(s) => Value::Str(s.clone()),
            serde_json::Value::Number(n) => n.as_f64().map_or(Value::Undefined, Value::Num),
            serde_json::Value::Bool(b) => Value::Bool(*b),
            other => Value::Json(other.clone()),
        }
    }

    /// ECMAScript's loose `==` on the values the export compares.
    fn loose_eq(&self, other: &Value) -> bool {
        match (self, other) {
            (Value::Undefined, Value::Undefined) => true,
            (Value::Undefined, _) | (_, Value::Undefined) => false,
            (Value::Str(a), Value::Str(b)) => a == b,
            (Value::Json(_) | Value::Regex(_), _) | (_, Value::Json(_) | Value::Regex(_)) => {
                self.text() == other.text()
            }
            // A number or boolean on either side compares as numbers.
            (a, b) => a.number() == b.number(),
        }
    }
}

/// How executable content ended.
#[derive(Debug, Clone, PartialEq)]
enum Flow {
    Continue,
    Goto(String),
    Reprompt,
    /// `<exit/>`, `<disconnect/>` or the end of the inputs: the call is over (or waits).
    Stop,
}

/// Answers a `<data>` fetch: (form id, the `@` token of the inputs, URL) → the JSON answer, or
/// `None` for a failed fetch (`error.badfetch`).
pub type Fetch<'a> = dyn FnMut(&str, &str, &str) -> Option<serde_json::Value> + 'a;

struct Player<'d, 'f> {
    doc: &'d Element,
    inputs: std::slice::Iter<'d, String>,
    fetch: &'d mut Fetch<'f>,
    globals: HashMap<String, Value>,
    locals: HashMap<String, Value>,
    form: String,
    heard: Vec<Heard>,
}

/// Plays `doc` with `inputs` (keys, `-` for no input, `@...` answering the next `<data>`):
/// everything the caller hears, until the document ends or waits for an input there is not.
pub fn play(
    doc: &Element,
    session: &Session,
    inputs: &[String],
    fetch: &mut Fetch<'_>,
) -> Result<Vec<Heard>, String> {
    if doc.name != "vxml" || doc.attr("version") != Some("2.1") {
        return Err("not a VoiceXML 2.1 document".into());
    }
    let mut globals = HashMap::new();
    for (k, v) in [
        ("session.connection.remote.uri", &session.caller),
        ("session.connection.local.uri", &session.number),
        ("session.phonetree.session_id", &session.session_id),
        ("session.phonetree.call_id", &session.call_id),
    ] {
        globals.insert(k.to_string(), Value::Str(v.clone()));
    }
    if let Some(c) = &session.clock {
        for (k, v) in [
            ("local.weekday", Value::Num(f64::from(c.weekday))),
            ("local.minutes", Value::Num(f64::from(c.minutes))),
            ("local.date", Value::Str(c.date.clone())),
            ("yesterday.weekday", Value::Num(f64::from(c.yesterday_weekday))),
            ("yesterday.date", Value::Str(c.yesterday_date.clone())),
        ] {
            globals.insert(format!("session.phonetree.{k}"), v);
        }
    }
    let mut p = Player {
        doc,
        inputs: inputs.iter(),
        fetch,
        globals,
        locals: HashMap::new(),
        form: String::new(),
        heard: vec![],
    };
    for var in doc.elements().filter(|e| e.name == "var") {
        let value = match var.attr("expr") {
            Some(e) => p.eval(e)?,
            None => Value::Undefined,
        };
        p.globals.insert(var.attr("name").ok_or("<var> without name")?.to_string(), value);
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
    fn run_form(&mut self, form: &Element) -> Result<Flow, String> {
        self.locals.clear();
        self.form = form.attr("id").unwrap_or_default().to_string();
        for item in form.elements() {
            let flow = match item.name.as_str() {
                "var" => self.exec(std::slice::from_ref(&Xml::Element(item.clone())), form)?,
                "catch" => Flow::Continue,
                "block" => self.exec(&item.children, form)?,
                "field" => self.field(item, form)?,
                "transfer" => {
                    let dest = match (item.attr("dest"), item.attr("destexpr")) {
                        (Some(d), _) => d.to_string(),
                        (None, Some(e)) => self.eval(e)?.text(),
                        _ => return Err("<transfer> without dest".into()),
                    };
                    self.heard.push(Heard::Transfer(dest.strip_prefix("tel:").unwrap_or(&dest).to_string()));
                    // The bridged leg ends with the next webhook, whatever it carries.
                    match self.inputs.next() {
                        None => Flow::Stop,
                        Some(t) if t.starts_with('@') => return Err(format!("`{t}` answers no fetch")),
                        Some(_) => self.exec(
                            &item.child("filled").ok_or("<transfer> without <filled>")?.children,
                            form,
                        )?,
                    }
                }
                other => return Err(format!("<{other}> is not in the subset")),
            };
            if flow != Flow::Continue {
                return Ok(flow);
            }
        }
        // Falling off the end of a form ends the document.
        Ok(Flow::Stop)
    }

    fn field(&mut self, field: &Element, form: &Element) -> Result<Flow, String> {
        let name = field.attr("name").ok_or("<field> without name")?.to_string();
        let grammar = field.child("grammar").ok_or("<field> without <grammar>")?;
        let rule = grammar.child("rule").ok_or("<grammar> without <rule>")?;
        loop {
            // The prompts queued before the field collects: the last is said while keys are
            // captured, the ones before it are said first.
            let mut shown = Vec::new();
            for prompt in field.elements().filter(|e| e.name == "prompt") {
                let queued = match prompt.attr("cond") {
                    Some(c) => self.cond(c)?,
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
                Some(keys) => {
                    // 8x8 reports the keys with the completing `#`; the utterance is without it.
                    let keys = keys.trim().trim_end_matches('#').to_string();
                    let utterance = "application.lastresult$.utterance".to_string();
                    self.globals.insert(utterance, Value::Str(keys.clone()));
                    if matches(rule, &keys)? {
                        self.locals.insert(name.clone(), Value::Str(keys));
                        "filled"
                    } else {
                        "nomatch"
                    }
                }
            };
            let body = field.child(handler).ok_or_else(|| format!("<field> without <{handler}>"))?;
            match self.exec(&body.children, form)? {
                Flow::Continue | Flow::Reprompt => {
                    if self.locals.get(&name).is_some_and(|v| *v != Value::Undefined) {
                        return Ok(Flow::Continue);
                    }
                }
                other => return Ok(other),
            }
        }
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
                    (None, Some(e)) => self.eval(e)?.text(),
                    _ => return Err("<goto> without next".into()),
                }),
                "exit" => Flow::Stop,
                "disconnect" => {
                    self.heard.push(Heard::Hangup);
                    Flow::Stop
                }
                "reprompt" => Flow::Reprompt,
                "var" => {
                    let value = match el.attr("expr") {
                        Some(e) => self.eval(e)?,
                        None => Value::Undefined,
                    };
                    self.locals.insert(el.attr("name").ok_or("<var> without name")?.to_string(), value);
                    Flow::Continue
                }
                "assign" => {
                    let value = self.eval(el.attr("expr").ok_or("<assign> without expr")?)?;
                    let name = el.attr("name").ok_or("<assign> without name")?;
                    if self.locals.contains_key(name) {
                        self.locals.insert(name.to_string(), value);
                    } else if self.globals.contains_key(name) {
                        self.globals.insert(name.to_string(), value);
                    } else {
                        return Err(format!("<assign> to undeclared {name}"));
                    }
                    Flow::Continue
                }
                "clear" => {
                    for name in el.attr("namelist").unwrap_or_default().split_whitespace() {
                        self.locals.insert(name.to_string(), Value::Undefined);
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
                            Some(c) => self.cond(&c)?,
                            None => true,
                        };
                        if taken {
                            flow = self.exec(&body, form)?;
                            break;
                        }
                    }
                    flow
                }
                "data" => {
                    let url = match (el.attr("src"), el.attr("srcexpr")) {
                        (Some(s), _) => s.to_string(),
                        (None, Some(e)) => self.eval(e)?.text(),
                        _ => return Err("<data> without src".into()),
                    };
                    let token = match self.inputs.next() {
                        Some(t) if t.starts_with('@') => t.clone(),
                        other => {
                            return Err(format!(
                                "<data> at {} needs an `@` answer, got {other:?}",
                                self.form
                            ));
                        }
                    };
                    match (self.fetch)(&self.form, &token, &url) {
                        Some(json) => {
                            let name = el.attr("name").ok_or("<data> without name")?;
                            self.locals.insert(name.to_string(), Value::Json(json));
                            Flow::Continue
                        }
                        None => {
                            let catch = form
                                .elements()
                                .find(|c| c.name == "catch" && c.attr("event") == Some("error.badfetch"))
                                .ok_or("error.badfetch is not caught")?;
                            self.exec(&catch.children, form)?
                        }
                    }
                }
                other => return Err(format!("<{other}> is not in the subset")),
            };
            if flow != Flow::Continue {
                return Ok(flow);
            }
        }
        Ok(Flow::Continue)
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
                        (None, Some(x)) => self.eval(x)?.text(),
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
                    out.push_str(&self.eval(e.attr("expr").ok_or("<value> without expr")?)?.text())
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

    /// A variable: a local, a global, or a platform one (`session.*`, read by its dotted name).
    fn variable(&self, name: &str) -> Option<Value> {
        self.locals.get(name).or_else(|| self.globals.get(name)).cloned()
    }

    fn cond(&mut self, cond: &str) -> Result<bool, String> {
        Ok(self.eval(cond)?.truthy())
    }

    fn eval(&mut self, expr: &str) -> Result<Value, String> {
        let tokens = lex(expr)?;
        let mut parser = Parser { tokens: &tokens, at: 0 };
        let tree = parser.or()?;
        if parser.at != tokens.len() {
            return Err(format!("unexpected {:?} in `{expr}`", tokens[parser.at]));
        }
        self.value(&tree)
    }

    fn value(&self, e: &Expr) -> Result<Value, String> {
        Ok(match e {
            Expr::Lit(v) => v.clone(),
            Expr::Var(name) => self.variable(name).ok_or_else(|| format!("`{name}` is not declared"))?,
            Expr::Prop(base, prop) => {
                if let Some(v) = dotted(e).and_then(|path| self.variable(&path)) {
                    return Ok(v);
                }
                match self.value(base)? {
                    Value::Json(serde_json::Value::Object(map)) => {
                        map.get(prop).map_or(Value::Undefined, Value::from_json)
                    }
                    Value::Str(s) if prop == "length" => Value::Num(s.encode_utf16().count() as f64),
                    // ECMAScript throws a TypeError here; the export tests `undefined` first.
                    Value::Undefined => return Err(format!("property `{prop}` of undefined")),
                    _ => Value::Undefined,
                }
            }
            Expr::Call(f, args) => {
                let args = args.iter().map(|a| self.value(a)).collect::<Result<Vec<_>, _>>()?;
                match (f.as_str(), args.as_slice()) {
                    ("encodeURIComponent", [a]) => Value::Str(encode_uri_component(&a.text())),
                    ("Number", [a]) => Value::Num(a.number()),
                    _ => return Err(format!("`{f}` with {} arguments is not in the subset", args.len())),
                }
            }
            Expr::Method(base, method, args) => {
                let base = self.value(base)?;
                let args = args.iter().map(|a| self.value(a)).collect::<Result<Vec<_>, _>>()?;
                match (&base, method.as_str(), args.as_slice()) {
                    (Value::Regex(re), "test", [a]) => Value::Bool(regex(re)?.is_match(&a.text())),
                    (Value::Str(s), "substring", [a, b]) => {
                        let units: Vec<u16> = s.encode_utf16().collect();
                        let at = |v: &Value| {
                            let n = v.number();
                            if n.is_nan() { 0 } else { n.clamp(0.0, units.len() as f64) as usize }
                        };
                        let (a, b) = (at(a), at(b));
                        Value::Str(String::from_utf16_lossy(&units[a.min(b)..a.max(b)]))
                    }
                    (Value::Str(s), "replace", [Value::Regex(re), with]) => {
                        Value::Str(regex(re)?.replacen(s, 1, regex::NoExpand(&with.text())).into_owned())
                    }
                    _ => return Err(format!("`.{method}` on {base:?} is not in the subset")),
                }
            }
            Expr::Not(a) => Value::Bool(!self.value(a)?.truthy()),
            Expr::Neg(a) => Value::Num(-self.value(a)?.number()),
            Expr::Bin(a, op, b) => {
                let left = self.value(a)?;
                match op.as_str() {
                    "&&" if !left.truthy() => return Ok(left),
                    "||" if left.truthy() => return Ok(left),
                    "&&" | "||" => return self.value(b),
                    _ => {}
                }
                let right = self.value(b)?;
                match op.as_str() {
                    "+" => match (left, right) {
                        (Value::Num(a), Value::Num(b)) => Value::Num(a + b),
                        (a, b) => Value::Str(a.text() + &b.text()),
                    },
                    "==" => Value::Bool(left.loose_eq(&right)),
                    "!=" => Value::Bool(!left.loose_eq(&right)),
                    op => {
                        let order = match (&left, &right) {
                            (Value::Str(a), Value::Str(b)) => Some(a.cmp(b)),
                            (a, b) => a.number().partial_cmp(&b.number()),
                        };
                        Value::Bool(order.is_some_and(|o| match op {
                            "<" => o.is_lt(),
                            "<=" => o.is_le(),
                            ">" => o.is_gt(),
                            _ => o.is_ge(),
                        }))
                    }
                }
            }
        })
    }
}

/// A regular expression literal's body as a Rust regex (`\/` is `/`).
fn regex(body: &str) -> Result<regex::Regex, String> {
    regex::Regex::new(&body.replace("\\/", "/")).map_err(|e| e.to_string())
}

/// `a.b.c` for a variable and its properties.
fn dotted(e: &Expr) -> Option<String> {
    match e {
        Expr::Var(name) => Some(name.clone()),
        Expr::Prop(base, prop) => Some(format!("{}.{prop}", dotted(base)?)),
        _ => None,
    }
}

/// ECMAScript's `encodeURIComponent`.
fn encode_uri_component(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.!~*'()".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// An expression of the subset.
#[derive(Debug, Clone)]
enum Expr {
    Lit(Value),
    Var(String),
    Prop(Box<Expr>, String),
    /// A function of the subset: `encodeURIComponent`, `Number`.
    Call(String, Vec<Expr>),
    /// A method of the subset: a regular expression's `test`, a string's `substring` and `replace`.
    Method(Box<Expr>, String, Vec<Expr>),
    Not(Box<Expr>),
    Neg(Box<Expr>),
    Bin(Box<Expr>, String, Box<Expr>),
}

/// Precedence climbing over the subset: `||` < `&&` < comparison < `+` < unary `!`/`-` <
/// property, call.
struct Parser<'t> {
    tokens: &'t [Token],
    at: usize,
}

impl Parser<'_> {
    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.at).cloned();
        self.at += 1;
        t
    }

    fn eat(&mut self, want: &Token) -> bool {
        let found = self.tokens.get(self.at) == Some(want);
        if found {
            self.at += 1;
        }
        found
    }

    fn op(&mut self, ops: &[&str]) -> Option<String> {
        match self.tokens.get(self.at) {
            Some(Token::Op(op)) if ops.contains(&op.as_str()) => {
                self.at += 1;
                Some(op.clone())
            }
            _ => None,
        }
    }

    fn binary(
        &mut self,
        ops: &[&str],
        once: bool,
        operand: fn(&mut Self) -> Result<Expr, String>,
    ) -> Result<Expr, String> {
        let mut left = operand(self)?;
        while let Some(op) = self.op(ops) {
            left = Expr::Bin(Box::new(left), op, Box::new(operand(self)?));
            if once {
                break;
            }
        }
        Ok(left)
    }

    fn or(&mut self) -> Result<Expr, String> {
        self.binary(&["||"], false, Self::and)
    }

    fn and(&mut self) -> Result<Expr, String> {
        self.binary(&["&&"], false, Self::compare)
    }

    fn compare(&mut self) -> Result<Expr, String> {
        self.binary(&["==", "!=", "<", "<=", ">", ">="], true, Self::sum)
    }

    fn sum(&mut self) -> Result<Expr, String> {
        self.binary(&["+"], false, Self::unary)
    }

    fn unary(&mut self) -> Result<Expr, String> {
        if self.op(&["!"]).is_some() {
            return Ok(Expr::Not(Box::new(self.unary()?)));
        }
        if self.op(&["-"]).is_some() {
            return Ok(Expr::Neg(Box::new(self.unary()?)));
        }
        self.postfix()
    }

    fn args(&mut self) -> Result<Vec<Expr>, String> {
        let mut args = Vec::new();
        if self.eat(&Token::Close) {
            return Ok(args);
        }
        loop {
            args.push(self.or()?);
            if self.eat(&Token::Close) {
                return Ok(args);
            }
            if !self.eat(&Token::Comma) {
                return Err("`,` or `)` expected".into());
            }
        }
    }

    fn postfix(&mut self) -> Result<Expr, String> {
        let mut e = match self.next() {
            Some(Token::Str(s)) => Expr::Lit(Value::Str(s)),
            Some(Token::Num(n)) => Expr::Lit(Value::Num(n)),
            Some(Token::Regex(re)) => Expr::Lit(Value::Regex(re)),
            Some(Token::Open) => {
                let e = self.or()?;
                if !self.eat(&Token::Close) {
                    return Err("`)` expected".into());
                }
                e
            }
            Some(Token::Name(n)) if n == "undefined" => Expr::Lit(Value::Undefined),
            Some(Token::Name(n)) if n == "true" || n == "false" => Expr::Lit(Value::Bool(n == "true")),
            Some(Token::Name(n)) if self.eat(&Token::Open) => Expr::Call(n, self.args()?),
            Some(Token::Name(n)) => Expr::Var(n),
            other => return Err(format!("no term at {other:?}")),
        };
        while self.eat(&Token::Dot) {
            let Some(Token::Name(name)) = self.next() else { return Err("a name after `.` expected".into()) };
            e = if self.eat(&Token::Open) {
                Expr::Method(Box::new(e), name, self.args()?)
            } else {
                Expr::Prop(Box::new(e), name)
            };
        }
        Ok(e)
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Str(String),
    Num(f64),
    Name(String),
    /// A regular expression literal's body (without flags: the subset has none).
    Regex(String),
    Op(String),
    Open,
    Close,
    Dot,
    Comma,
}

fn lex(s: &str) -> Result<Vec<Token>, String> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    while let Some(&c) = chars.peek() {
        chars.next();
        match c {
            ' ' => {}
            '\'' => {
                let mut lit = String::new();
                loop {
                    match chars.next().ok_or_else(|| format!("unclosed string in `{s}`"))? {
                        '\'' => break,
                        '\\' => lit.push(match chars.next().ok_or("dangling \\")? {
                            'n' => '\n',
                            'r' => '\r',
                            c => c,
                        }),
                        c => lit.push(c),
                    }
                }
                out.push(Token::Str(lit));
            }
            // The subset has no division: `/` starts a regular expression literal.
            '/' => {
                let (mut body, mut class) = (String::new(), false);
                loop {
                    let c = chars.next().ok_or_else(|| format!("unclosed regular expression in `{s}`"))?;
                    match c {
                        '/' if !class => break,
                        '\\' => {
                            body.push(c);
                            body.push(chars.next().ok_or("dangling \\")?);
                            continue;
                        }
                        '[' => class = true,
                        ']' => class = false,
                        _ => {}
                    }
                    body.push(c);
                }
                if chars.peek().is_some_and(|c| c.is_ascii_alphabetic()) {
                    return Err(format!("regular expression flags are not in the subset (`{s}`)"));
                }
                out.push(Token::Regex(body));
            }
            '0'..='9' => {
                let mut n = c.to_string();
                while let Some(&d) = chars.peek().filter(|d| d.is_ascii_digit() || **d == '.') {
                    n.push(d);
                    chars.next();
                }
                out.push(Token::Num(n.parse().map_err(|_| format!("bad number {n}"))?));
            }
            '(' => out.push(Token::Open),
            ')' => out.push(Token::Close),
            '.' => out.push(Token::Dot),
            ',' => out.push(Token::Comma),
            '+' | '-' => out.push(Token::Op(c.to_string())),
            '<' | '>' | '=' | '!' => {
                let mut op = c.to_string();
                if chars.next_if_eq(&'=').is_some() {
                    op.push('=');
                }
                if op == "=" {
                    return Err(format!("assignment is not in the subset (`{s}`)"));
                }
                out.push(Token::Op(op));
            }
            '&' | '|' => {
                if chars.next() != Some(c) {
                    return Err(format!("`{c}` without `{c}` in `{s}`"));
                }
                out.push(Token::Op(format!("{c}{c}")));
            }
            c if c.is_ascii_alphabetic() || c == '_' || c == '$' => {
                let mut name = c.to_string();
                while let Some(&d) = chars.peek().filter(|d| d.is_ascii_alphanumeric() || "_$".contains(**d))
                {
                    name.push(d);
                    chars.next();
                }
                out.push(Token::Name(name));
            }
            c => return Err(format!("`{c}` is not in the expression subset (`{s}`)")),
        }
    }
    Ok(out)
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
