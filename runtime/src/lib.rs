//! # gridchain runtime
//!
//! The chain's rules, as a native Rust library with no I/O. The node gives it read access to the
//! parent block's state and gets back the block's state changes and events; storing them and
//! computing the state root is the node's job.
//!
//! ```text
//!            ┌──────────── BlockBuilder (producing) / execute_block (importing) ─────────────┐
//! parent ──▶ │ on_initialize: system (number, parent hash), timestamp (strictly increasing)  │
//! state      │ for each extrinsic:                                                           │
//!            │   check size, mortality, signature, nonce, fee balance     ─▶ InvalidTransaction│
//!            │   pay fee + tip to the proposer, bump nonce                  (block rejected)  │
//!            │   dispatch call in a nested transaction ─ Err ─▶ roll back, ExtrinsicFailed     │
//!            │                                        └ Ok  ─▶ commit,    ExtrinsicSuccess    │
//!            │ on_finalize: events of the block stored in state                              │
//!            └────────────────────────────────▶ StateChanges + events + extrinsics root ─────┘
//! ```
//!
//! Fees ([`fee_for`]): `BASE_FEE + BYTE_FEE × encoded length + WEIGHT_FEE × weight`, plus the
//! optional tip, all paid by the signer to the block's proposer before the call runs. A call's
//! weight is its measured cost to every validator ([`weight`]); a block holds at most
//! [`weight::MAX_EXTRINSICS_WEIGHT`] of it. A failed call still pays its whole weight and still
//! uses its nonce; nothing else it did survives.
//!
//! The grid's per-block work is bounded: capacity checks at most `SWEEP_PER_BLOCK` nodes, and
//! billing settles one bucket of at most `max_per_bucket` reservations (see `pallet_billing`).
//!
//! At the end of every block `pallet_validators::on_finalize` mints the chain spec's
//! `blockReward` to the proposer (the only per-block issuance; 0 on `dev`) and, on the last block
//! of an epoch, rotates the validator set. The node reads the set that signs height `H` with
//! [`validators::validator_set_at`] on the state after block `H - 1`.
//!
//! [`Call`] and [`Event`] gather the pallets' calls and events; their SCALE index is their
//! position, so new pallets are appended, never inserted.

mod executive;
mod genesis;
pub mod weight;
mod weights;

pub use executive::{
    execute_block, execute_block_with_verified, extrinsic_fee, fee_for, validate_transaction,
    validate_transaction_except_signature, verify_signatures, BlockBuilder, BlockError, BuiltBlock,
    InvalidTransaction, ValidTransaction,
};
pub use genesis::{
    build_genesis, genesis_header, GenesisConfig, GenesisError, GenesisFarm, GridGenesis,
};

use gridchain_primitives::SpecVersion;
use parity_scale_codec::{Decode, Encode};
use serde::{Deserialize, Serialize};

pub use pallet_balances as balances;
pub use pallet_billing as billing;
pub use pallet_capacity as capacity;
pub use pallet_reservations as reservations;
pub use pallet_system as system;
pub use pallet_tfgrid as tfgrid;
pub use pallet_timestamp as timestamp;
pub use pallet_twins as twins;
pub use pallet_validators as validators;

/// Bumped whenever the meaning of a call or of state changes. Signed payloads include it.
/// 2: the `validators` pallet (staking, validator set, block reward).
/// 3: fees by weight, a block weight limit.
pub const SPEC_VERSION: SpecVersion = 3;

/// Fee every extrinsic pays, in the smallest unit (the token has 12 decimals: 0.001 GRID). It
/// prices what the weight leaves out: the signature check and the transaction's trip through
/// every pool.
pub const BASE_FEE: u128 = 1_000_000_000;
/// Fee per byte of the encoded extrinsic (0.000001 GRID): every node stores and sends it.
pub const BYTE_FEE: u128 = 1_000_000;
/// Fee per picosecond of weight: 100 units, so 10 µs of work costs 0.001 GRID and a block's
/// whole extrinsic weight (1.5 s) 150 GRID.
pub const WEIGHT_FEE: u128 = 100;
/// Largest encoded extrinsic accepted.
pub const MAX_EXTRINSIC_BYTES: usize = 64 * 1024;
/// Largest sum of encoded extrinsics in one block.
pub const MAX_BLOCK_BYTES: usize = 16 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
#[serde(tag = "pallet", rename_all = "camelCase")]
pub enum Call {
    System(system::Call),
    Balances(balances::Call),
    Twins(twins::Call),
    Tfgrid(tfgrid::Call),
    Reservations(reservations::Call),
    Capacity(capacity::Call),
    Validators(validators::Call),
}

#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
#[serde(tag = "pallet", rename_all = "camelCase")]
pub enum Event {
    System(system::Event),
    Balances(balances::Event),
    Twins(twins::Event),
    Tfgrid(tfgrid::Event),
    Reservations(reservations::Event),
    Billing(billing::Event),
    Capacity(capacity::Event),
    Validators(validators::Event),
}

macro_rules! event_from {
    ($($variant:ident($pallet:ident)),*) => {$(
        impl From<$pallet::Event> for Event {
            fn from(e: $pallet::Event) -> Self {
                Event::$variant(e)
            }
        }
    )*};
}

event_from!(
    Twins(twins),
    Tfgrid(tfgrid),
    Reservations(reservations),
    Billing(billing),
    Capacity(capacity),
    Validators(validators)
);

impl From<system::Event> for Event {
    fn from(e: system::Event) -> Self {
        Event::System(e)
    }
}

impl From<balances::Event> for Event {
    fn from(e: balances::Event) -> Self {
        Event::Balances(e)
    }
}

pub type Extrinsic = gridchain_primitives::Extrinsic<Call>;
pub type Block = gridchain_primitives::Block<Call>;
pub type EventRecord = system::EventRecord<Event>;
pub type Context<'a> = system::Context<'a, Event>;

/// The nonce the next transaction of `who` must carry, in `state`.
pub fn account_nonce(
    state: &dyn gridchain_primitives::StateRead,
    who: &gridchain_primitives::AccountId,
) -> u64 {
    let ctx: Context = Context::new(gridchain_primitives::Overlay::new(state));
    system::nonce(&ctx, who)
}

#[cfg(test)]
mod tests;
