//! The manifest (what a stored file is made of), its sealed form on the backends, and the
//! location string that finds it.
//!
//! Sealed manifest, stored as one zdb value on every backend of the file:
//!
//! ```text
//! "ZSTM" | format 1 (u8) | kdf (u8: 0 raw key, 1 Argon2id)
//!        | Argon2id only: memory KiB (u32 LE) | iterations (u32 LE) | parallelism (u32 LE) | salt (16)
//! | nonce (24) | XChaCha20-Poly1305( SCALE(Manifest) ) | tag (16)
//! ```
//! Everything before the nonce is the header, authenticated as associated data.
//!
//! Location string: `zs1` + base58( SCALE(LocationV1) ): the first 16 bytes of the sealed
//! manifest's blake3 hash, and for every copy the backend's 4-byte fingerprint
//! (`blake3("address/namespace")`) and its zdb key. A copy whose hash differs is corrupt and
//! skipped; a copy whose hash matches but does not decrypt proves the key is wrong.

use crate::codec::{Checksum, ChunkLayout, CodecParams};
use crate::crypto::{FileKey, KdfParams, KeySource, MasterKey};
use crate::error::ZstorError;
use parity_scale_codec::{Compact, Decode, DecodeAll, Encode};

const MAGIC: &[u8; 4] = b"ZSTM";
const FORMAT_VERSION: u8 = 1;
const KDF_RAW: u8 = 0;
const KDF_ARGON2ID: u8 = 1;
pub const LOCATION_PREFIX: &str = "zs1";

/// Where a shard lives: an index into [`Manifest::backends`] and the zdb key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Encode, Decode)]
pub struct ShardLocation {
    pub backend: u16,
    pub key: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct ShardEntry {
    /// `None` when the shard could not be written (a degraded put) and awaits `repair`.
    pub location: Option<ShardLocation>,
    pub checksum: Checksum,
}

#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct ChunkEntry {
    pub plain_len: u32,
    pub compressed: bool,
    pub payload_len: u32,
    pub shard_len: u32,
    /// `k + m` entries, data shards first.
    pub shards: Vec<ShardEntry>,
}

impl ChunkEntry {
    pub fn layout(&self) -> ChunkLayout {
        ChunkLayout {
            plain_len: self.plain_len,
            compressed: self.compressed,
            payload_len: self.payload_len,
            shard_len: self.shard_len,
        }
    }
}

/// A backend as the manifest names it; the password comes from the local config.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct BackendRef {
    pub address: String,
    pub namespace: String,
}

impl BackendRef {
    pub fn label(&self) -> String {
        format!("{}/{}", self.address, self.namespace)
    }
}

#[derive(Clone, PartialEq, Eq, Encode, Decode)]
pub struct Manifest {
    pub file_id: [u8; 16],
    pub name: String,
    pub size: u64,
    pub stored_at: u64,
    pub data_shards: u16,
    pub parity_shards: u16,
    pub chunk_size: u32,
    pub zstd_level: i32,
    /// blake3 of the whole plaintext.
    pub content_hash: [u8; 32],
    pub file_key: [u8; 32],
    pub backends: Vec<BackendRef>,
    pub chunks: Vec<ChunkEntry>,
}

impl Manifest {
    pub fn codec_params(&self) -> CodecParams {
        CodecParams {
            data_shards: self.data_shards,
            parity_shards: self.parity_shards,
            chunk_size: self.chunk_size,
            zstd_level: self.zstd_level,
        }
    }

    pub fn file_key(&self) -> FileKey {
        FileKey::from_bytes(self.file_key)
    }

    /// Checks what the decoder relies on: parameters, shard counts, backend indexes.
    fn validate(&self) -> Result<(), ZstorError> {
        self.codec_params()
            .validate()
            .map_err(|e| ZstorError::CorruptManifest(e.to_string()))?;
        let shards = self.codec_params().total_shards();
        let mut total = 0u64;
        for (index, chunk) in self.chunks.iter().enumerate() {
            let bad_location = chunk.shards.iter().any(|s| {
                s.location
                    .is_some_and(|l| usize::from(l.backend) >= self.backends.len())
            });
            if chunk.shards.len() != shards || bad_location {
                return Err(ZstorError::CorruptManifest(format!(
                    "chunk {index} lists invalid shards"
                )));
            }
            total += u64::from(chunk.plain_len);
        }
        if total != self.size {
            return Err(ZstorError::CorruptManifest(format!(
                "chunks add up to {total} bytes, the file has {}",
                self.size
            )));
        }
        Ok(())
    }

    /// Encrypts the manifest into the sealed form stored on the backends.
    pub fn seal(&self, master: &MasterKey) -> Result<Vec<u8>, ZstorError> {
        let header = encode_header(master.kdf_params());
        let body = master.seal_manifest(&header, &self.encode())?;
        let mut sealed = header;
        sealed.extend_from_slice(&body);
        Ok(sealed)
    }
}

fn encode_header(params: &KdfParams) -> Vec<u8> {
    let mut header = Vec::with_capacity(6 + 28);
    header.extend_from_slice(MAGIC);
    header.push(FORMAT_VERSION);
    match params {
        KdfParams::RawKey => header.push(KDF_RAW),
        KdfParams::Argon2id {
            memory_kib,
            iterations,
            parallelism,
            salt,
        } => {
            header.push(KDF_ARGON2ID);
            header.extend_from_slice(&memory_kib.to_le_bytes());
            header.extend_from_slice(&iterations.to_le_bytes());
            header.extend_from_slice(&parallelism.to_le_bytes());
            header.extend_from_slice(salt);
        }
    }
    header
}

/// Splits a sealed manifest into its KDF parameters, header bytes and encrypted body.
fn parse_header(sealed: &[u8]) -> Result<(KdfParams, &[u8], &[u8]), ZstorError> {
    let corrupt = |what: &str| ZstorError::CorruptManifest(what.to_string());
    if sealed.len() < 6 || &sealed[..4] != MAGIC {
        return Err(corrupt("not a zstor manifest"));
    }
    if sealed[4] != FORMAT_VERSION {
        return Err(corrupt("unsupported manifest format version"));
    }
    let u32_at = |at: usize| {
        sealed
            .get(at..at + 4)
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .map(u32::from_le_bytes)
            .ok_or_else(|| corrupt("truncated header"))
    };
    let (params, header_len) = match sealed[5] {
        KDF_RAW => (KdfParams::RawKey, 6),
        KDF_ARGON2ID => {
            let salt = sealed
                .get(18..34)
                .and_then(|b| <[u8; 16]>::try_from(b).ok())
                .ok_or_else(|| corrupt("truncated header"))?;
            (
                KdfParams::Argon2id {
                    memory_kib: u32_at(6)?,
                    iterations: u32_at(10)?,
                    parallelism: u32_at(14)?,
                    salt,
                },
                34,
            )
        }
        _ => return Err(corrupt("unknown key derivation")),
    };
    let (header, body) = sealed.split_at(header_len);
    Ok((params, header, body))
}

/// Derives the master key for a sealed manifest and decrypts it. `Err(WrongKey)` only when
/// the sealed bytes are known intact (their hash matched the location string).
pub fn open_sealed(
    sealed: &[u8],
    key_source: &KeySource,
) -> Result<(Manifest, MasterKey), ZstorError> {
    let (params, header, body) = parse_header(sealed)?;
    let master = key_source.master_key(&params)?;
    let plaintext = master
        .open_manifest(header, body)
        .ok_or(ZstorError::WrongKey)?;
    let manifest = Manifest::decode_all(&mut plaintext.as_slice())
        .map_err(|e| ZstorError::CorruptManifest(format!("undecodable: {e}")))?;
    manifest.validate()?;
    Ok((manifest, master))
}

/// First 16 bytes of blake3 of the sealed manifest.
pub fn sealed_hash(sealed: &[u8]) -> [u8; 16] {
    let mut hash = [0u8; 16];
    hash.copy_from_slice(&blake3::hash(sealed).as_bytes()[..16]);
    hash
}

/// One stored copy of the sealed manifest.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct ManifestCopy {
    pub backend_fingerprint: [u8; 4],
    pub key: Compact<u64>,
}

/// What the user keeps to find a file again.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct Location {
    pub sealed_hash: [u8; 16],
    pub copies: Vec<ManifestCopy>,
}

impl Location {
    pub fn parse(text: &str) -> Result<Location, ZstorError> {
        let text = text.trim();
        let encoded = text.strip_prefix(LOCATION_PREFIX).ok_or_else(|| {
            ZstorError::InvalidLocation(format!("does not start with {LOCATION_PREFIX}"))
        })?;
        let bytes = bs58::decode(encoded)
            .into_vec()
            .map_err(|e| ZstorError::InvalidLocation(e.to_string()))?;
        let location = Location::decode_all(&mut bytes.as_slice())
            .map_err(|e| ZstorError::InvalidLocation(e.to_string()))?;
        if location.copies.is_empty() {
            return Err(ZstorError::InvalidLocation("lists no manifest copy".into()));
        }
        Ok(location)
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{LOCATION_PREFIX}{}",
            bs58::encode(self.encode()).into_string()
        )
    }
}
