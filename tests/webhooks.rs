//! `phonetree webhooks register | list | delete` for real: the binary against a stand-in for 8x8's
//! Webhooks API on loopback that keeps the sub-account's webhooks and records every request.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use warp::Filter;
use warp::http::StatusCode;

const SECRET: &str = "0123456789abcdef-webhook-secret";

/// One request the stand-in received.
#[derive(Debug, Clone, PartialEq)]
struct Received {
    method: String,
    path: String,
    authorization: String,
    body: Value,
}

#[derive(Default)]
struct State {
    received: Vec<Received>,
    /// type → (url, httpAuthHeader)
    webhooks: BTreeMap<String, (String, Option<String>)>,
}

/// The Webhooks API of sub-account `acct_x`, as `voice_v1_api.json` documents it. A second
/// webhook of a type already there is refused (the API documents no update), and every request
/// of `failing`'s method (`*`: any) is refused with its status and answer when it is set.
struct StandIn {
    base: String,
    state: Arc<Mutex<State>>,
}

impl StandIn {
    async fn start(failing: Option<(&'static str, u16, Value)>) -> StandIn {
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        let route = warp::any()
            .and(warp::method())
            .and(warp::path::full())
            .and(warp::header::optional::<String>("authorization"))
            .and(warp::body::bytes())
            .map(
                move |method: warp::http::Method,
                      path: warp::path::FullPath,
                      auth: Option<String>,
                      body: warp::hyper::body::Bytes| {
                    let mut st = shared.lock().unwrap();
                    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    st.received.push(Received {
                        method: method.to_string(),
                        path: path.as_str().to_string(),
                        authorization: auth.clone().unwrap_or_default(),
                        body: body.clone(),
                    });
                    let (status, answer) = match &failing {
                        Some((m, status, answer)) if *m == "*" || *m == method.as_str() => {
                            (*status, answer.clone())
                        }
                        _ => answer(&mut st, method.as_str(), path.as_str(), auth.as_deref(), &body),
                    };
                    warp::reply::with_status(
                        warp::reply::json(&answer),
                        StatusCode::from_u16(status).unwrap(),
                    )
                },
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(warp::serve(route).incoming(listener).run());
        StandIn { base, state }
    }

    fn received(&self) -> Vec<Received> {
        std::mem::take(&mut self.state.lock().unwrap().received)
    }

    fn webhooks(&self) -> BTreeMap<String, (String, Option<String>)> {
        self.state.lock().unwrap().webhooks.clone()
    }

    fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("PHONETREE_8X8_BASE_URL", self.base.clone()),
            ("PHONETREE_8X8_SUBACCOUNT", "acct_x".into()),
            ("PHONETREE_8X8_API_KEY", "key-123".into()),
        ]
    }
}

fn listed(st: &State) -> Value {
    let webhooks: Vec<Value> = st
        .webhooks
        .iter()
        .map(|(kind, (url, auth))| {
            json!({"type": kind, "url": url, "enabled": true, "httpAuthHeaderAvailable": auth.is_some()})
        })
        .collect();
    json!({"subAccountId": "acct_x", "count": webhooks.len(), "webhooks": webhooks, "statusCode": 0, "statusMessage": "ok"})
}

fn answer(st: &mut State, method: &str, path: &str, auth: Option<&str>, body: &Value) -> (u16, Value) {
    if auth != Some("Bearer key-123") {
        return (401, json!({"statusCode": 1100, "statusMessage": "API key not found or invalid"}));
    }
    let invalid = |m: &str| (422, json!({"statusCode": "1001", "statusMessage": m}));
    match (method, path.strip_prefix("/api/v1/subaccounts/acct_x/webhooks")) {
        ("GET", Some("")) => (200, listed(st)),
        ("POST", Some("")) => {
            let (Some(kind), Some(url)) = (body["type"].as_str(), body["url"].as_str()) else {
                return invalid("Invalid JSON request body");
            };
            if st.webhooks.contains_key(kind) {
                return invalid("webhook already exists");
            }
            let header = body["httpAuthHeader"].as_str().map(String::from);
            st.webhooks.insert(kind.to_string(), (url.to_string(), header));
            (200, listed(st))
        }
        ("DELETE", Some(kind)) => match st.webhooks.remove(kind.trim_start_matches('/')) {
            Some((url, auth)) => (
                200,
                json!({"subAccountId": "acct_x", "type": kind.trim_start_matches('/'), "url": url, "enabled": false,
                       "httpAuthHeaderAvailable": auth.is_some(), "statusCode": 0, "statusMessage": "deleted"}),
            ),
            None => (404, json!({"statusCode": 1004, "statusMessage": "Resource not found"})),
        },
        _ => (404, json!({"statusCode": 1004, "statusMessage": "Resource not found"})),
    }
}

/// Runs `phonetree ARGS` to completion with `env`; (exit code, stdout, stderr).
async fn phonetree(args: &[&str], env: Vec<(&'static str, String)>) -> (i32, String, String) {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_phonetree"))
            .args(&args)
            .envs(env)
            .output()
            .unwrap();
        let text = |b: Vec<u8>| String::from_utf8(b).unwrap();
        (out.status.code().unwrap_or(-1), text(out.stdout), text(out.stderr))
    })
    .await
    .unwrap()
}

fn secret_file(t: &tempfile::TempDir) -> String {
    let file = t.path().join("webhook.secret");
    std::fs::write(&file, format!("{SECRET}\n")).unwrap();
    file.to_str().unwrap().to_string()
}

fn summary(r: &[Received]) -> Vec<(String, String)> {
    r.iter().map(|r| (r.method.clone(), r.path.clone())).collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter().map(|(m, p)| (m.to_string(), p.to_string())).collect()
}

const HOOKS: &str = "/api/v1/subaccounts/acct_x/webhooks";

#[tokio::test(flavor = "multi_thread")]
async fn register_list_reregister_and_delete() {
    let api = StandIn::start(None).await;
    let t = tempfile::tempdir().unwrap();
    let file = secret_file(&t);
    let register = ["webhooks", "register", "--url", "https://node.example/", "--secret-file", &file];

    let (code, stdout, stderr) = phonetree(&register, api.env()).await;
    assert_eq!(code, 0, "{stderr}");
    assert!(!stdout.contains(SECRET) && !stderr.contains(SECRET));
    let got = api.received();
    assert_eq!(summary(&got), pairs(&[("GET", HOOKS), ("POST", HOOKS), ("POST", HOOKS)]));
    assert!(got.iter().all(|r| r.authorization == "Bearer key-123"), "{got:?}");
    assert_eq!(
        got[1].body,
        json!({"type": "VCA", "url": "https://node.example/webhooks/vca", "httpAuthHeader": SECRET, "enabled": true})
    );
    assert_eq!(
        got[2].body,
        json!({"type": "VSS", "url": "https://node.example/webhooks/vss", "httpAuthHeader": SECRET, "enabled": true})
    );

    // list: type, URL, whether a header is set; never the secret.
    let (code, stdout, stderr) = phonetree(&["webhooks", "list"], api.env()).await;
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        stdout,
        "VCA\thttps://node.example/webhooks/vca\tenabled=true\thttpAuthHeaderAvailable=true\n\
         VSS\thttps://node.example/webhooks/vss\tenabled=true\thttpAuthHeaderAvailable=true\n"
    );
    assert_eq!(summary(&api.received()), pairs(&[("GET", HOOKS)]));

    // Register again, at another URL: each webhook is deleted, then created (the API has no update).
    let moved = ["webhooks", "register", "--url", "https://other.example", "--secret-file", &file];
    let (code, _, stderr) = phonetree(&moved, api.env()).await;
    assert_eq!(code, 0, "{stderr}");
    let vca = format!("{HOOKS}/VCA");
    let vss = format!("{HOOKS}/VSS");
    assert_eq!(
        summary(&api.received()),
        pairs(&[("GET", HOOKS), ("DELETE", &vca), ("POST", HOOKS), ("DELETE", &vss), ("POST", HOOKS)])
    );
    let hooks = api.webhooks();
    assert_eq!(hooks["VCA"], ("https://other.example/webhooks/vca".to_string(), Some(SECRET.to_string())));
    assert_eq!(hooks["VSS"], ("https://other.example/webhooks/vss".to_string(), Some(SECRET.to_string())));

    // delete removes both; a second delete finds none.
    let (code, stdout, stderr) = phonetree(&["webhooks", "delete"], api.env()).await;
    assert_eq!((code, stdout.as_str()), (0, "VCA\tdeleted\nVSS\tdeleted\n"), "{stderr}");
    assert_eq!(summary(&api.received()), pairs(&[("GET", HOOKS), ("DELETE", &vca), ("DELETE", &vss)]));
    assert!(api.webhooks().is_empty());
    let (code, stdout, _) = phonetree(&["webhooks", "delete"], api.env()).await;
    assert_eq!((code, stdout.as_str()), (0, "VCA\tnot registered\nVSS\tnot registered\n"));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_api_error_is_a_clear_message_and_a_failure() {
    let refusal = json!({"statusCode": 1100, "statusMessage": "API key not found or invalid"});
    let api = StandIn::start(Some(("*", 401, refusal))).await;
    let t = tempfile::tempdir().unwrap();
    let file = secret_file(&t);
    for args in [
        vec!["webhooks", "register", "--url", "https://node.example/", "--secret-file", &file],
        vec!["webhooks", "list"],
        vec!["webhooks", "delete"],
    ] {
        let (code, stdout, stderr) = phonetree(&args, api.env()).await;
        assert_eq!((code, stdout.as_str()), (1, ""), "{args:?}");
        assert!(stderr.starts_with("phonetree: 8x8's Webhooks API refused"), "{stderr}");
        assert!(stderr.contains("HTTP 401") && stderr.contains("API key not found or invalid"), "{stderr}");
        assert!(!stderr.contains(SECRET) && !stderr.contains("key-123"), "{stderr}");
    }

    // 8x8 refusing a create (even one that echoes the request) never shows the secret.
    let echo = format!("bad httpAuthHeader {SECRET}");
    let api = StandIn::start(Some(("POST", 422, json!({"statusCode": "1001", "statusMessage": echo})))).await;
    let register = ["webhooks", "register", "--url", "https://node.example/", "--secret-file", &file];
    let (code, _, stderr) = phonetree(&register, api.env()).await;
    assert_eq!(code, 1);
    assert!(stderr.contains("refused the VCA webhook: HTTP 422"), "{stderr}");
    assert!(stderr.contains("bad httpAuthHeader ***") && !stderr.contains(SECRET), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn register_refuses_plain_http_short_secrets_and_missing_settings_before_asking_8x8() {
    let api = StandIn::start(None).await;
    let t = tempfile::tempdir().unwrap();
    let file = secret_file(&t);
    let (code, _, stderr) = phonetree(
        &["webhooks", "register", "--url", "http://node.example", "--secret-file", &file],
        api.env(),
    )
    .await;
    assert_eq!(code, 1);
    assert!(stderr.contains("must be https"), "{stderr}");

    let short = t.path().join("short");
    std::fs::write(&short, "tiny\n").unwrap();
    let short = short.to_str().unwrap();
    let (code, _, stderr) = phonetree(
        &["webhooks", "register", "--url", "https://node.example", "--secret-file", short],
        api.env(),
    )
    .await;
    assert_eq!(code, 1);
    assert!(stderr.contains("shorter than 16 bytes") && !stderr.contains("tiny"), "{stderr}");
    assert!(api.received().is_empty());

    let (code, _, stderr) = phonetree(&["webhooks", "list"], vec![]).await;
    assert_eq!(code, 1);
    assert!(stderr.contains("PHONETREE_8X8_SUBACCOUNT"), "{stderr}");
}
