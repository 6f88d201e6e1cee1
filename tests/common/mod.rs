//! Helpers shared by the integration tests: loading the bundled machines, playing calls, comparing JSON.
#![allow(dead_code)]

use std::path::PathBuf;

use phonetree::engine::callflow::Callflow;
use phonetree::engine::{self, CallInfo, CallState, Direction, Event};
use phonetree::machine::{self, Machine, Source};
use phonetree::webhook::wire;
use serde_json::Value;

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A bundled machine, compiled (panics with the diagnostics if it does not compile).
pub fn bundled(name: &str) -> Machine {
    let path = repo().join("machines").join(format!("{name}.toml"));
    let text = std::fs::read_to_string(&path).unwrap();
    compile_text(&path.display().to_string(), &text)
}

pub fn compile_text(file: &str, text: &str) -> Machine {
    let compiled = machine::compile(&Source::new(file, text));
    let errors: Vec<String> = compiled.errors().map(|d| d.to_string()).collect();
    compiled.machine.unwrap_or_else(|| panic!("{file} does not compile:\n{}", errors.join("\n")))
}

pub fn outbound(source: &str, destination: &str) -> CallInfo {
    CallInfo {
        session_id: "s-1".into(),
        direction: Direction::Outbound,
        source: source.into(),
        destination: destination.into(),
    }
}

/// `1`, `12#` → digits; `-` → no input.
pub fn event(input: &str) -> Event {
    if input == "-" { Event::NoInput } else { Event::Digits(input.into()) }
}

/// Plays an outbound call: the opening callflow, then one reply per input. Returns every callflow
/// and the final state.
pub fn play_outbound(m: &Machine, call: CallInfo, inputs: &[&str]) -> (Vec<Callflow>, CallState) {
    let first = engine::start_outbound(m, call, 0).unwrap();
    let mut flows = vec![first.reply.unwrap()];
    let mut state = first.state;
    for (i, input) in inputs.iter().enumerate() {
        let step = engine::step(m, &state, &event(input), (i as u64 + 1) * 1000).unwrap();
        flows.push(step.reply.expect("a webhook is always answered"));
        state = step.state;
    }
    (flows, state)
}

/// A callflow's JSON with what the seeds compare left out: `clientActionId`, and null fields.
pub fn comparable(mut v: Value) -> Value {
    fn drop_nulls(v: &mut Value) {
        match v {
            Value::Object(map) => {
                map.retain(|_, x| !x.is_null());
                map.values_mut().for_each(drop_nulls);
            }
            Value::Array(items) => items.iter_mut().for_each(drop_nulls),
            _ => {}
        }
    }
    if let Value::Object(map) = &mut v {
        map.remove("clientActionId");
    }
    drop_nulls(&mut v);
    v
}

pub fn golden(path: &str) -> Value {
    let file = repo().join("tests/data").join(path);
    let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()))
}

pub fn json(flow: &Callflow) -> Value {
    wire::to_value(flow)
}
