//! Counters that add a variable (`add = { total = "{amount}" }`, `tests/data/counters/tally.toml`):
//! the engine adds a number and takes `not_number` for anything else (setting nothing), the sum
//! stops at the counter's bound, an input proven to give numbers needs no `not_number` and its
//! counter is capped in the proof, a script's value is added or not a number, `check` covers
//! `not_number`, and a real node answers every webhook of a call as `simulate` does.

use crate::common;

use common::*;
use phonetree::engine::{self, CallState, Event};
use phonetree::machine::Machine;
use phonetree::machine::route::COUNTER_MAX;
use phonetree::proof::explore;
use phonetree::proof::simulate::Simulation;
use serde_json::Value;

const TALLY: &str = "tests/data/counters/tally.toml";
const NUMBER: &str = "+6568880101";
const CALLER: &str = "+6591110000";

fn tally() -> Machine {
    compile_text(TALLY, &std::fs::read_to_string(repo().join(TALLY)).unwrap())
}

/// Plays `inputs` after the call's start; the state at the end and the texts said on the way.
fn play(m: &Machine, inputs: &[&str]) -> (CallState, Vec<String>) {
    let mut state = CallState::new(m, inbound(CALLER, NUMBER), 0);
    let mut said = Vec::new();
    let events = std::iter::once(Event::CallStarted).chain(inputs.iter().map(|i| event(i)));
    for (i, e) in events.enumerate() {
        let step = engine::step(m, &state, &e, i as u64 * 1000).unwrap();
        let reply = step.reply.as_ref().map(json).unwrap_or(Value::Null);
        for action in reply["callflow"].as_array().into_iter().flatten() {
            let p = &action["params"];
            said.extend(p["text"].as_str().or(p["promptMessage"].as_str()).map(str::to_string));
        }
        state = step.state;
    }
    (state, said)
}

fn var<'s>(s: &'s CallState, name: &str) -> Option<&'s str> {
    s.vars.get(name).map(String::as_str)
}

#[test]
fn the_engine_adds_numbers_and_takes_not_number_for_anything_else() {
    let m = tally();
    let (s, said) = play(&m, &["2#", "1"]);
    assert_eq!((var(&s, "total"), var(&s, "entries")), (Some("3"), Some("2")));
    assert!(said.contains(&"So far 3.".to_string()), "{said:?}");
    // `*` among the keys, and ten digits (beyond a counter's bound): not numbers. The node adds
    // nothing, not even its constant, and says so.
    let (s, said) = play(&m, &["4", "1*2", "9999999999", "00000000001"]);
    assert_eq!((var(&s, "total"), var(&s, "entries")), (Some("5"), Some("2")));
    assert!(said.contains(&"1*2 is not an amount.".to_string()), "{said:?}");
    assert!(said.contains(&"9999999999 is not an amount.".to_string()), "{said:?}");
    // Leading zeros are still a number within the bound; the route then ends the call.
    assert_eq!(said.last().map(String::as_str), Some("Your total is 5, in 2 amounts. Goodbye."));
    assert_eq!(s.phase, engine::Phase::Ended);
}

/// A machine whose input is proven to give numbers (digits only, at most 9): no `not_number`.
const PROVEN: &str = r#"
name = "proven"
start = "ask"
numbers = ["+6568880102"]

[defaults]
voice_profile = "en-US-BenjaminRUS"
digit_timeout_ms = 5000
overall_timeout_ms = 10000

[nodes.ask]
kind = "input"
prompt = "Key in an amount."
variable = "amount"
max_digits = 9
pattern = "[0-9]{1,9}"
example = "250"
next = "count"
invalid = "bye"

[nodes.count]
kind = "set"
add = { total = "{amount}" }
next = "enough"

[nodes.enough]
kind = "route"
rules = [{ var = "total", at_least = 1000, next = "bye" }]
else = "ask"

[nodes.bye]
kind = "hangup"
"#;

#[test]
fn a_proven_input_needs_no_not_number_and_its_sum_stops_at_the_bound() {
    let m = compile_text("proven.toml", PROVEN);
    let (s, _) = play(&m, &["999999999"]);
    assert_eq!(var(&s, "total"), Some("999999999"));
    // The counter's bound holds: two of the largest inputs stop at it (the route ends the call
    // once the sum passes 1000, so one caller reaches it through a fresh state each time).
    let mut state = CallState::new(&m, inbound(CALLER, "+6568880102"), 0);
    state.vars.insert("total".into(), COUNTER_MAX.to_string());
    let step = engine::step(&m, &state, &Event::CallStarted, 0).unwrap();
    let step = engine::step(&m, &step.state, &event("999999999"), 1000).unwrap();
    assert_eq!(var(&step.state, "total"), Some("999999999"));
    // The proof: the counter only grows by digits, so it is capped and the machine is proven.
    let report = explore::explore(&m);
    assert!(report.violations.is_empty(), "{:?}", report.violations);
    assert_eq!(report.edges_covered, report.edges);

    // The same input without its pattern may give `*`: `not_number` is required.
    let loose = PROVEN.replace("pattern = \"[0-9]{1,9}\"\n", "");
    let compiled = phonetree::machine::compile(&phonetree::machine::Source::new("loose.toml", loose));
    let errors: Vec<String> = compiled.errors().map(|d| d.to_string()).collect();
    assert!(
        errors
            .iter()
            .any(|e| e.contains("may not be a number") && e.contains("`*` too") && e.contains("not_number")),
        "{errors:?}"
    );
}

/// A script's stored value added to a counter: a number is added, anything else (or the key
/// missing) takes `not_number`, and `check` covers both.
const SCRIPTED: &str = r#"
name = "scripted"
start = "lookup"
numbers = ["+6568880103"]
allow_hosts = ["127.0.0.1:9"]

[defaults]
voice_profile = "en-US-BenjaminRUS"

[nodes.lookup]
kind = "script"
url = "http://127.0.0.1:9/points?caller={caller}"
response_key = "status"
default = "add"
failure = "bye"
store = { points = "points" }

[nodes.add]
kind = "set"
add = { total = "{points}" }
next = "told"
not_number = "unknown"

[nodes.told]
kind = "say"
text = "You have {total} points."
next = "bye"

[nodes.unknown]
kind = "say"
text = "We cannot count your points."
next = "bye"

[nodes.bye]
kind = "hangup"
"#;

fn simulate(file: &std::path::Path, args: &[&str]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_phonetree"))
        .arg("simulate")
        .arg(file)
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_script_value_is_added_when_a_number_and_check_covers_not_number() {
    let t = tempfile::tempdir().unwrap();
    let file = t.path().join("scripted.toml");
    std::fs::write(&file, SCRIPTED).unwrap();
    let heard = simulate(&file, &["@ok&points=42"]);
    assert!(heard.contains("You have 42 points."), "{heard}");
    for token in ["@ok&points=n%2Fa", "@ok&points", "@ok&points=1000000000"] {
        let heard = simulate(&file, &[token]);
        assert!(heard.contains("We cannot count your points."), "{token}: {heard}");
    }
    let m = compile_text("scripted.toml", SCRIPTED);
    let report = explore::explore(&m);
    assert!(report.violations.is_empty(), "{:?}", report.violations);
    assert_eq!(report.edges_covered, report.edges, "{:?}", report.covered);
}

#[test]
fn check_proves_the_tally_and_covers_not_number() {
    let m = tally();
    let report = explore::explore(&m);
    assert!(report.violations.is_empty(), "{:?}", report.violations);
    assert_eq!(report.edges_covered, report.edges);
    assert!(
        report.covered.iter().any(|(node, edge)| node == "count" && edge == "not_number"),
        "{:?}",
        report.covered
    );
}

/// The call a real node answers: each webhook's reply, compared with what `simulate` (the
/// `Simulation` it runs) answers for the same inputs.
#[tokio::test(flavor = "multi_thread")]
async fn a_node_answers_the_tally_as_simulate_does() {
    let m = tally();
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("machines");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(repo().join(TALLY), dir.join("tally.toml")).unwrap();
    let data = t.path().join("data");
    let key = store_action_key(&data).await;
    let n = Node::start(&data, &dir);
    let session = "tally-1";
    let inputs = ["4", "1*", "9999999999", "6#"];
    let mut sim = Simulation::new(&m, CALLER, NUMBER);
    let mut id: Option<String> = None;
    for (i, input) in std::iter::once("").chain(inputs).enumerate() {
        let e = if i == 0 { Event::CallStarted } else { event(input) };
        let turn = sim.play(&e, &mut |r| Err(format!("no script here: {}", r.node))).unwrap();
        let event_id = format!("e{i}");
        let v = Vca {
            session,
            event: &event_id,
            dtmf: (i > 0 && !input.is_empty()).then_some(input),
            client_action_id: id.as_deref(),
            status: if i == 0 { "CALL_RECEIVED" } else { "DTMF_RECEIVED" },
            direction: "INBOUND",
            source: CALLER,
            destination: NUMBER,
            event_data: false,
        };
        let a = post(&n.url("/webhooks/vca"), v.body()).await;
        assert_eq!(a.how, "applied", "{}", n.log());
        let got: Value = serde_json::from_slice(&unexpired(&a.body)).unwrap();
        let want = turn.reply.map(|f| json(&signed(&key, session, f))).unwrap_or(Value::Null);
        assert_eq!(got, want, "webhook {i} ({input:?})");
        id = a.client_action_id();
    }
    // The last amount passed 5: the call said its total and hung up.
    assert!(sim.state().ended());
}
