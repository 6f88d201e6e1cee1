//! 8x8's webhooks in: Voice Call Action (VCA) and Voice Session Summary (VSS) bodies, parsed into
//! plain values. Lenient where 8x8's documents disagree (`payload.dtmf` or `payload.eventData.dtmf`,
//! a number or a string, null or absent; unknown fields), strict where a call could go wrong
//! (no session id, no event id, the wrong event type).

use std::borrow::Cow;
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

/// A JSON key, borrowed from the body when it has no escapes.
struct Key<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Key<'de>, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a key")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_string())))
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

/// A scalar field phonetree reads (an id, a text, a count), kept as the body has it, a string
/// borrowed from the body when it has no escapes; what no such field can be (a bool, an array, an
/// object) is checked for repeated keys and kept as `Other`, for the error to say so.
enum Field<'de> {
    Null,
    Str(Cow<'de, str>),
    Num(serde_json::Number),
    Other,
}

impl<'de> Deserialize<'de> for Field<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Field<'de>, D::Error> {
        d.deserialize_any(FieldVisitor)
    }
}

struct FieldVisitor;

impl<'de> Visitor<'de> for FieldVisitor {
    type Value = Field<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<Field<'de>, E> {
        Ok(Field::Other)
    }
    fn visit_i64<E>(self, v: i64) -> Result<Field<'de>, E> {
        Ok(Field::Num(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Field<'de>, E> {
        Ok(Field::Num(v.into()))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Field<'de>, E> {
        // What `serde_json::Value` makes of it: a number, or null when it is not finite.
        Ok(serde_json::Number::from_f64(v).map_or(Field::Null, Field::Num))
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Field<'de>, E> {
        Ok(Field::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Field<'de>, E> {
        Ok(Field::Str(Cow::Owned(v.to_string())))
    }
    fn visit_string<E>(self, v: String) -> Result<Field<'de>, E> {
        Ok(Field::Str(Cow::Owned(v)))
    }
    fn visit_unit<E>(self) -> Result<Field<'de>, E> {
        Ok(Field::Null)
    }
    fn visit_none<E>(self) -> Result<Field<'de>, E> {
        Ok(Field::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Field<'de>, D::Error> {
        Field::deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Field<'de>, A::Error> {
        SkippedVisitor.visit_seq(seq).map(|Skipped| Field::Other)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Field<'de>, A::Error> {
        SkippedVisitor.visit_map(map).map(|Skipped| Field::Other)
    }
}

/// `payload.eventData`: of an object only its `dtmf` is read (the other keys are checked for
/// repeats and skipped).
enum EventData<'de> {
    Null,
    Object(Option<Field<'de>>),
    Other,
}

impl<'de> Deserialize<'de> for EventData<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<EventData<'de>, D::Error> {
        d.deserialize_any(EventDataVisitor)
    }
}

struct EventDataVisitor;

impl<'de> Visitor<'de> for EventDataVisitor {
    type Value = EventData<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<EventData<'de>, E> {
        Ok(EventData::Other)
    }
    fn visit_i64<E>(self, _: i64) -> Result<EventData<'de>, E> {
        Ok(EventData::Other)
    }
    fn visit_u64<E>(self, _: u64) -> Result<EventData<'de>, E> {
        Ok(EventData::Other)
    }
    fn visit_f64<E>(self, v: f64) -> Result<EventData<'de>, E> {
        // A number that is not finite is null to `serde_json::Value`.
        Ok(if v.is_finite() { EventData::Other } else { EventData::Null })
    }
    fn visit_str<E>(self, _: &str) -> Result<EventData<'de>, E> {
        Ok(EventData::Other)
    }
    fn visit_unit<E>(self) -> Result<EventData<'de>, E> {
        Ok(EventData::Null)
    }
    fn visit_none<E>(self) -> Result<EventData<'de>, E> {
        Ok(EventData::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<EventData<'de>, D::Error> {
        EventData::deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<EventData<'de>, A::Error> {
        SkippedVisitor.visit_seq(seq).map(|Skipped| EventData::Other)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<EventData<'de>, A::Error> {
        let (mut dtmf, mut seen) = (None, Vec::new());
        while let Some(key) = map.next_key::<Key<'de>>()? {
            let is_dtmf = key.0 == "dtmf";
            // Checked before the value, where a `serde_json::Value` of it would fail.
            once(&mut seen, key)?;
            if is_dtmf {
                dtmf = Some(map.next_value::<Field<'de>>()?);
            } else {
                let Skipped = map.next_value()?;
            }
        }
        Ok(EventData::Object(dtmf))
    }
}

/// The payload fields phonetree reads (CALL_ACTION's and SESSION_SUMMARY's), each `None` when
/// absent; any other key is checked for repeats and skipped, not kept. A summary's `details` and
/// `errorDetails` (one webhook a call) are kept as JSON values.
#[derive(Default)]
struct Fields<'de> {
    event_id: Option<Field<'de>>,
    session_id: Option<Field<'de>>,
    call_id: Option<Field<'de>>,
    call_status: Option<Field<'de>>,
    call_direction: Option<Field<'de>>,
    source: Option<Field<'de>>,
    destination: Option<Field<'de>>,
    dtmf: Option<Field<'de>>,
    client_action_id: Option<Field<'de>>,
    event_data: Option<EventData<'de>>,
    session_status: Option<Field<'de>>,
    last_action: Option<Field<'de>>,
    call_count: Option<Field<'de>>,
    start_time: Option<Field<'de>>,
    end_time: Option<Field<'de>>,
    details: Option<Value>,
    error_details: Option<Value>,
}

/// A webhook body read in one pass: `eventType` and, when `payload` is an object, its fields
/// phonetree reads (`Fields`); every key of the body checked for repeats at any depth.
enum Body<'de> {
    Object {
        event_type: Option<Field<'de>>,
        payload: Option<Payload<'de>>,
    },
    /// Valid JSON, but not an object.
    Other,
}

enum Payload<'de> {
    Object(Box<Fields<'de>>),
    /// Valid JSON, but not an object (nor null).
    Other,
}

impl<'de> Deserialize<'de> for Body<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Body<'de>, D::Error> {
        d.deserialize_any(BodyVisitor)
    }
}

struct BodyVisitor;

impl<'de> Visitor<'de> for BodyVisitor {
    type Value = Body<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<Body<'de>, E> {
        Ok(Body::Other)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Body<'de>, E> {
        Ok(Body::Other)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Body<'de>, E> {
        Ok(Body::Other)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Body<'de>, E> {
        Ok(Body::Other)
    }
    fn visit_str<E>(self, _: &str) -> Result<Body<'de>, E> {
        Ok(Body::Other)
    }
    fn visit_unit<E>(self) -> Result<Body<'de>, E> {
        Ok(Body::Other)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Body<'de>, A::Error> {
        SkippedVisitor.visit_seq(seq).map(|Skipped| Body::Other)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Body<'de>, A::Error> {
        let (mut event_type, mut payload, mut seen) = (None, None, Vec::new());
        while let Some(key) = map.next_key::<Key<'de>>()? {
            match key.0.as_ref() {
                "eventType" => event_type = Some(map.next_value::<Field<'de>>()?),
                "payload" => payload = map.next_value::<Option<Payload<'de>>>()?,
                _ => {
                    let Skipped = map.next_value()?;
                }
            }
            once(&mut seen, key)?;
        }
        Ok(Body::Object { event_type, payload })
    }
}

impl<'de> Deserialize<'de> for Payload<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Payload<'de>, D::Error> {
        d.deserialize_any(PayloadVisitor)
    }
}

struct PayloadVisitor;

impl<'de> Visitor<'de> for PayloadVisitor {
    type Value = Payload<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<Payload<'de>, E> {
        Ok(Payload::Other)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Payload<'de>, E> {
        Ok(Payload::Other)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Payload<'de>, E> {
        Ok(Payload::Other)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Payload<'de>, E> {
        Ok(Payload::Other)
    }
    fn visit_str<E>(self, _: &str) -> Result<Payload<'de>, E> {
        Ok(Payload::Other)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Payload<'de>, A::Error> {
        SkippedVisitor.visit_seq(seq).map(|Skipped| Payload::Other)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Payload<'de>, A::Error> {
        // A field read twice is a repeated key; `seen` holds only the keys not read.
        let (mut f, mut seen) = (Box::<Fields<'de>>::default(), Vec::new());
        while let Some(key) = map.next_key::<Key<'de>>()? {
            let repeated = match key.0.as_ref() {
                "eventData" => f.event_data.replace(map.next_value()?).is_some(),
                "details" => f.details.replace(map.next_value::<Strict>()?.0).is_some(),
                "errorDetails" => f.error_details.replace(map.next_value::<Strict>()?.0).is_some(),
                name => {
                    let slot = match name {
                        "eventId" => &mut f.event_id,
                        "sessionId" => &mut f.session_id,
                        "callId" => &mut f.call_id,
                        "callStatus" => &mut f.call_status,
                        "callDirection" => &mut f.call_direction,
                        "source" => &mut f.source,
                        "destination" => &mut f.destination,
                        "dtmf" => &mut f.dtmf,
                        "clientActionId" => &mut f.client_action_id,
                        "sessionStatus" => &mut f.session_status,
                        "lastAction" => &mut f.last_action,
                        "callCount" => &mut f.call_count,
                        "startTime" => &mut f.start_time,
                        "endTime" => &mut f.end_time,
                        _ => {
                            let Skipped = map.next_value()?;
                            once(&mut seen, key)?;
                            continue;
                        }
                    };
                    slot.replace(map.next_value()?).is_some()
                }
            };
            // After the value, as for a key not read.
            if repeated {
                return Err(de::Error::custom(format_args!("duplicate key `{}`", key.0)));
            }
        }
        Ok(Payload::Object(f))
    }
}

/// The body's `eventType` and the payload fields phonetree reads, in one pass over the bytes.
fn envelope(body: &[u8]) -> Result<(Cow<'_, str>, Box<Fields<'_>>), BadWebhook> {
    // UTF-8 checked once for the whole body, not string by string; a body that is not UTF-8 is
    // read as bytes, for serde_json to say where.
    let parsed: Result<Body<'_>, _> = match std::str::from_utf8(body) {
        Ok(text) => serde_json::from_str(text),
        Err(_) => serde_json::from_slice(body),
    };
    let parsed = parsed.map_err(|e| match e.classify() {
        // Every value is accepted but a repeated key, the one data error these visitors raise.
        serde_json::error::Category::Data => bad("duplicate_key", format!("the body repeats a key: {e}")),
        _ => bad("malformed_json", format!("the body is not valid JSON: {e}")),
    })?;
    let Body::Object { event_type, payload } = parsed else {
        return Err(bad("malformed_json", "the body is not a webhook: it is not a JSON object"));
    };
    let event_type = match event_type {
        Some(Field::Str(t)) => t,
        None | Some(Field::Null) => return Err(bad("missing_field", "missing `eventType`")),
        Some(_) => {
            return Err(bad("malformed_json", "the body is not a webhook: `eventType` must be a string"));
        }
    };
    match payload {
        Some(Payload::Object(fields)) => Ok((event_type, fields)),
        Some(Payload::Other) => Err(bad("invalid_field", "`payload` must be an object")),
        None => Err(bad("missing_field", "missing `payload`")),
    }
}

/// A text field: a string (or a number, written as text); `None` when absent or null.
fn text(f: Option<Field<'_>>, key: &str) -> Result<Option<String>, BadWebhook> {
    match f {
        None | Some(Field::Null) => Ok(None),
        Some(Field::Str(s)) => Ok(Some(s.into_owned())),
        Some(Field::Num(n)) => Ok(Some(n.to_string())),
        Some(Field::Other) => Err(bad("invalid_field", format!("`payload.{key}` must be a string"))),
    }
}

/// `text` of a key of a JSON object (a summary's leg or error details).
fn value_text(p: &serde_json::Map<String, Value>, key: &str) -> Result<Option<String>, BadWebhook> {
    match p.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(_) => Err(bad("invalid_field", format!("`payload.{key}` must be a string"))),
    }
}

fn id(f: Option<Field<'_>>, key: &str) -> Result<String, BadWebhook> {
    let v = text(f, key)?.ok_or_else(|| bad("missing_field", format!("missing `payload.{key}`")))?;
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
    let (event_type, mut p) = envelope(body)?;
    let call_status = text(p.call_status.take(), "callStatus")?;
    match event_type.as_ref() {
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
    let event_data_dtmf = match p.event_data.take() {
        Some(EventData::Object(dtmf)) => short(dtmf, "dtmf", "eventData.dtmf")?,
        None | Some(EventData::Null) => None,
        Some(EventData::Other) => return Err(bad("invalid_field", "`payload.eventData` must be an object")),
    };
    // Bounded like every text 8x8 sends, though only two values mean anything.
    let direction = match short(p.call_direction.take(), "callDirection", "callDirection")?.as_deref() {
        Some("INBOUND") => Some(Direction::Inbound),
        Some("OUTBOUND") => Some(Direction::Outbound),
        _ => None,
    };
    Ok(CallAction {
        event_id: id(p.event_id.take(), "eventId")?,
        session_id: id(p.session_id.take(), "sessionId")?,
        call_id: short(p.call_id.take(), "callId", "callId")?,
        call_status: call_status.map(|s| bounded(s, "callStatus")).transpose()?,
        direction,
        // Kept in the call's state and history: bounded like every text 8x8 sends.
        source: short(p.source.take(), "source", "source")?.unwrap_or_default(),
        destination: short(p.destination.take(), "destination", "destination")?.unwrap_or_default(),
        dtmf: event_data_dtmf.or(short(p.dtmf.take(), "dtmf", "dtmf")?),
        client_action_id: short(p.client_action_id.take(), "clientActionId", "clientActionId")?,
    })
}

/// Parses a VSS body.
pub fn session_summary(body: &[u8]) -> Result<SessionSummary, BadWebhook> {
    let (event_type, mut p) = envelope(body)?;
    if event_type != "SESSION_SUMMARY" {
        return Err(bad(
            "wrong_event_type",
            format!(
                "`eventType` is `{event_type}`; this endpoint takes SESSION_SUMMARY (CALL_ACTION goes to /webhooks/vca)"
            ),
        ));
    }
    let mut legs = Vec::new();
    if let Some(Value::Object(details)) = &p.details {
        if details.len() > LEGS_MAX {
            return Err(bad(
                "too_many_legs",
                format!("`payload.details` lists {} legs; at most {LEGS_MAX} are kept", details.len()),
            ));
        }
        for (name, leg) in details {
            let Value::Object(leg) = leg else { continue };
            let field = |key: &str| value_short(leg, key, &format!("details.{name}.{key}"));
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
    let error = p.error_details.as_ref().and_then(Value::as_object);
    let call_count = match &p.call_count {
        Some(Field::Num(n)) => n.as_u64().and_then(|c| u32::try_from(c).ok()),
        _ => None,
    };
    Ok(SessionSummary {
        session_id: id(p.session_id.take(), "sessionId")?,
        status: short(p.session_status.take(), "sessionStatus", "sessionStatus")?
            .unwrap_or_else(|| "UNKNOWN".into()),
        last_action: short(p.last_action.take(), "lastAction", "lastAction")?,
        call_count,
        start_time: short(p.start_time.take(), "startTime", "startTime")?,
        end_time: short(p.end_time.take(), "endTime", "endTime")?,
        legs,
        error_code: error.and_then(|e| e.get("errorCode")).and_then(Value::as_i64),
        error_message: error
            .map(|e| value_short(e, "errorMsg", "errorDetails.errorMsg"))
            .transpose()?
            .flatten(),
    })
}

/// A text field, at most `TEXT_BYTES_MAX` bytes; `path` names it in the error.
fn short(f: Option<Field<'_>>, key: &str, path: &str) -> Result<Option<String>, BadWebhook> {
    text(f, key)?.map(|v| bounded(v, path)).transpose()
}

/// `short` of a key of a JSON object.
fn value_short(
    p: &serde_json::Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<Option<String>, BadWebhook> {
    value_text(p, key)?.map(|v| bounded(v, path)).transpose()
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

    /// The typed read keeps what the JSON values gave: numbers as their text, escapes decoded,
    /// `eventData`'s kinds, a repeated field named after its value, a body that is not UTF-8.
    #[test]
    fn fields_read_as_the_json_values_read_them() {
        let ca = |payload: &str| {
            call_action(format!(r#"{{"eventType":"CALL_ACTION","payload":{payload}}}"#).as_bytes())
        };
        let dtmf = |v: &str| ca(&format!(r#"{{"sessionId":"s","eventId":"e","dtmf":{v}}}"#)).map(|c| c.dtmf);
        assert_eq!(dtmf("12").unwrap().as_deref(), Some("12"));
        assert_eq!(dtmf("-3").unwrap().as_deref(), Some("-3"));
        assert_eq!(dtmf("1.5").unwrap().as_deref(), Some("1.5"));
        assert_eq!(dtmf(r#""\u0031\n""#).unwrap().as_deref(), Some("1\n"));
        assert_eq!(dtmf("null").unwrap(), None);
        for v in ["true", "[1]", "{}"] {
            assert_eq!(dtmf(v).unwrap_err().message, "`payload.dtmf` must be a string", "{v}");
        }
        let data = |v: &str| ca(&format!(r#"{{"sessionId":"s","eventId":"e","dtmf":"1","eventData":{v}}}"#));
        assert_eq!(data(r#"{"x":[1],"dtmf":2}"#).unwrap().dtmf.as_deref(), Some("2"));
        assert_eq!(data("null").unwrap().dtmf.as_deref(), Some("1"));
        assert_eq!(data("{}").unwrap().dtmf.as_deref(), Some("1"));
        assert_eq!(data("5").unwrap_err().message, "`payload.eventData` must be an object");
        assert_eq!(data(r#"{"dtmf":1,"dtmf":2}"#).unwrap_err().code, "duplicate_key");
        // An escaped key is the same key; a repeat is named where its value ends.
        let e = ca(r#"{"sessionId":"s","eventId":"e","ev\u0065ntId":"f"}"#).unwrap_err();
        assert_eq!(e.message, "the body repeats a key: duplicate key `eventId` at line 1 column 87");
        let e = call_action(b"{\"eventType\":\"CALL_ACTION\",\"payload\":{\"dtmf\":\"\xff\"}}").unwrap_err();
        assert_eq!(e.message, "the body is not valid JSON: invalid unicode code point at line 1 column 47");
        let summary = |count: &str| {
            let body = format!(
                r#"{{"eventType":"SESSION_SUMMARY","payload":{{"sessionId":"s","callCount":{count}}}}}"#
            );
            session_summary(body.as_bytes()).unwrap().call_count
        };
        assert_eq!(
            (summary("3"), summary("3.0"), summary(r#""3""#), summary("-1")),
            (Some(3), None, None, None)
        );
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
