//! # gridchain explorer
//!
//! A block explorer that is also a library, so `gridnode --dev` can run it in-process.
//!
//! ```text
//!  gridnode ──JSON-RPC (ws)──▶ indexer ──one transaction per block──▶ SQLite index (WAL)
//!     chain_subscribeFinalizedHeads      │                              │ pooled read-only
//!     chain_getBlock, gridchain_extrinsic│ live blocks (broadcast)      │ connections
//!     gridchain_account                  ▼                              ▼
//!                                   /api/live (SSE) ◀── axum web server: HTML pages + /api/ JSON
//! ```
//!
//! - [`indexer`] follows final blocks (subscription plus catch-up from the last indexed height,
//!   reconnecting with backoff), decodes extrinsics with the runtime's types and asks the node
//!   for each extrinsic's outcome and events and for touched accounts' balances.
//! - [`db`] owns the schema and checks an existing index on open (schema version, SQLite
//!   `quick_check`, contiguous heights, parent-hash links); the indexer then checks the genesis
//!   hash and the last indexed block's hash against the node.
//! - [`grid_sync`] snapshots twins, farms, nodes and reservations through `grid_*` at final
//!   blocks (after grid calls, and every 10 s of chain time for node status), keeping node
//!   status changes and capacity totals as history.
//! - [`query`] and [`grid_query`] read views out of the index; [`web`] renders each view as HTML or JSON.
//!
//! Embedding: `let handle = explorer::serve(explorer::Config::new(rpc_url, db_path)).await?;`
//! inside a Tokio runtime; `handle.local_addr()` is where it listens, `handle.stop()` ends it.

pub mod db;
pub mod grid_query;
pub mod grid_sync;
pub mod indexer;
pub mod query;
pub mod web;

use db::{DbError, Store};
use indexer::{ChainStatus, Indexer, IndexerError};
use parking_lot::RwLock;
use std::{
    net::SocketAddr,
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};
use tokio::{sync::broadcast, task::JoinHandle};

/// Where the explorer listens unless told otherwise (DESIGN.md's default ports).
pub const DEFAULT_LISTEN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 8080);

/// Live blocks buffered per slow subscriber before it skips ahead.
const LIVE_BUFFER: usize = 64;

#[derive(Debug, Clone)]
pub struct Config {
    /// The node's WebSocket JSON-RPC endpoint, e.g. `ws://127.0.0.1:9944`.
    pub rpc_url: String,
    /// The SQLite index file; created if absent.
    pub db_path: PathBuf,
    /// Address of the web server; port 0 picks a free port.
    pub listen: SocketAddr,
    /// When the index belongs to another chain (e.g. a `--tmp` dev chain was restarted), clear it
    /// and index the new chain instead of stopping the indexer.
    pub rebuild_on_mismatch: bool,
}

impl Config {
    pub fn new(rpc_url: impl Into<String>, db_path: impl Into<PathBuf>) -> Self {
        Config {
            rpc_url: rpc_url.into(),
            db_path: db_path.into(),
            listen: DEFAULT_LISTEN,
            rebuild_on_mismatch: false,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ExplorerError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Indexer(#[from] IndexerError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// A running explorer: its indexer and web server tasks.
pub struct ExplorerHandle {
    local_addr: SocketAddr,
    server: JoinHandle<()>,
    indexer: JoinHandle<()>,
    /// Set to true to stop: ends the live streams, then the server.
    shutdown: tokio::sync::watch::Sender<bool>,
}

impl ExplorerHandle {
    /// The address the web server is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting requests, lets open ones finish, and stops the indexer.
    pub async fn stop(mut self) {
        self.shutdown.send_replace(true);
        self.indexer.abort();
        let _ = (&mut self.server).await;
    }
}

impl Drop for ExplorerHandle {
    fn drop(&mut self) {
        self.indexer.abort();
        self.server.abort();
    }
}

/// Opens (or creates) the index, starts following the node and serves the web UI.
/// Fails if the index is inconsistent (see [`db`]) or the address cannot be bound.
pub async fn serve(config: Config) -> Result<ExplorerHandle, ExplorerError> {
    let db_path = config.db_path.clone();
    let store = Arc::new(
        tokio::task::spawn_blocking(move || Store::open(&db_path))
            .await
            .map_err(IndexerError::from)??,
    );
    let status = Arc::new(RwLock::new(ChainStatus::default()));
    let (live, _) = broadcast::channel(LIVE_BUFFER);
    let indexer = Indexer::new(
        store.clone(),
        config.rpc_url.clone(),
        status.clone(),
        live.clone(),
        config.rebuild_on_mismatch,
    )?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| ExplorerError::Listen {
            addr: config.listen,
            source,
        })?;
    let local_addr = listener
        .local_addr()
        .map_err(|source| ExplorerError::Listen {
            addr: config.listen,
            source,
        })?;
    let (shutdown, mut shutdown_rx) = tokio::sync::watch::channel(false);
    let app = web::router(web::AppState {
        store,
        status,
        live,
        shutdown: shutdown_rx.clone(),
    });
    let server = tokio::spawn(async move {
        let result = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = shutdown_rx.wait_for(|stop| *stop).await;
            })
            .await;
        if let Err(e) = result {
            tracing::error!(error = %e, "explorer web server stopped");
        }
    });
    let indexer = tokio::spawn(indexer.run());
    tracing::info!(%local_addr, rpc = %config.rpc_url, "explorer listening");
    Ok(ExplorerHandle {
        local_addr,
        server,
        indexer,
        shutdown,
    })
}

/// What `grid-explorer reindex` did.
#[derive(Debug, Clone)]
pub struct ReindexReport {
    pub blocks: u64,
    pub elapsed: Duration,
}

/// Deletes the index at `db_path` and indexes the node's chain up to its current final block.
pub async fn reindex(rpc_url: &str, db_path: PathBuf) -> Result<ReindexReport, ExplorerError> {
    let started = Instant::now();
    let store = Arc::new(
        tokio::task::spawn_blocking(move || Store::recreate(&db_path))
            .await
            .map_err(IndexerError::from)??,
    );
    let (live, _) = broadcast::channel(1);
    let indexer = Indexer::new(
        store,
        rpc_url.to_string(),
        Arc::new(RwLock::new(ChainStatus::default())),
        live,
        false,
    )?;
    let height = indexer.catch_up().await?;
    Ok(ReindexReport {
        blocks: height.map_or(0, |h| h + 1),
        elapsed: started.elapsed(),
    })
}
