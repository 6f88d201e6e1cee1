// The body of every fuzz target, in one place: `fuzz/fuzz_targets/*.rs` run them under libFuzzer,
// and `tests/fuzz_corpus.rs` replays the checked-in corpus through them on every `cargo test`.
// Each may return early on input it rejects, and asserts what must hold for input it accepts; none
// may panic otherwise.

use std::sync::OnceLock;

use phonetree::callflow::ClientActionId;
use phonetree::callflow::{Use, validate};
use phonetree::engine::{self, CallInfo, CallState, Direction, Event};
use phonetree::machine::{self, Machine, Source};
use phonetree::webhook::{inbound, wire};

/// The Advanced IVR machine, compiled once: the machine webhooks and stored states are played on.
fn abc() -> &'static Machine {
    static ABC: OnceLock<Machine> = OnceLock::new();
    ABC.get_or_init(|| {
        let text = include_str!("../machines/abc_restaurant.toml");
        machine::compile(&Source::new("abc_restaurant.toml", text))
            .machine
            .expect("the bundled machine compiles")
    })
}

/// Machine definition bytes → compile, as TOML and as JSON → prove whatever compiles; and the
/// same text with one of its integers replaced by an extreme one (the input's last byte picks
/// which integer, its first byte which value), so that every numeric field meets i64::MIN, -1, u32::MAX + 1,
/// i64::MAX, ... however rarely the fuzzer would type them. Built with debug assertions (see
/// README.md), an overflow anywhere panics.
pub fn compile_machine(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    compile_text(text);
    if let (Some(&which), Some(&value)) = (data.last(), data.first())
        && let Some(spliced) = with_extreme_integer(text, which, value)
    {
        compile_text(&spliced);
    }
}

fn compile_text(text: &str) {
    for file in ["fuzz.toml", "fuzz.json"] {
        let compiled = machine::compile(&Source::new(file, text));
        for d in &compiled.diagnostics {
            assert!(!d.to_string().is_empty());
        }
        if let Some(m) = compiled.machine {
            assert!(compiled.diagnostics.iter().all(|d| !d.is_error()));
            let _ = phonetree::proof::explore::explore(&m);
        }
    }
}

/// Integers at the edges of every type a machine file's numbers meet.
const EXTREME_INTEGERS: [&str; 12] = [
    "-9223372036854775808",
    "-9223372036854775807",
    "-4294967296",
    "-1",
    "0",
    "256",
    "65536",
    "600001",
    "4294967295",
    "4294967296",
    "1099511627776",
    "9223372036854775807",
];

/// `text` with one run of digits (the `which`-th, counting round) replaced by an extreme integer
/// (the `value`-th, counting round).
fn with_extreme_integer(text: &str, which: u8, value: u8) -> Option<String> {
    let bytes = text.as_bytes();
    let mut runs = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i].is_ascii_digit() {
            let start = i;
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                i += 1;
            }
            runs.push(start..i);
        } else {
            i += 1;
        }
    }
    let run = runs.get(usize::from(which) % runs.len().max(1))?.clone();
    let value = EXTREME_INTEGERS[usize::from(value) % EXTREME_INTEGERS.len()];
    let start = if run.start > 0 && bytes[run.start - 1] == b'-' { run.start - 1 } else { run.start };
    Some(format!("{}{value}{}", &text[..start], &text[run.end..]))
}

/// Webhook body bytes → parse (CALL_ACTION, SESSION_SUMMARY, a callflow) → step the engine.
pub fn webhook(data: &[u8]) {
    let _ = inbound::session_summary(data);
    if let Ok(flow) = wire::decode(data) {
        let _ = validate(&flow, Use::WebhookReply);
        assert!(
            wire::decode(&wire::encode(&flow).expect("a callflow encodes")).is_ok(),
            "an encoded callflow decodes"
        );
    }
    let Ok(ca) = inbound::call_action(data) else { return };
    if let Some(id) = ca.client_action_id.as_deref().and_then(ClientActionId::parse) {
        assert_eq!(ClientActionId::parse(&id.to_string()), Some(id));
    }
    let m = abc();
    let call = CallInfo {
        session_id: ca.session_id.clone(),
        direction: ca.direction.unwrap_or(Direction::Inbound),
        source: ca.source.clone(),
        destination: ca.destination.clone(),
        call_id: ca.call_id.clone(),
    };
    let started =
        engine::step(m, &CallState::new(m, call, 0), &Event::CallStarted, 0).expect("a call starts");
    let step =
        engine::step(m, &started.state, &ca.event(), 1).expect("any webhook event steps a waiting call");
    let reply = step.reply.expect("a webhook is answered");
    assert!(validate(&reply, Use::WebhookReply).is_empty(), "every reply passes 8x8's rules");
}

/// Stored session bytes → decode → (if they decode) encode again, and step what they hold.
pub fn stored_state(data: &[u8]) {
    let Ok(state) = phonetree::store::decode_session("fuzz", data) else { return };
    let again = phonetree::store::encode_session(&state).expect("a decoded state encodes");
    assert_eq!(phonetree::store::decode_session("fuzz", &again).expect("and decodes again"), state);
    // A state pointing anywhere in the machine: stepping it errs or answers, never panics.
    let m = abc();
    let mut state = state;
    state.machine = m.name().to_string();
    state.version = m.version();
    for event in [Event::NoInput, Event::Digits("1".into()), Event::CallStarted] {
        if let Ok(step) = engine::step(m, &state, &event, 2)
            && let Some(reply) = step.reply
        {
            assert!(validate(&reply, Use::WebhookReply).is_empty());
        }
    }
}
