//! # gridchain service
//!
//! Starts a node from a [`NodeConfig`]:
//!
//! 1. opens [`Storage`] under `<base path>/chains/<chain id>/db`;
//! 2. builds the genesis state from the chain spec, and either writes block 0 or checks that the
//!    database's genesis is the same (a database of another chain is refused);
//! 3. creates the [`TxPool`] and starts the JSON-RPC server and the Prometheus endpoint;
//! 4. if the node has a validator key, starts the [`producer`] thread, which builds a block from
//!    the pool every block time, commits it to storage in one batch, and announces its header.
//!
//! With a single validator a committed block is final. (The multi-validator BFT engine replaces
//! the producer's decision step; everything after "decided" stays the same.)

mod metrics;
mod producer;

pub use metrics::Metrics;

use anyhow::{bail, Context as _};
use gridchain_chain_spec::ChainSpec;
use gridchain_primitives::{ChainContext, Hash, Header, Pair};
use gridchain_rpc::RpcContext;
use gridchain_rpc_api::ChainProperties;
use gridchain_runtime::{build_genesis, Block, SPEC_VERSION};
use gridchain_storage::Storage;
use gridchain_txpool::{PoolLimits, TxPool};
use std::{
    net::SocketAddr,
    path::PathBuf,
    sync::{atomic::AtomicBool, Arc},
};
use tokio::sync::broadcast;

pub struct NodeConfig {
    pub spec: ChainSpec,
    pub base_path: PathBuf,
    pub node_name: String,
    pub rpc_addr: SocketAddr,
    /// `None` disables the Prometheus endpoint.
    pub metrics_addr: Option<SocketAddr>,
    /// The key this node proposes blocks with; `None` for a non-validating node.
    pub validator: Option<Pair>,
    pub block_time_ms: u64,
    pub pool_limits: PoolLimits,
}

pub struct RunningNode {
    pub rpc_addr: SocketAddr,
    pub metrics_addr: Option<SocketAddr>,
    pub genesis_hash: Hash,
    rpc: gridchain_rpc::RpcServer,
    stop: Arc<AtomicBool>,
    producer: Option<std::thread::JoinHandle<()>>,
}

impl RunningNode {
    /// Stops block production (after the block in progress is committed) and the RPC server.
    pub async fn stop(mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(producer) = self.producer.take() {
            let _ = tokio::task::spawn_blocking(move || producer.join()).await;
        }
        let _ = self.rpc.handle.stop();
        self.rpc.handle.stopped().await;
    }
}

/// The genesis block of `spec` and its state, opening or initialising `storage`.
fn init_genesis(storage: &Storage, spec: &ChainSpec) -> anyhow::Result<Header> {
    let changes = build_genesis(&spec.genesis_config()).context("invalid genesis")?;
    let prepared = storage.prepare_state(&changes, 0)?;
    let header = Header {
        parent_hash: Hash::ZERO,
        number: 0,
        timestamp_ms: 0,
        state_root: prepared.root,
        extrinsics_root: Block::compute_extrinsics_root(&[]),
        proposer: Default::default(),
    };
    match storage.genesis_hash()? {
        Some(existing) if existing == header.hash() => Ok(header),
        Some(existing) => bail!(
            "the database belongs to another chain (genesis {existing}, this spec's genesis {}); \
             use another --base-path or remove it",
            header.hash()
        ),
        None => {
            storage.commit_genesis(&header, &changes, prepared)?;
            Ok(header)
        }
    }
}

pub async fn start(config: NodeConfig) -> anyhow::Result<RunningNode> {
    let db_path = config
        .base_path
        .join("chains")
        .join(&config.spec.id)
        .join("db");
    std::fs::create_dir_all(&db_path)
        .with_context(|| format!("cannot create {}", db_path.display()))?;
    let storage = Arc::new(
        Storage::open(&db_path)
            .with_context(|| format!("cannot open database {}", db_path.display()))?,
    );
    let genesis = init_genesis(&storage, &config.spec)?;
    let genesis_hash = genesis.hash();
    let chain = ChainContext {
        genesis_hash,
        spec_version: SPEC_VERSION,
    };
    let best = storage
        .best_header()?
        .context("database has no best block")?;
    tracing::info!(chain = %config.spec.name, %genesis_hash, best = best.number, "opened chain");

    let pool = Arc::new(TxPool::new(chain, config.pool_limits));
    let (heads, _) = broadcast::channel(1_024);
    let metrics = Arc::new(Metrics::default());
    metrics.set_heights(best.number);

    let rpc = gridchain_rpc::start(
        config.rpc_addr,
        RpcContext {
            storage: storage.clone(),
            pool: pool.clone(),
            chain,
            chain_name: config.spec.name.clone(),
            node_name: config.node_name.clone(),
            properties: ChainProperties {
                token_symbol: config.spec.properties.token_symbol.clone(),
                token_decimals: config.spec.properties.token_decimals,
                address_prefix: config.spec.properties.address_prefix,
            },
            heads: heads.clone(),
        },
    )
    .await
    .with_context(|| format!("cannot start RPC on {}", config.rpc_addr))?;
    tracing::info!(addr = %rpc.local_addr, "JSON-RPC server (HTTP and WebSocket) listening");

    let metrics_addr = match config.metrics_addr {
        Some(addr) => {
            let bound = metrics::serve(addr, metrics.clone(), pool.clone())
                .await
                .with_context(|| format!("cannot start metrics on {addr}"))?;
            tracing::info!(addr = %bound, "Prometheus metrics at /metrics");
            Some(bound)
        }
        None => None,
    };

    let stop = Arc::new(AtomicBool::new(false));
    let producer = match config.validator {
        Some(key) => {
            if !config
                .spec
                .genesis
                .validators
                .iter()
                .any(|v| v.address == key.public())
            {
                bail!(
                    "{} is not a validator of chain {}",
                    key.public(),
                    config.spec.id
                );
            }
            if config.spec.genesis.validators.len() > 1 {
                bail!(
                    "chain {} has {} validators; multi-validator consensus is not available yet, \
                     so this node cannot finalize blocks alone",
                    config.spec.id,
                    config.spec.genesis.validators.len()
                );
            }
            let producer = producer::Producer {
                storage: storage.clone(),
                pool: pool.clone(),
                chain,
                key,
                block_time_ms: config.block_time_ms,
                heads,
                metrics,
                stop: stop.clone(),
            };
            Some(
                std::thread::Builder::new()
                    .name("block-producer".into())
                    .spawn(move || producer.run())?,
            )
        }
        None => None,
    };

    Ok(RunningNode {
        rpc_addr: rpc.local_addr,
        metrics_addr,
        genesis_hash,
        rpc,
        stop,
        producer,
    })
}
