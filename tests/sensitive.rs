//! Sensitive input through the real node (`tests/data/sensitive/card_payment.toml`): a card number
//! keyed at a sensitive input reaches the payment API's POST body and nothing else — not the
//! node's JSON log at debug, `calls show`/`export`, `GET /calls`, `/admin/console`, `/metrics`, nor
//! the raw bytes of the sled folder or a `pg_dump` of the PostgreSQL schema. The API's sensitive
//! stored answer is masked wherever the call is shown. `replay` says which keys were masked.

use crate::common;

use std::collections::HashMap;
use std::path::Path;
use std::process::Output;
use std::sync::{Arc, Mutex};

use common::backends::postgres_url_for;
use common::{Node, Vca, post, repo, vss};
use serde_json::Value;
use warp::Filter;

const CARD: &str = "4111111111111111";
/// What the payment API answers as its authorisation: a sensitive stored value.
const AUTH: &str = "AUTH-77-SECRET";

/// The payment API: `POST /pay` (caller, card) answers `ok` with `AUTH`; `POST /confirm` (auth)
/// answers `done`. Keeps every form it was sent.
struct Api {
    base: String,
    forms: Arc<Mutex<Vec<HashMap<String, String>>>>,
}

impl Api {
    async fn start() -> Api {
        let forms: Arc<Mutex<Vec<HashMap<String, String>>>> = Arc::default();
        let (pay_seen, confirm_seen) = (forms.clone(), forms.clone());
        let pay = warp::path!("pay").and(warp::post()).and(warp::body::form()).map(
            move |form: HashMap<String, String>| {
                pay_seen.lock().unwrap().push(form);
                warp::reply::json(&serde_json::json!({"status": "ok", "auth": AUTH}))
            },
        );
        let confirm = warp::path!("confirm").and(warp::post()).and(warp::body::form()).map(
            move |form: HashMap<String, String>| {
                confirm_seen.lock().unwrap().push(form);
                warp::reply::json(&serde_json::json!({"status": "done"}))
            },
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(warp::serve(pay.or(confirm)).incoming(listener).run());
        Api { base, forms }
    }
}

/// The card machine in a folder of its own, calling `api`.
fn machines(tmp: &Path, api: &Api) -> std::path::PathBuf {
    let dir = tmp.join("machines");
    std::fs::create_dir_all(&dir).unwrap();
    let text = std::fs::read_to_string(repo().join("tests/data/sensitive/card_payment.toml")).unwrap();
    let here = api.base.trim_start_matches("http://");
    std::fs::write(dir.join("card_payment.toml"), text.replace("127.0.0.1:8092", here)).unwrap();
    dir
}

fn phonetree(args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_phonetree")).args(args).output().unwrap()
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// Every file under `dir`, read whole.
fn bytes_under(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(bytes_under(&path));
        } else {
            out.push((path.display().to_string(), std::fs::read(&path).unwrap()));
        }
    }
    out
}

fn holds(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// One webhook of the call; the reply's JSON.
async fn send(
    n: &Node,
    session: &str,
    event: &str,
    status: &str,
    dtmf: Option<&str>,
    id: Option<&str>,
) -> Value {
    let body = Vca {
        session,
        event,
        dtmf,
        client_action_id: id,
        status,
        direction: "INBOUND",
        source: "+6591178965",
        destination: "+6568880009",
        event_data: false,
    }
    .body();
    let a = post(&n.url("/webhooks/vca"), body).await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    a.json()
}

fn id_of(reply: &Value) -> Option<String> {
    reply["clientActionId"].as_str().map(String::from)
}

/// Plays the card call on `n` and checks every record it can read while the node runs; returns
/// the exported call's file.
async fn card_call(n: &Node, api: &Api, session: &str, tmp: &Path) -> std::path::PathBuf {
    let r = send(n, session, "e1", "CALL_RECEIVED", None, None).await;
    assert!(r.to_string().contains("card number"), "{r}");
    let r = send(n, session, "e2", "DTMF_RECEIVED", Some(&format!("{CARD}#")), id_of(&r).as_deref()).await;
    assert!(r.to_string().contains("Your payment is done."), "{r}");
    {
        let forms = api.forms.lock().unwrap();
        assert_eq!(forms.len(), 2, "both scripts asked: {forms:?}");
        assert_eq!(forms[0].get("card").map(String::as_str), Some(CARD), "the card reached the POST body");
        assert_eq!(forms[1].get("auth").map(String::as_str), Some(AUTH), "the stored value went on");
    }

    // While the call waits at the menu: the console's live call, the call history, the metrics.
    let client = reqwest::Client::new();
    let mut shown = Vec::new();
    for path in
        ["/admin/console", "/admin/console?numbers=shown", "/calls", &format!("/calls/{session}"), "/metrics"]
    {
        let r = client.get(n.admin_url(path)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        shown.push((path.to_string(), r.text().await.unwrap()));
    }
    let console = &shown[1].1;
    assert!(console.contains(session), "the console shows the live call: {console}");
    let call: Value = serde_json::from_str(&shown[3].1).unwrap();
    assert_eq!(call["entries"][1]["event"], serde_json::json!({"type": "masked"}), "{call}");
    assert!(shown[3].1.contains("[masked]"), "the stored value is masked in the answer: {call}");

    let r = send(n, session, "e3", "DTMF_RECEIVED", Some("2"), None).await;
    assert_eq!(r["callflow"].as_array().unwrap().last().unwrap()["action"], "hangup", "{r}");
    let s = post(&n.url("/webhooks/vss"), vss(session, "COMPLETED")).await;
    assert_eq!(s.status, 200);

    let server = n.admin_url("");
    let show = phonetree(&["calls", "show", session, "--server", &server]);
    assert!(show.status.success(), "{}", text(&show));
    let show_text = text(&show);
    assert!(show_text.contains("keys [masked] (sensitive input) at `card`"), "{show_text}");
    shown.push(("calls show".into(), show_text));
    let export = phonetree(&["calls", "export", session, "--server", &server]);
    assert!(export.status.success(), "{}", text(&export));
    shown.push(("calls export".into(), text(&export)));
    for (what, body) in &shown {
        assert!(!body.contains(CARD), "{what} shows the card number: {body}");
        assert!(!body.contains(AUTH), "{what} shows the sensitive stored value: {body}");
    }
    let file = tmp.join(format!("{session}.json"));
    std::fs::write(&file, &export.stdout).unwrap();
    file
}

/// The node's own log, at debug and in JSON: neither secret.
fn log_is_clean(n: &Node) {
    let log = n.log();
    assert!(log.contains("\"transition\""), "the log is at debug, in JSON: {log}");
    assert!(log.contains("keys [masked]"), "the transition's event is masked: {log}");
    assert!(!log.contains(CARD), "the log holds the card number: {log}");
    assert!(!log.contains(AUTH), "the log holds the sensitive stored value: {log}");
}

const LOG_JSON: (&str, &str) = ("PHONETREE_LOG_FORMAT", "json");

#[tokio::test(flavor = "multi_thread")]
async fn a_card_number_leaves_no_trace_in_the_logs_history_console_metrics_or_the_sled_folder() {
    let api = Api::start().await;
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    let machines = machines(t.path(), &api);
    let mut n = Node::start_with(&data, &machines, &[LOG_JSON]);
    let exported = card_call(&n, &api, "s-card", t.path()).await;
    log_is_clean(&n);
    assert!(n.terminate().success());

    // The store on disk, every byte of every file sled wrote.
    let files = bytes_under(&data);
    assert!(files.iter().any(|(_, b)| holds(b, "s-card")), "the call is in the sled folder");
    for (path, bytes) in &files {
        assert!(!holds(bytes, CARD), "{path} holds the card number");
        assert!(!holds(bytes, AUTH), "{path} holds the sensitive stored value");
    }
    // The stopped node's store, read by the command line.
    let show = phonetree(&["calls", "show", "s-card", "--data", data.to_str().unwrap()]);
    assert!(show.status.success() && !text(&show).contains(CARD), "{}", text(&show));

    // The replay plays the input's example for the masked keys, and says so.
    let machine = machines.join("card_payment.toml");
    let replay = phonetree(&["replay", exported.to_str().unwrap(), "--machine", machine.to_str().unwrap()]);
    let out = text(&replay);
    assert!(replay.status.success(), "{out}");
    assert!(out.contains("same (masked keys, played as the input's example: entry 2 at `card`)"), "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_card_number_leaves_no_trace_in_a_postgres_dump() {
    let t = tempfile::tempdir().unwrap();
    let Some(url) = postgres_url_for(t.path()).await else { return };
    let api = Api::start().await;
    let machines = machines(t.path(), &api);
    let n =
        Node::start_with(&t.path().join("node"), &machines, &[("PHONETREE_STORE", url.as_str()), LOG_JSON]);
    card_call(&n, &api, "s-card-pg", t.path()).await;
    log_is_clean(&n);

    // The schema, dumped whole: data and all.
    let schema = url.rsplit("search_path%3D").next().unwrap().to_string();
    let base = url.split('?').next().unwrap();
    let dump = std::process::Command::new("pg_dump").args(["--schema", &schema, base]).output().unwrap();
    assert!(dump.status.success(), "{}", String::from_utf8_lossy(&dump.stderr));
    // A bytea column (the MessagePack records) is dumped in hex.
    let hex = |s: &str| s.bytes().map(|b| format!("{b:02x}")).collect::<String>();
    let seen = |s: &str| holds(&dump.stdout, s) || holds(&dump.stdout, &hex(s));
    assert!(seen("s-card-pg") && seen("[masked]"), "the call and its masked entry are in the dump");
    assert!(!seen(CARD), "the dump holds the card number");
    assert!(!seen(AUTH), "the dump holds the sensitive stored value (its script answers)");
}
