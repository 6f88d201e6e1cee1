//! Webhook authentication against the real `phonetree serve` on loopback: what a request without
//! valid credentials gets (401, nothing stored), what the header and the JWT forms let through,
//! secret rotation, and that no secret reaches the log.

use crate::common;

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

// ---- Signed clientActionIds (issue 12, item 3) ----

/// abc_restaurant's number, and callback_request's.
const ABC: &str = "+6568888888";
const CALLBACK: &str = "+6568880001";

/// A CALL_ACTION of an inbound call to `to`: the caller pressed `dtmf` at the prompt `id` names.
fn inbound<'a>(session: &'a str, event: &'a str, to: &'a str, dtmf: &'a str, id: Option<&'a str>) -> Vca<'a> {
    Vca {
        session,
        event,
        dtmf: Some(dtmf),
        client_action_id: id,
        status: "DTMF_RECEIVED",
        direction: "INBOUND",
        source: "+6591178965",
        destination: to,
        event_data: false,
    }
}

/// An inbound abc_restaurant call `session`, received and answered `1`: the id it then waits on
/// (at the reservations menu).
async fn at_reservations(vca: &str, session: &str) -> String {
    let mut received = inbound(session, "e0", ABC, "", None);
    (received.status, received.dtmf) = ("CALL_RECEIVED", None);
    let main = post(vca, received.body()).await.client_action_id().unwrap();
    post(vca, inbound(session, "e1", ABC, "1", Some(&main)).body()).await.client_action_id().unwrap()
}

/// Stops `n`, deletes `sessions` from its store (the store lost them), and starts it again.
async fn lose(n: &mut Node, sessions: &[&str]) {
    assert!(n.terminate().success());
    {
        let store = phonetree::store::SledStore::open(&n.data).unwrap();
        for s in sessions {
            phonetree::store::Store::remove_session(&store, s).await.unwrap();
        }
    }
    n.restart();
}

/// The reply's JSON without its id, and the id.
fn split(a: &Answer) -> (serde_json::Value, String) {
    (comparable(a.json()), a.client_action_id().unwrap_or_default())
}

/// Ids nobody signed, or signed for another call, on sessions with no stored state: the call
/// starts at its start node (the webhook answers the start, as a call with no id does), never at
/// the node the id names; every one is counted and logged. A genuine id, after the store lost its
/// session, resumes at its node: the key is the store's, and survives the restart.
#[tokio::test]
async fn forged_tampered_and_foreign_ids_start_the_call_over_and_genuine_ones_resume() {
    let t = tempfile::tempdir().unwrap();
    let mut n = Node::start(&t.path().join("data"), &machines_dir(t.path()));
    let vca = n.url("/webhooks/vca");
    // Genuine ids at the reservations menu, one per session.
    let mut genuine = Vec::new();
    for s in ["s-a", "s-b", "s-c", "s-d", "s-e"] {
        let id = at_reservations(&vca, s).await;
        assert!(id.starts_with("pt.abc_restaurant.reservations."), "{id}");
        genuine.push(id);
    }
    let version = phonetree::callflow::ClientActionId::parse(&genuine[0]).unwrap().version;
    let mac = genuine[0].rsplit('.').next().unwrap().to_string();
    // What an inbound call with no id and no state gets (its start: main_menu).
    let fresh = split(&post(&vca, inbound("s-control", "e1", ABC, "2", None).body()).await);
    // What the reservations menu answers to 2.
    let resumed_want = comparable(golden("seeds/advanced/reschedule_table.json"));
    assert_ne!(fresh.0, resumed_want);
    lose(&mut n, &["s-a", "s-b", "s-c", "s-d", "s-e", "s-control"]).await;
    let vca = n.url("/webhooks/vca");

    let flip = |c: char| if c == 'A' { "B" } else { "A" };
    let forged = [
        // No MAC (what phonetree issued before ids were signed, or a hand-made one).
        ("s-f1", format!("pt.abc_restaurant.reservations.2.{version}")),
        // A MAC made up.
        ("s-f2", format!("pt.abc_restaurant.reservations.2.{version}.{}", "A".repeat(16))),
        // s-a's id with one character of its MAC changed.
        (
            "s-a",
            format!("{}{}", &genuine[0][..genuine[0].len() - 1], flip(genuine[0].chars().last().unwrap())),
        ),
        // s-b's id with its node changed, its MAC kept.
        ("s-b", genuine[1].replace(".reservations.", ".connect_call.")),
        // s-c's id with its seq changed, its MAC kept.
        ("s-c", {
            let id = phonetree::callflow::ClientActionId::parse(&genuine[2]).unwrap();
            format!("pt.abc_restaurant.reservations.{}.{version}.{mac}", id.seq + 1)
        }),
        // s-d's genuine id, on another session.
        ("s-f3", genuine[3].clone()),
    ];
    for (session, id) in &forged {
        let a = post(&vca, inbound(session, "e9", ABC, "2", Some(id)).body()).await;
        assert_eq!(a.how, "applied", "{id}");
        assert_eq!(split(&a).0, fresh.0, "{id}: the call starts at main_menu");
        assert!(!split(&a).1.contains(".reservations."), "{id}");
    }
    assert!(n.log().contains("clientActionId refused"), "{}", n.log());
    assert!(n.log().contains("clientActionId carries no MAC"), "{}", n.log());
    assert!(n.log().contains("clientActionId's MAC does not match"), "{}", n.log());

    // s-e's genuine id resumes at reservations, with the store's key, after the restart.
    let a = post(&vca, inbound("s-e", "e9", ABC, "2", Some(&genuine[4])).body()).await;
    assert_eq!(a.how, "applied");
    assert_eq!(split(&a).0, resumed_want, "the genuine id resumes at reservations");
    assert!(n.log().contains("resuming from the clientActionId"));
}

/// A deep id captured on a call, replayed once the call ended and retention deleted its session:
/// the id has expired with it (ids live no longer than the retention), so the replay starts a
/// call at the start node instead of resuming the deleted call at the node the id names.
#[tokio::test]
async fn a_captured_id_replayed_after_retention_deleted_its_session_resumes_nothing() {
    let t = tempfile::tempdir().unwrap();
    let n = Node::start_with(
        &t.path().join("data"),
        &machines_dir(t.path()),
        &[("PHONETREE_RETENTION_SECS", "1")],
    );
    let vca = n.url("/webhooks/vca");
    let deep = at_reservations(&vca, "s-gone").await;
    assert!(deep.starts_with("pt.abc_restaurant.reservations."), "{deep}");
    let fresh = split(&post(&vca, inbound("s-control", "e1", ABC, "2", None).body()).await);
    // The call ends (8x8's summary); the sweep deletes it once the retention has passed.
    assert_eq!(post(&n.url("/webhooks/vss"), vss("s-gone", "COMPLETED")).await.status, 200);
    let client = reqwest::Client::new();
    let mut status = 0;
    for _ in 0..300 {
        status = client.get(n.admin_url("/calls/s-gone")).send().await.unwrap().status().as_u16();
        if status == 404 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(status, 404, "retention deleted the session\n{}", n.log());

    let a = post(&vca, inbound("s-gone", "e9", ABC, "2", Some(&deep)).body()).await;
    assert_eq!(a.how, "applied");
    assert_eq!(split(&a).0, fresh.0, "the replayed id starts the call at main_menu");
    assert!(!split(&a).1.contains(".reservations."), "{}", split(&a).1);
    assert!(n.log().contains("clientActionId has expired"), "{}", n.log());
}

/// An id issued on a call to callback_request's number, echoed on a webhook to abc_restaurant's
/// number (the session's state lost): abc_restaurant answers, from its start; callback_request
/// does not run there. On its own number, the same kind of id resumes.
#[tokio::test]
async fn an_id_naming_another_machine_does_not_run_it_on_a_number_bound_to_this_one() {
    let t = tempfile::tempdir().unwrap();
    let mut n = Node::start(&t.path().join("data"), &machines_dir(t.path()));
    let vca = n.url("/webhooks/vca");
    let mut ids = Vec::new();
    for s in ["s-moved", "s-stays"] {
        let mut v = inbound(s, "e1", CALLBACK, "", None);
        (v.status, v.dtmf) = ("CALL_RECEIVED", None);
        let a = post(&vca, v.body()).await;
        let id = a.client_action_id().unwrap();
        assert!(id.starts_with("pt.callback_request.ask_number."), "{id}");
        ids.push(id);
    }
    let fresh = split(&post(&vca, inbound("s-control", "e1", ABC, "91234567#", None).body()).await);
    lose(&mut n, &["s-moved", "s-stays", "s-control"]).await;
    let vca = n.url("/webhooks/vca");

    let a = post(&vca, inbound("s-moved", "e2", ABC, "91234567#", Some(&ids[0])).body()).await;
    assert_eq!(a.how, "applied");
    let (json, id) = split(&a);
    assert_eq!(json, fresh.0, "abc_restaurant answers from its start");
    assert!(!id.starts_with("pt.callback_request."), "{id}");
    assert!(n.log().contains("the call's number is bound to `abc_restaurant`"), "{}", n.log());

    let b = post(&vca, inbound("s-stays", "e2", CALLBACK, "91234567#", Some(&ids[1])).body()).await;
    assert_eq!(
        b.json()["callflow"][0]["params"]["promptMessage"],
        "You keyed in 9 1 2 3 4 5 6 7. To confirm, press 1. To key it in again, press 2."
    );
}

/// Ids signed with the operator's key (`--action-key`, as every node of a store gives it) for a
/// version neither loaded nor stored, or for another machine than the number's: not resumable.
/// An id issued on an outbound call (its MAC says so) resumes on its machine whatever the number:
/// the node named that machine when it placed the call.
#[tokio::test]
async fn ids_resume_only_on_the_exact_version_and_outbound_ids_keep_their_machine() {
    use phonetree::callflow::{ClientActionId, Issued};
    let t = tempfile::tempdir().unwrap();
    let n = Node::start_with(
        &t.path().join("data"),
        &machines_dir(t.path()),
        &[("PHONETREE_ACTION_KEY", ACTION_KEY)],
    );
    let vca = n.url("/webhooks/vca");
    let key = action_key();
    let abc = bundled("abc_restaurant");
    let id = |session: &str, version: String, issued| {
        let id =
            ClientActionId { machine: "abc_restaurant".into(), node: "reservations".into(), seq: 2, version };
        id.signed(&key, session, issued, id_expiry())
    };
    let fresh = split(&post(&vca, inbound("s-control", "e1", ABC, "2", None).body()).await);
    let resumed_want = comparable(golden("seeds/advanced/reschedule_table.json"));

    // The current version resumes; a version the node never had does not (no fallback to the
    // current one).
    let a = post(
        &vca,
        inbound("s-now", "e1", ABC, "2", Some(&id("s-now", abc.version().short(), Issued::Answered))).body(),
    )
    .await;
    assert_eq!(split(&a).0, resumed_want);
    let a = post(
        &vca,
        inbound("s-gone", "e1", ABC, "2", Some(&id("s-gone", "0123456789ab".into(), Issued::Answered)))
            .body(),
    )
    .await;
    assert_eq!(split(&a).0, fresh.0);
    assert!(n.log().contains("version 0123456789ab is neither loaded nor stored"), "{}", n.log());

    // On order_status's number: an id of an inbound abc_restaurant call is refused; one issued on
    // an outbound abc_restaurant call resumes it.
    let orders = "+6568880002";
    let v = abc.version().short();
    let a =
        post(&vca, inbound("s-in", "e1", orders, "2", Some(&id("s-in", v.clone(), Issued::Answered))).body())
            .await;
    assert_ne!(split(&a).0, resumed_want);
    assert!(!split(&a).1.starts_with("pt.abc_restaurant."), "{}", String::from_utf8_lossy(&a.body));
    assert!(n.log().contains("the call's number is bound to `order_status`"), "{}", n.log());
    let a =
        post(&vca, inbound("s-out", "e1", orders, "2", Some(&id("s-out", v, Issued::Placed))).body()).await;
    assert_eq!(split(&a).0, resumed_want);
}

/// A call with stored state: a tampered or unsigned id is not honoured either (it neither moves
/// the call to the node it names nor marks the webhook stale); the webhook applies to the call
/// where the store has it, as one without an id does.
#[tokio::test]
async fn with_stored_state_a_tampered_id_is_treated_as_none() {
    let t = tempfile::tempdir().unwrap();
    let n = Node::start(&t.path().join("data"), &machines_dir(t.path()));
    let vca = n.url("/webhooks/vca");
    let resumed_want = comparable(golden("seeds/advanced/reschedule_table.json"));
    let tampers: [fn(&str) -> String; 3] = [
        // Another node, the MAC kept.
        |id| id.replace(".reservations.", ".connect_call."),
        // Unsigned (as phonetree issued ids before they were signed).
        |id| id.rsplit_once('.').unwrap().0.to_string(),
        // One character of the MAC changed.
        |id| {
            let last = if id.ends_with('A') { 'B' } else { 'A' };
            format!("{}{last}", &id[..id.len() - 1])
        },
    ];
    for (i, tamper) in tampers.into_iter().enumerate() {
        let s = format!("s-stored-{i}");
        let id = at_reservations(&vca, &s).await;
        let bad = tamper(&id);
        assert_ne!(bad, id);
        let b = post(&vca, inbound(&s, "e2", ABC, "2", Some(&bad)).body()).await;
        assert_eq!(b.how, "applied", "{bad}");
        assert_eq!(split(&b).0, resumed_want, "{bad}: the call goes on from reservations");
    }
    assert!(n.log().contains("clientActionId refused"));
}

#[test]
fn a_short_action_key_is_refused_and_never_shown() {
    let t = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_phonetree"))
        .args(["serve", "--listen", "127.0.0.1:0", "--machines"])
        .arg(machines_dir(t.path()))
        .arg("--data")
        .arg(t.path().join("data"))
        .env("PHONETREE_ACTION_KEY", "tiny-key")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("the action key is 8 characters; use at least 16"), "{err}");
    assert!(!err.contains("tiny-key"), "{err}");
}

const ADMIN_TOKEN: &str = "admin-token-0123456789abcdef";

/// POSTs `body` to `url` with `headers`; the status and the JSON body (`Null` if not JSON).
async fn send(url: &str, headers: &[(&str, &str)], body: String) -> (u16, serde_json::Value) {
    let mut request = reqwest::Client::new().post(url).body(body);
    if !headers.iter().any(|(name, _)| name.eq_ignore_ascii_case("content-type")) {
        request = request.header("content-type", "application/json");
    }
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

    // `phonetree call --server` sends the token: the node's own answer (its outbound guard allows
    // no destination yet) comes back, not a refusal; without the token, the refusal.
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
    assert!(stderr.contains("no destination is allowed yet"), "the node's own answer: {stderr}");
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
    let (code, err) = serve(&["--admin-listen", "0.0.0.0:0", "--admin-no-token"]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("--admin-no-token, and the admin listener 0.0.0.0:0 is not a loopback address"),
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
        // Only X-Forwarded-For (the default --forwarded-header) is read: a client's Forwarded is not.
        ("an 8x8 address in Forwarded", vec![("forwarded", "for=52.74.232.241;proto=https")], 403),
        ("an unreadable X-Forwarded-For", vec![("x-forwarded-for", "unknown")], 403),
    ] {
        let (status, body) = send(&url, &headers, vca(&format!("s-allow-{}", what.len()))).await;
        assert_eq!(status, want, "{what}: {body}");
        if want == 403 {
            assert_eq!(body["error"]["code"], "forbidden_source", "{what}");
        }
    }
    assert_eq!(reqwest::get(proxied.url("/healthz")).await.unwrap().status(), 200, "health stays open");
    assert_eq!(reqwest::get(proxied.url("/readyz")).await.unwrap().status(), 200, "readiness stays open");
    assert_eq!(sessions(&proxied).await, 1, "refused webhooks store nothing");

    // With --forwarded-header forwarded, Forwarded is read and X-Forwarded-For is not.
    let rfc = Node::start_with(
        &t.path().join("rfc7239"),
        &machines,
        &[
            ("PHONETREE_ALLOW_FROM", "8x8"),
            ("PHONETREE_TRUSTED_PROXY", "127.0.0.1"),
            ("PHONETREE_FORWARDED_HEADER", "forwarded"),
        ],
    );
    let url = rfc.url("/webhooks/vca");
    for (what, headers, want) in [
        ("an 8x8 address in Forwarded", vec![("forwarded", "for=52.74.232.241;proto=https")], 200),
        ("an unreadable Forwarded", vec![("forwarded", "for=unknown")], 403),
        ("an 8x8 address in X-Forwarded-For", vec![("x-forwarded-for", "18.140.80.2")], 403),
    ] {
        let (status, body) = send(&url, &headers, vca(&format!("s-rfc-{}", what.len()))).await;
        assert_eq!(status, want, "{what}: {body}");
    }

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
    // Counted on the admin listener: with --allow-from, the public one (its /readyz too) refuses
    // this test's source at accept.
    let calls: serde_json::Value = reqwest::get(n.admin_url("/calls")).await.unwrap().json().await.unwrap();
    assert_eq!(calls["calls"].as_array().map(Vec::len), Some(0), "{calls}");
}

#[tokio::test]
async fn an_ipv4_mapped_allow_from_entry_matches_its_ipv4_peer() {
    let t = tempfile::tempdir().unwrap();
    let n = Node::start_with(
        &t.path().join("data"),
        &machines_dir(t.path()),
        &[("PHONETREE_ALLOW_FROM", "::ffff:127.0.0.1")],
    );
    let (status, body) =
        send(&n.url("/webhooks/vca"), &[], Vca::abc("s-mapped", "e1", Some("1"), None).body()).await;
    assert_eq!(status, 200, "{body}");
    let other = Node::start_with(
        &t.path().join("other"),
        &machines_dir(&t.path().join("m2")),
        &[("PHONETREE_ALLOW_FROM", "::ffff:127.0.0.2")],
    );
    let (status, _) =
        send(&other.url("/webhooks/vca"), &[], Vca::abc("s-mapped-2", "e1", Some("1"), None).body()).await;
    assert_eq!(status, 403);
}
