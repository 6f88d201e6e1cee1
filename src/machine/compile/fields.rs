//! Which fields each node kind takes, and the check that a node sets no field of another kind.

use super::super::definition::{Kind, NodeDef};
use super::{At, Compiler};

/// The speech fields of every node that says something.
const SPEECH_FIELDS: &[&str] = &["voice_profile", "speed", "repetition"];
/// 8x8's capture fields, for the nodes that ask with `sayAndCapture` and their own retries.
const CAPTURE_FIELDS: &[&str] = &[
    "min_digits",
    "max_digits",
    "digit_timeout_ms",
    "overall_timeout_ms",
    "complete_on_hash",
    "no_of_tries",
    "success_message",
    "failure_message",
];

/// The fields each node kind takes, besides `kind`, in groups.
pub(super) const FIELDS_BY_KIND: &[(Kind, &[&[&str]])] = &[
    (
        Kind::Menu,
        &[&["prompt", "reprompt", "tries", "branches", "invalid", "no_input"], SPEECH_FIELDS, CAPTURE_FIELDS],
    ),
    (
        Kind::Input,
        &[
            &["prompt", "reprompt", "tries", "variable", "pattern", "example", "next", "invalid", "no_input"],
            SPEECH_FIELDS,
            CAPTURE_FIELDS,
        ],
    ),
    (
        Kind::Script,
        &[
            &["prompt", "reprompt", "allow_keypress", "min_digits", "max_digits", "digit_gap_ms", "repeat"],
            &["url", "body", "raw_json", "headers", "timeout_ms", "cache_minutes"],
            &["response_key", "branches", "default", "failure", "no_input", "store"],
            SPEECH_FIELDS,
        ],
    ),
    (Kind::Say, &[&["text", "next"], SPEECH_FIELDS]),
    (Kind::Play, &[&["file_url", "repetition", "next"]]),
    (Kind::Transfer, &[&["destination", "source", "call_recording", "after"]]),
    (Kind::Hangup, &[]),
];

/// Whether a node of `kind` takes `field`.
pub(super) fn takes(kind: Kind, field: &str) -> bool {
    FIELDS_BY_KIND
        .iter()
        .filter(|(k, _)| *k == kind)
        .flat_map(|(_, groups)| groups.iter())
        .any(|g| g.contains(&field))
}

impl Compiler<'_> {
    pub(super) fn check_fields(&mut self, name: &str, node: &NodeDef) {
        for field in present_fields(node) {
            if !takes(node.kind, field) {
                let owners = FIELDS_BY_KIND
                    .iter()
                    .filter(|(k, _)| takes(*k, field))
                    .map(|(k, _)| format!("`{}`", kind_name(*k)))
                    .collect::<Vec<_>>()
                    .join(", ");
                self.error(
                    At::Node(name, field),
                    format!("field `{field}` does not apply to a `{}` node", kind_name(node.kind)),
                    Some(format!("`{field}` belongs to {owners} nodes; remove it or change `kind`")),
                );
            }
        }
    }
}

pub(super) fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Menu => "menu",
        Kind::Input => "input",
        Kind::Script => "script",
        Kind::Say => "say",
        Kind::Play => "play",
        Kind::Transfer => "transfer",
        Kind::Hangup => "hangup",
    }
}

/// The optional fields a node sets.
pub(super) fn present_fields(n: &NodeDef) -> Vec<&'static str> {
    let set = [
        ("prompt", n.prompt.is_some()),
        ("reprompt", n.reprompt.is_some()),
        ("tries", n.tries.is_some()),
        ("branches", n.branches.is_some()),
        ("invalid", n.invalid.is_some()),
        ("no_input", n.no_input.is_some()),
        ("variable", n.variable.is_some()),
        ("pattern", n.pattern.is_some()),
        ("example", n.example.is_some()),
        ("url", n.url.is_some()),
        ("body", n.body.is_some()),
        ("raw_json", n.raw_json.is_some()),
        ("headers", n.headers.is_some()),
        ("timeout_ms", n.timeout_ms.is_some()),
        ("response_key", n.response_key.is_some()),
        ("default", n.default.is_some()),
        ("failure", n.failure.is_some()),
        ("store", n.store.is_some()),
        ("cache_minutes", n.cache_minutes.is_some()),
        ("allow_keypress", n.allow_keypress.is_some()),
        ("digit_gap_ms", n.digit_gap_ms.is_some()),
        ("repeat", n.repeat.is_some()),
        ("text", n.text.is_some()),
        ("file_url", n.file_url.is_some()),
        ("next", n.next.is_some()),
        ("destination", n.destination.is_some()),
        ("source", n.source.is_some()),
        ("call_recording", n.call_recording.is_some()),
        ("after", n.after.is_some()),
        ("voice_profile", n.voice_profile.is_some()),
        ("speed", n.speed.is_some()),
        ("repetition", n.repetition.is_some()),
        ("min_digits", n.min_digits.is_some()),
        ("max_digits", n.max_digits.is_some()),
        ("digit_timeout_ms", n.digit_timeout_ms.is_some()),
        ("overall_timeout_ms", n.overall_timeout_ms.is_some()),
        ("complete_on_hash", n.complete_on_hash.is_some()),
        ("no_of_tries", n.no_of_tries.is_some()),
        ("success_message", n.success_message.is_some()),
        ("failure_message", n.failure_message.is_some()),
    ];
    set.iter().filter(|(_, on)| *on).map(|(f, _)| *f).collect()
}
