//! Reloading the machines of a real node (SIGHUP, `POST /admin/reload`) under live calls: versions
//! swap with no failed webhook and no call moved mid-call, broken files keep the running set, the
//! admin token guards the route; and `--log-format json`.

use crate::common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use common::*;
use serde_json::Value;

/// Calls answering webhooks in a loop while the machines reload.
const CALLERS: usize = 4;
/// Answers the callers give before the reload, and after it, at least.
const ANSWERS_AROUND_RELOAD: u64 = 40;

const OLD_MENU: &str = "Press 1 to make a new reservation";
const NEW_MENU: &str = "Press 1 to book a brand new reservation";

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

fn abc_file(n: &Node) -> std::path::PathBuf {
    n.machines.join("abc_restaurant.toml")
}

/// Rewords abc_restaurant's reservations prompt (a new version of the machine).
fn reword_abc(n: &Node) {
    let text = std::fs::read_to_string(abc_file(n)).unwrap();
    assert!(text.contains(OLD_MENU));
    std::fs::write(abc_file(n), text.replace(OLD_MENU, NEW_MENU)).unwrap();
}

fn hangup(n: &Node) {
    let hup = std::process::Command::new("kill").args(["-HUP", &n.child.id().to_string()]).status().unwrap();
    assert!(hup.success());
}

async fn machines(n: &Node) -> Value {
    reqwest::get(n.admin_url("/admin/machines")).await.unwrap().json().await.unwrap()
}

/// `GET /admin/machines` once the node has done `count` reloads of the kind `result` (bounded).
async fn after_reloads(n: &Node, result: &str, count: u64) -> Value {
    for _ in 0..1500 {
        let m = machines(n).await;
        if m["reloads"][result].as_u64() == Some(count) {
            return m;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("no {count} {result} reload(s) within 30 s: {}\n{}", machines(n).await, n.log())
}

fn abc_version(m: &Value) -> String {
    let abc = m["machines"].as_array().unwrap().iter().find(|m| m["name"] == "abc_restaurant");
    abc.unwrap_or_else(|| panic!("{m}"))["version"].as_str().unwrap().to_string()
}

/// The text of a reply's prompt (every `say` of it).
fn said(a: &Answer) -> String {
    let flow = a.json();
    let mut text = String::new();
    for action in flow["callflow"].as_array().into_iter().flatten() {
        for key in ["text", "prompt"] {
            if let Some(t) = action["params"][key].as_str() {
                text.push_str(t);
            }
        }
    }
    if text.is_empty() { flow.to_string() } else { text }
}

/// What the callers saw.
#[derive(Default)]
struct Tally {
    answers: AtomicU64,
    /// Calls that got their first answer.
    started: AtomicU64,
    bad: std::sync::Mutex<Vec<String>>,
}

impl Tally {
    fn fail(&self, why: String) {
        self.bad.lock().unwrap().push(why);
    }
}

/// One call on abc_restaurant, answered in a loop (reservations, back to the main menu, again)
/// until `stop`; every reservations prompt must be in `wording`.
async fn caller(
    url: String,
    session: String,
    wording: &'static str,
    stop: Arc<AtomicBool>,
    tally: Arc<Tally>,
) {
    let client = client_within(Duration::from_secs(30));
    let mut id: Option<String> = None;
    let mut event = 0u32;
    while !stop.load(Ordering::Relaxed) {
        event += 1;
        // The opening prompt is the main menu: press 1 (reservations), then 3 (back), and so on.
        let dtmf = if event % 2 == 1 { "1" } else { "3" };
        let ev = format!("e{event}");
        let body = Vca::abc(&session, &ev, Some(dtmf), id.as_deref()).body();
        let a = match try_post(&client, &url, body).await {
            Ok(a) => a,
            Err(e) => return tally.fail(format!("{session}: {e}")),
        };
        tally.answers.fetch_add(1, Ordering::Relaxed);
        if event == 1 {
            tally.started.fetch_add(1, Ordering::Relaxed);
        }
        if a.status != 200 || a.how != "applied" {
            return tally.fail(format!(
                "{session} {ev}: {} {:?} {}",
                a.status,
                a.how,
                String::from_utf8_lossy(&a.body)
            ));
        }
        let text = said(&a);
        let expected = if dtmf == "1" { wording } else { "Welcome to ABC Restaurant" };
        if !text.contains(expected) {
            return tally.fail(format!("{session} {ev}: expected {expected:?}, heard {text:?}"));
        }
        id = a.json()["clientActionId"].as_str().map(str::to_string);
    }
}

/// Until every caller has started its call and they got `at_least` answers in all (or one failed).
async fn wait_answers(tally: &Tally, at_least: u64) {
    let waiting = || {
        tally.answers.load(Ordering::Relaxed) < at_least
            || tally.started.load(Ordering::Relaxed) < CALLERS as u64
    };
    while waiting() && tally.bad.lock().unwrap().is_empty() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sighup_swaps_versions_under_live_calls_without_moving_a_call() {
    let t = tmp();
    let n = Node::start(&t.path().join("data"), &machines_dir(t.path()));
    let before = abc_version(&machines(&n).await);
    let url = n.url("/webhooks/vca");
    let stop = Arc::new(AtomicBool::new(false));
    let (old, new) = (Arc::new(Tally::default()), Arc::new(Tally::default()));
    let old_calls: Vec<_> = (0..CALLERS)
        .map(|i| tokio::spawn(caller(url.clone(), format!("old-{i}"), OLD_MENU, stop.clone(), old.clone())))
        .collect();
    wait_answers(&old, ANSWERS_AROUND_RELOAD).await;

    reword_abc(&n);
    hangup(&n);
    let m = after_reloads(&n, "loaded", 1).await;
    let after = abc_version(&m);
    assert_ne!(before, after, "{m}");
    assert_eq!(m["lastReload"]["result"], "loaded", "{m}");
    assert_eq!(m["lastReload"]["trigger"], "signal", "{m}");

    // Calls started after the reload get the new wording; those running keep the old.
    let new_calls: Vec<_> = (0..CALLERS)
        .map(|i| tokio::spawn(caller(url.clone(), format!("new-{i}"), NEW_MENU, stop.clone(), new.clone())))
        .collect();
    let reloaded_at = old.answers.load(Ordering::Relaxed);
    wait_answers(&old, reloaded_at + ANSWERS_AROUND_RELOAD).await;
    wait_answers(&new, ANSWERS_AROUND_RELOAD).await;
    stop.store(true, Ordering::Relaxed);
    for call in old_calls.into_iter().chain(new_calls) {
        call.await.unwrap();
    }
    for (which, tally) in [("old", &old), ("new", &new)] {
        let bad = tally.bad.lock().unwrap();
        assert!(bad.is_empty(), "{which} calls: {bad:?}\n{}", n.log());
    }
    eprintln!(
        "answers: {} on old calls, {} on new calls, none failed",
        old.answers.load(Ordering::Relaxed),
        new.answers.load(Ordering::Relaxed)
    );
}

#[tokio::test]
async fn a_broken_file_keeps_the_running_machines_and_says_where() {
    let t = tmp();
    let mut n = Node::start(&t.path().join("data"), &machines_dir(t.path()));
    let before = machines(&n).await;
    assert_eq!(before["lastReload"], Value::Null);
    let a = post(&n.url("/webhooks/vca"), Vca::abc("s-broken", "e1", Some("1"), None).body()).await;
    assert!(said(&a).contains(OLD_MENU));
    let id = a.client_action_id().unwrap();

    // Line 6: the machine's name is a string never closed.
    let text = std::fs::read_to_string(abc_file(&n)).unwrap();
    let broken =
        text.replace(OLD_MENU, NEW_MENU).replace("name = \"abc_restaurant\"", "name = \"abc_restaurant");
    std::fs::write(abc_file(&n), broken).unwrap();
    let r = reqwest::Client::new()
        .post(n.admin_url("/admin/reload"))
        .header("content-type", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let answer: Value = r.json().await.unwrap();
    assert_eq!(answer["result"], "failed", "{answer}");
    let file = abc_file(&n).display().to_string();
    let diagnostics: Vec<&str> =
        answer["diagnostics"].as_array().unwrap().iter().map(|d| d.as_str().unwrap()).collect();
    assert!(diagnostics.iter().any(|d| d.starts_with(&format!("{file}:6:"))), "{answer}");
    assert!(answer["reason"].as_str().unwrap().contains("1 machine file error(s)"), "{answer}");

    let m = machines(&n).await;
    assert_eq!(m["lastReload"], answer, "GET /admin/machines keeps the last result");
    assert_eq!(m["machines"], before["machines"], "the running set stays");
    assert_eq!(m["reloads"], serde_json::json!({"loaded": 0, "failed": 1}));

    // SIGHUP: the same, logged; the node keeps serving the running set.
    hangup(&n);
    let m = after_reloads(&n, "failed", 2).await;
    assert_eq!(m["lastReload"]["trigger"], "signal", "{m}");
    assert!(n.log().contains("reload refused: the running machines stay"), "{}", n.log());
    assert!(n.log().contains(&format!("{file}:6:")), "{}", n.log());
    let b = post(&n.url("/webhooks/vca"), Vca::abc("s-broken", "e2", Some("3"), Some(&id)).body()).await;
    assert_eq!((b.status, b.how.as_str()), (200, "applied"));
    let c = post(&n.url("/webhooks/vca"), Vca::abc("s-after", "e1", Some("1"), None).body()).await;
    assert!(said(&c).contains(OLD_MENU), "a new call gets the running version");
    assert!(n.child.try_wait().unwrap().is_none(), "the node is still running");
    assert!(n.terminate().success());
}

#[tokio::test]
async fn a_new_version_is_stored_before_calls_use_it() {
    let t = tmp();
    let mut n = Node::start(&t.path().join("data"), &machines_dir(t.path()));
    let original = std::fs::read_to_string(abc_file(&n)).unwrap();
    reword_abc(&n);
    let r = reqwest::Client::new()
        .post(n.admin_url("/admin/reload"))
        .header("content-type", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let answer: Value = r.json().await.unwrap();
    assert_eq!((answer["result"].as_str(), answer["trigger"].as_str()), (Some("loaded"), Some("admin")));
    assert_eq!(answer["machines"].as_array().unwrap().len(), 4, "{answer}");
    let a = post(&n.url("/webhooks/vca"), Vca::abc("s-new", "e1", Some("1"), None).body()).await;
    assert!(said(&a).contains(NEW_MENU));
    let id = a.client_action_id().unwrap();

    // The file goes back to the old wording and the node restarts: the call stays on its version.
    std::fs::write(abc_file(&n), original).unwrap();
    assert!(n.terminate().success());
    n.restart();
    let b = post(&n.url("/webhooks/vca"), Vca::abc("s-new", "e2", Some("3"), Some(&id)).body()).await;
    assert_eq!((b.status, b.how.as_str()), (200, "applied"));
    let id = b.client_action_id().unwrap();
    let c = post(&n.url("/webhooks/vca"), Vca::abc("s-new", "e3", Some("1"), Some(&id)).body()).await;
    assert!(said(&c).contains(NEW_MENU), "{}", said(&c));
    let d = post(&n.url("/webhooks/vca"), Vca::abc("s-next", "e1", Some("1"), None).body()).await;
    assert!(said(&d).contains(OLD_MENU));
}

#[tokio::test]
async fn a_removed_machine_finishes_its_calls_and_new_ones_fall_back() {
    let t = tmp();
    let n = Node::start(&t.path().join("data"), &machines_dir(t.path()));
    let a = post(&n.url("/webhooks/vca"), Vca::abc("s-gone", "e1", Some("1"), None).body()).await;
    let id = a.client_action_id().unwrap();
    std::fs::remove_file(abc_file(&n)).unwrap();
    let r = reqwest::Client::new()
        .post(n.admin_url("/admin/reload"))
        .header("content-type", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let m = machines(&n).await;
    assert!(m["machines"].as_array().unwrap().iter().all(|m| m["name"] != "abc_restaurant"), "{m}");

    let b = post(&n.url("/webhooks/vca"), Vca::abc("s-gone", "e2", Some("3"), Some(&id)).body()).await;
    assert_eq!((b.status, b.how.as_str()), (200, "applied"), "the running call finishes on its version");
    assert!(said(&b).contains("Welcome to ABC Restaurant"));
    // No machine answers the number any more, and there is no default: the fallback.
    let c = post(&n.url("/webhooks/vca"), Vca::abc("s-late", "e1", Some("1"), None).body()).await;
    assert_eq!((c.status, c.how.as_str()), (200, "fallback"));
}

#[tokio::test]
async fn a_reload_without_the_default_machine_is_refused() {
    let t = tmp();
    let machines_dir = machines_dir(t.path());
    let n = Node::start_with(
        &t.path().join("data"),
        &machines_dir,
        &[("PHONETREE_DEFAULT_MACHINE", "abc_restaurant")],
    );
    std::fs::remove_file(abc_file(&n)).unwrap();
    let r = reqwest::Client::new()
        .post(n.admin_url("/admin/reload"))
        .header("content-type", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let answer: Value = r.json().await.unwrap();
    assert_eq!(answer["reason"], "--default-machine `abc_restaurant` is not among the machines loaded");
    assert_eq!(machines(&n).await["machines"].as_array().unwrap().len(), 4);
    // Calls to any number still get the default machine.
    let mut v = Vca::abc("s-default", "e1", Some("1"), None);
    v.source = "+6500000000";
    let a = post(&n.url("/webhooks/vca"), v.body()).await;
    assert!(said(&a).contains(OLD_MENU));
}

const ADMIN_TOKEN: &str = "admin-token-0123456789abcdef";

#[tokio::test]
async fn reloading_needs_the_admin_token_when_there_is_one() {
    let t = tmp();
    let n = Node::start_with(
        &t.path().join("data"),
        &machines_dir(t.path()),
        &[("PHONETREE_ADMIN_TOKEN", ADMIN_TOKEN)],
    );
    let client = reqwest::Client::new();
    let r = client
        .post(n.admin_url("/admin/reload"))
        .header("content-type", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = client
        .post(n.admin_url("/admin/reload"))
        .header("content-type", "application/json")
        .bearer_auth("not-the-token-0123456789")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = client.get(n.admin_url("/admin/machines")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let r = client
        .post(n.admin_url("/admin/reload"))
        .header("content-type", "application/json")
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let m: Value = common::get_json(&n.admin_url("/admin/machines"), Some(ADMIN_TOKEN)).await;
    assert_eq!(m["reloads"], serde_json::json!({"loaded": 1, "failed": 0}));
}

#[tokio::test]
async fn json_logs_are_one_object_a_line_with_the_span_fields() {
    let t = tmp();
    let n = Node::start_with(
        &t.path().join("data"),
        &machines_dir(t.path()),
        &[("PHONETREE_LOG_FORMAT", "json")],
    );
    let a = post(&n.url("/webhooks/vca"), Vca::abc("s-json", "e1", Some("1"), None).body()).await;
    assert_eq!(a.status, 200);
    // The transition is logged before the reply is sent.
    let log = n.log();
    let lines: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(!lines.is_empty());
    let transition = lines
        .iter()
        .find(|l| l["message"] == "transition")
        .unwrap_or_else(|| panic!("no transition logged:\n{log}"));
    assert_eq!(transition["span"]["session"], "s-json", "{transition}");
    assert_eq!(transition["span"]["name"], "vca", "{transition}");
    assert_eq!(transition["machine"], "abc_restaurant", "{transition}");
    assert!(transition["level"].is_string() && transition["timestamp"].is_string(), "{transition}");
}

#[tokio::test]
async fn watch_reloads_once_the_files_stop_changing() {
    let t = tmp();
    let n = Node::start_with(&t.path().join("data"), &machines_dir(t.path()), &[("PHONETREE_WATCH", "true")]);
    let before = abc_version(&machines(&n).await);
    reword_abc(&n);
    // Until the new version is current (bounded); only a reload can make it so.
    let mut m = machines(&n).await;
    for _ in 0..1500 {
        if abc_version(&m) != before {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        m = machines(&n).await;
    }
    assert_ne!(abc_version(&m), before, "not reloaded within 30 s: {m}\n{}", n.log());
    assert_eq!(m["lastReload"]["trigger"], "watch", "{m}");
    let a = post(&n.url("/webhooks/vca"), Vca::abc("s-watch", "e1", Some("1"), None).body()).await;
    assert!(said(&a).contains(NEW_MENU));
    // A broken edit is refused like any reload; the running set stays.
    std::fs::write(n.machines.join("zz_broken.toml"), "name = \"zz\"\nstart = [\n").unwrap();
    let m = after_reloads(&n, "failed", 1).await;
    assert_eq!(abc_version(&m), abc_version(&machines(&n).await));
    assert_eq!(m["machines"].as_array().unwrap().len(), 4);
}

/// `/metrics` after reloads: the replaced version of a machine reads 0 and the new one 1 (the
/// exporter cannot drop a series), and reloads are counted by result.
#[tokio::test]
async fn metrics_show_the_versions_loaded_and_the_reloads() {
    let t = tmp();
    let n = Node::start(&t.path().join("data"), &machines_dir(t.path()));
    // The metric's label is the short version (12 hex digits) of the full one /admin/machines gives.
    let short = |v: String| v[..12].to_string();
    let old = short(abc_version(&machines(&n).await));
    let loaded = |samples: &std::collections::BTreeMap<metrics::Series, f64>| {
        metrics::values(samples, "phonetree_machine_loaded", &[("machine", "abc_restaurant")], &["version"])
    };
    let (_, _, text) = metrics::scrape(&n, None).await;
    assert_eq!(loaded(&metrics::parse(&text)), metrics::expected(&[(&[old.as_str()], 1.0)]));

    reword_abc(&n);
    let r = reqwest::Client::new()
        .post(n.admin_url("/admin/reload"))
        .header("content-type", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    std::fs::write(abc_file(&n), "name = \"abc_restaurant\"\nstart = ").unwrap();
    let r = reqwest::Client::new()
        .post(n.admin_url("/admin/reload"))
        .header("content-type", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let new = short(abc_version(&machines(&n).await));
    assert_ne!(new, old);

    let (_, _, text) = metrics::scrape(&n, None).await;
    let samples = metrics::parse(&text);
    assert_eq!(loaded(&samples), metrics::expected(&[(&[old.as_str()], 0.0), (&[new.as_str()], 1.0)]));
    assert_eq!(
        metrics::values(&samples, "phonetree_reloads_total", &[], &["result"]),
        metrics::expected(&[(&["loaded"], 1.0), (&["failed"], 1.0)])
    );
}

const OLD_SECRET: &str = "the-old-webhook-secret-0123456789";
const NEW_SECRET: &str = "the-new-webhook-secret-9876543210";

/// The status of a webhook carrying `secret` (a new call each time).
async fn webhook_with(n: &Node, secret: &str, session: &str) -> u16 {
    let body = Vca::abc(session, "e1", Some("1"), None).body();
    let r = reqwest::Client::new()
        .post(n.url("/webhooks/vca"))
        .header("authorization", secret)
        .body(body)
        .send()
        .await
        .unwrap();
    r.status().as_u16()
}

/// A webhook secret rotated without a restart: the secret file rewritten, then SIGHUP: the old
/// secret is refused and the new one accepted. A file a reload cannot use (too short a secret, no
/// secret, gone) refuses the reload with why, and the running secret stays.
#[tokio::test]
async fn sighup_and_reload_reread_the_webhook_secret_files() {
    let t = tmp();
    let file = t.path().join("webhook.secret");
    std::fs::write(&file, format!("{OLD_SECRET}\n")).unwrap();
    let n = Node::start_with(
        &t.path().join("data"),
        &machines_dir(t.path()),
        &[("PHONETREE_WEBHOOK_SECRET_FILES", file.to_str().unwrap())],
    );
    assert_eq!(webhook_with(&n, OLD_SECRET, "s-1").await, 200);
    assert_eq!(webhook_with(&n, NEW_SECRET, "s-2").await, 401);

    std::fs::write(&file, format!("{NEW_SECRET}\n")).unwrap();
    hangup(&n);
    let m = after_reloads(&n, "loaded", 1).await;
    assert_eq!(m["lastReload"]["trigger"], "signal", "{m}");
    assert_eq!(webhook_with(&n, OLD_SECRET, "s-3").await, 401, "the old secret is refused after SIGHUP");
    assert_eq!(webhook_with(&n, NEW_SECRET, "s-4").await, 200, "the new secret is accepted after SIGHUP");

    let client = reqwest::Client::new();
    for (what, content, says) in [
        ("a short secret", Some("short\n"), "5 bytes"),
        ("no secret", Some("\n\n"), "hold no secret"),
        ("no file", None, "cannot read the secret file"),
    ] {
        match content {
            Some(text) => std::fs::write(&file, text).unwrap(),
            None => std::fs::remove_file(&file).unwrap(),
        }
        let r = client
            .post(n.admin_url("/admin/reload"))
            .header("content-type", "application/json")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 422, "{what}");
        let body: Value = r.json().await.unwrap();
        let reason = body["reason"].as_str().unwrap_or_default();
        assert!(reason.contains(says) && reason.contains("secrets stay"), "{what}: {body}");
        assert_eq!(webhook_with(&n, NEW_SECRET, "s-5").await, 200, "{what}: the running secret stays");
        assert_eq!(webhook_with(&n, OLD_SECRET, "s-6").await, 401, "{what}");
    }
    // A reload by the admin route reads the file again too.
    std::fs::write(&file, format!("{OLD_SECRET}\n")).unwrap();
    let r = client
        .post(n.admin_url("/admin/reload"))
        .header("content-type", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(webhook_with(&n, OLD_SECRET, "s-7").await, 200);
    assert_eq!(webhook_with(&n, NEW_SECRET, "s-8").await, 401);
    let log = n.log();
    assert!(!log.contains(OLD_SECRET) && !log.contains(NEW_SECRET), "no secret in the log");
}

/// The admin token rotated without a restart: its file rewritten, then SIGHUP: the old token is
/// refused and the new one accepted on every admin route. A file a reload cannot use (empty, too
/// short a token, gone) refuses the reload with why, and the running token stays.
#[tokio::test]
async fn sighup_and_reload_reread_the_admin_token_file() {
    const OLD_TOKEN: &str = "old-admin-token-0123456789abcdef";
    const NEW_TOKEN: &str = "new-admin-token-0123456789abcdef";
    let t = tmp();
    let file = t.path().join("admin.token");
    std::fs::write(&file, format!("{OLD_TOKEN}\n")).unwrap();
    let n = Node::start_with(
        &t.path().join("data"),
        &machines_dir(t.path()),
        &[("PHONETREE_ADMIN_TOKEN_FILE", file.to_str().unwrap())],
    );
    let client = reqwest::Client::new();
    let status = |token: &'static str| {
        let client = client.clone();
        let url = n.admin_url("/admin/machines");
        async move { client.get(url).bearer_auth(token).send().await.unwrap().status().as_u16() }
    };
    assert_eq!(status(OLD_TOKEN).await, 200);
    assert_eq!(status(NEW_TOKEN).await, 401);

    std::fs::write(&file, format!("{NEW_TOKEN}\n")).unwrap();
    hangup(&n);
    let mut swapped = false;
    for _ in 0..1500 {
        if status(NEW_TOKEN).await == 200 {
            swapped = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(swapped, "the new token is accepted after SIGHUP:\n{}", n.log());
    assert_eq!(status(OLD_TOKEN).await, 401, "the old token is refused after SIGHUP");

    for (what, content, says) in [
        ("an empty file", Some("\n\n"), "is empty"),
        ("a short token", Some("short\n"), "5 bytes"),
        ("no file", None, "cannot read the secret file"),
    ] {
        match content {
            Some(text) => std::fs::write(&file, text).unwrap(),
            None => std::fs::remove_file(&file).unwrap(),
        }
        let r = client
            .post(n.admin_url("/admin/reload"))
            .bearer_auth(NEW_TOKEN)
            .header("content-type", "application/json")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 422, "{what}");
        let body: Value = r.json().await.unwrap();
        let reason = body["reason"].as_str().unwrap_or_default();
        assert!(reason.contains(says) && reason.contains("stay"), "{what}: {body}");
        assert_eq!(status(NEW_TOKEN).await, 200, "{what}: the running token stays");
        assert_eq!(status(OLD_TOKEN).await, 401, "{what}");
    }
    let log = n.log();
    assert!(!log.contains(OLD_TOKEN) && !log.contains(NEW_TOKEN), "no token in the log");
}
