//! Readiness kept in memory: a task probes the store every `HEALTH_INTERVAL` and `/readyz` only
//! reads the last result, so pollers cost the store nothing.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tracing::debug;

use crate::node::{self, App};

/// How often the store is probed for `/readyz`: a load balancer polls every few seconds, so a
/// fresher answer would change nothing it does.
pub const HEALTH_INTERVAL: Duration = Duration::from_secs(2);
/// How long one probe may take before the store counts as unavailable (a stalled database must
/// turn `/readyz` to 503, not hang the prober).
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(3);
/// A result older than this is not believed (the prober itself is stuck): `/readyz` says 503.
pub const STALE_AFTER: Duration = Duration::from_secs(10);

/// The last probe: when it ran (ms since the epoch) and the session count, or why it failed.
#[derive(Debug, Clone)]
pub(crate) struct Snapshot {
    pub(crate) checked_at_ms: u64,
    pub(crate) sessions: Result<u64, String>,
}

/// The cached readiness of one node.
#[derive(Debug)]
pub(crate) struct Health {
    last: Mutex<Snapshot>,
}

impl Health {
    /// Probes once, so the first `/readyz` already has an answer.
    pub(crate) async fn start(app: &App) -> Arc<Health> {
        let health = Arc::new(Health {
            last: Mutex::new(Snapshot { checked_at_ms: 0, sessions: Err("not probed yet".into()) }),
        });
        health.refresh(app).await;
        health
    }

    /// The last result (never touches the store); a stale one reads as a failure.
    pub(crate) fn snapshot(&self, now_ms: u64) -> Snapshot {
        let last = self.last.lock().map(|s| s.clone()).unwrap_or_else(|p| p.into_inner().clone());
        let stale = u64::try_from(STALE_AFTER.as_millis()).unwrap_or(u64::MAX);
        if last.sessions.is_ok() && now_ms.saturating_sub(last.checked_at_ms) > stale {
            return Snapshot {
                checked_at_ms: last.checked_at_ms,
                sessions: Err("the store has not been probed lately".into()),
            };
        }
        last
    }

    async fn refresh(&self, app: &App) {
        let probe = async {
            app.store.probe(node::now_ms()).await?;
            app.store.session_count().await
        };
        let sessions = match tokio::time::timeout(PROBE_TIMEOUT, probe).await {
            Ok(Ok(n)) => {
                node::metrics::sessions(n);
                Ok(n)
            }
            Ok(Err(e)) => {
                // A store that failed for good stops the node (see `App::note_store_error`).
                app.note_store_error(&e);
                Err(e.to_string())
            }
            Err(_) => Err(format!("the store did not answer a probe within {} s", PROBE_TIMEOUT.as_secs())),
        };
        if let Err(e) = &sessions {
            debug!(error = %e, "store probe failed");
        }
        let snapshot = Snapshot { checked_at_ms: node::now_ms(), sessions };
        match self.last.lock() {
            Ok(mut last) => *last = snapshot,
            Err(poisoned) => *poisoned.into_inner() = snapshot,
        }
    }

    /// Probes every `HEALTH_INTERVAL` until aborted.
    pub(crate) async fn refresh_forever(self: Arc<Health>, app: Arc<App>) {
        let mut tick = tokio::time::interval(HEALTH_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            self.refresh(&app).await;
        }
    }
}
