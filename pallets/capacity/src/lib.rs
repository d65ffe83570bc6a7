//! # pallet-capacity
//!
//! Capacity proofs from the 3Nodes, and the rewards they earn.
//!
//! - [`Call::ReportCapacity`] is signed by the node's own key (the extrinsic signature is the
//!   proof's signature) once per capacity period (`pallet_tfgrid::TfgridConfig`): measured
//!   resources, resources its workloads use, seconds since boot and the node's clock. A timestamp
//!   more than `timestamp_tolerance_ms` from the block time is rejected (`StaleProof` if behind,
//!   `FutureProof` if ahead).
//! - **Down**: a node whose last proof is older than two periods is Down: it takes no new
//!   reservations and its reservations accrue nothing (billing follows the node's up clock, see
//!   `pallet_tfgrid`). [`on_initialize`] records the transition and emits `NodeDown`, checking at
//!   most [`SWEEP_PER_BLOCK`] nodes per block (a round-robin cursor); a proof brings the node
//!   back Up at once (`NodeUp`).
//! - **Measured below reserved**: if a proof measures less than reservations hold on the node,
//!   `CapacityBelowReserved` is emitted and the node takes no new reservations until a proof
//!   measures enough again (`CapacityRestored`).
//! - **Farmer rewards** (the farming policy, [`CapacityConfig`]), in reward epochs of
//!   `reward_epoch_ms` of block time:
//!   1. each accepted proof adds a *claim* for the node in the current epoch:
//!      `(CU × reward_per_cu_hour + SU × reward_per_su_hour) × up hours`, where CU/SU are those
//!      of the measured resources capped at the registered ones (which the chain spec caps per
//!      node, see `pallet_tfgrid`), and the up time is the block time since the previous proof,
//!      capped at two periods (beyond that the node was Down and earns nothing) and at the
//!      node's own uptime (a reboot loses the time it was off); the first proof claims nothing;
//!   2. the epoch's mint is at most `reward_budget_per_epoch`: if the claims of an epoch add up
//!      to more, each is paid pro rata, `claim × budget / total claims` (rounded down), so a
//!      node that lies about its capacity dilutes the others' shares but never raises what
//!      the chain mints;
//!   3. a node's claim of epoch `e` is paid to its farm's payout account by its first proof in
//!      epoch `e + 1`, when the epoch's total is final (one write per proof, no per-epoch sweep
//!      over all nodes). A node that does not prove in `e + 1` was Down at the turn of the
//!      epoch and forfeits it.
//!
//!   So the issuance minted in any epoch is at most the budget (the shares of the epoch before
//!   it), which the proptest in `tests.rs` checks over random register/update/proof sequences.

use gridchain_primitives::{
    account::balance_string, state::storage_key, state::storage_map_key, AccountId, Balance,
};
use pallet_system::{Context, PalletError};
use pallet_tfgrid::{FarmId, NodeId, NodeStatus, Resources};
use parity_scale_codec::{Decode, Encode};
use serde::{Deserialize, Serialize};

#[cfg(test)]
mod tests;

pub const PALLET: &str = "capacity";

/// Most nodes [`on_initialize`] checks for Down per block.
pub const SWEEP_PER_BLOCK: u32 = 64;

/// The farming policy and proof checks, from the chain spec.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CapacityConfig {
    /// Largest accepted difference between a proof's timestamp and the block time.
    pub timestamp_tolerance_ms: u64,
    /// Units minted per CU per hour of up time.
    #[serde(with = "balance_string")]
    pub reward_per_cu_hour: Balance,
    /// Units minted per SU per hour of up time.
    #[serde(with = "balance_string")]
    pub reward_per_su_hour: Balance,
    /// Length of a reward epoch, in block time. At least two capacity periods, so every Up
    /// node proves in every epoch.
    pub reward_epoch_ms: u64,
    /// Most units minted as farming rewards per epoch, shared pro rata when the claims exceed
    /// it.
    #[serde(with = "balance_string")]
    pub reward_budget_per_epoch: Balance,
}

impl Default for CapacityConfig {
    fn default() -> Self {
        CapacityConfig {
            timestamp_tolerance_ms: 30_000,
            reward_per_cu_hour: 0,
            reward_per_su_hour: 0,
            reward_epoch_ms: 3_600_000,
            reward_budget_per_epoch: 0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "call")]
pub enum Call {
    #[serde(rename_all = "camelCase")]
    ReportCapacity {
        measured: Resources,
        used: Resources,
        uptime_seconds: u64,
        timestamp_ms: u64,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "event")]
pub enum Event {
    #[serde(rename_all = "camelCase")]
    CapacityReported {
        node_id: NodeId,
        measured: Resources,
        used: Resources,
    },
    #[serde(rename_all = "camelCase")]
    NodeUp { node_id: NodeId },
    #[serde(rename_all = "camelCase")]
    NodeDown { node_id: NodeId },
    #[serde(rename_all = "camelCase")]
    CapacityBelowReserved {
        node_id: NodeId,
        measured: Resources,
        reserved: Resources,
    },
    #[serde(rename_all = "camelCase")]
    CapacityRestored { node_id: NodeId },
    #[serde(rename_all = "camelCase")]
    FarmerRewarded {
        node_id: NodeId,
        farm_id: FarmId,
        payout: AccountId,
        /// Epoch the reward was earned in.
        epoch: u64,
        /// What the node claimed in that epoch.
        #[serde(with = "balance_string")]
        claimed: Balance,
        /// What it was paid: the claim, or its pro-rata share of the budget.
        #[serde(with = "balance_string")]
        amount: Balance,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("the signer is not a registered node")]
    NotANode,
    #[error("proof timestamp {timestamp_ms} is more than the tolerance behind block time {block_time_ms}")]
    StaleProof {
        timestamp_ms: u64,
        block_time_ms: u64,
    },
    #[error("proof timestamp {timestamp_ms} is more than the tolerance ahead of block time {block_time_ms}")]
    FutureProof {
        timestamp_ms: u64,
        block_time_ms: u64,
    },
    #[error("this node already proved its capacity in this block")]
    DuplicateProof,
}

impl PalletError for Error {
    const PALLET: &'static str = PALLET;
    fn name(&self) -> &'static str {
        match self {
            Error::NotANode => "NotANode",
            Error::StaleProof { .. } => "StaleProof",
            Error::FutureProof { .. } => "FutureProof",
            Error::DuplicateProof => "DuplicateProof",
        }
    }
}

pub fn config_key() -> Vec<u8> {
    storage_key(PALLET, "config")
}
pub fn sweep_cursor_key() -> Vec<u8> {
    storage_key(PALLET, "sweep_cursor")
}
/// [`RewardEpochs`]: the claims of the current and the previous epoch.
pub fn reward_epochs_key() -> Vec<u8> {
    storage_key(PALLET, "reward_epochs")
}
/// A node's [`NodeClaim`].
pub fn node_claim_key(node_id: NodeId) -> Vec<u8> {
    storage_map_key(PALLET, "node_claim", &node_id)
}

/// Claims added up per reward epoch: the current one, and the previous one, whose claims are
/// being paid.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RewardEpochs {
    pub epoch: u64,
    #[serde(with = "balance_string")]
    pub claimed: Balance,
    #[serde(with = "balance_string")]
    pub previous_claimed: Balance,
}

impl RewardEpochs {
    /// The totals as seen from `epoch` (at or after `self.epoch`).
    fn at(self, epoch: u64) -> RewardEpochs {
        if epoch == self.epoch {
            return self;
        }
        RewardEpochs {
            epoch,
            claimed: 0,
            previous_claimed: if epoch == self.epoch + 1 {
                self.claimed
            } else {
                0
            },
        }
    }
}

/// What a node claimed in the last epoch it proved in (not yet paid).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeClaim {
    pub epoch: u64,
    #[serde(with = "balance_string")]
    pub amount: Balance,
}

pub fn reward_epochs<E>(ctx: &Context<E>) -> RewardEpochs {
    ctx.overlay
        .get_decoded(&reward_epochs_key())
        .unwrap_or_default()
}
pub fn node_claim<E>(ctx: &Context<E>, node_id: NodeId) -> Option<NodeClaim> {
    ctx.overlay.get_decoded(&node_claim_key(node_id))
}
/// A deleted node's unpaid claim is dropped (its share of the budget is not minted).
pub fn forget_node<E>(ctx: &mut Context<E>, node_id: NodeId) {
    ctx.overlay.delete(node_claim_key(node_id));
}

/// `claim × budget / total`, rounded down, exactly (the product of two `u128` needs 256 bits),
/// and never above the budget.
pub fn pro_rata(claim: Balance, budget: Balance, total: Balance) -> Balance {
    if total <= budget {
        return claim;
    }
    let share = U256::from(claim) * U256::from(budget) / U256::from(total);
    share.min(U256::from(budget)).low_u128()
}

use u256::U256;

mod u256 {
    // The macro's own arithmetic trips clippy; it is the crate's code, not ours.
    #![allow(clippy::manual_div_ceil)]
    uint::construct_uint! {
        pub struct U256(4);
    }
}

pub fn config<E>(ctx: &Context<E>) -> CapacityConfig {
    ctx.overlay.get_decoded(&config_key()).unwrap_or_default()
}
pub fn set_config<E>(ctx: &mut Context<E>, config: &CapacityConfig) {
    ctx.overlay.put_encoded(config_key(), config);
}

pub fn dispatch<E>(ctx: &mut Context<E>, who: AccountId, call: Call) -> Result<(), Error>
where
    E: From<Event> + From<pallet_balances::Event>,
{
    match call {
        Call::ReportCapacity {
            measured,
            used,
            uptime_seconds,
            timestamp_ms,
        } => report_capacity(ctx, who, measured, used, uptime_seconds, timestamp_ms),
    }
}

fn report_capacity<E>(
    ctx: &mut Context<E>,
    who: AccountId,
    measured: Resources,
    used: Resources,
    uptime_seconds: u64,
    timestamp_ms: u64,
) -> Result<(), Error>
where
    E: From<Event> + From<pallet_balances::Event>,
{
    let node_id = pallet_tfgrid::node_id_of(ctx, &who).ok_or(Error::NotANode)?;
    let mut node = pallet_tfgrid::node(ctx, node_id).ok_or(Error::NotANode)?;
    let config = config(ctx);
    let now = pallet_timestamp::now(ctx);
    if timestamp_ms < now.saturating_sub(config.timestamp_tolerance_ms) {
        return Err(Error::StaleProof {
            timestamp_ms,
            block_time_ms: now,
        });
    }
    if timestamp_ms > now.saturating_add(config.timestamp_tolerance_ms) {
        return Err(Error::FutureProof {
            timestamp_ms,
            block_time_ms: now,
        });
    }
    let period = pallet_tfgrid::config(ctx).capacity_period_ms;
    let mut health = pallet_tfgrid::health(ctx, node_id);
    if health.last_proof_ms == Some(now) {
        return Err(Error::DuplicateProof);
    }
    let up_ms = match health.last_proof_ms {
        Some(last) => (now - last)
            .min(period.saturating_mul(2))
            .min(uptime_seconds.saturating_mul(1_000)),
        None => 0,
    };
    pallet_tfgrid::record_proof(&mut health, now, period);
    health.measured = measured;
    health.used_reported = used;
    let reserved = pallet_tfgrid::used(ctx, node_id);
    let below = !reserved.fits_in(&measured);
    ctx.deposit_event(Event::CapacityReported {
        node_id,
        measured,
        used,
    });
    if below && !health.below_reserved {
        ctx.deposit_event(Event::CapacityBelowReserved {
            node_id,
            measured,
            reserved,
        });
    } else if !below && health.below_reserved {
        ctx.deposit_event(Event::CapacityRestored { node_id });
    }
    health.below_reserved = below;
    pallet_tfgrid::put_health(ctx, node_id, &health);
    if node.status != NodeStatus::Up {
        node.status = NodeStatus::Up;
        pallet_tfgrid::put_node(ctx, &node);
        ctx.deposit_event(Event::NodeUp { node_id });
    }
    reward(ctx, &node, &measured, up_ms, now, &config);
    Ok(())
}

/// Pays the node's claim of the epoch before, then adds this proof's claim (crate docs).
fn reward<E>(
    ctx: &mut Context<E>,
    node: &pallet_tfgrid::Node,
    measured: &Resources,
    up_ms: u64,
    now: u64,
    config: &CapacityConfig,
) where
    E: From<Event> + From<pallet_balances::Event>,
{
    let epoch = now / config.reward_epoch_ms.max(1);
    let mut epochs = reward_epochs(ctx).at(epoch);
    let mut claim = match node_claim(ctx, node.id) {
        Some(claim) if claim.epoch == epoch => claim,
        Some(earlier) => {
            if earlier.epoch + 1 == epoch {
                pay(ctx, node, earlier, epochs.previous_claimed, config);
            }
            NodeClaim { epoch, amount: 0 }
        }
        None => NodeClaim { epoch, amount: 0 },
    };
    let capacity = Resources {
        cru: measured.cru.min(node.resources.cru),
        mru: measured.mru.min(node.resources.mru),
        sru: measured.sru.min(node.resources.sru),
        hru: measured.hru.min(node.resources.hru),
    };
    let per_hour = pallet_tfgrid::cu_micro(&capacity)
        .saturating_mul(config.reward_per_cu_hour)
        .saturating_add(
            pallet_tfgrid::su_micro(&capacity).saturating_mul(config.reward_per_su_hour),
        )
        / 1_000_000;
    let earned = per_hour.saturating_mul(up_ms as u128) / 3_600_000;
    claim.amount = claim.amount.saturating_add(earned);
    epochs.claimed = epochs.claimed.saturating_add(earned);
    ctx.overlay.put_encoded(reward_epochs_key(), &epochs);
    if claim.amount == 0 {
        ctx.overlay.delete(node_claim_key(node.id));
    } else {
        ctx.overlay.put_encoded(node_claim_key(node.id), &claim);
    }
}

/// Mints the node's share of its finished epoch's claims, `total` being that epoch's.
fn pay<E>(
    ctx: &mut Context<E>,
    node: &pallet_tfgrid::Node,
    claim: NodeClaim,
    total: Balance,
    config: &CapacityConfig,
) where
    E: From<Event> + From<pallet_balances::Event>,
{
    let Some(farm) = pallet_tfgrid::farm(ctx, node.farm_id) else {
        return;
    };
    let amount = pro_rata(claim.amount, config.reward_budget_per_epoch, total);
    if amount == 0 {
        return;
    }
    if pallet_balances::mint(ctx, farm.payout, amount).is_ok() {
        ctx.deposit_event(Event::FarmerRewarded {
            node_id: node.id,
            farm_id: farm.id,
            payout: farm.payout,
            epoch: claim.epoch,
            claimed: claim.amount,
            amount,
        });
    }
}

/// Start of a block: records up to [`SWEEP_PER_BLOCK`] nodes that went Down.
pub fn on_initialize<E: From<Event>>(ctx: &mut Context<E>) {
    let end = pallet_tfgrid::next_node_id(ctx);
    if end <= 1 {
        return;
    }
    let mut cursor: NodeId = ctx.overlay.get_decoded(&sweep_cursor_key()).unwrap_or(1);
    for _ in 0..SWEEP_PER_BLOCK.min(end - 1) {
        if cursor >= end || cursor == 0 {
            cursor = 1;
        }
        if let Some(mut node) = pallet_tfgrid::node(ctx, cursor) {
            if node.status == NodeStatus::Up
                && pallet_tfgrid::node_status(ctx, cursor) == NodeStatus::Down
            {
                node.status = NodeStatus::Down;
                pallet_tfgrid::put_node(ctx, &node);
                ctx.deposit_event(Event::NodeDown { node_id: cursor });
            }
        }
        cursor += 1;
    }
    ctx.overlay.put_encoded(sweep_cursor_key(), &cursor);
}
