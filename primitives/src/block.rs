//! Headers, blocks and signed extrinsics.
//!
//! Everything here is SCALE-encoded on the wire, in storage and when hashed or signed. A block
//! hash is `blake2b-256(SCALE(header))`; an extrinsic hash is `blake2b-256(SCALE(extrinsic))`.

use crate::{
    account::{AccountId, Balance, Pair, Signature},
    hash::Hash,
    merkle,
    signature::SignatureBatch,
};
use parity_scale_codec::{Decode, DecodeLimit, Encode};
use serde::{Deserialize, Serialize};

pub type BlockNumber = u64;

/// Version of the runtime's rules. It is part of every signed payload, so a transaction signed
/// for one version cannot be replayed after an upgrade changes what its call means.
pub type SpecVersion = u32;

/// How deep nested SCALE values may go when decoding untrusted bytes.
pub const DECODE_DEPTH_LIMIT: u32 = 32;

#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Header {
    pub parent_hash: Hash,
    pub number: BlockNumber,
    /// Milliseconds since the Unix epoch, set by the proposer; strictly increasing.
    pub timestamp_ms: u64,
    /// Root of the Jellyfish Merkle tree over the whole state after this block.
    pub state_root: Hash,
    /// Binary Merkle root over the hashes of this block's extrinsics (see [`merkle`]).
    pub extrinsics_root: Hash,
    pub proposer: AccountId,
}

impl Header {
    pub fn hash(&self) -> Hash {
        Hash::of_encoded(self)
    }
}

/// How long a transaction stays valid: it is rejected in any block numbered above `valid_until`.
/// Keeping this short bounds the replay window and lets the pool forget old transactions.
pub type Mortality = BlockNumber;

/// A signed transaction carrying one runtime call.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct Extrinsic<Call> {
    pub signer: AccountId,
    pub signature: Signature,
    pub nonce: u64,
    pub valid_until: Mortality,
    pub tip: Balance,
    pub call: Call,
}

/// What the signer signs: the call and its terms, bound to one chain (genesis hash) and one
/// runtime version.
#[derive(Debug, Clone, PartialEq, Eq, Encode)]
pub struct SignedPayload<'a, Call> {
    pub call: &'a Call,
    pub nonce: u64,
    pub valid_until: Mortality,
    pub tip: Balance,
    pub genesis_hash: Hash,
    pub spec_version: SpecVersion,
}

/// The chain a transaction is signed for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainContext {
    pub genesis_hash: Hash,
    pub spec_version: SpecVersion,
}

impl<Call: Encode> Extrinsic<Call> {
    /// Signs `call` with `pair` for the chain `ctx`.
    pub fn sign(
        pair: &Pair,
        call: Call,
        nonce: u64,
        valid_until: Mortality,
        tip: Balance,
        ctx: ChainContext,
    ) -> Self {
        let payload = SignedPayload {
            call: &call,
            nonce,
            valid_until,
            tip,
            genesis_hash: ctx.genesis_hash,
            spec_version: ctx.spec_version,
        };
        let signature = pair.sign(&payload.encode());
        Extrinsic {
            signer: pair.public(),
            signature,
            nonce,
            valid_until,
            tip,
            call,
        }
    }

    /// The bytes the signature must cover on chain `ctx`.
    pub fn signing_payload(&self, ctx: ChainContext) -> Vec<u8> {
        SignedPayload {
            call: &self.call,
            nonce: self.nonce,
            valid_until: self.valid_until,
            tip: self.tip,
            genesis_hash: ctx.genesis_hash,
            spec_version: ctx.spec_version,
        }
        .encode()
    }

    /// Whether the signature is valid for chain `ctx`.
    pub fn verify_signature(&self, ctx: ChainContext) -> bool {
        self.signer
            .verify(&self.signing_payload(ctx), &self.signature)
    }

    /// Queues [`Self::verify_signature`]'s check in `batch`.
    pub fn queue_signature(&self, ctx: ChainContext, batch: &mut SignatureBatch) {
        batch.push(&self.signer, &self.signing_payload(ctx), &self.signature)
    }

    pub fn hash(&self) -> Hash {
        Hash::of_encoded(self)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct Block<Call> {
    pub header: Header,
    pub extrinsics: Vec<Extrinsic<Call>>,
}

impl<Call: Encode> Block<Call> {
    pub fn hash(&self) -> Hash {
        self.header.hash()
    }

    /// The extrinsics root these extrinsics must have.
    pub fn compute_extrinsics_root(extrinsics: &[Extrinsic<Call>]) -> Hash {
        let leaves: Vec<Hash> = extrinsics.iter().map(|x| x.hash()).collect();
        merkle::root(&leaves)
    }
}

/// Why untrusted bytes did not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot decode {what}: {reason}")]
pub struct DecodeError {
    pub what: &'static str,
    pub reason: String,
}

/// Decodes untrusted bytes: all input must be used and nesting is bounded, so neither trailing
/// garbage nor deep recursion gets through. Never panics.
pub fn decode_untrusted<T: Decode>(what: &'static str, bytes: &[u8]) -> Result<T, DecodeError> {
    T::decode_all_with_depth_limit(DECODE_DEPTH_LIMIT, &mut &bytes[..]).map_err(|e| DecodeError {
        what,
        reason: e.to_string(),
    })
}
