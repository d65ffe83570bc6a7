//! The commands: `key` works offline; the others are resolved locally, then run against a node.

pub mod key;
pub mod query;
pub mod transfer;
