//! What a call costs every validator, and what its signer pays for it.
//!
//! A **weight** is picoseconds of work on the reference machine (the one `weights.rs` was
//! measured on), as Substrate's `ref_time`. An extrinsic's weight is
//!
//! ```text
//! weight = compute + per_byte × encoded length + writes × DB_WRITE
//! ```
//!
//! where, for each call, `compute` is the measured time to apply it in a block (check nonce, pay
//! the fee, dispatch on a RocksDB-backed state with the state's reads, deposit its events) in the
//! worst case the chain's bounds allow (a full farm, a full candidate list, the largest
//! deployment…), `per_byte` is measured for the calls whose work grows with their data
//! (deployments, results, remarks), `writes` is the number of state keys the call changed in that
//! run, and `DB_WRITE` is the measured cost of one changed key at commit (its Jellyfish Merkle
//! tree path, its versioned value, RocksDB's write batch). Signature checks are not in the weight:
//! they run in parallel batches before execution and are priced by the base fee.
//!
//! The figures in `weights.rs` come from the criterion benchmark
//! `node/bench/benches/weights.rs`, which writes that file (see its doc for the command). This
//! module maps each call to its figures; a new call does not compile until it has a weight.
//!
//! Fees ([`crate::fee_for`]): `BASE_FEE + BYTE_FEE × length + WEIGHT_FEE × weight + tip`.
//! A block holds at most [`MAX_BLOCK_WEIGHT`] × 3/4 (1.5 s) of extrinsic weight; the rest is kept for the
//! bounded per-block hooks (billing one settlement bucket, the capacity sweep, ending a deleted
//! node's reservations 128 at a time, the validator rotation).

use crate::{balances, capacity, reservations, system, tfgrid, twins, validators};
use crate::{weights, Call};

/// Picoseconds of work on the reference machine.
pub type Weight = u64;

/// Two seconds of work: what a block may weigh in all. A proposal must be built, and executed by
/// every validator, within the propose timeout (3 s, or 3 block times), with room to spare; the
/// weights are measured as the worst case of each call, so a real block at the limit takes less
/// (the benchmark prints how much less for a block of transfers).
pub const MAX_BLOCK_WEIGHT: Weight = 2_000_000_000_000;

/// What extrinsics together may weigh in one block: three quarters of it, the rest is for the
/// hooks.
pub const MAX_EXTRINSICS_WEIGHT: Weight = MAX_BLOCK_WEIGHT / 4 * 3;

/// The measured cost of one call: see the module doc.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallWeight {
    /// Picoseconds to apply the call in its worst measured case.
    pub compute: Weight,
    /// Picoseconds per byte of the extrinsic, for calls whose work grows with their data.
    pub per_byte: Weight,
    /// State keys the call changed (each costs [`weights::DB_WRITE`] at commit).
    pub writes: u64,
}

impl CallWeight {
    /// The weight of an extrinsic of `encoded_len` bytes carrying this call.
    pub const fn of(&self, encoded_len: usize) -> Weight {
        self.compute
            .saturating_add(self.per_byte.saturating_mul(encoded_len as u64))
            .saturating_add(self.writes.saturating_mul(weights::DB_WRITE))
    }
}

/// The weight of an extrinsic carrying `call`, `encoded_len` bytes long.
pub fn extrinsic_weight(call: &Call, encoded_len: usize) -> Weight {
    call_weight(call).of(encoded_len)
}

/// The measured figures of `call`.
pub fn call_weight(call: &Call) -> CallWeight {
    use weights::*;
    match call {
        Call::System(system::Call::Remark { .. }) => SYSTEM_REMARK,
        Call::Balances(call) => match call {
            balances::Call::Transfer { .. } => BALANCES_TRANSFER,
            balances::Call::TransferAll { .. } => BALANCES_TRANSFER_ALL,
        },
        Call::Twins(call) => match call {
            twins::Call::CreateTwin { .. } => TWINS_CREATE_TWIN,
            twins::Call::UpdateTwin { .. } => TWINS_UPDATE_TWIN,
            twins::Call::DeleteTwin => TWINS_DELETE_TWIN,
        },
        Call::Tfgrid(call) => match call {
            tfgrid::Call::CreateFarm { .. } => TFGRID_CREATE_FARM,
            tfgrid::Call::UpdateFarm { .. } => TFGRID_UPDATE_FARM,
            tfgrid::Call::AddFarmIp { .. } => TFGRID_ADD_FARM_IP,
            tfgrid::Call::RemoveFarmIp { .. } => TFGRID_REMOVE_FARM_IP,
            tfgrid::Call::AllowNode { .. } => TFGRID_ALLOW_NODE,
            tfgrid::Call::DisallowNode { .. } => TFGRID_DISALLOW_NODE,
            tfgrid::Call::RegisterNode { .. } => TFGRID_REGISTER_NODE,
            tfgrid::Call::UpdateNode { .. } => TFGRID_UPDATE_NODE,
            tfgrid::Call::DeleteNode { .. } => TFGRID_DELETE_NODE,
        },
        Call::Reservations(call) => match call {
            reservations::Call::Reserve { .. } => RESERVATIONS_RESERVE,
            reservations::Call::ReserveMany { .. } => RESERVATIONS_RESERVE_MANY,
            reservations::Call::UpdateReservation { .. } => RESERVATIONS_UPDATE_RESERVATION,
            reservations::Call::CancelReservation { .. } => RESERVATIONS_CANCEL_RESERVATION,
            reservations::Call::ReportResults { .. } => RESERVATIONS_REPORT_RESULTS,
        },
        Call::Capacity(capacity::Call::ReportCapacity { .. }) => CAPACITY_REPORT_CAPACITY,
        Call::Validators(call) => match call {
            validators::Call::Bond { .. } => VALIDATORS_BOND,
            validators::Call::Unbond { .. } => VALIDATORS_UNBOND,
            validators::Call::WithdrawUnbonded => VALIDATORS_WITHDRAW_UNBONDED,
            validators::Call::Validate { .. } => VALIDATORS_VALIDATE,
            validators::Call::Chill => VALIDATORS_CHILL,
        },
    }
}
