//! # pallet-reservations
//!
//! Workload reservations: the whole deployment lives on chain, so a node's agent needs nothing
//! but the final chain to know what to run.
//!
//! ```text
//! reserve / reserve_many ──▶ Created ──report_results (all Ok)──▶ Deployed
//!                              │    └─report_results (an Error)──▶ Failed
//!   billing: out of funds ──▶ GracePeriod(since) ──refill──▶ back (Created/Deployed/Failed)
//!                              └─grace expired──▶ Deleted(OutOfFunds)
//!   cancel_reservation ──▶ Deleted(CanceledByUser);  node deleted ──▶ Deleted(NodeDeleted)
//! ```
//!
//! - A [`Deployment`] is metadata plus named [`Workload`]s: containers, zdb namespaces, private
//!   networks (which may span nodes: [`mesh`]), volumes and public IPs. Containers mount volumes and join networks of the same deployment by
//!   name. Secrets (zdb passwords, [`EnvValue::Sealed`] environment values) are sealed by the
//!   client to the node's key with `gridchain_primitives::seal`; the chain only stores the sealed
//!   bytes and checks they are at least as long as the seal's overhead.
//! - **Capacity accounting**: the sum of what reservations hold on a node (kept in
//!   `pallet_tfgrid::used`) never exceeds the node's usable capacity (its resources minus the
//!   system reserve documented in `pallet_tfgrid`). A reservation that does not fit fails with
//!   [`Error::InsufficientCapacity`] and changes nothing. Nodes that are not Up, or whose
//!   measured capacity fell below what they host, take no new reservations.
//! - **Results**: only the hosting node's key may [`Call::ReportResults`], for the current
//!   version; each workload gets a [`WorkloadState`], a message and typed [`ResultData`].
//! - **Billing accrual** ([`BillingAccount`]): a reservation's rate is the farm's price per hour
//!   of the resources of its workloads that are `Ok` (zero in grace or deleted). Cost accrues
//!   against the node's *up clock* (`pallet_tfgrid::up_clock`), so time the node was Down is
//!   never charged. Whenever the rate changes the accrual is checkpointed ([`checkpoint`]); the
//!   billing pallet settles the unpaid amount every `settlement_buckets` blocks, in the block
//!   whose number is the reservation's bucket modulo `settlement_buckets`.

use gridchain_primitives::{
    account::balance_string, block::BlockNumber, seal::SEAL_OVERHEAD, state::storage_key,
    state::storage_map_key, AccountId, Balance, Bytes,
};
use pallet_system::{Context, PalletError, StoredSet};
use pallet_tfgrid::{Cidr, NodeId, NodeStatus, Resources};
use pallet_twins::TwinId;
use parity_scale_codec::{Decode, Encode};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

pub mod mesh;
#[cfg(test)]
mod tests;

pub use mesh::{Mesh, MeshMember, MeshPeer, MeshSpec, WireguardEndpoint};

pub const PALLET: &str = "reservations";

pub type ReservationId = u64;

/// Most workloads in one deployment.
pub const MAX_WORKLOADS: usize = 64;
/// Largest SCALE-encoded deployment, in bytes.
pub const MAX_DEPLOYMENT_BYTES: usize = 32 * 1024;
/// Most reservations in one `reserve_many`.
pub const MAX_BATCH: usize = 16;
/// Longest metadata, message, image or path, in bytes.
pub const MAX_TEXT_LEN: usize = 1024;
/// Cost accrues in units × ms per hour; this many make one unit.
pub const MS_PER_HOUR: u128 = 3_600_000;

#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Deployment {
    pub metadata: String,
    pub workloads: Vec<Workload>,
}

#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Workload {
    /// Unique in the deployment: `[a-z0-9_-]`, 1..=64.
    pub name: String,
    pub spec: WorkloadSpec,
}

/// What to run. New kinds (public IPs, gateways) are appended.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "type")]
pub enum WorkloadSpec {
    #[serde(rename_all = "camelCase")]
    Container {
        image: String,
        /// Logical cores.
        cpu: u32,
        /// Bytes.
        memory: u64,
        /// Bytes.
        rootfs_size: u64,
        entrypoint: String,
        env: Vec<EnvVar>,
        mounts: Vec<Mount>,
        networks: Vec<NetworkAttachment>,
        /// `username:password` for the image's registry, sealed to the node's key (for this
        /// workload, purpose `RegistryAuth`); absent for public images.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        registry_auth: Option<Bytes>,
        /// What the node does when the container's process ends.
        #[serde(default)]
        restart: RestartPolicy,
        /// A probe the node runs in the container; the workload is `Ok` only while it passes.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        health_check: Option<HealthCheck>,
    },
    #[serde(rename_all = "camelCase")]
    ZdbNamespace {
        /// Bytes.
        size: u64,
        mode: ZdbMode,
        /// Sealed to the node's key.
        password: Option<Bytes>,
        public: bool,
    },
    /// A private network for the owner's workloads; the workload's name is the network's name.
    /// Its first host address is its gateway (never a container's).
    #[serde(rename_all = "camelCase")]
    Network {
        ip_range: String,
        /// A way out: the node routes the network's traffic to anywhere but private ranges
        /// through its uplink, NATed to the node's address. Off by default.
        #[serde(default)]
        egress: bool,
        /// Span nodes: join the owner's mesh of this network's name (see [`mesh`]).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mesh: Option<MeshSpec>,
    },
    #[serde(rename_all = "camelCase")]
    Volume {
        /// Bytes.
        size: u64,
    },
    /// A public IPv4 address of the node's farm for container `container` of the deployment:
    /// assigned by the chain at reserve (see [`Reservation::public_ips`]), billed per hour
    /// (`ipuPerHour`) while Ok, freed in the block the reservation ends.
    #[serde(rename_all = "camelCase")]
    PublicIp { container: String },
}

impl WorkloadSpec {
    /// The kind's name: the `type` of the workload in a deployment file.
    pub fn kind(&self) -> &'static str {
        match self {
            WorkloadSpec::Container { .. } => "container",
            WorkloadSpec::ZdbNamespace { .. } => "zdbNamespace",
            WorkloadSpec::Network { .. } => "network",
            WorkloadSpec::Volume { .. } => "volume",
            WorkloadSpec::PublicIp { .. } => "publicIp",
        }
    }
}

/// A health probe run inside the container every `interval_secs`; `retries` failures in a row
/// (each failing or taking longer than `timeout_secs`) make the workload `Unhealthy`.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthCheck {
    pub probe: HealthProbe,
    pub interval_secs: u32,
    pub timeout_secs: u32,
    pub retries: u32,
}

/// What a health check runs, inside the container (the image must have `sh`, and `wget` for
/// an HTTP probe or `nc` for a TCP one).
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum HealthProbe {
    /// A shell command; exit code 0 is healthy.
    Command { command: String },
    /// `GET http://127.0.0.1:<port><path>` answers 2xx.
    Http { port: u16, path: String },
    /// Something accepts connections on `127.0.0.1:<port>`.
    Tcp { port: u16 },
}

/// When a container is started again after its process ended (by Docker, on the node).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "policy")]
pub enum RestartPolicy {
    /// Always, whatever the exit code (the default: a service).
    #[default]
    Always,
    /// After a non-zero exit, at most `max_retries` times (0: without limit).
    #[serde(rename_all = "camelCase")]
    OnFailure { max_retries: u32 },
    /// Never: a job that ends stays ended, and is reported with its exit code.
    Never,
}

#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvVar {
    pub name: String,
    pub value: EnvValue,
}

#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum EnvValue {
    Plain(String),
    /// Sealed to the node's key.
    Sealed(Bytes),
}

#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Mount {
    /// Name of a `Volume` workload of the same deployment.
    pub volume: String,
    /// Absolute path in the container.
    pub path: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkAttachment {
    /// Name of a `Network` workload of the same deployment.
    pub network: String,
    /// Fixed address inside the network's range; the node picks one if absent.
    pub ip: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ZdbMode {
    User,
    Seq,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum WorkloadState {
    Ok,
    Error,
    Paused,
    Deleted,
    /// The node is pulling the workload's image (reported once, when the pull starts).
    Pulling,
    /// The container runs but its health check does not pass (yet); the message has the probe's
    /// output.
    Unhealthy,
}

/// What a node reports about a workload it runs.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum ResultData {
    None,
    #[serde(rename_all = "camelCase")]
    Container {
        container_id: String,
        ips: Vec<String>,
        /// `repository@sha256:…` of the image the container runs, whatever tag was asked for.
        #[serde(default)]
        image_digest: String,
        /// Times the node started the container again after its process ended.
        #[serde(default)]
        restarts: u32,
        /// The limits the container runs under, as the node's container runtime reports them.
        #[serde(default)]
        limits: ContainerLimits,
    },
    #[serde(rename_all = "camelCase")]
    Zdb {
        namespace: String,
        endpoints: Vec<String>,
    },
    #[serde(rename_all = "camelCase")]
    Network {
        subnet: String,
        /// With egress or a mesh: the gateway containers route through (the range's first
        /// host address).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        gateway: Option<String>,
        /// In a mesh: the node's WireGuard key and endpoint for it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        wireguard: Option<WireguardEndpoint>,
    },
    #[serde(rename_all = "camelCase")]
    Volume {
        path: String,
    },
    /// A public IP the node routes to its container.
    #[serde(rename_all = "camelCase")]
    PublicIp {
        ip: String,
        container: String,
    },
}

/// The limits a container runs under, read back from the node's container runtime (not echoed
/// from the spec): what the owner can check they got.
#[derive(Debug, Clone, Default, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerLimits {
    /// CPU time, in thousandths of a core.
    pub cpu_millicores: u32,
    /// Bytes of memory; memory plus swap is the same (no swap).
    pub memory: u64,
    /// Processes and threads at once.
    pub pids: u32,
    /// Bytes the image and the container's writes may take together.
    pub rootfs: u64,
    pub rootfs_enforcement: RootfsEnforcement,
}

/// How a node holds a container to its `rootfsSize`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "by")]
pub enum RootfsEnforcement {
    /// Not reported (a result from before limits were reported).
    #[default]
    Unknown,
    /// The storage driver's size option: a write past it fails.
    StorageDriver,
    /// The node measures what the container wrote every `every_secs` and stops it for good
    /// once past its size: it can write past it until the next check.
    Measured { every_secs: u32 },
}

#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadResult {
    pub name: String,
    pub state: WorkloadState,
    pub message: String,
    pub data: ResultData,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum DeletionReason {
    CanceledByUser,
    OutOfFunds,
    NodeDeleted,
    /// Its grace period ended with the debt paid, but the node's capacity it had released
    /// was taken by others meanwhile.
    CapacityLost,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ReservationState {
    /// Waiting for the node to report every workload Ok.
    Created,
    /// Every workload reported Ok.
    Deployed,
    /// A workload reported Error.
    Failed,
    /// Out of funds since block time `since_ms`: the agent pauses the workloads; not charged.
    #[serde(rename_all = "camelCase")]
    GracePeriod {
        since_ms: u64,
    },
    Deleted {
        reason: DeletionReason,
    },
}

/// Billing accrual of one reservation (see the crate docs).
#[derive(Debug, Clone, Default, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BillingAccount {
    /// Units per hour while the node is Up.
    #[serde(with = "balance_string")]
    pub rate_per_hour: Balance,
    /// The node's up clock at the last checkpoint.
    pub checkpoint_up_ms: u64,
    /// Accrued and not yet paid, in units × ms per hour (divide by [`MS_PER_HOUR`]).
    #[serde(with = "balance_string")]
    pub unpaid_scaled: u128,
    /// Settled in blocks whose number modulo `settlement_buckets` is this.
    pub bucket: u32,
    /// Everything this reservation has paid.
    #[serde(with = "balance_string")]
    pub total_paid: Balance,
    /// Held (reserved) from the owner's balance while the reservation lives: taken at
    /// reserve, it pays what the free balance cannot at the final settlement after deletion,
    /// which returns the rest (see `pallet_billing`).
    #[serde(with = "balance_string")]
    pub deposit: Balance,
}

#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Reservation {
    pub id: ReservationId,
    pub owner: AccountId,
    pub twin_id: TwinId,
    pub node_id: NodeId,
    /// Starts at 1, bumped by every update.
    pub version: u32,
    pub deployment: Deployment,
    /// What the deployment holds on the node.
    pub resources: Resources,
    pub state: ReservationState,
    /// The node's latest result per workload, for the current version.
    pub results: Vec<WorkloadResult>,
    pub created_at: BlockNumber,
    pub billing: BillingAccount,
    /// The farm's public IPs the chain assigned to this reservation's `publicIp` workloads.
    #[serde(default)]
    pub public_ips: Vec<AssignedIp>,
}

/// A public IP of the node's farm, held by one `publicIp` workload of a reservation.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AssignedIp {
    pub workload: String,
    /// `a.b.c.d/prefix`, as the farm lists it.
    pub ip: String,
    /// The farm's gateway for it.
    pub gateway: String,
}

impl Reservation {
    pub fn is_deleted(&self) -> bool {
        matches!(self.state, ReservationState::Deleted { .. })
    }
}

/// Parameters from the chain spec.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReservationsConfig {
    /// Settlement period in blocks: each block settles one bucket.
    pub settlement_buckets: u32,
    /// Most reservations per bucket: bounds a block's settlement work.
    pub max_per_bucket: u32,
    /// Deposit per workload, on top of `deposit_hours` of the deployment's price.
    #[serde(with = "balance_string")]
    pub deposit_per_workload: Balance,
    /// Hours of the deployment's price held as deposit.
    pub deposit_hours: u32,
    /// Least a workload costs per hour while Ok, whatever its resources (networks and tiny
    /// workloads would otherwise price to 0).
    #[serde(with = "balance_string")]
    pub min_price_per_workload_hour: Balance,
    /// Most live (not deleted) reservations one account may have.
    pub max_live_per_owner: u32,
}

impl Default for ReservationsConfig {
    /// Settled every 600 blocks (10 minutes at 1 s blocks), up to 600,000 reservations; no
    /// deposit or minimum price (the chain spec sets them).
    fn default() -> Self {
        ReservationsConfig {
            settlement_buckets: 600,
            max_per_bucket: 1_000,
            deposit_per_workload: 0,
            deposit_hours: 0,
            min_price_per_workload_hour: 0,
            max_live_per_owner: 1_000,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReserveRequest {
    pub node_id: NodeId,
    pub deployment: Deployment,
}

#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "call")]
pub enum Call {
    #[serde(rename_all = "camelCase")]
    Reserve {
        node_id: NodeId,
        deployment: Deployment,
    },
    /// Several reservations, all or none (e.g. zdb backends across farms).
    ReserveMany { requests: Vec<ReserveRequest> },
    /// Owner only: a new deployment, version + 1.
    UpdateReservation {
        id: ReservationId,
        deployment: Deployment,
    },
    /// Owner only.
    CancelReservation { id: ReservationId },
    /// The hosting node only, for the current version.
    ReportResults {
        id: ReservationId,
        version: u32,
        results: Vec<WorkloadResult>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "event")]
pub enum Event {
    #[serde(rename_all = "camelCase")]
    Reserved {
        id: ReservationId,
        owner: AccountId,
        node_id: NodeId,
    },
    ReservationUpdated {
        id: ReservationId,
        version: u32,
    },
    ResultsReported {
        id: ReservationId,
        version: u32,
        state: ReservationState,
    },
    ReservationDeleted {
        id: ReservationId,
        reason: DeletionReason,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("the signer has no twin; create one first")]
    NoTwin,
    #[error("no node {0}")]
    UnknownNode(NodeId),
    #[error("node {node_id} is {status:?}, not Up")]
    NodeNotUp { node_id: NodeId, status: NodeStatus },
    #[error("node {0} measured less capacity than it hosts; it takes no new reservations")]
    NodeBelowReserved(NodeId),
    #[error("node {node_id} cannot fit the deployment: requested {requested:?}, free {free:?}")]
    InsufficientCapacity {
        node_id: NodeId,
        requested: Resources,
        free: Resources,
    },
    #[error("a deployment needs 1 to {MAX_WORKLOADS} workloads")]
    WorkloadCount,
    #[error("the deployment is larger than {MAX_DEPLOYMENT_BYTES} bytes")]
    DeploymentTooLarge,
    #[error("invalid workload name {0:?}: 1 to 64 of a-z, 0-9, '-', '_'")]
    InvalidName(String),
    #[error("two workloads are named {0:?}")]
    DuplicateName(String),
    #[error("workload {0:?} has a zero size")]
    ZeroSize(String),
    #[error("workload {workload:?}: {cidr:?} is not a valid private IPv4 range (a.b.c.d/8..30)")]
    InvalidCidr { workload: String, cidr: String },
    #[error("workload {workload:?} mounts {volume:?}, which is not a volume of the deployment")]
    UnknownMount { workload: String, volume: String },
    #[error("workload {workload:?} joins {network:?}, which is not a network of the deployment")]
    UnknownNetwork { workload: String, network: String },
    #[error("workload {workload:?}: {reason}")]
    InvalidWorkload {
        workload: String,
        reason: &'static str,
    },
    #[error("reserve_many needs 1 to {MAX_BATCH} requests")]
    BatchSize,
    #[error("every settlement bucket is full; the chain takes no more reservations")]
    TooManyReservations,
    #[error("no reservation {0}")]
    UnknownReservation(ReservationId),
    #[error("only the reservation's owner may do this")]
    NotOwner,
    #[error("reservation {0} is deleted")]
    ReservationDeleted(ReservationId),
    #[error("only the node hosting the reservation may report its results")]
    NotHostingNode,
    #[error("results are for version {got}; the reservation is at version {current}")]
    StaleVersion { current: u32, got: u32 },
    #[error("the deployment has no workload {0:?}")]
    UnknownWorkload(String),
    #[error("two results for workload {0:?}")]
    DuplicateResult(String),
    #[error("a result message or data field is longer than {MAX_TEXT_LEN} bytes")]
    ResultTooLarge,
    #[error("the deposit of {needed} cannot be held: free balance is {available}")]
    InsufficientDeposit { needed: Balance, available: Balance },
    #[error("the account has {0} live reservations, the most the chain allows")]
    TooManyForOwner(u32),
    #[error("reservation {0} is in its grace period: pay what it owes first")]
    InGracePeriod(ReservationId),
    #[error("farm {0} has no free public IP")]
    NoFreeIp(pallet_tfgrid::FarmId),
    #[error("mesh endpoint {0:?} is not an address and port")]
    InvalidEndpoint(String),
    #[error("network {network:?} cannot join its mesh: {reason}")]
    MeshConflict { network: String, reason: String },
}

impl PalletError for Error {
    const PALLET: &'static str = PALLET;
    fn name(&self) -> &'static str {
        match self {
            Error::NoTwin => "NoTwin",
            Error::UnknownNode(_) => "UnknownNode",
            Error::NodeNotUp { .. } => "NodeNotUp",
            Error::NodeBelowReserved(_) => "NodeBelowReserved",
            Error::InsufficientCapacity { .. } => "InsufficientCapacity",
            Error::WorkloadCount => "WorkloadCount",
            Error::DeploymentTooLarge => "DeploymentTooLarge",
            Error::InvalidName(_) => "InvalidName",
            Error::DuplicateName(_) => "DuplicateName",
            Error::ZeroSize(_) => "ZeroSize",
            Error::InvalidCidr { .. } => "InvalidCidr",
            Error::UnknownMount { .. } => "UnknownMount",
            Error::UnknownNetwork { .. } => "UnknownNetwork",
            Error::InvalidWorkload { .. } => "InvalidWorkload",
            Error::BatchSize => "BatchSize",
            Error::TooManyReservations => "TooManyReservations",
            Error::UnknownReservation(_) => "UnknownReservation",
            Error::NotOwner => "NotOwner",
            Error::ReservationDeleted(_) => "ReservationDeleted",
            Error::NotHostingNode => "NotHostingNode",
            Error::StaleVersion { .. } => "StaleVersion",
            Error::UnknownWorkload(_) => "UnknownWorkload",
            Error::DuplicateResult(_) => "DuplicateResult",
            Error::ResultTooLarge => "ResultTooLarge",
            Error::InsufficientDeposit { .. } => "InsufficientDeposit",
            Error::TooManyForOwner(_) => "TooManyForOwner",
            Error::InGracePeriod(_) => "InGracePeriod",
            Error::NoFreeIp(_) => "NoFreeIp",
            Error::MeshConflict { .. } => "MeshConflict",
            Error::InvalidEndpoint(_) => "InvalidEndpoint",
        }
    }
}

pub fn dispatch<E: From<Event> + From<pallet_balances::Event>>(
    ctx: &mut Context<E>,
    who: AccountId,
    call: Call,
) -> Result<(), Error> {
    match call {
        Call::Reserve {
            node_id,
            deployment,
        } => reserve(ctx, who, node_id, deployment).map(|_| ()),
        Call::ReserveMany { requests } => reserve_many(ctx, who, requests).map(|_| ()),
        Call::UpdateReservation { id, deployment } => update(ctx, who, id, deployment),
        Call::CancelReservation { id } => cancel(ctx, who, id),
        Call::ReportResults {
            id,
            version,
            results,
        } => report_results(ctx, who, id, version, results),
    }
}

// ---- storage ----

pub fn config_key() -> Vec<u8> {
    storage_key(PALLET, "config")
}
pub fn reservation_key(id: ReservationId) -> Vec<u8> {
    storage_map_key(PALLET, "reservation", &id)
}
pub fn next_id_key() -> Vec<u8> {
    storage_key(PALLET, "next_id")
}
/// Every reservation of an account, deleted ones included.
pub fn owner_set(owner: &AccountId) -> StoredSet<ReservationId> {
    StoredSet::new(PALLET, "by_owner", owner)
}
/// The reservations a node hosts (not deleted).
pub fn node_set(node_id: NodeId) -> StoredSet<ReservationId> {
    StoredSet::new(PALLET, "by_node", &node_id)
}
/// The reservations settled in blocks `≡ bucket (mod settlement_buckets)`.
pub fn bucket_set(bucket: u32) -> StoredSet<ReservationId> {
    StoredSet::new(PALLET, "bucket", &bucket)
}
/// `u32`: how many live (not deleted) reservations an account has.
pub fn live_count_key(owner: &AccountId) -> Vec<u8> {
    storage_map_key(PALLET, "live_count", owner)
}
/// Deleted nodes whose reservations are still being ended ([`on_initialize`]).
pub fn ending_nodes_set() -> StoredSet<NodeId> {
    StoredSet::new(PALLET, "ending_nodes", &())
}

pub fn config<E>(ctx: &Context<E>) -> ReservationsConfig {
    ctx.overlay.get_decoded(&config_key()).unwrap_or_default()
}
pub fn set_config<E>(ctx: &mut Context<E>, config: &ReservationsConfig) {
    ctx.overlay.put_encoded(config_key(), config);
}
pub fn reservation<E>(ctx: &Context<E>, id: ReservationId) -> Option<Reservation> {
    ctx.overlay.get_decoded(&reservation_key(id))
}
pub fn put_reservation<E>(ctx: &mut Context<E>, r: &Reservation) {
    ctx.overlay.put_encoded(reservation_key(r.id), r);
}
pub fn next_id<E>(ctx: &Context<E>) -> ReservationId {
    ctx.overlay.get_decoded(&next_id_key()).unwrap_or(1)
}
pub fn by_owner<E>(ctx: &Context<E>, owner: &AccountId) -> Vec<ReservationId> {
    let mut ids = owner_set(owner).members(ctx);
    ids.sort_unstable();
    ids
}
pub fn by_node<E>(ctx: &Context<E>, node_id: NodeId) -> Vec<ReservationId> {
    let mut ids = node_set(node_id).members(ctx);
    ids.sort_unstable();
    ids
}
pub fn live_count<E>(ctx: &Context<E>, owner: &AccountId) -> u32 {
    ctx.overlay.get_decoded(&live_count_key(owner)).unwrap_or(0)
}
fn set_live_count<E>(ctx: &mut Context<E>, owner: &AccountId, count: u32) {
    if count == 0 {
        ctx.overlay.delete(live_count_key(owner));
    } else {
        ctx.overlay.put_encoded(live_count_key(owner), &count);
    }
}
pub fn bucket<E>(ctx: &Context<E>, bucket: u32) -> Vec<ReservationId> {
    bucket_set(bucket).members(ctx)
}

/// Takes a settled reservation out of its bucket.
pub fn remove_from_bucket<E>(ctx: &mut Context<E>, bucket_index: u32, id: ReservationId) {
    bucket_set(bucket_index).remove(ctx, &id);
}

// ---- validation ----

fn valid_workload_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_'))
}

fn short_text(text: &str) -> bool {
    text.len() <= MAX_TEXT_LEN
}

fn invalid(workload: &str, reason: &'static str) -> Error {
    Error::InvalidWorkload {
        workload: workload.to_string(),
        reason,
    }
}

fn check_sealed(workload: &str, sealed: &Bytes) -> Result<(), Error> {
    if sealed.0.len() < SEAL_OVERHEAD {
        return Err(invalid(workload, "a secret is not sealed (too short)"));
    }
    Ok(())
}

/// A private network's range: IPv4, prefix 8..=30.
/// A workload network's range: IPv4, /8 to /30, and inside one private range of RFC 1918
/// (10/8, 172.16/12, 192.168/16), so it can never stand for public addresses.
/// Whether `ip` (inside `range`) may be a container's: not the network's own address, not its
/// gateway (the first host address), not its broadcast address.
fn usable_host(range: &Cidr, ip: &str) -> bool {
    let (Ok(ip), std::net::IpAddr::V4(base)) = (ip.parse::<std::net::Ipv4Addr>(), range.addr)
    else {
        return false;
    };
    let mask = u32::MAX
        .checked_shl(32 - u32::from(range.prefix))
        .unwrap_or(0);
    let (first, last) = (u32::from(base) & mask, u32::from(base) | !mask);
    (first.saturating_add(2)..last).contains(&u32::from(ip))
}

fn network_range(workload: &str, ip_range: &str) -> Result<Cidr, Error> {
    let private = |c: &Cidr| {
        ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"]
            .iter()
            .filter_map(|p| Cidr::parse(p))
            .any(|p| c.prefix >= p.prefix && p.contains(&c.addr))
    };
    Cidr::parse(ip_range)
        .filter(|c| c.addr.is_ipv4() && (8..=30).contains(&c.prefix) && private(c))
        .ok_or_else(|| Error::InvalidCidr {
            workload: workload.to_string(),
            cidr: ip_range.to_string(),
        })
}

/// Checks a deployment and returns the resources it needs.
pub fn validate(deployment: &Deployment) -> Result<Resources, Error> {
    if deployment.workloads.is_empty() || deployment.workloads.len() > MAX_WORKLOADS {
        return Err(Error::WorkloadCount);
    }
    if deployment.encoded_size() > MAX_DEPLOYMENT_BYTES || !short_text(&deployment.metadata) {
        return Err(Error::DeploymentTooLarge);
    }
    let mut names = BTreeSet::new();
    let mut volumes = BTreeSet::new();
    let mut networks = std::collections::BTreeMap::new();
    for w in &deployment.workloads {
        if !valid_workload_name(&w.name) {
            return Err(Error::InvalidName(w.name.clone()));
        }
        if !names.insert(w.name.as_str()) {
            return Err(Error::DuplicateName(w.name.clone()));
        }
        match &w.spec {
            WorkloadSpec::Volume { .. } => {
                volumes.insert(w.name.as_str());
            }
            WorkloadSpec::Network { ip_range, mesh, .. } => {
                networks.insert(w.name.as_str(), network_range(&w.name, ip_range)?);
                if let Some(spec) = mesh {
                    mesh::check_spec(&w.name, spec, ip_range)?;
                }
            }
            _ => {}
        }
    }
    let mut total = Resources::default();
    let mut public_ip_containers = BTreeSet::new();
    for w in &deployment.workloads {
        let name = w.name.as_str();
        let needs = match &w.spec {
            WorkloadSpec::Container {
                image,
                cpu,
                memory,
                rootfs_size,
                entrypoint,
                env,
                mounts,
                networks: attachments,
                registry_auth,
                restart,
                health_check,
            } => {
                if let Some(check) = health_check {
                    let probe_ok = match &check.probe {
                        HealthProbe::Command { command } => {
                            !command.is_empty() && short_text(command)
                        }
                        HealthProbe::Http { port, path } => {
                            *port > 0 && path.starts_with('/') && short_text(path)
                        }
                        HealthProbe::Tcp { port } => *port > 0,
                    };
                    let timing_ok = (1..=3_600).contains(&check.interval_secs)
                        && (1..=check.interval_secs).contains(&check.timeout_secs)
                        && (1..=100).contains(&check.retries);
                    if !probe_ok || !timing_ok {
                        return Err(invalid(
                            name,
                            "health check: a command, a port (and a path starting with /), \
                             interval 1-3600 s, timeout 1 s to the interval, 1-100 retries",
                        ));
                    }
                }
                if matches!(restart, RestartPolicy::OnFailure { max_retries } if *max_retries > 1_000)
                {
                    return Err(invalid(name, "at most 1,000 restarts on failure"));
                }
                if *cpu == 0 || *memory == 0 || *rootfs_size == 0 {
                    return Err(Error::ZeroSize(w.name.clone()));
                }
                if image.is_empty() || !short_text(image) || !short_text(entrypoint) {
                    return Err(invalid(name, "image must be 1 to 1024 bytes"));
                }
                if let Some(sealed) = registry_auth {
                    check_sealed(name, sealed)?;
                    if sealed.0.len() > MAX_TEXT_LEN + SEAL_OVERHEAD {
                        return Err(invalid(name, "registry credentials exceed 1024 bytes"));
                    }
                }
                let mut env_names = BTreeSet::new();
                for var in env {
                    let ok_name = !var.name.is_empty()
                        && var.name.len() <= 128
                        && var
                            .name
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'_');
                    if !ok_name || !env_names.insert(var.name.as_str()) {
                        return Err(invalid(
                            name,
                            "environment names must be unique [A-Za-z0-9_]",
                        ));
                    }
                    match &var.value {
                        EnvValue::Plain(v) if !short_text(v) => {
                            return Err(invalid(name, "environment value too long"))
                        }
                        EnvValue::Sealed(sealed) => check_sealed(name, sealed)?,
                        EnvValue::Plain(_) => {}
                    }
                }
                let mut paths = BTreeSet::new();
                for mount in mounts {
                    if !volumes.contains(mount.volume.as_str()) {
                        return Err(Error::UnknownMount {
                            workload: w.name.clone(),
                            volume: mount.volume.clone(),
                        });
                    }
                    if !mount.path.starts_with('/')
                        || !short_text(&mount.path)
                        || !paths.insert(mount.path.as_str())
                    {
                        return Err(invalid(name, "mount paths must be absolute and distinct"));
                    }
                }
                for attachment in attachments {
                    let Some(range) = networks.get(attachment.network.as_str()) else {
                        return Err(Error::UnknownNetwork {
                            workload: w.name.clone(),
                            network: attachment.network.clone(),
                        });
                    };
                    if let Some(ip) = &attachment.ip {
                        let inside = ip.parse().map(|ip| range.contains(&ip)).unwrap_or(false);
                        if !inside {
                            return Err(invalid(
                                name,
                                "fixed IP is not inside the network's range",
                            ));
                        }
                        if !usable_host(range, ip) {
                            return Err(invalid(
                                name,
                                "fixed IP is the network's own address, its gateway (the \
                                 first host address) or its broadcast address",
                            ));
                        }
                    }
                }
                Resources {
                    cru: *cpu as u64,
                    mru: *memory,
                    sru: *rootfs_size,
                    hru: 0,
                }
            }
            WorkloadSpec::ZdbNamespace { size, password, .. } => {
                if *size == 0 {
                    return Err(Error::ZeroSize(w.name.clone()));
                }
                if let Some(sealed) = password {
                    check_sealed(name, sealed)?;
                }
                Resources {
                    hru: *size,
                    ..Default::default()
                }
            }
            WorkloadSpec::Network { .. } => Resources::default(),
            WorkloadSpec::PublicIp { container } => {
                let is_container = deployment.workloads.iter().any(|c| {
                    c.name == *container && matches!(c.spec, WorkloadSpec::Container { .. })
                });
                if !is_container {
                    return Err(invalid(
                        name,
                        "container is not a container of the deployment",
                    ));
                }
                if !public_ip_containers.insert(container.as_str()) {
                    return Err(invalid(name, "a container has at most one public IP"));
                }
                Resources::default()
            }
            WorkloadSpec::Volume { size } => {
                if *size == 0 {
                    return Err(Error::ZeroSize(w.name.clone()));
                }
                Resources {
                    sru: *size,
                    ..Default::default()
                }
            }
        };
        total = total
            .checked_add(&needs)
            .ok_or_else(|| invalid(name, "resources overflow"))?;
    }
    Ok(total)
}

/// Resources of one workload (as [`validate`] counts them).
pub fn workload_resources(spec: &WorkloadSpec) -> Resources {
    match spec {
        WorkloadSpec::Container {
            cpu,
            memory,
            rootfs_size,
            ..
        } => Resources {
            cru: *cpu as u64,
            mru: *memory,
            sru: *rootfs_size,
            hru: 0,
        },
        WorkloadSpec::ZdbNamespace { size, .. } => Resources {
            hru: *size,
            ..Default::default()
        },
        WorkloadSpec::Network { .. } | WorkloadSpec::PublicIp { .. } => Resources::default(),
        WorkloadSpec::Volume { size } => Resources {
            sru: *size,
            ..Default::default()
        },
    }
}

/// Checks the node takes new work: exists, Up, and not below its reserved capacity.
fn check_node_open<E>(ctx: &Context<E>, node_id: NodeId) -> Result<(), Error> {
    if pallet_tfgrid::node(ctx, node_id).is_none() {
        return Err(Error::UnknownNode(node_id));
    }
    let status = pallet_tfgrid::node_status(ctx, node_id);
    if status != NodeStatus::Up {
        return Err(Error::NodeNotUp { node_id, status });
    }
    if pallet_tfgrid::health(ctx, node_id).below_reserved {
        return Err(Error::NodeBelowReserved(node_id));
    }
    Ok(())
}

/// Gives `r`'s capacity back to its node (deletion, or entering grace).
pub fn release_capacity<E>(ctx: &mut Context<E>, r: &Reservation) {
    let used = pallet_tfgrid::used(ctx, r.node_id).saturating_sub(&r.resources);
    pallet_tfgrid::set_used(ctx, r.node_id, &used);
}

/// Takes `r`'s capacity again after its grace period, if it still fits on the node.
pub fn retake_capacity<E>(ctx: &mut Context<E>, r: &Reservation) -> Result<(), Error> {
    take_capacity(ctx, r.node_id, &r.resources, &Resources::default())
}

/// Takes `needs` on the node, after giving back `releasing`.
fn take_capacity<E>(
    ctx: &mut Context<E>,
    node_id: NodeId,
    needs: &Resources,
    releasing: &Resources,
) -> Result<(), Error> {
    let node = pallet_tfgrid::node(ctx, node_id).ok_or(Error::UnknownNode(node_id))?;
    let usable = pallet_tfgrid::usable_capacity(&node.resources);
    let used = pallet_tfgrid::used(ctx, node_id).saturating_sub(releasing);
    let free = usable.saturating_sub(&used);
    if !needs.fits_in(&free) {
        return Err(Error::InsufficientCapacity {
            node_id,
            requested: *needs,
            free,
        });
    }
    let used = used.checked_add(needs).ok_or(Error::InsufficientCapacity {
        node_id,
        requested: *needs,
        free,
    })?;
    pallet_tfgrid::set_used(ctx, node_id, &used);
    Ok(())
}

// ---- billing accrual ----

/// Units per hour `r` costs now: the farm's price of its Ok workloads (zero in grace/deleted).
pub fn current_rate<E>(ctx: &Context<E>, r: &Reservation) -> Balance {
    if matches!(
        r.state,
        ReservationState::GracePeriod { .. } | ReservationState::Deleted { .. }
    ) {
        return 0;
    }
    let Some(policy) = pallet_tfgrid::node(ctx, r.node_id)
        .and_then(|n| pallet_tfgrid::farm(ctx, n.farm_id))
        .and_then(|f| pallet_tfgrid::pricing_policy(ctx, f.pricing_policy_id))
    else {
        return 0;
    };
    let mut ok = Resources::default();
    let mut ok_workloads = 0;
    let mut ok_ips = 0;
    for result in r.results.iter().filter(|x| x.state == WorkloadState::Ok) {
        if let Some(w) = r
            .deployment
            .workloads
            .iter()
            .find(|w| w.name == result.name)
        {
            ok = ok.checked_add(&workload_resources(&w.spec)).unwrap_or(ok);
            ok_workloads += 1;
            ok_ips += usize::from(matches!(w.spec, WorkloadSpec::PublicIp { .. }));
        }
    }
    price_per_hour(ctx, &policy, &ok, ok_workloads, ok_ips)
}

/// What `workloads` workloads holding `resources` and `ips` public IPs cost per hour: the
/// farm's price, but at least the chain's minimum per workload.
fn price_per_hour<E>(
    ctx: &Context<E>,
    policy: &pallet_tfgrid::PricingPolicy,
    resources: &Resources,
    workloads: usize,
    ips: usize,
) -> Balance {
    let floor = config(ctx)
        .min_price_per_workload_hour
        .saturating_mul(workloads as u128);
    policy
        .price_per_hour(resources)
        .saturating_add(policy.ipu_per_hour.saturating_mul(ips as u128))
        .max(floor)
}

/// How many public IPs `deployment` asks for.
fn public_ips_asked(deployment: &Deployment) -> usize {
    deployment
        .workloads
        .iter()
        .filter(|w| matches!(w.spec, WorkloadSpec::PublicIp { .. }))
        .count()
}

/// The farm of `node_id`.
fn farm_of<E>(ctx: &Context<E>, node_id: NodeId) -> Option<pallet_tfgrid::FarmId> {
    pallet_tfgrid::node(ctx, node_id).map(|n| n.farm_id)
}

/// Brings `r`'s assigned public IPs to what its deployment asks: keeps those of `publicIp`
/// workloads still there, frees the others, assigns a free one of the farm to each new one
/// (one read and one write of the farm).
fn assign_public_ips<E>(ctx: &mut Context<E>, r: &mut Reservation) -> Result<(), Error> {
    let farm_id = farm_of(ctx, r.node_id).ok_or(Error::UnknownNode(r.node_id))?;
    let wanted: Vec<&str> = r
        .deployment
        .workloads
        .iter()
        .filter(|w| matches!(w.spec, WorkloadSpec::PublicIp { .. }))
        .map(|w| w.name.as_str())
        .collect();
    let (kept, freed): (Vec<_>, Vec<_>) = std::mem::take(&mut r.public_ips)
        .into_iter()
        .partition(|a| wanted.contains(&a.workload.as_str()));
    let new: Vec<&str> = wanted
        .into_iter()
        .filter(|w| !kept.iter().any(|a| a.workload == *w))
        .collect();
    let freed: Vec<String> = freed.into_iter().map(|a| a.ip).collect();
    if freed.is_empty() && new.is_empty() {
        r.public_ips = kept;
        return Ok(());
    }
    let assigned = pallet_tfgrid::reassign_ips(ctx, farm_id, r.id, &freed, new.len())
        .ok_or(Error::NoFreeIp(farm_id))?;
    r.public_ips = kept;
    r.public_ips.extend(
        new.into_iter()
            .zip(assigned)
            .map(|(workload, ip)| AssignedIp {
                workload: workload.to_string(),
                ip: ip.ip,
                gateway: ip.gateway,
            }),
    );
    Ok(())
}

/// Frees every public IP `r` holds.
fn release_public_ips<E>(ctx: &mut Context<E>, r: &mut Reservation) {
    let Some(farm_id) = farm_of(ctx, r.node_id) else {
        return;
    };
    let held: Vec<String> = std::mem::take(&mut r.public_ips)
        .into_iter()
        .map(|a| a.ip)
        .collect();
    if !held.is_empty() {
        pallet_tfgrid::reassign_ips(ctx, farm_id, r.id, &held, 0);
    }
}

/// The deposit a deployment holding `resources` on `node_id` needs (see [`BillingAccount`]).
pub fn deposit_for<E>(
    ctx: &Context<E>,
    node_id: NodeId,
    deployment: &Deployment,
    resources: &Resources,
) -> Balance {
    let config = config(ctx);
    let workloads = deployment.workloads.len();
    let hourly = pallet_tfgrid::node(ctx, node_id)
        .and_then(|n| pallet_tfgrid::farm(ctx, n.farm_id))
        .and_then(|f| pallet_tfgrid::pricing_policy(ctx, f.pricing_policy_id))
        .map_or(0, |policy| {
            price_per_hour(
                ctx,
                &policy,
                resources,
                workloads,
                public_ips_asked(deployment),
            )
        });
    config
        .deposit_per_workload
        .saturating_mul(workloads as u128)
        .saturating_add(hourly.saturating_mul(config.deposit_hours as u128))
}

/// Moves the reservation's deposit to `target`, holding more of the owner's free balance or
/// giving some back.
fn adjust_deposit<E: From<pallet_balances::Event>>(
    ctx: &mut Context<E>,
    r: &mut Reservation,
    target: Balance,
) -> Result<(), Error> {
    let held = r.billing.deposit;
    if target > held {
        pallet_balances::reserve(ctx, r.owner, target - held).map_err(|_| {
            Error::InsufficientDeposit {
                needed: target - held,
                available: pallet_balances::account(ctx, &r.owner).free,
            }
        })?;
    } else if target < held {
        // Held by this reservation alone, so it is there to give back.
        let _ = pallet_balances::unreserve(ctx, r.owner, held - target);
    }
    r.billing.deposit = target;
    Ok(())
}

/// Gives back what is left of a deleted reservation's deposit (the final settlement, once
/// what it owed was paid).
pub fn release_deposit<E: From<pallet_balances::Event>>(ctx: &mut Context<E>, r: &mut Reservation) {
    // Lowering the deposit only gives back what this reservation holds: it cannot fail.
    let _ = adjust_deposit(ctx, r, 0);
}

/// Takes up to `amount` of the reservation's deposit back into the owner's free balance, for
/// the final settlement to charge; returns how much.
pub fn draw_deposit<E: From<pallet_balances::Event>>(
    ctx: &mut Context<E>,
    r: &mut Reservation,
    amount: Balance,
) -> Balance {
    let drawn = amount.min(r.billing.deposit);
    let target = r.billing.deposit - drawn;
    // Lowering the deposit only gives back what this reservation holds: it cannot fail.
    let _ = adjust_deposit(ctx, r, target);
    drawn
}

/// Accrues `r`'s cost up to now at its current rate. Call before every change of state, results
/// or deployment, and [`refresh_rate`] after it.
pub fn checkpoint<E>(ctx: &Context<E>, r: &mut Reservation) {
    let now_up = pallet_tfgrid::node_up_clock(ctx, r.node_id);
    let elapsed = now_up.saturating_sub(r.billing.checkpoint_up_ms);
    r.billing.unpaid_scaled = r
        .billing
        .unpaid_scaled
        .saturating_add(r.billing.rate_per_hour.saturating_mul(elapsed as u128));
    r.billing.checkpoint_up_ms = now_up.max(r.billing.checkpoint_up_ms);
}

/// Sets `r`'s rate from its current state and results (after a [`checkpoint`]).
pub fn refresh_rate<E>(ctx: &Context<E>, r: &mut Reservation) {
    r.billing.rate_per_hour = current_rate(ctx, r);
}

// ---- calls ----

pub fn reserve<E: From<Event> + From<pallet_balances::Event>>(
    ctx: &mut Context<E>,
    who: AccountId,
    node_id: NodeId,
    deployment: Deployment,
) -> Result<ReservationId, Error> {
    let twin_id = pallet_twins::twin_id_of(ctx, &who).ok_or(Error::NoTwin)?;
    check_node_open(ctx, node_id)?;
    let resources = validate(&deployment)?;
    let id = next_id(ctx);
    let config = config(ctx);
    let live = live_count(ctx, &who);
    if live >= config.max_live_per_owner {
        return Err(Error::TooManyForOwner(live));
    }
    let deposit = deposit_for(ctx, node_id, &deployment, &resources);
    let buckets = config.settlement_buckets.max(1);
    let bucket_index = (0..buckets)
        .map(|k| ((id + k as u64) % buckets as u64) as u32)
        .find(|b| bucket_set(*b).len(ctx) < config.max_per_bucket)
        .ok_or(Error::TooManyReservations)?;
    take_capacity(ctx, node_id, &resources, &Resources::default())?;
    bucket_set(bucket_index).insert(ctx, id);
    owner_set(&who).insert(ctx, id);
    node_set(node_id).insert(ctx, id);
    set_live_count(ctx, &who, live + 1);
    ctx.overlay.put_encoded(next_id_key(), &(id + 1));
    let mut reservation = Reservation {
        id,
        owner: who,
        twin_id,
        node_id,
        version: 1,
        deployment,
        resources,
        state: ReservationState::Created,
        results: vec![],
        created_at: pallet_system::block_number(ctx),
        billing: BillingAccount {
            checkpoint_up_ms: pallet_tfgrid::node_up_clock(ctx, node_id),
            bucket: bucket_index,
            ..Default::default()
        },
        public_ips: vec![],
    };
    assign_public_ips(ctx, &mut reservation)?;
    mesh::join(ctx, &reservation)?;
    // Last of the checks (the caller's transaction undoes the writes above if it fails).
    adjust_deposit(ctx, &mut reservation, deposit)?;
    put_reservation(ctx, &reservation);
    pallet_twins::add_reference(ctx, twin_id);
    ctx.deposit_event(Event::Reserved {
        id,
        owner: who,
        node_id,
    });
    Ok(id)
}

pub fn reserve_many<E: From<Event> + From<pallet_balances::Event>>(
    ctx: &mut Context<E>,
    who: AccountId,
    requests: Vec<ReserveRequest>,
) -> Result<Vec<ReservationId>, Error> {
    if requests.is_empty() || requests.len() > MAX_BATCH {
        return Err(Error::BatchSize);
    }
    ctx.transactional(|ctx| {
        requests
            .into_iter()
            .map(|r| reserve(ctx, who, r.node_id, r.deployment))
            .collect()
    })
}

fn owned_live<E>(
    ctx: &Context<E>,
    who: &AccountId,
    id: ReservationId,
) -> Result<Reservation, Error> {
    let r = reservation(ctx, id).ok_or(Error::UnknownReservation(id))?;
    if r.owner != *who {
        return Err(Error::NotOwner);
    }
    if r.is_deleted() {
        return Err(Error::ReservationDeleted(id));
    }
    Ok(r)
}

fn update<E: From<Event> + From<pallet_balances::Event>>(
    ctx: &mut Context<E>,
    who: AccountId,
    id: ReservationId,
    deployment: Deployment,
) -> Result<(), Error> {
    let mut r = owned_live(ctx, &who, id)?;
    // In grace the reservation holds no capacity; it takes it back when its debt is paid.
    if matches!(r.state, ReservationState::GracePeriod { .. }) {
        return Err(Error::InGracePeriod(id));
    }
    check_node_open(ctx, r.node_id)?;
    let resources = validate(&deployment)?;
    take_capacity(ctx, r.node_id, &resources, &r.resources)?;
    let deposit = deposit_for(ctx, r.node_id, &deployment, &resources);
    adjust_deposit(ctx, &mut r, deposit)?;
    checkpoint(ctx, &mut r);
    mesh::leave(ctx, &r, Some(&deployment));
    r.version += 1;
    r.deployment = deployment;
    r.resources = resources;
    assign_public_ips(ctx, &mut r)?;
    mesh::join(ctx, &r)?;
    r.results.clear();
    r.state = ReservationState::Created;
    refresh_rate(ctx, &mut r);
    put_reservation(ctx, &r);
    ctx.deposit_event(Event::ReservationUpdated {
        id,
        version: r.version,
    });
    Ok(())
}

fn cancel<E: From<Event>>(
    ctx: &mut Context<E>,
    who: AccountId,
    id: ReservationId,
) -> Result<(), Error> {
    let mut r = owned_live(ctx, &who, id)?;
    delete(ctx, &mut r, DeletionReason::CanceledByUser);
    Ok(())
}

/// Ends a reservation: accrues its cost so far, frees its capacity and stops its accrual. It
/// stays in its settlement bucket until billing settles what it still owes.
pub fn delete<E: From<Event>>(ctx: &mut Context<E>, r: &mut Reservation, reason: DeletionReason) {
    checkpoint(ctx, r);
    let held_capacity = !matches!(r.state, ReservationState::GracePeriod { .. });
    r.state = ReservationState::Deleted { reason };
    refresh_rate(ctx, r);
    if held_capacity {
        release_capacity(ctx, r);
    }
    release_public_ips(ctx, r);
    mesh::leave(ctx, r, None);
    let live = live_count(ctx, &r.owner);
    set_live_count(ctx, &r.owner, live.saturating_sub(1));
    node_set(r.node_id).remove(ctx, &r.id);
    pallet_twins::remove_reference(ctx, r.twin_id);
    put_reservation(ctx, r);
    ctx.deposit_event(Event::ReservationDeleted { id: r.id, reason });
}

/// Most reservations of deleted nodes [`on_initialize`] ends per block.
pub const END_PER_BLOCK: u32 = 128;

/// A node was deleted: its reservations end over the next blocks, at most [`END_PER_BLOCK`]
/// per block (a node may host thousands; ending them all inside the `DeleteNode` call would
/// make one cheap call cost every validator unbounded work). Until then they accrue nothing:
/// `pallet_tfgrid` froze the node's up clock when it deleted the node.
pub fn schedule_node_end<E>(ctx: &mut Context<E>, node_id: NodeId) {
    if !node_set(node_id).is_empty(ctx) {
        ending_nodes_set().insert(ctx, node_id);
    } else {
        pallet_tfgrid::forget_health(ctx, node_id);
    }
}

/// Start of a block: ends up to [`END_PER_BLOCK`] reservations of deleted nodes
/// (`Deleted(NodeDeleted)`), and forgets a deleted node once it hosts nothing.
pub fn on_initialize<E: From<Event>>(ctx: &mut Context<E>) {
    let ending = ending_nodes_set();
    let mut budget = END_PER_BLOCK;
    while budget > 0 {
        let Some(node_id) = ending.last(ctx) else {
            return;
        };
        let hosted = node_set(node_id);
        while budget > 0 {
            let Some(id) = hosted.last(ctx) else {
                break;
            };
            budget -= 1;
            match reservation(ctx, id) {
                Some(mut r) if !r.is_deleted() => delete(ctx, &mut r, DeletionReason::NodeDeleted),
                // Never the case (deletion takes it out of the set), but must not loop.
                _ => {
                    hosted.remove(ctx, &id);
                }
            }
        }
        if hosted.is_empty(ctx) {
            ending.remove(ctx, &node_id);
            pallet_tfgrid::forget_health(ctx, node_id);
        }
    }
}

fn result_size_ok(result: &WorkloadResult) -> bool {
    let fields: Vec<&String> = match &result.data {
        ResultData::None => vec![],
        ResultData::Container {
            container_id,
            ips,
            image_digest,
            ..
        } => [container_id, image_digest]
            .into_iter()
            .chain(ips)
            .collect(),
        ResultData::Zdb {
            namespace,
            endpoints,
        } => std::iter::once(namespace).chain(endpoints).collect(),
        ResultData::Network {
            subnet,
            gateway,
            wireguard,
        } => {
            if wireguard
                .as_ref()
                .is_some_and(|w| w.endpoint.len() > mesh::MAX_ENDPOINT_LEN)
            {
                return false;
            }
            std::iter::once(subnet).chain(gateway).collect()
        }
        ResultData::Volume { path } => vec![path],
        ResultData::PublicIp { ip, container } => vec![ip, container],
    };
    short_text(&result.message) && fields.len() <= 64 && fields.iter().all(|f| short_text(f))
}

fn report_results<E: From<Event>>(
    ctx: &mut Context<E>,
    who: AccountId,
    id: ReservationId,
    version: u32,
    results: Vec<WorkloadResult>,
) -> Result<(), Error> {
    let mut r = reservation(ctx, id).ok_or(Error::UnknownReservation(id))?;
    let host = pallet_tfgrid::node(ctx, r.node_id).map(|n| n.account);
    if host != Some(who) {
        return Err(Error::NotHostingNode);
    }
    if r.is_deleted() {
        return Err(Error::ReservationDeleted(id));
    }
    if version != r.version {
        return Err(Error::StaleVersion {
            current: r.version,
            got: version,
        });
    }
    let mut seen = BTreeSet::new();
    for result in &results {
        if !r.deployment.workloads.iter().any(|w| w.name == result.name) {
            return Err(Error::UnknownWorkload(result.name.clone()));
        }
        if !seen.insert(result.name.as_str()) {
            return Err(Error::DuplicateResult(result.name.clone()));
        }
        if !result_size_ok(result) {
            return Err(Error::ResultTooLarge);
        }
        // Other members' nodes put a mesh endpoint into their WireGuard configuration: text
        // that is not an address and port would make theirs fail to apply.
        if let ResultData::Network {
            wireguard: Some(wg),
            ..
        } = &result.data
        {
            if wg.endpoint.parse::<std::net::SocketAddr>().is_err() {
                return Err(Error::InvalidEndpoint(wg.endpoint.clone()));
            }
        }
    }
    checkpoint(ctx, &mut r);
    mesh::record_endpoints(ctx, &r, &results);
    for result in results {
        match r.results.iter_mut().find(|x| x.name == result.name) {
            Some(existing) => *existing = result,
            None => r.results.push(result),
        }
    }
    if !matches!(r.state, ReservationState::GracePeriod { .. }) {
        r.state = derived_state(&r);
    }
    refresh_rate(ctx, &mut r);
    put_reservation(ctx, &r);
    ctx.deposit_event(Event::ResultsReported {
        id,
        version,
        state: r.state,
    });
    Ok(())
}

/// The state a live reservation's results imply: Failed if any workload is in Error, Deployed if
/// all are Ok, Created otherwise.
pub fn derived_state(r: &Reservation) -> ReservationState {
    if r.results.iter().any(|x| x.state == WorkloadState::Error) {
        return ReservationState::Failed;
    }
    let all_ok = r.deployment.workloads.iter().all(|w| {
        r.results
            .iter()
            .any(|x| x.name == w.name && x.state == WorkloadState::Ok)
    });
    if all_ok {
        ReservationState::Deployed
    } else {
        ReservationState::Created
    }
}
