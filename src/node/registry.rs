//! The machines a server runs: the current set (from `machines/`, replaced whole by a reload) and
//! every older version a live call is pinned to, compiled on demand from the source kept in the
//! store under its hash.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use crate::engine::Direction;
use crate::machine::{Machine, Modules, Source, Version};
use crate::node::catalog::Catalog;
use crate::proof::explore::Report;
use crate::store::{Store, StoreError, StoredMachine, StoredModule};

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("machine `{name}` version {version} is neither loaded nor stored")]
    UnknownVersion { name: String, version: String },
    #[error("stored machine `{name}` version {version} no longer compiles: {first}")]
    Broken { name: String, version: String, first: String },
}

pub struct Registry {
    /// The machines new calls bind to: replaced whole by a reload, never edited in place.
    current: RwLock<Arc<MachineSet>>,
    /// Every version this node has run or loaded, current or not: calls stay pinned to theirs.
    versions: RwLock<HashMap<Version, Arc<Machine>>>,
}

/// One set of machines, loaded at once: what a webhook binds a new call with. A webhook takes one
/// (`Registry::snapshot`) and keeps it, whatever reload happens meanwhile.
pub struct MachineSet {
    catalog: Catalog,
    default_machine: Option<String>,
    /// When each version became current (ms since the epoch): a reload keeps an unchanged
    /// machine's time.
    since: HashMap<Version, u64>,
}

impl Registry {
    /// Takes the loaded machines and keeps each one's source in the store under its version.
    pub async fn new(
        catalog: Catalog,
        default_machine: Option<String>,
        store: &dyn Store,
        now_ms: u64,
    ) -> Result<Registry, StoreError> {
        keep_sources(&catalog, store).await?;
        let versions = catalog.machines().map(|m| (m.version(), m.clone())).collect();
        let since = catalog.machines().map(|m| (m.version(), now_ms)).collect();
        let current = MachineSet { catalog, default_machine, since };
        Ok(Registry { current: RwLock::new(Arc::new(current)), versions: RwLock::new(versions) })
    }

    /// Makes `catalog` the current set, at once, once every machine of it is kept in the store (so
    /// that calls on the new versions survive a restart and reach other nodes). Calls already
    /// running stay on their versions; webhooks in flight finish on the set they took.
    pub async fn replace(&self, catalog: Catalog, store: &dyn Store, now_ms: u64) -> Result<(), StoreError> {
        keep_sources(&catalog, store).await?;
        let old = self.snapshot();
        let since = catalog
            .machines()
            .map(|m| (m.version(), old.since.get(&m.version()).copied().unwrap_or(now_ms)))
            .collect();
        {
            let mut versions = self.versions.write().unwrap_or_else(|e| e.into_inner());
            versions.extend(catalog.machines().map(|m| (m.version(), m.clone())));
        }
        let loaded = MachineSet { catalog, default_machine: old.default_machine.clone(), since };
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(loaded);
        Ok(())
    }

    /// The current set of machines, as it is now.
    pub fn snapshot(&self) -> Arc<MachineSet> {
        self.current.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The current version of machine `name`.
    pub fn current(&self, name: &str) -> Option<Arc<Machine>> {
        self.snapshot().get(name).cloned()
    }

    pub fn len(&self) -> usize {
        self.snapshot().len()
    }

    pub fn is_empty(&self) -> bool {
        self.snapshot().is_empty()
    }

    /// `MachineSet::bind` on the current set.
    pub fn bind(
        &self,
        direction: Option<Direction>,
        source: &str,
        destination: &str,
    ) -> Option<Arc<Machine>> {
        self.snapshot().bind(direction, source, destination)
    }

    /// The exact version a call is pinned to.
    pub async fn version(
        &self,
        store: &dyn Store,
        name: &str,
        version: Version,
    ) -> Result<Arc<Machine>, RegistryError> {
        if let Some(m) = self.versions.read().unwrap_or_else(|e| e.into_inner()).get(&version) {
            return Ok(m.clone());
        }
        let record = store.machine(version).await?.ok_or_else(|| RegistryError::UnknownVersion {
            name: name.to_string(),
            version: version.short(),
        })?;
        self.compile_stored(name, version, record)
    }

    /// Compiles a version kept in the store and keeps it for the next call on it.
    fn compile_stored(
        &self,
        name: &str,
        version: Version,
        record: StoredMachine,
    ) -> Result<Arc<Machine>, RegistryError> {
        // As the current machines compile: with the node's voices and `--script-allow`, and the
        // modules kept with it (a record of format 6 or older has none: today's).
        let source = Source::new(record.file, record.text);
        let compiled = if record.modules.is_empty() {
            self.snapshot().catalog.compile(&source)
        } else {
            let kept = record.modules.into_iter().map(|m| Source::new(m.file, m.text)).collect();
            let (modules, _) = Modules::of(kept);
            self.snapshot().catalog.compile_with_modules(&source, &modules)
        };
        let first = compiled.errors().next().map(|d| d.to_string()).unwrap_or_default();
        let m = compiled.machine.map(Arc::new).ok_or_else(|| RegistryError::Broken {
            name: name.to_string(),
            version: version.short(),
            first,
        })?;
        // A record without its modules compiled with today's: a machine that uses one edited since
        // is another version, never run in that one's place.
        if m.version() != version {
            return Err(RegistryError::Broken {
                name: name.to_string(),
                version: version.short(),
                first: format!("a module it uses has changed since (it compiles to version {})", m.version()),
            });
        }
        self.versions.write().unwrap_or_else(|e| e.into_inner()).insert(version, m.clone());
        Ok(m)
    }

    /// The exact version named by a `clientActionId` (machine name and short version), loaded or
    /// stored; `None` when it is neither (never another version: an id is valid for the version
    /// it was issued on only).
    pub async fn by_short(
        &self,
        store: &dyn Store,
        name: &str,
        short: &str,
    ) -> Result<Option<Arc<Machine>>, RegistryError> {
        let known = self
            .versions
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .find(|m| m.name() == name && m.version().short() == short)
            .cloned();
        if let Some(m) = known {
            return Ok(Some(m));
        }
        if let Some((version, record)) = store.machine_by_short(name, short).await?
            && let Ok(m) = self.compile_stored(name, version, record)
        {
            return Ok(Some(m));
        }
        Ok(None)
    }
}

impl MachineSet {
    pub fn get(&self, name: &str) -> Option<&Arc<Machine>> {
        self.catalog.get(name)
    }

    pub fn machines(&self) -> impl Iterator<Item = &Arc<Machine>> {
        self.catalog.machines()
    }

    pub fn len(&self) -> usize {
        self.catalog.len()
    }

    pub fn is_empty(&self) -> bool {
        self.catalog.is_empty()
    }

    /// The proof of the current machine `m` (as `check` reports it).
    pub fn report(&self, m: &Machine) -> Option<&Report> {
        let version = m.version().short();
        self.catalog.reports.iter().map(|(_, r)| r).find(|r| r.machine == m.name() && r.version == version)
    }

    /// When `version` became current, in ms since the epoch.
    pub fn loaded_at(&self, version: Version) -> Option<u64> {
        self.since.get(&version).copied()
    }

    /// The machine a new call runs: the one whose number the call is on (inbound: the number dialled;
    /// outbound: the caller ID), else the default machine, else the only machine loaded.
    pub fn bind(
        &self,
        direction: Option<Direction>,
        source: &str,
        destination: &str,
    ) -> Option<Arc<Machine>> {
        let numbers: &[&str] = match direction {
            Some(Direction::Inbound) => &[destination],
            Some(Direction::Outbound) => &[source],
            None => &[destination, source],
        };
        numbers
            .iter()
            .find_map(|n| self.catalog.by_number(n))
            .or_else(|| self.default_machine.as_deref().and_then(|d| self.catalog.get(d)))
            .or_else(|| if self.catalog.len() == 1 { self.catalog.machines().next() } else { None })
            .cloned()
    }
}

/// Keeps the source of every machine of `catalog` in the store, under its version.
async fn keep_sources(catalog: &Catalog, store: &dyn Store) -> Result<(), StoreError> {
    for m in catalog.machines() {
        if let Some(source) = catalog.source(m.name()) {
            let mut names: Vec<&str> = m.modules().iter().map(|u| u.module.as_str()).collect();
            names.sort_unstable();
            names.dedup();
            let modules = names
                .into_iter()
                .filter_map(|name| catalog.modules().get(name))
                .map(|s| StoredModule { file: s.file.clone(), text: s.text.clone() })
                .collect();
            let stored = StoredMachine {
                name: m.name().to_string(),
                file: source.file.clone(),
                text: source.text.clone(),
                modules,
            };
            store.put_machine(m.version(), &stored).await?;
        }
    }
    Ok(())
}
