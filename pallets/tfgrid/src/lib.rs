//! # pallet-tfgrid
//!
//! Farms, 3Nodes and the prices of their capacity.
//!
//! - **Pricing policies** are set at genesis (later by governance): a price per CU-hour, SU-hour,
//!   GB of network traffic (NU) and public-IP-hour (IPU), in token units.
//! - **Farms** ([`Call::CreateFarm`]) belong to a twin, pick a pricing policy and have a payout
//!   account (the creator; [`Call::UpdateFarm`] changes it) and a list of public IPs.
//! - **3Nodes** ([`Call::RegisterNode`]) are registered by the node's own key, which must have a
//!   twin: the agent on the machine signs with it, and secrets in reservations are sealed to it.
//!   A node declares its resources (CRU logical cores, MRU/SRU/HRU bytes), location and optional
//!   public config.
//! - **Consent**: a node joins a farm only if the farm's owner allowed its key first
//!   ([`Call::AllowNode`], or the chain spec's `allowedNodes` of a genesis farm); the allowance
//!   is used up by the registration. Otherwise anyone could attach a node to a farm (and its
//!   reputation and pricing) that never wanted it. A farm holds at most [`MAX_FARM_NODES`].
//! - **Limits**: declared resources are capped per node by the chain spec
//!   (`TfgridConfig::max_node_resources`), on registration and update: a declaration bounds
//!   what the node is paid for and what reservations may take on it.
//!
//! ## Capacity units
//! With MRU in GiB and CRU in cores (tfchain's published formulas):
//! - `CU = min(max(MRU/4, CRU/2), max(MRU/8, CRU), max(MRU/2, CRU/4))`
//! - `SU = HRU/1200 + SRU/200` (HRU, SRU in GiB)
//!
//! computed in millionths ([`cu_micro`], [`su_micro`]) so prices stay exact integers.
//!
//! ## What a node can host
//! [`usable_capacity`] is the declared resources minus a reserve for Zero-OS itself
//! ([`system_reserve`]): `max(2 GiB, 10 %)` of memory and 50 GiB of SSD (caches, logs, flists).
//! The pallet keeps the sum of what reservations hold on each node ([`used`]); the reservations
//! pallet never lets it exceed the usable capacity.
//!
//! ## Health
//! Each node has a [`NodeHealth`]: time of its last capacity proof and an *up clock* — the total
//! milliseconds it has been Up. A node is Up while its last proof is at most two capacity
//! periods old, Down after that, and Standby before its first proof. The up clock is computed
//! lazily from the proof times ([`up_clock`]), so "node went Down" needs no per-block scan, and
//! billing charges exactly for the time a node was Up.

use gridchain_primitives::{
    account::balance_string, state::storage_key, state::storage_map_key, AccountId, Balance,
};
use pallet_system::{Context, PalletError};
use pallet_twins::TwinId;
use parity_scale_codec::{Decode, Encode};
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

#[cfg(test)]
mod tests;

pub const PALLET: &str = "tfgrid";

pub type FarmId = u32;
pub type NodeId = u32;
pub type PricingPolicyId = u32;

pub const GIB: u64 = 1 << 30;
/// Most public IPs one farm lists.
pub const MAX_FARM_IPS: usize = 256;
/// Longest location or public-config field, in bytes.
pub const MAX_FIELD_LEN: usize = 128;
/// Most nodes one farm holds: `farm_nodes` is one list, rewritten whole when it changes.
pub const MAX_FARM_NODES: usize = 1_000;

/// Resources of a node or a workload: logical cores and bytes of memory, SSD and HDD.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct Resources {
    pub cru: u64,
    pub mru: u64,
    pub sru: u64,
    pub hru: u64,
}

impl Resources {
    pub fn checked_add(&self, other: &Resources) -> Option<Resources> {
        Some(Resources {
            cru: self.cru.checked_add(other.cru)?,
            mru: self.mru.checked_add(other.mru)?,
            sru: self.sru.checked_add(other.sru)?,
            hru: self.hru.checked_add(other.hru)?,
        })
    }

    pub fn saturating_sub(&self, other: &Resources) -> Resources {
        Resources {
            cru: self.cru.saturating_sub(other.cru),
            mru: self.mru.saturating_sub(other.mru),
            sru: self.sru.saturating_sub(other.sru),
            hru: self.hru.saturating_sub(other.hru),
        }
    }

    /// Whether every component of `self` is at most that of `other`.
    pub fn fits_in(&self, other: &Resources) -> bool {
        self.cru <= other.cru
            && self.mru <= other.mru
            && self.sru <= other.sru
            && self.hru <= other.hru
    }

    pub fn is_zero(&self) -> bool {
        *self == Resources::default()
    }
}

/// Compute units × 10^6 of `r` (see the crate docs).
pub fn cu_micro(r: &Resources) -> u128 {
    let m = r.mru as u128 * 1_000_000 / GIB as u128;
    let c = r.cru as u128 * 1_000_000;
    (m / 4)
        .max(c / 2)
        .min((m / 8).max(c))
        .min((m / 2).max(c / 4))
}

/// Storage units × 10^6 of `r` (see the crate docs).
pub fn su_micro(r: &Resources) -> u128 {
    r.hru as u128 * 1_000_000 / (1200 * GIB as u128)
        + r.sru as u128 * 1_000_000 / (200 * GIB as u128)
}

#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PricingPolicy {
    pub id: PricingPolicyId,
    pub name: String,
    /// Units per CU per hour.
    #[serde(with = "balance_string")]
    pub cu_per_hour: Balance,
    /// Units per SU per hour.
    #[serde(with = "balance_string")]
    pub su_per_hour: Balance,
    /// Units per GB of public traffic (charged once traffic is metered).
    #[serde(with = "balance_string")]
    pub nu_per_gb: Balance,
    /// Units per public IP per hour (charged once public-IP workloads exist).
    #[serde(with = "balance_string")]
    pub ipu_per_hour: Balance,
}

impl PricingPolicy {
    /// Units per hour for holding `r`.
    pub fn price_per_hour(&self, r: &Resources) -> Balance {
        cu_micro(r)
            .saturating_mul(self.cu_per_hour)
            .saturating_add(su_micro(r).saturating_mul(self.su_per_hour))
            / 1_000_000
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PublicIp {
    /// `a.b.c.d/prefix`
    pub ip: String,
    pub gateway: String,
    /// The reservation it is assigned to (by `pallet_reservations`, for one of its `publicIp`
    /// workloads); free when `None`.
    #[serde(default)]
    pub reservation: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Farm {
    pub id: FarmId,
    pub name: String,
    pub twin_id: TwinId,
    pub owner: AccountId,
    /// Where the farmer's share of billing and the capacity rewards go.
    pub payout: AccountId,
    pub pricing_policy_id: PricingPolicyId,
    pub public_ips: Vec<PublicIp>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Location {
    pub country: String,
    pub city: String,
    pub latitude: String,
    pub longitude: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PublicConfig {
    /// `a.b.c.d/prefix`
    pub ipv4: String,
    pub gw4: String,
    pub ipv6: Option<String>,
    pub domain: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum NodeStatus {
    /// Registered, no capacity proof yet.
    Standby,
    /// Last capacity proof at most two periods old.
    Up,
    /// Missed two periods: takes no reservations, is not billed, earns nothing.
    Down,
}

#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Node {
    pub id: NodeId,
    pub farm_id: FarmId,
    pub twin_id: TwinId,
    /// The node's own key: signs its extrinsics; secrets are sealed to it.
    pub account: AccountId,
    pub resources: Resources,
    pub location: Location,
    pub public_config: Option<PublicConfig>,
    /// Last status the chain recorded (see [`effective_status`] for the live one).
    pub status: NodeStatus,
    pub created_at: u64,
}

/// What the chain knows about a node's liveness, from its capacity proofs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeHealth {
    /// Block time (ms) of the last accepted proof's timestamp.
    pub last_proof_ms: Option<u64>,
    /// Up time accumulated before `up_since_ms`.
    pub up_clock_ms: u64,
    /// Start of the current (or last) stretch of Up time.
    pub up_since_ms: Option<u64>,
    /// Resources the node measured in its last proof.
    pub measured: Resources,
    /// Resources the node said its workloads use.
    pub used_reported: Resources,
    /// Measured capacity is below what reservations hold: no new reservations until fixed.
    pub below_reserved: bool,
}

/// The node's live status at block time `now_ms`.
pub fn effective_status(health: &NodeHealth, now_ms: u64, period_ms: u64) -> NodeStatus {
    match health.last_proof_ms {
        None => NodeStatus::Standby,
        Some(last) if now_ms <= last.saturating_add(period_ms.saturating_mul(2)) => NodeStatus::Up,
        Some(_) => NodeStatus::Down,
    }
}

/// Total milliseconds the node has been Up by block time `now_ms`; never decreases.
pub fn up_clock(health: &NodeHealth, now_ms: u64, period_ms: u64) -> u64 {
    match (health.up_since_ms, health.last_proof_ms) {
        (Some(since), Some(last)) => {
            let up_until = now_ms.min(last.saturating_add(period_ms.saturating_mul(2)));
            health
                .up_clock_ms
                .saturating_add(up_until.saturating_sub(since))
        }
        _ => health.up_clock_ms,
    }
}

/// Records a capacity proof at `proof_ms`, closing the previous Up stretch if the node had been
/// Down in between. [`up_clock`] is the same just before and just after.
pub fn record_proof(health: &mut NodeHealth, proof_ms: u64, period_ms: u64) {
    match (health.up_since_ms, health.last_proof_ms) {
        (Some(since), Some(last)) => {
            let down_at = last.saturating_add(period_ms.saturating_mul(2));
            if proof_ms > down_at {
                health.up_clock_ms = health
                    .up_clock_ms
                    .saturating_add(down_at.saturating_sub(since));
                health.up_since_ms = Some(proof_ms);
            }
        }
        _ => health.up_since_ms = Some(proof_ms),
    }
    health.last_proof_ms = Some(proof_ms);
}

/// The part of a node's resources Zero-OS keeps for itself (see the crate docs).
pub fn system_reserve(total: &Resources) -> Resources {
    Resources {
        cru: 0,
        mru: (2 * GIB).max(total.mru / 10).min(total.mru),
        sru: (50 * GIB).min(total.sru),
        hru: 0,
    }
}

/// What reservations may hold on a node with `total` resources.
pub fn usable_capacity(total: &Resources) -> Resources {
    total.saturating_sub(&system_reserve(total))
}

/// A parsed `address/prefix`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl Cidr {
    pub fn parse(text: &str) -> Option<Cidr> {
        let (addr, prefix) = text.split_once('/')?;
        let addr: IpAddr = addr.parse().ok()?;
        let prefix: u8 = prefix.parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        (prefix <= max).then_some(Cidr { addr, prefix })
    }

    /// Whether `ip` is inside this network.
    pub fn contains(&self, ip: &IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - self.prefix as u32).unwrap_or(0);
                u32::from(net) & mask == u32::from(*ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - self.prefix as u32).unwrap_or(0);
                u128::from(net) & mask == u128::from(*ip) & mask
            }
            _ => false,
        }
    }
}

/// Genesis and chain-spec parameters of the grid.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TfgridConfig {
    /// Nodes prove their capacity once per period; Down after two missed periods.
    pub capacity_period_ms: u64,
    /// The most one node may declare, per resource. Declarations are the node's own word, and
    /// they bound both what it may be paid for and what reservations may take on it, so a
    /// node claiming `u64::MAX` cores must be refused, not believed.
    pub max_node_resources: Resources,
}

/// Per-node limits of the built-in chains: a large 2026 server (512 logical cores, 8 TiB of
/// memory, 256 TiB of SSD, 2 PiB of HDD). Anything above is a lie or a cluster, which must
/// register as several nodes.
pub const DEFAULT_MAX_NODE_RESOURCES: Resources = Resources {
    cru: 512,
    mru: 8 << 40,
    sru: 256 << 40,
    hru: 2 << 50,
};

impl Default for TfgridConfig {
    /// Ten minutes; [`DEFAULT_MAX_NODE_RESOURCES`].
    fn default() -> Self {
        TfgridConfig {
            capacity_period_ms: 600_000,
            max_node_resources: DEFAULT_MAX_NODE_RESOURCES,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "call")]
pub enum Call {
    #[serde(rename_all = "camelCase")]
    CreateFarm {
        name: String,
        pricing_policy_id: PricingPolicyId,
    },
    /// Farm owner only: new name and payout account.
    #[serde(rename_all = "camelCase")]
    UpdateFarm {
        farm_id: FarmId,
        name: String,
        payout: AccountId,
    },
    #[serde(rename_all = "camelCase")]
    AddFarmIp {
        farm_id: FarmId,
        ip: String,
        gateway: String,
    },
    #[serde(rename_all = "camelCase")]
    RemoveFarmIp { farm_id: FarmId, ip: String },
    /// Farm owner only: the node whose key is `account` may register on this farm (once).
    #[serde(rename_all = "camelCase")]
    AllowNode { farm_id: FarmId, account: AccountId },
    /// Farm owner only: withdraws an allowance not used yet.
    #[serde(rename_all = "camelCase")]
    DisallowNode { farm_id: FarmId, account: AccountId },
    /// Signed by the node's own key, which must have a twin and the farmer's allowance
    /// ([`Call::AllowNode`]).
    #[serde(rename_all = "camelCase")]
    RegisterNode {
        farm_id: FarmId,
        resources: Resources,
        location: Location,
        public_config: Option<PublicConfig>,
    },
    /// Signed by the node's key.
    #[serde(rename_all = "camelCase")]
    UpdateNode {
        resources: Resources,
        location: Location,
        public_config: Option<PublicConfig>,
    },
    /// By the node's key or the farm owner; its reservations end with `NodeDeleted`.
    #[serde(rename_all = "camelCase")]
    DeleteNode { node_id: NodeId },
}

#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "event")]
pub enum Event {
    #[serde(rename_all = "camelCase")]
    FarmCreated {
        id: FarmId,
        twin_id: TwinId,
        name: String,
    },
    #[serde(rename_all = "camelCase")]
    FarmUpdated {
        id: FarmId,
        name: String,
        payout: AccountId,
    },
    #[serde(rename_all = "camelCase")]
    FarmIpAdded { farm_id: FarmId, ip: String },
    #[serde(rename_all = "camelCase")]
    FarmIpRemoved { farm_id: FarmId, ip: String },
    #[serde(rename_all = "camelCase")]
    NodeAllowed { farm_id: FarmId, account: AccountId },
    #[serde(rename_all = "camelCase")]
    NodeDisallowed { farm_id: FarmId, account: AccountId },
    #[serde(rename_all = "camelCase")]
    NodeRegistered {
        id: NodeId,
        farm_id: FarmId,
        account: AccountId,
    },
    #[serde(rename_all = "camelCase")]
    NodeUpdated { id: NodeId },
    #[serde(rename_all = "camelCase")]
    NodeDeleted { id: NodeId },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("the signer has no twin; create one first")]
    NoTwin,
    #[error("invalid farm name: 1 to 64 letters, digits, '-', '_' or '.'")]
    InvalidFarmName,
    #[error("a farm named {0:?} exists")]
    FarmNameTaken(String),
    #[error("no pricing policy {0}")]
    UnknownPricingPolicy(PricingPolicyId),
    #[error("no farm {0}")]
    UnknownFarm(FarmId),
    #[error("only the farm's owner may do this")]
    NotFarmOwner,
    #[error("invalid public IP: expected a.b.c.d/prefix with a gateway inside that network")]
    InvalidIp,
    #[error("the farm already lists {0}")]
    IpExists(String),
    #[error("the farm does not list {0}")]
    UnknownIp(String),
    #[error("a farm lists at most {MAX_FARM_IPS} public IPs")]
    TooManyIps,
    #[error("{ip} is assigned to reservation {reservation}; it is freed when that ends")]
    IpInUse { ip: String, reservation: u64 },
    #[error("this key already registered node {0}")]
    AlreadyRegistered(NodeId),
    #[error("no node {0}")]
    UnknownNode(NodeId),
    #[error("the signer is not a registered node")]
    NotANode,
    #[error("only the node itself or its farm's owner may do this")]
    NotNodeOrFarmer,
    #[error("resources must have at least one core and 1 GiB of memory")]
    InvalidResources,
    #[error("new resources are below what reservations hold on the node")]
    ResourcesBelowReserved,
    #[error("invalid location or public config (fields up to {MAX_FIELD_LEN} bytes, valid IPs)")]
    InvalidNodeInfo,
    #[error("declared resources exceed the chain's per-node limits")]
    ResourcesAboveLimit,
    #[error("the farm's owner has not allowed this node key on the farm")]
    NodeNotAllowed,
    #[error("the farm has no allowance for that key")]
    UnknownAllowance,
    #[error("a farm holds at most {MAX_FARM_NODES} nodes")]
    FarmFull,
}

impl PalletError for Error {
    const PALLET: &'static str = PALLET;
    fn name(&self) -> &'static str {
        match self {
            Error::NoTwin => "NoTwin",
            Error::InvalidFarmName => "InvalidFarmName",
            Error::FarmNameTaken(_) => "FarmNameTaken",
            Error::UnknownPricingPolicy(_) => "UnknownPricingPolicy",
            Error::UnknownFarm(_) => "UnknownFarm",
            Error::NotFarmOwner => "NotFarmOwner",
            Error::InvalidIp => "InvalidIp",
            Error::IpExists(_) => "IpExists",
            Error::UnknownIp(_) => "UnknownIp",
            Error::IpInUse { .. } => "IpInUse",
            Error::TooManyIps => "TooManyIps",
            Error::AlreadyRegistered(_) => "AlreadyRegistered",
            Error::UnknownNode(_) => "UnknownNode",
            Error::NotANode => "NotANode",
            Error::NotNodeOrFarmer => "NotNodeOrFarmer",
            Error::InvalidResources => "InvalidResources",
            Error::ResourcesBelowReserved => "ResourcesBelowReserved",
            Error::InvalidNodeInfo => "InvalidNodeInfo",
            Error::ResourcesAboveLimit => "ResourcesAboveLimit",
            Error::NodeNotAllowed => "NodeNotAllowed",
            Error::UnknownAllowance => "UnknownAllowance",
            Error::FarmFull => "FarmFull",
        }
    }
}

pub fn dispatch<E: From<Event>>(
    ctx: &mut Context<E>,
    who: AccountId,
    call: Call,
) -> Result<(), Error> {
    match call {
        Call::CreateFarm {
            name,
            pricing_policy_id,
        } => create_farm(ctx, who, name, pricing_policy_id).map(|_| ()),
        Call::UpdateFarm {
            farm_id,
            name,
            payout,
        } => update_farm(ctx, who, farm_id, name, payout),
        Call::AddFarmIp {
            farm_id,
            ip,
            gateway,
        } => add_farm_ip(ctx, who, farm_id, ip, gateway),
        Call::RemoveFarmIp { farm_id, ip } => remove_farm_ip(ctx, who, farm_id, ip),
        Call::AllowNode { farm_id, account } => allow_node(ctx, who, farm_id, account),
        Call::DisallowNode { farm_id, account } => disallow_node(ctx, who, farm_id, account),
        Call::RegisterNode {
            farm_id,
            resources,
            location,
            public_config,
        } => register_node(ctx, who, farm_id, resources, location, public_config).map(|_| ()),
        Call::UpdateNode {
            resources,
            location,
            public_config,
        } => update_node(ctx, who, resources, location, public_config),
        Call::DeleteNode { node_id } => delete_node(ctx, who, node_id),
    }
}

// ---- storage ----

pub fn config_key() -> Vec<u8> {
    storage_key(PALLET, "config")
}
pub fn pricing_policy_key(id: PricingPolicyId) -> Vec<u8> {
    storage_map_key(PALLET, "pricing_policy", &id)
}
pub fn next_pricing_policy_id_key() -> Vec<u8> {
    storage_key(PALLET, "next_pricing_policy_id")
}
pub fn farm_key(id: FarmId) -> Vec<u8> {
    storage_map_key(PALLET, "farm", &id)
}
pub fn farm_by_name_key(name: &str) -> Vec<u8> {
    storage_map_key(PALLET, "farm_by_name", &name.to_lowercase())
}
pub fn next_farm_id_key() -> Vec<u8> {
    storage_key(PALLET, "next_farm_id")
}
/// `Vec<NodeId>` of a farm's nodes.
pub fn farm_nodes_key(id: FarmId) -> Vec<u8> {
    storage_map_key(PALLET, "farm_nodes", &id)
}
/// Present while the farm's owner allows `account` to register a node on `farm`.
pub fn allowed_node_key(farm: FarmId, account: &AccountId) -> Vec<u8> {
    storage_map_key(PALLET, "allowed_node", &(farm, account))
}
pub fn node_key(id: NodeId) -> Vec<u8> {
    storage_map_key(PALLET, "node", &id)
}
pub fn node_by_account_key(account: &AccountId) -> Vec<u8> {
    storage_map_key(PALLET, "node_by_account", account)
}
pub fn next_node_id_key() -> Vec<u8> {
    storage_key(PALLET, "next_node_id")
}
pub fn health_key(id: NodeId) -> Vec<u8> {
    storage_map_key(PALLET, "health", &id)
}
/// Sum of the resources reservations hold on a node.
pub fn used_key(id: NodeId) -> Vec<u8> {
    storage_map_key(PALLET, "used", &id)
}

pub fn config<E>(ctx: &Context<E>) -> TfgridConfig {
    ctx.overlay.get_decoded(&config_key()).unwrap_or_default()
}
pub fn pricing_policy<E>(ctx: &Context<E>, id: PricingPolicyId) -> Option<PricingPolicy> {
    ctx.overlay.get_decoded(&pricing_policy_key(id))
}
pub fn next_pricing_policy_id<E>(ctx: &Context<E>) -> PricingPolicyId {
    ctx.overlay
        .get_decoded(&next_pricing_policy_id_key())
        .unwrap_or(1)
}
pub fn farm<E>(ctx: &Context<E>, id: FarmId) -> Option<Farm> {
    ctx.overlay.get_decoded(&farm_key(id))
}
pub fn next_farm_id<E>(ctx: &Context<E>) -> FarmId {
    ctx.overlay.get_decoded(&next_farm_id_key()).unwrap_or(1)
}
pub fn farm_nodes<E>(ctx: &Context<E>, id: FarmId) -> Vec<NodeId> {
    ctx.overlay
        .get_decoded(&farm_nodes_key(id))
        .unwrap_or_default()
}
pub fn node_allowed<E>(ctx: &Context<E>, farm: FarmId, account: &AccountId) -> bool {
    ctx.overlay.get(&allowed_node_key(farm, account)).is_some()
}
pub fn node<E>(ctx: &Context<E>, id: NodeId) -> Option<Node> {
    ctx.overlay.get_decoded(&node_key(id))
}
pub fn node_id_of<E>(ctx: &Context<E>, account: &AccountId) -> Option<NodeId> {
    ctx.overlay.get_decoded(&node_by_account_key(account))
}
pub fn next_node_id<E>(ctx: &Context<E>) -> NodeId {
    ctx.overlay.get_decoded(&next_node_id_key()).unwrap_or(1)
}
pub fn health<E>(ctx: &Context<E>, id: NodeId) -> NodeHealth {
    ctx.overlay.get_decoded(&health_key(id)).unwrap_or_default()
}
pub fn put_health<E>(ctx: &mut Context<E>, id: NodeId, health: &NodeHealth) {
    ctx.overlay.put_encoded(health_key(id), health);
}
/// Drops a deleted node's (frozen) health once nothing is billed against it.
pub fn forget_health<E>(ctx: &mut Context<E>, id: NodeId) {
    ctx.overlay.delete(health_key(id));
}
pub fn used<E>(ctx: &Context<E>, id: NodeId) -> Resources {
    ctx.overlay.get_decoded(&used_key(id)).unwrap_or_default()
}
pub fn set_used<E>(ctx: &mut Context<E>, id: NodeId, used: &Resources) {
    if used.is_zero() {
        ctx.overlay.delete(used_key(id));
    } else {
        ctx.overlay.put_encoded(used_key(id), used);
    }
}
pub fn put_node<E>(ctx: &mut Context<E>, node: &Node) {
    ctx.overlay.put_encoded(node_key(node.id), node);
}

/// Node `id`'s live status at the current block time.
pub fn node_status<E>(ctx: &Context<E>, id: NodeId) -> NodeStatus {
    effective_status(
        &health(ctx, id),
        pallet_timestamp::now(ctx),
        config(ctx).capacity_period_ms,
    )
}

/// Node `id`'s up clock at the current block time.
pub fn node_up_clock<E>(ctx: &Context<E>, id: NodeId) -> u64 {
    up_clock(
        &health(ctx, id),
        pallet_timestamp::now(ctx),
        config(ctx).capacity_period_ms,
    )
}

// ---- genesis ----

pub fn set_config<E>(ctx: &mut Context<E>, config: &TfgridConfig) {
    ctx.overlay.put_encoded(config_key(), config);
}

/// Genesis (later: governance): adds a pricing policy under the next id.
pub fn add_pricing_policy<E>(ctx: &mut Context<E>, mut policy: PricingPolicy) -> PricingPolicyId {
    let id = next_pricing_policy_id(ctx);
    policy.id = id;
    ctx.overlay.put_encoded(pricing_policy_key(id), &policy);
    ctx.overlay
        .put_encoded(next_pricing_policy_id_key(), &(id + 1));
    id
}

// ---- farms ----

pub fn create_farm<E: From<Event>>(
    ctx: &mut Context<E>,
    who: AccountId,
    name: String,
    pricing_policy_id: PricingPolicyId,
) -> Result<FarmId, Error> {
    let twin_id = pallet_twins::twin_id_of(ctx, &who).ok_or(Error::NoTwin)?;
    if !pallet_twins::valid_name(&name) {
        return Err(Error::InvalidFarmName);
    }
    if ctx.overlay.get(&farm_by_name_key(&name)).is_some() {
        return Err(Error::FarmNameTaken(name));
    }
    if pricing_policy(ctx, pricing_policy_id).is_none() {
        return Err(Error::UnknownPricingPolicy(pricing_policy_id));
    }
    let id = next_farm_id(ctx);
    ctx.overlay.put_encoded(next_farm_id_key(), &(id + 1));
    ctx.overlay.put_encoded(farm_by_name_key(&name), &id);
    ctx.overlay.put_encoded(
        farm_key(id),
        &Farm {
            id,
            name: name.clone(),
            twin_id,
            owner: who,
            payout: who,
            pricing_policy_id,
            public_ips: vec![],
        },
    );
    pallet_twins::add_reference(ctx, twin_id);
    ctx.deposit_event(Event::FarmCreated { id, twin_id, name });
    Ok(id)
}

fn owned_farm<E>(ctx: &Context<E>, who: &AccountId, farm_id: FarmId) -> Result<Farm, Error> {
    let farm = farm(ctx, farm_id).ok_or(Error::UnknownFarm(farm_id))?;
    if farm.owner != *who {
        return Err(Error::NotFarmOwner);
    }
    Ok(farm)
}

fn update_farm<E: From<Event>>(
    ctx: &mut Context<E>,
    who: AccountId,
    farm_id: FarmId,
    name: String,
    payout: AccountId,
) -> Result<(), Error> {
    let mut farm = owned_farm(ctx, &who, farm_id)?;
    if !pallet_twins::valid_name(&name) {
        return Err(Error::InvalidFarmName);
    }
    if name.to_lowercase() != farm.name.to_lowercase() {
        if ctx.overlay.get(&farm_by_name_key(&name)).is_some() {
            return Err(Error::FarmNameTaken(name));
        }
        ctx.overlay.delete(farm_by_name_key(&farm.name));
        ctx.overlay.put_encoded(farm_by_name_key(&name), &farm_id);
    }
    farm.name = name.clone();
    farm.payout = payout;
    ctx.overlay.put_encoded(farm_key(farm_id), &farm);
    ctx.deposit_event(Event::FarmUpdated {
        id: farm_id,
        name,
        payout,
    });
    Ok(())
}

fn add_farm_ip<E: From<Event>>(
    ctx: &mut Context<E>,
    who: AccountId,
    farm_id: FarmId,
    ip: String,
    gateway: String,
) -> Result<(), Error> {
    let mut farm = owned_farm(ctx, &who, farm_id)?;
    let cidr = Cidr::parse(&ip).ok_or(Error::InvalidIp)?;
    let gw: IpAddr = gateway.parse().map_err(|_| Error::InvalidIp)?;
    if !cidr.contains(&gw) || gw == cidr.addr {
        return Err(Error::InvalidIp);
    }
    if farm.public_ips.iter().any(|p| p.ip == ip) {
        return Err(Error::IpExists(ip));
    }
    if farm.public_ips.len() >= MAX_FARM_IPS {
        return Err(Error::TooManyIps);
    }
    farm.public_ips.push(PublicIp {
        ip: ip.clone(),
        gateway,
        reservation: None,
    });
    ctx.overlay.put_encoded(farm_key(farm_id), &farm);
    ctx.deposit_event(Event::FarmIpAdded { farm_id, ip });
    Ok(())
}

fn remove_farm_ip<E: From<Event>>(
    ctx: &mut Context<E>,
    who: AccountId,
    farm_id: FarmId,
    ip: String,
) -> Result<(), Error> {
    let mut farm = owned_farm(ctx, &who, farm_id)?;
    if let Some(id) = farm
        .public_ips
        .iter()
        .find(|p| p.ip == ip)
        .and_then(|p| p.reservation)
    {
        return Err(Error::IpInUse {
            ip,
            reservation: id,
        });
    }
    let before = farm.public_ips.len();
    farm.public_ips.retain(|p| p.ip != ip);
    if farm.public_ips.len() == before {
        return Err(Error::UnknownIp(ip));
    }
    ctx.overlay.put_encoded(farm_key(farm_id), &farm);
    ctx.deposit_event(Event::FarmIpRemoved { farm_id, ip });
    Ok(())
}

/// Gives `reservation`'s public IPs of farm `farm_id` back (those listed in `release`), then
/// assigns it `count` more free ones, with one read and one write of the farm whatever the
/// numbers; `None` (and nothing changed) if the farm has not that many free.
pub fn reassign_ips<E>(
    ctx: &mut Context<E>,
    farm_id: FarmId,
    reservation: u64,
    release: &[String],
    count: usize,
) -> Option<Vec<PublicIp>> {
    let mut farm = farm(ctx, farm_id)?;
    for p in farm.public_ips.iter_mut() {
        if p.reservation == Some(reservation) && release.contains(&p.ip) {
            p.reservation = None;
        }
    }
    let mut assigned = Vec::with_capacity(count);
    for p in farm.public_ips.iter_mut() {
        if assigned.len() == count {
            break;
        }
        if p.reservation.is_none() {
            p.reservation = Some(reservation);
            assigned.push(p.clone());
        }
    }
    if assigned.len() < count {
        return None;
    }
    ctx.overlay.put_encoded(farm_key(farm_id), &farm);
    Some(assigned)
}

/// Genesis or [`Call::AllowNode`]: the farm's consent for one node key.
pub fn allow_node<E: From<Event>>(
    ctx: &mut Context<E>,
    who: AccountId,
    farm_id: FarmId,
    account: AccountId,
) -> Result<(), Error> {
    owned_farm(ctx, &who, farm_id)?;
    ctx.overlay.put(allowed_node_key(farm_id, &account), vec![]);
    ctx.deposit_event(Event::NodeAllowed { farm_id, account });
    Ok(())
}

fn disallow_node<E: From<Event>>(
    ctx: &mut Context<E>,
    who: AccountId,
    farm_id: FarmId,
    account: AccountId,
) -> Result<(), Error> {
    owned_farm(ctx, &who, farm_id)?;
    if !node_allowed(ctx, farm_id, &account) {
        return Err(Error::UnknownAllowance);
    }
    ctx.overlay.delete(allowed_node_key(farm_id, &account));
    ctx.deposit_event(Event::NodeDisallowed { farm_id, account });
    Ok(())
}

// ---- nodes ----

fn check_node_info<E>(
    ctx: &Context<E>,
    resources: &Resources,
    location: &Location,
    public_config: &Option<PublicConfig>,
) -> Result<(), Error> {
    if resources.cru == 0 || resources.mru < GIB {
        return Err(Error::InvalidResources);
    }
    if !resources.fits_in(&config(ctx).max_node_resources) {
        return Err(Error::ResourcesAboveLimit);
    }
    let short = |s: &str| s.len() <= MAX_FIELD_LEN && !s.chars().any(char::is_control);
    if ![
        &location.country,
        &location.city,
        &location.latitude,
        &location.longitude,
    ]
    .iter()
    .all(|s| short(s))
    {
        return Err(Error::InvalidNodeInfo);
    }
    if let Some(config) = public_config {
        let net = Cidr::parse(&config.ipv4).ok_or(Error::InvalidNodeInfo)?;
        let gw: IpAddr = config.gw4.parse().map_err(|_| Error::InvalidNodeInfo)?;
        if !net.addr.is_ipv4() || !net.contains(&gw) {
            return Err(Error::InvalidNodeInfo);
        }
        if let Some(v6) = &config.ipv6 {
            Cidr::parse(v6)
                .filter(|c| c.addr.is_ipv6())
                .ok_or(Error::InvalidNodeInfo)?;
        }
        if let Some(domain) = &config.domain {
            if domain.is_empty() || !short(domain) {
                return Err(Error::InvalidNodeInfo);
            }
        }
    }
    Ok(())
}

pub fn register_node<E: From<Event>>(
    ctx: &mut Context<E>,
    who: AccountId,
    farm_id: FarmId,
    resources: Resources,
    location: Location,
    public_config: Option<PublicConfig>,
) -> Result<NodeId, Error> {
    let twin_id = pallet_twins::twin_id_of(ctx, &who).ok_or(Error::NoTwin)?;
    if let Some(id) = node_id_of(ctx, &who) {
        return Err(Error::AlreadyRegistered(id));
    }
    if farm(ctx, farm_id).is_none() {
        return Err(Error::UnknownFarm(farm_id));
    }
    if !node_allowed(ctx, farm_id, &who) {
        return Err(Error::NodeNotAllowed);
    }
    check_node_info(ctx, &resources, &location, &public_config)?;
    let mut nodes = farm_nodes(ctx, farm_id);
    if nodes.len() >= MAX_FARM_NODES {
        return Err(Error::FarmFull);
    }
    ctx.overlay.delete(allowed_node_key(farm_id, &who));
    let id = next_node_id(ctx);
    ctx.overlay.put_encoded(next_node_id_key(), &(id + 1));
    ctx.overlay.put_encoded(node_by_account_key(&who), &id);
    nodes.push(id);
    ctx.overlay.put_encoded(farm_nodes_key(farm_id), &nodes);
    put_node(
        ctx,
        &Node {
            id,
            farm_id,
            twin_id,
            account: who,
            resources,
            location,
            public_config,
            status: NodeStatus::Standby,
            created_at: pallet_system::block_number(ctx),
        },
    );
    pallet_twins::add_reference(ctx, twin_id);
    ctx.deposit_event(Event::NodeRegistered {
        id,
        farm_id,
        account: who,
    });
    Ok(id)
}

fn update_node<E: From<Event>>(
    ctx: &mut Context<E>,
    who: AccountId,
    resources: Resources,
    location: Location,
    public_config: Option<PublicConfig>,
) -> Result<(), Error> {
    let id = node_id_of(ctx, &who).ok_or(Error::NotANode)?;
    let mut node = node(ctx, id).ok_or(Error::UnknownNode(id))?;
    check_node_info(ctx, &resources, &location, &public_config)?;
    if !used(ctx, id).fits_in(&usable_capacity(&resources)) {
        return Err(Error::ResourcesBelowReserved);
    }
    node.resources = resources;
    node.location = location;
    node.public_config = public_config;
    put_node(ctx, &node);
    ctx.deposit_event(Event::NodeUpdated { id });
    Ok(())
}

/// Deletes the node (after checking the caller: nothing else is read or written before), and
/// freezes its up clock at the current block time so its reservations, which the runtime ends
/// over the next blocks, accrue nothing after this block. The health record goes with
/// [`forget_health`] once they have all ended.
fn delete_node<E: From<Event>>(
    ctx: &mut Context<E>,
    who: AccountId,
    node_id: NodeId,
) -> Result<(), Error> {
    let node = node(ctx, node_id).ok_or(Error::UnknownNode(node_id))?;
    let farm_owner = farm(ctx, node.farm_id).map(|f| f.owner);
    if node.account != who && farm_owner != Some(who) {
        return Err(Error::NotNodeOrFarmer);
    }
    let mut nodes = farm_nodes(ctx, node.farm_id);
    nodes.retain(|n| *n != node_id);
    ctx.overlay
        .put_encoded(farm_nodes_key(node.farm_id), &nodes);
    ctx.overlay.delete(node_key(node_id));
    ctx.overlay.delete(node_by_account_key(&node.account));
    let frozen = NodeHealth {
        up_clock_ms: node_up_clock(ctx, node_id),
        ..NodeHealth::default()
    };
    put_health(ctx, node_id, &frozen);
    pallet_twins::remove_reference(ctx, node.twin_id);
    ctx.deposit_event(Event::NodeDeleted { id: node_id });
    Ok(())
}
