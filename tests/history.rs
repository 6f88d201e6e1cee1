//! Call history and replay for real: calls through `phonetree serve`, read back with
//! `GET /calls…` and `phonetree calls`, exported, and replayed with `phonetree replay` against the
//! bundled machines and an edited one; history survives a restart and goes with retention.
//!
//! `tests/data/calls/` holds calls recorded this way: `the_bundled_calls_record_as_checked_in`
//! records them afresh on every run and compares, and with `PHONETREE_RECORD_CALLS=1` writes them
//! there again (after a deliberate change of a bundled machine).

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::*;
use serde_json::Value;
use warp::Filter;

const TOKEN: &str = "history-admin-token-0123456789";

/// A stand-in for the shop's API of `order_status`: every order is on its way.
async fn api() -> String {
    let route = warp::path!("orders" / String).map(|_order: String| {
        warp::http::Response::builder()
            .status(200)
            .body(serde_json::json!({"data": {"code": 1, "eta": "on Friday"}}).to_string())
            .unwrap()
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(warp::serve(route).incoming(listener).run());
    base
}

/// The bundled machines, `order_status` calling `api`.
fn machines(t: &Path, api: &str) -> PathBuf {
    let dir = machines_dir(t);
    let text = std::fs::read_to_string(repo().join("machines/order_status.toml")).unwrap();
    std::fs::write(
        dir.join("order_status.toml"),
        text.replace("127.0.0.1:8090", api.trim_start_matches("http://")),
    )
    .unwrap();
    dir
}

/// One inbound call: `CALL_RECEIVED`, the inputs (`-` for none), then 8x8's summary.
async fn call(n: &Node, session: &str, to: &str, inputs: &[&str]) {
    call_ending(n, session, to, inputs, "COMPLETED").await;
}

/// One inbound call as `call`, whose summary says `status`. An input after the call hung up is
/// answered with a hangup and applies nothing (`stale`).
async fn call_ending(n: &Node, session: &str, to: &str, inputs: &[&str], status: &str) {
    let mut id: Option<String> = None;
    let mut over = false;
    for (i, input) in std::iter::once(&"").chain(inputs).enumerate() {
        let event = format!("{session}-e{i}");
        let v = Vca {
            session,
            event: &event,
            dtmf: (i > 0 && *input != "-").then_some(*input),
            client_action_id: id.as_deref(),
            status: if i == 0 { "CALL_RECEIVED" } else { "DTMF_RECEIVED" },
            direction: "INBOUND",
            source: "+6591178965",
            destination: to,
            event_data: false,
        };
        let a = post(&n.url("/webhooks/vca"), v.body()).await;
        let want = if over { "stale" } else { "applied" };
        assert_eq!(a.how, want, "{session} {input}: {}", n.log());
        id = a.client_action_id();
        over =
            a.json()["callflow"].as_array().and_then(|c| c.last()).is_some_and(|l| l["action"] == "hangup");
    }
    let a = post(&n.url("/webhooks/vss"), vss(session, status)).await;
    assert_eq!(a.status, 200);
}

fn phonetree(args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_phonetree")).args(args).output().unwrap()
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// `machines/order_status.toml` with what the caller hears of an order in transit changed.
fn edited_order_status(dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(repo().join("machines/order_status.toml")).unwrap();
    let edited = text.replace("is on its way", "has left our warehouse");
    assert_ne!(edited, text);
    let path = dir.join("order_status.toml");
    std::fs::write(&path, edited).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread")]
async fn a_finished_call_shows_exports_replays_and_survives_a_restart() {
    let api = api().await;
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    let mut n = Node::start_with(&data, &machines(t.path(), &api), &[("PHONETREE_ADMIN_TOKEN", TOKEN)]);
    call(&n, "s-order", "+6568880002", &["111111#", "2"]).await;

    // The admin token is needed.
    let client = reqwest::Client::new();
    let r = client.get(n.admin_url("/calls/s-order")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let r = client.get(n.admin_url("/calls")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let r = client.get(n.admin_url("/calls/s-order")).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["machine"], "order_status");
    assert_eq!(v["summary"]["status"], "COMPLETED");
    let entries = v["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 4, "start, order, 2, summary: {v}");
    assert_eq!(entries[1]["event"], serde_json::json!({"type": "keys", "keys": "111111#"}));
    assert_eq!(entries[1]["left"], "ask_order");
    let request = &entries[1]["requests"][0];
    assert_eq!(request["node"], "lookup");
    assert_eq!(request["url"], format!("{api}/orders/111111"), "no query");
    assert_eq!(request["status"], 200);
    let unknown = client.get(n.admin_url("/calls/nobody")).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(unknown.status(), 404);
    assert_eq!(unknown.json::<Value>().await.unwrap()["error"]["code"], "unknown_session");

    // `phonetree calls` through the admin listener.
    let server = n.admin_url("");
    let from = ["--server", server.as_str(), "--admin-token", TOKEN];
    let shown = phonetree(&[&["calls", "show", "s-order"][..], &from].concat());
    let out = text(&shown);
    assert!(shown.status.success(), "{out}");
    assert!(out.contains(&format!("[lookup] asks GET {api}/orders/111111 -> HTTP 200 ")), "{out}");
    assert!(out.contains("\"eta\":\"on Friday\""), "{out}");
    assert!(out.contains("will arrive on Friday"), "{out}");
    assert!(out.contains("summary: COMPLETED"), "{out}");
    let listed = phonetree(&[&["calls", "list", "--machine", "order_status"][..], &from].concat());
    assert!(text(&listed).contains("s-order  order_status"), "{}", text(&listed));
    // Its start as a person reads it: RFC 3339 in UTC to the second, the same instant the admin
    // JSON gives in milliseconds.
    let line = text(&listed).lines().find(|l| l.starts_with("s-order ")).unwrap_or_default().to_string();
    let started = line.rsplit("started ").next().unwrap_or_default();
    assert!(started.ends_with('Z') && !started.contains('.'), "{line}");
    let parsed: jiff::Timestamp = started.parse().unwrap_or_else(|e| panic!("{e}: {line}"));
    let listed_json: serde_json::Value = common::get_json(&n.admin_url("/calls"), Some(TOKEN)).await;
    let ms = listed_json["calls"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["session"] == "s-order"))
        .and_then(|c| c["startedMs"].as_i64())
        .unwrap_or_else(|| panic!("no start time in {listed_json}"));
    assert_eq!(parsed.as_second(), ms.div_euclid(1000), "{line}");
    let refused = phonetree(&["calls", "show", "s-order", "--server", &server]);
    assert!(!refused.status.success() && text(&refused).contains("token"), "{}", text(&refused));

    // Exported, it replays the same through the same machine; an edit shows where it parts.
    let exported = phonetree(&[&["calls", "export", "s-order"][..], &from].concat());
    assert!(exported.status.success(), "{}", text(&exported));
    let file = t.path().join("call.json");
    std::fs::write(&file, &exported.stdout).unwrap();
    let bundled = repo().join("machines/order_status.toml");
    let same = phonetree(&[
        "replay",
        file.to_str().unwrap(),
        "--machine",
        bundled.to_str().unwrap(),
        "--expect-same",
    ]);
    assert!(same.status.success(), "{}", text(&same));
    assert!(text(&same).contains("(session s-order): same"), "{}", text(&same));
    let edited_dir = t.path().join("edited");
    std::fs::create_dir_all(&edited_dir).unwrap();
    let edited = edited_order_status(&edited_dir);
    let differs = phonetree(&[
        "replay",
        file.to_str().unwrap(),
        "--machine",
        edited.to_str().unwrap(),
        "--expect-same",
    ]);
    let out = text(&differs);
    assert_eq!(differs.status.code(), Some(1), "{out}");
    assert!(out.contains("differs at entry 2 (keys 111111# at node `ask_order`)"), "{out}");
    assert!(out.contains("has left our warehouse"), "{out}");

    // History survives a restart, and a stopped node's store is read directly.
    n.terminate();
    n.restart();
    let r = client.get(n.admin_url("/calls/s-order")).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["entries"], Value::Array(entries.clone()));
    n.terminate();
    let direct = phonetree(&[
        "calls",
        "show",
        "s-order",
        "--data",
        data.to_str().unwrap(),
        "--machines",
        n.machines.to_str().unwrap(),
    ]);
    assert!(text(&direct).contains("[lookup] asks GET"), "{}", text(&direct));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_transfers_summary_status_is_stored_with_the_call_shown_and_counted_per_node() {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    let n = Node::start_with(&data, &machines_dir(t.path()), &[("PHONETREE_ADMIN_TOKEN", TOKEN)]);
    // abc_restaurant: 2 then 1 bridges the caller to the representative at `post_call`.
    call_ending(&n, "s-busy", "+6568888888", &["2", "1"], "BUSY").await;
    call_ending(&n, "s-busy-2", "+6568888888", &["2", "1"], "BUSY").await;
    call_ending(&n, "s-talked", "+6568888888", &["2", "1"], "COMPLETED").await;
    call_ending(&n, "s-odd", "+6568888888", &["2", "1"], "SOMETHING_NEW").await;
    // A call that left before any transfer has no transfer status.
    call_ending(&n, "s-left", "+6568888888", &[], "COMPLETED").await;

    let client = reqwest::Client::new();
    let get = |session: &'static str| {
        let r = client.get(n.admin_url(&format!("/calls/{session}"))).bearer_auth(TOKEN).send();
        async move { r.await.unwrap().json::<Value>().await.unwrap() }
    };
    let busy = get("s-busy").await;
    assert_eq!(
        (&busy["outcome"], &busy["transferStatus"], &busy["node"]),
        (&"transferred".into(), &"BUSY".into(), &"post_call".into()),
        "{busy}"
    );
    // An undocumented status is kept as 8x8 wrote it.
    assert_eq!(get("s-odd").await["transferStatus"], "SOMETHING_NEW");
    let left = get("s-left").await;
    assert_eq!((&left["outcome"], left.get("transferStatus")), (&"callerLeft".into(), None), "{left}");

    // The transcript and the list say it too.
    let server = n.admin_url("");
    let from = ["--server", server.as_str(), "--admin-token", TOKEN];
    let shown = text(&phonetree(&[&["calls", "show", "s-busy"][..], &from].concat()));
    assert!(shown.contains("outcome: transferred (BUSY) at `post_call`; summary: BUSY"), "{shown}");
    let listed = text(&phonetree(&[&["calls", "list", "--outcome", "transferred"][..], &from].concat()));
    assert!(
        listed.lines().any(|l| l.starts_with("s-talked  abc_restaurant")
            && l.contains("transferred (COMPLETED)  at `post_call`")),
        "{listed}"
    );

    // /metrics counts them per transfer node and status (an undocumented status as `other`).
    let (_, _, text) = metrics::scrape(&n, Some(TOKEN)).await;
    let samples = metrics::parse(&text);
    let node = [("machine", "abc_restaurant"), ("node", "post_call")];
    assert_eq!(
        metrics::values(&samples, "phonetree_transfer_outcomes_total", &node, &["status"]),
        metrics::expected(&[(&["BUSY"], 2.0), (&["COMPLETED"], 1.0), (&["other"], 1.0)]),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn retention_deletes_a_calls_history_with_its_session() {
    let t = tempfile::tempdir().unwrap();
    let env = [("PHONETREE_SESSION_TTL_SECS", "1"), ("PHONETREE_RETENTION_SECS", "1")];
    let n = Node::start_with(&t.path().join("data"), &machines_dir(t.path()), &env);
    call(&n, "s-kept", "+6568888888", &["1"]).await;
    let client = reqwest::Client::new();
    let mut status = 0;
    for _ in 0..300 {
        status = client.get(n.admin_url("/calls/s-kept")).send().await.unwrap().status().as_u16();
        if status == 404 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(status, 404, "{}", n.log());
    let listed: Value = client.get(n.admin_url("/calls")).send().await.unwrap().json().await.unwrap();
    assert_eq!(listed["calls"], serde_json::json!([]));
}

/// `GET /calls/{session}` percent-decodes the session id: a client encodes the `{`, `/` or `%`
/// an 8x8 session id may hold, and the call is found under its own id.
#[tokio::test(flavor = "multi_thread")]
async fn a_percent_encoded_session_id_finds_its_call() {
    let t = tempfile::tempdir().unwrap();
    let n = Node::start(&t.path().join("data"), &machines_dir(t.path()));
    let session = "s{1}/x%y";
    let first = post(&n.url("/webhooks/vca"), Vca::abc(session, "e1", Some("1"), None).body()).await;
    assert_eq!(first.how, "applied");
    let client = reqwest::Client::new();
    let r = client.get(n.admin_url("/calls/s%7B1%7D%2Fx%25y")).send().await.unwrap();
    assert_eq!(r.status(), 200, "the encoded id finds the call");
    let shown: Value = r.json().await.unwrap();
    assert_eq!(shown["session"], session, "{shown}");
    // Encoded the way reqwest does (`{` and `}` only), and a lone `%` byte that is not UTF-8.
    let r = client.get(n.admin_url("/calls/s{1}%2Fx%25y")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = client.get(n.admin_url("/calls/s%FF")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["code"], "unknown_session");
}

/// The recorded calls under `tests/data/calls/`.
fn recorded() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo().join("tests/data/calls"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
}

#[test]
fn the_recorded_calls_replay_the_same_against_the_bundled_machines() {
    let files = recorded();
    assert!(files.len() >= 4, "{files:?}");
    for file in files {
        let call: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        let machine = repo().join("machines").join(format!("{}.toml", call["machine"].as_str().unwrap()));
        let o = phonetree(&[
            "replay",
            file.to_str().unwrap(),
            "--machine",
            machine.to_str().unwrap(),
            "--expect-same",
        ]);
        assert!(o.status.success() && text(&o).ends_with(": same\n"), "{}: {}", file.display(), text(&o));
    }
}

#[test]
fn a_recorded_call_replayed_against_an_edited_machine_reports_its_first_difference() {
    let t = tempfile::tempdir().unwrap();
    let edited = edited_order_status(t.path());
    let file = repo().join("tests/data/calls/order_status.json");
    let o = phonetree(&[
        "replay",
        file.to_str().unwrap(),
        "--machine",
        edited.to_str().unwrap(),
        "--expect-same",
    ]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(
        out.contains("differs at entry 2 (keys 111111# at node `ask_order`): recorded [in_transit] says \"Your order 1 1 1 1 1 1 is on its way"),
        "{out}"
    );
    assert!(
        out.contains("replayed [in_transit] says \"Your order 1 1 1 1 1 1 has left our warehouse"),
        "{out}"
    );
    // Without --expect-same a difference is reported, not failed.
    let o = phonetree(&["replay", file.to_str().unwrap(), "--machine", edited.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
}

/// What a recorded call's entries say, without times: the event, the nodes left and entered,
/// what was said, the requests.
fn course(call: &Value) -> Vec<Value> {
    let entries = call["entries"].as_array().unwrap_or_else(|| panic!("no entries: {call}"));
    entries
        .iter()
        .map(|e| {
            serde_json::json!([
                e["event"],
                e["left"],
                e["entered"],
                e["said"],
                e["requests"].as_array().map(Vec::len)
            ])
        })
        .collect()
}

/// A call on each of four bundled machines through a real node, recorded afresh: each goes the course its
/// checked-in recording in `tests/data/calls/` went (which the replay suite plays against
/// `machines/`). With `PHONETREE_RECORD_CALLS=1` the recordings are written there instead.
#[tokio::test(flavor = "multi_thread")]
async fn the_bundled_calls_record_as_checked_in() {
    let rewrite = std::env::var("PHONETREE_RECORD_CALLS").as_deref() == Ok("1");
    let api = api().await;
    let t = tempfile::tempdir().unwrap();
    let n = Node::start(&t.path().join("data"), &machines(t.path(), &api));
    let calls: [(&str, &str, &[&str]); 4] = [
        ("abc_restaurant", "+6568888888", &["1", "-", "9", "2"]),
        ("order_status", "+6568880002", &["111111#", "1", "12#", "-", "-"]),
        ("callback_request", "+6568880001", &["6591234567#", "1"]),
        ("tech_support", "6561115777", &["1", "2"]),
    ];
    let out = repo().join("tests/data/calls");
    for (machine, number, inputs) in calls {
        call(&n, &format!("recorded-{machine}"), number, inputs).await;
        let r = reqwest::Client::new()
            .get(n.admin_url(&format!("/calls/recorded-{machine}")))
            .send()
            .await
            .unwrap();
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["machine"], machine, "{v}");
        let file = out.join(format!("{machine}.json"));
        if rewrite {
            let mut json = serde_json::to_string_pretty(&v).unwrap();
            json.push('\n');
            std::fs::write(&file, json).unwrap();
        }
        let checked_in: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        assert_eq!(
            course(&v),
            course(&checked_in),
            "{machine}: the recording differs from {}",
            file.display()
        );
    }
}

#[test]
fn an_outbound_call_replays_from_the_start_node_it_was_placed_at() {
    use phonetree::engine;
    use phonetree::engine::transcript::{Call, Entry};
    use phonetree::proof::history;
    let m = bundled("abc_restaurant");
    let mut state =
        engine::start_outbound(&m, outbound("+6568888888", "+6598888888"), &Default::default(), 0, &[])
            .unwrap()
            .done()
            .unwrap()
            .state;
    let mut entries = Vec::new();
    for (i, input) in ["1", "-", "2"].iter().enumerate() {
        let e = event(input);
        let step = engine::step(&m, &state, &e, (i as u64 + 1) * 1000).unwrap();
        entries.push(Entry::of(&m, &state, &e, &step, &[]));
        state = step.state;
    }
    let call = Call::of(&state, "", entries, None);
    assert_eq!(history::replay(&m, &call), None);
}

/// Every text a webhook brings into a call's state and transcript is bounded: a 60 KB `source` or
/// `dtmf` is refused (400 `field_too_long`, nothing stored), keys within the webhook's bound are
/// kept at `KEYS_CHARS_MAX` in the transcript, and the session's record in the real sled store
/// stays a few KiB.
#[tokio::test(flavor = "multi_thread")]
async fn a_huge_source_or_dtmf_is_not_stored_whole() {
    use phonetree::engine::transcript::KEYS_CHARS_MAX;
    let api = api().await;
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    let mut n = Node::start_with(&data, &machines(t.path(), &api), &[("PHONETREE_ADMIN_TOKEN", TOKEN)]);
    let huge = "9".repeat(60_000);
    let webhook = |session: &'static str,
                   event: &'static str,
                   source: String,
                   dtmf: Option<String>,
                   id: Option<String>| {
        let v = Vca {
            session,
            event,
            dtmf: dtmf.as_deref(),
            client_action_id: id.as_deref(),
            status: if dtmf.is_some() { "DTMF_RECEIVED" } else { "CALL_RECEIVED" },
            direction: "INBOUND",
            source: &source,
            destination: "+6568880002",
            event_data: false,
        };
        v.body()
    };
    let a = post(&n.url("/webhooks/vca"), webhook("s-huge-source", "e1", huge.clone(), None, None)).await;
    assert_eq!((a.status, a.json()["error"]["code"].as_str()), (400, Some("field_too_long")), "{}", a.json());

    let a =
        post(&n.url("/webhooks/vca"), webhook("s-huge-keys", "e1", "+6591178965".into(), None, None)).await;
    assert_eq!(a.how, "applied");
    let id = a.client_action_id();
    let big = post(
        &n.url("/webhooks/vca"),
        webhook("s-huge-keys", "e2", "+6591178965".into(), Some(huge), id.clone()),
    )
    .await;
    assert_eq!((big.status, big.json()["error"]["code"].as_str()), (400, Some("field_too_long")));
    let long = "1".repeat(200);
    let a = post(&n.url("/webhooks/vca"), webhook("s-huge-keys", "e3", "+6591178965".into(), Some(long), id))
        .await;
    assert_eq!(a.how, "applied");

    let client = reqwest::Client::new();
    let r = client.get(n.admin_url("/calls/s-huge-source")).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(r.status(), 404, "nothing stored for a refused webhook");
    let v: Value = common::get_json(&n.admin_url("/calls/s-huge-keys"), Some(TOKEN)).await;
    let entries = v["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 2, "{v}");
    assert_eq!(entries[1]["event"]["keys"], "1".repeat(KEYS_CHARS_MAX));

    // The record as the store keeps it.
    assert!(n.terminate().success());
    let db = sled::open(&data).unwrap();
    let record = db.open_tree("sessions").unwrap().get("s-huge-keys").unwrap().unwrap();
    assert!(record.len() < 8 * 1024, "the session's record is {} bytes", record.len());
}
