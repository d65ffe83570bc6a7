//! The commands: `key` and `store` work without a node; the others are resolved locally, then run against a node.

pub mod key;
pub mod query;
pub mod store;
pub mod transfer;
