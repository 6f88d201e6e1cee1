//! `phonetree doctor` for real: the binary against stand-ins on loopback — an audio server that
//! answers each case (a file, a 404, an oversized file behind a server refusing HEAD, a login page,
//! an unversioned URL) and records every request, a script host that listens and one that does
//! not, and 8x8's Webhooks and speech-profiles APIs — each problem flagged with its node; a machine
//! in order passes; `--offline` asks nothing and passes the bundled machines.

use crate::common;

use std::path::Path;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use warp::Filter;
use warp::http::Response;

const KEY: &str = "key-doctor-123";

/// One request the audio stand-in received: method, path, `Range` header.
type Seen = Arc<Mutex<Vec<(String, String, Option<String>)>>>;

/// The audio server: `jingle.mp3` and `closing.mp3` (2048 bytes of mp3), `gone.mp3` (404),
/// `notice.wav` (6 MB of wav; HEAD refused with 405, a ranged GET answered 206 with one byte, a
/// GET of the whole file answered 500 so the test sees it), `hold.mp3` (an HTML page),
/// `relocated.mp3` (a redirect to `jingle.mp3`), `loop.mp3` (a redirect to itself),
/// `metadata.mp3` (a redirect to the cloud metadata address).
async fn audio_server() -> (String, Seen) {
    let seen: Seen = Arc::default();
    let shared = seen.clone();
    let route = warp::any()
        .and(warp::method())
        .and(warp::path::full())
        .and(warp::header::optional::<String>("range"))
        .map(move |method: warp::http::Method, path: warp::path::FullPath, range: Option<String>| {
            shared.lock().unwrap().push((method.to_string(), path.as_str().to_string(), range.clone()));
            let reply = |status: u16, content_type: &str, length: usize, body: Vec<u8>| {
                Response::builder()
                    .status(status)
                    .header("content-type", content_type)
                    .header("content-length", length.to_string())
                    .body(body)
                    .unwrap()
            };
            let head = method == warp::http::Method::HEAD;
            let file = |bytes: usize| if head { Vec::new() } else { vec![0xFF; bytes] };
            match path.as_str() {
                "/jingle.mp3" | "/closing.mp3" => reply(200, "audio/mpeg", 2048, file(2048)),
                "/notice.wav" if head => reply(405, "text/plain", 0, Vec::new()),
                "/notice.wav" if range.as_deref() == Some("bytes=0-0") => {
                    let mut r = reply(206, "audio/wav", 1, vec![0x52]);
                    r.headers_mut().insert("content-range", "bytes 0-0/6000000".parse().unwrap());
                    r
                }
                "/notice.wav" => reply(500, "text/plain", 0, Vec::new()),
                "/hold.mp3" => {
                    let page = b"<html>please log in</html>".to_vec();
                    reply(200, "text/html; charset=utf-8", page.len(), if head { Vec::new() } else { page })
                }
                "/metadata.mp3" => {
                    let mut r = reply(302, "text/plain", 0, Vec::new());
                    r.headers_mut().insert(
                        "location",
                        "http://169.254.169.254/latest/meta-data/iam.mp3?v=1".parse().unwrap(),
                    );
                    r
                }
                "/relocated.mp3" | "/loop.mp3" => {
                    let to = if path.as_str() == "/loop.mp3" { "/loop.mp3?v=3" } else { "/jingle.mp3?v=3" };
                    let mut r = reply(if head { 301 } else { 302 }, "text/plain", 0, Vec::new());
                    r.headers_mut().insert("location", to.parse().unwrap());
                    r
                }
                _ => reply(404, "text/plain", 0, Vec::new()),
            }
        });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("127.0.0.1:{}", listener.local_addr().unwrap().port());
    tokio::spawn(warp::serve(route).incoming(listener).run());
    (base, seen)
}

/// 8x8's Webhooks and speech-profiles APIs for sub-account `acct_d`: the VCA webhook points at
/// `https://node.example/webhooks/vca`, the VSS one at an old node; the speech profiles lack
/// `en-GB-Emma`. Another key gets 401.
async fn api_stand_in() -> String {
    let route = warp::any().and(warp::path::full()).and(warp::header::optional::<String>("authorization")).map(
        |path: warp::path::FullPath, auth: Option<String>| {
            let (status, body) = match (auth == Some(format!("Bearer {KEY}")), path.as_str()) {
                (false, _) => (401, json!({"statusCode": 1100, "statusMessage": "API key not found or invalid"})),
                (true, "/api/v1/subaccounts/acct_d/webhooks") => (
                    200,
                    json!({"subAccountId": "acct_d", "count": 2, "webhooks": [
                        {"type": "VCA", "url": "https://node.example/webhooks/vca", "enabled": true, "httpAuthHeaderAvailable": true},
                        {"type": "VSS", "url": "https://old-node.example/webhooks/vss", "enabled": true, "httpAuthHeaderAvailable": true}
                    ], "statusCode": 0, "statusMessage": "ok"}),
                ),
                (true, "/api/v1/subaccounts/acct_d/speech-profiles") => (
                    200,
                    json!({"speechProfiles": [
                        {"speechProfileCode": "en-US-BenjaminRUS", "localeCode": "en-US", "gender": "M"},
                        {"speechProfileCode": "en-US-ZiraRUS", "localeCode": "en-US", "gender": "F"}
                    ], "statusCode": 0, "statusMessage": "Success"}),
                ),
                (true, _) => (404, json!({"statusCode": 1404, "statusMessage": "Resource not found"})),
            };
            warp::reply::with_status(warp::reply::json(&body), warp::http::StatusCode::from_u16(status).unwrap())
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(warp::serve(route).incoming(listener).run());
    base
}

/// A port nothing listens on: bound, then closed.
fn dead_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// `file` of tests/data/doctor in `dir/machines/`, its `.invalid` hosts pointed at `hosts`.
fn machine(dir: &Path, file: &str, hosts: &[(&str, &str)]) {
    let mut text = std::fs::read_to_string(common::repo().join("tests/data/doctor").join(file)).unwrap();
    for (from, to) in hosts {
        text = text.replace(from, to);
    }
    std::fs::create_dir_all(dir.join("machines")).unwrap();
    std::fs::write(dir.join("machines").join(file), text).unwrap();
}

/// Runs `phonetree doctor --format json ARGS` in `dir` (off the runtime the stand-ins run on):
/// its exit code and report.
async fn doctor(dir: &Path, args: &[&str]) -> (Option<i32>, Value) {
    let dir = dir.to_path_buf();
    let args: Vec<String> =
        ["doctor", "--format", "json"].iter().chain(args).map(|a| a.to_string()).collect();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_phonetree"))
            .current_dir(&dir)
            .args(&args)
            .env_remove("PHONETREE_MACHINES")
            .env_remove("PHONETREE_VOICES")
            .env_remove("PHONETREE_8X8_API_KEY")
            .env_remove("PHONETREE_8X8_API_KEY_FILE")
            .env_remove("PHONETREE_8X8_SUBACCOUNT")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let report = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("{e}: {}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
    });
    (out.status.code(), report)
}

/// The findings of `check` on `subject`: (level, nodes, message).
fn found(report: &Value, check: &str, subject: &str) -> Vec<(String, Vec<String>, String)> {
    let findings = report["findings"].as_array().unwrap();
    findings
        .iter()
        .filter(|f| f["check"] == check && f["subject"] == subject)
        .map(|f| {
            let nodes =
                f["nodes"].as_array().unwrap().iter().map(|n| n.as_str().unwrap().to_string()).collect();
            (f["level"].as_str().unwrap().to_string(), nodes, f["message"].as_str().unwrap().to_string())
        })
        .collect()
}

/// The one finding of `check` on `subject`, which must be at `level` for `nodes`: its message.
fn one(report: &Value, check: &str, subject: &str, level: &str, nodes: &[&str]) -> String {
    let found = found(report, check, subject);
    assert_eq!(found.len(), 1, "{check} {subject}: {found:?}\n{report:#}");
    let (l, n, message) = &found[0];
    assert_eq!(
        (l.as_str(), n.iter().map(String::as_str).collect::<Vec<_>>()),
        (level, nodes.to_vec()),
        "{message}"
    );
    message.clone()
}

#[tokio::test]
async fn doctor_flags_each_broken_dependency_with_its_node() {
    let (audio, seen) = audio_server().await;
    let api = api_stand_in().await;
    let listening = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let live = listening.local_addr().unwrap().to_string();
    let dead = format!("127.0.0.1:{}", dead_port());
    let dir = tempfile::tempdir().unwrap();
    machine(
        dir.path(),
        "clinic.toml",
        &[("audio.invalid", &audio), ("api.invalid:80", &live), ("dead.invalid:80", &dead)],
    );
    std::fs::write(dir.path().join("key"), format!("{KEY}\n")).unwrap();
    let api_flags = [
        "--api-base-url",
        &api,
        "--api-subaccount",
        "acct_d",
        "--api-key-file",
        "key",
        "--url",
        "https://node.example/",
    ];
    let (code, report) = doctor(dir.path(), &api_flags).await;
    assert_eq!(code, Some(1), "{report:#}");

    let url = |file: &str| format!("http://{audio}/{file}");
    let ok = one(&report, "audio", &url("jingle.mp3?v=3"), "ok", &["jingle"]);
    assert_eq!(ok, "HTTP 200, mp3, 2048 bytes");
    let gone = one(&report, "audio", &url("gone.mp3?v=3"), "fail", &["moved"]);
    assert!(gone.starts_with("HTTP 404"), "{gone}");
    let big = one(&report, "audio", &url("notice.wav?v=3"), "fail", &["notice"]);
    assert!(big.starts_with("6000000 bytes: 8x8 plays files smaller than 5 MB"), "{big}");
    let page = one(&report, "audio", &url("hold.mp3?v=3"), "fail", &["hold"]);
    assert!(page.starts_with("served as `text/html; charset=utf-8`, not mp3 or wav"), "{page}");
    one(&report, "audio", &url("closing.mp3"), "ok", &["closing"]);
    one(&report, "audio", &url("relocated.mp3?v=3"), "ok", &["relocated"]);
    let looping = one(&report, "audio", &url("loop.mp3?v=3"), "fail", &["looping"]);
    assert!(looping.starts_with("no answer: more than 5 redirects"), "{looping}");
    // Its URL carries no version; the versioned ones are only warned of their loopback host.
    let unversioned = found(&report, "audio_url", &url("closing.mp3"));
    assert!(
        unversioned
            .iter()
            .any(|(l, n, m)| l == "warn" && n == &["closing"] && m.contains("nothing in the URL changes")),
        "{unversioned:?}"
    );
    for (level, _, message) in found(&report, "audio_url", &url("jingle.mp3?v=3")) {
        assert_eq!(level, "warn");
        assert!(message.starts_with("the host is a loopback address: 8x8 downloads the file"), "{message}");
    }

    let answered = one(&report, "script_host", &live, "ok", &["appointments"]);
    assert_eq!(answered, format!("answers at {live}"));
    let nothing = one(&report, "script_host", &dead, "fail", &["night"]);
    assert!(nothing.starts_with(&format!("nothing answers on port {}", &dead[10..])), "{nothing}");

    one(&report, "webhook", "VCA", "ok", &[]);
    let elsewhere = one(&report, "webhook", "VSS", "fail", &[]);
    assert_eq!(
        elsewhere,
        "points at https://old-node.example/webhooks/vss, not https://node.example/webhooks/vss"
    );
    let emma = one(&report, "voice", "en-GB-Emma", "fail", &["menu"]);
    assert!(emma.starts_with("not in the speech profiles of sub-account acct_d"), "{emma}");
    one(&report, "voice", "en-US-BenjaminRUS", "ok", &["bye", "menu", "fallback"]);
    assert_eq!(report["fail"], 7, "{report:#}");

    // Every GET asked for one byte: no file was downloaded whole.
    let requests = seen.lock().unwrap().clone();
    assert!(
        requests.iter().filter(|(m, _, _)| m == "GET").all(|(_, _, r)| r.as_deref() == Some("bytes=0-0")),
        "{requests:?}"
    );
    assert!(
        requests.contains(&("GET".into(), "/notice.wav".into(), Some("bytes=0-0".into()))),
        "{requests:?}"
    );
    // Each URL was asked once with a HEAD (the loop: the first and 5 redirects).
    let heads = |path: &str| requests.iter().filter(|(m, p, _)| m == "HEAD" && p == path).count();
    let once = ["/jingle.mp3", "/gone.mp3", "/notice.wav", "/hold.mp3", "/closing.mp3", "/relocated.mp3"];
    assert_eq!(
        once.map(heads),
        [2, 1, 1, 1, 1, 1],
        "jingle.mp3 also as relocated.mp3's target: {requests:?}"
    );
    assert_eq!(heads("/loop.mp3"), 6, "{requests:?}");
    drop(listening);
}

#[tokio::test]
async fn a_machine_in_order_passes_and_offline_asks_nothing() {
    let (audio, seen) = audio_server().await;
    let listening = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let live = listening.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    machine(dir.path(), "ready.toml", &[("audio.invalid", &audio), ("api.invalid:80", &live)]);
    let (code, report) = doctor(dir.path(), &[]).await;
    assert_eq!(code, Some(0), "{report:#}");
    assert_eq!(report["fail"], 0, "{report:#}");
    let jingle = format!("http://{audio}/jingle.mp3?v=3");
    one(&report, "audio", &jingle, "ok", &["jingle"]);
    one(&report, "script_host", &live, "ok", &["lookup"]);
    one(&report, "voice", "en-US-BenjaminRUS", "ok", &["bye", "lookup", "fallback"]);
    // The only warning: 8x8 cannot reach a loopback stand-in.
    assert_eq!(report["warn"], 1, "{report:#}");
    one(&report, "audio_url", &jingle, "warn", &["jingle"]);
    assert_eq!(
        report["not_checked"],
        json!(["no API flags: the sub-account's webhooks and speech profiles at 8x8"])
    );
    assert_eq!(seen.lock().unwrap().len(), 1, "one HEAD");

    // Offline: the URL's shape only, nothing asked.
    seen.lock().unwrap().clear();
    let (code, report) = doctor(dir.path(), &["--offline"]).await;
    assert_eq!(code, Some(0), "{report:#}");
    assert!(found(&report, "audio", &jingle).is_empty() && found(&report, "script_host", &live).is_empty());
    one(&report, "audio_url", &jingle, "warn", &["jingle"]);
    assert!(seen.lock().unwrap().is_empty());
    drop(listening);
}

/// Cloud metadata and link-local addresses are never asked, named in a URL or redirected to: each
/// such file fails its check saying so, and only the stand-in's redirect was asked.
#[tokio::test]
async fn doctor_never_asks_cloud_metadata_even_through_a_redirect() {
    let (audio, seen) = audio_server().await;
    let dir = tempfile::tempdir().unwrap();
    machine(dir.path(), "metadata.toml", &[("audio.invalid", &audio)]);
    let (code, report) = doctor(dir.path(), &[]).await;
    assert_eq!(code, Some(1), "{report:#}");
    let direct =
        one(&report, "audio", "http://169.254.169.254/latest/meta-data/iam.mp3?v=1", "fail", &["direct"]);
    assert!(direct.contains("doctor never asks it"), "{direct}");
    let redirected =
        one(&report, "audio", &format!("http://{audio}/metadata.mp3?v=1"), "fail", &["redirected"]);
    assert!(
        redirected.contains("redirected to http://169.254.169.254/latest/meta-data/iam.mp3?v=1")
            && redirected.contains("doctor never asks it"),
        "{redirected}"
    );
    // Only the stand-in was asked (a HEAD, then a GET of one byte), never where it redirects.
    let asked: Vec<(String, String)> =
        seen.lock().unwrap().iter().map(|(m, p, _)| (m.clone(), p.clone())).collect();
    let metadata = |m: &str| (m.to_string(), "/metadata.mp3".to_string());
    assert_eq!(asked, [metadata("HEAD"), metadata("GET")]);
}

#[tokio::test]
async fn offline_passes_the_bundled_machines() {
    let dir = tempfile::tempdir().unwrap();
    let machines = common::repo().join("machines");
    let (code, report) = doctor(dir.path(), &["--offline", "--machines", machines.to_str().unwrap()]).await;
    assert_eq!(code, Some(0), "{report:#}");
    assert_eq!(report["fail"], 0, "{report:#}");
    let voices = report["findings"].as_array().unwrap().iter().filter(|f| f["check"] == "voice").count();
    assert!(voices >= 6, "a voice finding per bundled machine at least: {report:#}");
    // The text report: a line per finding, then the counts.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_phonetree"))
        .current_dir(dir.path())
        .args(["doctor", "--offline", "--machines", machines.to_str().unwrap()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("ok    voice        abc_restaurant: "), "{text}");
    assert!(text.contains("\ndoctor: ") && text.contains(" warn, 0 fail\n"), "{text}");
}

#[tokio::test]
async fn a_machine_that_does_not_load_fails_and_a_wrong_api_key_is_a_failed_check() {
    let api = api_stand_in().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("machines")).unwrap();
    std::fs::write(dir.path().join("machines/broken.toml"), "name = \"broken\"\nstart = \"nowhere\"\n")
        .unwrap();
    let (code, report) =
        doctor(dir.path(), &["--api-base-url", &api, "--api-subaccount", "acct_d", "--api-key", "wrong"])
            .await;
    assert_eq!(code, Some(1), "{report:#}");
    let findings = report["findings"].as_array().unwrap();
    assert!(findings.iter().any(|f| f["check"] == "machine" && f["level"] == "fail"), "{report:#}");
    let refused = found(&report, "api", "Webhooks API");
    assert!(refused[0].2.contains("HTTP 401"), "{refused:?}");
}
