//! The state of block 0, built from a chain spec's genesis section.

use crate::{balances, system, Context, Event, SPEC_VERSION};
use gridchain_primitives::{AccountId, Balance, Overlay, StateChanges};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GenesisConfig {
    pub balances: Vec<(AccountId, Balance)>,
}

/// Why a genesis config cannot become a state.
#[derive(Debug, thiserror::Error)]
pub enum GenesisError {
    #[error("account {0} is endowed twice")]
    DuplicateAccount(AccountId),
    #[error("genesis balances overflow the total issuance")]
    Overflow,
}

/// The genesis state's key-value pairs.
pub fn build_genesis(config: &GenesisConfig) -> Result<StateChanges, GenesisError> {
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
    system::on_finalize(&mut ctx);
    Ok(ctx.into_parts().0)
}
