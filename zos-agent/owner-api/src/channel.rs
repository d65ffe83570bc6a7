//! The channel: TCP, then a Noise XX handshake (libp2p-noise) in which each side proves an
//! ed25519 identity. The node's identity is its chain account key, so a client that knows the
//! node's account from the chain knows it talks to that node and nobody else.
//!
//! Accounts and libp2p identities are the same kind of key (ed25519), so the node's account
//! key *is* its libp2p identity here; the client uses a throwaway identity (who the client is
//! comes from the request's own signature, not from the channel).

use gridchain_primitives::{AccountId, Pair};
use libp2p::{
    core::upgrade::{InboundConnectionUpgrade, OutboundConnectionUpgrade},
    identity::{self, PeerId},
    noise,
};
use tokio::net::TcpStream;
use tokio_util::compat::{Compat, TokioAsyncReadCompatExt};

/// A side's proven identity in the handshake.
pub type Identity = identity::Keypair;

/// An open channel: encrypted and authenticated both ways.
pub type Channel = noise::Output<Compat<TcpStream>>;

#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    #[error("Noise handshake failed: {0}")]
    Handshake(String),
    /// The peer proved a key other than the expected node account.
    #[error(
        "the endpoint is not the expected node (it proved key {proved}, the chain says {expected})"
    )]
    WrongNode { proved: String, expected: String },
    #[error("{0} is not an ed25519 key")]
    BadKey(String),
}

/// The libp2p identity of an account key.
pub fn keypair_of(pair: &Pair) -> Identity {
    let mut seed = pair.seed();
    identity::Keypair::ed25519_from_bytes(&mut seed).expect("32 bytes are an ed25519 secret")
}

/// The peer id an account key has as a libp2p identity.
pub fn peer_id_of(account: &AccountId) -> Result<PeerId, ChannelError> {
    let key = identity::ed25519::PublicKey::try_from_bytes(&account.0)
        .map_err(|_| ChannelError::BadKey(account.to_string()))?;
    Ok(identity::PublicKey::from(key).to_peer_id())
}

fn config(identity: &identity::Keypair) -> Result<noise::Config, ChannelError> {
    noise::Config::new(identity).map_err(|e| ChannelError::Handshake(e.to_string()))
}

/// The node's side: proves `node_key`; returns the channel (the client's identity is not used).
pub async fn accept(
    socket: TcpStream,
    node_key: &identity::Keypair,
) -> Result<Channel, ChannelError> {
    let (_client, channel) = config(node_key)?
        .upgrade_inbound(socket.compat(), "/noise")
        .await
        .map_err(|e| ChannelError::Handshake(e.to_string()))?;
    Ok(channel)
}

/// The client's side: the peer must prove exactly the key of `node`.
pub async fn open(socket: TcpStream, node: &AccountId) -> Result<Channel, ChannelError> {
    let expected = peer_id_of(node)?;
    let throwaway = identity::Keypair::generate_ed25519();
    let (proved, channel) = config(&throwaway)?
        .upgrade_outbound(socket.compat(), "/noise")
        .await
        .map_err(|e| ChannelError::Handshake(e.to_string()))?;
    if proved != expected {
        return Err(ChannelError::WrongNode {
            proved: proved.to_string(),
            expected: node.to_string(),
        });
    }
    Ok(channel)
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn pair_of_sockets() -> (TcpStream, TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (client, server) = tokio::join!(TcpStream::connect(addr), listener.accept());
        (client.unwrap(), server.unwrap().0)
    }

    #[tokio::test]
    async fn the_client_gets_a_channel_only_to_the_key_it_expects() {
        let node = Pair::dev("Ferdie");
        let account = node.public();
        let identity = keypair_of(&node);

        let (client, server) = pair_of_sockets().await;
        let (opened, accepted) = tokio::join!(open(client, &account), accept(server, &identity));
        let (mut opened, mut accepted) = (opened.unwrap(), accepted.unwrap());
        crate::wire::write_frame(&mut opened, &crate::ServerFrame::End)
            .await
            .unwrap();
        let frame: crate::ServerFrame = crate::wire::read_frame(&mut accepted, 64).await.unwrap();
        assert_eq!(frame, crate::ServerFrame::End);

        // An impostor (any other key at the node's address) is found out in the handshake.
        let (client, server) = pair_of_sockets().await;
        let impostor = keypair_of(&Pair::dev("Eve"));
        let (opened, _) = tokio::join!(open(client, &account), accept(server, &impostor));
        assert!(
            matches!(opened, Err(ChannelError::WrongNode { .. })),
            "{opened:?}"
        );
    }
}
