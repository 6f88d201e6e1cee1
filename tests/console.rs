//! The web console in a real headless Chromium, driven over WebDriver (chromedriver, fantoccini)
//! against a real `phonetree serve`: it asks for the admin token, draws every bundled machine's
//! Mermaid export (every node and edge, no parse error), follows a call placed through the webhook
//! to its node within a few seconds, shows its transcript, and logs no error. It also takes the
//! README's screenshots (`PHONETREE_UPDATE_SCREENSHOTS=1` writes them to `tests/data/console/`).
//!
//! Without Chromium and chromedriver the browser test writes one "skipped" line to stderr; with
//! `PHONETREE_REQUIRE_BROWSER=1` (set by `.ci/run`) it fails instead.

use crate::common;

use std::path::PathBuf;
use std::time::Duration;

use common::browser::{Driver, headless};
use common::*;
use fantoccini::{Client, Locator};
use phonetree::export::mermaid_id;
use serde_json::{Value, json};

const TOKEN: &str = "console-test-admin-token-0123456789";
/// How long the page may take to show something before the test fails: generous, the machine may
/// be busy building; no timing is asserted.
const PATIENCE: Duration = Duration::from_secs(60);

/// Runs `script` until it returns something other than null or false; panics with `what` and the
/// page's errors after `PATIENCE`.
async fn until(c: &Client, what: &str, script: &str) -> Value {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let v = c.execute(script, vec![]).await.unwrap();
        if !(v.is_null() || v == false) {
            return v;
        }
        if tokio::time::Instant::now() > deadline {
            let errors = c.execute("return window.phonetreeErrors", vec![]).await.unwrap_or_default();
            let status = c
                .execute("return document.getElementById('status').textContent", vec![])
                .await
                .unwrap_or_default();
            panic!("the console did not show {what}; status: {status}; page errors: {errors}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The console's header while it asks for the token.
const NEEDS_TOKEN: &str = "The console needs the admin token.";

/// Records in `window.headerWhileOpen` the header's text at every change of the page while the
/// console is shown.
const WATCH_HEADER: &str = "window.headerWhileOpen = []; \
    const note = () => { if (!document.getElementById('console').hidden) \
      window.headerWhileOpen.push(document.getElementById('status').textContent); }; \
    new MutationObserver(note).observe(document.body, \
      {subtree: true, childList: true, attributes: true, characterData: true});";

/// Chromium's own log holds no error (a failed load, a refused request, a CSP block).
async fn assert_no_severe_log(driver: &Driver, c: &Client) {
    let session = c.session_id().await.unwrap().unwrap();
    let log: Value = reqwest::Client::new()
        .post(format!("{}/session/{session}/se/log", driver.url))
        .json(&json!({"type": "browser"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let severe: Vec<&Value> = log["value"]
        .as_array()
        .expect("chromedriver's browser log")
        .iter()
        .filter(|e| e["level"] == "SEVERE")
        .collect();
    assert!(severe.is_empty(), "Chromium logged errors: {severe:?}");
}

/// A folder holding every bundled machine.
fn all_machines(tmp: &std::path::Path) -> PathBuf {
    let dir = tmp.join("machines");
    std::fs::create_dir_all(&dir).unwrap();
    for f in machine_files("machines") {
        std::fs::copy(&f, dir.join(f.file_name().unwrap())).unwrap();
    }
    copy_bundled_modules(&dir);
    dir
}

/// Where a screenshot goes: the README's (`tests/data/console/`) with
/// `PHONETREE_UPDATE_SCREENSHOTS=1`, else the test's scratch folder (a test run leaves the
/// repository as it was).
fn screenshot_path(name: &str) -> PathBuf {
    let dir = if std::env::var("PHONETREE_UPDATE_SCREENSHOTS").is_ok_and(|v| v == "1") {
        repo().join("tests/data/console")
    } else {
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("console")
    };
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_console_draws_every_machine_and_follows_a_live_call_in_chromium() {
    let Some((chromium, chromedriver)) = common::needs::needs_browser() else { return };
    let t = tempfile::tempdir().unwrap();
    let n = Node::start_with(
        &t.path().join("data"),
        &all_machines(t.path()),
        &[("PHONETREE_ADMIN_TOKEN", TOKEN)],
    );
    let driver = Driver::start(&chromedriver).await;
    let c = headless(&driver, &chromium, &["--window-size=1280,800", "--lang=en-US"], true).await;

    // The page loads without the token and asks for it; the data needs it.
    c.goto(&n.admin_url("/")).await.unwrap();
    until(&c, "the token form", "return !document.getElementById('login').hidden").await;
    let asking = c.execute("return document.getElementById('status').textContent", vec![]).await.unwrap();
    assert_eq!(asking, NEEDS_TOKEN, "the header while the form is up");
    // Every header text seen while the console is shown (a MutationObserver's callback runs at
    // each microtask checkpoint, so the header between opening and the first full render is seen).
    c.execute(WATCH_HEADER, vec![]).await.unwrap();
    c.find(Locator::Css("#token")).await.unwrap().send_keys(TOKEN).await.unwrap();
    c.find(Locator::Css("#login-form button[type=submit]")).await.unwrap().click().await.unwrap();

    // Every bundled machine is drawn from its Mermaid export: every node and every edge.
    let machines = bundled_machines();
    assert!(machines.len() >= 4);
    for m in &machines {
        let ids: Vec<String> = m.graph().node_indices().map(|id| mermaid_id(&m.graph()[id].name)).collect();
        let script = format!(
            "const g = document.querySelector('.graph[data-machine=\"{name}\"] svg'); if (!g) return null; \
             const ids = {ids}; \
             const found = ids.filter(id => g.querySelector(`g.node[data-id=\"${{id}}\"]`) || \
               [...g.querySelectorAll('g.node')].some(n => new RegExp(`-${{id}}-\\\\d+$`).test(n.id))); \
             const edges = g.querySelectorAll('g.edgePaths > path, path.flowchart-link, path[data-edge=\"true\"]'); \
             const unique = new Set([...edges]); \
             return {{found: found.length, edges: unique.size}};",
            name = m.name(),
            ids = serde_json::to_string(&ids).unwrap(),
        );
        let drawn = until(&c, &format!("the graph of {}", m.name()), &script).await;
        assert_eq!(drawn["found"], ids.len(), "{}: nodes drawn {drawn}", m.name());
        assert_eq!(drawn["edges"], m.edge_count(), "{}: edges drawn {drawn}", m.name());
    }
    let failed =
        c.execute("return document.querySelectorAll('.graph .failed').length", vec![]).await.unwrap();
    assert_eq!(failed, 0, "a graph failed to draw");
    // Once open, the header never asked for the token again.
    let seen = c.execute("return window.headerWhileOpen", vec![]).await.unwrap();
    let seen: Vec<String> = serde_json::from_value(seen).unwrap();
    assert!(!seen.is_empty(), "no header seen while the console was open");
    assert!(!seen.iter().any(|s| s.contains(NEEDS_TOKEN)), "the open console's header: {seen:?}");

    // A call placed through the webhook: an inbound call to abc_restaurant's number, then key 1.
    let caller = "+6591234567";
    let mut start = Vca::abc("s-console", "e0", None, None);
    (start.status, start.direction, start.source, start.destination) =
        ("CALL_RECEIVED", "INBOUND", caller, "+6568888888");
    let first = post(&n.url("/webhooks/vca"), start.body()).await;
    let id = first.client_action_id().unwrap();
    let said = first.json()["callflow"][0]["params"]["promptMessage"].as_str().unwrap().to_string();
    let pressed =
        Vca { status: "DTMF_RECEIVED", event: "e1", dtmf: Some("1"), client_action_id: Some(&id), ..start };
    let second = post(&n.url("/webhooks/vca"), pressed.body()).await;
    assert_eq!(second.status, 200);

    // It shows at its node, in the live table and on the graph, without a reload.
    let row = until(
        &c,
        "the call at `reservations`",
        "const r = document.querySelector('#live tr[data-session=\"s-console\"]'); \
         return r && r.dataset.node === 'reservations' ? r.querySelector('.caller').textContent : null;",
    )
    .await;
    assert_eq!(row, "+65•••••567", "the caller is masked by default");
    // "Show numbers" shows it in full; unticked, it is masked again.
    let toggle = c.find(Locator::Css("#show-numbers")).await.unwrap();
    toggle.click().await.unwrap();
    let shown = "const c = document.querySelector('#live tr[data-session=\"s-console\"] .caller'); \
                 return c && c.textContent === '+6591234567';";
    until(&c, "the caller's number in full", shown).await;
    toggle.click().await.unwrap();
    until(&c, "the caller masked again", &shown.replace("=== '+6591234567'", "=== '+65•••••567'")).await;
    let at_node = until(
        &c,
        "the live call on the graph's node",
        &format!(
            "const g = document.querySelector('.graph[data-machine=\"abc_restaurant\"] g.node.has-live'); \
             return g ? (g.dataset.id || g.id) + ' ' + g.dataset.live : null; /* {} */",
            mermaid_id("reservations")
        ),
    )
    .await;
    let at_node = at_node.as_str().unwrap();
    assert!(at_node.contains(&mermaid_id("reservations")) && at_node.ends_with(" 1"), "{at_node}");

    // Its transcript, opened from the keyboard, shows what the caller heard.
    let open = c.find(Locator::Css("#live tr[data-session=\"s-console\"] button")).await.unwrap();
    open.send_keys("\u{E007}").await.unwrap();
    let heard = until(
        &c,
        "the transcript",
        "const h = [...document.querySelectorAll('#transcript .heard')].map(e => e.textContent); \
         return h.length >= 2 ? h : null;",
    )
    .await;
    let heard: Vec<&str> = heard.as_array().unwrap().iter().map(|h| h.as_str().unwrap()).collect();
    assert!(heard.iter().any(|h| h.contains(&said)), "the transcript lacks the greeting {said:?}: {heard:?}");
    assert!(heard.iter().any(|h| h.starts_with("reservations:")), "{heard:?}");
    let focused = c.execute("return document.activeElement.id", vec![]).await.unwrap();
    assert_eq!(focused, "transcript-title", "the transcript takes the focus");

    // The funnel counts the call: main_menu entered once and left by key 1.
    let funnel = until(
        &c,
        "main_menu's funnel",
        "const r = document.querySelector('.machine[data-machine=\"abc_restaurant\"] .funnel tr[data-node=\"main_menu\"]'); \
         return r && r.children[2].textContent === '1' ? r.children[3].textContent : null;",
    )
    .await;
    assert_eq!(funnel, "key_1 1");
    // And the graph's edge main_menu -key 1-> reservations says it was taken once.
    let taken = until(
        &c,
        "the edge taken",
        &format!(
            "const l = [...document.querySelectorAll('.graph[data-machine=\"abc_restaurant\"] g.label[data-taken]')] \
               .find(l => l.dataset.id.startsWith('L_{from}_{to}_')); \
             return l && l.dataset.taken === '1' ? l.textContent : null;",
            from = mermaid_id("main_menu"),
            to = mermaid_id("reservations"),
        ),
    )
    .await;
    assert!(taken.as_str().is_some_and(|t| t.contains("key 1") && t.contains("× 1")), "{taken}");

    // Screenshots for the README: a desktop and a phone width.
    std::fs::write(screenshot_path("console-1280x800.png"), c.screenshot().await.unwrap()).unwrap();
    let abc = c.find(Locator::Css(".machine[data-machine=\"abc_restaurant\"]")).await.unwrap();
    c.execute("arguments[0].scrollIntoView()", vec![serde_json::to_value(&abc).unwrap()]).await.unwrap();
    std::fs::write(screenshot_path("console-graph.png"), abc.screenshot().await.unwrap()).unwrap();
    c.set_window_size(390, 844).await.unwrap();
    c.execute("window.scrollTo(0, 0)", vec![]).await.unwrap();
    let wide = c.execute("return document.documentElement.scrollWidth", vec![]).await.unwrap();
    assert!(wide.as_u64().is_some_and(|w| w <= 400), "the page scrolls sideways at phone width: {wide}");
    std::fs::write(screenshot_path("console-390.png"), c.screenshot().await.unwrap()).unwrap();

    // A reload that fails shows why, with its diagnostics, without a page reload.
    c.set_window_size(1280, 800).await.unwrap();
    std::fs::write(n.machines.join("broken.toml"), "name = \"broken\"\nstart = \"nowhere\"\n").unwrap();
    let r = reqwest::Client::new()
        .post(n.admin_url("/admin/reload"))
        .header("content-type", "application/json")
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let diagnostics = until(
        &c,
        "the failed reload's diagnostics",
        "const d = [...document.querySelectorAll('#reload .diagnostics li')].map(l => l.textContent); \
         return d.length ? d : null;",
    )
    .await;
    assert!(diagnostics.to_string().contains("broken.toml"), "{diagnostics}");

    let errors = c.execute("return window.phonetreeErrors", vec![]).await.unwrap();
    assert_eq!(errors, json!([]), "the page logged errors");
    // Chromium's own log too: a failed load or a CSP block shows there even if no script saw it.
    assert_no_severe_log(&driver, &c).await;
    c.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn without_an_admin_token_the_console_opens_without_the_form_in_chromium() {
    let Some((chromium, chromedriver)) = common::needs::needs_browser() else { return };
    let t = tempfile::tempdir().unwrap();
    // `Node::start`: `--admin-no-token` on loopback.
    let n = Node::start(&t.path().join("data"), &machines_dir(t.path()));
    let driver = Driver::start(&chromedriver).await;
    let c = headless(&driver, &chromium, &["--window-size=1280,800", "--lang=en-US"], true).await;
    c.goto(&n.admin_url("/")).await.unwrap();
    until(&c, "the console without the form", "return !document.getElementById('console').hidden").await;
    let shown = c
        .execute(
            "return {login: !document.getElementById('login').hidden, \
                     forget: !document.getElementById('forget').hidden, \
                     status: document.getElementById('status').textContent};",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!((&shown["login"], &shown["forget"]), (&json!(false), &json!(false)), "{shown}");
    assert!(!shown["status"].as_str().unwrap().contains(NEEDS_TOKEN), "{shown}");
    until(
        &c,
        "the abc_restaurant graph",
        "return document.querySelector('.graph[data-machine=\"abc_restaurant\"] svg')",
    )
    .await;
    let errors = c.execute("return window.phonetreeErrors", vec![]).await.unwrap();
    assert_eq!(errors, json!([]), "the page logged errors");
    assert_no_severe_log(&driver, &c).await;
    c.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn console_token_says_whether_the_listener_needs_one_and_keeps_the_origin_check() {
    let t = tempfile::tempdir().unwrap();
    let with = Node::start_with(
        &t.path().join("with"),
        &machines_dir(t.path()),
        &[("PHONETREE_ADMIN_TOKEN", TOKEN)],
    );
    let without = Node::start(&t.path().join("without"), &machines_dir(t.path()));
    let client = reqwest::Client::new();
    for (n, required) in [(&with, true), (&without, false)] {
        let r = client.get(n.admin_url("/console/token")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["cache-control"], "no-store");
        assert_eq!(r.json::<Value>().await.unwrap(), json!({ "required": required }));
        // Another site's page is refused, as on every admin route.
        let r = client
            .get(n.admin_url("/console/token"))
            .header("origin", "http://evil.example")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_page_is_public_but_its_data_needs_the_token() {
    let t = tempfile::tempdir().unwrap();
    let n = Node::start_with(
        &t.path().join("data"),
        &machines_dir(t.path()),
        &[("PHONETREE_ADMIN_TOKEN", TOKEN)],
    );
    let client = reqwest::Client::new();
    let page = client.get(n.admin_url("/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let h = page.headers().clone();
    assert_eq!(h["content-type"], "text/html; charset=utf-8");
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["referrer-policy"], "no-referrer");
    let csp = h["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(!csp.contains("script-src 'self' 'unsafe"), "{csp}");
    let html = page.text().await.unwrap();
    // Every asset the page names is served, cached for good, and without the token.
    let assets: Vec<&str> = html.split("\"/console/").skip(1).map(|s| s.split('"').next().unwrap()).collect();
    assert_eq!(assets.len(), 3, "{html}");
    assert!(assets.contains(&phonetree::http::console::MERMAID));
    for a in assets {
        let r = client.get(n.admin_url(&format!("/console/{a}"))).send().await.unwrap();
        assert_eq!(r.status(), 200, "{a}");
        assert!(r.headers()["cache-control"].to_str().unwrap().contains("immutable"), "{a}");
    }
    assert_eq!(client.get(n.admin_url("/console/nothing.js")).send().await.unwrap().status(), 404);
    // The data: refused without the token, served with it.
    for path in ["/admin/console", "/admin/machines/abc_restaurant/mermaid", "/calls"] {
        let r = client.get(n.admin_url(path)).send().await.unwrap();
        assert_eq!(r.status(), 401, "{path} without the token");
        let r = client.get(n.admin_url(path)).bearer_auth(TOKEN).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path} with the token");
    }
    // Only GET is public: another method on the page needs the token.
    assert_eq!(client.post(n.admin_url("/")).send().await.unwrap().status(), 401);
    // The Mermaid text is the export's.
    let text = client
        .get(n.admin_url("/admin/machines/abc_restaurant/mermaid"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(text, phonetree::export::mermaid(&bundled("abc_restaurant")));
    let r =
        client.get(n.admin_url("/admin/machines/nothing/mermaid")).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(r.status(), 404);
    let r = client.get(n.admin_url("/admin/console?numbers=all")).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(r.status(), 400);
    let overview: Value = common::get_json(&n.admin_url("/admin/console"), Some(TOKEN)).await;
    let abc =
        overview["machines"].as_array().unwrap().iter().find(|m| m["name"] == "abc_restaurant").unwrap();
    assert_eq!(abc["proof"]["edgesCovered"], abc["proof"]["edges"]);
    assert_eq!(abc["nodes"].as_array().unwrap().len(), bundled("abc_restaurant").node_count());
}
