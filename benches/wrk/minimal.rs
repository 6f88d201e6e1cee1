//! The ceiling of phonetree's stack for `wrk_load`: about the least a durable webhook service on
//! warp and sled can do, answering the `wrk/` workloads with `abc_restaurant`'s prompts.
//!
//! One sled record per session (its step and the latest event id, padded to `MINIMAL_RECORD_BYTES`
//! bytes: default 16, to show what record size costs sled), written with one
//! `compare_and_swap` per webhook; one thread flushes sled for every write waiting (group commit);
//! the reply leaves after the flush that made its write durable. A duplicate event id answers
//! the same prompt again; a SESSION_SUMMARY is stored as it came (one insert, durable). No machine, no engine, no transcript, no journal, no metrics.
//!
//! A module of `wrk_load`, which runs it as a child of itself:
//! `wrk_load --serve-minimal --data DIR --listen ADDR [--unsafe-no-fsync]`; `GET /readyz` answers
//! 200 once open.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use warp::Filter;

/// Writes waiting for the next flush at most (then senders wait their turn).
const FLUSH_QUEUE_MAX: usize = 4096;
/// Largest webhook body read.
const BODY_BYTES_MAX: u64 = 16 * 1024;

const WELCOME: &str = r#"{"callflow":[{"action":"sayAndCapture","params":{"promptMessage":"Welcome to ABC Restaurant, to book a table press 1, to speak to a representative press 2, to hear our restaurant hours press 3.","voiceProfile":"en-US-BenjaminRUS","speed":1,"minDigits":1,"maxDigits":1,"digitTimeout":10000,"overallTimeout":10000,"noOfTries":1}}]}"#;
const RESERVATIONS: &str = r#"{"callflow":[{"action":"sayAndCapture","params":{"promptMessage":"Press 1 to make a new reservation, press 2 to reschedule an existing reservation, press 3 to return to main menu.","voiceProfile":"en-US-BenjaminRUS","speed":1,"minDigits":1,"maxDigits":1,"digitTimeout":10000,"overallTimeout":10000,"noOfTries":2}}]}"#;
const BOOK: &str = r#"{"callflow":[{"action":"sayAndCapture","params":{"promptMessage":"Reserving a Table, Press 1 to reserve a table for today, Press 2 to reserve a table for tomorrow.","voiceProfile":"en-US-BenjaminRUS","speed":1,"minDigits":1,"maxDigits":1,"digitTimeout":10000,"overallTimeout":10000,"noOfTries":2}}]}"#;
const HANGUP: &str = r#"{"callflow":[{"action":"hangup"}]}"#;

#[derive(serde::Deserialize)]
struct Webhook {
    payload: Payload,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Payload {
    session_id: String,
    #[serde(default)]
    event_id: String,
    #[serde(default)]
    call_status: String,
}

struct Node {
    sessions: sled::Tree,
    summaries: sled::Tree,
    flushes: Option<mpsc::Sender<oneshot::Sender<bool>>>,
    pad: usize,
}

/// The prompt of step `step` (0: welcome, 1: reservations, 2: book a table, past it: hang up).
fn prompt(step: u8) -> &'static str {
    [WELCOME, RESERVATIONS, BOOK].get(usize::from(step)).copied().unwrap_or(HANGUP)
}

impl Node {
    /// Applies one CALL_ACTION: (the reply, whether it is an error).
    async fn call_action(&self, body: &[u8]) -> Result<&'static str, String> {
        let w: Webhook = serde_json::from_slice(body).map_err(|e| e.to_string())?;
        let p = w.payload;
        loop {
            let old = self.sessions.get(&p.session_id).map_err(|e| e.to_string())?;
            let step = match &old {
                None => 0,
                // A duplicate: the same prompt again.
                Some(raw) if raw.get(1..1 + p.event_id.len()) == Some(p.event_id.as_bytes()) => {
                    return Ok(prompt(raw[0]));
                }
                Some(raw) if p.call_status == "CALL_RECEIVED" => raw[0],
                Some(raw) => raw[0].saturating_add(1),
            };
            let mut new = Vec::with_capacity(1 + p.event_id.len() + self.pad);
            new.push(step);
            new.extend_from_slice(p.event_id.as_bytes());
            new.resize(new.len() + self.pad, 0);
            let swapped =
                self.sessions.compare_and_swap(&p.session_id, old, Some(new)).map_err(|e| e.to_string())?;
            if swapped.is_ok() {
                self.durable().await?;
                return Ok(prompt(step));
            }
        }
    }

    /// Stores a SESSION_SUMMARY as it came, durably.
    async fn summary(&self, body: &[u8]) -> Result<&'static str, String> {
        let w: Webhook = serde_json::from_slice(body).map_err(|e| e.to_string())?;
        self.summaries.insert(w.payload.session_id, body).map_err(|e| e.to_string())?;
        self.durable().await?;
        Ok(r#"{"status":"recorded"}"#)
    }

    async fn durable(&self) -> Result<(), String> {
        let Some(flushes) = &self.flushes else { return Ok(()) };
        let (tx, rx) = oneshot::channel();
        flushes.send(tx).await.map_err(|_| "flusher gone")?;
        if rx.await.unwrap_or(false) { Ok(()) } else { Err("flush failed".into()) }
    }
}

fn flusher(db: sled::Db) -> mpsc::Sender<oneshot::Sender<bool>> {
    let (tx, mut rx) = mpsc::channel::<oneshot::Sender<bool>>(FLUSH_QUEUE_MAX);
    std::thread::spawn(move || {
        let mut batch = Vec::new();
        while let Some(first) = rx.blocking_recv() {
            batch.push(first);
            while let Ok(next) = rx.try_recv() {
                batch.push(next);
            }
            let ok = db.flush().is_ok();
            for w in batch.drain(..) {
                let _ = w.send(ok);
            }
        }
    });
    tx
}

fn reply(result: Result<&'static str, String>) -> warp::reply::Response {
    use warp::Reply;
    match result {
        Ok(body) => warp::reply::with_header(body, "content-type", "application/json").into_response(),
        Err(e) => warp::reply::with_status(e, warp::http::StatusCode::BAD_REQUEST).into_response(),
    }
}

/// Serves until killed (`args`: the process's arguments).
#[tokio::main]
pub async fn serve(args: Vec<String>) {
    let arg = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
    let (Some(data), Some(listen)) = (arg("--data"), arg("--listen")) else {
        eprintln!("usage: wrk_load --serve-minimal --data DIR --listen ADDR [--unsafe-no-fsync]");
        std::process::exit(2);
    };
    let durable = !args.iter().any(|a| a == "--unsafe-no-fsync");
    let pad = std::env::var("MINIMAL_RECORD_BYTES").ok().and_then(|v| v.parse().ok()).unwrap_or(16);
    let mut config = sled::Config::new().path(&data).cache_capacity(64 * 1024 * 1024);
    if durable {
        config = config.flush_every_ms(None);
    }
    let db = config.open().unwrap_or_else(|e| panic!("cannot open {data}: {e}"));
    let node = Arc::new(Node {
        sessions: db.open_tree("sessions").expect("sessions tree"),
        summaries: db.open_tree("summaries").expect("summaries tree"),
        flushes: durable.then(|| flusher(db.clone())),
        pad,
    });
    let addr: SocketAddr = listen.parse().expect("--listen ADDR");
    let with_node = warp::any().map(move || node.clone());
    let vca = warp::path!("webhooks" / "vca")
        .and(warp::post())
        .and(warp::body::content_length_limit(BODY_BYTES_MAX))
        .and(warp::body::bytes())
        .and(with_node.clone())
        .then(|body: warp::hyper::body::Bytes, node: Arc<Node>| async move {
            reply(node.call_action(&body).await)
        });
    let vss = warp::path!("webhooks" / "vss")
        .and(warp::post())
        .and(warp::body::content_length_limit(BODY_BYTES_MAX))
        .and(warp::body::bytes())
        .and(with_node.clone())
        .then(
            |body: warp::hyper::body::Bytes, node: Arc<Node>| async move { reply(node.summary(&body).await) },
        );
    let ready = warp::path!("readyz").map(|| "ready");
    let health = warp::path!("healthz").map(|| "ok");
    eprintln!("listening on {addr}");
    warp::serve(vca.or(vss).or(ready).or(health)).run(addr).await;
}
