//! The id phonetree puts on every reply that waits, which 8x8 echoes in the next webhook.

use std::fmt;

/// The id phonetree puts on every reply that waits: `pt.MACHINE.NODE.SEQ.VERSION`.
/// 8x8 echoes it in the next webhook, so a call can be located without stored state and a webhook
/// answering an older prompt is told apart from one answering the current prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientActionId {
    pub machine: String,
    pub node: String,
    pub seq: u32,
    /// The machine version's short hex form.
    pub version: String,
}

impl ClientActionId {
    pub fn parse(s: &str) -> Option<ClientActionId> {
        let mut parts = s.split('.');
        if parts.next()? != "pt" {
            return None;
        }
        let (machine, node, seq, version) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() || machine.is_empty() || node.is_empty() {
            return None;
        }
        Some(ClientActionId {
            machine: machine.to_string(),
            node: node.to_string(),
            seq: seq.parse().ok()?,
            version: version.to_string(),
        })
    }
}

impl fmt::Display for ClientActionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pt.{}.{}.{}.{}", self.machine, self.node, self.seq, self.version)
    }
}
