//! The guard's word on a number the node is about to dial (a placed call's destination, a
//! transfer's templated one): the checks, the rate limits kept in the store, the masked log line
//! and the count of refusals.

use super::guard::{self, Refused};
use super::throttle::warn_limited;
use super::{App, now_ms};

/// Takes a token for a call to `to` from the rate limits (per destination and overall), kept in
/// the store: shared by its nodes, surviving restarts.
pub(super) async fn admit(app: &App, to: &str) -> Result<Result<(), Refused>, crate::store::StoreError> {
    app.limiter.admit(app.store.as_ref(), to, now_ms()).await
}

/// The guard's word on a number a transfer at `node` was filled with: the checks of a placed call
/// (E.164, `--call-allow-prefix`, barred ranges, then the rate limits). A refusal is logged with
/// the number masked (it may be what the caller keyed) and counted.
pub(super) async fn dial(
    app: &App,
    m: &crate::machine::Machine,
    node: &str,
    to: &str,
) -> Result<Result<(), Refused>, crate::store::StoreError> {
    let checked = match guard::check_destination(&app.config.calls, to) {
        Ok(()) => admit(app, to).await?,
        Err(refused) => Err(refused),
    };
    if let Err(refused) = &checked {
        warn_limited!(
            machine = m.name(),
            node,
            to = %guard::masked(to),
            reason = refused.reason(),
            "the outbound guard refused a transfer's destination; the call takes `failure`"
        );
        super::metrics::dial_refused(app, m, node, refused.reason());
    }
    Ok(checked)
}
