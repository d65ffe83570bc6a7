//! The local index: files stored from this machine, so `ls` can list them and `get` can take a
//! name instead of a location string.
//!
//! A JSON file `{"version": 1, "files": [{"name", "location", "size", "chunks", "storedAt"}]}`,
//! rewritten through a temporary file and a rename. It holds no secrets: a location string
//! is useless without the backend passwords and the key.

use crate::error::ZstorError;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

const INDEX_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IndexEntry {
    pub name: String,
    pub location: String,
    pub size: u64,
    pub chunks: u64,
    /// Unix seconds.
    pub stored_at: u64,
}

#[derive(Debug, Serialize, Deserialize)]
struct IndexFile {
    version: u32,
    files: Vec<IndexEntry>,
}

pub struct LocalIndex {
    path: PathBuf,
    pub files: Vec<IndexEntry>,
}

impl LocalIndex {
    /// Loads the index; a missing file is an empty index.
    pub fn load(path: &Path) -> Result<LocalIndex, ZstorError> {
        let index_error = |reason: String| ZstorError::Index {
            path: path.to_path_buf(),
            reason,
        };
        let files = match std::fs::read_to_string(path) {
            Ok(text) => {
                let file: IndexFile =
                    serde_json::from_str(&text).map_err(|e| index_error(e.to_string()))?;
                if file.version != INDEX_VERSION {
                    return Err(index_error(format!("unsupported version {}", file.version)));
                }
                file.files
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(index_error(e.to_string())),
        };
        Ok(LocalIndex {
            path: path.to_path_buf(),
            files,
        })
    }

    /// Adds an entry, or replaces the one with the same location.
    pub fn record(&mut self, entry: IndexEntry) {
        self.files.retain(|f| f.location != entry.location);
        self.files.push(entry);
    }

    /// Points entries with location `old` to `new` (after a repair).
    pub fn relocate(&mut self, old: &str, new: &str) {
        for file in self.files.iter_mut().filter(|f| f.location == old) {
            file.location = new.to_string();
        }
    }

    /// Entries with this name.
    pub fn find_by_name(&self, name: &str) -> Vec<&IndexEntry> {
        self.files.iter().filter(|f| f.name == name).collect()
    }

    pub fn save(&self) -> Result<(), ZstorError> {
        let index_error = |reason: String| ZstorError::Index {
            path: self.path.clone(),
            reason,
        };
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| index_error(e.to_string()))?;
        }
        let document = IndexFile {
            version: INDEX_VERSION,
            files: self.files.clone(),
        };
        let text =
            serde_json::to_string_pretty(&document).map_err(|e| index_error(e.to_string()))?;
        let temporary = self.path.with_extension("json.tmp");
        std::fs::write(&temporary, text + "\n").map_err(|e| index_error(e.to_string()))?;
        std::fs::rename(&temporary, &self.path).map_err(|e| index_error(e.to_string()))
    }
}
