//! The node's OpenAPI document tells the truth about its routes: it parses, is OpenAPI 3.x, lists
//! exactly the routes the server serves (with their methods), every `$ref` resolves, and the
//! server serves it at `GET /openapi.json`.

use crate::common;

use std::collections::BTreeSet;

use common::*;
use phonetree::http::routes::{ADMIN_ROUTES, OPENAPI, PUBLIC_ROUTES};
use serde_json::Value;

/// Every route of both listeners, with its method.
fn routes() -> impl Iterator<Item = &'static (&'static str, &'static str)> {
    PUBLIC_ROUTES.iter().chain(ADMIN_ROUTES)
}

fn document() -> Value {
    serde_json::from_str(OPENAPI).expect("src/http/openapi.json is JSON")
}

/// (path, METHOD) of every operation the document describes.
fn operations(doc: &Value) -> BTreeSet<(String, String)> {
    let mut ops = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("a path item").keys() {
            ops.insert((path.clone(), method.to_uppercase()));
        }
    }
    ops
}

#[test]
fn the_document_is_openapi_3_and_lists_exactly_the_served_routes() {
    let doc = document();
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")), "openapi: {}", doc["openapi"]);
    let served: BTreeSet<(String, String)> = routes().map(|(p, m)| (p.to_string(), m.to_string())).collect();
    assert_eq!(operations(&doc), served);
}

#[test]
fn every_route_in_the_source_is_in_the_route_table() {
    // Each `warp::path!("…")` and `webhook("…")` in routes.rs is a route: a new one must be in
    // PUBLIC_ROUTES or ADMIN_ROUTES, hence in the document.
    let source = std::fs::read_to_string(repo().join("src/http/routes.rs")).unwrap();
    let mut found = BTreeSet::new();
    for (marker, prefix) in [("warp::path!(\"", "/"), ("webhook(\"", "/webhooks/")] {
        for piece in source.split(marker).skip(1) {
            // `warp::path!("admin" / "reload")` is `/admin/reload`.
            let args = piece.split(')').next().unwrap();
            let name: Vec<&str> = args.split('"').step_by(2).map(str::trim).collect();
            let name = name.iter().copied().filter(|s| !s.is_empty() && *s != "/").collect::<Vec<_>>();
            found.insert(format!("{prefix}{}", name.join("/")));
        }
    }
    // The console's page is `warp::path::end()` on the admin listener: `/`.
    if source.contains("let console_page = warp::path::end()") {
        found.insert("/".to_string());
    }
    // `warp::path!("calls" / String)` is `/calls/{session}`: its literal parts are what is found.
    let table: BTreeSet<String> = routes()
        .map(|(p, _)| p.split('/').filter(|s| !s.starts_with('{')).collect::<Vec<_>>().join("/"))
        .collect();
    assert!(found.len() >= 6, "routes found in the source: {found:?}");
    assert_eq!(found, table);
}

#[test]
fn every_reference_resolves() {
    let doc = document();
    fn refs(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                if let Some(Value::String(r)) = m.get("$ref") {
                    out.push(r.clone());
                }
                m.values().for_each(|x| refs(x, out));
            }
            Value::Array(a) => a.iter().for_each(|x| refs(x, out)),
            _ => {}
        }
    }
    let mut all = Vec::new();
    refs(&doc, &mut all);
    assert!(!all.is_empty());
    for r in all {
        let pointer = r.strip_prefix('#').unwrap_or_else(|| panic!("external $ref {r}"));
        assert!(doc.pointer(pointer).is_some(), "unresolved $ref {r}");
    }
    for op in doc["paths"].as_object().unwrap().values().flat_map(|i| i.as_object().unwrap().values()) {
        for scheme in
            op["security"].as_array().into_iter().flatten().flat_map(|s| s.as_object().unwrap().keys())
        {
            assert!(
                doc["components"]["securitySchemes"][scheme].is_object(),
                "unknown security scheme {scheme}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_server_serves_the_document_and_every_route_in_it() {
    let t = tempfile::tempdir().unwrap();
    let n = Node::start(&t.path().join("data"), &machines_dir(t.path()));
    let client = reqwest::Client::new();
    let served = client.get(n.admin_url("/openapi.json")).send().await.unwrap();
    assert_eq!(served.status(), 200);
    assert_eq!(served.headers()["content-type"], "application/json");
    assert_eq!(served.json::<Value>().await.unwrap(), document());

    for (pattern, method) in operations(&document()) {
        // A path parameter: a session no store has (answered 404 `unknown_session`, not a missing route).
        let path = pattern
            .replace("{session}", "no-such-session")
            .replace("{id}", "no-such-callback")
            .replace("{asset}", phonetree::http::console::MERMAID)
            .replace("{name}", "abc_restaurant");
        // Each route on its own listener only.
        let (url, elsewhere) = if ADMIN_ROUTES.iter().any(|(p, _)| *p == pattern) {
            (n.admin_url(&path), n.url(&path))
        } else {
            (n.url(&path), n.admin_url(&path))
        };
        let r = client.request(reqwest::Method::GET, &elsewhere).send().await.unwrap();
        assert_eq!(r.status(), 404, "{path} is not served on the other listener");
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let r = client.request(m, &url).body("{}").send().await.unwrap();
        let status = r.status().as_u16();
        let code = r.json::<Value>().await.unwrap_or_default()["error"]["code"].clone();
        assert!(
            status != 405 && (status != 404 || code == "unknown_session" || code == "unknown_scheduled_call"),
            "{method} {path}: {status}"
        );
        // Another method: 405 naming every method the path takes.
        let takes: Vec<&str> = routes().filter(|(p, _)| *p == pattern).map(|(_, m)| *m).collect();
        let r = client.request(reqwest::Method::DELETE, &url).send().await.unwrap();
        assert_eq!(r.status(), 405, "{path}");
        assert_eq!(r.headers()["allow"], takes.join(", ").as_str(), "{path}");
    }
    let r = client.get(n.url("/nowhere")).send().await.unwrap();
    assert_eq!(r.status(), 404);
}
