//! 8x8's JSON for callflows: the engine's `Callflow` encoded exactly as 8x8 documents it.
//!
//! Parameters the machine leaves unset are left out (8x8 applies its own default), keys come in the
//! order of 8x8's examples, and a whole speed is written as an integer (`"speed": 1`), as 8x8 does.

use serde::ser::Serializer;
use serde::{Deserialize, Serialize};

use crate::callflow::{Action, Callflow, MakeCall, PlayFile, Say, SayAndCapture, Speed};

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

/// A callflow that could not be written as JSON. Plain structs of strings and integers always
/// can be; this exists so that the impossible is an error, never a 200 with an empty body.
#[derive(Debug, thiserror::Error)]
#[error("cannot encode the callflow as JSON: {0}")]
pub struct EncodeError(#[from] serde_json::Error);

/// The callflow as the JSON body 8x8 expects.
pub fn encode(flow: &Callflow) -> Result<Vec<u8>, EncodeError> {
    let mut body = Vec::with_capacity(REPLY_BYTES_RESERVED);
    serde_json::to_writer(&mut body, &envelope(flow))?;
    Ok(body)
}

/// The reply when even a fallback cannot be encoded (it always can: it is plain text): hang up
/// rather than answer 200 with an empty body.
const LAST_RESORT: &[u8] = br#"{"callflow":[{"action":"hangup"}]}"#;

/// The callflow as the JSON body 8x8 expects, or, should it not encode, a hangup: for the
/// fallback a fault answers with, which must answer something.
pub fn encode_or_hang_up(flow: &Callflow) -> Vec<u8> {
    encode(flow).unwrap_or_else(|_| LAST_RESORT.to_vec())
}

/// Bytes reserved for a reply: the bundled machines' prompts are about 400 bytes with their
/// `clientActionId`, so most replies are written without growing their buffer (it grows past this).
const REPLY_BYTES_RESERVED: usize = 512;

/// The callflow as a JSON value (tests and `simulate --json`).
pub fn to_value(flow: &Callflow) -> Result<serde_json::Value, EncodeError> {
    Ok(serde_json::to_value(envelope(flow))?)
}

fn envelope(flow: &Callflow) -> Envelope<'_> {
    Envelope {
        client_action_id: flow.client_action_id.as_deref(),
        callflow: flow.actions.iter().map(wire).collect(),
    }
}

/// The callflow JSON shapes, owned, for reading callflows back (tests, fuzzing, the `call` stand-in).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct InEnvelope {
    client_action_id: Option<String>,
    callflow: Vec<InAction>,
}

#[derive(Deserialize)]
#[serde(tag = "action", content = "params", rename_all = "camelCase", deny_unknown_fields)]
enum InAction {
    Say(InSay),
    SayAndCapture(InCapture),
    PlayFile(InPlay),
    MakeCall(InMakeCall),
    Hangup,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct InSay {
    text: String,
    voice_profile: String,
    repetition: Option<u8>,
    speed: Option<f64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct InCapture {
    prompt_message: String,
    voice_profile: String,
    repetition: Option<u8>,
    speed: Option<f64>,
    min_digits: Option<u8>,
    max_digits: Option<u8>,
    digit_timeout: Option<u32>,
    overall_timeout: Option<u32>,
    complete_on_hash: Option<bool>,
    no_of_tries: Option<u8>,
    success_message: Option<String>,
    failure_message: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct InPlay {
    file_url: String,
    repetition: Option<u8>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct InMakeCall {
    source: String,
    destination: String,
    call_recording: Option<bool>,
}

fn speed_in(s: Option<f64>) -> Option<Speed> {
    s.map(|s| Speed((s * 100.0).round().clamp(0.0, f64::from(u16::MAX)) as u16))
}

/// Reads a callflow back from 8x8 JSON; unknown actions or parameters are errors.
pub fn decode(body: &[u8]) -> Result<Callflow, String> {
    let env: InEnvelope = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let actions = env
        .callflow
        .into_iter()
        .map(|a| match a {
            InAction::Say(s) => Action::Say(Say {
                text: s.text,
                voice_profile: s.voice_profile,
                repetition: s.repetition,
                speed: speed_in(s.speed),
            }),
            InAction::SayAndCapture(c) => Action::SayAndCapture(SayAndCapture {
                prompt_message: c.prompt_message,
                voice_profile: c.voice_profile,
                repetition: c.repetition,
                speed: speed_in(c.speed),
                min_digits: c.min_digits,
                max_digits: c.max_digits,
                digit_timeout_ms: c.digit_timeout,
                overall_timeout_ms: c.overall_timeout,
                complete_on_hash: c.complete_on_hash,
                no_of_tries: c.no_of_tries,
                success_message: c.success_message,
                failure_message: c.failure_message,
            }),
            InAction::PlayFile(p) => {
                Action::PlayFile(PlayFile { file_url: p.file_url, repetition: p.repetition })
            }
            InAction::MakeCall(m) => Action::MakeCall(MakeCall {
                source: m.source,
                destination: m.destination,
                call_recording: m.call_recording,
            }),
            InAction::Hangup => Action::Hangup,
        })
        .collect();
    Ok(Callflow { client_action_id: env.client_action_id, actions })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_resort_is_the_hangup_encoded() {
        let hangup = encode(&Callflow::hangup()).unwrap();
        let last: serde_json::Value = serde_json::from_slice(LAST_RESORT).unwrap();
        assert_eq!(last, serde_json::from_slice::<serde_json::Value>(&hangup).unwrap());
        assert_eq!(encode_or_hang_up(&Callflow::hangup()), hangup);
    }

    #[test]
    fn encode_then_decode_is_identity_for_the_seed_replies() {
        for file in
            ["advanced/initial.json", "advanced/post_call.json", "simple/initial.json", "simple/hangup.json"]
        {
            let path = format!("{}/tests/data/seeds/{file}", env!("CARGO_MANIFEST_DIR"));
            let flow = decode(&std::fs::read(&path).unwrap()).unwrap();
            let again = decode(&encode(&flow).unwrap()).unwrap();
            assert_eq!(flow, again, "{file}");
        }
    }
}
