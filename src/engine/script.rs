//! Script nodes without I/O: the HTTP request a script asks for (an effect the driver performs),
//! the answer it is fed back, and how an answer picks the branch and sets call variables.

use crate::machine::{Edge, RequestTemplate, Script};

/// Most bytes of an answer body the engine reads: an API answer that routes a call is small.
pub const ANSWER_BYTES_MAX: usize = 64 * 1024;
/// Longest value a call variable takes from an answer: it is spoken or put in a URL.
pub const ANSWER_VALUE_CHARS_MAX: usize = 64;

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
    /// Why the answer took the failure edge, for logs.
    pub failure: Option<String>,
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

/// Percent-encodes everything but RFC 3986's unreserved characters.
pub fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Picks the edge an answer takes: failure unless the API answered 2xx with a body that has every
/// key the script reads; then the branch named by the response key's value, else `default`.
pub fn route(s: &Script, answer: &Answer, branches: &[String]) -> Routed {
    let fail = |why: String| Routed { edge: Edge::Failure, vars: Vec::new(), failure: Some(why) };
    let (status, body) = match answer {
        Answer::Failed { reason } => return fail(reason.clone()),
        Answer::Http { status, body } => (*status, body),
    };
    if !(200..300).contains(&status) {
        return fail(format!("HTTP {status}"));
    }
    if s.response_key.is_none() && s.store.is_empty() {
        return Routed { edge: Edge::Default, vars: Vec::new(), failure: None };
    }
    if body.len() > ANSWER_BYTES_MAX {
        return fail(format!("answer of {} bytes, over {ANSWER_BYTES_MAX}", body.len()));
    }
    let json: serde_json::Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => return fail(format!("answer is not JSON: {e}")),
    };
    let mut vars = Vec::with_capacity(s.store.len());
    for (var, path) in &s.store {
        match scalar(&json, path) {
            Some(v) if s.played.contains(var) && crate::callflow::check_file_url(&v).is_err() => {
                return fail(format!("`{}` is played but is not an http(s) URL", path.join(".")));
            }
            Some(v) => vars.push((var.clone(), v)),
            None => return fail(format!("answer has no `{}`", path.join("."))),
        }
    }
    let edge = match &s.response_key {
        None => Edge::Default,
        Some(path) => match scalar(&json, path) {
            None => return fail(format!("answer has no `{}`", path.join("."))),
            Some(v) if branches.contains(&v) => Edge::Response(v),
            Some(_) => Edge::Default,
        },
    };
    Routed { edge, vars, failure: None }
}

/// The string, number or boolean at a dotted path (array indexes are numbers), bounded.
fn scalar(json: &serde_json::Value, path: &[String]) -> Option<String> {
    let mut at = json;
    for part in path {
        at = match at {
            serde_json::Value::Object(map) => map.get(part)?,
            serde_json::Value::Array(items) => items.get(part.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    let text = match at {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Number(n) => n.to_string(),
        serde_json::Value::Bool(b) => b.to_string(),
        _ => return None,
    };
    Some(text.chars().take(ANSWER_VALUE_CHARS_MAX).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_like_a_form() {
        assert_eq!(encode("+65 9123/4?a=b&c"), "%2B65%209123%2F4%3Fa%3Db%26c");
        assert_eq!(encode("abc-._~"), "abc-._~");
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
