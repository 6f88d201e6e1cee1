//! The store backends every conformance case and the node's model test run against: adding a
//! backend here runs them all on it.
//!
//! PostgreSQL: the database at `PHONETREE_TEST_POSTGRES` (default
//! `postgres://postgres@127.0.0.1:5432/test`). Each test folder gets a schema of its own
//! (`phonetree_test_…`, through the connection's `search_path`), so tests run in parallel and a
//! reopened folder finds its tables again; schemas whose folder is gone are dropped at the first
//! use in each test binary. Where the database cannot be reached the backend is skipped with one
//! line on stderr, unless `PHONETREE_REQUIRE_POSTGRES=1`, which makes that a failure.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use phonetree::store::{Durability, SledStore, Store};

/// A store being opened.
pub type Opening<'a> = Pin<Box<dyn Future<Output = Arc<dyn Store>> + 'a>>;

/// A backend under test: its name, and how to open its store for a test folder (opening the same
/// folder again reopens the same store, as after a restart).
#[derive(Clone, Copy)]
pub struct Backend {
    pub name: &'static str,
    pub open: fn(&Path) -> Opening<'_>,
}

pub fn backends() -> Vec<Backend> {
    let mut all = vec![Backend { name: "sled", open: open_sled }];
    if postgres_reachable() {
        all.push(Backend { name: "postgres", open: open_postgres });
    }
    all
}

fn open_sled(dir: &Path) -> Opening<'_> {
    Box::pin(async move { Arc::new(SledStore::open(&dir.join("data")).unwrap()) as Arc<dyn Store> })
}

/// The database the postgres backend is tested on.
fn postgres_url() -> String {
    std::env::var("PHONETREE_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// How long the one reachability check waits for the database.
const REACH_TIMEOUT: Duration = Duration::from_secs(3);
/// The prefix of every test schema.
const SCHEMA_PREFIX: &str = "phonetree_test_";

/// Whether the postgres backend runs, decided once per test binary (on a thread of its own, so
/// that it works inside a test's runtime and outside one).
fn postgres_reachable() -> bool {
    static REACHABLE: OnceLock<bool> = OnceLock::new();
    *REACHABLE.get_or_init(|| {
        let checked = std::thread::spawn(|| {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async { tokio::time::timeout(REACH_TIMEOUT, connect(&postgres_url())).await })
                .unwrap_or_else(|_| Err(format!("no answer within {} s", REACH_TIMEOUT.as_secs())))
                .map(drop)
        })
        .join()
        .unwrap();
        if checked.is_ok() {
            // In the background: the tests need none of it, and a run cut short leaves the rest to
            // the next.
            std::thread::spawn(|| {
                let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
                let _ = rt.block_on(drop_orphan_schemas());
            });
        }
        match checked {
            Ok(()) => true,
            Err(why) => {
                super::needs::absent(super::needs::Need::Postgres, &why);
                false
            }
        }
    })
}

/// Connects to the test database; the connection lives as long as the runtime's task does.
pub async fn connect(url: &str) -> Result<tokio_postgres::Client, String> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.map_err(|e| {
        let shown = phonetree::store::PgUrl::parse(url).map_or_else(|e| e.to_string(), |u| u.to_string());
        let cause = std::error::Error::source(&e).map(|c| format!(": {c}")).unwrap_or_default();
        format!("cannot connect to {shown}: {e}{cause}")
    })?;
    tokio::spawn(connection);
    Ok(client)
}

/// Drops the schemas of test folders that no longer exist (each schema's comment is its folder).
async fn drop_orphan_schemas() -> Result<(), String> {
    let client = connect(&postgres_url()).await?;
    let rows = client
        .query(
            "SELECT nspname, obj_description(oid, 'pg_namespace') FROM pg_namespace \
             WHERE starts_with(nspname, $1)",
            &[&SCHEMA_PREFIX],
        )
        .await
        .map_err(|e| format!("cannot list test schemas: {e}"))?;
    for row in rows {
        let (schema, folder): (String, Option<String>) = (row.get(0), row.get(1));
        if folder.is_some_and(|f| !Path::new(&f).exists()) {
            let _ = client.batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE")).await;
        }
    }
    Ok(())
}

/// The store URL of a test folder's own schema (made on first use, with the folder as its
/// comment, and found again when the folder is reopened); `None` where postgres is skipped.
pub async fn postgres_url_for(dir: &Path) -> Option<String> {
    use sha2::Digest;
    if !postgres_reachable() {
        return None;
    }
    let folder = dir.display().to_string();
    let hash = sha2::Sha256::digest(folder.as_bytes());
    let schema =
        format!("{SCHEMA_PREFIX}{}", hash[..8].iter().map(|b| format!("{b:02x}")).collect::<String>());
    let base = postgres_url();
    let client = connect(&base).await.unwrap();
    // One transaction: no other test binary sees the schema without its folder.
    client
        .batch_execute(&format!(
            "BEGIN; CREATE SCHEMA IF NOT EXISTS {schema}; COMMENT ON SCHEMA {schema} IS '{}'; COMMIT;",
            folder.replace('\'', "''")
        ))
        .await
        .unwrap();
    let sep = if base.contains('?') { '&' } else { '?' };
    Some(format!("{base}{sep}options=-c%20search_path%3D{schema}"))
}

/// The store of a test folder's schema, through `store::open`.
fn open_postgres(dir: &Path) -> Opening<'_> {
    Box::pin(async move {
        let url = postgres_url_for(dir).await.expect("postgres is reachable");
        phonetree::store::open(&url, Durability::Fsync).await.unwrap()
    })
}
