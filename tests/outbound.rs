//! Outbound calls for real: `phonetree call` (direct and through a server) and `POST /calls` against
//! a stand-in for 8x8's Send Callflow API on loopback that records every request it receives.

use crate::common;

use std::sync::{Arc, Mutex};

use common::callflows::{SendCallflow as StandIn, created};
use common::*;
use serde_json::{Value, json};
use warp::Filter;

/// `api.env()` with `PHONETREE_CALL_ALLOW_PREFIX` set to `prefixes` (empty: left out).
fn env_allowing(api: &StandIn, prefixes: &str) -> Vec<(&'static str, String)> {
    let mut env = api.env();
    env.retain(|(k, _)| *k != "PHONETREE_CALL_ALLOW_PREFIX");
    if !prefixes.is_empty() {
        env.push(("PHONETREE_CALL_ALLOW_PREFIX", prefixes.into()));
    }
    env
}

/// A node over `t`'s bundled machines with `env` (one reaching the stand-in: `api.env()`).
fn node_with(t: &tempfile::TempDir, env: Vec<(&'static str, String)>) -> Node {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    Node::start_with(&t.path().join("data"), &machines_dir(t.path()), &env)
}

/// 8x8's documented rejection (simple-ivr.md).
fn not_created() -> Value {
    json!({"sessionStatus": "NOT_CREATED", "callFlowRequestId": "0564e804-0a7e-11ee-9c83-6df9c048a122",
           "statusCode": -1002, "statusMessage": "Speech profile or language parameter invalid"})
}

/// Runs `phonetree ARGS` to completion with `env`; (exit code, stdout, stderr).
async fn phonetree(args: Vec<String>, env: Vec<(&'static str, String)>) -> (i32, String, String) {
    tokio::task::spawn_blocking(move || {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_phonetree"))
            .args(&args)
            .envs(env)
            .env("PHONETREE_LOG", "warn")
            .output()
            .unwrap();
        let text = |b: Vec<u8>| String::from_utf8(b).unwrap();
        (out.status.code().unwrap_or(-1), text(out.stdout), text(out.stderr))
    })
    .await
    .unwrap()
}

fn call_args(t: &tempfile::TempDir, machine: &str, to: &str) -> Vec<String> {
    let machines = machines_dir(t.path());
    [
        "call",
        "--machine",
        machine,
        "--to",
        to,
        "--data",
        t.path().join("data").to_str().unwrap(),
        "--machines",
        machines.to_str().unwrap(),
    ]
    .map(String::from)
    .to_vec()
}

#[tokio::test(flavor = "multi_thread")]
async fn call_sends_the_seed_request_and_the_callee_answer_continues_the_call() {
    let api = StandIn::answering(200, created("8x8-session-1")).await;
    let t = tempfile::tempdir().unwrap();
    let (code, stdout, stderr) = phonetree(call_args(&t, "abc_restaurant", "+6598888888"), api.env()).await;
    assert_eq!((code, stdout.as_str()), (0, "8x8-session-1\n"), "{stderr}");

    let got = api.received();
    assert_eq!(got.len(), 1, "{got:?}");
    let r = &got[0];
    assert_eq!((r.method.as_str(), r.path.as_str()), ("POST", "/api/v1/subaccounts/acct_x/callflows"));
    assert_eq!(r.authorization, "Bearer key-123");
    assert_eq!(r.content_type, "application/json");
    assert_eq!(comparable(r.body.clone()), comparable(golden("seeds/advanced/initial.json")));

    // The session 8x8 returned is stored, bound to the machine: the callee's first webhook (no
    // clientActionId, as in the seed) is their answer to the main menu.
    let n = Node::start(&t.path().join("data"), &t.path().join("machines"));
    let a = post(&n.url("/webhooks/vca"), Vca::abc("8x8-session-1", "e1", Some("3"), None).body()).await;
    assert_eq!(a.how, "applied");
    assert_eq!(comparable(a.json()), comparable(golden("seeds/advanced/hours.json")));
}

#[tokio::test(flavor = "multi_thread")]
async fn not_created_is_reported_with_8x8s_code_and_nothing_is_stored() {
    let api = StandIn::answering(400, not_created()).await;
    let t = tempfile::tempdir().unwrap();
    let (code, stdout, stderr) = phonetree(call_args(&t, "tech_support", "+6591178965"), api.env()).await;
    assert_eq!((code, stdout.as_str()), (1, ""));
    assert!(
        stderr.contains("status -1002: Speech profile or language parameter invalid"),
        "stderr: {stderr}"
    );
    assert_eq!(api.received().len(), 1);
    let store = phonetree::store::SledStore::open(&t.path().join("data")).unwrap();
    assert_eq!(phonetree::store::Store::session_count(&store).await.unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn call_without_api_settings_names_the_missing_setting() {
    let t = tempfile::tempdir().unwrap();
    let env = vec![("PHONETREE_CALL_ALLOW_PREFIX", "+65".to_string())];
    let (code, _, stderr) = phonetree(call_args(&t, "tech_support", "+6591178965"), env).await;
    assert_eq!(code, 1);
    assert!(stderr.contains("PHONETREE_8X8_SUBACCOUNT"), "stderr: {stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn post_calls_places_the_call_through_the_server() {
    let api = StandIn::answering(200, created("8x8-session-2")).await;
    let t = tempfile::tempdir().unwrap();
    let env: Vec<(&str, String)> = api.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let n = Node::start_with(&t.path().join("data"), &machines_dir(t.path()), &env);

    let r = post(&n.admin_url("/calls"), json!({"machine": "tech_support", "to": "+6512345678"}).to_string())
        .await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json(), json!({"sessionId": "8x8-session-2", "machine": "tech_support"}));
    let sent = &api.received()[0];
    // The tutorial's seed, with the destination in E.164 as the guard requires it.
    let mut seed = golden("seeds/simple/initial.json");
    seed["callflow"][0]["params"]["destination"] = json!("+6512345678");
    assert_eq!(comparable(sent.body.clone()), comparable(seed));

    // The callee presses 2 at the start prompt: the call continues on tech_support.
    let mut v = Vca::abc("8x8-session-2", "e1", Some("2"), None);
    (v.source, v.destination) = ("6561115777", "+6512345678");
    let a = post(&n.url("/webhooks/vca"), v.body()).await;
    assert_eq!(a.how, "applied");
    // The agent is shown the customer's number, as it was called.
    let mut connect = golden("seeds/simple/connect.json");
    connect["callflow"][0]["params"]["source"] = json!("+6512345678");
    assert_eq!(comparable(a.json()), comparable(connect));
    // /metrics: the placed call entered the start node when it was placed, then the agent.
    let (_, _, text) = metrics::scrape(&n, None).await;
    let samples = metrics::parse(&text);
    let tech = [("machine", "tech_support")];
    assert_eq!(
        metrics::values(&samples, "phonetree_node_entries_total", &tech, &["node"]),
        metrics::expected(&[(&["menu"], 1.0), (&["agent"], 1.0)]),
        "{text}"
    );
    assert_eq!(
        metrics::values(&samples, "phonetree_node_exits_total", &tech, &["node", "exit"]),
        metrics::expected(&[(&["menu", "key_2"], 1.0)]),
        "{text}"
    );

    // The CLI through the running server.
    let (code, stdout, stderr) = phonetree(
        vec![
            "call".into(),
            "--machine".into(),
            "tech_support".into(),
            "--to".into(),
            "+6500000000".into(),
            "--server".into(),
            n.admin_url(""),
        ],
        vec![],
    )
    .await;
    assert_eq!((code, stdout.as_str()), (0, "8x8-session-2\n"), "{stderr}");
    assert_eq!(api.received().len(), 2);

    let unknown =
        post(&n.admin_url("/calls"), json!({"machine": "nope", "to": "+6591178965"}).to_string()).await;
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.json()["error"]["code"], "unknown_machine");
    let malformed = post(&n.admin_url("/calls"), "{\"machine\": 1}").await;
    assert_eq!(malformed.status, 400);
    assert_eq!(malformed.json()["error"]["code"], "malformed_json");
}

#[tokio::test(flavor = "multi_thread")]
async fn post_calls_reports_not_created_as_a_bad_gateway_with_8x8s_status() {
    let api = StandIn::answering(400, not_created()).await;
    let t = tempfile::tempdir().unwrap();
    let env: Vec<(&str, String)> = api.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let n = Node::start_with(&t.path().join("data"), &machines_dir(t.path()), &env);
    let r =
        post(&n.admin_url("/calls"), json!({"machine": "abc_restaurant", "to": "+6598888888"}).to_string())
            .await;
    assert_eq!(r.status, 502);
    let e = &r.json()["error"];
    assert_eq!((e["code"].as_str(), e["statusCode"].as_i64()), (Some("not_created"), Some(-1002)));
    assert_eq!(e["statusMessage"], "Speech profile or language parameter invalid");
    assert_eq!(n.ready_now().await["sessions"], 0);
}

/// POSTs a call; (status, error code, error message, Retry-After).
async fn refusal(n: &Node, body: Value) -> (u16, String, String, Option<String>) {
    let r = reqwest::Client::new()
        .post(n.admin_url("/calls"))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let retry = r.headers().get("retry-after").map(|v| v.to_str().unwrap().to_string());
    assert_eq!(r.headers()["content-type"], "application/json");
    let v: Value = r.json().await.unwrap();
    let text = |k: &str| v["error"][k].as_str().unwrap_or_default().to_string();
    (status, text("code"), text("message"), retry)
}

#[tokio::test(flavor = "multi_thread")]
async fn no_destination_is_allowed_until_prefixes_are_configured() {
    let api = StandIn::answering(200, created("never")).await;
    let t = tempfile::tempdir().unwrap();
    let n = node_with(&t, env_allowing(&api, ""));
    let (status, code, message, _) =
        refusal(&n, json!({"machine": "abc_restaurant", "to": "+6598888888"})).await;
    assert_eq!((status, code.as_str()), (403, "destination_not_allowed"));
    assert!(message.contains("--call-allow-prefix"), "{message}");

    // `phonetree call` runs the same guard.
    let t2 = tempfile::tempdir().unwrap();
    let (code, stdout, stderr) =
        phonetree(call_args(&t2, "abc_restaurant", "+6598888888"), env_allowing(&api, "")).await;
    assert_eq!((code, stdout.as_str()), (1, ""));
    assert!(stderr.contains("--call-allow-prefix"), "{stderr}");
    assert_eq!(api.received().len(), 0, "a refused call reached 8x8");
}

#[tokio::test(flavor = "multi_thread")]
async fn refused_calls_never_reach_8x8() {
    let api = StandIn::answering(200, created("8x8-session-3")).await;
    let t = tempfile::tempdir().unwrap();
    let n = node_with(&t, env_allowing(&api, "+"));
    let call = |to: &str| json!({"machine": "abc_restaurant", "to": to});

    // Not E.164: 400 naming the field, never a 500.
    for to in ["911", "112", "+999", "6598888888", "+0598888888", "+65 9888 8888", ""] {
        let (status, code, message, _) = refusal(&n, call(to)).await;
        assert_eq!((status, code.as_str()), (400, "invalid_number"), "{to:?}: {message}");
        assert!(message.contains("`to`"), "{message}");
    }
    let bad_from = json!({"machine": "abc_restaurant", "to": "+6598888888", "from": "anything"});
    let (status, code, message, _) = refusal(&n, bad_from).await;
    assert_eq!((status, code.as_str()), (400, "invalid_number"));
    assert!(message.contains("`from`"), "{message}");

    // Emergency, premium and international-network ranges, although `+` allows every prefix.
    for to in
        ["+19005551234", "+19765551234", "+449012345678", "+88112345678", "+88312345678", "+97912345678"]
    {
        let (status, code, message, _) = refusal(&n, call(to)).await;
        assert_eq!((status, code.as_str()), (403, "destination_barred"), "{to}: {message}");
    }

    // A caller ID that is not the machine's.
    let foreign = json!({"machine": "abc_restaurant", "to": "+6598888888", "from": "+6561115777"});
    let (status, code, message, _) = refusal(&n, foreign).await;
    assert_eq!((status, code.as_str()), (403, "caller_id_not_allowed"), "{message}");
    assert_eq!(api.received().len(), 0, "a refused call reached 8x8: {:?}", api.received());

    // The machine's own number (written with or without the `+`) is fine; a second call to the
    // same destination within the minute is over the limit.
    let own = json!({"machine": "abc_restaurant", "to": "+6598888888", "from": "+6568888888"});
    let r = post(&n.admin_url("/calls"), own.to_string()).await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let (status, code, message, retry) = refusal(&n, call("+6598888888")).await;
    assert_eq!((status, code.as_str()), (429, "rate_limited"), "{message}");
    let retry: u64 = retry.expect("Retry-After").parse().unwrap();
    assert!((1..=60).contains(&retry), "Retry-After: {retry}");
    assert_eq!(api.received().len(), 1, "only the allowed call reached 8x8");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_overall_rate_limit_holds_across_destinations() {
    let api = StandIn::answering(200, created("8x8-session-4")).await;
    let t = tempfile::tempdir().unwrap();
    let mut env = api.env();
    env.push(("PHONETREE_CALL_RATE_OVERALL", "2".into()));
    let n = node_with(&t, env);
    for to in ["+6590000001", "+6590000002"] {
        let r =
            post(&n.admin_url("/calls"), json!({"machine": "abc_restaurant", "to": to}).to_string()).await;
        assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    }
    let (status, code, _, retry) =
        refusal(&n, json!({"machine": "abc_restaurant", "to": "+6590000003"})).await;
    assert_eq!((status, code.as_str(), retry.is_some()), (429, "rate_limited", true));
    assert_eq!(api.received().len(), 2);
}

/// A payment reminder: its opening asks the billing API for the callee's name (a script before
/// the first prompt), then says it with the amount the call was placed with (`variables`).
const REMINDER: &str = r#"
name = "reminder"
start = "lookup"
numbers = ["+6568880009"]
allow_hosts = ["127.0.0.1:8090"]
variables = { account = "none", amount = "0" }

[settings]
api = "http://127.0.0.1:8090"

[defaults]
voice_profile = "en-US-BenjaminRUS"

[nodes.lookup]
kind = "script"
url = "{api}/accounts/{account}"
timeout_ms = 2000
response_key = "status"
branches = { open = "remind" }
default = "remind"
failure = "sorry"
store = { name = { path = "name", default = "customer" } }

[nodes.remind]
kind = "menu"
prompt = "Hello {name}. You owe {amount} dollars. To pay now, press 1."
branches = { 1 = "thanks" }
invalid = "bye"

[nodes.thanks]
kind = "say"
text = "Thank you, {name}."
next = "bye"

[nodes.sorry]
kind = "say"
text = "Sorry, we cannot reach your account right now. Goodbye."
next = "bye"

[nodes.bye]
kind = "hangup"
"#;

/// The billing API on loopback: `GET /accounts/ID`; `A-17` is Ada's open account, `broken`
/// answers 500. Counts the requests per account.
struct Billing {
    base: String,
    seen: Arc<Mutex<Vec<String>>>,
}

impl Billing {
    async fn start() -> Billing {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let route = warp::path!("accounts" / String).map(move |account: String| {
            log.lock().unwrap().push(account.clone());
            let (status, body) = match account.as_str() {
                "A-17" => (200, json!({"status": "open", "name": "Ada"})),
                _ => (500, json!({})),
            };
            warp::reply::with_status(
                warp::reply::json(&body),
                warp::http::StatusCode::from_u16(status).unwrap(),
            )
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(warp::serve(route).incoming(listener).run());
        Billing { base, seen }
    }

    fn count(&self, account: &str) -> usize {
        self.seen.lock().unwrap().iter().filter(|a| *a == account).count()
    }

    /// The reminder machine, calling this API, written into `dir`; its path.
    fn machine(&self, dir: &std::path::Path) -> std::path::PathBuf {
        let path = dir.join("reminder.toml");
        std::fs::write(&path, REMINDER.replace("127.0.0.1:8090", self.base.trim_start_matches("http://")))
            .unwrap();
        path
    }
}

/// The (action, text) of each action of a callflow as 8x8 gets it.
fn actions(flow: &Value) -> Vec<(String, String)> {
    flow["callflow"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            let p = &a["params"];
            let text =
                ["destination", "text", "promptMessage"].iter().find_map(|k| p[*k].as_str()).unwrap_or("");
            (a["action"].as_str().unwrap().to_string(), text.to_string())
        })
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter().map(|(a, t)| (a.to_string(), t.to_string())).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_opening_runs_its_script_before_the_call_is_placed_and_says_the_calls_variables() {
    let api = StandIn::answering(200, created("8x8-reminder-1")).await;
    let billing = Billing::start().await;
    let t = tempfile::tempdir().unwrap();
    billing.machine(&machines_dir(t.path()));
    let n = node_with(&t, api.env());

    let call = json!({"machine": "reminder", "to": "+6598888888",
                      "variables": {"account": "A-17", "amount": "42.50"}});
    let r = post(&n.admin_url("/calls"), call.to_string()).await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(billing.count("A-17"), 1, "the opening's script asks the API once");
    // The callee's first prompt: the name from the API's answer, the amount from the call.
    let sent = api.received();
    assert_eq!(sent.len(), 1);
    assert_eq!(
        actions(&sent[0].body),
        pairs(&[
            ("makeCall", "+6598888888"),
            ("sayAndCapture", "Hello Ada. You owe 42.50 dollars. To pay now, press 1."),
        ])
    );
    assert!(
        phonetree::callflow::validate(
            &phonetree::webhook::wire::decode(sent[0].body.to_string().as_bytes()).unwrap(),
            phonetree::callflow::Use::OutboundRequest
        )
        .is_empty()
    );

    // The callee presses 1: the call goes on with the stored answer; the API is not asked again.
    let mut v = Vca::abc("8x8-reminder-1", "e1", Some("1"), None);
    (v.source, v.destination) = ("+6568880009", "+6598888888");
    let a = post(&n.url("/webhooks/vca"), v.body()).await;
    assert_eq!(a.how, "applied");
    assert_eq!(actions(&a.json()), pairs(&[("say", "Thank you, Ada."), ("hangup", "")]));
    assert_eq!(billing.count("A-17"), 1);

    // The opening's request and answer are in the call's history, as an inbound step's are.
    let shown: Value =
        reqwest::get(n.admin_url("/calls/8x8-reminder-1")).await.unwrap().json().await.unwrap();
    let opening = &shown["entries"][0];
    assert_eq!(opening["event"]["type"], "callStarted", "{shown}");
    let asked = &opening["requests"][0];
    assert_eq!((asked["node"].as_str(), asked["status"].as_u64()), (Some("lookup"), Some(200)), "{shown}");
    assert!(asked["url"].as_str().unwrap().ends_with("/accounts/A-17"), "{shown}");

    // The CLI through the running server gives the same variables.
    let (code, stdout, stderr) = phonetree(
        [
            "call",
            "--machine",
            "reminder",
            "--to",
            "+6598888887",
            "--var",
            "account=A-17",
            "--var",
            "amount=7",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain(["--server".to_string(), n.admin_url("")])
        .collect(),
        vec![],
    )
    .await;
    assert_eq!((code, stdout.as_str()), (0, "8x8-reminder-1\n"), "{stderr}");
    let sent = api.received();
    assert_eq!(actions(&sent[1].body)[1].1, "Hello Ada. You owe 7 dollars. To pay now, press 1.");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_opening_whose_api_fails_takes_the_failure_edge() {
    let api = StandIn::answering(200, created("8x8-reminder-2")).await;
    let billing = Billing::start().await;
    let t = tempfile::tempdir().unwrap();
    // Without `variables`: the script before the first prompt alone (before, a 500 `internal`).
    let path = billing.machine(&machines_dir(t.path()));
    let text = std::fs::read_to_string(&path).unwrap();
    let text =
        text.replace(r#"variables = { account = "none", amount = "0" }"#, "").replace("{account}", "broken");
    std::fs::write(&path, text.replace("{amount}", "0")).unwrap();
    let n = node_with(&t, api.env());
    let call = json!({"machine": "reminder", "to": "+6598888888"});
    let r = post(&n.admin_url("/calls"), call.to_string()).await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(billing.count("broken"), 1);
    assert_eq!(
        actions(&api.received()[0].body),
        pairs(&[
            ("makeCall", "+6598888888"),
            ("say", "Sorry, we cannot reach your account right now. Goodbye."),
            ("hangup", ""),
        ])
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_variables_are_refused_naming_them_and_nothing_is_asked() {
    let api = StandIn::answering(200, created("never")).await;
    let billing = Billing::start().await;
    let t = tempfile::tempdir().unwrap();
    billing.machine(&machines_dir(t.path()));
    let n = node_with(&t, api.env());
    let call = |vars: Value| json!({"machine": "reminder", "to": "+6598888888", "variables": vars});
    let many: serde_json::Map<String, Value> = (0..40).map(|i| (format!("v{i}"), json!("x"))).collect();
    // A name the machine does not list is refused by the machine (403); values and counts the
    // schema bounds are malformed (400).
    let cases = [
        (json!({"colour": "red"}), "colour", 403, "variable_not_allowed"),
        (json!({"amount": 42}), "amount", 400, "invalid_variables"),
        (json!({"amount": "x".repeat(33)}), "amount", 400, "invalid_variables"),
        (Value::Object(many), "40 variables", 400, "invalid_variables"),
    ];
    for (vars, named, want_status, want_code) in cases {
        let (status, code, message, _) = refusal(&n, call(vars.clone())).await;
        assert_eq!((status, code.as_str()), (want_status, want_code), "{vars}: {message}");
        assert!(message.contains(named), "{vars}: {message}");
    }
    // The unknown name's hint lists the names the machine takes.
    let (_, _, message, _) = refusal(&n, call(json!({"colour": "red"}))).await;
    assert!(message.contains("account, amount"), "{message}");
    assert_eq!(api.received().len(), 0, "a refused call reached 8x8");
    assert_eq!(billing.seen.lock().unwrap().len(), 0, "a refused call ran its script");

    // `phonetree call --var` is refused alike.
    let mut args = call_args(&t, "reminder", "+6598888888");
    args.extend(["--var".to_string(), "colour=red".to_string()]);
    let t2 = tempfile::tempdir().unwrap();
    args[6] = t2.path().join("data").to_str().unwrap().to_string();
    let (code, _, stderr) = phonetree(args, api.env()).await;
    assert_eq!(code, 1);
    assert!(stderr.contains("`colour`"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn simulate_outbound_with_vars_plays_the_opening_the_node_sends() {
    let billing = Billing::start().await;
    let t = tempfile::tempdir().unwrap();
    let machine = billing.machine(t.path());
    let answers = t.path().join("answers.json");
    std::fs::write(
        &answers,
        json!({"lookup": [{"status": 200, "body": {"status": "open", "name": "Ada"}}]}).to_string(),
    )
    .unwrap();
    let args = |extra: &[&str]| -> Vec<String> {
        [
            "simulate",
            machine.to_str().unwrap(),
            "--outbound",
            "--to",
            "+6598888888",
            "--var",
            "account=A-17",
            "--var",
            "amount=42.50",
        ]
        .iter()
        .chain(extra)
        .map(|s| s.to_string())
        .collect()
    };
    let (code, stdout, stderr) =
        phonetree(args(&["--answers", answers.to_str().unwrap(), "1"]), vec![]).await;
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("[lookup] asks GET "), "{stdout}");
    assert!(stdout.contains("makeCall: dials +6598888888 (caller ID +6568880009)"), "{stdout}");
    assert!(
        stdout.contains("[remind] hears: \"Hello Ada. You owe 42.50 dollars. To pay now, press 1.\""),
        "{stdout}"
    );
    assert!(stdout.contains("[thanks] hears: \"Thank you, Ada.\""), "{stdout}");

    // --json: the Send Callflow request, as the node sends it.
    let (code, stdout, stderr) =
        phonetree(args(&["--answers", answers.to_str().unwrap(), "--json", "1"]), vec![]).await;
    assert_eq!(code, 0, "{stderr}");
    let first: Value = serde_json::from_str(stdout.lines().next().unwrap()).unwrap();
    assert_eq!(
        actions(&first),
        pairs(&[
            ("makeCall", "+6598888888"),
            ("sayAndCapture", "Hello Ada. You owe 42.50 dollars. To pay now, press 1."),
        ])
    );

    // An `@` answer before the keys answers the opening's script; `@!` takes the failure edge.
    let (code, stdout, stderr) = phonetree(args(&["@!"]), vec![]).await;
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("[sorry] hears: \"Sorry, we cannot reach your account right now. Goodbye.\""),
        "{stdout}"
    );

    // A name the machine does not take.
    let (code, _, stderr) =
        phonetree(args(&["--var", "colour=red", "--answers", answers.to_str().unwrap()]), vec![]).await;
    assert_eq!(code, 1);
    assert!(stderr.contains("`colour`"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_placed_call_never_answered_is_recorded_as_unanswered_with_its_status() {
    let api = StandIn::answering(200, created("8x8-unanswered")).await;
    let t = tempfile::tempdir().unwrap();
    let n = node_with(&t, api.env());
    let r = post(&n.admin_url("/calls"), json!({"machine": "tech_support", "to": "+6512345678"}).to_string())
        .await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    // No webhook ever comes: 8x8's summary says nobody answered.
    let s = post(&n.url("/webhooks/vss"), vss("8x8-unanswered", "NO_ANSWER")).await;
    assert_eq!(s.status, 200, "{}", String::from_utf8_lossy(&s.body));

    let shown: Value =
        reqwest::get(n.admin_url("/calls/8x8-unanswered")).await.unwrap().json().await.unwrap();
    assert_eq!(
        (&shown["outcome"], &shown["unansweredStatus"]),
        (&json!("unanswered"), &json!("NO_ANSWER")),
        "{shown}"
    );
    let listed: Value =
        reqwest::get(n.admin_url("/calls?outcome=unanswered")).await.unwrap().json().await.unwrap();
    assert_eq!(listed["calls"].as_array().map(Vec::len), Some(1), "{listed}");
    assert_eq!(listed["calls"][0]["session"], "8x8-unanswered", "{listed}");
    // Counted as its own ending, not as a caller who hung up.
    let (_, _, text) = metrics::scrape(&n, None).await;
    let samples = metrics::parse(&text);
    assert_eq!(
        metrics::values(
            &samples,
            "phonetree_calls_ended_total",
            &[("machine", "tech_support")],
            &["node", "how"]
        ),
        metrics::expected(&[(&["menu", "unanswered"], 1.0)]),
        "{text}"
    );

    // A placed call answered (a webhook came) and then left is still the caller's leaving.
    let api2 = StandIn::answering(200, created("8x8-answered")).await;
    let t2 = tempfile::tempdir().unwrap();
    let n2 = node_with(&t2, api2.env());
    let r =
        post(&n2.admin_url("/calls"), json!({"machine": "tech_support", "to": "+6512345678"}).to_string())
            .await;
    assert_eq!(r.status, 201);
    let mut v = Vca::abc("8x8-answered", "e1", None, None);
    (v.source, v.destination) = ("6561115777", "+6512345678");
    assert_eq!(post(&n2.url("/webhooks/vca"), v.body()).await.how, "applied");
    post(&n2.url("/webhooks/vss"), vss("8x8-answered", "COMPLETED")).await;
    let shown: Value = reqwest::get(n2.admin_url("/calls/8x8-answered")).await.unwrap().json().await.unwrap();
    assert_eq!(shown["outcome"], "callerLeft", "{shown}");

    // `phonetree calls show` says it too.
    drop(n);
    let (code, stdout, stderr) = phonetree(
        vec![
            "calls".into(),
            "show".into(),
            "8x8-unanswered".into(),
            "--data".into(),
            t.path().join("data").to_str().unwrap().into(),
        ],
        vec![],
    )
    .await;
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("outcome: unanswered (NO_ANSWER)"), "{stdout}");
}

#[test]
fn check_proves_the_reminder_and_refuses_variables_it_could_not_keep() {
    use phonetree::machine::{Source, compile};
    let source = Source::new("reminder.toml", REMINDER);
    let compiled = compile(&source);
    let m = compiled.machine.unwrap_or_else(|| panic!("{:?}", compiled.diagnostics));
    let report = phonetree::proof::explore::explore(&m);
    assert!(report.proven(), "{:?}", report.violations);
    assert_eq!(m.variables().get("amount").map(String::as_str), Some("0"));

    assert!(compiled.diagnostics.is_empty(), "{:?}", compiled.diagnostics);
    // A variable nothing reads is a warning: a call giving it would change nothing.
    let unread = REMINDER.replace(r#"amount = "0" }"#, r#"amount = "0", colour = "red" }"#);
    let compiled = compile(&Source::new("unread.toml", unread));
    assert!(compiled.machine.is_some());
    let text: Vec<String> = compiled.diagnostics.iter().map(ToString::to_string).collect();
    assert_eq!(text.len(), 1, "{text:#?}");
    assert!(
        text[0].contains("warning: field `variables.colour`: no node reads variable `colour`"),
        "{text:#?}"
    );

    // A built-in's name, a default over the per-variable bound, and a variable read that no
    // node and no `variables` entry sets: every one in the same run, with its position.
    let bad = REMINDER.replace(
        r#"variables = { account = "none", amount = "0" }"#,
        &format!(r#"variables = {{ caller = "x", amount = "{}" }}"#, "9".repeat(33)),
    );
    let compiled = compile(&Source::new("bad.toml", bad));
    assert!(compiled.machine.is_none());
    let text: Vec<String> = compiled.diagnostics.iter().map(ToString::to_string).collect();
    let has = |what: &str| text.iter().any(|d| d.contains(what));
    assert!(has("`caller` cannot name a call variable"), "{text:#?}");
    assert!(has("the default of `amount` has 33 characters"), "{text:#?}");
    assert!(has("account"), "{text:#?}");
    assert!(text.iter().all(|d| d.starts_with("bad.toml:")), "{text:#?}");
}
