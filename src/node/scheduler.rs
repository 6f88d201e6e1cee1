//! The loop on every node that places the callbacks transfers' `on_unanswered` scheduled (see
//! `callbacks`), when they are due.
//!
//! A node claims a due callback (`Store::claim_scheduled`: marked `sending` durably, once per
//! store, `FOR UPDATE SKIP LOCKED` on PostgreSQL) before it sends it: a node that stops after the
//! claim never sends it again, nor does any other (at most once; it stays `sending`, listed).
//! An attempt the rate limit refuses (nothing sent) is put back for when its bucket has a token.

use std::sync::Arc;
use std::time::Duration;

use tracing::{info, warn};

use super::guard::Refused;
use super::{App, PlaceError, metrics, now_ms};
use crate::store::{ScheduledState, StoreError};

/// How often a node looks for due callbacks: a callback rings within a second of its time, and
/// the look is one indexed query.
pub const SCHEDULER_TICK: Duration = Duration::from_secs(1);
/// Most callbacks one node places per tick: the rest wait for the next tick (or another node),
/// so one tick never holds the loop for long.
pub const PLACED_PER_TICK_MAX: usize = 16;

/// Places due callbacks every `SCHEDULER_TICK`, until dropped.
pub async fn schedule_forever(app: Arc<App>) {
    let mut tick = tokio::time::interval(SCHEDULER_TICK);
    loop {
        tick.tick().await;
        match place_due(&app).await {
            Ok(_) => {}
            Err(e) if app.note_store_error(&e) => {}
            Err(e) => warn!(error = %e, "placing due callbacks failed"),
        }
    }
}

/// Claims and places the callbacks due now (at most `PLACED_PER_TICK_MAX`); returns how many
/// were claimed.
async fn place_due(app: &App) -> Result<usize, StoreError> {
    let mut claimed = 0;
    while claimed < PLACED_PER_TICK_MAX {
        let now = now_ms();
        let Some(mut call) = app.store.claim_scheduled(now).await? else { break };
        claimed += 1;
        let event = if now >= call.valid_until_ms {
            call.state = ScheduledState::Done;
            call.note = Some("expired before it could be placed".into());
            "expired"
        } else {
            match super::outbound::place_callback(app, &call).await {
                // Written `sent` with the new session, in its commit.
                Ok(session) => {
                    info!(id = call.id, attempt = call.attempt, session, "callback placed");
                    metrics::callback(app, &call.machine, "placed");
                    continue;
                }
                // Refused before anything was sent: the same attempt, once the bucket has a token.
                Err(PlaceError::Refused(Refused::RateLimited { retry_after, .. }))
                    if now.saturating_add(duration_ms(retry_after)) < call.valid_until_ms =>
                {
                    call.state = ScheduledState::Pending;
                    call.due_ms = now.saturating_add(duration_ms(retry_after));
                    call.note = Some(format!("rate-limited: tried again in {} s", retry_after.as_secs()));
                    info!(
                        id = call.id,
                        retry_after_s = retry_after.as_secs(),
                        "callback rate-limited: put back"
                    );
                    "rate_limited"
                }
                Err(e) => {
                    warn!(id = call.id, error = %e, "callback not placed");
                    call.state = ScheduledState::Done;
                    call.note = Some(format!("not placed: {e}"));
                    "not_placed"
                }
            }
        };
        call.updated_ms = now_ms();
        app.store.put_scheduled(&call).await?;
        metrics::callback(app, &call.machine, event);
    }
    Ok(claimed)
}

/// A duration in whole milliseconds, saturating.
fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
