//! `phonetree serve`: opens the node (machines and store), answers webhooks on `--listen` and
//! operator routes on `--admin-listen` until SIGINT or SIGTERM; SIGHUP (and `--watch`) reloads
//! the machines folder.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use std::path::PathBuf;

use phonetree::http::allow::{AllowError, AllowList};
use phonetree::http::auth::{self, AdminAuth, AuthConfigError, WebhookAuth};
use phonetree::http::limits::{self, Limits};
use phonetree::http::{Settings, StoreFailed};
use phonetree::node::reload::{Fingerprint, SecretsReader, Trigger};
use phonetree::node::{App, Config, ServeError};
use phonetree::secret::{Secret, SecretFileError};

use super::{NoRuntime, NodeArgs, runtime};

/// Tries to open the store while its disk is full before `serve` gives up (exit 74): with
/// `START_RETRY_DELAY` between them a start on a full disk lasts 10 s, so a supervisor restarting
/// the node (systemd by default gives up after 5 starts within 10 s) keeps at it until space is
/// freed, instead of giving up within a second.
const START_ATTEMPTS: u32 = 6;
/// The wait between two tries to open the store on a full disk.
const START_RETRY_DELAY: Duration = Duration::from_secs(2);

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
    /// Address of the admin listener (`POST /calls` and every operator route); port 0 picks a free
    /// port (printed on stdout as `admin listening on ADDR`). Other than loopback, it requires
    /// --admin-token or --admin-token-file.
    #[arg(long, env = "PHONETREE_ADMIN_LISTEN", default_value = "127.0.0.1:9090")]
    admin_listen: SocketAddr,
    /// The token admin requests must carry (`Authorization: Bearer TOKEN`), at least 16 bytes.
    /// Prefer --admin-token-file: a flag shows in `ps`.
    #[arg(long, env = "PHONETREE_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    /// A file whose first line is the admin token.
    #[arg(long, env = "PHONETREE_ADMIN_TOKEN_FILE", conflicts_with = "admin_token")]
    admin_token_file: Option<PathBuf>,
    /// Accept webhooks (every public request but /healthz and /readyz) only from these sources:
    /// addresses, CIDRs, or `8x8` (8x8's published webhook addresses); others get 403.
    #[arg(long, env = "PHONETREE_ALLOW_FROM", value_delimiter = ',', num_args = 1..)]
    allow_from: Vec<String>,
    /// Proxies (addresses, CIDRs) whose `Forwarded` / `X-Forwarded-For` names the client for
    /// --allow-from; from anyone else these headers are ignored.
    #[arg(long, env = "PHONETREE_TRUSTED_PROXY", value_delimiter = ',', num_args = 1..)]
    trusted_proxy: Vec<String>,
    /// Most open connections on the public listener (the admin listener keeps at most 64); over it
    /// a new connection is answered 503 and closed. Keep it, with --max-in-flight, well below the
    /// process's open-file limit (`ulimit -n`): serve warns at start when it is not.
    #[arg(long, env = "PHONETREE_MAX_CONNECTIONS", default_value_t = limits::MAX_CONNECTIONS)]
    max_connections: usize,
    /// Most webhooks answered at once; over it a webhook is answered 503 with `Retry-After`.
    #[arg(long, env = "PHONETREE_MAX_IN_FLIGHT", default_value_t = limits::MAX_IN_FLIGHT)]
    max_in_flight: usize,
    /// Seconds a client has to send a request's headers, and a kept-alive connection may idle.
    #[arg(long, env = "PHONETREE_HEADER_READ_TIMEOUT_SECS", default_value_t = limits::HEADER_READ_TIMEOUT.as_secs())]
    header_read_timeout_secs: u64,
    /// Seconds a client has to send a request's body once its headers are in.
    #[arg(long, env = "PHONETREE_BODY_READ_TIMEOUT_SECS", default_value_t = limits::BODY_READ_TIMEOUT.as_secs())]
    body_read_timeout_secs: u64,
    /// Reload the machines folder when its files change (checked every second; reloaded once they
    /// stay unchanged for a second), as SIGHUP and `POST /admin/reload` do.
    #[arg(long, env = "PHONETREE_WATCH")]
    watch: bool,
    /// Lets `POST /admin/clock` (behind the admin token) move this node's clock, which every
    /// route on time reads: for `phonetree loadtest` and staging only, never production.
    #[arg(long)]
    clock_control: bool,
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
    #[error("admin token: {0}")]
    AdminAuth(AuthConfigError),
    #[error(
        "no admin token, and the admin listener {0} is not a loopback address: anyone who reaches it could \
         place calls billed to you; give --admin-token-file (or --admin-token), or --admin-listen 127.0.0.1:9090"
    )]
    AdminUnauthenticated(SocketAddr),
    #[error(transparent)]
    Allow(#[from] AllowError),
    #[error("--{0} must be at least 1")]
    Zero(&'static str),
    #[error("cannot catch SIGHUP (which reloads the machines): {0}")]
    Signal(std::io::Error),
    #[error("--clock-control: {0}")]
    Clock(#[from] phonetree::node::ClockError),
    #[error(
        "cannot open the store {store}: its disk is full ({source}), tried {START_ATTEMPTS} times \
         {START_RETRY_DELAY:?} apart; free space (old logs, the store's other files), then start again"
    )]
    DiskFull { store: String, source: phonetree::store::StoreError },
}

pub fn run(args: Args) -> Result<(), Error> {
    let auth = webhook_auth(&args)?;
    let reread = secrets_reader(&args, &auth);
    if auth.is_open() {
        if !args.listen.ip().is_loopback() && !args.allow_unauthenticated {
            return Err(Error::Unauthenticated(args.listen));
        }
        tracing::warn!(
            "NO WEBHOOK SECRET: every request to /webhooks/* is trusted; set --webhook-secret before 8x8 can reach this node"
        );
    }
    let admin_token = Secret::from_either(args.admin_token.as_deref(), args.admin_token_file.as_deref())?;
    let admin_auth = AdminAuth::new(admin_token).map_err(Error::AdminAuth)?;
    if admin_auth.is_open() && !args.admin_listen.ip().is_loopback() {
        return Err(Error::AdminUnauthenticated(args.admin_listen));
    }
    let allow = AllowList::new(&args.allow_from, &args.trusted_proxy)?;
    let secs = |value: u64, flag: &'static str| match value {
        0 => Err(Error::Zero(flag)),
        n => Ok(Duration::from_secs(n)),
    };
    let count = |value: usize, flag: &'static str| match value {
        0 => Err(Error::Zero(flag)),
        n => Ok(n),
    };
    let limits = Limits {
        header_read_timeout: secs(args.header_read_timeout_secs, "header-read-timeout-secs")?,
        body_read_timeout: secs(args.body_read_timeout_secs, "body-read-timeout-secs")?,
        max_connections: count(args.max_connections, "max-connections")?,
        max_in_flight: count(args.max_in_flight, "max-in-flight")?,
    };
    let ttl = Duration::from_secs(args.session_ttl_secs);
    let mut config = args.node.config(args.listen, ttl, Duration::from_secs(args.retention_secs))?;
    config.unsafe_no_fsync = args.unsafe_no_fsync;
    if args.clock_control {
        match phonetree::node::enable_clock_control(&config.store)? {
            Some((file, offset_ms)) => tracing::warn!(
                offset_ms,
                file = %file.display(),
                "CLOCK CONTROL ON: POST /admin/clock moves this node's clock, and with it every route on time; \
                 the offset is kept in this file and read back when the node starts with --clock-control \
                 (without it the file is ignored and the clock is real); tests and staging only"
            ),
            None => tracing::warn!(
                "CLOCK CONTROL ON: POST /admin/clock moves this node's clock, and with it every route on time; \
                 on this store the offset is not kept across a restart; tests and staging only"
            ),
        }
    } else if let Some(file) = phonetree::node::clock_file_of(&config.store) {
        tracing::warn!(
            file = %file.display(),
            "a clock offset is kept in this file, but clock control is off: it is ignored and the clock is real"
        );
    }
    let settings = Settings { webhook_auth: auth, admin_auth, allow, limits };
    serve(config, args.admin_listen, settings, args.watch, reread)
}

/// The secrets from `--webhook-secret` and every `--webhook-secret-file` (one per line).
fn webhook_auth(args: &Args) -> Result<WebhookAuth, Error> {
    read_webhook_auth(&args.webhook_auth_header, args.webhook_secret.as_deref(), &args.webhook_secret_file)
}

fn read_webhook_auth(header: &str, text: Option<&str>, files: &[PathBuf]) -> Result<WebhookAuth, Error> {
    let mut secrets: Vec<Secret> = text.iter().map(|s| Secret::new(s)).collect();
    for file in files {
        secrets.extend(Secret::lines_of(file)?);
    }
    Ok(WebhookAuth::new(header, secrets)?)
}

/// What a reload (SIGHUP, `POST /admin/reload`, `--watch`) re-reads besides the machines: the
/// `--webhook-secret-file`s, checked as at start, put in place for `running` once the reload is
/// done. `None` without secret files.
fn secrets_reader(args: &Args, running: &WebhookAuth) -> Option<SecretsReader> {
    if args.webhook_secret_file.is_empty() {
        return None;
    }
    let (header, text) = (args.webhook_auth_header.clone(), args.webhook_secret.clone());
    let (files, running) = (args.webhook_secret_file.clone(), running.clone());
    Some(Box::new(move || {
        let fresh = read_webhook_auth(&header, text.as_deref(), &files).map_err(|e| e.to_string())?;
        if fresh.is_open() && !running.is_open() {
            return Err(Error::Auth(AuthConfigError::NoneLeft).to_string());
        }
        let running = running.clone();
        Ok(Box::new(move || {
            if let Err(e) = running.replace(&fresh) {
                tracing::error!(error = %e, "webhook secrets not replaced");
            }
        }))
    }))
}

/// The node's entry points as the server uses them: open the app, bind, serve until a signal.
fn serve(
    config: Config,
    admin_listen: SocketAddr,
    settings: Settings,
    watch: bool,
    reread: Option<SecretsReader>,
) -> Result<(), Error> {
    let listen = config.listen;
    runtime()?.block_on(async move {
        // Taken before the machines are read: an edit made while they load is reloaded.
        let seen = watch.then(|| Fingerprint::of(&config.machines));
        let app = Arc::new(open_app(config).await?);
        if let Some(reread) = reread {
            app.reread_secrets_with(reread);
        }
        // Caught before the node says it listens: from then on SIGHUP never ends it.
        reload_on_hangup(app.clone())?;
        if let Some(seen) = seen {
            let app = app.clone();
            tokio::spawn(async move { app.watch_forever(seen).await });
        }
        let bind = |addr: SocketAddr| async move {
            tokio::net::TcpListener::bind(addr).await.map_err(|source| Error::Listen { addr, source })
        };
        let (listener, admin) = (bind(listen).await?, bind(admin_listen).await?);
        let addr = listener.local_addr().map_err(Error::Address)?;
        let admin_addr = admin.local_addr().map_err(Error::Address)?;
        // One write, so a reader that stops after the first line has both in its buffer already.
        print!("listening on {addr}\nadmin listening on {admin_addr}\n");
        let _ = std::io::stdout().flush();
        phonetree::http::run(listener, admin, app, settings, shutdown_signal()).await?;
        Ok(())
    })
}

/// The node over its store; on a full disk, tried again `START_ATTEMPTS` times, `START_RETRY_DELAY`
/// apart, each try logged.
async fn open_app(config: Config) -> Result<App, Error> {
    let mut attempt = 1;
    loop {
        match App::open(config.clone()).await {
            Err(ServeError::Store { store, source }) if source.is_disk_full() => {
                if attempt >= START_ATTEMPTS {
                    return Err(Error::DiskFull { store, source });
                }
                tracing::warn!(
                    %store,
                    error = %source,
                    attempt,
                    attempts = START_ATTEMPTS,
                    retry_in = ?START_RETRY_DELAY,
                    "the store's disk is full: free space; trying to open it again"
                );
                tokio::time::sleep(START_RETRY_DELAY).await;
                attempt += 1;
            }
            opened => return Ok(opened?),
        }
    }
}

/// Reloads the machines on every SIGHUP (whose default action would end the process mid-call).
fn reload_on_hangup(app: Arc<App>) -> Result<(), Error> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hangup = signal(SignalKind::hangup()).map_err(Error::Signal)?;
        tokio::spawn(async move {
            while hangup.recv().await.is_some() {
                tracing::info!("SIGHUP: reloading the machines and the secret files");
                app.reload(Trigger::Signal).await;
            }
        });
    }
    #[cfg(not(unix))]
    let _ = app;
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut term) = signal(SignalKind::terminate()) else {
            let _ = interrupt.await;
            return;
        };
        tokio::select! {
            _ = interrupt => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}
