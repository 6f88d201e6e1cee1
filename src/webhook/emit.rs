//! 8x8's webhooks out: the CALL_ACTION, CALL_RECEIVED and SESSION_SUMMARY bodies 8x8 posts, for
//! a client that plays 8x8 against a node (`phonetree loadtest`). The reverse of `inbound`.

use serde_json::{Value, json};

use crate::engine::Direction;

/// Where (and whether) a CALL_ACTION carries the caller's keys: 8x8's documents show both
/// `payload.eventData.dtmf` and `payload.dtmf`, and `null` when nothing was pressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dtmf<'a> {
    /// `payload.eventData.dtmf` as a string (8x8's Call Action guide).
    EventData(&'a str),
    /// `payload.dtmf` as a string (the IVR guides).
    Payload(&'a str),
    /// `payload.eventData.dtmf` as a JSON number (keys that are all digits, without a leading
    /// zero, read as a number: the node reads it back as text).
    Number(u64),
    /// `eventData.dtmf: null`: the prompt ended with nothing pressed.
    Null,
}

impl<'a> Dtmf<'a> {
    /// The number shape of `keys`, when they read the same back as a number.
    pub fn number(keys: &str) -> Option<Dtmf<'a>> {
        let n: u64 = keys.parse().ok()?;
        (n.to_string() == keys).then_some(Dtmf::Number(n))
    }
}

/// One webhook of a call, as 8x8 sends it.
#[derive(Debug, Clone, Copy)]
pub struct Delivery<'a> {
    pub event_id: &'a str,
    pub session_id: &'a str,
    pub call_id: &'a str,
    pub direction: Direction,
    pub source: &'a str,
    pub destination: &'a str,
    /// The id of the reply this webhook answers (8x8 echoes it).
    pub client_action_id: Option<&'a str>,
}

impl Delivery<'_> {
    fn payload(&self, call_status: &str) -> serde_json::Map<String, Value> {
        let mut p = serde_json::Map::new();
        p.insert("eventId".into(), json!(self.event_id));
        p.insert("callId".into(), json!(self.call_id));
        p.insert("sessionId".into(), json!(self.session_id));
        p.insert("subAccountId".into(), json!("phonetree_loadtest"));
        p.insert("callStatus".into(), json!(call_status));
        let direction = match self.direction {
            Direction::Inbound => "INBOUND",
            Direction::Outbound => "OUTBOUND",
        };
        p.insert("callDirection".into(), json!(direction));
        p.insert("callType".into(), json!("PSTN"));
        p.insert("source".into(), json!(self.source));
        p.insert("destination".into(), json!(self.destination));
        p.insert("sourceFormat".into(), json!("MSISDN"));
        p.insert("destinationFormat".into(), json!("MSISDN"));
        p.insert("callDuration".into(), json!(0));
        p.insert("sipCode".into(), json!(200));
        p
    }
}

fn body(event_type: &str, description: &str, payload: serde_json::Map<String, Value>) -> Vec<u8> {
    let v = json!({
        "namespace": "VOICE",
        "eventType": event_type,
        "description": description,
        "payload": Value::Object(payload),
    });
    // A `Value` of strings and numbers always serialises.
    serde_json::to_vec(&v).unwrap_or_default()
}

/// An inbound call reaching the number (`CALL_STATUS` with `callStatus: CALL_RECEIVED`, as in 8x8's
/// Simple IVR guide).
pub fn call_received(d: &Delivery<'_>) -> Vec<u8> {
    body("CALL_STATUS", "Status update of a call", d.payload("CALL_RECEIVED"))
}

/// The caller's answer to a prompt (`CALL_ACTION`, `callStatus: ACTION_COMPLETED`).
pub fn call_action(d: &Delivery<'_>, dtmf: Dtmf<'_>) -> Vec<u8> {
    let mut p = d.payload("ACTION_COMPLETED");
    match dtmf {
        Dtmf::EventData(keys) => {
            p.insert("eventData".into(), json!({ "dtmf": keys }));
        }
        Dtmf::Payload(keys) => {
            p.insert("dtmf".into(), json!(keys));
        }
        Dtmf::Number(n) => {
            p.insert("eventData".into(), json!({ "dtmf": n }));
        }
        Dtmf::Null => {
            p.insert("eventData".into(), json!({ "dtmf": null }));
        }
    }
    if let Some(id) = d.client_action_id {
        p.insert("clientActionId".into(), json!(id));
    }
    body("CALL_ACTION", "Action request of a call", p)
}

/// The summary 8x8 sends when the session is over (`SESSION_SUMMARY`), with one leg.
pub fn session_summary(d: &Delivery<'_>, status: &str) -> Vec<u8> {
    let mut p = serde_json::Map::new();
    p.insert("sessionId".into(), json!(d.session_id));
    p.insert("subAccountId".into(), json!("phonetree_loadtest"));
    p.insert("sessionStatus".into(), json!(status));
    p.insert("callCount".into(), json!(1));
    p.insert(
        "details".into(),
        json!({ "leg1": {
            "callId": d.call_id,
            "callDirection": match d.direction { Direction::Inbound => "INBOUND", Direction::Outbound => "OUTBOUND" },
            "source": d.source,
            "destination": d.destination,
            "callStatus": status,
            "callDuration": 1,
        }}),
    );
    body("SESSION_SUMMARY", "Summary of a session", p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Event;
    use crate::webhook::inbound;

    fn delivery(id: Option<&str>) -> Delivery<'_> {
        Delivery {
            event_id: "e1",
            session_id: "s1",
            call_id: "c1",
            direction: Direction::Inbound,
            source: "+15550000001",
            destination: "+6568880002",
            client_action_id: id,
        }
    }

    #[test]
    fn every_body_reads_back_as_the_node_parses_it() {
        let d = delivery(Some("pt.m.n.1.abc.mac"));
        let received = inbound::call_action(&call_received(&delivery(None))).unwrap();
        assert_eq!(received.event(), Event::CallStarted);
        assert_eq!(received.destination, "+6568880002");
        for (dtmf, want) in [
            (Dtmf::EventData("12#"), Event::Digits("12#".into())),
            (Dtmf::Payload("*"), Event::Digits("*".into())),
            (Dtmf::number("123456").unwrap(), Event::Digits("123456".into())),
            (Dtmf::Null, Event::NoInput),
        ] {
            let ca = inbound::call_action(&call_action(&d, dtmf)).unwrap();
            assert_eq!(ca.event(), want, "{dtmf:?}");
            assert_eq!(ca.client_action_id.as_deref(), Some("pt.m.n.1.abc.mac"));
            assert_eq!((ca.session_id.as_str(), ca.event_id.as_str()), ("s1", "e1"));
        }
        assert_eq!(Dtmf::number("012"), None);
        assert_eq!(Dtmf::number("1#"), None);
        let s = inbound::session_summary(&session_summary(&d, "COMPLETED")).unwrap();
        assert_eq!((s.session_id.as_str(), s.status.as_str(), s.legs.len()), ("s1", "COMPLETED", 1));
    }
}
