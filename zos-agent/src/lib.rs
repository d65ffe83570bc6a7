//! # zos-agent
//!
//! The agent every 3Node runs.

pub mod provision;
