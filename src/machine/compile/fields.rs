//! Which fields each node kind takes (`FIELDS_BY_KIND`), the fields a node table may have at all
//! (serde's own list for `NodeDef`, so that it cannot drift from the struct), and the checks that a
//! node sets no field of another kind and no field that does not exist.

use std::sync::OnceLock;

use serde::Deserialize;
use serde::de::{self, Visitor};

use super::super::definition::{Defaults, Definition, FieldSet, Kind, NodeDef};
use super::super::diagnostic::closest;
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

/// The fields each node kind takes, besides `kind`, in groups: the rule, checked against `NodeDef`
/// by a test.
pub(super) const FIELDS_BY_KIND: &[(Kind, &[&[&str]])] = &[
    (
        Kind::Menu,
        &[
            &["prompt", "reprompt", "tries", "branches", "invalid", "no_input", "global_keys"],
            SPEECH_FIELDS,
            CAPTURE_FIELDS,
        ],
    ),
    (
        Kind::Input,
        &[
            &["prompt", "reprompt", "tries", "variable", "pattern", "example", "next", "invalid", "no_input"],
            &["global_keys"],
            &["sensitive"],
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
    (Kind::Transfer, &[&["destination", "source", "call_recording", "after", "failure", "on_unanswered"]]),
    (Kind::Hangup, &[]),
    (Kind::Route, &[&["rules", "else"]]),
    (Kind::Set, &[&["values", "add", "next", "not_number"]]),
    (Kind::Split, &[&["weights", "next", "sticky_by", "salt", "force"]]),
    (Kind::Module, &[&["module", "with", "exits"]]),
    (Kind::Exit, &[&["exit"]]),
];

/// The names serde reads for `T`: a struct's fields or an enum's variants, in declaration order
/// (caught from the derived `Deserialize`, which names them when it asks for a struct or enum).
fn names_of<T: for<'de> Deserialize<'de>>() -> &'static [&'static str] {
    let mut names: &'static [&'static str] = &[];
    let _ = T::deserialize(Names(&mut names));
    names
}

/// A deserializer that only notes the names a `Deserialize` impl asks for.
struct Names<'a>(&'a mut &'static [&'static str]);

impl<'de> de::Deserializer<'de> for Names<'_> {
    type Error = de::value::Error;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
        Err(de::Error::custom("names only"))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, Self::Error> {
        *self.0 = fields;
        Err(de::Error::custom("names only"))
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _: &'static str,
        variants: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, Self::Error> {
        *self.0 = variants;
        Err(de::Error::custom("names only"))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option
        unit unit_struct newtype_struct seq tuple tuple_struct map identifier ignored_any
    }
}

/// The fields of a node table besides `kind`: `NodeDef`'s, as serde reads them.
pub(super) fn node_fields() -> &'static [&'static str] {
    static FIELDS: OnceLock<&'static [&'static str]> = OnceLock::new();
    FIELDS.get_or_init(names_of::<NodeDef>)
}

/// The machine-level fields serde reads with `Definition` (`defaults` and `nodes` are read apart).
pub(super) fn machine_fields() -> &'static [&'static str] {
    static FIELDS: OnceLock<&'static [&'static str]> = OnceLock::new();
    FIELDS.get_or_init(names_of::<Definition>)
}

/// The fields of `[defaults]`.
pub(super) fn default_fields() -> &'static [&'static str] {
    static FIELDS: OnceLock<&'static [&'static str]> = OnceLock::new();
    FIELDS.get_or_init(names_of::<Defaults>)
}

/// The kinds' names, in `Kind`'s order.
pub(super) fn kind_names() -> &'static [&'static str] {
    static KINDS: OnceLock<&'static [&'static str]> = OnceLock::new();
    KINDS.get_or_init(names_of::<Kind>)
}

/// The kind a node's `kind` names, as serde reads it.
pub(super) fn kind_of(name: &str) -> Option<Kind> {
    use serde::de::IntoDeserializer;
    let name: de::value::StrDeserializer<'_, de::value::Error> = name.into_deserializer();
    Kind::deserialize(name).ok()
}

pub(super) fn kind_name(kind: Kind) -> &'static str {
    kind_names()[kind as usize]
}

/// The index of a node field in `node_fields()`.
pub(super) fn field_index(field: &str) -> Option<usize> {
    node_fields().iter().position(|f| *f == field)
}

/// The fields a node of `kind` takes, as a set.
pub(super) fn taken_by(kind: Kind) -> FieldSet {
    static SETS: OnceLock<Vec<FieldSet>> = OnceLock::new();
    let sets = SETS.get_or_init(|| {
        let mut sets = vec![FieldSet::default(); kind_names().len()];
        for (k, groups) in FIELDS_BY_KIND {
            for field in groups.iter().flat_map(|g| g.iter()) {
                sets[*k as usize].insert(field_index(field).expect("FIELDS_BY_KIND names NodeDef's fields"));
            }
        }
        sets
    });
    sets[kind as usize]
}

/// Each kind's name and the fields it takes besides `kind`, in `NodeDef`'s order (the JSON
/// Schema's rule, the same as `check_fields`').
pub(crate) fn kinds_and_fields() -> Vec<(&'static str, Vec<&'static str>)> {
    let fields = |kind| taken_by(kind).indexes().map(|i| node_fields()[i]).collect();
    FIELDS_BY_KIND.iter().map(|(kind, _)| (kind_name(*kind), fields(*kind))).collect()
}

/// A hint for an unknown field of a node of `kind` (any kind when it is not known).
pub(super) fn unknown_field_hint(field: &str, kind: Option<Kind>) -> String {
    let taken: Vec<&str> = match kind {
        Some(k) => taken_by(k).indexes().map(|i| node_fields()[i]).collect(),
        None => node_fields().to_vec(),
    };
    let near =
        closest(field, taken.iter().copied()).or_else(|| closest(field, node_fields().iter().copied()));
    match (near, kind) {
        (Some(near), _) => format!("did you mean `{near}`?"),
        (None, Some(k)) if taken.is_empty() => format!("a `{}` node takes no field but `kind`", kind_name(k)),
        (None, Some(k)) => format!("a `{}` node takes {}", kind_name(k), quoted(&taken)),
        (None, None) => "see the node fields in the README's \"The machine format\"".into(),
    }
}

/// A hint for an unknown machine-level field, among `known`.
pub(super) fn unknown_key_hint(key: &str, known: &[&str]) -> String {
    match closest(key, known.iter().copied()) {
        Some(near) => format!("did you mean `{near}`?"),
        None => format!("the fields here are {}", quoted(known)),
    }
}

/// `a`, `b`, `c`
pub(super) fn quoted(names: &[&str]) -> String {
    names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")
}

impl Compiler<'_> {
    /// Fields of another kind set on a node: each is an error naming the kinds it belongs to.
    pub(super) fn check_fields(&mut self, name: &str, node: &NodeDef) {
        let Some(kind) = node.kind else { return };
        let taken = taken_by(kind);
        for i in node.fields.indexes().filter(|&i| !taken.has(i)) {
            let field = node_fields()[i];
            let owners: Vec<&str> = FIELDS_BY_KIND
                .iter()
                .filter(|(k, _)| taken_by(*k).has(i))
                .map(|(k, _)| kind_name(*k))
                .collect();
            let owners = quoted(&owners);
            self.error(
                At::Node(name, field),
                format!("field `{field}` does not apply to a `{}` node", kind_name(kind)),
                Some(format!("`{field}` belongs to {owners} nodes; remove it or change `kind`")),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_of_a_kind_is_a_node_field_and_every_node_field_has_a_kind() {
        let all = FIELDS_BY_KIND.iter().fold(FieldSet::default(), |set, (k, _)| set.union(taken_by(*k)));
        assert_eq!(all.indexes().count(), node_fields().len(), "a NodeDef field no kind takes");
        assert!(node_fields().len() <= 64, "FieldSet holds 64 fields");
        assert_eq!(FIELDS_BY_KIND.len(), kind_names().len());
        for (i, (k, _)) in FIELDS_BY_KIND.iter().enumerate() {
            assert_eq!(*k as usize, i, "FIELDS_BY_KIND is in Kind's order");
        }
    }

    #[test]
    fn names_come_from_serde() {
        assert_eq!(
            kind_names(),
            [
                "menu", "input", "script", "say", "play", "transfer", "hangup", "route", "set", "split",
                "module", "exit"
            ]
        );
        assert!(machine_fields().contains(&"start") && !machine_fields().contains(&"nodes"));
        assert!(default_fields().contains(&"tries"));
        assert_eq!(field_index("prompt"), Some(0));
    }

    #[test]
    fn unknown_fields_get_the_nearest_field_of_their_kind() {
        assert_eq!(unknown_field_hint("txet", Some(Kind::Say)), "did you mean `text`?");
        assert_eq!(unknown_field_hint("promt", Some(Kind::Menu)), "did you mean `prompt`?");
        assert!(unknown_field_hint("zzzzzz", Some(Kind::Say)).starts_with("a `say` node takes `text`"));
    }
}
