//! The sync protocol's messages (SCALE), carried by `gridchain-network`'s request-response
//! protocol `/gridchain/<genesis>/sync/1`, and how a node answers them.

use gridchain_network::PeerId;
use gridchain_primitives::{block::DECODE_DEPTH_LIMIT, finality::CommitCertificate, BlockNumber};
use gridchain_runtime::Block;
use gridchain_storage::Storage;
use parity_scale_codec::{Decode, DecodeLimit, Encode};
use parking_lot::Mutex;
use std::{collections::HashMap, sync::Arc};

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

/// Requests one peer may have answered at the same time; more are refused. A catching-up
/// node keeps 4 segments in flight (plus a status), so an honest peer never meets the limit.
pub const MAX_IN_FLIGHT_PER_PEER: usize = 8;
/// Requests answered at the same time from all peers together: each holds a blocking thread
/// and up to [`RESPONSE_BYTES`] of blocks, so many peers at once must not take over the node.
pub const MAX_IN_FLIGHT: usize = 64;

/// Answers peers' requests from `storage`, within [`MAX_IN_FLIGHT_PER_PEER`] and
/// [`MAX_IN_FLIGHT`]; a request beyond them gets `Refused` at once (the asking node tries
/// another peer or later).
pub struct Server {
    storage: Arc<Storage>,
    in_flight: Mutex<HashMap<PeerId, usize>>,
}

/// A request being answered; counted until dropped.
pub(crate) struct Permit<'a> {
    server: &'a Server,
    peer: PeerId,
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        let mut in_flight = self.server.in_flight.lock();
        if let Some(count) = in_flight.get_mut(&self.peer) {
            *count -= 1;
            if *count == 0 {
                in_flight.remove(&self.peer);
            }
        }
    }
}

impl Server {
    pub fn new(storage: Arc<Storage>) -> Self {
        Server {
            storage,
            in_flight: Mutex::new(HashMap::new()),
        }
    }

    /// `gridchain-network`'s request handler: bytes in from `peer`, bytes out.
    pub fn serve(&self, peer: PeerId, request: &[u8]) -> Vec<u8> {
        match self.permit(peer) {
            Some(_permit) => serve(&self.storage, request),
            None => SyncResponse::Refused("too many requests in flight".into()).encode(),
        }
    }

    pub(crate) fn permit(&self, peer: PeerId) -> Option<Permit<'_>> {
        let mut in_flight = self.in_flight.lock();
        let total: usize = in_flight.values().sum();
        let count = in_flight.entry(peer).or_default();
        if *count >= MAX_IN_FLIGHT_PER_PEER || total >= MAX_IN_FLIGHT {
            if *count == 0 {
                in_flight.remove(&peer);
            }
            return None;
        }
        *count += 1;
        Some(Permit { server: self, peer })
    }
}

/// Answers a request from `storage` (bytes in, bytes out), without limits.
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
