//! Performs the HTTP requests script nodes ask for (the engine's effect), with a real client, and
//! keeps them off the node's own network (SSRF): every failure, refusals included, is an
//! `Answer::Failed` the script routes on.
//!
//! What a request may reach is the host rule (`machine::hosts`; machines/README.md, "Which hosts a
//! script may call"), the one `check` applies to the machine's URLs, with the machine's
//! `allow_hosts` and the node's `--script-allow`:
//! - the URL, before the request and at every redirect hop (`Policy::check`);
//! - every address DNS gives, by the client's own resolver, so the connection goes to the address
//!   that was checked (DNS rebinding gains nothing);
//! - the answer is read up to `ANSWER_BYTES_MAX`, and no further;
//! - never the node's own listeners (`Scripts::serving_on`), whatever the lists say: a redirect
//!   must not turn a script into a request to the admin listener;
//! - never a path segment `.` or `..` filled from a variable (the engine encodes it `%2E%2E`,
//!   which URL parsers and servers still read as a step up the path).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use crate::engine::script::{ANSWER_BYTES_MAX, Method};
use crate::engine::{Answer, Request};
use crate::machine::hosts::{self, AllowedHost, Lists, Range, Refusal};
use crate::machine::{Machine, Version};

/// Most redirects a script request follows: an API that moved answers after one or two.
const REDIRECTS_MAX: usize = 5;
/// Most machine versions with a client of their own kept at once (each holds its connection
/// pool); past it the cache starts again empty. Far more than a node serves.
const CLIENTS_MAX: usize = 256;

/// Why a script request was refused before it reached a host.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Refused {
    #[error("`{0}` is not an http(s) url")]
    Scheme(String),
    #[error("the url has no host")]
    NoHost,
    #[error(
        "host `{0}` is in neither the machine's allow_hosts nor the node's --script-allow; list it in one of them"
    )]
    NotListed(String),
    #[error("`{host}` is {range}; list `{host}` with its port in allow_hosts (or --script-allow) to call it")]
    Address { host: String, range: Range },
    #[error("`{host}` is {range}, which scripts never call")]
    Never { host: String, range: Range },
    #[error("--script-allow lists `{0}` on other ports only")]
    Port(String),
    #[error("`{host}` resolves to {addr}, {range}; list `{host}:PORT` in --script-allow to call it")]
    Resolved { host: String, addr: IpAddr, range: Range },
    #[error("redirect to `{host}` refused: {why}")]
    Redirect { host: String, why: Box<Refused> },
    #[error("more than {REDIRECTS_MAX} redirects")]
    Redirects,
    #[error("answer over {ANSWER_BYTES_MAX} bytes")]
    TooLarge,
    #[error("`{0}` is this node's own listener, which scripts never call")]
    OwnListener(String),
    #[error("a path segment filled from a variable is `.` or `..`, which would leave the url's path")]
    DotSegment,
}

/// What one machine's scripts may reach: its `allow_hosts` and the node's `--script-allow`.
#[derive(Debug, Clone)]
struct Policy {
    machine: Arc<[AllowedHost]>,
    node: Arc<[AllowedHost]>,
    /// The node's own listeners (public and admin).
    own: Arc<RwLock<Vec<SocketAddr>>>,
}

impl Policy {
    fn lists(&self) -> Lists<'_> {
        Lists { machine: &self.machine, node: &self.node }
    }

    /// Whether a request (or a redirect) to `url` may be sent; the addresses of a host name are
    /// checked by `Resolver` when it is resolved.
    fn check(&self, url: &url::Url) -> Result<(), Refused> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(Refused::Scheme(url.scheme().to_string()));
        }
        let host = url.host().ok_or(Refused::NoHost)?;
        let text = hosts::host_text(&host);
        let port = url.port_or_known_default().unwrap_or(80);
        if self.is_own(&text, port) {
            return Err(Refused::OwnListener(shown_host(url)));
        }
        self.lists().check_url(&text, port).map_err(|refusal| match refusal {
            Refusal::NotListed => Refused::NotListed(shown_host(url)),
            Refusal::OtherPorts => Refused::Port(shown_host(url)),
            Refusal::Never(range) => Refused::Never { host: text, range },
            Refusal::Unlisted { range, .. } => Refused::Address { host: text, range },
        })
    }
}

impl Policy {
    /// Whether `host` (as `host_text` gives it) on `port` may be one of the node's own listeners:
    /// the listener's port at its address, at a loopback address or name, or (a listener on every
    /// address) at any address that is not public.
    fn is_own(&self, host: &str, port: u16) -> bool {
        let own = self.own.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        let ip = match host.parse::<IpAddr>() {
            Ok(IpAddr::V6(v6)) => Some(v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4)),
            Ok(v4) => Some(v4),
            Err(_) => hosts::is_loopback_name(host).then_some(IpAddr::from([127, 0, 0, 1])),
        };
        let Some(ip) = ip else { return false };
        own.iter().filter(|a| a.port() == port).any(|a| {
            let listener = a.ip();
            ip == listener
                || (listener.is_loopback() && ip.is_loopback())
                || (listener.is_unspecified() && hosts::refused_range(ip).is_some())
        })
    }
}

/// The client's DNS resolver: every address it returns passes the host rule (`check_resolved`).
/// The connection is made to the addresses it returns.
struct Resolver {
    policy: Policy,
}

impl reqwest::dns::Resolve for Resolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().trim_end_matches('.').to_ascii_lowercase();
        let policy = self.policy.clone();
        Box::pin(async move {
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let mut usable = Vec::with_capacity(found.len());
            let mut refused = None;
            for addr in found {
                match policy.lists().check_resolved(&host, addr.ip()) {
                    Ok(()) => usable.push(addr),
                    Err(Refusal::Never(range) | Refusal::Unlisted { range, .. }) => {
                        refused = Some((addr.ip(), range))
                    }
                    Err(Refusal::NotListed | Refusal::OtherPorts) => {}
                }
            }
            match (usable.is_empty(), refused) {
                (true, Some((addr, range))) => Err(Refused::Resolved { host, addr, range }.into()),
                _ => Ok(Box::new(usable.into_iter()) as reqwest::dns::Addrs),
            }
        })
    }
}

/// The node's script client: a `reqwest::Client` per machine version (its redirect policy knows
/// the machine's `allow_hosts`), and a count of refused requests.
pub struct Scripts {
    node_allow: Arc<[AllowedHost]>,
    /// The node's own listeners, which no request goes to (`serving_on`).
    own: Arc<RwLock<Vec<SocketAddr>>>,
    clients: Mutex<HashMap<Version, reqwest::Client>>,
    refused: AtomicU64,
    out_of_time: AtomicU64,
}

impl Scripts {
    /// Scripts that may also reach the hosts `node_allow` lists (`--script-allow`).
    pub fn new(node_allow: &[AllowedHost]) -> Scripts {
        Scripts {
            node_allow: node_allow.into(),
            own: Arc::default(),
            clients: Mutex::default(),
            refused: AtomicU64::new(0),
            out_of_time: AtomicU64::new(0),
        }
    }

    /// The node listens at `addrs` (its public and admin listeners): no script request, and no
    /// redirect of one, goes there, whatever `allow_hosts` or `--script-allow` list.
    pub fn serving_on(&self, addrs: &[SocketAddr]) {
        let mut own = self.own.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        own.clear();
        own.extend_from_slice(addrs);
    }

    /// Requests refused since the node started (a host not listed, a refused address or
    /// redirect, an answer too large).
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// Scripts that took their failure branch without a request since the node started, their
    /// webhook's deadline spent.
    pub fn out_of_time(&self) -> u64 {
        self.out_of_time.load(Ordering::Relaxed)
    }

    /// The answer of a script whose webhook has spent its `deadline` for scripts: no request, a
    /// failure (logged and counted).
    pub fn spent(&self, request: &Request, deadline: Duration) -> Answer {
        let total = self.out_of_time.fetch_add(1, Ordering::Relaxed).saturating_add(1);
        super::throttle::warn_limited!(node = %request.node, out_of_time_total = total, "the webhook's script deadline is spent: no request");
        Answer::Failed { reason: format!("the webhook's {} s for scripts are spent", deadline.as_secs()) }
    }

    fn policy(&self, machine: &Machine) -> Policy {
        Policy { machine: machine.allow_hosts().into(), node: self.node_allow.clone(), own: self.own.clone() }
    }

    fn client(&self, machine: &Machine) -> Result<reqwest::Client, String> {
        let mut clients = self.clients.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(c) = clients.get(&machine.version()) {
            return Ok(c.clone());
        }
        let policy = self.policy(machine);
        let redirects = reqwest::redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() > REDIRECTS_MAX {
                return attempt.error(Refused::Redirects);
            }
            match policy.check(attempt.url()) {
                Ok(()) => attempt.follow(),
                Err(why) => {
                    let host = shown_host(attempt.url());
                    attempt.error(Refused::Redirect { host, why: Box::new(why) })
                }
            }
        });
        super::install_tls_provider();
        let client = reqwest::Client::builder()
            // A proxy would resolve names itself, past the resolver's checks.
            .no_proxy()
            .dns_resolver(Arc::new(Resolver { policy: self.policy(machine) }))
            .redirect(redirects)
            .build()
            .map_err(|e| format!("cannot build the script client: {}", e.without_url()))?;
        if clients.len() >= CLIENTS_MAX {
            clients.clear();
        }
        clients.insert(machine.version(), client.clone());
        Ok(client)
    }

    /// Performs `request` of a script of `machine`, waiting at most `timeout`; never fails, a
    /// failure is an answer the script routes on. A refusal is logged (without the URL's query,
    /// which may carry the caller's data) and counted.
    pub async fn perform(&self, machine: &Machine, request: &Request, timeout: Duration) -> Answer {
        let refuse = |why: Refused| {
            let total = self.refused.fetch_add(1, Ordering::Relaxed).saturating_add(1);
            super::throttle::warn_limited!(node = %request.node, url = %shown(&request.url), reason = %why, refused_total = total, "script request refused");
            Answer::Failed { reason: format!("{REFUSED_PREFIX}{why}") }
        };
        if dot_segment(&request.url) {
            return refuse(Refused::DotSegment);
        }
        let url = match url::Url::parse(&request.url) {
            Ok(u) => u,
            Err(e) => return Answer::Failed { reason: format!("not a url: {e}") },
        };
        if let Err(why) = self.policy(machine).check(&url) {
            return refuse(why);
        }
        let client = match self.client(machine) {
            Ok(c) => c,
            Err(reason) => return Answer::Failed { reason },
        };
        let mut builder = match request.method {
            Method::Get => client.get(url),
            Method::Post => client.post(url),
        };
        for (name, value) in &request.headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        if let Some((content_type, body)) = &request.body {
            builder = builder.header(reqwest::header::CONTENT_TYPE, content_type.as_str()).body(body.clone());
        }
        let exchange = async {
            let mut response = builder.send().await?;
            let status = response.status().as_u16();
            if response.content_length().is_some_and(|n| n > ANSWER_BYTES_MAX as u64) {
                return Ok(Err(Refused::TooLarge));
            }
            let mut body = Vec::new();
            while let Some(chunk) = response.chunk().await? {
                if body.len().saturating_add(chunk.len()) > ANSWER_BYTES_MAX {
                    return Ok(Err(Refused::TooLarge));
                }
                body.extend_from_slice(&chunk);
            }
            Ok::<_, reqwest::Error>(Ok(Answer::Http { status, body }))
        };
        match tokio::time::timeout(timeout, exchange).await {
            Ok(Ok(Ok(answer))) => answer,
            Ok(Ok(Err(why))) => refuse(why),
            Ok(Err(e)) => match refusal(&e) {
                Some(why) => refuse(why),
                None => Answer::Failed { reason: transport(&e) },
            },
            Err(_) => Answer::Failed { reason: format!("{TIMEOUT_PREFIX}{} ms", timeout.as_millis()) },
        }
    }
}

/// Whether the path of `url` (as the engine wrote it, before any parsing) has a segment `.` or
/// `..` written with a percent-encoded dot (`%2E`, `.%2e`, ...): only a variable's value is written
/// so, and URL parsers (WHATWG, the `url` crate) and servers read it as a step up the path.
fn dot_segment(url: &str) -> bool {
    let after_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
    let Some((_, path)) = after_scheme.split_once('/') else { return false };
    let path = path.split(['?', '#']).next().unwrap_or("");
    path.split('/').any(|segment| {
        let lower = segment.to_ascii_lowercase();
        lower.contains("%2e") && matches!(lower.replace("%2e", ".").as_str(), "." | "..")
    })
}

/// The refusal behind a client error (the resolver's or the redirect policy's), if any.
fn refusal(e: &reqwest::Error) -> Option<Refused> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if let Some(r) = err.downcast_ref::<Refused>() {
            return Some(r.clone());
        }
        source = err.source();
    }
    None
}

/// The metrics result of an answer `Scripts::perform` gave: `ok` (2xx, a JSON body), `bad_body`
/// (2xx, not JSON), `error_status` (any other status), `refused`, `timeout`, `error` (transport).
pub(super) fn result(answer: &Answer) -> &'static str {
    match answer {
        Answer::Http { status, body } if (200..300).contains(status) => {
            if serde_json::from_slice::<serde::de::IgnoredAny>(body).is_ok() { "ok" } else { "bad_body" }
        }
        Answer::Http { .. } => "error_status",
        Answer::Failed { reason } if reason.starts_with(REFUSED_PREFIX) => "refused",
        Answer::Failed { reason } if reason.starts_with(TIMEOUT_PREFIX) => "timeout",
        Answer::Failed { .. } => "error",
    }
}

/// How the reason of a refused request starts.
const REFUSED_PREFIX: &str = "refused: ";
/// How the reason of a request that timed out starts.
const TIMEOUT_PREFIX: &str = "no answer within ";

/// A transport failure's reason, without the URL (its query may carry the caller's data).
fn transport(e: &reqwest::Error) -> String {
    let mut reason = String::from(if e.is_connect() { "cannot connect" } else { "request failed" });
    let mut source = std::error::Error::source(e);
    while let Some(err) = source {
        reason.push_str(": ");
        reason.push_str(&err.to_string());
        source = err.source();
    }
    reason
}

/// A URL as logs show it: scheme, host, port and path, without the query.
pub fn shown(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            u.set_query(None);
            u.set_fragment(None);
            u.to_string()
        }
        Err(_) => "(not a url)".to_string(),
    }
}

/// A URL's `host:port`.
fn shown_host(url: &url::Url) -> String {
    let host = url.host_str().unwrap_or("");
    match url.port_or_known_default() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(machine: &[&str], node: &[&str]) -> Policy {
        let parse = |l: &[&str]| l.iter().map(|h| AllowedHost::parse(h).unwrap()).collect::<Vec<_>>();
        Policy { machine: parse(machine).into(), node: parse(node).into(), own: Arc::default() }
    }

    fn check(p: &Policy, url: &str) -> Result<(), String> {
        p.check(&url::Url::parse(url).unwrap()).map_err(|e| e.to_string())
    }

    #[test]
    fn hosts_and_addresses_a_request_may_reach() {
        let open = policy(&[], &[]);
        assert!(check(&open, "https://api.example.com/x").is_ok(), "no list: any name (public only)");
        assert!(check(&open, "http://93.184.216.34/x").is_ok());
        assert!(check(&open, "http://127.0.0.1:8090/x").unwrap_err().contains("loopback"));
        assert!(check(&open, "http://2130706433/x").unwrap_err().contains("loopback"), "decimal IPv4");
        assert!(check(&open, "http://[::ffff:10.0.0.1]/x").unwrap_err().contains("private"));
        assert!(check(&open, "ftp://api.example.com/x").unwrap_err().contains("http(s)"));

        let listed = policy(&["api.example.com", "127.0.0.1:8090", "169.254.169.254"], &[]);
        assert!(check(&listed, "https://api.example.com:8443/x").is_ok());
        assert!(check(&listed, "https://other.example.com/x").unwrap_err().contains("neither"));
        assert!(check(&listed, "http://127.0.0.1:8090/x").is_ok(), "a listed IP address");
        assert!(check(&listed, "http://127.0.0.1:8091/x").unwrap_err().contains("neither"));
        assert!(check(&listed, "http://169.254.169.254/x").unwrap_err().contains("never"));

        let node = policy(&["localhost:9000"], &["localhost:8090", "10.0.0.7", "api.internal:8443"]);
        assert!(check(&node, "http://localhost:8090/x").is_ok());
        assert!(check(&node, "http://localhost:9000/x").is_ok(), "the machine lists localhost:9000 exactly");
        // Listed without a port, a private address is not called: a redirect could pick any port.
        assert!(check(&node, "http://10.0.0.7:1234/x").unwrap_err().contains("with its port"));
        let both = policy(&["api.internal"], &["api.internal:8443"]);
        assert!(check(&both, "https://api.internal/x").unwrap_err().contains("other ports only"));
    }

    #[test]
    fn never_the_nodes_own_listeners() {
        let p =
            policy(&["127.0.0.1:9090", "localhost:9090", "[::1]:9090", "127.0.0.1:8090"], &["10.0.0.7:8080"]);
        *p.own.write().unwrap() = vec!["127.0.0.1:9090".parse().unwrap(), "0.0.0.0:8080".parse().unwrap()];
        for url in [
            "http://127.0.0.1:9090/admin/reload",
            "http://localhost:9090/x",
            "http://[::1]:9090/x",
            "http://10.0.0.7:8080/x",
        ] {
            assert!(check(&p, url).unwrap_err().contains("own listener"), "{url}");
        }
        assert!(check(&p, "http://127.0.0.1:8090/x").is_ok(), "another port, listed exactly");
    }

    #[test]
    fn dot_segments_from_variables() {
        for url in
            ["http://h/orders/%2E%2E/status", "http://h/a/%2e/b", "http://h/a/.%2E", "http://h/%2E%2E?x=1"]
        {
            assert!(dot_segment(url), "{url}");
        }
        for url in [
            "http://h/a/../b",
            "http://h/a/%2E%2E%2E/b",
            "http://h/a/x%2E%2E/b",
            "http://h/a?x=%2E%2E",
            "http://h",
        ] {
            assert!(!dot_segment(url), "{url}");
        }
    }
}
