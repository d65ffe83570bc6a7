//! # gridchain RPC server
//!
//! Implements the `*Server` traits of `gridchain-rpc-api` over a node's [`Storage`] and
//! [`TxPool`], and starts one `jsonrpsee` server that speaks HTTP and WebSocket on the same port.
//!
//! Reads are answered from storage on a blocking thread (RocksDB calls block). Submissions are
//! decoded on the RPC worker that received them and pooled by one submission thread in batches
//! of whatever has queued up, their signatures checked together (`submit.rs`). Head
//! subscriptions read a broadcast channel the block producer feeds; a subscriber that falls behind is caught up from
//! storage, so `chain_subscribeFinalizedHeads` never skips a block.

mod batches;
pub mod cors;
mod errors;
mod grid;
mod submit;

use errors::{internal, invalid_params};
use gridchain_primitives::{
    block::BlockNumber, decode_untrusted, hash::encode_hex, AccountId, Bytes, ChainContext, Hash,
    Header, StateRead,
};
use gridchain_rpc_api::*;
use gridchain_runtime::{balances, system, Context, Event, EventRecord, Extrinsic};
use gridchain_storage::Storage;
use gridchain_txpool::{TxPool, TxStatus};
use jsonrpsee::{
    core::{async_trait, SubscriptionResult},
    server::{PendingSubscriptionSink, Server, ServerConfig, ServerHandle, SubscriptionMessage},
    RpcModule,
};
use parity_scale_codec::Encode;
use std::{net::SocketAddr, sync::Arc};
use tokio::sync::broadcast;

/// What the RPC server needs from the node.
#[derive(Clone)]
pub struct RpcContext {
    pub storage: Arc<Storage>,
    pub pool: Arc<TxPool>,
    pub chain: ChainContext,
    pub chain_name: String,
    pub node_name: String,
    pub properties: ChainProperties,
    /// Every committed header; every committed block is final (BFT consensus decided it).
    pub heads: broadcast::Sender<Header>,
    /// Peers and sync state for `system_health`.
    pub health: Arc<dyn NodeHealth>,
    /// Called with the SCALE bytes of every transaction a client submitted and the pool
    /// accepted: the node gossips it to its peers.
    pub on_submitted: TxSubmitted,
}

/// See [`RpcContext::on_submitted`].
pub type TxSubmitted = Arc<dyn Fn(&[u8]) + Send + Sync>;

/// What `system_health` reports, from the network and consensus.
pub trait NodeHealth: Send + Sync {
    fn peers(&self) -> u32;
    fn is_syncing(&self) -> bool;
    /// True when the chain has other validators, so a node alone cannot make progress.
    fn should_have_peers(&self) -> bool;
    fn peer_list(&self) -> Vec<PeerInfo>;
}

pub struct RpcServer {
    handle: ServerHandle,
    submitter: submit::Submitter,
    pub local_addr: SocketAddr,
}

impl RpcServer {
    /// Stops serving, then ends the submission threads; after this the server holds no storage.
    pub async fn stop(self) {
        let _ = self.handle.stop();
        self.handle.stopped().await;
        let submitter = self.submitter;
        let _ = tokio::task::spawn_blocking(move || submitter.stop()).await;
    }
}

/// Starts the JSON-RPC server on `addr` (HTTP and WebSocket), for browser pages of the origins
/// `cors` allows.
pub async fn start(
    addr: SocketAddr,
    ctx: RpcContext,
    cors: cors::Cors,
) -> std::io::Result<RpcServer> {
    // A full block (16 MiB of extrinsics) as hex JSON.
    const MAX_RESPONSE_BYTES: u32 = 64 * 1024 * 1024;
    let config = ServerConfig::builder()
        .max_request_body_size(4 * 1024 * 1024)
        .max_response_body_size(MAX_RESPONSE_BYTES)
        .max_connections(1_000)
        .set_batch_request_config(jsonrpsee::server::BatchRequestConfig::Limit(
            batches::MAX_BATCH_LEN,
        ))
        .build();
    let middleware =
        jsonrpsee::server::middleware::rpc::RpcServiceBuilder::new().layer_fn(|service| {
            batches::ConcurrentBatches {
                service,
                max_response_bytes: MAX_RESPONSE_BYTES as usize,
            }
        });
    let server = Server::builder()
        .set_config(config)
        .set_http_middleware(tower::ServiceBuilder::new().layer(cors::OriginLayer(cors)))
        .set_rpc_middleware(middleware)
        .build(addr)
        .await?;
    let local_addr = server.local_addr()?;
    let ctx = Arc::new(ctx);
    let submitter = submit::Submitter::start(ctx.clone());
    let handle = server.start(module(Node(ctx, submitter.clone())));
    Ok(RpcServer {
        handle,
        submitter,
        local_addr,
    })
}

/// All RPC methods in one module.
fn module(node: Node) -> RpcModule<()> {
    let mut module = RpcModule::new(());
    module
        .merge(ChainApiServer::into_rpc(node.clone()))
        .expect("method names are unique");
    module
        .merge(AuthorApiServer::into_rpc(node.clone()))
        .expect("method names are unique");
    module
        .merge(StateApiServer::into_rpc(node.clone()))
        .expect("method names are unique");
    module
        .merge(SystemApiServer::into_rpc(node.clone()))
        .expect("method names are unique");
    module
        .merge(GridApiServer::into_rpc(node.clone()))
        .expect("method names are unique");
    module
        .merge(GridchainApiServer::into_rpc(node))
        .expect("method names are unique");
    module
}

fn json_message<T: serde::Serialize>(value: &T) -> Result<SubscriptionMessage, serde_json::Error> {
    serde_json::value::to_raw_value(value).map(SubscriptionMessage::from)
}

#[derive(Clone)]
struct Node(Arc<RpcContext>, submit::Submitter);

impl Node {
    /// Runs a storage read on the blocking pool.
    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&RpcContext) -> Result<T, gridchain_storage::StorageError> + Send + 'static,
    ) -> RpcResult<T> {
        let ctx = self.0.clone();
        tokio::task::spawn_blocking(move || f(&ctx))
            .await
            .map_err(|e| internal(format!("task failed: {e}")))?
            .map_err(|e| internal(e.to_string()))
    }

    fn parse_address(&self, address: &str) -> RpcResult<AccountId> {
        AccountId::from_address_with_prefix(address, self.0.properties.address_prefix)
            .map_err(|e| invalid_params(format!("invalid address {address:?}: {e}")))
    }

    fn decode_extrinsic(bytes: &Bytes) -> RpcResult<Extrinsic> {
        decode_untrusted("extrinsic", &bytes.0).map_err(|e| {
            jsonrpsee::types::ErrorObject::owned(error_codes::BAD_FORMAT, e.to_string(), None::<()>)
        })
    }

    /// Validates and pools an extrinsic (with whatever other submissions are waiting).
    async fn submit(&self, bytes: Bytes) -> RpcResult<Hash> {
        let xt = Self::decode_extrinsic(&bytes)?;
        self.1.submit(xt, bytes.0).await
    }

    /// Streams headers to `sink`: first `start` (if any), then every newer committed header in
    /// order, filling gaps from storage.
    async fn stream_heads(&self, pending: PendingSubscriptionSink) -> SubscriptionResult {
        let mut rx = self.0.heads.subscribe();
        let sink = pending.accept().await?;
        let storage = self.0.storage.clone();
        let mut next: Option<u64> = None;
        if let Some(best) = self.read(|c| c.storage.best_header()).await? {
            next = Some(best.number + 1);
            sink.send(json_message(&best)?).await?;
        }
        loop {
            let head = match rx.recv().await {
                Ok(h) => h,
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    // Fell behind the producer: continue from storage below.
                    match storage.best_header()? {
                        Some(h) => h,
                        None => continue,
                    }
                }
                Err(broadcast::error::RecvError::Closed) => return Ok(()),
            };
            let from = next.unwrap_or(head.number);
            for number in from..head.number {
                let Some(hash) = storage.hash_of(number)? else {
                    continue;
                };
                if let Some(header) = storage.header(&hash)? {
                    sink.send(json_message(&header)?).await?;
                }
            }
            if head.number >= from {
                sink.send(json_message(&head)?).await?;
                next = Some(head.number + 1);
            }
        }
    }
}

#[async_trait]
impl ChainApiServer for Node {
    async fn header(&self, hash: Option<Hash>) -> RpcResult<Option<Header>> {
        self.read(move |c| match hash {
            Some(h) => c.storage.header(&h),
            None => c.storage.best_header(),
        })
        .await
    }

    async fn block(&self, hash: Option<Hash>) -> RpcResult<Option<SignedBlock>> {
        let block = self
            .read(move |c| {
                let hash = match hash {
                    Some(h) => Some(h),
                    None => c.storage.best_hash()?,
                };
                match hash {
                    Some(h) => c.storage.block(&h),
                    None => Ok(None),
                }
            })
            .await?;
        Ok(block.map(|b| SignedBlock {
            block: BlockJson {
                header: b.header,
                extrinsics: b.extrinsics.iter().map(|x| Bytes(x.encode())).collect(),
            },
        }))
    }

    async fn block_hash(&self, number: Option<u64>) -> RpcResult<Option<Hash>> {
        self.read(move |c| match number {
            Some(n) => c.storage.hash_of(n),
            None => c.storage.best_hash(),
        })
        .await
    }

    async fn finalized_head(&self) -> RpcResult<Hash> {
        self.read(|c| c.storage.finalized_hash())
            .await?
            .ok_or_else(|| internal("no finalized block"))
    }

    async fn subscribe_new_heads(&self, pending: PendingSubscriptionSink) -> SubscriptionResult {
        self.stream_heads(pending).await
    }

    async fn subscribe_finalized_heads(
        &self,
        pending: PendingSubscriptionSink,
    ) -> SubscriptionResult {
        // Every committed block is final: a block is only committed once consensus decided it.
        self.stream_heads(pending).await
    }
}

#[async_trait]
impl AuthorApiServer for Node {
    async fn submit_extrinsic(&self, extrinsic: Bytes) -> RpcResult<Hash> {
        self.submit(extrinsic).await
    }

    async fn submit_and_watch_extrinsic(
        &self,
        pending: PendingSubscriptionSink,
        extrinsic: Bytes,
    ) -> SubscriptionResult {
        let hash = match self.submit(extrinsic).await {
            Ok(hash) => hash,
            Err(e) => {
                pending.reject(e).await;
                return Ok(());
            }
        };
        // If it already left the pool (included in the instant since), report it from storage.
        let watch = self.0.pool.watch(&hash);
        let sink = pending.accept().await?;
        let Some(mut updates) = watch else {
            if let Some(loc) = self.0.storage.tx_location(&hash)? {
                if let Some(block) = self.0.storage.hash_of(loc.block_number)? {
                    sink.send(json_message(&TransactionStatus::InBlock(block))?)
                        .await?;
                    sink.send(json_message(&TransactionStatus::Finalized(block))?)
                        .await?;
                }
            }
            return Ok(());
        };
        sink.send(json_message(&TransactionStatus::Ready)?).await?;
        while let Some(status) = updates.recv().await {
            let (json, last) = match status {
                TxStatus::Future => (TransactionStatus::Future, false),
                TxStatus::Ready => (TransactionStatus::Ready, false),
                TxStatus::InBlock(h) => (TransactionStatus::InBlock(h), false),
                TxStatus::Finalized(h) => (TransactionStatus::Finalized(h), true),
                TxStatus::Usurped(h) => (TransactionStatus::Usurped(h), true),
                TxStatus::Dropped => (TransactionStatus::Dropped, true),
                TxStatus::Invalid => (TransactionStatus::Invalid, true),
            };
            sink.send(json_message(&json)?).await?;
            if last {
                break;
            }
        }
        Ok(())
    }

    async fn pending_extrinsics(&self) -> RpcResult<Vec<Bytes>> {
        Ok(self
            .0
            .pool
            .pending()
            .iter()
            .map(|t| Bytes(t.xt.encode()))
            .collect())
    }
}

#[async_trait]
impl StateApiServer for Node {
    async fn storage(&self, key: Bytes, at: Option<Hash>) -> RpcResult<Option<Bytes>> {
        // Outer `None`: `at` is not a known block.
        let value = self
            .read(move |c| match at {
                None => c.storage.state(&key.0).map(Some),
                Some(hash) => match c.storage.header(&hash)? {
                    Some(header) => c.storage.state_at(&key.0, header.number).map(Some),
                    None => Ok(None),
                },
            })
            .await?;
        value.map(|v| v.map(Bytes)).ok_or_else(|| unknown_block(at))
    }

    async fn read_proof(&self, keys: Vec<Bytes>, at: Option<Hash>) -> RpcResult<ReadProofJson> {
        if keys.len() > 1_000 {
            return Err(invalid_params("at most 1000 keys per read proof"));
        }
        let result = self
            .read(move |c| {
                let hash = match at {
                    Some(h) => h,
                    None => c.storage.best_hash()?.unwrap_or(Hash::ZERO),
                };
                let Some(header) = c.storage.header(&hash)? else {
                    return Ok(None);
                };
                let proofs = keys
                    .iter()
                    .map(|k| {
                        c.storage
                            .read_proof(&k.0, header.number)
                            .map(|p| Bytes(p.encode()))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(Some(ReadProofJson {
                    at: hash,
                    proof: proofs,
                }))
            })
            .await?;
        result.ok_or_else(|| unknown_block(at))
    }

    async fn runtime_version(&self) -> RpcResult<RuntimeVersion> {
        Ok(RuntimeVersion {
            spec_name: "gridchain".into(),
            spec_version: self.0.chain.spec_version,
        })
    }
}

fn unknown_block(at: Option<Hash>) -> jsonrpsee::types::ErrorObjectOwned {
    let shown = at.map_or_else(|| "best".to_string(), |h| h.to_string());
    jsonrpsee::types::ErrorObject::owned(
        error_codes::UNKNOWN_BLOCK,
        format!("unknown block {shown}"),
        None::<()>,
    )
}

#[async_trait]
impl SystemApiServer for Node {
    async fn health(&self) -> RpcResult<Health> {
        let health = &self.0.health;
        Ok(Health {
            peers: health.peers(),
            is_syncing: health.is_syncing(),
            should_have_peers: health.should_have_peers(),
        })
    }

    async fn peers(&self) -> RpcResult<Vec<PeerInfo>> {
        Ok(self.0.health.peer_list())
    }

    async fn chain(&self) -> RpcResult<String> {
        Ok(self.0.chain_name.clone())
    }

    async fn name(&self) -> RpcResult<String> {
        Ok(self.0.node_name.clone())
    }

    async fn version(&self) -> RpcResult<String> {
        Ok(env!("CARGO_PKG_VERSION").to_string())
    }

    async fn properties(&self) -> RpcResult<ChainProperties> {
        Ok(self.0.properties.clone())
    }

    async fn account_next_index(&self, address: String) -> RpcResult<u64> {
        let who = self.parse_address(&address)?;
        let state_nonce = self
            .read(move |c| {
                let state: &dyn StateRead = &*c.storage;
                let ctx: Context = Context::new(gridchain_primitives::Overlay::new(state));
                Ok(system::nonce(&ctx, &who))
            })
            .await?;
        Ok(self.0.pool.next_nonce(&who, state_nonce))
    }
}

#[async_trait]
impl GridchainApiServer for Node {
    async fn account(&self, address: String) -> RpcResult<AccountInfo> {
        let who = self.parse_address(&address)?;
        self.read(move |c| {
            let at = c.storage.best_hash()?.unwrap_or(Hash::ZERO);
            let state: &dyn StateRead = &*c.storage;
            let ctx: Context = Context::new(gridchain_primitives::Overlay::new(state));
            let data = balances::account(&ctx, &who);
            Ok(AccountInfo {
                address: who,
                free: data.free,
                reserved: data.reserved,
                nonce: system::nonce(&ctx, &who),
                at,
            })
        })
        .await
    }

    async fn commit_certificate(
        &self,
        number: BlockNumber,
    ) -> RpcResult<Option<gridchain_primitives::finality::CommitCertificate>> {
        self.read(move |c| c.storage.certificate(number)).await
    }

    async fn validators(&self, number: Option<BlockNumber>) -> RpcResult<ValidatorSetInfo> {
        let at = match number {
            Some(0) => return Err(invalid_params("the genesis block has no signers")),
            Some(n) => Some(
                self.read(move |c| c.storage.hash_of(n - 1))
                    .await?
                    .ok_or_else(|| unknown_block(None))?,
            ),
            None => None,
        };
        self.grid_query(at, move |ctx, header| {
            use gridchain_runtime::validators;
            let height = number.unwrap_or(header.number + 1);
            Ok(ValidatorSetInfo {
                height,
                validators: validators::set_for_height(ctx, height),
                scheduled: validators::scheduled_set(ctx).map(|s| ScheduledValidators {
                    effective_height: s.since,
                    validators: s.validators,
                }),
            })
        })
        .await
    }

    async fn extrinsic(&self, hash: Hash) -> RpcResult<Option<ExtrinsicInfo>> {
        self.read(move |c| {
            let Some(loc) = c.storage.tx_location(&hash)? else {
                return Ok(None);
            };
            let Some(block_hash) = c.storage.hash_of(loc.block_number)? else {
                return Ok(None);
            };
            let Some(body) = c.storage.body(&block_hash)? else {
                return Ok(None);
            };
            let Some(xt) = body.into_iter().nth(loc.index as usize) else {
                return Ok(None);
            };
            let events: Vec<EventRecord> = match c
                .storage
                .state_at(&system::events_key(), loc.block_number)?
            {
                Some(bytes) => decode_untrusted("events", &bytes)
                    .map_err(|e| gridchain_storage::StorageError::Corrupt(e.to_string()))?,
                None => vec![],
            };
            let events: Vec<EventRecord> = events
                .into_iter()
                .filter(|r| r.phase == system::Phase::ApplyExtrinsic(loc.index))
                .collect();
            let (success, error, fee) = events
                .iter()
                .find_map(|r| match &r.event {
                    Event::System(system::Event::ExtrinsicSuccess { fee }) => {
                        Some((true, None, *fee))
                    }
                    Event::System(system::Event::ExtrinsicFailed { error, fee }) => {
                        Some((false, Some(error.clone()), *fee))
                    }
                    _ => None,
                })
                .ok_or_else(|| {
                    gridchain_storage::StorageError::Corrupt(format!(
                        "extrinsic {} has no outcome event",
                        encode_hex(&hash.0)
                    ))
                })?;
            Ok(Some(ExtrinsicInfo {
                hash,
                block_hash,
                block_number: loc.block_number,
                index: loc.index,
                signer: xt.signer,
                nonce: xt.nonce,
                tip: xt.tip,
                call: xt.call,
                success,
                error,
                fee,
                events,
            }))
        })
        .await
    }
}
