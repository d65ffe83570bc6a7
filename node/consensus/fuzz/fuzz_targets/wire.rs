//! The consensus message codec (node/consensus/src/codec.rs): every `Codec<T> for WireCodec`
//! decoder Malachite calls on bytes from peers (gossip, liveness, streamed proposals, value
//! sync) and on its WAL, all through `decode_wire` (all bytes, bounded nesting). The first input
//! byte picks the message type. Must return `Ok` or a `CodecError`, never panic; a decoded
//! message encodes again and decodes to a message that encodes the same.
#![no_main]

use bytes::Bytes;
use gridchain_consensus::codec::WireCodec;
use gridchain_consensus::context::{GridContext, ProposalPart};
use libfuzzer_sys::fuzz_target;
use malachitebft_app_channel::app::consensus::{LivenessMsg, SignedConsensusMsg};
use malachitebft_app_channel::app::streaming::StreamMessage;
use malachitebft_app_channel::app::types::codec::Codec;
use malachitebft_app_channel::app::types::core::{PolkaCertificate, ValidatorProof};
use malachitebft_app_channel::app::types::sync::{Request, Response, Status};
use malachitebft_app_channel::app::types::ProposedValue;

fn check<T>(bytes: &[u8])
where
    WireCodec: Codec<T>,
{
    let codec = WireCodec;
    if let Ok(msg) = Codec::<T>::decode(&codec, Bytes::copy_from_slice(bytes)) {
        let encoded = Codec::<T>::encode(&codec, &msg).expect("a decoded message encodes");
        let again = Codec::<T>::decode(&codec, encoded.clone()).expect("its encoding decodes");
        let twice = Codec::<T>::encode(&codec, &again).expect("encodes");
        assert_eq!(encoded, twice, "encoding is not stable");
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&kind, bytes)) = data.split_first() else {
        return;
    };
    match kind % 10 {
        0 => check::<ProposalPart>(bytes),
        1 => check::<SignedConsensusMsg<GridContext>>(bytes),
        2 => check::<LivenessMsg<GridContext>>(bytes),
        3 => check::<StreamMessage<ProposalPart>>(bytes),
        4 => check::<ValidatorProof<GridContext>>(bytes),
        5 => check::<ProposedValue<GridContext>>(bytes),
        6 => check::<PolkaCertificate<GridContext>>(bytes),
        7 => check::<Status<GridContext>>(bytes),
        8 => check::<Request<GridContext>>(bytes),
        _ => check::<Response<GridContext>>(bytes),
    }
});
