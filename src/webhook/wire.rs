//! 8x8's JSON for callflows: the engine's `Callflow` encoded exactly as 8x8 documents it.
//!
//! Parameters the machine leaves unset are left out (8x8 applies its own default), keys come in the
//! order of 8x8's examples, and a whole speed is written as an integer (`"speed": 1`), as 8x8 does.

use serde::Serialize;
use serde::ser::Serializer;

use crate::engine::callflow::{Action, Callflow, Speed};

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Envelope<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    client_action_id: Option<&'a str>,
    callflow: Vec<Wire<'a>>,
}

#[derive(Serialize)]
#[serde(tag = "action", content = "params", rename_all = "camelCase")]
enum Wire<'a> {
    Say(SayParams<'a>),
    SayAndCapture(CaptureParams<'a>),
    PlayFile(PlayParams<'a>),
    MakeCall(MakeCallParams<'a>),
    Hangup,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SayParams<'a> {
    text: &'a str,
    voice_profile: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    repetition: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "speed")]
    speed: Option<Speed>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CaptureParams<'a> {
    prompt_message: &'a str,
    voice_profile: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    repetition: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "speed")]
    speed: Option<Speed>,
    #[serde(skip_serializing_if = "Option::is_none")]
    min_digits: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_digits: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    digit_timeout: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    overall_timeout: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    complete_on_hash: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    no_of_tries: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    success_message: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    failure_message: Option<&'a str>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PlayParams<'a> {
    file_url: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    repetition: Option<u8>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct MakeCallParams<'a> {
    source: &'a str,
    destination: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    call_recording: Option<bool>,
}

fn speed<S: Serializer>(speed: &Option<Speed>, s: S) -> Result<S::Ok, S::Error> {
    match speed {
        Some(Speed(h)) if h % 100 == 0 => s.serialize_u16(h / 100),
        Some(sp) => s.serialize_f64(sp.as_f64()),
        None => s.serialize_none(),
    }
}

fn wire(action: &Action) -> Wire<'_> {
    match action {
        Action::Say(a) => Wire::Say(SayParams {
            text: &a.text,
            voice_profile: &a.voice_profile,
            repetition: a.repetition,
            speed: a.speed,
        }),
        Action::SayAndCapture(a) => Wire::SayAndCapture(CaptureParams {
            prompt_message: &a.prompt_message,
            voice_profile: &a.voice_profile,
            repetition: a.repetition,
            speed: a.speed,
            min_digits: a.min_digits,
            max_digits: a.max_digits,
            digit_timeout: a.digit_timeout_ms,
            overall_timeout: a.overall_timeout_ms,
            complete_on_hash: a.complete_on_hash,
            no_of_tries: a.no_of_tries,
            success_message: a.success_message.as_deref(),
            failure_message: a.failure_message.as_deref(),
        }),
        Action::PlayFile(a) => Wire::PlayFile(PlayParams { file_url: &a.file_url, repetition: a.repetition }),
        Action::MakeCall(a) => Wire::MakeCall(MakeCallParams {
            source: &a.source,
            destination: &a.destination,
            call_recording: a.call_recording,
        }),
        Action::Hangup => Wire::Hangup,
    }
}

/// The callflow as the JSON body 8x8 expects.
pub fn encode(flow: &Callflow) -> Vec<u8> {
    let envelope = Envelope {
        client_action_id: flow.client_action_id.as_deref(),
        callflow: flow.actions.iter().map(wire).collect(),
    };
    // Serialising plain structs of strings and integers into memory cannot fail.
    serde_json::to_vec(&envelope).unwrap_or_default()
}

/// The callflow as a JSON value (tests and `simulate --json`).
pub fn to_value(flow: &Callflow) -> serde_json::Value {
    serde_json::from_slice(&encode(flow)).unwrap_or_default()
}
