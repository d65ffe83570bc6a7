//! The state of block 0, built from a chain spec's genesis section.

use crate::{
    balances, billing, capacity, reservations, system, tfgrid, twins, validators, Context, Event,
    SPEC_VERSION,
};
use gridchain_primitives::{AccountId, Balance, Overlay, StateChanges};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GenesisConfig {
    pub balances: Vec<(AccountId, Balance)>,
    /// `(account, stake)`: the stake is bonded (reserved) from the account's genesis balance,
    /// which must cover it; the account key is the consensus key.
    pub validators: Vec<(AccountId, Balance)>,
    pub staking: validators::StakingConfig,
    pub grid: GridGenesis,
}

/// The grid's parameters and initial farms (the chain spec's `genesis.grid`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GridGenesis {
    pub tfgrid: tfgrid::TfgridConfig,
    pub reservations: reservations::ReservationsConfig,
    pub billing: billing::BillingConfig,
    pub capacity: capacity::CapacityConfig,
    /// Ids are assigned in order from 1; the `id` fields are ignored.
    pub pricing_policies: Vec<tfgrid::PricingPolicy>,
    pub farms: Vec<GenesisFarm>,
}

/// A farm created at genesis, with its owner's twin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GenesisFarm {
    pub owner: AccountId,
    pub twin_name: String,
    pub name: String,
    pub pricing_policy_id: tfgrid::PricingPolicyId,
    /// Node keys the farm's owner allows to register on it from the start (see
    /// `pallet_tfgrid`'s consent rule).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_nodes: Vec<AccountId>,
}

/// Why a genesis config cannot become a state.
#[derive(Debug, thiserror::Error)]
pub enum GenesisError {
    #[error("account {0} is endowed twice")]
    DuplicateAccount(AccountId),
    #[error("genesis balances overflow the total issuance")]
    Overflow,
    #[error("invalid grid genesis: {0}")]
    Grid(String),
    #[error("invalid staking genesis: {0}")]
    Validators(String),
}

fn check_grid(grid: &GridGenesis) -> Result<(), GenesisError> {
    let fail = |m: &str| Err(GenesisError::Grid(m.to_string()));
    if grid.tfgrid.capacity_period_ms == 0 {
        return fail("capacityPeriodMs must be positive");
    }
    if grid.capacity.reward_epoch_ms < grid.tfgrid.capacity_period_ms.saturating_mul(2) {
        return fail("rewardEpochMs must be at least two capacity periods");
    }
    if grid.reservations.settlement_buckets == 0 || grid.reservations.max_per_bucket == 0 {
        return fail("settlementBuckets and maxPerBucket must be positive");
    }
    if !grid.billing.shares_valid() {
        return fail("billing shares must add up to 10000 basis points");
    }
    Ok(())
}

/// The genesis state's key-value pairs.
pub fn build_genesis(config: &GenesisConfig) -> Result<StateChanges, GenesisError> {
    check_grid(&config.grid)?;
    let empty = BTreeMap::new();
    let mut ctx: Context = Context::new(Overlay::new(&empty));
    system::build_genesis(&mut ctx, SPEC_VERSION);
    let mut seen = std::collections::BTreeSet::new();
    for (who, amount) in &config.balances {
        if !seen.insert(*who) {
            return Err(GenesisError::DuplicateAccount(*who));
        }
        balances::endow::<Event>(&mut ctx, *who, *amount).map_err(|_| GenesisError::Overflow)?;
    }
    validators::build_genesis::<Event>(&mut ctx, &config.staking, &config.validators)
        .map_err(GenesisError::Validators)?;
    let grid = &config.grid;
    tfgrid::set_config(&mut ctx, &grid.tfgrid);
    reservations::set_config(&mut ctx, &grid.reservations);
    billing::set_config(&mut ctx, &grid.billing);
    capacity::set_config(&mut ctx, &grid.capacity);
    for policy in &grid.pricing_policies {
        tfgrid::add_pricing_policy(&mut ctx, policy.clone());
    }
    for farm in &grid.farms {
        if twins::twin_id_of(&ctx, &farm.owner).is_none() {
            twins::create_twin(&mut ctx, farm.owner, farm.twin_name.clone(), String::new())
                .map_err(|e| GenesisError::Grid(format!("farm {}: {e}", farm.name)))?;
        }
        let farm_id = tfgrid::create_farm(
            &mut ctx,
            farm.owner,
            farm.name.clone(),
            farm.pricing_policy_id,
        )
        .map_err(|e| GenesisError::Grid(format!("farm {}: {e}", farm.name)))?;
        for node in &farm.allowed_nodes {
            tfgrid::allow_node(&mut ctx, farm.owner, farm_id, *node)
                .map_err(|e| GenesisError::Grid(format!("farm {}: {e}", farm.name)))?;
        }
    }
    system::on_finalize(&mut ctx);
    Ok(ctx.into_parts().0)
}

/// The header of block 0 over a genesis state with root `state_root`: no parent, no
/// extrinsics, no proposer, time 0.
pub fn genesis_header(state_root: gridchain_primitives::Hash) -> gridchain_primitives::Header {
    gridchain_primitives::Header {
        parent_hash: gridchain_primitives::Hash::ZERO,
        number: 0,
        timestamp_ms: 0,
        state_root,
        extrinsics_root: crate::Block::compute_extrinsics_root(&[]),
        proposer: Default::default(),
    }
}
