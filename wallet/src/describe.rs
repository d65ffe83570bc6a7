//! One-line human descriptions of runtime calls and events.

use crate::amount::format_grid;
use gridchain_runtime::{balances, system, Call, Event};

pub fn call(call: &Call) -> String {
    match call {
        Call::Balances(balances::Call::Transfer { dest, amount }) => {
            format!("balances.transfer {} to {dest}", format_grid(*amount))
        }
        Call::Balances(balances::Call::TransferAll { dest }) => {
            format!("balances.transferAll to {dest}")
        }
        Call::System(system::Call::Remark { data }) => {
            format!("system.remark of {} bytes", data.0.len())
        }
        Call::Twins(_)
        | Call::Tfgrid(_)
        | Call::Reservations(_)
        | Call::Capacity(_)
        | Call::Validators(_) => tagged(call, "call"),
    }
}

pub fn event(event: &Event) -> String {
    match event {
        Event::System(system::Event::ExtrinsicSuccess { fee }) => {
            format!("system.ExtrinsicSuccess fee {}", format_grid(*fee))
        }
        Event::System(system::Event::ExtrinsicFailed { error, fee }) => {
            format!("system.ExtrinsicFailed {error} (fee {})", format_grid(*fee))
        }
        Event::System(system::Event::Remarked { who, hash }) => {
            format!("system.Remarked by {who}: {hash}")
        }
        Event::Balances(balances::Event::Endowed { who, amount }) => {
            format!("balances.Endowed {who} with {}", format_grid(*amount))
        }
        Event::Balances(balances::Event::Transfer { from, to, amount }) => {
            format!(
                "balances.Transfer {} from {from} to {to}",
                format_grid(*amount)
            )
        }
        Event::Balances(balances::Event::FeePaid { who, to, amount }) => {
            format!("balances.FeePaid {} by {who} to {to}", format_grid(*amount))
        }
        Event::Balances(balances::Event::Reserved { who, amount }) => {
            format!("balances.Reserved {} of {who}", format_grid(*amount))
        }
        Event::Balances(balances::Event::Unreserved { who, amount }) => {
            format!("balances.Unreserved {} of {who}", format_grid(*amount))
        }
        Event::Balances(balances::Event::Minted { who, amount }) => {
            format!("balances.Minted {} to {who}", format_grid(*amount))
        }
        Event::Balances(balances::Event::Burned { who, amount }) => {
            format!("balances.Burned {} of {who}", format_grid(*amount))
        }
        Event::Twins(_)
        | Event::Tfgrid(_)
        | Event::Reservations(_)
        | Event::Billing(_)
        | Event::Capacity(_)
        | Event::Validators(_) => tagged(event, "event"),
    }
}

/// `pallet.Name {fields as JSON}` for the grid's calls and events, from their serde form.
fn tagged<T: serde::Serialize>(value: &T, tag: &str) -> String {
    let mut json = serde_json::to_value(value).unwrap_or_default();
    let Some(fields) = json.as_object_mut() else {
        return json.to_string();
    };
    let pallet = fields
        .remove("pallet")
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    let name = fields
        .remove(tag)
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    if fields.is_empty() {
        format!("{pallet}.{name}")
    } else {
        format!("{pallet}.{name} {json}")
    }
}
