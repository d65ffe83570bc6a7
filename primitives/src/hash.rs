//! The one hash function of the chain: blake2b with a 32-byte output.

use blake2::{digest::consts::U32, Blake2b, Digest};
use parity_scale_codec::{Decode, Encode};
use serde::{Deserialize, Serialize};
use std::{fmt, str::FromStr};

/// blake2b-256, the hasher behind block hashes, extrinsic hashes, Merkle roots and the state tree.
pub type Blake2b256 = Blake2b<U32>;

/// blake2b-256 of `data`.
pub fn blake2_256(data: &[u8]) -> [u8; 32] {
    Blake2b256::digest(data).into()
}

/// A 32-byte blake2b-256 digest. Shown as `0x`-prefixed hex in JSON and logs.
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Encode, Decode)]
pub struct Hash(pub [u8; 32]);

impl Hash {
    pub const ZERO: Hash = Hash([0; 32]);

    /// Hash of arbitrary bytes.
    pub fn of(data: &[u8]) -> Self {
        Hash(blake2_256(data))
    }

    /// Hash of a value's SCALE encoding.
    pub fn of_encoded<T: Encode>(value: &T) -> Self {
        value.using_encoded(Self::of)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{}", hex::encode(self.0))
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Why a hex string is not a hash.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HexError {
    #[error("expected 0x-prefixed hex")]
    MissingPrefix,
    #[error("invalid hex: {0}")]
    Invalid(String),
    #[error("expected {expected} bytes, got {got}")]
    Length { expected: usize, got: usize },
}

/// Parses `0x`-prefixed hex into bytes.
pub fn decode_hex(s: &str) -> Result<Vec<u8>, HexError> {
    let body = s.strip_prefix("0x").ok_or(HexError::MissingPrefix)?;
    hex::decode(body).map_err(|e| HexError::Invalid(e.to_string()))
}

/// Formats bytes as `0x`-prefixed hex.
pub fn encode_hex(bytes: &[u8]) -> String {
    format!("0x{}", hex::encode(bytes))
}

impl FromStr for Hash {
    type Err = HexError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bytes = decode_hex(s)?;
        let got = bytes.len();
        let arr: [u8; 32] = bytes
            .try_into()
            .map_err(|_| HexError::Length { expected: 32, got })?;
        Ok(Hash(arr))
    }
}

impl Serialize for Hash {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Hash {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Bytes that travel as `0x` hex in JSON.
#[derive(Clone, Default, PartialEq, Eq, Encode, Decode)]
pub struct Bytes(pub Vec<u8>);

impl fmt::Debug for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&encode_hex(&self.0))
    }
}

impl Serialize for Bytes {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&encode_hex(&self.0))
    }
}

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        decode_hex(&s).map(Bytes).map_err(serde::de::Error::custom)
    }
}

impl From<Vec<u8>> for Bytes {
    fn from(v: Vec<u8>) -> Self {
        Bytes(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_hex_round_trip() {
        let h = Hash::of(b"gridchain");
        let s = h.to_string();
        assert!(s.starts_with("0x") && s.len() == 66);
        assert_eq!(s.parse::<Hash>(), Ok(h));
        assert_eq!(
            "0x00".parse::<Hash>(),
            Err(HexError::Length {
                expected: 32,
                got: 1
            })
        );
        assert_eq!("00".parse::<Hash>(), Err(HexError::MissingPrefix));
    }
}
