//! Ranges phonetree never dials: emergency services, premium-rate, toll-fraud and
//! international-network prefixes, each with its reason and the source it comes from, in one
//! bundled table (`barred.toml` beside this file) read once; `barred` names the range a number
//! falls in. Pure: the table is compiled in, nothing is read at run time.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use super::E164_DIGITS_MAX;

/// The bundled table (see its header for what is barred, what is not and why, and how to add to it).
const TABLE: &str = include_str!("barred.toml");

/// Most ranges the table may hold: every dialled number is checked against each, and a few
/// hundred prefixes cover every country's emergency and premium codes many times over.
const RANGES_MAX: usize = 1_000;

/// Longest reason or source text: a reason is read inside an error message, a source names a
/// document and its address.
const TEXT_CHARS_MAX: usize = 400;

/// The reason `barred` gives for every number if the bundled table cannot be read: fail closed,
/// dialling nothing rather than dialling past an unknown list. The table's tests make this a
/// build error, never a state a release runs in.
const TABLE_BROKEN: &str = "not dialled while phonetree's bundled table of barred ranges is broken (src/callflow/barred.toml: run `cargo test --lib callflow::barred` for the line)";

/// What kind of range an entry is (the table's `kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
enum Kind {
    /// An emergency service's short code as it could follow a country code.
    Emergency,
    /// Premium-rate, revenue-sharing, pay-per-call and similar ranges.
    Premium,
    /// Whole destinations known for toll fraud (IRSF, one-ring scams).
    Fraud,
    /// ITU-T E.164 international codes with no country behind them.
    International,
}

/// The table as written.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    sources: BTreeMap<String, String>,
    barred: Vec<Entry>,
}

/// One `[[barred]]` table.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    prefix: String,
    reason: String,
    #[allow(dead_code)] // Read by the table's checks (it must be one of the kinds), kept for readers.
    kind: Kind,
    source: String,
}

/// A barred range: the digits after `+` a number starts with, and why it is barred.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Range {
    digits: String,
    reason: String,
}

/// Why the bundled table is not one (a test failure; at run time every number is barred).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum TableError {
    #[error(
        "barred.toml: {0}: fix the TOML (each range is a [[barred]] table with prefix, reason, kind, source)"
    )]
    Toml(String),
    #[error("barred.toml: more than {RANGES_MAX} ranges: merge prefixes or raise RANGES_MAX")]
    TooMany,
    #[error(
        "barred.toml: prefix `{0}` is not a prefix of E.164 numbers: give `+` then 1 to {E164_DIGITS_MAX} digits, the first not 0"
    )]
    Prefix(String),
    #[error("barred.toml: prefix `{0}` is listed twice: keep one entry per prefix")]
    Duplicate(String),
    #[error(
        "barred.toml: prefix `{0}` is never the answer: longer prefixes cover every number it holds; drop it or one of them"
    )]
    Hidden(String),
    #[error("barred.toml: prefix `{prefix}` has no {field}: say {hint}")]
    Missing { prefix: String, field: &'static str, hint: &'static str },
    #[error(
        "barred.toml: prefix `{prefix}`: source `{key}` is not a key of [sources]: add it there with its title and address"
    )]
    UnknownSource { prefix: String, key: String },
    #[error(
        "barred.toml: source `{0}` is empty or longer than {TEXT_CHARS_MAX} characters: give its title and address"
    )]
    Source(String),
    #[error("barred.toml: prefix `{0}`: its reason is longer than {TEXT_CHARS_MAX} characters")]
    LongReason(String),
}

/// The range `number` falls in, as the reason it is barred (read after "`to` NUMBER is", e.g.
/// "Singapore emergency (999)"); `None` when it is in none. `number` is E.164 (`+` and digits;
/// the `+` may be left out). The longest matching prefix gives the reason.
pub fn barred(number: &str) -> Option<&'static str> {
    let digits = number.strip_prefix('+').unwrap_or(number);
    match table() {
        Ok(ranges) => ranges
            .iter()
            .filter(|r| digits.starts_with(r.digits.as_str()))
            .max_by_key(|r| r.digits.len())
            .map(|r| r.reason.as_str()),
        Err(_) => Some(TABLE_BROKEN),
    }
}

/// The bundled table, parsed on first use.
fn table() -> Result<&'static [Range], &'static TableError> {
    static PARSED: OnceLock<Result<Vec<Range>, TableError>> = OnceLock::new();
    PARSED.get_or_init(|| parse(TABLE)).as_ref().map(Vec::as_slice)
}

/// Reads and checks a table: every prefix `+` and digits and listed once, never hidden by longer
/// ones, every entry with a reason and a source that `[sources]` names.
fn parse(text: &str) -> Result<Vec<Range>, TableError> {
    let file: File = toml::from_str(text).map_err(|e| TableError::Toml(e.to_string().trim().to_string()))?;
    if file.barred.len() > RANGES_MAX {
        return Err(TableError::TooMany);
    }
    for (key, title) in &file.sources {
        if title.trim().is_empty() || title.chars().count() > TEXT_CHARS_MAX {
            return Err(TableError::Source(key.clone()));
        }
    }
    let mut ranges: Vec<Range> = Vec::with_capacity(file.barred.len());
    for entry in file.barred {
        let digits = entry.prefix.strip_prefix('+').unwrap_or_default();
        if digits.is_empty()
            || digits.len() > E164_DIGITS_MAX
            || !digits.bytes().all(|b| b.is_ascii_digit())
            || digits.starts_with('0')
        {
            return Err(TableError::Prefix(entry.prefix));
        }
        let missing = |field, hint| TableError::Missing { prefix: entry.prefix.clone(), field, hint };
        if entry.reason.trim().is_empty() {
            return Err(missing("reason", "why it is barred, e.g. \"Singapore emergency (999)\""));
        }
        if entry.reason.chars().count() > TEXT_CHARS_MAX {
            return Err(TableError::LongReason(entry.prefix));
        }
        if entry.source.trim().is_empty() {
            return Err(missing("source", "which [sources] key the range comes from"));
        }
        if !file.sources.contains_key(&entry.source) {
            return Err(TableError::UnknownSource { prefix: entry.prefix, key: entry.source });
        }
        if ranges.iter().any(|r| r.digits == digits) {
            return Err(TableError::Duplicate(entry.prefix));
        }
        ranges.push(Range { digits: digits.to_string(), reason: entry.reason });
    }
    if let Some(hidden) = ranges.iter().find(|r| covered_by_longer(&ranges, &r.digits, r.digits.len())) {
        return Err(TableError::Hidden(format!("+{}", hidden.digits)));
    }
    Ok(ranges)
}

/// Whether every number starting with `digits` matches a prefix longer than `shortest` digits
/// (then a range of `shortest` digits there is never the longest match).
fn covered_by_longer(ranges: &[Range], digits: &str, shortest: usize) -> bool {
    if digits.len() > shortest && ranges.iter().any(|r| r.digits == digits) {
        return true;
    }
    let below = |r: &&Range| r.digits.len() > digits.len() && r.digits.starts_with(digits);
    if digits.len() >= E164_DIGITS_MAX || !ranges.iter().any(|r| below(&r)) {
        return false;
    }
    ('0'..='9').all(|d| covered_by_longer(ranges, &format!("{digits}{d}"), shortest))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SOURCES: &str = "[sources]\ns = \"a plan, https://example.org/plan\"\n";

    fn entry(prefix: &str) -> String {
        format!(
            "[[barred]]\nprefix = \"{prefix}\"\nreason = \"r {prefix}\"\nkind = \"premium\"\nsource = \"s\"\n"
        )
    }

    fn table_of(prefixes: &[&str]) -> String {
        let mut text = SOURCES.to_string();
        for p in prefixes {
            text.push_str(&entry(p));
        }
        text
    }

    #[test]
    fn the_bundled_table_parses() {
        let ranges = parse(TABLE).unwrap_or_else(|e| panic!("{e}"));
        assert!(ranges.len() > 100, "{} ranges", ranges.len());
        assert_eq!(table().map(<[Range]>::len), Ok(ranges.len()));
        assert_eq!(barred("+6599912345"), Some("Singapore emergency (999)"));
        assert_eq!(barred("6599912345"), Some("Singapore emergency (999)"));
        assert_eq!(barred("+6598888888"), None);
    }

    #[test]
    fn the_longest_prefix_gives_the_reason() {
        let ranges = parse(&table_of(&["+449", "+44999"])).unwrap();
        let longest = |n: &str| {
            ranges
                .iter()
                .filter(|r| n.starts_with(r.digits.as_str()))
                .max_by_key(|r| r.digits.len())
                .map(|r| &r.reason)
        };
        assert_eq!(longest("449991234567").map(String::as_str), Some("r +44999"));
        assert_eq!(longest("449001234567").map(String::as_str), Some("r +449"));
    }

    #[test]
    fn a_malformed_table_is_an_error_naming_the_entry() {
        let err = |text: &str| parse(text).unwrap_err().to_string();
        assert!(err("[sources\n").starts_with("barred.toml: "), "{}", err("[sources\n"));
        for bad in ["65999", "+", "+0999", "+65 999", "+65a", "+1234567890123456"] {
            assert_eq!(parse(&table_of(&[bad])), Err(TableError::Prefix(bad.into())), "{bad}");
        }
        assert_eq!(parse(&table_of(&["+65999", "+65999"])), Err(TableError::Duplicate("+65999".into())));
        let ten: Vec<String> = (0..10).map(|d| format!("+449{d}")).collect();
        let mut hidden = vec!["+449"];
        hidden.extend(ten.iter().map(String::as_str));
        assert_eq!(parse(&table_of(&hidden)), Err(TableError::Hidden("+449".into())));
        // Nine of the ten leave `+4499` to `+449`: not hidden.
        assert!(parse(&table_of(&hidden[..10])).is_ok());

        let no_reason = format!(
            "{SOURCES}[[barred]]\nprefix = \"+65999\"\nreason = \" \"\nkind = \"emergency\"\nsource = \"s\"\n"
        );
        assert!(err(&no_reason).contains("prefix `+65999` has no reason"), "{}", err(&no_reason));
        let unknown = format!(
            "{SOURCES}[[barred]]\nprefix = \"+65999\"\nreason = \"x\"\nkind = \"emergency\"\nsource = \"t\"\n"
        );
        assert!(err(&unknown).contains("source `t` is not a key of [sources]"), "{}", err(&unknown));
        let no_source =
            format!("{SOURCES}[[barred]]\nprefix = \"+65999\"\nreason = \"x\"\nkind = \"emergency\"\n");
        assert!(err(&no_source).contains("source"), "{}", err(&no_source));
        let bad_kind = format!(
            "{SOURCES}[[barred]]\nprefix = \"+65999\"\nreason = \"x\"\nkind = \"other\"\nsource = \"s\"\n"
        );
        assert!(err(&bad_kind).contains("kind") || err(&bad_kind).contains("other"), "{}", err(&bad_kind));
        let extra = format!(
            "{SOURCES}[[barred]]\nprefix = \"+65999\"\nreason = \"x\"\nkind = \"emergency\"\nsource = \"s\"\nnote = \"n\"\n"
        );
        assert!(err(&extra).contains("note"), "{}", err(&extra));
        assert_eq!(parse("barred = []\n[sources]\ns = \"\"\n"), Err(TableError::Source("s".into())));
        let many: Vec<String> = (0..=RANGES_MAX).map(|i| format!("+9{i:04}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        assert_eq!(parse(&table_of(&many)), Err(TableError::TooMany));
    }
}
