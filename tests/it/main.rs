//! Integration tests against real `gridnode` processes (`--dev`, and `local` networks).

#![allow(clippy::unwrap_used)]

mod consensus;
mod dev_chain;
mod grid;
mod rpc_errors;
mod subscriptions;
