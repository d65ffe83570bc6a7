//! # pallet-timestamp
//!
//! Stores the time of the current block (`timestamp/now`, milliseconds since the Unix epoch),
//! taken from the block header. Block times must strictly increase, so billing and capacity
//! periods measured in block time never run backwards. Checking the time against the local clock
//! (drift) is the node's job, because the runtime has no clock.
//!
//! No calls: the proposer sets the time in the header.

use gridchain_primitives::state::storage_key;
use pallet_system::{Context, PalletError};

#[cfg(test)]
mod tests;

pub const PALLET: &str = "timestamp";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("block time {now_ms} ms is not after the previous block's {previous_ms} ms")]
    NotIncreasing { previous_ms: u64, now_ms: u64 },
}

impl PalletError for Error {
    const PALLET: &'static str = PALLET;
    fn name(&self) -> &'static str {
        match self {
            Error::NotIncreasing { .. } => "NotIncreasing",
        }
    }
}

pub fn now_key() -> Vec<u8> {
    storage_key(PALLET, "now")
}

/// The current block's time (0 before block 1).
pub fn now<E>(ctx: &Context<E>) -> u64 {
    ctx.overlay.get_decoded(&now_key()).unwrap_or(0)
}

/// Start of a block stamped `now_ms`.
pub fn on_initialize<E>(ctx: &mut Context<E>, now_ms: u64) -> Result<(), Error> {
    let previous_ms = now(ctx);
    if now_ms <= previous_ms {
        return Err(Error::NotIncreasing {
            previous_ms,
            now_ms,
        });
    }
    ctx.overlay.put_encoded(now_key(), &now_ms);
    Ok(())
}
