//! Load benchmark of the durable webhook path: the real `phonetree serve` on loopback with a fresh
//! data dir, driven by concurrent simulated calls through `abc_restaurant` (start, 1, 1, summary),
//! every reply durable (fsync'd, group commit) before it is sent.
//!
//! Reports completed calls/s, webhooks/s, p50/p99/max webhook latency, errors, the server's peak
//! and sampled RSS, and the stored bytes per live call, once per pre-filled store size.
//!
//! Settings (environment): `PHONETREE_LOAD_CONNS` (concurrent calls, default 32),
//! `PHONETREE_LOAD_SECS` (seconds per run, default 10), `PHONETREE_LOAD_PREFILL` (sessions already
//! stored before each run, default `0,1000,100000,1000000`), `PHONETREE_LOAD_NO_FSYNC=1` (also run
//! once without fsync, to show what durability costs).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use phonetree::engine::{self, CallInfo, CallState, Direction, Event};
use phonetree::machine::{self, Source};
use phonetree::store::{Commit, Committed, Durability, SledStore, Store};

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn vca(session: &str, event: &str, status: &str, dtmf: Option<&str>) -> String {
    serde_json::json!({"namespace": "VOICE", "eventType": "CALL_ACTION", "payload": {
        "eventId": event, "sessionId": session, "callId": "c", "subAccountId": "acct",
        "callStatus": status, "callDirection": "INBOUND", "callType": "PSTN",
        "source": "+6591178965", "destination": "+6568888888", "dtmf": dtmf}})
    .to_string()
}

fn vss(session: &str) -> String {
    serde_json::json!({"namespace": "VOICE", "eventType": "SESSION_SUMMARY", "payload": {
        "sessionId": session, "sessionStatus": "COMPLETED", "lastAction": "HANGUP", "callCount": 1}})
    .to_string()
}

/// A KiB figure from /proc/PID/status (`VmHWM`, `VmRSS`).
fn proc_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Stores `n` live calls waiting at the main menu; returns the bytes of one stored record.
fn prefill(data: &std::path::Path, n: usize) -> usize {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/machines/abc_restaurant.toml");
    let m = machine::compile(&Source::new(path, std::fs::read_to_string(path).unwrap())).machine.unwrap();
    // Prefilling needs no fsync per call: one flush at the end makes it all durable.
    let store = SledStore::open_with(data, Durability::NoFsync).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    let mut record = 0;
    for i in 0..n.max(1) {
        let session = format!("{:08x}-prefilled-0000-0000-{i:012}", i);
        let info = CallInfo {
            session_id: session.clone(),
            direction: Direction::Inbound,
            source: "+6591178965".into(),
            destination: "+6568888888".into(),
            call_id: None,
        };
        let st = engine::step(&m, &CallState::new(&m, info, now), &Event::CallStarted, now).unwrap().state;
        if n > 0 {
            let commit = Commit {
                session: &session,
                expected: None,
                state: &st,
                reply: None,
                entries: &[],
                schedule: None,
                summary: None,
                wait: None,
            };
            assert_eq!(rt.block_on(store.commit(commit)).unwrap(), Committed::Done);
        }
        record = phonetree::store::encode_session(&st).unwrap().len();
    }
    rt.block_on(store.flush()).unwrap();
    record
}

struct Totals {
    calls: AtomicU64,
    webhooks: AtomicU64,
    errors: AtomicU64,
}

async fn one_call(client: &reqwest::Client, base: &str, id: u64, totals: &Totals, latencies: &mut Vec<u32>) {
    let session = format!("load-{id:016x}-0000-0000-000000000000");
    let steps = [
        ("/webhooks/vca", vca(&session, &format!("{session}-1"), "CALL_RECEIVED", None)),
        ("/webhooks/vca", vca(&session, &format!("{session}-2"), "DTMF_RECEIVED", Some("1"))),
        ("/webhooks/vca", vca(&session, &format!("{session}-3"), "DTMF_RECEIVED", Some("1"))),
        ("/webhooks/vss", vss(&session)),
    ];
    for (path, body) in steps {
        let t = Instant::now();
        let ok = match client.post(format!("{base}{path}")).body(body).send().await {
            Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
            Err(_) => false,
        };
        latencies.push(t.elapsed().as_micros().min(u32::MAX as u128) as u32);
        totals.webhooks.fetch_add(1, Ordering::Relaxed);
        if !ok {
            totals.errors.fetch_add(1, Ordering::Relaxed);
            return;
        }
    }
    totals.calls.fetch_add(1, Ordering::Relaxed);
}

fn run(conns: usize, secs: u64, prefilled: usize, durable: bool) {
    let dir = tempfile::tempdir().unwrap();
    let machines = dir.path().join("machines");
    std::fs::create_dir_all(&machines).unwrap();
    for name in ["abc_restaurant.toml", "tech_support.toml"] {
        std::fs::copy(
            concat!(env!("CARGO_MANIFEST_DIR"), "/machines/").to_string() + name,
            machines.join(name),
        )
        .unwrap();
    }
    let data = dir.path().join("data");
    let t = Instant::now();
    let record = prefill(&data, prefilled);
    let prefill_secs = t.elapsed().as_secs_f64();

    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_phonetree"))
        .args(["serve", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
        .arg("--data")
        .arg(&data)
        .arg("--machines")
        .arg(&machines)
        .env("PHONETREE_LOG", "error")
        .env("PHONETREE_UNSAFE_NO_FSYNC", if durable { "false" } else { "true" })
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().unwrap()), &mut line)
        .unwrap();
    let base = format!("http://{}", line.trim().strip_prefix("listening on ").expect("the node starts"));
    let pid = child.id();

    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let totals = Arc::new(Totals { calls: 0.into(), webhooks: 0.into(), errors: 0.into() });
    let next = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(secs);
    let started = Instant::now();
    let mut rss_samples = Vec::new();
    let latencies: Vec<u32> = rt.block_on(async {
        phonetree::node::install_tls_provider(); // reqwest has no crypto provider of its own
        let client = reqwest::Client::builder().pool_max_idle_per_host(conns).build().unwrap();
        let workers: Vec<_> = (0..conns)
            .map(|_| {
                let (client, base, totals, next) =
                    (client.clone(), base.clone(), totals.clone(), next.clone());
                tokio::spawn(async move {
                    let mut latencies = Vec::with_capacity(1 << 16);
                    while Instant::now() < deadline {
                        let id = next.fetch_add(1, Ordering::Relaxed);
                        one_call(&client, &base, id, &totals, &mut latencies).await;
                    }
                    latencies
                })
            })
            .collect();
        while Instant::now() < deadline {
            tokio::time::sleep(Duration::from_secs(1)).await;
            rss_samples.push(proc_kib(pid, "VmRSS:"));
        }
        let mut all = Vec::new();
        for w in workers {
            all.extend(w.await.unwrap());
        }
        all
    });
    let elapsed = started.elapsed().as_secs_f64();
    let peak = proc_kib(pid, "VmHWM:");
    let _ = std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status();
    let _ = child.wait();

    let mut sorted = latencies;
    sorted.sort_unstable();
    let pct = |p: f64| {
        sorted
            .get(((sorted.len() as f64 * p) as usize).min(sorted.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    };
    let ms = |us: u32| us as f64 / 1000.0;
    let (calls, webhooks, errors) = (
        totals.calls.load(Ordering::Relaxed),
        totals.webhooks.load(Ordering::Relaxed),
        totals.errors.load(Ordering::Relaxed),
    );
    println!(
        "{}, {conns} conns, {prefilled} sessions pre-filled ({prefill_secs:.1}s to fill): {:.0} calls/s, {:.0} webhooks/s, latency p50 {:.2} ms p99 {:.2} ms max {:.2} ms, {errors} errors, {calls} calls in {elapsed:.1}s",
        if durable { "durable" } else { "NOT durable (no fsync)" },
        calls as f64 / elapsed,
        webhooks as f64 / elapsed,
        ms(pct(0.50)),
        ms(pct(0.99)),
        ms(sorted.last().copied().unwrap_or(0)),
    );
    let every_10s: Vec<String> =
        rss_samples.iter().step_by(10).map(|kib| format!("{}", kib / 1024)).collect();
    println!(
        "  server memory: peak RSS {} MiB; RSS every 10 s (MiB): {}; stored state {record} bytes per live call",
        peak / 1024,
        every_10s.join(" "),
    );
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` would pass nothing: run only under bench.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let conns = env_or("PHONETREE_LOAD_CONNS", 32usize);
    let secs = env_or("PHONETREE_LOAD_SECS", 10u64);
    let prefills: Vec<usize> = std::env::var("PHONETREE_LOAD_PREFILL")
        .unwrap_or_else(|_| "0,1000,100000,1000000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    println!("webhook_load: {} cores", std::thread::available_parallelism().map_or(0, |n| n.get()));
    for n in prefills {
        run(conns, secs, n, true);
    }
    // For comparison only: the same load with replies sent before their fsync.
    if std::env::var("PHONETREE_LOAD_NO_FSYNC").is_ok_and(|v| v == "1") {
        run(conns, secs, 0, false);
    }
}
