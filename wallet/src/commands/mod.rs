//! The commands: `key` and `store` work without a node; the others are resolved locally, then run against a node.

pub mod farm;
pub mod grid;
pub mod key;
pub mod node;
pub mod owner;
pub mod query;
pub mod reservation;
pub mod staking;
pub mod store;
pub mod store_reserve;
pub mod submit;
pub mod transfer;
pub mod twin;
