//! Every number phonetree dials passes one guard (issue 21, finding 2): a transfer whose
//! destination a template fills from the caller's keys is checked when it is filled, on a real
//! node (a `phonetree serve` child on loopback), in `simulate` and in `check`, with the probe's
//! numbers. A refused number takes the transfer's `failure`, is logged masked and counted.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::backends;
use common::*;

/// The probe's numbers: a North American premium-rate number, a global satellite (+881) number,
/// and Germany's 112 in international form; none in `+65`.
const PROBE: [&str; 3] = ["19005550100", "881000000000", "4911200000"];
/// The admin listener's token.
const TOKEN: &str = "transfers-admin-token-0123456789";
/// A Singapore number `--call-allow-prefix +65` allows: the control, bridged.
const ALLOWED: &str = "6598765432";

fn machine() -> PathBuf {
    repo().join("tests/data/transfers/dial_out.toml")
}

fn machines_with_dial_out(tmp: &Path) -> PathBuf {
    let dir = tmp.join("machines");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(machine(), dir.join("dial_out.toml")).unwrap();
    dir
}

fn phonetree(args: &[&str], env: &[(&str, &str)]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_phonetree"))
        .args(args)
        .current_dir(repo())
        .env_remove("PHONETREE_CALL_ALLOW_PREFIX")
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

fn inbound<'a>(
    session: &'a str,
    event: &'a str,
    status: &'a str,
    dtmf: Option<&'a str>,
    id: Option<&'a str>,
) -> Vca<'a> {
    Vca {
        session,
        event,
        dtmf,
        client_action_id: id,
        status,
        direction: "INBOUND",
        source: "+6591234567",
        destination: "+6568880077",
        event_data: false,
    }
}

/// One call keying `keys`: the reply to the keys.
async fn call(n: &Node, session: &str, keys: &str) -> serde_json::Value {
    let url = n.url("/webhooks/vca");
    let first = post(&url, inbound(session, "e0", "CALL_RECEIVED", None, None).body()).await;
    let id = first.client_action_id().expect("the prompt waits for keys");
    let answer = post(&url, inbound(session, "e1", "DTMF_RECEIVED", Some(keys), Some(&id)).body()).await;
    answer.callflow();
    answer.json()
}

fn dials(reply: &serde_json::Value) -> Vec<String> {
    reply["callflow"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["action"] == "makeCall")
        .map(|a| a["params"]["destination"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[tokio::test]
async fn a_node_never_bridges_the_probes_numbers_and_takes_failure() {
    let t = tempfile::tempdir().unwrap();
    let n = Node::start_with(
        &t.path().join("data"),
        &machines_with_dial_out(t.path()),
        &[("PHONETREE_CALL_ALLOW_PREFIX", "+65"), ("PHONETREE_ADMIN_TOKEN", TOKEN)],
    );
    for (i, number) in PROBE.iter().enumerate() {
        let reply = call(&n, &format!("s-probe-{i}"), &format!("{number}#")).await;
        assert_eq!(dials(&reply), Vec::<String>::new(), "{number} was dialled: {reply}");
        let text = reply.to_string();
        assert!(text.contains("Sorry, we cannot connect you to that number."), "{number}: {text}");
        assert_eq!(reply["callflow"].as_array().unwrap().last().unwrap()["action"], "hangup", "{text}");
    }
    // The control: a number in +65 is bridged (so the refusals above are the guard's).
    let reply = call(&n, "s-allowed", &format!("{ALLOWED}#")).await;
    assert_eq!(dials(&reply), vec![format!("+{ALLOWED}")], "{reply}");

    // Counted, by reason, at the transfer node.
    let (_, _, text) = metrics::scrape(&n, Some(TOKEN)).await;
    let refused = metrics::values(
        &metrics::parse(&text),
        "phonetree_dials_refused_total",
        &[("machine", "dial_out"), ("node", "ring")],
        &["reason"],
    );
    assert_eq!(refused.values().sum::<f64>(), 3.0, "{refused:?}\n{text}");
    // All three are barred (+1900 premium, +881 satellite, +49112 German emergency), each also
    // outside +65.
    assert_eq!(refused.get(&vec!["barred".to_string()]), Some(&3.0), "{refused:?}");
    // The transcript: the keys reached the transfer, then the guard's refusal took `failure`.
    let r =
        reqwest::Client::new().get(n.admin_url("/calls/s-probe-0")).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = r.json().await.unwrap();
    let events: Vec<&str> =
        v["entries"].as_array().unwrap().iter().map(|e| e["event"]["type"].as_str().unwrap()).collect();
    assert_eq!(events, ["callStarted", "keys", "dialRefused"], "{v}");
    let refused = &v["entries"][2];
    assert_eq!((refused["left"].as_str(), refused["entered"].as_str()), (Some("ring"), Some("bye")), "{v}");
    // Logged, the number masked: the refusal's lines hold none of the keyed digits.
    let log = n.log();
    let lines: Vec<&str> = log.lines().filter(|l| l.contains("outbound guard refused")).collect();
    assert_eq!(lines.len(), 3, "{log}");
    for line in lines {
        for number in PROBE {
            assert!(!line.contains(number) && !line.contains(&number[..6]), "{line}");
        }
    }
}

#[tokio::test]
async fn without_call_allow_prefix_a_templated_transfer_dials_nothing() {
    let t = tempfile::tempdir().unwrap();
    let n = Node::start(&t.path().join("data"), &machines_with_dial_out(t.path()));
    let reply = call(&n, "s-none", &format!("{ALLOWED}#")).await;
    assert_eq!(dials(&reply), Vec::<String>::new(), "{reply}");
    assert!(reply.to_string().contains("Sorry, we cannot connect you"), "{reply}");
}

#[test]
fn simulate_plays_the_guard_as_the_node_does() {
    let file = machine();
    let file = file.to_str().unwrap();
    for number in PROBE {
        let keys = format!("{number}#");
        let out = phonetree(&["simulate", file, &keys, "--call-allow-prefix", "+65"], &[]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{text}{}", String::from_utf8_lossy(&out.stderr));
        assert!(text.contains("[ring] the outbound guard refuses"), "{text}");
        assert!(text.contains("[refused] hears: \"Sorry, we cannot connect you to that number.\""), "{text}");
        assert!(!text.contains("bridged"), "{text}");
        assert!(text.ends_with("call ended: hangup\n"), "{text}");
    }
    // The same flag from the environment, as `serve` reads it; the control is bridged.
    let keys = format!("{ALLOWED}#");
    let out = phonetree(&["simulate", file, &keys], &[("PHONETREE_CALL_ALLOW_PREFIX", "+65")]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(&format!("[ring] transfer: bridged to +{ALLOWED}")), "{text}");
}

#[test]
fn check_proves_both_classes_and_warns_on_a_destination_the_caller_keys() {
    let file = machine();
    let out = phonetree(&["check", file.to_str().unwrap()], &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    let text = format!("{}{err}", String::from_utf8_lossy(&out.stdout));
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("warning") && text.contains("the caller keys `{target}`"), "{text}");
    // Every edge is taken: the refused class reaches `failure`.
    assert!(!text.contains("no input takes"), "{text}");
}

/// The machine without the transfer's `failure` and the node it leads to.
fn without_refused(text: &str) -> String {
    let refused = "[nodes.refused]\nkind = \"say\"\ntext = \"Sorry, we cannot connect you to that number.\"\nnext = \"bye\"\n";
    assert!(text.contains(refused));
    text.replace("failure = \"refused\"\n", "").replace(refused, "")
}

#[test]
fn check_requires_failure_on_a_templated_transfer() {
    let t = tempfile::tempdir().unwrap();
    let text = without_refused(&std::fs::read_to_string(machine()).unwrap());
    let file = t.path().join("no_failure.toml");
    std::fs::write(&file, &text).unwrap();
    let out = phonetree(&["check", file.to_str().unwrap()], &[]);
    let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_ne!(out.status.code(), Some(0), "{all}");
    let line = text.lines().position(|l| l.starts_with("destination = \"+{target}\"")).unwrap() + 1;
    assert!(all.contains(&format!("no_failure.toml:{line}:")), "{all}");
    assert!(all.contains("a transfer whose `destination` is a template needs `failure`"), "{all}");
    assert!(all.contains("add `failure = \"NODE\"`"), "{all}");
}

#[test]
fn a_literal_destination_in_a_barred_range_refuses_to_load() {
    let t = tempfile::tempdir().unwrap();
    let text = without_refused(&std::fs::read_to_string(machine()).unwrap())
        .replace("destination = \"+{target}\"", "destination = \"+19005550100\"");
    let file = t.path().join("barred.toml");
    std::fs::write(&file, &text).unwrap();
    let out = phonetree(&["check", file.to_str().unwrap()], &[]);
    let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_ne!(out.status.code(), Some(0), "{all}");
    assert!(all.contains("node `ring`") && all.contains("phonetree never calls it"), "{all}");
}

/// The node's env: `+65` allowed, the default rates (one call a minute to one number).
const ALLOW_65: (&str, &str) = ("PHONETREE_CALL_ALLOW_PREFIX", "+65");

/// A templated transfer to one number, twice within the minute: the second is over the
/// per-destination rate, and takes `failure`.
async fn bridged(n: &Node, session: &str) -> bool {
    let reply = call(n, session, &format!("{ALLOWED}#")).await;
    let dialled = dials(&reply);
    assert!(dialled.is_empty() || dialled == [format!("+{ALLOWED}")], "{reply}");
    !dialled.is_empty()
}

#[tokio::test]
async fn the_rate_of_a_templated_destination_survives_a_restart() {
    let t = tempfile::tempdir().unwrap();
    let mut n = Node::start_with(&t.path().join("data"), &machines_with_dial_out(t.path()), &[ALLOW_65]);
    assert!(bridged(&n, "s-rate-1").await, "the first call in the minute");
    assert!(!bridged(&n, "s-rate-2").await, "the second call to the number in the minute");
    n.kill();
    n.restart();
    assert!(!bridged(&n, "s-rate-3").await, "a restart does not refill the bucket");
    let (_, _, text) = metrics::scrape(&n, None).await;
    let refused = metrics::values(
        &metrics::parse(&text),
        "phonetree_dials_refused_total",
        &[("machine", "dial_out"), ("node", "ring")],
        &["reason"],
    );
    assert_eq!(refused, metrics::expected(&[(&["rate_limited"], 1.0)]), "{text}");
}

#[tokio::test]
async fn two_nodes_on_one_postgres_share_the_rate() {
    let t = tempfile::tempdir().unwrap();
    let Some(url) = backends::postgres_url_for(t.path()).await else { return };
    let machines = machines_with_dial_out(t.path());
    let store = ("PHONETREE_STORE", url.as_str());
    let a = Node::start_with(&t.path().join("a"), &machines, &[store, ALLOW_65]);
    let b = Node::start_with(&t.path().join("b"), &machines, &[store, ALLOW_65]);
    assert!(bridged(&a, "s-pg-1").await, "the first call in the minute, on node a");
    assert!(!bridged(&b, "s-pg-2").await, "node b shares node a's bucket");
    // The bucket is one row, with its record's format.
    let client = backends::connect(&url).await.unwrap();
    let rows = client.query("SELECT key FROM phonetree_rates ORDER BY key", &[]).await.unwrap();
    let keys: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(keys, ["overall".to_string(), format!("to:+{ALLOWED}")]);
}
