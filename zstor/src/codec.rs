//! The chunk codec: one plaintext chunk ⇄ `k + m` checksummed shards.
//!
//! Encoding: zstd (kept only when it shrinks the chunk) → ChaCha20-Poly1305 in place, tag
//! appended (the *payload*) → zero padding to `k × shard_len` (`shard_len` even, as
//! Reed-Solomon over GF(2^16) needs) → `k` data shards are slices of the payload, `m` parity
//! shards come from `reed-solomon-simd` → blake3 of each shard.
//!
//! Decoding takes any `k` shards whose checksums matched, restores missing data shards,
//! authenticates and decrypts, then decompresses. Buffers are reused across chunks, so
//! memory stays at a few chunk sizes whatever the file size.

use crate::crypto::{ChunkBinding, FileKey, TAG_LEN};
use crate::error::ZstorError;
use chacha20poly1305::aead::AeadInPlace;
use chacha20poly1305::Tag;
use reed_solomon_simd::{ReedSolomonDecoder, ReedSolomonEncoder};

/// Largest value a zdb namespace accepts, hence the largest shard.
pub const MAX_SHARD_LEN: usize = 8 * 1024 * 1024;
/// Most shards per chunk (`k + m`).
pub const MAX_SHARDS: usize = 255;
/// Smallest and default chunk size.
pub const MIN_CHUNK_SIZE: u32 = 4 * 1024;
pub const DEFAULT_CHUNK_SIZE: u32 = 4 * 1024 * 1024;
pub const DEFAULT_ZSTD_LEVEL: i32 = 3;

/// A blake3 hash of a shard.
pub type Checksum = [u8; 32];

/// How files are cut and spread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CodecParams {
    /// `k`: shards needed to read a chunk back.
    pub data_shards: u16,
    /// `m`: shards that may be lost.
    pub parity_shards: u16,
    /// Plaintext bytes per chunk (the last chunk may be shorter).
    pub chunk_size: u32,
    /// zstd level (negative = faster, up to 22 = smaller).
    pub zstd_level: i32,
}

impl CodecParams {
    pub fn total_shards(&self) -> usize {
        usize::from(self.data_shards) + usize::from(self.parity_shards)
    }

    /// Refuses combinations the erasure code or zdb cannot hold.
    pub fn validate(&self) -> Result<(), ZstorError> {
        let (k, m) = (
            usize::from(self.data_shards),
            usize::from(self.parity_shards),
        );
        if k == 0 || m == 0 {
            return Err(ZstorError::InvalidParams(
                "need at least 1 data shard and 1 parity shard".into(),
            ));
        }
        if k + m > MAX_SHARDS {
            return Err(ZstorError::InvalidParams(format!(
                "at most {MAX_SHARDS} shards per chunk, got {k} + {m}"
            )));
        }
        if self.chunk_size < MIN_CHUNK_SIZE {
            return Err(ZstorError::InvalidParams(format!(
                "chunk size must be at least {MIN_CHUNK_SIZE} bytes"
            )));
        }
        if shard_len_for(self.chunk_size as usize + TAG_LEN, k) > MAX_SHARD_LEN {
            return Err(ZstorError::InvalidParams(format!(
                "chunk size {} over {k} data shards gives shards above zdb's {MAX_SHARD_LEN}-byte value limit",
                self.chunk_size
            )));
        }
        if !(zstd::compression_level_range().contains(&self.zstd_level)) {
            return Err(ZstorError::InvalidParams(format!(
                "zstd level {} is outside {:?}",
                self.zstd_level,
                zstd::compression_level_range()
            )));
        }
        Ok(())
    }
}

/// Shard length for a payload: `ceil(payload / k)` rounded up to even, at least 2.
pub fn shard_len_for(payload_len: usize, data_shards: usize) -> usize {
    let per_shard = payload_len.div_ceil(data_shards).max(2);
    per_shard + per_shard % 2
}

/// What the manifest records about an encoded chunk besides its shard locations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkLayout {
    pub plain_len: u32,
    pub compressed: bool,
    /// Ciphertext plus tag.
    pub payload_len: u32,
    pub shard_len: u32,
}

/// One chunk's shards with their checksums: the data shards are consecutive slices of the
/// padded payload (no copy), the parity shards come after them.
pub struct EncodedChunk {
    pub layout: ChunkLayout,
    payload: Vec<u8>,
    parity: Vec<Vec<u8>>,
    pub checksums: Vec<Checksum>,
}

impl EncodedChunk {
    pub fn shard_count(&self) -> usize {
        self.checksums.len()
    }

    /// Shard `i` (data shards first); empty past the last one.
    pub fn shard(&self, i: usize) -> &[u8] {
        let shard_len = self.layout.shard_len as usize;
        let data_shards = self.payload.len() / shard_len;
        if i < data_shards {
            &self.payload[i * shard_len..(i + 1) * shard_len]
        } else {
            self.parity.get(i - data_shards).map_or(&[], Vec::as_slice)
        }
    }

    pub fn shards(&self) -> impl Iterator<Item = &[u8]> {
        (0..self.shard_count()).map(|i| self.shard(i))
    }
}

/// Compression is tried on a sample first: when the first `SAMPLE_LEN` bytes of a chunk do not
/// shrink by at least 1/32, the chunk is stored raw without compressing the rest (encrypted or
/// already compressed data). Chunks shorter than twice the sample are always tried whole.
const SAMPLE_LEN: usize = 64 * 1024;

/// Encodes chunks; holds reusable buffers.
pub struct ChunkEncoder {
    params: CodecParams,
    compressor: zstd::bulk::Compressor<'static>,
    rs: Option<ReedSolomonEncoder>,
    sample: Vec<u8>,
}

impl ChunkEncoder {
    pub fn new(params: CodecParams) -> Result<Self, ZstorError> {
        params.validate()?;
        let compressor = zstd::bulk::Compressor::new(params.zstd_level)
            .map_err(|e| ZstorError::InvalidParams(format!("zstd: {e}")))?;
        Ok(ChunkEncoder {
            params,
            compressor,
            rs: None,
            sample: vec![0u8; SAMPLE_LEN],
        })
    }

    /// Compresses, encrypts and erasure-codes one chunk (at most `chunk_size` bytes).
    pub fn encode(
        &mut self,
        key: &FileKey,
        file_id: [u8; 16],
        index: u64,
        plaintext: &[u8],
    ) -> Result<EncodedChunk, ZstorError> {
        let k = usize::from(self.params.data_shards);
        let m = usize::from(self.params.parity_shards);
        if plaintext.len() > self.params.chunk_size as usize {
            return Err(ZstorError::InvalidParams(format!(
                "chunk of {} bytes is above the chunk size {}",
                plaintext.len(),
                self.params.chunk_size
            )));
        }
        let plain_len = plaintext.len() as u32;
        let max_shard_len = shard_len_for(plaintext.len() + TAG_LEN, k);
        let mut payload = vec![0u8; max_shard_len * k];

        // compressed output must be strictly smaller than the input to be kept
        let compressed_len = if self.worth_compressing(plaintext) {
            self.compressor
                .compress_to_buffer(plaintext, &mut payload[..plaintext.len() - 1])
                .ok()
        } else {
            None
        };
        let body_len = match compressed_len {
            Some(len) => len,
            None => {
                payload[..plaintext.len()].copy_from_slice(plaintext);
                plaintext.len()
            }
        };
        let binding = ChunkBinding {
            file_id,
            index,
            compressed: compressed_len.is_some(),
            plain_len,
        };
        let tag = key
            .chunk_cipher()
            .encrypt_in_place_detached(
                &binding.nonce(),
                &binding.associated_data(),
                &mut payload[..body_len],
            )
            .map_err(|_| ZstorError::InvalidParams("chunk too large to encrypt".into()))?;
        let payload_len = body_len + TAG_LEN;
        payload[body_len..payload_len].copy_from_slice(&tag);
        let shard_len = shard_len_for(payload_len, k);
        payload.truncate(shard_len * k);
        payload[payload_len..].fill(0);

        let rs = match self.rs.as_mut() {
            Some(rs) => {
                rs.reset(k, m, shard_len).map_err(rs_error)?;
                rs
            }
            None => self
                .rs
                .insert(ReedSolomonEncoder::new(k, m, shard_len).map_err(rs_error)?),
        };
        for shard in payload.chunks_exact(shard_len) {
            rs.add_original_shard(shard).map_err(rs_error)?;
        }
        let parity: Vec<Vec<u8>> = rs
            .encode()
            .map_err(rs_error)?
            .recovery_iter()
            .map(<[u8]>::to_vec)
            .collect();
        let checksums = payload
            .chunks_exact(shard_len)
            .chain(parity.iter().map(Vec::as_slice))
            .map(|s| *blake3::hash(s).as_bytes())
            .collect();
        Ok(EncodedChunk {
            layout: ChunkLayout {
                plain_len,
                compressed: binding.compressed,
                payload_len: payload_len as u32,
                shard_len: shard_len as u32,
            },
            payload,
            parity,
            checksums,
        })
    }

    /// False for empty chunks and for chunks whose sample does not compress.
    fn worth_compressing(&mut self, plaintext: &[u8]) -> bool {
        if plaintext.is_empty() {
            return false;
        }
        if plaintext.len() < 2 * SAMPLE_LEN {
            return true;
        }
        let sample = &plaintext[..SAMPLE_LEN];
        let limit = SAMPLE_LEN - SAMPLE_LEN / 32;
        self.compressor
            .compress_to_buffer(sample, &mut self.sample[..limit])
            .is_ok()
    }
}

fn rs_error(e: reed_solomon_simd::Error) -> ZstorError {
    ZstorError::InvalidParams(format!("Reed-Solomon: {e}"))
}

/// Rebuilds all `k + m` shards of a chunk from any `k` of them (ciphertext only: no key needed).
pub fn restore_all_shards(
    params: &CodecParams,
    layout: &ChunkLayout,
    shards: &mut [Option<Vec<u8>>],
) -> Result<(), ZstorError> {
    let k = usize::from(params.data_shards);
    let m = usize::from(params.parity_shards);
    restore_data_shards(params, layout, shards)?;
    if shards[k..].iter().all(Option::is_some) {
        return Ok(());
    }
    let mut rs = ReedSolomonEncoder::new(k, m, layout.shard_len as usize).map_err(rs_error)?;
    for shard in shards[..k].iter().flatten() {
        rs.add_original_shard(shard).map_err(rs_error)?;
    }
    let parity = rs.encode().map_err(rs_error)?;
    for (slot, recovered) in shards[k..].iter_mut().zip(parity.recovery_iter()) {
        if slot.is_none() {
            *slot = Some(recovered.to_vec());
        }
    }
    Ok(())
}

/// Fills in missing data shards (the first `k`) from any `k` present shards.
fn restore_data_shards(
    params: &CodecParams,
    layout: &ChunkLayout,
    shards: &mut [Option<Vec<u8>>],
) -> Result<(), ZstorError> {
    let k = usize::from(params.data_shards);
    let m = usize::from(params.parity_shards);
    let shard_len = layout.shard_len as usize;
    if shards.len() != k + m {
        return Err(ZstorError::InvalidParams(format!(
            "expected {} shard slots, got {}",
            k + m,
            shards.len()
        )));
    }
    if shards
        .iter()
        .flatten()
        .any(|shard| shard.len() != shard_len)
    {
        return Err(ZstorError::InvalidParams(
            "a shard has the wrong length".into(),
        ));
    }
    if shards[..k].iter().all(Option::is_some) {
        return Ok(());
    }
    let present = shards.iter().filter(|s| s.is_some()).count();
    if present < k {
        return Err(ZstorError::NotEnoughShards {
            available: present,
            needed: k,
        });
    }
    let mut rs = ReedSolomonDecoder::new(k, m, shard_len).map_err(rs_error)?;
    for (index, shard) in shards.iter().enumerate() {
        if let Some(shard) = shard {
            if index < k {
                rs.add_original_shard(index, shard).map_err(rs_error)?;
            } else {
                rs.add_recovery_shard(index - k, shard).map_err(rs_error)?;
            }
        }
    }
    let restored = rs.decode().map_err(rs_error)?;
    for (index, shard) in restored.restored_original_iter() {
        shards[index] = Some(shard.to_vec());
    }
    Ok(())
}

/// Decodes chunks; holds reusable buffers.
pub struct ChunkDecoder {
    params: CodecParams,
    decompressor: zstd::bulk::Decompressor<'static>,
    payload: Vec<u8>,
}

impl ChunkDecoder {
    pub fn new(params: CodecParams) -> Result<Self, ZstorError> {
        params.validate()?;
        let decompressor = zstd::bulk::Decompressor::new()
            .map_err(|e| ZstorError::InvalidParams(format!("zstd: {e}")))?;
        Ok(ChunkDecoder {
            params,
            decompressor,
            payload: Vec::new(),
        })
    }

    /// Restores the plaintext of a chunk from its shards (`None` = missing or failed its
    /// checksum; at least `k` must be present) into `out`, replacing its content.
    pub fn decode(
        &mut self,
        key: &FileKey,
        file_id: [u8; 16],
        index: u64,
        layout: &ChunkLayout,
        shards: &mut [Option<Vec<u8>>],
        out: &mut Vec<u8>,
    ) -> Result<(), ZstorError> {
        let k = usize::from(self.params.data_shards);
        let shard_len = layout.shard_len as usize;
        let payload_len = layout.payload_len as usize;
        if payload_len < TAG_LEN
            || payload_len > shard_len * k
            || layout.plain_len > self.params.chunk_size
        {
            return Err(ZstorError::CorruptManifest(format!(
                "chunk {index} has an impossible layout"
            )));
        }
        restore_data_shards(&self.params, layout, shards)?;
        self.payload.clear();
        for shard in shards[..k].iter().flatten() {
            self.payload.extend_from_slice(shard);
        }
        self.payload.truncate(payload_len);
        let body_len = payload_len - TAG_LEN;
        let (body, tag) = self.payload.split_at_mut(body_len);
        let binding = ChunkBinding {
            file_id,
            index,
            compressed: layout.compressed,
            plain_len: layout.plain_len,
        };
        key.chunk_cipher()
            .decrypt_in_place_detached(
                &binding.nonce(),
                &binding.associated_data(),
                body,
                Tag::from_slice(tag),
            )
            .map_err(|_| ZstorError::ChunkAuthentication { index })?;
        out.clear();
        if layout.compressed {
            out.reserve(layout.plain_len as usize);
            let written = self
                .decompressor
                .decompress_to_buffer(body, out)
                .map_err(|e| ZstorError::CorruptChunk {
                    index,
                    reason: format!("zstd: {e}"),
                })?;
            if written != layout.plain_len as usize {
                return Err(ZstorError::CorruptChunk {
                    index,
                    reason: format!(
                        "decompressed to {written} bytes, expected {}",
                        layout.plain_len
                    ),
                });
            }
        } else {
            if body.len() != layout.plain_len as usize {
                return Err(ZstorError::CorruptChunk {
                    index,
                    reason: format!("{} stored bytes, expected {}", body.len(), layout.plain_len),
                });
            }
            out.extend_from_slice(body);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const FILE_ID: [u8; 16] = [9; 16];

    fn params(k: u16, m: u16) -> CodecParams {
        CodecParams {
            data_shards: k,
            parity_shards: m,
            chunk_size: 64 * 1024,
            zstd_level: 3,
        }
    }

    fn chunk_data() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..20_000),
            (0usize..40_000, any::<u8>()).prop_map(|(len, byte)| vec![byte; len]),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn round_trips_with_up_to_m_shards_lost(
            data in chunk_data(),
            k in 1u16..7,
            m in 1u16..4,
            index in any::<u64>(),
            lost_seed in any::<u64>(),
            lost_count in 0usize..4,
        ) {
            let params = params(k, m);
            let key = FileKey::random();
            let encoded = ChunkEncoder::new(params)?.encode(&key, FILE_ID, index, &data)?;
            prop_assert_eq!(encoded.shard_count(), params.total_shards());
            for (shard, checksum) in encoded.shards().zip(&encoded.checksums) {
                prop_assert_eq!(shard.len(), encoded.layout.shard_len as usize);
                prop_assert_eq!(&blake3::hash(shard).as_bytes().to_owned(), checksum);
            }
            let mut shards: Vec<Option<Vec<u8>>> = encoded.shards().map(|s| Some(s.to_vec())).collect();
            let lost = lost_count.min(usize::from(m));
            let n = shards.len();
            for i in 0..lost {
                let position = (lost_seed as usize).wrapping_add(i * 7919) % n;
                // distinct positions: walk forward past ones already lost
                let position = (0..n).map(|j| (position + j) % n).find(|&p| shards[p].is_some());
                if let Some(position) = position {
                    shards[position] = None;
                }
            }
            let mut out = Vec::new();
            ChunkDecoder::new(params)?.decode(&key, FILE_ID, index, &encoded.layout, &mut shards, &mut out)?;
            prop_assert_eq!(out, data);
        }

        #[test]
        fn more_than_m_losses_is_an_error_not_garbage(
            data in chunk_data(),
            k in 1u16..5,
            m in 1u16..3,
        ) {
            let params = params(k, m);
            let key = FileKey::random();
            let encoded = ChunkEncoder::new(params)?.encode(&key, FILE_ID, 0, &data)?;
            let mut shards: Vec<Option<Vec<u8>>> = encoded.shards().map(|s| Some(s.to_vec())).collect();
            for shard in shards.iter_mut().take(usize::from(m) + 1) {
                *shard = None;
            }
            let mut out = Vec::new();
            let result = ChunkDecoder::new(params)?.decode(&key, FILE_ID, 0, &encoded.layout, &mut shards, &mut out);
            let is_not_enough = matches!(result, Err(ZstorError::NotEnoughShards { .. }));
            prop_assert!(is_not_enough);
        }

        #[test]
        fn tampered_shards_fail_authentication(
            data in chunk_data(),
            flip in any::<usize>(),
        ) {
            let params = params(3, 2);
            let key = FileKey::random();
            let encoded = ChunkEncoder::new(params)?.encode(&key, FILE_ID, 5, &data)?;
            let payload_len = encoded.layout.payload_len as usize;
            let shard_len = encoded.layout.shard_len as usize;
            // flip one byte of the payload (not the zero padding) inside the data shards
            let at = flip % payload_len;
            let mut shards: Vec<Option<Vec<u8>>> = encoded.shards().map(|s| Some(s.to_vec())).collect();
            if let Some(shard) = shards[at / shard_len].as_mut() {
                shard[at % shard_len] ^= 0x40;
            }
            let mut out = Vec::new();
            let result = ChunkDecoder::new(params)?.decode(&key, FILE_ID, 5, &encoded.layout, &mut shards, &mut out);
            let failed = matches!(result, Err(ZstorError::ChunkAuthentication { index: 5 }));
            prop_assert!(failed);
        }
    }

    #[test]
    fn chunks_cannot_be_moved_to_another_index_file_or_key() {
        let params = params(2, 1);
        let key = FileKey::random();
        let encoded = ChunkEncoder::new(params)
            .expect("encoder")
            .encode(&key, FILE_ID, 1, b"chunk one")
            .expect("encode");
        let mut decoder = ChunkDecoder::new(params).expect("decoder");
        let shards =
            || -> Vec<Option<Vec<u8>>> { encoded.shards().map(|s| Some(s.to_vec())).collect() };
        let mut out = Vec::new();
        for (file_id, index, key) in [
            (FILE_ID, 2, key.clone()),
            ([1; 16], 1, key.clone()),
            (FILE_ID, 1, FileKey::random()),
        ] {
            let result = decoder.decode(
                &key,
                file_id,
                index,
                &encoded.layout,
                &mut shards(),
                &mut out,
            );
            assert!(matches!(
                result,
                Err(ZstorError::ChunkAuthentication { .. })
            ));
        }
        decoder
            .decode(&key, FILE_ID, 1, &encoded.layout, &mut shards(), &mut out)
            .expect("decodes in place");
        assert_eq!(out, b"chunk one");
    }

    #[test]
    fn incompressible_chunks_are_stored_raw_and_compressible_ones_shrink() {
        let params = params(4, 2);
        let key = FileKey::random();
        let mut encoder = ChunkEncoder::new(params).expect("encoder");
        let text = vec![b'a'; 50_000];
        let encoded = encoder.encode(&key, FILE_ID, 0, &text).expect("encode");
        assert!(encoded.layout.compressed);
        assert!((encoded.layout.payload_len as usize) < 1000);
        let mut noise = vec![0u8; 50_000];
        blake3::Hasher::new().finalize_xof().fill(&mut noise);
        let encoded = encoder.encode(&key, FILE_ID, 1, &noise).expect("encode");
        assert_eq!(encoded.layout.payload_len as usize, noise.len() + TAG_LEN);
    }

    #[test]
    fn invalid_parameters_are_refused() {
        for (k, m, chunk, level) in [
            (0, 2, 4096, 3),
            (4, 0, 4096, 3),
            (200, 100, 4096, 3),
            (1, 1, 100, 3),
            (1, 1, 64 << 20, 3),
            (4, 2, 4096, 99),
        ] {
            let p = CodecParams {
                data_shards: k,
                parity_shards: m,
                chunk_size: chunk,
                zstd_level: level,
            };
            assert!(p.validate().is_err(), "{p:?}");
        }
    }
}
