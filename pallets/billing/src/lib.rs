//! # pallet-billing
//!
//! Deterministic billing inside the runtime, at block boundaries: no off-chain worker, no
//! validator doing anything special.
//!
//! - **Accrual** is kept by `pallet_reservations` per reservation: rate × time the node was Up,
//!   counting only workloads the node reported `Ok` and nothing during grace.
//! - **Settlement**: every block's [`on_initialize`] settles one bucket — the reservations whose
//!   bucket is `block number mod settlement_buckets`. A reservation is therefore settled once per
//!   `settlement_buckets` blocks, and a block settles at most `max_per_bucket` reservations, so
//!   the work per block is bounded whatever the number of reservations.
//! - **Split** of every payment ([`BillingConfig`]): `farmer_share_bps` to the farm's payout
//!   account, `treasury_share_bps` to the treasury account, and the rest burned
//!   (`pallet_balances::burn`, counted in `balances/burned`, so
//!   `total_issuance = Σ(free + reserved) + burned` holds). If the node is gone, the farmer share
//!   goes to the treasury.
//! - **Deposit** (held since `reserve`, see `pallet_reservations::BillingAccount::deposit`): it
//!   guarantees the last bill. Settlements of a live reservation charge the free balance only;
//!   when the reservation ends (canceled, out of funds after its grace, node deleted), its final
//!   settlement pays what the free balance cannot from the deposit and gives the rest back.
//!   Paying running costs out of the deposit instead would let a reservation run on it after
//!   its owner's balance is empty (delaying grace by `depositHours`) and leave nothing to pay
//!   the debt a reservation has when its grace ends.
//! - **Out of funds**: when the free balance cannot pay what is due, nothing is
//!   taken and the reservation enters `GracePeriod(since)`: it gives its capacity back to the
//!   node (a reservation nobody pays for must not keep others out), the agent pauses its
//!   workloads and it stops accruing. At each later settlement, if the owner can pay, the debt
//!   is paid and the reservation takes its capacity back and resumes (`GracePeriodEnded`; the
//!   agent resumes the workloads); if the capacity was taken meanwhile it ends with
//!   `CapacityLost`. If the grace period (`grace_period_ms` of block time) has passed, the
//!   reservation is deleted with `OutOfFunds`.
//! - **Deleted reservations** (canceled, out of funds, node deleted) stay in their bucket until
//!   their next settlement, which takes what they still owe (as much as the owner's free balance
//!   and the deposit cover; the rest is written off), gives back what is left of the deposit
//!   and drops them from billing for good.

use gridchain_primitives::{
    account::balance_string, block::BlockNumber, hash::blake2_256, state::storage_key, AccountId,
    Balance,
};
use pallet_reservations::{
    DeletionReason, Reservation, ReservationId, ReservationState, MS_PER_HOUR,
};
use pallet_system::Context;
use parity_scale_codec::{Decode, Encode};
use serde::{Deserialize, Serialize};

#[cfg(test)]
mod tests;

pub const PALLET: &str = "billing";

/// The default treasury: an account nobody has the key of, `blake2b-256("gridchain/treasury")`.
pub fn default_treasury() -> AccountId {
    AccountId(blake2_256(b"gridchain/treasury"))
}

/// Parameters from the chain spec. The three shares add up to 10,000 basis points.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BillingConfig {
    /// How long (block time) a reservation may stay out of funds before it is deleted.
    pub grace_period_ms: u64,
    pub farmer_share_bps: u16,
    pub treasury_share_bps: u16,
    pub burn_share_bps: u16,
    pub treasury: AccountId,
}

impl BillingConfig {
    pub fn shares_valid(&self) -> bool {
        self.farmer_share_bps as u32 + self.treasury_share_bps as u32 + self.burn_share_bps as u32
            == 10_000
    }
}

impl Default for BillingConfig {
    fn default() -> Self {
        BillingConfig {
            grace_period_ms: 14 * 24 * 3_600_000,
            farmer_share_bps: 8_000,
            treasury_share_bps: 1_000,
            burn_share_bps: 1_000,
            treasury: default_treasury(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "event")]
pub enum Event {
    /// A reservation paid `amount`, split as documented.
    #[serde(rename_all = "camelCase")]
    Charged {
        id: ReservationId,
        #[serde(with = "balance_string")]
        amount: Balance,
        #[serde(with = "balance_string")]
        farmer: Balance,
        #[serde(with = "balance_string")]
        treasury: Balance,
        #[serde(with = "balance_string")]
        burned: Balance,
    },
    /// The owner could not pay `owed`: the workloads are to be paused.
    #[serde(rename_all = "camelCase")]
    GracePeriodStarted {
        id: ReservationId,
        #[serde(with = "balance_string")]
        owed: Balance,
    },
    /// The debt was paid: the workloads are to be resumed.
    #[serde(rename_all = "camelCase")]
    GracePeriodEnded { id: ReservationId },
    /// Last settlement of a deleted reservation.
    #[serde(rename_all = "camelCase")]
    FinalSettlement {
        id: ReservationId,
        #[serde(with = "balance_string")]
        paid: Balance,
        #[serde(with = "balance_string")]
        written_off: Balance,
    },
}

pub fn config_key() -> Vec<u8> {
    storage_key(PALLET, "config")
}

pub fn config<E>(ctx: &Context<E>) -> BillingConfig {
    ctx.overlay.get_decoded(&config_key()).unwrap_or_default()
}

pub fn set_config<E>(ctx: &mut Context<E>, config: &BillingConfig) {
    ctx.overlay.put_encoded(config_key(), config);
}

/// Start of block `number`: settles its bucket.
pub fn on_initialize<E>(ctx: &mut Context<E>, number: BlockNumber)
where
    E: From<Event> + From<pallet_balances::Event> + From<pallet_reservations::Event>,
{
    let buckets = pallet_reservations::config(ctx).settlement_buckets.max(1) as u64;
    let bucket = (number % buckets) as u32;
    for id in pallet_reservations::bucket(ctx, bucket) {
        settle(ctx, id);
    }
}

/// Pays `amount` from the owner, split between farmer, treasury and burn.
fn charge<E>(ctx: &mut Context<E>, r: &mut Reservation, amount: Balance, config: &BillingConfig)
where
    E: From<Event> + From<pallet_balances::Event>,
{
    let farmer_share = amount * config.farmer_share_bps as u128 / 10_000;
    let treasury_share = amount * config.treasury_share_bps as u128 / 10_000;
    let burn_share = amount - farmer_share - treasury_share;
    let payout = pallet_tfgrid::node(ctx, r.node_id)
        .and_then(|n| pallet_tfgrid::farm(ctx, n.farm_id))
        .map(|f| f.payout);
    let (farmer_to, farmer_amount, treasury_amount) = match payout {
        Some(payout) => (payout, farmer_share, treasury_share),
        None => (config.treasury, 0, treasury_share + farmer_share),
    };
    // The caller checked the owner's free balance covers `amount`: these cannot fail.
    let paid = pallet_balances::pay(ctx, &r.owner, &farmer_to, farmer_amount)
        .and_then(|_| pallet_balances::pay(ctx, &r.owner, &config.treasury, treasury_amount))
        .and_then(|_| match burn_share {
            0 => Ok(()),
            _ => pallet_balances::burn(ctx, r.owner, burn_share),
        });
    debug_assert!(paid.is_ok(), "charge exceeded the checked balance");
    r.billing.total_paid = r.billing.total_paid.saturating_add(amount);
    ctx.deposit_event(Event::Charged {
        id: r.id,
        amount,
        farmer: farmer_amount,
        treasury: treasury_amount,
        burned: burn_share,
    });
}

/// Settles reservation `id` (see the crate docs).
pub fn settle<E>(ctx: &mut Context<E>, id: ReservationId)
where
    E: From<Event> + From<pallet_balances::Event> + From<pallet_reservations::Event>,
{
    let Some(mut r) = pallet_reservations::reservation(ctx, id) else {
        return;
    };
    let config = config(ctx);
    pallet_reservations::checkpoint(ctx, &mut r);
    let due = r.billing.unpaid_scaled / MS_PER_HOUR;
    let free = pallet_balances::account(ctx, &r.owner).free;
    let now = pallet_timestamp::now(ctx);
    match r.state {
        ReservationState::Deleted { .. } => {
            final_settlement(ctx, &mut r, due, &config);
        }
        ReservationState::GracePeriod { since_ms } => {
            if free >= due {
                if due > 0 {
                    charge(ctx, &mut r, due, &config);
                }
                r.billing.unpaid_scaled -= due * MS_PER_HOUR;
                if pallet_reservations::retake_capacity(ctx, &r).is_ok() {
                    r.state = pallet_reservations::derived_state(&r);
                    ctx.deposit_event(Event::GracePeriodEnded { id });
                } else {
                    pallet_reservations::delete(ctx, &mut r, DeletionReason::CapacityLost);
                    final_settlement(ctx, &mut r, 0, &config);
                }
            } else if now.saturating_sub(since_ms) >= config.grace_period_ms {
                pallet_reservations::delete(ctx, &mut r, DeletionReason::OutOfFunds);
                final_settlement(ctx, &mut r, due, &config);
            }
        }
        _ if due == 0 => {}
        _ if free >= due => {
            charge(ctx, &mut r, due, &config);
            r.billing.unpaid_scaled -= due * MS_PER_HOUR;
        }
        _ => {
            pallet_reservations::release_capacity(ctx, &r);
            r.state = ReservationState::GracePeriod { since_ms: now };
            ctx.deposit_event(Event::GracePeriodStarted { id, owed: due });
        }
    }
    pallet_reservations::refresh_rate(ctx, &mut r);
    pallet_reservations::put_reservation(ctx, &r);
}

/// The last settlement of a deleted reservation: what it owes, from the free balance and then
/// its deposit; the rest of the deposit goes back to the owner.
fn final_settlement<E>(
    ctx: &mut Context<E>,
    r: &mut Reservation,
    due: Balance,
    config: &BillingConfig,
) where
    E: From<Event> + From<pallet_balances::Event>,
{
    let mut free = pallet_balances::account(ctx, &r.owner).free;
    if free < due {
        free += pallet_reservations::draw_deposit(ctx, r, due - free);
    }
    let paid = due.min(free);
    if paid > 0 {
        charge(ctx, r, paid, config);
    }
    pallet_reservations::release_deposit(ctx, r);
    r.billing.unpaid_scaled = 0;
    pallet_reservations::remove_from_bucket(ctx, r.billing.bucket, r.id);
    ctx.deposit_event(Event::FinalSettlement {
        id: r.id,
        paid,
        written_off: due - paid,
    });
}
