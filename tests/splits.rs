//! Sticky A/B splits (`kind = "split"`, `tests/data/splits/greeting.toml`): the documented hash
//! pinned over ten thousand callers, one caller on one variant at two splits and after a restart,
//! `force` winning, `check` covering every variant with commands that replay it (`--from`,
//! `--session`) and every variant with every route class on `caller` (`split_then_route.toml`), and a real node's history, `calls show`, `/metrics` and console funnel agreeing
//! per variant.

use crate::common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;

use common::*;
use phonetree::engine::{self, CallState, Event};
use phonetree::machine::split::{BUCKETS, bucket};
use phonetree::machine::{Edge, Machine};
use serde_json::Value;

const GREETING: &str = "tests/data/splits/greeting.toml";
const NUMBER: &str = "+6568880000";
/// Forced to `a` in the machine, though the hash puts it in `b`.
const FORCED: &str = "+6591234567";
const SALT: &str = "greeting-2026";

fn greeting() -> Machine {
    let text = std::fs::read_to_string(repo().join(GREETING)).unwrap();
    compile_text(GREETING, &text)
}

/// The variants a call from `caller` (session `session`) is given on its way: at the call's start,
/// then after `inputs`.
fn variants(m: &Machine, caller: &str, session: &str, inputs: &[&str]) -> Vec<(String, String)> {
    let mut info = inbound(caller, NUMBER);
    info.session_id = session.into();
    let mut state = CallState::new(m, info, 0);
    let mut got = Vec::new();
    let events = std::iter::once(Event::CallStarted).chain(inputs.iter().map(|i| event(i)));
    for (i, e) in events.enumerate() {
        let step = engine::step(m, &state, &e, i as u64 * 1000).unwrap();
        for (from, edge, _) in &step.edges {
            if let Edge::Variant(v) = edge {
                got.push((m.node(*from).unwrap().name.clone(), v.clone()));
            }
        }
        state = step.state;
    }
    got
}

#[test]
fn ten_thousand_callers_split_by_the_documented_hash() {
    let m = greeting();
    let mut a = 0;
    for i in 0..10_000 {
        let caller = format!("+658{i:07}");
        let got = variants(&m, &caller, "s", &[]);
        assert_eq!(got.len(), 1, "{caller}: {got:?}");
        // The documented rule: bucket × total < cumulative × BUCKETS, variants sorted by name.
        let want = if bucket(SALT, &caller) * 100 < 20 * BUCKETS { "a" } else { "b" };
        assert_eq!(got[0], ("greeting".to_string(), want.to_string()), "{caller}");
        a += usize::from(want == "a");
    }
    // Computed apart from phonetree (Python's hashlib over the same bytes); 20% would be 2000.
    assert_eq!(a, 1989);
}

#[test]
fn one_caller_gets_one_variant_at_both_splits_and_on_every_call() {
    let m = greeting();
    let mut seen = BTreeMap::new();
    for i in 0..200 {
        let caller = format!("+658{i:07}");
        let first = variants(&m, &caller, &format!("s-{i}"), &["1"]);
        assert_eq!(first.len(), 2, "{caller}: {first:?}");
        assert_eq!((first[0].0.as_str(), first[1].0.as_str()), ("greeting", "offer"));
        assert_eq!(first[0].1, first[1].1, "{caller}: one salt, one variant at both splits");
        // Another call (another session) of the same caller: the same variant.
        assert_eq!(variants(&m, &caller, &format!("t-{i}"), &["1"]), first, "{caller}");
        // 8x8 may leave the `+` out: the same caller.
        assert_eq!(variants(&m, caller.trim_start_matches('+'), "u", &["1"]), first, "{caller}");
        *seen.entry(first[0].1.clone()).or_insert(0) += 1;
    }
    assert_eq!(seen.len(), 2, "both variants among 200 callers: {seen:?}");
}

#[test]
fn force_wins_over_the_hash() {
    let m = greeting();
    assert!(bucket(SALT, FORCED) * 100 >= 20 * BUCKETS, "the hash alone gives {FORCED} variant b");
    let got = variants(&m, FORCED, "s", &["1"]);
    assert_eq!(got, [("greeting".into(), "a".into()), ("offer".into(), "a".into())]);
}

fn phonetree(args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_phonetree"))
        .current_dir(repo())
        .args(args)
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Which greeting `phonetree simulate` plays for `args`.
fn simulated_greeting(file: &str, args: &[&str]) -> String {
    let mut all = vec!["simulate", file];
    all.extend(args);
    let out = phonetree(&all);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = stdout(&out);
    text.lines().find(|l| l.starts_with("[hello_")).map(|l| l[1..8].to_string()).unwrap_or(text)
}

#[test]
fn check_covers_every_variant_and_its_commands_replay_them() {
    let out = phonetree(&["check", "--json", GREETING]);
    assert!(out.status.success(), "{}{}", stdout(&out), String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let report = &v["machines"][0];
    assert_eq!((report["edges_covered"].as_u64(), report["edges"].as_u64()), (Some(12), Some(12)));
    // The longest path starts from the forced caller, whose variant the default caller lacks.
    assert_eq!(report["longest"][0], format!("--from={FORCED}"));
    assert_eq!(simulated_greeting(GREETING, &[&format!("--from={FORCED}"), "1"]), "hello_a");
    assert_eq!(simulated_greeting(GREETING, &["1"]), "hello_b");
    let played = stdout(&phonetree(&["simulate", GREETING, &format!("--from={FORCED}"), "1"]));
    assert!(
        played.contains("[greeting] variant a -> hello_a") && played.contains("[offer] variant a -> offer_a"),
        "{played}"
    );

    // Sticky by session, a variant no weight and no force reaches: its edge is uncovered.
    let t = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(repo().join(GREETING)).unwrap();
    let session = text.replace(
        "salt = \"greeting-2026\"\nforce = { \"+6591234567\" = \"a\" }",
        "salt = \"s\"\nsticky_by = \"session\"",
    );
    assert_ne!(session, text);
    let by_session = t.path().join("by_session.toml");
    std::fs::write(&by_session, &session).unwrap();
    let file = by_session.to_str().unwrap();
    let out = phonetree(&["check", "--json", file]);
    assert!(out.status.success(), "{}{}", stdout(&out), String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let longest: Vec<String> = v["machines"][0]["longest"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect();
    let flag = longest.iter().find(|a| a.starts_with("--session=")).expect("a session to replay");
    let id = flag.trim_start_matches("--session=");
    let m = compile_text(file, &session);
    let want = variants(&m, "+15550000001", id, &[])[0].1.clone();
    let args: Vec<&str> = longest.iter().map(String::as_str).collect();
    assert_eq!(simulated_greeting(file, &args), format!("hello_{want}"));
    // Both sessions' variants are explored: check's session for the other variant plays it.
    let other = if want == "a" { "b" } else { "a" };
    let other_session = (0..10_000)
        .map(|i| format!("explore-{i}"))
        .find(|s| variants(&m, "+15550000001", s, &[])[0].1 == other)
        .unwrap();
    assert_eq!(
        simulated_greeting(file, &[&format!("--session={other_session}"), "1"]),
        format!("hello_{other}")
    );

    let unreached = session.replace("weights = { a = 20, b = 80 }", "weights = { a = 0, b = 80 }");
    std::fs::write(&by_session, unreached).unwrap();
    let out = phonetree(&["check", file]);
    assert!(!out.status.success());
    let text = stdout(&out) + &String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("variant a"), "{text}");
}

const SPLIT_THEN_ROUTE: &str = "tests/data/splits/split_then_route.toml";

/// A split, then a route on the caller (`split_then_route.toml`): the route's rule names
/// `+441234567`, whose variant is `a`, and the policy breaks only for a UK caller given `b`.
/// Before issue 23's fix `check` explored each route class with its representative's variants
/// only, and passed:
///
/// ```text
/// $ phonetree check tests/data/splits/split_then_route.toml
/// tests/data/splits/split_then_route.toml: proven `split_then_route` (25ceb518602b): 10 states, 12 transitions, ...
/// ```
///
/// Now it searches UK callers for `b` too, fails naming the node, and its command plays that call.
#[test]
fn check_crosses_split_variants_with_the_callers_route_classes() {
    let m = compile_text(SPLIT_THEN_ROUTE, &std::fs::read_to_string(repo().join(SPLIT_THEN_ROUTE)).unwrap());
    assert_eq!(variants(&m, "+441234567", "s", &[]), [("trial".to_string(), "a".to_string())]);
    let out = phonetree(&["check", SPLIT_THEN_ROUTE]);
    let text = stdout(&out) + &String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("error: node `agent`: policy 1 (never transfer after `trial:b`) is broken"),
        "{text}"
    );
    // The replay: a UK caller, given `b`, bridged.
    let command = text.split('`').find(|s| s.starts_with("phonetree simulate ")).expect("a replay command");
    let from = command.split(' ').find(|w| w.contains("--from=")).expect("a caller").trim_matches('\'');
    let caller = from.trim_start_matches("--from=");
    assert!(caller.starts_with("+44") && caller.len() == "+441234567".len(), "{command}");
    let played = stdout(&phonetree(&["simulate", SPLIT_THEN_ROUTE, from]));
    assert!(played.contains("[trial] variant b -> hello_b"), "{played}");
    assert!(played.contains("[agent] transfer: bridged"), "{played}");

    // The same with a regex on the caller: its example `+441` and numbers it is the start of.
    let t = tempfile::tempdir().unwrap();
    let source = std::fs::read_to_string(repo().join(SPLIT_THEN_ROUTE)).unwrap();
    let regex = source.replace("prefix = \"+44\"", "matches = \"^[+]44[0-9]+$\"");
    assert_ne!(regex, source);
    let file = t.path().join("regex.toml");
    std::fs::write(&file, &regex).unwrap();
    let out = phonetree(&["check", file.to_str().unwrap()]);
    let text = stdout(&out);
    assert!(text.contains("error: node `agent`: policy 1"), "{text}");
    let command = text.split('`').find(|s| s.starts_with("phonetree simulate ")).expect("a replay command");
    let from = command.split(' ').find(|w| w.contains("--from=+44")).expect("a UK caller").trim_matches('\'');
    let played = stdout(&phonetree(&["simulate", file.to_str().unwrap(), from]));
    assert!(played.contains("variant b -> hello_b") && played.contains("transfer: bridged"), "{played}");

    // A correct machine proves: the same without the broken policy, its four combinations explored.
    let correct = source.replace("after = \"trial:b\"", "after = \"bye\"");
    assert_ne!(correct, source);
    let file = t.path().join("correct.toml");
    std::fs::write(&file, &correct).unwrap();
    let out = phonetree(&["check", "--json", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}{}", stdout(&out), String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    // Four callers (UK or not, `a` or `b`), each to the bridge or the hangup: 4 paths.
    assert_eq!(v["machines"][0]["paths"], 4, "{v}");
}

/// The route first, then the split (`ROUTE_THEN_SPLIT`): before issue 23's fix the UK callers
/// explored were `+441234567` alone, with `a`, so `check` failed wrongly (`hello_b` unreachable,
/// `trial`'s `b` edge uncovered) and missed the broken policy. Now it finds a UK caller given `b`.
#[test]
fn a_route_on_the_caller_before_a_split_is_crossed_too() {
    let t = tempfile::tempdir().unwrap();
    let file = t.path().join("route_then_split.toml");
    let path = file.to_str().unwrap();
    std::fs::write(&file, ROUTE_THEN_SPLIT).unwrap();
    let out = phonetree(&["check", path]);
    let text = stdout(&out);
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("error: node `agent`: policy 1 (never transfer after `trial:b`)"), "{text}");
    assert!(!text.contains("no input"), "{text}");
    let command = text.split('`').find(|s| s.starts_with("phonetree simulate ")).expect("a replay command");
    let from = command.split(' ').find(|w| w.contains("--from=+44")).expect("a UK caller").trim_matches('\'');
    let played = stdout(&phonetree(&["simulate", path, from]));
    assert!(played.contains("variant b -> hello_b") && played.contains("transfer: bridged"), "{played}");
    // Without the policy it proves, every edge covered.
    std::fs::write(&file, ROUTE_THEN_SPLIT.replace("after = \"trial:b\"", "after = \"bye\"")).unwrap();
    let out = phonetree(&["check", path]);
    assert!(out.status.success(), "{}", stdout(&out));
    assert!(stdout(&out).contains("5/5 edges covered"), "{}", stdout(&out));
}

const ROUTE_THEN_SPLIT: &str = r#"
name = "route_then_split"
description = "UK callers first, then a greeting split"
start = "who"
numbers = ["+6568880002"]

[defaults]
voice_profile = "en-US-BenjaminRUS"

[[policies]]
never = "transfer"
after = "trial:b"

[nodes.who]
kind = "route"
rules = [{ var = "caller", prefix = "+44", next = "trial" }]
else = "bye"

[nodes.trial]
kind = "split"
weights = { a = 50, b = 50 }
next = { a = "agent", b = "hello_b" }
salt = "uk-2026"

[nodes.hello_b]
kind = "say"
text = "Welcome to ABC."
next = "agent"

[nodes.agent]
kind = "transfer"
destination = "+6531589338"

[nodes.bye]
kind = "hangup"
"#;

/// A split class some caller has but no caller of a route class the search tried gets: `check`
/// says it did not explore it, at the split, unless the route's rule names its callers (all
/// tried); a forced caller of that class makes it explored.
#[test]
fn a_combination_the_search_cannot_find_is_unexplored() {
    let source = std::fs::read_to_string(repo().join(SPLIT_THEN_ROUTE)).unwrap();
    // `a` only for a forced caller outside the UK: no UK caller gets it.
    let rare = source
        .replace(
            "weights = { a = 50, b = 50 }",
            "weights = { a = 0, b = 100 }\nforce = { \"+6591234567\" = \"a\" }",
        )
        .replace("after = \"trial:b\"", "after = \"bye\"");
    let t = tempfile::tempdir().unwrap();
    let file = t.path().join("rare.toml");
    let path = file.to_str().unwrap();
    std::fs::write(&file, &rare).unwrap();
    let out = phonetree(&["check", "--json", path]);
    assert!(!out.status.success(), "{}", stdout(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let violations = v["machines"][0]["violations"].as_array().unwrap();
    assert_eq!(violations.len(), 1, "{v}");
    assert_eq!(
        (violations[0]["kind"].as_str(), violations[0]["node"].as_str()),
        (Some("unexplored"), Some("trial"))
    );
    let message = violations[0]["message"].as_str().unwrap();
    assert!(message.contains("`+441234567`") && message.contains("variant `a` at `trial`"), "{message}");

    // A UK caller forced to `a`: explored, proven.
    let forced = rare.replace(
        "force = { \"+6591234567\" = \"a\" }",
        "force = { \"+6591234567\" = \"a\", \"+447700900000\" = \"a\" }",
    );
    std::fs::write(&file, &forced).unwrap();
    let out = phonetree(&["check", path]);
    assert!(out.status.success(), "{}{}", stdout(&out), String::from_utf8_lossy(&out.stderr));
    // A rule naming its one caller: the search tried it, nothing is missing.
    let named = rare.replace("prefix = \"+44\"", "equals = \"+441234567\"");
    std::fs::write(&file, &named).unwrap();
    let out = phonetree(&["check", path]);
    assert!(out.status.success(), "{}{}", stdout(&out), String::from_utf8_lossy(&out.stderr));
}

/// One inbound call from `caller`: `CALL_RECEIVED`, the inputs, 8x8's summary. Returns the first
/// reply's text.
async fn call(n: &Node, session: &str, caller: &str, inputs: &[&str]) -> String {
    let mut id: Option<String> = None;
    let mut first = String::new();
    for (i, input) in std::iter::once(&"").chain(inputs).enumerate() {
        let event = format!("{session}-e{i}");
        let v = Vca {
            session,
            event: &event,
            dtmf: (i > 0).then_some(*input),
            client_action_id: id.as_deref(),
            status: if i == 0 { "CALL_RECEIVED" } else { "DTMF_RECEIVED" },
            direction: "INBOUND",
            source: caller,
            destination: NUMBER,
            event_data: false,
        };
        let a = post(&n.url("/webhooks/vca"), v.body()).await;
        assert_eq!(a.how, "applied", "{session}: {}", n.log());
        if i == 0 {
            first = a.json()["callflow"][0]["say"]["text"].as_str().unwrap_or_default().to_string();
        }
        id = a.client_action_id();
    }
    assert_eq!(post(&n.url("/webhooks/vss"), vss(session, "COMPLETED")).await.status, 200);
    first
}

fn machines(t: &Path) -> PathBuf {
    let dir = t.join("machines");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(repo().join(GREETING), dir.join("greeting.toml")).unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_records_the_variant_in_history_metrics_and_the_funnel() {
    let m = greeting();
    let t = tempfile::tempdir().unwrap();
    let mut n = Node::start(&t.path().join("data"), &machines(t.path()));
    let callers: Vec<String> = (0..12).map(|i| format!("+658{i:07}")).chain([FORCED.to_string()]).collect();
    let mut heard = BTreeMap::new();
    for (i, caller) in callers.iter().enumerate() {
        heard.insert(caller.clone(), call(&n, &format!("s-{i}"), caller, &["1"]).await);
    }
    // After a restart, the same callers hear the same greetings.
    n.terminate();
    n.restart();
    for (i, caller) in callers.iter().enumerate() {
        assert_eq!(call(&n, &format!("r-{i}"), caller, &["1"]).await, heard[caller], "{caller}");
    }
    let mut by_variant: BTreeMap<(String, String), f64> = BTreeMap::new();
    let client = reqwest::Client::new();
    for (i, caller) in callers.iter().enumerate() {
        let want = &variants(&m, caller, "x", &[])[0].1;
        for session in [format!("s-{i}"), format!("r-{i}")] {
            let v: Value = common::get_json(&n.admin_url(&format!("/calls/{session}")), None).await;
            let recorded: Vec<(String, String)> = v["entries"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|e| e["variants"].as_array().cloned().unwrap_or_default())
                .map(|p| {
                    (p["node"].as_str().unwrap().to_string(), p["variant"].as_str().unwrap().to_string())
                })
                .collect();
            let expected: Vec<(String, String)> =
                ["greeting", "offer"].iter().map(|n| (n.to_string(), want.clone())).collect();
            assert_eq!(recorded, expected, "{session}");
            // The metrics count since the node's start: the calls after the restart.
            for (node, variant) in recorded.into_iter().filter(|_| session.starts_with("r-")) {
                *by_variant.entry((node, variant)).or_default() += 1.0;
            }
        }
    }
    // `calls show` prints it.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_phonetree"))
        .args(["calls", "show", "s-12", "--server", &n.admin_url("")])
        .output()
        .unwrap();
    let shown = stdout(&out);
    assert!(
        shown.contains("[greeting] split: variant a") && shown.contains("[offer] split: variant a"),
        "{shown}"
    );

    // The metrics: phonetree_split_total per node and variant equals the history.
    let (_, _, text) = metrics::scrape(&n, None).await;
    let samples = metrics::parse(&text);
    let counted = metrics::values(
        &samples,
        "phonetree_split_total",
        &[("machine", "greeting_split")],
        &["node", "variant"],
    );
    let history: BTreeMap<Vec<String>, f64> =
        by_variant.iter().map(|((n, v), c)| (vec![n.clone(), v.clone()], *c)).collect();
    assert_eq!(counted, history);
    assert!(history.keys().any(|k| k[1] == "a") && history.keys().any(|k| k[1] == "b"), "{history:?}");

    // The console's funnel shows each variant as its split's exit (counted since this start).
    let console: Value =
        client.get(n.admin_url("/admin/console")).send().await.unwrap().json().await.unwrap();
    let text = console.to_string();
    assert!(text.contains("variant_a") && text.contains("variant_b"), "{text}");
}
