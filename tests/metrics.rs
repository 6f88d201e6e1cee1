//! `GET /metrics` on the admin listener, for real: scripted abc_restaurant calls over HTTP to a
//! `phonetree serve` child, then the exposition parsed and its numbers compared with what the calls
//! did (per node entries, exits and ends; webhook outcomes); the admin token; `promtool check
//! metrics` on the scrape.

use crate::common;

use std::collections::BTreeMap;

use common::metrics::*;
use common::*;

/// One abc_restaurant call: its keys, one webhook each (the first without a clientActionId, as
/// 8x8 sends after the opening Send Callflow); the last answer.
async fn call(n: &Node, session: &str, keys: &[&str]) -> Answer {
    let mut id: Option<String> = None;
    let mut last = None;
    for (i, k) in keys.iter().enumerate() {
        let event = format!("{session}-e{i}");
        let a = post(&n.url("/webhooks/vca"), Vca::abc(session, &event, Some(k), id.as_deref()).body()).await;
        assert_eq!(a.how, "applied", "{session} {k}: {}", String::from_utf8_lossy(&a.body));
        id = a.callflow().client_action_id;
        last = Some(a);
    }
    last.unwrap()
}

#[tokio::test]
async fn metrics_count_what_the_calls_did() {
    let t = tempfile::tempdir().unwrap();
    let n = Node::start(&t.path().join("data"), &machines_dir(t.path()));

    // 1: reservations → book a table → tomorrow → goodbye (phonetree hangs up).
    call(&n, "m1", &["1", "1", "2"]).await;
    // The last webhook again: a duplicate, answered from the journal, counted once as applied.
    let dup = post(&n.url("/webhooks/vca"), Vca::abc("m1", "m1-e2", Some("2"), None).body()).await;
    assert_eq!(dup.how, "duplicate");
    // 2: the hours → goodbye.
    call(&n, "m2", &["3"]).await;
    // 3: the representative menu, then the caller hangs up there.
    call(&n, "m3", &["2"]).await;
    // 4: a key no branch takes (one try at the main menu) → invalid → goodbye.
    call(&n, "m4", &["9"]).await;
    // 5: the representative, connected: the call ends bridged (a transfer).
    call(&n, "m5", &["2", "1"]).await;
    for session in ["m1", "m3", "m5"] {
        let s = post(&n.url("/webhooks/vss"), vss(session, "COMPLETED")).await;
        assert_eq!(s.status, 200, "{}", String::from_utf8_lossy(&s.body));
    }
    // Summaries carrying 8x8 error codes: a documented one is its own label, any other `other`.
    for (session, code) in [("m2", -2005), ("m4", 4242)] {
        let mut body: serde_json::Value = serde_json::from_str(&vss(session, "FAILED")).unwrap();
        body["payload"]["errorDetails"] = serde_json::json!({"errorCode": code, "errorMsg": "x"});
        let s = post(&n.url("/webhooks/vss"), body.to_string()).await;
        assert_eq!(s.status, 200, "{}", String::from_utf8_lossy(&s.body));
    }
    // A body that is not JSON: 400, counted by its reason.
    let bad = post(&n.url("/webhooks/vca"), "{not json").await;
    assert_eq!(bad.status, 400);
    let reason = bad.json()["error"]["code"].as_str().unwrap().to_string();

    let (status, content_type, text) = scrape(&n, None).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(content_type.as_deref(), Some("text/plain; version=0.0.4"));
    let samples = parse(&text);
    let abc = [("machine", "abc_restaurant")];

    let entries = values(&samples, "phonetree_node_entries_total", &abc, &["node"]);
    assert_eq!(
        entries,
        expected(&[
            (&["main_menu"], 5.0),
            (&["reservations"], 1.0),
            (&["book_table"], 1.0),
            (&["booked_tomorrow"], 1.0),
            (&["hours"], 1.0),
            (&["connect_call"], 2.0),
            (&["post_call"], 1.0),
            (&["invalid"], 1.0),
            (&["goodbye"], 3.0),
        ]),
        "{text}"
    );
    let exits = values(&samples, "phonetree_node_exits_total", &abc, &["node", "exit"]);
    assert_eq!(
        exits,
        expected(&[
            (&["main_menu", "key_1"], 1.0),
            (&["main_menu", "key_2"], 2.0),
            (&["main_menu", "key_3"], 1.0),
            (&["main_menu", "invalid"], 1.0),
            (&["reservations", "key_1"], 1.0),
            (&["book_table", "key_2"], 1.0),
            (&["booked_tomorrow", "next"], 1.0),
            (&["hours", "next"], 1.0),
            (&["invalid", "next"], 1.0),
            (&["connect_call", "key_1"], 1.0),
        ]),
        "{text}"
    );
    let ended = values(&samples, "phonetree_calls_ended_total", &abc, &["node", "how"]);
    assert_eq!(
        ended,
        expected(&[
            (&["goodbye", "hangup"], 3.0),
            (&["connect_call", "caller_hung_up"], 1.0),
            (&["post_call", "transfer"], 1.0),
        ]),
        "{text}"
    );

    let webhooks = values(&samples, "phonetree_webhooks_total", &[], &["endpoint", "outcome", "reason"]);
    assert_eq!(
        webhooks,
        expected(&[
            (&["vca", "applied", ""], 8.0),
            (&["vca", "duplicate", ""], 1.0),
            (&["vca", "rejected", &reason], 1.0),
            (&["vss", "recorded", ""], 5.0),
        ]),
        "{text}"
    );
    // Every webhook that reached the routes is timed, the rejected one too.
    let timed = values(&samples, "phonetree_webhook_duration_seconds_count", &[], &["endpoint"]);
    assert_eq!(timed, expected(&[(&["vca"], 10.0), (&["vss"], 5.0)]), "{text}");
    let commits = values(&samples, "phonetree_store_commit_duration_seconds_count", &[], &["store"]);
    // 8 applied webhooks and 5 summaries closing their sessions.
    assert_eq!(commits, expected(&[(&["sled"], 13.0)]), "{text}");
    let errors = values(&samples, "phonetree_8x8_errors_total", &[], &["code"]);
    assert_eq!(errors, expected(&[(&["-2005"], 1.0), (&["other"], 1.0)]), "{text}");
    // The health probe's session count, refreshed every 2 s: present, whatever its last value.
    assert!(samples.keys().any(|(name, _)| name == "phonetree_sessions"), "{text}");
    let loaded = values(&samples, "phonetree_machine_loaded", &abc, &[]);
    assert_eq!(loaded.values().copied().collect::<Vec<_>>(), vec![1.0], "{text}");
    // No series is labelled with a session id or a phone number.
    for forbidden in ["m1", "+65", "6568888888"] {
        assert!(
            !samples.keys().any(|(_, labels)| labels.values().any(|v| v == forbidden || v.contains("+65"))),
            "{forbidden}: {text}"
        );
    }
}

const ADMIN_TOKEN: &str = "admin-token-0123456789abcdef";

#[tokio::test]
async fn metrics_need_the_admin_token_when_one_is_set() {
    let t = tempfile::tempdir().unwrap();
    let token_file = t.path().join("admin-token");
    std::fs::write(&token_file, format!("{ADMIN_TOKEN}\n")).unwrap();
    let n = Node::start_with(
        &t.path().join("data"),
        &machines_dir(t.path()),
        &[("PHONETREE_ADMIN_TOKEN_FILE", token_file.to_str().unwrap())],
    );
    let (status, _, body) = scrape(&n, None).await;
    assert_eq!(status, 401, "{body}");
    let (status, _, body) = scrape(&n, Some("admin-token-0123456789abcdeF")).await;
    assert_eq!(status, 401, "{body}");
    let (status, _, body) = scrape(&n, Some(ADMIN_TOKEN)).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("phonetree_machine_loaded{"), "{body}");
    // Not on the public listener.
    let r = reqwest::get(n.url("/metrics")).await.unwrap();
    assert_eq!(r.status().as_u16(), 404);
}

#[tokio::test]
async fn promtool_accepts_the_exposition() {
    if !common::needs::needs_tool(common::needs::Need::Promtool, "promtool", "--version") {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let n = Node::start(&t.path().join("data"), &machines_dir(t.path()));
    call(&n, "p1", &["1", "1", "2"]).await;
    call(&n, "p2", &["2"]).await;
    post(&n.url("/webhooks/vss"), vss("p2", "COMPLETED")).await;
    post(&n.url("/webhooks/vca"), "{not json").await;
    let (status, _, text) = scrape(&n, None).await;
    assert_eq!(status, 200, "{text}");
    let mut child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}\n---\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn a_call_the_ttl_sweep_closes_ends_expired_at_its_node() {
    let t = tempfile::tempdir().unwrap();
    let n = Node::start_with(
        &t.path().join("data"),
        &machines_dir(t.path()),
        &[("PHONETREE_SESSION_TTL_SECS", "1")],
    );
    call(&n, "x1", &["2"]).await;
    // The sweep runs every half TTL; the session is silent from now on.
    let mut ended = BTreeMap::new();
    for _ in 0..200 {
        let (_, _, text) = scrape(&n, None).await;
        ended = values(
            &parse(&text),
            "phonetree_calls_ended_total",
            &[("machine", "abc_restaurant")],
            &["node", "how"],
        );
        if !ended.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(ended, expected(&[(&["connect_call", "expired"], 1.0)]));
}
