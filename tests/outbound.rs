//! Outbound calls for real: `phonetree call` (direct and through a server) and `POST /calls` against
//! a stand-in for 8x8's Send Callflow API on loopback that records every request it receives.

mod common;

use std::sync::{Arc, Mutex};

use common::*;
use serde_json::{Value, json};
use warp::Filter;

/// One request the stand-in received.
#[derive(Debug, Clone)]
struct Received {
    method: String,
    path: String,
    authorization: String,
    content_type: String,
    body: Value,
}

/// A stand-in for `POST {base}/api/v1/subaccounts/{sub}/callflows`: answers every request with
/// `status` and `answer`, and keeps what it was sent.
struct StandIn {
    base: String,
    received: Arc<Mutex<Vec<Received>>>,
}

impl StandIn {
    async fn start(status: u16, answer: Value) -> StandIn {
        let received = Arc::new(Mutex::new(Vec::new()));
        let log = received.clone();
        let route = warp::any()
            .and(warp::method())
            .and(warp::path::full())
            .and(warp::header::optional::<String>("authorization"))
            .and(warp::header::optional::<String>("content-type"))
            .and(warp::body::bytes())
            .map(
                move |method: warp::http::Method,
                      path: warp::path::FullPath,
                      auth: Option<String>,
                      ctype: Option<String>,
                      body: warp::hyper::body::Bytes| {
                    log.lock().unwrap().push(Received {
                        method: method.to_string(),
                        path: path.as_str().to_string(),
                        authorization: auth.unwrap_or_default(),
                        content_type: ctype.unwrap_or_default(),
                        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
                    });
                    warp::reply::with_status(
                        warp::reply::json(&answer),
                        warp::http::StatusCode::from_u16(status).unwrap(),
                    )
                },
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(warp::serve(route).incoming(listener).run());
        StandIn { base, received }
    }

    fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("PHONETREE_8X8_BASE_URL", self.base.clone()),
            ("PHONETREE_8X8_SUBACCOUNT", "acct_x".into()),
            ("PHONETREE_8X8_API_KEY", "key-123".into()),
        ]
    }
}

fn created(session: &str) -> Value {
    json!({"sessionId": session, "sessionStatus": "CREATED",
           "callFlowRequestId": "89b545a5-0676-11ee-8100-d500c0d203fc", "statusCode": 1, "statusMessage": "Created"})
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
    let api = StandIn::start(200, created("8x8-session-1")).await;
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
    let api = StandIn::start(400, not_created()).await;
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
    let (code, _, stderr) = phonetree(call_args(&t, "tech_support", "+6591178965"), vec![]).await;
    assert_eq!(code, 1);
    assert!(stderr.contains("PHONETREE_8X8_SUBACCOUNT"), "stderr: {stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn post_calls_places_the_call_through_the_server() {
    let api = StandIn::start(200, created("8x8-session-2")).await;
    let t = tempfile::tempdir().unwrap();
    let env: Vec<(&str, String)> = api.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let n = Node::start_with(&t.path().join("data"), &machines_dir(t.path()), &env);

    let r = post(&n.admin_url("/calls"), json!({"machine": "tech_support", "to": "6512345678"}).to_string())
        .await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json(), json!({"sessionId": "8x8-session-2", "machine": "tech_support"}));
    let sent = &api.received()[0];
    assert_eq!(comparable(sent.body.clone()), comparable(golden("seeds/simple/initial.json")));

    // The callee presses 2 at the start prompt: the call continues on tech_support.
    let mut v = Vca::abc("8x8-session-2", "e1", Some("2"), None);
    (v.source, v.destination) = ("6561115777", "6512345678");
    let a = post(&n.url("/webhooks/vca"), v.body()).await;
    assert_eq!(a.how, "applied");
    assert_eq!(comparable(a.json()), comparable(golden("seeds/simple/connect.json")));

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
    let api = StandIn::start(400, not_created()).await;
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
