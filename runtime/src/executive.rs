//! Checking, applying and executing extrinsics and blocks.

use crate::{
    balances, billing, capacity, reservations, system, tfgrid, timestamp, twins, validators,
    weight::{extrinsic_weight, Weight, MAX_EXTRINSICS_WEIGHT},
    Block, Call, Context, EventRecord, Extrinsic, BASE_FEE, BYTE_FEE, MAX_BLOCK_BYTES,
    MAX_EXTRINSIC_BYTES, WEIGHT_FEE,
};
use gridchain_primitives::{
    block::BlockNumber, signature, AccountId, Balance, ChainContext, Hash, Header, Overlay,
    StateChanges, StateRead,
};
use pallet_system::{DispatchError, PalletError, Phase};
use parity_scale_codec::Encode;
use serde::{Deserialize, Serialize};

/// Why a transaction cannot be included in a block. A block containing one is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum InvalidTransaction {
    #[error("extrinsic is {size} bytes, the limit is {max}")]
    TooLarge { size: usize, max: usize },
    #[error("bad signature (wrong key, wrong chain or wrong runtime version)")]
    BadSignature,
    #[error("nonce {got} is stale: the account's next nonce is {expected}")]
    Stale { expected: u64, got: u64 },
    #[error("nonce {got} is in the future: the account's next nonce is {expected}")]
    Future { expected: u64, got: u64 },
    #[error("transaction expired: valid until block {valid_until}, next block is {block}")]
    Expired {
        valid_until: BlockNumber,
        block: BlockNumber,
    },
    #[error("cannot pay fee {needed}: free balance is {available}")]
    Payment { needed: Balance, available: Balance },
    #[error("the block has no room left for this extrinsic")]
    ExhaustsResources,
    #[error("extrinsic weighs {weight} ps, more than a block's extrinsics may weigh ({max} ps)")]
    TooHeavy { weight: Weight, max: Weight },
}

/// What the pool needs to know about a transaction that may be included now or later.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValidTransaction {
    /// The signer's next nonce in the checked state: the transaction is ready if its nonce equals
    /// this, and waits in the future queue if it is higher.
    pub account_nonce: u64,
    /// Fee plus tip the transaction will pay.
    pub fee: Balance,
    /// Its weight ([`crate::weight`]).
    pub weight: Weight,
    /// The signer's free balance in the checked state: what all its pooled transactions'
    /// fees together may use.
    pub available: Balance,
}

/// Fee for an extrinsic of `encoded_len` bytes and `weight` ([`crate::weight`]) with `tip`.
pub fn fee_for(weight: Weight, encoded_len: usize, tip: Balance) -> Balance {
    BASE_FEE
        .saturating_add(BYTE_FEE.saturating_mul(encoded_len as u128))
        .saturating_add(WEIGHT_FEE.saturating_mul(weight as u128))
        .saturating_add(tip)
}

/// The fee `xt` (`encoded_len` bytes long) pays if included, tip included.
pub fn extrinsic_fee(xt: &Extrinsic, encoded_len: usize) -> Balance {
    fee_for(extrinsic_weight(&xt.call, encoded_len), encoded_len, xt.tip)
}

/// Weight and fee of `xt` (`encoded_len` bytes long), refusing one heavier than any block holds.
fn weigh(xt: &Extrinsic, encoded_len: usize) -> Result<(Weight, Balance), InvalidTransaction> {
    let weight = extrinsic_weight(&xt.call, encoded_len);
    if weight > MAX_EXTRINSICS_WEIGHT {
        return Err(InvalidTransaction::TooHeavy {
            weight,
            max: MAX_EXTRINSICS_WEIGHT,
        });
    }
    Ok((weight, fee_for(weight, encoded_len, xt.tip)))
}

/// Checks a transaction against `state` (the best block's) for inclusion in block `next_block`.
/// Nonces above the account's next nonce pass (they wait in the pool); lower ones are `Stale`.
pub fn validate_transaction(
    state: &dyn StateRead,
    chain: ChainContext,
    next_block: BlockNumber,
    xt: &Extrinsic,
    encoded_len: usize,
) -> Result<ValidTransaction, InvalidTransaction> {
    let valid = validate_transaction_except_signature(state, next_block, xt, encoded_len)?;
    // Last: it is the expensive check.
    if !xt.verify_signature(chain) {
        return Err(InvalidTransaction::BadSignature);
    }
    Ok(valid)
}

/// [`validate_transaction`] without the signature check, for callers that check the
/// signatures of many transactions together (`Extrinsic::queue_signature`).
pub fn validate_transaction_except_signature(
    state: &dyn StateRead,
    next_block: BlockNumber,
    xt: &Extrinsic,
    encoded_len: usize,
) -> Result<ValidTransaction, InvalidTransaction> {
    if encoded_len > MAX_EXTRINSIC_BYTES {
        return Err(InvalidTransaction::TooLarge {
            size: encoded_len,
            max: MAX_EXTRINSIC_BYTES,
        });
    }
    check_mortality(xt, next_block)?;
    let ctx: Context = Context::new(Overlay::new(state));
    let account_nonce = system::nonce(&ctx, &xt.signer);
    if xt.nonce < account_nonce {
        return Err(InvalidTransaction::Stale {
            expected: account_nonce,
            got: xt.nonce,
        });
    }
    let (weight, fee) = weigh(xt, encoded_len)?;
    let available = balances::account(&ctx, &xt.signer).free;
    if available < fee {
        return Err(InvalidTransaction::Payment {
            needed: fee,
            available,
        });
    }
    Ok(ValidTransaction {
        account_nonce,
        fee,
        weight,
        available,
    })
}

fn check_mortality(xt: &Extrinsic, block: BlockNumber) -> Result<(), InvalidTransaction> {
    if xt.valid_until < block {
        return Err(InvalidTransaction::Expired {
            valid_until: xt.valid_until,
            block,
        });
    }
    Ok(())
}

/// Verifies every extrinsic's signature, in batches spread over the machine's cores. Returns the
/// index of the first bad one. Batches follow the chain's ZIP-215 rule, under which a batch
/// gives exactly the verdict of checking each signature alone (see
/// `gridchain_primitives::signature`), so every node agrees on adversarial signatures too.
pub fn verify_signatures(chain: ChainContext, extrinsics: &[Extrinsic]) -> Result<(), usize> {
    signature::first_invalid(extrinsics, |xt, batch| xt.queue_signature(chain, batch))
        .map_or(Ok(()), Err)
}

/// Why a block is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlockError {
    #[error(transparent)]
    Timestamp(#[from] timestamp::Error),
    #[error("extrinsic {index}: {error}")]
    InvalidExtrinsic {
        index: usize,
        error: InvalidTransaction,
    },
    #[error("extrinsics root is {got}, header says {expected}")]
    ExtrinsicsRoot { expected: Hash, got: Hash },
}

/// Builds (or re-executes) one block on top of a parent state.
pub struct BlockBuilder<'a> {
    ctx: Context<'a>,
    chain: ChainContext,
    parent_hash: Hash,
    number: BlockNumber,
    timestamp_ms: u64,
    proposer: AccountId,
    extrinsics: Vec<Extrinsic>,
    block_bytes: usize,
    block_weight: Weight,
}

/// A block whose execution is done but whose state root the node has yet to compute.
pub struct BuiltBlock {
    pub parent_hash: Hash,
    pub number: BlockNumber,
    pub timestamp_ms: u64,
    pub proposer: AccountId,
    pub extrinsics: Vec<Extrinsic>,
    pub extrinsics_root: Hash,
    pub changes: StateChanges,
    pub events: Vec<EventRecord>,
}

impl BuiltBlock {
    /// The header for this block given its state root.
    pub fn header(&self, state_root: Hash) -> Header {
        Header {
            parent_hash: self.parent_hash,
            number: self.number,
            timestamp_ms: self.timestamp_ms,
            state_root,
            extrinsics_root: self.extrinsics_root,
            proposer: self.proposer,
        }
    }
}

impl<'a> BlockBuilder<'a> {
    /// Starts block `number` (child of `parent_hash`) stamped `timestamp_ms`, proposed by
    /// `proposer`, on top of `state`.
    pub fn new(
        state: &'a dyn StateRead,
        chain: ChainContext,
        parent_hash: Hash,
        number: BlockNumber,
        timestamp_ms: u64,
        proposer: AccountId,
    ) -> Result<Self, BlockError> {
        let mut ctx: Context = Context::new(Overlay::new(state));
        ctx.set_phase(Phase::Initialization);
        system::on_initialize(&mut ctx, number, parent_hash);
        timestamp::on_initialize(&mut ctx, timestamp_ms)?;
        capacity::on_initialize(&mut ctx);
        reservations::on_initialize(&mut ctx);
        billing::on_initialize(&mut ctx, number);
        Ok(BlockBuilder {
            ctx,
            chain,
            parent_hash,
            number,
            timestamp_ms,
            proposer,
            extrinsics: Vec::new(),
            block_bytes: 0,
            block_weight: 0,
        })
    }

    pub fn len(&self) -> usize {
        self.extrinsics.len()
    }

    pub fn is_empty(&self) -> bool {
        self.extrinsics.is_empty()
    }

    /// Bytes of extrinsics in the block so far.
    pub fn block_bytes(&self) -> usize {
        self.block_bytes
    }

    /// Weight of the extrinsics in the block so far.
    pub fn block_weight(&self) -> Weight {
        self.block_weight
    }

    /// Applies `xt` (of `encoded_len` bytes) and includes it. `Err` means it was not included and
    /// nothing changed; `Ok(result)` carries the call's own outcome (a failed call is included,
    /// pays its fee and uses its nonce). `check_signature` may be false only when the caller has
    /// already verified this exact extrinsic for this chain.
    pub fn push(
        &mut self,
        xt: Extrinsic,
        encoded_len: usize,
        check_signature: bool,
    ) -> Result<Result<(), DispatchError>, InvalidTransaction> {
        if encoded_len > MAX_EXTRINSIC_BYTES {
            return Err(InvalidTransaction::TooLarge {
                size: encoded_len,
                max: MAX_EXTRINSIC_BYTES,
            });
        }
        if self.block_bytes + encoded_len > MAX_BLOCK_BYTES {
            return Err(InvalidTransaction::ExhaustsResources);
        }
        let (weight, fee) = weigh(&xt, encoded_len)?;
        if self.block_weight + weight > MAX_EXTRINSICS_WEIGHT {
            return Err(InvalidTransaction::ExhaustsResources);
        }
        check_mortality(&xt, self.number)?;
        let expected = system::nonce(&self.ctx, &xt.signer);
        if xt.nonce != expected {
            return Err(if xt.nonce < expected {
                InvalidTransaction::Stale {
                    expected,
                    got: xt.nonce,
                }
            } else {
                InvalidTransaction::Future {
                    expected,
                    got: xt.nonce,
                }
            });
        }
        if check_signature && !xt.verify_signature(self.chain) {
            return Err(InvalidTransaction::BadSignature);
        }
        let index = self.extrinsics.len() as u32;
        self.ctx.set_phase(Phase::ApplyExtrinsic(index));
        let signer = xt.signer;
        if let Err(balances::Error::InsufficientBalance { needed, available }) =
            balances::pay_fee(&mut self.ctx, signer, self.proposer, fee)
        {
            return Err(InvalidTransaction::Payment { needed, available });
        }
        system::inc_nonce(&mut self.ctx, &signer);
        let outcome = self
            .ctx
            .transactional(|ctx| dispatch(ctx, signer, xt.call.clone()));
        match &outcome {
            Ok(()) => self
                .ctx
                .deposit_event(system::Event::ExtrinsicSuccess { fee }),
            Err(error) => self.ctx.deposit_event(system::Event::ExtrinsicFailed {
                error: error.clone(),
                fee,
            }),
        }
        self.block_bytes += encoded_len;
        self.block_weight += weight;
        self.extrinsics.push(xt);
        Ok(outcome)
    }

    /// Ends the block.
    pub fn finish(mut self) -> BuiltBlock {
        self.ctx.set_phase(Phase::Finalization);
        validators::on_finalize(&mut self.ctx, self.number, self.proposer);
        system::on_finalize(&mut self.ctx);
        let extrinsics_root = Block::compute_extrinsics_root(&self.extrinsics);
        let (changes, events) = self.ctx.into_parts();
        BuiltBlock {
            parent_hash: self.parent_hash,
            number: self.number,
            timestamp_ms: self.timestamp_ms,
            proposer: self.proposer,
            extrinsics: self.extrinsics,
            extrinsics_root,
            changes,
            events,
        }
    }
}

fn dispatch(ctx: &mut Context, who: AccountId, call: Call) -> Result<(), DispatchError> {
    match call {
        Call::System(call) => {
            system::dispatch(ctx, who, call).map_err(PalletError::into_dispatch_error)
        }
        Call::Balances(call) => {
            balances::dispatch(ctx, who, call).map_err(PalletError::into_dispatch_error)
        }
        Call::Twins(call) => {
            twins::dispatch(ctx, who, call).map_err(PalletError::into_dispatch_error)
        }
        Call::Tfgrid(call) => {
            let deleted = match &call {
                tfgrid::Call::DeleteNode { node_id } => Some(*node_id),
                _ => None,
            };
            tfgrid::dispatch(ctx, who, call).map_err(PalletError::into_dispatch_error)?;
            // Only once the caller was found entitled: the node's reservations end over the
            // next blocks (bounded work per block), its unpaid reward claim is dropped.
            if let Some(node_id) = deleted {
                reservations::schedule_node_end(ctx, node_id);
                capacity::forget_node(ctx, node_id);
            }
            Ok(())
        }
        Call::Reservations(call) => {
            reservations::dispatch(ctx, who, call).map_err(PalletError::into_dispatch_error)
        }
        Call::Capacity(call) => {
            capacity::dispatch(ctx, who, call).map_err(PalletError::into_dispatch_error)
        }
        Call::Validators(call) => {
            validators::dispatch(ctx, who, call).map_err(PalletError::into_dispatch_error)
        }
    }
}

/// Re-executes a received block on its parent's state. Signatures are verified up front, in
/// parallel. The caller checks the header's state root against the returned changes.
pub fn execute_block(
    state: &dyn StateRead,
    chain: ChainContext,
    block: &Block,
) -> Result<BuiltBlock, BlockError> {
    execute_block_with_verified(state, chain, block, &|_| false)
}

/// [`execute_block`], skipping the signature check of every extrinsic for which `verified`
/// (given its hash) is true: a node's pool has already checked those exact bytes for this chain
/// and runtime version, so checking again would only repeat the same verdict.
pub fn execute_block_with_verified(
    state: &dyn StateRead,
    chain: ChainContext,
    block: &Block,
    verified: &(dyn Fn(&Hash) -> bool + Sync),
) -> Result<BuiltBlock, BlockError> {
    let unverified: Vec<(usize, &Extrinsic)> = block
        .extrinsics
        .iter()
        .enumerate()
        .filter(|(_, xt)| !verified(&xt.hash()))
        .collect();
    if let Some(bad) = signature::first_invalid(&unverified, |(_, xt), batch| {
        xt.queue_signature(chain, batch)
    }) {
        return Err(BlockError::InvalidExtrinsic {
            index: unverified[bad].0,
            error: InvalidTransaction::BadSignature,
        });
    }
    let header = &block.header;
    let mut builder = BlockBuilder::new(
        state,
        chain,
        header.parent_hash,
        header.number,
        header.timestamp_ms,
        header.proposer,
    )?;
    for (index, xt) in block.extrinsics.iter().enumerate() {
        // A failed call is still a valid part of the block: only inclusion errors matter here.
        let _call_outcome = builder
            .push(xt.clone(), xt.encoded_size(), false)
            .map_err(|error| BlockError::InvalidExtrinsic { index, error })?;
    }
    let built = builder.finish();
    if built.extrinsics_root != header.extrinsics_root {
        return Err(BlockError::ExtrinsicsRoot {
            expected: header.extrinsics_root,
            got: built.extrinsics_root,
        });
    }
    Ok(built)
}
