//! What the agent can create on a node. Each provisioner is idempotent and reports failures
//! in the words of the system that failed (Docker, zdb, netlink).

pub mod container;
pub mod egress;
pub mod image;
pub mod mesh;
pub mod network;
pub mod public_ip;
pub mod volume;
pub mod zdb;
