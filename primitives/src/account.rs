//! Accounts, signatures, keys and their human forms.
//!
//! An [`AccountId`] is an ed25519 public key. People see it as an SS58-style address:
//! `base58(prefix ++ public_key ++ checksum)`, where `prefix` is the chain's one-byte address
//! prefix (0..=63) and `checksum` is the first two bytes of
//! `blake2b-512("SS58PRE" ++ prefix ++ public_key)` — the same layout Substrate uses, so an address
//! typed with one wrong character is rejected instead of sending funds into the void.
//!
//! Keys ([`Pair`]) come from a secret URI:
//! - `//Name` — a well-known development key: seed = blake2b-256("gridchain//" ++ Name).
//!   Anyone can derive these; they are funded only on dev and local chains.
//! - `<bip39 mnemonic>` — seed = the first 32 bytes of the BIP39 seed (PBKDF2-HMAC-SHA512,
//!   2048 rounds, salt "mnemonic", empty passphrase).
//! - `<bip39 mnemonic>//path` — seed = blake2b-256(mnemonic seed ++ "//path"), one hard step per
//!   `//` segment, so one phrase can hold several accounts.
//! - `0x<64 hex>` — the raw 32-byte ed25519 seed.

use crate::hash::{blake2_256, decode_hex, encode_hex};
use blake2::{Blake2b512, Digest};
use ed25519_dalek::{Signer, SigningKey};
use parity_scale_codec::{Decode, Encode};
use serde::{Deserialize, Serialize};
use std::{fmt, str::FromStr};

/// Address prefix of gridchain networks (fits SS58's one-byte "simple" format).
pub const DEFAULT_ADDRESS_PREFIX: u8 = 42;

/// An ed25519 public key identifying an account, a validator or a 3Node.
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Encode, Decode)]
pub struct AccountId(pub [u8; 32]);

/// A 64-byte ed25519 signature.
#[derive(Clone, Copy, PartialEq, Eq, Encode, Decode)]
pub struct Signature(pub [u8; 64]);

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&encode_hex(&self.0))
    }
}

impl Serialize for Signature {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&encode_hex(&self.0))
    }
}

impl<'de> Deserialize<'de> for Signature {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let bytes = decode_hex(&s).map_err(serde::de::Error::custom)?;
        let arr: [u8; 64] = bytes
            .try_into()
            .map_err(|_| serde::de::Error::custom("signature must be 64 bytes"))?;
        Ok(Signature(arr))
    }
}

impl AccountId {
    /// Checks `signature` over `message` against this public key, by the chain's rule (ZIP-215,
    /// see [`crate::signature`]).
    pub fn verify(&self, message: &[u8], signature: &Signature) -> bool {
        crate::signature::verify(self, message, signature)
    }

    /// The SS58-style address of this account under `prefix`.
    pub fn to_address(&self, prefix: u8) -> String {
        let mut data = Vec::with_capacity(35);
        data.push(prefix);
        data.extend_from_slice(&self.0);
        let checksum = ss58_checksum(&data);
        data.extend_from_slice(&checksum[..2]);
        bs58::encode(data).into_string()
    }

    /// Parses an address, returning the account and the prefix it was written with.
    pub fn from_address(address: &str) -> Result<(Self, u8), AddressError> {
        let data = bs58::decode(address)
            .into_vec()
            .map_err(|_| AddressError::NotBase58)?;
        if data.len() != 35 {
            return Err(AddressError::Length(data.len()));
        }
        let prefix = data[0];
        if prefix > 63 {
            return Err(AddressError::UnsupportedPrefix(prefix));
        }
        if ss58_checksum(&data[..33])[..2] != data[33..] {
            return Err(AddressError::Checksum);
        }
        let mut key = [0u8; 32];
        key.copy_from_slice(&data[1..33]);
        Ok((AccountId(key), prefix))
    }

    /// Parses an address and insists on `prefix`, so an address of another network is refused.
    pub fn from_address_with_prefix(address: &str, prefix: u8) -> Result<Self, AddressError> {
        let (account, found) = Self::from_address(address)?;
        if found != prefix {
            return Err(AddressError::WrongNetwork {
                expected: prefix,
                found,
            });
        }
        Ok(account)
    }
}

fn ss58_checksum(data: &[u8]) -> [u8; 64] {
    let mut hasher = Blake2b512::new();
    hasher.update(b"SS58PRE");
    hasher.update(data);
    hasher.finalize().into()
}

/// Why a string is not an address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    #[error("address is not base58")]
    NotBase58,
    #[error("address has {0} bytes, expected 35")]
    Length(usize),
    #[error("address prefix {0} is not supported (0..=63)")]
    UnsupportedPrefix(u8),
    #[error("address checksum does not match (typo?)")]
    Checksum,
    #[error("address is for network prefix {found}, this chain uses {expected}")]
    WrongNetwork { expected: u8, found: u8 },
}

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_address(DEFAULT_ADDRESS_PREFIX))
    }
}

impl fmt::Debug for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for AccountId {
    type Err = AddressError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_address_with_prefix(s, DEFAULT_ADDRESS_PREFIX)
    }
}

impl Serialize for AccountId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for AccountId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// An ed25519 key pair.
#[derive(Clone)]
pub struct Pair {
    signing: SigningKey,
}

/// Why a secret URI gave no key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("invalid mnemonic: {0}")]
    Mnemonic(String),
    #[error("invalid hex seed: expected 0x followed by 64 hex characters")]
    HexSeed,
    #[error("empty derivation path segment")]
    EmptyPath,
}

impl Pair {
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        Pair {
            signing: SigningKey::from_bytes(seed),
        }
    }

    /// A fresh random key.
    pub fn generate() -> (Self, [u8; 32]) {
        let seed: [u8; 32] = rand::random();
        (Self::from_seed(&seed), seed)
    }

    /// The well-known development key `//name` (e.g. `Pair::dev("Alice")`).
    pub fn dev(name: &str) -> Self {
        Self::from_seed(&blake2_256(format!("gridchain//{name}").as_bytes()))
    }

    /// Seed of a BIP39 mnemonic (see the module docs for the derivation).
    pub fn mnemonic_seed(phrase: &str) -> Result<[u8; 32], SecretError> {
        let mnemonic = bip39::Mnemonic::parse_normalized(phrase.trim())
            .map_err(|e| SecretError::Mnemonic(e.to_string()))?;
        let full = mnemonic.to_seed("");
        let mut seed = [0u8; 32];
        seed.copy_from_slice(&full[..32]);
        Ok(seed)
    }

    /// A new random 12-word mnemonic.
    pub fn generate_mnemonic() -> String {
        let entropy: [u8; 16] = rand::random();
        bip39::Mnemonic::from_entropy(&entropy)
            .expect("16 bytes is a valid BIP39 entropy length")
            .to_string()
    }

    /// Parses a secret URI (see the module docs) into its 32-byte seed.
    pub fn seed_from_uri(uri: &str) -> Result<[u8; 32], SecretError> {
        let uri = uri.trim();
        if let Some(name) = uri.strip_prefix("//") {
            if name.is_empty() {
                return Err(SecretError::EmptyPath);
            }
            return Ok(blake2_256(format!("gridchain//{name}").as_bytes()));
        }
        if uri.starts_with("0x") {
            let bytes = decode_hex(uri).map_err(|_| SecretError::HexSeed)?;
            return bytes.try_into().map_err(|_| SecretError::HexSeed);
        }
        let mut parts = uri.split("//");
        let phrase = parts.next().unwrap_or_default();
        let mut seed = Self::mnemonic_seed(phrase)?;
        for segment in parts {
            if segment.is_empty() {
                return Err(SecretError::EmptyPath);
            }
            let mut input = seed.to_vec();
            input.extend_from_slice(b"//");
            input.extend_from_slice(segment.as_bytes());
            seed = blake2_256(&input);
        }
        Ok(seed)
    }

    pub fn from_uri(uri: &str) -> Result<Self, SecretError> {
        Self::seed_from_uri(uri).map(|s| Self::from_seed(&s))
    }

    pub fn public(&self) -> AccountId {
        AccountId(self.signing.verifying_key().to_bytes())
    }

    pub fn seed(&self) -> [u8; 32] {
        self.signing.to_bytes()
    }

    pub fn sign(&self, message: &[u8]) -> Signature {
        Signature(self.signing.sign(message).to_bytes())
    }
}

impl fmt::Debug for Pair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pair({})", self.public())
    }
}

/// Amounts of the native token, in its smallest unit.
pub type Balance = u128;

/// Serde for `u128` amounts as decimal strings (JSON numbers lose precision above 2^53).
pub mod balance_string {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &u128, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&value.to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u128, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_round_trip_and_typo_detection() {
        let alice = Pair::dev("Alice").public();
        let address = alice.to_string();
        assert_eq!(address.parse::<AccountId>(), Ok(alice));
        // Change one character: the checksum must catch it.
        let mut chars: Vec<char> = address.chars().collect();
        chars[10] = if chars[10] == 'a' { 'b' } else { 'a' };
        let typo: String = chars.into_iter().collect();
        assert!(typo.parse::<AccountId>().is_err());
        assert_eq!(
            AccountId::from_address_with_prefix(&alice.to_address(7), 42),
            Err(AddressError::WrongNetwork {
                expected: 42,
                found: 7
            })
        );
        assert_eq!("0OIl".parse::<AccountId>(), Err(AddressError::NotBase58));
    }

    #[test]
    fn sign_and_verify() {
        let pair = Pair::dev("Bob");
        let sig = pair.sign(b"hello");
        assert!(pair.public().verify(b"hello", &sig));
        assert!(!pair.public().verify(b"hellO", &sig));
        assert!(!Pair::dev("Alice").public().verify(b"hello", &sig));
    }

    #[test]
    fn secret_uris() {
        let phrase = Pair::generate_mnemonic();
        let root = Pair::from_uri(&phrase).unwrap();
        let child = Pair::from_uri(&format!("{phrase}//stash")).unwrap();
        assert_ne!(root.public(), child.public());
        assert_eq!(
            Pair::from_uri(&format!("{phrase}//stash"))
                .unwrap()
                .public(),
            child.public()
        );
        let hex = encode_hex(&root.seed());
        assert_eq!(Pair::from_uri(&hex).unwrap().public(), root.public());
        assert_eq!(
            Pair::from_uri("//Alice").unwrap().public(),
            Pair::dev("Alice").public()
        );
        assert!(matches!(
            Pair::from_uri("not a phrase"),
            Err(SecretError::Mnemonic(_))
        ));
        assert_eq!(Pair::from_uri("0x1234").unwrap_err(), SecretError::HexSeed);
    }
}
