//! Stored records: what goes to disk, in MessagePack with named (short) fields and a format version.
//!
//! These types are the only ones that derive the on-disk encoding; the engine's `CallState` converts
//! to and from `SessionRecord` explicitly, so a change to the engine cannot change the disk format
//! by accident. Field names are short because every live call stores one session record, rewritten
//! at every webhook.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{StoreError, StoredMachine, StoredModule};
use crate::callflow::{Leg, SessionSummary};
use crate::engine::transcript::{Asked, ENTRIES_MAX, Entry, Happened, Resumption, Said, Variant};
use crate::engine::{Answer, CallInfo, CallState, Direction, Outcome, Phase, Request};
use crate::machine::{NodeId, Version};

/// The format records are written in. Format 2 added call variables to sessions; format 3 moved a
/// session's latest replies into its record (format 2 kept every reply in a tree of its own, which
/// the sled store migrates on open). Records of formats `FORMAT_OLDEST..=FORMAT` are read (what an
/// older format lacks has a default), any other is refused, not guessed at. Format 4 keeps a
/// transfer's session summary status with its outcome. Format 5 adds the outcome of a placed call
/// never answered (`OutcomeRecord::Unanswered`; before, such a call was recorded as the caller's
/// leaving). Format 6 writes a session record as MessagePack arrays (its fields in order, without
/// their names: about 100 bytes less per whole call, and sled's cost grows with a record's bytes);
/// session records of formats 1 to 5 are maps, read as before, and every other record is a map.
/// Format 7 keeps with a machine the modules it was compiled with (`MachineRecord::modules`), so a
/// call on a version that uses modules finishes on it after a restart; a machine record of an older
/// format has none, and compiles with the modules of the day (run only if that gives its version).
/// Format 8 writes a session record's transcript as one `bin` of its encoded entries
/// (`Transcript`), which a webhook appends to without decoding the entries before it.
pub const FORMAT: u8 = 8;
pub const FORMAT_OLDEST: u8 = 1;
/// Replies a session record keeps with their bytes: a duplicate delivery is a retry of a webhook
/// 8x8 got no answer to, so it is the latest one (or, reordered, the one before).
pub const REPLIES_KEPT: usize = 2;
/// Older events a session record still recognises (by a 64-bit hash of the id), so that a very
/// late duplicate is never applied a second time: longer than any menu path a caller walks.
pub const EVENT_IDS_KEPT: usize = 32;
/// Deepest nesting a stored record may have: records nest four levels at most. rmp-serde's own
/// limit (1,024) lets a corrupt record overflow a 2 MiB thread stack (found by fuzzing).
pub const RECORD_DEPTH_MAX: usize = 16;

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
    /// The latest replies, oldest first, at most `REPLIES_KEPT` (format 3).
    #[serde(default)]
    pub j: Vec<ReplyEntry>,
    /// Hashes of older event ids, oldest first, at most `EVENT_IDS_KEPT` (format 3).
    #[serde(default)]
    pub jo: Vec<u64>,
    /// The call's transcript, oldest first, at most `transcript::ENTRIES_MAX` entries (sled keeps
    /// it here, so that a webhook stays one write; postgres keeps it in a table of its own). A
    /// record written before history has none.
    #[serde(default, skip_serializing_if = "Transcript::is_empty")]
    pub tr: Transcript,
}

/// A session record's transcript as its encoded entries: a MessagePack array of `EntryRecord`s
/// (arrays, their fields by position), written as one `bin` (format 8). A webhook appends one
/// entry to its bytes and never decodes the others; only reading the transcript does. Formats 1
/// to 7 wrote the array itself, read here into the same bytes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Transcript {
    /// Empty, or an array header and that many encoded entries.
    raw: Vec<u8>,
}

impl Transcript {
    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }

    /// How many entries it holds, and the bytes of its array header.
    fn header(&self) -> Result<(usize, usize), String> {
        if self.raw.is_empty() {
            return Ok((0, 0));
        }
        let mut rest = self.raw.as_slice();
        let n = rmp::decode::read_array_len(&mut rest).map_err(|e| format!("transcript: {e}"))?;
        Ok((n as usize, self.raw.len() - rest.len()))
    }

    /// Appends `entry`, unless the transcript holds `ENTRIES_MAX` already.
    fn push(&mut self, entry: &EntryRecord) -> Result<(), String> {
        let (n, head) = self.header()?;
        if n >= ENTRIES_MAX {
            return Ok(());
        }
        let mut header = Vec::with_capacity(3);
        rmp::encode::write_array_len(&mut header, (n + 1) as u32).map_err(|e| e.to_string())?;
        self.raw.splice(..head, header);
        rmp_serde::encode::write(&mut self.raw, entry).map_err(|e| e.to_string())
    }

    /// The entries, oldest first.
    fn entries(&self) -> Result<Vec<EntryRecord>, String> {
        if self.raw.is_empty() {
            return Ok(Vec::new());
        }
        let mut de = rmp_serde::Deserializer::from_read_ref(&self.raw);
        de.set_max_depth(RECORD_DEPTH_MAX);
        Vec::<EntryRecord>::deserialize(&mut de).map_err(|e| e.to_string())
    }
}

impl Serialize for Transcript {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.raw)
    }
}

impl<'de> Deserialize<'de> for Transcript {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Transcript;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a transcript: bytes, or an array of entries")
            }
            // Format 8: the encoded entries, kept as they are.
            fn visit_bytes<E>(self, v: &[u8]) -> Result<Transcript, E> {
                Ok(Transcript { raw: v.to_vec() })
            }
            fn visit_byte_buf<E>(self, v: Vec<u8>) -> Result<Transcript, E> {
                Ok(Transcript { raw: v })
            }
            // Formats 1 to 7: the array of entries (maps, or arrays), encoded again as format 8's.
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Transcript, A::Error> {
                let mut t = Transcript::default();
                while let Some(entry) = seq.next_element::<EntryRecord>()? {
                    t.push(&entry).map_err(serde::de::Error::custom)?;
                }
                Ok(t)
            }
        }
        d.deserialize_any(V)
    }
}

/// The format of transcript entries (`EntryRecord`), versioned on their own. Format 2 adds event
/// 4, a dial the outbound guard refused; format 3 event 5, keys at a sensitive input (masked);
/// format 4 the variants of the splits passed (`p`); format 5 the resume offer (`o`); entries of
/// formats 1 to 5 are read. Each entry is written in the oldest format it fits in.
pub const ENTRY_FORMAT: u8 = 5;

/// The splits of an entry (`EntryRecord::p`), written as their list; `keep`: written even when
/// empty, because a field after it is written (inside a session record an entry is an array,
/// its fields by position).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Splits {
    pub list: Vec<(String, String)>,
    pub keep: bool,
}

impl Splits {
    fn skipped(&self) -> bool {
        self.list.is_empty() && !self.keep
    }
}

impl Serialize for Splits {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.list.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Splits {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Written while empty: it was kept for a field after it, and is kept again when the
        // entry is written again (a session record rewrites its transcript at every commit).
        let list: Vec<(String, String)> = Vec::deserialize(d)?;
        let keep = list.is_empty();
        Ok(Splits { list, keep })
    }
}

/// An entry's resume offer (format 5): 1, the reply was the offer; 2, the call went on with
/// these variables restored.
pub type ResumeRecord = (u8, BTreeMap<String, String>);

/// One transcript entry (`transcript::Entry`) as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EntryRecord {
    pub v: u8,
    /// When (ms since the epoch).
    pub t: u64,
    /// Event: 0 call started, 1 keys, 2 no input, 3 session ended, 4 dial refused (format 2),
    /// 5 masked keys (format 3); `x` its keys or status.
    pub e: u8,
    pub x: String,
    /// Node left, node entered.
    pub l: String,
    pub n: String,
    /// What was said: (node, action, text).
    pub s: Vec<(String, String, String)>,
    /// Script requests: (node, method, URL, status, failure, body, cut).
    pub r: Vec<AskedRecord>,
    /// The splits passed: (node, variant) (format 4; empty before).
    #[serde(default, skip_serializing_if = "Splits::skipped")]
    pub p: Splits,
    /// The resume offer (format 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub o: Option<ResumeRecord>,
}

/// A script request in a transcript entry: (node, method, URL, status, failure, body, cut).
pub type AskedRecord = (String, String, String, Option<u16>, Option<String>, String, bool);

impl EntryRecord {
    pub fn from_entry(e: &Entry) -> EntryRecord {
        let (code, x) = match &e.event {
            Happened::CallStarted => (0, String::new()),
            Happened::Keys { keys } => (1, keys.clone()),
            Happened::NoInput => (2, String::new()),
            Happened::SessionEnded { status } => (3, status.clone()),
            Happened::DialRefused => (4, String::new()),
            Happened::Masked => (5, String::new()),
        };
        EntryRecord {
            // The oldest format the entry fits in: an older phonetree still reads the others.
            v: if e.resume.is_some() {
                ENTRY_FORMAT
            } else if !e.variants.is_empty() {
                4
            } else {
                match code {
                    4 => 2,
                    5 => 3,
                    _ => 1,
                }
            },
            t: e.at_ms,
            e: code,
            x,
            l: e.left.clone(),
            n: e.entered.clone(),
            s: e.said.iter().map(|s| (s.node.clone(), s.action.clone(), s.text.clone())).collect(),
            r: e.requests
                .iter()
                .map(|a| {
                    let (node, method, url) = (a.node.clone(), a.method.clone(), a.url.clone());
                    (node, method, url, a.status, a.failure.clone(), a.body.clone(), a.cut)
                })
                .collect(),
            p: Splits {
                list: e.variants.iter().map(|v| (v.node.clone(), v.variant.clone())).collect(),
                keep: e.resume.is_some(),
            },
            o: e.resume.as_ref().map(|r| match r {
                Resumption::Offered => (1, BTreeMap::new()),
                Resumption::WentOn { vars } => (2, vars.clone()),
            }),
        }
    }

    /// The entry, or why the record cannot be one.
    pub fn to_entry(&self, session: &str) -> Result<Entry, StoreError> {
        let refuse =
            |detail: String| StoreError::Decode { what: "transcript", key: session.to_string(), detail };
        if !(1..=ENTRY_FORMAT).contains(&self.v) {
            return Err(refuse(format!("entry format {} (this phonetree reads {ENTRY_FORMAT})", self.v)));
        }
        let event = match self.e {
            0 => Happened::CallStarted,
            1 => Happened::Keys { keys: self.x.clone() },
            2 => Happened::NoInput,
            3 => Happened::SessionEnded { status: self.x.clone() },
            4 if self.v >= 2 => Happened::DialRefused,
            5 if self.v >= 3 => Happened::Masked,
            other => return Err(refuse(format!("unknown event {other}"))),
        };
        Ok(Entry {
            at_ms: self.t,
            event,
            left: self.l.clone(),
            entered: self.n.clone(),
            said: self
                .s
                .iter()
                .map(|(node, action, text)| Said {
                    node: node.clone(),
                    action: action.clone(),
                    text: text.clone(),
                })
                .collect(),
            requests: self
                .r
                .iter()
                .map(|(node, method, url, status, failure, body, cut)| Asked {
                    node: node.clone(),
                    method: method.clone(),
                    url: url.clone(),
                    status: *status,
                    failure: failure.clone(),
                    body: body.clone(),
                    cut: *cut,
                })
                .collect(),
            resume: match &self.o {
                None => None,
                Some((1, _)) if self.v >= 5 => Some(Resumption::Offered),
                Some((2, vars)) if self.v >= 5 => Some(Resumption::WentOn { vars: vars.clone() }),
                Some((other, _)) => return Err(refuse(format!("unknown resume offer {other}"))),
            },
            variants: self
                .p
                .list
                .iter()
                .map(|(node, variant)| Variant { node: node.clone(), variant: variant.clone() })
                .collect(),
        })
    }
}

/// Decodes a stored transcript entry.
pub fn decode_entry(session: &str, raw: &[u8]) -> Result<Entry, StoreError> {
    let r: EntryRecord = decode("transcript", session, raw)?;
    r.to_entry(session)
}

impl SessionRecord {
    /// Appends a transcript entry, unless the transcript holds `ENTRIES_MAX` already.
    pub fn append(&mut self, session: &str, entry: &Entry) -> Result<(), StoreError> {
        self.tr.push(&EntryRecord::from_entry(entry)).map_err(|detail| StoreError::Decode {
            what: "transcript",
            key: session.to_string(),
            detail,
        })
    }

    /// The transcript.
    pub fn transcript(&self, session: &str) -> Result<Vec<Entry>, StoreError> {
        let refuse = |detail| StoreError::Decode { what: "transcript", key: session.to_string(), detail };
        self.tr.entries().map_err(refuse)?.iter().map(|r| r.to_entry(session)).collect()
    }
}

/// One journaled reply: the event it answered and the bytes sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplyEntry {
    pub e: String,
    pub b: Blob,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum OutcomeRecord {
    #[serde(rename = "h")]
    HungUp,
    /// A transfer without its summary's status (all a format 3 record keeps).
    #[serde(rename = "t")]
    Transferred(String),
    /// A transfer and its summary's status (format 4).
    #[serde(rename = "ts")]
    TransferredWith(String, String),
    #[serde(rename = "l")]
    CallerLeft(String),
    /// A placed call never answered, with its summary's status (format 5).
    #[serde(rename = "u")]
    Unanswered(String),
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
                Outcome::Transferred { destination, status: None } => {
                    OutcomeRecord::Transferred(destination.clone())
                }
                Outcome::Transferred { destination, status: Some(status) } => {
                    OutcomeRecord::TransferredWith(destination.clone(), status.clone())
                }
                Outcome::CallerLeft { status } => OutcomeRecord::CallerLeft(status.clone()),
                Outcome::Unanswered { status } => OutcomeRecord::Unanswered(status.clone()),
            }),
            c: s.closed,
            t0: s.started_ms,
            t1: s.updated_ms,
            j: Vec::new(),
            jo: Vec::new(),
            tr: Transcript::default(),
        }
    }

    /// What the journal knows of `event_id`.
    pub fn replied(&self, event_id: &str) -> Option<super::Journaled> {
        if let Some(r) = self.j.iter().find(|r| r.e == event_id) {
            return Some(super::Journaled::Reply(r.b.0.clone()));
        }
        // No hash to compute while no event has left the journal (a call's first webhooks).
        (!self.jo.is_empty() && self.jo.contains(&event_hash(event_id)))
            .then_some(super::Journaled::Forgotten)
    }

    /// Adds the reply to `event_id`, keeping the journal within its bounds.
    pub fn journal(&mut self, event_id: &str, body: &[u8]) {
        self.j.push(ReplyEntry { e: event_id.to_string(), b: Blob(body.to_vec()) });
        while self.j.len() > REPLIES_KEPT {
            let old = self.j.remove(0);
            self.jo.push(event_hash(&old.e));
        }
        if self.jo.len() > EVENT_IDS_KEPT {
            self.jo.drain(..self.jo.len() - EVENT_IDS_KEPT);
        }
    }

    /// The journal as exported: events known by hash only, then the latest replies, oldest first.
    pub fn journal_entries(&self) -> Vec<super::JournalEntry> {
        let hashed = self.jo.iter().map(|&h| super::JournalEntry::ForgottenHash(h));
        let replied = self
            .j
            .iter()
            .map(|r| super::JournalEntry::Replied { event_id: r.e.clone(), body: r.b.0.clone() });
        hashed.chain(replied).collect()
    }

    /// Replaces the journal with an exported one (oldest first), within this record's bounds:
    /// the latest `REPLIES_KEPT` replies keep their bytes, older events are remembered by hash.
    pub fn restore_journal(&mut self, entries: &[super::JournalEntry]) {
        use super::JournalEntry;
        (self.j, self.jo) = (Vec::new(), Vec::new());
        for entry in entries {
            match entry {
                JournalEntry::Replied { event_id, body } => self.journal(event_id, body),
                JournalEntry::Forgotten { event_id } => self.jo.push(event_hash(event_id)),
                JournalEntry::ForgottenHash(h) => self.jo.push(*h),
            }
        }
        if self.jo.len() > EVENT_IDS_KEPT {
            self.jo.drain(..self.jo.len() - EVENT_IDS_KEPT);
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
                OutcomeRecord::Transferred(d) => {
                    Outcome::Transferred { destination: d.clone(), status: None }
                }
                OutcomeRecord::TransferredWith(d, s) => {
                    Outcome::Transferred { destination: d.clone(), status: Some(s.clone()) }
                }
                OutcomeRecord::CallerLeft(s) => Outcome::CallerLeft { status: s.clone() },
                OutcomeRecord::Unanswered(s) => Outcome::Unanswered { status: s.clone() },
            }),
            closed: self.c,
            started_ms: self.t0,
            updated_ms: self.t1,
        })
    }
}

/// The reply given to one webhook delivery, in the `replies` tree of a format 2 store (read only
/// to migrate it).
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

/// A machine's source text, stored under its version so a call can finish on the version it began,
/// with the modules it was compiled with (format 7; none in older records).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MachineRecord {
    pub v: u8,
    pub name: String,
    pub file: String,
    pub text: String,
    #[serde(default)]
    pub modules: Vec<ModuleRecord>,
}

/// A module file's source in a `MachineRecord`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModuleRecord {
    pub file: String,
    pub text: String,
}

impl MachineRecord {
    /// The record of `m`, in this phonetree's format.
    pub fn of(m: &StoredMachine) -> MachineRecord {
        MachineRecord {
            v: FORMAT,
            name: m.name.clone(),
            file: m.file.clone(),
            text: m.text.clone(),
            modules: m
                .modules
                .iter()
                .map(|s| ModuleRecord { file: s.file.clone(), text: s.text.clone() })
                .collect(),
        }
    }

    pub fn into_stored(self) -> StoredMachine {
        StoredMachine {
            name: self.name,
            file: self.file,
            text: self.text,
            modules: self.modules.into_iter().map(|m| StoredModule { file: m.file, text: m.text }).collect(),
        }
    }
}

/// The key every node of a store signs `clientActionId`s with, made once by the first node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionKeyRecord {
    pub v: u8,
    pub key: Blob,
}

/// The key of an `ActionKeyRecord`, checked: 32 bytes, in a format this phonetree reads.
pub fn decode_action_key(raw: &[u8]) -> Result<[u8; 32], StoreError> {
    let r: ActionKeyRecord = decode("action key", "action_key", raw)?;
    check_format("action key", "action_key", r.v)?;
    <[u8; 32]>::try_from(r.key.0.as_slice()).map_err(|_| StoreError::Decode {
        what: "action key",
        key: "action_key".into(),
        detail: format!("{} bytes, not 32", r.key.0.len()),
    })
}

pub fn encode_action_key(key: &[u8; 32]) -> Result<Vec<u8>, StoreError> {
    encode("action key", &ActionKeyRecord { v: FORMAT, key: Blob(key.to_vec()) })
}

/// The format of rate records (`RateRecord`), versioned on their own.
pub const RATE_FORMAT: u8 = 1;

/// One token bucket of the outbound guard's rate limits (`store::Bucket`), kept so that every node
/// of a store shares it and a restart does not refill it: the bucket's theoretical arrival time
/// (GCRA). A record whose time has passed is a full bucket, the same as none: the sweep deletes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RateRecord {
    pub v: u8,
    /// When the bucket is full again (ms since the epoch).
    pub t: u64,
}

pub fn encode_rate(tat_ms: u64) -> Result<Vec<u8>, StoreError> {
    encode("rate", &RateRecord { v: RATE_FORMAT, t: tat_ms })
}

/// The time of a stored rate record, refusing a format this phonetree does not read.
pub fn decode_rate(key: &str, raw: &[u8]) -> Result<u64, StoreError> {
    let r: RateRecord = decode("rate", key, raw)?;
    if r.v != RATE_FORMAT {
        return Err(StoreError::Decode {
            what: "rate",
            key: key.to_string(),
            detail: format!("rate format {} (this phonetree reads {RATE_FORMAT})", r.v),
        });
    }
    Ok(r.t)
}

/// The format of interrupted-call records (`UnfinishedRecord`), versioned on their own.
pub const UNFINISHED_FORMAT: u8 = 1;

/// A caller's interrupted call on a machine (`store::Unfinished`), kept under `unfinished_key`
/// (a hash: the caller's number is not stored in it) for the resume offer of their next call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnfinishedRecord {
    pub v: u8,
    /// Machine name and version.
    pub m: String,
    pub h: Hash,
    /// The node the call waited at (by name).
    pub n: String,
    /// Its call variables then (no sensitive one).
    pub vs: BTreeMap<String, String>,
    /// The interrupted call's session id.
    pub s: String,
    /// When it ended (ms since the epoch).
    pub t: u64,
}

impl UnfinishedRecord {
    pub fn of(u: &super::Unfinished) -> UnfinishedRecord {
        UnfinishedRecord {
            v: UNFINISHED_FORMAT,
            m: u.machine.clone(),
            h: Hash(u.version.0),
            n: u.node.clone(),
            vs: u.vars.clone(),
            s: u.session.clone(),
            t: u.ended_ms,
        }
    }
}

/// The format of scheduled-call records (`ScheduledRecord`), versioned on their own.
pub const SCHEDULED_FORMAT: u8 = 1;

/// A callback the node will place (`store::Scheduled`), with where it is in its life.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScheduledRecord {
    pub v: u8,
    pub id: String,
    pub origin: String,
    pub machine: String,
    pub to: String,
    pub due: u64,
    pub until: u64,
    pub attempt: u8,
    pub attempts: u8,
    pub from_machine: String,
    pub from_version: Blob,
    pub node: String,
    /// `pending`, `sending`, `sent`, `done`, `cancelled`.
    pub state: String,
    pub session: Option<String>,
    pub note: Option<String>,
    pub updated: u64,
}

impl ScheduledRecord {
    pub fn of(s: &super::Scheduled) -> ScheduledRecord {
        ScheduledRecord {
            v: SCHEDULED_FORMAT,
            id: s.id.clone(),
            origin: s.origin.clone(),
            machine: s.machine.clone(),
            to: s.to.clone(),
            due: s.due_ms,
            until: s.valid_until_ms,
            attempt: s.attempt,
            attempts: s.attempts,
            from_machine: s.from_machine.clone(),
            from_version: Blob(s.from_version.0.to_vec()),
            node: s.node.clone(),
            state: s.state.as_str().to_string(),
            session: s.session.clone(),
            note: s.note.clone(),
            updated: s.updated_ms,
        }
    }
}

pub fn encode_unfinished(u: &super::Unfinished) -> Result<Vec<u8>, StoreError> {
    encode("interrupted call", &UnfinishedRecord::of(u))
}

/// Decodes an interrupted-call record, refusing a format this phonetree does not read.
pub fn decode_unfinished(key: &str, raw: &[u8]) -> Result<super::Unfinished, StoreError> {
    let r: UnfinishedRecord = decode("interrupted call", key, raw)?;
    if r.v != UNFINISHED_FORMAT {
        return Err(StoreError::Decode {
            what: "interrupted call",
            key: key.to_string(),
            detail: format!("interrupted call format {} (this phonetree reads {UNFINISHED_FORMAT})", r.v),
        });
    }
    Ok(super::Unfinished {
        machine: r.m,
        version: Version(r.h.0),
        node: r.n,
        vars: r.vs,
        session: r.s,
        ended_ms: r.t,
    })
}

/// The key of a caller's interrupted call on a machine: the SHA-256 of the machine's name and the
/// caller's number, so that the record names no caller.
pub fn unfinished_key(machine: &str, caller: &str) -> [u8; 32] {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    h.update(machine.as_bytes());
    h.update([0]);
    h.update(caller.as_bytes());
    h.finalize().into()
}

pub fn encode_scheduled(s: &super::Scheduled) -> Result<Vec<u8>, StoreError> {
    encode("scheduled call", &ScheduledRecord::of(s))
}

/// A stored scheduled call, refusing a format or a state this phonetree does not read.
pub fn decode_scheduled(key: &str, raw: &[u8]) -> Result<super::Scheduled, StoreError> {
    let r: ScheduledRecord = decode("scheduled call", key, raw)?;
    let refuse = |detail: String| StoreError::Decode { what: "scheduled call", key: key.to_string(), detail };
    if r.v != SCHEDULED_FORMAT {
        return Err(refuse(format!("scheduled format {} (this phonetree reads {SCHEDULED_FORMAT})", r.v)));
    }
    let state = super::ScheduledState::parse(&r.state)
        .ok_or_else(|| refuse(format!("unknown state `{}`", r.state)))?;
    let version: [u8; 32] =
        r.from_version.0.as_slice().try_into().map_err(|_| refuse("a machine version is 32 bytes".into()))?;
    Ok(super::Scheduled {
        id: r.id,
        origin: r.origin,
        machine: r.machine,
        to: r.to,
        due_ms: r.due,
        valid_until_ms: r.until,
        attempt: r.attempt,
        attempts: r.attempts,
        from_machine: r.from_machine,
        from_version: Version(version),
        node: r.node,
        state,
        session: r.session,
        note: r.note,
        updated_ms: r.updated,
    })
}

/// The format of claims (`ClaimRecord`), versioned on their own.
pub const CLAIM_FORMAT: u8 = 1;

/// A claim on one script request of one webhook (session, event id, rank of the request in the
/// webhook's step), written durably before the request is made, so that it is made at most once
/// whichever delivery of the event, on whichever node, gets there first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClaimRecord {
    pub v: u8,
    /// The store opening that made it (`SledStore`/`PgStore` draw one at random when they open).
    pub o: u64,
    /// When the claimant stops waiting for the answer (ms since the epoch): past it, no answer
    /// will come from it.
    pub u: u64,
}

impl ClaimRecord {
    pub fn new(owner: u64, until_ms: u64) -> ClaimRecord {
        ClaimRecord { v: CLAIM_FORMAT, o: owner, u: until_ms }
    }
}

/// Decodes a stored claim, refusing a format this phonetree does not read.
pub fn decode_claim(name: &str, raw: &[u8]) -> Result<ClaimRecord, StoreError> {
    let r: ClaimRecord = decode("claim", name, raw)?;
    if r.v != CLAIM_FORMAT {
        return Err(StoreError::Decode {
            what: "claim",
            key: name.to_string(),
            detail: format!("claim format {} (this phonetree reads {CLAIM_FORMAT})", r.v),
        });
    }
    Ok(r)
}

/// A random 64-bit number: the id of one opening of a store, which its claims carry (std's
/// randomly keyed hasher, fresh keys per call).
pub fn opening_id() -> u64 {
    use std::hash::BuildHasher;
    std::collections::hash_map::RandomState::new().hash_one(std::time::SystemTime::now())
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

impl SummaryRecord {
    pub fn from_summary(s: &SessionSummary, received_ms: u64) -> SummaryRecord {
        SummaryRecord {
            v: FORMAT,
            received_ms,
            status: s.status.clone(),
            last_action: s.last_action.clone(),
            call_count: s.call_count,
            start_time: s.start_time.clone(),
            end_time: s.end_time.clone(),
            legs: s
                .legs
                .iter()
                .map(|l| LegRecord {
                    name: l.name.clone(),
                    call_id: l.call_id.clone(),
                    direction: l.direction.clone(),
                    source: l.source.clone(),
                    destination: l.destination.clone(),
                    status: l.status.clone(),
                    duration_s: l.duration_s,
                })
                .collect(),
            error_code: s.error_code,
            error_message: s.error_message.clone(),
        }
    }

    pub fn to_stored(&self, session_id: &str) -> super::StoredSummary {
        super::StoredSummary {
            received_ms: self.received_ms,
            summary: SessionSummary {
                session_id: session_id.to_string(),
                status: self.status.clone(),
                last_action: self.last_action.clone(),
                call_count: self.call_count,
                start_time: self.start_time.clone(),
                end_time: self.end_time.clone(),
                legs: self
                    .legs
                    .iter()
                    .map(|l| Leg {
                        name: l.name.clone(),
                        call_id: l.call_id.clone(),
                        direction: l.direction.clone(),
                        source: l.source.clone(),
                        destination: l.destination.clone(),
                        status: l.status.clone(),
                        duration_s: l.duration_s,
                    })
                    .collect(),
                error_code: self.error_code,
                error_message: self.error_message.clone(),
            },
        }
    }
}

impl CacheRecord {
    /// The record that caches `answer` to `request` from `now_ms` for the request's
    /// `cache_minutes`; `None` when the script caches nothing.
    pub fn of(request: &Request, answer: &Answer, now_ms: u64) -> Option<CacheRecord> {
        let minutes = request.cache_minutes?;
        let until = now_ms.saturating_add(u64::from(minutes).saturating_mul(60_000));
        Some(CacheRecord { v: FORMAT, until, answer: AnswerRecord::from_answer(answer) })
    }

    /// The cached answer, while it is still valid at `now_ms`.
    pub fn answer_at(&self, now_ms: u64) -> Option<Answer> {
        (self.until > now_ms).then(|| self.answer.to_answer())
    }
}

/// The cache's key for a request: the SHA-256 of everything it sends.
pub fn cache_key(request: &Request) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(request.cache_key()).into()
}

/// The 64-bit hash an old event id is remembered by: the first 8 bytes of its SHA-256 (stable
/// across builds, unlike `std`'s hasher).
pub fn event_hash(event_id: &str) -> u64 {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(event_id.as_bytes());
    u64::from_be_bytes(digest[..8].try_into().unwrap_or_default())
}

/// Event hashes as a postgres column keeps them: 8 bytes each, big-endian, oldest first.
pub fn pack_hashes(hashes: &[u64]) -> Vec<u8> {
    hashes.iter().flat_map(|h| h.to_be_bytes()).collect()
}

/// `pack_hashes` undone; a trailing part shorter than 8 bytes is ignored.
pub fn unpack_hashes(raw: &[u8]) -> Vec<u64> {
    raw.chunks_exact(8).map(|c| u64::from_be_bytes(c.try_into().unwrap_or_default())).collect()
}

pub fn encode<T: Serialize>(what: &'static str, value: &T) -> Result<Vec<u8>, StoreError> {
    rmp_serde::to_vec_named(value).map_err(|e| StoreError::Encode { what, detail: e.to_string() })
}

pub fn decode<T: serde::de::DeserializeOwned>(
    what: &'static str,
    key: &str,
    raw: &[u8],
) -> Result<T, StoreError> {
    let mut de = rmp_serde::Deserializer::from_read_ref(raw);
    de.set_max_depth(RECORD_DEPTH_MAX);
    T::deserialize(&mut de).map_err(|e| StoreError::Decode {
        what,
        key: key.to_string(),
        detail: e.to_string(),
    })
}

/// Refuses a record of a format this phonetree does not read.
pub fn check_format(what: &'static str, key: &str, v: u8) -> Result<(), StoreError> {
    if (FORMAT_OLDEST..=FORMAT).contains(&v) {
        Ok(())
    } else {
        Err(StoreError::Decode {
            what,
            key: key.to_string(),
            detail: format!("format {v}, this phonetree reads {FORMAT_OLDEST} to {FORMAT}"),
        })
    }
}

/// Decodes a stored session record.
pub fn decode_record(session: &str, raw: &[u8]) -> Result<SessionRecord, StoreError> {
    let record: SessionRecord = decode("session", session, raw)?;
    check_format("session", session, record.v)?;
    Ok(record)
}

/// Encodes a session record as format 6 writes it: MessagePack arrays, no field names (decoding
/// reads arrays and the maps of formats 1 to 5 alike).
/// Bytes reserved for an encoded session record: a whole call of the bundled machines is about
/// 1.6 KB, so most records are written without growing their buffer (it grows past this).
const RECORD_BYTES_RESERVED: usize = 2048;

pub fn encode_record(record: &SessionRecord) -> Result<Vec<u8>, StoreError> {
    let mut raw = Vec::with_capacity(RECORD_BYTES_RESERVED);
    rmp_serde::encode::write(&mut raw, record)
        .map_err(|e| StoreError::Encode { what: "session", detail: e.to_string() })?;
    Ok(raw)
}

/// Encodes engine state as a stored session record with an empty journal (MessagePack, with its
/// format version): the state part of what every live call stores.
pub fn encode_session(state: &CallState) -> Result<Vec<u8>, StoreError> {
    encode_record(&SessionRecord::from_state(state))
}

/// Decodes a stored session record (of any format this phonetree reads) into engine state.
pub fn decode_session(session: &str, raw: &[u8]) -> Result<CallState, StoreError> {
    let record = decode_record(session, raw)?;
    record.to_state(session).map_err(|detail| StoreError::Decode {
        what: "session",
        key: session.to_string(),
        detail,
    })
}
#[cfg(test)]
mod tests {
    use super::*;

    /// A machine record of format 6 (no `modules`) is still read, with none; format 7 keeps them.
    #[test]
    fn a_machine_record_of_format_6_reads_without_modules() {
        #[derive(Serialize)]
        struct Format6 {
            v: u8,
            name: String,
            file: String,
            text: String,
        }
        let old = Format6 { v: 6, name: "m".into(), file: "m.toml".into(), text: "name = \"m\"".into() };
        let raw = encode("machine", &old).unwrap();
        let read: MachineRecord = decode("machine", "m", &raw).unwrap();
        check_format("machine", "m", read.v).unwrap();
        assert_eq!((read.v, read.text.as_str(), read.modules.len()), (6, "name = \"m\"", 0));
        let stored = StoredMachine {
            name: "m".into(),
            file: "m.toml".into(),
            text: "t".into(),
            modules: vec![StoredModule { file: "modules/a.toml".into(), text: "name = \"a\"".into() }],
        };
        let raw = encode("machine", &MachineRecord::of(&stored)).unwrap();
        let read: MachineRecord = decode("machine", "m", &raw).unwrap();
        assert_eq!(read.v, FORMAT);
        assert_eq!(read.into_stored(), stored);
    }

    /// An exported journal restores to the same journal, and a longer one to this record's
    /// bounds: the latest replies with their bytes, the older events by hash.
    #[test]
    fn an_exported_journal_restores_within_the_bounds() {
        use super::super::{JournalEntry, Journaled};
        let mut r = SessionRecord::from_state(&state());
        for i in 0..40 {
            r.journal(&format!("e{i}"), format!("reply {i}").as_bytes());
        }
        let mut back = SessionRecord::from_state(&state());
        back.restore_journal(&r.journal_entries());
        assert_eq!(back, r);
        let long: Vec<JournalEntry> = (0..50)
            .map(|i| match i {
                0..45 => JournalEntry::Forgotten { event_id: format!("e{i}") },
                _ => JournalEntry::Replied { event_id: format!("e{i}"), body: vec![i as u8] },
            })
            .collect();
        back.restore_journal(&long);
        assert_eq!((back.j.len(), back.jo.len()), (REPLIES_KEPT, EVENT_IDS_KEPT));
        assert_eq!(back.replied("e49"), Some(Journaled::Reply(vec![49])));
        assert_eq!(back.replied("e47"), Some(Journaled::Forgotten));
        assert_eq!(back.replied("e16"), Some(Journaled::Forgotten));
        assert_eq!(back.replied("e15"), None, "older than the record remembers");
        assert_eq!(unpack_hashes(&pack_hashes(&back.jo)), back.jo);
    }

    /// A claim carries its own format version; one of another format is refused, not guessed at.
    #[test]
    fn a_claim_record_round_trips_and_an_unknown_format_is_refused() {
        let raw = encode("claim", &ClaimRecord::new(7, 9)).unwrap();
        assert_eq!(decode_claim("s/e/0", &raw).unwrap(), ClaimRecord { v: CLAIM_FORMAT, o: 7, u: 9 });
        let future = encode("claim", &ClaimRecord { v: CLAIM_FORMAT + 1, o: 7, u: 9 }).unwrap();
        let e = decode_claim("s/e/0", &future).unwrap_err().to_string();
        assert!(e.contains("claim format 2") && e.contains("s/e/0"), "{e}");
    }

    /// A session stored by a phonetree of format 1 (no call variables) still loads.
    /// Format 6 writes arrays, smaller than format 5's maps, and both decode to the same record.
    #[test]
    fn a_format_6_record_is_an_array_and_a_format_5_map_still_decodes() {
        let mut r = SessionRecord::from_state(&state());
        r.journal("e1", b"{\"callflow\":[]}");
        let array = encode_record(&r).unwrap();
        // MessagePack's array 16 and map 16 (over 15 fields).
        assert_eq!(array[0], 0xdc, "an array");
        assert_eq!(decode_record("s", &array).unwrap(), r);
        let map = encode("session", &SessionRecord { v: 5, ..r.clone() }).unwrap();
        assert_eq!(map[0], 0xde, "a map");
        assert!(array.len() + 40 < map.len(), "{} vs {}", array.len(), map.len());
        assert_eq!(decode_record("s", &map).unwrap(), SessionRecord { v: 5, ..r });
    }

    #[test]
    fn a_format_1_session_record_still_decodes() {
        #[derive(serde::Serialize)]
        struct V1<'a> {
            v: u8,
            m: &'a str,
            h: Hash,
            #[serde(rename = "in")]
            inbound: bool,
            src: &'a str,
            dst: &'a str,
            n: u32,
            ph: u8,
            t: u8,
            q: u32,
            p: Vec<u32>,
            k: Option<&'a str>,
            o: Option<()>,
            c: bool,
            t0: u64,
            t1: u64,
        }
        let old = V1 {
            v: 1,
            m: "abc_restaurant",
            h: Hash([7; 32]),
            inbound: true,
            src: "+6591178965",
            dst: "+6568888888",
            n: 3,
            ph: 1,
            t: 1,
            q: 2,
            p: vec![0, 3],
            k: Some("9"),
            o: None,
            c: false,
            t0: 1,
            t1: 2,
        };
        let raw = rmp_serde::to_vec_named(&old).unwrap();
        let state = decode_session("s-old", &raw).unwrap();
        assert_eq!((state.node.index(), state.tries, state.seq), (3, 1, 2));
        assert!(state.vars.is_empty());
        let future = rmp_serde::to_vec_named(&V1 { v: 9, ..old }).unwrap();
        let e = decode_session("s-new", &future).unwrap_err().to_string();
        assert!(e.contains("format 9"), "{e}");
    }

    /// A transferred call stored by a phonetree of format 3 (no summary status) still loads, and
    /// a format 4 record keeps the status.
    #[test]
    fn a_format_3_transferred_session_still_decodes_and_format_4_keeps_the_status() {
        let mut old = SessionRecord::from_state(&state());
        old.v = 3;
        old.ph = 3;
        old.o = Some(OutcomeRecord::Transferred("+6531589338".into()));
        let raw = encode("session", &old).unwrap();
        let state3 = decode_session("s-3", &raw).unwrap();
        let transferred = |status: Option<&str>| Outcome::Transferred {
            destination: "+6531589338".into(),
            status: status.map(String::from),
        };
        assert_eq!(state3.outcome, Some(transferred(None)));
        let mut busy = state3.clone();
        busy.outcome = Some(transferred(Some("BUSY")));
        let record = SessionRecord::from_state(&busy);
        assert_eq!(
            (record.v, &record.o),
            (FORMAT, &Some(OutcomeRecord::TransferredWith("+6531589338".into(), "BUSY".into())))
        );
        let raw = encode("session", &record).unwrap();
        assert_eq!(decode_session("s-4", &raw).unwrap().outcome, Some(transferred(Some("BUSY"))));
    }

    /// A placed call left unanswered is stored as such (format 5); a format 4 record of one (the
    /// caller's leaving, as format 4 knew it) still loads as it was.
    #[test]
    fn an_unanswered_call_is_format_5_or_later_and_a_format_4_caller_left_still_decodes() {
        let mut old = SessionRecord::from_state(&state());
        (old.v, old.ph, old.o) = (4, 3, Some(OutcomeRecord::CallerLeft("NO_ANSWER".into())));
        let raw = encode("session", &old).unwrap();
        let left = decode_session("s-4", &raw).unwrap();
        assert_eq!(left.outcome, Some(Outcome::CallerLeft { status: "NO_ANSWER".into() }));
        let mut unanswered = left;
        unanswered.outcome = Some(Outcome::Unanswered { status: "BUSY".into() });
        let record = SessionRecord::from_state(&unanswered);
        assert_eq!((record.v, &record.o), (FORMAT, &Some(OutcomeRecord::Unanswered("BUSY".into()))));
        let raw = encode("session", &record).unwrap();
        assert_eq!(
            decode_session("s-5", &raw).unwrap().outcome,
            Some(Outcome::Unanswered { status: "BUSY".into() })
        );
    }

    /// Regression (fuzz `stored_state`): a record with an unknown field holding 1,000 nested
    /// one-element arrays overflowed a test thread's stack under rmp-serde's default depth limit.
    #[test]
    fn deeply_nested_garbage_is_a_decode_error_not_a_stack_overflow() {
        let mut raw = vec![0x81u8, 0xa2, b'z', b'z'];
        raw.extend(std::iter::repeat_n(0x91u8, 1_000));
        raw.push(0xc0);
        let e = decode_session("s", &raw).unwrap_err();
        assert!(e.to_string().contains("depth limit exceeded"), "{e}");
    }

    fn state() -> CallState {
        let old = SessionRecord {
            v: FORMAT,
            m: "m".into(),
            h: Hash([1; 32]),
            inbound: true,
            src: "+6591178965".into(),
            dst: "+6568888888".into(),
            n: 0,
            ph: 1,
            t: 0,
            q: 1,
            p: vec![0],
            k: None,
            vs: BTreeMap::new(),
            ci: None,
            o: None,
            c: false,
            t0: 0,
            t1: 0,
            j: Vec::new(),
            jo: Vec::new(),
            tr: Transcript::default(),
        };
        old.to_state("s").unwrap()
    }

    /// The journal keeps the latest replies' bytes and recognises older events by hash, within
    /// its bounds however long the call.
    #[test]
    fn the_reply_journal_is_bounded_and_forgets_bytes_not_events() {
        let mut r = SessionRecord::from_state(&state());
        for i in 0..100 {
            r.journal(&format!("e{i}"), format!("reply {i}").as_bytes());
        }
        assert_eq!(r.j.len(), REPLIES_KEPT);
        assert_eq!(r.jo.len(), EVENT_IDS_KEPT);
        assert_eq!(r.replied("e99"), Some(super::super::Journaled::Reply(b"reply 99".to_vec())));
        assert_eq!(r.replied("e98"), Some(super::super::Journaled::Reply(b"reply 98".to_vec())));
        assert_eq!(r.replied("e97"), Some(super::super::Journaled::Forgotten));
        assert_eq!(r.replied("e66"), Some(super::super::Journaled::Forgotten));
        assert_eq!(r.replied("e65"), None, "older than the journal remembers");
        assert_eq!(r.replied("e100"), None);
        let raw = encode("session", &r).unwrap();
        assert_eq!(decode_record("s", &raw).unwrap(), r);
    }

    /// An entry that names split variants is written as format 4 and reads back whole; one
    /// without stays format 1, which an older phonetree reads.
    #[test]
    fn split_variants_are_entry_format_4() {
        let mut e = Entry {
            at_ms: 1,
            event: Happened::CallStarted,
            left: String::new(),
            entered: "menu".into(),
            said: vec![],
            requests: vec![],
            variants: vec![],
            resume: None,
        };
        assert_eq!(EntryRecord::from_entry(&e).v, 1);
        e.variants = vec![Variant { node: "greeting".into(), variant: "a".into() }];
        let r = EntryRecord::from_entry(&e);
        assert_eq!(r.v, 4);
        let raw = encode("transcript", &r).unwrap();
        assert_eq!(decode_entry("s", &raw).unwrap(), e);
    }

    /// An entry with the resume offer is format 5, and reads back whole inside a session record
    /// (an array, its fields by position) with or without split variants before it.
    #[test]
    fn resume_offers_are_entry_format_5_and_read_back_in_a_session_record() {
        let offered = Entry {
            at_ms: 1,
            event: Happened::CallStarted,
            left: String::new(),
            entered: "menu".into(),
            said: vec![],
            requests: vec![],
            variants: vec![],
            resume: Some(Resumption::Offered),
        };
        let went_on = Entry {
            event: Happened::Keys { keys: "1".into() },
            resume: Some(Resumption::WentOn { vars: [("account".into(), "1234".into())].into() }),
            variants: vec![Variant { node: "greeting".into(), variant: "a".into() }],
            ..offered.clone()
        };
        let plain = Entry { resume: None, ..offered.clone() };
        assert_eq!(EntryRecord::from_entry(&offered).v, ENTRY_FORMAT);
        assert_eq!(EntryRecord::from_entry(&plain).v, 1);
        let mut r = SessionRecord::from_state(&state());
        for e in [&offered, &went_on, &plain] {
            r.append("s", e).unwrap();
        }
        // Written, read and written again (as every commit rewrites a session record), and read.
        let raw = encode_record(&r).unwrap();
        let again = encode_record(&decode_record("s", &raw).unwrap()).unwrap();
        assert_eq!(raw, again);
        assert_eq!(
            decode_record("s", &again).unwrap().transcript("s").unwrap(),
            vec![offered, went_on, plain]
        );
    }

    /// Format 8 keeps a session record's transcript as the bytes of its entries; a format 7
    /// record (the same array, written in place) reads the same, goes on from there and is
    /// written again as format 8, without decoding the entries to append one.
    #[test]
    fn a_format_7_transcript_reads_the_same_and_is_written_as_bytes() {
        let entry = |i: u64| Entry {
            at_ms: i,
            event: Happened::Keys { keys: i.to_string() },
            left: "menu".into(),
            entered: format!("n{i}"),
            said: vec![Said { node: format!("n{i}"), action: "say".into(), text: "Hello.".into() }],
            requests: vec![],
            variants: vec![],
            resume: None,
        };
        let mut r = SessionRecord::from_state(&state());
        for i in 0..20 {
            r.append("s", &entry(i)).unwrap();
        }
        let raw8 = encode_record(&r).unwrap();
        // Format 7: the entries' array where format 8 has a `bin` holding it, and `v` 7.
        let entries = &r.tr.raw;
        let mut raw7 = raw8[..raw8.len() - entries.len()].to_vec();
        let len = u16::try_from(entries.len()).unwrap().to_be_bytes();
        assert_eq!(raw7.split_off(raw7.len() - 3), [0xc5, len[0], len[1]], "a bin 16 header");
        raw7.extend_from_slice(entries);
        assert_eq!((raw7[0], raw7[3]), (0xdc, FORMAT));
        raw7[3] = 7;
        let mut old = decode_record("s", &raw7).unwrap();
        assert_eq!(old.v, 7);
        assert_eq!(old.transcript("s").unwrap(), (0..20).map(entry).collect::<Vec<_>>());
        assert_eq!(old.tr, r.tr, "the same bytes");
        old.append("s", &entry(20)).unwrap();
        r.append("s", &entry(20)).unwrap();
        assert_eq!(old.tr, r.tr);
        let again = decode_record("s", &encode_record(&SessionRecord { v: FORMAT, ..old }).unwrap()).unwrap();
        assert_eq!(again.transcript("s").unwrap(), (0..21).map(entry).collect::<Vec<_>>());
        // Garbage where the entries should be is a decode error when read or appended to.
        let mut broken = again.clone();
        broken.tr.raw = vec![0xc1];
        assert!(broken.transcript("s").is_err());
        assert!(broken.append("s", &entry(0)).is_err());
    }

    /// A transcript keeps a session record bounded: `ENTRIES_MAX` entries of `ENTRY_BYTES_MAX`
    /// texts at most, whatever the call does.
    #[test]
    fn a_session_record_with_a_full_transcript_stays_bounded() {
        use crate::engine::transcript::{ENTRY_BYTES_MAX, TEXT_CHARS_MAX};
        let bare = encode_session(&state()).unwrap().len();
        let typical = Entry {
            at_ms: 1_795_658_652_321,
            event: Happened::Keys { keys: "111111#".into() },
            left: "ask_order".into(),
            entered: "more".into(),
            said: vec![Said {
                node: "in_transit".into(),
                action: "say".into(),
                text: "Your order 1 1 1 1 1 1 is on its way and will arrive on Friday.".into(),
            }],
            requests: vec![],
            variants: vec![],
            resume: None,
        };
        let mut r = SessionRecord::from_state(&state());
        r.append("s", &typical).unwrap();
        let one = encode("session", &r).unwrap().len() - bare;
        let mut worst = typical.clone();
        worst.said =
            vec![Said { node: "n".repeat(64), action: "say".into(), text: "x".repeat(TEXT_CHARS_MAX) }; 16];
        worst.bound();
        for _ in 0..ENTRIES_MAX + 10 {
            r.append("s", &worst).unwrap();
        }
        assert_eq!(r.transcript("s").unwrap().len(), ENTRIES_MAX);
        let full = encode("session", &r).unwrap().len();
        eprintln!(
            "session record: {bare} B bare, +{one} B per typical entry, {full} B with a full transcript"
        );
        // Per entry: the texts, plus a little MessagePack framing per field.
        assert!(full <= bare + ENTRIES_MAX * (ENTRY_BYTES_MAX + 256), "{full}");
    }
}
