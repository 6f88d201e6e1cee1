//! Voice profiles: `phonetree voices` against a stand-in for 8x8's speech-profiles API on loopback
//! (the response shape of `voice_v1_api.json`), writing the voices file that `check` then reads;
//! an unknown voice is a warning naming the nearest one.

use crate::common;

use std::sync::{Arc, Mutex};

use serde_json::json;
use warp::Filter;

const KEY: &str = "key-voices-123";

/// The speech-profiles API of sub-account `acct_v`: the documented example's two profiles, a
/// Spanish and a French one; every request's path and `Authorization` are recorded. A wrong key gets 401.
async fn stand_in() -> (String, Arc<Mutex<Vec<(String, String)>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let shared = seen.clone();
    let route = warp::any().and(warp::path::full()).and(warp::header::optional::<String>("authorization")).map(
        move |path: warp::path::FullPath, auth: Option<String>| {
            let auth = auth.unwrap_or_default();
            shared.lock().unwrap().push((path.as_str().to_string(), auth.clone()));
            let (status, body) = if auth != format!("Bearer {KEY}") {
                (401, json!({"statusCode": 1100, "statusMessage": "API key not found or invalid"}))
            } else if path.as_str() != "/api/v1/subaccounts/acct_v/speech-profiles" {
                (404, json!({"statusCode": 1404, "statusMessage": "Resource not found"}))
            } else {
                (
                    200,
                    json!({"speechProfiles": [
                        {"speechProfileCode": "en-US-Standard-A", "localeCode": "en-US", "localeDescription": "EnglishUS", "gender": "F"},
                        {"speechProfileCode": "da-DK-Naja", "localeCode": "da-DK", "localeDescription": "Danish", "gender": "F"},
                        {"speechProfileCode": "es-ES-HelenaRUS", "localeCode": "es-ES", "localeDescription": "Spanish", "gender": "F"},
                        {"speechProfileCode": "fr-FR-HortenseRUS", "localeCode": "fr-FR", "localeDescription": "French", "gender": "F"},
                        {"speechProfileCode": "en-US-BenjaminRUS", "localeCode": "en-US", "localeDescription": "EnglishUS", "gender": "M"}
                    ], "statusCode": 0, "statusMessage": "Success"}),
                )
            };
            warp::reply::with_status(warp::reply::json(&body), warp::http::StatusCode::from_u16(status).unwrap())
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(warp::serve(route).incoming(listener).run());
    (base, seen)
}

fn phonetree(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_phonetree")).current_dir(dir).args(args).output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test]
async fn voices_fetches_the_list_that_check_then_reads() {
    let (base, seen) = stand_in().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("key"), format!("{KEY}\n")).unwrap();
    std::fs::copy(
        common::repo().join("tests/data/diagnostics/voice_unknown.toml"),
        dir.path().join("voice_unknown.toml"),
    )
    .unwrap();

    // Before: the bundled list knows no French voice.
    let french = std::fs::read_to_string(common::repo().join("machines/tech_support.toml"))
        .unwrap()
        .replace("en-US-BenjaminRUS", "fr-FR-HortenseRUS");
    std::fs::write(dir.path().join("french.toml"), french).unwrap();
    let before = phonetree(dir.path(), &["check", "french.toml"]);
    assert!(
        text(&before.stdout).contains(
            "unknown voice profile `fr-FR-HortenseRUS`\n  = hint: no voice in the voices bundled with phonetree is near it"
        ),
        "{}",
        text(&before.stdout)
    );

    let args = ["voices", "--api-key-file", "key", "--api-subaccount", "acct_v", "--api-base-url", &base];
    let out = tokio::task::spawn_blocking({
        let dir = dir.path().to_path_buf();
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        move || phonetree(&dir, &args.iter().map(String::as_str).collect::<Vec<_>>())
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        format!(
            "5 voice profiles from {base}'s speech-profiles API, sub-account acct_v written to voices.txt\n"
        )
    );
    assert_eq!(
        *seen.lock().unwrap(),
        [("/api/v1/subaccounts/acct_v/speech-profiles".to_string(), format!("Bearer {KEY}"))]
    );
    let file = std::fs::read_to_string(dir.path().join("voices.txt")).unwrap();
    assert_eq!(
        file.lines().skip(1).collect::<Vec<_>>(),
        ["da-DK-Naja", "en-US-BenjaminRUS", "en-US-Standard-A", "es-ES-HelenaRUS", "fr-FR-HortenseRUS"]
    );
    let french = phonetree(dir.path(), &["check", "french.toml"]);
    assert!(!text(&french.stdout).contains("unknown voice profile"), "{}", text(&french.stdout));

    // After: `check` reads voices.txt from where it runs; the typo gets the nearest known voice.
    let after = phonetree(dir.path(), &["check", "voice_unknown.toml"]);
    let report = text(&after.stdout);
    assert!(
        report.contains(
            "voice_unknown.toml:12:86: warning: node `menu`, field `prompt.1.voice_profile`: unknown voice profile `es-ES-HelenaRSU-typo`\n  = hint: did you mean `es-ES-HelenaRUS`? (known voices: voices.txt)"
        ),
        "{report}"
    );
    assert!(after.status.success(), "warnings only: {report}");
    // `simulate` reads it too (its diagnostics are on stderr).
    let simulated = phonetree(dir.path(), &["simulate", "voice_unknown.toml", "1"]);
    assert!(text(&simulated.stderr).contains("did you mean `es-ES-HelenaRUS`? (known voices: voices.txt)"));
    // en-GB-Emma is bundled but not in this account's list: `--voices` names the file to use.
    assert!(
        report.contains("unknown voice profile `en-GB-Emmma`\n  = hint: no voice in voices.txt is near it"),
        "{report}"
    );
}

#[tokio::test]
async fn voices_reports_what_8x8_refused() {
    let (base, _) = stand_in().await;
    let dir = tempfile::tempdir().unwrap();
    let out = tokio::task::spawn_blocking({
        let (dir, base) = (dir.path().to_path_buf(), base.clone());
        move || {
            phonetree(
                &dir,
                &["voices", "--api-key", "wrong", "--api-subaccount", "acct_v", "--api-base-url", &base],
            )
        }
    })
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).starts_with(
            "phonetree: 8x8's speech-profiles API refused the list of speech profiles: HTTP 401"
        ),
        "{}",
        text(&out.stderr)
    );
    assert!(!dir.path().join("voices.txt").exists(), "nothing is written on a failure");
}

#[test]
fn a_broken_voices_file_is_an_error_of_check() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bad.txt"), "en-US-BenjaminRUS\nnot a voice\n").unwrap();
    std::fs::copy(common::repo().join("machines/abc_restaurant.toml"), dir.path().join("abc.toml")).unwrap();
    let out = phonetree(dir.path(), &["check", "--voices", "bad.txt", "abc.toml"]);
    assert_eq!(out.status.code(), Some(1));
    let report = text(&out.stdout);
    assert!(report.contains("bad.txt:2: `not a voice` is not a voice profile name"), "{report}");
}

/// `serve` checks its machines against `--voices` (here `PHONETREE_VOICES`), at start.
#[test]
fn serve_reads_the_voices_file() {
    let dir = tempfile::tempdir().unwrap();
    let machines = dir.path().join("machines");
    std::fs::create_dir_all(&machines).unwrap();
    // The bilingual machine in French: a voice the bundled list does not hold.
    let french = std::fs::read_to_string(common::repo().join("tests/data/keys/bilingual.toml"))
        .unwrap()
        .replace("es-ES-HelenaRUS", "fr-FR-HortenseRUS");
    std::fs::write(machines.join("bilingual.toml"), french).unwrap();
    let voices = dir.path().join("voices.txt");
    std::fs::write(&voices, "en-US-BenjaminRUS\nfr-FR-HortenseRUS\n").unwrap();
    let bundled = common::Node::start(&dir.path().join("a"), &machines);
    let listed = common::Node::start_with(
        &dir.path().join("b"),
        &machines,
        &[("PHONETREE_VOICES", voices.to_str().unwrap())],
    );
    assert!(bundled.log().contains("unknown voice profile `fr-FR-HortenseRUS`"), "{}", bundled.log());
    assert!(!listed.log().contains("unknown voice profile"), "{}", listed.log());
}
