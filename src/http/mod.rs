//! The HTTP shell: two listeners over the node (the public one for 8x8's webhooks and health, the
//! admin one for operator routes and the web console), their limits against slow and greedy clients, who may use each,
//! every error a JSON body, and `run`.

pub mod allow;
pub mod auth;
mod budget;
mod conn;
pub mod console;
pub mod health;
pub mod limits;
mod metrics;
mod reply;
pub mod routes;

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tracing::{info, warn};

use crate::node::sweep::sweep_forever;
use crate::node::{App, SHUTDOWN_GRACE};
use allow::AllowList;
use auth::{AdminAuth, WebhookAuth};
use conn::{Gate, Handler, Routed};
use health::Health;
use limits::Limits;

/// The store failed for good while serving (see `App::note_store_error`); the node stopped.
#[derive(Debug, thiserror::Error)]
#[error("the store failed and cannot recover without a restart: {0}")]
pub struct StoreFailed(pub String);

/// Who may do what, and the limits of both listeners.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    pub webhook_auth: WebhookAuth,
    pub admin_auth: AdminAuth,
    pub allow: AllowList,
    pub limits: Limits,
}

/// A warp filter as a `conn::Handler`.
macro_rules! handler {
    ($filter:expr) => {{
        let service = hyper_util::service::TowerToHyperService::new(warp::service($filter));
        let handler: Handler = Arc::new(move |req: Routed| {
            let service = service.clone();
            Box::pin(async move {
                match hyper::service::Service::call(&service, req).await {
                    Ok(response) => response,
                    Err(never) => match never {},
                }
            })
        });
        handler
    }};
}

/// Serves `public` and `admin` until `shutdown` resolves or the store fails for good, then gives
/// in-flight requests `SHUTDOWN_GRACE` and flushes.
pub async fn run(
    public: TcpListener,
    admin: TcpListener,
    app: Arc<App>,
    settings: Settings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StoreFailed> {
    let addr = public.local_addr().ok();
    let admin_addr = admin.local_addr().ok();
    info!(?addr, ?admin_addr, machines = app.registry.len(), "phonetree serving");
    // Scripts (and their redirects) never call the node itself.
    app.scripts.serving_on(&[addr, admin_addr].into_iter().flatten().collect::<Vec<_>>());
    // Installed before the first request, so that every webhook is counted.
    let _ = metrics::handle();
    let upkeep = tokio::spawn(metrics::upkeep_forever());
    let health = Health::start(&app).await;
    let prober = tokio::spawn(health.clone().refresh_forever(app.clone()));
    let sweeper = tokio::spawn(sweep_forever(app.clone()));
    let scheduler = tokio::spawn(crate::node::scheduler::schedule_forever(app.clone()));
    let Settings { webhook_auth, admin_auth, allow, limits } = settings;
    if let Some(open_files) = limits::open_files_limit()
        && open_files < limits.descriptors_needed()
    {
        warn!(
            open_files,
            needed = limits.descriptors_needed(),
            "the open-file limit is below what --max-connections and --max-in-flight may use: raise \
             `ulimit -n` (LimitNOFILE=) or lower them, or accepts may fail under load"
        );
    }
    let admin_limits = Limits { max_connections: limits::ADMIN_MAX_CONNECTIONS, ..limits };
    let (stop_tx, stop_rx) = watch::channel(false);
    let public_gate = Arc::new(Gate::Public {
        allow,
        in_flight: Arc::new(Semaphore::new(limits.max_in_flight.min(Semaphore::MAX_PERMITS))),
    });
    let public_routes = handler!(routes::public(app.clone(), Arc::new(webhook_auth), health));
    let admin_routes = handler!(routes::admin(app.clone(), admin_auth.clone()));
    let servers = tokio::spawn(async move {
        tokio::join!(
            conn::serve(public, public_routes, public_gate, limits, stop_rx.clone()),
            conn::serve(
                admin,
                admin_routes,
                Arc::new(Gate::Admin {
                    auth: match admin_addr {
                        Some(bound) => admin_auth.bound_to(bound),
                        None => admin_auth,
                    }
                }),
                admin_limits,
                stop_rx
            ),
        )
    });
    let failed = tokio::select! {
        () = shutdown => None,
        why = app.store_failed() => Some(why),
    };
    info!("shutting down: finishing in-flight webhooks");
    let _ = stop_tx.send(true);
    if tokio::time::timeout(SHUTDOWN_GRACE, servers).await.is_err() {
        warn!(grace = ?SHUTDOWN_GRACE, "in-flight requests did not finish in time");
    }
    prober.abort();
    sweeper.abort();
    scheduler.abort();
    upkeep.abort();
    if let Some(why) = failed {
        return Err(StoreFailed(why));
    }
    match app.store.flush().await {
        Ok(()) => info!("store flushed; bye"),
        Err(e) => warn!(error = %e, "final flush failed"),
    }
    Ok(())
}
