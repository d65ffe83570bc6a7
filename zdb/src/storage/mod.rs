//! The storage engine: a registry of namespaces, each an independent
//! append-only store (see [`namespace`] for the write and recovery paths and
//! [`record`] for the on-disk formats).
//!
//! Layout on disk:
//! ```text
//! <data>/<namespace>/manifest        data file ids in replay order (commit point)
//! <data>/<namespace>/settings        NSSET properties
//! <data>/<namespace>/dNNNNNNNN.zdb   append-only data files
//! <index>/<namespace>/index.zdb      index log, rebuildable from the data files
//! ```

pub mod keys;
pub mod meta;
pub mod namespace;
pub mod record;
pub mod tail;

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::sync::Arc;

use parking_lot::RwLock;

use crate::error::{StoreError, StoreResult};
pub use namespace::{EngineConfig, Namespace, NsAccess, NsError};
use tail::TailBudget;

/// Name of the namespace every client starts in.
pub const DEFAULT_NAMESPACE: &str = "default";
const MAX_NAMESPACE_NAME: usize = 128;

/// Why a namespace cannot be created or removed.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("This name is not allowed")]
    BadName,
    #[error("This namespace is not available")]
    Exists,
    #[error("This namespace doesn't exists")]
    NotFound,
    #[error("Cannot remove default namespace")]
    Default,
    #[error("Could not create namespace: {0}")]
    Storage(#[from] StoreError),
}

/// All namespaces of a server.
pub struct Store {
    data_dir: std::path::PathBuf,
    index_dir: std::path::PathBuf,
    config: Arc<EngineConfig>,
    namespaces: RwLock<BTreeMap<String, Arc<Namespace>>>,
    tail_budget: Arc<TailBudget>,
}

/// Namespace names become directory names: keep them to a safe alphabet.
pub fn valid_namespace_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAMESPACE_NAME
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

impl Store {
    /// Opens every namespace found under the data directory (creating `default`).
    /// `cache_bytes` bounds the recently written bytes that all namespaces keep
    /// in memory for reads (see [`tail`]).
    pub fn open(
        data_dir: &Path,
        index_dir: &Path,
        config: EngineConfig,
        cache_bytes: usize,
    ) -> StoreResult<Store> {
        for dir in [data_dir, index_dir] {
            fs::create_dir_all(dir).map_err(|e| StoreError::io(dir, e))?;
        }
        let config = Arc::new(config);
        let mut names = vec![DEFAULT_NAMESPACE.to_string()];
        for entry in fs::read_dir(data_dir).map_err(|e| StoreError::io(data_dir, e))? {
            let entry = entry.map_err(|e| StoreError::io(data_dir, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if entry.path().is_dir() && valid_namespace_name(&name) && name != DEFAULT_NAMESPACE {
                names.push(name);
            }
        }
        let store = Store {
            data_dir: data_dir.to_path_buf(),
            index_dir: index_dir.to_path_buf(),
            config,
            namespaces: RwLock::new(BTreeMap::new()),
            tail_budget: Arc::new(TailBudget::new(cache_bytes)),
        };
        for name in names {
            let ns = store.open_namespace(&name)?;
            store.namespaces.write().insert(name, Arc::new(ns));
        }
        Ok(store)
    }

    fn open_namespace(&self, name: &str) -> StoreResult<Namespace> {
        Namespace::open(
            name,
            &self.data_dir,
            &self.index_dir,
            self.config.clone(),
            self.tail_budget.clone(),
        )
    }

    pub fn get(&self, name: &str) -> Option<Arc<Namespace>> {
        self.namespaces.read().get(name).cloned()
    }

    pub fn names(&self) -> Vec<String> {
        self.namespaces.read().keys().cloned().collect()
    }

    pub fn all(&self) -> Vec<Arc<Namespace>> {
        self.namespaces.read().values().cloned().collect()
    }

    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    pub fn create(&self, name: &str) -> Result<Arc<Namespace>, RegistryError> {
        if !valid_namespace_name(name) {
            return Err(RegistryError::BadName);
        }
        let mut map = self.namespaces.write();
        if map.contains_key(name) {
            return Err(RegistryError::Exists);
        }
        let ns = Arc::new(self.open_namespace(name)?);
        map.insert(name.to_string(), ns.clone());
        Ok(ns)
    }

    pub fn remove(&self, name: &str) -> Result<(), RegistryError> {
        if name == DEFAULT_NAMESPACE {
            return Err(RegistryError::Default);
        }
        let ns = self
            .namespaces
            .write()
            .remove(name)
            .ok_or(RegistryError::NotFound)?;
        ns.destroy()?;
        Ok(())
    }
}
