//! Script nodes (the IVR builders' "Script widget"): the spoken prompt or keypress capture, the
//! HTTP request, how the answer routes and what it stores.

use super::super::definition::NodeDef;
use super::super::template::{self, Template};
use super::super::{Menu, RequestTemplate, Script};
use super::chains::ActionOf;
use super::fields::field_index;
use super::nodes::Settings;
use super::{At, Compiler};
use crate::callflow::Say;

/// Longest a script waits for its API: 8x8 waits for phonetree's reply meanwhile, and a caller in
/// silence for longer hangs up.
pub(super) const SCRIPT_TIMEOUT_MAX_MS: i64 = 10_000;
/// A script's timeout when the machine sets none.
const SCRIPT_TIMEOUT_DEFAULT_MS: i64 = 3_000;
/// The widget's default wait for each key.
pub(super) const DIGIT_GAP_DEFAULT_MS: i64 = 4_000;

/// A script's field that needs `allow_keypress = true`.
const KEYPRESS_FIELDS: [&str; 6] =
    ["no_input", "digit_gap_ms", "repeat", "reprompt", "min_digits", "max_digits"];

/// A dotted key path (`data.code`) as its names.
fn key_path(p: &str) -> Vec<String> {
    p.split('.').map(str::to_string).collect()
}

fn bad_key_path(p: &str) -> bool {
    p.is_empty() || p.split('.').any(str::is_empty)
}

impl Compiler<'_> {
    /// A script node: its prompt or capture, its request, how it routes.
    pub(super) fn script(&mut self, name: &str, n: &NodeDef, settings: &Settings) -> Option<Script> {
        self.required(name, n, "failure", &n.failure);
        let request = self.request(name, n, settings);
        let response_key = self.routing(name, n);
        let store = self.store(name, n, settings);
        let cache_minutes = self.cache_minutes(name, n);
        let (say, capture) = if n.allow_keypress == Some(true) {
            (None, Some(self.keypress(name, n, settings)?))
        } else {
            (self.spoken(name, n, settings)?, None)
        };
        Some(Script {
            say,
            capture,
            request: request?,
            response_key,
            store,
            cache_minutes: cache_minutes?,
            played: Vec::new(),
        })
    }

    /// The request: an http(s) url, a form or JSON body, headers and a timeout.
    fn request(&mut self, name: &str, n: &NodeDef, settings: &Settings) -> Option<RequestTemplate> {
        let url = self.required(name, n, "url", &n.url).and_then(|u| self.template(name, "url", u, settings));
        if let Some(u) = &url {
            let head = match u.parts().first() {
                Some(template::Part::Lit(l)) => l.to_ascii_lowercase(),
                _ => String::new(),
            };
            if !(head.starts_with("http://") || head.starts_with("https://")) {
                self.error(At::Node(name, "url"), "the url must start with http:// or https://".into(), None);
            }
        }
        let body = match &n.body {
            None => Some(None),
            Some(text) => self.pairs(name, "body", text, settings).map(Some),
        };
        let headers = self.pairs(name, "headers", n.headers.as_deref().unwrap_or(""), settings);
        let timeout_ms = self.bounded(name, "timeout_ms", n.timeout_ms, SCRIPT_TIMEOUT_DEFAULT_MS);
        Some(RequestTemplate {
            url: url?,
            body: body?,
            raw_json: n.raw_json.unwrap_or(false),
            headers: headers?,
            timeout_ms: u32::try_from(timeout_ms?).ok()?,
        })
    }

    /// Query-string pairs (`name=value&name=value`) whose values are templates.
    fn pairs(
        &mut self,
        name: &str,
        field: &str,
        text: &str,
        settings: &Settings,
    ) -> Option<Vec<(String, Template)>> {
        let mut out = Vec::new();
        for pair in text.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            if k.is_empty() || !k.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.~%".contains(&b)) {
                let message = if k.is_empty() {
                    "a field has no name".into()
                } else {
                    format!("`{k}` is not a field name")
                };
                self.error(At::Node(name, field), message, Some("write `name=value&name=value`".into()));
                return None;
            }
            out.push((k.to_string(), self.template(name, field, v, settings)?));
        }
        Some(out)
    }

    /// The response key the answer routes on, checked with the branches it picks from.
    fn routing(&mut self, name: &str, n: &NodeDef) -> Option<Vec<String>> {
        if n.response_key.as_deref().is_some_and(bad_key_path) {
            self.error(
                At::Node(name, "response_key"),
                "a key path is names joined by dots, like `data.code`".into(),
                None,
            );
        }
        let no_branches = n.branches.as_ref().is_none_or(|b| b.is_empty());
        if n.response_key.is_some() && no_branches && n.default.is_none() {
            self.error(
                At::NodeKey(name),
                "a script that routes on `response_key` needs `branches` or a `default`".into(),
                None,
            );
        }
        if n.response_key.is_none() && n.branches.is_some() {
            self.error(
                At::Node(name, "branches"),
                "`branches` need a `response_key` to pick one".into(),
                None,
            );
        }
        n.response_key.as_deref().map(key_path)
    }

    /// The call variables set from the answer, each with its key path.
    fn store(&mut self, name: &str, n: &NodeDef, settings: &Settings) -> Vec<(String, Vec<String>)> {
        let mut store = Vec::new();
        for (var, p) in n.store.iter().flatten() {
            let at = format!("store.{var}");
            if !self.is_own_var_name(var, settings) {
                self.error(At::Node(name, &at), format!("`{var}` cannot name a call variable"), None);
            } else if bad_key_path(p) {
                self.error(
                    At::Node(name, &at),
                    "a key path is names joined by dots, like `data.eta`".into(),
                    None,
                );
            } else {
                store.push((var.clone(), key_path(p)));
            }
        }
        store
    }

    fn cache_minutes(&mut self, name: &str, n: &NodeDef) -> Option<Option<u16>> {
        match n.cache_minutes {
            None => Some(None),
            Some(c) => self.bounded(name, "cache_minutes", Some(c), c).map(|c| u16::try_from(c).ok()),
        }
    }

    /// With `allow_keypress`: the capture prompt, its wait per key and its repeats.
    fn keypress(&mut self, name: &str, n: &NodeDef, settings: &Settings) -> Option<Menu> {
        self.required(name, n, "no_input", &n.no_input);
        self.required(name, n, "prompt", &n.prompt);
        let repeat = self.bounded(name, "repeat", n.repeat, 0);
        let mut menu = self.prompt(name, n, settings)?;
        let (gap, overall) = self.keypress_waits(name, n, menu.capture.max_digits.unwrap_or(1))?;
        menu.capture.digit_timeout_ms = Some(gap);
        menu.capture.overall_timeout_ms = Some(overall);
        menu.tries = u8::try_from(repeat? + 1).ok()?;
        self.check_action(name, ActionOf::Capture(&menu.capture));
        Some(menu)
    }

    /// Without `allow_keypress`: the prompt said before the request, if any.
    fn spoken(&mut self, name: &str, n: &NodeDef, settings: &Settings) -> Option<Option<Say<Template>>> {
        for field in KEYPRESS_FIELDS {
            if field_index(field).is_some_and(|i| n.fields.has(i)) {
                self.error(At::Node(name, field), format!("`{field}` needs `allow_keypress = true`"), None);
            }
        }
        let Some(p) = &n.prompt else { return Some(None) };
        let text = self.template(name, "prompt", p, settings)?;
        let speech = self.speech(name, n);
        let say = Say { text, voice_profile: speech.0?, repetition: speech.1, speed: speech.2 };
        self.check_action(name, ActionOf::Say(&say));
        Some(Some(say))
    }
}
