//! JSON replies of both listeners: every error a JSON body `{"error": {"code", "message"}}`, and
//! the JSON of a reload's outcome (the admin route and the console show the same).

use serde_json::json;
use warp::Reply;
use warp::http::StatusCode;

use crate::node::reload::{Outcome, Reload, Trigger};

pub(super) fn json_reply(status: StatusCode, value: &serde_json::Value) -> warp::reply::Response {
    // A `Value`'s `Display` is its JSON and cannot fail.
    raw_json(status, value.to_string().into_bytes())
}

pub(super) fn raw_json(status: StatusCode, body: Vec<u8>) -> warp::reply::Response {
    let mut r = warp::http::Response::new(warp::hyper::body::Bytes::from(body)).into_response();
    *r.status_mut() = status;
    r.headers_mut()
        .insert(warp::http::header::CONTENT_TYPE, warp::http::HeaderValue::from_static("application/json"));
    r
}

/// An error reply: `status` with `{"error": {"code", "message"}}`.
pub(super) fn error(status: StatusCode, code: &str, message: &str) -> warp::reply::Response {
    json_reply(status, &json!({"error": {"code": code, "message": message}}))
}

/// A reload's outcome as the admin route and the console show it.
pub(super) fn reload_json(done: &Reload) -> serde_json::Value {
    let trigger = match done.trigger {
        Trigger::Signal => "signal",
        Trigger::Admin => "admin",
        Trigger::Watch => "watch",
    };
    match &done.outcome {
        Outcome::Loaded { machines } => json!({
            "result": "loaded",
            "trigger": trigger,
            "at": done.at_ms,
            "machines": machines
                .iter()
                .map(|(name, version)| json!({"name": name, "version": version}))
                .collect::<Vec<_>>(),
        }),
        Outcome::Failed { reason, diagnostics } => json!({
            "result": "failed",
            "trigger": trigger,
            "at": done.at_ms,
            "reason": reason,
            "diagnostics": diagnostics,
        }),
    }
}
