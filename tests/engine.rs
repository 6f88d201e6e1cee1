//! The pure engine's behaviour beyond the seeds: tries, transfers and what follows them, summaries,
//! repeated starts, replies after the end, and state it refuses.

use crate::common;

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

/// A caller who presses only `#` (the key that completes an entry) entered nothing: no input, as
/// an empty `dtmf`, on the simulator and the node alike.
#[test]
fn only_the_completing_hash_is_no_input() {
    let (m, st) = started();
    for keys in ["#", "##", " # "] {
        let step = engine::step(&m, &st, &Event::Digits(keys.into()), 1).unwrap();
        let none = engine::step(&m, &st, &Event::NoInput, 1).unwrap();
        assert_eq!(step.edges, none.edges, "{keys:?}");
        assert_eq!((step.state.tries, &step.state.phase), (1, &Phase::AwaitingInput), "{keys:?}: a try");
        assert_eq!(json(step.reply.as_ref().unwrap()), json(none.reply.as_ref().unwrap()), "{keys:?}");
    }
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
fn a_transfer_ends_with_the_bridge_and_keeps_the_summary_status() {
    let (m, st) = started();
    let bridged = engine::step(&m, &st, &Event::Digits("1".into()), 1).unwrap().state;
    // The bridge ends the session: its summary says how the transfer went.
    let busy = engine::step(&m, &bridged, &Event::SessionEnded { status: "BUSY".into() }, 2).unwrap();
    assert!(busy.reply.is_none() && busy.state.closed && busy.edges.is_empty());
    let transferred = |status: Option<&str>| Outcome::Transferred {
        destination: "+6511111111".into(),
        status: status.map(String::from),
    };
    assert_eq!(busy.state.outcome, Some(transferred(Some("BUSY"))));
    // A webhook at the transfer (8x8 documents none) ends the call; the summary then gives the status.
    let ended = engine::step(&m, &bridged, &Event::NoInput, 2).unwrap();
    assert_eq!(json(ended.reply.as_ref().unwrap())["callflow"], serde_json::json!([{"action": "hangup"}]));
    assert_eq!((ended.state.ended(), ended.state.outcome.clone()), (true, Some(transferred(None))));
    let summary = Event::SessionEnded { status: "NO_ANSWER".into() };
    let closed = engine::step(&m, &ended.state, &summary, 3).unwrap();
    assert_eq!(closed.state.outcome, Some(transferred(Some("NO_ANSWER"))));
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
    assert_eq!(
        closed.state.outcome,
        Some(Outcome::Transferred { destination: "+6511111111".into(), status: Some("COMPLETED".into()) })
    );
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
fn first_text(flow: &phonetree::callflow::Callflow) -> String {
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

fn script_machine(file: &str) -> phonetree::machine::Machine {
    let path = repo().join("tests/data/scripts").join(file);
    compile_text(&path.display().to_string(), &std::fs::read_to_string(&path).unwrap())
}

fn needs(
    m: &phonetree::machine::Machine,
    s: &CallState,
    e: &Event,
    answers: &[engine::Answer],
) -> engine::Request {
    match engine::step_with(m, s, e, 1, answers).unwrap() {
        engine::Stepped::Needs(r) => r,
        engine::Stepped::Done(step) => panic!("no request: {:?}", step.reply),
    }
}

fn done(
    m: &phonetree::machine::Machine,
    s: &CallState,
    e: &Event,
    answers: &[engine::Answer],
) -> engine::Step {
    match engine::step_with(m, s, e, 1, answers).unwrap() {
        engine::Stepped::Done(step) => *step,
        engine::Stepped::Needs(r) => panic!("needs {r:?}"),
    }
}

#[test]
fn a_keypress_script_prompts_with_the_digit_gap_repeats_then_takes_no_input() {
    let m = script_machine("extension.toml");
    let start = CallState::new(&m, inbound("+6591178965", "+6568880003"), 0);
    let first = done(&m, &start, &Event::CallStarted, &[]);
    let v = json(first.reply.as_ref().unwrap());
    let p = &v["callflow"][0]["params"];
    assert_eq!(v["callflow"][0]["action"], "sayAndCapture");
    // The widget's "gap between each digit" is 8x8's digitTimeout; the whole wait is gap × length.
    assert_eq!((p["minDigits"].as_u64(), p["maxDigits"].as_u64()), (Some(3), Some(4)));
    assert_eq!((p["digitTimeout"].as_u64(), p["overallTimeout"].as_u64()), (Some(5000), Some(20000)));
    // `repeat = 1`: one more prompt on no input, then the no-input branch.
    let again = done(&m, &first.state, &Event::NoInput, &[]);
    assert_eq!(
        json(again.reply.as_ref().unwrap())["callflow"][0]["params"]["promptMessage"],
        "We did not get that. Please key in a three or four digit extension."
    );
    let gone = done(&m, &again.state, &Event::NoInput, &[]);
    assert_eq!(json(gone.reply.as_ref().unwrap())["callflow"][0]["action"], "hangup");
    assert!(gone.state.ended());
}

#[test]
fn a_script_request_carries_the_keypress_a_form_body_and_headers_and_routes_on_the_answer() {
    let m = script_machine("extension.toml");
    let start = CallState::new(&m, inbound("+6591178965", "+6568880003"), 0);
    let waiting = done(&m, &start, &Event::CallStarted, &[]).state;
    let keys = Event::Digits("204#".into());
    let r = needs(&m, &waiting, &keys, &[]);
    assert_eq!(
        (r.method.to_string(), r.url.as_str()),
        ("POST".into(), "https://pbx.example.com/extensions/204")
    );
    let (ctype, body) = r.body.clone().unwrap();
    assert_eq!(ctype, "application/x-www-form-urlencoded");
    assert_eq!(String::from_utf8(body).unwrap(), "caller=%2B6591178965&extension=204&note=from%20ivr");
    assert_eq!(
        r.headers,
        [("Authorization".into(), "Bearer s3cret".into()), ("X-Source".into(), "phonetree".into())]
    );
    assert_eq!(r.timeout_ms, 1500);
    // The answer names the number to ring: a stored variable in the transfer's destination.
    let ok = engine::Answer::Http {
        status: 200,
        body: br#"{"status": "free", "number": "+6560001234"}"#.to_vec(),
    };
    let step = done(&m, &waiting, &keys, &[ok]);
    let v = json(step.reply.as_ref().unwrap());
    assert_eq!(
        (v["callflow"][0]["action"].as_str(), v["callflow"][0]["params"]["destination"].as_str()),
        (Some("makeCall"), Some("+6560001234"))
    );
    assert_eq!(step.state.vars["target"], "+6560001234");
    // A branch value: busy, with the keypress spoken back.
    let busy = engine::Answer::Http { status: 200, body: br#"{"status": "busy", "number": ""}"#.to_vec() };
    let step = done(&m, &waiting, &keys, &[busy]);
    assert_eq!(
        json(step.reply.as_ref().unwrap())["callflow"][0]["params"]["text"],
        "Extension 2 0 4 is busy. Goodbye."
    );
    // No answer: the failure branch.
    let down = engine::Answer::Failed { reason: "timeout".into() };
    let step = done(&m, &waiting, &keys, &[down]);
    assert_eq!(
        json(step.reply.as_ref().unwrap())["callflow"][0]["params"]["text"],
        "Sorry, we cannot reach that extension now."
    );
}

#[test]
fn a_raw_json_script_posts_a_json_object_and_plays_the_url_it_gets() {
    let m = script_machine("greeting.toml");
    let start = CallState::new(&m, inbound("+6591178965", "+6500000000"), 0);
    let r = needs(&m, &start, &Event::CallStarted, &[]);
    let (ctype, body) = r.body.clone().unwrap();
    assert_eq!(ctype, "application/json");
    let sent: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(sent, serde_json::json!({"caller": "+6591178965", "lang": "en"}));
    let clip = engine::Answer::Http {
        status: 200,
        body: br#"{"audio": {"url": "https://cdn.example.com/a.mp3"}}"#.to_vec(),
    };
    let v = json(done(&m, &start, &Event::CallStarted, &[clip]).reply.as_ref().unwrap());
    let actions: Vec<&str> =
        v["callflow"].as_array().unwrap().iter().map(|a| a["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["say", "playFile", "say", "hangup"]);
    assert_eq!(v["callflow"][1]["params"]["fileUrl"], "https://cdn.example.com/a.mp3");
    // A value that is not a URL is never played: the failure branch.
    let bad =
        engine::Answer::Http { status: 200, body: br#"{"audio": {"url": "javascript:alert(1)"}}"#.to_vec() };
    let v = json(done(&m, &start, &Event::CallStarted, &[bad]).reply.as_ref().unwrap());
    assert_eq!(v["callflow"][0]["params"]["text"], "Good morning. Goodbye.");
}

#[test]
fn built_in_variables_render_including_the_call_id() {
    let m = compile_text(
        "ids.toml",
        r#"
name = "ids"
start = "hello"
numbers = ["+6500000000"]
[defaults]
voice_profile = "en-US-BenjaminRUS"
[nodes.hello]
kind = "say"
text = "Call {call_id} in session {session_id} from {caller} to {virtual_number} at {node}."
next = "bye"
[nodes.bye]
kind = "hangup"
"#,
    );
    let mut call = inbound("+6591178965", "+6500000000");
    call.call_id = Some("c-42".into());
    let step = engine::step(&m, &CallState::new(&m, call, 0), &Event::CallStarted, 0).unwrap();
    assert_eq!(
        json(step.reply.as_ref().unwrap())["callflow"][0]["params"]["text"],
        "Call c-42 in session s-1 from +6591178965 to +6500000000 at hello."
    );
}
