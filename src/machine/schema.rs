//! The JSON Schema (draft 2020-12) of machine files, for editors: generated from the serde types
//! the compiler reads (`definition`, with their field docs as descriptions) and the compiler's own
//! table of the fields each node kind takes, so it cannot drift from what `check` accepts.
//!
//! The schema says which fields exist, their types and which kind takes which field: enough for
//! completion, hover text and typos. The semantic rules (targets, 8x8's limits, templates) stay
//! the compiler's: a file the schema accepts can still fail `check`, never the other way round.

use schemars::generate::SchemaSettings;
use serde_json::{Map, Value, json};

use super::compile::{integer_bounds, kinds_and_fields};
use super::definition::{Defaults, Definition, Kind, NodeDef};

/// The schema of a machine file (TOML or JSON: both read the same tree).
pub fn machine_schema() -> Value {
    let mut generator = SchemaSettings::draft2020_12().into_generator();
    let defaults = generator.subschema_for::<Defaults>().to_value();
    let node = generator.subschema_for::<NodeDef>().to_value();
    let kind = generator.subschema_for::<Kind>().to_value();
    let mut root = generator.into_root_schema_for::<Definition>().to_value();

    let kinds: Vec<Value> = kinds_and_fields()
        .into_iter()
        .map(|(kind, fields)| {
            let names: Vec<&str> = std::iter::once("kind").chain(fields).collect();
            json!({
                "if": { "properties": { "kind": { "const": kind } }, "required": ["kind"] },
                "then": { "propertyNames": { "enum": names } },
            })
        })
        .collect();
    if let Some(defs) = root.get_mut("$defs").and_then(Value::as_object_mut) {
        if let Some(Value::Object(node)) = defs.get_mut("NodeDef") {
            node.insert(
                "description".into(),
                "One `[nodes.NAME]` table; `kind` says which fields apply.".into(),
            );
            properties(node).insert("kind".into(), kind);
            node.insert("required".into(), json!(["kind"]));
            node.insert("additionalProperties".into(), false.into());
            node.insert("allOf".into(), kinds.into());
        }
        if let Some(Value::Object(defaults)) = defs.get_mut("Defaults") {
            defaults.insert("additionalProperties".into(), false.into());
        }
        for table in ["NodeDef", "Defaults"] {
            let Some(Value::Object(table)) = defs.get_mut(table) else { continue };
            let props = properties(table);
            for (field, min, max, hint) in integer_bounds() {
                if let Some(Value::Object(field)) = props.get_mut(field) {
                    field.insert("minimum".into(), min.into());
                    field.insert("maximum".into(), max.into());
                    let text = field.get("description").and_then(Value::as_str).unwrap_or_default();
                    let text = format!("{text} {min} to {max}: {hint}.").trim_start().to_string();
                    field.insert("description".into(), text.into());
                }
            }
        }
    }
    if let Value::Object(root) = &mut root {
        root.insert("title".into(), "phonetree machine".into());
        let props = properties(root);
        props.insert("defaults".into(), defaults);
        props.insert(
            "nodes".into(),
            json!({
                "description": "The machine's nodes, by name: each a table whose `kind` says what it does.",
                "type": "object",
                "minProperties": 1,
                "additionalProperties": node,
            }),
        );
        root.insert("required".into(), json!(["name", "start", "nodes"]));
        root.insert("additionalProperties".into(), false.into());
    }
    root
}

/// The `properties` object of an object schema, made when missing.
fn properties(schema: &mut Map<String, Value>) -> &mut Map<String, Value> {
    let props = schema.entry("properties").or_insert_with(|| Value::Object(Map::new()));
    if !props.is_object() {
        *props = Value::Object(Map::new());
    }
    props.as_object_mut().expect("made an object just above")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_lists_only_fields_the_node_table_has() {
        let schema = machine_schema();
        let node = &schema["$defs"]["NodeDef"];
        let props = node["properties"].as_object().unwrap();
        for rule in node["allOf"].as_array().unwrap() {
            for field in rule["then"]["propertyNames"]["enum"].as_array().unwrap() {
                assert!(props.contains_key(field.as_str().unwrap()), "{field} of {rule}");
            }
        }
        assert_eq!(node["allOf"].as_array().unwrap().len(), kinds_and_fields().len());
        assert_eq!(schema["$schema"], "https://json-schema.org/draft/2020-12/schema");
    }

    #[test]
    fn skipped_fields_are_not_in_the_schema() {
        let schema = machine_schema();
        let props = schema["$defs"]["NodeDef"]["properties"].as_object().unwrap();
        assert!(!props.contains_key("fields") && !props.contains_key("broken"));
        assert!(props["prompt"]["description"].as_str().unwrap().contains("before pressing keys"));
    }
}
