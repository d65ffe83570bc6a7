//! `zdb`: a 0-db compatible key-value server.
//!
//! Clients speak RESP2 (so `redis-cli` and redis client libraries work) over
//! TCP or a Unix socket; data lives in namespaces, each an append-only store.
//!
//! Layout and flow of a request:
//! - [`server`] accepts connections and runs one loop per client: read bytes,
//!   parse requests with [`resp`], run them through a [`commands::Session`],
//!   commit the touched namespaces, send the replies;
//! - [`commands`] checks arity, authentication and namespace access, then calls
//!   the namespace;
//! - [`storage`] holds the namespaces: [`storage::namespace`] appends records
//!   to data files, keeps the in-memory key index, recovers from crashes and
//!   compacts online; [`storage::record`] defines the bytes on disk.
//!
//! Embedding: build a [`ZdbConfig`], call [`Server::start`], talk to
//! [`Server::local_addr`], and stop with [`Server::shutdown`].

pub mod auth_limit;
pub mod commands;
pub mod config;
pub mod error;
pub mod resp;
pub mod server;
pub mod storage;

pub use config::{Durability, Mode, ZdbConfig};
pub use error::StoreError;
pub use server::{Server, ServerError};
