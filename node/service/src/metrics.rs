//! Prometheus text-format metrics at `GET /metrics`.

use gridchain_txpool::TxPool;
use std::{
    fmt::Write,
    net::SocketAddr,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

pub struct Metrics {
    best_height: AtomicU64,
    finalized_height: AtomicU64,
    blocks: AtomicU64,
    extrinsics: AtomicU64,
    /// Sum of block build+commit times, in microseconds.
    block_time_us_sum: AtomicU64,
    last_block_us: AtomicU64,
    consensus: Arc<gridchain_consensus::ConsensusStatus>,
    sync: Arc<gridchain_sync::SyncStatus>,
}

impl Metrics {
    pub fn set_heights(&self, number: u64) {
        self.best_height.store(number, Ordering::Relaxed);
        self.finalized_height.store(number, Ordering::Relaxed);
    }

    pub fn new(
        consensus: Arc<gridchain_consensus::ConsensusStatus>,
        sync: Arc<gridchain_sync::SyncStatus>,
    ) -> Self {
        Metrics {
            best_height: AtomicU64::default(),
            finalized_height: AtomicU64::default(),
            blocks: AtomicU64::default(),
            extrinsics: AtomicU64::default(),
            block_time_us_sum: AtomicU64::default(),
            last_block_us: AtomicU64::default(),
            consensus,
            sync,
        }
    }

    pub fn observe_block(&self, number: u64, extrinsics: usize, took: Duration) {
        self.set_heights(number);
        self.blocks.fetch_add(1, Ordering::Relaxed);
        self.extrinsics
            .fetch_add(extrinsics as u64, Ordering::Relaxed);
        let us = took.as_micros() as u64;
        self.block_time_us_sum.fetch_add(us, Ordering::Relaxed);
        self.last_block_us.store(us, Ordering::Relaxed);
    }

    fn render(&self, pool: &TxPool) -> String {
        let mut out = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, samples: &[(&str, f64)]| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (labels, value) in samples {
                let _ = writeln!(out, "{name}{labels} {value}");
            }
        };
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed) as f64;
        metric(
            "gridchain_block_height",
            "gauge",
            "Height of the best and the finalized block.",
            &[
                ("{status=\"best\"}", load(&self.best_height)),
                ("{status=\"finalized\"}", load(&self.finalized_height)),
            ],
        );
        metric(
            "gridchain_txpool_transactions",
            "gauge",
            "Transactions in the pool.",
            &[("", pool.len() as f64)],
        );
        metric(
            "gridchain_txpool_bytes",
            "gauge",
            "Encoded bytes in the pool.",
            &[("", pool.bytes() as f64)],
        );
        metric(
            "gridchain_block_execution_seconds",
            "summary",
            "Time to build, execute and commit a block.",
            &[
                ("_sum", load(&self.block_time_us_sum) / 1e6),
                ("_count", load(&self.blocks)),
            ],
        );
        metric(
            "gridchain_last_block_execution_seconds",
            "gauge",
            "Build, execute and commit time of the last block.",
            &[("", load(&self.last_block_us) / 1e6)],
        );
        metric(
            "gridchain_extrinsics_total",
            "counter",
            "Extrinsics included in blocks.",
            &[("", load(&self.extrinsics))],
        );
        let status = |f: fn(&gridchain_consensus::ConsensusStatus) -> f64| f(&self.consensus);
        metric(
            "gridchain_peers",
            "gauge",
            "Connected peers on the consensus network.",
            &[("", status(|c| c.peers() as f64))],
        );
        metric(
            "gridchain_consensus_height",
            "gauge",
            "Height consensus is deciding.",
            &[("", status(|c| c.height() as f64))],
        );
        metric(
            "gridchain_consensus_round",
            "gauge",
            "Round consensus is in (-1 between heights).",
            &[("", status(|c| c.round() as f64))],
        );
        metric(
            "gridchain_consensus_votes_total",
            "counter",
            "Votes this node signed and votes it received.",
            &[
                (
                    "{direction=\"published\"}",
                    status(|c| c.votes_published() as f64),
                ),
                (
                    "{direction=\"received\"}",
                    status(|c| c.votes_received() as f64),
                ),
            ],
        );
        metric(
            "gridchain_syncing",
            "gauge",
            "1 while the node imports decided blocks from peers.",
            &[(
                "",
                (self.consensus.is_syncing() || self.sync.is_syncing()) as u8 as f64,
            )],
        );
        metric(
            "gridchain_sync_target_height",
            "gauge",
            "Highest best block peers reported when the node last caught up.",
            &[("", self.sync.target() as f64)],
        );
        metric(
            "gridchain_sync_imported_blocks_total",
            "counter",
            "Blocks imported in bulk from peers (catch-up) since start.",
            &[("", self.sync.imported() as f64)],
        );
        out
    }
}

/// Serves `/metrics` on `addr`; returns the bound address.
pub async fn serve(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    pool: Arc<TxPool>,
) -> std::io::Result<SocketAddr> {
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let body = metrics.render(&pool);
            async move {
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        "text/plain; version=0.0.4",
                    )],
                    body,
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "metrics server stopped");
        }
    });
    Ok(bound)
}
