//! Integration tests against real `gridnode --dev` processes.

mod dev_chain;
mod grid;
mod rpc_errors;
mod subscriptions;
