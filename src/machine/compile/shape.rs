//! Shape: a file's syntax tree → `Definition`, each table read leniently, so that every shape
//! problem — an unknown field, an unknown or missing kind, a value of the wrong type — is found in
//! one run, node by node, and every node that parsed goes on to the other passes.
//!
//! A table is deserialized whole (the fast path: one pass over the tree). Only when that fails is
//! the file parsed again and each field of that table tried alone, to report each bad one.

use std::cell::OnceCell;

use serde::de::DeserializeOwned;
use toml::Spanned;
use toml::de::{DeTable, DeValue, ValueDeserializer};

use super::super::definition::{Defaults, Definition, FieldSet, Kind, NodeDef};
use super::super::source::{self, Format, Source, SyntaxError};
use super::fields::{self, field_index, kind_names, quoted};
use crate::machine::diagnostic::closest;

/// A problem with the shape of one field or table.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(super) enum ShapeError {
    #[error("unknown field `{0}`")]
    UnknownField(String),
    #[error("unknown kind `{0}`")]
    UnknownKind(String),
    #[error("`kind` must be a string")]
    KindNotText,
    #[error("a node needs `kind`")]
    MissingKind,
    #[error("the machine needs `{0}`")]
    Missing(&'static str),
    #[error("expected a table of fields")]
    NotATable,
    #[error("duplicate key")]
    DuplicateKey,
    /// A TOML syntax error the parser recovered from; `dropped`: the value it is in was dropped.
    #[error("{message}")]
    Syntax { message: String, dropped: bool },
    /// serde's own words on a value it could not read (`invalid type: string "x", expected i64`).
    #[error("{0}")]
    Value(String),
}

/// Where a shape problem points in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Point {
    /// The key of the path.
    Key,
    /// The value of the path.
    Value,
    /// This byte offset (a position the parser gave).
    Offset(usize),
}

/// One shape problem: the path of the field or table (`["nodes", "menu", "tries"]`), where it
/// points, what is wrong and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Shaped {
    pub path: Vec<String>,
    pub point: Point,
    pub error: ShapeError,
    pub hint: Option<String>,
}

/// The definition read from a file, and every shape problem found on the way.
pub(super) fn read(source: &Source) -> Result<(Definition, Vec<Shaped>), SyntaxError> {
    match source.format {
        Format::Toml => {
            let (root, recovered) = source::toml_tree(&source.text)?;
            let mut reader = Reader::new(&source.text, |t| source::toml_tree(t).ok().map(|(root, _)| root));
            for r in recovered {
                reader.syntax(r);
            }
            reader.read(root)
        }
        // serde_json stops at the first syntax error: nothing after it can be read.
        Format::Json => {
            let root = source::json_tree(&source.text)?;
            let mut reader = Reader::new(&source.text, |t| source::json_tree(t).ok());
            for (path, offset) in source::json_duplicates(&source.text) {
                let hint = Some("each key may appear once per object".into());
                reader.problem(&path, Point::Offset(offset), ShapeError::DuplicateKey, hint);
            }
            reader.read(root)
        }
    }
}

/// How to write the value serde expected (`invalid type: string "x", expected i64`).
fn type_hint(message: &str) -> Option<String> {
    let expected = message.rsplit("expected ").next().filter(|_| message.contains("expected "))?;
    let hint = match expected.trim() {
        e if e.starts_with(['i', 'u']) && e[1..].chars().all(|c| c.is_ascii_digit()) => {
            "write a whole number, without quotes"
        }
        "f32" | "f64" => "write a number, without quotes",
        "a boolean" => "write `true` or `false`, without quotes",
        "a string" => "write text in double quotes",
        "a sequence" => "write a list: `[..., ...]`",
        "a map" => "write a table: `{ key = value }`",
        _ => return None,
    };
    Some(hint.into())
}

/// How to fix a TOML syntax error, from the parser's message.
fn syntax_hint(message: &str) -> String {
    let expected = message.split("expected `").nth(1).and_then(|e| e.split('`').next());
    if message == "a value is missing" {
        "give the key a value: `key = value`".into()
    } else if message.contains("must be quoted") {
        "quote text: `field = \"text\"`".into()
    } else if let Some(token) = expected {
        format!("add the missing `{token}`")
    } else {
        "write one `key = value` a line, text in double quotes, each node as `[nodes.NAME]`".into()
    }
}

/// Why a value does not fit its field: serde's message, and the byte offset it points at (if known).
type Misfit = (String, Option<usize>);

/// A parsed value of a machine file, TOML or JSON: what the shape pass needs of either.
trait Tree: Sized {
    /// A table's keys; `None` when the value is not a table.
    fn keys(&self) -> Option<Vec<&str>>;
    /// The string at `key` of a table: `None` when absent, `Some(None)` when not a string.
    fn str_at(&self, key: &str) -> Option<Option<&str>>;
    /// Takes the value at `key` out of a table.
    fn take(&mut self, key: &str) -> Option<Self>;
    /// A table's entries, by value.
    fn entries(self) -> Vec<(String, Self)>;
    /// The value at `path` below this one.
    fn at(&self, path: &[&str]) -> Option<&Self>;
    /// A copy of a table with only the keys `keep` keeps.
    fn only(&self, keep: &dyn Fn(&str) -> bool) -> Self;
    /// The value as a `T`, or serde's message and the byte offset it points at (if known).
    fn to<T: DeserializeOwned>(self) -> Result<T, Misfit>;
}

impl<'i> Tree for Spanned<DeValue<'i>> {
    fn keys(&self) -> Option<Vec<&str>> {
        self.get_ref().as_table().map(|t| t.keys().map(|k| k.get_ref().as_ref()).collect())
    }

    fn str_at(&self, key: &str) -> Option<Option<&str>> {
        self.get_ref().as_table()?.get(key).map(|v| v.get_ref().as_str())
    }

    fn take(&mut self, key: &str) -> Option<Self> {
        match self.get_mut() {
            DeValue::Table(t) => t.remove(key),
            _ => None,
        }
    }

    fn entries(self) -> Vec<(String, Self)> {
        match self.into_inner() {
            DeValue::Table(t) => t.into_iter().map(|(k, v)| (k.into_inner().into_owned(), v)).collect(),
            _ => Vec::new(),
        }
    }

    fn at(&self, path: &[&str]) -> Option<&Self> {
        path.iter().try_fold(self, |v, key| v.get_ref().as_table()?.get(*key))
    }

    fn only(&self, keep: &dyn Fn(&str) -> bool) -> Self {
        let table: DeTable<'i> = match self.get_ref() {
            DeValue::Table(t) => {
                t.iter().filter(|(k, _)| keep(k.get_ref())).map(|(k, v)| (k.clone(), v.clone())).collect()
            }
            _ => DeTable::new(),
        };
        Spanned::new(self.span(), DeValue::Table(table))
    }

    fn to<T: DeserializeOwned>(self) -> Result<T, Misfit> {
        T::deserialize(ValueDeserializer::from(self))
            .map_err(|e| (source::toml_message(e.message()), e.span().map(|s| s.start)))
    }
}

impl Tree for serde_json::Value {
    fn keys(&self) -> Option<Vec<&str>> {
        self.as_object().map(|o| o.keys().map(String::as_str).collect())
    }

    fn str_at(&self, key: &str) -> Option<Option<&str>> {
        self.as_object()?.get(key).map(|v| v.as_str())
    }

    fn take(&mut self, key: &str) -> Option<Self> {
        self.as_object_mut()?.remove(key)
    }

    fn entries(self) -> Vec<(String, Self)> {
        match self {
            serde_json::Value::Object(o) => o.into_iter().collect(),
            _ => Vec::new(),
        }
    }

    fn at(&self, path: &[&str]) -> Option<&Self> {
        path.iter().try_fold(self, |v, key| v.as_object()?.get(*key))
    }

    fn only(&self, keep: &dyn Fn(&str) -> bool) -> Self {
        let object = self.as_object().into_iter().flatten().filter(|(k, _)| keep(k));
        serde_json::Value::Object(object.map(|(k, v)| (k.clone(), v.clone())).collect())
    }

    fn to<T: DeserializeOwned>(self) -> Result<T, Misfit> {
        T::deserialize(self).map_err(|e| (e.to_string(), None))
    }
}

/// Reads one file's tree, collecting its shape problems.
struct Reader<'t, V> {
    text: &'t str,
    /// Parses the text again, for the slow path (a table that does not deserialize whole).
    parse: fn(&'t str) -> Option<V>,
    again: OnceCell<Option<V>>,
    problems: Vec<Shaped>,
    /// Nodes whose table holds a syntax error: not compiled (a placeholder in the graph).
    unreadable: Vec<String>,
    /// Machine-level fields whose value was dropped for a syntax error: not missing.
    dropped: Vec<String>,
}

impl<'t, V: Tree> Reader<'t, V> {
    fn new(text: &'t str, parse: fn(&'t str) -> Option<V>) -> Self {
        Reader {
            text,
            parse,
            again: OnceCell::new(),
            problems: Vec::new(),
            unreadable: Vec::new(),
            dropped: Vec::new(),
        }
    }

    /// A syntax error the TOML parser recovered from, with a hint; the node it is in is not compiled
    /// (but for a duplicate key, whose first value is kept).
    fn syntax(&mut self, r: source::Recovered) {
        if r.duplicate {
            let hint =
                Some("each key may appear once per table: remove one (the first is the one checked)".into());
            self.problem(&r.path, Point::Offset(r.offset), ShapeError::DuplicateKey, hint);
            return;
        }
        match r.path.as_slice() {
            [nodes, name, ..] if nodes == "nodes" => self.unreadable.push(name.clone()),
            [field] if r.dropped => self.dropped.push(field.clone()),
            _ => {}
        }
        let hint = Some(syntax_hint(&r.message));
        let error = ShapeError::Syntax { message: r.message, dropped: r.dropped };
        self.problems.push(Shaped { path: r.path, point: Point::Offset(r.offset), error, hint });
    }

    fn problem<S: AsRef<str>>(&mut self, path: &[S], point: Point, error: ShapeError, hint: Option<String>) {
        let path = path.iter().map(|p| p.as_ref().to_string()).collect();
        self.problems.push(Shaped { path, point, error, hint });
    }

    fn read(mut self, mut root: V) -> Result<(Definition, Vec<Shaped>), SyntaxError> {
        let Some(keys) = root.keys() else { return Err(SyntaxError::NotATable) };
        let (has_name, has_start) = (keys.contains(&"name"), keys.contains(&"start"));
        let nodes = root.take("nodes");
        let defaults = root.take("defaults");
        let known: Vec<&str> =
            fields::machine_fields().iter().copied().chain(["defaults", "nodes"]).collect();
        self.unknown_keys(&root, &[], &known);
        let (mut def, _) = self.lenient::<Definition>(root, &[]);
        for (present, field) in [(has_name, "name"), (has_start, "start")] {
            if !present && !self.dropped.iter().any(|d| d == field) {
                let hint = format!("add `{field} = \"...\"` at the top of the file");
                self.problem(&[field], Point::Key, ShapeError::Missing(field), Some(hint));
            }
        }
        if let Some(d) = defaults {
            self.unknown_keys(&d, &["defaults"], fields::default_fields());
            def.defaults = self.lenient::<Defaults>(d, &["defaults"]).0;
        }
        if let Some(nodes) = nodes {
            def.nodes = self.nodes(nodes);
        }
        // A `[nodes.NAME]` header the parser could not read: the node is there, unread, so that
        // what names it is not an unknown target.
        for name in &self.unreadable {
            if let Err(at) = def.nodes.binary_search_by(|(n, _)| n.as_str().cmp(name)) {
                def.nodes.insert(at, (name.clone(), NodeDef { broken: true, ..NodeDef::default() }));
            }
        }
        Ok((def, self.problems))
    }

    /// Reports the keys of `table` at `path` that are not among `known`; false if any.
    fn unknown_keys(&mut self, table: &V, path: &[&str], known: &[&str]) -> bool {
        let Some(keys) = table.keys() else {
            self.problem(path, Point::Value, ShapeError::NotATable, None);
            return false;
        };
        let unknown: Vec<String> =
            keys.into_iter().filter(|k| !known.contains(k)).map(str::to_string).collect();
        for key in &unknown {
            let hint = fields::unknown_key_hint(key, known);
            let at: Vec<&str> = path.iter().copied().chain([key.as_str()]).collect();
            self.problem(&at, Point::Key, ShapeError::UnknownField(key.clone()), Some(hint));
        }
        unknown.is_empty()
    }

    fn nodes(&mut self, nodes: V) -> Vec<(String, NodeDef)> {
        if nodes.keys().is_none() {
            self.problem(
                &["nodes"],
                Point::Value,
                ShapeError::NotATable,
                Some("write each node as `[nodes.NAME]`".into()),
            );
            return Vec::new();
        }
        let entries = nodes.entries();
        let mut out = Vec::with_capacity(entries.len());
        for (name, value) in entries {
            let node = self.node(&name, value);
            out.push((name, node));
        }
        // Both formats' tables are sorted maps already; sorting again only guards that order.
        out.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// One node: its kind, the fields its table sets, and the values of those that parse.
    fn node(&mut self, name: &str, value: V) -> NodeDef {
        let path = ["nodes", name];
        let Some(keys) = value.keys() else {
            self.problem(&path, Point::Value, ShapeError::NotATable, None);
            return NodeDef { broken: true, ..NodeDef::default() };
        };
        let kind = self.kind(name, value.str_at("kind"));
        let mut fields = FieldSet::default();
        let mut unknown = Vec::new();
        for key in keys.into_iter().filter(|k| *k != "kind") {
            match field_index(key) {
                Some(i) => fields.insert(i),
                None => unknown.push(key.to_string()),
            }
        }
        for key in &unknown {
            let hint = fields::unknown_field_hint(key, kind);
            self.problem(
                &["nodes", name, key],
                Point::Key,
                ShapeError::UnknownField(key.clone()),
                Some(hint),
            );
        }
        let (mut node, clean) = self.lenient::<NodeDef>(value, &path);
        node.kind = kind;
        node.fields = fields;
        node.broken =
            !clean || kind.is_none() || !unknown.is_empty() || self.unreadable.iter().any(|n| n == name);
        node
    }

    /// A node's kind: `None` (reported) when it is missing or names no kind.
    fn kind(&mut self, name: &str, kind: Option<Option<&str>>) -> Option<Kind> {
        if let Some(kind) = kind.flatten().and_then(fields::kind_of) {
            return Some(kind);
        }
        let list = format!("a node's kind is one of {}", quoted(kind_names()));
        let (path, point, error, hint) = match kind {
            Some(Some(k)) => {
                let near = closest(k, kind_names().iter().copied());
                let hint = near.map_or(list.clone(), |c| format!("did you mean `{c}`? {list}"));
                (vec!["nodes", name, "kind"], Point::Value, ShapeError::UnknownKind(k.to_string()), hint)
            }
            Some(None) => (vec!["nodes", name, "kind"], Point::Value, ShapeError::KindNotText, list),
            None => (
                vec!["nodes", name],
                Point::Key,
                ShapeError::MissingKind,
                format!("add `kind = \"...\"`: {list}"),
            ),
        };
        self.problem(&path, point, error, Some(hint));
        None
    }

    /// `value` (the table at `path`) as a `T`; a field whose value does not fit is reported and left
    /// out. True when every field fit.
    fn lenient<T: DeserializeOwned + Default>(&mut self, value: V, path: &[&str]) -> (T, bool) {
        match value.to::<T>() {
            Ok(t) => (t, true),
            Err(whole) => (self.field_by_field(path, whole), false),
        }
    }

    /// The slow path: each field of the table at `path` (in a fresh parse) tried alone, each that
    /// does not fit reported; the table without them as a `T`.
    fn field_by_field<T: DeserializeOwned + Default>(&mut self, path: &[&str], whole: Misfit) -> T {
        let (text, parse) = (self.text, self.parse);
        let table = self.again.get_or_init(|| parse(text)).as_ref().and_then(|root| root.at(path));
        // (the field, or the table when no single field is to blame; serde's message; its offset)
        let mut bad: Vec<(Option<String>, Misfit)> = Vec::new();
        let mut rest = T::default();
        match table {
            None => bad.push((None, whole)),
            Some(table) => {
                for key in table.keys().unwrap_or_default() {
                    if let Err(e) = table.only(&|k| k == key).to::<T>() {
                        bad.push((Some(key.to_string()), e));
                    }
                }
                match table.only(&|k| !bad.iter().any(|(b, _)| b.as_deref() == Some(k))).to::<T>() {
                    Ok(t) => rest = t,
                    Err(e) => bad.push((None, e)),
                }
            }
        }
        for (key, (message, offset)) in bad {
            let at: Vec<&str> = path.iter().copied().chain(key.as_deref()).collect();
            let point = offset.map_or(Point::Value, Point::Offset);
            let hint = type_hint(&message);
            self.problem(&at, point, ShapeError::Value(message), hint);
        }
        rest
    }
}
