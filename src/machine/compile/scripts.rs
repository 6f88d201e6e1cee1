//! Script nodes (the IVR builders' "Script widget"): the spoken prompt or keypress capture, the
//! HTTP request, how the answer routes and what it stores.

use super::super::definition::{NodeDef, Prompt};
use super::super::template::{self, Template};
use super::super::{Menu, RequestTemplate, Script, Stored};
use super::chains::ActionOf;
use super::fields::field_index;
use super::nodes::Settings;
use super::{At, Compiler};
use crate::callflow::Say;
use crate::machine::diagnostic::closest;
use crate::machine::hosts;

/// Longest a script waits for its API: 8x8 waits for phonetree's reply meanwhile, and a caller in
/// silence for longer hangs up. The node gives all the scripts of one webhook this long together
/// (`node::calls::SCRIPTS_DEADLINE`), so a longer `timeout_ms` could never be waited for.
pub const SCRIPT_TIMEOUT_MAX_MS: i64 = 5_000;
/// Most characters a script keeps of one stored value: the value is kept in the call's state,
/// written with every step of the call and in its stored record (see `engine::CallState`), so a
/// few spoken sentences fit and a document does not.
const STORED_CHARS_MAX: i64 = 512;
/// Characters kept of a stored value when its `max_chars` is not given.
const STORED_CHARS_DEFAULT: i64 = 64;
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
            self.url_host(name, u);
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

    /// A script url's scheme and host (and port) are written in the machine, so that no caller's
    /// keys can pick what the node calls: `http` or `https`, and a host and port the host rule
    /// (`hosts::Lists`) lets scripts call, with the machine's `allow_hosts` and the node's
    /// `--script-allow` (`Options`).
    fn url_host(&mut self, name: &str, url: &Template) {
        let at = At::Node(name, "url");
        let head = match url.parts().first() {
            Some(template::Part::Lit(l)) => l.as_str(),
            Some(_) => return self.host_from_variable(name),
            None => "",
        };
        let scheme = head.to_ascii_lowercase();
        let Some(scheme_len) =
            ["http://", "https://"].iter().find(|s| scheme.starts_with(*s)).map(|s| s.len())
        else {
            let hint = Some("write `https://api.example.com/path?name={variable}`".into());
            return self.error(at, "the url must start with http:// or https://".into(), hint);
        };
        let authority_end = match head[scheme_len..].find(['/', '?', '#']) {
            Some(end) => scheme_len + end,
            None if url.parts().len() == 1 => head.len(),
            None => return self.host_from_variable(name),
        };
        let parsed = match url::Url::parse(&head[..authority_end]) {
            Ok(u) => u,
            Err(e) => return self.error(at, format!("the url's host is not valid: {e}"), None),
        };
        if !parsed.username().is_empty() || parsed.password().is_some() {
            let hint = Some("send credentials in `headers` (`Authorization=...`)".into());
            return self.error(at, "the url carries credentials (`user@host`)".into(), hint);
        }
        let Some(host) = parsed.host() else {
            return self.error(at, "the url has no host".into(), None);
        };
        let text = hosts::host_text(&host);
        let port = parsed.port_or_known_default().unwrap_or(80);
        let entry = match host {
            url::Host::Ipv6(_) => format!("[{text}]:{port}"),
            _ => format!("{text}:{port}"),
        };
        let lists = hosts::Lists { machine: &self.allow_hosts, node: self.script_allow };
        // Where the node's `--script-allow` would widen it, the hint says so.
        let flag = format!("or run the node (and `check`) with `--script-allow {entry}`");
        match lists.check_url(&text, port) {
            Ok(()) => {}
            Err(hosts::Refusal::Never(range)) => self.error(
                at,
                format!("`{text}` is {range}: scripts never call it"),
                Some(
                    "instance metadata holds the node's cloud credentials; call your API's own address"
                        .into(),
                ),
            ),
            // `allow_hosts` lists it without its port: reported there already.
            Err(hosts::Refusal::Unlisted { .. })
                if self
                    .def
                    .allow_hosts
                    .iter()
                    .filter_map(|e| hosts::AllowedHost::parse(e).ok())
                    .any(|h| h.names(&text)) => {}
            Err(hosts::Refusal::Unlisted { range, .. }) => self.error(
                at,
                format!("`{text}` is {range}: scripts call it only at a host:port listed exactly"),
                Some(format!("add `\"{entry}\"` to `allow_hosts` at the top of the machine, {flag}")),
            ),
            Err(hosts::Refusal::OtherPorts) => self.error(
                at,
                format!("the node's `--script-allow` vouches for `{text}` on other ports only"),
                Some(format!(
                    "call it at a port `--script-allow` lists, or add `{entry}` to `--script-allow`"
                )),
            ),
            Err(hosts::Refusal::NotListed) => {
                let names = self.allow_hosts.iter().chain(self.script_allow).map(|h| h.host());
                let hint = closest(&text, names).map_or_else(
                    || format!("add `\"{entry}\"` to `allow_hosts`, {flag}"),
                    |c| format!("did you mean `{c}`? else add `\"{entry}\"` to `allow_hosts`, {flag}"),
                );
                let message = if self.script_allow.is_empty() {
                    format!("`{entry}` is not in the machine's `allow_hosts`")
                } else {
                    format!(
                        "`{entry}` is in neither the machine's `allow_hosts` nor the node's `--script-allow`"
                    )
                };
                self.error(at, message, Some(hint));
            }
        }
    }

    fn host_from_variable(&mut self, name: &str) {
        self.error(
            At::Node(name, "url"),
            "the url's scheme and host must be written in the machine, not taken from a variable".into(),
            Some(
                "write `https://api.example.com/...`: a variable may fill the path, query or body (a `[settings]` value is written in the machine)"
                    .into(),
            ),
        );
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

    /// The call variables set from the answer, each with its key path, default and length bound.
    fn store(&mut self, name: &str, n: &NodeDef, settings: &Settings) -> Vec<Stored> {
        let mut store = Vec::new();
        for (var, def) in n.store.iter().flatten() {
            let at = format!("store.{var}");
            if !self.is_own_var_name(var, settings) {
                self.error(At::Node(name, &at), format!("`{var}` cannot name a call variable"), None);
                continue;
            }
            let Some(p) = &def.path else {
                let hint = Some(format!("write `{var} = {{ path = \"data.{var}\" }}`"));
                self.error(At::Node(name, &at), format!("`{at}` has no `path`"), hint);
                continue;
            };
            if bad_key_path(p) {
                // The plain form's position is the path's own.
                let at =
                    if def.default.is_none() && def.max_chars.is_none() { at } else { format!("{at}.path") };
                self.error(
                    At::Node(name, &at),
                    "a key path is names joined by dots, like `data.eta`".into(),
                    None,
                );
                continue;
            }
            let max = def.max_chars.unwrap_or(STORED_CHARS_DEFAULT);
            if !(1..=STORED_CHARS_MAX).contains(&max) {
                self.error(
                    At::Node(name, &format!("{at}.max_chars")),
                    format!("max_chars {max} is outside 1..{STORED_CHARS_MAX}"),
                    Some("a stored value is kept with the call on every step: store a short text".into()),
                );
                continue;
            }
            let max_chars = usize::try_from(max).unwrap_or(1);
            if let Some(d) = &def.default
                && d.chars().count() > max_chars
            {
                self.error(
                    At::Node(name, &format!("{at}.default")),
                    format!("the default is longer than max_chars ({max_chars})"),
                    Some("shorten the default, or raise `max_chars`".into()),
                );
                continue;
            }
            store.push(Stored {
                var: var.clone(),
                path: key_path(p),
                default: def.default.clone(),
                max_chars,
            });
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
        let p = match n.prompt.as_ref().and_then(|p| p.pick(self.language.as_deref())) {
            None => return Some(None),
            Some(Prompt::Text(p)) => p,
            Some(Prompt::Parts(_)) => {
                self.error(
                    At::Node(name, "prompt"),
                    "a script's spoken prompt is one text, not a list of parts".into(),
                    Some("say the other parts in a `say` node before the script".into()),
                );
                return None;
            }
        };
        let text = self.template(name, "prompt", p, settings)?;
        let speech = self.speech(name, n);
        let say = Say { text, voice_profile: speech.0?, repetition: speech.1, speed: speech.2 };
        self.check_action(name, ActionOf::Say(&say));
        Some(Some(say))
    }
}
