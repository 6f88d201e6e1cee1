//! Script nodes for real: `machines/order_status.toml` through the real `phonetree serve` against
//! a loopback HTTP server standing in for the shop's API — answers for every branch, a slow answer
//! (the timeout branch), errors, broken bodies, the cache, duplicate deliveries (one after the
//! other, and two at once while the API holds its answer: one request), a crash while the API is
//! answering (never asked again), and what a caller hears of a script's hold prompt, and when.

use crate::common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::held::HeldApi;
use common::*;
use serde_json::Value;
use tokio::sync::Semaphore;
use warp::Filter;

/// Per order number, the (caller, Accept header) of each request.
type Seen = Arc<Mutex<HashMap<String, Vec<(String, String)>>>>;

/// The shop's API: `GET /orders/ID?caller=...`, answering by order number.
struct Api {
    base: String,
    /// Requests per order number, with the caller and Accept header each carried.
    seen: Seen,
    /// Order `888888` takes a permit of this before answering (`add_permits` releases it).
    release: Arc<Semaphore>,
}

impl Api {
    async fn start() -> Api {
        let seen: Seen = Arc::default();
        let release = Arc::new(Semaphore::new(0));
        let (log, gate) = (seen.clone(), release.clone());
        let route = warp::path!("orders" / String)
            .and(warp::query::<HashMap<String, String>>())
            .and(warp::header::optional::<String>("accept"))
            .then(move |order: String, query: HashMap<String, String>, accept: Option<String>| {
                let (log, gate) = (log.clone(), gate.clone());
                async move {
                    let caller = query.get("caller").cloned().unwrap_or_default();
                    log.lock()
                        .unwrap()
                        .entry(order.clone())
                        .or_default()
                        .push((caller, accept.unwrap_or_default()));
                    let ok =
                        |v: Value| warp::http::Response::builder().status(200).body(v.to_string()).unwrap();
                    match order.as_str() {
                        "111111" => ok(serde_json::json!({"data": {"code": 1, "eta": "on Friday"}})),
                        "222222" => ok(serde_json::json!({"data": {"code": 2, "eta": "-"}})),
                        "333333" => ok(serde_json::json!({"data": {"code": 3, "eta": "-"}})),
                        "444444" => {
                            tokio::time::sleep(Duration::from_secs(4)).await;
                            ok(serde_json::json!({"data": {"code": 1, "eta": "too late"}}))
                        }
                        "555555" => warp::http::Response::builder().status(500).body("{}".into()).unwrap(),
                        "666666" => {
                            warp::http::Response::builder().status(200).body("<html>".into()).unwrap()
                        }
                        "777777" => ok(serde_json::json!({"data": {"code": 1}})),
                        "888888" => {
                            gate.acquire().await.unwrap().forget();
                            ok(serde_json::json!({"data": {"code": 2, "eta": "-"}}))
                        }
                        _ => ok(serde_json::json!({"data": {"code": 9, "eta": "-"}})),
                    }
                }
            });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(warp::serve(route).incoming(listener).run());
        Api { base, seen, release }
    }

    fn count(&self, order: &str) -> usize {
        self.seen.lock().unwrap().get(order).map_or(0, Vec::len)
    }
}

/// A node whose `order_status` machine calls `api`.
fn node(t: &tempfile::TempDir, api: &Api) -> Node {
    let dir = machines_dir(t.path());
    let text = std::fs::read_to_string(repo().join("machines/order_status.toml")).unwrap();
    std::fs::write(
        dir.join("order_status.toml"),
        text.replace("127.0.0.1:8090", api.base.trim_start_matches("http://")),
    )
    .unwrap();
    Node::start(&t.path().join("data"), &dir)
}

/// A call to the order line: `CALL_RECEIVED`, then the keys; returns each reply.
struct Call<'a> {
    n: &'a Node,
    session: String,
    id: Option<String>,
    events: usize,
}

impl<'a> Call<'a> {
    async fn start(n: &'a Node, session: &str) -> (Call<'a>, Answer) {
        let mut c = Call { n, session: session.into(), id: None, events: 0 };
        let a = c.send("CALL_RECEIVED", None).await;
        (c, a)
    }

    fn body(&mut self, status: &str, dtmf: Option<&str>) -> String {
        self.events += 1;
        let event = format!("{}-e{}", self.session, self.events);
        let v = Vca {
            session: &self.session,
            event: &event,
            dtmf,
            client_action_id: self.id.as_deref(),
            status,
            direction: "INBOUND",
            source: "+6591178965",
            destination: "+6568880002",
            event_data: false,
        };
        v.body()
    }

    async fn send(&mut self, status: &str, dtmf: Option<&str>) -> Answer {
        let body = self.body(status, dtmf);
        self.deliver(body).await
    }

    async fn deliver(&mut self, body: String) -> Answer {
        let a = post(&self.n.url("/webhooks/vca"), body).await;
        self.id = a.callflow().client_action_id;
        a
    }

    async fn press(&mut self, keys: &str) -> Answer {
        self.send("DTMF_RECEIVED", Some(keys)).await
    }
}

/// The texts a reply says, in order (say texts and capture prompts), and its last action.
fn said(a: &Answer) -> (Vec<String>, String) {
    let v = a.json();
    let actions = v["callflow"].as_array().unwrap();
    let texts = actions
        .iter()
        .filter_map(|x| x["params"]["text"].as_str().or(x["params"]["promptMessage"].as_str()))
        .map(String::from)
        .collect();
    (texts, actions.last().unwrap()["action"].as_str().unwrap().to_string())
}

#[tokio::test(flavor = "multi_thread")]
async fn an_order_in_transit_is_looked_up_and_its_eta_spoken() {
    let api = Api::start().await;
    let t = tempfile::tempdir().unwrap();
    let n = node(&t, &api);
    let (mut call, first) = Call::start(&n, "s-transit").await;
    assert_eq!(
        said(&first).0,
        ["Welcome to the order status line.", "Please key in your six digit order number, then press hash."]
    );
    let a = call.press("111111#").await;
    assert_eq!(a.how, "applied");
    assert_eq!(
        said(&a),
        (
            vec![
                "One moment while we look up order 1 1 1 1 1 1.".to_string(),
                "Your order 1 1 1 1 1 1 is on its way and will arrive on Friday.".into(),
                "To check another order, press 1. To speak to an agent, press 2.".into(),
            ],
            "sayAndCapture".into()
        )
    );
    // The request carried the caller (URL-encoded) and the configured header.
    assert_eq!(
        api.seen.lock().unwrap()["111111"],
        [("+6591178965".to_string(), "application/json".to_string())]
    );
    // Another order on the same call: delivered, then unknown.
    call.press("1").await;
    assert_eq!(said(&call.press("222222#").await).0[1], "Your order 2 2 2 2 2 2 has been delivered.");
    call.press("1").await;
    assert_eq!(said(&call.press("333333").await).0[1], "We could not find order 3 3 3 3 3 3.");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slow_failing_or_broken_api_takes_the_failure_branch_to_an_agent() {
    let api = Api::start().await;
    let t = tempfile::tempdir().unwrap();
    let n = node(&t, &api);
    // 444444: slower than the node's 2 s timeout; 555555: HTTP 500; 666666: not JSON;
    // 999999: a code no branch names (the machine's default is the agent).
    for (i, order) in ["444444", "555555", "666666", "999999"].iter().enumerate() {
        let (mut call, _) = Call::start(&n, &format!("s-fail-{i}")).await;
        let a = call.press(&format!("{order}#")).await;
        assert_eq!(a.status, 200, "{order}: never a 5xx");
        let (texts, last) = said(&a);
        assert_eq!(
            texts.last().map(String::as_str),
            Some("Our order system is not answering right now. Let me connect you to an agent."),
            "{order}"
        );
        assert_eq!(last, "makeCall", "{order}");
        assert_eq!(a.json()["callflow"][2]["params"]["destination"], "+6531589338");
        if *order == "444444" {
            // The API would answer (with a delivered order) after 4 s: the failure branch and the
            // logged reason show that the node's timeout cut the wait short.
            assert!(n.log().contains("no answer within 2000 ms"), "{}", n.log());
        }
        assert_eq!(api.count(order), 1, "{order}");
    }
    assert!(n.log().contains("script took its failure branch"), "the reason is logged");
    // /metrics: each request by its result, timed, and the exits they took from the node.
    let (_, _, text) = metrics::scrape(&n, None).await;
    let samples = metrics::parse(&text);
    let lookup = [("machine", "order_status"), ("node", "lookup")];
    assert_eq!(
        metrics::values(&samples, "phonetree_script_requests_total", &lookup, &["result"]),
        metrics::expected(&[
            (&["timeout"], 1.0),
            (&["error_status"], 1.0),
            (&["bad_body"], 1.0),
            (&["ok"], 1.0),
        ]),
        "{text}"
    );
    assert_eq!(
        metrics::values(&samples, "phonetree_script_request_duration_seconds_count", &lookup, &[]),
        metrics::expected(&[(&[], 4.0)]),
        "{text}"
    );
    assert_eq!(
        metrics::values(&samples, "phonetree_node_exits_total", &lookup, &["exit"]),
        metrics::expected(&[(&["failure"], 3.0), (&["default"], 1.0)]),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_answer_without_a_stored_key_takes_its_branch_with_the_default() {
    let api = Api::start().await;
    let t = tempfile::tempdir().unwrap();
    let n = node(&t, &api);
    // 777777 answers code 1 without `data.eta`: the in-transit branch, with the stored default.
    let (mut call, _) = Call::start(&n, "s-no-eta").await;
    let a = call.press("777777#").await;
    assert_eq!(said(&a).0[1], "Your order 7 7 7 7 7 7 is on its way and will arrive soon.");
    assert!(!n.log().contains("script took its failure branch"), "{}", n.log());
}

/// The issue's account line: `ok` picks the branch, `balance` is only stored (and spoken).
const BALANCE: &str = r#"
name = "balance"
start = "lookup"
numbers = ["+6568880077"]
allow_hosts = ["127.0.0.1:PORT"]

[defaults]
voice_profile = "en-US-BenjaminRUS"

[nodes.lookup]
kind = "script"
url = "http://127.0.0.1:PORT/balance?caller={caller}"
response_key = "ok"
branches = { true = "good", false = "bad" }
failure = "down"
store = { balance = { path = "balance", default = "not known", max_chars = 40 } }

[nodes.good]
kind = "say"
text = "Your balance is {balance}."
next = "bye"

[nodes.bad]
kind = "say"
text = "Your account is closed."
next = "bye"

[nodes.down]
kind = "say"
text = "The system is down."
next = "bye"

[nodes.bye]
kind = "hangup"
"#;

#[tokio::test(flavor = "multi_thread")]
async fn a_stored_key_missing_from_the_answer_never_reroutes_and_a_long_value_is_cut_and_logged() {
    let route = warp::path!("balance").and(warp::query::<HashMap<String, String>>()).map(
        |q: HashMap<String, String>| {
            let body = match q.get("caller").map(String::as_str) {
                Some("+6590000001") => serde_json::json!({"ok": false}),
                _ => serde_json::json!({
                    "ok": true,
                    "balance": "one hundred and twenty dollars and fifty cents as of this morning"
                }),
            };
            warp::reply::json(&body)
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(warp::serve(route).incoming(listener).run());
    let t = tempfile::tempdir().unwrap();
    let dir = machines_dir(t.path());
    std::fs::write(
        dir.join("balance.toml"),
        BALANCE.replace("127.0.0.1:PORT", base.trim_start_matches("http://")),
    )
    .unwrap();
    let n = Node::start(&t.path().join("data"), &dir);
    let url = n.url("/webhooks/vca");
    let start = |session: &'static str, caller: &'static str| {
        let v = Vca {
            session,
            event: "e1",
            dtmf: None,
            client_action_id: None,
            status: "CALL_RECEIVED",
            direction: "INBOUND",
            source: caller,
            destination: "+6568880077",
            event_data: false,
        };
        post(&url, v.body())
    };
    // `{"ok": false}` has no `balance`: the `bad` branch, as `ok` says, not the failure branch.
    let a = start("s-closed", "+6590000001").await;
    assert_eq!(said(&a), (vec!["Your account is closed.".to_string()], "hangup".to_string()));
    // A value over its 40 characters is cut after the last whole word, and the cut is logged by
    // its lengths (never its text).
    let a = start("s-open", "+6590000002").await;
    assert_eq!(said(&a).0, ["Your balance is one hundred and twenty dollars and fifty."]);
    let log = n.log();
    let line = log.lines().find(|l| l.contains("stored value cut to its max_chars")).expect(&log);
    for part in ["balance", "lookup", "chars=65", "kept=40"] {
        assert!(line.contains(part), "{part}: {line}");
    }
    assert!(!line.contains("hundred"), "{line}");
}

#[tokio::test(flavor = "multi_thread")]
async fn identical_requests_within_the_cache_time_ask_the_api_once() {
    let api = Api::start().await;
    let t = tempfile::tempdir().unwrap();
    let n = node(&t, &api);
    let (mut a, _) = Call::start(&n, "s-cache-a").await;
    let first = a.press("111111#").await;
    let (mut b, _) = Call::start(&n, "s-cache-b").await;
    let second = b.press("111111#").await;
    assert_eq!(said(&first), said(&second));
    assert_eq!(api.count("111111"), 1, "the second call was answered from the cache");
    assert!(n.log().contains("script answered from the cache"));
    // A failed answer is not cached: both calls ask.
    let (mut c, _) = Call::start(&n, "s-cache-c").await;
    c.press("555555#").await;
    let (mut d, _) = Call::start(&n, "s-cache-d").await;
    d.press("555555#").await;
    assert_eq!(api.count("555555"), 2);
    let (_, _, text) = metrics::scrape(&n, None).await;
    assert_eq!(
        metrics::values(
            &metrics::parse(&text),
            "phonetree_script_requests_total",
            &[("machine", "order_status"), ("node", "lookup")],
            &["result"]
        ),
        metrics::expected(&[(&["ok"], 1.0), (&["cache_hit"], 1.0), (&["error_status"], 2.0)]),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_duplicate_delivery_replays_the_reply_without_asking_the_api_again() {
    let api = Api::start().await;
    let t = tempfile::tempdir().unwrap();
    let n = node(&t, &api);
    let (mut call, _) = Call::start(&n, "s-dup").await;
    let body = call.body("DTMF_RECEIVED", Some("333333#"));
    let a = call.deliver(body.clone()).await;
    let again = post(&n.url("/webhooks/vca"), body).await;
    assert_eq!((a.how.as_str(), again.how.as_str()), ("applied", "duplicate"));
    assert_eq!(a.body, again.body);
    assert_eq!(api.count("333333"), 1);
}

/// Waits until `done` holds, at most `WAIT_MAX`; panics with `what` otherwise.
async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    const WAIT_MAX: Duration = Duration::from_secs(20);
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < WAIT_MAX, "waited {WAIT_MAX:?} for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The node's log line of a duplicate that waits for the first delivery's reply.
const WAITING_HERE: &str = "a duplicate of a webhook being answered: waiting for its reply";

/// A node whose `hold` machine calls `api`.
fn hold_node(t: &tempfile::TempDir, api: &HeldApi) -> Node {
    let dir = machines_dir(t.path());
    std::fs::write(dir.join("hold.toml"), api.machine()).unwrap();
    Node::start(&t.path().join("data"), &dir)
}

/// The CALL_RECEIVED of a call to the `hold` line.
fn hold_call(session: &str) -> String {
    Vca {
        session,
        event: "e1",
        dtmf: None,
        client_action_id: None,
        status: "CALL_RECEIVED",
        direction: "INBOUND",
        source: "+6591178965",
        destination: "+6568880079",
        event_data: false,
    }
    .body()
}

/// Two deliveries of one event while its script waits for the API: one request reaches the API,
/// and both deliveries get the same bytes (before, each delivery made the request: the replies
/// were identical, the effect happened twice).
#[tokio::test(flavor = "multi_thread")]
async fn two_deliveries_of_one_event_while_its_script_runs_make_one_request_and_answer_alike() {
    let api = HeldApi::start().await;
    let t = tempfile::tempdir().unwrap();
    let n = hold_node(&t, &api);
    let body = hold_call("s-twins");
    let url = n.url("/webhooks/vca");
    let first = tokio::spawn(post_owned(url.clone(), body.clone()));
    wait_until("the first delivery's request", || api.asked() == 1).await;
    let second = tokio::spawn(post_owned(url, body));
    // The second waits for the first here (or, wrongly, makes a request of its own).
    wait_until("the second delivery", || n.log().contains(WAITING_HERE) || api.asked() == 2).await;
    api.release.add_permits(2);
    let (a, b) = (first.await.unwrap(), second.await.unwrap());
    assert_eq!(api.asked(), 1, "the request was made once");
    assert_eq!(String::from_utf8_lossy(&a.body), String::from_utf8_lossy(&b.body));
    assert_eq!((a.how.as_str(), b.how.as_str()), ("applied", "duplicate"));
    assert_eq!(
        said(&a),
        (vec!["One moment while we look that up.".into(), "All done.".into()], "hangup".into())
    );
}

/// What a caller hears of a script's hold prompt, and when: 8x8 plays a reply only once it has
/// it, so the prompt is said in the same reply as the script's result, after the API answered;
/// nothing reaches 8x8 while the API holds its answer.
#[tokio::test(flavor = "multi_thread")]
async fn the_hold_prompt_is_said_with_the_result_after_the_api_answered() {
    let api = HeldApi::start().await;
    let t = tempfile::tempdir().unwrap();
    let n = hold_node(&t, &api);
    let reply = tokio::spawn(post_owned(n.url("/webhooks/vca"), hold_call("s-hold")));
    wait_until("the script's request", || api.asked() == 1).await;
    assert!(!reply.is_finished(), "nothing was answered while the API held its answer");
    api.release.add_permits(1);
    let a = reply.await.unwrap();
    let v = a.json();
    let actions: Vec<(&str, &str)> = v["callflow"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| (x["action"].as_str().unwrap(), x["params"]["text"].as_str().unwrap_or("")))
        .collect();
    assert_eq!(
        actions,
        [("say", "One moment while we look that up."), ("say", "All done."), ("hangup", "")],
        "the hold prompt, then the result, in one reply"
    );
}

/// `post` with owned arguments, for a spawned task.
async fn post_owned(url: String, body: String) -> Answer {
    post(&url, body).await
}

/// A node killed while the API holds its answer, restarted, and the webhook delivered again: the
/// request is not made again (it may have reached the API: an opt-out, a payment), the script
/// takes its failure branch, and that reply is replayed byte for byte to a later duplicate.
/// (Before, the retried webhook asked the API a second time; this test asserted it.)
#[tokio::test(flavor = "multi_thread")]
async fn a_crash_while_the_api_answers_is_never_asked_again_and_takes_the_failure_branch() {
    let api = Api::start().await;
    let t = tempfile::tempdir().unwrap();
    let mut n = node(&t, &api);
    let (mut call, _) = Call::start(&n, "s-crash").await;
    let body = call.body("DTMF_RECEIVED", Some("888888#"));
    // The node asks the API, which holds its answer; the node dies meanwhile (no answer journaled).
    let url = n.url("/webhooks/vca");
    let in_flight = tokio::spawn({
        let body = body.clone();
        async move { reqwest::Client::new().post(url).body(body).send().await.is_err() }
    });
    wait_until("the request", || api.count("888888") == 1).await;
    n.kill();
    assert!(in_flight.await.unwrap(), "the first delivery got no reply");
    // The held answer goes nowhere: its connection died with the node. A second request would
    // be answered at once.
    api.release.add_permits(2);
    n.restart();
    // 8x8 delivers the webhook again: no request, the failure branch.
    let a = post(&n.url("/webhooks/vca"), body.clone()).await;
    assert_eq!(a.how, "applied");
    let (texts, last) = said(&a);
    assert_eq!(
        (texts.last().map(String::as_str), last.as_str()),
        (Some("Our order system is not answering right now. Let me connect you to an agent."), "makeCall")
    );
    assert_eq!(api.count("888888"), 1, "the request was not made again");
    assert!(n.log().contains("the script's request was claimed and not answered"), "{}", n.log());
    // Again: the same bytes, still one request.
    let again = post(&n.url("/webhooks/vca"), body).await;
    assert_eq!((again.how.as_str(), again.body == a.body), ("duplicate", true));
    assert_eq!(api.count("888888"), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_retried_webhook_reuses_the_answer_journaled_before_a_crash() {
    use phonetree::node::{App, Config, calls};
    use phonetree::webhook::inbound;
    let t = tempfile::tempdir().unwrap();
    let dir = machines_dir(t.path());
    // An API nobody listens on: asking it would take the failure branch.
    let text = std::fs::read_to_string(repo().join("machines/order_status.toml")).unwrap();
    std::fs::write(dir.join("order_status.toml"), text.replace("127.0.0.1:8090", "127.0.0.1:9")).unwrap();
    let app = App::open(Config {
        machines: dir,
        store: format!("sled:{}", t.path().join("data").display()),
        listen: "127.0.0.1:0".parse().unwrap(),
        session_ttl: Duration::from_secs(3600),
        retention: Duration::from_secs(3600),
        ..Config::default()
    })
    .await
    .unwrap();
    let vca = |event: &str, status: &str, dtmf: Option<&str>| {
        let v = Vca {
            session: "s-journal",
            event,
            dtmf,
            client_action_id: None,
            status,
            direction: "INBOUND",
            source: "+6591178965",
            destination: "+6568880002",
            event_data: false,
        };
        inbound::call_action(v.body().as_bytes()).unwrap()
    };
    calls::call_action(&app, &vca("e1", "CALL_RECEIVED", None)).await;
    // What the first delivery of e2 got from the API before the node died, reply unsent.
    let journaled = phonetree::engine::Answer::Http {
        status: 200,
        body: br#"{"data": {"code": 2, "eta": "-"}}"#.to_vec(),
    };
    app.store.put_answers("s-journal", "e2", &[journaled]).await.unwrap();
    let (body, how) = calls::call_action(&app, &vca("e2", "DTMF_RECEIVED", Some("222222#"))).await;
    assert_eq!(how, Some(calls::Answered::Applied));
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["callflow"][1]["params"]["text"], "Your order 2 2 2 2 2 2 has been delivered.");
}

#[tokio::test(flavor = "multi_thread")]
async fn simulate_live_calls_the_real_api() {
    let api = Api::start().await;
    let t = tempfile::tempdir().unwrap();
    let file = t.path().join("order_status.toml");
    let text = std::fs::read_to_string(repo().join("machines/order_status.toml")).unwrap();
    std::fs::write(&file, text.replace("127.0.0.1:8090", api.base.trim_start_matches("http://"))).unwrap();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_phonetree"))
            .args(["simulate", "--live", file.to_str().unwrap(), "111111#"])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("will arrive on Friday."), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(api.count("111111"), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn failed_tries_at_an_input_are_counted_as_retries_then_as_the_exit_taken() {
    let api = Api::start().await;
    let t = tempfile::tempdir().unwrap();
    let n = node(&t, &api);
    // Two tries at `ask_order`: a short number is asked again, then nothing ends the tries.
    let (mut call, _) = Call::start(&n, "s-tries").await;
    assert_eq!(call.press("12#").await.how, "applied");
    assert_eq!(call.send("DTMF_RECEIVED", None).await.how, "applied");
    let (mut other, _) = Call::start(&n, "s-tries-2").await;
    assert_eq!(other.send("DTMF_RECEIVED", None).await.how, "applied");
    let (_, _, text) = metrics::scrape(&n, None).await;
    let samples = metrics::parse(&text);
    let ask = [("machine", "order_status"), ("node", "ask_order")];
    assert_eq!(
        metrics::values(&samples, "phonetree_node_retries_total", &ask, &["reason"]),
        metrics::expected(&[(&["invalid"], 1.0), (&["no_input"], 1.0)]),
        "{text}"
    );
    assert_eq!(
        metrics::values(&samples, "phonetree_node_exits_total", &ask, &["exit"]),
        metrics::expected(&[(&["no_input"], 1.0)]),
        "{text}"
    );
    assert_eq!(
        metrics::values(&samples, "phonetree_node_entries_total", &[("machine", "order_status")], &["node"])
            .get(&vec!["ask_order".to_string()]),
        Some(&2.0),
        "{text}"
    );
}

/// A path segment filled from a variable is never `.` or `..`: a caller whose number is `..` does
/// not turn `/orders/{caller}/status` into `/status` (the request is refused, the call takes the
/// failure branch); a value with dots among other characters is sent as it is.
#[tokio::test(flavor = "multi_thread")]
async fn a_dot_segment_from_a_variable_never_climbs_the_url_path() {
    let paths: Arc<Mutex<Vec<String>>> = Arc::default();
    let log = paths.clone();
    let route = warp::path::full().map(move |p: warp::path::FullPath| {
        log.lock().unwrap().push(p.as_str().to_string());
        warp::http::Response::builder().status(200).body(r#"{"ok":true}"#.to_string()).unwrap()
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api = listener.local_addr().unwrap().to_string();
    tokio::spawn(warp::serve(route).incoming(listener).run());
    let number = "+6568880077";
    let text = format!(
        "name = \"dots\"\nstart = \"lookup\"\nnumbers = [\"{number}\"]\nallow_hosts = [\"{api}\"]\n\n\
         [defaults]\nvoice_profile = \"en-US-BenjaminRUS\"\n\n\
         [nodes.lookup]\nkind = \"script\"\nurl = \"http://{api}/orders/{{caller}}/status\"\ntimeout_ms = 5000\n\
         failure = \"failed\"\ndefault = \"served\"\n\n\
         [nodes.served]\nkind = \"say\"\ntext = \"Served.\"\nnext = \"bye\"\n\n\
         [nodes.failed]\nkind = \"say\"\ntext = \"Failed.\"\nnext = \"bye\"\n\n\
         [nodes.bye]\nkind = \"hangup\"\n"
    );
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("machines");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("dots.toml"), text).unwrap();
    let n = Node::start(&t.path().join("data"), &dir);
    let mut heard = Vec::new();
    for (i, caller) in ["..", ".", "a.b", "..."].into_iter().enumerate() {
        let (session, event) = (format!("s-dots-{i}"), format!("s-dots-{i}-e1"));
        let v = Vca {
            session: &session,
            event: &event,
            dtmf: None,
            client_action_id: None,
            status: "CALL_RECEIVED",
            direction: "INBOUND",
            source: caller,
            destination: number,
            event_data: false,
        };
        heard.push(said(&post(&n.url("/webhooks/vca"), v.body()).await).0);
    }
    let paths = paths.lock().unwrap().clone();
    assert!(!paths.iter().any(|p| p == "/status" || p == "/orders/status"), "the path climbed: {paths:?}");
    assert_eq!(paths, ["/orders/a.b/status", "/orders/%2E%2E%2E/status"]);
    assert_eq!(heard, [vec!["Failed."], vec!["Failed."], vec!["Served."], vec!["Served."]]);
    assert!(n.log().contains("would leave the url's path"), "{}", n.log());
}

/// At the default log level, a flood of webhooks whose scripts are refused logs no line per
/// webhook at info, and a bounded number of warnings (each kind at most `LINES_PER_WINDOW` per
/// window, the rest counted in `suppressed`).
#[tokio::test(flavor = "multi_thread")]
async fn a_flood_of_refused_scripts_logs_a_bounded_number_of_lines() {
    let number = "+6568880078";
    let text = format!(
        "name = \"flood\"\nstart = \"lookup\"\nnumbers = [\"{number}\"]\nallow_hosts = [\"127.0.0.1:9\"]\n\n\
         [defaults]\nvoice_profile = \"en-US-BenjaminRUS\"\n\n\
         [nodes.lookup]\nkind = \"script\"\nurl = \"http://127.0.0.1:9/orders/{{caller}}/status\"\ntimeout_ms = 5000\n\
         failure = \"failed\"\ndefault = \"failed\"\n\n\
         [nodes.failed]\nkind = \"say\"\ntext = \"Failed.\"\nnext = \"bye\"\n\n\
         [nodes.bye]\nkind = \"hangup\"\n"
    );
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("machines");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("flood.toml"), text).unwrap();
    let n = Node::start_with(&t.path().join("data"), &dir, &[("PHONETREE_LOG", "info")]);
    const WEBHOOKS: usize = 60;
    for i in 0..WEBHOOKS {
        let (session, event) = (format!("s-flood-{i}"), format!("s-flood-{i}-e1"));
        let v = Vca {
            session: &session,
            event: &event,
            dtmf: None,
            client_action_id: None,
            status: "CALL_RECEIVED",
            direction: "INBOUND",
            source: "..",
            destination: number,
            event_data: false,
        };
        let a = post(&n.url("/webhooks/vca"), v.body()).await;
        assert_eq!(said(&a).0, ["Failed."]);
    }
    let log = n.log();
    let lines = |level: &str| log.lines().filter(|l| l.contains(level)).count();
    // Two kinds of warning (the refusal, the failure branch), ten lines each at most per window;
    // the window is 10 s, so a slow run may open a second one.
    let warns = lines(" WARN ");
    assert!(
        warns >= 2 && warns <= 4 * phonetree::node::throttle::LINES_PER_WINDOW as usize,
        "{warns} WARN lines:\n{log}"
    );
    assert!(log.contains("suppressed="), "the count left out is logged:\n{log}");
    // A handful at start (serving, the store), none per webhook.
    let infos = lines(" INFO ");
    assert!(infos < 10, "{infos} INFO lines for {WEBHOOKS} webhooks:\n{log}");
}
