//! The backend config: which zdb namespaces to store on, and the coding parameters.
//!
//! A JSON file (the format `grid store reserve` is meant to write once it exists):
//!
//! ```json
//! {
//!   "version": 1,
//!   "dataShards": 4,
//!   "parityShards": 2,
//!   "chunkSize": 4194304,
//!   "compressionLevel": 3,
//!   "backends": [
//!     { "address": "10.1.0.7:9900", "namespace": "zstor-a1", "password": "…" }
//!   ]
//! }
//! ```
//!
//! `chunkSize` and `compressionLevel` are optional. `backends` must list at least
//! `dataShards + parityShards` distinct namespaces; `put` uses the first that many healthy
//! ones, and the rest are spares that `repair` moves lost shards to. `password` may be absent
//! for a namespace without one. Unknown fields are ignored, so a writer may add its own (for
//! example the node and farm of each namespace).

use crate::codec::{CodecParams, DEFAULT_CHUNK_SIZE, DEFAULT_ZSTD_LEVEL};
use crate::error::ZstorError;
use serde::{Deserialize, Serialize};
use std::path::Path;

pub const CONFIG_VERSION: u32 = 1;

/// One zdb namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BackendSpec {
    /// `host:port` of the zdb server.
    pub address: String,
    pub namespace: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
}

impl BackendSpec {
    /// `address/namespace`, how backends are named in messages and matched to manifests.
    pub fn label(&self) -> String {
        format!("{}/{}", self.address, self.namespace)
    }

    /// Four bytes that identify the backend in a location string.
    pub fn fingerprint(&self) -> [u8; 4] {
        let hash = blake3::hash(self.label().as_bytes());
        let mut fingerprint = [0u8; 4];
        fingerprint.copy_from_slice(&hash.as_bytes()[..4]);
        fingerprint
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoreConfig {
    pub version: u32,
    pub data_shards: u16,
    pub parity_shards: u16,
    #[serde(default = "default_chunk_size")]
    pub chunk_size: u32,
    #[serde(default = "default_level")]
    pub compression_level: i32,
    pub backends: Vec<BackendSpec>,
}

fn default_chunk_size() -> u32 {
    DEFAULT_CHUNK_SIZE
}

fn default_level() -> i32 {
    DEFAULT_ZSTD_LEVEL
}

impl StoreConfig {
    pub fn load(path: &Path) -> Result<StoreConfig, ZstorError> {
        let config_error = |reason: String| ZstorError::Config {
            path: path.to_path_buf(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| config_error(e.to_string()))?;
        let config: StoreConfig =
            serde_json::from_str(&text).map_err(|e| config_error(e.to_string()))?;
        config.validate().map_err(|e| config_error(e.to_string()))?;
        Ok(config)
    }

    pub fn codec_params(&self) -> CodecParams {
        CodecParams {
            data_shards: self.data_shards,
            parity_shards: self.parity_shards,
            chunk_size: self.chunk_size,
            zstd_level: self.compression_level,
        }
    }

    pub fn validate(&self) -> Result<(), ZstorError> {
        if self.version != CONFIG_VERSION {
            return Err(ZstorError::InvalidParams(format!(
                "unsupported config version {} (this build reads {CONFIG_VERSION})",
                self.version
            )));
        }
        let params = self.codec_params();
        params.validate()?;
        if self.backends.len() < params.total_shards() {
            return Err(ZstorError::InvalidParams(format!(
                "{} data + {} parity shards need at least {} backends, the config lists {}",
                self.data_shards,
                self.parity_shards,
                params.total_shards(),
                self.backends.len()
            )));
        }
        for (i, backend) in self.backends.iter().enumerate() {
            if backend.namespace.is_empty() || backend.address.is_empty() {
                return Err(ZstorError::InvalidParams(format!(
                    "backend {i} needs an address and a namespace"
                )));
            }
            if self.backends[..i]
                .iter()
                .any(|b| b.label() == backend.label())
            {
                return Err(ZstorError::InvalidParams(format!(
                    "backend {} is listed twice",
                    backend.label()
                )));
            }
        }
        Ok(())
    }

    /// The configured backend with this address and namespace.
    pub fn find(&self, address: &str, namespace: &str) -> Option<&BackendSpec> {
        self.backends
            .iter()
            .find(|b| b.address == address && b.namespace == namespace)
    }
}
