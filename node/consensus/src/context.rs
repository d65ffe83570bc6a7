//! gridchain's Malachite [`Context`](mc::Context): what a height, an address, a value, a proposal,
//! a vote and a validator are, and who proposes in a round.
//!
//! The value consensus agrees on is a [`BlockValue`]: a block named by its hash. The block itself
//! travels beside the signed proposal as a stream of [`ProposalPart`]s, so the proposal message
//! stays small and the block crosses the network once.

use crate::proposer::proposer_index;
use gridchain_primitives::{account::DEFAULT_ADDRESS_PREFIX, AccountId, Hash, Pair};
use malachitebft_app_channel::app::types::core::{
    self as mc, LinearTimeouts, NilOrVal, Round, SignedExtension, VoteType,
};
use parity_scale_codec::{Decode, Encode};
use std::fmt;

/// A block number as consensus sees it. Height 0 is genesis, which is never decided.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Encode, Decode)]
pub struct Height(pub u64);

impl fmt::Display for Height {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl mc::Height for Height {
    const ZERO: Self = Height(0);
    const INITIAL: Self = Height(1);

    fn increment_by(&self, n: u64) -> Self {
        Height(self.0.saturating_add(n))
    }

    fn decrement_by(&self, n: u64) -> Option<Self> {
        self.0.checked_sub(n).map(Height)
    }

    fn as_u64(&self) -> u64 {
        self.0
    }
}

/// A validator's consensus key (an ed25519 public key, shown as an SS58 address).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Encode, Decode)]
pub struct Address(pub AccountId);

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.to_address(DEFAULT_ADDRESS_PREFIX))
    }
}

impl mc::Address for Address {}

/// The value decided at a height: the hash of the block.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Encode, Decode)]
pub struct BlockValue(pub Hash);

impl mc::Value for BlockValue {
    type Id = Hash;

    fn id(&self) -> Hash {
        self.0
    }
}

/// A 64-byte ed25519 signature, ordered so Malachite can keep it in sets.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Encode, Decode)]
pub struct ConsensusSignature(pub [u8; 64]);

impl fmt::Debug for ConsensusSignature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "0x{}…",
            gridchain_primitives::hash::encode_hex(&self.0[..8])
        )
    }
}

impl From<gridchain_primitives::Signature> for ConsensusSignature {
    fn from(s: gridchain_primitives::Signature) -> Self {
        ConsensusSignature(s.0)
    }
}

impl From<ConsensusSignature> for gridchain_primitives::Signature {
    fn from(s: ConsensusSignature) -> Self {
        gridchain_primitives::Signature(s.0)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected {expected} bytes, got {got}")]
pub struct KeyLengthError {
    pub expected: usize,
    pub got: usize,
}

/// ed25519 with gridchain's key types, verified by the chain's rule (ZIP-215, see
/// `gridchain_primitives::signature`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ed25519;

impl mc::SigningScheme for Ed25519 {
    type DecodingError = KeyLengthError;
    type Signature = ConsensusSignature;
    type PublicKey = AccountId;
    type PrivateKey = Pair;

    fn decode_signature(bytes: &[u8]) -> Result<Self::Signature, Self::DecodingError> {
        let arr: [u8; 64] = bytes.try_into().map_err(|_| KeyLengthError {
            expected: 64,
            got: bytes.len(),
        })?;
        Ok(ConsensusSignature(arr))
    }

    fn encode_signature(signature: &Self::Signature) -> Vec<u8> {
        signature.0.to_vec()
    }

    fn decode_public_key(bytes: &[u8]) -> Result<Self::PublicKey, Self::DecodingError> {
        let arr: [u8; 32] = bytes.try_into().map_err(|_| KeyLengthError {
            expected: 32,
            got: bytes.len(),
        })?;
        Ok(AccountId(arr))
    }

    fn encode_public_key(public_key: &Self::PublicKey) -> Vec<u8> {
        public_key.0.to_vec()
    }
}

/// A proposal for `value` at (`height`, `round`); `pol_round` is the round of the polka that
/// made it valid when re-proposed, or nil.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Proposal {
    pub height: Height,
    pub round: Round,
    pub value: BlockValue,
    pub pol_round: Round,
    pub proposer: Address,
}

impl mc::Proposal<GridContext> for Proposal {
    fn height(&self) -> Height {
        self.height
    }
    fn round(&self) -> Round {
        self.round
    }
    fn value(&self) -> &BlockValue {
        &self.value
    }
    fn take_value(self) -> BlockValue {
        self.value
    }
    fn pol_round(&self) -> Round {
        self.pol_round
    }
    fn validator_address(&self) -> &Address {
        &self.proposer
    }
}

/// A prevote or precommit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vote {
    pub vote_type: VoteType,
    pub height: Height,
    pub round: Round,
    pub value: NilOrVal<Hash>,
    pub validator: Address,
    /// Always `None` today: gridchain runs with vote extensions disabled.
    pub extension: Option<SignedExtension<GridContext>>,
}

impl mc::Vote<GridContext> for Vote {
    fn height(&self) -> Height {
        self.height
    }
    fn round(&self) -> Round {
        self.round
    }
    fn value(&self) -> &NilOrVal<Hash> {
        &self.value
    }
    fn take_value(self) -> NilOrVal<Hash> {
        self.value
    }
    fn vote_type(&self) -> VoteType {
        self.vote_type
    }
    fn validator_address(&self) -> &Address {
        &self.validator
    }
    fn extension(&self) -> Option<&SignedExtension<GridContext>> {
        self.extension.as_ref()
    }
    fn take_extension(&mut self) -> Option<SignedExtension<GridContext>> {
        self.extension.take()
    }
    fn extend(self, extension: SignedExtension<GridContext>) -> Self {
        Vote {
            extension: Some(extension),
            ..self
        }
    }
}

/// One piece of a streamed proposal: `Init` names the proposal, `Data` carries a slice of the
/// SCALE-encoded block, `Fin` carries the proposer's signature over all of it.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub enum ProposalPart {
    Init(ProposalInit),
    Data(Vec<u8>),
    Fin(ProposalFin),
}

#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct ProposalInit {
    pub height: u64,
    pub round: u32,
    /// `-1` when nil.
    pub pol_round: i64,
    pub proposer: Address,
}

#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct ProposalFin {
    pub signature: ConsensusSignature,
}

impl mc::ProposalPart<GridContext> for ProposalPart {
    fn is_first(&self) -> bool {
        matches!(self, ProposalPart::Init(_))
    }
    fn is_last(&self) -> bool {
        matches!(self, ProposalPart::Fin(_))
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct Validator {
    /// The consensus key, which signs votes and proposals.
    pub address: Address,
    pub public_key: AccountId,
    /// The staking account, paid the fees and reward of the blocks this validator proposes.
    pub account: AccountId,
    pub power: u64,
}

impl mc::Validator<GridContext> for Validator {
    fn address(&self) -> &Address {
        &self.address
    }
    fn public_key(&self) -> &AccountId {
        &self.public_key
    }
    fn voting_power(&self) -> u64 {
        self.power
    }
}

/// The validators of one height, sorted by address (so every node indexes them alike).
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct ValidatorSet {
    validators: Vec<Validator>,
}

impl ValidatorSet {
    /// Sorts by address and drops validators without power. Panics on nothing: an empty set is
    /// allowed here, and the caller refuses to run consensus with it.
    pub fn new(mut validators: Vec<Validator>) -> Self {
        validators.retain(|v| v.power > 0);
        validators.sort_by_key(|v| v.address);
        validators.dedup_by(|a, b| a.address == b.address);
        ValidatorSet { validators }
    }

    pub fn validators(&self) -> &[Validator] {
        &self.validators
    }

    pub fn is_empty(&self) -> bool {
        self.validators.is_empty()
    }
}

impl mc::ValidatorSet<GridContext> for ValidatorSet {
    fn count(&self) -> usize {
        self.validators.len()
    }
    fn total_voting_power(&self) -> u64 {
        self.validators.iter().map(|v| v.power).sum()
    }
    fn get_by_address(&self, address: &Address) -> Option<&Validator> {
        self.validators
            .binary_search_by(|v| v.address.cmp(address))
            .ok()
            .map(|i| &self.validators[i])
    }
    fn get_by_index(&self, index: usize) -> Option<&Validator> {
        self.validators.get(index)
    }
}

/// gridchain's consensus context. It carries no state: proposer selection is a pure function of
/// the validator set, the height and the round.
#[derive(Clone, Copy, Debug, Default)]
pub struct GridContext;

impl mc::Context for GridContext {
    type Address = Address;
    type Height = Height;
    type ProposalPart = ProposalPart;
    type Proposal = Proposal;
    type Validator = Validator;
    type ValidatorSet = ValidatorSet;
    type Timeouts = LinearTimeouts;
    type Value = BlockValue;
    type Vote = Vote;
    type Extension = ();
    type SigningScheme = Ed25519;

    fn select_proposer<'a>(
        &self,
        validator_set: &'a ValidatorSet,
        height: Height,
        round: Round,
    ) -> &'a Validator {
        let powers: Vec<u64> = validator_set.validators.iter().map(|v| v.power).collect();
        let round = round.as_u32().unwrap_or(0);
        // Consensus never asks with an empty set: `HeightParams` are built only from non-empty
        // sets (see `app::height_params`).
        &validator_set.validators[proposer_index(&powers, height.0, round)]
    }

    fn new_proposal(
        &self,
        height: Height,
        round: Round,
        value: BlockValue,
        pol_round: Round,
        address: Address,
    ) -> Proposal {
        Proposal {
            height,
            round,
            value,
            pol_round,
            proposer: address,
        }
    }

    fn new_prevote(
        &self,
        height: Height,
        round: Round,
        value_id: NilOrVal<Hash>,
        address: Address,
    ) -> Vote {
        Vote {
            vote_type: VoteType::Prevote,
            height,
            round,
            value: value_id,
            validator: address,
            extension: None,
        }
    }

    fn new_precommit(
        &self,
        height: Height,
        round: Round,
        value_id: NilOrVal<Hash>,
        address: Address,
    ) -> Vote {
        Vote {
            vote_type: VoteType::Precommit,
            height,
            round,
            value: value_id,
            validator: address,
            extension: None,
        }
    }
}
