//! The load test's stand-in for the machines' business APIs: a warp server on each loopback port
//! the scripts call. Every answer is fixed the first time the oracle asks for a request (the
//! answer the caller's path wants, or a failure drawn from the seed), so the node, however often
//! it asks (a cache miss, a retry, a duplicate), gets what the oracle fed the engine.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use warp::Filter;

use super::plan::{Key, hash, key_of};
use crate::engine::{Answer, Request};
use crate::machine::Script;
use crate::proof::explore;

/// Largest request body the stub reads: scripts send short forms and JSON.
const BODY_BYTES_MAX: u64 = 64 * 1024;
/// Most distinct requests the stub remembers an answer for: a bound on its memory (a run makes
/// at most a few per call).
pub const ANSWERS_MAX: usize = 1_000_000;
/// The body of a failure the stub answers with (status 503).
const FAILURE_BODY: &[u8] = br#"{"error":"stub failure"}"#;

/// One fixed answer and how long the stub waits before giving it.
#[derive(Clone)]
struct Canned {
    status: u16,
    body: Vec<u8>,
    latency: Duration,
    /// Webhooks the oracle applied whose step made this request.
    expected: u64,
    /// Times the request reached the stub.
    asked: u64,
}

/// The stub's answers and counters, shared by its servers and the oracle.
pub struct Stub {
    seed: u64,
    failure_pct: u8,
    latency_max: Duration,
    answers: Mutex<HashMap<Key, Canned>>,
    pub requests: AtomicU64,
    /// Requests the oracle never asked about: the node made a request the engine would not.
    pub unexpected: AtomicU64,
}

/// What the stub cannot do.
#[derive(Debug, thiserror::Error)]
pub enum StubError {
    #[error("a script calls {0}, not a loopback address: the load test answers scripts on 127.0.0.1 only")]
    NotLoopback(String),
    #[error("cannot listen on {addr} for the scripts that call it: {source} (is another API running there?)")]
    Bind { addr: String, source: std::io::Error },
    #[error("more than {ANSWERS_MAX} distinct script requests in one run")]
    Full,
}

impl Stub {
    pub fn new(seed: u64, failure_pct: u8, latency_max: Duration) -> Stub {
        Stub {
            seed,
            failure_pct,
            latency_max,
            answers: Mutex::new(HashMap::new()),
            requests: AtomicU64::new(0),
            unexpected: AtomicU64::new(0),
        }
    }

    /// The answer the stub gives `request` (of `script`): the one fixed before, else the one
    /// `token` (`@VALUE`, `@*`, `@!`) names, or a failure the seed draws for this request.
    pub fn answer(
        &self,
        request: &Request,
        script: &Script,
        token: Option<&str>,
    ) -> Result<Answer, StubError> {
        let Some(key) = key_of(request) else {
            return Ok(Answer::Failed { reason: "not a url".into() });
        };
        let mut answers = self.answers.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = answers.get(&key) {
            return Ok(Answer::Http { status: c.status, body: c.body.clone() });
        }
        if answers.len() >= ANSWERS_MAX {
            return Err(StubError::Full);
        }
        let h = hash(self.seed, &[key.0.as_bytes(), key.1.as_bytes(), &key.2]);
        let failed = (h % 100) < u64::from(self.failure_pct) || token == Some("@!");
        let wanted = explore::answer_for_token(script, token.unwrap_or("@*"));
        let (status, body) = match wanted {
            Some(Answer::Http { status, body }) if !failed => (status, body),
            _ => (503, FAILURE_BODY.to_vec()),
        };
        let max_ms = u64::try_from(self.latency_max.as_millis()).unwrap_or(u64::MAX);
        let latency = Duration::from_millis((h >> 8) % max_ms.saturating_add(1));
        answers.insert(key, Canned { status, body: body.clone(), latency, expected: 0, asked: 0 });
        Ok(Answer::Http { status, body })
    }

    /// The answer to a request the stub received, counted.
    fn asked(&self, key: &Key) -> Option<Canned> {
        let mut answers = self.answers.lock().unwrap_or_else(|p| p.into_inner());
        let c = answers.get_mut(key)?;
        c.asked = c.asked.saturating_add(1);
        Some(c.clone())
    }

    /// A webhook the oracle applied made `request`: the node may ask it once more (fewer when
    /// its script cache answers).
    pub fn expect(&self, request: &Request) {
        let Some(key) = key_of(request) else { return };
        if let Some(c) = self.answers.lock().unwrap_or_else(|p| p.into_inner()).get_mut(&key) {
            c.expected = c.expected.saturating_add(1);
        }
    }

    /// Requests the node made more often than the webhooks that needed them: a script's effect
    /// repeated (duplicates of an event in flight, or a retry after a crash before its answer was
    /// journaled).
    pub fn repeated(&self) -> u64 {
        let answers = self.answers.lock().unwrap_or_else(|p| p.into_inner());
        answers.values().map(|c| c.asked.saturating_sub(c.expected)).sum()
    }
}

/// Serves `stub` on each `host:port` (loopback only) until the returned handles are aborted.
pub async fn serve(stub: Arc<Stub>, hosts: &[String]) -> Result<Vec<tokio::task::JoinHandle<()>>, StubError> {
    let mut tasks = Vec::new();
    for host in hosts {
        let addr: SocketAddr = match host.strip_prefix("localhost:") {
            Some(port) => format!("127.0.0.1:{port}").parse(),
            None => host.parse(),
        }
        .map_err(|_| StubError::NotLoopback(host.clone()))?;
        if !addr.ip().is_loopback() {
            return Err(StubError::NotLoopback(host.clone()));
        }
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| StubError::Bind { addr: host.clone(), source })?;
        let stub = stub.clone();
        let query = warp::query::raw().or(warp::any().map(String::new)).unify();
        let route = warp::method()
            .and(warp::path::full())
            .and(query)
            .and(warp::header::optional::<u64>("content-length"))
            .and(warp::body::bytes())
            .then(
                move |method: warp::http::Method,
                      path: warp::path::FullPath,
                      query: String,
                      length: Option<u64>,
                      body: hyper::body::Bytes| {
                    let stub = stub.clone();
                    async move {
                        stub.requests.fetch_add(1, Ordering::Relaxed);
                        // A GET has no length (warp's limit would refuse it); a longer body is refused.
                        if length.is_some_and(|n| n > BODY_BYTES_MAX) || body.len() as u64 > BODY_BYTES_MAX {
                            stub.unexpected.fetch_add(1, Ordering::Relaxed);
                            return warp::http::Response::builder()
                                .status(413)
                                .body(Vec::new())
                                .unwrap_or_default();
                        }
                        let mut target = path.as_str().to_string();
                        if !query.is_empty() {
                            target.push('?');
                            target.push_str(&query);
                        }
                        let key = (method.as_str().to_string(), target, body.to_vec());
                        let reply = |status: u16, body: Vec<u8>| {
                            warp::http::Response::builder()
                                .status(status)
                                .header("content-type", "application/json")
                                .body(body)
                                .unwrap_or_default()
                        };
                        match stub.asked(&key) {
                            Some(c) => {
                                tokio::time::sleep(c.latency).await;
                                reply(c.status, c.body)
                            }
                            None => {
                                stub.unexpected.fetch_add(1, Ordering::Relaxed);
                                reply(404, br#"{"error":"the oracle never asked for this request"}"#.to_vec())
                            }
                        }
                    }
                },
            );
        tasks.push(tokio::spawn(warp::serve(route).incoming(listener).run()));
    }
    Ok(tasks)
}
