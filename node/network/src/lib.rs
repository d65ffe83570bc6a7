//! # gridchain network: transaction gossip
//!
//! Any node's RPC accepts transactions for the whole network: what it pools, it publishes here,
//! and every other node (validators above all, since they build blocks) pools it too. The swarm
//! is separate from consensus's (Malachite's gossip channels are a closed set) but uses the same
//! node key, so a peer has one id. See README.md for the wire format and addressing.
//!
//! ```text
//! RPC submit ─▶ pool ─▶ TxGossip::broadcast ─▶ batch (≤ 512 KiB or 20 ms) ─▶ gossipsub publish
//! gossipsub message ─▶ decode batch ─▶ on_receive(each encoded extrinsic) ─▶ pool (checked)
//! ```

use anyhow::Context as _;
use gridchain_primitives::{block::DECODE_DEPTH_LIMIT, hash::blake2_256, Hash};
use libp2p::{
    futures::StreamExt,
    gossipsub,
    multiaddr::Protocol,
    swarm::{dial_opts::DialOpts, SwarmEvent},
    Multiaddr, PeerId, Swarm,
};
use parity_scale_codec::{DecodeLimit, Encode};
use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};
use tokio::sync::mpsc;

/// A batch is published when it reaches this size…
const BATCH_BYTES: usize = 512 * 1024;
/// …or when its first transaction has waited this long.
const BATCH_DELAY: Duration = Duration::from_millis(20);
/// Largest gossip message accepted (a full batch plus framing).
const MAX_MESSAGE_BYTES: usize = 2 * 1024 * 1024;
/// How often configured peers that are not connected are dialled again.
const REDIAL: Duration = Duration::from_secs(3);

pub struct TxGossipConfig {
    /// Listen address of this swarm, e.g. `/ip4/127.0.0.1/tcp/30334`.
    pub listen: String,
    /// Peers of this swarm (`/ip4/…/tcp/…/p2p/<id>`); see [`transaction_address`].
    pub peers: Vec<String>,
    /// The node's libp2p ed25519 secret (shared with consensus).
    pub node_key: [u8; 32],
    /// Transactions of other chains never meet: the topic names the genesis hash.
    pub genesis: Hash,
}

/// Where a node listens for transactions, given its consensus address: the TCP port + 1.
pub fn transaction_address(consensus: &str) -> anyhow::Result<String> {
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

/// A running gossip swarm.
pub struct TxGossip {
    outgoing: mpsc::UnboundedSender<Vec<u8>>,
    peers: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl TxGossip {
    /// Publishes a transaction this node accepted from a client (SCALE bytes).
    pub fn broadcast(&self, encoded: Vec<u8>) {
        let _ = self.outgoing.send(encoded);
    }

    /// Connected gossip peers.
    pub fn peers(&self) -> u64 {
        self.peers.load(Ordering::Relaxed)
    }

    pub fn stop(&self) {
        self.task.abort();
    }
}

impl Drop for TxGossip {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts the swarm. `on_receive` gets every transaction (SCALE bytes) published by others; it
/// runs on a blocking thread, so it may check signatures.
pub async fn start(
    config: TxGossipConfig,
    on_receive: Arc<dyn Fn(Vec<u8>) + Send + Sync>,
) -> anyhow::Result<TxGossip> {
    let keypair = libp2p::identity::Keypair::ed25519_from_bytes(config.node_key)
        .context("invalid node key")?;
    let gossip_config = gossipsub::ConfigBuilder::default()
        .max_transmit_size(MAX_MESSAGE_BYTES)
        .message_id_fn(|m: &gossipsub::Message| gossipsub::MessageId::from(blake2_256(&m.data)))
        .validation_mode(gossipsub::ValidationMode::Strict)
        .heartbeat_interval(Duration::from_millis(500))
        .build()
        .map_err(|e| anyhow::anyhow!("gossipsub config: {e}"))?;
    let mut swarm = libp2p::SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_tcp(
            libp2p::tcp::Config::default().nodelay(true),
            libp2p::noise::Config::new,
            libp2p::yamux::Config::default,
        )?
        .with_behaviour(|key| {
            gossipsub::Behaviour::new(
                gossipsub::MessageAuthenticity::Signed(key.clone()),
                gossip_config,
            )
            .map_err(|e| anyhow::anyhow!("gossipsub: {e}").into())
        })
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(3_600)))
        .build();
    let topic = gossipsub::IdentTopic::new(format!("/gridchain/{}/transactions/1", config.genesis));
    swarm.behaviour_mut().subscribe(&topic)?;
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
    let (outgoing, incoming) = mpsc::unbounded_channel();
    let connected = Arc::new(AtomicU64::new(0));
    let task = tokio::spawn(run(
        swarm,
        topic,
        peers,
        incoming,
        on_receive,
        connected.clone(),
    ));
    Ok(TxGossip {
        outgoing,
        peers: connected,
        task,
    })
}

async fn run(
    mut swarm: Swarm<gossipsub::Behaviour>,
    topic: gossipsub::IdentTopic,
    peers: Vec<(PeerId, Multiaddr)>,
    mut outgoing: mpsc::UnboundedReceiver<Vec<u8>>,
    on_receive: Arc<dyn Fn(Vec<u8>) + Send + Sync>,
    connected: Arc<AtomicU64>,
) {
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
                    publish(&mut swarm, &topic, &mut batch);
                    batch_bytes = 0;
                }
            }
            _ = flush.tick() => {
                if !batch.is_empty() {
                    publish(&mut swarm, &topic, &mut batch);
                    batch_bytes = 0;
                }
            }
            _ = redial.tick() => {
                for (id, addr) in &peers {
                    if !swarm.is_connected(id) {
                        let opts = DialOpts::peer_id(*id).addresses(vec![addr.clone()]).build();
                        let _ = swarm.dial(opts);
                    }
                }
            }
            event = swarm.select_next_some() => match event {
                SwarmEvent::Behaviour(gossipsub::Event::Message { message, .. }) => {
                    match Vec::<Vec<u8>>::decode_all_with_depth_limit(
                        DECODE_DEPTH_LIMIT,
                        &mut &message.data[..],
                    ) {
                        Ok(txs) => {
                            let on_receive = on_receive.clone();
                            tokio::task::spawn_blocking(move || {
                                for tx in txs {
                                    on_receive(tx);
                                }
                            });
                        }
                        Err(e) => tracing::debug!(source = ?message.source, error = %e, "undecodable transaction batch"),
                    }
                }
                SwarmEvent::ConnectionEstablished { .. } | SwarmEvent::ConnectionClosed { .. } => {
                    connected.store(swarm.connected_peers().count() as u64, Ordering::Relaxed);
                }
                SwarmEvent::NewListenAddr { address, .. } => {
                    tracing::info!(%address, "transaction gossip listening");
                }
                _ => {}
            }
        }
    }
}

fn publish(
    swarm: &mut Swarm<gossipsub::Behaviour>,
    topic: &gossipsub::IdentTopic,
    batch: &mut Vec<Vec<u8>>,
) {
    let data = std::mem::take(batch).encode();
    match swarm.behaviour_mut().publish(topic.clone(), data) {
        Ok(_) => {}
        // Alone (a dev chain, or all peers down): the transactions stay in our own pool.
        Err(gossipsub::PublishError::NoPeersSubscribedToTopic) => {}
        Err(e) => tracing::warn!(error = %e, "cannot publish transactions"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transaction_port_is_the_next_one() {
        assert_eq!(
            transaction_address(
                "/ip4/127.0.0.1/tcp/30333/p2p/12D3KooWPm7Q3KnLChWX13Yh2W356DDEV5K5v8SBzzKrjJ6RBdvA"
            )
            .unwrap(),
            "/ip4/127.0.0.1/tcp/30334/p2p/12D3KooWPm7Q3KnLChWX13Yh2W356DDEV5K5v8SBzzKrjJ6RBdvA"
        );
        assert_eq!(
            transaction_address("/ip4/0.0.0.0/tcp/0").unwrap(),
            "/ip4/0.0.0.0/tcp/0"
        );
        assert!(transaction_address("/ip4/1.2.3.4/tcp/65535").is_err());
        assert!(transaction_address("/ip4/1.2.3.4/udp/5").is_err());
        assert!(transaction_address("not an address").is_err());
    }

    /// Two real swarms on loopback: what one broadcasts, the other receives, once.
    #[tokio::test]
    async fn a_broadcast_transaction_reaches_the_peer() {
        let genesis = Hash::of(b"test chain");
        let key_a = [1u8; 32];
        let key_b = [2u8; 32];
        let port_a = free_port();
        let port_b = free_port();
        let id = |k: [u8; 32]| {
            libp2p::identity::Keypair::ed25519_from_bytes(k)
                .unwrap()
                .public()
                .to_peer_id()
        };
        let (tx, mut rx) = mpsc::unbounded_channel();
        let a = start(
            TxGossipConfig {
                listen: format!("/ip4/127.0.0.1/tcp/{port_a}"),
                peers: vec![format!("/ip4/127.0.0.1/tcp/{port_b}/p2p/{}", id(key_b))],
                node_key: key_a,
                genesis,
            },
            Arc::new(|_| {}),
        )
        .await
        .unwrap();
        let _b = start(
            TxGossipConfig {
                listen: format!("/ip4/127.0.0.1/tcp/{port_b}"),
                peers: vec![format!("/ip4/127.0.0.1/tcp/{port_a}/p2p/{}", id(key_a))],
                node_key: key_b,
                genesis,
            },
            Arc::new(move |t| {
                let _ = tx.send(t);
            }),
        )
        .await
        .unwrap();
        // Gossipsub needs the peers' subscriptions first; keep offering until one arrives.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        let got = loop {
            a.broadcast(b"tx-1".to_vec());
            if let Ok(Some(t)) = tokio::time::timeout(Duration::from_millis(500), rx.recv()).await {
                break t;
            }
            assert!(tokio::time::Instant::now() < deadline, "nothing arrived");
        };
        assert_eq!(got, b"tx-1".to_vec());
        assert!(a.peers() >= 1);
    }

    fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }
}
