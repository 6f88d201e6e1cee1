//! A stand-in for 8x8's Send Callflow API (`POST .../callflows`) on loopback: it answers every
//! request `CREATED` with a session id of its own and keeps the callflow it was sent, which the
//! oracle compares with the engine's opening (`engine::start_outbound`).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use warp::Filter;

use super::stub::StubError;

/// Largest callflow the stand-in reads: 8x8's own limits are far below it.
const BODY_BYTES_MAX: u64 = 256 * 1024;
/// Most callflows kept until the oracle takes them (one per call in flight, taken at once).
pub const KEPT_MAX: usize = 100_000;

/// The callflows the stand-in received, by the session id it answered with.
pub struct Api {
    run: u64,
    next: AtomicU64,
    received: Mutex<HashMap<String, Vec<u8>>>,
    /// Requests it refused (not a POST to `/api/v1/subaccounts/{sub}/callflows`, or too many kept).
    pub refused: AtomicU64,
}

impl Api {
    /// The callflow the request that made `session` carried (taken: asked once).
    pub fn take(&self, session: &str) -> Option<Vec<u8>> {
        self.received.lock().unwrap_or_else(|p| p.into_inner()).remove(session)
    }

    fn receive(&self, path: &str, body: Vec<u8>) -> Option<String> {
        let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
        if !matches!(parts.as_slice(), ["api", "v1", "subaccounts", _, "callflows"]) {
            return None;
        }
        let mut received = self.received.lock().unwrap_or_else(|p| p.into_inner());
        if received.len() >= KEPT_MAX {
            return None;
        }
        let session = format!("lt-out-{:x}-{}", self.run, self.next.fetch_add(1, Ordering::Relaxed));
        received.insert(session.clone(), body);
        Some(session)
    }
}

/// Serves the stand-in on `addr` (loopback only) until the handle is aborted; `run` goes into its
/// session ids.
pub async fn serve(addr: SocketAddr, run: u64) -> Result<(Arc<Api>, tokio::task::JoinHandle<()>), StubError> {
    if !addr.ip().is_loopback() {
        return Err(StubError::NotLoopback(addr.to_string()));
    }
    let api = Arc::new(Api {
        run,
        next: AtomicU64::new(0),
        received: Mutex::new(HashMap::new()),
        refused: AtomicU64::new(0),
    });
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| StubError::Bind { addr: addr.to_string(), source })?;
    let shared = api.clone();
    let route = warp::post()
        .and(warp::path::full())
        .and(warp::body::content_length_limit(BODY_BYTES_MAX))
        .and(warp::body::bytes())
        .map(move |path: warp::path::FullPath, body: hyper::body::Bytes| {
            let reply = |status: u16, value: serde_json::Value| {
                warp::http::Response::builder()
                    .status(status)
                    .header("content-type", "application/json")
                    .body(value.to_string().into_bytes())
                    .unwrap_or_default()
            };
            match shared.receive(path.as_str(), body.to_vec()) {
                Some(session) => reply(
                    200,
                    serde_json::json!({"sessionId": session, "sessionStatus": "CREATED",
                        "callFlowRequestId": session, "statusCode": 1, "statusMessage": "Created"}),
                ),
                None => {
                    shared.refused.fetch_add(1, Ordering::Relaxed);
                    reply(
                        400,
                        serde_json::json!({"sessionStatus": "NOT_CREATED", "statusCode": -1,
                        "statusMessage": "not a Send Callflow request the load test expects"}),
                    )
                }
            }
        });
    let task = tokio::spawn(warp::serve(route).incoming(listener).run());
    Ok((api, task))
}
