//! Every compiler rule, pinned: `tests/data/diagnostics/NAME.{toml,json}` is a broken machine and
//! `NAME.txt` the exact output of `phonetree check NAME.toml` run in that folder.

use crate::common;

use std::path::Path;

use phonetree::machine::{self, Source};
use phonetree::node::catalog::Catalog;
use proptest::prelude::*;

fn cases() -> Vec<std::path::PathBuf> {
    common::machine_files("tests/data/diagnostics")
}

fn file_name(p: &Path) -> String {
    p.file_name().unwrap().to_string_lossy().into_owned()
}

#[test]
fn every_rule_reports_its_exact_diagnostic() {
    let files = cases();
    assert!(files.len() >= 30, "the rule cases are missing");
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        // Compile and prove, as `check` and `serve` do.
        let mut catalog = Catalog::default();
        catalog.add(Source::new(file_name(&file), text));
        let got: Vec<String> = catalog.diagnostics.iter().map(|d| d.to_string()).collect();
        let expected = std::fs::read_to_string(file.with_extension("txt")).unwrap();
        // The CLI adds a line per proven machine and the `checked ...` summary.
        let expected: Vec<&str> =
            expected.lines().filter(|l| !l.starts_with("checked ") && !l.contains(": proven `")).collect();
        assert_eq!(got.join("\n"), expected.join("\n"), "{}", file.display());
        assert_eq!(
            catalog.len() == 1,
            !catalog.has_errors(),
            "{}: a machine with errors must not load",
            file.display()
        );
    }
}

#[test]
fn the_same_machine_loads_from_toml_and_json() {
    let dir = common::repo().join("tests/data/diagnostics");
    let json = std::fs::read_to_string(dir.join("base_ok.json")).unwrap();
    let m = common::compile_text("base_ok.json", &json);
    let toml = std::fs::read_to_string(dir.join("unknown_target.toml")).unwrap().replace("byee", "bye");
    let t = common::compile_text("base.toml", &toml);
    assert_eq!((m.name(), m.node_count(), m.edge_count()), (t.name(), t.node_count(), t.edge_count()));
    for inputs in [&["1"][..], &["9"], &["-"]] {
        let a = common::play_outbound(&m, common::outbound("+6568888888", "+15550001"), inputs).0;
        let b = common::play_outbound(&t, common::outbound("+6568888888", "+15550001"), inputs).0;
        let strip = |f: &Vec<_>| f.iter().map(|f| common::comparable(common::json(f))).collect::<Vec<_>>();
        assert_eq!(strip(&a), strip(&b));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Any edit of a valid machine file compiles or yields errors — never a panic, never a machine
    /// that comes with errors.
    #[test]
    fn mangled_machine_files_never_panic(
        edits in prop::collection::vec((any::<prop::sample::Index>(), 0usize..8, "[ -~\n]{0,6}"), 1..4),
        json in any::<bool>(),
    ) {
        let name = if json { "abc_restaurant.json" } else { "abc_restaurant.toml" };
        let mut text = std::fs::read_to_string(common::repo().join("machines/abc_restaurant.toml")).unwrap();
        if json {
            let v: toml::Value = toml::from_str(&text).unwrap();
            text = serde_json::to_string_pretty(&v).unwrap();
        }
        for (at, cut, insert) in edits {
            let mut at = at.index(text.len() + 1);
            while !text.is_char_boundary(at) { at -= 1; }
            let mut end = (at + cut).min(text.len());
            while !text.is_char_boundary(end) { end -= 1; }
            text.replace_range(at..end.max(at), &insert);
        }
        let compiled = machine::compile(&Source::new(name, text));
        prop_assert_eq!(compiled.machine.is_some(), compiled.errors().count() == 0);
        for d in &compiled.diagnostics {
            prop_assert!(d.position.is_some() || d.node.is_some() || d.field.is_some(), "{} has no location", d);
        }
    }
}

/// A valid machine with a node of every kind, as (table, [(key, TOML value)]), to set fields on.
fn every_kind() -> Vec<(&'static str, Vec<(&'static str, String)>)> {
    let s = |v: &str| format!("\"{v}\"");
    vec![
        ("", vec![("name", s("ints")), ("start", s("menu"))]),
        (
            "defaults",
            vec![
                ("voice_profile", s("en-US-BenjaminRUS")),
                ("min_digits", "1".into()),
                ("max_digits", "1".into()),
                ("digit_timeout_ms", "5000".into()),
                ("overall_timeout_ms", "10000".into()),
            ],
        ),
        (
            "nodes.menu",
            vec![
                ("kind", s("menu")),
                ("prompt", s("Press 1 to 4.")),
                ("invalid", s("bye")),
                (
                    "branches",
                    "{ 1 = \"ask\", 2 = \"lookup\", 3 = \"news\", 4 = \"agent\", 5 = \"hours\" }".into(),
                ),
            ],
        ),
        (
            "nodes.ask",
            vec![
                ("kind", s("input")),
                ("prompt", s("Your PIN.")),
                ("variable", s("pin")),
                ("next", s("bye")),
                ("invalid", s("bye")),
            ],
        ),
        (
            "nodes.lookup",
            vec![
                ("kind", s("script")),
                ("allow_keypress", "true".into()),
                ("prompt", s("Key in.")),
                ("max_digits", "4".into()),
                ("url", s("https://example.com/{keypress}")),
                ("failure", s("bye")),
                ("no_input", s("bye")),
            ],
        ),
        ("nodes.news", vec![("kind", s("say")), ("text", s("News.")), ("next", s("jingle"))]),
        (
            "nodes.jingle",
            vec![("kind", s("play")), ("file_url", s("https://example.com/a.mp3")), ("next", s("bye"))],
        ),
        ("nodes.agent", vec![("kind", s("transfer")), ("destination", s("+6531589338"))]),
        ("nodes.bye", vec![("kind", s("hangup"))]),
        (
            "nodes.hours",
            vec![
                ("kind", s("route")),
                ("rules", "[{ var = \"pin\", equals = \"1234\", next = \"count\" }]".into()),
                ("else", s("bye")),
            ],
        ),
        (
            "nodes.count",
            vec![
                ("kind", s("set")),
                ("values", "{ last = \"{caller}\" }".into()),
                ("add", "{ n = 1 }".into()),
                ("next", s("bye")),
            ],
        ),
    ]
}

fn render(tables: &[(&str, Vec<(&str, String)>)]) -> String {
    let mut text = String::new();
    for (table, fields) in tables {
        if !table.is_empty() {
            text.push_str(&format!("\n[{table}]\n"));
        }
        for (k, v) in fields {
            text.push_str(&format!("{k} = {v}\n"));
        }
    }
    text
}

/// Every numeric field of a machine file (`speed` is a float, which takes integers too).
const INT_FIELDS: &[&str] = &[
    "tries",
    "repetition",
    "min_digits",
    "max_digits",
    "digit_timeout_ms",
    "overall_timeout_ms",
    "no_of_tries",
    "timeout_ms",
    "cache_minutes",
    "digit_gap_ms",
    "repeat",
    "speed",
];

#[test]
fn the_machine_of_every_kind_is_valid() {
    let compiled = machine::compile(&Source::new("ints.toml", render(&every_kind())));
    assert!(compiled.errors().next().is_none(), "{:?}", compiled.diagnostics);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Any integer in any integer field of any node (or of `[defaults]`), as TOML or JSON: never a
    /// panic (the tests run with overflow checks), and a value beyond every field's bounds is an
    /// error at that field, with its position.
    #[test]
    fn extreme_integers_are_diagnosed_never_panic(
        table in 1usize..9,
        field in prop::sample::select(INT_FIELDS),
        value in prop_oneof![
            prop::sample::select(vec![i64::MIN, i64::MIN + 1, -1, 0, 1, 1 << 40, i64::from(u32::MAX) + 1,
                i64::from(u32::MAX), i64::from(u16::MAX) + 1, i64::from(u8::MAX) + 1, i64::MAX]),
            any::<i64>(),
        ],
        json in any::<bool>(),
    ) {
        let mut tables = every_kind();
        tables[table].1.retain(|(k, _)| k != &field);
        tables[table].1.push((field, value.to_string()));
        let mut text = render(&tables);
        let name = if json { "ints.json" } else { "ints.toml" };
        if json {
            let v: toml::Value = toml::from_str(&text).unwrap();
            text = serde_json::to_string_pretty(&v).unwrap();
        }
        let compiled = machine::compile(&Source::new(name, text));
        prop_assert_eq!(compiled.machine.is_some(), compiled.errors().count() == 0);
        if !(0..=600_000).contains(&value) {
            let at_field = compiled
                .errors()
                .find(|d| d.field.as_deref().is_some_and(|f| f.ends_with(field)) && d.position.is_some());
            prop_assert!(at_field.is_some(), "{} = {} in table {}: {:?}", field, value, table, compiled.diagnostics);
        }
    }
}

/// A duplicate key no longer hides the rest of the file: with nine other mistakes, all ten are
/// reported in one run, each at its line and column, with its node, its field and a hint.
#[test]
fn a_duplicate_key_and_nine_other_mistakes_are_all_reported() {
    let file = common::repo().join("tests/data/diagnostics/duplicate_key_and_nine_more.toml");
    let compiled = machine::compile(&Source::new("m.toml", std::fs::read_to_string(file).unwrap()));
    let errors: Vec<_> = compiled.errors().collect();
    assert_eq!(errors.len(), 10, "{errors:#?}");
    for e in &errors {
        assert!(e.position.is_some() && e.node.is_some() && e.hint.is_some(), "{e}");
    }
    let fields = errors.iter().filter(|e| e.field.is_some()).count();
    // The unreachable node is about the node itself.
    assert_eq!(fields, 9, "{errors:#?}");
    assert_eq!(
        errors[0].to_string().lines().next().unwrap(),
        "m.toml:17:27: error: node `menu`, field `branches.1`: duplicate key"
    );
}
