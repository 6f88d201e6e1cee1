//! Script nodes without I/O: the HTTP request a script asks for (an effect the driver performs),
//! the answer it is fed back, and how an answer picks the branch and sets call variables.

use crate::machine::{Edge, RequestTemplate, Script, Stored};

/// Most bytes of an answer body the engine reads: an API answer that routes a call is small.
pub const ANSWER_BYTES_MAX: usize = 64 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Method::Get => "GET",
            Method::Post => "POST",
        })
    }
}

/// A request for the driver to perform: every template resolved, values encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The script node asking.
    pub node: String,
    pub method: Method,
    pub url: String,
    pub headers: Vec<(String, String)>,
    /// Content type and bytes, for a POST.
    pub body: Option<(String, Vec<u8>)>,
    pub timeout_ms: u32,
    pub cache_minutes: Option<u16>,
}

impl Request {
    /// What identifies the request for the cache: everything that is sent.
    pub fn cache_key(&self) -> Vec<u8> {
        let mut key = format!("{} {}\n", self.method, self.url).into_bytes();
        for (k, v) in &self.headers {
            key.extend_from_slice(format!("{k}: {v}\n").as_bytes());
        }
        if let Some((ctype, body)) = &self.body {
            key.extend_from_slice(format!("\n{ctype}\n").as_bytes());
            key.extend_from_slice(body);
        }
        key
    }
}

/// What came back for a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// An HTTP answer (any status).
    Http { status: u16, body: Vec<u8> },
    /// No answer: timeout, refused connection, broken response. The reason is for logs.
    Failed { reason: String },
}

/// Where an answer sends the call, and the variables it sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routed {
    pub edge: Edge,
    pub vars: Vec<(String, String)>,
    /// Stored variables the answer has no key for (and no `default`): unset from the call.
    pub unset: Vec<String>,
    /// Why the answer took the failure edge, for logs.
    pub failure: Option<String>,
    /// Stored values longer than their `max_chars`, cut (for logs).
    pub cuts: Vec<Cut>,
}

/// A stored value cut to its `max_chars`: the lengths only (the value is the caller's data).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cut {
    pub node: String,
    pub var: String,
    /// Characters in the answer's value.
    pub chars: usize,
    /// Characters kept.
    pub kept: usize,
}

/// Resolves a request template with `render` (which resolves one template); values are encoded
/// for where they go (URL query, form, JSON).
pub fn request(
    node: &str,
    t: &RequestTemplate,
    cache_minutes: Option<u16>,
    mut render: impl FnMut(&crate::machine::Template, Encoding) -> Result<String, String>,
) -> Result<Request, String> {
    let url = render(&t.url, Encoding::Url)?;
    let mut headers = Vec::with_capacity(t.headers.len());
    for (k, v) in &t.headers {
        headers.push((k.clone(), render(v, Encoding::Plain)?));
    }
    let body = match &t.body {
        None => None,
        Some(fields) if t.raw_json => {
            let mut object = serde_json::Map::new();
            for (k, v) in fields {
                object.insert(k.clone(), serde_json::Value::String(render(v, Encoding::Plain)?));
            }
            Some(("application/json".to_string(), serde_json::to_vec(&object).unwrap_or_default()))
        }
        Some(fields) => {
            let mut form = Vec::with_capacity(fields.len());
            for (k, v) in fields {
                form.push(format!("{}={}", encode(k), render(v, Encoding::Url)?));
            }
            Some(("application/x-www-form-urlencoded".to_string(), form.join("&").into_bytes()))
        }
    };
    let method = if body.is_some() { Method::Post } else { Method::Get };
    Ok(Request {
        node: node.to_string(),
        method,
        url,
        headers,
        body,
        timeout_ms: t.timeout_ms,
        cache_minutes,
    })
}

/// How a variable's value is written into a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// Percent-encoded (URL and form values).
    Url,
    /// As it is (headers, JSON strings, which serde_json escapes).
    Plain,
}

/// Percent-encodes everything but RFC 3986's unreserved characters; a value of dots alone (`.`,
/// `..`) has its dots encoded too, so that it reads as data, never as a step up the URL's path
/// (the node refuses a request whose path has such a segment: `node::fetch`).
pub fn encode(value: &str) -> String {
    let dots = !value.is_empty() && value.bytes().all(|b| b == b'.');
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if (b.is_ascii_alphanumeric() || b"-._~".contains(&b)) && !(dots && b == b'.') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Picks the edge an answer takes: failure unless the API answered 2xx with a JSON body that has
/// the response key; then the branch named by its value, else `default`. The stored keys never
/// change the edge: a key the answer lacks takes its `default`, or leaves its variable unset.
pub fn route(node: &str, s: &Script, answer: &Answer, branches: &[String]) -> Routed {
    let fail = |why: String| Routed {
        edge: Edge::Failure,
        vars: Vec::new(),
        unset: Vec::new(),
        failure: Some(why),
        cuts: Vec::new(),
    };
    let (status, body) = match answer {
        Answer::Failed { reason } => return fail(reason.clone()),
        Answer::Http { status, body } => (*status, body),
    };
    if !(200..300).contains(&status) {
        return fail(format!("HTTP {status}"));
    }
    let mut routed =
        Routed { edge: Edge::Default, vars: Vec::new(), unset: Vec::new(), failure: None, cuts: Vec::new() };
    if s.response_key.is_none() && s.store.is_empty() {
        return routed;
    }
    if body.len() > ANSWER_BYTES_MAX {
        return fail(format!("answer of {} bytes, over {ANSWER_BYTES_MAX}", body.len()));
    }
    let json: serde_json::Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => return fail(format!("answer is not JSON: {e}")),
    };
    if let Some(path) = &s.response_key {
        match scalar(&json, path) {
            None => return fail(format!("answer has no `{}`", path.join("."))),
            Some(v) if branches.contains(&v) => routed.edge = Edge::Response(v),
            Some(_) => {}
        }
    }
    for stored in &s.store {
        let Some(v) = scalar(&json, &stored.path) else {
            match &stored.default {
                Some(d) => routed.vars.push((stored.var.clone(), d.clone())),
                None => routed.unset.push(stored.var.clone()),
            }
            continue;
        };
        if s.played.contains(&stored.var) && crate::callflow::check_file_url(&v).is_err() {
            return fail(format!("`{}` is played but is not an http(s) URL", stored.path.join(".")));
        }
        let kept = cut(&v, stored);
        let (chars, kept_chars) = (v.chars().count(), kept.chars().count());
        if kept_chars < chars {
            routed.cuts.push(Cut {
                node: node.to_string(),
                var: stored.var.clone(),
                chars,
                kept: kept_chars,
            });
        }
        routed.vars.push((stored.var.clone(), kept));
    }
    routed
}

/// A value within its `max_chars`: cut after the last whole word that fits (at `max_chars` when
/// the first word is already too long).
fn cut(value: &str, stored: &Stored) -> String {
    let Some((end, _)) = value.char_indices().nth(stored.max_chars) else { return value.to_string() };
    let head = &value[..end];
    if value[end..].starts_with(char::is_whitespace) {
        return head.trim_end().to_string();
    }
    match head.rfind(char::is_whitespace) {
        Some(space) if !head[..space].trim_end().is_empty() => head[..space].trim_end().to_string(),
        _ => head.to_string(),
    }
}

/// The string, number or boolean at a dotted path (array indexes are numbers).
fn scalar(json: &serde_json::Value, path: &[String]) -> Option<String> {
    let mut at = json;
    for part in path {
        at = match at {
            serde_json::Value::Object(map) => map.get(part)?,
            serde_json::Value::Array(items) => items.get(part.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    match at {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_like_a_form() {
        assert_eq!(encode("+65 9123/4?a=b&c"), "%2B65%209123%2F4%3Fa%3Db%26c");
        assert_eq!(encode("abc-._~"), "abc-._~");
    }

    /// The script of a machine whose `lookup` routes on `ok` and stores `store`.
    fn script(store: &str) -> Script {
        let text = format!(
            r#"
name = "balance"
start = "lookup"
[defaults]
voice_profile = "en-US-BenjaminRUS"
[nodes.lookup]
kind = "script"
url = "https://example.com/balance"
response_key = "ok"
branches = {{ true = "bye", false = "bye" }}
failure = "bye"
store = {store}
[nodes.bye]
kind = "hangup"
"#
        );
        let m = crate::machine::compile(&crate::machine::Source::new("b.toml", text)).machine.unwrap();
        match &m.node(m.node_id("lookup").unwrap()).unwrap().kind {
            crate::machine::NodeKind::Script(s) => s.clone(),
            _ => unreachable!(),
        }
    }

    fn answer(json: serde_json::Value) -> Answer {
        Answer::Http { status: 200, body: json.to_string().into_bytes() }
    }

    #[test]
    fn a_missing_stored_key_leaves_the_branch_to_the_response_key() {
        let branches = ["true".to_string(), "false".to_string()];
        let plain = script(r#"{ balance = "balance" }"#);
        let r = route("lookup", &plain, &answer(serde_json::json!({"ok": false})), &branches);
        assert_eq!(r.edge, Edge::Response("false".into()));
        assert_eq!((r.vars, r.unset, r.failure), (vec![], vec!["balance".to_string()], None));
        let with_default = script(r#"{ balance = { path = "balance", default = "unknown" } }"#);
        let r = route("lookup", &with_default, &answer(serde_json::json!({"ok": true})), &branches);
        assert_eq!(r.edge, Edge::Response("true".into()));
        assert_eq!((r.vars, r.unset), (vec![("balance".to_string(), "unknown".to_string())], vec![]));
        // Without the response key the answer is still the failure branch.
        let r = route("lookup", &plain, &answer(serde_json::json!({"balance": "3"})), &branches);
        assert_eq!((r.edge, r.failure.as_deref()), (Edge::Failure, Some("answer has no `ok`")));
    }

    #[test]
    fn a_long_value_is_cut_after_a_whole_word_and_the_cut_reported() {
        let branches = ["true".to_string()];
        let long = "one hundred and twenty dollars and fifty cents as of this morning";
        let s = script(r#"{ balance = { path = "balance", max_chars = 38 } }"#);
        let r = route("lookup", &s, &answer(serde_json::json!({"ok": true, "balance": long})), &branches);
        assert_eq!(r.vars, [("balance".to_string(), "one hundred and twenty dollars and".to_string())]);
        let cut = Cut { node: "lookup".into(), var: "balance".into(), chars: 65, kept: 34 };
        assert_eq!(r.cuts, [cut]);
        // The default bound is 64 characters; a word longer than the bound is cut inside it.
        let s = script(r#"{ balance = "balance" }"#);
        let word = "x".repeat(70);
        let r = route("lookup", &s, &answer(serde_json::json!({"ok": true, "balance": word})), &branches);
        assert_eq!(r.vars[0].1, "x".repeat(64));
        let r = route("lookup", &s, &answer(serde_json::json!({"ok": true, "balance": "short"})), &branches);
        assert_eq!((r.vars[0].1.as_str(), r.cuts.len()), ("short", 0));
    }

    #[test]
    fn scalars_by_path() {
        let v: serde_json::Value = serde_json::json!({"data": {"code": 2, "eta": "Friday", "list": ["x"]}});
        let p = |s: &str| s.split('.').map(String::from).collect::<Vec<_>>();
        assert_eq!(scalar(&v, &p("data.code")).as_deref(), Some("2"));
        assert_eq!(scalar(&v, &p("data.eta")).as_deref(), Some("Friday"));
        assert_eq!(scalar(&v, &p("data.list.0")).as_deref(), Some("x"));
        assert_eq!(scalar(&v, &p("data")), None);
        assert_eq!(scalar(&v, &p("data.missing")), None);
    }
}
