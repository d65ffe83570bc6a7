//! The chunk decoder (`codec::ChunkDecoder::decode`): shards as read back from backends, with
//! a layout from a manifest. Must return `Ok` or a `ZstorError`, never panic, and allocate
//! only in proportion to the shards given.
//!
//! Mode 0: layout and shards straight from the input. Mode 1: a real chunk (the input's tail
//! is the plaintext) encoded with `ChunkEncoder`, then shards dropped and one byte flipped as
//! the input says; the decoder must give the plaintext back or an error, never wrong bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::cell::RefCell;
use std::collections::HashMap;
use zstor::codec::{ChunkDecoder, ChunkEncoder, ChunkLayout, CodecParams, MIN_CHUNK_SIZE};
use zstor::crypto::FileKey;

const FILE_ID: [u8; 16] = [3; 16];

fn u32_at(data: &[u8], at: usize) -> u32 {
    let mut b = [0u8; 4];
    for (i, x) in b.iter_mut().enumerate() {
        *x = data.get(at + i).copied().unwrap_or(0);
    }
    u32::from_le_bytes(b)
}

thread_local! {
    /// Encoders and decoders by `(k, m)`, reused across inputs as `put` and `get` reuse them
    /// across chunks (building one per input costs a zstd context and a 64 KiB sample buffer).
    static CODECS: RefCell<HashMap<(u16, u16), (ChunkEncoder, ChunkDecoder)>> =
        RefCell::new(HashMap::new());
}

fuzz_target!(|data: &[u8]| {
    CODECS.with_borrow_mut(|codecs| run(codecs, data));
});

fn run(codecs: &mut HashMap<(u16, u16), (ChunkEncoder, ChunkDecoder)>, data: &[u8]) {
    if data.len() < 4 {
        return;
    }
    let k = 1 + u16::from(data[0] % 8);
    let m = 1 + u16::from(data[1] % 8);
    let params = CodecParams {
        data_shards: k,
        parity_shards: m,
        chunk_size: MIN_CHUNK_SIZE,
        zstd_level: 3,
    };
    let total = usize::from(k + m);
    let key = FileKey::from_bytes([5; 32]);
    let (encoder, decoder) = codecs.entry((k, m)).or_insert_with(|| {
        (
            ChunkEncoder::new(params).expect("valid params"),
            ChunkDecoder::new(params).expect("valid params"),
        )
    });
    let mut out = Vec::new();
    if data[2] % 2 == 0 {
        let present = data[3];
        let layout = ChunkLayout {
            plain_len: u32_at(data, 4),
            compressed: data.get(8).is_some_and(|b| b % 2 == 1),
            payload_len: u32_at(data, 9),
            shard_len: u32_at(data, 13),
        };
        let body = data.get(17..).unwrap_or(&[]);
        // shards are cut from the body, each as long as the first two bytes of its piece say
        let mut shards: Vec<Option<Vec<u8>>> = Vec::with_capacity(total);
        let mut rest = body;
        for i in 0..total {
            let len = match rest {
                [a, b, ..] => usize::from(u16::from_le_bytes([*a, *b])),
                _ => 0,
            };
            rest = rest.get(2..).unwrap_or(&[]);
            let len = len.min(rest.len());
            let (shard, tail) = rest.split_at(len);
            rest = tail;
            shards.push((present >> (i % 8) & 1 == 1).then(|| shard.to_vec()));
        }
        let _ = decoder.decode(&key, FILE_ID, 0, &layout, &mut shards, &mut out);
    } else {
        let dropped = data[3];
        let flip = data.get(4).copied().unwrap_or(0);
        let plaintext = data.get(5..).unwrap_or(&[]);
        let plaintext = &plaintext[..plaintext.len().min(MIN_CHUNK_SIZE as usize)];
        let chunk = encoder
            .encode(&key, FILE_ID, 1, plaintext)
            .expect("chunk within the size");
        let mut shards: Vec<Option<Vec<u8>>> = chunk
            .shards()
            .enumerate()
            .map(|(i, s)| (dropped >> (i % 8) & 1 == 0).then(|| s.to_vec()))
            .collect();
        // flip one bit of one shard when the flip byte's top bit is set
        let mut flipped = false;
        if flip & 0x80 != 0 {
            let target = usize::from(flip & 0x0f) % total;
            if let Some(Some(shard)) = shards.get_mut(target) {
                let at = usize::from(flip) * 7 % shard.len();
                shard[at] ^= 1 << (flip % 8);
                flipped = true;
            }
        }
        let present = shards.iter().filter(|s| s.is_some()).count();
        let result = decoder.decode(&key, FILE_ID, 1, &chunk.layout, &mut shards, &mut out);
        match result {
            Ok(()) => assert_eq!(out, plaintext, "decoded wrong bytes"),
            Err(e) => assert!(
                flipped || present < usize::from(k),
                "intact chunk with {present} of {k} needed shards failed: {e}"
            ),
        }
    }
}
