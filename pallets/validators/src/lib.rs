//! # pallet-validators
//!
//! Staking and the validator set the BFT engine runs with.
//!
//! - **Stake** is free balance moved to reserved with `pallet_balances::reserve`, so bonding never
//!   creates or destroys value: for every account this pallet knows,
//!   `reserved ⊇ bonded + Σ unbonding` (exactly equal when no other pallet reserves for it).
//!   [`Call::Bond`] adds to the bond (the result must reach `min_bond`), [`Call::Unbond`] moves
//!   part of it into the unbonding queue (at most [`MAX_UNBONDING_CHUNKS`] chunks, each released
//!   `unbonding_period` blocks later; what stays bonded must be 0 or at least `min_bond`), and
//!   [`Call::WithdrawUnbonded`] unreserves every matured chunk.
//! - **Candidates**: [`Call::Validate`] makes a bonded account a candidate with an ed25519
//!   *consensus key* (the key it signs votes with; unique among candidates) and a commission in
//!   parts per billion (recorded; there are no nominators yet). [`Call::Chill`] withdraws the
//!   candidacy; unbonding the whole bond does it too. At most [`MAX_CANDIDATES`] candidates.
//! - **Epochs**: height `h` is in epoch `h / epoch_length` (genesis, block 0, is in epoch 0).
//!   At the end of the last block of epoch `e` (`(h + 1) % epoch_length == 0`, in
//!   [`on_finalize`]), the set scheduled for the next height becomes the active one, and a new
//!   set is chosen from the candidates: those bonded at least `min_bond`, by bond descending
//!   then account ascending, the first `max_validators`, with voting power
//!   `bonded / POWER_UNIT` (whole tokens, capped at [`MAX_POWER`] so the total fits a `u64`).
//!   It takes effect at the first height of epoch `e + 2`, one whole epoch after it is known. An
//!   empty result (nobody bonded enough) or one equal to the active set schedules nothing: the
//!   active set continues.
//! - **Reading the set**: [`validator_set_at`]`(state after block H-1, H)` is the set that signs
//!   height `H`, sorted by consensus key; two storage reads. From the state after block `n`, the
//!   answer is already final for every `H > n` up to the end of the epoch after the one that
//!   contains `n + 1` (so the set of a whole epoch is known one epoch in advance).
//! - **Block reward**: [`on_finalize`] mints `block_reward` (may be 0) to the block's proposer;
//!   the issuance grows by exactly that per block. (Fees reach the proposer in the runtime.)
//! - Genesis ([`build_genesis`]): each genesis validator's stake is bonded from its funded
//!   balance (reserved, not minted: the issuance is the balances' sum), it becomes a candidate
//!   with its account key as consensus key and commission 0, and the active set (since height 0)
//!   is chosen by the rule above.
//!
//! Not done yet: slashing, nominators, rewards by commission, changing parameters after genesis.

use ed25519_dalek::VerifyingKey;
use gridchain_primitives::{
    account::balance_string, block::BlockNumber, state::storage_key, state::storage_map_key,
    AccountId, Balance, Overlay, StateRead,
};
use pallet_system::{Context, PalletError};
use parity_scale_codec::{Decode, Encode};
use serde::{Deserialize, Serialize};

#[cfg(test)]
mod tests;

pub const PALLET: &str = "validators";

/// Stake per unit of voting power: one whole token (12 decimals).
pub const POWER_UNIT: Balance = 1_000_000_000_000;
/// Upper bound of `max_validators`.
pub const MAX_VALIDATORS: u32 = 1_000;
/// Largest voting power of one validator: `MAX_VALIDATORS` of them still sum to a `u64`.
pub const MAX_POWER: u64 = u64::MAX / MAX_VALIDATORS as u64;
/// Most candidates at once (bounds the work at an epoch boundary).
pub const MAX_CANDIDATES: usize = 2_048;
/// Most unbonding chunks per account (one per block at most, they merge within a block).
pub const MAX_UNBONDING_CHUNKS: usize = 32;
/// Commission is in parts per billion; this is 100 %.
pub const PERBILL: u32 = 1_000_000_000;

/// Staking parameters, from the chain spec (`genesis.staking`).
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StakingConfig {
    /// Blocks per epoch; the set can change only at epoch boundaries.
    pub epoch_length: u64,
    /// Blocks between `unbond` and the moment the chunk can be withdrawn.
    pub unbonding_period: u64,
    /// Most validators in a set, `1..=MAX_VALIDATORS`.
    pub max_validators: u32,
    /// Smallest bond (and smallest bond of a validator); at least `POWER_UNIT`.
    #[serde(with = "balance_string")]
    pub min_bond: Balance,
    /// Minted to each block's proposer.
    #[serde(with = "balance_string")]
    pub block_reward: Balance,
}

impl Default for StakingConfig {
    fn default() -> Self {
        StakingConfig {
            epoch_length: 10,
            unbonding_period: 20,
            max_validators: 100,
            min_bond: POWER_UNIT,
            block_reward: 0,
        }
    }
}

impl StakingConfig {
    /// What the types cannot say.
    pub fn check(&self) -> Result<(), String> {
        if self.epoch_length == 0 {
            return Err("epochLength must be positive".into());
        }
        if self.max_validators == 0 || self.max_validators > MAX_VALIDATORS {
            return Err(format!("maxValidators must be 1..={MAX_VALIDATORS}"));
        }
        if self.min_bond < POWER_UNIT {
            return Err(format!(
                "minBond must be at least {POWER_UNIT} (one unit of voting power)"
            ));
        }
        Ok(())
    }
}

/// One validator of a set.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ValidatorInfo {
    /// The staking account (bond, rewards).
    pub account: AccountId,
    /// The ed25519 public key its votes are signed with.
    pub consensus_key: AccountId,
    /// `bonded / POWER_UNIT` when the set was chosen; always > 0.
    pub power: u64,
}

/// A validator set and the first height it signs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ValidatorSet {
    pub since: BlockNumber,
    /// Sorted by consensus key.
    pub validators: Vec<ValidatorInfo>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UnbondingChunk {
    #[serde(with = "balance_string")]
    pub amount: Balance,
    /// First block at whose state `withdraw_unbonded` can release it.
    pub release_at: BlockNumber,
}

/// An account's stake. Absent when all of it is withdrawn.
#[derive(Debug, Clone, Default, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Ledger {
    #[serde(with = "balance_string")]
    pub bonded: Balance,
    /// In `release_at` order.
    pub unbonding: Vec<UnbondingChunk>,
}

impl Ledger {
    pub fn unbonding_total(&self) -> Balance {
        self.unbonding.iter().map(|c| c.amount).sum()
    }
}

/// A candidate's preferences.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Candidate {
    pub consensus_key: AccountId,
    /// Parts per billion.
    pub commission: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "call")]
pub enum Call {
    /// Reserves `amount` of free balance as stake.
    Bond {
        #[serde(with = "balance_string")]
        amount: Balance,
    },
    /// Moves `amount` of stake into the unbonding queue (withdrawable `unbonding_period` blocks
    /// later). Unbonding everything also ends the candidacy.
    Unbond {
        #[serde(with = "balance_string")]
        amount: Balance,
    },
    /// Unreserves every unbonding chunk that has matured.
    WithdrawUnbonded,
    /// Becomes (or updates) a validator candidate.
    #[serde(rename_all = "camelCase")]
    Validate {
        /// The ed25519 public key the validator signs votes with.
        consensus_key: AccountId,
        /// Parts per billion.
        commission: u32,
    },
    /// Stops being a candidate (the bond stays).
    Chill,
}

#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "event")]
pub enum Event {
    Bonded {
        who: AccountId,
        #[serde(with = "balance_string")]
        amount: Balance,
    },
    #[serde(rename_all = "camelCase")]
    Unbonded {
        who: AccountId,
        #[serde(with = "balance_string")]
        amount: Balance,
        release_at: BlockNumber,
    },
    Withdrawn {
        who: AccountId,
        #[serde(with = "balance_string")]
        amount: Balance,
    },
    /// `who` is a candidate with these preferences.
    #[serde(rename_all = "camelCase")]
    Validating {
        who: AccountId,
        consensus_key: AccountId,
        commission: u32,
    },
    Chilled {
        who: AccountId,
    },
    /// The block's proposer received the block reward (also a `balances` `Minted` event).
    BlockRewarded {
        proposer: AccountId,
        #[serde(with = "balance_string")]
        amount: Balance,
    },
    /// A new set was chosen; it signs from `effective_at` on.
    #[serde(rename_all = "camelCase")]
    ValidatorSetScheduled {
        effective_at: BlockNumber,
        validators: Vec<ValidatorInfo>,
    },
    /// The set scheduled for `since` is now the active one (emitted in block `since - 1`).
    ValidatorSetActivated {
        since: BlockNumber,
        count: u32,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("amount must be greater than zero")]
    ZeroAmount,
    #[error("insufficient free balance: need {needed}, have {available}")]
    InsufficientBalance { needed: Balance, available: Balance },
    #[error("a bond of {bonded} is below the minimum bond {min_bond}")]
    BelowMinBond { bonded: Balance, min_bond: Balance },
    #[error("the account has no bond")]
    NotBonded,
    #[error("cannot unbond {requested}: {bonded} is bonded")]
    InsufficientBond { requested: Balance, bonded: Balance },
    #[error("no unbonding chunk has matured yet")]
    NothingToWithdraw,
    #[error(
        "too many unbonding chunks (at most {MAX_UNBONDING_CHUNKS}); withdraw matured ones first"
    )]
    TooManyUnbondingChunks,
    #[error("the consensus key is used by another candidate")]
    ConsensusKeyInUse,
    #[error("the consensus key is not a valid ed25519 public key")]
    InvalidConsensusKey,
    #[error("commission {commission} exceeds {PERBILL} parts per billion")]
    InvalidCommission { commission: u32 },
    #[error("the account is not a validator candidate")]
    NotCandidate,
    #[error("there are already {MAX_CANDIDATES} candidates")]
    TooManyCandidates,
    #[error("balance would overflow")]
    Overflow,
    #[error("balances: {0}")]
    Balances(pallet_balances::Error),
}

impl PalletError for Error {
    const PALLET: &'static str = PALLET;
    fn name(&self) -> &'static str {
        match self {
            Error::ZeroAmount => "ZeroAmount",
            Error::InsufficientBalance { .. } => "InsufficientBalance",
            Error::BelowMinBond { .. } => "BelowMinBond",
            Error::NotBonded => "NotBonded",
            Error::InsufficientBond { .. } => "InsufficientBond",
            Error::NothingToWithdraw => "NothingToWithdraw",
            Error::TooManyUnbondingChunks => "TooManyUnbondingChunks",
            Error::ConsensusKeyInUse => "ConsensusKeyInUse",
            Error::InvalidConsensusKey => "InvalidConsensusKey",
            Error::InvalidCommission { .. } => "InvalidCommission",
            Error::NotCandidate => "NotCandidate",
            Error::TooManyCandidates => "TooManyCandidates",
            Error::Overflow => "Overflow",
            Error::Balances(_) => "Balances",
        }
    }
}

impl From<pallet_balances::Error> for Error {
    fn from(e: pallet_balances::Error) -> Self {
        match e {
            pallet_balances::Error::InsufficientBalance { needed, available } => {
                Error::InsufficientBalance { needed, available }
            }
            pallet_balances::Error::Overflow => Error::Overflow,
            other => Error::Balances(other),
        }
    }
}

pub fn dispatch<E>(ctx: &mut Context<E>, who: AccountId, call: Call) -> Result<(), Error>
where
    E: From<Event> + From<pallet_balances::Event>,
{
    match call {
        Call::Bond { amount } => bond(ctx, who, amount),
        Call::Unbond { amount } => unbond(ctx, who, amount),
        Call::WithdrawUnbonded => withdraw_unbonded(ctx, who),
        Call::Validate {
            consensus_key,
            commission,
        } => validate(ctx, who, consensus_key, commission),
        Call::Chill => chill(ctx, who),
    }
}

// ---- storage ----

pub fn config_key() -> Vec<u8> {
    storage_key(PALLET, "config")
}
/// `Ledger` of an account.
pub fn ledger_key(who: &AccountId) -> Vec<u8> {
    storage_map_key(PALLET, "ledger", who)
}
/// `Candidate` of an account.
pub fn candidate_key(who: &AccountId) -> Vec<u8> {
    storage_map_key(PALLET, "candidate", who)
}
/// The account whose candidacy uses a consensus key.
pub fn key_owner_key(consensus_key: &AccountId) -> Vec<u8> {
    storage_map_key(PALLET, "key_owner", consensus_key)
}
/// Every candidate account, sorted.
pub fn candidates_key() -> Vec<u8> {
    storage_key(PALLET, "candidates")
}
/// The active `ValidatorSet`.
pub fn active_set_key() -> Vec<u8> {
    storage_key(PALLET, "active_set")
}
/// The scheduled `ValidatorSet`, absent when no change is scheduled.
pub fn scheduled_set_key() -> Vec<u8> {
    storage_key(PALLET, "scheduled_set")
}

pub fn config<E>(ctx: &Context<E>) -> StakingConfig {
    ctx.overlay.get_decoded(&config_key()).unwrap_or_default()
}
pub fn set_config<E>(ctx: &mut Context<E>, config: &StakingConfig) {
    ctx.overlay.put_encoded(config_key(), config);
}

pub fn ledger<E>(ctx: &Context<E>, who: &AccountId) -> Option<Ledger> {
    ctx.overlay.get_decoded(&ledger_key(who))
}
fn put_ledger<E>(ctx: &mut Context<E>, who: &AccountId, ledger: &Ledger) {
    if ledger.bonded == 0 && ledger.unbonding.is_empty() {
        ctx.overlay.delete(ledger_key(who));
    } else {
        ctx.overlay.put_encoded(ledger_key(who), ledger);
    }
}

pub fn candidate<E>(ctx: &Context<E>, who: &AccountId) -> Option<Candidate> {
    ctx.overlay.get_decoded(&candidate_key(who))
}
pub fn key_owner<E>(ctx: &Context<E>, consensus_key: &AccountId) -> Option<AccountId> {
    ctx.overlay.get_decoded(&key_owner_key(consensus_key))
}
pub fn candidates<E>(ctx: &Context<E>) -> Vec<AccountId> {
    ctx.overlay
        .get_decoded(&candidates_key())
        .unwrap_or_default()
}

/// The active set (empty before genesis validators exist).
pub fn active_set<E>(ctx: &Context<E>) -> ValidatorSet {
    ctx.overlay
        .get_decoded(&active_set_key())
        .unwrap_or_default()
}
/// The next set and the height it takes effect at, if a change is scheduled.
pub fn scheduled_set<E>(ctx: &Context<E>) -> Option<ValidatorSet> {
    ctx.overlay.get_decoded(&scheduled_set_key())
}

/// The set that signs `height`, given the state after any block `n < height`: the scheduled
/// set if `height` is at or past its effective height, else the active set. Sorted by consensus
/// key.
pub fn set_for_height<E>(ctx: &Context<E>, height: BlockNumber) -> Vec<ValidatorInfo> {
    match scheduled_set(ctx) {
        Some(next) if height >= next.since => next.validators,
        _ => active_set(ctx).validators,
    }
}

/// [`set_for_height`] on a plain state (the node passes the state after block `height - 1`).
pub fn validator_set_at(state: &dyn StateRead, height: BlockNumber) -> Vec<ValidatorInfo> {
    let ctx = Context::<()>::new(Overlay::new(state));
    set_for_height(&ctx, height)
}

/// The scheduled change in `state`: its effective height and set (sorted by consensus key).
pub fn scheduled_change(state: &dyn StateRead) -> Option<(BlockNumber, Vec<ValidatorInfo>)> {
    let ctx = Context::<()>::new(Overlay::new(state));
    scheduled_set(&ctx).map(|s| (s.since, s.validators))
}

/// What the state after block `best` tells about who signs later heights: every height up to
/// the returned horizon is signed by the active or the scheduled set, whose consensus keys are
/// returned. (A change is scheduled at the last block of an epoch and takes effect one whole
/// epoch later, so the sets are known to the end of the epoch after the next epoch end.) Sync
/// refuses a certificate of such a height naming anyone else before checking any signature.
pub fn signers_known_until(
    state: &dyn StateRead,
    best: BlockNumber,
) -> (BlockNumber, std::collections::BTreeSet<AccountId>) {
    let ctx = Context::<()>::new(Overlay::new(state));
    let epoch = config(&ctx).epoch_length.max(1);
    let next_epoch_end = ((best + 1) / epoch + 1) * epoch - 1;
    let mut keys: std::collections::BTreeSet<AccountId> = set_for_height(&ctx, best + 1)
        .iter()
        .map(|v| v.consensus_key)
        .collect();
    if let Some(next) = scheduled_set(&ctx) {
        keys.extend(next.validators.iter().map(|v| v.consensus_key));
    }
    (next_epoch_end.saturating_add(epoch), keys)
}

/// The epoch of `height`.
pub fn epoch_of(height: BlockNumber, epoch_length: u64) -> u64 {
    height / epoch_length.max(1)
}

/// Whether block `number` is the last of its epoch.
pub fn is_epoch_end(number: BlockNumber, epoch_length: u64) -> bool {
    (number + 1).is_multiple_of(epoch_length.max(1))
}

/// Voting power of a bond.
pub fn power_of(bonded: Balance) -> u64 {
    (bonded / POWER_UNIT).min(MAX_POWER as u128) as u64
}

// ---- calls ----

pub fn bond<E>(ctx: &mut Context<E>, who: AccountId, amount: Balance) -> Result<(), Error>
where
    E: From<Event> + From<pallet_balances::Event>,
{
    if amount == 0 {
        return Err(Error::ZeroAmount);
    }
    let min_bond = config(ctx).min_bond;
    let mut ledger = ledger(ctx, &who).unwrap_or_default();
    let bonded = ledger.bonded.checked_add(amount).ok_or(Error::Overflow)?;
    if bonded < min_bond {
        return Err(Error::BelowMinBond { bonded, min_bond });
    }
    pallet_balances::reserve(ctx, who, amount)?;
    ledger.bonded = bonded;
    put_ledger(ctx, &who, &ledger);
    ctx.deposit_event(Event::Bonded { who, amount });
    Ok(())
}

pub fn unbond<E>(ctx: &mut Context<E>, who: AccountId, amount: Balance) -> Result<(), Error>
where
    E: From<Event>,
{
    if amount == 0 {
        return Err(Error::ZeroAmount);
    }
    let config = config(ctx);
    let mut ledger = ledger(ctx, &who).ok_or(Error::NotBonded)?;
    if ledger.bonded == 0 {
        return Err(Error::NotBonded);
    }
    let remaining = ledger
        .bonded
        .checked_sub(amount)
        .ok_or(Error::InsufficientBond {
            requested: amount,
            bonded: ledger.bonded,
        })?;
    if remaining != 0 && remaining < config.min_bond {
        return Err(Error::BelowMinBond {
            bonded: remaining,
            min_bond: config.min_bond,
        });
    }
    let release_at = pallet_system::block_number(ctx).saturating_add(config.unbonding_period);
    match ledger.unbonding.last_mut() {
        Some(last) if last.release_at == release_at => {
            last.amount = last.amount.checked_add(amount).ok_or(Error::Overflow)?;
        }
        _ => {
            if ledger.unbonding.len() >= MAX_UNBONDING_CHUNKS {
                return Err(Error::TooManyUnbondingChunks);
            }
            ledger.unbonding.push(UnbondingChunk { amount, release_at });
        }
    }
    ledger.bonded = remaining;
    put_ledger(ctx, &who, &ledger);
    ctx.deposit_event(Event::Unbonded {
        who,
        amount,
        release_at,
    });
    if remaining == 0 && candidate(ctx, &who).is_some() {
        chill(ctx, who)?;
    }
    Ok(())
}

pub fn withdraw_unbonded<E>(ctx: &mut Context<E>, who: AccountId) -> Result<(), Error>
where
    E: From<Event> + From<pallet_balances::Event>,
{
    let mut ledger = ledger(ctx, &who).ok_or(Error::NotBonded)?;
    let now = pallet_system::block_number(ctx);
    let amount: Balance = ledger
        .unbonding
        .iter()
        .filter(|c| c.release_at <= now)
        .map(|c| c.amount)
        .sum();
    if amount == 0 {
        return Err(Error::NothingToWithdraw);
    }
    pallet_balances::unreserve(ctx, who, amount)?;
    ledger.unbonding.retain(|c| c.release_at > now);
    put_ledger(ctx, &who, &ledger);
    ctx.deposit_event(Event::Withdrawn { who, amount });
    Ok(())
}

fn valid_consensus_key(key: &AccountId) -> bool {
    VerifyingKey::from_bytes(&key.0).is_ok_and(|k| !k.is_weak())
}

pub fn validate<E>(
    ctx: &mut Context<E>,
    who: AccountId,
    consensus_key: AccountId,
    commission: u32,
) -> Result<(), Error>
where
    E: From<Event>,
{
    if commission > PERBILL {
        return Err(Error::InvalidCommission { commission });
    }
    let bonded = ledger(ctx, &who).map_or(0, |l| l.bonded);
    if bonded == 0 {
        return Err(Error::NotBonded);
    }
    let min_bond = config(ctx).min_bond;
    if bonded < min_bond {
        return Err(Error::BelowMinBond { bonded, min_bond });
    }
    if !valid_consensus_key(&consensus_key) {
        return Err(Error::InvalidConsensusKey);
    }
    if key_owner(ctx, &consensus_key).is_some_and(|owner| owner != who) {
        return Err(Error::ConsensusKeyInUse);
    }
    match candidate(ctx, &who) {
        Some(old) => {
            if old.consensus_key != consensus_key {
                ctx.overlay.delete(key_owner_key(&old.consensus_key));
            }
        }
        None => {
            let mut list = candidates(ctx);
            if list.len() >= MAX_CANDIDATES {
                return Err(Error::TooManyCandidates);
            }
            let at = list.binary_search(&who).unwrap_or_else(|at| at);
            list.insert(at, who);
            ctx.overlay.put_encoded(candidates_key(), &list);
        }
    }
    ctx.overlay.put_encoded(key_owner_key(&consensus_key), &who);
    ctx.overlay.put_encoded(
        candidate_key(&who),
        &Candidate {
            consensus_key,
            commission,
        },
    );
    ctx.deposit_event(Event::Validating {
        who,
        consensus_key,
        commission,
    });
    Ok(())
}

pub fn chill<E: From<Event>>(ctx: &mut Context<E>, who: AccountId) -> Result<(), Error> {
    let old = candidate(ctx, &who).ok_or(Error::NotCandidate)?;
    ctx.overlay.delete(candidate_key(&who));
    ctx.overlay.delete(key_owner_key(&old.consensus_key));
    let mut list = candidates(ctx);
    list.retain(|a| *a != who);
    ctx.overlay.put_encoded(candidates_key(), &list);
    ctx.deposit_event(Event::Chilled { who });
    Ok(())
}

// ---- the set ----

/// The set the candidates would form now: bond ≥ `min_bond`, by bond descending then account,
/// the first `max_validators`, sorted by consensus key.
pub fn select<E>(ctx: &Context<E>, config: &StakingConfig) -> Vec<ValidatorInfo> {
    let mut ranked: Vec<(Balance, AccountId, AccountId)> = candidates(ctx)
        .into_iter()
        .filter_map(|who| {
            let prefs = candidate(ctx, &who)?;
            let bonded = ledger(ctx, &who)?.bonded;
            (bonded >= config.min_bond).then_some((bonded, who, prefs.consensus_key))
        })
        .collect();
    ranked.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    ranked.truncate(config.max_validators as usize);
    let mut set: Vec<ValidatorInfo> = ranked
        .into_iter()
        .map(|(bonded, account, consensus_key)| ValidatorInfo {
            account,
            consensus_key,
            power: power_of(bonded),
        })
        .filter(|v| v.power > 0)
        .collect();
    set.sort_by_key(|v| v.consensus_key);
    set
}

/// End of block `number` (before `system::on_finalize`): the block reward to `proposer`, and at
/// the end of an epoch, the set rotation.
pub fn on_finalize<E>(ctx: &mut Context<E>, number: BlockNumber, proposer: AccountId)
where
    E: From<Event> + From<pallet_balances::Event>,
{
    let config = config(ctx);
    if config.block_reward > 0 && pallet_balances::mint(ctx, proposer, config.block_reward).is_ok()
    {
        ctx.deposit_event(Event::BlockRewarded {
            proposer,
            amount: config.block_reward,
        });
    }
    if is_epoch_end(number, config.epoch_length) {
        end_epoch(ctx, number, &config);
    }
}

fn end_epoch<E: From<Event>>(ctx: &mut Context<E>, number: BlockNumber, config: &StakingConfig) {
    let next_height = number + 1;
    let mut active = active_set(ctx);
    if let Some(next) = scheduled_set(ctx) {
        if next.since <= next_height {
            ctx.overlay.delete(scheduled_set_key());
            ctx.overlay.put_encoded(active_set_key(), &next);
            ctx.deposit_event(Event::ValidatorSetActivated {
                since: next.since,
                count: next.validators.len() as u32,
            });
            active = next;
        }
    }
    let chosen = select(ctx, config);
    if chosen.is_empty() || chosen == active.validators {
        return;
    }
    let effective_at = next_height.saturating_add(config.epoch_length);
    ctx.overlay.put_encoded(
        scheduled_set_key(),
        &ValidatorSet {
            since: effective_at,
            validators: chosen.clone(),
        },
    );
    ctx.deposit_event(Event::ValidatorSetScheduled {
        effective_at,
        validators: chosen,
    });
}

/// Genesis: the parameters, and each `(account, stake)` bonded from its (already funded)
/// balance and made a candidate with its account key as consensus key. The active set (since
/// height 0) is chosen from them.
pub fn build_genesis<E>(
    ctx: &mut Context<E>,
    config: &StakingConfig,
    validators: &[(AccountId, Balance)],
) -> Result<(), String>
where
    E: From<Event> + From<pallet_balances::Event>,
{
    config.check()?;
    if validators.len() > config.max_validators as usize {
        return Err(format!(
            "{} genesis validators, maxValidators is {}",
            validators.len(),
            config.max_validators
        ));
    }
    set_config(ctx, config);
    for (who, stake) in validators {
        if ledger(ctx, who).is_some() {
            return Err(format!("validator {who} is listed twice"));
        }
        bond(ctx, *who, *stake).map_err(|e| format!("validator {who}: {e}"))?;
        validate(ctx, *who, *who, 0).map_err(|e| format!("validator {who}: {e}"))?;
    }
    let set = ValidatorSet {
        since: 0,
        validators: select(ctx, config),
    };
    ctx.overlay.put_encoded(active_set_key(), &set);
    Ok(())
}
