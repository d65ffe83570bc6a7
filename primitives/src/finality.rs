//! Commit certificates: the proof that a block is final.
//!
//! A block at height `h` is final once validators holding more than 2/3 of the voting power of
//! `h`'s validator set signed a precommit for its hash in one round. Every node stores that set
//! of signatures beside the block, and anyone holding the validator set of `h` (from the chain
//! state after `h - 1`) can check it with [`CommitCertificate::verify`] — no consensus engine
//! needed, which is what a light client does.

use crate::{
    account::{AccountId, Signature},
    block::BlockNumber,
    hash::Hash,
    signature::SignatureBatch,
};
use parity_scale_codec::{Decode, Encode};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// Kind byte of a prevote in [`vote_sign_bytes`].
pub const PREVOTE: u8 = 0;
/// Kind byte of a precommit in [`vote_sign_bytes`].
pub const PRECOMMIT: u8 = 1;

/// The bytes a validator signs for a vote of `kind` ([`PREVOTE`] or [`PRECOMMIT`]) at
/// (`height`, `round`, `-1` for nil) for `value` (`None` for nil), on the chain `genesis`.
pub fn vote_sign_bytes(
    genesis: Hash,
    kind: u8,
    height: BlockNumber,
    round: i64,
    value: Option<Hash>,
    validator: &AccountId,
) -> Vec<u8> {
    (
        b"gridchain/vote",
        genesis,
        kind,
        height,
        round,
        value,
        validator,
    )
        .encode()
}

/// Precommit signatures for one block.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CommitCertificate {
    pub height: BlockNumber,
    pub round: u32,
    pub block_hash: Hash,
    /// (validator consensus key, precommit signature).
    pub signatures: Vec<(AccountId, Signature)>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertificateError {
    #[error("certificate is for height {got}, expected {expected}")]
    WrongHeight {
        expected: BlockNumber,
        got: BlockNumber,
    },
    #[error("certificate is for block {got}, expected {expected}")]
    WrongBlock { expected: Hash, got: Hash },
    #[error("{0} is not a validator at this height")]
    UnknownSigner(AccountId),
    #[error("{0} signed twice")]
    DuplicateSigner(AccountId),
    #[error("bad precommit signature from {0}")]
    BadSignature(AccountId),
    #[error("signers hold {signed} of {total} voting power; more than 2/3 is needed")]
    NotEnoughPower { signed: u128, total: u128 },
}

impl CommitCertificate {
    /// Checks that this certificate makes block `block_hash` at `height` final under
    /// `validators` ((consensus key, voting power) of that height) on chain `genesis`.
    pub fn verify(
        &self,
        genesis: Hash,
        height: BlockNumber,
        block_hash: Hash,
        validators: &[(AccountId, u64)],
    ) -> Result<(), CertificateError> {
        self.verify_power(height, block_hash, validators)?;
        self.verify_signatures(genesis)
    }

    /// The part of [`Self::verify`] without cryptography: the certificate is for `block_hash` at
    /// `height`, every signer is in `validators` once, and the signers hold more than 2/3 of the
    /// power. Together with [`Self::verify_signatures`] (which may run earlier, on another
    /// thread, since it needs no chain state) it is the whole check.
    pub fn verify_power(
        &self,
        height: BlockNumber,
        block_hash: Hash,
        validators: &[(AccountId, u64)],
    ) -> Result<(), CertificateError> {
        if self.height != height {
            return Err(CertificateError::WrongHeight {
                expected: height,
                got: self.height,
            });
        }
        if self.block_hash != block_hash {
            return Err(CertificateError::WrongBlock {
                expected: block_hash,
                got: self.block_hash,
            });
        }
        let total: u128 = validators.iter().map(|(_, p)| *p as u128).sum();
        let mut seen = BTreeSet::new();
        let mut signed: u128 = 0;
        for (signer, _) in &self.signatures {
            let power = validators
                .iter()
                .find(|(k, _)| k == signer)
                .map(|(_, p)| *p)
                .ok_or(CertificateError::UnknownSigner(*signer))?;
            if !seen.insert(*signer) {
                return Err(CertificateError::DuplicateSigner(*signer));
            }
            signed += power as u128;
        }
        if signed * 3 <= total * 2 {
            return Err(CertificateError::NotEnoughPower { signed, total });
        }
        Ok(())
    }

    /// Every signature is its signer's precommit for this certificate's block, height and round
    /// on chain `genesis`.
    pub fn verify_signatures(&self, genesis: Hash) -> Result<(), CertificateError> {
        let mut batch = SignatureBatch::with_capacity(self.signatures.len());
        self.queue_signatures(genesis, &mut batch);
        match batch.first_invalid() {
            Some(bad) => Err(CertificateError::BadSignature(self.signatures[bad].0)),
            None => Ok(()),
        }
    }

    /// Queues [`Self::verify_signatures`]'s checks in `batch`, one per signer, in order.
    pub fn queue_signatures(&self, genesis: Hash, batch: &mut SignatureBatch) {
        for (signer, signature) in &self.signatures {
            let bytes = vote_sign_bytes(
                genesis,
                PRECOMMIT,
                self.height,
                self.round as i64,
                Some(self.block_hash),
                signer,
            );
            batch.push(signer, &bytes, signature);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Pair;

    fn sign(pair: &Pair, genesis: Hash, height: u64, round: u32, block: Hash) -> Signature {
        pair.sign(&vote_sign_bytes(
            genesis,
            PRECOMMIT,
            height,
            round as i64,
            Some(block),
            &pair.public(),
        ))
    }

    #[test]
    fn more_than_two_thirds_of_power_is_final() {
        let genesis = Hash::of(b"g");
        let block = Hash::of(b"b");
        let keys: Vec<Pair> = ["A", "B", "C", "D"].iter().map(|n| Pair::dev(n)).collect();
        let set: Vec<_> = keys.iter().map(|k| (k.public(), 10)).collect();
        let cert = |signers: &[usize]| CommitCertificate {
            height: 5,
            round: 1,
            block_hash: block,
            signatures: signers
                .iter()
                .map(|i| (keys[*i].public(), sign(&keys[*i], genesis, 5, 1, block)))
                .collect(),
        };
        assert_eq!(cert(&[0, 1, 2]).verify(genesis, 5, block, &set), Ok(()));
        assert_eq!(
            cert(&[0, 1]).verify(genesis, 5, block, &set),
            Err(CertificateError::NotEnoughPower {
                signed: 20,
                total: 40
            })
        );
        assert_eq!(
            cert(&[0, 0, 1, 2]).verify(genesis, 5, block, &set),
            Err(CertificateError::DuplicateSigner(keys[0].public()))
        );
        // Another chain, height or block: nothing verifies.
        assert!(cert(&[0, 1, 2])
            .verify(Hash::of(b"other"), 5, block, &set)
            .is_err());
        assert!(cert(&[0, 1, 2]).verify(genesis, 6, block, &set).is_err());
        let mut forged = cert(&[0, 1, 2]);
        forged.block_hash = Hash::of(b"x");
        assert!(forged.verify(genesis, 5, Hash::of(b"x"), &set).is_err());
        let outsider = Pair::dev("Mallory");
        let mut extra = cert(&[0, 1]);
        extra
            .signatures
            .push((outsider.public(), sign(&outsider, genesis, 5, 1, block)));
        assert_eq!(
            extra.verify(genesis, 5, block, &set),
            Err(CertificateError::UnknownSigner(outsider.public()))
        );
    }

    #[test]
    fn power_not_head_count_decides() {
        let genesis = Hash::of(b"g");
        let block = Hash::of(b"b");
        let big = Pair::dev("Big");
        let small: Vec<Pair> = ["s1", "s2", "s3"].iter().map(|n| Pair::dev(n)).collect();
        let mut set = vec![(big.public(), 70)];
        set.extend(small.iter().map(|k| (k.public(), 10)));
        let only_big = CommitCertificate {
            height: 1,
            round: 0,
            block_hash: block,
            signatures: vec![(big.public(), sign(&big, genesis, 1, 0, block))],
        };
        assert_eq!(only_big.verify(genesis, 1, block, &set), Ok(()));
        let only_small = CommitCertificate {
            height: 1,
            round: 0,
            block_hash: block,
            signatures: small
                .iter()
                .map(|k| (k.public(), sign(k, genesis, 1, 0, block)))
                .collect(),
        };
        assert!(only_small.verify(genesis, 1, block, &set).is_err());
    }

    #[test]
    fn the_two_halves_make_the_whole_check() {
        let genesis = Hash::of(b"g");
        let block = Hash::of(b"b");
        let keys: Vec<Pair> = ["A", "B", "C", "D"].iter().map(|n| Pair::dev(n)).collect();
        let set: Vec<_> = keys.iter().map(|k| (k.public(), 10)).collect();
        let mut cert = CommitCertificate {
            height: 5,
            round: 0,
            block_hash: block,
            signatures: keys[..3]
                .iter()
                .map(|k| (k.public(), sign(k, genesis, 5, 0, block)))
                .collect(),
        };
        assert_eq!(cert.verify_signatures(genesis), Ok(()));
        assert_eq!(cert.verify_power(5, block, &set), Ok(()));
        // A signature over another round: power is fine, cryptography is not.
        cert.signatures[1].1 = sign(&keys[1], genesis, 5, 1, block);
        assert_eq!(cert.verify_power(5, block, &set), Ok(()));
        assert_eq!(
            cert.verify_signatures(genesis),
            Err(CertificateError::BadSignature(keys[1].public()))
        );
        assert!(cert.verify(genesis, 5, block, &set).is_err());
    }
}
