//! Multi-part prompts: a prompt in two voices is sent whole — the English part as a `say`, the
//! Spanish part as the capture's prompt — on the first prompt, every re-prompt, a repeat, and the
//! replies to stale and duplicate webhooks, through the real server.

use crate::common;

use common::{Node, Vca, post, unsigned_id};
use serde_json::{Value, json};

const MACHINE: &str = "tests/data/keys/bilingual.toml";

/// The two-voice prompt as 8x8 gets it (without the clientActionId).
fn whole_prompt() -> Value {
    json!([
        {"action": "say", "params": {"text": "For English press 1.", "voiceProfile": "en-US-BenjaminRUS"}},
        {"action": "sayAndCapture", "params": {"promptMessage": "Para español oprima 2.",
            "voiceProfile": "es-ES-HelenaRUS", "minDigits": 1, "maxDigits": 1}}
    ])
}

fn webhook<'a>(event: &'a str, dtmf: Option<&'a str>, id: Option<&'a str>) -> String {
    let status = if dtmf.is_some() || id.is_some() { "DTMF_RECEIVED" } else { "CALL_RECEIVED" };
    Vca {
        status,
        direction: "INBOUND",
        source: "+6591178965",
        destination: "+6568880002",
        ..Vca::abc("s-two-voices", event, dtmf, id)
    }
    .body()
}

#[tokio::test]
async fn a_two_voice_prompt_is_sent_whole_every_time() {
    let t = tempfile::tempdir().unwrap();
    let machines = t.path().join("machines");
    std::fs::create_dir_all(&machines).unwrap();
    std::fs::copy(common::repo().join(MACHINE), machines.join("bilingual.toml")).unwrap();
    let n = Node::start(&t.path().join("data"), &machines);
    let url = n.url("/webhooks/vca");

    // The first prompt.
    let first = post(&url, webhook("e0", None, None)).await;
    assert_eq!(first.json()["callflow"], whole_prompt());
    let first_id = first.client_action_id().unwrap();
    // A key no branch takes: the re-prompt (the machine gives none: the prompt), whole.
    let again = post(&url, webhook("e1", Some("7"), Some(&first_id))).await;
    assert_eq!(again.json()["callflow"], whole_prompt());
    let again_id = again.client_action_id().unwrap();
    assert_ne!(again_id, first_id);
    // `*` (the machine's repeat key): whole again.
    let repeated = post(&url, webhook("e2", Some("*"), Some(&again_id))).await;
    assert_eq!(repeated.json()["callflow"], whole_prompt());
    let current_id = repeated.client_action_id().unwrap();

    // A stale webhook (it answers the first prompt): the current prompt, whole, nothing applied.
    let stale = post(&url, webhook("e3", Some("1"), Some(&first_id))).await;
    assert_eq!(stale.json()["callflow"], whole_prompt(), "{}", stale.how);
    // The same prompt's id, signed again (its expiry may be a second later).
    assert_eq!(unsigned_id(&stale.client_action_id().unwrap()), unsigned_id(&current_id));
    // A duplicate of the latest event: the same bytes.
    let duplicate = post(&url, webhook("e2", Some("*"), Some(&again_id))).await;
    assert_eq!(duplicate.body, repeated.body);
    // An event older than the replies kept (known by its hash): the current prompt, whole.
    let e4 = post(&url, webhook("e4", Some("8"), Some(&current_id))).await;
    assert_eq!(e4.json()["callflow"], whole_prompt());
    let latest_id = e4.client_action_id().unwrap();
    let old = post(&url, webhook("e0", None, None)).await;
    assert_eq!(old.json()["callflow"], whole_prompt(), "{}", old.how);
    assert_eq!(unsigned_id(&old.client_action_id().unwrap()), unsigned_id(&latest_id));

    // And the call still goes where the caller says: 2 is Spanish.
    let spanish = post(&url, webhook("e5", Some("2"), Some(&latest_id))).await;
    assert_eq!(spanish.json()["callflow"][0]["params"]["text"], "Bienvenido.");
}
