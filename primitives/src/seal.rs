//! Sealing secrets to a 3Node, so they can live on chain.
//!
//! A reservation carries secrets (zdb passwords, secret environment values) that only the node
//! hosting it may read. The client seals each secret to the node's account key; only the node's
//! agent, which holds the node's ed25519 seed, can open it.
//!
//! Construction (an anonymous "sealed box", ECIES over X25519):
//! - The node's X25519 public key is its ed25519 public key mapped to Montgomery form; its X25519
//!   secret is the clamped first half of `SHA-512(ed25519 seed)` — the scalar ed25519 itself
//!   uses, so both keys are the same point.
//! - The sender draws a fresh ephemeral X25519 key `e` and computes `s = X25519(e, node)`.
//! - `key = blake2b-256("gridchain-seal-v1" ++ s ++ E ++ node)` where `E` is the ephemeral public
//!   key; the secret is encrypted with ChaCha20-Poly1305 under `key` and an all-zero nonce (the
//!   key is used once).
//! - Sealed bytes: `E (32) ++ ciphertext ++ tag (16)`, i.e. 48 bytes of overhead.

use crate::{hash::blake2_256, AccountId};
use chacha20poly1305::{aead::Aead, ChaCha20Poly1305, KeyInit, Nonce};
use curve25519_dalek::{edwards::CompressedEdwardsY, montgomery::MontgomeryPoint};
use sha2::{Digest, Sha512};

/// Bytes a sealed secret has on top of its plaintext.
pub const SEAL_OVERHEAD: usize = 32 + 16;

const DOMAIN: &[u8] = b"gridchain-seal-v1";

/// Why a secret cannot be sealed or opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error("the recipient key is not a valid ed25519 public key")]
    BadRecipient,
    #[error("sealed secret is too short ({0} bytes, at least {SEAL_OVERHEAD})")]
    TooShort(usize),
    #[error("sealed secret does not open with this key (wrong node, or tampered)")]
    Open,
}

fn recipient_point(node: &AccountId) -> Result<MontgomeryPoint, SealError> {
    CompressedEdwardsY(node.0)
        .decompress()
        .map(|p| p.to_montgomery())
        .ok_or(SealError::BadRecipient)
}

fn x25519_secret(ed25519_seed: &[u8; 32]) -> [u8; 32] {
    let digest = Sha512::digest(ed25519_seed);
    let mut secret = [0u8; 32];
    secret.copy_from_slice(&digest[..32]);
    secret
}

fn cipher(shared: &MontgomeryPoint, ephemeral: &[u8; 32], node: &[u8; 32]) -> ChaCha20Poly1305 {
    let mut input = Vec::with_capacity(DOMAIN.len() + 96);
    input.extend_from_slice(DOMAIN);
    input.extend_from_slice(shared.as_bytes());
    input.extend_from_slice(ephemeral);
    input.extend_from_slice(node);
    ChaCha20Poly1305::new(&blake2_256(&input).into())
}

/// Seals `plaintext` to the node whose account key is `node`.
pub fn seal(node: &AccountId, plaintext: &[u8]) -> Result<Vec<u8>, SealError> {
    let recipient = recipient_point(node)?;
    let ephemeral_secret: [u8; 32] = rand::random();
    let ephemeral_public = MontgomeryPoint::mul_base_clamped(ephemeral_secret).to_bytes();
    let shared = recipient.mul_clamped(ephemeral_secret);
    let ciphertext = cipher(&shared, &ephemeral_public, &node.0)
        .encrypt(&Nonce::default(), plaintext)
        .map_err(|_| SealError::Open)?;
    let mut out = ephemeral_public.to_vec();
    out.extend_from_slice(&ciphertext);
    Ok(out)
}

/// Opens a secret sealed to the node whose ed25519 seed is `node_seed`.
pub fn open(node_seed: &[u8; 32], sealed: &[u8]) -> Result<Vec<u8>, SealError> {
    if sealed.len() < SEAL_OVERHEAD {
        return Err(SealError::TooShort(sealed.len()));
    }
    let (ephemeral, ciphertext) = sealed.split_at(32);
    let ephemeral: [u8; 32] = ephemeral.try_into().map_err(|_| SealError::Open)?;
    let node = crate::Pair::from_seed(node_seed).public();
    let shared = MontgomeryPoint(ephemeral).mul_clamped(x25519_secret(node_seed));
    cipher(&shared, &ephemeral, &node.0)
        .decrypt(&Nonce::default(), ciphertext)
        .map_err(|_| SealError::Open)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Pair;

    #[test]
    fn only_the_node_opens_what_was_sealed_to_it() {
        let node = Pair::dev("Node1");
        let sealed = seal(&node.public(), b"zdb password").unwrap();
        assert_eq!(sealed.len(), 12 + SEAL_OVERHEAD);
        assert_eq!(open(&node.seed(), &sealed).unwrap(), b"zdb password");
        assert_eq!(
            open(&Pair::dev("Node2").seed(), &sealed),
            Err(SealError::Open)
        );
        let mut tampered = sealed.clone();
        tampered[40] ^= 1;
        assert_eq!(open(&node.seed(), &tampered), Err(SealError::Open));
        assert_eq!(open(&node.seed(), &[0; 10]), Err(SealError::TooShort(10)));
        // Two seals of the same secret differ (fresh ephemeral key each time).
        assert_ne!(
            seal(&node.public(), b"x").unwrap(),
            seal(&node.public(), b"x").unwrap()
        );
    }

    #[test]
    fn non_curve_recipients_are_refused() {
        // y = 2 is not the y-coordinate of a point on edwards25519.
        let mut bad = [0u8; 32];
        bad[0] = 2;
        assert_eq!(seal(&AccountId(bad), b"x"), Err(SealError::BadRecipient));
    }
}
