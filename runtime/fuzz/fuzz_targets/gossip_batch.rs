//! A gossiped transaction batch as a node receives it: `gridchain-network` decodes the gossip
//! message as `Vec<Vec<u8>>` (`decode_all_with_depth_limit(DECODE_DEPTH_LIMIT, ..)`, in
//! node/network/src/lib.rs `on_event`), then `gridchain-service`'s `pool_gossiped` decodes each
//! entry with `decode_untrusted::<Extrinsic>`. The same two calls here (the network crate
//! itself would drag libp2p into the fuzz build). Must not panic or allocate beyond the input.
#![no_main]

use gridchain_primitives::{block::DECODE_DEPTH_LIMIT, decode_untrusted};
use gridchain_runtime::Extrinsic;
use libfuzzer_sys::fuzz_target;
use parity_scale_codec::DecodeLimit;

fuzz_target!(|data: &[u8]| {
    if let Ok(batch) = Vec::<Vec<u8>>::decode_all_with_depth_limit(DECODE_DEPTH_LIMIT, &mut &data[..]) {
        let total: usize = batch.iter().map(Vec::len).sum();
        assert!(total <= data.len());
        for bytes in &batch {
            let _ = decode_untrusted::<Extrinsic>("gossiped extrinsic", bytes);
        }
    }
});
