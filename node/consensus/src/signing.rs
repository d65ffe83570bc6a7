//! What validators sign, and the Malachite signer/verifier over gridchain's ed25519 keys.
//!
//! Every signed consensus message starts with a domain tag and the chain's genesis hash, so a
//! vote, a proposal or a part stream can never be replayed on another chain or mistaken for
//! another kind of message (or for a transaction, whose payload has no such tag).

use crate::context::{Address, ConsensusSignature, GridContext, Height, Proposal, Vote};
use async_trait::async_trait;
use gridchain_primitives::{finality, AccountId, Hash, Pair};
use malachitebft_app_channel::app::types::core::{
    NilOrVal, Round, SignedMessage, ValidatorProof, VoteExtensionScope, VoteType,
};
use malachitebft_signing::{Signer, VerificationResult, Verifier};
use parity_scale_codec::Encode;

/// Round on the wire and in signed bytes: `-1` for nil.
pub fn round_to_i64(round: Round) -> i64 {
    round.as_i64()
}

/// The inverse of [`round_to_i64`]; `None` for anything below `-1` or above `u32::MAX`.
pub fn round_from_i64(value: i64) -> Option<Round> {
    match value {
        -1 => Some(Round::Nil),
        v if (0..=u32::MAX as i64).contains(&v) => Some(Round::new(v as u32)),
        _ => None,
    }
}

/// The bytes a validator signs for a vote (see `gridchain_primitives::finality`, which checks
/// stored commit certificates with the same bytes).
pub fn vote_sign_bytes(
    genesis: Hash,
    vote_type: VoteType,
    height: Height,
    round: Round,
    value: &NilOrVal<Hash>,
    validator: &Address,
) -> Vec<u8> {
    let kind = match vote_type {
        VoteType::Prevote => finality::PREVOTE,
        VoteType::Precommit => finality::PRECOMMIT,
    };
    let value = match value {
        NilOrVal::Nil => None,
        NilOrVal::Val(h) => Some(*h),
    };
    finality::vote_sign_bytes(
        genesis,
        kind,
        height.0,
        round_to_i64(round),
        value,
        &validator.0,
    )
}

fn proposal_sign_bytes(genesis: Hash, p: &Proposal) -> Vec<u8> {
    (
        b"gridchain/proposal",
        genesis,
        p.height.0,
        round_to_i64(p.round),
        p.value.0,
        round_to_i64(p.pol_round),
        p.proposer,
    )
        .encode()
}

/// The bytes a proposer signs to close a part stream: the proposal's coordinates and the hash
/// of all data parts in order.
pub fn parts_sign_bytes(
    genesis: Hash,
    height: u64,
    round: u32,
    pol_round: i64,
    data_hash: Hash,
) -> Vec<u8> {
    (
        b"gridchain/proposal-parts",
        genesis,
        height,
        round,
        pol_round,
        data_hash,
    )
        .encode()
}

fn extension_sign_bytes(genesis: Hash, scope: &VoteExtensionScope<GridContext>) -> Vec<u8> {
    (
        b"gridchain/vote-extension",
        genesis,
        scope.height.0,
        round_to_i64(scope.round),
        scope.value_id,
        scope.validator_address,
    )
        .encode()
}

fn validator_proof_sign_bytes(genesis: Hash, public_key: &[u8], peer_id: &[u8]) -> Vec<u8> {
    let mut bytes = b"gridchain/validator-proof".to_vec();
    bytes.extend_from_slice(&genesis.0);
    bytes.extend(ValidatorProof::<GridContext>::signing_bytes(
        public_key, peer_id,
    ));
    bytes
}

/// Signs with the validator's key.
pub struct GridSigner {
    pub key: Pair,
    pub genesis: Hash,
}

impl GridSigner {
    pub fn address(&self) -> Address {
        Address(self.key.public())
    }

    pub fn sign(&self, bytes: &[u8]) -> ConsensusSignature {
        self.key.sign(bytes).into()
    }
}

type SigningError = malachitebft_signing::Error;

#[async_trait]
impl Signer<GridContext> for GridSigner {
    async fn sign_vote(
        &self,
        vote: Vote,
    ) -> Result<SignedMessage<GridContext, Vote>, SigningError> {
        let bytes = vote_sign_bytes(
            self.genesis,
            vote.vote_type,
            vote.height,
            vote.round,
            &vote.value,
            &vote.validator,
        );
        let signature = self.sign(&bytes);
        Ok(SignedMessage::new(vote, signature))
    }

    async fn sign_proposal(
        &self,
        proposal: Proposal,
    ) -> Result<SignedMessage<GridContext, Proposal>, SigningError> {
        let signature = self.sign(&proposal_sign_bytes(self.genesis, &proposal));
        Ok(SignedMessage::new(proposal, signature))
    }

    async fn sign_vote_extension(
        &self,
        scope: VoteExtensionScope<GridContext>,
        extension: (),
    ) -> Result<SignedMessage<GridContext, ()>, SigningError> {
        let signature = self.sign(&extension_sign_bytes(self.genesis, &scope));
        Ok(SignedMessage::new(extension, signature))
    }

    async fn sign_validator_proof(
        &self,
        public_key: Vec<u8>,
        peer_id: Vec<u8>,
    ) -> Result<ValidatorProof<GridContext>, SigningError> {
        let signature = self.sign(&validator_proof_sign_bytes(
            self.genesis,
            &public_key,
            &peer_id,
        ));
        Ok(ValidatorProof::new(public_key, peer_id, signature))
    }
}

/// Checks signatures for this chain.
pub struct GridVerifier {
    pub genesis: Hash,
}

fn verdict(key: &AccountId, bytes: &[u8], signature: &ConsensusSignature) -> VerificationResult {
    VerificationResult::from_bool(key.verify(bytes, &(*signature).into()))
}

#[async_trait]
impl Verifier<GridContext> for GridVerifier {
    async fn verify_signed_vote(
        &self,
        vote: &Vote,
        signature: &ConsensusSignature,
        public_key: &AccountId,
    ) -> Result<VerificationResult, SigningError> {
        let bytes = vote_sign_bytes(
            self.genesis,
            vote.vote_type,
            vote.height,
            vote.round,
            &vote.value,
            &vote.validator,
        );
        Ok(verdict(public_key, &bytes, signature))
    }

    async fn verify_signed_proposal(
        &self,
        proposal: &Proposal,
        signature: &ConsensusSignature,
        public_key: &AccountId,
    ) -> Result<VerificationResult, SigningError> {
        Ok(verdict(
            public_key,
            &proposal_sign_bytes(self.genesis, proposal),
            signature,
        ))
    }

    async fn verify_signed_vote_extension(
        &self,
        scope: &VoteExtensionScope<GridContext>,
        _extension: &(),
        signature: &ConsensusSignature,
        public_key: &AccountId,
    ) -> Result<VerificationResult, SigningError> {
        Ok(verdict(
            public_key,
            &extension_sign_bytes(self.genesis, scope),
            signature,
        ))
    }

    async fn verify_validator_proof(
        &self,
        proof: &ValidatorProof<GridContext>,
    ) -> Result<VerificationResult, SigningError> {
        let Ok(key) = <[u8; 32]>::try_from(proof.public_key.as_slice()) else {
            return Ok(VerificationResult::Invalid);
        };
        Ok(verdict(
            &AccountId(key),
            &validator_proof_sign_bytes(self.genesis, &proof.public_key, &proof.peer_id),
            &proof.signature,
        ))
    }
}
