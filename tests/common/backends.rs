//! The store backends every conformance case and the node's model test run against: adding a
//! backend here runs them all on it.

use std::path::Path;
use std::sync::Arc;

use phonetree::store::{SledStore, Store};

/// A backend under test: its name, and how to open its store for a test folder (opening the same
/// folder again reopens the same store, as after a restart).
#[derive(Clone, Copy)]
pub struct Backend {
    pub name: &'static str,
    pub open: fn(&Path) -> Arc<dyn Store>,
}

pub fn backends() -> Vec<Backend> {
    vec![Backend { name: "sled", open: |dir| Arc::new(SledStore::open(&dir.join("data")).unwrap()) }]
}
