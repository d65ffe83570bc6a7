//! Verifying and importing final blocks, in two stages so they can run on two cores at once:
//!
//! 1. [`check_signatures`] needs no more chain state than [`KnownSigners`] (read once from the
//!    best state): a certificate naming a signer that is no validator of its height is refused
//!    before any cryptography; then each block's certificate signatures and every transaction
//!    signature. Any thread, any order.
//! 2. [`Importer::import`] runs in chain order on the best state: the block extends the best
//!    block; the certificate's signers hold more than 2/3 of the power of the block's validator
//!    set (read from the state, as consensus does); execution reproduces the header's
//!    extrinsics root and state root. Then block, certificate and state are committed.
//!
//! Every failure that the block's bytes explain is an [`ImportError::Peer`]: the sender is at
//! fault and nothing was written.

use gridchain_primitives::{
    block::BlockNumber, finality::CommitCertificate, signature, AccountId, ChainContext, Hash,
    Header, StateRead,
};
use gridchain_runtime::validators;
use gridchain_runtime::Block;
use gridchain_storage::Storage;
use gridchain_txpool::TxPool;
use std::collections::BTreeSet;
use std::sync::Arc;
use tokio::sync::broadcast;

use crate::protocol::FinalBlock;

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The block or its certificate is wrong: whoever sent it is at fault.
    #[error("block {number}: {reason}")]
    Peer { number: u64, reason: String },
    /// This node failed (its database): stop rather than judge.
    #[error(transparent)]
    Local(#[from] anyhow::Error),
}

fn peer_fault(number: u64, reason: impl Into<String>) -> ImportError {
    ImportError::Peer {
        number,
        reason: reason.into(),
    }
}

/// A final block whose signatures — certificate and transactions — are valid.
pub struct CheckedBlock {
    block: Block,
    hash: Hash,
    certificate: CommitCertificate,
}

impl CheckedBlock {
    pub fn number(&self) -> u64 {
        self.block.header.number
    }
}

/// The consensus keys that can sign a certificate of any height up to `horizon`, as far as a
/// state before those heights tells. A certificate of a height in that range naming anyone else
/// is forged; past it, only import can tell.
#[derive(Debug, Clone)]
pub struct KnownSigners {
    horizon: BlockNumber,
    keys: BTreeSet<AccountId>,
}

impl KnownSigners {
    /// From the state after block `best` ([`validators::signers_known_until`]).
    pub fn at(state: &dyn StateRead, best: BlockNumber) -> KnownSigners {
        let (horizon, keys) = validators::signers_known_until(state, best);
        KnownSigners { horizon, keys }
    }

    /// [`KnownSigners::at`] the best block of `storage`.
    pub fn at_best(storage: &Storage) -> Result<KnownSigners, ImportError> {
        let best = storage
            .best_header()
            .map_err(anyhow::Error::from)?
            .ok_or_else(|| anyhow::anyhow!("the database has no best block"))?;
        Ok(KnownSigners::at(storage, best.number))
    }

    /// The first signer of `certificate` known not to be a validator of its height.
    fn outsider(&self, certificate: &CommitCertificate) -> Option<AccountId> {
        if certificate.height > self.horizon {
            return None;
        }
        certificate
            .signatures
            .iter()
            .map(|(who, _)| *who)
            .find(|who| !self.keys.contains(who))
    }
}

/// Stage 1: checks every signature of `blocks` on chain `chain` — certificates and
/// transactions together, spread over the machine's cores (a segment may hold a few huge blocks
/// among many empty ones), in batches that give the verdict of checking each alone (ZIP-215).
pub fn check_signatures(
    chain: ChainContext,
    known: &KnownSigners,
    blocks: Vec<FinalBlock>,
) -> Result<Vec<CheckedBlock>, ImportError> {
    let mut checked = Vec::with_capacity(blocks.len());
    for FinalBlock { block, certificate } in blocks {
        let number = block.header.number;
        let hash = block.hash();
        if certificate.height != number || certificate.block_hash != hash {
            return Err(peer_fault(number, "the certificate is for another block"));
        }
        // Before any signature is checked: no set has more members than the chain allows, a
        // signer signs once, and within the known horizon every signer is a validator. The
        // exact set (and the power it takes) is checked at import.
        let signers = certificate.signatures.len();
        if signers > gridchain_runtime::validators::MAX_VALIDATORS as usize {
            return Err(peer_fault(
                number,
                format!("the certificate has {signers} signatures, more than any validator set"),
            ));
        }
        let unique: std::collections::BTreeSet<_> =
            certificate.signatures.iter().map(|(who, _)| who).collect();
        if unique.len() != signers {
            return Err(peer_fault(number, "the certificate names a signer twice"));
        }
        if let Some(outsider) = known.outsider(&certificate) {
            return Err(peer_fault(
                number,
                format!("the certificate is signed by {outsider}, not a validator of that height"),
            ));
        }
        checked.push(CheckedBlock {
            block,
            hash,
            certificate,
        });
    }
    // (block index, None for the certificate or Some(extrinsic index)).
    let jobs: Vec<(usize, Option<usize>)> = checked
        .iter()
        .enumerate()
        .flat_map(|(b, c)| {
            std::iter::once((b, None))
                .chain((0..c.block.extrinsics.len()).map(move |i| (b, Some(i))))
        })
        .collect();
    let first_bad = signature::first_invalid(&jobs, |&(b, job), batch| {
        let c = &checked[b];
        match job {
            None => c.certificate.queue_signatures(chain.genesis_hash, batch),
            Some(i) => c.block.extrinsics[i].queue_signature(chain, batch),
        }
    });
    match first_bad.map(|bad| jobs[bad]) {
        Some((b, None)) => Err(peer_fault(
            checked[b].number(),
            "the certificate has a bad signature",
        )),
        Some((b, Some(i))) => Err(peer_fault(
            checked[b].number(),
            format!("extrinsic {i} has a bad signature"),
        )),
        None => Ok(checked),
    }
}

/// Stage 2: imports checked blocks in chain order.
pub struct Importer {
    pub storage: Arc<Storage>,
    pub chain: ChainContext,
    pub pool: Arc<TxPool>,
    pub heads: broadcast::Sender<Header>,
}

impl Importer {
    /// Verifies `checked` against the best state and commits it. Blocks are committed without
    /// waiting for the disk; [`Storage::sync_to_disk`] after a run of them makes them durable.
    pub fn import(&self, checked: CheckedBlock) -> Result<Header, ImportError> {
        let CheckedBlock {
            block,
            hash,
            certificate,
        } = checked;
        let header = &block.header;
        let number = header.number;
        let best = self
            .storage
            .best_header()
            .map_err(anyhow::Error::from)?
            .ok_or_else(|| anyhow::anyhow!("the database has no best block"))?;
        if number != best.number + 1 || header.parent_hash != best.hash() {
            return Err(peer_fault(
                number,
                format!("does not extend our best block {}", best.number),
            ));
        }
        // The set that decided `number`, from the state after `number - 1` (the best state):
        // the same rule consensus applies, so a certificate by anyone else is refused.
        let storage: &Storage = &self.storage;
        let set = gridchain_runtime::validators::validator_set_at(storage, number);
        let powers: Vec<_> = set.iter().map(|v| (v.consensus_key, v.power)).collect();
        certificate
            .verify_power(number, hash, &powers)
            .map_err(|e| peer_fault(number, e.to_string()))?;
        if !set.iter().any(|v| v.account == header.proposer) {
            return Err(peer_fault(
                number,
                format!(
                    "proposer {} is not the account of a validator",
                    header.proposer
                ),
            ));
        }
        // Signatures were checked in stage 1. Timestamps are not held against the local clock
        // here: the block is already final, and the runtime still refuses non-increasing ones.
        let built =
            gridchain_runtime::execute_block_with_verified(storage, self.chain, &block, &|_| true)
                .map_err(|e| peer_fault(number, e.to_string()))?;
        let prepared = self
            .storage
            .prepare_state(&built.changes, number)
            .map_err(anyhow::Error::from)?;
        if prepared.root != header.state_root {
            return Err(peer_fault(
                number,
                format!(
                    "state root is {}, header says {}",
                    prepared.root, header.state_root
                ),
            ));
        }
        self.storage
            .commit_block_unsynced(&block, &certificate, &built.changes, prepared)
            .map_err(anyhow::Error::from)?;
        let included: Vec<Hash> = block.extrinsics.iter().map(|x| x.hash()).collect();
        self.pool.on_block_committed(
            storage,
            hash,
            number,
            &included,
            gridchain_runtime::account_nonce,
        );
        let _ = self.heads.send(block.header.clone());
        Ok(block.header)
    }
}
