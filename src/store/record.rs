//! Stored records: what goes to disk, in MessagePack with named (short) fields and a format version.
//!
//! These types are the only ones that derive the on-disk encoding; the engine's `CallState` converts
//! to and from `SessionRecord` explicitly, so a change to the engine cannot change the disk format
//! by accident. Field names are short because every live call stores one session record.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::engine::{Answer, CallInfo, CallState, Direction, Outcome, Phase};
use crate::machine::{NodeId, Version};

/// The format records are written in. Format 2 added call variables to sessions; records of
/// formats `FORMAT_OLDEST..=FORMAT` are read (what format 1 lacks has a default), any other is
/// refused, not guessed at.
pub const FORMAT: u8 = 2;
pub const FORMAT_OLDEST: u8 = 1;

/// A machine version: 32 bytes as a MessagePack `bin`, not an array of 32 integers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hash(pub [u8; 32]);

impl Serialize for Hash {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for Hash {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let bytes: serde_bytes_like::Bytes = Deserialize::deserialize(d)?;
        <[u8; 32]>::try_from(bytes.0.as_slice())
            .map(Hash)
            .map_err(|_| serde::de::Error::invalid_length(bytes.0.len(), &"32 bytes"))
    }
}

/// A byte string that deserialises from MessagePack `bin` (and, leniently, an array of integers).
mod serde_bytes_like {
    use serde::de::{Deserialize, Deserializer, SeqAccess, Visitor};
    use std::fmt;

    pub struct Bytes(pub Vec<u8>);

    impl<'de> Deserialize<'de> for Bytes {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = Bytes;
                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("bytes")
                }
                fn visit_bytes<E>(self, v: &[u8]) -> Result<Bytes, E> {
                    Ok(Bytes(v.to_vec()))
                }
                fn visit_byte_buf<E>(self, v: Vec<u8>) -> Result<Bytes, E> {
                    Ok(Bytes(v))
                }
                fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Bytes, A::Error> {
                    let mut out = Vec::new();
                    while let Some(b) = seq.next_element::<u8>()? {
                        out.push(b);
                    }
                    Ok(Bytes(out))
                }
            }
            d.deserialize_bytes(V)
        }
    }
}

/// Bytes stored as a MessagePack `bin`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blob(pub Vec<u8>);

impl Serialize for Blob {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for Blob {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        serde_bytes_like::Bytes::deserialize(d).map(|b| Blob(b.0))
    }
}

/// One call's state (the session id is the record's key).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionRecord {
    pub v: u8,
    /// Machine name.
    pub m: String,
    /// Machine version.
    pub h: Hash,
    /// Inbound (`true`) or outbound.
    #[serde(rename = "in")]
    pub inbound: bool,
    pub src: String,
    pub dst: String,
    /// Current node index.
    pub n: u32,
    /// Phase: 0 new, 1 awaiting input, 2 bridged, 3 ended.
    pub ph: u8,
    pub t: u8,
    pub q: u32,
    pub p: Vec<u32>,
    pub k: Option<String>,
    /// Call variables (format 2; a format 1 record has none).
    #[serde(default)]
    pub vs: BTreeMap<String, String>,
    /// 8x8's call id (format 2).
    #[serde(default)]
    pub ci: Option<String>,
    pub o: Option<OutcomeRecord>,
    pub c: bool,
    pub t0: u64,
    pub t1: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum OutcomeRecord {
    #[serde(rename = "h")]
    HungUp,
    #[serde(rename = "t")]
    Transferred(String),
    #[serde(rename = "l")]
    CallerLeft(String),
}

impl SessionRecord {
    pub fn from_state(s: &CallState) -> SessionRecord {
        SessionRecord {
            v: FORMAT,
            m: s.machine.clone(),
            h: Hash(s.version.0),
            inbound: s.call.direction == Direction::Inbound,
            src: s.call.source.clone(),
            dst: s.call.destination.clone(),
            n: s.node.index() as u32,
            ph: match s.phase {
                Phase::New => 0,
                Phase::AwaitingInput => 1,
                Phase::Bridged => 2,
                Phase::Ended => 3,
            },
            t: s.tries,
            q: s.seq,
            p: s.path.iter().map(|n| n.index() as u32).collect(),
            k: s.keypress.clone(),
            vs: s.vars.clone(),
            ci: s.call.call_id.clone(),
            o: s.outcome.as_ref().map(|o| match o {
                Outcome::HungUp => OutcomeRecord::HungUp,
                Outcome::Transferred { destination } => OutcomeRecord::Transferred(destination.clone()),
                Outcome::CallerLeft { status } => OutcomeRecord::CallerLeft(status.clone()),
            }),
            c: s.closed,
            t0: s.started_ms,
            t1: s.updated_ms,
        }
    }

    /// The engine's state, or why the record cannot be one.
    pub fn to_state(&self, session_id: &str) -> Result<CallState, String> {
        if !(FORMAT_OLDEST..=FORMAT).contains(&self.v) {
            return Err(format!(
                "session record format {} (this phonetree reads {FORMAT_OLDEST} to {FORMAT})",
                self.v
            ));
        }
        let phase = match self.ph {
            0 => Phase::New,
            1 => Phase::AwaitingInput,
            2 => Phase::Bridged,
            3 => Phase::Ended,
            other => return Err(format!("unknown phase {other}")),
        };
        Ok(CallState {
            machine: self.m.clone(),
            version: Version(self.h.0),
            call: CallInfo {
                session_id: session_id.to_string(),
                direction: if self.inbound { Direction::Inbound } else { Direction::Outbound },
                source: self.src.clone(),
                destination: self.dst.clone(),
                call_id: self.ci.clone(),
            },
            node: NodeId::new(self.n as usize),
            phase,
            tries: self.t,
            seq: self.q,
            path: self.p.iter().map(|&n| NodeId::new(n as usize)).collect(),
            keypress: self.k.clone(),
            vars: self.vs.clone(),
            outcome: self.o.as_ref().map(|o| match o {
                OutcomeRecord::HungUp => Outcome::HungUp,
                OutcomeRecord::Transferred(d) => Outcome::Transferred { destination: d.clone() },
                OutcomeRecord::CallerLeft(s) => Outcome::CallerLeft { status: s.clone() },
            }),
            closed: self.c,
            started_ms: self.t0,
            updated_ms: self.t1,
        })
    }
}

/// The reply given to one webhook delivery, kept so that a duplicate gets the same bytes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplyRecord {
    pub v: u8,
    /// When it was given (ms since the epoch).
    pub at: u64,
    pub body: Blob,
}

/// 8x8's session summary, as received.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SummaryRecord {
    pub v: u8,
    pub received_ms: u64,
    pub status: String,
    pub last_action: Option<String>,
    pub call_count: Option<u32>,
    pub start_time: Option<String>,
    pub end_time: Option<String>,
    pub legs: Vec<LegRecord>,
    pub error_code: Option<i64>,
    pub error_message: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LegRecord {
    pub name: String,
    pub call_id: Option<String>,
    pub direction: Option<String>,
    pub source: Option<String>,
    pub destination: Option<String>,
    pub status: Option<String>,
    pub duration_s: Option<u64>,
}

/// A machine's source text, stored under its version so a call can finish on the version it began.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MachineRecord {
    pub v: u8,
    pub name: String,
    pub file: String,
    pub text: String,
}

/// The answers the script requests of one webhook got, in order: journaled before they are
/// applied, so a retried webhook reuses them instead of asking the API again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnswersRecord {
    pub v: u8,
    pub answers: Vec<AnswerRecord>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum AnswerRecord {
    #[serde(rename = "h")]
    Http(u16, Blob),
    #[serde(rename = "f")]
    Failed(String),
}

impl AnswerRecord {
    pub fn from_answer(a: &Answer) -> AnswerRecord {
        match a {
            Answer::Http { status, body } => AnswerRecord::Http(*status, Blob(body.clone())),
            Answer::Failed { reason } => AnswerRecord::Failed(reason.clone()),
        }
    }

    pub fn to_answer(&self) -> Answer {
        match self {
            AnswerRecord::Http(status, body) => Answer::Http { status: *status, body: body.0.clone() },
            AnswerRecord::Failed(reason) => Answer::Failed { reason: reason.clone() },
        }
    }
}

/// A cached API answer (the script's `cache_minutes`), keyed by the hash of the request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CacheRecord {
    pub v: u8,
    /// When it stops being used (ms since the epoch).
    pub until: u64,
    pub answer: AnswerRecord,
}
