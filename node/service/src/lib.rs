//! # gridchain service
//!
//! Starts a node from a [`NodeConfig`]:
//!
//! 1. opens [`Storage`] under `<base path>/chains/<chain id>/db`;
//! 2. builds the genesis state from the chain spec, and either writes block 0 or checks that the
//!    database's genesis is the same (a database of another chain is refused);
//! 3. creates the [`TxPool`];
//! 4. starts the second libp2p swarm (`gridchain-network`: transaction gossip, block requests
//!    answered from storage), the JSON-RPC server and the Prometheus endpoint;
//! 5. catches up in bulk (`gridchain-sync`) with whatever peers are ahead, verifying every
//!    block's certificate and execution (RPC reports `isSyncing` meanwhile);
//! 6. starts consensus (`gridchain-consensus`, Malachite over libp2p) as a validator when the
//!    node has a key, else as a full node that follows the chain and verifies every commit
//!    certificate; it builds, checks and commits blocks and announces their headers.
//!
//! Every committed block is final: consensus commits a block only once it is decided.

mod metrics;

pub use metrics::Metrics;

use anyhow::{bail, Context as _};
use gridchain_chain_spec::ChainSpec;
use gridchain_consensus::{ConsensusHandle, ConsensusSettings, ConsensusStatus};
use gridchain_network::{GossipVerdict, Network, NetworkConfig};
use gridchain_primitives::{ChainContext, Hash, Header, Pair};
use gridchain_rpc::RpcContext;
use gridchain_rpc_api::ChainProperties;
use gridchain_runtime::{build_genesis, Extrinsic, InvalidTransaction, SPEC_VERSION};
use gridchain_storage::Storage;
use gridchain_txpool::{PoolLimits, TxPool};
use parity_scale_codec::Encode;
use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};
use tokio::sync::broadcast;

pub struct NodeConfig {
    pub spec: ChainSpec,
    pub base_path: PathBuf,
    pub node_name: String,
    pub rpc_addr: SocketAddr,
    /// Which browser origins may use the RPC (`--rpc-cors`).
    pub rpc_cors: gridchain_rpc::cors::Cors,
    /// `None` disables the Prometheus endpoint.
    pub metrics_addr: Option<SocketAddr>,
    /// The key this node signs consensus votes and proposals with; `None` for a full node.
    pub validator: Option<Pair>,
    pub block_time_ms: u64,
    pub pool_limits: PoolLimits,
    /// libp2p listen address, e.g. `/ip4/127.0.0.1/tcp/30333` (`tcp/0`: any free port).
    pub p2p_listen: String,
    /// Peers to connect to (`/ip4/…/tcp/…/p2p/<peer id>`), in addition to the chain spec's.
    pub bootnodes: Vec<String>,
}

pub struct RunningNode {
    pub rpc_addr: SocketAddr,
    pub metrics_addr: Option<SocketAddr>,
    pub genesis_hash: Hash,
    /// libp2p peer id of this node.
    pub peer_id: String,
    rpc: gridchain_rpc::RpcServer,
    consensus: ConsensusHandle,
    network: Arc<Network>,
    rebroadcast: tokio::task::JoinHandle<()>,
}

impl RunningNode {
    /// Stops consensus (a commit in progress completes: it is one synchronous write) and RPC.
    pub async fn stop(self) {
        self.rebroadcast.abort();
        self.network.stop();
        self.consensus.stop().await;
        self.rpc.stop().await;
    }

    /// Resolves if consensus stops on its own (a storage failure); the node must then exit.
    pub async fn failed(&mut self) -> anyhow::Error {
        match self.consensus.stopped().await {
            Ok(()) => anyhow::anyhow!("consensus stopped"),
            Err(e) => e,
        }
    }
}

/// `system_health` from consensus and catch-up.
struct Health {
    status: Arc<ConsensusStatus>,
    sync: Arc<gridchain_sync::SyncStatus>,
    validators: usize,
}

impl gridchain_rpc::NodeHealth for Health {
    fn peers(&self) -> u32 {
        self.status.peers() as u32
    }
    fn is_syncing(&self) -> bool {
        self.status.is_syncing() || self.sync.is_syncing()
    }
    fn should_have_peers(&self) -> bool {
        self.validators > 1
    }
    fn peer_list(&self) -> Vec<gridchain_rpc_api::PeerInfo> {
        self.status
            .peer_list()
            .into_iter()
            .map(|p| gridchain_rpc_api::PeerInfo {
                peer_id: p.peer_id,
                name: p.name,
                address: p.address,
                validator: p.validator,
            })
            .collect()
    }
}

/// The node's libp2p secret, `<chain dir>/network/secret_ed25519` (hex), created on first start.
pub fn load_or_create_node_key(chain_dir: &Path) -> anyhow::Result<[u8; 32]> {
    let path = chain_dir.join("network").join("secret_ed25519");
    if let Ok(text) = std::fs::read_to_string(&path) {
        let bytes = gridchain_primitives::hash::decode_hex(text.trim())
            .with_context(|| format!("{} is not hex", path.display()))?;
        return bytes
            .try_into()
            .map_err(|_| anyhow::anyhow!("{} must hold 32 bytes", path.display()));
    }
    let key: [u8; 32] = rand::random();
    write_node_key(&path, &key)?;
    Ok(key)
}

/// Writes a node key file readable by its owner only.
pub fn write_node_key(path: &Path, key: &[u8; 32]) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(gridchain_primitives::hash::encode_hex(key).as_bytes())?;
    file.sync_all()?;
    Ok(())
}

/// The genesis block of `spec` and its state, opening or initialising `storage`.
fn init_genesis(storage: &Storage, spec: &ChainSpec) -> anyhow::Result<Header> {
    let changes = build_genesis(&spec.genesis_config()).context("invalid genesis")?;
    let prepared = storage.prepare_state(&changes, 0)?;
    let header = gridchain_runtime::genesis_header(prepared.root);
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
    let chain_dir = config.base_path.join("chains").join(&config.spec.id);
    let db_path = chain_dir.join("db");
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
    let consensus_status = Arc::new(ConsensusStatus::default());
    let sync_status = Arc::new(gridchain_sync::SyncStatus::default());
    let metrics = Arc::new(Metrics::new(consensus_status.clone(), sync_status.clone()));
    metrics.set_heights(best.number);

    if let Some(key) = &config.validator {
        if !config
            .spec
            .genesis
            .validators
            .iter()
            .any(|v| v.address == key.public())
        {
            tracing::warn!(
                key = %key.public(),
                "this key is not a genesis validator of chain {}; it signs only once bonded into the set",
                config.spec.id
            );
        }
    }
    let validator_count = config.spec.genesis.validators.len();
    let mut bootnodes = config.spec.boot_nodes.clone();
    bootnodes.extend(config.bootnodes.iter().cloned());
    let node_key = load_or_create_node_key(&chain_dir)?;
    let network = Arc::new(
        gridchain_network::start(
            NetworkConfig {
                listen: gridchain_network::network_address(&config.p2p_listen)?,
                peers: bootnodes
                    .iter()
                    .map(|b| gridchain_network::network_address(b))
                    .collect::<anyhow::Result<_>>()?,
                node_key,
                genesis: genesis_hash,
            },
            {
                let storage = storage.clone();
                let pool = pool.clone();
                Arc::new(move |batch: Vec<Vec<u8>>| pool_gossiped(&storage, &pool, batch))
            },
            {
                let server = gridchain_sync::protocol::Server::new(storage.clone());
                Arc::new(move |peer, request: Vec<u8>| server.serve(peer, &request))
            },
        )
        .await
        .context("cannot start the transaction and block network")?,
    );

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
            health: Arc::new(Health {
                status: consensus_status.clone(),
                sync: sync_status.clone(),
                validators: validator_count,
            }),
            on_submitted: {
                let network = network.clone();
                Arc::new(move |bytes: &[u8]| network.broadcast(bytes.to_vec()))
            },
        },
        config.rpc_cors.clone(),
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

    // Blocks decided while this node was away come in bulk before it takes part in consensus.
    let caught_up = gridchain_sync::catch_up(
        &network,
        Arc::new(gridchain_sync::import::Importer {
            storage: storage.clone(),
            chain,
            pool: pool.clone(),
            heads: heads.clone(),
        }),
        &sync_status,
        !bootnodes.is_empty(),
        Duration::from_secs(3),
    )
    .await?;
    metrics.set_heights(caught_up.best);

    let observed = metrics.clone();
    let consensus = gridchain_consensus::start(
        ConsensusSettings {
            moniker: config.node_name.clone(),
            data_dir: chain_dir.join("consensus"),
            listen: config.p2p_listen.clone(),
            bootnodes,
            node_key,
            validator: config.validator.clone(),
            block_time: Duration::from_millis(config.block_time_ms),
            validators: gridchain_consensus::runtime_validators(),
            on_commit: Arc::new(move |header: &Header, extrinsics, took| {
                observed.observe_block(header.number, extrinsics, took)
            }),
            status: consensus_status,
        },
        storage.clone(),
        pool.clone(),
        chain,
        heads.clone(),
    )
    .await?;
    let rebroadcast = tokio::spawn(rebroadcast_pool(pool.clone(), network.clone()));

    Ok(RunningNode {
        network,
        rebroadcast,
        rpc_addr: rpc.local_addr,
        metrics_addr,
        genesis_hash,
        peer_id: consensus.peer_id.clone(),
        rpc,
        consensus,
    })
}

/// Pools a batch of transactions a peer gossiped, checked like RPC submissions (signatures
/// together). Rejections are normal (a transaction arrives from several peers, or is already in
/// a block) and only logged.
/// Pools a gossiped batch and says what it was worth: `Reject` if any transaction is garbage
/// (undecodable, or a bad signature: nothing an honest relay forwards, since relays validate
/// first), `Accept` if something new entered the pool (so it is forwarded), `Ignore` otherwise
/// (already known, stale, pool full: nothing the sender can be blamed for).
fn pool_gossiped(storage: &Storage, pool: &TxPool, batch: Vec<Vec<u8>>) -> GossipVerdict {
    let mut txs = Vec::with_capacity(batch.len());
    for bytes in &batch {
        match gridchain_primitives::decode_untrusted::<Extrinsic>("gossiped extrinsic", bytes) {
            Ok(xt) => txs.push((xt, bytes.len())),
            Err(e) => {
                tracing::debug!(error = %e, "undecodable gossiped transaction");
                return GossipVerdict::Reject;
            }
        }
    }
    let next = match storage.best_header() {
        Ok(best) => best.map_or(0, |h| h.number) + 1,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the best block; gossiped transactions dropped");
            return GossipVerdict::Ignore;
        }
    };
    let mut verdict = GossipVerdict::Ignore;
    for result in pool.submit_many(storage, next, txs) {
        match result {
            Ok(_) => verdict = GossipVerdict::Accept,
            Err(gridchain_txpool::PoolError::Invalid(InvalidTransaction::BadSignature)) => {
                return GossipVerdict::Reject
            }
            Err(e) => tracing::trace!(error = %e, "gossiped transaction not pooled"),
        }
    }
    verdict
}

/// Offers the pool's oldest ready transactions to peers again every few seconds: one sent while
/// a link was down (or to a node that restarted) would otherwise wait in this pool forever,
/// since only the round's proposer includes transactions. Peers drop what they already hold
/// after a hash lookup.
async fn rebroadcast_pool(pool: Arc<TxPool>, network: Arc<Network>) {
    const EVERY: Duration = Duration::from_secs(5);
    const MOST: usize = 5_000;
    loop {
        tokio::time::sleep(EVERY).await;
        if network.peers() == 0 {
            continue;
        }
        for tx in pool.ready(MOST) {
            network.broadcast(tx.xt.encode());
        }
    }
}
