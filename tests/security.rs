//! Webhook authentication against the real `phonetree serve` on loopback: what a request without
//! valid credentials gets (401, nothing stored), what the header and the JWT forms let through,
//! secret rotation, and that no secret reaches the log.

mod common;

use common::*;
use phonetree::http::auth::sign_jwt;

const SECRET: &str = "s3cret-webhook-key-0123456789";
const NEXT: &str = "the-next-webhook-key-9876543210";

fn secured(t: &tempfile::TempDir) -> Node {
    let secrets = t.path().join("secrets");
    std::fs::write(&secrets, format!("{NEXT}\n")).unwrap();
    let machines = machines_dir(t.path());
    Node::start_with(
        &t.path().join("data"),
        &machines,
        &[
            ("PHONETREE_WEBHOOK_SECRET", SECRET),
            ("PHONETREE_WEBHOOK_SECRET_FILES", secrets.to_str().unwrap()),
        ],
    )
}

/// POSTs the first webhook of an abc_restaurant call (the callee pressed 1), with `header`
/// (name, value) if any, to `path`.
async fn call(
    n: &Node,
    path: &str,
    session: &str,
    header: Option<(&str, &str)>,
) -> (u16, String, serde_json::Value) {
    let v = Vca::abc(session, "e1", Some("1"), None);
    let mut request = reqwest::Client::new().post(n.url(path)).body(v.body());
    if let Some((name, value)) = header {
        request = request.header(name, value);
    }
    let r = request.send().await.unwrap();
    let status = r.status().as_u16();
    let how = r.headers().get("x-phonetree-answer").map_or("", |h| h.to_str().unwrap()).to_string();
    let body = r.json().await.unwrap_or(serde_json::Value::Null);
    (status, how, body)
}

/// The sessions stored, as of a store probe after this call.
async fn sessions(n: &Node) -> u64 {
    n.ready_now().await["sessions"].as_u64().unwrap()
}

#[tokio::test]
async fn webhooks_without_valid_credentials_get_401_and_store_nothing() {
    let t = tempfile::tempdir().unwrap();
    let n = secured(&t);
    let now = phonetree::node::now_ms() / 1000;
    let expired = sign_jwt(SECRET, &serde_json::json!({"exp": now - 3600}));
    let foreign = sign_jwt("somebody-elses-secret-0123456", &serde_json::json!({"exp": now + 600}));
    for (what, path, header) in [
        ("no credentials", "/webhooks/vca".to_string(), None),
        (
            "a wrong secret",
            "/webhooks/vca".to_string(),
            Some(("authorization", "not-the-secret-at-all-0000")),
        ),
        ("an expired JWT", format!("/webhooks/vca?token={expired}"), None),
        ("a JWT signed with another key", format!("/webhooks/vca?token={foreign}"), None),
        ("a summary without credentials", "/webhooks/vss".to_string(), None),
    ] {
        let (status, _, body) = call(&n, &path, &format!("s-denied-{}", what.len()), header).await;
        assert_eq!(status, 401, "{what}");
        assert_eq!(body["error"]["code"], "unauthorized", "{what}: {body}");
    }
    assert_eq!(sessions(&n).await, 0, "nothing was stored");
    let log = n.log();
    assert!(log.contains("webhook refused"), "refusals are logged");
    assert!(!log.contains(SECRET) && !log.contains(NEXT), "no secret in the log");
}

#[tokio::test]
async fn the_secret_header_a_bearer_header_a_rotated_secret_and_a_jwt_are_applied() {
    let t = tempfile::tempdir().unwrap();
    let n = secured(&t);
    let now = phonetree::node::now_ms() / 1000;
    let jwt = sign_jwt(SECRET, &serde_json::json!({"exp": now + 600}));
    let bearer = format!("Bearer {SECRET}");
    for (i, (path, header)) in [
        ("/webhooks/vca".to_string(), Some(("authorization", SECRET))),
        ("/webhooks/vca".to_string(), Some(("authorization", bearer.as_str()))),
        ("/webhooks/vca".to_string(), Some(("authorization", NEXT))),
        (format!("/webhooks/vca?token={jwt}"), None),
    ]
    .into_iter()
    .enumerate()
    {
        let (status, how, body) = call(&n, &path, &format!("s-ok-{i}"), header).await;
        assert_eq!((status, how.as_str()), (200, "applied"), "{path} {header:?}: {body}");
        assert!(body["clientActionId"].as_str().unwrap().starts_with("pt.abc_restaurant.reservations."));
    }
    assert_eq!(sessions(&n).await, 4);
    assert!(!n.log().contains(SECRET) && !n.log().contains(NEXT), "no secret in the log");
}

#[test]
fn without_a_secret_serve_refuses_a_public_address_and_warns_on_loopback() {
    let t = tempfile::tempdir().unwrap();
    let machines = machines_dir(t.path());
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_phonetree"))
        .args(["serve", "--listen", "0.0.0.0:0", "--machines"])
        .arg(&machines)
        .arg("--data")
        .arg(t.path().join("data"))
        .env_remove("PHONETREE_WEBHOOK_SECRET")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no webhook secret, and 0.0.0.0:0 is not a loopback address"), "{err}");

    let n = Node::start(&t.path().join("open"), &machines);
    assert!(n.log().contains("NO WEBHOOK SECRET"), "{}", n.log());
}
