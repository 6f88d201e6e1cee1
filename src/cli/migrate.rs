//! `phonetree migrate`: brings a store up to this phonetree's schema (or record format) and exits,
//! before nodes of a new version start on it. `serve` migrates on start too, under the same lock.

use phonetree::node::store_name;
use phonetree::store::{self, StoreError};

use super::{NoRuntime, runtime};

#[derive(clap::Args)]
pub struct Args {
    /// The store: `sled:DIR` or `postgres://user@host:port/db`.
    #[arg(long, env = "PHONETREE_STORE", hide_env_values = true)]
    store: String,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Runtime(#[from] NoRuntime),
    #[error("cannot migrate {store}: {source}")]
    Store { store: String, source: StoreError },
}

pub fn run(args: &Args) -> Result<(), Error> {
    let version = runtime()?
        .block_on(store::migrate(&args.store))
        .map_err(|source| Error::Store { store: store_name(&args.store), source })?;
    println!("{} is at version {version}", store_name(&args.store));
    Ok(())
}
