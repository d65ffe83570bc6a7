//! # gridchain consensus
//!
//! Tendermint BFT for gridchain, run by Malachite (`arc-malachitebft-*` =0.8.2). Every Malachite
//! type stays inside this crate so an upgrade of the engine touches nothing else.
//!
//! ```text
//!                 ┌──────────────── Malachite engine (actors) ────────────────┐
//!   libp2p ◀────▶ │ network: gossip of votes, proposals, proposal parts;      │
//!   (TCP, noise,  │          value sync (request/response); peer discovery     │
//!    yamux)       │ consensus: rounds, timeouts, vote keeping, certificates    │
//!                 │ WAL: own votes flushed before they are sent, replayed      │
//!                 └───────────────┬──────────────────────────▲────────────────┘
//!                          AppMsg │                          │ replies
//!                                 ▼                          │
//!                  app::App — build / check / commit blocks (runtime, storage, pool)
//! ```
//!
//! - [`context`]: heights, addresses, the value (a block hash), proposals, votes, validators.
//! - [`proposer`]: stake-weighted proposer selection, a pure function.
//! - [`signing`]: the bytes validators sign (domain tag + genesis hash), signer and verifier.
//! - [`codec`]: the SCALE wire format of everything Malachite sends or logs.
//! - `app`: the handlers of Malachite's application messages.
//!
//! One path for every chain: `--dev` runs this same engine with one validator.
//!
//! A block is final when Malachite decides it, i.e. with precommits from validators holding more
//! than 2/3 of the height's voting power. The block is stored with that commit certificate
//! (`gridchain_primitives::finality::CommitCertificate`), which anyone can check against the
//! height's validator set.

mod app;
pub mod codec;
pub mod context;
pub mod proposer;
pub mod signing;
#[cfg(test)]
mod tests;

pub use app::{
    runtime_validators, CommitObserver, SetMember, ValidatorSource, MAX_FUTURE_DRIFT_MS,
    MAX_PAST_DRIFT_MS,
};

use anyhow::Context as _;
use context::{Address, GridContext};
use gridchain_primitives::{AccountId, ChainContext, Header, Pair};
use gridchain_storage::Storage;
use gridchain_txpool::TxPool;
use malachitebft_app_channel::app::config::{
    ConsensusConfig, DiscoveryConfig, NodeConfig, P2pConfig, ValueSyncConfig,
};
use malachitebft_app_channel::app::events::RxEvent;
use malachitebft_app_channel::app::net::Multiaddr;
use malachitebft_app_channel::app::types::core::{SignedMessage, VoteType};
use malachitebft_app_channel::app::types::Keypair;
use malachitebft_app_channel::{
    ConsensusContext, EngineHandle, NetworkContext, NetworkIdentity, NetworkRequest,
    RequestContext, SyncContext, WalContext,
};
use signing::{GridSigner, GridVerifier};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;

/// How a node takes part in consensus.
pub struct ConsensusSettings {
    /// Shown to peers and in logs.
    pub moniker: String,
    /// Where the write-ahead log lives.
    pub data_dir: PathBuf,
    /// libp2p listen address, e.g. `/ip4/127.0.0.1/tcp/30333`.
    pub listen: String,
    /// Peers to dial and keep connected (`/ip4/…/tcp/…/p2p/<peer id>`).
    pub bootnodes: Vec<String>,
    /// The node's libp2p identity (ed25519 secret); its peer id is derived from it.
    pub node_key: [u8; 32],
    /// The validator's consensus key; `None` for a full node that follows and verifies.
    pub validator: Option<Pair>,
    /// Target time between blocks.
    pub block_time: Duration,
    /// The validator set of the next height, from the best state.
    pub validators: ValidatorSource,
    pub on_commit: CommitObserver,
    /// Where consensus reports what it is doing (created by the caller, so RPC can report it
    /// before consensus starts).
    pub status: Arc<ConsensusStatus>,
}

/// What consensus is doing, for RPC and metrics.
#[derive(Debug, Default)]
pub struct ConsensusStatus {
    height: AtomicU64,
    round: AtomicI64,
    peers: AtomicU64,
    votes_received: AtomicU64,
    votes_published: AtomicU64,
    syncing: AtomicBool,
    peer_list: std::sync::Mutex<Vec<PeerSummary>>,
}

/// A connected consensus peer.
#[derive(Debug, Clone)]
pub struct PeerSummary {
    pub peer_id: String,
    pub name: String,
    pub address: String,
    /// Consensus address, when the peer announced itself as a validator.
    pub validator: Option<String>,
}

impl ConsensusStatus {
    fn set_round(&self, height: u64, round: i64) {
        self.height.store(height, Ordering::Relaxed);
        self.round.store(round, Ordering::Relaxed);
    }

    /// The height consensus is deciding.
    pub fn height(&self) -> u64 {
        self.height.load(Ordering::Relaxed)
    }

    pub fn round(&self) -> i64 {
        self.round.load(Ordering::Relaxed)
    }

    /// Connected peers on the consensus network.
    pub fn peers(&self) -> u64 {
        self.peers.load(Ordering::Relaxed)
    }

    pub fn votes_received(&self) -> u64 {
        self.votes_received.load(Ordering::Relaxed)
    }

    pub fn votes_published(&self) -> u64 {
        self.votes_published.load(Ordering::Relaxed)
    }

    pub fn peer_list(&self) -> Vec<PeerSummary> {
        self.peer_list.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// True while the node imports decided blocks from peers instead of voting on new ones.
    pub fn is_syncing(&self) -> bool {
        self.syncing.load(Ordering::Relaxed)
    }
}

struct EngineConfig {
    moniker: String,
    consensus: ConsensusConfig,
    value_sync: ValueSyncConfig,
}

impl NodeConfig for EngineConfig {
    fn moniker(&self) -> &str {
        &self.moniker
    }
    fn consensus(&self) -> &ConsensusConfig {
        &self.consensus
    }
    fn consensus_mut(&mut self) -> &mut ConsensusConfig {
        &mut self.consensus
    }
    fn value_sync(&self) -> &ValueSyncConfig {
        &self.value_sync
    }
    fn value_sync_mut(&mut self) -> &mut ValueSyncConfig {
        &mut self.value_sync
    }
}

/// A running consensus engine and its application loop.
pub struct ConsensusHandle {
    engine: EngineHandle,
    app: tokio::task::JoinHandle<anyhow::Result<()>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// A safety failure the engine cannot go on from (a corrupt WAL).
    fatal: tokio::sync::mpsc::Receiver<anyhow::Error>,
    pub peer_id: String,
    pub status: Arc<ConsensusStatus>,
}

impl ConsensusHandle {
    /// Stops the engine; a block being committed finishes first (commit is one synchronous
    /// write).
    pub async fn stop(self) {
        for task in &self.tasks {
            task.abort();
        }
        self.engine.actor.stop(None);
        let _ = tokio::time::timeout(Duration::from_secs(5), self.engine.handle).await;
        self.app.abort();
    }

    /// Resolves when the application loop ends (an error there means the node must stop).
    pub async fn stopped(&mut self) -> anyhow::Result<()> {
        tokio::select! {
            joined = &mut self.app => {
                // The engine stops its actors on a safety failure, which ends the app too; the
                // event saying why may still be on its way to the watcher.
                if let Ok(Some(error)) =
                    tokio::time::timeout(Duration::from_secs(2), self.fatal.recv()).await
                {
                    return Err(error);
                }
                match joined {
                    Ok(result) => result,
                    Err(e) => Err(anyhow::anyhow!("consensus task failed: {e}")),
                }
            }
            Some(error) = self.fatal.recv() => Err(error),
        }
    }
}

/// The libp2p peer id of a node key.
pub fn peer_id_of(node_key: &[u8; 32]) -> anyhow::Result<String> {
    let keypair = Keypair::ed25519_from_bytes(*node_key).context("invalid node key")?;
    Ok(keypair.public().to_peer_id().to_string())
}

/// Starts consensus over `storage` (which holds at least the genesis block).
pub async fn start(
    settings: ConsensusSettings,
    storage: Arc<Storage>,
    pool: Arc<TxPool>,
    chain: ChainContext,
    heads: broadcast::Sender<Header>,
) -> anyhow::Result<ConsensusHandle> {
    let keypair = Keypair::ed25519_from_bytes(settings.node_key).context("invalid node key")?;
    let peer_id = keypair.public().to_peer_id();
    let listen: Multiaddr = settings
        .listen
        .parse()
        .with_context(|| format!("invalid p2p listen address {}", settings.listen))?;
    let persistent_peers = settings
        .bootnodes
        .iter()
        .map(|b| {
            b.parse::<Multiaddr>()
                .with_context(|| format!("invalid bootnode address {b}"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let config = EngineConfig {
        moniker: settings.moniker.clone(),
        consensus: ConsensusConfig {
            p2p: P2pConfig {
                listen_addr: listen,
                persistent_peers,
                discovery: DiscoveryConfig {
                    enabled: true,
                    ..Default::default()
                },
                ..Default::default()
            },
            ..Default::default()
        },
        value_sync: ValueSyncConfig {
            // Catch-up: ask for many blocks at once, and learn peers' tips quickly.
            batch_size: 100,
            parallel_requests: 4,
            status_update_interval: Duration::from_secs(1),
            request_timeout: Duration::from_secs(10),
            ..Default::default()
        },
    };

    let verifier = GridVerifier {
        genesis: chain.genesis_hash,
    };
    let signer = settings.validator.map(|key| {
        Arc::new(GridSigner {
            key,
            genesis: chain.genesis_hash,
        })
    });
    let (identity, consensus_ctx) = match &signer {
        Some(signer) => {
            use malachitebft_app_channel::app::types::codec::Codec as _;
            use malachitebft_signing::Signer as _;
            let proof = signer
                .sign_validator_proof(signer.key.public().0.to_vec(), peer_id.to_bytes())
                .await
                .map_err(|e| anyhow::anyhow!("cannot sign the validator proof: {e}"))?;
            let proof_bytes = codec::WireCodec.encode(&proof)?;
            (
                NetworkIdentity::new_validator(
                    settings.moniker.clone(),
                    keypair,
                    signer.address().to_string(),
                    proof_bytes,
                ),
                ConsensusContext::new_validator(
                    signer.address(),
                    Box::new(GridVerifier {
                        genesis: chain.genesis_hash,
                    }),
                    Box::new(GridSigner {
                        key: signer.key.clone(),
                        genesis: chain.genesis_hash,
                    }),
                ),
            )
        }
        None => (
            NetworkIdentity::new(settings.moniker.clone(), keypair, None),
            ConsensusContext::new_full_node(Address(AccountId::default()), Box::new(verifier)),
        ),
    };

    let wal_dir = settings.data_dir.join("wal");
    std::fs::create_dir_all(&wal_dir)
        .with_context(|| format!("cannot create {}", wal_dir.display()))?;
    let (channels, engine) = malachitebft_app_channel::start_engine(
        GridContext,
        config,
        WalContext::new(wal_dir.join("consensus.wal"), codec::WireCodec),
        NetworkContext::new(identity, codec::WireCodec),
        consensus_ctx,
        SyncContext::new(codec::WireCodec),
        RequestContext::new(100),
    )
    .await
    .map_err(|e| anyhow::anyhow!("cannot start consensus: {e:#}"))?;

    let status = settings.status;
    let (fatal_tx, fatal) = tokio::sync::mpsc::channel(1);
    let wal_path = wal_dir.join("consensus.wal");
    let mut tasks = vec![watch_events(
        channels.events.subscribe(),
        status.clone(),
        fatal_tx,
        wal_path,
    )];
    tasks.push(watch_peers(channels.net_requests.clone(), status.clone()));
    let app = app::App::new(app::AppParts {
        storage,
        pool,
        chain,
        signer,
        validators: settings.validators,
        block_time: settings.block_time,
        heads,
        on_commit: settings.on_commit,
        status: status.clone(),
    });
    let app = tokio::spawn(app.run(channels));
    tracing::info!(peer_id = %peer_id, "consensus started");
    Ok(ConsensusHandle {
        engine,
        app,
        tasks,
        fatal,
        peer_id: peer_id.to_string(),
        status,
    })
}

/// Logs every vote this node signs at debug level under target `gridchain_consensus::votes`
/// (so an operator or a test can look for equivocation across restarts) and keeps the counters
/// of [`ConsensusStatus`].
fn watch_events(
    mut events: RxEvent<GridContext>,
    status: Arc<ConsensusStatus>,
    fatal: tokio::sync::mpsc::Sender<anyhow::Error>,
    wal_path: std::path::PathBuf,
) -> tokio::task::JoinHandle<()> {
    use malachitebft_app_channel::app::consensus::SignedConsensusMsg;
    use malachitebft_app_channel::app::engine::util::events::Event;
    tokio::spawn(async move {
        loop {
            let event = match events.recv().await {
                Ok(e) => e,
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return,
            };
            match event {
                Event::Published(SignedConsensusMsg::Vote(SignedMessage { message, .. })) => {
                    status.votes_published.fetch_add(1, Ordering::Relaxed);
                    let kind = match message.vote_type {
                        VoteType::Prevote => "prevote",
                        VoteType::Precommit => "precommit",
                    };
                    let value = match message.value {
                        malachitebft_app_channel::app::types::core::NilOrVal::Nil => {
                            "nil".to_string()
                        }
                        malachitebft_app_channel::app::types::core::NilOrVal::Val(h) => {
                            h.to_string()
                        }
                    };
                    tracing::debug!(
                        target: "gridchain_consensus::votes",
                        validator = %message.validator,
                        height = message.height.0,
                        round = message.round.as_i64(),
                        kind,
                        value = %value,
                        "signed vote"
                    );
                }
                Event::Received(SignedConsensusMsg::Vote(_)) => {
                    status.votes_received.fetch_add(1, Ordering::Relaxed);
                }
                Event::StartedHeight(height, _) => {
                    status.height.store(height.0, Ordering::Relaxed);
                    status.syncing.store(false, Ordering::Relaxed);
                }
                Event::ReceivedProposedValue(_, origin) if origin.is_sync() => {
                    status.syncing.store(true, Ordering::Relaxed);
                }
                Event::WalReplayBegin(height, entries) => {
                    tracing::info!(%height, entries, "replaying the consensus write-ahead log");
                }
                Event::WalCorrupted(e) => {
                    // Malachite stops this validator's consensus here; the whole node stops
                    // too, with one clear line, rather than stay up without voting (or be
                    // restarted blindly by a supervisor that does not look at the logs).
                    let _ = fatal
                        .send(anyhow::anyhow!(
                            "the consensus write-ahead log {} is corrupt ({e}): the validator \
                             stops rather than risk signing two votes for one step; restore \
                             the file, or move it away only if this validator signed nothing \
                             at the current height",
                            wal_path.display()
                        ))
                        .await;
                }
                _ => {}
            }
        }
    })
}

/// Polls the network for its peer count.
fn watch_peers(
    requests: tokio::sync::mpsc::Sender<NetworkRequest>,
    status: Arc<ConsensusStatus>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            if let Ok(Some(dump)) = NetworkRequest::dump_state(&requests).await {
                status
                    .peers
                    .store(dump.peers.len() as u64, Ordering::Relaxed);
                let mut list: Vec<PeerSummary> = dump
                    .peers
                    .iter()
                    .map(|(id, p)| PeerSummary {
                        peer_id: id.to_string(),
                        name: p.moniker.clone(),
                        address: p.address.to_string(),
                        validator: p.consensus_address.clone(),
                    })
                    .collect();
                list.sort_by(|a, b| a.peer_id.cmp(&b.peer_id));
                if let Ok(mut slot) = status.peer_list.lock() {
                    *slot = list;
                }
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    })
}
