//! Floods that must not lock 8x8 out, on the real `phonetree serve` over loopback, with
//! `--allow-from 127.0.0.1/32` and a webhook secret: the attackers' sockets come from 127.0.0.2
//! (outside the allow-list) and from 127.0.0.1 (inside it, without the secret), 8x8's
//! authenticated webhooks from 127.0.0.1. 512 keep-alive sockets probing `/healthz`, and 300 slow
//! bodies, each beside real webhooks of which at least 99% must be answered 200; an HTTP/2
//! preface and `CONNECT` get a 4xx JSON answer.
//!
//! Timeouts here are hang detectors only; latencies are printed (stderr), never asserted.

use crate::common;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::Notify;

/// Longer than anything here should take: only a hang reaches it.
const HANG: Duration = Duration::from_secs(20);
const SECRET: &str = "flood-test-webhook-secret-0123456789";
/// 8x8's address in these tests (allowed), and the attacker's other one (not allowed).
const ALLOWED: &str = "127.0.0.1";
const OUTSIDE: &str = "127.0.0.2";

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn guarded_node(t: &tempfile::TempDir) -> Node {
    Node::start_with(
        &t.path().join("data"),
        &machines_dir(t.path()),
        &[("PHONETREE_ALLOW_FROM", "127.0.0.1/32"), ("PHONETREE_WEBHOOK_SECRET", SECRET)],
    )
}

/// A connection to `addr` from the loopback address `from`.
async fn connect_from(from: IpAddr, addr: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(from, 0))?;
    socket.connect(addr).await
}

/// What one flood of probes saw.
#[derive(Default)]
struct Seen {
    /// Probes answered 200.
    ok: AtomicUsize,
    /// Connections refused with an answer (403, 503) or closed before an answer.
    refused: AtomicUsize,
    /// Probers that have made their first attempt.
    started: AtomicUsize,
    started_all: Notify,
}

/// A keep-alive connection from `from` sending `GET /healthz` every `every`; when the node closes
/// it, it connects again after `again` (an attacker's pace, so the test machine is not saturated).
async fn prober(
    from: IpAddr,
    addr: SocketAddr,
    every: Duration,
    again: Duration,
    seen: Arc<Seen>,
    total: usize,
    stop: Arc<AtomicBool>,
) {
    let mut first = true;
    let mut started = |seen: &Seen| {
        if std::mem::take(&mut first) && seen.started.fetch_add(1, Ordering::AcqRel) + 1 == total {
            seen.started_all.notify_one();
        }
    };
    let mut buf = vec![0u8; 4096];
    while !stop.load(Ordering::Acquire) {
        if let Ok(mut s) = connect_from(from, addr).await {
            loop {
                if s.write_all(b"GET /healthz HTTP/1.1\r\nHost: phonetree\r\n\r\n").await.is_err() {
                    break;
                }
                match s.read(&mut buf).await {
                    Ok(n) if n > 0 && buf[..n].starts_with(b"HTTP/1.1 200") => {
                        seen.ok.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {
                        seen.refused.fetch_add(1, Ordering::Relaxed);
                        break;
                    }
                }
                started(&seen);
                if stop.load(Ordering::Acquire) {
                    return;
                }
                // Idle until the next probe, unless the node closes the connection first.
                tokio::select! {
                    read = s.read(&mut buf) => if matches!(read, Ok(0) | Err(_)) { break },
                    () = tokio::time::sleep(every) => {}
                }
            }
        } else {
            seen.refused.fetch_add(1, Ordering::Relaxed);
        }
        started(&seen);
        tokio::time::sleep(again).await;
    }
}

/// Sends `per_worker` authenticated CALL_ACTION webhooks from each of `workers` senders, each on
/// a new connection from 127.0.0.1, `gap` apart; returns each one's status (0: no answer) and
/// latency.
async fn webhooks(
    node: &Node,
    tag: &str,
    workers: usize,
    per_worker: usize,
    gap: Duration,
) -> Vec<(u16, Duration)> {
    let client = reqwest::Client::builder()
        .local_address(ip(ALLOWED))
        .pool_max_idle_per_host(0)
        .timeout(HANG)
        .build()
        .unwrap();
    let url = node.url("/webhooks/vca");
    let senders = (0..workers).map(|w| {
        let (client, url, tag) = (client.clone(), url.clone(), tag.to_string());
        tokio::spawn(async move {
            let mut answers = Vec::new();
            for i in 0..per_worker {
                let session = format!("s-{tag}-{w}-{i}");
                let body = Vca::abc(&session, "e1", Some("1"), None).body();
                let start = Instant::now();
                let sent = client.post(&url).header("authorization", SECRET).body(body).send().await;
                let status = match sent {
                    Ok(r) => {
                        let status = r.status().as_u16();
                        match r.bytes().await {
                            Ok(_) => status,
                            Err(e) => {
                                eprintln!("{session}: reading the answer: {e:?}");
                                0
                            }
                        }
                    }
                    Err(e) => {
                        eprintln!("{session}: {e:?}");
                        0
                    }
                };
                answers.push((status, start.elapsed()));
                tokio::time::sleep(gap).await;
            }
            answers
        })
    });
    let mut all = Vec::new();
    for s in senders.collect::<Vec<_>>() {
        all.extend(s.await.unwrap());
    }
    all
}

/// Prints (stderr) and checks: at least 99% of `answers` are 200.
fn at_least_99_percent_ok(what: &str, answers: &[(u16, Duration)]) {
    let ok: Vec<Duration> = answers.iter().filter(|(s, _)| *s == 200).map(|(_, d)| *d).collect();
    let mut latencies = ok.clone();
    latencies.sort();
    let pct =
        |p: usize| latencies.get((latencies.len().saturating_sub(1)) * p / 100).copied().unwrap_or_default();
    let mut others = std::collections::BTreeMap::<u16, usize>::new();
    for (status, _) in answers.iter().filter(|(s, _)| *s != 200) {
        *others.entry(*status).or_default() += 1;
    }
    let mut err = std::io::stderr();
    use std::io::Write;
    let _ = writeln!(
        err,
        "{what}: {} of {} webhooks answered 200; latency p50 {:?}, p99 {:?}, max {:?}; others (status: count, 0 = no answer): {others:?}",
        ok.len(),
        answers.len(),
        pct(50),
        pct(99),
        latencies.last().copied().unwrap_or_default(),
    );
    assert!(
        ok.len() * 100 >= answers.len() * 99,
        "{what}: only {} of {} webhooks answered 200 (others: {others:?})",
        ok.len(),
        answers.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_twelve_keep_alive_probes_do_not_lock_8x8_out() {
    const PER_SOURCE: usize = 256;
    let t = tempfile::tempdir().unwrap();
    let n = guarded_node(&t);
    let addr: SocketAddr = n.addr.parse().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let (inside, outside) = (Arc::new(Seen::default()), Arc::new(Seen::default()));
    let mut probers = Vec::new();
    for (from, seen) in [(ALLOWED, &inside), (OUTSIDE, &outside)] {
        for _ in 0..PER_SOURCE {
            probers.push(tokio::spawn(prober(
                ip(from),
                addr,
                Duration::from_secs(3),
                Duration::from_millis(300),
                seen.clone(),
                PER_SOURCE,
                stop.clone(),
            )));
        }
    }
    // Every prober has connected and probed (or been refused) once before the webhooks start.
    for seen in [&inside, &outside] {
        tokio::time::timeout(HANG, async {
            while seen.started.load(Ordering::Acquire) < PER_SOURCE {
                seen.started_all.notified().await;
            }
        })
        .await
        .expect("every prober starts");
    }
    let answers = webhooks(&n, "probed", 4, 50, Duration::from_millis(100)).await;
    stop.store(true, Ordering::Release);
    for p in probers {
        p.abort();
    }
    let mut err = std::io::stderr();
    use std::io::Write;
    let _ = writeln!(
        err,
        "probes from {ALLOWED}: {} answered, {} refused or closed; from {OUTSIDE}: {} answered, {} refused",
        inside.ok.load(Ordering::Relaxed),
        inside.refused.load(Ordering::Relaxed),
        outside.ok.load(Ordering::Relaxed),
        outside.refused.load(Ordering::Relaxed),
    );
    at_least_99_percent_ok("512 keep-alive /healthz probes", &answers);
    assert_eq!(outside.ok.load(Ordering::Relaxed), 0, "a source outside --allow-from is refused at accept");
    assert!(outside.refused.load(Ordering::Relaxed) >= PER_SOURCE);
    assert!(inside.ok.load(Ordering::Relaxed) > 0, "probes from an allowed source are answered");
    assert!(!n.log().contains(" ERROR "), "{}", n.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_hundred_slow_bodies_do_not_hold_the_in_flight_cap() {
    const SLOW: usize = 300;
    let t = tempfile::tempdir().unwrap();
    let n = guarded_node(&t);
    let addr: SocketAddr = n.addr.parse().unwrap();
    // Authenticated heads (the attacker has the secret, or replays 8x8's), bodies a byte at a time.
    let head = format!(
        "POST /webhooks/vca HTTP/1.1\r\nHost: phonetree\r\nAuthorization: {SECRET}\r\n\
         Content-Type: application/json\r\nContent-Length: 4000\r\n\r\n{{"
    );
    let mut slow = Vec::new();
    for _ in 0..SLOW {
        let mut s = connect_from(ip(ALLOWED), addr).await.unwrap();
        s.write_all(head.as_bytes()).await.unwrap();
        slow.push(tokio::spawn(async move {
            let mut buf = [0u8; 512];
            loop {
                tokio::select! {
                    read = s.read(&mut buf) => if matches!(read, Ok(0) | Err(_)) { return },
                    () = tokio::time::sleep(Duration::from_millis(500)) => {
                        if s.write_all(b" ").await.is_err() {
                            return;
                        }
                    }
                }
            }
        }));
    }
    let answers = webhooks(&n, "slow", 4, 25, Duration::from_millis(150)).await;
    let open = slow.iter().filter(|h| !h.is_finished()).count();
    for h in slow {
        h.abort();
    }
    let mut err = std::io::stderr();
    use std::io::Write;
    let _ = writeln!(err, "{open} of the {SLOW} slow bodies were still being sent at the end");
    at_least_99_percent_ok("300 slow bodies", &answers);
    assert!(!n.log().contains(" ERROR "), "{}", n.log());
}

/// Writes `request` from 127.0.0.1, reads until the node closes (or `HANG`): status and JSON body.
async fn exchange(addr: SocketAddr, request: &[u8]) -> (u16, Value) {
    let mut s = connect_from(ip(ALLOWED), addr).await.unwrap();
    s.write_all(request).await.unwrap();
    let mut answer = Vec::new();
    let _ =
        tokio::time::timeout(HANG, s.read_to_end(&mut answer)).await.expect("the node closes the connection");
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status =
        text.get(9..12).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("no answer: {text:?}"));
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    let body = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: not a JSON body: {text:?}"));
    (status, body)
}

#[tokio::test]
async fn an_http2_preface_and_connect_get_a_4xx_json_answer() {
    let t = tempfile::tempdir().unwrap();
    let n = guarded_node(&t);
    let addr: SocketAddr = n.addr.parse().unwrap();
    // The client preface, then an empty SETTINGS frame, as `curl --http2-prior-knowledge` sends.
    let mut h2 = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    h2.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]);
    let (status, body) = exchange(addr, &h2).await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("http2_not_supported")), "{body}");
    for target in ["example.com:443", "127.0.0.1:22"] {
        let connect = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n");
        let (status, body) = exchange(addr, connect.as_bytes()).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (405, Some("method_not_allowed")),
            "{target}: {body}"
        );
    }
    // The node serves on.
    let answers = webhooks(&n, "after", 1, 1, Duration::ZERO).await;
    assert_eq!(answers[0].0, 200);
}

/// A kept-alive POST of `session`'s webhook on `s`, with the secret: the status.
async fn webhook_on(s: &mut TcpStream, session: &str) -> Option<u16> {
    let vca = Vca::abc(session, "e1", Some("1"), None).body();
    let request = format!(
        "POST /webhooks/vca HTTP/1.1\r\nHost: phonetree\r\nAuthorization: {SECRET}\r\nContent-Length: {}\r\n\r\n{vca}",
        vca.len()
    );
    s.write_all(request.as_bytes()).await.ok()?;
    let mut buf = vec![0u8; 16 * 1024];
    let n = tokio::time::timeout(HANG, s.read(&mut buf)).await.expect("answered").ok()?;
    String::from_utf8_lossy(&buf[..n]).get(9..12)?.parse().ok()
}

#[tokio::test]
async fn an_idle_unauthenticated_connection_is_closed_before_an_authenticated_one() {
    let t = tempfile::tempdir().unwrap();
    let n = guarded_node(&t);
    let addr: SocketAddr = n.addr.parse().unwrap();
    // 8x8's connection first, then a health probe's: both kept alive.
    let mut authenticated = connect_from(ip(ALLOWED), addr).await.unwrap();
    assert_eq!(webhook_on(&mut authenticated, "s-kept-1").await, Some(200));
    let mut probe = connect_from(ip(ALLOWED), addr).await.unwrap();
    probe.write_all(b"GET /healthz HTTP/1.1\r\nHost: phonetree\r\n\r\n").await.unwrap();
    let mut buf = vec![0u8; 4096];
    let got = probe.read(&mut buf).await.unwrap();
    assert!(buf[..got].starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&buf[..got]));
    // The probe's connection is closed first (its short idle limit), the webhook's stays open.
    let closed = tokio::time::timeout(HANG, probe.read(&mut buf)).await.expect("the idle probe is closed");
    assert!(matches!(closed, Ok(0) | Err(_)), "{closed:?}");
    assert_eq!(
        webhook_on(&mut authenticated, "s-kept-2").await,
        Some(200),
        "the promoted connection is still open"
    );
}
