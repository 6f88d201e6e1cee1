//! The web console on the admin listener: its page (`GET /`) and assets (`GET /console/{asset}`),
//! embedded in the binary and served without the admin token because they carry no data, and the
//! JSON the page polls (`GET /admin/console`, `GET /admin/machines/{name}/mermaid`), behind the
//! token like every other admin route. The page asks for the token once and sends it as
//! `Authorization: Bearer` on each of those requests; it never goes in a URL.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, LazyLock};

use serde_json::{Value, json};
use warp::Reply;
use warp::http::{HeaderValue, Method, StatusCode, header};

use super::reply::{error, reload_json};
use crate::engine::transcript::Call;
use crate::export::{mermaid, mermaid_id};
use crate::machine::{Machine, Version};
use crate::node::history::{self, Filter};
use crate::node::{App, metrics, now_ms};

/// The Mermaid bundle's file name: its version is in it, so a new one is a new path.
pub const MERMAID: &str = "mermaid-12.3.0.min.js";
const MERMAID_JS: &[u8] = include_bytes!("console/mermaid-12.3.0.min.js");
const MERMAID_LICENSE: &[u8] = include_bytes!("console/mermaid-12.3.0.LICENSE");
const INDEX: &str = include_str!("console/index.html");
const APP_JS: &str = include_str!("console/app.js");
const STYLE: &str = include_str!("console/style.css");

/// Most live calls one poll answers (the page says when there are more): a page polled every
/// second or two stays small whatever the node carries.
pub const LIVE_MAX: usize = 50;

/// The page runs only its own scripts; Mermaid writes `style` attributes and a `<style>` into the
/// SVGs it draws, hence `'unsafe-inline'` for styles (never for scripts). No frame may hold it.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
                   img-src 'self' data:; font-src 'self' data:; connect-src 'self'; base-uri 'none'; \
                   form-action 'none'; frame-ancestors 'none'";

/// An asset the page loads, by the file name it is served under.
struct Asset {
    /// The page names it `{{key}}`.
    key: &'static str,
    name: String,
    body: &'static [u8],
    content_type: &'static str,
}

/// The assets, their names carrying a content hash (or Mermaid's version): cached for good.
static ASSETS: LazyLock<Vec<Asset>> = LazyLock::new(|| {
    let hashed =
        |stem: &str, ext: &str, text: &str| format!("{stem}.{}.{ext}", Version::of_text(text).short());
    vec![
        Asset {
            key: "app",
            name: hashed("app", "js", APP_JS),
            body: APP_JS.as_bytes(),
            content_type: "text/javascript; charset=utf-8",
        },
        Asset {
            key: "style",
            name: hashed("style", "css", STYLE),
            body: STYLE.as_bytes(),
            content_type: "text/css; charset=utf-8",
        },
        Asset {
            key: "mermaid",
            name: MERMAID.to_string(),
            body: MERMAID_JS,
            content_type: "text/javascript; charset=utf-8",
        },
        Asset {
            key: "mermaid-license",
            name: "mermaid-12.3.0.LICENSE.txt".to_string(),
            body: MERMAID_LICENSE,
            content_type: "text/plain; charset=utf-8",
        },
    ]
});

/// The page, naming the assets by their hashed names.
static PAGE: LazyLock<String> = LazyLock::new(|| {
    ASSETS.iter().fold(INDEX.to_string(), |page, a| {
        page.replace(&format!("{{{{{}}}}}", a.key), &format!("/console/{}", a.name))
    })
});

/// Whether a request may reach the admin routes without the token: the page and its assets only
/// (they carry no data; everything the page shows comes from token-checked JSON).
pub fn is_public(method: &Method, path: &str) -> bool {
    method == Method::GET && (path == "/" || path.starts_with("/console/"))
}

/// `GET /`: the console's page.
pub(super) fn page() -> warp::reply::Response {
    let mut r = warp::reply::html(PAGE.as_str()).into_response();
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    secured(r)
}

/// `GET /console/token`: whether the admin listener needs its token (`--admin-no-token` says
/// not), so the page opens without the token form where none is needed. Public like the page: a
/// yes or no is all it tells.
pub(super) fn token(open: bool) -> warp::reply::Response {
    let mut r = warp::reply::json(&json!({ "required": !open })).into_response();
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    secured(r)
}

/// `GET /console/{asset}`: an asset of the page.
pub(super) fn asset(name: String) -> warp::reply::Response {
    let Some(a) = ASSETS.iter().find(|a| a.name == name) else {
        return secured(error(
            StatusCode::NOT_FOUND,
            "unknown_asset",
            "no such console asset; load the page at `/`",
        ));
    };
    let mut r = warp::http::Response::new(warp::hyper::body::Bytes::from_static(a.body)).into_response();
    let headers = r.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(a.content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=31536000, immutable"));
    secured(r)
}

/// The headers every console answer carries.
fn secured(mut r: warp::reply::Response) -> warp::reply::Response {
    let headers = r.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    r
}

/// `GET /admin/machines/{name}/mermaid`: the Mermaid flowchart of the current version of a machine
/// (what `phonetree export --format mermaid` prints), which the page draws.
pub(super) fn machine_mermaid(name: String, app: Arc<App>) -> warp::reply::Response {
    let Some(m) = app.registry.current(&name) else {
        return error(StatusCode::NOT_FOUND, "unknown_machine", &format!("no machine `{name}` is loaded"));
    };
    let mut r = warp::http::Response::new(warp::hyper::body::Bytes::from(mermaid(&m))).into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    r.headers_mut().insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    r
}

/// `GET /admin/console?numbers=masked|shown`: what the page shows, in one poll: every current
/// machine (version, proof, each node's funnel and live calls), the last reload, and at most
/// `LIVE_MAX` live calls with the caller's number masked unless `numbers=shown`. Live calls are
/// found as `GET /calls?outcome=inProgress` finds them, reading at most `history::LIST_SCAN_MAX`
/// sessions a poll; `more` says the read stopped before the end of the store.
pub(super) async fn overview(app: Arc<App>, query: HashMap<String, String>) -> warp::reply::Response {
    let shown = match query.get("numbers").map(String::as_str) {
        None | Some("masked") => false,
        Some("shown") => true,
        Some(other) => {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_query",
                &format!("`numbers` is `masked` or `shown`, not `{other}`"),
            );
        }
    };
    let filter = Filter { outcome: Some("inProgress".into()), limit: LIVE_MAX, ..Filter::default() };
    let live = match history::list(&app, &filter).await {
        Ok(listed) => listed,
        Err(fault) => {
            tracing::error!(error = %fault, "cannot read the live calls");
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                "the store could not be read; ask again",
            );
        }
    };
    let now = now_ms();
    let current = app.registry.snapshot();
    let machines: Vec<Value> = current
        .machines()
        .map(|m| machine_json(&app, m, current.report(m), &live.calls, current.loaded_at(m.version())))
        .collect();
    let calls: Vec<Value> = live
        .calls
        .iter()
        .map(|c| {
            let caller = if c.direction == "inbound" { &c.source } else { &c.destination };
            json!({
                "session": c.session,
                "machine": c.machine,
                "version": c.version,
                "node": c.node,
                "nodeId": mermaid_id(&c.node),
                "startedAt": c.started_ms,
                "atNodeMs": now.saturating_sub(c.updated_ms),
                "direction": c.direction,
                "caller": if shown { caller.clone() } else { mask(caller) },
            })
        })
        .collect();
    let counts = app.reload_counts();
    let body = json!({
        "now": now,
        "machines": machines,
        "lastReload": app.last_reload().as_ref().map(reload_json),
        "reloads": {"loaded": counts.loaded, "failed": counts.failed},
        "live": {"calls": calls, "more": live.next.is_some()},
    });
    let mut r = warp::reply::json(&body).into_response();
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn machine_json(
    app: &App,
    m: &Machine,
    proof: Option<&crate::proof::explore::Report>,
    live: &[Call],
    loaded_at: Option<u64>,
) -> Value {
    let funnels = app.funnels.of(m.name());
    let mut here: BTreeMap<&str, u64> = BTreeMap::new();
    for c in live.iter().filter(|c| c.machine == m.name()) {
        *here.entry(c.node.as_str()).or_default() += 1;
    }
    let g = m.graph();
    let nodes: Vec<Value> = g
        .node_indices()
        .map(|id| {
            let name = &g[id].name;
            let f = funnels.get(name).cloned().unwrap_or_default();
            // In the export's order, so the page finds each one's drawn edge.
            let edges: Vec<Value> = m
                .edges(id)
                .iter()
                .map(|(edge, to)| {
                    let exit = metrics::exit(edge);
                    let taken = f.exits.get(&exit).copied().unwrap_or(0);
                    json!({"exit": exit, "to": mermaid_id(&g[*to].name), "taken": taken})
                })
                .collect();
            json!({
                "edges": edges,
                "name": name,
                "id": mermaid_id(name),
                "kind": g[id].kind.name(),
                "live": here.get(name.as_str()).copied().unwrap_or(0),
                "entered": f.entered,
                "exits": f.exits,
                "ended": f.ended,
                "dropped": f.dropped,
            })
        })
        .collect();
    let proof = proof.map(|r| {
        json!({
            "states": r.states,
            "transitions": r.transitions,
            "edges": r.edges,
            "edgesCovered": r.edges_covered,
            "paths": r.paths,
            "pathsComplete": r.paths_complete,
            "longest": r.longest.len(),
        })
    });
    json!({
        "name": m.name(),
        "version": m.version().hex(),
        "numbers": m.numbers(),
        "loadedAt": loaded_at,
        "proof": proof,
        "nodes": nodes,
    })
}

/// A phone number as the console shows it by default: the first 3 and last 3 characters, the rest
/// as dots (`+6591234567` → `+65•••••567`); a short one all dots.
fn mask(number: &str) -> String {
    let chars: Vec<char> = number.chars().collect();
    if chars.len() <= 6 {
        return "•".repeat(chars.len());
    }
    let (head, rest) = chars.split_at(3);
    let (middle, tail) = rest.split_at(rest.len() - 3);
    format!(
        "{}{}{}",
        head.iter().collect::<String>(),
        "•".repeat(middle.len()),
        tail.iter().collect::<String>()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_masked_but_for_their_ends() {
        assert_eq!(mask("+6591234567"), "+65•••••567");
        assert_eq!(mask("12345"), "•••••");
        assert_eq!(mask(""), "");
    }

    #[test]
    fn the_page_names_every_asset_by_its_hashed_name_and_only_the_page_is_public() {
        for a in ASSETS.iter().filter(|a| !a.name.ends_with(".txt")) {
            assert!(PAGE.contains(&format!("/console/{}", a.name)), "{} is not on the page", a.name);
        }
        assert!(!PAGE.contains("{{"), "a placeholder is left on the page");
        assert!(is_public(&Method::GET, "/"));
        assert!(is_public(&Method::GET, "/console/app.js"));
        assert!(!is_public(&Method::POST, "/"));
        assert!(!is_public(&Method::GET, "/admin/console"));
        assert!(!is_public(&Method::GET, "/calls"));
    }
}
