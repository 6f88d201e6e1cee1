//! 8x8's webhooks in: Voice Call Action (VCA) and Voice Session Summary (VSS) bodies, parsed into
//! plain values. Lenient where 8x8's documents disagree (`payload.dtmf` or `payload.eventData.dtmf`,
//! a number or a string, null or absent; unknown fields), strict where a call could go wrong
//! (no session id, no event id, the wrong event type).

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use crate::callflow::ID_BYTES_MAX;
use crate::callflow::{Leg, SessionSummary};
use crate::engine::{Direction, Event};

/// Most legs a session summary may list: a call has its caller's leg and at most a few
/// transfers; more is not a summary 8x8 sends, and would grow the store.
pub const LEGS_MAX: usize = 16;
/// Longest text field of a session summary or a CALL_ACTION kept (statuses, numbers, keys,
/// times, ids, error messages are far shorter), so a stored summary, call state and transcript
/// stay small.
pub const TEXT_BYTES_MAX: usize = 256;

/// A webhook that cannot be used, with the JSON error code and message the client gets (4xx).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct BadWebhook {
    pub code: &'static str,
    pub message: String,
}

fn bad(code: &'static str, message: impl Into<String>) -> BadWebhook {
    BadWebhook { code, message: message.into() }
}

/// One CALL_ACTION (or inbound CALL_STATUS `CALL_RECEIVED`) webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallAction {
    pub event_id: String,
    pub session_id: String,
    pub call_id: Option<String>,
    pub call_status: Option<String>,
    pub direction: Option<Direction>,
    pub source: String,
    pub destination: String,
    /// The keys captured: `None` when 8x8 sent `dtmf: null` or no `dtmf`.
    pub dtmf: Option<String>,
    pub client_action_id: Option<String>,
}

impl CallAction {
    /// An inbound call reaching phonetree: answer with the start node.
    pub fn is_call_received(&self) -> bool {
        self.call_status.as_deref() == Some("CALL_RECEIVED")
    }

    /// The engine event this webhook carries.
    pub fn event(&self) -> Event {
        if self.is_call_received() {
            return Event::CallStarted;
        }
        self.dtmf.as_deref().map_or(Event::NoInput, Event::keys)
    }
}

/// A JSON value read with every object's keys checked for duplicates: JSON leaves their meaning
/// open (serde_json keeps the last), and two `dtmf`s must not be read two ways.
struct Strict(Value);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Strict, D::Error> {
        d.deserialize_any(StrictVisitor).map(Strict)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        Strict::deserialize(d).map(|s| s.0)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(Strict(v)) = seq.next_element()? {
            items.push(v);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if object.contains_key(&key) {
                return Err(de::Error::custom(format_args!("duplicate key `{key}`")));
            }
            let Strict(value) = map.next_value()?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

/// The payload fields phonetree reads (CALL_ACTION's and SESSION_SUMMARY's); any other key is
/// checked for repeats and skipped, not kept.
const PAYLOAD_KEYS: [&str; 17] = [
    "eventId",
    "sessionId",
    "callId",
    "callStatus",
    "callDirection",
    "source",
    "destination",
    "dtmf",
    "clientActionId",
    "eventData",
    "sessionStatus",
    "lastAction",
    "callCount",
    "startTime",
    "endTime",
    "details",
    "errorDetails",
];

/// A JSON key, borrowed from the body when it has no escapes.
struct Key<'de>(std::borrow::Cow<'de, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Key<'de>, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a key")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(std::borrow::Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(std::borrow::Cow::Owned(v.to_string())))
            }
        }
        d.deserialize_str(KeyVisitor)
    }
}

/// Fails on a key already seen in the same object.
fn once<'de, E: de::Error>(seen: &mut Vec<Key<'de>>, key: Key<'de>) -> Result<(), E> {
    if seen.iter().any(|k| k.0 == key.0) {
        return Err(E::custom(format_args!("duplicate key `{}`", key.0)));
    }
    seen.push(key);
    Ok(())
}

/// A JSON value checked for repeated keys at any depth, and dropped.
struct Skipped;

impl<'de> Deserialize<'de> for Skipped {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Skipped, D::Error> {
        d.deserialize_any(SkippedVisitor)
    }
}

struct SkippedVisitor;

impl<'de> Visitor<'de> for SkippedVisitor {
    type Value = Skipped;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<Skipped, E> {
        Ok(Skipped)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Skipped, E> {
        Ok(Skipped)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Skipped, E> {
        Ok(Skipped)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Skipped, E> {
        Ok(Skipped)
    }
    fn visit_str<E>(self, _: &str) -> Result<Skipped, E> {
        Ok(Skipped)
    }
    fn visit_unit<E>(self) -> Result<Skipped, E> {
        Ok(Skipped)
    }
    fn visit_none<E>(self) -> Result<Skipped, E> {
        Ok(Skipped)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Skipped, D::Error> {
        Skipped::deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Skipped, A::Error> {
        while let Some(Skipped) = seq.next_element()? {}
        Ok(Skipped)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Skipped, A::Error> {
        let mut seen = Vec::new();
        while let Some(key) = map.next_key::<Key<'de>>()? {
            once(&mut seen, key)?;
            let Skipped = map.next_value()?;
        }
        Ok(Skipped)
    }
}

/// A webhook body read in one pass: `eventType` and, when `payload` is an object, its fields
/// phonetree reads (`PAYLOAD_KEYS`); every key of the body checked for repeats at any depth.
enum Body {
    Object {
        event_type: Option<Value>,
        payload: Option<Payload>,
    },
    /// Valid JSON, but not an object.
    Other,
}

enum Payload {
    Object(serde_json::Map<String, Value>),
    /// Valid JSON, but not an object (nor null).
    Other,
}

impl<'de> Deserialize<'de> for Body {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Body, D::Error> {
        d.deserialize_any(BodyVisitor)
    }
}

struct BodyVisitor;

impl<'de> Visitor<'de> for BodyVisitor {
    type Value = Body;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<Body, E> {
        Ok(Body::Other)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Body, E> {
        Ok(Body::Other)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Body, E> {
        Ok(Body::Other)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Body, E> {
        Ok(Body::Other)
    }
    fn visit_str<E>(self, _: &str) -> Result<Body, E> {
        Ok(Body::Other)
    }
    fn visit_unit<E>(self) -> Result<Body, E> {
        Ok(Body::Other)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Body, A::Error> {
        SkippedVisitor.visit_seq(seq).map(|Skipped| Body::Other)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Body, A::Error> {
        let (mut event_type, mut payload, mut seen) = (None, None, Vec::new());
        while let Some(key) = map.next_key::<Key<'de>>()? {
            match key.0.as_ref() {
                "eventType" => event_type = Some(map.next_value::<Strict>()?.0),
                "payload" => payload = map.next_value::<Option<Payload>>()?,
                _ => {
                    let Skipped = map.next_value()?;
                }
            }
            once(&mut seen, key)?;
        }
        Ok(Body::Object { event_type, payload })
    }
}

impl<'de> Deserialize<'de> for Payload {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Payload, D::Error> {
        d.deserialize_any(PayloadVisitor)
    }
}

struct PayloadVisitor;

impl<'de> Visitor<'de> for PayloadVisitor {
    type Value = Payload;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<Payload, E> {
        Ok(Payload::Other)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Payload, E> {
        Ok(Payload::Other)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Payload, E> {
        Ok(Payload::Other)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Payload, E> {
        Ok(Payload::Other)
    }
    fn visit_str<E>(self, _: &str) -> Result<Payload, E> {
        Ok(Payload::Other)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Payload, A::Error> {
        SkippedVisitor.visit_seq(seq).map(|Skipped| Payload::Other)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Payload, A::Error> {
        let (mut fields, mut seen) = (serde_json::Map::new(), Vec::new());
        while let Some(key) = map.next_key::<Key<'de>>()? {
            if PAYLOAD_KEYS.contains(&key.0.as_ref()) {
                let Strict(value) = map.next_value()?;
                fields.insert(key.0.to_string(), value);
            } else {
                let Skipped = map.next_value()?;
            }
            once(&mut seen, key)?;
        }
        Ok(Payload::Object(fields))
    }
}

/// The body's `eventType` and the payload fields phonetree reads, in one pass over the bytes.
fn envelope(body: &[u8]) -> Result<(String, serde_json::Map<String, Value>), BadWebhook> {
    let parsed: Body = serde_json::from_slice(body).map_err(|e| match e.classify() {
        // Every value is accepted but a repeated key, the one data error these visitors raise.
        serde_json::error::Category::Data => bad("duplicate_key", format!("the body repeats a key: {e}")),
        _ => bad("malformed_json", format!("the body is not valid JSON: {e}")),
    })?;
    let Body::Object { event_type, payload } = parsed else {
        return Err(bad("malformed_json", "the body is not a webhook: it is not a JSON object"));
    };
    let event_type = match event_type {
        Some(Value::String(t)) => t,
        None | Some(Value::Null) => return Err(bad("missing_field", "missing `eventType`")),
        Some(_) => {
            return Err(bad("malformed_json", "the body is not a webhook: `eventType` must be a string"));
        }
    };
    match payload {
        Some(Payload::Object(map)) => Ok((event_type, map)),
        Some(Payload::Other) => Err(bad("invalid_field", "`payload` must be an object")),
        None => Err(bad("missing_field", "missing `payload`")),
    }
}

/// A text field: a string (or a number, written as text); `None` when absent or null.
fn text(p: &serde_json::Map<String, Value>, key: &str) -> Result<Option<String>, BadWebhook> {
    match p.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(_) => Err(bad("invalid_field", format!("`payload.{key}` must be a string"))),
    }
}

fn id(p: &serde_json::Map<String, Value>, key: &str) -> Result<String, BadWebhook> {
    let v = text(p, key)?.ok_or_else(|| bad("missing_field", format!("missing `payload.{key}`")))?;
    // 8x8's ids are UUIDs; printable ASCII is what the node's OpenAPI document promises.
    if v.is_empty() || v.len() > ID_BYTES_MAX || !v.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(bad(
            "invalid_field",
            format!("`payload.{key}` must be 1 to {ID_BYTES_MAX} printable ASCII characters"),
        ));
    }
    Ok(v)
}

/// Parses a VCA body. `CALL_ACTION` is the documented event; an inbound `CALL_STATUS` with
/// `callStatus: CALL_RECEIVED` (as in 8x8's Simple IVR guide) starts a call too.
pub fn call_action(body: &[u8]) -> Result<CallAction, BadWebhook> {
    let (event_type, p) = envelope(body)?;
    let call_status = text(&p, "callStatus")?;
    match event_type.as_str() {
        "CALL_ACTION" => {}
        "CALL_STATUS" if call_status.as_deref() == Some("CALL_RECEIVED") => {}
        other => {
            return Err(bad(
                "wrong_event_type",
                format!(
                    "`eventType` is `{other}`; this endpoint takes CALL_ACTION (SESSION_SUMMARY goes to /webhooks/vss)"
                ),
            ));
        }
    }
    let event_data_dtmf = match p.get("eventData") {
        Some(Value::Object(data)) => short(data, "dtmf", "eventData.dtmf")?,
        None | Some(Value::Null) => None,
        Some(_) => return Err(bad("invalid_field", "`payload.eventData` must be an object")),
    };
    // Bounded like every text 8x8 sends, though only two values mean anything.
    let direction = match short(&p, "callDirection", "callDirection")?.as_deref() {
        Some("INBOUND") => Some(Direction::Inbound),
        Some("OUTBOUND") => Some(Direction::Outbound),
        _ => None,
    };
    Ok(CallAction {
        event_id: id(&p, "eventId")?,
        session_id: id(&p, "sessionId")?,
        call_id: short(&p, "callId", "callId")?,
        call_status: call_status.map(|s| bounded(s, "callStatus")).transpose()?,
        direction,
        // Kept in the call's state and history: bounded like every text 8x8 sends.
        source: short(&p, "source", "source")?.unwrap_or_default(),
        destination: short(&p, "destination", "destination")?.unwrap_or_default(),
        dtmf: event_data_dtmf.or(short(&p, "dtmf", "dtmf")?),
        client_action_id: short(&p, "clientActionId", "clientActionId")?,
    })
}

/// Parses a VSS body.
pub fn session_summary(body: &[u8]) -> Result<SessionSummary, BadWebhook> {
    let (event_type, p) = envelope(body)?;
    if event_type != "SESSION_SUMMARY" {
        return Err(bad(
            "wrong_event_type",
            format!(
                "`eventType` is `{event_type}`; this endpoint takes SESSION_SUMMARY (CALL_ACTION goes to /webhooks/vca)"
            ),
        ));
    }
    let mut legs = Vec::new();
    if let Some(Value::Object(details)) = p.get("details") {
        if details.len() > LEGS_MAX {
            return Err(bad(
                "too_many_legs",
                format!("`payload.details` lists {} legs; at most {LEGS_MAX} are kept", details.len()),
            ));
        }
        for (name, leg) in details {
            let Value::Object(leg) = leg else { continue };
            let field = |key: &str| short(leg, key, &format!("details.{name}.{key}"));
            legs.push(Leg {
                name: bounded(name.clone(), "details")?,
                call_id: field("callId")?,
                direction: field("callDirection")?,
                source: field("source")?,
                destination: field("destination")?,
                status: field("callStatus")?,
                duration_s: leg.get("callDuration").and_then(Value::as_u64),
            });
        }
    }
    let error = p.get("errorDetails").and_then(Value::as_object);
    Ok(SessionSummary {
        session_id: id(&p, "sessionId")?,
        status: short(&p, "sessionStatus", "sessionStatus")?.unwrap_or_else(|| "UNKNOWN".into()),
        last_action: short(&p, "lastAction", "lastAction")?,
        call_count: p.get("callCount").and_then(Value::as_u64).and_then(|c| u32::try_from(c).ok()),
        start_time: short(&p, "startTime", "startTime")?,
        end_time: short(&p, "endTime", "endTime")?,
        legs,
        error_code: error.and_then(|e| e.get("errorCode")).and_then(Value::as_i64),
        error_message: error.map(|e| short(e, "errorMsg", "errorDetails.errorMsg")).transpose()?.flatten(),
    })
}

/// A summary's text field, at most `TEXT_BYTES_MAX` bytes; `path` names it in the error.
fn short(p: &serde_json::Map<String, Value>, key: &str, path: &str) -> Result<Option<String>, BadWebhook> {
    text(p, key)?.map(|v| bounded(v, path)).transpose()
}

fn bounded(v: String, path: &str) -> Result<String, BadWebhook> {
    if v.len() > TEXT_BYTES_MAX {
        return Err(bad(
            "field_too_long",
            format!("`payload.{path}` is {} bytes; at most {TEXT_BYTES_MAX} are kept", v.len()),
        ));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_keys_are_refused_at_any_depth_and_the_rest_is_read_as_before() {
        let dup =
            br#"{"eventType":"CALL_ACTION","payload":{"sessionId":"s","eventId":"e","x":{"a":1,"a":2}}}"#;
        assert_eq!(call_action(dup).unwrap_err().code, "duplicate_key");
        let ok = br#"{"eventType":"CALL_ACTION","payload":{"sessionId":"s","eventId":"e","dtmf":12,
            "x":[{"a":1},{"a":2}],"y":-3,"z":1.5,"n":null,"b":true,"eventData":{"dtmf":"3"}}}"#;
        let ca = call_action(ok).unwrap();
        assert_eq!((ca.session_id.as_str(), ca.dtmf.as_deref()), ("s", Some("3")));
        assert_eq!(call_action(b"[1,").unwrap_err().code, "malformed_json");
        assert_eq!(call_action(b"[1]").unwrap_err().code, "malformed_json");
        // Keys the node does not read are skipped, not kept, but still checked, at any depth.
        let cases: [(&[u8], &str); 6] = [
            (br#"{"namespace":"VOICE","namespace":"VOICE","eventType":"CALL_ACTION","payload":{}}"#, "duplicate_key"),
            (br#"{"eventType":"CALL_ACTION","payload":{"sessionId":"s","eventId":"e","callType":1,"callType":2}}"#, "duplicate_key"),
            (br#"{"eventType":"CALL_ACTION","payload":[{"a":1,"a":2}]}"#, "duplicate_key"),
            (br#"[{"a":1},{"a":{"b":1,"b":2}}]"#, "duplicate_key"),
            (br#"{"eventType":"CALL_ACTION","payload":[1]}"#, "invalid_field"),
            (br#"{"eventType":7,"payload":{"sessionId":"s","eventId":"e"}}"#, "malformed_json"),
        ];
        for (body, code) in cases {
            assert_eq!(call_action(body).unwrap_err().code, code, "{}", String::from_utf8_lossy(body));
        }
        let null_payload = br#"{"eventType":"CALL_ACTION","payload":null}"#;
        assert_eq!(call_action(null_payload).unwrap_err().code, "missing_field");
        let unread =
            br#"{"namespace":"VOICE","eventType":"CALL_ACTION","payload":{"sessionId":"s","eventId":"e",
            "subAccountId":{"deep":[{"x":null}]},"callType":"PSTN","dtmf":"1"}}"#;
        assert_eq!(call_action(unread).unwrap().dtmf.as_deref(), Some("1"));
    }

    /// Every text field of a CALL_ACTION is bounded, as the OpenAPI document's `Text` says
    /// (schemathesis sent a 257-byte `callDirection`, answered 200 before).
    #[test]
    fn every_text_field_is_bounded() {
        for key in ["source", "destination", "dtmf", "callId", "callStatus", "callDirection"] {
            let long = "0".repeat(TEXT_BYTES_MAX + 1);
            let body = format!(
                r#"{{"eventType":"CALL_ACTION","payload":{{"sessionId":"s","eventId":"e","{key}":"{long}"}}}}"#
            );
            assert_eq!(call_action(body.as_bytes()).unwrap_err().code, "field_too_long", "{key}");
        }
    }
}
