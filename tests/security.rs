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

const ADMIN_TOKEN: &str = "admin-token-0123456789abcdef";

/// POSTs `body` to `url` with `headers`; the status and the JSON body (`Null` if not JSON).
async fn send(url: &str, headers: &[(&str, &str)], body: String) -> (u16, serde_json::Value) {
    let mut request = reqwest::Client::new().post(url).body(body);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let r = request.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(serde_json::Value::Null))
}

#[tokio::test]
async fn post_calls_is_served_on_the_admin_listener_only() {
    let t = tempfile::tempdir().unwrap();
    let n = Node::start(&t.path().join("data"), &machines_dir(t.path()));
    let (status, body) = send(&n.url("/calls"), &[], "{\"machine\": 1}".into()).await;
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("not_found")), "{body}");
    let (status, body) = send(&n.admin_url("/calls"), &[], "{\"machine\": 1}".into()).await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("malformed_json")), "{body}");
    // Webhooks are not on the admin listener.
    let vca = Vca::abc("s-admin", "e1", Some("1"), None).body();
    let (status, _) = send(&n.admin_url("/webhooks/vca"), &[], vca).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn with_an_admin_token_every_admin_request_needs_it_even_on_loopback() {
    let t = tempfile::tempdir().unwrap();
    let token_file = t.path().join("admin-token");
    std::fs::write(&token_file, format!("{ADMIN_TOKEN}\n")).unwrap();
    let n = Node::start_with(
        &t.path().join("data"),
        &machines_dir(t.path()),
        &[("PHONETREE_ADMIN_TOKEN_FILE", token_file.to_str().unwrap())],
    );
    let url = n.admin_url("/calls");
    let bearer = format!("Bearer {ADMIN_TOKEN}");
    for (what, headers) in [
        ("no token", vec![]),
        ("a wrong token", vec![("authorization", "Bearer admin-token-0123456789abcdeF")]),
        ("the token without Bearer", vec![("authorization", ADMIN_TOKEN)]),
    ] {
        let (status, body) = send(&url, &headers, "{\"machine\": 1}".into()).await;
        assert_eq!((status, body["error"]["code"].as_str()), (401, Some("unauthorized")), "{what}: {body}");
    }
    let (status, body) = send(&url, &[("authorization", &bearer)], "{\"machine\": 1}".into()).await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("malformed_json")), "{body}");

    // `phonetree call --server` sends the token: the node's own answer (no 8x8 API configured)
    // comes back, not a refusal; without the token, the refusal.
    let call = |token: Option<&std::path::Path>| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_phonetree"));
        cmd.args(["call", "--machine", "tech_support", "--to", "+6591178965", "--server", &n.admin_url("")])
            .env_remove("PHONETREE_ADMIN_TOKEN")
            .env_remove("PHONETREE_ADMIN_TOKEN_FILE");
        if let Some(file) = token {
            cmd.arg("--admin-token-file").arg(file);
        }
        let out = cmd.output().unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (code, stderr) = call(Some(&token_file));
    assert_eq!(code, Some(1));
    assert!(stderr.contains("PHONETREE_8X8_SUBACCOUNT"), "the node's own answer: {stderr}");
    let (code, stderr) = call(None);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("no admin token"), "{stderr}");
    assert!(!n.log().contains(ADMIN_TOKEN), "no token in the log");
}

#[test]
fn serve_refuses_a_public_admin_listener_without_a_token_and_a_bad_network() {
    let t = tempfile::tempdir().unwrap();
    let machines = machines_dir(t.path());
    let serve = |extra: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_phonetree"))
            .args(["serve", "--listen", "127.0.0.1:0", "--machines"])
            .arg(&machines)
            .arg("--data")
            .arg(t.path().join("data"))
            .args(extra)
            .env_remove("PHONETREE_ADMIN_TOKEN")
            .env_remove("PHONETREE_ADMIN_TOKEN_FILE")
            .output()
            .unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (code, err) = serve(&["--admin-listen", "0.0.0.0:0"]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("no admin token, and the admin listener 0.0.0.0:0 is not a loopback address"),
        "{err}"
    );
    let (code, err) = serve(&["--admin-listen", "127.0.0.1:0", "--allow-from", "10.0.0.0/33"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("--allow-from `10.0.0.0/33` is not a network"), "{err}");
    let (code, err) = serve(&["--admin-listen", "127.0.0.1:0", "--trusted-proxy", "proxy.local"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("--trusted-proxy `proxy.local` is not a network"), "{err}");
}

#[tokio::test]
async fn the_allow_list_refuses_other_sources_and_forwarding_is_believed_only_from_a_trusted_proxy() {
    let t = tempfile::tempdir().unwrap();
    let machines = machines_dir(t.path());
    // Behind a proxy on loopback: the client is the address it forwards.
    let proxied = Node::start_with(
        &t.path().join("proxied"),
        &machines,
        &[("PHONETREE_ALLOW_FROM", "8x8"), ("PHONETREE_TRUSTED_PROXY", "127.0.0.1")],
    );
    let vca = |session: &str| Vca::abc(session, "e1", Some("1"), None).body();
    let url = proxied.url("/webhooks/vca");
    for (what, headers, want) in [
        ("no forwarding: the proxy itself", vec![], 403),
        ("an 8x8 address", vec![("x-forwarded-for", "18.140.80.2")], 200),
        ("8x8 spoofed left of the real client", vec![("x-forwarded-for", "18.140.80.2, 203.0.113.9")], 403),
        ("an 8x8 address in Forwarded", vec![("forwarded", "for=52.74.232.241;proto=https")], 200),
        ("an unreadable Forwarded", vec![("forwarded", "for=unknown")], 403),
    ] {
        let (status, body) = send(&url, &headers, vca(&format!("s-allow-{}", what.len()))).await;
        assert_eq!(status, want, "{what}: {body}");
        if want == 403 {
            assert_eq!(body["error"]["code"], "forbidden_source", "{what}");
        }
    }
    assert_eq!(reqwest::get(proxied.url("/healthz")).await.unwrap().status(), 200, "health stays open");
    assert_eq!(reqwest::get(proxied.url("/readyz")).await.unwrap().status(), 200, "readiness stays open");
    assert_eq!(sessions(&proxied).await, 2, "refused webhooks store nothing");

    // Without --trusted-proxy the same header from the same peer is not believed.
    let direct = Node::start_with(&t.path().join("direct"), &machines, &[("PHONETREE_ALLOW_FROM", "8x8")]);
    let (status, body) =
        send(&direct.url("/webhooks/vca"), &[("x-forwarded-for", "18.140.80.2")], vca("s-direct")).await;
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("forbidden_source")), "{body}");
    assert!(direct.log().contains("source not in --allow-from"), "refusals are logged at debug");
}

#[tokio::test]
async fn no_spelling_of_a_webhook_path_slips_past_the_allow_list() {
    let t = tempfile::tempdir().unwrap();
    let n =
        Node::start_with(&t.path().join("data"), &machines_dir(t.path()), &[("PHONETREE_ALLOW_FROM", "8x8")]);
    for path in
        ["/webhooks/vca", "//webhooks/vca", "/webhooks//vca", "/webhooks/vca/", "/WEBHOOKS/vca", "/nowhere"]
    {
        let (status, body) =
            send(&n.url(path), &[], Vca::abc("s-spelling", "e1", Some("1"), None).body()).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (403, Some("forbidden_source")),
            "{path}: {body}"
        );
    }
    assert_eq!(sessions(&n).await, 0);
}
