//! The sync protocol's messages (SCALE), carried by `gridchain-network`'s request-response
//! protocol `/gridchain/<genesis>/sync/1`, and how a node answers them.

use gridchain_primitives::{block::DECODE_DEPTH_LIMIT, finality::CommitCertificate, BlockNumber};
use gridchain_runtime::Block;
use gridchain_storage::Storage;
use parity_scale_codec::{Decode, DecodeLimit, Encode};

/// Most blocks asked for (and served) in one request.
pub const MAX_BLOCKS_PER_REQUEST: u32 = 512;
/// A response stops adding blocks past this many bytes (it always holds at least one block).
/// Each response is checked and imported as it comes, so smaller ones pipeline dense runs of
/// blocks better; larger ones cost more round trips only for big blocks.
pub const RESPONSE_BYTES: usize = 1024 * 1024;

/// What a node asks a peer.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub enum SyncRequest {
    /// The peer's best final block number.
    Status,
    /// Final blocks `from, from + 1, …` with their certificates: at most `max` of them and about
    /// [`RESPONSE_BYTES`], fewer if the peer's chain ends sooner.
    Blocks { from: BlockNumber, max: u32 },
}

/// A peer's answer.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub enum SyncResponse {
    Status {
        best: BlockNumber,
    },
    Blocks(Vec<FinalBlock>),
    /// The request was not understood, or the peer could not read its database.
    Refused(String),
}

/// A block and the certificate that makes it final.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct FinalBlock {
    pub block: Block,
    pub certificate: CommitCertificate,
}

impl SyncResponse {
    /// Decodes a response from the network: depth-limited and whole, or `None`.
    pub fn decode_untrusted(bytes: &[u8]) -> Option<Self> {
        Self::decode_all_with_depth_limit(DECODE_DEPTH_LIMIT, &mut &bytes[..]).ok()
    }
}

/// Answers a request from `storage` (bytes in, bytes out: `gridchain-network`'s request handler).
pub fn serve(storage: &Storage, request: &[u8]) -> Vec<u8> {
    let response =
        match SyncRequest::decode_all_with_depth_limit(DECODE_DEPTH_LIMIT, &mut &request[..]) {
            Err(e) => SyncResponse::Refused(format!("undecodable request: {e}")),
            Ok(request) => answer(storage, request)
                .unwrap_or_else(|e| SyncResponse::Refused(format!("cannot read blocks: {e}"))),
        };
    response.encode()
}

fn answer(storage: &Storage, request: SyncRequest) -> gridchain_storage::Result<SyncResponse> {
    match request {
        SyncRequest::Status => Ok(SyncResponse::Status {
            best: storage.best_header()?.map_or(0, |h| h.number),
        }),
        SyncRequest::Blocks { from, max } => {
            let mut blocks = Vec::new();
            let mut bytes = 0;
            let last = from
                .max(1)
                .saturating_add(max.min(MAX_BLOCKS_PER_REQUEST) as u64);
            for number in from.max(1)..last {
                let Some(hash) = storage.hash_of(number)? else {
                    break;
                };
                let (Some(block), Some(certificate)) =
                    (storage.block(&hash)?, storage.certificate(number)?)
                else {
                    break;
                };
                bytes += block.encoded_size() + certificate.encoded_size();
                blocks.push(FinalBlock { block, certificate });
                if bytes >= RESPONSE_BYTES {
                    break;
                }
            }
            Ok(SyncResponse::Blocks(blocks))
        }
    }
}
