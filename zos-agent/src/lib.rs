//! # zos-agent
//!
//! The agent every 3Node runs. It turns what the **final** chain says into running workloads
//! and reports back:
//!
//! ```text
//!  chain (final heads) ──grid_nodeSnapshot──▶ reconcile::Reconciler ──▶ kinds::{container,
//!        ▲                                         │                 volume, zdbNamespace, network}
//!        └──── report_results / report_capacity ◀──┘                       │
//!                                                        provision: Docker · zdb · rtnetlink
//! ```
//!
//! - [`agent`]: start-up (zdb, registration), the follow loop with a persisted cursor.
//! - [`chain`]: RPC endpoints with failover; signed submissions from the node key.
//! - [`light`]: the light client: final headers by certificate against a proven validator set,
//!   the node's desired state by read proofs against the header's state root.
//! - [`reconcile`]: desired vs actual state, idempotent convergence, results; knows no kind.
//! - [`kinds`]: one module per kind of workload behind one interface (observe and remove what
//!   nobody wants, ensure one workload, outcome).
//! - [`provision`]: the drivers the kinds use (Docker containers, images and volumes, zdb
//!   namespaces, rtnetlink networks).
//! - [`owner`]: the owner API (logs, exec, events of a reservation, for its owner only).
//! - [`capacity`]: measuring the node and periodic capacity proofs.
//! - [`persist`]: the small files of the data dir, written durably.

pub mod agent;
pub mod capacity;
pub mod chain;
pub mod kinds;
pub mod light;
pub mod owner;
pub mod persist;
pub mod provision;
pub mod reconcile;
