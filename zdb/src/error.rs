//! Error types of the library.
//!
//! Storage failures ([`StoreError`]) are distinct from protocol failures
//! ([`crate::resp::ProtocolError`]): the first are reported to a client as a
//! `-ERR` reply and the connection goes on, the second end the connection.

use std::io;
use std::path::PathBuf;

/// Failures of the storage engine.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("io error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path} is not a zdb {what} file (bad magic)")]
    BadMagic { path: PathBuf, what: &'static str },
    #[error("invalid namespace settings in {path}: {reason}")]
    BadSettings { path: PathBuf, reason: String },
    #[error("data file {file} listed in the manifest of namespace {namespace} is missing")]
    MissingDataFile { namespace: String, file: u32 },
    #[error("namespace {namespace} is in {found} mode but the server is forced to {wanted} mode")]
    ModeMismatch {
        namespace: String,
        found: &'static str,
        wanted: &'static str,
    },
    /// A record failed its CRC check or does not parse.
    #[error("corrupt record at file {file} offset {offset}: {reason}")]
    Corrupt {
        file: u32,
        offset: u32,
        reason: &'static str,
    },
}

impl StoreError {
    /// Wraps an [`io::Error`] with the path it happened on.
    pub fn io(path: impl Into<PathBuf>, source: io::Error) -> Self {
        StoreError::Io {
            path: path.into(),
            source,
        }
    }
}

/// Convenience alias for storage results.
pub type StoreResult<T> = Result<T, StoreError>;
