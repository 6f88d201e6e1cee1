//! The postgres backend's own promises, beyond the conformance suite (`tests/store.rs`): nodes
//! starting together migrate its schema once, and a schema newer than this phonetree is refused.
//! Skipped, with one line on stderr, where no PostgreSQL is reachable (see `common::backends`).

use crate::common;

use common::backends::{connect, postgres_url_for};
use phonetree::store::{Durability, SCHEMA_VERSION, StoreError};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_starting_together_migrate_once() {
    let dir = tempfile::tempdir().unwrap();
    let Some(url) = postgres_url_for(dir.path()).await else { return };
    let nodes: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { phonetree::store::migrate(&url).await })
        })
        .collect();
    for node in nodes {
        assert_eq!(node.await.unwrap().unwrap(), SCHEMA_VERSION);
    }
    let client = connect(&url).await.unwrap();
    let rows = client.query("SELECT version FROM phonetree_schema", &[]).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].get::<_, i32>(0), SCHEMA_VERSION as i32);
    let store = phonetree::store::open(&url, Durability::Fsync).await.unwrap();
    store.probe(1).await.unwrap();
}

#[tokio::test]
async fn a_schema_newer_than_this_phonetree_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let Some(url) = postgres_url_for(dir.path()).await else { return };
    drop(phonetree::store::open(&url, Durability::Fsync).await.unwrap());
    let newer = SCHEMA_VERSION + 1;
    let client = connect(&url).await.unwrap();
    client.execute("UPDATE phonetree_schema SET version = $1", &[&(newer as i32)]).await.unwrap();
    let Err(e) = phonetree::store::open(&url, Durability::Fsync).await else {
        panic!("a schema of version {newer} opened")
    };
    assert!(
        matches!(e, StoreError::SchemaTooNew { found, known } if found == newer && known == SCHEMA_VERSION)
    );
    let shown = e.to_string();
    assert!(shown.contains(&newer.to_string()) && shown.contains(&SCHEMA_VERSION.to_string()), "{shown}");
}
