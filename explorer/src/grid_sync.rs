//! Grid snapshots: the twins, farms, nodes and reservations as the node's `grid_*` RPC reports
//! them at one final block, and the validator set (`gridchain_validators`), written into the
//! index in one transaction.
//!
//! The indexer takes a snapshot after a block with a grid call (twins, tfgrid, reservations,
//! capacity) and otherwise at least every [`GRID_SYNC_INTERVAL_MS`] of chain time, because a
//! node's status changes with time alone (a node that misses capacity proofs goes Down). Every
//! snapshot is taken `at` its block's hash, so catching up after an outage samples the past
//! state, not today's. Node status changes and capacity totals accumulate as history for the
//! uptime and capacity charts.

use gridchain_primitives::Hash;
use gridchain_rpc_api::{
    grid::MAX_PAGE, jsonrpsee::ws_client::WsClient, GridApiClient, GridchainApiClient, NodeFilter,
    NodeInfo, ValidatorSetInfo,
};
use gridchain_runtime::{reservations::Reservation, tfgrid::Farm, twins::Twin};

/// Chain time between two snapshots when no grid call happens.
pub const GRID_SYNC_INTERVAL_MS: u64 = 10_000;

/// Pallets whose calls change grid objects (or, for `validators`, the validator set).
pub const GRID_PALLETS: [&str; 5] = ["twins", "tfgrid", "reservations", "capacity", "validators"];

#[derive(Debug, Clone)]
pub struct GridSnapshot {
    pub block_number: u64,
    pub timestamp_ms: u64,
    pub twins: Vec<Twin>,
    pub farms: Vec<Farm>,
    pub nodes: Vec<NodeInfo>,
    pub reservations: Vec<Reservation>,
    /// The set that signs the next block, and the scheduled change.
    pub validators: ValidatorSetInfo,
}

/// Reads the whole grid at block `at`, page by page.
pub async fn fetch(
    client: &WsClient,
    at: Hash,
    block_number: u64,
    timestamp_ms: u64,
) -> Result<GridSnapshot, gridchain_rpc_api::jsonrpsee::core::ClientError> {
    let mut twins: Vec<Twin> = Vec::new();
    loop {
        let start = twins.last().map(|t| t.id + 1);
        let page = client.list_twins(start, Some(MAX_PAGE), Some(at)).await?;
        let done = page.len() < MAX_PAGE as usize;
        twins.extend(page);
        if done {
            break;
        }
    }
    let mut farms: Vec<Farm> = Vec::new();
    loop {
        let start = farms.last().map(|f| f.id + 1);
        let page = client.list_farms(start, Some(MAX_PAGE), Some(at)).await?;
        let done = page.len() < MAX_PAGE as usize;
        farms.extend(page);
        if done {
            break;
        }
    }
    let mut nodes: Vec<NodeInfo> = Vec::new();
    loop {
        let filter = NodeFilter {
            start: nodes.last().map(|n| n.node.id + 1),
            limit: Some(MAX_PAGE),
            ..NodeFilter::default()
        };
        let page = client.list_nodes(filter, Some(at)).await?;
        let done = page.len() < MAX_PAGE as usize;
        nodes.extend(page);
        if done {
            break;
        }
    }
    let mut reservations = Vec::new();
    for info in &nodes {
        reservations.extend(client.reservations_by_node(info.node.id, Some(at)).await?);
    }
    let validators = client.validators(Some(block_number + 1)).await?;
    Ok(GridSnapshot {
        validators,
        block_number,
        timestamp_ms,
        twins,
        farms,
        nodes,
        reservations,
    })
}
