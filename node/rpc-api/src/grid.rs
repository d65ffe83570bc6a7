//! `grid_*`: typed reads of the grid — twins, farms, nodes, capacity, reservations — and the
//! snapshot a node's agent reconciles from.
//!
//! Every method takes an optional block hash `at` (default: the best block, which is final: the
//! chain has instant finality) and answers from that block's state. Lists are paged with `start`
//! (an id, inclusive) and `limit` (at most [`MAX_PAGE`]). An unknown `at` is error
//! [`error_codes::UNKNOWN_BLOCK`](crate::error_codes::UNKNOWN_BLOCK); a malformed address or a
//! limit above the maximum is [`error_codes::INVALID_PARAMS`](crate::error_codes::INVALID_PARAMS).

use crate::RpcResult;
use gridchain_primitives::{block::BlockNumber, Hash, Header};
use gridchain_runtime::{
    reservations::{self, Reservation, ReservationId},
    tfgrid::{self, Farm, FarmId, Node, NodeHealth, NodeId, NodeStatus, PricingPolicy, Resources},
    timestamp,
    twins::{Twin, TwinId},
    Context,
};
use jsonrpsee::proc_macros::rpc;
use serde::{Deserialize, Serialize};

/// Largest page of a list.
pub const MAX_PAGE: u32 = 1_000;

/// A node's capacity: what it declared, what Zero-OS keeps, what reservations hold, what is left.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeCapacity {
    pub total: Resources,
    pub system_reserve: Resources,
    pub reserved: Resources,
    pub free: Resources,
}

/// A node with its live status (at the block's time), health and capacity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeInfo {
    pub node: Node,
    pub status: NodeStatus,
    pub health: NodeHealth,
    pub capacity: NodeCapacity,
}

/// Which nodes `grid_listNodes` returns; absent fields do not filter.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct NodeFilter {
    pub farm_id: Option<FarmId>,
    pub status: Option<NodeStatus>,
    /// Only nodes whose free capacity is at least this in every component.
    pub min_free: Option<Resources>,
    pub start: Option<NodeId>,
    pub limit: Option<u32>,
}

/// Everything a node's agent needs, at one block: the node and every reservation it hosts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeSnapshot {
    pub at: Hash,
    pub number: BlockNumber,
    pub timestamp_ms: u64,
    pub node: NodeInfo,
    pub reservations: Vec<Reservation>,
    /// The meshes the reservations take part in: every member's subnet, WireGuard key and
    /// endpoint, and the owners' own peers, which the node configures as its WireGuard peers.
    #[serde(default)]
    pub meshes: Vec<reservations::Mesh>,
}

/// Node `id` with its live status, health and capacity, from `ctx`'s state.
pub fn node_info(ctx: &Context, id: NodeId) -> Option<NodeInfo> {
    let node = tfgrid::node(ctx, id)?;
    let health = tfgrid::health(ctx, id);
    let now = timestamp::now(ctx);
    let status = tfgrid::effective_status(&health, now, tfgrid::config(ctx).capacity_period_ms);
    let capacity = capacity_of(ctx, &node);
    Some(NodeInfo {
        node,
        status,
        health,
        capacity,
    })
}

pub fn capacity_of(ctx: &Context, node: &tfgrid::Node) -> NodeCapacity {
    let reserved = tfgrid::used(ctx, node.id);
    NodeCapacity {
        total: node.resources,
        system_reserve: tfgrid::system_reserve(&node.resources),
        reserved,
        free: tfgrid::usable_capacity(&node.resources).saturating_sub(&reserved),
    }
}

/// The reservations of `ids` that exist in `ctx`'s state.
pub fn reservations_of(ctx: &Context, ids: Vec<ReservationId>) -> Vec<Reservation> {
    ids.into_iter()
        .filter_map(|id| reservations::reservation(ctx, id))
        .collect()
}

/// `grid_nodeSnapshot` of `node_id` from the state after `header`: the server answers with it,
/// and the agent rebuilds it from proven state values to check the server's answer.
pub fn build_node_snapshot(
    ctx: &Context,
    header: &Header,
    node_id: NodeId,
) -> Option<NodeSnapshot> {
    let node = node_info(ctx, node_id)?;
    let hosted = reservations_of(ctx, reservations::by_node(ctx, node_id));
    Some(NodeSnapshot {
        at: header.hash(),
        number: header.number,
        timestamp_ms: timestamp::now(ctx),
        node,
        meshes: reservations::mesh::meshes_of(ctx, &hosted),
        reservations: hosted,
    })
}

#[rpc(server, client)]
pub trait GridApi {
    #[method(name = "grid_getTwin")]
    async fn twin(&self, id: TwinId, at: Option<Hash>) -> RpcResult<Option<Twin>>;

    #[method(name = "grid_getTwinByAccount")]
    async fn twin_by_account(&self, address: String, at: Option<Hash>) -> RpcResult<Option<Twin>>;

    #[method(name = "grid_getTwinByName")]
    async fn twin_by_name(&self, name: String, at: Option<Hash>) -> RpcResult<Option<Twin>>;

    #[method(name = "grid_listTwins")]
    async fn list_twins(
        &self,
        start: Option<TwinId>,
        limit: Option<u32>,
        at: Option<Hash>,
    ) -> RpcResult<Vec<Twin>>;

    #[method(name = "grid_getFarm")]
    async fn farm(&self, id: FarmId, at: Option<Hash>) -> RpcResult<Option<Farm>>;

    #[method(name = "grid_listFarms")]
    async fn list_farms(
        &self,
        start: Option<FarmId>,
        limit: Option<u32>,
        at: Option<Hash>,
    ) -> RpcResult<Vec<Farm>>;

    #[method(name = "grid_pricingPolicies")]
    async fn pricing_policies(&self, at: Option<Hash>) -> RpcResult<Vec<PricingPolicy>>;

    #[method(name = "grid_getNode")]
    async fn node(&self, id: NodeId, at: Option<Hash>) -> RpcResult<Option<NodeInfo>>;

    /// The node registered by `address` (its own key).
    #[method(name = "grid_getNodeByAccount")]
    async fn node_by_account(
        &self,
        address: String,
        at: Option<Hash>,
    ) -> RpcResult<Option<NodeInfo>>;

    #[method(name = "grid_listNodes")]
    async fn list_nodes(&self, filter: NodeFilter, at: Option<Hash>) -> RpcResult<Vec<NodeInfo>>;

    #[method(name = "grid_nodeCapacity")]
    async fn node_capacity(&self, id: NodeId, at: Option<Hash>) -> RpcResult<Option<NodeCapacity>>;

    #[method(name = "grid_getReservation")]
    async fn reservation(
        &self,
        id: ReservationId,
        at: Option<Hash>,
    ) -> RpcResult<Option<Reservation>>;

    /// Every reservation of an account, deleted ones included, oldest first.
    #[method(name = "grid_reservationsByOwner")]
    async fn reservations_by_owner(
        &self,
        address: String,
        at: Option<Hash>,
    ) -> RpcResult<Vec<Reservation>>;

    /// The reservations a node hosts (not deleted).
    #[method(name = "grid_reservationsByNode")]
    async fn reservations_by_node(
        &self,
        node_id: NodeId,
        at: Option<Hash>,
    ) -> RpcResult<Vec<Reservation>>;

    /// The mesh (a private network across nodes) `network` of owner `address`: its members,
    /// their nodes' WireGuard keys and endpoints, and the owner's peers; `null` if none.
    #[method(name = "grid_getMesh")]
    async fn mesh(
        &self,
        address: String,
        network: String,
        at: Option<Hash>,
    ) -> RpcResult<Option<reservations::Mesh>>;

    /// The agent's view: node `node_id` and all it hosts at block `at` (default: best = final).
    /// `null` if the node does not exist there.
    #[method(name = "grid_nodeSnapshot")]
    async fn node_snapshot(
        &self,
        node_id: NodeId,
        at: Option<Hash>,
    ) -> RpcResult<Option<NodeSnapshot>>;
}
