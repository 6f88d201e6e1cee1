//! Call state: everything the engine knows about one call between two webhooks.

use std::collections::BTreeMap;

use crate::machine::{Machine, NodeId, NodeKind, Version};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// The caller dialled one of the machine's numbers.
    Inbound,
    /// phonetree placed the call (Send Callflow API).
    Outbound,
}

/// Who is on the call, as 8x8 reported it when the call started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallInfo {
    pub session_id: String,
    pub direction: Direction,
    /// The calling party as 8x8 reports it (`source`).
    pub source: String,
    /// The called party as 8x8 reports it (`destination`).
    pub destination: String,
    /// 8x8's id of the call leg (`callId`), once a webhook has told it.
    pub call_id: Option<String>,
}

impl CallInfo {
    /// The person on the phone: the caller of an inbound call, the callee of an outbound one.
    pub fn caller(&self) -> &str {
        match self.direction {
            Direction::Inbound => &self.source,
            Direction::Outbound => &self.destination,
        }
    }

    /// The machine's own number on this call.
    pub fn virtual_number(&self) -> &str {
        match self.direction {
            Direction::Inbound => &self.destination,
            Direction::Outbound => &self.source,
        }
    }
}

/// Where a call is in its life.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase {
    /// Created; the start node has not been entered.
    New,
    /// A menu prompt was sent; the next webhook carries the caller's keys (or none).
    AwaitingInput,
    /// A transfer's makeCall was sent; the call ends with the bridge (8x8's session summary says
    /// how it went).
    Bridged,
    /// phonetree sent its last action (hangup), or the session summary arrived.
    Ended,
}

/// How a call ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// phonetree hung up (a hangup node).
    HungUp,
    /// The caller was bridged to `destination` and the call ended there; `status` is the session
    /// summary's (`COMPLETED`, `BUSY`, `NO_ANSWER`, `FAILED`, `CANCELED`, any other as 8x8 wrote
    /// it), once it arrived.
    Transferred { destination: String, status: Option<String> },
    /// The session ended (8x8's summary) while phonetree was still waiting on the caller.
    CallerLeft { status: String },
    /// A call phonetree placed ended (8x8's summary, `status` not `COMPLETED`: `NO_ANSWER`,
    /// `BUSY`, `FAILED`, ...) before any webhook came: the callee never answered.
    Unanswered { status: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallState {
    pub machine: String,
    /// The machine version the call started on; it runs on that version to the end.
    pub version: Version,
    pub call: CallInfo,
    /// The node the call is at (the start node until the call starts).
    pub node: NodeId,
    pub phase: Phase,
    /// Failed tries at the current menu.
    pub tries: u8,
    /// Counts the replies that wait; the current one's number is in its `clientActionId`.
    pub seq: u32,
    /// Nodes entered, most recent last, at most `PATH_LEN_MAX`.
    pub path: Vec<NodeId>,
    /// The keys the caller pressed last.
    pub keypress: Option<String>,
    /// Call variables: the machine's `variables` (their defaults, or the values a placed call
    /// gives, at most `VARIABLE_CHARS_MAX` each), those set by `input` nodes (name → the keys accepted, at most
    /// `KEYPRESS_CHARS_MAX` each) and by scripts' `store` (at most their `max_chars`, itself at
    /// most `STORED_CHARS_MAX` of `compile/scripts.rs`); a machine declares its names, so their number is bounded.
    pub vars: BTreeMap<String, String>,
    pub outcome: Option<Outcome>,
    /// 8x8's session summary arrived: no more webhooks are expected for this call.
    pub closed: bool,
    pub started_ms: u64,
    pub updated_ms: u64,
}

impl CallState {
    pub fn new(m: &Machine, call: CallInfo, now_ms: u64) -> CallState {
        CallState {
            machine: m.name().to_string(),
            version: m.version(),
            call,
            node: m.start(),
            phase: Phase::New,
            tries: 0,
            seq: 0,
            path: Vec::new(),
            keypress: None,
            // Every call starts with the machine's `variables` at their defaults.
            vars: m.variables().clone(),
            outcome: None,
            closed: false,
            started_ms: now_ms,
            updated_ms: now_ms,
        }
    }

    /// A call with no stored state, resumed at `node` (named by the `clientActionId` 8x8 echoes,
    /// issued at `seq`): it waits there as the node's kind has a call wait: for keys at a capture
    /// node, bridged at a transfer, else ended (nothing more to say).
    pub fn resumed(m: &Machine, call: CallInfo, node: NodeId, seq: u32, now_ms: u64) -> CallState {
        let mut state = CallState::new(m, call, now_ms);
        state.node = node;
        state.seq = seq;
        state.path.push(node);
        state.phase = match m.node(node).map(|n| &n.kind) {
            Some(kind) if kind.capture().is_some() => Phase::AwaitingInput,
            Some(NodeKind::Transfer(_)) => Phase::Bridged,
            _ => Phase::Ended,
        };
        state
    }

    /// The call waits at its machine's resume offer (`engine::offer`): the only wait with `seq` 0.
    pub fn offering(&self) -> bool {
        self.phase == Phase::AwaitingInput && self.seq == super::OFFER_SEQ
    }

    pub fn ended(&self) -> bool {
        self.phase == Phase::Ended
    }

    /// A call variable by name (the built-ins of `template::BUILTINS` but `node`).
    pub fn var(&self, name: &str) -> Option<&str> {
        match name {
            "caller" => Some(self.call.caller()),
            "virtual_number" => Some(self.call.virtual_number()),
            "session_id" => Some(&self.call.session_id),
            "call_id" => self.call.call_id.as_deref(),
            "keypress" => Some(self.keypress.as_deref().unwrap_or("")),
            _ => self.vars.get(name).map(String::as_str),
        }
    }
}
