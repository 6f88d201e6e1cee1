//! The routes: the public listener's (webhooks, health) and the admin listener's (outbound calls,
//! and every operator route to come) as warp filters; every error a JSON body.

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::json;
use tracing::{Instrument, debug, info_span};
use warp::http::StatusCode;
use warp::{Filter, Rejection, Reply};

use super::auth::{AdminAuth, Denied, WebhookAuth};
use super::budget::{Admission, Overloaded};
use super::console;
use super::health::Health;
use super::limits::RETRY_AFTER_SECS;
use super::reply::{error, json_reply, raw_json, reload_json};
use crate::engine;
use crate::node::guard::Refused;
use crate::node::reload::{Outcome, Trigger};
use crate::node::{self, App, PlaceError, calls, history, metrics};
use crate::webhook::inbound;
use crate::webhook::outbound::OutboundError;

/// Largest webhook body: 8x8's are 1 to 3 KiB; a summary of many legs stays far below this.
pub const BODY_BYTES_MAX: u64 = 64 * 1024;

/// The node's OpenAPI 3 document: every route below, its bodies, answers and auth schemes.
pub const OPENAPI: &str = include_str!("openapi.json");

/// Every path the public listener serves and the one method it takes there: a path's other
/// methods answer 405 with `Allow`. The OpenAPI document lists exactly these and `ADMIN_ROUTES`
/// (a test holds them together).
pub const PUBLIC_ROUTES: &[(&str, &str)] =
    &[("/webhooks/vca", "POST"), ("/webhooks/vss", "POST"), ("/healthz", "GET"), ("/readyz", "GET")];

/// Every path the admin listener serves, and its method.
/// A path takes one method per entry; a `{name}` segment stands for any one segment.
pub const ADMIN_ROUTES: &[(&str, &str)] = &[
    ("/calls", "POST"),
    ("/calls", "GET"),
    ("/calls/{session}", "GET"),
    ("/calls/scheduled/{id}/cancel", "POST"),
    ("/openapi.json", "GET"),
    ("/metrics", "GET"),
    ("/admin/reload", "POST"),
    ("/admin/machines", "GET"),
    ("/", "GET"),
    ("/console/token", "GET"),
    ("/console/{asset}", "GET"),
    ("/admin/console", "GET"),
    ("/admin/machines/{name}/mermaid", "GET"),
    ("/admin/machines/{name}/versions/{version}", "GET"),
    ("/admin/clock", "POST"),
];

/// A webhook without valid credentials (answered 401, nothing stored).
#[derive(Debug)]
struct Unauthorized(Denied);

impl warp::reject::Reject for Unauthorized {}

/// Passes a request whose credentials `auth` accepts (promoting its connection out of the
/// unauthenticated budget); rejects it with `Unauthorized` otherwise (counted for `endpoint`).
fn authorized(
    auth: Arc<WebhookAuth>,
    endpoint: &'static str,
) -> impl Filter<Extract = (), Error = Rejection> + Clone {
    let query = warp::query::raw().or(warp::any().map(String::new)).unify();
    warp::header::headers_cloned()
        .and(query)
        .and(warp::ext::optional::<Admission>())
        .and_then(move |headers: warp::http::HeaderMap, query: String, admission: Option<Admission>| {
            let auth = auth.clone();
            async move {
                let now_secs = node::now_ms() / 1000;
                match auth.check(&headers, Some(query.as_str()), now_secs) {
                    Ok(()) => {
                        if let Some(admission) = admission {
                            admission.promote();
                        }
                        Ok(())
                    }
                    Err(denied) => {
                        metrics::webhook_answered(endpoint, "unauthorized");
                        Err(warp::reject::custom(Unauthorized(denied)))
                    }
                }
            }
        })
        .untuple_one()
}

/// The public listener's routes (webhooks, health), with every rejection turned into a JSON
/// error. Webhooks must carry credentials `auth` accepts; `/readyz` reads `health`, never the store.
pub(crate) fn public(
    app: Arc<App>,
    auth: Arc<WebhookAuth>,
    health: Arc<Health>,
) -> impl Filter<Extract = (impl Reply,), Error = Infallible> + Clone {
    let with_app = warp::any().map(move || app.clone());
    // A body too large or without a length is counted as a rejected webhook of its endpoint.
    let body = |endpoint: &'static str| {
        warp::body::content_length_limit(BODY_BYTES_MAX).and(warp::body::bytes()).or_else(
            move |r: Rejection| async move {
                if r.find::<warp::reject::PayloadTooLarge>().is_some() {
                    metrics::webhook_rejected(endpoint, "payload_too_large");
                } else if r.find::<warp::reject::LengthRequired>().is_some() {
                    metrics::webhook_rejected(endpoint, "length_required");
                }
                Err::<(warp::hyper::body::Bytes,), _>(r)
            },
        )
    };
    let webhook =
        |name| warp::path("webhooks").and(warp::path(name)).and(warp::path::end()).and(warp::post());
    let admission = warp::ext::optional::<Admission>();
    let vca = webhook("vca")
        .and(authorized(auth.clone(), "vca"))
        .and(with_app.clone())
        .and(body("vca"))
        .and(admission)
        .then(|app, body, admission| in_flight("vca", admission, vca(app, body)));
    let vss = webhook("vss")
        .and(authorized(auth, "vss"))
        .and(with_app.clone())
        .and(body("vss"))
        .and(admission)
        .then(|app, body, admission| in_flight("vss", admission, vss(app, body)));
    let healthz = warp::path!("healthz").and(warp::get()).and(with_app.clone()).map(healthz);
    let readyz =
        warp::path!("readyz").and(warp::get()).and(with_app).map(move |app: Arc<App>| readyz(&app, &health));
    vca.or(vss).or(healthz).or(readyz).or(other_method(PUBLIC_ROUTES)).recover(rejection)
}

/// The admin listener's routes, with every rejection turned into a JSON error (the listener
/// checks the admin token before these). Every operator route goes here, never on the public
/// listener: `POST /calls` places calls billed to the operator.
pub(crate) fn admin(
    app: Arc<App>,
    auth: AdminAuth,
) -> impl Filter<Extract = (impl Reply,), Error = Infallible> + Clone {
    let with_app = warp::any().map(move || app.clone());
    let body = warp::body::content_length_limit(BODY_BYTES_MAX).and(warp::body::bytes());
    let calls = warp::path!("calls").and(warp::post()).and(with_app.clone()).and(body).then(place_call);
    let reload = warp::path!("admin" / "reload").and(warp::post()).and(with_app.clone()).then(reload);
    let machines = warp::path!("admin" / "machines").and(warp::get()).and(with_app.clone()).map(machines);
    let metrics = warp::path!("metrics")
        .and(warp::get())
        .and(with_app.clone())
        .map(|app: Arc<App>| super::metrics::render(&app));
    let list = warp::path!("calls")
        .and(warp::get())
        .and(with_app.clone())
        .and(warp::query::<HashMap<String, String>>())
        .then(list_calls);
    let show = warp::path!("calls" / String).and(warp::get()).and(with_app.clone()).then(show_call);
    let cancel = warp::path!("calls" / "scheduled" / String / "cancel")
        .and(warp::post())
        .and(with_app.clone())
        .then(cancel_scheduled);
    // The console: its page and assets pass the listener's token check (`console::is_public`).
    let console_page = warp::path::end().and(warp::get()).map(console::page);
    let console_token =
        warp::path!("console" / "token").and(warp::get()).map(move || console::token(auth.is_open()));
    let console_asset = warp::path!("console" / String).and(warp::get()).map(console::asset);
    let console_data = warp::path!("admin" / "console")
        .and(warp::get())
        .and(with_app.clone())
        .and(warp::query::<HashMap<String, String>>())
        .then(console::overview);
    let machine_version = warp::path!("admin" / "machines" / String / "versions" / String)
        .and(warp::get())
        .and(with_app.clone())
        .then(machine_version);
    let machine_mermaid = warp::path!("admin" / "machines" / String / "mermaid")
        .and(warp::get())
        .and(with_app)
        .map(console::machine_mermaid);
    let clock = warp::path!("admin" / "clock")
        .and(warp::post())
        .and(warp::body::content_length_limit(BODY_BYTES_MAX))
        .and(warp::body::bytes())
        .map(set_clock);
    // Admin routes to come: `.or()` them here, and list them in `ADMIN_ROUTES` and the OpenAPI
    // document.
    calls
        .or(list)
        .or(show)
        .or(cancel)
        .or(reload)
        .or(machines)
        .or(metrics)
        .or(openapi())
        .or(console_page)
        .or(console_token)
        .or(console_asset)
        .or(console_data)
        .or(machine_mermaid)
        .or(machine_version)
        .or(clock)
        .or(other_method(ADMIN_ROUTES))
        .recover(rejection)
}

/// `GET /calls?machine=&since=&outcome=&limit=&after=`: a page of calls, without transcripts.
async fn list_calls(app: Arc<App>, query: HashMap<String, String>) -> warp::reply::Response {
    let bad = |message: String| error(StatusCode::BAD_REQUEST, "invalid_query", &message);
    let scheduled = match query.get("scheduled").map(String::as_str) {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => return bad(format!("`scheduled` must be `true` or `false`, not `{other}`")),
    };
    let number = |name: &str| -> Result<Option<u64>, String> {
        query
            .get(name)
            .map(|v| v.parse::<u64>().map_err(|_| format!("`{name}` must be a whole number, not `{v}`")))
            .transpose()
    };
    let (since_ms, limit) = match (number("since"), number("limit")) {
        (Ok(since), Ok(limit)) => (since, limit),
        (Err(why), _) | (_, Err(why)) => return bad(why),
    };
    let filter = history::Filter {
        machine: query.get("machine").cloned(),
        since_ms,
        outcome: query.get("outcome").cloned(),
        limit: match limit {
            Some(0) => return bad("`limit` must be at least 1".into()),
            Some(n) => usize::try_from(n).unwrap_or(usize::MAX),
            None => 0,
        },
        after: query.get("after").cloned(),
    };
    if let Err(e) = filter.check() {
        return bad(e.to_string());
    }
    // The call filters are checked even when `scheduled=true` lists callbacks instead, so a
    // mistyped parameter is refused rather than silently ignored.
    if scheduled {
        return list_scheduled(&app).await;
    }
    match history::list(&app, &filter).await {
        Ok(listed) => {
            let calls: Vec<serde_json::Value> = listed
                .calls
                .iter()
                .map(|c| {
                    let mut v = serde_json::to_value(c).unwrap_or_default();
                    if let Some(m) = v.as_object_mut() {
                        m.remove("entries");
                        m.remove("summary");
                        m.remove("cut");
                    }
                    v
                })
                .collect();
            json_reply(StatusCode::OK, &json!({"calls": calls, "next": listed.next}))
        }
        Err(fault) => store_unavailable(&fault),
    }
}

/// `GET /calls?scheduled=true`: every scheduled callback the store keeps, by due time.
async fn list_scheduled(app: &App) -> warp::reply::Response {
    match app.store.scheduled().await {
        Ok(calls) => {
            let calls: Vec<serde_json::Value> = calls.iter().map(scheduled_json).collect();
            json_reply(StatusCode::OK, &json!({ "scheduled": calls }))
        }
        Err(e) => store_unavailable(&calls::Fault::Store(e)),
    }
}

/// A scheduled callback as the admin API shows it.
fn scheduled_json(c: &crate::store::Scheduled) -> serde_json::Value {
    json!({
        "id": c.id,
        "origin": c.origin,
        "machine": c.machine,
        "to": c.to,
        "dueMs": c.due_ms,
        "validUntilMs": c.valid_until_ms,
        "attempt": c.attempt,
        "attempts": c.attempts,
        "transfer": { "machine": c.from_machine, "node": c.node },
        "state": c.state.as_str(),
        "session": c.session,
        "note": c.note,
        "updatedMs": c.updated_ms,
    })
}

/// `POST /calls/scheduled/{id}/cancel`: cancels a pending callback (409 `not_pending` once it is
/// being sent, sent or finished; 404 `unknown_scheduled_call`).
async fn cancel_scheduled(id: String, app: Arc<App>) -> warp::reply::Response {
    use crate::store::Cancelled;
    let id = percent_encoding::percent_decode_str(&id).decode_utf8_lossy().into_owned();
    match app.store.cancel_scheduled(&id, crate::node::now_ms()).await {
        Ok(Cancelled::Done(c)) => {
            tracing::info!(id, "scheduled callback cancelled");
            crate::node::metrics::callback(&app, &c.machine, "cancelled");
            json_reply(StatusCode::OK, &scheduled_json(&c))
        }
        Ok(Cancelled::NotPending(c)) => error(
            StatusCode::CONFLICT,
            "not_pending",
            &format!(
                "scheduled call `{id}` is {}, not pending: only a pending call can be cancelled",
                c.state.as_str()
            ),
        ),
        Ok(Cancelled::Unknown) => error(
            StatusCode::NOT_FOUND,
            "unknown_scheduled_call",
            &format!("no scheduled call `{id}` is stored"),
        ),
        Err(e) => store_unavailable(&calls::Fault::Store(e)),
    }
}

/// `GET /calls/{session}`: one call with its transcript and summary. The path segment is
/// percent-decoded (a client encodes `{`, `}`, `/` and more of an 8x8 session id); bytes that are
/// not UTF-8 decode to U+FFFD, which no stored session id holds.
async fn show_call(session: String, app: Arc<App>) -> warp::reply::Response {
    let session = percent_encoding::percent_decode_str(&session).decode_utf8_lossy().into_owned();
    match history::show(&app, &session).await {
        Ok(Some(call)) => match serde_json::to_vec(&call) {
            Ok(body) => raw_json(StatusCode::OK, body),
            Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, "internal", &e.to_string()),
        },
        Ok(None) => {
            error(StatusCode::NOT_FOUND, "unknown_session", &format!("no call `{session}` is stored"))
        }
        Err(fault) => store_unavailable(&fault),
    }
}

fn store_unavailable(fault: &calls::Fault) -> warp::reply::Response {
    tracing::error!(error = %fault, "cannot read the call history");
    error(StatusCode::SERVICE_UNAVAILABLE, "store_unavailable", "the store could not be read; ask again")
}

/// `GET /openapi.json`: the node's OpenAPI document.
fn openapi() -> impl Filter<Extract = (warp::reply::Response,), Error = Rejection> + Clone {
    warp::path!("openapi.json").and(warp::get()).map(|| raw_json(StatusCode::OK, OPENAPI.as_bytes().to_vec()))
}

/// A known path of `routes` asked with a method it does not take: 405 with `Allow` (RFC 9110).
fn other_method(
    routes: &'static [(&'static str, &'static str)],
) -> impl Filter<Extract = (warp::reply::Response,), Error = Rejection> + Clone {
    warp::path::full().and(warp::method()).and_then(
        move |path: warp::path::FullPath, method: warp::http::Method| async move {
            // Each method once: `/console/token` is also `/console/{asset}`.
            let mut methods: Vec<&str> = Vec::new();
            for (_, m) in routes.iter().filter(|(p, _)| matches_route(p, path.as_str())) {
                if !methods.contains(m) {
                    methods.push(m);
                }
            }
            if methods.is_empty() || methods.contains(&method.as_str()) {
                // The route's own filter rejected the request for another reason: that one is answered.
                return Err(warp::reject::not_found());
            }
            let allow = methods.join(", ");
            let mut r = error(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                &format!("{} takes {allow}", path.as_str()),
            );
            if let Ok(value) = warp::http::HeaderValue::from_str(&allow) {
                r.headers_mut().insert(warp::http::header::ALLOW, value);
            }
            Ok(r)
        },
    )
}

/// Whether `path` is the route `pattern` (a `{name}` segment stands for any one segment).
fn matches_route(pattern: &str, path: &str) -> bool {
    let (mut p, mut q) = (pattern.split('/'), path.split('/'));
    loop {
        match (p.next(), q.next()) {
            (None, None) => return true,
            (Some(a), Some(b)) if a == b || (a.starts_with('{') && a.ends_with('}') && !b.is_empty()) => {}
            _ => return false,
        }
    }
}

/// Answers a webhook of `endpoint` with `answer`, holding an in-flight permit taken now (its
/// body is read and its credentials passed, so slow or unauthenticated clients hold none); over
/// the cap, 503 at once.
async fn in_flight(
    endpoint: &'static str,
    admission: Option<Admission>,
    answer: impl Future<Output = warp::reply::Response>,
) -> warp::reply::Response {
    let _permit = match admission.map(|a| a.enter(endpoint)).transpose() {
        Ok(permit) => permit,
        Err(Overloaded) => {
            let mut r = error(
                StatusCode::SERVICE_UNAVAILABLE,
                "overloaded",
                "too many webhooks are being answered; send it again shortly",
            );
            r.headers_mut().insert(warp::http::header::RETRY_AFTER, RETRY_AFTER_SECS.into());
            return r;
        }
    };
    answer.await
}

async fn vca(app: Arc<App>, body: warp::hyper::body::Bytes) -> warp::reply::Response {
    let ca = match inbound::call_action(&body) {
        Ok(ca) => ca,
        Err(bad) => {
            metrics::webhook_rejected("vca", bad.code);
            debug!(code = bad.code, message = %bad.message, "rejected CALL_ACTION webhook");
            return error(StatusCode::BAD_REQUEST, bad.code, &bad.message);
        }
    };
    // What every line logged while answering it needs: the call and the event. The machine, the
    // nodes and the transition are the fields of the debug line `transition` (filling them into
    // the span too cost a formatted string per webhook that no line at `info` ever showed).
    let span = info_span!("vca", session = %ca.session_id, event_id = %ca.event_id);
    // Boxed: the answer's future is large (the whole load, step, commit), and every layer
    // around this one (warp's filters, hyper's service) would move it by value otherwise.
    let (reply, answered) = Box::pin(calls::call_action(&app, &ca).instrument(span)).await;
    let mut r = raw_json(StatusCode::OK, reply);
    let how = match answered {
        Some(calls::Answered::Applied) => "applied",
        Some(calls::Answered::Duplicate) => "duplicate",
        Some(calls::Answered::Stale) => "stale",
        None => "fallback",
    };
    metrics::webhook_answered("vca", how);
    r.headers_mut().insert("x-phonetree-answer", warp::http::HeaderValue::from_static(how));
    r
}

async fn vss(app: Arc<App>, body: warp::hyper::body::Bytes) -> warp::reply::Response {
    let summary = match inbound::session_summary(&body) {
        Ok(s) => s,
        Err(bad) => {
            metrics::webhook_rejected("vss", bad.code);
            debug!(code = bad.code, message = %bad.message, "rejected SESSION_SUMMARY webhook");
            return error(StatusCode::BAD_REQUEST, bad.code, &bad.message);
        }
    };
    let span = info_span!("vss", session = %summary.session_id, status = %summary.status);
    match Box::pin(calls::session_summary(&app, &summary).instrument(span)).await {
        Ok(()) => {
            metrics::webhook_answered("vss", "recorded");
            json_reply(StatusCode::OK, &json!({"status": "recorded"}))
        }
        Err(fault) => {
            metrics::webhook_answered("vss", "store_unavailable");
            tracing::error!(error = %fault, session = %summary.session_id, "cannot record the session summary");
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                "the summary could not be stored; send it again",
            )
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PlaceCall {
    machine: String,
    to: String,
    from: Option<String>,
    /// The call's variables: names of the machine's `variables`, string values.
    #[serde(default)]
    variables: serde_json::Map<String, serde_json::Value>,
}

/// The call's variables as strings: a value of another JSON type is refused, naming it (count,
/// names and lengths are the engine's `check_variables`).
fn variables(given: serde_json::Map<String, serde_json::Value>) -> Result<BTreeMap<String, String>, String> {
    if given.len() > engine::OUTBOUND_VARIABLES_MAX {
        return Err(engine::VariableError::TooMany { count: given.len() }.to_string());
    }
    given
        .into_iter()
        .map(|(name, value)| match value {
            serde_json::Value::String(v) => Ok((name, v)),
            other => Err(format!(
                "variable `{name}` is {other}, not a string: give every value as a JSON string (`\"{name}\": \"42\"`)"
            )),
        })
        .collect()
}

async fn place_call(app: Arc<App>, body: warp::hyper::body::Bytes) -> warp::reply::Response {
    let req: PlaceCall = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                "malformed_json",
                &format!("expected {{\"machine\", \"to\", \"from\"?, \"variables\"?}}: {e}"),
            );
        }
    };
    let vars = match variables(req.variables) {
        Ok(vars) => vars,
        Err(why) => return error(StatusCode::BAD_REQUEST, "invalid_variables", &why),
    };
    match node::place_call(&app, &req.machine, &req.to, req.from.as_deref(), &vars).await {
        Ok(session) => {
            json_reply(StatusCode::CREATED, &json!({"sessionId": session, "machine": req.machine}))
        }
        Err(PlaceError::Refused(refused)) => refused_call(&refused),
        Err(PlaceError::Outbound(e)) => {
            let (status, code) = match &e {
                OutboundError::UnknownMachine(_) => (StatusCode::NOT_FOUND, "unknown_machine"),
                OutboundError::NoCallerId => (StatusCode::BAD_REQUEST, "no_caller_id"),
                // A name the machine's `variables` table does not list is valid JSON the machine
                // refuses, like the guard's allow-lists (403); a value or count over its bound
                // breaks the documented schema (400).
                OutboundError::Variable(engine::VariableError::Unknown { .. }) => {
                    (StatusCode::FORBIDDEN, "variable_not_allowed")
                }
                OutboundError::Variable(_) => (StatusCode::BAD_REQUEST, "invalid_variables"),
                OutboundError::NotConfigured(_) => (StatusCode::SERVICE_UNAVAILABLE, "not_configured"),
                OutboundError::NotCreated { .. } => (StatusCode::BAD_GATEWAY, "not_created"),
                OutboundError::Http { .. } | OutboundError::Transport(_) => {
                    (StatusCode::BAD_GATEWAY, "upstream")
                }
                OutboundError::Engine(_)
                | OutboundError::NothingToSend
                | OutboundError::Encode(_)
                | OutboundError::Store(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
            };
            let mut body = json!({"error": {"code": code, "message": e.to_string()}});
            if let OutboundError::NotCreated { code, message } = &e {
                body["error"]["statusCode"] = json!(code);
                body["error"]["statusMessage"] = json!(message);
            }
            json_reply(status, &body)
        }
    }
}

/// `POST /admin/reload`: reloads the machines folder; 200 with the machines now current, or 422
/// with why the running ones stay (and every diagnostic).
async fn reload(app: Arc<App>) -> warp::reply::Response {
    let done = app.reload(Trigger::Admin).await;
    let status = match done.outcome {
        Outcome::Loaded { .. } => StatusCode::OK,
        Outcome::Failed { .. } => StatusCode::UNPROCESSABLE_ENTITY,
    };
    json_reply(status, &reload_json(&done))
}

/// `POST /admin/clock` (`{"offset_ms": N}`): moves the node's clock by N ms from the real one,
/// when `serve --clock-control` is on (404 `clock_control_off` otherwise); answers the clock as
/// it now reads.
fn set_clock(body: warp::hyper::body::Bytes) -> warp::reply::Response {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct SetClock {
        offset_ms: serde_json::Number,
    }
    // A JSON integer may be written with a zero fraction (`0.0`), as JSON Schema's `integer`
    // allows; a float is taken only when whole and within the bound (no lossy cast).
    let whole = |n: &serde_json::Number| {
        n.as_i64().or_else(|| {
            let limit = crate::node::CLOCK_OFFSET_MAX_MS as f64;
            n.as_f64().filter(|f| f.fract() == 0.0 && f.abs() <= limit).map(|f| f as i64)
        })
    };
    let set = match serde_json::from_slice::<SetClock>(&body) {
        Ok(set) => match whole(&set.offset_ms) {
            Some(offset_ms) => offset_ms,
            None => {
                let why =
                    format!("`offset_ms` {} is not a whole number of ms within the bound", set.offset_ms);
                return error(StatusCode::BAD_REQUEST, "invalid_offset", &why);
            }
        },
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_body",
                &format!("expected {{\"offset_ms\": N}}: {e}"),
            );
        }
    };
    match crate::node::set_clock_offset(set) {
        Ok(now_ms) => json_reply(StatusCode::OK, &json!({"offset_ms": set, "now_ms": now_ms})),
        Err(e @ crate::node::ClockError::Off) => {
            error(StatusCode::NOT_FOUND, "clock_control_off", &e.to_string())
        }
        Err(e @ crate::node::ClockError::TooFar(_)) => {
            error(StatusCode::BAD_REQUEST, "invalid_offset", &e.to_string())
        }
        Err(e @ (crate::node::ClockError::Save { .. } | crate::node::ClockError::Read { .. })) => {
            error(StatusCode::INTERNAL_SERVER_ERROR, "clock_not_saved", &e.to_string())
        }
    }
}

/// `GET /admin/machines`: the machines new calls get, and the last reload's result (null before
/// the first).
fn machines(app: Arc<App>) -> warp::reply::Response {
    let current = app.registry.snapshot();
    let machines: Vec<serde_json::Value> = current
        .machines()
        .map(|m| {
            json!({
                "name": m.name(),
                "version": m.version().hex(),
                "numbers": m.numbers(),
                "loadedAt": current.loaded_at(m.version()),
            })
        })
        .collect();
    let counts = app.reload_counts();
    json_reply(
        StatusCode::OK,
        &json!({
            "machines": machines,
            "lastReload": app.last_reload().as_ref().map(reload_json),
            "reloads": {"loaded": counts.loaded, "failed": counts.failed},
        }),
    )
}

/// `GET /admin/machines/{name}/versions/{version}`: the source of a version the store keeps (its
/// file's text and its modules' texts), found by its first 12 hex digits or more.
async fn machine_version(name: String, version: String, app: Arc<App>) -> warp::reply::Response {
    let hex = version.to_ascii_lowercase();
    if !(12..=64).contains(&hex.len()) || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_version",
            "a version is 12 to 64 hex digits (its short form is what `check` and /admin/machines show)",
        );
    }
    match app.store.machine_by_short(&name, &hex[..12]).await {
        Ok(Some((v, stored))) if v.hex().starts_with(&hex) => json_reply(
            StatusCode::OK,
            &json!({
                "name": stored.name,
                "version": v.hex(),
                "file": stored.file,
                "text": stored.text,
                "modules": stored.modules.iter().map(|m| json!({"file": m.file, "text": m.text})).collect::<Vec<_>>(),
            }),
        ),
        Ok(_) => error(
            StatusCode::NOT_FOUND,
            "unknown_version",
            &format!("no version `{version}` of machine `{name}` is stored"),
        ),
        Err(e) => {
            tracing::error!(error = %e, "cannot read a stored machine version");
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                "the store could not be read; ask again",
            )
        }
    }
}

/// Alive, unless the store failed for good (the node is then stopping, for its supervisor to
/// restart it).
fn healthz(app: Arc<App>) -> warp::reply::Response {
    match app.failure() {
        None => json_reply(StatusCode::OK, &json!({"status": "alive"})),
        Some(why) => json_reply(
            StatusCode::SERVICE_UNAVAILABLE,
            &json!({"status": "failed", "error": {"code": "store_failed", "message": why}}),
        ),
    }
}

/// A call the outbound guard refused: 400 for a number that is not E.164, 403 for one the node may
/// not call (or a foreign caller ID), 429 with `Retry-After` over a rate limit.
fn refused_call(refused: &Refused) -> warp::reply::Response {
    let (status, code) = match refused {
        Refused::NotE164(_) => (StatusCode::BAD_REQUEST, "invalid_number"),
        Refused::NothingAllowed | Refused::NotAllowed(_) => {
            (StatusCode::FORBIDDEN, "destination_not_allowed")
        }
        Refused::Barred { .. } => (StatusCode::FORBIDDEN, "destination_barred"),
        Refused::ForeignCallerId { .. } => (StatusCode::FORBIDDEN, "caller_id_not_allowed"),
        Refused::RateLimited { .. } => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
    };
    let mut r = error(status, code, &refused.to_string());
    if let Refused::RateLimited { retry_after, .. } = refused {
        r.headers_mut().insert(warp::http::header::RETRY_AFTER, retry_after.as_secs().into());
    }
    r
}

/// The cached health: `checkedAt` says when the store was last probed (ms since the epoch).
fn readyz(app: &App, health: &Health) -> warp::reply::Response {
    let snapshot = health.snapshot(node::now_ms());
    match snapshot.sessions {
        Ok(sessions) if !app.registry.is_empty() => json_reply(
            StatusCode::OK,
            &json!({
                "status": "ready",
                "machines": app.registry.len(),
                "sessions": sessions,
                "scripts_refused": app.scripts.refused(),
                "scripts_out_of_time": app.scripts.out_of_time(),
                "checkedAt": snapshot.checked_at_ms,
            }),
        ),
        Ok(_) => error(StatusCode::SERVICE_UNAVAILABLE, "no_machines", "no machine is loaded"),
        Err(e) => json_reply(
            StatusCode::SERVICE_UNAVAILABLE,
            &json!({"error": {"code": "store_unavailable", "message": e}, "checkedAt": snapshot.checked_at_ms}),
        ),
    }
}

async fn rejection(r: Rejection) -> Result<warp::reply::Response, Infallible> {
    let (status, code, message) = if let Some(Unauthorized(denied)) = r.find() {
        debug!(reason = %denied, "webhook refused: no valid credentials");
        (StatusCode::UNAUTHORIZED, "unauthorized", denied.to_string())
    } else if r.is_not_found() {
        (
            StatusCode::NOT_FOUND,
            "not_found",
            "no such route; webhooks go to POST /webhooks/vca and /webhooks/vss, operator routes \
             (POST /calls, /admin/reload, /admin/machines) to the admin listener"
                .to_string(),
        )
    } else if r.find::<warp::reject::PayloadTooLarge>().is_some() {
        (
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the body is over {BODY_BYTES_MAX} bytes"),
        )
    } else if r.find::<warp::reject::LengthRequired>().is_some() {
        (StatusCode::LENGTH_REQUIRED, "length_required", "send a Content-Length header".to_string())
    } else if r.find::<warp::reject::MethodNotAllowed>().is_some() {
        (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "webhooks are POSTed".to_string())
    } else {
        (StatusCode::BAD_REQUEST, "bad_request", format!("{r:?}"))
    };
    debug!(%status, code, "rejected request");
    Ok(error(status, code, &message))
}
