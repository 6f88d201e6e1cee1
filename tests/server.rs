//! The durable webhook node, for real: `phonetree serve` as a child process on a loopback port with
//! its own sled data dir, driven over HTTP through the seeds' calls, restarts, kills, duplicates,
//! concurrent deliveries, summaries, bad input and the outbound `call` command.

use crate::common;

use common::*;
use phonetree::store::{Commit, Committed, Store};
use serde_json::json;

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

fn node(t: &tempfile::TempDir) -> Node {
    Node::start(&t.path().join("data"), &machines_dir(t.path()))
}

fn vca_url(n: &Node) -> String {
    n.url("/webhooks/vca")
}

#[tokio::test]
async fn advanced_seed_call_over_http() {
    let t = tmp();
    let n = node(&t);
    // The opening Send Callflow played the main menu; 8x8's first webhook has no clientActionId.
    let a = post(&vca_url(&n), Vca::abc("s-adv", "e1", Some("1"), None).body()).await;
    assert_eq!(comparable(a.json()), comparable(golden("seeds/advanced/reservations.json")));
    let id1 = a.client_action_id().unwrap();
    assert!(id1.starts_with("pt.abc_restaurant.reservations."), "{id1}");
    let b = post(&vca_url(&n), Vca::abc("s-adv", "e2", Some("1"), Some(&id1)).body()).await;
    assert_eq!(comparable(b.json()), comparable(golden("seeds/advanced/book_table.json")));
    let id2 = b.client_action_id().unwrap();
    let c = post(&vca_url(&n), Vca::abc("s-adv", "e3", Some("2"), Some(&id2)).body()).await;
    assert_eq!(comparable(c.json()), comparable(golden("seeds/advanced/booked_tomorrow.json")));
    assert_eq!(c.how, "applied");
    let s = post(&n.url("/webhooks/vss"), vss("s-adv", "COMPLETED")).await;
    assert_eq!((s.status, s.json()), (200, json!({"status": "recorded"})));
}

#[tokio::test]
async fn both_dtmf_shapes_and_null_dtmf_are_accepted() {
    let t = tmp();
    let n = node(&t);
    let mut v = Vca::abc("s-shape", "e1", Some("2"), None);
    v.event_data = true;
    let a = post(&vca_url(&n), v.body()).await;
    assert_eq!(comparable(a.json()), comparable(golden("seeds/advanced/connect_call_menu.json")));
    let id = a.client_action_id().unwrap();
    // dtmf: null — the caller pressed nothing.
    let b = post(&vca_url(&n), Vca::abc("s-shape", "e2", None, Some(&id)).body()).await;
    assert_eq!(comparable(b.json()), comparable(golden("seeds/advanced/invalid.json")));
}

#[tokio::test]
async fn inbound_simple_seed_call_with_call_received() {
    let t = tmp();
    let n = node(&t);
    let mut start = Vca::abc("s-in", "e0", None, None);
    (start.status, start.direction, start.source, start.destination) =
        ("CALL_RECEIVED", "INBOUND", "+6512345678", "6561115777");
    let a = post(&vca_url(&n), start.body()).await;
    let flow = a.json();
    assert_eq!(
        flow["callflow"][0],
        golden("seeds/simple/initial.json")["callflow"][1]
            .as_object()
            .map(|o| {
                let mut o = o.clone();
                o["params"].as_object_mut().unwrap().remove("successMessage");
                serde_json::Value::Object(o)
            })
            .unwrap()
    );
    let id = a.client_action_id().unwrap();
    let mut again = Vca::abc("s-in", "e1", Some("7"), Some(&id));
    (again.direction, again.source, again.destination) = ("INBOUND", "+6512345678", "6561115777");
    let b = post(&vca_url(&n), again.body()).await;
    assert_eq!(comparable(b.json()), comparable(golden("seeds/simple/repeat.json")));
    let id = b.client_action_id().unwrap();
    let mut two = Vca::abc("s-in", "e2", Some("2"), Some(&id));
    (two.direction, two.source, two.destination) = ("INBOUND", "+6512345678", "6561115777");
    let c = post(&vca_url(&n), two.body()).await;
    // Inbound: the caller (+6512345678) is shown to the agent, as in the tutorial.
    assert_eq!(
        c.json()["callflow"][0],
        json!({"action": "makeCall", "params": {"source": "+6512345678", "destination": "6561115777"}})
    );
}

#[tokio::test]
async fn duplicate_delivery_replays_the_same_bytes_and_does_not_advance() {
    let t = tmp();
    let n = node(&t);
    let first = post(&vca_url(&n), Vca::abc("s-dup", "e1", Some("1"), None).body()).await;
    let again = post(&vca_url(&n), Vca::abc("s-dup", "e1", Some("1"), None).body()).await;
    assert_eq!(first.body, again.body);
    assert_eq!((first.how.as_str(), again.how.as_str()), ("applied", "duplicate"));
    // Still at reservations: 1 books a table.
    let id = first.client_action_id().unwrap();
    let next = post(&vca_url(&n), Vca::abc("s-dup", "e2", Some("1"), Some(&id)).body()).await;
    assert_eq!(comparable(next.json()), comparable(golden("seeds/advanced/book_table.json")));
}

#[tokio::test]
async fn a_stale_webhook_gets_the_current_prompt_and_is_not_applied() {
    let t = tmp();
    let n = node(&t);
    let a = post(&vca_url(&n), Vca::abc("s-stale", "e1", Some("1"), None).body()).await;
    let old = a.client_action_id().unwrap();
    let b = post(&vca_url(&n), Vca::abc("s-stale", "e2", Some("1"), Some(&old)).body()).await;
    // A different event answering the reservations prompt again: not applied.
    let stale = post(&vca_url(&n), Vca::abc("s-stale", "e3", Some("2"), Some(&old)).body()).await;
    assert_eq!(stale.how, "stale");
    assert_eq!(stale.unsigned(), b.unsigned(), "the current prompt (book_table), unchanged");
    assert!(n.log().contains("stale webhook"));
}

#[tokio::test]
async fn concurrent_deliveries_never_both_apply() {
    let t = tmp();
    let n = node(&t);
    for round in 0..20 {
        let session = format!("s-race-{round}");
        let a = post(&vca_url(&n), Vca::abc(&session, "e1", Some("1"), None).body()).await;
        let id = a.client_action_id().unwrap();
        // Two different answers to the same prompt at once, and a duplicate of one of them.
        let url = vca_url(&n);
        let (x, y, z) = tokio::join!(
            post(&url, Vca::abc(&session, "e2", Some("1"), Some(&id)).body()),
            post(&url, Vca::abc(&session, "e3", Some("2"), Some(&id)).body()),
            post(&url, Vca::abc(&session, "e2", Some("1"), Some(&id)).body()),
        );
        let applied = [&x, &y, &z].iter().filter(|r| r.how == "applied").count();
        assert_eq!(applied, 1, "round {round}: {} {} {}", x.how, y.how, z.how);
        assert_eq!(x.body, z.body, "round {round}: a duplicate gets the same bytes");
        // The loser was answered with the winner's prompt.
        assert_eq!(x.unsigned(), y.unsigned(), "round {round}");
    }
}

#[tokio::test]
async fn restart_mid_call_resumes_at_the_same_node_with_the_same_tries() {
    let t = tmp();
    let mut n = node(&t);
    let mut start = Vca::abc("s-restart", "e0", None, None);
    (start.status, start.direction, start.source, start.destination) =
        ("CALL_RECEIVED", "INBOUND", "+6512345678", "6561115777");
    let a = post(&vca_url(&n), start.body()).await;
    let id = a.client_action_id().unwrap();
    let answer = Vca { status: "DTMF_RECEIVED", ..start };
    let b = post(
        &vca_url(&n),
        Vca { event: "e1", dtmf: Some("7"), client_action_id: Some(&id), ..answer }.body(),
    )
    .await;
    assert_eq!(comparable(b.json()), comparable(golden("seeds/simple/repeat.json")));
    let id = b.client_action_id().unwrap();
    assert!(n.terminate().success(), "SIGTERM exits 0");
    n.restart();
    // Second wrong key: one try left, the menu repeats.
    let c = post(
        &vca_url(&n),
        Vca { event: "e2", dtmf: Some("8"), client_action_id: Some(&id), ..answer }.body(),
    )
    .await;
    assert_eq!(comparable(c.json()), comparable(golden("seeds/simple/repeat.json")));
    let id = c.client_action_id().unwrap();
    n.kill();
    n.restart();
    // Third wrong key: tries are used up (they survived both restarts).
    let d = post(
        &vca_url(&n),
        Vca { event: "e3", dtmf: Some("9"), client_action_id: Some(&id), ..answer }.body(),
    )
    .await;
    let flow = d.json();
    assert_eq!(
        flow["callflow"][0]["params"]["text"],
        "Sorry, we still could not understand your response. Goodbye."
    );
    // And the events from before the kill are still journaled.
    let replay = post(
        &vca_url(&n),
        Vca { event: "e2", dtmf: Some("8"), client_action_id: Some(&id), ..answer }.body(),
    )
    .await;
    assert_eq!((replay.how.as_str(), replay.body), ("duplicate", c.body));
}

#[tokio::test]
async fn kill_9_during_a_stream_of_webhooks_loses_no_acknowledged_transition() {
    let t = tmp();
    let mut n = node(&t);
    let sessions: Vec<String> = (0..16).map(|i| format!("s-kill-{i}")).collect();
    let mut acked = Vec::new();
    for s in &sessions {
        let a = post(&vca_url(&n), Vca::abc(s, "e1", Some("1"), None).body()).await;
        acked.push((s.clone(), a.client_action_id().unwrap(), a.body));
    }
    n.kill();
    n.restart();
    for (s, id, body) in &acked {
        // Every acknowledged transition is there: a duplicate of e1 replays it...
        let replay = post(&vca_url(&n), Vca::abc(s, "e1", Some("1"), None).body()).await;
        assert_eq!(&replay.body, body);
        // ... and the call goes on from reservations.
        let next = post(&vca_url(&n), Vca::abc(s, "e2", Some("2"), Some(id)).body()).await;
        assert_eq!(comparable(next.json()), comparable(golden("seeds/advanced/reschedule_table.json")));
    }
}

#[tokio::test]
async fn a_summary_closes_the_call_and_a_later_call_action_hangs_up() {
    let t = tmp();
    let n = node(&t);
    let a = post(&vca_url(&n), Vca::abc("s-vss", "e1", Some("1"), None).body()).await;
    let id = a.client_action_id().unwrap();
    assert_eq!(post(&n.url("/webhooks/vss"), vss("s-vss", "COMPLETED")).await.status, 200);
    assert_eq!(post(&n.url("/webhooks/vss"), vss("s-vss", "COMPLETED")).await.status, 200, "idempotent");
    let late = post(&vca_url(&n), Vca::abc("s-vss", "e2", Some("1"), Some(&id)).body()).await;
    assert_eq!(late.json(), json!({"callflow": [{"action": "hangup"}]}));
    // A summary for a session never seen is stored too.
    assert_eq!(post(&n.url("/webhooks/vss"), vss("s-never-seen", "NO_ANSWER")).await.status, 200);

    let mut n = n;
    assert!(n.terminate().success());
    let store = phonetree::store::SledStore::open(&n.data).unwrap();
    let closed = store.load("s-vss", None).await.unwrap().session.unwrap().state;
    assert!(closed.closed, "{closed:?}");
    let summary = store.summary("s-vss").await.unwrap().unwrap().summary;
    assert_eq!((summary.status.as_str(), summary.last_action.as_deref()), ("COMPLETED", Some("HANGUP")));
    assert_eq!(summary.call_count, Some(1));
    let leg = &summary.legs[0];
    assert_eq!(
        (leg.name.as_str(), leg.status.as_deref(), leg.duration_s),
        ("callA", Some("COMPLETED"), Some(16))
    );
    assert_eq!(store.summary("s-never-seen").await.unwrap().unwrap().summary.status, "NO_ANSWER");
    assert!(
        store.load("s-never-seen", None).await.unwrap().session.is_none(),
        "a summary alone starts no session"
    );
}

/// Polls `/readyz` until `sessions` equals `want` (bounded: the sweeper runs twice per TTL, and
/// `/readyz` is refreshed every `health::HEALTH_INTERVAL`).
async fn wait_for_sessions(n: &Node, want: u64) {
    for _ in 0..200 {
        let ready: serde_json::Value = reqwest::get(n.url("/readyz")).await.unwrap().json().await.unwrap();
        if ready["sessions"] == want {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("sessions never reached {want}\n{}", n.log());
}

#[tokio::test]
async fn a_session_without_a_summary_is_closed_after_the_ttl_and_deleted_after_retention() {
    let t = tmp();
    let env = [("PHONETREE_SESSION_TTL_SECS", "1"), ("PHONETREE_RETENTION_SECS", "3")];
    let n = Node::start_with(&t.path().join("data"), &machines_dir(t.path()), &env);
    let a = post(&vca_url(&n), Vca::abc("s-ttl", "e1", Some("1"), None).body()).await;
    let id = a.client_action_id().unwrap();
    wait_for_sessions(&n, 1).await;
    for _ in 0..100 {
        if n.log().contains("no summary within the TTL: session closed") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let late = post(&vca_url(&n), Vca::abc("s-ttl", "e2", Some("1"), Some(&id)).body()).await;
    assert_eq!(late.json(), json!({"callflow": [{"action": "hangup"}]}), "{}", n.log());
    // Past its retention the closed session and its reply journal are deleted.
    wait_for_sessions(&n, 0).await;
}

/// A summary of a call the node never saw (anyone who reaches the port can post one) is kept no
/// longer than a closed call.
#[tokio::test]
async fn a_summary_of_an_unknown_call_is_deleted_after_the_retention() {
    let t = tmp();
    let env = [("PHONETREE_SESSION_TTL_SECS", "1"), ("PHONETREE_RETENTION_SECS", "1")];
    let mut n = Node::start_with(&t.path().join("data"), &machines_dir(t.path()), &env);
    assert_eq!(post(&n.url("/webhooks/vss"), vss("s-stranger", "COMPLETED")).await.status, 200);
    for _ in 0..100 {
        if n.log().contains("lone_summaries_deleted=1") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(n.log().contains("lone_summaries_deleted=1"), "{}", n.log());
    assert!(n.terminate().success());
    let store = phonetree::store::SledStore::open(&n.data).unwrap();
    assert!(store.summary("s-stranger").await.unwrap().is_none(), "the summary is gone");
}

#[tokio::test]
async fn a_call_with_no_stored_state_resumes_from_its_client_action_id() {
    let t = tmp();
    // The store (and the key it kept) is lost: the ids resume on the key the operator gave.
    let mut n = Node::start_with(
        &t.path().join("data"),
        &machines_dir(t.path()),
        &[("PHONETREE_ACTION_KEY", ACTION_KEY)],
    );
    let a = post(&vca_url(&n), Vca::abc("s-wiped", "e1", Some("1"), None).body()).await;
    let id = a.client_action_id().unwrap();
    n.kill();
    std::fs::remove_dir_all(&n.data).unwrap();
    n.restart();
    let b = post(&vca_url(&n), Vca::abc("s-wiped", "e2", Some("2"), Some(&id)).body()).await;
    assert_eq!(comparable(b.json()), comparable(golden("seeds/advanced/reschedule_table.json")));
    assert!(n.log().contains("resuming from the clientActionId"));
}

#[tokio::test]
async fn a_call_stays_on_the_machine_version_it_started_on() {
    let t = tmp();
    let mut n = node(&t);
    let a = post(&vca_url(&n), Vca::abc("s-pinned", "e1", Some("1"), None).body()).await;
    let id = a.client_action_id().unwrap();
    n.terminate();
    let file = n.machines.join("abc_restaurant.toml");
    let text = std::fs::read_to_string(&file)
        .unwrap()
        .replace("Reserving a Table,", "Reserving a table (new wording),");
    std::fs::write(&file, text).unwrap();
    n.restart();
    let old = post(&vca_url(&n), Vca::abc("s-pinned", "e2", Some("1"), Some(&id)).body()).await;
    assert_eq!(
        comparable(old.json()),
        comparable(golden("seeds/advanced/book_table.json")),
        "the old version"
    );
    let new = post(&vca_url(&n), Vca::abc("s-new", "e1", Some("1"), None).body()).await;
    let id = new.client_action_id().unwrap();
    let new = post(&vca_url(&n), Vca::abc("s-new", "e2", Some("1"), Some(&id)).body()).await;
    assert!(
        new.json()["callflow"][0]["params"]["promptMessage"]
            .as_str()
            .unwrap()
            .starts_with("Reserving a table (new wording),")
    );
}

#[tokio::test]
async fn bad_webhooks_get_a_json_4xx_and_store_nothing() {
    let t = tmp();
    let n = node(&t);
    let cases: Vec<(Vec<u8>, u16, &str)> = vec![
        (b"{not json".to_vec(), 400, "malformed_json"),
        (json!({"eventType": "SESSION_SUMMARY", "payload": {"sessionId": "x"}}).to_string().into(), 400, "wrong_event_type"),
        (json!({"eventType": "CALL_ACTION", "payload": {"eventId": "e"}}).to_string().into(), 400, "missing_field"),
        (json!({"eventType": "CALL_ACTION", "payload": {"sessionId": "s"}}).to_string().into(), 400, "missing_field"),
        (json!({"eventType": "CALL_ACTION", "payload": {"sessionId": "s", "eventId": "e", "dtmf": {"x": 1}}}).to_string().into(), 400, "invalid_field"),
        (json!({"eventType": "CALL_ACTION", "payload": []}).to_string().into(), 400, "invalid_field"),
        (vec![b'a'; 70_000], 413, "payload_too_large"),
        // Two `dtmf`s (the second deep inside `payload`) would be read one way by us and
        // perhaps another by whoever logged the body.
        (br#"{"eventType":"CALL_ACTION","payload":{"sessionId":"s","eventId":"e","dtmf":"1","dtmf":"9"}}"#.to_vec(), 400, "duplicate_key"),
        (br#"{"eventType":"CALL_ACTION","eventType":"CALL_ACTION","payload":{"sessionId":"s","eventId":"e"}}"#.to_vec(), 400, "duplicate_key"),
        (br#"{"eventType":"CALL_ACTION","payload":{"sessionId":"s","eventId":"e","eventData":{"dtmf":"1","dtmf":"2"}}}"#.to_vec(), 400, "duplicate_key"),
    ];
    for (body, status, code) in cases {
        let r = post(&vca_url(&n), body).await;
        assert_eq!((r.status, r.json()["error"]["code"].as_str().unwrap()), (status, code));
        assert!(r.json()["error"]["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    let r =
        post(&n.url("/webhooks/vss"), json!({"eventType": "CALL_ACTION", "payload": {}}).to_string()).await;
    assert_eq!((r.status, r.json()["error"]["code"].as_str().unwrap()), (400, "wrong_event_type"));
    let legs: serde_json::Map<String, serde_json::Value> =
        (0..17).map(|i| (format!("leg{i}"), json!({"callStatus": "COMPLETED"}))).collect();
    let r = post(
        &n.url("/webhooks/vss"),
        json!({"eventType": "SESSION_SUMMARY", "payload": {"sessionId": "s-many", "details": legs}})
            .to_string(),
    )
    .await;
    assert_eq!((r.status, r.json()["error"]["code"].as_str().unwrap()), (400, "too_many_legs"));
    let r = post(
        &n.url("/webhooks/vss"),
        json!({"eventType": "SESSION_SUMMARY", "payload": {"sessionId": "s-long", "lastAction": "x".repeat(300)}})
            .to_string(),
    )
    .await;
    assert_eq!((r.status, r.json()["error"]["code"].as_str().unwrap()), (400, "field_too_long"));
    let r = post(&n.url("/nowhere"), "{}").await;
    assert_eq!((r.status, r.json()["error"]["code"].as_str().unwrap()), (404, "not_found"));
    assert_eq!(n.ready_now().await["sessions"], 0, "nothing was stored");
}

/// SIGHUP reloads the machines, and never ends the node mid-call.
#[tokio::test]
async fn sighup_reloads_and_does_not_end_the_node() {
    let t = tmp();
    let mut n = node(&t);
    let a = post(&vca_url(&n), Vca::abc("s-hup", "e1", Some("1"), None).body()).await;
    let id = a.client_action_id().unwrap();
    let hup = std::process::Command::new("kill").args(["-HUP", &n.child.id().to_string()]).status().unwrap();
    assert!(hup.success());
    let b = post(&vca_url(&n), Vca::abc("s-hup", "e2", Some("1"), Some(&id)).body()).await;
    assert_eq!((b.status, b.how.as_str()), (200, "applied"), "the node still serves the call");
    assert!(n.child.try_wait().unwrap().is_none(), "the node is still running");
    // The signal is handled on the node's runtime: wait for its log line (bounded).
    for _ in 0..250 {
        if n.log().contains("machines reloaded") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(n.log().contains("SIGHUP: reloading the machines"), "{}", n.log());
    assert!(n.log().contains("machines reloaded"), "{}", n.log());
    assert!(n.terminate().success());
}

#[tokio::test]
async fn health_and_readiness() {
    let t = tmp();
    let n = node(&t);
    let h = reqwest::get(n.url("/healthz")).await.unwrap();
    assert_eq!(h.status(), 200);
    let r: serde_json::Value = reqwest::get(n.url("/readyz")).await.unwrap().json().await.unwrap();
    assert_eq!((r["status"].as_str(), r["machines"].as_u64()), (Some("ready"), Some(4)));
}

#[tokio::test]
async fn a_store_fault_answers_with_the_machine_fallback() {
    let t = tmp();
    let mut n = node(&t);
    let a = post(&vca_url(&n), Vca::abc("s-corrupt", "e1", Some("1"), None).body()).await;
    let id = a.client_action_id().unwrap();
    n.terminate();
    {
        // The call's state names a machine version this node neither loaded nor stored: a fault
        // made through the store's own interface, as a lost or foreign record would be.
        let store = phonetree::store::SledStore::open(&n.data).unwrap();
        let loaded = store.load("s-corrupt", None).await.unwrap().session.unwrap();
        let mut state = loaded.state.clone();
        state.version = phonetree::machine::Version([0xee; 32]);
        let commit = Commit {
            session: "s-corrupt",
            expected: Some(&loaded.rev),
            state: &state,
            reply: None,
            entries: &[],
            schedule: None,
            summary: None,
            wait: None,
        };
        assert_eq!(store.commit(commit).await.unwrap(), Committed::Done);
    }
    n.restart();
    let r = post(&vca_url(&n), Vca::abc("s-corrupt", "e2", Some("1"), Some(&id)).body()).await;
    assert_eq!((r.status, r.how.as_str()), (200, "fallback"));
    let flow = r.json();
    assert_eq!(
        flow["callflow"][0]["params"]["text"],
        "We are sorry, we cannot take your call right now. Please call again later."
    );
    assert_eq!(flow["callflow"][1]["action"], "hangup");
    r.callflow();
    assert!(n.log().contains("internal fault"));
    assert!(n.log().contains("is neither loaded nor stored"), "{}", n.log());
}

#[test]
fn serve_refuses_to_start_with_an_invalid_machine() {
    let t = tmp();
    let dir = machines_dir(t.path());
    std::fs::copy(repo().join("tests/data/diagnostics/trap.toml"), dir.join("trap.toml")).unwrap();
    let err = common::serve_refused(&dir, &t.path().join("data"));
    assert!(err.contains("trap.toml:24:8: error: node `loop`: trap"), "{err}");
}

#[tokio::test]
async fn call_variables_survive_a_kill_9() {
    let t = tmp();
    let mut n = node(&t);
    let mut v = Vca::abc("s-var", "e1", None, None);
    (v.status, v.direction, v.source, v.destination) =
        ("CALL_RECEIVED", "INBOUND", "+6591178965", "+6568880001");
    let a = post(&vca_url(&n), v.body()).await;
    let id = a.client_action_id().unwrap();
    assert!(id.starts_with("pt.callback_request.ask_number."), "{id}");
    (v.status, v.event, v.dtmf, v.client_action_id) =
        ("DTMF_RECEIVED", "e2", Some("91234567#"), Some(id.as_str()));
    let b = post(&vca_url(&n), v.body()).await;
    assert_eq!(
        b.json()["callflow"][0]["params"]["promptMessage"],
        "You keyed in 9 1 2 3 4 5 6 7. To confirm, press 1. To key it in again, press 2."
    );
    let id2 = b.client_action_id().unwrap();
    n.kill();
    n.restart();
    (v.event, v.dtmf, v.client_action_id) = ("e3", Some("1"), Some(id2.as_str()));
    let c = post(&vca_url(&n), v.body()).await;
    assert_eq!(c.how, "applied");
    assert_eq!(
        c.json()["callflow"][0]["params"]["text"],
        "Thank you. We will call you back on 9 1 2 3 4 5 6 7 within one business day."
    );
}

/// A fault anyone can repeat (a call to a number no machine answers) is logged a few times per
/// window, not once per webhook: the log must not become the disk-filler.
#[tokio::test]
async fn a_repeated_fault_is_logged_a_few_times_not_once_per_webhook() {
    let t = tmp();
    let n = node(&t);
    for i in 0..60 {
        let session = format!("s-nobody-{i}");
        let v = Vca {
            source: "+15550000000",
            destination: "+15550000001",
            direction: "INBOUND",
            ..Vca::abc(&session, "e1", Some("1"), None)
        };
        let r = post(&vca_url(&n), v.body()).await;
        assert_eq!((r.status, r.how.as_str()), (200, "fallback"));
    }
    let log = n.log();
    let lines = log.matches("no machine answers calls to +15550000001").count();
    assert!(
        (1..=phonetree::node::throttle::LINES_PER_WINDOW as usize).contains(&lines),
        "{lines} fault lines for 60 webhooks"
    );
    // Not the node's fault, and no caller's number in the log.
    assert!(!log.contains("internal fault") && !log.contains("+15550000000"), "{log}");
}

/// A webhook of the simple seed's inbound line (tech_support), for `session`.
fn simple<'a>(session: &'a str, event: &'a str, status: &'a str, dtmf: Option<&'a str>) -> Vca<'a> {
    let mut v = Vca::abc(session, event, dtmf, None);
    (v.status, v.direction, v.source, v.destination) = (status, "INBOUND", "+6512345678", "6561115777");
    v
}

/// A webhook after the call hung up applies nothing: it is answered with a hangup and labelled
/// `stale` (header, metrics), not `applied`, and the call's transcript does not grow.
#[tokio::test]
async fn a_webhook_after_the_hangup_is_stale() {
    let t = tmp();
    let n = node(&t);
    let a = post(&vca_url(&n), simple("s-over", "e0", "CALL_RECEIVED", None).body()).await;
    let id = a.client_action_id().unwrap();
    let mut one = simple("s-over", "e1", "DTMF_RECEIVED", Some("1"));
    one.client_action_id = Some(&id);
    let hung = post(&vca_url(&n), one.body()).await;
    assert_eq!((hung.how.as_str(), hung.json()), ("applied", json!({"callflow": [{"action": "hangup"}]})));
    let mut late = simple("s-over", "e2", "DTMF_RECEIVED", Some("2"));
    late.client_action_id = Some(&id);
    let late = post(&vca_url(&n), late.body()).await;
    assert_eq!((late.how.as_str(), late.json()), ("stale", json!({"callflow": [{"action": "hangup"}]})));
    let (_, _, text) = metrics::scrape(&n, None).await;
    assert_eq!(
        metrics::values(
            &metrics::parse(&text),
            "phonetree_webhooks_total",
            &[("endpoint", "vca")],
            &["outcome"]
        ),
        metrics::expected(&[(&["applied"], 2.0), (&["stale"], 1.0)]),
        "{text}"
    );
    let mut n = n;
    assert!(n.terminate().success());
    let store = phonetree::store::SledStore::open(&n.data).unwrap();
    assert_eq!(store.transcript("s-over").await.unwrap().len(), 2, "the late webhook left no entry");
}

/// An inbound call whose first webhook the node sees is not CALL_RECEIVED (it was lost, or the
/// call's state is gone) and carries no id: the call starts, and the caller hears the start
/// node's prompt, not "Sorry, we did not understand" for a prompt never played.
#[tokio::test]
async fn an_inbound_call_first_seen_without_call_received_starts_at_the_start_node() {
    let t = tmp();
    let n = node(&t);
    let received = post(&vca_url(&n), simple("s-new", "e0", "CALL_RECEIVED", None).body()).await;
    for (session, dtmf) in [("s-nothing", None), ("s-keys", Some("2"))] {
        let a = post(&vca_url(&n), simple(session, "e1", "DTMF_RECEIVED", dtmf).body()).await;
        assert_eq!(a.how, "applied", "{session}");
        assert_eq!(comparable(a.json()), comparable(received.json()), "{session}: the start node's prompt");
        // The call goes on from there.
        let id = a.client_action_id().unwrap();
        let mut next = simple(session, "e2", "DTMF_RECEIVED", Some("1"));
        next.client_action_id = Some(&id);
        assert_eq!(post(&vca_url(&n), next.body()).await.json(), json!({"callflow": [{"action": "hangup"}]}));
    }
}

/// `dtmf: ""` is no input, in both places 8x8 puts the keys (`payload.dtmf`,
/// `payload.eventData.dtmf`), and so is `dtmf: "#"` (only the key that completes an entry): the
/// retry is counted as `no_input`, never as an invalid key.
#[tokio::test]
async fn an_empty_dtmf_is_no_input_in_both_shapes() {
    let t = tmp();
    let n = node(&t);
    for (i, (event_data, keys)) in
        [(false, ""), (true, ""), (false, "#"), (true, "#")].into_iter().enumerate()
    {
        let session = format!("s-empty-{i}");
        let a = post(&vca_url(&n), simple(&session, "e0", "CALL_RECEIVED", None).body()).await;
        let id = a.client_action_id().unwrap();
        let mut empty = simple(&session, "e1", "DTMF_RECEIVED", Some(keys));
        (empty.client_action_id, empty.event_data) = (Some(id.as_str()), event_data);
        let b = post(&vca_url(&n), empty.body()).await;
        assert_eq!(b.how, "applied");
        assert!(
            b.body != a.body && String::from_utf8_lossy(&b.body).contains("Sorry, we did not understand")
        );
    }
    let (_, _, text) = metrics::scrape(&n, None).await;
    assert_eq!(
        metrics::values(
            &metrics::parse(&text),
            "phonetree_node_retries_total",
            &[("machine", "tech_support"), ("node", "menu")],
            &["reason"]
        ),
        metrics::expected(&[(&["no_input"], 4.0)]),
        "{text}"
    );
}
