//! Machine source text → `Definition`, plus an index from field paths to file positions.
//!
//! TOML is the authoring format and JSON the generated one; both yield the same `Definition`.
//! Syntax and shape errors come back as one diagnostic with its position; the span index lets the
//! compiler point every later diagnostic at the line and column of the field it is about.

use std::collections::HashMap;

use serde::Deserialize;

use super::definition::Definition;
use super::diagnostic::{Diagnostic, Position, Severity};

/// Largest machine file accepted: a generated 10,000-node machine is about 2 MiB of TOML.
pub const SOURCE_BYTES_MAX: usize = 16 * 1024 * 1024;
/// Deepest nesting the JSON span scanner follows (a machine file is at most 4 levels deep).
const JSON_DEPTH_MAX: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Toml,
    Json,
}

impl Format {
    /// The format a file name implies: `.json` is JSON, everything else TOML.
    pub fn of_file(name: &str) -> Format {
        if name.ends_with(".json") { Format::Json } else { Format::Toml }
    }
}

/// A machine's text and where it came from.
#[derive(Debug, Clone)]
pub struct Source {
    /// The file name diagnostics show.
    pub file: String,
    pub text: String,
    pub format: Format,
}

impl Source {
    pub fn new(file: impl Into<String>, text: impl Into<String>) -> Source {
        let file = file.into();
        let format = Format::of_file(&file);
        Source { file, text: text.into(), format }
    }
}

/// Field path (`["nodes", "main_menu", "branches", "1"]`) → byte offsets of its key and its value.
#[derive(Debug, Default, Clone)]
pub struct SpanIndex {
    /// Keyed by the path's parts joined with `SEP` (one allocation per entry, not one per part).
    spans: HashMap<String, (usize, usize)>,
}

/// Joins path parts in `SpanIndex` keys: the ASCII unit separator, which no machine file key holds.
const SEP: char = '\u{1f}';

fn joined<S: AsRef<str>>(path: &[S]) -> String {
    let mut key = String::with_capacity(path.iter().map(|p| p.as_ref().len() + 1).sum());
    for (i, part) in path.iter().enumerate() {
        if i > 0 {
            key.push(SEP);
        }
        key.push_str(part.as_ref());
    }
    key
}

impl SpanIndex {
    fn insert(&mut self, path: &[String], key: usize, value: usize) {
        self.spans.insert(joined(path), (key, value));
    }

    /// Offsets of the key and value at exactly `path`.
    pub fn get(&self, path: &[&str]) -> Option<(usize, usize)> {
        self.spans.get(&joined(path)).copied()
    }

    /// Offset of the key at `path`, or of its nearest ancestor that has one.
    pub fn key(&self, path: &[&str]) -> Option<usize> {
        self.lookup(path).map(|(k, _)| k)
    }

    /// Offset of the value at `path`, or of its nearest ancestor's key.
    pub fn value(&self, path: &[&str]) -> Option<usize> {
        match self.get(path) {
            Some((_, v)) => Some(v),
            None => self.key(path),
        }
    }

    fn lookup(&self, path: &[&str]) -> Option<(usize, usize)> {
        let mut key = joined(path);
        loop {
            if let Some(&span) = self.spans.get(&key) {
                return Some(span);
            }
            key.truncate(key.rfind(SEP)?);
        }
    }
}

/// Parses a source into its definition, or the one diagnostic that stops it. The positions of a
/// file that parses are only needed when a diagnostic is: `index` finds them then.
pub fn parse(source: &Source) -> Result<Definition, Box<Diagnostic>> {
    let fail = |offset: Option<usize>, message: String, hint: Option<String>| {
        Box::new(Diagnostic {
            severity: Severity::Error,
            file: source.file.clone(),
            position: offset.map(|o| Position::of_offset(&source.text, o)),
            node: None,
            field: None,
            message,
            hint,
        })
    };
    if source.text.len() > SOURCE_BYTES_MAX {
        return Err(fail(
            None,
            format!("file is {} bytes; the limit is {SOURCE_BYTES_MAX}", source.text.len()),
            Some("split the machine into smaller ones".into()),
        ));
    }
    match source.format {
        Format::Toml => {
            let toml_error =
                |e: toml::de::Error| fail(e.span().map(|s| s.start), toml_message(e.message()), None);
            let table = toml::de::DeTable::parse(&source.text).map_err(toml_error)?;
            Definition::deserialize(toml::de::Deserializer::from(table)).map_err(toml_error)
        }
        Format::Json => {
            let definition: Definition = serde_json::from_str(&source.text).map_err(|e| {
                let offset = offset_of_line_col(&source.text, e.line(), e.column());
                // serde_json appends "at line L column C"; the position is ours to print.
                let message = e.to_string();
                let message = message.split(" at line ").next().unwrap_or(&message);
                fail(Some(offset), lowercase_first(message), None)
            })?;
            let mut index = SpanIndex::default();
            let mut scanner =
                JsonScanner { text: source.text.as_bytes(), at: 0, index: &mut index, duplicate: None };
            // The text parsed above, so the scanner cannot fail; its result only adds positions.
            let _ = scanner.value(&mut Vec::new(), 0);
            // serde_json keeps the last of two equal keys; a machine file must not say two things.
            if let Some((path, offset)) = scanner.duplicate {
                return Err(fail(
                    Some(offset),
                    format!("duplicate key `{}`", path.join(".")),
                    Some("each key may appear once per object".into()),
                ));
            }
            Ok(definition)
        }
    }
}

/// The positions of every key and value of a source (empty where it does not parse).
pub fn index(source: &Source) -> SpanIndex {
    let mut index = SpanIndex::default();
    match source.format {
        Format::Toml => {
            if let Ok(table) = toml::de::DeTable::parse(&source.text) {
                index_toml(table.get_ref(), &mut Vec::new(), &mut index);
            }
        }
        Format::Json => {
            let mut scanner =
                JsonScanner { text: source.text.as_bytes(), at: 0, index: &mut index, duplicate: None };
            let _ = scanner.value(&mut Vec::new(), 0);
        }
    }
    index
}

/// toml's messages end in a newline and sometimes start upper case; ours are one lowercase line.
fn toml_message(message: &str) -> String {
    lowercase_first(message.trim().lines().next().unwrap_or("invalid TOML"))
}

fn lowercase_first(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) => c.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

fn offset_of_line_col(text: &str, line: usize, col: usize) -> usize {
    let line_start: usize = text.split_inclusive('\n').take(line.saturating_sub(1)).map(str::len).sum();
    (line_start + col.saturating_sub(1)).min(text.len())
}

fn index_toml(table: &toml::de::DeTable<'_>, path: &mut Vec<String>, index: &mut SpanIndex) {
    for (key, value) in table.iter() {
        path.push(key.get_ref().to_string());
        index.insert(path, key.span().start, value.span().start);
        if let toml::de::DeValue::Table(inner) = value.get_ref() {
            index_toml(inner, path, index);
        }
        path.pop();
    }
}

/// A minimal JSON walker over text serde_json already accepted, recording object key positions.
struct JsonScanner<'a> {
    text: &'a [u8],
    at: usize,
    index: &'a mut SpanIndex,
    /// The first key found twice in one object, and its second position.
    duplicate: Option<(Vec<String>, usize)>,
}

impl JsonScanner<'_> {
    fn skip_ws(&mut self) {
        while self.at < self.text.len() && self.text[self.at].is_ascii_whitespace() {
            self.at += 1;
        }
    }

    fn value(&mut self, path: &mut Vec<String>, depth: usize) -> Option<()> {
        if depth > JSON_DEPTH_MAX {
            return None;
        }
        self.skip_ws();
        match *self.text.get(self.at)? {
            b'{' => {
                self.at += 1;
                let mut keys = std::collections::HashSet::new();
                loop {
                    self.skip_ws();
                    match *self.text.get(self.at)? {
                        b'}' => {
                            self.at += 1;
                            return Some(());
                        }
                        b',' => self.at += 1,
                        b'"' => {
                            let key_at = self.at;
                            let key = self.string()?;
                            self.skip_ws();
                            self.at += 1; // the colon
                            self.skip_ws();
                            if !keys.insert(key.clone()) && self.duplicate.is_none() {
                                let mut at = path.clone();
                                at.push(key.clone());
                                self.duplicate = Some((at, key_at));
                            }
                            path.push(key);
                            self.index.insert(path, key_at, self.at);
                            self.value(path, depth + 1)?;
                            path.pop();
                        }
                        _ => return None,
                    }
                }
            }
            b'[' => {
                self.at += 1;
                let mut i = 0;
                loop {
                    self.skip_ws();
                    match *self.text.get(self.at)? {
                        b']' => {
                            self.at += 1;
                            return Some(());
                        }
                        b',' => self.at += 1,
                        _ => {
                            path.push(i.to_string());
                            self.index.insert(path, self.at, self.at);
                            self.value(path, depth + 1)?;
                            path.pop();
                            i += 1;
                        }
                    }
                }
            }
            b'"' => self.string().map(|_| ()),
            _ => {
                while self.at < self.text.len() && !b",]} \t\r\n".contains(&self.text[self.at]) {
                    self.at += 1;
                }
                Some(())
            }
        }
    }

    /// Reads a string literal starting at its opening quote; returns its decoded value.
    fn string(&mut self) -> Option<String> {
        let start = self.at;
        self.at += 1;
        while *self.text.get(self.at)? != b'"' {
            if self.text[self.at] == b'\\' {
                self.at += 1;
            }
            self.at += 1;
        }
        self.at += 1;
        serde_json::from_slice(&self.text[start..self.at]).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOML: &str = "name = \"m\"\nstart = \"a\"\n\n[nodes.a]\nkind = \"hangup\"\n";

    #[test]
    fn toml_paths_resolve_to_positions() {
        let index = index(&Source::new("m.toml", TOML));
        let at = index.value(&["nodes", "a", "kind"]).unwrap();
        assert_eq!(Position::of_offset(TOML, at), Position { line: 5, col: 8 });
        let at = index.key(&["nodes", "a", "missing"]).unwrap();
        assert_eq!(Position::of_offset(TOML, at), Position { line: 4, col: 8 });
    }

    #[test]
    fn json_paths_resolve_to_positions() {
        let json = "{\"name\": \"m\", \"start\": \"a\",\n \"nodes\": {\"a\": {\"kind\": \"hangup\"}}}";
        let (def, index) =
            (parse(&Source::new("m.json", json)).unwrap(), index(&Source::new("m.json", json)));
        assert_eq!(def.start, "a");
        let at = index.value(&["nodes", "a", "kind"]).unwrap();
        assert_eq!(Position::of_offset(json, at), Position { line: 2, col: 26 });
    }

    #[test]
    fn syntax_errors_carry_positions() {
        let err = parse(&Source::new("m.toml", "name = \"m\"\nstart = \n")).unwrap_err();
        assert_eq!(err.position.map(|p| p.line), Some(2));
        let err = parse(&Source::new("m.json", "{\"name\": \"m\",\n \"start\": }")).unwrap_err();
        assert_eq!(err.position.map(|p| p.line), Some(2));
        let err = parse(&Source::new("m.toml", "name = \"m\"\nstart = \"a\"\nstrat = 1\n")).unwrap_err();
        assert_eq!(err.position, Some(Position { line: 3, col: 1 }));
        assert!(err.message.contains("unknown field `strat`"), "{}", err.message);
    }
}
