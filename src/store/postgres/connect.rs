//! Reaching PostgreSQL: the store URL (its password redacted wherever it is shown), TLS through
//! rustls with the platform's trust roots, and the bounded connection pool.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, PoolError, RecyclingMethod, Runtime, TimeoutType};
use tokio_postgres::config::SslMode;
use tokio_postgres_rustls::MakeRustlsConnect;

use super::super::{Durability, StoreError};

/// Connections one store keeps open at most. A webhook holds one for two short statements (its
/// load) and one short transaction (its commit), a few milliseconds each, so 16 serve hundreds of
/// webhooks a second on a 2-core node; more would only cost the database memory (several MiB per
/// backend process) times the number of nodes, and bring PostgreSQL's default limit of 100
/// connections within reach of six nodes.
pub const POOL_SIZE_MAX: usize = 16;
/// How long a request waits for a free connection before it fails: 8x8 waits a few seconds for a
/// webhook's reply, and a webhook that cannot reach the store is better answered with the fallback
/// in time than late. (Making a new connection may take `CONNECT_TIMEOUT`.)
pub const POOL_WAIT_MAX: Duration = Duration::from_secs(2);
/// How long opening a connection may take (TCP, TLS and authentication), unless the URL's
/// `connect_timeout` says otherwise.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// PostgreSQL's port, where a URL names none.
const DEFAULT_PORT: u16 = 5432;
/// The name the store's connections show in `pg_stat_activity`, unless the URL names one.
pub const APPLICATION_NAME: &str = "phonetree";

/// A parsed `postgres://` or `postgresql://` URL. `Debug` and `Display` show it with its password
/// replaced by `***`.
#[derive(Clone)]
pub struct PgUrl {
    pub(super) config: tokio_postgres::Config,
    shown: String,
}

impl PgUrl {
    /// Parses a URL in libpq's form: `postgres://user:password@host:port/db?sslmode=require`.
    /// `sslmode` is `disable`, `prefer` (the default: plain TCP here, see `tls`), `require`, or
    /// `verify-ca`/`verify-full`, which mean `require`: the server's certificate is always verified.
    pub fn parse(url: &str) -> Result<PgUrl, StoreError> {
        let shown = redact(url);
        let bad = |detail: String| StoreError::Url { url: shown.clone(), detail };
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(bad("a postgres URL starts with `postgres://` or `postgresql://`".into()));
        }
        let url = url
            .replace("sslmode=verify-full", "sslmode=require")
            .replace("sslmode=verify-ca", "sslmode=require");
        // tokio-postgres's parse errors name the offending option, never its value.
        let mut config: tokio_postgres::Config = url.parse().map_err(|e| bad(detail(&e)))?;
        if config.get_hosts().is_empty() {
            return Err(bad("no host".into()));
        }
        if config.get_user().is_none() {
            return Err(bad("no user".into()));
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name(APPLICATION_NAME);
        }
        Ok(PgUrl { config, shown })
    }

    /// Whether `other` reaches the same tables: the same hosts, ports, database and options.
    pub fn same_database(&self, other: &PgUrl) -> bool {
        let (a, b) = (&self.config, &other.config);
        let ports = |c: &tokio_postgres::Config| match c.get_ports() {
            [] => vec![DEFAULT_PORT],
            some => some.to_vec(),
        };
        a.get_hosts() == b.get_hosts()
            && ports(a) == ports(b)
            && a.get_dbname().unwrap_or(a.get_user().unwrap_or_default())
                == b.get_dbname().unwrap_or(b.get_user().unwrap_or_default())
            && a.get_options() == b.get_options()
    }

    /// The URL as it may be shown: its password replaced by `***`.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// The bounded pool of connections to this database. Opens no connection yet.
    pub(super) fn pool(&self, durability: Durability) -> Result<Pool, StoreError> {
        let mut config = self.config.clone();
        if durability == Durability::NoFsync {
            // The measurement mode's counterpart of sled's: commits are acknowledged before
            // PostgreSQL's WAL reaches the disk. Otherwise synchronous_commit is the database's.
            let options = config.get_options().map_or(String::new(), |o| format!("{o} "));
            config.options(format!("{options}-c synchronous_commit=off"));
        }
        let manager_config = ManagerConfig { recycling_method: RecyclingMethod::Fast };
        let manager = match config.get_ssl_mode() {
            SslMode::Require => Manager::from_config(config, tls()?, manager_config),
            // `prefer` would try TLS and then fail on the many servers whose certificates no
            // trust root vouches for (self-signed ones); libpq's `prefer` does not verify, which
            // is no protection against whoever can see the traffic. So: TLS, verified, only when
            // asked for.
            _ => Manager::from_config(config, tokio_postgres::NoTls, manager_config),
        };
        Pool::builder(manager)
            .max_size(POOL_SIZE_MAX)
            .wait_timeout(Some(POOL_WAIT_MAX))
            .create_timeout(Some(CONNECT_TIMEOUT))
            .recycle_timeout(Some(POOL_WAIT_MAX))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| StoreError::Postgres {
                doing: "build the connection pool".into(),
                detail: e.to_string(),
            })
    }
}

impl fmt::Display for PgUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown)
    }
}

impl fmt::Debug for PgUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("PgUrl").field(&self.shown).finish()
    }
}

/// rustls with the platform's verifier (the OS trust store, so an operator adds a private CA the
/// way they add it for everything else; the same verifier the HTTP client uses) and ring, the
/// crypto provider the HTTP client uses too (`node::install_tls_provider`).
fn tls() -> Result<MakeRustlsConnect, StoreError> {
    use rustls_platform_verifier::BuilderVerifierExt;
    let failed =
        |e: rustls::Error| StoreError::Postgres { doing: "set up TLS".into(), detail: e.to_string() };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(failed)?
        .with_platform_verifier()
        .map_err(failed)?
        .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}

/// A URL with the password of its user part, and of a `password=` parameter, replaced by `***`.
/// Errs on the side of hiding: whatever stands between `://` and the last `@` is taken for the
/// user part.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return redact_params(url);
    };
    let rest = match rest.rfind('@') {
        Some(at) => {
            let (user, host) = (&rest[..at], &rest[at + 1..]);
            match user.split_once(':') {
                Some((name, _)) => format!("{name}:***@{}", redact_params(host)),
                None => format!("{user}@{}", redact_params(host)),
            }
        }
        None => redact_params(rest),
    };
    format!("{scheme}://{rest}")
}

/// `password=…` parameters (up to the next `&`) replaced by `password=***`.
fn redact_params(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find("password=") {
        let starts_param = i == 0 || matches!(rest.as_bytes()[i - 1], b'?' | b'&');
        out.push_str(&rest[..i + "password=".len()]);
        rest = &rest[i + "password=".len()..];
        if starts_param {
            out.push_str("***");
            rest = rest.find('&').map_or("", |end| &rest[end..]);
        }
    }
    out.push_str(rest);
    out
}

/// What went wrong, for an error message: the database's own words (its SQLSTATE, message and
/// detail) when it answered, the client's otherwise.
pub fn detail(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        let mut s = format!("{} ({})", db.message(), db.code().code());
        if let Some(d) = db.detail() {
            s.push_str(": ");
            s.push_str(d);
        }
        return s;
    }
    let mut s = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        let c = cause.to_string();
        if !s.contains(&c) {
            s.push_str(": ");
            s.push_str(&c);
        }
        source = cause.source();
    }
    s
}

/// A pool's failure to hand out a connection within `wait`, for an error message.
pub fn pool_detail(e: &PoolError, wait: Duration) -> String {
    match e {
        // Which wait ran out: for a free connection, or for a new one to open.
        PoolError::Timeout(TimeoutType::Wait) => {
            format!("no free connection within {} ms (all {POOL_SIZE_MAX} busy)", wait.as_millis())
        }
        PoolError::Timeout(TimeoutType::Create) => {
            format!("a new connection did not open within {} ms", CONNECT_TIMEOUT.as_millis())
        }
        PoolError::Timeout(TimeoutType::Recycle) => {
            format!("an idle connection was not checked within {} ms", POOL_WAIT_MAX.as_millis())
        }
        PoolError::Backend(e) => detail(e),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_show() {
        assert_eq!(redact("postgres://u:s3cret@db:5432/x"), "postgres://u:***@db:5432/x");
        assert_eq!(
            redact("postgresql://u:p@ss:w@rd@db/x?sslmode=require"),
            "postgresql://u:***@db/x?sslmode=require"
        );
        assert_eq!(redact("postgres://u@db/x"), "postgres://u@db/x");
        assert_eq!(
            redact("postgres://db/x?user=u&password=s3cret&sslmode=require"),
            "postgres://db/x?user=u&password=***&sslmode=require"
        );
        assert_eq!(redact("postgres://db/x?password=s3cret"), "postgres://db/x?password=***");
        let url = PgUrl::parse("postgres://u:s3cret@db:5432/x").unwrap();
        assert!(!format!("{url} {url:?}").contains("s3cret"));
        let e = PgUrl::parse("postgres://u:s3cret@db:notaport/x").unwrap_err().to_string();
        assert!(!e.contains("s3cret") && e.contains("port"), "{e}");
        let e = PgUrl::parse("postgres://u:s3cret@db/x?sslmode=sometimes").unwrap_err().to_string();
        assert!(!e.contains("s3cret") && e.contains("sslmode"), "{e}");
    }

    #[test]
    fn one_database_is_recognised_whoever_connects() {
        let url = |u: &str| PgUrl::parse(u).unwrap();
        assert!(url("postgres://a:x@db/calls").same_database(&url("postgresql://b:y@db:5432/calls")));
        assert!(!url("postgres://a@db/calls").same_database(&url("postgres://a@db/other")));
        assert!(!url("postgres://a@db/calls").same_database(&url("postgres://a@db2/calls")));
        assert!(!url("postgres://a@db/calls").same_database(&url("postgres://a@db:6543/calls")));
        let schema = "postgres://a@db/calls?options=-c%20search_path%3Dother";
        assert!(!url("postgres://a@db/calls").same_database(&url(schema)));
        assert!(url(schema).same_database(&url(schema)));
    }

    #[test]
    fn urls_are_read_as_libpq_reads_them() {
        let url = PgUrl::parse("postgresql://u@db:6543/calls?sslmode=verify-full").unwrap();
        assert_eq!(url.config.get_ssl_mode(), SslMode::Require);
        assert_eq!(url.config.get_ports(), [6543]);
        assert_eq!(url.config.get_dbname(), Some("calls"));
        assert_eq!(url.config.get_connect_timeout(), Some(&CONNECT_TIMEOUT));
        assert!(PgUrl::parse("mysql://u@db/x").is_err());
        assert!(PgUrl::parse("postgres:///x").unwrap_err().to_string().contains("no host"));
    }
}
