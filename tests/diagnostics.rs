//! Every compiler rule, pinned: `tests/data/diagnostics/NAME.{toml,json}` is a broken machine and
//! `NAME.txt` the exact output of `phonetree check NAME.toml` run in that folder.

mod common;

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
