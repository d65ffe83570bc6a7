//! Zero-Store: files chunked, compressed, encrypted and dispersed over zdb namespaces, so that
//! no backend holds readable data and a file survives `m` backends going away.
//!
//! # The flow of `put`
//! 1. The input is read one chunk at a time (4 MiB by default) into a reused buffer: memory
//!    stays at a few chunks whatever the file size ([`store::Store::put`]).
//! 2. Each chunk goes through the [`codec`]: zstd (kept only when it shrinks the chunk) →
//!    ChaCha20-Poly1305 under a random per-file key, nonce = chunk index, associated data
//!    binding file id, chunk index and length ([`crypto`]) → Reed-Solomon into `k` data and `m`
//!    parity shards → a blake3 checksum per shard.
//! 3. Shard `i` of every chunk is appended to backend `i` (a zdb namespace in seq mode, so zdb
//!    assigns the key) by that backend's worker thread ([`backend`]), while the next chunk is
//!    being encoded.
//! 4. The [`manifest`] (parameters, file key, per chunk: layout, and per shard: backend, key,
//!    checksum) is sealed with a key derived from the user's passphrase (Argon2id) or raw key,
//!    and appended to every backend. The user keeps the [`manifest::Location`] string: the
//!    hash of the sealed manifest and where its copies are.
//!
//! # `get`, `check`, `repair`
//! `get` opens the first intact manifest copy, then fetches `k` valid shards per chunk
//! ([`fetch`]), falling back to parity shards when a shard is missing, corrupt (checksum) or
//! its backend is down; every chunk is authenticated before it is written. `check` reads every
//! shard; `repair` rebuilds lost shards from the others and writes them back (to a spare
//! backend of the [`config`] when the original is gone), then stores an updated manifest.
//! [`index`] remembers what was stored from this machine.

pub mod backend;
pub mod codec;
pub mod config;
pub mod crypto;
pub mod error;
pub mod fetch;
pub mod index;
pub mod manifest;
pub mod store;

pub use codec::CodecParams;
pub use config::{BackendSpec, StoreConfig};
pub use crypto::KeySource;
pub use error::ZstorError;
pub use index::{IndexEntry, LocalIndex};
pub use manifest::Location;
pub use store::{
    CheckReport, GetReport, NoProgress, Progress, PutOptions, PutReport, RepairReport, Store,
};
