//! The block producer of a single-validator chain.

use crate::Metrics;
use gridchain_primitives::{ChainContext, Header, Pair, StateRead};
use gridchain_runtime::{system, Block, BlockBuilder, Context, InvalidTransaction};
use gridchain_storage::Storage;
use gridchain_txpool::TxPool;
use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};
use tokio::sync::broadcast;

/// Most transactions considered per block; the runtime's byte limit usually binds first.
const MAX_BLOCK_TRANSACTIONS: usize = 100_000;

pub struct Producer {
    pub storage: Arc<Storage>,
    pub pool: Arc<TxPool>,
    pub chain: ChainContext,
    pub key: Pair,
    pub block_time_ms: u64,
    pub heads: broadcast::Sender<Header>,
    pub metrics: Arc<Metrics>,
    pub stop: Arc<AtomicBool>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn nonce_of(state: &dyn StateRead, who: &gridchain_primitives::AccountId) -> u64 {
    let ctx: Context = Context::new(gridchain_primitives::Overlay::new(state));
    system::nonce(&ctx, who)
}

impl Producer {
    pub fn run(self) {
        let block_time = Duration::from_millis(self.block_time_ms);
        let mut next_slot = Instant::now() + block_time;
        while !self.stop.load(Ordering::SeqCst) {
            let now = Instant::now();
            if now < next_slot {
                std::thread::sleep((next_slot - now).min(Duration::from_millis(50)));
                continue;
            }
            next_slot += block_time;
            if next_slot < Instant::now() {
                // A slow block pushed us past the next slot: do not try to catch up in a burst.
                next_slot = Instant::now() + block_time;
            }
            if let Err(e) = self.produce() {
                // Storage failed: continuing could fork our own history; stop loudly.
                tracing::error!(error = %e, "block production failed; stopping the producer");
                return;
            }
        }
    }

    fn produce(&self) -> anyhow::Result<()> {
        let started = Instant::now();
        let parent = self
            .storage
            .best_header()?
            .ok_or_else(|| anyhow::anyhow!("no best block"))?;
        let timestamp_ms = now_ms().max(parent.timestamp_ms + 1);
        let storage: &Storage = &self.storage;
        let mut builder = BlockBuilder::new(
            storage,
            self.chain,
            parent.hash(),
            parent.number + 1,
            timestamp_ms,
            self.key.public(),
        )?;
        for tx in self.pool.ready(MAX_BLOCK_TRANSACTIONS) {
            // The pool verified the signature of this exact extrinsic for this chain.
            match builder.push(tx.xt.clone(), tx.encoded_len, false) {
                Ok(_) => {}
                Err(InvalidTransaction::ExhaustsResources) => break,
                // Its nonce was overtaken or its sender can no longer pay: it cannot be included.
                Err(error) => {
                    tracing::debug!(hash = %tx.hash, %error, "dropping transaction at block build");
                    self.pool.remove_invalid(&tx.hash);
                }
            }
        }
        let built = builder.finish();
        let executed = started.elapsed();
        let prepared = self.storage.prepare_state(&built.changes, built.number)?;
        let rooted = started.elapsed();
        let header = built.header(prepared.root);
        let block = Block {
            header: header.clone(),
            extrinsics: built.extrinsics,
        };
        self.storage
            .commit_block(&block, &built.changes, prepared)?;
        let committed = started.elapsed();
        let hash = header.hash();
        let included: Vec<_> = block.extrinsics.iter().map(|x| x.hash()).collect();
        self.pool
            .on_block_committed(storage, hash, header.number, &included, nonce_of);
        self.metrics
            .observe_block(header.number, included.len(), started.elapsed());
        // Where a block's time goes, for tuning: execution, state root, commit, pool upkeep.
        tracing::info!(
            number = header.number,
            %hash,
            extrinsics = included.len(),
            execute_ms = executed.as_millis() as u64,
            state_root_ms = (rooted - executed).as_millis() as u64,
            commit_ms = (committed - rooted).as_millis() as u64,
            pool_ms = (started.elapsed() - committed).as_millis() as u64,
            "committed final block"
        );
        let _ = self.heads.send(header);
        Ok(())
    }
}
