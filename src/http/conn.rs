//! Serving one listener on hyper directly (warp's server sets no limits): the allow-list at accept,
//! the connection cap and the unauthenticated connections' budget (`budget`), the header read
//! timeout (which also ends idle kept-alive connections), header size limits, the body read
//! deadline, the gate in front of the routes (allow-list per request and the in-flight cap on the
//! public listener, the token on the admin one), JSON bodies on hyper's own rejections and 4xx
//! answers to an HTTP/2 preface and `CONNECT`, and graceful shutdown.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tracing::{debug, warn};
use warp::http::{HeaderValue, Method, Request, StatusCode};
use warp::hyper::body::Bytes;

use super::allow::AllowList;
use super::auth::AdminAuth;
use super::budget::{Admission, Budget, Conn, Registered};
use super::limits::{
    ACCEPT_BACKOFF, EVICT_WAIT, FORBIDDING_MAX, HEADER_BYTES_MAX, HEADERS_MAX, Limits, READ_BUFFER_BYTES,
    REFUSE_LINGER, REFUSING_MAX, RETRY_AFTER_SECS, RateLimited,
};
use super::reply::error;
use crate::node::{self, metrics};

type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// A request as the routes get it: its body under the read deadline.
pub(crate) type Routed = Request<Timed<Incoming>>;
/// The routes of one listener (a warp filter made a function).
pub(crate) type Handler =
    Arc<dyn Fn(Routed) -> Pin<Box<dyn Future<Output = warp::reply::Response> + Send>> + Send + Sync>;

static OVER_CAP: RateLimited = RateLimited::new();
static ACCEPT_FAILED: RateLimited = RateLimited::new();
static REFUSED_SOURCE: RateLimited = RateLimited::new();
static OVER_BUDGET: RateLimited = RateLimited::new();

/// How an HTTP/2 connection opens (RFC 9113, 3.4): this listener speaks HTTP/1.1 only.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2";

/// What a listener checks before its routes.
pub(crate) enum Gate {
    /// Connections only from allowed sources and trusted proxies (others are refused at accept);
    /// requests other than the health checks (webhooks) only from allowed clients (a trusted
    /// proxy's are judged by its forwarding headers), and at most `in_flight` permits' worth
    /// answered at once, each taken once its body is read and its credentials checked.
    Public { allow: AllowList, in_flight: Arc<Semaphore> },
    /// Every request names this listener in `Host`, comes from no other origin, is JSON when it
    /// is not a GET, and carries the admin token (if one is configured), but the console's page
    /// and assets (`console::is_public`), which carry no data, need no token.
    Admin { auth: AdminAuth },
}

/// Serves `listener` until `stop` turns true, then closes the connections that are not answering
/// a request and waits for the others to finish theirs (the caller bounds that wait).
pub(crate) async fn serve(
    listener: TcpListener,
    handler: Handler,
    gate: Arc<Gate>,
    limits: Limits,
    mut stop: watch::Receiver<bool>,
) {
    // Counted in `u32` permits (what `acquire_many` takes); more would exhaust descriptors anyway.
    let cap = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    let open = Arc::new(Semaphore::new(cap as usize));
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(READ_BUFFER_BYTES)
        .max_header_size(HEADER_BYTES_MAX)
        .max_headers(HEADERS_MAX)
        .keep_alive(true)
        .writev(false);
    let builder = Arc::new(builder);
    let refusing = Arc::new(Semaphore::new(REFUSING_MAX));
    let forbidding = Arc::new(Semaphore::new(FORBIDDING_MAX));
    let budget = match &*gate {
        Gate::Public { .. } => {
            Some(Arc::new(Budget::new(limits.max_connections, limits.header_read_timeout)))
        }
        Gate::Admin { .. } => None,
    };
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.wait_for(|stop| *stop) => break,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(e) if is_connection_error(&e) => continue,
            Err(e) => {
                if let Some(skipped) = ACCEPT_FAILED.allow(node::now_ms()) {
                    warn!(error = %e, skipped, "cannot accept connections; retrying");
                }
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let source = peer.ip().to_canonical();
        if let Gate::Public { allow, .. } = &*gate
            && !allow.admits_peer(source)
        {
            // Refused before it holds a slot: a 403 in one write, and closed.
            if let Some(skipped) = REFUSED_SOURCE.allow(node::now_ms()) {
                debug!(%peer, skipped, "connection refused: source not in --allow-from nor --trusted-proxy");
            }
            match forbidding.clone().try_acquire_owned() {
                Ok(refuser) => {
                    tokio::spawn(refuse(stream, forbidden_response(), refuser));
                }
                Err(_) => drop(stream),
            }
            continue;
        }
        // A connection of the public listener starts unauthenticated, in the budget.
        let tracked = match (&budget, &*gate) {
            (Some(budget), Gate::Public { allow, .. }) => {
                match budget.admit(source, !allow.is_trusted_proxy(source)) {
                    Ok(tracked) => tracked,
                    Err(_) => {
                        if let Some(skipped) = OVER_BUDGET.allow(node::now_ms()) {
                            warn!(
                                %source,
                                skipped,
                                "connection refused: too many unauthenticated connections, none idle"
                            );
                        }
                        over_cap(stream, &refusing);
                        continue;
                    }
                }
            }
            _ => Conn::unbudgeted(source),
        };
        let registered = Registered(tracked.clone());
        let permit = match open.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                // Every slot taken: the oldest idle unauthenticated connection, if any, makes room.
                let freed = match &budget {
                    Some(budget) if budget.evict_oldest_idle(&tracked) => {
                        tokio::time::timeout(EVICT_WAIT, open.clone().acquire_owned())
                            .await
                            .ok()
                            .and_then(Result::ok)
                    }
                    _ => None,
                };
                match freed {
                    Some(permit) => permit,
                    None => {
                        drop(registered);
                        if let Some(skipped) = OVER_CAP.allow(node::now_ms()) {
                            warn!(
                                max = limits.max_connections,
                                skipped, "connection refused: too many open connections"
                            );
                        }
                        over_cap(stream, &refusing);
                        continue;
                    }
                }
            }
        };
        let _ = stream.set_nodelay(true);
        let service = {
            let (gate, handler, tracked) = (gate.clone(), handler.clone(), tracked.clone());
            let body_timeout = limits.body_read_timeout;
            hyper::service::service_fn(move |req: Request<Incoming>| {
                let (gate, handler) = (gate.clone(), handler.clone());
                let busy = tracked.busy();
                let tracked = tracked.clone();
                async move {
                    if req.method() == Method::CONNECT {
                        drop(busy);
                        return Ok::<_, Infallible>(connect_refused());
                    }
                    let late = Arc::new(AtomicBool::new(false));
                    let req = req.map(|body| Timed::new(body, body_timeout, late.clone()));
                    let mut response = gate.pass(peer, req, handler, tracked).await;
                    if late.load(Ordering::Acquire) {
                        // However the routes reported the failed read, the client was too slow.
                        response = error(
                            StatusCode::REQUEST_TIMEOUT,
                            "body_timeout",
                            &format!("the body was not sent within {} s", body_timeout.as_secs()),
                        );
                    }
                    drop(busy);
                    Ok::<_, Infallible>(response)
                }
            })
        };
        let (builder, mut stop) = (builder.clone(), stop.clone());
        let header_read_timeout = limits.header_read_timeout;
        tokio::spawn(async move {
            let _registered = registered;
            // The first bytes, to answer an HTTP/2 preface (hyper would close without a word);
            // bounded like a head (and ended like any idle connection).
            let mut first = [0u8; H2_PREFACE.len()];
            let peeked = tokio::select! {
                peeked = tokio::time::timeout(header_read_timeout, stream.peek(&mut first)) => peeked,
                _ = stop.wait_for(|stop| *stop) => return,
                () = tracked.dismissed() => return,
            };
            match peeked {
                Ok(Ok(n)) if n > 0 => {
                    if first.get(..n).is_some_and(|head| head.starts_with(H2_PREFACE)) {
                        refuse(stream, http2_response(), permit).await;
                        return;
                    }
                }
                // Closed, failed or silent past the header read timeout.
                _ => return,
            }
            let io = TokioIo::new(Rewrite { inner: stream, out: Vec::new(), at: 0 });
            let mut conn = std::pin::pin!(builder.serve_connection(io, service));
            let ended = tokio::select! {
                ended = conn.as_mut() => Some(ended),
                _ = stop.wait_for(|stop| *stop) => None,
                // Evicted, or unauthenticated and idle too long.
                () = tracked.dismissed() => None,
            };
            let ended = match ended {
                Some(ended) => ended,
                // Stopping (or dismissed), and no request is being answered (idle, or a head still
                // coming): close now.
                None if tracked.active() == 0 => Ok(()),
                None => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = ended {
                // A client that went away, timed out or sent garbage: its own business.
                debug!(%peer, error = %e, "connection ended with an error");
            }
            drop(permit);
        });
        // The new connection's task runs (and reads its first request) before the next accept:
        // under a flood, accepting far ahead of reading would let later arrivals evict a new
        // connection whose webhook is already waiting in its socket.
        tokio::task::yield_now().await;
    }
    drop(listener);
    // Every connection's permit back: all have ended (the caller bounds this wait).
    let _ = open.acquire_many(cap).await;
}

impl Gate {
    async fn pass(
        &self,
        peer: SocketAddr,
        mut req: Routed,
        handler: Handler,
        conn: Arc<Conn>,
    ) -> warp::reply::Response {
        match self {
            // Everything but the health checks, so no spelling of a webhook's path slips past.
            Gate::Public { allow, in_flight } if !matches!(req.uri().path(), "/healthz" | "/readyz") => {
                let endpoint = match req.uri().path() {
                    "/webhooks/vca" => Some("vca"),
                    "/webhooks/vss" => Some("vss"),
                    _ => None,
                };
                let client = allow.client(peer.ip(), req.headers());
                if !allow.permits(client) {
                    if let Some(endpoint) = endpoint {
                        metrics::webhook_answered(endpoint, "forbidden_source");
                    }
                    if let Some(skipped) = REFUSED_SOURCE.allow(node::now_ms()) {
                        debug!(%peer, ?client, skipped, "webhook refused: source not in --allow-from");
                    }
                    return error(
                        StatusCode::FORBIDDEN,
                        "forbidden_source",
                        "webhooks are accepted only from the addresses of --allow-from",
                    );
                }
                // The routes take the in-flight permit once the body is read and authenticated.
                req.extensions_mut().insert(Admission::new(conn, in_flight.clone()));
                let started = std::time::Instant::now();
                let response = handler(req).await;
                if let Some(endpoint) = endpoint {
                    metrics::webhook_latency(endpoint, started.elapsed());
                }
                response
            }
            Gate::Public { .. } => handler(req).await,
            Gate::Admin { auth } => {
                let public = super::console::is_public(req.method(), req.uri().path());
                let checked = auth
                    .check_source(req.headers())
                    .and_then(|()| if public { Ok(()) } else { auth.check(req.headers()) })
                    .and_then(|()| auth.check_json(req.method(), req.headers()));
                match checked {
                    Ok(()) => handler(req).await,
                    Err(denied) => {
                        debug!(%peer, reason = %denied, "admin request refused");
                        let (status, code) = denied.answer();
                        error(status, code, &denied.to_string())
                    }
                }
            }
        }
    }
}

/// Failures of one connection that `accept` reports but that say nothing about the listener.
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
    )
}

/// Answers a connection over the cap 503 and closes it, or closes it at once when too many are
/// being refused already.
fn over_cap(stream: TcpStream, refusing: &Arc<Semaphore>) {
    match refusing.clone().try_acquire_owned() {
        Ok(refuser) => {
            tokio::spawn(refuse(stream, over_cap_response(), refuser));
        }
        Err(_) => drop(stream),
    }
}

/// Answers a connection `answer` and closes it: once the request's first bytes are in (an answer
/// before the request confuses HTTP clients), the answer in one non-blocking write, then the write
/// side shut and the request read (and dropped), all within `REFUSE_LINGER`, so the close does not
/// reset the connection before the client has read the answer. `_held` (a slot) is given back
/// when it is closed.
async fn refuse(mut stream: TcpStream, answer: Vec<u8>, _held: OwnedSemaphorePermit) {
    let mut sink = [0u8; 1024];
    let answered = async {
        if !matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {
            return;
        }
        let _ = stream.try_write(&answer);
        let _ = stream.shutdown().await;
        while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
    };
    let _ = tokio::time::timeout(REFUSE_LINGER, answered).await;
}

fn over_cap_response() -> Vec<u8> {
    closing_answer(
        StatusCode::SERVICE_UNAVAILABLE,
        &format!("retry-after: {RETRY_AFTER_SECS}\r\n"),
        "too_many_connections",
        "the node has too many open connections; try again shortly",
    )
}

fn forbidden_response() -> Vec<u8> {
    closing_answer(
        StatusCode::FORBIDDEN,
        "",
        "forbidden_source",
        "connections are accepted only from the addresses of --allow-from and --trusted-proxy",
    )
}

fn http2_response() -> Vec<u8> {
    closing_answer(
        StatusCode::BAD_REQUEST,
        "",
        "http2_not_supported",
        "this listener speaks HTTP/1.1 only (8x8 sends webhooks over HTTP/1.1): connect without HTTP/2 prior knowledge",
    )
}

/// `CONNECT` (a proxy's method) is answered 405, and the connection closed.
fn connect_refused() -> warp::reply::Response {
    let mut r = error(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "CONNECT is not served: this node is not a proxy",
    );
    r.headers_mut().insert(warp::http::header::CONNECTION, HeaderValue::from_static("close"));
    r
}

/// A whole HTTP/1.1 answer with a JSON error body, closing the connection; `extra` is more
/// header lines, each ending in CRLF.
fn closing_answer(status: StatusCode, extra: &str, code: &str, message: &str) -> Vec<u8> {
    let body = serde_json::json!({"error": {"code": code, "message": message}}).to_string();
    format!(
        "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\n{extra}connection: close\r\ncontent-length: {}\r\n\r\n{body}",
        status.as_u16(),
        status.canonical_reason().unwrap_or(""),
        body.len()
    )
    .into_bytes()
}

/// The body read deadline has passed (the request is answered 408).
#[derive(Debug, thiserror::Error)]
#[error("body read timed out after {0:?}")]
pub(crate) struct BodyTimeout(Duration);

/// A request body that fails once its deadline passes, and says so in `late`.
pub(crate) struct Timed<B> {
    inner: B,
    deadline: Pin<Box<tokio::time::Sleep>>,
    limit: Duration,
    late: Arc<AtomicBool>,
}

impl<B> Timed<B> {
    fn new(inner: B, limit: Duration, late: Arc<AtomicBool>) -> Timed<B> {
        Timed { inner, deadline: Box::pin(tokio::time::sleep(limit)), limit, late }
    }
}

impl<B> Body for Timed<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => Poll::Ready(frame.map(|f| f.map_err(Into::into))),
            Poll::Pending => match this.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    this.late.store(true, Ordering::Release);
                    Poll::Ready(Some(Err(Box::new(BodyTimeout(this.limit)))))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A connection whose hyper-made error answers (400 on a malformed request or Content-Length,
/// 431 on headers too large, 414 on a URI too long: hyper writes them itself, with an empty body
/// and no hook) are replaced by the same answer with the JSON error body every other error has.
/// Every answer of the routes has a `content-type`; hyper's own have none, which tells them apart.
struct Rewrite {
    inner: TcpStream,
    out: Vec<u8>,
    at: usize,
}

impl Rewrite {
    /// Writes what is left of a replaced answer.
    fn drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.at < self.out.len() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.out[self.at..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.at = self.at.saturating_add(n);
        }
        self.out.clear();
        self.at = 0;
        Poll::Ready(Ok(()))
    }
}

impl AsyncRead for Rewrite {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Rewrite {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        ready!(self.drain(cx))?;
        if let Some(answer) = json_answer(buf) {
            self.out = answer;
            if let Poll::Ready(Err(e)) = self.drain(cx) {
                return Poll::Ready(Err(e));
            }
            return Poll::Ready(Ok(buf.len()));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.drain(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.drain(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// `head` with a JSON body, if it is a whole error answer hyper made (4xx or 5xx, no
/// `content-type`, no body).
fn json_answer(head: &[u8]) -> Option<Vec<u8>> {
    let rest = head.strip_prefix(b"HTTP/1.1 ").or_else(|| head.strip_prefix(b"HTTP/1.0 "))?;
    let end = head.windows(4).position(|w| w == b"\r\n\r\n")?;
    if end.checked_add(4)? != head.len() || !matches!(rest.first(), Some(b'4' | b'5')) {
        return None;
    }
    let lower = head[..end].to_ascii_lowercase();
    let has = |name: &[u8]| lower.windows(name.len()).any(|w| w == name);
    if has(b"\r\ncontent-type:") || has(b"\r\ntransfer-encoding:") {
        return None;
    }
    let status = StatusCode::from_bytes(rest.get(..3)?).ok()?;
    let (code, message) = match status {
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => (
            "headers_too_large",
            format!("the request's headers are over {HEADER_BYTES_MAX} bytes, or over {HEADERS_MAX} headers"),
        ),
        StatusCode::URI_TOO_LONG => ("uri_too_long", "the request's URI is too long".to_string()),
        StatusCode::BAD_REQUEST => (
            "malformed_request",
            "the request could not be read (its request line, a header, or its Content-Length)".to_string(),
        ),
        _ => ("bad_request", "the request could not be read".to_string()),
    };
    let body = serde_json::json!({"error": {"code": code, "message": message}}).to_string();
    Some(
        format!(
            "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
            status.as_u16(),
            status.canonical_reason().unwrap_or(""),
            body.len()
        )
        .into_bytes(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_hypers_bodiless_error_answers_are_replaced() {
        let hyper = b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\ndate: x\r\n\r\n";
        let answer = String::from_utf8(json_answer(hyper).unwrap()).unwrap();
        assert!(answer.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"), "{answer}");
        assert!(answer.ends_with(r#"{"error":{"code":"headers_too_large","message":"the request's headers are over 16384 bytes, or over 64 headers"}}"#), "{answer}");
        let ours = b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n";
        assert_eq!(json_answer(ours), None);
        assert_eq!(json_answer(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"), None);
        assert_eq!(json_answer(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 2\r\n\r\n{}"), None);
    }
}
