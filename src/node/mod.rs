//! The durable webhook node: configuration, the shared `App`, and the loops that keep calls.
//!
//! A thin shell around the engine and the store: `calls` holds the persistence loop of a webhook,
//! `sweep` the TTL and retention sweeps, `outbound` the calls phonetree places, `registry` the
//! machine versions calls run on, `catalog` the machine files, `fetch` the HTTP requests of script
//! nodes. Nothing here decides where a call goes (the engine does), and nothing here knows how a
//! store keeps its records.

pub mod calls;
pub mod catalog;
pub mod fetch;
pub mod outbound;
pub mod registry;
pub mod sweep;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tracing::warn;

use crate::callflow::{Action, Callflow, Say};
use crate::machine::compile::DEFAULT_FALLBACK;
use crate::machine::hosts::AllowedHost;
use crate::store::{self, Durability, Store, StoreError, StoreUrl};
use crate::webhook::outbound::ApiConfig;
use catalog::Catalog;
use registry::Registry;

pub use outbound::place_call;

/// How long in-flight webhooks get to finish after SIGINT/SIGTERM: 8x8 waits a few seconds for a
/// reply, so longer would only delay the restart.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
pub struct Config {
    pub machines: PathBuf,
    /// Where calls are kept: `sled:FOLDER` or `postgres://...` (see `store::open`).
    pub store: String,
    pub listen: SocketAddr,
    pub default_machine: Option<String>,
    /// A session with no webhook for this long and no summary is closed.
    pub session_ttl: Duration,
    /// A closed session (and its reply journal) is deleted this long after its last change.
    pub retention: Duration,
    pub api: ApiConfig,
    /// Reply before the fsync (benchmarks only: a crash may lose acknowledged transitions).
    pub unsafe_no_fsync: bool,
    /// Hosts every machine's scripts may call, at any address but cloud metadata
    /// (`--script-allow`; see `fetch`).
    pub script_allow: Vec<AllowedHost>,
}

impl Default for Config {
    /// `serve`'s defaults: `machines/`, sled in `./data`, loopback port 8080, 6 h TTL, 24 h
    /// retention, no 8x8 API.
    fn default() -> Config {
        Config {
            machines: PathBuf::from("machines"),
            store: "sled:./data".to_string(),
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            default_machine: None,
            session_ttl: Duration::from_secs(6 * 3600),
            retention: Duration::from_secs(24 * 3600),
            api: ApiConfig::default(),
            unsafe_no_fsync: false,
            script_allow: Vec::new(),
        }
    }
}

/// Everything a request needs, shared by all of them.
pub struct App {
    pub config: Config,
    pub registry: Registry,
    pub store: Arc<dyn Store>,
    /// For the 8x8 API.
    pub http: reqwest::Client,
    /// For script nodes: only the hosts and addresses they may reach.
    pub scripts: fetch::Scripts,
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("{0} machine file error(s); the server does not start with an invalid machine")]
    InvalidMachines(usize),
    #[error("no machines in {0}")]
    NoMachines(String),
    #[error("--default-machine `{0}` is not loaded")]
    UnknownDefault(String),
    #[error("cannot open the store {store}: {source}")]
    Store { store: String, source: StoreError },
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: SocketAddr, source: std::io::Error },
}

impl App {
    /// Loads and checks every machine, opens the store at `config.store`. Diagnostics go to
    /// stderr.
    pub async fn open(config: Config) -> Result<App, ServeError> {
        let catalog = load_machines(&config)?;
        let durability = if config.unsafe_no_fsync {
            warn!("--unsafe-no-fsync: replies are sent before their state is durable; a crash loses them");
            Durability::NoFsync
        } else {
            Durability::Fsync
        };
        let store = store::open(&config.store, durability)
            .await
            .map_err(|source| ServeError::Store { store: store_name(&config.store), source })?;
        App::with_store(config, catalog, store).await
    }

    /// The node over any store, with the machines of `catalog` kept in it.
    pub async fn with_store(
        config: Config,
        catalog: Catalog,
        store: Arc<dyn Store>,
    ) -> Result<App, ServeError> {
        let registry = Registry::new(catalog, config.default_machine.clone(), store.as_ref())
            .await
            .map_err(|source| ServeError::Store { store: store_name(&config.store), source })?;
        let scripts = fetch::Scripts::new(&config.script_allow);
        Ok(App { config, registry, store, http: reqwest::Client::new(), scripts })
    }
}

/// Loads and proves every machine of `config.machines`; any error refuses them all.
fn load_machines(config: &Config) -> Result<Catalog, ServeError> {
    let catalog = Catalog::load(std::slice::from_ref(&config.machines));
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
    Ok(catalog)
}

/// A store URL as it may be shown: without its password.
pub fn store_name(url: &str) -> String {
    StoreUrl::parse(url).map_or_else(|_| "(an unreadable store URL)".to_string(), |u| u.to_string())
}

/// Milliseconds since the epoch: the `now` every step of the node is given.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
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
