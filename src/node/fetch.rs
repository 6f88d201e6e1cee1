//! Performs the HTTP requests script nodes ask for (the engine's effect), with a real client, and
//! keeps them off the node's own network (SSRF): every failure, refusals included, is an
//! `Answer::Failed` the script routes on.
//!
//! What a request may reach is the host rule (`machine::hosts`, README "Script hosts"), the one
//! `check` applies to the machine's URLs, with the machine's `allow_hosts` and the node's
//! `--script-allow`:
//! - the URL, before the request and at every redirect hop (`Policy::check`);
//! - every address DNS gives, by the client's own resolver, so the connection goes to the address
//!   that was checked (DNS rebinding gains nothing);
//! - the answer is read up to `ANSWER_BYTES_MAX`, and no further.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tracing::warn;

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
}

/// What one machine's scripts may reach: its `allow_hosts` and the node's `--script-allow`.
#[derive(Debug, Clone)]
struct Policy {
    machine: Arc<[AllowedHost]>,
    node: Arc<[AllowedHost]>,
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
        self.lists().check_url(&text, port).map_err(|refusal| match refusal {
            Refusal::NotListed => Refused::NotListed(shown_host(url)),
            Refusal::OtherPorts => Refused::Port(shown_host(url)),
            Refusal::Never(range) => Refused::Never { host: text, range },
            Refusal::Unlisted { range, .. } => Refused::Address { host: text, range },
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
    clients: Mutex<HashMap<Version, reqwest::Client>>,
    refused: AtomicU64,
    out_of_time: AtomicU64,
}

impl Scripts {
    /// Scripts that may also reach the hosts `node_allow` lists (`--script-allow`).
    pub fn new(node_allow: &[AllowedHost]) -> Scripts {
        Scripts {
            node_allow: node_allow.into(),
            clients: Mutex::default(),
            refused: AtomicU64::new(0),
            out_of_time: AtomicU64::new(0),
        }
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
        warn!(node = %request.node, out_of_time_total = total, "the webhook's script deadline is spent: no request");
        Answer::Failed { reason: format!("the webhook's {} s for scripts are spent", deadline.as_secs()) }
    }

    fn policy(&self, machine: &Machine) -> Policy {
        Policy { machine: machine.allow_hosts().into(), node: self.node_allow.clone() }
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
            warn!(node = %request.node, url = %shown(&request.url), reason = %why, refused_total = total, "script request refused");
            Answer::Failed { reason: format!("{REFUSED_PREFIX}{why}") }
        };
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
        Policy { machine: parse(machine).into(), node: parse(node).into() }
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
}
