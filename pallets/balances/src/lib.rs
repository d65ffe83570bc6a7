//! # pallet-balances
//!
//! The native token. Each account has a `free` balance (spendable) and a `reserved` balance
//! (held by other pallets, e.g. a reservation's deposit). `total_issuance` is the sum of all
//! balances plus everything ever burned: `total_issuance = Σ(free + reserved) + burned`. Value
//! only moves between accounts or between free and reserved, except in [`endow`] (genesis) and
//! [`mint`] (farmer rewards), which raise the issuance, and [`burn`] (the billing burn share),
//! which moves value out of an account into the `burned` counter. Tests check the invariant.
//!
//! Calls: [`Call::Transfer`], [`Call::TransferAll`]. Transaction fees go through [`withdraw`]
//! and [`deposit`] (the runtime pays them to the block's proposer).

use gridchain_primitives::{
    account::balance_string, state::storage_key, state::storage_map_key, AccountId, Balance,
};
use pallet_system::{Context, PalletError};
use parity_scale_codec::{Decode, Encode};
use serde::{Deserialize, Serialize};

#[cfg(test)]
mod tests;

pub const PALLET: &str = "balances";

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct AccountData {
    #[serde(with = "balance_string")]
    pub free: Balance,
    #[serde(with = "balance_string")]
    pub reserved: Balance,
}

#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "call")]
pub enum Call {
    /// Moves `amount` from the signer's free balance to `dest`.
    Transfer {
        dest: AccountId,
        #[serde(with = "balance_string")]
        amount: Balance,
    },
    /// Moves the signer's whole free balance (after this transaction's fee) to `dest`.
    TransferAll { dest: AccountId },
}

#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "event")]
pub enum Event {
    /// Genesis funding.
    Endowed {
        who: AccountId,
        #[serde(with = "balance_string")]
        amount: Balance,
    },
    Transfer {
        from: AccountId,
        to: AccountId,
        #[serde(with = "balance_string")]
        amount: Balance,
    },
    /// A transaction fee (plus tip) left `who` for `to`.
    FeePaid {
        who: AccountId,
        to: AccountId,
        #[serde(with = "balance_string")]
        amount: Balance,
    },
    Reserved {
        who: AccountId,
        #[serde(with = "balance_string")]
        amount: Balance,
    },
    Unreserved {
        who: AccountId,
        #[serde(with = "balance_string")]
        amount: Balance,
    },
    /// New tokens created in `who`'s free balance (farmer rewards).
    Minted {
        who: AccountId,
        #[serde(with = "balance_string")]
        amount: Balance,
    },
    /// Tokens taken out of `who`'s free balance for good (added to `burned`).
    Burned {
        who: AccountId,
        #[serde(with = "balance_string")]
        amount: Balance,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("insufficient free balance: need {needed}, have {available}")]
    InsufficientBalance { needed: Balance, available: Balance },
    #[error("insufficient reserved balance: need {needed}, have {available}")]
    InsufficientReserved { needed: Balance, available: Balance },
    #[error("amount must be greater than zero")]
    ZeroAmount,
    #[error("balance would overflow")]
    Overflow,
}

impl PalletError for Error {
    const PALLET: &'static str = PALLET;
    fn name(&self) -> &'static str {
        match self {
            Error::InsufficientBalance { .. } => "InsufficientBalance",
            Error::InsufficientReserved { .. } => "InsufficientReserved",
            Error::ZeroAmount => "ZeroAmount",
            Error::Overflow => "Overflow",
        }
    }
}

pub fn dispatch<E: From<Event>>(
    ctx: &mut Context<E>,
    who: AccountId,
    call: Call,
) -> Result<(), Error> {
    match call {
        Call::Transfer { dest, amount } => transfer(ctx, who, dest, amount),
        Call::TransferAll { dest } => {
            let amount = account(ctx, &who).free;
            transfer(ctx, who, dest, amount)
        }
    }
}

// ---- storage ----

pub fn account_key(who: &AccountId) -> Vec<u8> {
    storage_map_key(PALLET, "account", who)
}
pub fn total_issuance_key() -> Vec<u8> {
    storage_key(PALLET, "total_issuance")
}

pub fn account<E>(ctx: &Context<E>, who: &AccountId) -> AccountData {
    ctx.overlay
        .get_decoded(&account_key(who))
        .unwrap_or_default()
}

fn set_account<E>(ctx: &mut Context<E>, who: &AccountId, data: AccountData) {
    // Empty accounts are removed so dust does not grow the state forever.
    if data == AccountData::default() {
        ctx.overlay.delete(account_key(who));
    } else {
        ctx.overlay.put_encoded(account_key(who), &data);
    }
}

pub fn burned_key() -> Vec<u8> {
    storage_key(PALLET, "burned")
}

/// Everything ever burned; part of `total_issuance`, in no account.
pub fn burned<E>(ctx: &Context<E>) -> Balance {
    ctx.overlay.get_decoded(&burned_key()).unwrap_or(0)
}

pub fn total_issuance<E>(ctx: &Context<E>) -> Balance {
    ctx.overlay.get_decoded(&total_issuance_key()).unwrap_or(0)
}

// ---- operations ----

/// Genesis: creates `amount` in `who`'s free balance.
pub fn endow<E: From<Event>>(
    ctx: &mut Context<E>,
    who: AccountId,
    amount: Balance,
) -> Result<(), Error> {
    create(ctx, &who, amount)?;
    ctx.deposit_event(Event::Endowed { who, amount });
    Ok(())
}

/// Adds `amount` new tokens to `who`'s free balance and to the issuance; changes nothing on
/// overflow.
fn create<E>(ctx: &mut Context<E>, who: &AccountId, amount: Balance) -> Result<(), Error> {
    let issuance = total_issuance(ctx)
        .checked_add(amount)
        .ok_or(Error::Overflow)?;
    let mut data = account(ctx, who);
    data.free = data.free.checked_add(amount).ok_or(Error::Overflow)?;
    set_account(ctx, who, data);
    ctx.overlay.put_encoded(total_issuance_key(), &issuance);
    Ok(())
}

/// Creates `amount` new tokens in `who`'s free balance (raises the issuance).
pub fn mint<E: From<Event>>(
    ctx: &mut Context<E>,
    who: AccountId,
    amount: Balance,
) -> Result<(), Error> {
    if amount == 0 {
        return Err(Error::ZeroAmount);
    }
    create(ctx, &who, amount)?;
    ctx.deposit_event(Event::Minted { who, amount });
    Ok(())
}

/// Takes `amount` out of `who`'s free balance for good; it is counted in [`burned`].
pub fn burn<E: From<Event>>(
    ctx: &mut Context<E>,
    who: AccountId,
    amount: Balance,
) -> Result<(), Error> {
    if amount == 0 {
        return Err(Error::ZeroAmount);
    }
    let mut data = account(ctx, &who);
    data.free = data
        .free
        .checked_sub(amount)
        .ok_or(Error::InsufficientBalance {
            needed: amount,
            available: data.free,
        })?;
    let total_burned = burned(ctx).checked_add(amount).ok_or(Error::Overflow)?;
    set_account(ctx, &who, data);
    ctx.overlay.put_encoded(burned_key(), &total_burned);
    ctx.deposit_event(Event::Burned { who, amount });
    Ok(())
}

/// Moves `amount` of `from`'s free balance to `to` without a `Transfer` event (for pallets that
/// describe the payment with their own event).
pub fn pay<E>(
    ctx: &mut Context<E>,
    from: &AccountId,
    to: &AccountId,
    amount: Balance,
) -> Result<(), Error> {
    move_free(ctx, from, to, amount)
}

pub fn transfer<E: From<Event>>(
    ctx: &mut Context<E>,
    from: AccountId,
    to: AccountId,
    amount: Balance,
) -> Result<(), Error> {
    if amount == 0 {
        return Err(Error::ZeroAmount);
    }
    move_free(ctx, &from, &to, amount)?;
    ctx.deposit_event(Event::Transfer { from, to, amount });
    Ok(())
}

fn move_free<E>(
    ctx: &mut Context<E>,
    from: &AccountId,
    to: &AccountId,
    amount: Balance,
) -> Result<(), Error> {
    let mut source = account(ctx, from);
    source.free = source
        .free
        .checked_sub(amount)
        .ok_or(Error::InsufficientBalance {
            needed: amount,
            available: source.free,
        })?;
    if from == to {
        return Ok(());
    }
    let mut dest = account(ctx, to);
    dest.free = dest.free.checked_add(amount).ok_or(Error::Overflow)?;
    set_account(ctx, from, source);
    set_account(ctx, to, dest);
    Ok(())
}

/// Whether `who` can pay `amount` from free balance.
pub fn can_withdraw<E>(ctx: &Context<E>, who: &AccountId, amount: Balance) -> Result<(), Error> {
    let available = account(ctx, who).free;
    if available < amount {
        return Err(Error::InsufficientBalance {
            needed: amount,
            available,
        });
    }
    Ok(())
}

/// Pays a fee of `amount` from `who` to `to`.
pub fn pay_fee<E: From<Event>>(
    ctx: &mut Context<E>,
    who: AccountId,
    to: AccountId,
    amount: Balance,
) -> Result<(), Error> {
    move_free(ctx, &who, &to, amount)?;
    ctx.deposit_event(Event::FeePaid { who, to, amount });
    Ok(())
}

/// Moves `amount` of `who`'s free balance to reserved.
pub fn reserve<E: From<Event>>(
    ctx: &mut Context<E>,
    who: AccountId,
    amount: Balance,
) -> Result<(), Error> {
    let mut data = account(ctx, &who);
    data.free = data
        .free
        .checked_sub(amount)
        .ok_or(Error::InsufficientBalance {
            needed: amount,
            available: data.free,
        })?;
    data.reserved = data.reserved.checked_add(amount).ok_or(Error::Overflow)?;
    set_account(ctx, &who, data);
    ctx.deposit_event(Event::Reserved { who, amount });
    Ok(())
}

/// Moves `amount` of `who`'s reserved balance back to free.
pub fn unreserve<E: From<Event>>(
    ctx: &mut Context<E>,
    who: AccountId,
    amount: Balance,
) -> Result<(), Error> {
    let mut data = account(ctx, &who);
    data.reserved = data
        .reserved
        .checked_sub(amount)
        .ok_or(Error::InsufficientReserved {
            needed: amount,
            available: data.reserved,
        })?;
    data.free = data.free.checked_add(amount).ok_or(Error::Overflow)?;
    set_account(ctx, &who, data);
    ctx.deposit_event(Event::Unreserved { who, amount });
    Ok(())
}
