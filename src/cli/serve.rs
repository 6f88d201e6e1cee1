//! `phonetree serve`: opens the node (machines and store), answers webhooks on `--listen` and
//! operator routes on `--admin-listen` until SIGINT or SIGTERM; SIGHUP (and `--watch`) reloads
//! the machines folder.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use std::path::PathBuf;

use phonetree::http::allow::{AllowError, AllowList, ForwardedHeader};
use phonetree::http::auth::{self, AdminAuth, AuthConfigError, WebhookAuth};
use phonetree::http::limits::{self, Limits};
use phonetree::http::{Settings, StoreFailed};
use phonetree::node::reload::{Fingerprint, SecretsReader, Trigger};
use phonetree::node::{App, Config, ServeError};
use phonetree::secret::{KeptSecretError, Secret, SecretFileError};
use phonetree::store::StoreUrl;

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
    /// port (printed on stdout as `admin listening on ADDR`).
    #[arg(long, env = "PHONETREE_ADMIN_LISTEN", default_value = "127.0.0.1:9090")]
    admin_listen: SocketAddr,
    /// The token admin requests must carry (`Authorization: Bearer TOKEN`), at least 16 bytes.
    /// Prefer --admin-token-file: a flag shows in `ps`. Default: a token made once and kept in
    /// `phonetree-admin-token` (mode 0600) in the sled store's folder (with a PostgreSQL store, in
    /// --data), its path printed at start.
    #[arg(long, env = "PHONETREE_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    /// A file whose first line is the admin token (an empty file is an error).
    #[arg(long, env = "PHONETREE_ADMIN_TOKEN_FILE", conflicts_with = "admin_token")]
    admin_token_file: Option<PathBuf>,
    /// No admin token: anyone who reaches the admin listener may place calls. Only with a
    /// loopback --admin-listen, and logged as a warning at start.
    #[arg(long, env = "PHONETREE_ADMIN_NO_TOKEN", value_parser = clap::builder::FalseyValueParser::new())]
    admin_no_token: bool,
    /// Further names the admin listener is reached by (`HOST`, or `HOST:PORT` for that port only),
    /// e.g. behind a proxy; a request whose `Host` is neither one of these nor the listener's
    /// address (or `localhost` on loopback) is refused 421, against DNS rebinding.
    #[arg(long, env = "PHONETREE_ADMIN_HOST", value_delimiter = ',')]
    admin_host: Vec<String>,
    /// Accept public connections only from these sources and --trusted-proxy: addresses, CIDRs,
    /// or `8x8` (8x8's published webhook addresses); others get 403 at accept, /healthz and
    /// /readyz included (probe through the proxy, or list the load balancer's addresses).
    #[arg(long, env = "PHONETREE_ALLOW_FROM", value_delimiter = ',', num_args = 1..)]
    allow_from: Vec<String>,
    /// Proxies (addresses, CIDRs) whose --forwarded-header names the client for --allow-from;
    /// from anyone else it is ignored.
    #[arg(long, env = "PHONETREE_TRUSTED_PROXY", value_delimiter = ',', num_args = 1..)]
    trusted_proxy: Vec<String>,
    /// The one header a --trusted-proxy names the client in, `x-forwarded-for` or `forwarded`
    /// (RFC 7239): the one the proxy writes. The other is ignored (a proxy passes it on from the
    /// client as sent); the right-most address that is not a trusted proxy is the client.
    #[arg(long, env = "PHONETREE_FORWARDED_HEADER", default_value = "x-forwarded-for")]
    forwarded_header: ForwardedHeader,
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
    #[arg(long, env = "PHONETREE_CLOCK_CONTROL")]
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
    #[error("{0}")]
    AdminAuth(AuthConfigError),
    #[error(
        "--admin-no-token, and the admin listener {0} is not a loopback address: anyone who reaches it could \
         place calls billed to you; leave --admin-no-token out (a token is made and kept for you), or use \
         --admin-listen 127.0.0.1:9090"
    )]
    AdminUnauthenticated(SocketAddr),
    #[error("--admin-no-token with an admin token: give one or the other")]
    AdminTokenAndNoToken,
    #[error(
        "the admin token file {} is empty: write a token in it (at least 16 characters, e.g. \
         `openssl rand -hex 32`), or leave --admin-token-file out for a generated one", .0.display()
    )]
    AdminTokenFileEmpty(PathBuf),
    #[error(
        "--admin-token is empty: give a token of at least 16 characters, or leave it out for a generated one"
    )]
    AdminTokenEmpty,
    #[error("admin token: {0}")]
    AdminTokenKept(#[from] KeptSecretError),
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
    #[error(
        "admin token: {0}; the disk is full, tried {START_ATTEMPTS} times {START_RETRY_DELAY:?} apart: \
         free space, then start again"
    )]
    TokenDiskFull(KeptSecretError),
}

pub fn run(args: Args) -> Result<(), Error> {
    let auth = webhook_auth(&args)?;
    let webhook_reader = webhook_secrets_reader(&args, &auth);
    if auth.is_open() {
        if !args.listen.ip().is_loopback() && !args.allow_unauthenticated {
            return Err(Error::Unauthenticated(args.listen));
        }
        tracing::warn!(
            "NO WEBHOOK SECRET: every request to /webhooks/* is trusted; set --webhook-secret before 8x8 can reach this node"
        );
    }
    let (admin_auth, admin_token_file) = admin_auth(&args)?;
    let reread = secrets_reader(webhook_reader, admin_token_reader(&admin_auth, admin_token_file.as_deref()));
    let allow = AllowList::new(&args.allow_from, &args.trusted_proxy)?.reading(args.forwarded_header);
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
    serve(config, args.admin_listen, settings, args.watch, reread, admin_token_file)
}

/// The name of the file a generated admin token is kept in.
pub const ADMIN_TOKEN_FILE_NAME: &str = "phonetree-admin-token";

/// Where the admin token is kept when none is given: beside the store, in the sled store's folder
/// (`--store sled:DIR` or `--data`), or in `--data` for a PostgreSQL store.
fn kept_token_file(node: &super::NodeArgs) -> PathBuf {
    let dir = match node.store.as_deref().map(StoreUrl::parse) {
        Some(Ok(StoreUrl::Sled(dir))) => dir,
        _ => node.data.clone(),
    };
    dir.join(ADMIN_TOKEN_FILE_NAME)
}

/// Who may use the admin listener: the token given (`--admin-token`, `--admin-token-file`; empty
/// is an error), none (`--admin-no-token`, loopback only), or the one kept beside the store, made
/// on the first start. Also the file the token is in, to print.
fn admin_auth(args: &Args) -> Result<(AdminAuth, Option<PathBuf>), Error> {
    let given = args.admin_token.is_some() || args.admin_token_file.is_some();
    let (token, file) = if args.admin_no_token {
        if given {
            return Err(Error::AdminTokenAndNoToken);
        }
        if !args.admin_listen.ip().is_loopback() {
            return Err(Error::AdminUnauthenticated(args.admin_listen));
        }
        tracing::warn!(
            admin = %args.admin_listen,
            "NO ADMIN TOKEN (--admin-no-token): every program on this machine that reaches the admin \
             listener may place calls and read call history; tests and development only"
        );
        (None, None)
    } else if let Some(file) = &args.admin_token_file {
        let token = Secret::from_file(file)?;
        if token.is_empty() {
            return Err(Error::AdminTokenFileEmpty(file.clone()));
        }
        (Some(token), Some(file.clone()))
    } else if let Some(text) = &args.admin_token {
        let token = Secret::new(text);
        if token.is_empty() {
            return Err(Error::AdminTokenEmpty);
        }
        (Some(token), None)
    } else {
        let file = kept_token_file(&args.node);
        let (token, made) = kept_token(&file)?;
        if made {
            tracing::info!(file = %file.display(), "admin token made and kept in this file (mode 0600)");
        }
        (Some(token), Some(file))
    };
    let auth = AdminAuth::new(token).map_err(Error::AdminAuth)?.with_hosts(&args.admin_host);
    Ok((auth, file))
}

/// The admin token kept in `file` (see `Secret::kept_in`); on a full disk, tried again like the
/// store (`START_ATTEMPTS`, `START_RETRY_DELAY` apart, each try logged), then the same exit 74.
fn kept_token(file: &std::path::Path) -> Result<(Secret, bool), Error> {
    let mut attempt = 1;
    loop {
        match Secret::kept_in(file) {
            Err(e) if e.is_disk_full() => {
                if attempt >= START_ATTEMPTS {
                    return Err(Error::TokenDiskFull(e));
                }
                tracing::warn!(
                    error = %e,
                    attempt,
                    attempts = START_ATTEMPTS,
                    retry_in = ?START_RETRY_DELAY,
                    "the admin token's disk is full: free space; trying to keep it again"
                );
                std::thread::sleep(START_RETRY_DELAY);
                attempt += 1;
            }
            kept => return Ok(kept?),
        }
    }
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

/// Re-reads the webhook secret files (`--webhook-secret-file`) at a reload, if any.
fn webhook_secrets_reader(args: &Args, running: &WebhookAuth) -> Option<SecretsReader> {
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

/// Re-reads the admin token's file (`--admin-token-file`, or the one kept beside the store) at a
/// reload: an empty or short token refuses the reload, and the running token stays.
fn admin_token_reader(running: &AdminAuth, file: Option<&std::path::Path>) -> Option<SecretsReader> {
    let (running, file) = (running.clone(), file?.to_path_buf());
    Some(Box::new(move || {
        let token = Secret::from_file(&file).map_err(|e| e.to_string())?;
        if token.is_empty() {
            return Err(Error::AdminTokenFileEmpty(file.clone()).to_string());
        }
        let fresh = AdminAuth::new(Some(token)).map_err(|e| format!("{e}; the running token stays"))?;
        let running = running.clone();
        Ok(Box::new(move || {
            if let Err(e) = running.replace(&fresh) {
                tracing::error!(error = %e, "admin token not replaced");
            }
        }))
    }))
}

/// Both readers as one: every file is read and checked before anything is put in place, so a
/// reload that fails on one file changes no secret.
fn secrets_reader(webhook: Option<SecretsReader>, admin: Option<SecretsReader>) -> Option<SecretsReader> {
    match (webhook, admin) {
        (None, None) => None,
        (Some(one), None) | (None, Some(one)) => Some(one),
        (Some(webhook), Some(admin)) => Some(Box::new(move || {
            let (webhook, admin) = (webhook()?, admin()?);
            Ok(Box::new(move || {
                webhook();
                admin();
            }))
        })),
    }
}

/// The node's entry points as the server uses them: open the app, bind, serve until a signal.
fn serve(
    config: Config,
    admin_listen: SocketAddr,
    settings: Settings,
    watch: bool,
    reread: Option<SecretsReader>,
    admin_token_file: Option<PathBuf>,
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
        // One write, so a reader that stops after the first line has all in its buffer already.
        // The token's file, never the token.
        let token = admin_token_file.map(|f| format!("admin token in {}\n", f.display())).unwrap_or_default();
        // Formatted first: `print!` would write each piece as it goes, and a reader gone after
        // the second line would fail the third.
        let lines = format!("listening on {addr}\nadmin listening on {admin_addr}\n{token}");
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(lines.as_bytes()).and_then(|()| out.flush());
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
