//! The public listener against slow and greedy clients, on the real `phonetree serve` over
//! loopback: hundreds of slow connections do not stop a webhook, slow and idle connections are
//! closed after the header read timeout, connections over the cap and webhooks over the in-flight
//! cap get 503 (with `Retry-After`) at once, hyper's own rejections carry the JSON error body,
//! and `/readyz` reads a cached probe instead of the store.
//!
//! Timeouts here are hang detectors only: a node that hangs fails the test instead of stalling it.

use crate::common;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use warp::Filter;

/// Longer than anything here should take: only a hang reaches it.
const HANG: Duration = Duration::from_secs(20);

fn node_with(t: &tempfile::TempDir, env: &[(&str, &str)]) -> Node {
    Node::start_with(&t.path().join("data"), &machines_dir(t.path()), env)
}

/// A raw HTTP/1.1 exchange: writes `request`, reads until the server closes (or `HANG`); returns
/// the status and the body.
async fn raw(addr: &str, request: &[u8]) -> (u16, Vec<u8>) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(request).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(HANG, s.read_to_end(&mut answer)).await.expect("the server answers").unwrap();
    split(&answer)
}

fn split(answer: &[u8]) -> (u16, Vec<u8>) {
    let text = String::from_utf8_lossy(answer);
    let status = text.get(9..12).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("{text:?}"));
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (status, body.as_bytes().to_vec())
}

fn error_code(body: &[u8]) -> String {
    let v: Value = serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("{e}: not a JSON body: {:?}", String::from_utf8_lossy(body)));
    assert!(v["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
    v["error"]["code"].as_str().unwrap().to_string()
}

/// Opens a connection that sends the start of a request head, then one more byte every `every`
/// until the server closes it; resolves to how long it stayed open.
async fn slow_client(addr: String, every: Duration) -> Duration {
    slow_client_reporting(addr, every, None).await
}

/// [`slow_client`] that says on `trickling` once its head and a first trickled byte were written
/// (or drops the sender unused when the server closes it first).
async fn slow_client_reporting(
    addr: String,
    every: Duration,
    mut trickling: Option<tokio::sync::mpsc::Sender<()>>,
) -> Duration {
    let start = Instant::now();
    let mut s = TcpStream::connect(&addr).await.unwrap();
    s.write_all(b"POST /webhooks/vca HTTP/1.1\r\nHost: phonetree\r\nX-Slow: ").await.unwrap();
    let mut buf = [0u8; 256];
    loop {
        tokio::select! {
            read = s.read(&mut buf) => match read {
                Ok(0) | Err(_) => return start.elapsed(),
                Ok(_) => {}
            },
            _ = tokio::time::sleep(every) => {
                if s.write_all(b"a").await.is_err() {
                    return start.elapsed();
                }
                if let Some(tx) = trickling.take() {
                    let _ = tx.send(()).await;
                }
            }
        }
    }
}

/// `count` slow clients on `addr`, and once each has trickled its first byte (or was closed
/// first) and the node's listener has no connection left waiting to be accepted: the event the
/// tests wait on instead of a sleep.
async fn slow_clients(addr: &str, count: usize, every: Duration) -> Vec<tokio::task::JoinHandle<Duration>> {
    let (tx, mut rx) = tokio::sync::mpsc::channel(count);
    let slow: Vec<_> = (0..count)
        .map(|_| tokio::spawn(slow_client_reporting(addr.to_string(), every, Some(tx.clone()))))
        .collect();
    drop(tx);
    let mut trickling = 0;
    while tokio::time::timeout(HANG, rx.recv()).await.expect("the slow clients connect").is_some() {
        trickling += 1;
    }
    println!("{trickling} of {count} slow clients open and trickling");
    // The listener's accept queue (`/proc/net/tcp`'s rx_queue of a LISTEN socket) is empty: the node
    // itself holds every connection the kernel took for it.
    let port = addr.rsplit(':').next().and_then(|p| p.parse::<u16>().ok()).expect("a port");
    let start = Instant::now();
    while let Some(queued) = accept_queue(port) {
        if queued == 0 {
            break;
        }
        assert!(start.elapsed() < HANG, "{queued} connections still wait to be accepted");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    slow
}

/// How many connections wait in the accept queue of the loopback listener on `port` (Linux's
/// `/proc/net/tcp`), or `None` where that cannot be read.
fn accept_queue(port: u16) -> Option<u64> {
    let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
    let local = format!(":{port:04X}");
    table.lines().skip(1).find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        // local_address, rem_address, st (0A = LISTEN), tx_queue:rx_queue
        (f.get(1)?.ends_with(&local) && *f.get(3)? == "0A")
            .then(|| u64::from_str_radix(f.get(4)?.split(':').nth(1)?, 16).ok())
            .flatten()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_slow_connections_do_not_stop_a_webhook() {
    const SLOW: usize = 500;
    let t = tempfile::tempdir().unwrap();
    let n = node_with(&t, &[]);
    // Every slow connection is open and trickling before the webhook is sent.
    let slow = slow_clients(&n.addr, SLOW, Duration::from_millis(500)).await;
    let client = client_within(HANG);
    let start = Instant::now();
    let a = try_post(&client, &n.url("/webhooks/vca"), Vca::abc("s-busy", "e1", Some("1"), None).body())
        .await
        .expect("the webhook is answered while 500 slow clients hold connections");
    let latency = start.elapsed();
    assert_eq!((a.status, a.how.as_str()), (200, "applied"));
    println!("webhook answered in {latency:?} beside {SLOW} slow connections");
    let open = slow.iter().filter(|h| !h.is_finished()).count();
    println!("{open} of the {SLOW} slow connections were still open when it was answered");
    for h in slow {
        h.abort();
    }
    assert!(!n.log().contains(" ERROR "), "no error logged for slow clients:\n{}", n.log());
}

#[tokio::test]
async fn slow_and_idle_connections_are_closed_after_the_header_read_timeout() {
    let t = tempfile::tempdir().unwrap();
    let n = node_with(&t, &[("PHONETREE_HEADER_READ_TIMEOUT_SECS", "1")]);
    // A byte every 100 ms never finishes the head: the connection is closed after about 1 s.
    let open = tokio::time::timeout(HANG, slow_client(n.addr.clone(), Duration::from_millis(100)))
        .await
        .expect("a slow client is disconnected");
    println!("a slow client was disconnected after {open:?} (header read timeout 1 s)");
    assert!(open >= Duration::from_millis(900), "not before the timeout: {open:?}");

    // A kept-alive connection, idle after its answer, is closed too.
    let mut s = TcpStream::connect(&n.addr).await.unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: phonetree\r\n\r\n").await.unwrap();
    let mut buf = vec![0u8; 4096];
    let got = s.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..got]).contains("alive"));
    let idle = Instant::now();
    let end = tokio::time::timeout(HANG, s.read(&mut buf)).await.expect("an idle connection is closed");
    assert!(matches!(end, Ok(0) | Err(_)), "{end:?}");
    println!("an idle kept-alive connection was closed after {:?}", idle.elapsed());
    assert!(!n.log().contains(" ERROR "), "timeouts are not errors:\n{}", n.log());
}

#[tokio::test]
async fn connections_over_the_cap_get_503_and_webhooks_go_on_after() {
    let t = tempfile::tempdir().unwrap();
    let n = node_with(&t, &[("PHONETREE_MAX_CONNECTIONS", "4")]);
    // Four kept-alive connections that each carried a webhook (promoted: an idle unauthenticated
    // one would be evicted to make room).
    let mut held = Vec::new();
    for i in 0..4 {
        let mut s = TcpStream::connect(&n.addr).await.unwrap();
        let vca = Vca::abc(&format!("s-held-{i}"), "e1", Some("1"), None).body();
        let request = format!(
            "POST /webhooks/vca HTTP/1.1\r\nHost: phonetree\r\nContent-Length: {}\r\n\r\n{vca}",
            vca.len()
        );
        s.write_all(request.as_bytes()).await.unwrap();
        let mut buf = vec![0u8; 8192];
        let got = tokio::time::timeout(HANG, s.read(&mut buf)).await.expect("answered").unwrap();
        assert!(buf[..got].starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&buf[..got]));
        held.push(s);
    }
    let (status, body) = raw(&n.addr, b"GET /healthz HTTP/1.1\r\nHost: phonetree\r\n\r\n").await;
    assert_eq!((status, error_code(&body).as_str()), (503, "too_many_connections"));
    drop(held);
    // The node sees the closed connections within moments; then webhooks are served again.
    let client = client_within(HANG);
    let start = Instant::now();
    loop {
        let a =
            try_post(&client, &n.url("/webhooks/vca"), Vca::abc("s-cap", "e1", Some("1"), None).body()).await;
        match a {
            Ok(a) if a.status == 200 => break,
            other => assert!(start.elapsed() < HANG, "not served again: {:?}", other.map(|a| a.status)),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn hypers_own_rejections_carry_the_json_error_body() {
    let t = tempfile::tempdir().unwrap();
    let n = node_with(&t, &[]);
    let vca = Vca::abc("s-bad", "e1", Some("1"), None).body();

    let bad_length =
        format!("POST /webhooks/vca HTTP/1.1\r\nHost: phonetree\r\nContent-Length: abc\r\n\r\n{vca}");
    let (status, body) = raw(&n.addr, bad_length.as_bytes()).await;
    assert_eq!((status, error_code(&body).as_str()), (400, "malformed_request"));

    let two_lengths = format!(
        "POST /webhooks/vca HTTP/1.1\r\nHost: phonetree\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\n{vca}"
    );
    let (status, body) = raw(&n.addr, two_lengths.as_bytes()).await;
    assert_eq!((status, error_code(&body).as_str()), (400, "malformed_request"));

    let mut many = String::from("GET /healthz HTTP/1.1\r\nHost: phonetree\r\n");
    for i in 0..100 {
        many.push_str(&format!("X-Header-{i}: {i}\r\n"));
    }
    many.push_str("\r\n");
    let (status, body) = raw(&n.addr, many.as_bytes()).await;
    assert_eq!((status, error_code(&body).as_str()), (431, "headers_too_large"));

    let big = format!("GET /healthz HTTP/1.1\r\nHost: phonetree\r\nX-Big: {}\r\n\r\n", "a".repeat(17_000));
    let (status, body) = raw(&n.addr, big.as_bytes()).await;
    assert_eq!((status, error_code(&body).as_str()), (431, "headers_too_large"));

    // A body announced but not sent in time: 408 with the JSON body.
    let t2 = tempfile::tempdir().unwrap();
    let n2 = node_with(&t2, &[("PHONETREE_BODY_READ_TIMEOUT_SECS", "1")]);
    let mut s = TcpStream::connect(&n2.addr).await.unwrap();
    s.write_all(b"POST /webhooks/vca HTTP/1.1\r\nHost: phonetree\r\nContent-Length: 100\r\n\r\n{\"a\":")
        .await
        .unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(HANG, s.read_to_end(&mut answer)).await.expect("answered").unwrap();
    let (status, body) = split(&answer);
    assert_eq!(
        (status, error_code(&body).as_str()),
        (408, "body_timeout"),
        "{}",
        String::from_utf8_lossy(&body)
    );
    assert!(!n.log().contains(" ERROR ") && !n2.log().contains(" ERROR "), "{}", n.log());
}

/// The shop's API for `order_status`, holding every answer until `release`.
struct HeldApi {
    base: String,
    seen: Arc<Mutex<HashMap<String, usize>>>,
    release: Arc<Notify>,
}

impl HeldApi {
    async fn start() -> HeldApi {
        let seen: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
        let release = Arc::new(Notify::new());
        let (log, gate) = (seen.clone(), release.clone());
        let route = warp::path!("orders" / String).then(move |order: String| {
            let (log, gate) = (log.clone(), gate.clone());
            async move {
                *log.lock().unwrap().entry(order).or_default() += 1;
                gate.notified().await;
                warp::http::Response::builder()
                    .status(200)
                    .body(serde_json::json!({"data": {"code": 2, "eta": "-"}}).to_string())
                    .unwrap()
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(warp::serve(route).incoming(listener).run());
        HeldApi { base, seen, release }
    }

    fn asked(&self) -> usize {
        self.seen.lock().unwrap().values().sum()
    }
}

fn order_call(
    session: &str,
    event: &str,
    status: &'static str,
    dtmf: Option<&str>,
    id: Option<&str>,
) -> String {
    Vca {
        session,
        event,
        dtmf,
        client_action_id: id,
        status,
        direction: "INBOUND",
        source: "+6591178965",
        destination: "+6568880002",
        event_data: false,
    }
    .body()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_over_the_in_flight_cap_get_503_with_retry_after_not_a_hang() {
    let api = HeldApi::start().await;
    let t = tempfile::tempdir().unwrap();
    let dir = machines_dir(t.path());
    let text = std::fs::read_to_string(repo().join("machines/order_status.toml")).unwrap();
    let text = text
        .replace("127.0.0.1:8090", api.base.trim_start_matches("http://"))
        .replace("timeout_ms = 2000", "timeout_ms = 5000");
    std::fs::write(dir.join("order_status.toml"), text).unwrap();
    let n = Node::start_with(&t.path().join("data"), &dir, &[("PHONETREE_MAX_IN_FLIGHT", "2")]);
    let client = client_within(HANG);
    let url = n.url("/webhooks/vca");
    // Two calls key in an order number: their webhooks wait on the API, in flight.
    let mut held = Vec::new();
    for (i, order) in ["100001#", "100002#"].into_iter().enumerate() {
        let session = format!("s-held-{i}");
        let first =
            try_post(&client, &url, order_call(&session, "e1", "CALL_RECEIVED", None, None)).await.unwrap();
        let id = first.client_action_id();
        let body = order_call(&session, "e2", "DTMF_RECEIVED", Some(order), id.as_deref());
        let (client, url) = (client.clone(), url.clone());
        held.push(tokio::spawn(async move { try_post(&client, &url, body).await }));
    }
    let start = Instant::now();
    while api.asked() < 2 {
        assert!(start.elapsed() < HANG, "the API was not asked twice");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A third webhook: refused at once with 503, Retry-After and the JSON error.
    let r = client
        .post(&url)
        .body(order_call("s-third", "e1", "CALL_RECEIVED", None, None))
        .send()
        .await
        .expect("answered, not timed out");
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers().get("retry-after").map(|v| v.to_str().unwrap().to_string()), Some("1".into()));
    assert_eq!(error_code(&r.bytes().await.unwrap()), "overloaded");
    // Health stays reachable while webhooks are at the cap.
    assert_eq!(client.get(n.url("/healthz")).send().await.unwrap().status(), 200);
    api.release.notify_waiters();
    for h in held {
        let a = h.await.unwrap().expect("the held webhooks are answered");
        assert_eq!((a.status, a.how.as_str()), (200, "applied"));
    }
    let again =
        try_post(&client, &url, order_call("s-third", "e1", "CALL_RECEIVED", None, None)).await.unwrap();
    assert_eq!((again.status, again.how.as_str()), (200, "applied"), "the retry is served");
}

#[tokio::test]
async fn readyz_reads_a_cached_probe_and_never_the_store_itself() {
    let t = tempfile::tempdir().unwrap();
    let n = node_with(&t, &[]);
    let client = client_within(HANG);
    let start = Instant::now();
    let mut checked = HashSet::new();
    for _ in 0..200 {
        let r: Value = client.get(n.url("/readyz")).send().await.unwrap().json().await.unwrap();
        assert_eq!(r["status"], "ready");
        checked.insert(r["checkedAt"].as_u64().unwrap());
    }
    let elapsed = start.elapsed();
    // One probe per `HEALTH_INTERVAL` at most, however many readers: a probe per request would give
    // 200 different times.
    let interval = phonetree::http::health::HEALTH_INTERVAL;
    let most = usize::try_from(elapsed.as_millis() / interval.as_millis()).unwrap() + 2;
    println!("200 /readyz in {elapsed:?}: {} distinct probes", checked.len());
    assert!(checked.len() <= most, "{} probes in {elapsed:?}", checked.len());
    // And it follows the store: a stored call shows in `sessions` after the next probe.
    let a = post(&n.url("/webhooks/vca"), Vca::abc("s-ready", "e1", Some("1"), None).body()).await;
    assert_eq!(a.status, 200);
    assert_eq!(n.ready_now().await["sessions"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_ends_the_node_in_bounded_time_beside_slow_connections() {
    let t = tempfile::tempdir().unwrap();
    let mut n = node_with(&t, &[]);
    let slow = slow_clients(&n.addr, 50, Duration::from_millis(200)).await;
    let start = Instant::now();
    let status = tokio::time::timeout(HANG, tokio::task::spawn_blocking(move || (n.terminate(), n)))
        .await
        .expect("the node exits (SHUTDOWN_GRACE bounds the wait for connections)")
        .unwrap();
    println!("SIGTERM beside 50 slow connections: exited after {:?}", start.elapsed());
    assert!(status.0.success(), "{}", status.1.log());
    assert!(status.1.log().contains("store flushed"), "{}", status.1.log());
    for h in slow {
        h.abort();
    }
}
