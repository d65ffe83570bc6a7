//! `Extrinsic<Call>` decoding exactly as `author_submitExtrinsic` does it (node/rpc:
//! `decode_untrusted("extrinsic", ..)`: all bytes, nesting bounded by `DECODE_DEPTH_LIMIT`).
//! Must return `Ok` or a `DecodeError`, never panic; what decodes re-encodes to the same bytes
//! (the extrinsic hash is taken over the encoding, so it must not be malleable).
#![no_main]

use gridchain_primitives::decode_untrusted;
use gridchain_runtime::Extrinsic;
use libfuzzer_sys::fuzz_target;
use parity_scale_codec::Encode;

fuzz_target!(|data: &[u8]| {
    if let Ok(xt) = decode_untrusted::<Extrinsic>("extrinsic", data) {
        assert_eq!(xt.encode(), data, "decoded extrinsic re-encodes differently");
    }
});
