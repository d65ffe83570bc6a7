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
//! - **Farmer rewards** (the farming policy, [`CapacityConfig`]): each accepted proof mints to the
//!   farm's payout account
//!   `(CU × reward_per_cu_hour + SU × reward_per_su_hour) × up hours`,
//!   where CU/SU are those of the measured resources capped at the registered ones, and the up
//!   time is the block time since the previous proof, capped at two periods (beyond that the
//!   node was Down and earns nothing) and at the node's own uptime (a reboot loses the time it
//!   was off). Over a settlement period the farmer is thus paid in proportion to capacity ×
//!   uptime; the first proof earns nothing.

use gridchain_primitives::{account::balance_string, state::storage_key, AccountId, Balance};
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
}

impl Default for CapacityConfig {
    fn default() -> Self {
        CapacityConfig {
            timestamp_tolerance_ms: 30_000,
            reward_per_cu_hour: 0,
            reward_per_su_hour: 0,
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
        #[serde(with = "balance_string")]
        amount: Balance,
        up_ms: u64,
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
    reward(ctx, &node, &measured, up_ms, &config);
    Ok(())
}

fn reward<E>(
    ctx: &mut Context<E>,
    node: &pallet_tfgrid::Node,
    measured: &Resources,
    up_ms: u64,
    config: &CapacityConfig,
) where
    E: From<Event> + From<pallet_balances::Event>,
{
    let Some(farm) = pallet_tfgrid::farm(ctx, node.farm_id) else {
        return;
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
    let amount = per_hour.saturating_mul(up_ms as u128) / 3_600_000;
    if amount == 0 {
        return;
    }
    if pallet_balances::mint(ctx, farm.payout, amount).is_ok() {
        ctx.deposit_event(Event::FarmerRewarded {
            node_id: node.id,
            farm_id: farm.id,
            payout: farm.payout,
            amount,
            up_ms,
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
