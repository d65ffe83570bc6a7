//! `Block` decoding with the node's bounded decoder (`decode_untrusted`: all bytes, bounded
//! nesting), then what an importer computes first (header hash, extrinsics root). Must return
//! `Ok` or a `DecodeError`, never panic; what decodes re-encodes to the same bytes.
#![no_main]

use gridchain_primitives::decode_untrusted;
use gridchain_runtime::Block;
use libfuzzer_sys::fuzz_target;
use parity_scale_codec::Encode;

fuzz_target!(|data: &[u8]| {
    if let Ok(block) = decode_untrusted::<Block>("block", data) {
        assert_eq!(block.encode(), data, "decoded block re-encodes differently");
        let _ = block.hash();
        let _ = Block::compute_extrinsics_root(&block.extrinsics);
    }
});
