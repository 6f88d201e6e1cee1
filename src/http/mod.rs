//! The HTTP shell: warp routes over the node, webhook authentication, every error a JSON body,
//! and `run`.

pub mod auth;
pub mod routes;

use std::sync::Arc;

use tracing::{info, warn};

use crate::node::sweep::sweep_forever;
use crate::node::{App, SHUTDOWN_GRACE};
use auth::WebhookAuth;

/// The store failed for good while serving (see `App::note_store_error`); the node stopped.
#[derive(Debug, thiserror::Error)]
#[error("the store failed and cannot recover without a restart: {0}")]
pub struct StoreFailed(pub String);

/// Serves until `shutdown` resolves or the store fails for good, then gives in-flight requests
/// `SHUTDOWN_GRACE` and flushes.
pub async fn run(
    listener: tokio::net::TcpListener,
    app: Arc<App>,
    auth: WebhookAuth,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StoreFailed> {
    let addr = listener.local_addr().ok();
    info!(?addr, machines = app.registry.len(), "phonetree serving");
    let sweeper = tokio::spawn(sweep_forever(app.clone()));
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = warp::serve(routes::routes(app.clone(), Arc::new(auth)))
        .incoming(listener)
        .graceful(async move {
            let _ = stop_rx.await;
        })
        .run();
    let server = tokio::spawn(server);
    let failed = tokio::select! {
        () = shutdown => None,
        why = app.store_failed() => Some(why),
    };
    info!("shutting down: finishing in-flight webhooks");
    let _ = stop_tx.send(());
    if tokio::time::timeout(SHUTDOWN_GRACE, server).await.is_err() {
        warn!(grace = ?SHUTDOWN_GRACE, "in-flight requests did not finish in time");
    }
    sweeper.abort();
    if let Some(why) = failed {
        return Err(StoreFailed(why));
    }
    match app.store.flush().await {
        Ok(()) => info!("store flushed; bye"),
        Err(e) => warn!(error = %e, "final flush failed"),
    }
    Ok(())
}
