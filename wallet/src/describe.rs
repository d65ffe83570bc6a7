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
    }
}
