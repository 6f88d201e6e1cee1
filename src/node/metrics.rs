//! The node's metrics: what webhooks, steps, script requests and sweeps report, recorded through
//! the `metrics` facade (and each node's funnel, into `App::funnels` for the console). The HTTP
//! layer installs the Prometheus recorder and serves `/metrics`; without a recorder every call here
//! does nothing (the funnels still count).
//!
//! Labels come only from bounded sets: endpoint and outcome names written here, machine and node
//! names of loaded machines (others read `other`), branch keys and values a machine declares, and
//! 8x8's documented error codes. Never a session id, a phone number or a caller's keys.

use std::time::Duration;

use metrics::{Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};

use super::App;
use crate::callflow::SESSION_STATUSES;
use crate::engine::{self, CallState, Event, Outcome};
use crate::machine::{Edge, Machine, NodeId};
use crate::store;

/// The status a silent session is closed with, as if its summary said it.
pub(super) const EXPIRED: &str = "EXPIRED";

/// Webhooks answered, by `endpoint` (`vca`, `vss`), `outcome` and, for rejected ones, `reason`.
const WEBHOOKS: &str = "phonetree_webhooks_total";
/// Time from a webhook's head to its answer, by `endpoint`.
const WEBHOOK_SECONDS: &str = "phonetree_webhook_duration_seconds";
/// Commits retried because another request changed the session first (`Committed::Changed`).
const COMMIT_RETRIES: &str = "phonetree_commit_retries_total";
/// Times calls entered a node, by `machine` and `node`.
const NODE_ENTRIES: &str = "phonetree_node_entries_total";
/// Exits taken from a node, by `machine`, `node` and `exit` (`key_<keys>`, `invalid` and
/// `no_input` once the tries are used up, `next`, `response_<value>`, `default`, `failure`,
/// `rule_<n>`, `else`, `not_number`, `repeat_<key>`, `back_<key>`, `variant_<variant>`: `exit`).
const NODE_EXITS: &str = "phonetree_node_exits_total";
/// Prompts repeated at a node because of a failed try (`reason`: `invalid`, `no_input`).
const NODE_RETRIES: &str = "phonetree_node_retries_total";
/// Calls that ended at a node, by `machine`, `node` and `how` (`hangup`, `transfer`,
/// `caller_hung_up`, `expired`, `unanswered`).
const CALLS_ENDED: &str = "phonetree_calls_ended_total";
/// Transfers that ended, by `machine`, `node` and `status` (the session summary's, one of
/// `callflow::summary::SESSION_STATUSES` or `EXPIRED`, else `other`).
const TRANSFER_OUTCOMES: &str = "phonetree_transfer_outcomes_total";
/// Script requests by `machine`, `node` and `result` (`ok`, `bad_body`, `error_status`,
/// `timeout`, `error`, `refused`, `out_of_time`, `cache_hit`, `claimed`, `lapsed`).
const SCRIPT_REQUESTS: &str = "phonetree_script_requests_total";
/// Time of script requests sent (not cache hits), by `machine` and `node`.
const SCRIPT_SECONDS: &str = "phonetree_script_request_duration_seconds";
/// Sessions in the store, as of the last health probe.
const SESSIONS: &str = "phonetree_sessions";
/// 1 for each machine version loaded, by `machine` and `version`.
const MACHINE_LOADED: &str = "phonetree_machine_loaded";
/// Session summaries carrying an 8x8 error code, by `code` (8x8's documented codes, else `other`).
const ERRORS_8X8: &str = "phonetree_8x8_errors_total";
/// `clientActionId`s refused (`App::refused_ids`).
const REFUSED_IDS: &str = "phonetree_client_action_ids_refused_total";
/// Machine reloads by `result` (`loaded`, `failed`; `App::reload_counts`).
const RELOADS: &str = "phonetree_reloads_total";
/// Script requests refused by the host and address policy (`Scripts::refused`).
const SCRIPTS_REFUSED: &str = "phonetree_scripts_refused_total";
/// Transfers whose templated destination the outbound guard refused (the call took `failure`), by
/// `machine`, `node` and `reason` (`not_e164`, `nothing_allowed`, `not_allowed`, `barred`,
/// `rate_limited`).
const DIALS_REFUSED: &str = "phonetree_dials_refused_total";
/// Calls a split sent on, by `machine`, `node` and `variant` (the variants the split declares;
/// `other` with a node not loaded).
const SPLITS: &str = "phonetree_split_total";
/// Calls that went on where the caller's interrupted call stopped (a resume offer taken), by
/// `machine` and `node`.
const RESUMED: &str = "phonetree_resumed_total";
/// Callbacks of transfers' `on_unanswered`, by `machine` (the callback's) and `event`: `scheduled`
/// (a summary said the transfer was not answered), `placed`, `rescheduled` (an attempt not
/// answered, another due), `answered`, `unanswered` (its attempts ran out), `rate_limited` (put
/// back for a token), `expired` (its window closed before it could be placed), `not_placed` (8x8 or
/// the outbound guard refused it), `cancelled` (by an operator).
const CALLBACKS: &str = "phonetree_callbacks_total";
/// Scripts that failed without a request, the webhook's time being spent (`Scripts::out_of_time`).
const SCRIPTS_OUT_OF_TIME: &str = "phonetree_scripts_out_of_time_total";

/// The error codes 8x8 documents for session summaries (Voice Error Codes): the only ones kept as
/// a label value.
const DOCUMENTED_8X8_ERRORS: [(i64, &str); 11] = [
    (-2001, "-2001"),
    (-2002, "-2002"),
    (-2003, "-2003"),
    (-2004, "-2004"),
    (-2005, "-2005"),
    (-2006, "-2006"),
    (-2007, "-2007"),
    (-2008, "-2008"),
    (-2009, "-2009"),
    (-2010, "-2010"),
    (-9999, "-9999"),
];

/// The machine or node label of what is not loaded (an old version's node, a machine no longer
/// loaded), and the code label of an undocumented 8x8 error.
const OTHER: &str = "other";

/// Registers the help text of every metric (the recorder must be installed first).
pub fn describe() {
    describe_counter!(WEBHOOKS, Unit::Count, "Webhooks answered, by endpoint, outcome and rejection reason.");
    describe_histogram!(WEBHOOK_SECONDS, Unit::Seconds, "Time from a webhook's head to its answer.");
    describe_counter!(COMMIT_RETRIES, Unit::Count, "Commits retried because the session changed first.");
    describe_counter!(NODE_ENTRIES, Unit::Count, "Times calls entered a node.");
    describe_counter!(
        RELOADS,
        Unit::Count,
        "Machine reloads (SIGHUP, POST /admin/reload, --watch), by result."
    );
    describe_counter!(NODE_EXITS, Unit::Count, "Exits taken from a node.");
    describe_counter!(SPLITS, Unit::Count, "Calls a split sent on, by the variant it gave them.");
    describe_counter!(NODE_RETRIES, Unit::Count, "Prompts repeated at a node after a failed try.");
    describe_counter!(CALLS_ENDED, Unit::Count, "Calls that ended at a node, and how.");
    describe_counter!(
        TRANSFER_OUTCOMES,
        Unit::Count,
        "Transfers that ended, by node and the session summary's status."
    );
    describe_counter!(SCRIPT_REQUESTS, Unit::Count, "Script requests by result.");
    describe_histogram!(SCRIPT_SECONDS, Unit::Seconds, "Time of the script requests sent.");
    describe_gauge!(SESSIONS, Unit::Count, "Sessions in the store, as of the last health probe.");
    describe_gauge!(MACHINE_LOADED, "1 for each machine version loaded.");
    describe_counter!(ERRORS_8X8, Unit::Count, "Session summaries carrying an 8x8 error code.");
    describe_counter!(REFUSED_IDS, Unit::Count, "clientActionIds refused (tampered, forged, foreign).");
    describe_counter!(
        RESUMED,
        Unit::Count,
        "Calls that went on where the caller's interrupted call stopped."
    );
    describe_counter!(CALLBACKS, Unit::Count, "Callbacks of unanswered transfers, by what happened to them.");
    describe_counter!(SCRIPTS_REFUSED, Unit::Count, "Script requests refused by the host policy.");
    describe_counter!(
        DIALS_REFUSED,
        Unit::Count,
        "Transfers to a templated destination the outbound guard refused, by reason."
    );
    describe_counter!(
        SCRIPTS_OUT_OF_TIME,
        Unit::Count,
        "Scripts failed unasked: the webhook's time was spent."
    );
    store::describe_metrics();
}

/// The webhook series every answered webhook updates, as `(endpoint, outcome)`: their handles are
/// kept from their first use (`register_fixed`) instead of a label lookup per webhook.
const FIXED_ANSWERS: [(&str, &str); 5] =
    [("vca", "applied"), ("vca", "duplicate"), ("vca", "stale"), ("vca", "fallback"), ("vss", "recorded")];
/// The endpoints whose latency histogram's handle is kept the same way.
const FIXED_ENDPOINTS: [&str; 2] = ["vca", "vss"];

/// Handles of `FIXED_ANSWERS` and `FIXED_ENDPOINTS`, in their order, each registered at its first
/// use (a series appears in `/metrics` once it counts something, as any other does).
struct Fixed {
    answered: [std::sync::OnceLock<metrics::Counter>; FIXED_ANSWERS.len()],
    latency: [std::sync::OnceLock<metrics::Histogram>; FIXED_ENDPOINTS.len()],
}

/// Set once the recorder is installed (a handle taken before would count nowhere for good).
static FIXED: std::sync::OnceLock<Fixed> = std::sync::OnceLock::new();

/// Keeps the handles of the series every webhook updates from their first use on: call once the
/// process's recorder is installed (the HTTP layer does, when it installs it). Until then the
/// series are looked up per webhook, as with any other recorder.
pub fn register_fixed() {
    FIXED.get_or_init(|| Fixed {
        answered: std::array::from_fn(|_| std::sync::OnceLock::new()),
        latency: std::array::from_fn(|_| std::sync::OnceLock::new()),
    });
}

/// Counts a webhook answered with `outcome` (a name of this module's lists).
pub fn webhook_answered(endpoint: &'static str, outcome: &'static str) {
    if let Some(fixed) = FIXED.get()
        && let Some(i) = FIXED_ANSWERS.iter().position(|&(e, o)| e == endpoint && o == outcome)
        && let Some(handle) = fixed.answered.get(i)
    {
        handle.get_or_init(|| counter!(WEBHOOKS, "endpoint" => endpoint, "outcome" => outcome)).increment(1);
        return;
    }
    counter!(WEBHOOKS, "endpoint" => endpoint, "outcome" => outcome).increment(1);
}

/// Counts a webhook rejected with a 4xx for `reason` (the error code of its answer).
pub fn webhook_rejected(endpoint: &'static str, reason: &'static str) {
    counter!(WEBHOOKS, "endpoint" => endpoint, "outcome" => "rejected", "reason" => reason).increment(1);
}

/// Records how long a webhook took.
pub fn webhook_latency(endpoint: &'static str, took: Duration) {
    if let Some(fixed) = FIXED.get()
        && let Some(i) = FIXED_ENDPOINTS.iter().position(|&e| e == endpoint)
        && let Some(handle) = fixed.latency.get(i)
    {
        handle.get_or_init(|| histogram!(WEBHOOK_SECONDS, "endpoint" => endpoint)).record(took.as_secs_f64());
        return;
    }
    histogram!(WEBHOOK_SECONDS, "endpoint" => endpoint).record(took.as_secs_f64());
}

/// Counts a commit retried after `Committed::Changed`.
pub(super) fn commit_retried() {
    counter!(COMMIT_RETRIES).increment(1);
}

/// The labels of `machine`'s node `id`: `(machine, node)`, `other` for what is not loaded.
fn labels(app: &App, machine: &Machine, id: NodeId) -> (String, String) {
    let Some(loaded) = app.registry.current(machine.name()) else {
        return (OTHER.to_string(), OTHER.to_string());
    };
    let node = match machine.node(id) {
        Some(n) if loaded.node_id(&n.name).is_some() => n.name.clone(),
        _ => OTHER.to_string(),
    };
    (machine.name().to_string(), node)
}

/// The `exit` label of an edge (as the metrics and the console's funnels name it).
pub fn exit(edge: &Edge) -> String {
    match edge {
        Edge::Key(k) => format!("key_{k}"),
        Edge::Response(v) => format!("response_{v}"),
        Edge::Invalid => "invalid".into(),
        Edge::NoInput => "no_input".into(),
        Edge::Next => "next".into(),
        Edge::Default => "default".into(),
        Edge::Failure => "failure".into(),
        Edge::Rule(i, _) => format!("rule_{}", i.saturating_add(1)),
        Edge::Else => "else".into(),
        Edge::NotNumber => "not_number".into(),
        Edge::Repeat(k) => format!("repeat_{k}"),
        Edge::Back(k) => format!("back_{k}"),
        Edge::Variant(v) => format!("variant_{v}"),
    }
}

/// Records a durable step of `machine` from `before` on `event`: the nodes it entered, the exits
/// it took, a repeated prompt, and where and how the call ended if it did.
pub(super) fn step(app: &App, machine: &Machine, before: &CallState, event: &Event, step: &engine::Step) {
    for &id in &step.entered {
        let (m, n) = labels(app, machine, id);
        app.funnels.entered(&m, &n);
        counter!(NODE_ENTRIES, "machine" => m, "node" => n).increment(1);
    }
    for (from, edge, _) in &step.edges {
        let (m, n) = labels(app, machine, *from);
        let exit = exit(edge);
        app.funnels.exited(&m, &n, &exit);
        if let Edge::Variant(v) = edge {
            let variant = if n == OTHER { OTHER.to_string() } else { v.clone() };
            counter!(SPLITS, "machine" => m.clone(), "node" => n.clone(), "variant" => variant).increment(1);
        }
        counter!(NODE_EXITS, "machine" => m, "node" => n, "exit" => exit).increment(1);
    }
    if step.edges.is_empty() && step.state.node == before.node && step.state.tries > before.tries {
        let reason = if matches!(event, Event::NoInput) { "no_input" } else { "invalid" };
        let (m, n) = labels(app, machine, before.node);
        counter!(NODE_RETRIES, "machine" => m, "node" => n, "reason" => reason).increment(1);
    }
    ended(app, machine, before, &step.state, false);
}

/// Records the end of a call, if `after` ended it (`expired`: the TTL sweep closed it).
pub(super) fn ended(app: &App, machine: &Machine, before: &CallState, after: &CallState, expired: bool) {
    // A transfer is counted when its status arrives (which may be after the call ended).
    let status = |s: &CallState| match &s.outcome {
        Some(Outcome::Transferred { status, .. }) => status.clone(),
        _ => None,
    };
    if let (None, Some(status)) = (status(before), status(after)) {
        let label = SESSION_STATUSES.iter().chain(&[EXPIRED]).find(|s| **s == status).map_or(OTHER, |s| s);
        let (m, n) = labels(app, machine, after.node);
        counter!(TRANSFER_OUTCOMES, "machine" => m, "node" => n, "status" => label).increment(1);
    }
    if before.outcome.is_some() {
        return;
    }
    let how = match &after.outcome {
        None => return,
        Some(Outcome::HungUp) => "hangup",
        Some(Outcome::Transferred { .. }) => "transfer",
        Some(Outcome::CallerLeft { .. }) if expired => "expired",
        Some(Outcome::CallerLeft { .. }) => "caller_hung_up",
        Some(Outcome::Unanswered { .. }) => "unanswered",
    };
    let (m, n) = labels(app, machine, after.node);
    app.funnels.ended(&m, &n, how);
    counter!(CALLS_ENDED, "machine" => m, "node" => n, "how" => how).increment(1);
}

/// Counts a script request of `machine`'s node `node` (by name) with `result`, and its time when
/// one was sent.
pub(super) fn script(app: &App, machine: &Machine, node: &str, result: &'static str, took: Option<Duration>) {
    let (m, n) = match (app.registry.current(machine.name()), machine.node_id(node)) {
        (Some(loaded), Some(_)) if loaded.node_id(node).is_some() => {
            (machine.name().to_string(), node.to_string())
        }
        (Some(_), _) => (machine.name().to_string(), OTHER.to_string()),
        (None, _) => (OTHER.to_string(), OTHER.to_string()),
    };
    if let Some(took) = took {
        histogram!(SCRIPT_SECONDS, "machine" => m.clone(), "node" => n.clone()).record(took.as_secs_f64());
    }
    counter!(SCRIPT_REQUESTS, "machine" => m, "node" => n, "result" => result).increment(1);
}

/// Counts a transfer whose templated destination the outbound guard refused.
pub(super) fn dial_refused(app: &App, machine: &Machine, node: &str, reason: &'static str) {
    let (m, n) = match app.registry.current(machine.name()) {
        Some(loaded) if loaded.node_id(node).is_some() => (machine.name().to_string(), node.to_string()),
        Some(_) => (machine.name().to_string(), OTHER.to_string()),
        None => (OTHER.to_string(), OTHER.to_string()),
    };
    counter!(DIALS_REFUSED, "machine" => m, "node" => n, "reason" => reason).increment(1);
}

/// Counts a call that went on at node `id`, where the caller's interrupted call stopped.
pub(super) fn resumed(app: &App, machine: &Machine, id: NodeId) {
    let (m, n) = labels(app, machine, id);
    counter!(RESUMED, "machine" => m, "node" => n).increment(1);
}

/// Counts what happened to a callback of machine `machine` (`event`: one of `CALLBACKS`' names).
pub fn callback(app: &App, machine: &str, event: &'static str) {
    let m = if app.registry.current(machine).is_some() { machine.to_string() } else { OTHER.to_string() };
    counter!(CALLBACKS, "machine" => m, "event" => event).increment(1);
}

/// Counts an 8x8 error code of a session summary.
pub(super) fn error_8x8(code: i64) {
    let label = DOCUMENTED_8X8_ERRORS.iter().find(|(c, _)| *c == code).map_or(OTHER, |(_, l)| l);
    counter!(ERRORS_8X8, "code" => label).increment(1);
}

/// Sets the gauges and counters read from the node's state: called before each render.
pub fn refresh(app: &App) {
    // The exporter cannot drop a series: a version a reload replaced is set to 0.
    static SHOWN: std::sync::Mutex<Vec<(String, String)>> = std::sync::Mutex::new(Vec::new());
    let current: Vec<(String, String)> =
        app.registry.snapshot().machines().map(|m| (m.name().to_string(), m.version().short())).collect();
    let mut shown = SHOWN.lock().unwrap_or_else(|e| e.into_inner());
    for (name, version) in shown.iter().filter(|v| !current.contains(v)) {
        gauge!(MACHINE_LOADED, "machine" => name.clone(), "version" => version.clone()).set(0.0);
    }
    for (name, version) in &current {
        gauge!(MACHINE_LOADED, "machine" => name.clone(), "version" => version.clone()).set(1.0);
        if !shown.contains(&(name.clone(), version.clone())) {
            shown.push((name.clone(), version.clone()));
        }
    }
    drop(shown);
    let reloads = app.reload_counts();
    counter!(RELOADS, "result" => "loaded").absolute(reloads.loaded);
    counter!(RELOADS, "result" => "failed").absolute(reloads.failed);
    counter!(REFUSED_IDS).absolute(app.refused_ids.load(std::sync::atomic::Ordering::Relaxed));
    counter!(SCRIPTS_REFUSED).absolute(app.scripts.refused());
    counter!(SCRIPTS_OUT_OF_TIME).absolute(app.scripts.out_of_time());
}

/// Sets the session gauge (from the health probe's count).
pub fn sessions(count: u64) {
    gauge!(SESSIONS).set(count as f64);
}
