//! The admin listener against the browser next to it (issue 21, finding 4): a page of another
//! origin in a real headless Chromium (driven over WebDriver, as tests/console.rs does) cannot
//! place a call through it, by `fetch` or by a form; a DNS-rebound `Host` cannot read `GET /calls`;
//! a POST that is not JSON is refused 415. And the token by default: made once beside the store
//! (mode 0600), its path printed, never the token; `--admin-no-token` on loopback only and loudly;
//! an empty or short token refused, naming the admin token.
//!
//! Without Chromium and chromedriver the browser test writes one "skipped" line to stderr; with
//! `PHONETREE_REQUIRE_BROWSER=1` (set by `.ci/run`) it fails instead.

use crate::common;

use std::io::{BufRead, Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::browser::{Driver, headless};
use common::*;
use fantoccini::Client;
use serde_json::{Value, json};
use warp::Filter;

/// How long the page may take before the test fails (no timing is asserted).
const PATIENCE: Duration = Duration::from_secs(60);

/// Runs `script` until it returns something other than null or false (at most `PATIENCE`).
async fn until(c: &Client, what: &str, script: &str) -> Value {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let v = c.execute(script, vec![]).await.unwrap();
        if !(v.is_null() || v == false) {
            return v;
        }
        assert!(tokio::time::Instant::now() < deadline, "the page did not get to {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A stand-in for 8x8's Send Callflow API that counts the calls it is asked to place.
async fn stand_in_8x8() -> (String, Arc<AtomicUsize>) {
    let placed = Arc::new(AtomicUsize::new(0));
    let count = placed.clone();
    let route = warp::any().and(warp::body::bytes()).map(move |_: warp::hyper::body::Bytes| {
        count.fetch_add(1, Ordering::SeqCst);
        warp::reply::json(&json!({"sessionId": "8x8-placed", "sessionStatus": "CREATED",
            "callFlowRequestId": "89b545a5-0676-11ee-8100-d500c0d203fc", "statusCode": 1, "statusMessage": "Created"}))
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(warp::serve(route).incoming(listener).run());
    (base, placed)
}

/// Serves `html` to every request on a free loopback port (another origin than the node's): the
/// attacker's page.
async fn attacker_page(html: String) -> String {
    let route = warp::any().map(move || warp::reply::html(html.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(warp::serve(route).incoming(listener).run());
    origin
}

/// A node that may place calls to +65 through `api`, with `env` besides.
fn node(t: &Path, name: &str, api: &str, env: &[(&str, &str)]) -> Node {
    let mut all = vec![
        ("PHONETREE_8X8_BASE_URL", api),
        ("PHONETREE_8X8_SUBACCOUNT", "acct_x"),
        ("PHONETREE_8X8_API_KEY", "key-123"),
        ("PHONETREE_CALL_ALLOW_PREFIX", "+65"),
    ];
    all.extend_from_slice(env);
    Node::start_with(&t.join(name), &machines_dir(&t.join(format!("{name}-machines"))), &all)
}

/// The status line's code of a raw HTTP/1.1 request (`head` without the final blank line).
fn raw(addr: &str, head: &str) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    s.write_all(format!("{head}\r\nConnection: close\r\n\r\n").as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (status, out)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_page_of_another_origin_places_no_call_through_the_admin_listener_in_chromium() {
    let Some((chromium, chromedriver)) = common::needs::needs_browser() else { return };
    let t = tempfile::tempdir().unwrap();
    let (api, placed) = stand_in_8x8().await;
    // No token (loopback, as the probe found it): only the Origin and content-type checks stand
    // between the page and a call.
    let n = node(t.path(), "open", &api, &[("PHONETREE_ADMIN_NO_TOKEN", "1")]);
    let calls = n.admin_url("/calls");
    let body = r#"{"machine":"tech_support","to":"+6512345678"}"#;
    // The probe's page: a `text/plain` fetch (a "simple" request: no preflight) and a form POST
    // whose text/plain body is the JSON, into a frame.
    let page = format!(
        r#"<!doctype html><title>cats</title>
<iframe name="sink" id="sink"></iframe>
<form id="f" method="POST" action="{calls}" enctype="text/plain" target="sink">
<input type="hidden" name='{{"machine":"tech_support","to":"+6512345678","pad":"' value='"}}'></form>
<script>
window.fetchDone = false; window.formDone = false;
fetch("{calls}", {{method: "POST", body: '{body}', headers: {{"Content-Type": "text/plain"}}}})
  .then(r => {{ window.fetchDone = "status " + r.status; }}, e => {{ window.fetchDone = "failed: " + e; }});
document.getElementById("sink").addEventListener("load", () => {{ window.formDone = true; }});
document.getElementById("f").submit();
</script>"#
    );
    let origin = attacker_page(page).await;
    let driver = Driver::start(&chromedriver).await;
    let c = headless(&driver, &chromium, &[], false).await;
    c.goto(&origin).await.unwrap();
    let fetched = until(&c, "the fetch's end", "return window.fetchDone").await;
    until(&c, "the form's answer", "return window.formDone").await;
    let _ = c.close().await;

    // Nothing reached 8x8, the node has no call, and it says why it refused.
    assert_eq!(placed.load(Ordering::SeqCst), 0, "the page placed a call (fetch: {fetched})");
    let listed: Value = reqwest::get(n.admin_url("/calls")).await.unwrap().json().await.unwrap();
    assert_eq!(listed["calls"].as_array().map(Vec::len), Some(0), "{listed}");
    let refused = n.log().matches("admin request refused").count();
    assert!(refused >= 2, "both requests refused: {}", n.log());
    assert!(n.log().contains("another origin"), "{}", n.log());

    // The same call without a browser's Origin, as JSON, is placed: the refusals above were the
    // checks, not a node that cannot call.
    let r = post(&calls, body).await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(placed.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_rebound_host_a_foreign_origin_and_a_post_that_is_not_json_are_refused() {
    let t = tempfile::tempdir().unwrap();
    let (api, placed) = stand_in_8x8().await;
    let n = node(t.path(), "open", &api, &[("PHONETREE_ADMIN_NO_TOKEN", "1")]);
    let admin = n.admin.clone();
    let port = admin.rsplit_once(':').unwrap().1;

    // DNS rebinding: the attacker's name now resolves to 127.0.0.1; the browser sends its Host.
    let (status, answer) = raw(&admin, "GET /calls HTTP/1.1\r\nHost: attacker.example");
    assert_eq!(status, 421, "{answer}");
    assert!(answer.contains(r#""code":"wrong_host""#), "{answer}");
    let (status, answer) = raw(&admin, &format!("GET /calls HTTP/1.1\r\nHost: attacker.example:{port}"));
    assert_eq!(status, 421, "{answer}");
    let (status, answer) = raw(&admin, "GET / HTTP/1.1\r\nHost: attacker.example");
    assert_eq!(status, 421, "the console's page too: {answer}");
    // Its own address, `localhost`, and another local port (an SSH tunnel's) are served.
    for host in [admin.clone(), format!("localhost:{port}"), "127.0.0.1:1".to_string()] {
        let (status, answer) = raw(&admin, &format!("GET /calls HTTP/1.1\r\nHost: {host}"));
        assert_eq!(status, 200, "{host}: {answer}");
    }

    let json = ("content-type", "application/json");
    let body = json!({"machine": "tech_support", "to": "+6512345678"}).to_string();
    let send = |headers: Vec<(&'static str, String)>| {
        let mut r = reqwest::Client::new().post(n.admin_url("/calls")).body(body.clone());
        for (k, v) in headers {
            r = r.header(k, v);
        }
        async move {
            let r = r.send().await.unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap_or_default())
        }
    };
    for (what, headers, want, code) in [
        ("text/plain", vec![("content-type", "text/plain".to_string())], 415, "unsupported_media_type"),
        (
            "a form",
            vec![("content-type", "application/x-www-form-urlencoded".into())],
            415,
            "unsupported_media_type",
        ),
        ("no content type", vec![], 415, "unsupported_media_type"),
        (
            "JSON from another origin",
            vec![(json.0, json.1.into()), ("origin", "http://127.0.0.1:8000".into())],
            403,
            "cross_origin",
        ),
        (
            "JSON from a null origin",
            vec![(json.0, json.1.into()), ("origin", "null".into())],
            403,
            "cross_origin",
        ),
    ] {
        let (status, answer) = send(headers).await;
        assert_eq!((status, answer["error"]["code"].as_str()), (want, Some(code)), "{what}: {answer}");
    }
    assert_eq!(placed.load(Ordering::SeqCst), 0, "no refused request placed a call");
    // The listener's own origin, as JSON: placed.
    let (status, answer) = send(vec![(json.0, json.1.into()), ("origin", format!("http://{admin}"))]).await;
    assert_eq!(status, 201, "{answer}");
    assert_eq!(placed.load(Ordering::SeqCst), 1);
}

/// A child process killed when dropped (a failed assertion leaves no node behind).
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `phonetree serve` with `args` on the machines of `t` that must exit: its code and stderr (a
/// node that serves instead fails the test after `PATIENCE`).
fn serve_exits(t: &Path, args: &[&str]) -> (Option<i32>, String) {
    let mut child = Killed(
        Command::new(env!("CARGO_BIN_EXE_phonetree"))
            .args(["serve", "--listen", "127.0.0.1:0", "--machines"])
            .arg(machines_dir(&t.join("exits")))
            .args(args)
            .env_remove("PHONETREE_ADMIN_TOKEN")
            .env_remove("PHONETREE_ADMIN_TOKEN_FILE")
            .env_remove("PHONETREE_ADMIN_NO_TOKEN")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut stderr = child.0.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut err = String::new();
        let _ = stderr.read_to_string(&mut err);
        let _ = tx.send(err);
    });
    // stderr closes when the process exits.
    let err = rx.recv_timeout(PATIENCE).unwrap_or_else(|_| panic!("serve {args:?} did not exit: it serves"));
    (child.0.wait().unwrap().code(), err)
}

#[test]
fn an_empty_or_short_admin_token_is_refused_naming_the_admin_token() {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    let data = data.to_str().unwrap();
    let empty = t.path().join("empty-token");
    std::fs::write(&empty, "\n").unwrap();
    let (code, err) = serve_exits(
        t.path(),
        &["--admin-listen", "127.0.0.1:0", "--data", data, "--admin-token-file", empty.to_str().unwrap()],
    );
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains(&format!("the admin token file {} is empty", empty.display())), "{err}");

    let (code, err) = serve_exits(
        t.path(),
        &["--admin-listen", "127.0.0.1:0", "--data", data, "--admin-token", "short-token"],
    );
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("the admin token is 11 bytes; use at least 16"), "{err}");
    assert!(!err.contains("webhook secret"), "{err}");
    assert!(!err.contains("short-token"), "never the token: {err}");

    let (code, err) =
        serve_exits(t.path(), &["--admin-listen", "0.0.0.0:0", "--data", data, "--admin-no-token"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("--admin-no-token, and the admin listener 0.0.0.0:0 is not a loopback address"),
        "{err}"
    );
}

#[tokio::test]
async fn by_default_a_token_is_made_once_beside_the_store_and_only_its_path_is_printed() {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    let machines = machines_dir(t.path());
    let mut child = Killed(
        Command::new(env!("CARGO_BIN_EXE_phonetree"))
            .args(["serve", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--machines"])
            .arg(&machines)
            .arg("--data")
            .arg(&data)
            .env_remove("PHONETREE_ADMIN_TOKEN")
            .env_remove("PHONETREE_ADMIN_TOKEN_FILE")
            .env_remove("PHONETREE_ADMIN_NO_TOKEN")
            .env("PHONETREE_LOG", "debug")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(t.path().join("node.log")).unwrap())
            .spawn()
            .unwrap(),
    );
    let mut stdout = std::io::BufReader::new(child.0.stdout.take().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        while stdout.read_line(&mut line).is_ok_and(|n| n > 0) {
            let _ = tx.send(std::mem::take(&mut line).trim().to_string());
        }
    });
    let lines: Vec<String> = (0..3)
        .map(|i| rx.recv_timeout(PATIENCE).unwrap_or_else(|_| panic!("serve printed {i} line(s), not 3")))
        .collect();
    let file = data.join("phonetree-admin-token");
    assert_eq!(lines[2], format!("admin token in {}", file.display()), "{lines:?}");
    let admin = lines[1].strip_prefix("admin listening on ").unwrap().to_string();
    let token = std::fs::read_to_string(&file).unwrap().trim().to_string();
    assert_eq!(token.len(), 64, "32 random bytes in hex");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
    }
    let client = reqwest::Client::new();
    let r = client.get(format!("http://{admin}/calls")).send().await.unwrap();
    assert_eq!(r.status(), 401, "the token is needed");
    let r = client.get(format!("http://{admin}/calls")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(r.status(), 200);
    // `phonetree calls --server` finds it with --admin-token-file.
    let out = Command::new(env!("CARGO_BIN_EXE_phonetree"))
        .args(["calls", "list", "--server", &format!("http://{admin}"), "--admin-token-file"])
        .arg(&file)
        .env_remove("PHONETREE_ADMIN_TOKEN")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    drop(child);
    let log = std::fs::read_to_string(t.path().join("node.log")).unwrap();
    assert!(!log.contains(&token) && !lines.iter().any(|l| l.contains(&token)), "never the token");

    // The next start keeps the same token.
    let (code, _) = serve_exits(
        t.path(),
        &["--admin-listen", "127.0.0.1:0", "--data", data.to_str().unwrap(), "--allow-from", "10.0.0.0/33"],
    );
    assert_eq!(code, Some(1));
    assert_eq!(std::fs::read_to_string(&file).unwrap().trim(), token);

    // --admin-no-token on loopback: served, and said loudly.
    let n = Node::start_with(&t.path().join("open"), &machines, &[("PHONETREE_ADMIN_NO_TOKEN", "1")]);
    assert!(n.log().contains("NO ADMIN TOKEN"), "{}", n.log());
    assert!(!n.admin_token_file().exists(), "no token made");
    assert_eq!(reqwest::get(n.admin_url("/calls")).await.unwrap().status(), 200);
}
