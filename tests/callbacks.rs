//! Callbacks (issue 25 item 2): a transfer's `on_unanswered` calls the caller back when 8x8's
//! summary says the bridged leg was busy, not answered or failed. Through real nodes (`phonetree
//! serve` children on loopback, sled folders and the test PostgreSQL database) against a stand-in
//! for 8x8's Send Callflow API that records every request: exactly one request (with its
//! `validUntil`) per attempt, across restarts, SIGKILL and three nodes on one database; list,
//! cancel, the calling window and the attempts.

use crate::common;

use std::time::Duration;

use common::callflows::{self, SendCallflow};
use common::*;
use serde_json::{Value, json};

/// The caller, called back.
const CALLER: &str = "+6591234567";
/// `sales`: calls back at once, twice at most.
const SALES: &str = "+6568880100";
/// `sales_hours`: calls back ten minutes later at the earliest, mon-fri 09:00-18:00 Singapore.
const SALES_HOURS: &str = "+6568880102";
/// `call_back`'s number: the callbacks' caller ID.
const CALL_BACK: &str = "+6568880101";
/// The stand-in for 8x8's Send Callflow API: every request kept, each answered CREATED with a new
/// session id (`api-1`, `api-2`, ...).
struct Api(SendCallflow);

impl Api {
    async fn start() -> Api {
        Api(SendCallflow::creating("api-").await)
    }

    /// The bodies received, each checked to be a Send Callflow request.
    fn received(&self) -> Vec<Value> {
        bodies(self.0.received())
    }

    fn env(&self) -> Vec<(&'static str, String)> {
        let mut env = self.0.env();
        env.extend([
            ("PHONETREE_CLOCK_CONTROL", "true".to_string()),
            // Attempts to one caller within a minute (`rate_limited_attempts_wait_for_their_token`
            // keeps the default).
            ("PHONETREE_CALL_RATE_PER_DESTINATION", "10".into()),
        ]);
        env
    }

    /// Waits until the stand-in has received `n` requests, then three scheduler ticks (a second
    /// sending of any would be there by then): the bodies received.
    async fn wait_for(&self, n: usize) -> Vec<Value> {
        bodies(self.0.wait_for(n, Duration::from_secs(3)).await)
    }
}

fn bodies(received: Vec<callflows::Received>) -> Vec<Value> {
    let path = format!("/api/v1/subaccounts/{}/callflows", callflows::SUBACCOUNT);
    received
        .into_iter()
        .map(|r| {
            assert_eq!((r.method.as_str(), r.path.as_str()), ("POST", path.as_str()));
            r.body
        })
        .collect()
}

/// A folder with the three test machines.
fn machines(tmp: &std::path::Path) -> std::path::PathBuf {
    let dir = tmp.join("machines");
    std::fs::create_dir_all(&dir).unwrap();
    for name in ["sales.toml", "sales_hours.toml", "call_back.toml"] {
        std::fs::copy(repo().join("tests/data/callbacks").join(name), dir.join(name)).unwrap();
    }
    dir
}

fn node(dir: &std::path::Path, machines: &std::path::Path, env: &[(&'static str, String)]) -> Node {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    Node::start_with(dir, machines, &env)
}

/// An inbound call to `number` that goes straight to its transfer, then 8x8's summary `status`.
async fn unanswered_transfer(n: &Node, session: &str, number: &str, status: &str) {
    let vca = Vca {
        session,
        event: "e0",
        dtmf: None,
        client_action_id: None,
        status: "CALL_RECEIVED",
        direction: "INBOUND",
        source: CALLER,
        destination: number,
        event_data: false,
    };
    let reply = post(&n.url("/webhooks/vca"), vca.body()).await.json();
    assert_eq!(reply["callflow"][0]["action"], "makeCall", "{reply}");
    summary(n, session, status).await;
}

async fn summary(n: &Node, session: &str, status: &str) {
    let r =
        reqwest::Client::new().post(n.url("/webhooks/vss")).body(vss(session, status)).send().await.unwrap();
    assert!(r.status().is_success(), "{}", r.status());
}

async fn scheduled(n: &Node) -> Vec<Value> {
    // A mistyped filter beside `scheduled=true` is refused, not silently ignored.
    let r = reqwest::get(n.admin_url("/calls?scheduled=true&outcome=nonsense")).await.unwrap();
    assert_eq!(r.status(), 400);
    let r = reqwest::get(n.admin_url("/calls?scheduled=true")).await.unwrap();
    assert_eq!(r.status(), 200);
    r.json::<Value>().await.unwrap()["scheduled"].as_array().unwrap().clone()
}

/// Moves `n`'s clock `offset_ms` ahead of the real one.
async fn set_clock(n: &Node, offset_ms: i64) {
    let r = reqwest::Client::new()
        .post(n.admin_url("/admin/clock"))
        .json(&json!({ "offset_ms": offset_ms }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
}

/// `ms` as 8x8 writes `validUntil`.
fn valid_until(ms: u64) -> String {
    jiff::Timestamp::from_millisecond(ms as i64).unwrap().strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// The request calls the caller from `call_back`'s number, valid until the callback's time.
fn assert_calls_back(request: &Value, callback: &Value) {
    let valid = valid_until(callback["validUntilMs"].as_u64().unwrap());
    assert_eq!(request["validUntil"], valid.as_str(), "{request}");
    let make = &request["callflow"][0];
    assert_eq!(make["action"], "makeCall", "{request}");
    assert_eq!(make["params"]["destination"], CALLER);
    assert_eq!(make["params"]["source"], CALL_BACK);
}

#[tokio::test(flavor = "multi_thread")]
async fn no_answer_calls_back_once_per_attempt_until_the_attempts_run_out() {
    let t = tempfile::tempdir().unwrap();
    let api = Api::start().await;
    let n = node(&t.path().join("data"), &machines(t.path()), &api.env());
    unanswered_transfer(&n, "in-1", SALES, "NO_ANSWER").await;
    let sent = api.wait_for(1).await;
    assert_eq!(sent.len(), 1, "one request for the first attempt: {sent:?}");
    let listed = scheduled(&n).await;
    assert_eq!(listed.len(), 1);
    let cb = &listed[0];
    assert_eq!(
        (cb["id"].as_str(), cb["state"].as_str(), cb["session"].as_str()),
        (Some("cb-in-1"), Some("sent"), Some("api-1"))
    );
    assert_eq!(
        (cb["attempt"].as_u64(), cb["attempts"].as_u64(), cb["to"].as_str()),
        (Some(1), Some(2), Some(CALLER))
    );
    assert_calls_back(&sent[0], cb);

    // The callback is not answered: the second attempt, once.
    summary(&n, "api-1", "NO_ANSWER").await;
    let sent = api.wait_for(2).await;
    assert_eq!(sent.len(), 2, "one request for the second attempt: {sent:?}");
    let cb = &scheduled(&n).await[0];
    assert_eq!(
        (cb["attempt"].as_u64(), cb["state"].as_str(), cb["session"].as_str()),
        (Some(2), Some("sent"), Some("api-2"))
    );
    assert_calls_back(&sent[1], cb);

    // Not answered again: the attempts ran out, nothing more is sent.
    summary(&n, "api-2", "BUSY").await;
    let sent = api.wait_for(2).await;
    assert_eq!(sent.len(), 2, "no third attempt: {sent:?}");
    let cb = &scheduled(&n).await[0];
    assert_eq!(cb["state"], "done");
    assert!(cb["note"].as_str().unwrap().contains("after 2 attempts"), "{cb}");

    // An answered transfer, and one whose summary repeats, schedule nothing more.
    unanswered_transfer(&n, "in-2", SALES, "COMPLETED").await;
    summary(&n, "in-1", "NO_ANSWER").await;
    assert_eq!(api.wait_for(2).await.len(), 2);
    assert_eq!(scheduled(&n).await.len(), 1);
    let counted = callback_counts(&n).await;
    let expected = [("placed", 2), ("rescheduled", 1), ("scheduled", 1), ("unanswered", 1)];
    assert_eq!(counted, expected.map(|(e, k)| (e.to_string(), k)).into(), "phonetree_callbacks_total");
}

/// `phonetree_callbacks_total` of `n`, by event (over every machine label).
async fn callback_counts(n: &Node) -> std::collections::BTreeMap<String, u64> {
    let text = reqwest::get(n.admin_url("/metrics")).await.unwrap().text().await.unwrap();
    let mut counts = std::collections::BTreeMap::new();
    for line in text.lines().filter(|l| l.starts_with("phonetree_callbacks_total{")) {
        let event = line.split("event=\"").nth(1).and_then(|r| r.split('"').next()).unwrap();
        let value: u64 = line.rsplit(' ').next().unwrap().parse().unwrap();
        *counts.entry(event.to_string()).or_insert(0) += value;
    }
    counts
}

#[tokio::test(flavor = "multi_thread")]
async fn an_answered_callback_is_done_and_busy_or_failed_transfers_call_back_too() {
    let t = tempfile::tempdir().unwrap();
    let api = Api::start().await;
    let n = node(&t.path().join("data"), &machines(t.path()), &api.env());
    unanswered_transfer(&n, "in-busy", SALES, "BUSY").await;
    api.wait_for(1).await;
    // The callee answers the callback: its summary says COMPLETED.
    summary(&n, "api-1", "COMPLETED").await;
    unanswered_transfer(&n, "in-failed", SALES, "FAILED").await;
    let sent = api.wait_for(2).await;
    assert_eq!(sent.len(), 2, "{sent:?}");
    let listed = scheduled(&n).await;
    let state =
        |id: &str| listed.iter().find(|c| c["id"] == id).map(|c| c["state"].as_str().unwrap().to_string());
    assert_eq!(state("cb-in-busy").as_deref(), Some("done"), "{listed:?}");
    assert_eq!(state("cb-in-failed").as_deref(), Some("sent"), "{listed:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_callback_waits_for_its_window_survives_a_sigkill_and_is_sent_once_with_valid_until_at_its_end() {
    let t = tempfile::tempdir().unwrap();
    let api = Api::start().await;
    let mut n = node(&t.path().join("data"), &machines(t.path()), &api.env());
    let asked = phonetree::node::now_ms();
    unanswered_transfer(&n, "in-hours", SALES_HOURS, "NO_ANSWER").await;
    let listed = scheduled(&n).await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    let cb = listed[0].clone();
    assert_eq!(cb["state"], "pending");
    let (due, until) = (cb["dueMs"].as_u64().unwrap(), cb["validUntilMs"].as_u64().unwrap());
    // Ten minutes later at the earliest, in the window (mon-fri 09:00-18:00 in Singapore), valid
    // until that day's 18:00.
    assert!(due >= asked + 10 * 60_000, "{cb}");
    let local =
        |ms: u64| jiff::Timestamp::from_millisecond(ms as i64).unwrap().in_tz("Asia/Singapore").unwrap();
    let (d, u) = (local(due), local(until));
    assert!(!matches!(d.weekday(), jiff::civil::Weekday::Saturday | jiff::civil::Weekday::Sunday), "{d}");
    assert!((9..18).contains(&d.hour()), "{d}");
    assert_eq!((u.date(), u.hour(), u.minute()), (d.date(), 18, 0), "{u}");
    // Nothing is sent before its time, across a SIGKILL and a restart.
    tokio::time::sleep(Duration::from_secs(2)).await;
    n.kill();
    n.restart();
    assert_eq!(scheduled(&n).await, vec![cb.clone()], "the restarted node keeps it as it was");
    assert!(api.received().is_empty());
    // The clock at its time: sent once, valid until the window's end.
    let offset = due as i64 - phonetree::node::now_ms() as i64 + 1_000;
    set_clock(&n, offset).await;
    let sent = api.wait_for(1).await;
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0]["validUntil"], valid_until(until).as_str());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cancelled_callback_is_never_sent_and_the_cli_lists_and_cancels() {
    let t = tempfile::tempdir().unwrap();
    let api = Api::start().await;
    let n = node(&t.path().join("data"), &machines(t.path()), &api.env());
    unanswered_transfer(&n, "in-a", SALES_HOURS, "BUSY").await;
    unanswered_transfer(&n, "in-b", SALES_HOURS, "BUSY").await;
    let cli = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_phonetree"))
            .args(["calls"])
            .args(args)
            .args(["--server", &format!("http://{}", n.admin)])
            .output()
            .unwrap();
        (out.status.code(), String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap())
    };
    let (code, out, err) = cli(&["list", "--scheduled"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out.lines().count(), 2, "{out}");
    assert!(
        out.lines().all(|l| l.contains("pending") && l.contains(CALLER) && l.contains("attempt 1/1")),
        "{out}"
    );
    let (code, out, err) = cli(&["cancel", "cb-in-a"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.starts_with("cb-in-a  cancelled"), "{out}");
    // Twice: refused, naming its state; an unknown id: refused.
    let (code, _, err) = cli(&["cancel", "cb-in-a"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("is cancelled, not pending"), "{err}");
    let (code, _, err) = cli(&["cancel", "cb-nothing"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("no scheduled call `cb-nothing`"), "{err}");
    let r =
        reqwest::Client::new().post(n.admin_url("/calls/scheduled/cb-nothing/cancel")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    // Past their time: only the one not cancelled is sent.
    let due = scheduled(&n).await.iter().map(|c| c["dueMs"].as_u64().unwrap()).max().unwrap();
    set_clock(&n, due as i64 - phonetree::node::now_ms() as i64 + 1_000).await;
    let sent = api.wait_for(1).await;
    assert_eq!(sent.len(), 1, "{sent:?}");
    let listed = scheduled(&n).await;
    let state =
        |id: &str| listed.iter().find(|c| c["id"] == id).map(|c| c["state"].as_str().unwrap().to_string());
    assert_eq!((state("cb-in-a").as_deref(), state("cb-in-b").as_deref()), (Some("cancelled"), Some("sent")));
    // Once sent, it cannot be cancelled.
    let r = reqwest::Client::new().post(n.admin_url("/calls/scheduled/cb-in-b/cancel")).send().await.unwrap();
    assert_eq!(r.status(), 409);
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["code"], "not_pending");
    let counted = callback_counts(&n).await;
    assert_eq!((counted.get("cancelled"), counted.get("placed")), (Some(&1), Some(&1)), "{counted:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn three_nodes_on_one_database_send_each_attempt_once_across_a_sigkill_of_the_scheduling_node() {
    let t = tempfile::tempdir().unwrap();
    let Some(url) = backends::postgres_url_for(t.path()).await else { return };
    let api = Api::start().await;
    let mut env = api.env();
    env.push(("PHONETREE_STORE", url));
    let machines = machines(t.path());
    let mut nodes: Vec<Node> =
        (0..3).map(|k| node(&t.path().join(format!("n{k}")), &machines, &env)).collect();
    // Node 0 schedules (ten minutes ahead at the earliest), then is killed.
    unanswered_transfer(&nodes[0], "in-pg", SALES_HOURS, "NO_ANSWER").await;
    let cb = scheduled(&nodes[1]).await[0].clone();
    assert_eq!(cb["state"], "pending");
    nodes[0].kill();
    // Every node left at the callback's time: one of them sends it, once.
    let offset = cb["dueMs"].as_u64().unwrap() as i64 - phonetree::node::now_ms() as i64 + 1_000;
    for n in &nodes[1..] {
        set_clock(n, offset).await;
    }
    let sent = api.wait_for(1).await;
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_calls_back(&sent[0], &cb);
    let now = scheduled(&nodes[2]).await[0].clone();
    assert_eq!((now["state"].as_str(), now["session"].as_str()), (Some("sent"), Some("api-1")));
    // `sales` calls back at once: every node's scheduler competes for each attempt, and each is
    // sent once.
    unanswered_transfer(&nodes[1], "in-pg-2", SALES, "NO_ANSWER").await;
    let sent = api.wait_for(2).await;
    assert_eq!(sent.len(), 2, "{sent:?}");
    summary(&nodes[2], "api-2", "NO_ANSWER").await;
    let sent = api.wait_for(3).await;
    assert_eq!(sent.len(), 3, "{sent:?}");
    summary(&nodes[1], "api-3", "NO_ANSWER").await;
    assert_eq!(api.wait_for(3).await.len(), 3, "the attempts ran out");
    // The killed node restarted finds them as they are and sends nothing again.
    nodes[0].restart();
    assert_eq!(api.wait_for(3).await.len(), 3);
    let listed = scheduled(&nodes[0]).await;
    let state =
        |id: &str| listed.iter().find(|c| c["id"] == id).map(|c| c["state"].as_str().unwrap().to_string());
    assert_eq!((state("cb-in-pg").as_deref(), state("cb-in-pg-2").as_deref()), (Some("sent"), Some("done")));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_attempt_the_rate_limit_refuses_waits_for_its_token_and_is_sent_once() {
    let t = tempfile::tempdir().unwrap();
    let api = Api::start().await;
    let mut env = api.env();
    // One call a minute to a number (the default).
    env.retain(|(k, _)| *k != "PHONETREE_CALL_RATE_PER_DESTINATION");
    let n = node(&t.path().join("data"), &machines(t.path()), &env);
    unanswered_transfer(&n, "in-rate", SALES, "NO_ANSWER").await;
    assert_eq!(api.wait_for(1).await.len(), 1);
    summary(&n, "api-1", "NO_ANSWER").await;
    // The second attempt, due at once, is refused by the caller's bucket before anything is
    // sent: put back for when it has a token.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(api.received().len(), 1);
    let cb = scheduled(&n).await[0].clone();
    assert_eq!((cb["state"].as_str(), cb["attempt"].as_u64()), (Some("pending"), Some(2)), "{cb}");
    assert!(cb["note"].as_str().unwrap().starts_with("rate-limited"), "{cb}");
    set_clock(&n, 61_000).await;
    let sent = api.wait_for(2).await;
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert_calls_back(&sent[1], &scheduled(&n).await[0]);
}

#[test]
fn check_reports_every_bad_on_unanswered_at_its_line_in_one_run() {
    let t = tempfile::tempdir().unwrap();
    let dir = machines(t.path());
    std::fs::write(
        dir.join("bad.toml"),
        r#"name = "bad"
start = "agent"
numbers = ["+6568880109"]

[nodes.agent]
kind = "transfer"
destination = "+6531589338"
on_unanswered = { after_minutes = 20000, attempts = 0, machine = "call_back", window = "weekdays 9-5" }
"#,
    )
    .unwrap();
    std::fs::write(
        dir.join("lost.toml"),
        r#"name = "lost"
start = "agent"
numbers = ["+6568880108"]
timezone = "Asia/Singapore"

[nodes.agent]
kind = "transfer"
destination = "+6531589338"
on_unanswered = { machine = "cal_back", window = "mon-fri 09:00-18:00" }
"#,
    )
    .unwrap();
    // A callback machine with no number to call from.
    std::fs::write(
        dir.join("silent.toml"),
        "name = \"silent\"\nstart = \"bye\"\n\n[nodes.bye]\nkind = \"hangup\"\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("asks.toml"),
        "name = \"asks\"\nstart = \"agent\"\nnumbers = [\"+6568880107\"]\n\n[nodes.agent]\nkind = \"transfer\"\n\
         destination = \"+6531589338\"\non_unanswered = { machine = \"silent\" }\n",
    )
    .unwrap();
    let out =
        std::process::Command::new(env!("CARGO_BIN_EXE_phonetree")).arg("check").arg(&dir).output().unwrap();
    let err = String::from_utf8(out.stderr).unwrap() + &String::from_utf8(out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(1), "{err}");
    for expected in [
        "bad.toml:8:17: error: node `agent`, field `on_unanswered`: `after_minutes` must be 0 to 10080",
        "bad.toml:8:17: error: node `agent`, field `on_unanswered`: `attempts` must be 1 to 5",
        "bad.toml:8:17: error: node `agent`, field `on_unanswered`: `window` `weekdays 9-5` is not days and hours",
        "lost.toml:9:30: error: node `agent`, field `on_unanswered.machine`: `on_unanswered` names machine `cal_back`, which is not loaded with this one",
        "did you mean `call_back`?",
        "asks.toml:8:30: error: node `agent`, field `on_unanswered.machine`: `on_unanswered` names machine `silent`, which has no `numbers` to call from",
    ] {
        assert!(err.contains(expected), "missing {expected:?} in:\n{err}");
    }
    // The three test machines load as they are.
    std::fs::remove_file(dir.join("bad.toml")).unwrap();
    for file in ["lost.toml", "silent.toml", "asks.toml"] {
        std::fs::remove_file(dir.join(file)).unwrap();
    }
    let out =
        std::process::Command::new(env!("CARGO_BIN_EXE_phonetree")).arg("check").arg(&dir).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn diff_names_a_changed_callback() {
    let t = tempfile::tempdir().unwrap();
    let old = repo().join("tests/data/callbacks/sales_hours.toml");
    let text = std::fs::read_to_string(&old).unwrap().replace("mon-fri 09:00-18:00", "mon-sat 09:00-20:00");
    let new = t.path().join("sales_hours.toml");
    std::fs::write(&new, text).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_phonetree"))
        .args(["diff", "--exit-code", "ends"])
        .args([&old, &new])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("`agent`: settings changed: on_unanswered"), "{text}");
    // What callers hear and where calls end is the same: exit 0 with `--exit-code ends`.
    assert_eq!(out.status.code(), Some(0), "{text}");
}
