//! # pallet-system
//!
//! The pallet every other pallet stands on:
//!
//! - [`Context`]: what a pallet call runs against — the state [`Overlay`], the events of the block
//!   so far and the current [`Phase`]. [`Context::transactional`] runs a closure in a nested
//!   storage transaction and drops both its writes and its events if it fails, which is how a
//!   failed call still pays its fee but changes nothing else.
//! - Storage: account nonces, the block number, the parent and genesis hashes, the spec version and
//!   the events of the current block (readable with `state_getStorage` and provable with
//!   `state_getReadProof`, so a light client can check what happened in a block).
//! - [`DispatchError`]: the pallet-independent form of any pallet's error (`pallet`, `error`
//!   variant name, human `message`), carried in `ExtrinsicFailed` events.
//! - [`StoredSet`]: a set kept as one storage entry per member, for pallets whose indexes
//!   must grow without any single write growing with them.
//! - One call, [`Call::Remark`], which records the hash of arbitrary bytes on chain.

use gridchain_primitives::{
    block::BlockNumber, state::storage_key, state::storage_map_key, AccountId, Balance, Hash,
    Overlay, SpecVersion,
};
use parity_scale_codec::{Decode, Encode};
use serde::{Deserialize, Serialize};

mod stored_set;
#[cfg(test)]
mod tests;

pub use stored_set::StoredSet;

pub const PALLET: &str = "system";

/// Where in the block an event happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Phase {
    Initialization,
    ApplyExtrinsic(u32),
    Finalization,
}

#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct EventRecord<E> {
    pub phase: Phase,
    pub event: E,
}

/// A pallet error in a form every client can show without knowing the pallet.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct DispatchError {
    pub pallet: String,
    /// The error variant, e.g. `InsufficientBalance`: stable, for programs.
    pub error: String,
    /// What went wrong, for people.
    pub message: String,
}

impl std::fmt::Display for DispatchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}::{}: {}", self.pallet, self.error, self.message)
    }
}

/// Implemented by every pallet's error enum.
pub trait PalletError: std::fmt::Display {
    const PALLET: &'static str;
    /// The variant's name.
    fn name(&self) -> &'static str;

    fn into_dispatch_error(self) -> DispatchError
    where
        Self: Sized,
    {
        DispatchError {
            pallet: Self::PALLET.to_string(),
            error: self.name().to_string(),
            message: self.to_string(),
        }
    }
}

/// The context pallet code runs in: state overlay plus the block's events so far.
pub struct Context<'a, E> {
    pub overlay: Overlay<'a>,
    events: Vec<EventRecord<E>>,
    phase: Phase,
}

impl<'a, E> Context<'a, E> {
    pub fn new(overlay: Overlay<'a>) -> Self {
        Context {
            overlay,
            events: Vec::new(),
            phase: Phase::Initialization,
        }
    }

    pub fn set_phase(&mut self, phase: Phase) {
        self.phase = phase;
    }

    pub fn deposit_event(&mut self, event: impl Into<E>) {
        self.events.push(EventRecord {
            phase: self.phase,
            event: event.into(),
        });
    }

    pub fn events(&self) -> &[EventRecord<E>] {
        &self.events
    }

    /// Runs `f` in a nested transaction: on `Err` its state writes and events are discarded.
    pub fn transactional<T, Err>(
        &mut self,
        f: impl FnOnce(&mut Self) -> Result<T, Err>,
    ) -> Result<T, Err> {
        let events_before = self.events.len();
        self.overlay.start_transaction();
        let result = f(self);
        if result.is_ok() {
            self.overlay.commit_transaction();
        } else {
            self.overlay.rollback_transaction();
            self.events.truncate(events_before);
        }
        result
    }

    /// Ends the block: returns its state changes and events.
    pub fn into_parts(self) -> (gridchain_primitives::StateChanges, Vec<EventRecord<E>>) {
        (self.overlay.into_changes(), self.events)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "call")]
pub enum Call {
    /// Records `blake2b-256(data)` in a `Remarked` event.
    Remark { data: gridchain_primitives::Bytes },
}

#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "event")]
pub enum Event {
    /// An extrinsic's call succeeded. `fee` includes the tip.
    #[serde(rename_all = "camelCase")]
    ExtrinsicSuccess {
        #[serde(with = "gridchain_primitives::account::balance_string")]
        fee: Balance,
    },
    /// An extrinsic's call failed; its fee was paid and its nonce used, nothing else changed.
    #[serde(rename_all = "camelCase")]
    ExtrinsicFailed {
        error: DispatchError,
        #[serde(with = "gridchain_primitives::account::balance_string")]
        fee: Balance,
    },
    Remarked {
        who: AccountId,
        hash: Hash,
    },
}

/// `system` has no failing call today; the enum exists so its calls follow the same shape.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {}

impl PalletError for Error {
    const PALLET: &'static str = PALLET;
    fn name(&self) -> &'static str {
        match *self {}
    }
}

pub fn dispatch<E: From<Event>>(
    ctx: &mut Context<E>,
    who: AccountId,
    call: Call,
) -> Result<(), Error> {
    match call {
        Call::Remark { data } => {
            ctx.deposit_event(Event::Remarked {
                who,
                hash: Hash::of(&data.0),
            });
            Ok(())
        }
    }
}

// ---- storage ----

pub fn nonce_key(who: &AccountId) -> Vec<u8> {
    storage_map_key(PALLET, "nonce", who)
}
pub fn block_number_key() -> Vec<u8> {
    storage_key(PALLET, "number")
}
pub fn parent_hash_key() -> Vec<u8> {
    storage_key(PALLET, "parent_hash")
}
pub fn genesis_hash_key() -> Vec<u8> {
    storage_key(PALLET, "genesis_hash")
}
pub fn spec_version_key() -> Vec<u8> {
    storage_key(PALLET, "spec_version")
}
/// The events of the block that produced this state: `Vec<EventRecord<runtime::Event>>`.
pub fn events_key() -> Vec<u8> {
    storage_key(PALLET, "events")
}

pub fn nonce<E>(ctx: &Context<E>, who: &AccountId) -> u64 {
    ctx.overlay.get_decoded(&nonce_key(who)).unwrap_or(0)
}

pub fn inc_nonce<E>(ctx: &mut Context<E>, who: &AccountId) {
    let next = nonce(ctx, who) + 1;
    ctx.overlay.put_encoded(nonce_key(who), &next);
}

pub fn block_number<E>(ctx: &Context<E>) -> BlockNumber {
    ctx.overlay.get_decoded(&block_number_key()).unwrap_or(0)
}

/// Genesis: records the runtime's spec version.
pub fn build_genesis<E>(ctx: &mut Context<E>, spec_version: SpecVersion) {
    ctx.overlay.put_encoded(spec_version_key(), &spec_version);
}

/// Start of block `number`, child of `parent_hash`. Block 1's parent is the genesis block, so
/// that is when the genesis hash becomes known to the state.
pub fn on_initialize<E>(ctx: &mut Context<E>, number: BlockNumber, parent_hash: Hash) {
    ctx.overlay.put_encoded(block_number_key(), &number);
    ctx.overlay.put_encoded(parent_hash_key(), &parent_hash);
    if number == 1 {
        ctx.overlay.put_encoded(genesis_hash_key(), &parent_hash);
    }
}

/// End of block: stores the block's events in state.
pub fn on_finalize<E: Encode>(ctx: &mut Context<E>) {
    let encoded = ctx.events.encode();
    ctx.overlay.put(events_key(), encoded);
}
