//! # gridchain network: transaction gossip and block requests
//!
//! Malachite's network carries consensus only (its gossip channels are a closed set), so the rest
//! of a node's peer-to-peer traffic runs on this second swarm, with the same node key (a peer has
//! one id), on the consensus port + 1. See README.md for the wire formats and addressing.
//!
//! ```text
//! RPC submit ─▶ pool ─▶ Network::broadcast ─▶ batch (≤ 512 KiB or 20 ms) ─▶ gossipsub publish
//! gossipsub message ─▶ decode batch ─▶ on_transactions(the batch) ─▶ pool (signatures checked together)
//!                     └─ verdict ─▶ forwarded to other peers only if Accept; Reject is a strike
//!                        against the peer that sent it (3 strikes: banned 5 minutes)
//!
//! Network::request(peer, bytes) ─▶ request-response ─▶ peer's on_request(bytes) ─▶ reply bytes
//! Network::ban(peer)             ─▶ disconnected, refused and not dialled until the ban ends
//! ```
//!
//! The request payloads are opaque here: `gridchain-sync` defines them (block ranges with their
//! commit certificates) and decides whom to ban.
//!
//! Gossip is validated before it is forwarded (gossipsub `validate_messages`): a node relays a
//! batch only after its pool accepted something new from it, so garbage stops at the first
//! honest node instead of costing every node its decoding and signature checks. At most
//! [`MAX_PENDING_VALIDATIONS`] batches wait for validation; beyond that new batches are dropped
//! unforwarded (`Ignore`), so a flood cannot grow the queue without bound.

use anyhow::Context as _;
use gridchain_primitives::{block::DECODE_DEPTH_LIMIT, hash::blake2_256, Hash};
pub use libp2p::PeerId;
use libp2p::{
    allow_block_list,
    futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, StreamExt},
    gossipsub,
    multiaddr::Protocol,
    request_response::{self, OutboundRequestId, ProtocolSupport, ResponseChannel},
    swarm::{dial_opts::DialOpts, NetworkBehaviour, SwarmEvent},
    Multiaddr, StreamProtocol, Swarm,
};
use parity_scale_codec::{DecodeLimit, Encode};
use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};
use tokio::sync::{mpsc, oneshot};

/// A batch is published when it reaches this size…
const BATCH_BYTES: usize = 512 * 1024;
/// …or when its first transaction has waited this long.
const BATCH_DELAY: Duration = Duration::from_millis(20);
/// Gossip batches pooled at the same time; the rest wait their turn. Each uses at most one
/// thread per core for its signatures. One per core measured ~3 % fewer finalized
/// transactions/s under the local flood than unbounded; 8 keeps up with it.
const GOSSIP_SLOTS: usize = 8;
/// Largest gossip message accepted (a full batch plus framing).
const MAX_MESSAGE_BYTES: usize = 2 * 1024 * 1024;
/// Gossip batches received and not yet validated (including those waiting for a slot).
pub const MAX_PENDING_VALIDATIONS: usize = 64;
/// Rejected batches after which the peer that sent them is banned for [`STRIKE_BAN`].
const STRIKES: u32 = 3;
const STRIKE_BAN: Duration = Duration::from_secs(300);
/// How often configured peers that are not connected are dialled again (and bans expire).
const REDIAL: Duration = Duration::from_secs(3);
/// Largest request accepted.
const MAX_REQUEST_BYTES: usize = 64 * 1024;
/// Largest response accepted: one full block with its certificate and framing.
const MAX_RESPONSE_BYTES: usize = 24 * 1024 * 1024;
/// A request without an answer after this long fails.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);

pub struct NetworkConfig {
    /// Listen address of this swarm, e.g. `/ip4/127.0.0.1/tcp/30334`.
    pub listen: String,
    /// Peers of this swarm (`/ip4/…/tcp/…/p2p/<id>`); see [`network_address`].
    pub peers: Vec<String>,
    /// The node's libp2p ed25519 secret (shared with consensus).
    pub node_key: [u8; 32],
    /// Nodes of other chains never meet: the topic and protocol name the genesis hash.
    pub genesis: Hash,
}

/// Receives each batch of transactions (SCALE bytes each) published by others, on a blocking
/// thread (so it may check their signatures, together), and says what the batch was worth.
pub type TransactionHandler = Arc<dyn Fn(Vec<Vec<u8>>) -> GossipVerdict + Send + Sync>;

/// What a received gossip batch was worth.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GossipVerdict {
    /// Something new and valid: forward it.
    Accept,
    /// Nothing new, or nothing the sender could know was invalid (a stale nonce, a full pool):
    /// drop it, no blame.
    Ignore,
    /// Garbage (undecodable, a bad signature): drop it and count a strike against the sender.
    Reject,
}
/// Answers a peer's request (bytes in, bytes out), on a blocking thread (so it may read the
/// database).
pub type RequestHandler = Arc<dyn Fn(PeerId, Vec<u8>) -> Vec<u8> + Send + Sync>;

/// Where a node listens on this swarm, given its consensus address: the TCP port + 1.
pub fn network_address(consensus: &str) -> anyhow::Result<String> {
    let addr: Multiaddr = consensus
        .parse()
        .with_context(|| format!("invalid address {consensus}"))?;
    let mut out = Multiaddr::empty();
    let mut shifted = false;
    for p in addr.iter() {
        match p {
            Protocol::Tcp(0) => {
                out.push(Protocol::Tcp(0));
                shifted = true;
            }
            Protocol::Tcp(port) => {
                let next = port
                    .checked_add(1)
                    .with_context(|| format!("no port after {port} in {consensus}"))?;
                out.push(Protocol::Tcp(next));
                shifted = true;
            }
            other => out.push(other),
        }
    }
    anyhow::ensure!(shifted, "{consensus} has no TCP port");
    Ok(out.to_string())
}

/// The peer id of a node key.
pub fn peer_id(node_key: &[u8; 32]) -> anyhow::Result<PeerId> {
    Ok(libp2p::identity::Keypair::ed25519_from_bytes(*node_key)
        .context("invalid node key")?
        .public()
        .to_peer_id())
}

/// Why a request got no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("request to {peer} failed: {reason}")]
    Failed { peer: PeerId, reason: String },
    #[error("the network has stopped")]
    Stopped,
}

enum Command {
    Request {
        peer: PeerId,
        bytes: Vec<u8>,
        reply: oneshot::Sender<Result<Vec<u8>, RequestError>>,
    },
    Ban {
        peer: PeerId,
        until: Instant,
    },
}

/// A running swarm.
pub struct Network {
    handle: NetworkHandle,
    outgoing: mpsc::UnboundedSender<Vec<u8>>,
    connected: Arc<Mutex<Vec<PeerId>>>,
    peer_count: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

/// Requests and bans, from any task; cheap to clone.
#[derive(Clone)]
pub struct NetworkHandle {
    commands: mpsc::UnboundedSender<Command>,
}

impl NetworkHandle {
    /// Sends `bytes` to `peer`'s [`RequestHandler`] and waits for its answer.
    pub async fn request(&self, peer: PeerId, bytes: Vec<u8>) -> Result<Vec<u8>, RequestError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::Request { peer, bytes, reply })
            .map_err(|_| RequestError::Stopped)?;
        answer.await.map_err(|_| RequestError::Stopped)?
    }

    /// Disconnects `peer` and refuses it for `duration`.
    pub fn ban(&self, peer: PeerId, duration: Duration, reason: &str) {
        tracing::warn!(%peer, %reason, secs = duration.as_secs(), "banning peer");
        let _ = self.commands.send(Command::Ban {
            peer,
            until: Instant::now() + duration,
        });
    }
}

impl Network {
    /// Publishes a transaction this node accepted from a client (SCALE bytes).
    pub fn broadcast(&self, encoded: Vec<u8>) {
        let _ = self.outgoing.send(encoded);
    }

    /// Number of connected peers.
    pub fn peers(&self) -> u64 {
        self.peer_count.load(Ordering::Relaxed)
    }

    /// The connected peers.
    pub fn connected_peers(&self) -> Vec<PeerId> {
        self.connected.lock().map(|p| p.clone()).unwrap_or_default()
    }

    pub fn handle(&self) -> NetworkHandle {
        self.handle.clone()
    }

    /// See [`NetworkHandle::request`].
    pub async fn request(&self, peer: PeerId, bytes: Vec<u8>) -> Result<Vec<u8>, RequestError> {
        self.handle.request(peer, bytes).await
    }

    /// See [`NetworkHandle::ban`].
    pub fn ban(&self, peer: PeerId, duration: Duration, reason: &str) {
        self.handle.ban(peer, duration, reason)
    }

    pub fn stop(&self) {
        self.task.abort();
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[derive(NetworkBehaviour)]
struct Behaviour {
    gossip: gossipsub::Behaviour,
    requests: request_response::Behaviour<LengthPrefixed>,
    bans: allow_block_list::Behaviour<allow_block_list::BlockedPeers>,
}

/// Requests and responses as one big-endian u32 length and that many bytes.
#[derive(Clone, Default)]
struct LengthPrefixed;

async fn read_framed<T: AsyncRead + Unpin + Send>(
    io: &mut T,
    max: usize,
) -> std::io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    io.read_exact(&mut len).await?;
    let len = u32::from_be_bytes(len) as usize;
    if len > max {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("message of {len} bytes exceeds {max}"),
        ));
    }
    let mut bytes = vec![0u8; len];
    io.read_exact(&mut bytes).await?;
    Ok(bytes)
}

async fn write_framed<T: AsyncWrite + Unpin + Send>(
    io: &mut T,
    bytes: Vec<u8>,
) -> std::io::Result<()> {
    let len = u32::try_from(bytes.len())
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "message too large"))?;
    io.write_all(&len.to_be_bytes()).await?;
    io.write_all(&bytes).await?;
    io.close().await
}

#[async_trait::async_trait]
impl request_response::Codec for LengthPrefixed {
    type Protocol = StreamProtocol;
    type Request = Vec<u8>;
    type Response = Vec<u8>;

    async fn read_request<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> std::io::Result<Vec<u8>> {
        read_framed(io, MAX_REQUEST_BYTES).await
    }

    async fn read_response<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> std::io::Result<Vec<u8>> {
        read_framed(io, MAX_RESPONSE_BYTES).await
    }

    async fn write_request<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        request: Vec<u8>,
    ) -> std::io::Result<()> {
        write_framed(io, request).await
    }

    async fn write_response<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        response: Vec<u8>,
    ) -> std::io::Result<()> {
        write_framed(io, response).await
    }
}

/// Starts the swarm.
pub async fn start(
    config: NetworkConfig,
    on_transactions: TransactionHandler,
    on_request: RequestHandler,
) -> anyhow::Result<Network> {
    let keypair = libp2p::identity::Keypair::ed25519_from_bytes(config.node_key)
        .context("invalid node key")?;
    let gossip_config = gossipsub::ConfigBuilder::default()
        .max_transmit_size(MAX_MESSAGE_BYTES)
        .message_id_fn(|m: &gossipsub::Message| gossipsub::MessageId::from(blake2_256(&m.data)))
        .validation_mode(gossipsub::ValidationMode::Strict)
        .validate_messages()
        .heartbeat_interval(Duration::from_millis(500))
        .build()
        .map_err(|e| anyhow::anyhow!("gossipsub config: {e}"))?;
    let protocol = StreamProtocol::try_from_owned(format!("/gridchain/{}/sync/1", config.genesis))
        .map_err(|e| anyhow::anyhow!("protocol name: {e}"))?;
    let mut swarm = libp2p::SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_tcp(
            libp2p::tcp::Config::default().nodelay(true),
            libp2p::noise::Config::new,
            libp2p::yamux::Config::default,
        )?
        .with_behaviour(|key| {
            let gossip = gossipsub::Behaviour::new(
                gossipsub::MessageAuthenticity::Signed(key.clone()),
                gossip_config,
            )
            .map_err(|e| anyhow::anyhow!("gossipsub: {e}"))?;
            let requests = request_response::Behaviour::new(
                [(protocol, ProtocolSupport::Full)],
                request_response::Config::default().with_request_timeout(REQUEST_TIMEOUT),
            );
            Ok(Behaviour {
                gossip,
                requests,
                bans: allow_block_list::Behaviour::default(),
            })
        })
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(3_600)))
        .build();
    let topic = gossipsub::IdentTopic::new(format!("/gridchain/{}/transactions/1", config.genesis));
    swarm.behaviour_mut().gossip.subscribe(&topic)?;
    let listen: Multiaddr = config
        .listen
        .parse()
        .with_context(|| format!("invalid listen address {}", config.listen))?;
    swarm
        .listen_on(listen.clone())
        .with_context(|| format!("cannot listen on {listen}"))?;
    let mut peers = Vec::new();
    for p in &config.peers {
        let addr: Multiaddr = p.parse().with_context(|| format!("invalid peer {p}"))?;
        let id = addr
            .iter()
            .find_map(|c| match c {
                Protocol::P2p(id) => Some(id),
                _ => None,
            })
            .with_context(|| format!("peer address {p} has no /p2p/<peer id>"))?;
        peers.push((id, addr));
    }
    // Dial at once rather than at the first redial tick: a node catching up asks peers first.
    for (id, addr) in &peers {
        let _ = swarm.dial(DialOpts::peer_id(*id).addresses(vec![addr.clone()]).build());
    }
    let (outgoing, incoming) = mpsc::unbounded_channel();
    let (commands, command_rx) = mpsc::unbounded_channel();
    let connected = Arc::new(Mutex::new(Vec::new()));
    let peer_count = Arc::new(AtomicU64::new(0));
    let task = tokio::spawn(
        SwarmLoop {
            swarm,
            topic,
            peers,
            on_transactions,
            gossip_slots: Arc::new(tokio::sync::Semaphore::new(GOSSIP_SLOTS)),
            on_request,
            connected: connected.clone(),
            peer_count: peer_count.clone(),
            pending: HashMap::new(),
            banned: HashMap::new(),
            validating: Arc::new(std::sync::atomic::AtomicUsize::new(0)),
            strikes: HashMap::new(),
        }
        .run(incoming, command_rx),
    );
    Ok(Network {
        handle: NetworkHandle { commands },
        outgoing,
        connected,
        peer_count,
        task,
    })
}

struct SwarmLoop {
    swarm: Swarm<Behaviour>,
    topic: gossipsub::IdentTopic,
    peers: Vec<(PeerId, Multiaddr)>,
    on_transactions: TransactionHandler,
    /// Gossip batches handled at once ([`GOSSIP_SLOTS`]): more only queue, so a flood of
    /// batches cannot become a flood of blocking threads.
    gossip_slots: Arc<tokio::sync::Semaphore>,
    on_request: RequestHandler,
    connected: Arc<Mutex<Vec<PeerId>>>,
    peer_count: Arc<AtomicU64>,
    pending: HashMap<OutboundRequestId, oneshot::Sender<Result<Vec<u8>, RequestError>>>,
    banned: HashMap<PeerId, Instant>,
    /// Gossip batches received and not yet validated.
    validating: Arc<std::sync::atomic::AtomicUsize>,
    /// Rejected batches per peer.
    strikes: HashMap<PeerId, u32>,
}

/// A validation's outcome, back to the swarm loop.
type Validated = (gossipsub::MessageId, PeerId, GossipVerdict);

impl SwarmLoop {
    async fn run(
        mut self,
        mut outgoing: mpsc::UnboundedReceiver<Vec<u8>>,
        mut commands: mpsc::UnboundedReceiver<Command>,
    ) {
        let (answers_tx, mut answers) =
            mpsc::unbounded_channel::<(ResponseChannel<Vec<u8>>, Vec<u8>)>();
        let (validated_tx, mut validated) = mpsc::unbounded_channel::<Validated>();
        let mut batch: Vec<Vec<u8>> = Vec::new();
        let mut batch_bytes = 0;
        let mut flush = tokio::time::interval(BATCH_DELAY);
        let mut redial = tokio::time::interval(REDIAL);
        loop {
            tokio::select! {
                tx = outgoing.recv() => {
                    let Some(tx) = tx else { return };
                    batch_bytes += tx.len();
                    batch.push(tx);
                    if batch_bytes >= BATCH_BYTES {
                        self.publish(&mut batch);
                        batch_bytes = 0;
                    }
                }
                _ = flush.tick() => {
                    if !batch.is_empty() {
                        self.publish(&mut batch);
                        batch_bytes = 0;
                    }
                }
                _ = redial.tick() => self.redial(),
                command = commands.recv() => match command {
                    Some(Command::Request { peer, bytes, reply }) => {
                        let id = self.swarm.behaviour_mut().requests.send_request(&peer, bytes);
                        self.pending.insert(id, reply);
                    }
                    Some(Command::Ban { peer, until }) => {
                        self.banned.insert(peer, until);
                        self.swarm.behaviour_mut().bans.block_peer(peer);
                    }
                    None => return,
                },
                Some((channel, bytes)) = answers.recv() => {
                    // The peer may have gone meanwhile; nothing to do then.
                    let _ = self.swarm.behaviour_mut().requests.send_response(channel, bytes);
                }
                Some((id, source, verdict)) = validated.recv() => self.validated(&id, source, verdict),
                event = self.swarm.select_next_some() => self.on_event(event, &answers_tx, &validated_tx),
            }
        }
    }

    fn publish(&mut self, batch: &mut Vec<Vec<u8>>) {
        let data = std::mem::take(batch).encode();
        match self
            .swarm
            .behaviour_mut()
            .gossip
            .publish(self.topic.clone(), data)
        {
            Ok(_) => {}
            // Alone (a dev chain, or all peers down): the transactions stay in our own pool.
            Err(gossipsub::PublishError::NoPeersSubscribedToTopic) => {}
            Err(e) => tracing::warn!(error = %e, "cannot publish transactions"),
        }
    }

    /// Tells gossipsub what a batch was worth (it forwards only accepted ones) and counts a
    /// strike against the peer that sent a rejected one.
    fn validated(&mut self, id: &gossipsub::MessageId, source: PeerId, verdict: GossipVerdict) {
        let acceptance = match verdict {
            GossipVerdict::Accept => gossipsub::MessageAcceptance::Accept,
            GossipVerdict::Ignore => gossipsub::MessageAcceptance::Ignore,
            GossipVerdict::Reject => gossipsub::MessageAcceptance::Reject,
        };
        self.swarm
            .behaviour_mut()
            .gossip
            .report_message_validation_result(id, &source, acceptance);
        if verdict == GossipVerdict::Reject {
            let strikes = self.strikes.entry(source).or_default();
            *strikes += 1;
            tracing::debug!(peer = %source, strikes = *strikes, "rejected gossip");
            if *strikes >= STRIKES {
                self.strikes.remove(&source);
                tracing::warn!(peer = %source, secs = STRIKE_BAN.as_secs(), "banning peer: sent invalid transactions");
                self.banned.insert(source, Instant::now() + STRIKE_BAN);
                self.swarm.behaviour_mut().bans.block_peer(source);
            }
        }
    }

    fn redial(&mut self) {
        let now = Instant::now();
        let expired: Vec<PeerId> = self
            .banned
            .iter()
            .filter(|(_, until)| **until <= now)
            .map(|(peer, _)| *peer)
            .collect();
        for peer in expired {
            self.banned.remove(&peer);
            self.swarm.behaviour_mut().bans.unblock_peer(peer);
            tracing::info!(%peer, "ban ended");
        }
        for (id, addr) in &self.peers {
            if !self.swarm.is_connected(id) && !self.banned.contains_key(id) {
                let opts = DialOpts::peer_id(*id).addresses(vec![addr.clone()]).build();
                let _ = self.swarm.dial(opts);
            }
        }
    }

    fn on_event(
        &mut self,
        event: SwarmEvent<BehaviourEvent>,
        answers: &mpsc::UnboundedSender<(ResponseChannel<Vec<u8>>, Vec<u8>)>,
        validated: &mpsc::UnboundedSender<Validated>,
    ) {
        match event {
            SwarmEvent::Behaviour(BehaviourEvent::Gossip(gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            })) => match Vec::<Vec<u8>>::decode_all_with_depth_limit(
                DECODE_DEPTH_LIMIT,
                &mut &message.data[..],
            ) {
                Ok(txs) => {
                    if self.validating.load(Ordering::Relaxed) >= MAX_PENDING_VALIDATIONS {
                        self.validated(&message_id, propagation_source, GossipVerdict::Ignore);
                        return;
                    }
                    self.validating.fetch_add(1, Ordering::Relaxed);
                    let validating = self.validating.clone();
                    let on_transactions = self.on_transactions.clone();
                    let slots = self.gossip_slots.clone();
                    let validated = validated.clone();
                    tokio::spawn(async move {
                        let verdict = match slots.acquire_owned().await {
                            Ok(_slot) => tokio::task::spawn_blocking(move || on_transactions(txs))
                                .await
                                .unwrap_or(GossipVerdict::Ignore),
                            Err(_) => GossipVerdict::Ignore,
                        };
                        validating.fetch_sub(1, Ordering::Relaxed);
                        let _ = validated.send((message_id, propagation_source, verdict));
                    });
                }
                Err(e) => {
                    tracing::debug!(peer = %propagation_source, error = %e, "undecodable transaction batch");
                    self.validated(&message_id, propagation_source, GossipVerdict::Reject);
                }
            },
            SwarmEvent::Behaviour(BehaviourEvent::Requests(event)) => match event {
                request_response::Event::Message {
                    peer,
                    message:
                        request_response::Message::Request {
                            request, channel, ..
                        },
                    ..
                } => {
                    let on_request = self.on_request.clone();
                    let answers = answers.clone();
                    tokio::task::spawn_blocking(move || {
                        let _ = answers.send((channel, on_request(peer, request)));
                    });
                }
                request_response::Event::Message {
                    message:
                        request_response::Message::Response {
                            request_id,
                            response,
                        },
                    ..
                } => {
                    if let Some(reply) = self.pending.remove(&request_id) {
                        let _ = reply.send(Ok(response));
                    }
                }
                request_response::Event::OutboundFailure {
                    peer,
                    request_id,
                    error,
                    ..
                } => {
                    if let Some(reply) = self.pending.remove(&request_id) {
                        let _ = reply.send(Err(RequestError::Failed {
                            peer,
                            reason: error.to_string(),
                        }));
                    }
                }
                request_response::Event::InboundFailure { peer, error, .. } => {
                    tracing::debug!(%peer, %error, "could not answer a request");
                }
                request_response::Event::ResponseSent { .. } => {}
            },
            SwarmEvent::ConnectionEstablished { .. } | SwarmEvent::ConnectionClosed { .. } => {
                let peers: Vec<PeerId> = self.swarm.connected_peers().copied().collect();
                self.peer_count.store(peers.len() as u64, Ordering::Relaxed);
                if let Ok(mut slot) = self.connected.lock() {
                    *slot = peers;
                }
            }
            SwarmEvent::NewListenAddr { address, .. } => {
                tracing::info!(%address, "transaction and block network listening");
            }
            _ => {}
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn transaction_port_is_the_next_one() {
        assert_eq!(
            network_address(
                "/ip4/127.0.0.1/tcp/30333/p2p/12D3KooWPm7Q3KnLChWX13Yh2W356DDEV5K5v8SBzzKrjJ6RBdvA"
            )
            .unwrap(),
            "/ip4/127.0.0.1/tcp/30334/p2p/12D3KooWPm7Q3KnLChWX13Yh2W356DDEV5K5v8SBzzKrjJ6RBdvA"
        );
        assert_eq!(
            network_address("/ip4/0.0.0.0/tcp/0").unwrap(),
            "/ip4/0.0.0.0/tcp/0"
        );
        assert!(network_address("/ip4/1.2.3.4/tcp/65535").is_err());
        assert!(network_address("/ip4/1.2.3.4/udp/5").is_err());
        assert!(network_address("not an address").is_err());
    }

    /// A swarm on loopback port `port` with node key `[seed; 32]`, dialling the swarms of
    /// `peers` ((seed, port) pairs).
    async fn swarm(
        seed: u8,
        port: u16,
        peers: &[(u8, u16)],
        on_transactions: TransactionHandler,
        on_request: RequestHandler,
    ) -> Network {
        let config = NetworkConfig {
            listen: format!("/ip4/127.0.0.1/tcp/{port}"),
            peers: peers
                .iter()
                .map(|(s, p)| format!("/ip4/127.0.0.1/tcp/{p}/p2p/{}", peer_id(&[*s; 32]).unwrap()))
                .collect(),
            node_key: [seed; 32],
            genesis: Hash::of(b"test chain"),
        };
        start(config, on_transactions, on_request).await.unwrap()
    }

    /// Two real swarms on loopback: what one broadcasts, the other receives, once.
    #[tokio::test]
    async fn a_broadcast_transaction_reaches_the_peer() {
        let (port_a, port_b) = (free_port(), free_port());
        let (tx, mut rx) = mpsc::unbounded_channel();
        let no_answer: RequestHandler = Arc::new(|_, _| Vec::new());
        let a = swarm(
            1,
            port_a,
            &[(2, port_b)],
            Arc::new(|_| GossipVerdict::Accept),
            no_answer.clone(),
        )
        .await;
        let on_transactions: TransactionHandler = Arc::new(move |batch| {
            let _ = tx.send(batch);
            GossipVerdict::Accept
        });
        let _b = swarm(2, port_b, &[(1, port_a)], on_transactions, no_answer).await;
        // Gossipsub needs the peers' subscriptions first; keep offering until one arrives.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        let got = loop {
            a.broadcast(b"tx-1".to_vec());
            if let Ok(Some(t)) = tokio::time::timeout(Duration::from_millis(500), rx.recv()).await {
                break t;
            }
            assert!(tokio::time::Instant::now() < deadline, "nothing arrived");
        };
        assert_eq!(got, vec![b"tx-1".to_vec()]);
        assert!(a.peers() >= 1);
    }

    /// A request reaches the peer's handler and its answer comes back; a banned peer is
    /// disconnected and unreachable until the ban ends, then dialled again.
    #[tokio::test]
    async fn requests_are_answered_and_bans_expire() {
        let (port_a, port_b) = (free_port(), free_port());
        let a = swarm(
            3,
            port_a,
            &[(4, port_b)],
            Arc::new(|_| GossipVerdict::Accept),
            Arc::new(|_, _| Vec::new()),
        )
        .await;
        let reverse: RequestHandler = Arc::new(|_, mut request: Vec<u8>| {
            request.reverse();
            request
        });
        let _b = swarm(4, port_b, &[], Arc::new(|_| GossipVerdict::Accept), reverse).await;
        let b = peer_id(&[4; 32]).unwrap();
        wait_until(|| a.connected_peers().contains(&b)).await;
        assert_eq!(a.request(b, vec![1, 2, 3]).await.unwrap(), vec![3, 2, 1]);

        a.ban(b, Duration::from_secs(2), "test");
        wait_until(|| !a.connected_peers().contains(&b)).await;
        assert!(matches!(
            a.request(b, vec![1]).await,
            Err(RequestError::Failed { .. })
        ));
        // After the ban the configured peer is dialled again.
        wait_until(|| a.connected_peers().contains(&b)).await;
        assert_eq!(a.request(b, vec![7, 8]).await.unwrap(), vec![8, 7]);
    }

    /// A line of three swarms, A — B — C (A and C not connected): B forwards what its pool
    /// accepts, never what it rejects, and bans A after three rejected batches.
    #[tokio::test]
    async fn only_validated_gossip_is_forwarded_and_senders_of_garbage_are_banned() {
        let (port_a, port_b, port_c) = (free_port(), free_port(), free_port());
        let no_answer: RequestHandler = Arc::new(|_, _| Vec::new());
        let rejected = Arc::new(AtomicU64::new(0));
        let on_b: TransactionHandler = {
            let rejected = rejected.clone();
            Arc::new(move |batch: Vec<Vec<u8>>| {
                if batch.iter().any(|tx| tx.starts_with(b"bad")) {
                    rejected.fetch_add(1, Ordering::Relaxed);
                    GossipVerdict::Reject
                } else {
                    GossipVerdict::Accept
                }
            })
        };
        let (tx, mut at_c) = mpsc::unbounded_channel();
        let on_c: TransactionHandler = Arc::new(move |batch| {
            let _ = tx.send(batch);
            GossipVerdict::Accept
        });
        let a = swarm(
            5,
            port_a,
            &[(6, port_b)],
            Arc::new(|_| GossipVerdict::Accept),
            no_answer.clone(),
        )
        .await;
        let b = swarm(
            6,
            port_b,
            &[(5, port_a), (7, port_c)],
            on_b,
            no_answer.clone(),
        )
        .await;
        let _c = swarm(7, port_c, &[(6, port_b)], on_c, no_answer).await;
        // A valid batch from A reaches C through B (once the meshes have formed).
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            a.broadcast(b"good-1".to_vec());
            if let Ok(Some(t)) = tokio::time::timeout(Duration::from_millis(500), at_c.recv()).await
            {
                assert_eq!(t, vec![b"good-1".to_vec()]);
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "good-1 never reached C"
            );
        }
        // Garbage stops at B, and the third rejected batch gets A banned by B.
        let peer_a = peer_id(&[5; 32]).unwrap();
        for i in 0..3u8 {
            a.broadcast(vec![b'b', b'a', b'd', i]);
            let want = u64::from(i) + 1;
            wait_until(|| rejected.load(Ordering::Relaxed) >= want).await;
        }
        wait_until(|| !b.connected_peers().contains(&peer_a)).await;
        while let Ok(batch) = at_c.try_recv() {
            assert!(
                !batch.iter().any(|t| t.starts_with(b"bad")),
                "B forwarded garbage"
            );
        }
    }

    async fn wait_until(condition: impl Fn() -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while !condition() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "condition not met in time"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }
}
