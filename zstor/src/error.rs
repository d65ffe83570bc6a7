//! Everything that can go wrong in Zero-Store.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ZstorError {
    #[error("invalid parameters: {0}")]
    InvalidParams(String),
    #[error("invalid key: {0}")]
    InvalidKey(String),
    #[error("wrong kind of key: {0}")]
    WrongKeyKind(&'static str),
    #[error("wrong key or passphrase: the manifest is intact but does not decrypt with it")]
    WrongKey,
    #[error("backend config {path}: {reason}")]
    Config { path: PathBuf, reason: String },
    #[error("backend {backend}: {reason}")]
    Backend { backend: String, reason: String },
    #[error(
        "only {healthy} of the {needed} backends needed are healthy ({unhealthy}); \
         fix or replace them, or pass --allow-degraded to write anyway"
    )]
    NotEnoughBackends {
        healthy: usize,
        needed: usize,
        unhealthy: String,
    },
    #[error("invalid location string: {0}")]
    InvalidLocation(String),
    #[error("no intact copy of the manifest could be read: {0}")]
    ManifestUnavailable(String),
    #[error("corrupt manifest: {0}")]
    CorruptManifest(String),
    #[error("manifest of {len} bytes is above zdb's {max}-byte value limit: use larger chunks")]
    ManifestTooLarge { len: usize, max: usize },
    #[error("only {available} of the {needed} shards needed are available")]
    NotEnoughShards { available: usize, needed: usize },
    #[error("chunk {index}: {source}")]
    ChunkUnavailable {
        index: u64,
        #[source]
        source: Box<ZstorError>,
    },
    #[error("chunk {index} failed authentication (tampered data or a wrong file key)")]
    ChunkAuthentication { index: u64 },
    #[error("chunk {index} is corrupt: {reason}")]
    CorruptChunk { index: u64, reason: String },
    #[error("content hash mismatch: the restored file differs from the stored one")]
    ContentHashMismatch,
    #[error("local index {path}: {reason}")]
    Index { path: PathBuf, reason: String },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

impl ZstorError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> ZstorError {
        ZstorError::Io {
            context: context.into(),
            source,
        }
    }
}
