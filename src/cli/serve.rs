//! `phonetree serve`: opens the node (machines and store) and answers webhooks on `--listen` until
//! SIGINT or SIGTERM (SIGHUP is logged and ignored).

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use std::path::PathBuf;

use phonetree::http::StoreFailed;
use phonetree::http::auth::{self, AuthConfigError, WebhookAuth};
use phonetree::node::{App, Config, ServeError};
use phonetree::secret::{Secret, SecretFileError};

use super::{NoRuntime, NodeArgs, runtime};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    node: NodeArgs,
    /// Address to listen on (port 0 picks a free port; the address is printed on stdout).
    #[arg(long, env = "PHONETREE_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Close sessions that get no webhook and no summary for this many seconds.
    #[arg(long, env = "PHONETREE_SESSION_TTL_SECS", default_value_t = 6 * 3600)]
    session_ttl_secs: u64,
    /// Delete closed sessions (and their reply journal) this many seconds after they close.
    #[arg(long, env = "PHONETREE_RETENTION_SECS", default_value_t = 24 * 3600)]
    retention_secs: u64,
    /// Benchmarks only: answer before the state is fsync'd (a crash loses acknowledged calls).
    #[arg(long, env = "PHONETREE_UNSAFE_NO_FSYNC", hide = true)]
    unsafe_no_fsync: bool,
    /// A secret webhooks must carry (in the `--webhook-auth-header` header, the `httpAuthHeader`
    /// 8x8 sends, or as an HS256 JWT in the URL's `?token=`), at least 16 bytes.
    #[arg(long, env = "PHONETREE_WEBHOOK_SECRET", hide_env_values = true)]
    webhook_secret: Option<String>,
    /// Files of webhook secrets, one per line (several secrets, or files, let a secret be rotated
    /// without downtime).
    #[arg(long, env = "PHONETREE_WEBHOOK_SECRET_FILES", value_delimiter = ',')]
    webhook_secret_file: Vec<PathBuf>,
    /// The header the webhook secret comes in.
    #[arg(long, env = "PHONETREE_WEBHOOK_AUTH_HEADER", default_value = auth::DEFAULT_HEADER)]
    webhook_auth_header: String,
    /// Serve webhooks without a secret on an address other than loopback (anyone who reaches the
    /// port can then drive calls).
    #[arg(long)]
    allow_unauthenticated: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Invalid machines (their diagnostics are on stderr already), no machines, a locked store.
    #[error(transparent)]
    Open(#[from] ServeError),
    #[error(transparent)]
    Runtime(#[from] NoRuntime),
    /// The store failed for good while serving: the exit code asks the supervisor for a restart.
    #[error(transparent)]
    StoreFailed(#[from] StoreFailed),
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: SocketAddr, source: std::io::Error },
    #[error("{0}")]
    Address(std::io::Error),
    #[error(transparent)]
    SecretFile(#[from] SecretFileError),
    #[error("webhook authentication: {0}")]
    Auth(#[from] AuthConfigError),
    #[error(
        "no webhook secret, and {0} is not a loopback address: anyone who reaches it could drive calls; \
         give --webhook-secret (or --webhook-secret-file), or --allow-unauthenticated behind a proxy that checks"
    )]
    Unauthenticated(SocketAddr),
}

pub fn run(args: Args) -> Result<(), Error> {
    let auth = webhook_auth(&args)?;
    if auth.is_open() {
        if !args.listen.ip().is_loopback() && !args.allow_unauthenticated {
            return Err(Error::Unauthenticated(args.listen));
        }
        tracing::warn!(
            "NO WEBHOOK SECRET: every request to /webhooks/* is trusted; set --webhook-secret before 8x8 can reach this node"
        );
    }
    let ttl = Duration::from_secs(args.session_ttl_secs);
    let mut config = args.node.config(args.listen, ttl, Duration::from_secs(args.retention_secs))?;
    config.unsafe_no_fsync = args.unsafe_no_fsync;
    serve(config, auth)
}

/// The secrets from `--webhook-secret` and every `--webhook-secret-file` (one per line).
fn webhook_auth(args: &Args) -> Result<WebhookAuth, Error> {
    let mut secrets: Vec<Secret> = args.webhook_secret.iter().map(|s| Secret::new(s)).collect();
    for file in &args.webhook_secret_file {
        secrets.extend(Secret::lines_of(file)?);
    }
    Ok(WebhookAuth::new(&args.webhook_auth_header, secrets)?)
}

/// The node's entry points as the server uses them: open the app, bind, serve until a signal.
fn serve(config: Config, auth: WebhookAuth) -> Result<(), Error> {
    let listen = config.listen;
    runtime()?.block_on(async move {
        let app = Arc::new(App::open(config).await?);
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|source| Error::Listen { addr: listen, source })?;
        let addr = listener.local_addr().map_err(Error::Address)?;
        println!("listening on {addr}");
        let _ = std::io::stdout().flush();
        phonetree::http::run(listener, app, auth, shutdown_signal()).await?;
        Ok(())
    })
}

/// Resolves on SIGINT or SIGTERM. SIGHUP, which an operator sends to reload and whose default
/// action would end the process mid-call, is caught and logged: reloading is not built yet.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut hangup)) = (signal(SignalKind::terminate()), signal(SignalKind::hangup()))
        else {
            let _ = interrupt.await;
            return;
        };
        tokio::pin!(interrupt);
        loop {
            tokio::select! {
                _ = &mut interrupt => return,
                _ = term.recv() => return,
                _ = hangup.recv() => {
                    tracing::warn!("SIGHUP ignored: machines are not reloaded yet; restart the node to load edited machines");
                }
            }
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}
