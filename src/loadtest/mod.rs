//! `phonetree loadtest`: plays 8x8 against running nodes on loopback. Calls are drawn from each
//! machine's explored paths (`plan`) so that a modest run takes every edge; each webhook's reply is
//! checked against the pure engine given the call's history (the oracle, `call`) and 8x8's
//! callflow rules; scripts are answered by a stub API of the run's own (`stub`). A client of the
//! node: it sits at the top, beside the CLI, and nothing below uses it.

mod api;
mod call;
mod plan;
mod stub;

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::callflow::ActionKey;
use crate::engine::transcript;
use crate::machine::{Edge, NodeId};
use crate::secret::Secret;

pub use call::RETRY_DEADLINE;
pub use plan::{PATHS_KEPT_MAX, PlanError};
pub use stub::StubError;

/// Most calls one run places.
pub const CALLS_MAX: u64 = 1_000_000;
/// Most calls in flight at once.
pub const CONCURRENCY_MAX: usize = 1024;
/// Most nodes one run sends webhooks to.
pub const TARGETS_MAX: usize = 64;
/// Longest stub latency: under the shortest script timeout a machine may set with room to spare.
pub const LATENCY_MAX_MS: u64 = 1_000;
/// What a stub answer's latency must leave of the shortest script timeout the planned calls meet:
/// a reply that races the node's timeout would be the node's choice, not the oracle's.
const LATENCY_MARGIN_MS: u64 = 300;
/// Latency samples kept per webhook kind (the percentiles are of these; beyond, not kept).
const SAMPLES_MAX: usize = 1_000_000;
/// How long the run waits for each node's `/healthz` before its first call.
const READY_WAIT: Duration = Duration::from_secs(20);
/// How long a node that cannot take a clock offset (killed, restarting) is asked again: a restart
/// of a node on sled takes well under this, and a node down for longer fails the run.
const CLOCK_RETRY_WAIT: Duration = Duration::from_secs(30);
/// The pause between two attempts to set a node's clock offset.
const CLOCK_RETRY_PAUSE: Duration = Duration::from_millis(50);
/// One HTTP exchange with a node: its scripts' deadline (5 s) and then some.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// What a run does.
pub struct Config {
    /// The nodes' public listeners (`http://127.0.0.1:8080`).
    pub targets: Vec<String>,
    pub machines: PathBuf,
    pub calls: u64,
    pub concurrency: usize,
    pub seed: u64,
    pub duplicates_pct: u8,
    pub stale_pct: u8,
    pub early_summary_pct: u8,
    pub stub_latency_ms: u64,
    pub stub_failure_pct: u8,
    pub webhook_secret: Option<Secret>,
    /// The nodes' `--action-key`: with it, every reply's clientActionId MAC is verified.
    pub action_key: Option<Secret>,
    pub allow_remote: bool,
    /// The admin listeners of every target (`serve --clock-control`): the run moves their clocks
    /// to each clock class the explorer found, one phase per class. Empty: the real clock.
    pub clock_control: Vec<String>,
    /// The targets' admin token (`serve --admin-token-file`), for the clock control and
    /// `POST /calls`.
    pub admin_token: Option<Secret>,
    /// Percent of the calls to machines with numbers placed outbound (`POST /calls` on `admins`).
    pub outbound_pct: u8,
    /// Percent of the inbound calls whose CALL_RECEIVED is lost: their first webhook is a
    /// CALL_ACTION with no id, which must start the call at the start node.
    pub lost_start_pct: u8,
    /// Percent of the calls to a machine with `[resume]` that ended waiting for keys whose caller
    /// calls again at once (the node must make the resume offer).
    pub resume_pct: u8,
    /// Percent of the calls ending bridged at a transfer with `on_unanswered` whose summary says
    /// NO_ANSWER; with `admins`, the callback scheduled is checked.
    pub unanswered_pct: u8,
    /// The targets' admin listeners outbound calls are placed through (in turn).
    pub admins: Vec<String>,
    /// Where the stand-in Send Callflow API listens (the nodes' `--api-base-url`).
    pub callflow_api: Option<std::net::SocketAddr>,
}

/// A run that cannot start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("target `{0}` is not an http:// URL with a host")]
    BadTarget(String),
    #[error("target `{0}` is not on loopback; give --allow-remote to load a remote node")]
    Remote(String),
    #[error("{what} is {got}; at most {max}")]
    TooMany { what: &'static str, got: u64, max: u64 },
    #[error("{what} is {got}; at least {min}")]
    TooFew { what: &'static str, got: u64, min: u64 },
    #[error(
        "--stub-latency-ms {latency} leaves less than {LATENCY_MARGIN_MS} ms of the shortest script timeout ({timeout} ms): the node would time out where the oracle does not"
    )]
    LatencyOverTimeout { latency: u64, timeout: u32 },
    #[error("{target} never answered /healthz within {secs} s (is `phonetree serve` running there?)", secs = READY_WAIT.as_secs())]
    NotReady { target: String },
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    Stub(#[from] StubError),
    #[error("the action key is {0} characters; the nodes take at least {min}", min = crate::callflow::ACTION_KEY_CHARS_MIN)]
    ActionKey(usize),
    #[error("cannot make the HTTP client: {0}")]
    Client(String),
    #[error("--outbound needs --admin (the targets' admin listeners) and --callflow-api-listen")]
    OutboundUnset,
    #[error(
        "cannot move the clock of {admin}: {why} (is the node started with `serve --clock-control`, and the admin token given?)"
    )]
    Clock { admin: String, why: String },
}

/// The kinds of webhook a run times.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    CallReceived,
    CallAction,
    Duplicate,
    Stale,
    Summary,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::CallReceived => "call_received",
            Kind::CallAction => "call_action",
            Kind::Duplicate => "duplicate",
            Kind::Stale => "stale",
            Kind::Summary => "session_summary",
        }
    }
}

/// A reply that is not the oracle's.
#[derive(Debug, Clone, Serialize)]
pub struct Mismatch {
    pub session: String,
    pub machine: String,
    #[serde(skip)]
    pub machine_index: usize,
    /// Which webhook: its event and eventId.
    pub webhook: String,
    pub expected: String,
    pub got: String,
    /// The call as far as it went, its last entry what the node answered (`phonetree replay`).
    #[serde(skip)]
    pub call: transcript::Call,
}

/// What the calls counted.
#[derive(Default)]
pub struct Stats {
    pub calls: u64,
    latencies: BTreeMap<Kind, Vec<u32>>,
    webhooks: u64,
    pub retries: u64,
    duplicates: u64,
    duplicates_identical: u64,
    stale: u64,
    stale_answered: u64,
    pub outbound: u64,
    pub lost_starts: u64,
    /// Callers who hung up at a menu of a machine with `[resume]` and called again.
    pub called_again: u64,
    /// Resume offers made (each checked), and their answers: gone on, started again.
    pub resume_offers: u64,
    pub resumed: u64,
    pub started_again: u64,
    /// NO_ANSWER summaries whose scheduled callback was found as the oracle expects.
    pub callbacks_checked: u64,
    /// Replies that took a script's failure branch because a kill cut its request.
    pub cut_requests: u64,
    mismatches: u64,
    first: Option<Mismatch>,
    /// The edges each machine's calls took (calls without a mismatch).
    pub edges: Vec<HashSet<(NodeId, Edge)>>,
}

impl Stats {
    fn latency(&mut self, kind: Kind, d: Duration) {
        self.webhooks += 1;
        let samples = self.latencies.entry(kind).or_default();
        if samples.len() < SAMPLES_MAX {
            samples.push(u32::try_from(d.as_micros()).unwrap_or(u32::MAX));
        }
    }

    fn duplicate(&mut self, identical: bool) {
        self.duplicates += 1;
        self.duplicates_identical += u64::from(identical);
    }

    fn stale(&mut self, answered: bool) {
        self.stale += 1;
        self.stale_answered += u64::from(answered);
    }

    fn mismatch(&mut self, m: Mismatch) {
        self.mismatches += 1;
        if self.first.is_none() {
            self.first = Some(m);
        }
    }
}

/// Milliseconds since the Unix epoch: the clock the oracle steps the engine at.
/// Rounds of the cover played again for machines with reachable edges no call took (calls that a
/// node killed mid-request or a failing stub answer sent elsewhere): a few rounds take them back
/// without letting a machine whose edge cannot be taken at the node's clock loop.
const COVER_AGAIN_MAX: usize = 3;

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Latency percentiles of one webhook kind, in milliseconds.
#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    pub count: usize,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

fn latency(samples: &mut [u32]) -> Latency {
    samples.sort_unstable();
    let at = |q: f64| {
        let i = ((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len().max(1)) - 1;
        samples.get(i).map_or(0.0, |&us| f64::from(us) / 1000.0)
    };
    Latency { count: samples.len(), p50_ms: at(0.50), p95_ms: at(0.95), p99_ms: at(0.99), max_ms: at(1.0) }
}

/// Edges taken of one machine.
#[derive(Debug, Clone, Serialize)]
pub struct Coverage {
    pub machine: String,
    pub edges: usize,
    pub taken: usize,
    /// Edges the explored paths take at the clocks the run plays: the real one, or with
    /// `--clock-control` every clock class (route rules on time read the node's clock).
    pub reachable_now: usize,
    /// The edges not taken, as `node: label`.
    pub not_taken: Vec<String>,
}

/// The run's report (`--report` writes it as JSON).
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub calls: u64,
    pub webhooks: u64,
    pub seconds: f64,
    pub calls_per_second: f64,
    pub webhooks_per_second: f64,
    pub latency: BTreeMap<&'static str, Latency>,
    pub duplicates: u64,
    pub duplicates_identical: u64,
    pub stale: u64,
    pub stale_answered: u64,
    /// Calls placed through `POST /calls` (their opening checked, then played as the callee).
    pub outbound: u64,
    /// Inbound calls whose first webhook was a CALL_ACTION (their CALL_RECEIVED lost).
    pub lost_starts: u64,
    /// Callers who hung up at a menu of a machine with `[resume]` and called again at once.
    pub called_again: u64,
    /// Resume offers the nodes made as the oracle expected, and how they were answered.
    pub resume_offers: u64,
    pub resumed: u64,
    pub started_again: u64,
    /// Transfers whose summary said NO_ANSWER and whose callback `GET /calls?scheduled=true`
    /// listed as the oracle expects.
    pub callbacks_checked: u64,
    pub retries: u64,
    pub script_requests: u64,
    pub script_requests_unexpected: u64,
    /// Requests made more often than the applied webhooks that needed them (a duplicate in
    /// flight asking again, a retry after a crash): an effect repeated, which the node's
    /// at-most-once claim forbids (the run fails on any).
    pub script_requests_repeated: u64,
    /// Webhooks whose script request a kill cut: the node answered its retry with the script's
    /// failure branch, the request not made again (the oracle accepts that only when a delivery of
    /// that webhook lost its connection to the node).
    pub script_requests_cut: u64,
    pub mismatches: u64,
    pub first_mismatch: Option<Mismatch>,
    pub coverage: Vec<Coverage>,
    #[serde(skip)]
    pub replay: Option<(PathBuf, transcript::Call)>,
}

fn check_targets(cfg: &Config, targets: &[String]) -> Result<Vec<String>, Error> {
    let count = targets.len() as u64;
    if count > TARGETS_MAX as u64 {
        return Err(Error::TooMany { what: "the number of targets", got: count, max: TARGETS_MAX as u64 });
    }
    let mut out = Vec::new();
    for t in targets {
        let url = url::Url::parse(t).map_err(|_| Error::BadTarget(t.clone()))?;
        let host = url.host().ok_or_else(|| Error::BadTarget(t.clone()))?;
        if url.scheme() != "http" && url.scheme() != "https" {
            return Err(Error::BadTarget(t.clone()));
        }
        let loopback = match host {
            url::Host::Domain(d) => d == "localhost",
            url::Host::Ipv4(ip) => ip.is_loopback(),
            url::Host::Ipv6(ip) => ip.is_loopback(),
        };
        if !loopback && !cfg.allow_remote {
            return Err(Error::Remote(t.clone()));
        }
        out.push(t.trim_end_matches('/').to_string());
    }
    Ok(out)
}

fn bounds(cfg: &Config) -> Result<(), Error> {
    let over =
        |what, got: u64, max: u64| if got > max { Err(Error::TooMany { what, got, max }) } else { Ok(()) };
    over("--calls", cfg.calls, CALLS_MAX)?;
    over("--concurrency", cfg.concurrency as u64, CONCURRENCY_MAX as u64)?;
    over("--stub-latency-ms", cfg.stub_latency_ms, LATENCY_MAX_MS)?;
    for (what, pct) in [
        ("--duplicates", cfg.duplicates_pct),
        ("--stale", cfg.stale_pct),
        ("--early-summaries", cfg.early_summary_pct),
        ("--stub-failure-pct", cfg.stub_failure_pct),
        ("--outbound", cfg.outbound_pct),
        ("--lost-starts", cfg.lost_start_pct),
        ("--resume", cfg.resume_pct),
        ("--unanswered", cfg.unanswered_pct),
    ] {
        over(what, u64::from(pct), 100)?;
    }
    if cfg.concurrency == 0 {
        return Err(Error::TooFew { what: "--concurrency", got: 0, min: 1 });
    }
    Ok(())
}

/// The offset that makes a clock reading `now` read `at`, within what a node takes.
fn clock_offset(at: u64, now: u64) -> i64 {
    let offset = i128::from(at) - i128::from(now);
    let max = i128::from(crate::node::CLOCK_OFFSET_MAX_MS);
    i64::try_from(offset.clamp(-max, max)).unwrap_or(0)
}

/// Moves every node's clock by `offset_ms` (`POST /admin/clock`, `serve --clock-control`). A node
/// that cannot be reached or answers 5xx (killed, restarting) is asked again until
/// `CLOCK_RETRY_WAIT` has passed: a node on sled keeps the offset it acknowledged across a
/// restart, so once every node answered, the phase's clock is in force on each, also after a kill.
async fn set_clocks(
    client: &reqwest::Client,
    admins: &[String],
    token: Option<&Secret>,
    offset_ms: i64,
) -> Result<(), Error> {
    for admin in admins {
        let fail = |why: String| Error::Clock { admin: admin.clone(), why };
        let started = Instant::now();
        loop {
            let mut req = client
                .post(format!("{admin}/admin/clock"))
                .json(&serde_json::json!({ "offset_ms": offset_ms }));
            if let Some(t) = token {
                req = req.bearer_auth(t.expose());
            }
            let why = match req.send().await {
                Ok(r) if r.status().is_success() => break,
                Ok(r) if !r.status().is_server_error() => {
                    let status = r.status();
                    let body = r.text().await.unwrap_or_default();
                    return Err(fail(format!("{status}: {body}")));
                }
                Ok(r) => format!("{}: {}", r.status(), r.text().await.unwrap_or_default()),
                Err(e) => e.to_string(),
            };
            if started.elapsed() >= CLOCK_RETRY_WAIT {
                return Err(fail(format!("{why} (still, after {} s)", CLOCK_RETRY_WAIT.as_secs())));
            }
            tokio::time::sleep(CLOCK_RETRY_PAUSE).await;
        }
    }
    Ok(())
}

async fn wait_ready(client: &reqwest::Client, target: &str) -> Result<(), Error> {
    let started = Instant::now();
    while started.elapsed() < READY_WAIT {
        if let Ok(r) = client.get(format!("{target}/healthz")).send().await
            && r.status().is_success()
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(Error::NotReady { target: target.to_string() })
}

/// Runs the load test `cfg` describes; `replay_file` is where the first mismatching call goes.
pub async fn run(cfg: Config, replay_file: PathBuf) -> Result<Report, Error> {
    bounds(&cfg)?;
    let action_key = match &cfg.action_key {
        Some(secret) => Some(ActionKey::from_secret(secret).map_err(|e| Error::ActionKey(e.0))?),
        None => None,
    };
    if cfg.targets.is_empty() {
        return Err(Error::TooFew { what: "the number of targets", got: 0, min: 1 });
    }
    let targets = check_targets(&cfg, &cfg.targets)?;
    let admins = check_targets(&cfg, &cfg.clock_control)?;
    let clocked = !admins.is_empty();
    let placers = check_targets(&cfg, &cfg.admins)?;
    if cfg.outbound_pct > 0 && (placers.is_empty() || cfg.callflow_api.is_none()) {
        return Err(Error::OutboundUnset);
    }
    let dir = cfg.machines.clone();
    let started_ms = now_ms();
    let plan =
        tokio::task::spawn_blocking(move || plan::load(&dir).map(|m| plan::plan(m, started_ms, clocked)))
            .await
            .map_err(|e| Error::Client(e.to_string()))??;
    let timeout_min = plan.machines.iter().filter_map(|l| l.timeout_ms_min).min();
    if let Some(timeout) = timeout_min
        && cfg.stub_latency_ms.saturating_add(LATENCY_MARGIN_MS) > u64::from(timeout)
    {
        return Err(Error::LatencyOverTimeout { latency: cfg.stub_latency_ms, timeout });
    }
    let hosts: Vec<String> = plan
        .machines
        .iter()
        .flat_map(|l| l.hosts.iter().cloned())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let stub =
        Arc::new(stub::Stub::new(cfg.seed, cfg.stub_failure_pct, Duration::from_millis(cfg.stub_latency_ms)));
    let mut servers = stub::serve(stub.clone(), &hosts).await?;
    let callflow = match cfg.callflow_api.filter(|_| cfg.outbound_pct > 0) {
        Some(addr) => {
            let (api, task) = api::serve(addr, started_ms).await?;
            servers.push(task);
            Some(api)
        }
        None => None,
    };
    crate::node::install_tls_provider();
    let client = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .pool_max_idle_per_host(CONCURRENCY_MAX)
        .build()
        .map_err(|e| Error::Client(e.to_string()))?;
    for t in &targets {
        wait_ready(&client, t).await?;
    }
    let n = plan.machines.len();
    let numbers: Vec<String> = plan.machines.iter().map(|l| l.number.clone()).collect();
    let files: Vec<PathBuf> = plan.machines.iter().map(|l| l.file.clone()).collect();
    let meta: Vec<(String, usize, usize)> = plan
        .machines
        .iter()
        .map(|l| (l.machine.name().to_string(), l.edges.len(), l.reachable.len()))
        .collect();
    let edge_names: Vec<Vec<((NodeId, Edge), String)>> = plan
        .machines
        .iter()
        .map(|l| {
            l.edges
                .iter()
                .map(|(f, e)| {
                    ((*f, e.clone()), format!("{}: {e}", l.machine.node(*f).map_or("?", |n| n.name.as_str())))
                })
                .collect()
        })
        .collect();
    let reachable: Vec<HashSet<(NodeId, Edge)>> = plan.machines.iter().map(|l| l.reachable.clone()).collect();
    let cover = plan.cover;
    let all = plan.all;
    let machines = plan.machines.into_iter().map(|l| l.machine).collect();
    let shared = Arc::new(call::Shared {
        client,
        targets,
        secret: cfg.webhook_secret,
        action_key,
        stub: stub.clone(),
        machines,
        seed: cfg.seed,
        run: started_ms,
        duplicates_pct: cfg.duplicates_pct,
        stale_pct: cfg.stale_pct,
        early_summary_pct: cfg.early_summary_pct,
        next_target: AtomicUsize::new(0),
        stats: Mutex::new(Stats { edges: vec![HashSet::new(); n], ..Stats::default() }),
        offset_ms: AtomicI64::new(0),
        admins: placers,
        admin_token: cfg.admin_token.clone(),
        outbound_pct: cfg.outbound_pct,
        lost_start_pct: cfg.lost_start_pct,
        resume_pct: cfg.resume_pct,
        unanswered_pct: cfg.unanswered_pct,
        callflow,
    });
    // Each call's path: the cover first, then paths the seed draws; grouped by clock class.
    let mut phases: BTreeMap<Option<u64>, Vec<(u64, plan::Path, bool)>> = BTreeMap::new();
    for i in 0..cfg.calls {
        let (path, covering) = match usize::try_from(i).ok().and_then(|i| cover.get(i)) {
            Some(p) => (p, true),
            None if all.is_empty() => break,
            None => {
                let k = plan::Rng::new(cfg.seed, i ^ 0x5eed).below(all.len() as u64);
                (&all[usize::try_from(k).unwrap_or(0)], false)
            }
        };
        phases.entry(path.at).or_default().push((i, path.clone(), covering));
    }
    let numbers = Arc::new(numbers);
    let started = Instant::now();
    // Cover calls played so far (a run shorter than the cover plays only its first paths).
    let played = cover.len().min(usize::try_from(cfg.calls).unwrap_or(usize::MAX));
    let mut next_index = cfg.calls;
    for round in 0..=COVER_AGAIN_MAX {
        for (at, calls) in std::mem::take(&mut phases) {
            // Every node's clock, and the oracle's, reads the class's instant as the phase starts.
            let offset = at.map_or(0, |at| clock_offset(at, now_ms()));
            if clocked {
                set_clocks(&shared.client, &admins, cfg.admin_token.as_ref(), offset).await?;
            }
            shared.offset_ms.store(offset, Ordering::Relaxed);
            let calls = Arc::new(calls);
            let next = Arc::new(AtomicUsize::new(0));
            let mut workers = tokio::task::JoinSet::new();
            for _ in 0..cfg.concurrency.min(calls.len()) {
                let (shared, calls, next, numbers) =
                    (shared.clone(), calls.clone(), next.clone(), numbers.clone());
                workers.spawn(async move {
                    while let Some((i, path, covering)) = calls.get(next.fetch_add(1, Ordering::Relaxed)) {
                        call::run(&shared, *i, path, &numbers[path.machine], !covering).await;
                    }
                });
            }
            while workers.join_next().await.is_some() {}
        }
        // A call that a kill (its script's failure branch) or a stub failure turned off its planned
        // path leaves edges untaken: the cover's paths of each machine with an edge reachable at the
        // run's clock but not yet taken are played again, at most `COVER_AGAIN_MAX` more times.
        if round == COVER_AGAIN_MAX {
            break;
        }
        let taken = shared.stats.lock().unwrap_or_else(|p| p.into_inner()).edges.clone();
        for path in &cover[..played] {
            if reachable[path.machine].iter().any(|e| !taken[path.machine].contains(e)) {
                phases.entry(path.at).or_default().push((next_index, path.clone(), true));
                next_index = next_index.saturating_add(1);
            }
        }
        if phases.is_empty() {
            break;
        }
    }
    if clocked {
        set_clocks(&shared.client, &admins, cfg.admin_token.as_ref(), 0).await?;
    }
    let seconds = started.elapsed().as_secs_f64();
    for s in servers {
        s.abort();
    }
    let mut stats = std::mem::take(&mut *shared.stats.lock().unwrap_or_else(|p| p.into_inner()));
    let coverage = meta
        .iter()
        .zip(&edge_names)
        .zip(&stats.edges)
        .map(|(((machine, edges, reachable), names), taken)| Coverage {
            machine: machine.clone(),
            edges: *edges,
            taken: taken.len(),
            reachable_now: *reachable,
            not_taken: names.iter().filter(|(e, _)| !taken.contains(e)).map(|(_, n)| n.clone()).collect(),
        })
        .collect();
    let latency = stats.latencies.iter_mut().map(|(k, v)| (k.name(), latency(v))).collect();
    let replay = stats.first.as_ref().map(|m| (files[m.machine_index].clone(), m.call.clone()));
    if let Some((_, call)) = &replay
        && let Ok(text) = serde_json::to_string_pretty(call)
    {
        // The report names the file; a failure to write it is said there.
        let _ = std::fs::write(&replay_file, text);
    }
    let per_s = |x: u64| if seconds > 0.0 { x as f64 / seconds } else { 0.0 };
    Ok(Report {
        calls: stats.calls,
        webhooks: stats.webhooks,
        seconds,
        calls_per_second: per_s(stats.calls),
        webhooks_per_second: per_s(stats.webhooks),
        latency,
        duplicates: stats.duplicates,
        duplicates_identical: stats.duplicates_identical,
        stale: stats.stale,
        stale_answered: stats.stale_answered,
        outbound: stats.outbound,
        lost_starts: stats.lost_starts,
        called_again: stats.called_again,
        resume_offers: stats.resume_offers,
        resumed: stats.resumed,
        started_again: stats.started_again,
        callbacks_checked: stats.callbacks_checked,
        retries: stats.retries,
        script_requests: stub.requests.load(Ordering::Relaxed),
        script_requests_unexpected: stub.unexpected.load(Ordering::Relaxed),
        script_requests_repeated: stub.repeated(),
        script_requests_cut: stats.cut_requests,
        mismatches: stats.mismatches,
        first_mismatch: stats.first.take(),
        coverage,
        replay,
    })
}
