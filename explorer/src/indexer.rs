//! The indexer: follows the chain's final blocks over JSON-RPC and writes them into the
//! [`Store`].
//!
//! ```text
//! connect (ws) ─▶ check the index against the chain (genesis hash, hash of the last indexed block)
//!   ─▶ chain_subscribeFinalizedHeads ─▶ for every head N: index last+1 ..= N in order
//!        per block: chain_getBlockHash ─▶ chain_getBlock ─▶ decode each extrinsic (SCALE)
//!                   ─▶ gridchain_extrinsic per extrinsic (outcome, fee, error, events)
//!                   ─▶ one SQLite transaction ─▶ live update to the web server's subscribers
//!        per batch: gridchain_account for every account the batch touched ─▶ balances
//! disconnect / error ─▶ retry with exponential backoff (0.25 s … 10 s), resuming from the index
//! ```
//!
//! Because every head triggers "index everything up to here", a restart, an outage or a lagging
//! subscription all heal the same way: no gap, no duplicate (the block number is the key).

use crate::{
    db::{AccountBalance, BlockRecord, DbError, EventRow, ExtrinsicRecord, Store, Writer},
    grid_sync::{self, GRID_PALLETS, GRID_SYNC_INTERVAL_MS},
    query::{BlockSummary, ExtrinsicSummary},
};
use futures::{stream, StreamExt, TryStreamExt};
use gridchain_primitives::{decode_untrusted, AccountId, Hash};
use gridchain_rpc_api::{
    jsonrpsee::{
        core::ClientError,
        ws_client::{WsClient, WsClientBuilder},
    },
    ChainApiClient, GridchainApiClient,
};
use gridchain_runtime::{system::Phase, Extrinsic};
use parking_lot::{Mutex, RwLock};
use serde::Serialize;
use serde_json::Value;
use std::{collections::BTreeSet, str::FromStr, sync::Arc, time::Duration};
use tokio::sync::broadcast;

/// Blocks fetched concurrently while catching up.
const FETCH_CONCURRENCY: usize = 16;
/// Blocks per catch-up batch; balances are refreshed once per batch.
const BATCH_BLOCKS: u64 = 256;
const BACKOFF_MIN: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum IndexerError {
    #[error("rpc: {0}")]
    Rpc(#[from] ClientError),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("block {number}: {reason}")]
    BadBlock { number: u64, reason: String },
    #[error("the index belongs to another chain: {0}")]
    ChainMismatch(String),
    #[error("the node closed the finalized-heads subscription")]
    SubscriptionClosed,
    #[error("database task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// What the indexer knows about the chain right now, for the home page.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChainStatus {
    pub rpc_url: String,
    pub connected: bool,
    pub best_height: Option<u64>,
    pub final_height: Option<u64>,
    pub indexed_height: Option<u64>,
    /// The last error, until indexing succeeds again.
    pub last_error: Option<String>,
}

/// A newly indexed block as the live stream sends it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LiveBlock {
    pub block: BlockSummary,
    pub extrinsics: Vec<ExtrinsicSummary>,
    pub final_height: Option<u64>,
    pub best_height: Option<u64>,
}

pub struct Indexer {
    store: Arc<Store>,
    writer: Arc<Mutex<Writer>>,
    rpc_url: String,
    status: Arc<RwLock<ChainStatus>>,
    live: broadcast::Sender<LiveBlock>,
    rebuild_on_mismatch: bool,
    /// Chain time of the last grid snapshot.
    last_grid_sync_ms: Mutex<Option<u64>>,
}

impl Indexer {
    pub fn new(
        store: Arc<Store>,
        rpc_url: String,
        status: Arc<RwLock<ChainStatus>>,
        live: broadcast::Sender<LiveBlock>,
        rebuild_on_mismatch: bool,
    ) -> Result<Self, DbError> {
        let writer = store.writer()?;
        let last_grid_sync_ms = Mutex::new(writer.last_grid_sync_ms()?);
        let writer = Arc::new(Mutex::new(writer));
        status.write().rpc_url = rpc_url.clone();
        status.write().indexed_height = store.tip()?.last.map(|(n, _)| n);
        Ok(Indexer {
            store,
            writer,
            rpc_url,
            status,
            live,
            rebuild_on_mismatch,
            last_grid_sync_ms,
        })
    }

    /// Follows the chain forever, reconnecting with backoff. Returns only if the index belongs
    /// to another chain and rebuilding is off.
    pub async fn run(self) {
        let mut backoff = BACKOFF_MIN;
        loop {
            let result = match self.connect().await {
                Ok(client) => {
                    backoff = BACKOFF_MIN;
                    self.status.write().connected = true;
                    self.follow(&client).await
                }
                Err(e) => Err(e),
            };
            let Err(error) = result else { continue };
            {
                let mut status = self.status.write();
                status.connected = false;
                status.last_error = Some(error.to_string());
            }
            if let IndexerError::ChainMismatch(reason) = &error {
                if !self.rebuild_on_mismatch {
                    tracing::error!(%reason, "index belongs to another chain; stopping the indexer (run `grid-explorer reindex`)");
                    return;
                }
                tracing::warn!(%reason, "index belongs to another chain; rebuilding it");
                let writer = self.writer.clone();
                match tokio::task::spawn_blocking(move || writer.lock().clear()).await {
                    Ok(Ok(())) => {
                        self.status.write().indexed_height = None;
                        *self.last_grid_sync_ms.lock() = None;
                        continue;
                    }
                    Ok(Err(e)) => tracing::error!(error = %e, "clearing the index failed"),
                    Err(e) => tracing::error!(error = %e, "clearing the index failed"),
                }
            }
            tracing::warn!(%error, retry_in = ?backoff, "indexer disconnected");
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    }

    /// Indexes every final block the index lacks, then returns the new indexed height.
    pub async fn catch_up(&self) -> Result<Option<u64>, IndexerError> {
        let client = self.connect().await?;
        self.check_chain(&client).await?;
        let final_hash = client.finalized_head().await?;
        let final_header =
            client
                .header(Some(final_hash))
                .await?
                .ok_or_else(|| IndexerError::BadBlock {
                    number: 0,
                    reason: format!("final head {final_hash} has no header"),
                })?;
        self.index_up_to(&client, final_header.number).await?;
        Ok(self.status.read().indexed_height)
    }

    async fn connect(&self) -> Result<WsClient, IndexerError> {
        Ok(WsClientBuilder::default()
            .request_timeout(Duration::from_secs(30))
            .max_concurrent_requests(1024)
            .build(&self.rpc_url)
            .await?)
    }

    async fn follow(&self, client: &WsClient) -> Result<(), IndexerError> {
        self.check_chain(client).await?;
        let mut heads = client.subscribe_finalized_heads().await?;
        loop {
            let head = heads
                .next()
                .await
                .ok_or(IndexerError::SubscriptionClosed)?
                .map_err(ClientError::ParseError)?;
            let best = client.header(None).await?.map(|h| h.number);
            {
                let mut status = self.status.write();
                status.final_height = Some(head.number);
                status.best_height = best;
            }
            self.index_up_to(client, head.number).await?;
            self.status.write().last_error = None;
        }
    }

    /// Fails with [`IndexerError::ChainMismatch`] unless the index is a prefix of this chain.
    async fn check_chain(&self, client: &WsClient) -> Result<(), IndexerError> {
        let genesis = client
            .block_hash(Some(0))
            .await?
            .ok_or_else(|| IndexerError::ChainMismatch("the node has no genesis block".into()))?
            .to_string();
        let tip = self.store.tip()?;
        match (&tip.genesis_hash, &tip.last) {
            (Some(stored), _) if *stored != genesis => {
                return Err(IndexerError::ChainMismatch(format!(
                    "indexed genesis {stored}, node's genesis {genesis}"
                )))
            }
            (None, Some(_)) => {
                return Err(IndexerError::ChainMismatch(
                    "the index has blocks but no genesis hash".into(),
                ))
            }
            (None, None) => {
                let writer = self.writer.clone();
                let genesis = genesis.clone();
                tokio::task::spawn_blocking(move || writer.lock().set_genesis_hash(&genesis))
                    .await??;
            }
            _ => {}
        }
        if let Some((number, hash)) = tip.last {
            let on_chain = client
                .block_hash(Some(number))
                .await?
                .map(|h| h.to_string());
            if on_chain.as_deref() != Some(hash.as_str()) {
                return Err(IndexerError::ChainMismatch(format!(
                    "indexed block {number} is {hash}, the node has {}",
                    on_chain.unwrap_or_else(|| "no such block".into())
                )));
            }
        }
        Ok(())
    }

    async fn index_up_to(&self, client: &WsClient, target: u64) -> Result<(), IndexerError> {
        loop {
            let next = self.status.read().indexed_height.map_or(0, |n| n + 1);
            if next > target {
                return Ok(());
            }
            let batch_end = target.min(next + BATCH_BLOCKS - 1);
            let mut blocks = stream::iter(next..=batch_end)
                .map(|number| fetch_block(client, number))
                .buffered(FETCH_CONCURRENCY);
            let mut touched = BTreeSet::new();
            while let Some(record) = blocks.try_next().await? {
                self.check_parent(&record)?;
                touched.extend(record.activity.iter().map(|(a, _)| a.clone()));
                if record.number > 0 {
                    touched.insert(record.proposer.clone());
                }
                let writer = self.writer.clone();
                let record = tokio::task::spawn_blocking(move || {
                    writer.lock().insert_block(&record).map(|()| record)
                })
                .await??;
                self.status.write().indexed_height = Some(record.number);
                self.sync_grid_if_due(client, &record).await?;
                self.publish(record);
            }
            self.refresh_balances(client, touched, batch_end).await?;
        }
    }

    /// Takes a grid snapshot at `record` after a grid call, or when the last one is old.
    async fn sync_grid_if_due(
        &self,
        client: &WsClient,
        record: &BlockRecord,
    ) -> Result<(), IndexerError> {
        let grid_call = record
            .extrinsics
            .iter()
            .any(|x| GRID_PALLETS.contains(&x.pallet.as_str()));
        let due = match *self.last_grid_sync_ms.lock() {
            None => true,
            Some(last) => record.timestamp_ms >= last.saturating_add(GRID_SYNC_INTERVAL_MS),
        };
        if !grid_call && !due {
            return Ok(());
        }
        let at = Hash::from_str(&record.hash).map_err(|e| IndexerError::BadBlock {
            number: record.number,
            reason: format!("hash {}: {e}", record.hash),
        })?;
        let snapshot = grid_sync::fetch(client, at, record.number, record.timestamp_ms).await?;
        let writer = self.writer.clone();
        tokio::task::spawn_blocking(move || writer.lock().replace_grid(&snapshot)).await??;
        *self.last_grid_sync_ms.lock() = Some(record.timestamp_ms);
        Ok(())
    }

    /// A new block must extend the indexed chain; anything else means the node's chain changed
    /// under us (e.g. a dev chain restarted from genesis).
    fn check_parent(&self, record: &BlockRecord) -> Result<(), IndexerError> {
        if record.number == 0 {
            return Ok(());
        }
        let parent = self.store.read(|conn| {
            Ok(conn
                .query_row(
                    "SELECT hash FROM blocks WHERE number = ?1",
                    [record.number as i64 - 1],
                    |r| r.get::<_, String>(0),
                )
                .ok())
        })?;
        if parent.as_deref() != Some(record.parent_hash.as_str()) {
            return Err(IndexerError::ChainMismatch(format!(
                "block {} has parent {}, the index has {}",
                record.number,
                record.parent_hash,
                parent.unwrap_or_else(|| "no parent".into())
            )));
        }
        Ok(())
    }

    fn publish(&self, record: BlockRecord) {
        if self.live.receiver_count() == 0 {
            return;
        }
        let status = self.status.read().clone();
        let extrinsics = record
            .extrinsics
            .iter()
            .map(|x| ExtrinsicSummary {
                hash: x.hash.clone(),
                block_number: record.number,
                index: x.index,
                signer: x.signer.clone(),
                pallet: x.pallet.clone(),
                call_name: x.call_name.clone(),
                success: x.success,
                fee: x.fee.to_string(),
                timestamp_ms: record.timestamp_ms,
            })
            .collect();
        let block = BlockSummary {
            number: record.number,
            hash: record.hash,
            timestamp_ms: record.timestamp_ms,
            proposer: record.proposer,
            extrinsic_count: record.extrinsics.len() as u64,
            event_count: record.events.len() as u64,
        };
        // No subscriber left is not an error.
        let _ = self.live.send(LiveBlock {
            block,
            extrinsics,
            final_height: status.final_height,
            best_height: status.best_height,
        });
    }

    async fn refresh_balances(
        &self,
        client: &WsClient,
        accounts: BTreeSet<String>,
        at_block: u64,
    ) -> Result<(), IndexerError> {
        let balances: Vec<AccountBalance> = stream::iter(accounts)
            .map(|address| async move {
                let info = client.account(address.clone()).await?;
                Ok::<_, IndexerError>(AccountBalance {
                    address,
                    free: info.free,
                    reserved: info.reserved,
                    nonce: info.nonce,
                    at_block,
                })
            })
            .buffer_unordered(FETCH_CONCURRENCY)
            .try_collect()
            .await?;
        let writer = self.writer.clone();
        tokio::task::spawn_blocking(move || writer.lock().update_balances(&balances)).await??;
        Ok(())
    }
}

/// Fetches block `number` and the outcome of each of its extrinsics, decoded for the index.
async fn fetch_block(client: &WsClient, number: u64) -> Result<BlockRecord, IndexerError> {
    let bad = |reason: String| IndexerError::BadBlock { number, reason };
    let hash = client
        .block_hash(Some(number))
        .await?
        .ok_or_else(|| bad("the node has no such block".into()))?;
    let signed = client
        .block(Some(hash))
        .await?
        .ok_or_else(|| bad(format!("the node has no body for {hash}")))?;
    let header = signed.block.header;
    if header.hash() != hash {
        return Err(bad(format!(
            "header hashes to {}, not {hash}",
            header.hash()
        )));
    }
    let decoded: Vec<Extrinsic> = signed
        .block
        .extrinsics
        .iter()
        .map(|bytes| decode_untrusted::<Extrinsic>("extrinsic", &bytes.0))
        .collect::<Result<_, _>>()
        .map_err(|e| bad(e.to_string()))?;
    let outcomes = futures::future::try_join_all(decoded.iter().map(|xt| async move {
        let xt_hash = xt.hash();
        client.extrinsic(xt_hash).await?.ok_or_else(|| {
            bad(format!(
                "the node does not know the outcome of extrinsic {xt_hash}"
            ))
        })
    }))
    .await?;

    let mut extrinsics = Vec::with_capacity(decoded.len());
    let mut events = Vec::new();
    let mut activity = BTreeSet::new();
    for (index, (xt, info)) in decoded.iter().zip(outcomes).enumerate() {
        let index = index as u32;
        let call = serde_json::to_value(&xt.call).map_err(|e| bad(e.to_string()))?;
        activity.insert((xt.signer.to_string(), index));
        collect_addresses(&call, &mut |a| {
            activity.insert((a, index));
        });
        for record in &info.events {
            let mut data = serde_json::to_value(&record.event).map_err(|e| bad(e.to_string()))?;
            collect_addresses(&data, &mut |a| {
                activity.insert((a, index));
            });
            let pallet = take_string(&mut data, "pallet");
            let name = take_string(&mut data, "event");
            events.push(EventRow {
                index: events.len() as u32,
                extrinsic_index: match record.phase {
                    Phase::ApplyExtrinsic(i) => Some(i),
                    _ => None,
                },
                phase: phase_label(record.phase),
                pallet,
                name,
                data,
            });
        }
        let error = match &info.error {
            Some(e) => Some(serde_json::to_value(e).map_err(|e| bad(e.to_string()))?),
            None => None,
        };
        extrinsics.push(ExtrinsicRecord {
            hash: xt.hash().to_string(),
            index,
            signer: xt.signer.to_string(),
            nonce: xt.nonce,
            valid_until: xt.valid_until,
            tip: xt.tip,
            fee: info.fee,
            success: info.success,
            error,
            pallet: call_field(&call, "pallet"),
            call_name: call_field(&call, "call"),
            call,
        });
    }
    Ok(BlockRecord {
        number: header.number,
        hash: hash.to_string(),
        parent_hash: header.parent_hash.to_string(),
        state_root: header.state_root.to_string(),
        extrinsics_root: header.extrinsics_root.to_string(),
        proposer: header.proposer.to_string(),
        timestamp_ms: header.timestamp_ms,
        extrinsics,
        events,
        activity: activity.into_iter().collect(),
    })
}

pub fn phase_label(phase: Phase) -> String {
    match phase {
        Phase::Initialization => "initialization".into(),
        Phase::ApplyExtrinsic(i) => format!("extrinsic {i}"),
        Phase::Finalization => "finalization".into(),
    }
}

/// Calls every string in `value` that is an address of this chain.
fn collect_addresses(value: &Value, found: &mut impl FnMut(String)) {
    match value {
        Value::String(s) if AccountId::from_str(s).is_ok() => found(s.clone()),
        Value::Array(items) => items.iter().for_each(|v| collect_addresses(v, found)),
        Value::Object(fields) => fields.values().for_each(|v| collect_addresses(v, found)),
        _ => {}
    }
}

fn take_string(value: &mut Value, key: &str) -> String {
    match value.as_object_mut().and_then(|o| o.remove(key)) {
        Some(Value::String(s)) => s,
        _ => String::new(),
    }
}

fn call_field(call: &Value, key: &str) -> String {
    call.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}
