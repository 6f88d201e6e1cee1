//! `phonetree schema` against an independent JSON Schema validator (the `jsonschema` crate, draft
//! 2020-12): every bundled machine validates, a typo is refused with the schema's own message,
//! and the schema agrees with the compiler on every machine file of the tests.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;

use phonetree::machine::{Source, compile};
use serde_json::{Value, json};

/// The schema as the binary prints it.
fn schema() -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_phonetree")).arg("schema").output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn validator() -> jsonschema::Validator {
    let schema = schema();
    assert_eq!(schema["$schema"], "https://json-schema.org/draft/2020-12/schema");
    jsonschema::draft202012::new(&schema).expect("the schema is a valid draft 2020-12 schema")
}

/// A machine file as the tree both formats read: TOML through `toml`, JSON as it is.
fn tree(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap();
    match path.extension().and_then(|e| e.to_str()) {
        Some("json") => serde_json::from_str(&text).unwrap(),
        _ => toml::from_str(&text).unwrap(),
    }
}

fn errors(validator: &jsonschema::Validator, value: &Value) -> Vec<String> {
    validator.iter_errors(value).map(|e| format!("{} at {}", e, e.instance_path())).collect()
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("toml" | "json")))
        .collect();
    files.sort();
    files
}

#[test]
fn every_bundled_machine_validates() {
    let validator = validator();
    let machines = files_in(&common::repo().join("machines"));
    assert!(machines.len() >= 4, "{machines:?}");
    for file in machines {
        assert_eq!(errors(&validator, &tree(&file)), Vec::<String>::new(), "{}", file.display());
    }
}

#[test]
fn a_typo_is_refused_with_the_schemas_message() {
    let validator = validator();
    let mut machine = tree(&common::repo().join("machines/tech_support.toml"));
    let menu = machine["nodes"]["menu"].as_object_mut().unwrap();
    let prompt = menu.remove("prompt").unwrap();
    menu.insert("promt".into(), prompt);
    let found = errors(&validator, &machine);
    assert!(found.iter().any(|e| e.contains("promt") && e.contains("/nodes/menu")), "{found:?}");

    // A field of another kind: `url` is a script's.
    let mut machine = tree(&common::repo().join("machines/tech_support.toml"));
    machine["nodes"]["menu"]["url"] = json!("https://example.com/");
    let found = errors(&validator, &machine);
    assert!(found.iter().any(|e| e.contains("url") && e.contains("/nodes/menu")), "{found:?}");

    // An unknown kind, a wrong type, an unknown machine-level field.
    let mut machine = tree(&common::repo().join("machines/tech_support.toml"));
    machine["nodes"]["menu"]["kind"] = json!("menuu");
    machine["nodes"]["menu"]["tries"] = json!("three");
    machine["timezones"] = json!("UTC");
    machine["defaults"]["max_digits"] = json!(26);
    let found = errors(&validator, &machine).join("\n");
    for word in ["menuu", "three", "timezones", "26"] {
        assert!(found.contains(word), "{word}: {found}");
    }
}

/// The schema accepts every test machine the compiler compiles without an error, and refuses
/// every one the compiler refuses for its shape (an unknown field, a field of another kind).
#[test]
fn the_schema_agrees_with_the_compiler_on_shape() {
    let validator = validator();
    let dirs = ["tests/data/diagnostics", "tests/data/scripts", "tests/data/policies", "machines"];
    let (mut accepted, mut refused) = (0, 0);
    for file in dirs.iter().flat_map(|d| files_in(&common::repo().join(d))) {
        let text = std::fs::read_to_string(&file).unwrap();
        let Ok(value) = (match file.extension().and_then(|e| e.to_str()) {
            Some("json") => serde_json::from_str::<Value>(&text).map_err(|e| e.to_string()),
            _ => toml::from_str::<Value>(&text).map_err(|e| e.to_string()),
        }) else {
            continue; // not even TOML/JSON: no schema applies
        };
        let compiled = compile(&Source::new(file.display().to_string(), text));
        let shape = compiled.errors().any(|d| {
            let m = d.to_string();
            m.contains("unknown field") || m.contains("does not apply to a") || m.contains("unknown kind")
        });
        let found = errors(&validator, &value);
        if compiled.errors().next().is_none() {
            assert_eq!(found, Vec::<String>::new(), "{} compiles, the schema refuses it", file.display());
            accepted += 1;
        } else if shape {
            assert!(!found.is_empty(), "{}: a shape error the schema misses", file.display());
            refused += 1;
        }
    }
    assert!(accepted >= 8 && refused >= 4, "accepted {accepted}, refused {refused}");
}
