//! Machine source text → a syntax tree (TOML or JSON), plus an index from field paths to positions.
//!
//! TOML is the authoring format and JSON the generated one; both give a tree that the compiler's
//! shape pass reads into the same `Definition`. The TOML parser recovers from each syntax error (all
//! are reported, and the rest of the file is checked); serde_json stops at its first. The span index
//! lets the compiler point every other diagnostic at the line and column of the field it is about.

use std::collections::HashMap;

use toml::Spanned;
use toml::de::DeValue;

#[cfg(test)]
use super::diagnostic::Position;

/// Largest machine file accepted: a generated 10,000-node machine is about 2 MiB of TOML.
pub const SOURCE_BYTES_MAX: usize = 16 * 1024 * 1024;
/// Most syntax errors listed for one file: past a few hundred, the file is not TOML at all, and each
/// one costs a walk of the keys read.
const SYNTAX_ERRORS_MAX: usize = 256;
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
pub(super) struct SpanIndex {
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

/// Why a file's text is not a machine file at all: nothing in it can be checked further.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(super) enum SyntaxError {
    #[error("file is {0} bytes; the limit is {SOURCE_BYTES_MAX}")]
    TooLarge(usize),
    /// TOML or JSON syntax, at a byte offset when the parser gives one.
    #[error("{message}")]
    Syntax { offset: Option<usize>, message: String },
    #[error("a machine file is a table of fields")]
    NotATable,
}

impl SyntaxError {
    /// The byte offset the error points at.
    pub fn offset(&self) -> Option<usize> {
        match self {
            SyntaxError::Syntax { offset, .. } => *offset,
            SyntaxError::TooLarge(_) => None,
            SyntaxError::NotATable => Some(0),
        }
    }
}

fn within_limit(text: &str) -> Result<(), SyntaxError> {
    if text.len() > SOURCE_BYTES_MAX { Err(SyntaxError::TooLarge(text.len())) } else { Ok(()) }
}

/// A syntax error the TOML parser recovered from: it kept what it could read of the file, so one
/// mistake does not hide the others.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Recovered {
    /// Where the parser points (for a duplicate key: its second occurrence).
    pub offset: usize,
    pub message: String,
    /// The key the error is in (`["nodes", "menu", "prompt"]`); for a duplicate key, that key; for
    /// an error in no key (a line that is not `key = value`, a broken `[table]` header), its table.
    pub path: Vec<String>,
    /// The entry at `path` was dropped from the tree: what the parser made of it is a guess.
    pub dropped: bool,
    /// A key given twice: the tree keeps the first value, which is as good as any other.
    pub duplicate: bool,
}

/// A TOML machine file's syntax tree, with the byte span of every key and value, and every syntax
/// error in it. The parser recovers from each error; a value it could not read is dropped from the
/// tree (its node is then not compiled, see `Recovered`), a duplicate key keeps its first value.
pub(super) fn toml_tree(text: &str) -> Result<(Spanned<DeValue<'_>>, Vec<Recovered>), SyntaxError> {
    within_limit(text)?;
    let (table, errors) = toml::de::DeTable::parse_recoverable(text);
    let span = table.span();
    let mut root = Spanned::new(span, DeValue::Table(table.into_inner()));
    let mut errors: Vec<(usize, String)> = errors
        .iter()
        .map(|e| {
            let mut offset = e.span().map_or(0, |s| s.start).min(text.len());
            while !text.is_char_boundary(offset) {
                offset -= 1;
            }
            (offset, toml_message(e.message()))
        })
        .collect();
    errors.sort();
    let more = errors.len().saturating_sub(SYNTAX_ERRORS_MAX);
    errors.truncate(SYNTAX_ERRORS_MAX);
    let mut all = Vec::new();
    if let DeValue::Table(t) = root.get_ref() {
        entries(text, t, &mut Vec::new(), &mut all);
    }
    let mut recovered = Vec::with_capacity(errors.len() + 1);
    for (offset, mut message) in errors {
        // The parser asks for a quoted string where the value is missing altogether.
        if text[offset..].lines().next().is_none_or(|rest| rest.trim().is_empty())
            && message.contains("must be quoted")
        {
            message = "a value is missing".into();
        }
        let duplicate = message == "duplicate key";
        let (path, dropped) = error_path(text, &all, offset, duplicate);
        if dropped {
            drop_entry(&mut root, &path);
        }
        recovered.push(Recovered { offset, message, path, dropped, duplicate });
    }
    if let Some(last) = recovered.last().filter(|_| more > 0) {
        let message = format!("{more} more syntax errors after this one are not listed");
        recovered.push(Recovered { message, dropped: false, duplicate: false, ..last.clone() });
    }
    recovered.sort_by_key(|r| r.offset);
    Ok((root, recovered))
}

/// One key of a TOML tree: its path, the byte range of its key and value, and whether its value
/// is a `[table]` whose span is its header line.
struct Entry {
    path: Vec<String>,
    range: std::ops::Range<usize>,
    header: bool,
}

fn entries(text: &str, table: &toml::de::DeTable<'_>, path: &mut Vec<String>, out: &mut Vec<Entry>) {
    for (key, value) in table.iter() {
        path.push(key.get_ref().to_string());
        let (k, v) = (key.span(), value.span());
        let header =
            matches!(value.get_ref(), DeValue::Table(_)) && text.as_bytes().get(v.start) == Some(&b'[');
        out.push(Entry { path: path.clone(), range: k.start.min(v.start)..k.end.max(v.end), header });
        if let DeValue::Table(inner) = value.get_ref() {
            entries(text, inner, path, out);
        }
        path.pop();
    }
}

/// The path an error at `offset` is in (see `Recovered::path`), among the keys `all`, and whether
/// its entry is to be dropped from the tree.
fn error_path(text: &str, all: &[Entry], offset: usize, duplicate: bool) -> (Vec<String>, bool) {
    let line_start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let line = text[line_start..].lines().next().unwrap_or("");
    if line.trim_start().starts_with('[') && !duplicate {
        return (header_path(line), false);
    }
    // The table the line is in: the last header before it.
    let table = all
        .iter()
        .filter(|e| e.header && e.range.start <= offset)
        .max_by_key(|e| e.range.start)
        .map(|e| e.path.clone())
        .unwrap_or_default();
    let innermost = all
        .iter()
        .filter(|e| !e.header && (e.range.contains(&offset) || e.range.end == offset))
        .max_by_key(|e| e.path.len());
    if duplicate {
        let mut path = innermost.map_or(table, |e| e.path.clone());
        let key = text.get(offset..).and_then(|t| t.split(['=', ' ', '\t', ']', '\n']).next()).unwrap_or("");
        path.push(key.trim_matches(['"', '\'']).to_string());
        return (path, false);
    }
    match innermost {
        Some(e) => (e.path.clone(), true),
        None => (table, false),
    }
}

/// `[nodes.menu]` → `["nodes", "menu"]` (a node's table), `[defaults]` → `["defaults"]`.
fn header_path(line: &str) -> Vec<String> {
    let inside = line.trim().trim_start_matches('[');
    let inside = inside.split(']').next().unwrap_or(inside);
    let parts: Vec<String> = inside
        .split('.')
        .map(|p| p.trim().trim_matches(['"', '\'']).to_string())
        .filter(|p| !p.is_empty())
        .collect();
    let depth = if parts.first().is_some_and(|p| p == "nodes") { 2 } else { 1 };
    parts.into_iter().take(depth).collect()
}

fn drop_entry(root: &mut Spanned<DeValue<'_>>, path: &[String]) {
    let Some((last, parents)) = path.split_last() else { return };
    let mut at = root;
    for part in parents {
        let DeValue::Table(t) = at.get_mut() else { return };
        let Some(next) = t.get_mut(part.as_str()) else { return };
        at = next;
    }
    if let DeValue::Table(t) = at.get_mut() {
        t.remove(last.as_str());
    }
}

/// A JSON machine file's value tree.
pub(super) fn json_tree(text: &str) -> Result<serde_json::Value, SyntaxError> {
    within_limit(text)?;
    serde_json::from_str(text).map_err(|e| {
        // serde_json ends its message with the position, which is ours to print.
        let message = e.to_string();
        let suffix = format!(" at line {} column {}", e.line(), e.column());
        SyntaxError::Syntax {
            offset: Some(offset_of_line_col(text, e.line(), e.column())),
            message: lowercase_first(message.strip_suffix(&suffix).unwrap_or(&message)),
        }
    })
}

/// Every key a JSON text repeats in one object (serde_json keeps the last of the two, but a
/// machine file must not say two things): its path and the offset of its repeat.
pub(super) fn json_duplicates(text: &str) -> Vec<(Vec<String>, usize)> {
    let mut index = SpanIndex::default();
    let mut scanner = JsonScanner { text: text.as_bytes(), at: 0, index: &mut index, duplicates: Vec::new() };
    let _ = scanner.value(&mut Vec::new(), 0);
    scanner.duplicates
}

/// The positions of every key and value of a source (empty where it does not parse).
pub(super) fn index(source: &Source) -> SpanIndex {
    let mut index = SpanIndex::default();
    match source.format {
        // Every key the parser read, also those `toml_tree` drops, so that what is said of them can
        // be told apart from the syntax error itself.
        Format::Toml => {
            let (table, _) = toml::de::DeTable::parse_recoverable(&source.text);
            index_toml(table.get_ref(), &mut Vec::new(), &mut index);
        }
        Format::Json => {
            let mut scanner = JsonScanner {
                text: source.text.as_bytes(),
                at: 0,
                index: &mut index,
                duplicates: Vec::new(),
            };
            let _ = scanner.value(&mut Vec::new(), 0);
        }
    }
    index
}

/// toml's messages end in a newline and sometimes start upper case; ours are one lowercase line.
pub fn toml_message(message: &str) -> String {
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
        index_toml_value(value, path, index);
        path.pop();
    }
}

/// The positions inside one value: a table's keys, an array's elements under their index.
fn index_toml_value(
    value: &toml::Spanned<toml::de::DeValue<'_>>,
    path: &mut Vec<String>,
    index: &mut SpanIndex,
) {
    match value.get_ref() {
        toml::de::DeValue::Table(inner) => index_toml(inner, path, index),
        toml::de::DeValue::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                path.push(i.to_string());
                index.insert(path, item.span().start, item.span().start);
                index_toml_value(item, path, index);
                path.pop();
            }
        }
        _ => {}
    }
}

/// A minimal JSON walker over text serde_json already accepted, recording object key positions.
struct JsonScanner<'a> {
    text: &'a [u8],
    at: usize,
    index: &'a mut SpanIndex,
    /// Each key found again in one object, and the position of its repeat.
    duplicates: Vec<(Vec<String>, usize)>,
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
            b'{' => self.object(path, depth),
            b'[' => self.array(path, depth),
            b'"' => self.string().map(|_| ()),
            _ => {
                while self.at < self.text.len() && !b",]} \t\r\n".contains(&self.text[self.at]) {
                    self.at += 1;
                }
                Some(())
            }
        }
    }

    /// An object from its opening brace: each key's position, and the first key it repeats.
    fn object(&mut self, path: &mut Vec<String>, depth: usize) -> Option<()> {
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
                    if !keys.insert(key.clone()) {
                        let mut at = path.clone();
                        at.push(key.clone());
                        self.duplicates.push((at, key_at));
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

    /// An array from its opening bracket: each element's position under its index.
    fn array(&mut self, path: &mut Vec<String>, depth: usize) -> Option<()> {
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
        let index = index(&Source::new("m.json", json));
        let at = index.value(&["nodes", "a", "kind"]).unwrap();
        assert_eq!(Position::of_offset(json, at), Position { line: 2, col: 26 });
    }

    #[test]
    fn toml_errors_name_their_key_and_stop_at_their_bound() {
        let text = "name = \"m\"\n[nodes.a]\nkind = \"say\"\nkind = \"menu\"\ntext = oops\n";
        let (tree, errors) = toml_tree(text).unwrap();
        let paths: Vec<(&[String], bool)> = errors.iter().map(|e| (e.path.as_slice(), e.duplicate)).collect();
        let path = |p: &[&str]| p.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            paths,
            [(&path(&["nodes", "a", "kind"])[..], true), (&path(&["nodes", "a", "text"])[..], false)]
        );
        // The value the parser could not read is dropped; the duplicate keeps its first value.
        let node = tree.get_ref().as_table().unwrap().get("nodes").unwrap().get_ref().as_table().unwrap();
        let a = node.get("a").unwrap().get_ref().as_table().unwrap();
        assert!(a.get("text").is_none());
        assert_eq!(a.get("kind").unwrap().get_ref().as_str(), Some("say"));

        let junk = "x\n".repeat(SYNTAX_ERRORS_MAX + 10);
        let (_, errors) = toml_tree(&junk).unwrap();
        assert_eq!(errors.len(), SYNTAX_ERRORS_MAX + 1);
        assert!(
            errors[SYNTAX_ERRORS_MAX].message.ends_with("more syntax errors after this one are not listed")
        );
    }

    #[test]
    fn syntax_errors_carry_positions() {
        let text = "name = \"m\"\nstart = \n";
        let (_, errors) = toml_tree(text).unwrap();
        assert_eq!(errors.iter().map(|e| Position::of_offset(text, e.offset).line).collect::<Vec<_>>(), [2]);
        let text = "{\"name\": \"m\",\n \"start\": }";
        let err = json_tree(text).unwrap_err();
        assert_eq!(err.offset().map(|o| Position::of_offset(text, o).line), Some(2));
        assert_eq!(err.to_string(), "expected value");
        assert_eq!(json_duplicates("{\"a\": 1, \"a\": 2}"), [(vec!["a".to_string()], 9)]);
    }
}
