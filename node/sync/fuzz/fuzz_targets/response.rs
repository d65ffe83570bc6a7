//! The sync protocol (node/sync/src/protocol.rs): a peer's response as the syncing node
//! decodes it (`SyncResponse::decode_untrusted`: all bytes, bounded nesting) and a request as
//! `serve` decodes it (the same call on `SyncRequest`). Must give a message or `None`/an error,
//! never panic; what decodes re-encodes to the same bytes.
#![no_main]

use gridchain_primitives::block::DECODE_DEPTH_LIMIT;
use gridchain_sync::protocol::{SyncRequest, SyncResponse};
use libfuzzer_sys::fuzz_target;
use parity_scale_codec::{DecodeLimit, Encode};

fuzz_target!(|data: &[u8]| {
    let Some((&kind, bytes)) = data.split_first() else {
        return;
    };
    if kind % 2 == 0 {
        if let Some(response) = SyncResponse::decode_untrusted(bytes) {
            assert_eq!(response.encode(), bytes, "response re-encodes differently");
            if let SyncResponse::Blocks(blocks) = &response {
                for b in blocks {
                    let _ = b.block.hash();
                }
            }
        }
    } else if let Ok(request) =
        SyncRequest::decode_all_with_depth_limit(DECODE_DEPTH_LIMIT, &mut &bytes[..])
    {
        assert_eq!(request.encode(), bytes, "request re-encodes differently");
    }
});
