//! The pure engine's behaviour beyond the seeds: tries, transfers and what follows them, summaries,
//! repeated starts, replies after the end, and state it refuses.

mod common;

use common::*;
use phonetree::engine::{self, CallState, Event, Outcome, Phase, StepError};
use phonetree::machine::Edge;

const MACHINE: &str = r#"
name = "desk"
start = "welcome"
numbers = ["+6500000000"]

[settings]
agent = "+6511111111"

[defaults]
voice_profile = "en-GB-Emma"
max_digits = 1
tries = 2

[nodes.welcome]
kind = "say"
text = "Hello {caller}."
next = "jingle"

[nodes.jingle]
kind = "play"
file_url = "https://example.com/jingle.mp3"
next = "menu"

[nodes.menu]
kind = "menu"
prompt = "Press 1 for an agent."
reprompt = "Once more: press 1 for an agent."
branches = { 1 = "agent" }
invalid = "sorry"
no_input = "bye"

[nodes.agent]
kind = "transfer"
destination = "{agent}"
call_recording = true
after = "survey"

[nodes.survey]
kind = "say"
text = "Thanks for talking to us."
next = "bye"

[nodes.sorry]
kind = "say"
text = "Sorry."
next = "bye"

[nodes.bye]
kind = "hangup"
"#;

fn started() -> (phonetree::machine::Machine, CallState) {
    let m = compile_text("desk.toml", MACHINE);
    let mut call = outbound("+6500000000", "+6599999999");
    call.direction = engine::Direction::Inbound;
    call.source = "+6599999999".into();
    call.destination = "+6500000000".into();
    let step = engine::step(&m, &CallState::new(&m, call, 0), &Event::CallStarted, 0).unwrap();
    let flow = json(step.reply.as_ref().unwrap());
    assert_eq!(flow["callflow"][0]["params"]["text"], "Hello +6599999999.");
    assert_eq!(flow["callflow"][1]["action"], "playFile");
    assert_eq!(flow["callflow"][2]["action"], "sayAndCapture");
    assert_eq!(step.entered.len(), 3);
    (m, step.state)
}

#[test]
fn chains_follow_next_edges_into_one_reply() {
    let (m, st) = started();
    assert_eq!(st.phase, Phase::AwaitingInput);
    assert_eq!(m.node(st.node).unwrap().name, "menu");
    assert_eq!(st.path.len(), 3);
}

#[test]
fn a_failed_try_reprompts_then_takes_the_branch() {
    let (m, st) = started();
    let s1 = engine::step(&m, &st, &Event::Digits("7".into()), 1).unwrap();
    assert_eq!(
        json(s1.reply.as_ref().unwrap())["callflow"][0]["params"]["promptMessage"],
        "Once more: press 1 for an agent."
    );
    assert_eq!((s1.state.tries, s1.state.seq), (1, st.seq + 1));
    let s2 = engine::step(&m, &s1.state, &Event::NoInput, 2).unwrap();
    assert_eq!(s2.edges[0].1, Edge::NoInput);
    assert_eq!(json(s2.reply.as_ref().unwrap())["callflow"], serde_json::json!([{"action": "hangup"}]));
    assert_eq!(s2.state.outcome, Some(Outcome::HungUp));
}

#[test]
fn a_valid_key_resets_tries() {
    let (m, st) = started();
    let s1 = engine::step(&m, &st, &Event::Digits("7".into()), 1).unwrap();
    let s2 = engine::step(&m, &s1.state, &Event::Digits("1#".into()), 2).unwrap();
    assert_eq!(s2.state.tries, 0);
    assert_eq!(s2.state.keypress.as_deref(), Some("1"));
    let flow = json(s2.reply.as_ref().unwrap());
    assert_eq!(
        flow["callflow"][0],
        serde_json::json!({"action": "makeCall", "params": {"source": "+6500000000", "destination": "+6511111111", "callRecording": true}})
    );
    assert!(flow["clientActionId"].as_str().unwrap().starts_with("pt.desk.agent."));
    assert_eq!(s2.state.phase, Phase::Bridged);
}

#[test]
fn after_the_bridge_ends_the_call_continues() {
    let (m, st) = started();
    let bridged = engine::step(&m, &st, &Event::Digits("1".into()), 1).unwrap().state;
    let after = engine::step(&m, &bridged, &Event::NoInput, 2).unwrap();
    assert_eq!(after.edges[0].1, Edge::AfterTransfer);
    assert_eq!(
        json(after.reply.as_ref().unwrap())["callflow"][0]["params"]["text"],
        "Thanks for talking to us."
    );
    assert!(after.state.ended());
}

#[test]
fn a_summary_closes_the_call_and_later_webhooks_hang_up() {
    let (m, st) = started();
    let closed = engine::step(&m, &st, &Event::SessionEnded { status: "COMPLETED".into() }, 1).unwrap();
    assert!(closed.reply.is_none());
    assert!(closed.state.closed);
    assert_eq!(closed.state.outcome, Some(Outcome::CallerLeft { status: "COMPLETED".into() }));
    let late = engine::step(&m, &closed.state, &Event::Digits("1".into()), 2).unwrap();
    assert_eq!(json(late.reply.as_ref().unwrap())["callflow"], serde_json::json!([{"action": "hangup"}]));
    assert_eq!(late.state.node, closed.state.node);
}

#[test]
fn a_summary_during_a_bridge_records_the_transfer() {
    let (m, st) = started();
    let bridged = engine::step(&m, &st, &Event::Digits("1".into()), 1).unwrap().state;
    let closed = engine::step(&m, &bridged, &Event::SessionEnded { status: "COMPLETED".into() }, 2).unwrap();
    assert_eq!(closed.state.outcome, Some(Outcome::Transferred { destination: "+6511111111".into() }));
}

#[test]
fn a_repeated_start_repeats_the_current_prompt_without_advancing() {
    let (m, st) = started();
    let again = engine::step(&m, &st, &Event::CallStarted, 5).unwrap();
    assert_eq!((again.state.node, again.state.seq, again.state.tries), (st.node, st.seq, st.tries));
    assert_eq!(again.reply.unwrap(), engine::current_reply(&m, &st).unwrap());
}

#[test]
fn the_engine_refuses_state_it_cannot_trust() {
    let (m, st) = started();
    let other = compile_text("other.toml", &MACHINE.replace("name = \"desk\"", "name = \"other\""));
    assert!(matches!(engine::step(&other, &st, &Event::NoInput, 1), Err(StepError::MachineMismatch { .. })));
    let fresh = CallState::new(&m, st.call.clone(), 0);
    assert!(matches!(engine::step(&m, &fresh, &Event::NoInput, 1), Err(StepError::NotStarted(_))));
}

#[test]
fn steps_are_deterministic() {
    let (m, st) = started();
    for event in [Event::Digits("1".into()), Event::Digits("9".into()), Event::NoInput, Event::CallStarted] {
        assert_eq!(engine::step(&m, &st, &event, 7), engine::step(&m, &st, &event, 7));
    }
}

/// The text of the first action of a callflow (a say, or a capture's prompt).
fn first_text(flow: &phonetree::engine::callflow::Callflow) -> String {
    let v = json(flow);
    let p = &v["callflow"][0]["params"];
    p["text"].as_str().or(p["promptMessage"].as_str()).unwrap_or_default().to_string()
}

#[test]
fn an_input_node_stores_the_keys_and_later_prompts_speak_them() {
    let m = bundled("callback_request");
    let (flows, state) = play_outbound(&m, outbound("+6568880001", "+6591178965"), &["91234567#", "1"]);
    assert_eq!(state.vars.get("callback").map(String::as_str), Some("91234567"));
    assert_eq!(
        first_text(&flows[1]),
        "You keyed in 9 1 2 3 4 5 6 7. To confirm, press 1. To key it in again, press 2."
    );
    assert_eq!(
        first_text(&flows[2]),
        "Thank you. We will call you back on 9 1 2 3 4 5 6 7 within one business day."
    );
    assert!(state.ended());
    // Keying it in again replaces the value.
    let (_, state) =
        play_outbound(&m, outbound("+6568880001", "+6591178965"), &["91234567", "2", "6598765432"]);
    assert_eq!(state.vars["callback"], "6598765432");
}

#[test]
fn an_input_node_rejects_keys_outside_its_bounds_and_pattern_then_gives_up() {
    let m = bundled("callback_request");
    // Too short, then letters-free junk with `*`: two tries (the machine's default), then `sorry`.
    let (flows, state) = play_outbound(&m, outbound("+6568880001", "+6591178965"), &["1234", "12*45678"]);
    assert!(first_text(&flows[1]).starts_with("Sorry, that did not look like a phone number."));
    assert_eq!(first_text(&flows[2]), "Sorry, we could not take your number. Please call again later.");
    assert!(state.vars.is_empty(), "{:?}", state.vars);
    assert!(state.ended());
    // 16 digits is over max_digits.
    let (_, state) = play_outbound(&m, outbound("+6568880001", "+6591178965"), &["1234567890123456"]);
    assert_eq!((state.tries, state.phase), (1, Phase::AwaitingInput));
}

#[test]
fn variables_survive_the_store_encoding() {
    let m = bundled("callback_request");
    let (_, state) = play_outbound(&m, outbound("+6568880001", "+6591178965"), &["91234567"]);
    let raw = phonetree::store::encode_session(&state).unwrap();
    assert!(raw.len() < 256, "{} bytes", raw.len());
    assert_eq!(phonetree::store::decode_session("s-1", &raw).unwrap(), state);
}
