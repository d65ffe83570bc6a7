//! `grid_*` methods: the runtime's own storage readers (the pallets' getters) run against the
//! state of the requested block, so the RPC never decodes storage by hand.

use crate::{errors::invalid_params, internal, unknown_block, Node};
use gridchain_primitives::{block::BlockNumber, Hash, Header, Overlay, StateRead};
use gridchain_rpc_api::{
    grid::{build_node_snapshot, capacity_of, node_info, reservations_of, MAX_PAGE},
    GridApiServer, NodeCapacity, NodeFilter, NodeInfo, NodeSnapshot, RpcResult,
};
use gridchain_runtime::{
    reservations::{self, Reservation, ReservationId},
    tfgrid::{self, Farm, FarmId, NodeId, PricingPolicy},
    twins::{self, Twin, TwinId},
    Context,
};
use gridchain_storage::{Storage, StorageError};
use jsonrpsee::core::async_trait;
use std::{cell::RefCell, sync::Arc};

/// State after block `number`; remembers the first storage error instead of panicking.
struct StateAt {
    storage: Arc<Storage>,
    number: BlockNumber,
    error: RefCell<Option<StorageError>>,
}

impl StateRead for StateAt {
    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        match self.storage.state_at(key, self.number) {
            Ok(value) => value,
            Err(e) => {
                self.error.borrow_mut().get_or_insert(e);
                None
            }
        }
    }
}

fn page(start: Option<u32>, limit: Option<u32>, end: u32) -> RpcResult<std::ops::Range<u32>> {
    let limit = limit.unwrap_or(100);
    if limit > MAX_PAGE {
        return Err(invalid_params(format!("limit is at most {MAX_PAGE}")));
    }
    let start = start.unwrap_or(1).max(1);
    Ok(start..end.min(start.saturating_add(limit)).max(start))
}

impl Node {
    /// Runs `f` on the state after block `at` (default: best), on the blocking pool.
    pub(crate) async fn grid_query<T: Send + 'static>(
        &self,
        at: Option<Hash>,
        f: impl FnOnce(&Context, &Header) -> RpcResult<T> + Send + 'static,
    ) -> RpcResult<T> {
        let storage = self.0.storage.clone();
        tokio::task::spawn_blocking(move || {
            let header = match at {
                Some(hash) => storage.header(&hash),
                None => storage.best_header(),
            }
            .map_err(|e| internal(e.to_string()))?
            .ok_or_else(|| unknown_block(at))?;
            let state = StateAt {
                storage: storage.clone(),
                number: header.number,
                error: RefCell::new(None),
            };
            let ctx: Context = Context::new(Overlay::new(&state));
            let result = f(&ctx, &header);
            if let Some(e) = state.error.take() {
                return Err(internal(e.to_string()));
            }
            result
        })
        .await
        .map_err(|e| internal(format!("task failed: {e}")))?
    }
}

#[async_trait]
impl GridApiServer for Node {
    async fn twin(&self, id: TwinId, at: Option<Hash>) -> RpcResult<Option<Twin>> {
        self.grid_query(at, move |ctx, _| Ok(twins::twin(ctx, id)))
            .await
    }

    async fn twin_by_account(&self, address: String, at: Option<Hash>) -> RpcResult<Option<Twin>> {
        let who = self.parse_address(&address)?;
        self.grid_query(at, move |ctx, _| Ok(twins::twin_of(ctx, &who)))
            .await
    }

    async fn twin_by_name(&self, name: String, at: Option<Hash>) -> RpcResult<Option<Twin>> {
        self.grid_query(at, move |ctx, _| Ok(twins::twin_by_name(ctx, &name)))
            .await
    }

    async fn list_twins(
        &self,
        start: Option<TwinId>,
        limit: Option<u32>,
        at: Option<Hash>,
    ) -> RpcResult<Vec<Twin>> {
        self.grid_query(at, move |ctx, _| {
            Ok(page(start, limit, twins::next_id(ctx))?
                .filter_map(|id| twins::twin(ctx, id))
                .collect())
        })
        .await
    }

    async fn farm(&self, id: FarmId, at: Option<Hash>) -> RpcResult<Option<Farm>> {
        self.grid_query(at, move |ctx, _| Ok(tfgrid::farm(ctx, id)))
            .await
    }

    async fn list_farms(
        &self,
        start: Option<FarmId>,
        limit: Option<u32>,
        at: Option<Hash>,
    ) -> RpcResult<Vec<Farm>> {
        self.grid_query(at, move |ctx, _| {
            Ok(page(start, limit, tfgrid::next_farm_id(ctx))?
                .filter_map(|id| tfgrid::farm(ctx, id))
                .collect())
        })
        .await
    }

    async fn pricing_policies(&self, at: Option<Hash>) -> RpcResult<Vec<PricingPolicy>> {
        self.grid_query(at, move |ctx, _| {
            Ok((1..tfgrid::next_pricing_policy_id(ctx))
                .filter_map(|id| tfgrid::pricing_policy(ctx, id))
                .collect())
        })
        .await
    }

    async fn node(&self, id: NodeId, at: Option<Hash>) -> RpcResult<Option<NodeInfo>> {
        self.grid_query(at, move |ctx, _| Ok(node_info(ctx, id)))
            .await
    }

    async fn node_by_account(
        &self,
        address: String,
        at: Option<Hash>,
    ) -> RpcResult<Option<NodeInfo>> {
        let who = self.parse_address(&address)?;
        self.grid_query(at, move |ctx, _| {
            Ok(tfgrid::node_id_of(ctx, &who).and_then(|id| node_info(ctx, id)))
        })
        .await
    }

    async fn list_nodes(&self, filter: NodeFilter, at: Option<Hash>) -> RpcResult<Vec<NodeInfo>> {
        self.grid_query(at, move |ctx, _| {
            let limit = filter.limit.unwrap_or(100);
            if limit > MAX_PAGE {
                return Err(invalid_params(format!("limit is at most {MAX_PAGE}")));
            }
            let start = filter.start.unwrap_or(1);
            let ids: Vec<NodeId> = match filter.farm_id {
                Some(farm) => tfgrid::farm_nodes(ctx, farm)
                    .into_iter()
                    .filter(|id| *id >= start)
                    .collect(),
                None => (start.max(1)..tfgrid::next_node_id(ctx)).collect(),
            };
            Ok(ids
                .into_iter()
                .filter_map(|id| node_info(ctx, id))
                .filter(|n| filter.status.is_none_or(|s| n.status == s))
                .filter(|n| {
                    filter
                        .min_free
                        .is_none_or(|min| min.fits_in(&n.capacity.free))
                })
                .take(limit as usize)
                .collect())
        })
        .await
    }

    async fn node_capacity(&self, id: NodeId, at: Option<Hash>) -> RpcResult<Option<NodeCapacity>> {
        self.grid_query(at, move |ctx, _| {
            Ok(tfgrid::node(ctx, id).map(|n| capacity_of(ctx, &n)))
        })
        .await
    }

    async fn reservation(
        &self,
        id: ReservationId,
        at: Option<Hash>,
    ) -> RpcResult<Option<Reservation>> {
        self.grid_query(at, move |ctx, _| Ok(reservations::reservation(ctx, id)))
            .await
    }

    async fn reservations_by_owner(
        &self,
        address: String,
        at: Option<Hash>,
    ) -> RpcResult<Vec<Reservation>> {
        let who = self.parse_address(&address)?;
        self.grid_query(at, move |ctx, _| {
            Ok(reservations_of(ctx, reservations::by_owner(ctx, &who)))
        })
        .await
    }

    async fn mesh(
        &self,
        address: String,
        network: String,
        at: Option<Hash>,
    ) -> RpcResult<Option<reservations::Mesh>> {
        let who = self.parse_address(&address)?;
        self.grid_query(at, move |ctx, _| {
            Ok(reservations::mesh::mesh(ctx, &who, &network))
        })
        .await
    }

    async fn reservations_by_node(
        &self,
        node_id: NodeId,
        at: Option<Hash>,
    ) -> RpcResult<Vec<Reservation>> {
        self.grid_query(at, move |ctx, _| {
            Ok(reservations_of(ctx, reservations::by_node(ctx, node_id)))
        })
        .await
    }

    async fn node_snapshot(
        &self,
        node_id: NodeId,
        at: Option<Hash>,
    ) -> RpcResult<Option<NodeSnapshot>> {
        self.grid_query(at, move |ctx, header| {
            Ok(build_node_snapshot(ctx, header, node_id))
        })
        .await
    }
}
