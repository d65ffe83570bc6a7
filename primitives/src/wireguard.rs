//! WireGuard keys as the chain stores them and WireGuard's tools write them.
//!
//! A [`WireguardKey`] is an X25519 public key: 32 bytes in SCALE, base64 (44 characters, as
//! `wg pubkey` prints it) in JSON and deployment files. Both ends of a private network's mesh
//! derive their secret keys instead of storing them: a node from its own account seed, per
//! (owner, network); a user's wallet from the user's seed, per (chain, network). Losing a data
//! directory therefore never loses a key, and a key never travels.

use base64::{engine::general_purpose::STANDARD, Engine};
use blake2::{
    digest::{consts::U32, KeyInit, Mac},
    Blake2bMac,
};
use curve25519_dalek::montgomery::MontgomeryPoint;
use parity_scale_codec::{Decode, Encode};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use zeroize::Zeroizing;

/// Why text is not a WireGuard key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("a WireGuard key is 44 characters of base64 (32 bytes), as `wg pubkey` prints it")]
    NotBase64,
    #[error("a WireGuard key is 32 bytes; this one is {0}")]
    Length(usize),
}

/// An X25519 public key of a WireGuard peer.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Encode, Decode)]
pub struct WireguardKey(pub [u8; 32]);

impl WireguardKey {
    pub fn parse(text: &str) -> Result<WireguardKey, KeyError> {
        let bytes = STANDARD
            .decode(text.trim())
            .map_err(|_| KeyError::NotBase64)?;
        let bytes: [u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| KeyError::Length(bytes.len()))?;
        Ok(WireguardKey(bytes))
    }

    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0)
    }
}

impl std::fmt::Display for WireguardKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_base64())
    }
}

impl std::fmt::Debug for WireguardKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "WireguardKey({})", self.to_base64())
    }
}

impl Serialize for WireguardKey {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_base64())
    }
}

impl<'de> Deserialize<'de> for WireguardKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<WireguardKey, D::Error> {
        let text = String::deserialize(d)?;
        WireguardKey::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// An X25519 secret key, wiped when dropped.
pub struct WireguardSecret(Zeroizing<[u8; 32]>);

impl WireguardSecret {
    /// The secret key for `context` (each part length-prefixed, so parts cannot run into each
    /// other) derived from an account `seed`: blake2b-256 keyed with the seed, clamped.
    pub fn derive(seed: &[u8; 32], context: &[&[u8]]) -> WireguardSecret {
        let mut mac = <Blake2bMac<U32> as KeyInit>::new_from_slice(seed)
            .expect("32 bytes is a valid blake2b key length");
        Mac::update(&mut mac, b"gridchain-wireguard-v1");
        for part in context {
            Mac::update(&mut mac, &(part.len() as u64).to_le_bytes());
            Mac::update(&mut mac, part);
        }
        let mut bytes: [u8; 32] = mac.finalize().into_bytes().into();
        // X25519 clamping, as `wg genkey` does.
        bytes[0] &= 248;
        bytes[31] &= 127;
        bytes[31] |= 64;
        WireguardSecret(Zeroizing::new(bytes))
    }

    pub fn public(&self) -> WireguardKey {
        WireguardKey(MontgomeryPoint::mul_base_clamped(*self.0).to_bytes())
    }

    /// Base64, as `wg` reads a private key; wiped when dropped.
    pub fn to_base64(&self) -> Zeroizing<String> {
        Zeroizing::new(STANDARD.encode(*self.0))
    }
}

/// The context a node's key for the mesh of network `network` of `owner` is derived in.
pub fn node_context<'a>(genesis: &'a [u8], owner: &'a [u8], network: &'a str) -> [&'a [u8]; 4] {
    [b"node", genesis, owner, network.as_bytes()]
}

/// The context a user's key for their own peer in network `network` is derived in.
pub fn user_context<'a>(genesis: &'a [u8], network: &'a str) -> [&'a [u8]; 3] {
    [b"user", genesis, network.as_bytes()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_read_back_as_written_and_wrong_lengths_are_named() {
        let key = WireguardSecret::derive(&[7; 32], &[b"x"]).public();
        assert_eq!(WireguardKey::parse(&key.to_base64()), Ok(key));
        let json = serde_json::to_string(&key).unwrap();
        assert_eq!(serde_json::from_str::<WireguardKey>(&json).unwrap(), key);
        assert_eq!(
            WireguardKey::parse(&STANDARD.encode([1u8; 31])),
            Err(KeyError::Length(31))
        );
        assert_eq!(WireguardKey::parse("not a key!"), Err(KeyError::NotBase64));
        assert!(serde_json::from_str::<WireguardKey>("\"AAAA\"").is_err());
    }

    #[test]
    fn derivation_depends_on_seed_and_every_context_part() {
        let k = |seed: u8, ctx: &[&[u8]]| WireguardSecret::derive(&[seed; 32], ctx).public();
        assert_eq!(k(1, &[b"a", b"b"]), k(1, &[b"a", b"b"]));
        assert_ne!(k(1, &[b"a", b"b"]), k(2, &[b"a", b"b"]));
        assert_ne!(k(1, &[b"a", b"b"]), k(1, &[b"a", b"c"]));
        // Length prefixes: moving a byte between parts is another context.
        assert_ne!(k(1, &[b"ab", b""]), k(1, &[b"a", b"b"]));
    }

    #[test]
    fn the_public_key_is_what_wireguard_computes() {
        // RFC 7748 section 6.1: Alice's private and public keys.
        let secret: [u8; 32] =
            hex::decode("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
                .unwrap()
                .try_into()
                .unwrap();
        let public = WireguardSecret(Zeroizing::new(secret)).public();
        assert_eq!(
            hex::encode(public.0),
            "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"
        );
    }
}
