//! The durable webhook node: configuration, the shared `App`, and `run(listener, app, shutdown)`.
//!
//! A thin shell around the engine: `calls` holds the persistence loop, `webhook::routes` the HTTP
//! side, `store` the disk. Nothing here decides where a call goes.

pub mod calls;
pub mod catalog;
pub mod fetch;
pub mod registry;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tracing::{info, warn};

use crate::callflow::{Action, Callflow, Say};
use crate::engine::{self, CallInfo, Direction};
use crate::machine::compile::DEFAULT_FALLBACK;
use crate::store::record::{FORMAT, LegRecord, SummaryRecord};
use crate::store::{Store, StoreError};
use crate::webhook::inbound::SessionSummary;
use crate::webhook::outbound::{self, ApiConfig, OutboundError};
use crate::webhook::wire;
use registry::Registry;

/// How long in-flight webhooks get to finish after SIGINT/SIGTERM: 8x8 waits a few seconds for a
/// reply, so longer would only delay the restart.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// How often idle sessions are looked for, at most; short TTLs are swept twice per TTL.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(60);
/// The shortest sweep period, so a TTL of zero cannot turn the sweeper into a busy loop.
pub const SWEEP_INTERVAL_MIN: Duration = Duration::from_millis(100);

#[derive(Debug, Clone)]
pub struct Config {
    pub machines: PathBuf,
    pub data: PathBuf,
    pub listen: SocketAddr,
    pub default_machine: Option<String>,
    /// A session with no webhook for this long and no summary is closed.
    pub session_ttl: Duration,
    /// A closed session (and its reply journal) is deleted this long after its last change.
    pub retention: Duration,
    pub api: ApiConfig,
    /// Reply before the fsync (benchmarks only: a crash may lose acknowledged transitions).
    pub unsafe_no_fsync: bool,
}

/// Everything a request needs, shared by all of them.
pub struct App {
    pub config: Config,
    pub registry: Registry,
    pub store: Store,
    pub http: reqwest::Client,
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("{0} machine file error(s); the server does not start with an invalid machine")]
    InvalidMachines(usize),
    #[error("no machines in {0}")]
    NoMachines(String),
    #[error("--default-machine `{0}` is not loaded")]
    UnknownDefault(String),
    #[error("cannot open the store in {dir}: {source}")]
    Store { dir: String, source: StoreError },
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: SocketAddr, source: std::io::Error },
}

impl App {
    /// Loads and checks every machine, opens the store. Diagnostics go to stderr.
    pub fn open(config: Config) -> Result<App, ServeError> {
        let catalog = crate::node::catalog::Catalog::load(std::slice::from_ref(&config.machines));
        for d in &catalog.diagnostics {
            eprintln!("{d}");
        }
        let errors = catalog.diagnostics.iter().filter(|d| d.is_error()).count();
        if errors > 0 {
            return Err(ServeError::InvalidMachines(errors));
        }
        if catalog.is_empty() {
            return Err(ServeError::NoMachines(config.machines.display().to_string()));
        }
        if let Some(d) = &config.default_machine
            && catalog.get(d).is_none()
        {
            return Err(ServeError::UnknownDefault(d.clone()));
        }
        let store_error = |source| ServeError::Store { dir: config.data.display().to_string(), source };
        let mut store = Store::open(&config.data).map_err(store_error)?;
        if config.unsafe_no_fsync {
            warn!("--unsafe-no-fsync: replies are sent before their state is on disk; a crash loses them");
            store = store.without_fsync();
        }
        let registry = Registry::new(catalog, config.default_machine.clone(), &store).map_err(store_error)?;
        store.durable_blocking().map_err(store_error)?;
        Ok(App { config, registry, store, http: reqwest::Client::new() })
    }
}

/// Closes idle sessions and deletes old ones, every `SWEEP_INTERVAL` at most, until dropped.
pub async fn sweep_forever(app: Arc<App>) {
    let shortest = app.config.session_ttl.min(app.config.retention) / 2;
    let mut tick = tokio::time::interval(shortest.clamp(SWEEP_INTERVAL_MIN, SWEEP_INTERVAL));
    loop {
        tick.tick().await;
        match calls::sweep(&app, now_ms()).await {
            Ok((0, 0)) => {}
            Ok((closed, deleted)) => info!(closed, deleted, "sessions swept"),
            Err(e) => warn!(error = %e, "sweep failed"),
        }
    }
}

/// Places an outbound call: sends the machine's opening callflow to 8x8 and stores the new
/// session (at the start node, waiting for the callee's answer) under the id 8x8 returns.
pub async fn place_call(
    app: &App,
    machine: &str,
    to: &str,
    from: Option<&str>,
) -> Result<String, OutboundError> {
    let m =
        app.registry.current(machine).ok_or_else(|| OutboundError::UnknownMachine(machine.to_string()))?;
    let from =
        from.map(str::to_string).or_else(|| m.numbers().first().cloned()).ok_or(OutboundError::NoCallerId)?;
    let call = CallInfo {
        session_id: String::new(),
        direction: Direction::Outbound,
        source: from,
        destination: to.to_string(),
        call_id: None,
    };
    let step = engine::start_outbound(m, call, now_ms()).map_err(|e| OutboundError::Engine(e.to_string()))?;
    let flow = step.reply.ok_or_else(|| OutboundError::Engine("the start node sends nothing".into()))?;
    let session = outbound::send_callflow(&app.http, &app.config.api, &wire::encode(&flow)).await?;
    let mut state = step.state;
    state.call.session_id = session.clone();
    app.store.put_session(&session, None, &state).map_err(|e| OutboundError::Store(e.to_string()))?.ok();
    app.store.durable().await.map_err(|e| OutboundError::Store(e.to_string()))?;
    info!(machine, session = %session, "outbound call created");
    Ok(session)
}

pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// The apology phonetree gives when it cannot tell which machine a call is on.
pub fn default_fallback() -> Callflow {
    Callflow {
        client_action_id: None,
        actions: vec![
            Action::Say(Say {
                text: DEFAULT_FALLBACK.into(),
                voice_profile: "en-US-BenjaminRUS".into(),
                repetition: None,
                speed: None,
            }),
            Action::Hangup,
        ],
    }
}

fn summary_record(s: &SessionSummary) -> SummaryRecord {
    SummaryRecord {
        v: FORMAT,
        received_ms: now_ms(),
        status: s.status.clone(),
        last_action: s.last_action.clone(),
        call_count: s.call_count,
        start_time: s.start_time.clone(),
        end_time: s.end_time.clone(),
        legs: s
            .legs
            .iter()
            .map(|l| LegRecord {
                name: l.name.clone(),
                call_id: l.call_id.clone(),
                direction: l.direction.clone(),
                source: l.source.clone(),
                destination: l.destination.clone(),
                status: l.status.clone(),
                duration_s: l.duration_s,
            })
            .collect(),
        error_code: s.error_code,
        error_message: s.error_message.clone(),
    }
}
