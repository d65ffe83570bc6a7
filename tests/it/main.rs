//! Integration tests against real `gridnode` processes (`--dev`, and `local` networks).

mod consensus;
mod dev_chain;
mod grid;
mod rpc_errors;
mod subscriptions;
