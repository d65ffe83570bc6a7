//! The agent's link to the chain: several RPC endpoints with failover, and signed submissions
//! from the node's key that wait until final.
//!
//! A call that fails at the transport level (connection refused, closed, timed out) is retried on
//! the next endpoint; an answer from a node (a JSON-RPC error) is returned as it is. Submissions
//! are serialised, so nonces never race.
//!
//! What the agent acts on goes through [`Chain::verified`]: a whole read-and-verify step runs
//! against one endpoint, and an answer that does not verify ([`crate::light::Refused`]) moves to
//! the next endpoint as a transport failure does.

use crate::light::Refused;
use anyhow::{anyhow, bail, Context as _};
use gridchain_primitives::{ChainContext, Extrinsic, Hash, Header, Pair};
use gridchain_rpc_api::{
    jsonrpsee::{
        core::{client::Subscription, ClientError},
        ws_client::{WsClient, WsClientBuilder},
    },
    AuthorApiClient, ChainApiClient, GridchainApiClient, StateApiClient, SystemApiClient,
    TransactionStatus,
};
use gridchain_runtime::Call;
use parity_scale_codec::Encode;
use std::{future::Future, sync::Arc, time::Duration};
use tokio::sync::Mutex;

/// How many blocks a submission stays valid.
const MORTALITY: u64 = 64;

pub struct Chain {
    endpoints: Vec<String>,
    /// The endpoint in use and its client.
    current: Mutex<Option<(usize, Arc<WsClient>)>>,
    key: Pair,
    submit_lock: Mutex<()>,
    /// The light client's genesis once known: submissions are signed for it, never for what an
    /// endpoint claims.
    genesis: std::sync::OnceLock<Hash>,
}

fn is_transport(e: &ClientError) -> bool {
    !matches!(e, ClientError::Call(_))
}

impl Chain {
    pub fn new(endpoints: Vec<String>, key: Pair) -> anyhow::Result<Self> {
        if endpoints.is_empty() {
            bail!("at least one RPC endpoint is needed");
        }
        Ok(Chain {
            endpoints,
            current: Mutex::new(None),
            key,
            submit_lock: Mutex::new(()),
            genesis: std::sync::OnceLock::new(),
        })
    }

    pub fn key(&self) -> &Pair {
        &self.key
    }

    /// A connected client: the current one, or the first endpoint (after it) that answers.
    async fn client(&self, skip_current: bool) -> anyhow::Result<(usize, Arc<WsClient>)> {
        let mut current = self.current.lock().await;
        if let Some((i, c)) = current.as_ref() {
            if !skip_current && c.is_connected() {
                return Ok((*i, c.clone()));
            }
        }
        let start = current
            .as_ref()
            .map_or(0, |(i, _)| i + usize::from(skip_current));
        let mut last_error = None;
        for k in 0..self.endpoints.len() {
            let i = (start + k) % self.endpoints.len();
            match WsClientBuilder::default()
                .request_timeout(Duration::from_secs(30))
                .connection_timeout(Duration::from_secs(5))
                .build(&self.endpoints[i])
                .await
            {
                Ok(c) => {
                    let c = Arc::new(c);
                    if current.as_ref().map(|(j, _)| *j) != Some(i) {
                        tracing::info!(endpoint = %self.endpoints[i], "connected to chain RPC");
                    }
                    *current = Some((i, c.clone()));
                    return Ok((i, c));
                }
                Err(e) => {
                    tracing::warn!(endpoint = %self.endpoints[i], error = %e, "RPC endpoint unreachable");
                    last_error = Some(e);
                }
            }
        }
        Err(anyhow!(
            "no RPC endpoint reachable: {}",
            last_error.map(|e| e.to_string()).unwrap_or_default()
        ))
    }

    /// Runs `f` against a live endpoint, failing over on transport errors.
    pub async fn call<T, F, Fut>(&self, f: F) -> anyhow::Result<T>
    where
        F: Fn(Arc<WsClient>) -> Fut,
        Fut: Future<Output = Result<T, ClientError>>,
    {
        let mut skip = false;
        for _ in 0..=self.endpoints.len() {
            let (i, client) = self.client(skip).await?;
            match f(client).await {
                Ok(v) => return Ok(v),
                Err(e) if is_transport(&e) => {
                    tracing::warn!(endpoint = %self.endpoints[i], error = %e, "RPC failed; trying the next endpoint");
                    skip = true;
                }
                Err(e) => return Err(e.into()),
            }
        }
        bail!("every RPC endpoint failed")
    }

    /// Runs the read-and-verify step `f` against one endpoint at a time, so it never mixes the
    /// answers of two: an answer `f` refuses, a transport failure, or any other error of `f`
    /// moves to the next endpoint, at most once round all of them.
    pub async fn verified<T, F, Fut>(&self, what: &str, f: F) -> anyhow::Result<T>
    where
        F: Fn(Arc<WsClient>) -> Fut,
        Fut: Future<Output = anyhow::Result<T>>,
    {
        let mut skip = false;
        let mut last = None;
        for _ in 0..self.endpoints.len() {
            let (i, client) = self.client(skip).await?;
            match f(client).await {
                Ok(v) => return Ok(v),
                Err(e) => {
                    let endpoint = &self.endpoints[i];
                    match e.downcast_ref::<Refused>() {
                        Some(Refused(reason)) => tracing::warn!(
                            %endpoint, %reason, what,
                            "refused an RPC answer that does not verify; trying the next endpoint"
                        ),
                        None => tracing::warn!(
                            %endpoint, error = %format!("{e:#}"), what,
                            "verified read failed; trying the next endpoint"
                        ),
                    }
                    last = Some(e);
                    skip = true;
                }
            }
        }
        Err(last.unwrap_or_else(|| anyhow!("no RPC endpoint")))
            .context(format!("{what}: no endpoint gave a verifiable answer"))
    }

    /// The genesis hash every reachable endpoint agrees on (the light client's trust on first
    /// use, when no `--genesis-hash` is configured). Endpoints that disagree are an error.
    pub async fn agreed_genesis(&self) -> anyhow::Result<Hash> {
        let mut seen: Option<(Hash, &str)> = None;
        for endpoint in &self.endpoints {
            let client = match WsClientBuilder::default()
                .request_timeout(Duration::from_secs(30))
                .connection_timeout(Duration::from_secs(5))
                .build(endpoint)
                .await
            {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(%endpoint, error = %e, "RPC endpoint unreachable");
                    continue;
                }
            };
            let Some(hash) = client.block_hash(Some(0)).await? else {
                bail!("{endpoint} has no genesis block");
            };
            match seen {
                Some((h, other)) if h != hash => bail!(
                    "RPC endpoints disagree on the genesis hash ({other}: {h}, {endpoint}: {hash}); \
                     pin the chain with --genesis-hash"
                ),
                _ => seen = Some((hash, endpoint)),
            }
        }
        seen.map(|(h, _)| h).context("no RPC endpoint reachable")
    }

    pub async fn subscribe_finalized(&self) -> anyhow::Result<Subscription<Header>> {
        self.call(|c| async move { c.subscribe_finalized_heads().await })
            .await
    }

    pub async fn genesis_hash(&self) -> anyhow::Result<Hash> {
        self.call(|c| async move { c.block_hash(Some(0)).await })
            .await?
            .context("chain has no genesis")
    }

    /// Signs every later submission for chain `genesis` (the light client's trust anchor).
    pub fn pin_genesis(&self, genesis: Hash) {
        let _ = self.genesis.set(genesis);
    }

    async fn chain_context(&self) -> anyhow::Result<ChainContext> {
        let genesis_hash = match self.genesis.get() {
            Some(h) => *h,
            None => self
                .call(|c| async move { c.block_hash(Some(0)).await })
                .await?
                .context("chain has no genesis")?,
        };
        let version = self
            .call(|c| async move { c.runtime_version().await })
            .await?;
        Ok(ChainContext {
            genesis_hash,
            spec_version: version.spec_version,
        })
    }

    /// Signs `call` with the node key, submits it and waits until it is final. Returns the hash
    /// of the block that holds it; a call that failed on chain is an error with the pallet's.
    /// Only the nonce-to-pool step is serialised, so concurrent submissions share blocks.
    pub async fn submit(&self, call: Call) -> anyhow::Result<Hash> {
        let one_at_a_time = self.submit_lock.lock().await;
        let chain = self.chain_context().await?;
        let address = self.key.public().to_string();
        let nonce = self
            .call(|c| {
                let a = address.clone();
                async move { c.account_next_index(a).await }
            })
            .await?;
        let best = self
            .call(|c| async move { c.header(None).await })
            .await?
            .map_or(0, |h| h.number);
        let xt = Extrinsic::sign(&self.key, call, nonce, best + MORTALITY, 0, chain);
        let bytes = gridchain_primitives::Bytes(xt.encode());
        let mut watch = self
            .call(|c| {
                let b = bytes.clone();
                async move { c.submit_and_watch_extrinsic(b).await }
            })
            .await?;
        // In the pool now: the next submission's `account_next_index` sees this nonce.
        drop(one_at_a_time);
        while let Some(status) = watch.next().await {
            match status? {
                TransactionStatus::Finalized(block) => {
                    let hash = xt.hash();
                    let info = self
                        .call(|c| async move { c.extrinsic(hash).await })
                        .await?;
                    return match info {
                        Some(info) if info.success => Ok(block),
                        Some(info) => Err(anyhow!(
                            "call failed on chain: {}",
                            info.error.map(|e| e.to_string()).unwrap_or_default()
                        )),
                        None => Err(anyhow!("transaction {hash} final but not indexed")),
                    };
                }
                TransactionStatus::Dropped
                | TransactionStatus::Invalid
                | TransactionStatus::Usurped(_) => {
                    bail!("transaction {} was not included", xt.hash())
                }
                _ => {}
            }
        }
        bail!("lost the transaction watch before finality")
    }
}
