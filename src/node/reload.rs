//! Reloading the machines folder while serving (SIGHUP, `POST /admin/reload`, `--watch`): every
//! machine is compiled and proven first; the new set replaces the running one only if all pass.
//! The same reload re-reads the secret files the node was started with (through the reader
//! `serve` gives, `reread_secrets_with`): a secret is rotated without a restart, and a file that
//! cannot be read, or holds no usable secret, refuses the whole reload.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use tracing::{error, info, warn};

use super::catalog::Catalog;
use super::{App, ServeError, check_catalog, now_ms};

/// How often `--watch` looks at the machines folder.
const WATCH_INTERVAL: Duration = Duration::from_secs(1);

/// What started a reload (logged with it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    Signal,
    Admin,
    Watch,
}

impl Trigger {
    fn name(self) -> &'static str {
        match self {
            Trigger::Signal => "SIGHUP",
            Trigger::Admin => "POST /admin/reload",
            Trigger::Watch => "--watch",
        }
    }
}

/// The result of one reload.
#[derive(Debug, Clone)]
pub struct Reload {
    /// When it finished, ms since the epoch.
    pub at_ms: u64,
    pub trigger: Trigger,
    pub outcome: Outcome,
}

#[derive(Debug, Clone)]
pub enum Outcome {
    /// The new set is current: every machine's name and version (hex).
    Loaded { machines: Vec<(String, String)> },
    /// The running set stays: why, and every diagnostic (`file:line:col: error: ...`).
    Failed { reason: String, diagnostics: Vec<String> },
}

/// Reloads done since the node started, by result.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReloadCounts {
    pub loaded: u64,
    pub failed: u64,
}

/// Re-reads the secret files a node was started with and checks what they hold: how to put the
/// new secrets in place (run only once the reload is otherwise done), or why they cannot be (the
/// file and the problem, never a secret).
pub type SecretsReader = Box<dyn Fn() -> Result<SecretsSwap, String> + Send + Sync>;
/// Puts secrets read by a `SecretsReader` in place.
pub type SecretsSwap = Box<dyn FnOnce() + Send>;

/// The reload state of a node: one reload at a time, counters, the last result.
#[derive(Default)]
pub(super) struct Reloads {
    one_at_a_time: tokio::sync::Mutex<()>,
    secrets: OnceLock<SecretsReader>,
    loaded: AtomicU64,
    failed: AtomicU64,
    last: Mutex<Option<Reload>>,
}

impl App {
    /// Reads, compiles and proves every machine of the machines folder; if all pass, they become
    /// the current set (each version kept in the store first); if any fails, the running set
    /// stays. Logged, counted and kept for `last_reload`.
    pub async fn reload(&self, trigger: Trigger) -> Reload {
        let _one = self.reloads.one_at_a_time.lock().await;
        let outcome = match self.reloads.secrets.get().map(|read| read()).transpose() {
            Ok(swap) => {
                let outcome = self.reload_machines().await;
                if let (Outcome::Loaded { .. }, Some(swap)) = (&outcome, swap) {
                    swap();
                    info!(trigger = trigger.name(), "secret files re-read: the new secrets are in use");
                }
                outcome
            }
            Err(why) => Outcome::Failed {
                reason: format!("{why}; the running machines and secrets stay"),
                diagnostics: Vec::new(),
            },
        };
        let reload = Reload { at_ms: now_ms(), trigger, outcome };
        let how = trigger.name();
        match &reload.outcome {
            Outcome::Loaded { machines } => {
                self.reloads.loaded.fetch_add(1, Ordering::Relaxed);
                let listed: Vec<String> =
                    machines.iter().map(|(name, version)| format!("{name}@{}", &version[..12])).collect();
                info!(trigger = how, machines = ?listed, "machines reloaded: new calls get these versions; calls running stay on theirs");
            }
            Outcome::Failed { reason, diagnostics, .. } => {
                self.reloads.failed.fetch_add(1, Ordering::Relaxed);
                for d in diagnostics {
                    warn!(trigger = how, diagnostic = %d, "reload diagnostic");
                }
                error!(trigger = how, reason = %reason, "reload refused: the running machines stay");
            }
        }
        *self.reloads.last.lock().unwrap_or_else(|e| e.into_inner()) = Some(reload.clone());
        reload
    }

    /// Re-reads the secret files with `read` on every reload from now on (`serve` sets it once).
    pub fn reread_secrets_with(&self, read: SecretsReader) {
        if self.reloads.secrets.set(read).is_err() {
            warn!("the secret files' reader was set already: the first one stays");
        }
    }

    async fn reload_machines(&self) -> Outcome {
        let (folder, voices) = (self.config.machines.clone(), self.config.voices.clone());
        let (allow, modules) = (self.config.script_allow.clone(), self.config.modules.clone());
        let loaded = tokio::task::spawn_blocking(move || {
            Catalog::load_with(std::slice::from_ref(&folder), voices.as_deref(), &allow, modules.as_deref())
        })
        .await;
        match loaded {
            Ok(catalog) => self.replace(catalog).await,
            Err(e) => {
                Outcome::Failed { reason: format!("the reload task failed: {e}"), diagnostics: Vec::new() }
            }
        }
    }

    async fn replace(&self, catalog: Catalog) -> Outcome {
        let diagnostics: Vec<String> = catalog.diagnostics.iter().map(ToString::to_string).collect();
        if let Err(e) = check_catalog(&catalog, &self.config) {
            let reason = match e {
                ServeError::InvalidMachines(n) => {
                    format!(
                        "{n} machine file error(s): every machine must compile and prove before any is replaced"
                    )
                }
                e => e.to_string(),
            };
            return Outcome::Failed { reason, diagnostics };
        }
        let machines = catalog.machines().map(|m| (m.name().to_string(), m.version().hex())).collect();
        match self.registry.replace(catalog, self.store.as_ref(), now_ms()).await {
            Ok(()) => Outcome::Loaded { machines },
            Err(e) => {
                self.note_store_error(&e);
                Outcome::Failed {
                    reason: format!("cannot keep the new machines in the store: {e}"),
                    diagnostics,
                }
            }
        }
    }

    /// The last reload's result, if there was one.
    pub fn last_reload(&self) -> Option<Reload> {
        self.reloads.last.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Reloads since the node started, by result (for metrics).
    pub fn reload_counts(&self) -> ReloadCounts {
        ReloadCounts {
            loaded: self.reloads.loaded.load(Ordering::Relaxed),
            failed: self.reloads.failed.load(Ordering::Relaxed),
        }
    }

    /// `--watch`: reloads whenever the machine files of the folder change from `seen` (taken
    /// with `Fingerprint::of` before the machines were loaded, so that no edit is missed): a file
    /// written, added, removed; once they have stayed the same for one `WATCH_INTERVAL` (an
    /// editor's several writes make one reload). Polls: no file-event dependency.
    pub async fn watch_forever(&self, mut seen: Fingerprint) {
        let folder = self.config.machines.clone();
        let look = move || {
            let folder = folder.clone();
            async move { tokio::task::spawn_blocking(move || Fingerprint::of(&folder)).await.unwrap_or_default() }
        };
        loop {
            tokio::time::sleep(WATCH_INTERVAL).await;
            let now = look().await;
            if now == seen {
                continue;
            }
            // Debounce: wait until the files stop changing.
            let mut settled = now;
            loop {
                tokio::time::sleep(WATCH_INTERVAL).await;
                let again = look().await;
                if again == settled {
                    break;
                }
                settled = again;
            }
            seen = settled;
            self.reload(Trigger::Watch).await;
        }
    }
}

/// What `--watch` compares: the name, length and modification time of every entry of the
/// machines folder and of its `modules/` folder (or of the file itself).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fingerprint(BTreeMap<String, (u64, Option<SystemTime>)>);

impl Fingerprint {
    pub fn of(folder: &Path) -> Fingerprint {
        let mut entries: Vec<std::path::PathBuf> = match std::fs::read_dir(folder) {
            Ok(dir) => dir.filter_map(|e| e.ok().map(|e| e.path())).collect(),
            Err(_) => vec![folder.to_path_buf()],
        };
        if let Ok(modules) = std::fs::read_dir(folder.join("modules")) {
            entries.extend(modules.filter_map(|e| e.ok().map(|e| e.path())));
        }
        Fingerprint(
            entries
                .into_iter()
                .filter_map(|p| {
                    let meta = std::fs::metadata(&p).ok()?;
                    Some((p.display().to_string(), (meta.len(), meta.modified().ok())))
                })
                .collect(),
        )
    }
}
