//! 8x8's webhooks in: Voice Call Action (VCA) and Voice Session Summary (VSS) bodies, parsed into
//! plain values. Lenient where 8x8's documents disagree (`payload.dtmf` or `payload.eventData.dtmf`,
//! a number or a string, null or absent; unknown fields), strict where a call could go wrong
//! (no session id, no event id, the wrong event type).

use serde::Deserialize;
use serde_json::Value;

use crate::callflow::ID_BYTES_MAX;
use crate::callflow::{Leg, SessionSummary};
use crate::engine::{Direction, Event};

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
        match &self.dtmf {
            Some(d) if !d.trim().is_empty() => Event::Digits(d.trim().to_string()),
            _ => Event::NoInput,
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Envelope {
    event_type: Option<String>,
    payload: Option<Value>,
}

fn envelope(body: &[u8]) -> Result<(String, serde_json::Map<String, Value>), BadWebhook> {
    let env: Envelope = serde_json::from_slice(body)
        .map_err(|e| bad("malformed_json", format!("the body is not valid JSON: {e}")))?;
    let event_type = env.event_type.ok_or_else(|| bad("missing_field", "missing `eventType`"))?;
    match env.payload {
        Some(Value::Object(map)) => Ok((event_type, map)),
        Some(_) => Err(bad("invalid_field", "`payload` must be an object")),
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
        Some(Value::Object(data)) => text(data, "dtmf")?,
        None | Some(Value::Null) => None,
        Some(_) => return Err(bad("invalid_field", "`payload.eventData` must be an object")),
    };
    let direction = match text(&p, "callDirection")?.as_deref() {
        Some("INBOUND") => Some(Direction::Inbound),
        Some("OUTBOUND") => Some(Direction::Outbound),
        _ => None,
    };
    Ok(CallAction {
        event_id: id(&p, "eventId")?,
        session_id: id(&p, "sessionId")?,
        call_id: text(&p, "callId")?,
        call_status,
        direction,
        source: text(&p, "source")?.unwrap_or_default(),
        destination: text(&p, "destination")?.unwrap_or_default(),
        dtmf: event_data_dtmf.or(text(&p, "dtmf")?),
        client_action_id: text(&p, "clientActionId")?,
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
        for (name, leg) in details {
            let Value::Object(leg) = leg else { continue };
            legs.push(Leg {
                name: name.clone(),
                call_id: text(leg, "callId")?,
                direction: text(leg, "callDirection")?,
                source: text(leg, "source")?,
                destination: text(leg, "destination")?,
                status: text(leg, "callStatus")?,
                duration_s: leg.get("callDuration").and_then(Value::as_u64),
            });
        }
    }
    let error = p.get("errorDetails").and_then(Value::as_object);
    Ok(SessionSummary {
        session_id: id(&p, "sessionId")?,
        status: text(&p, "sessionStatus")?.unwrap_or_else(|| "UNKNOWN".into()),
        last_action: text(&p, "lastAction")?,
        call_count: p.get("callCount").and_then(Value::as_u64).and_then(|c| u32::try_from(c).ok()),
        start_time: text(&p, "startTime")?,
        end_time: text(&p, "endTime")?,
        legs,
        error_code: error.and_then(|e| e.get("errorCode")).and_then(Value::as_i64),
        error_message: error.map(|e| text(e, "errorMsg")).transpose()?.flatten(),
    })
}
