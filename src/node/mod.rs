//! The durable webhook node: configuration, the shared `App`, and the loops that keep calls.
//!
//! A thin shell around the engine and the store: `calls` holds the persistence loop of a webhook,
//! `sweep` the TTL and retention sweeps, `outbound` the calls phonetree places (`guard` the ones it
//! refuses, `callbacks` the callbacks of unanswered transfers, `scheduler` placing them), `registry` the
//! machine versions calls run on, `catalog` the machine files, `reload` replacing them while
//! serving, `funnel` each node's figures for the console, `fetch` the HTTP requests of script
//! nodes, `throttle` the rate limits of log lines outsiders can repeat. Nothing here decides where
//! a call goes (the engine does), and nothing here knows how a store keeps its records.

mod callbacks;
pub mod calls;
pub mod catalog;
mod dial;
pub mod fetch;
pub mod funnel;
pub mod guard;
pub mod history;
pub mod metrics;
pub mod outbound;
pub mod registry;
pub mod reload;
mod resume;
pub mod scheduler;
pub mod sweep;
pub mod throttle;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::Notify;
use tracing::warn;

use crate::callflow::{Action, ActionKey, ActionKeyTooShort, Callflow, Say};
use crate::machine::compile::DEFAULT_FALLBACK;
use crate::machine::hosts::AllowedHost;
use crate::secret::Secret;
use crate::store::{self, Durability, Store, StoreError, StoreUrl};
use crate::webhook::outbound::ApiConfig;
use catalog::Catalog;
use guard::{CallPolicy, Limiter};
use registry::Registry;
use throttle::{Throttle, Verdict};

pub use outbound::{PlaceError, place_call};

/// How long in-flight webhooks get to finish after SIGINT/SIGTERM: 8x8 waits a few seconds for a
/// reply, so longer would only delay the restart.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
pub struct Config {
    pub machines: PathBuf,
    /// The modules folder (`--modules`); `None`: `modules/` in the machines folder, if any.
    pub modules: Option<PathBuf>,
    /// A voices file (`phonetree voices`) machines' voice profiles are checked against; `None`:
    /// the bundled list.
    pub voices: Option<PathBuf>,
    /// Where calls are kept: `sled:FOLDER` or `postgres://...` (see `store::open`).
    pub store: String,
    pub listen: SocketAddr,
    pub default_machine: Option<String>,
    /// A session with no webhook for this long and no summary is closed.
    pub session_ttl: Duration,
    /// A closed session (and its reply journal) is deleted this long after its last change.
    pub retention: Duration,
    pub api: ApiConfig,
    /// Which outbound calls the node may place, and how fast.
    pub calls: CallPolicy,
    /// Reply before the fsync (benchmarks only: a crash may lose acknowledged transitions).
    pub unsafe_no_fsync: bool,
    /// The key `clientActionId`s are signed with (`--action-key`); `None`: the store's, made by
    /// the first node that opened it and shared by all its nodes.
    pub action_key: Option<Secret>,
    /// Hosts every machine's scripts may call, at any address but cloud metadata
    /// (`--script-allow`; see `fetch`).
    pub script_allow: Vec<AllowedHost>,
}

impl Default for Config {
    /// `serve`'s defaults: `machines/`, sled in `./data`, loopback port 8080, 6 h TTL, 24 h
    /// retention, no 8x8 API, no outbound destination allowed.
    fn default() -> Config {
        Config {
            machines: PathBuf::from("machines"),
            modules: None,
            voices: None,
            store: "sled:./data".to_string(),
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            default_machine: None,
            session_ttl: Duration::from_secs(6 * 3600),
            retention: Duration::from_secs(24 * 3600),
            api: ApiConfig::default(),
            calls: CallPolicy::default(),
            unsafe_no_fsync: false,
            action_key: None,
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
    /// Set once the store failed for good (see `StoreError::is_permanent`).
    failure: OnceLock<String>,
    failed: Notify,
    /// What every `clientActionId` this node issues is signed with, and every echoed one checked
    /// against.
    pub action_key: ActionKey,
    /// `clientActionId`s refused (tampered, forged, unsigned, of another session or machine) since
    /// the node started: for metrics.
    pub refused_ids: AtomicU64,
    /// Warnings about refused ids: anyone who reaches the port can send them.
    refusal_log: Throttle,
    /// The rate limits of outbound calls (`config.calls`).
    pub limiter: Limiter,
    /// For script nodes: only the hosts and addresses they may reach.
    pub scripts: fetch::Scripts,
    /// Reloads of the machines folder: their counts and the last one's result.
    reloads: reload::Reloads,
    /// Each node's funnel since the node started (for the console).
    pub funnels: funnel::Funnels,
    /// The webhooks being answered, whose duplicates wait for their bytes.
    in_flight: calls::InFlight,
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("{0} machine file error(s); the server does not start with an invalid machine")]
    InvalidMachines(usize),
    #[error("no machines in {0}")]
    NoMachines(String),
    #[error("--default-machine `{0}` is not among the machines loaded")]
    UnknownDefault(String),
    #[error("cannot open the store {store}: {source}")]
    Store { store: String, source: StoreError },
    #[error(transparent)]
    ActionKey(#[from] ActionKeyTooShort),
    #[error(
        "cannot make an action key: the system's random source failed ({0}); give one with --action-key-file"
    )]
    Random(String),
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: SocketAddr, source: std::io::Error },
    #[error(transparent)]
    CallPolicy(#[from] guard::PolicyError),
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
        mut config: Config,
        catalog: Catalog,
        store: Arc<dyn Store>,
    ) -> Result<App, ServeError> {
        config.calls = config.calls.checked()?;
        let limiter = Limiter::new(&config.calls);
        let registry = Registry::new(catalog, config.default_machine.clone(), store.as_ref(), now_ms())
            .await
            .map_err(|source| ServeError::Store { store: store_name(&config.store), source })?;
        install_tls_provider();
        let scripts = fetch::Scripts::new(&config.script_allow);
        let action_key = action_key(&config, store.as_ref()).await?;
        Ok(App {
            config,
            registry,
            store,
            http: reqwest::Client::new(),
            limiter,
            scripts,
            action_key,
            failure: OnceLock::new(),
            failed: Notify::new(),
            refused_ids: AtomicU64::new(0),
            refusal_log: Throttle::new(),
            reloads: reload::Reloads::default(),
            funnels: funnel::Funnels::default(),
            in_flight: calls::InFlight::default(),
        })
    }

    /// Notes a store error: a permanent one (see `StoreError::is_permanent`) marks the node
    /// failed, once, and wakes `store_failed`; the node then stops so its supervisor restarts it
    /// on a reopened store. Returns true when the node has failed.
    pub fn note_store_error(&self, e: &StoreError) -> bool {
        if e.is_permanent() && self.failure.set(e.to_string()).is_ok() {
            tracing::error!(error = %e, "the store cannot recover from this error: stopping, so that a restart reopens it");
            self.failed.notify_waiters();
        }
        self.failure.get().is_some()
    }

    /// Why the store failed for good, if it did.
    pub fn failure(&self) -> Option<&str> {
        self.failure.get().map(String::as_str)
    }

    /// Resolves (with the error) once the store has failed for good.
    pub async fn store_failed(&self) -> String {
        loop {
            let woken = self.failed.notified();
            if let Some(why) = self.failure() {
                return why.to_string();
            }
            woken.await;
        }
    }

    /// Counts a `clientActionId` that is not honoured, and logs it at warn (rate-limited: anyone
    /// who reaches the port can send them; the rest at debug).
    pub fn refuse_id(&self, id: &str, why: &dyn std::fmt::Display) {
        let refused = self.refused_ids.fetch_add(1, Ordering::Relaxed) + 1;
        let shown: String = id.chars().take(crate::callflow::ID_BYTES_MAX).collect();
        match self.refusal_log.check(now_ms()) {
            Verdict::Log { suppressed } => {
                warn!(id = ?shown, reason = %why, refused_total = refused, suppressed, "clientActionId refused: treated as none");
            }
            Verdict::Drop => {
                tracing::debug!(id = ?shown, reason = %why, refused_total = refused, "clientActionId refused: treated as none");
            }
        }
    }
}

/// The node's action key: the operator's (`--action-key`), else the store's (made now, from the
/// system's random source, if this is the store's first node).
async fn action_key(config: &Config, store: &dyn Store) -> Result<ActionKey, ServeError> {
    if let Some(secret) = &config.action_key {
        return Ok(ActionKey::from_secret(secret)?);
    }
    let mut fresh = [0u8; 32];
    getrandom::fill(&mut fresh).map_err(|e| ServeError::Random(e.to_string()))?;
    let kept = store
        .action_key(Some(fresh))
        .await
        .map_err(|source| ServeError::Store { store: store_name(&config.store), source })?;
    Ok(ActionKey::new(kept.unwrap_or(fresh)))
}

/// Loads and proves every machine of `config.machines`; any error refuses them all.
fn load_machines(config: &Config) -> Result<Catalog, ServeError> {
    let catalog = Catalog::load_with(
        std::slice::from_ref(&config.machines),
        config.voices.as_deref(),
        &config.script_allow,
        config.modules.as_deref(),
    );
    for d in &catalog.diagnostics {
        eprintln!("{d}");
    }
    check_catalog(&catalog, config)?;
    Ok(catalog)
}

/// Whether `catalog` may be served (at start or by a reload): no error, at least one machine,
/// and the `--default-machine` among them.
fn check_catalog(catalog: &Catalog, config: &Config) -> Result<(), ServeError> {
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
    Ok(())
}

/// Makes ring rustls's crypto provider for the process: the HTTP client (reqwest, built without a
/// provider of its own) takes it from there and cannot build a client before it is in. Called
/// before every client the crate builds (the node's, the scripts', the load test's; the binary's
/// `main` for the CLI's); the PostgreSQL store names ring itself. A second call keeps the first.
pub fn install_tls_provider() {
    // An Err is a provider installed already: an earlier call of this function.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A store URL as it may be shown: without its password.
pub fn store_name(url: &str) -> String {
    StoreUrl::parse(url).map_or_else(|_| "(an unreadable store URL)".to_string(), |u| u.to_string())
}

/// Milliseconds since the epoch: the `now` every step of the node is given (plus the clock
/// offset, which is 0 unless `serve --clock-control` let an operator set it).
pub fn now_ms() -> u64 {
    let real = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    real.saturating_add_signed(CLOCK_OFFSET_MS.load(Ordering::Relaxed))
}

/// Milliseconds since the process started, on the monotonic clock: for what measures time between
/// two moments of this process (the call rate limits), which neither the clock offset nor a wall
/// clock stepped back may move.
pub fn monotonic_ms() -> u64 {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    let start = *START.get_or_init(std::time::Instant::now);
    u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// Whether the clock offset may be set (`serve --clock-control`, tests and staging only).
static CLOCK_CONTROL: AtomicBool = AtomicBool::new(false);
/// Added to the real clock in `now_ms` (0 unless clock control is on).
static CLOCK_OFFSET_MS: AtomicI64 = AtomicI64::new(0);
/// Where the clock offset is kept across restarts (a sled store's folder; none on PostgreSQL).
static CLOCK_FILE: OnceLock<PathBuf> = OnceLock::new();
/// Held while the offset is saved and applied: two `POST /admin/clock` never interleave, so the
/// file and the clock in force agree.
static CLOCK_SAVING: std::sync::Mutex<()> = std::sync::Mutex::new(());
/// The largest clock offset either way: 100 years, past any route a machine can write, and far
/// from overflowing the milliseconds since the epoch.
pub const CLOCK_OFFSET_MAX_MS: i64 = 100 * 366 * 24 * 3600 * 1000;
/// The file, in a sled store's folder, that keeps the clock offset of a node with clock control.
pub const CLOCK_FILE_NAME: &str = "phonetree-clock-offset";
/// The clock file's first line: its format and version.
const CLOCK_FILE_HEADER: &str = "phonetree clock offset v1";
/// The largest clock file read: the header and one number fit many times over; anything longer
/// is not a file this node wrote.
const CLOCK_FILE_MAX_BYTES: u64 = 256;

/// Lets `set_clock_offset` move this process's clock (`serve --clock-control`): every call's
/// routes on time then read the moved clock. For load tests and staging, never production.
/// On a sled store (`store` is the node's store URL) the offset is kept in the store's folder
/// (`CLOCK_FILE_NAME`): the one a previous run set is read here, before the node listens, so a
/// restarted node's clock reads as it did. Answers the file and the offset read from it.
pub fn enable_clock_control(store: &str) -> Result<Option<(PathBuf, i64)>, ClockError> {
    let mut kept = None;
    if let Ok(StoreUrl::Sled(dir)) = StoreUrl::parse(store) {
        let file = dir.join(CLOCK_FILE_NAME);
        let offset = read_clock_file(&file)?;
        CLOCK_OFFSET_MS.store(offset, Ordering::Relaxed);
        kept = Some((file.clone(), offset));
        // Set once per process: `serve` enables clock control once.
        let _ = CLOCK_FILE.set(file);
    }
    CLOCK_CONTROL.store(true, Ordering::Relaxed);
    Ok(kept)
}

/// The clock file kept in a sled store's folder `store`, if there is one (`serve` warns that a
/// node without clock control ignores it).
pub fn clock_file_of(store: &str) -> Option<PathBuf> {
    match StoreUrl::parse(store) {
        Ok(StoreUrl::Sled(dir)) => Some(dir.join(CLOCK_FILE_NAME)).filter(|f| f.exists()),
        _ => None,
    }
}

/// The offset a clock file keeps (0 when there is no file), validated: the header, one number,
/// within `CLOCK_OFFSET_MAX_MS`.
fn read_clock_file(file: &Path) -> Result<i64, ClockError> {
    let bad = |why: String| ClockError::Read { file: file.to_path_buf(), why };
    let f = match std::fs::File::open(file) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(bad(e.to_string())),
    };
    let mut text = String::new();
    std::io::Read::read_to_string(&mut std::io::Read::take(f, CLOCK_FILE_MAX_BYTES + 1), &mut text)
        .map_err(|e| bad(e.to_string()))?;
    if text.len() as u64 > CLOCK_FILE_MAX_BYTES {
        return Err(bad(format!("longer than {CLOCK_FILE_MAX_BYTES} bytes")));
    }
    let mut lines = text.lines();
    if lines.next() != Some(CLOCK_FILE_HEADER) {
        return Err(bad(format!("its first line is not `{CLOCK_FILE_HEADER}`")));
    }
    let offset: i64 = match (lines.next(), lines.next()) {
        (Some(n), None) => n.trim().parse().map_err(|e| bad(format!("line 2: {e}")))?,
        _ => return Err(bad("expected two lines: the header and the offset in ms".into())),
    };
    if offset.checked_abs().is_none_or(|a| a > CLOCK_OFFSET_MAX_MS) {
        return Err(bad(format!("offset {offset} ms is beyond {CLOCK_OFFSET_MAX_MS} ms either way")));
    }
    Ok(offset)
}

/// Writes `offset` to the clock file durably: a temporary file beside it, fsynced, renamed over
/// it, and the folder fsynced, so a kill at any moment leaves the old offset or the new one.
fn write_clock_file(file: &Path, offset: i64) -> Result<(), ClockError> {
    use std::io::Write;
    let bad = |e: std::io::Error| ClockError::Save { file: file.to_path_buf(), why: e.to_string() };
    let tmp = file.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp).map_err(bad)?;
    f.write_all(format!("{CLOCK_FILE_HEADER}\n{offset}\n").as_bytes()).map_err(bad)?;
    f.sync_all().map_err(bad)?;
    drop(f);
    std::fs::rename(&tmp, file).map_err(bad)?;
    if let Some(dir) = file.parent() {
        std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(bad)?;
    }
    Ok(())
}

/// Why the clock offset was not set.
#[derive(Debug, thiserror::Error)]
pub enum ClockError {
    #[error("clock control is off: start the node with `serve --clock-control` (tests and staging only)")]
    Off,
    #[error("clock offset {0} ms is beyond {CLOCK_OFFSET_MAX_MS} ms either way")]
    TooFar(i64),
    #[error(
        "cannot read the clock offset from {}: {why}; delete the file to start at the real clock",
        file.display()
    )]
    Read { file: PathBuf, why: String },
    #[error("cannot save the clock offset to {}: {why}; the clock was not moved", file.display())]
    Save { file: PathBuf, why: String },
}

/// Sets the offset `now_ms` adds to the real clock, when clock control is on; on a sled store
/// the offset is saved durably first (a restarted node reads it back). Answers the clock as it
/// now reads.
pub fn set_clock_offset(offset_ms: i64) -> Result<u64, ClockError> {
    if !CLOCK_CONTROL.load(Ordering::Relaxed) {
        return Err(ClockError::Off);
    }
    if offset_ms.checked_abs().is_none_or(|a| a > CLOCK_OFFSET_MAX_MS) {
        return Err(ClockError::TooFar(offset_ms));
    }
    let _saving = CLOCK_SAVING.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(file) = CLOCK_FILE.get() {
        write_clock_file(file, offset_ms)?;
    }
    CLOCK_OFFSET_MS.store(offset_ms, Ordering::Relaxed);
    warn!(offset_ms, "the node's clock was moved (clock control)");
    Ok(now_ms())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clock_file_keeps_an_offset_and_refuses_what_it_did_not_write() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(CLOCK_FILE_NAME);
        assert_eq!(read_clock_file(&file).unwrap(), 0, "no file: the real clock");
        write_clock_file(&file, -86_400_000).unwrap();
        assert_eq!(read_clock_file(&file).unwrap(), -86_400_000);
        assert!(!file.with_extension("tmp").exists());
        let far = CLOCK_OFFSET_MAX_MS + 1;
        for (text, why) in [
            ("3600000\n".to_string(), "first line"),
            (format!("{CLOCK_FILE_HEADER}\nsoon\n"), "line 2"),
            (format!("{CLOCK_FILE_HEADER}\n1\n2\n"), "two lines"),
            (format!("{CLOCK_FILE_HEADER}\n{}\n", "1".repeat(300)), "longer than"),
            (format!("{CLOCK_FILE_HEADER}\n{far}\n"), "beyond"),
        ] {
            std::fs::write(&file, text).unwrap();
            let e = read_clock_file(&file).unwrap_err().to_string();
            assert!(e.contains(why), "{e}");
        }
    }
}
