//! Submissions, pooled in batches.
//!
//! Each `author_submit*` call hands its decoded extrinsic to the submission threads (one per
//! core) and awaits the verdict. A free thread takes everything that has queued up (up to
//! [`MAX_BATCH`]) as its turn and pools it with `TxPool::submit_many`, which checks the signatures together
//! (ZIP-215 batches, a fraction of the cost of one check each, same verdicts). Under light load
//! a turn holds one submission, so nothing waits for a batch to fill; under a flood turns grow
//! and each signature costs less.

use crate::{errors::pool_error, RpcContext};
use gridchain_primitives::Hash;
use gridchain_runtime::Extrinsic;
use jsonrpsee::types::ErrorObjectOwned;
use parking_lot::Mutex;
use std::sync::{mpsc, Arc};
use tokio::sync::oneshot;

/// Most submissions pooled in one turn.
const MAX_BATCH: usize = 1_024;

struct Job {
    xt: Extrinsic,
    bytes: Vec<u8>,
    reply: oneshot::Sender<Result<Hash, ErrorObjectOwned>>,
}

/// Queues submissions for the submission thread; the thread ends when every clone is dropped.
#[derive(Clone)]
pub(crate) struct Submitter {
    jobs: mpsc::Sender<Job>,
}

impl Submitter {
    pub(crate) fn start(ctx: Arc<RpcContext>) -> Self {
        let (jobs, queue) = mpsc::channel();
        let queue = Arc::new(Mutex::new(queue));
        // One thread per core: while one checks its turn's signatures, another gathers the next.
        for _ in 0..std::thread::available_parallelism().map_or(2, |n| n.get()) {
            let (ctx, queue) = (ctx.clone(), queue.clone());
            std::thread::Builder::new()
                .name("rpc-submit".into())
                .spawn(move || run(&ctx, &queue))
                .expect("cannot spawn an RPC submission thread");
        }
        Submitter { jobs }
    }

    /// Pools `xt` (whose SCALE encoding is `bytes`); on success the node gossips it.
    pub(crate) async fn submit(
        &self,
        xt: Extrinsic,
        bytes: Vec<u8>,
    ) -> Result<Hash, ErrorObjectOwned> {
        let (reply, verdict) = oneshot::channel();
        self.jobs
            .send(Job { xt, bytes, reply })
            .map_err(|_| crate::internal("the node is shutting down"))?;
        verdict
            .await
            .map_err(|_| crate::internal("the node is shutting down"))?
    }
}

/// Takes the submissions waiting (at least one) as this thread's next turn; `None` once every
/// sender is gone.
fn next_turn(queue: &Mutex<mpsc::Receiver<Job>>) -> Option<Vec<Job>> {
    let queue = queue.lock();
    let mut jobs = vec![queue.recv().ok()?];
    while jobs.len() < MAX_BATCH {
        match queue.try_recv() {
            Ok(job) => jobs.push(job),
            Err(_) => break,
        }
    }
    Some(jobs)
}

fn run(ctx: &RpcContext, queue: &Mutex<mpsc::Receiver<Job>>) {
    while let Some(jobs) = next_turn(queue) {
        let next_block = match ctx.storage.best_header() {
            Ok(best) => best.map_or(0, |h| h.number) + 1,
            Err(e) => {
                for job in jobs {
                    let _ = job.reply.send(Err(crate::internal(e.to_string())));
                }
                continue;
            }
        };
        let mut replies = Vec::with_capacity(jobs.len());
        let txs = jobs
            .into_iter()
            .map(|Job { xt, bytes, reply }| {
                let len = bytes.len();
                replies.push((bytes, reply));
                (xt, len)
            })
            .collect();
        let started = std::time::Instant::now();
        let results = ctx.pool.submit_many(&*ctx.storage, next_block, txs);
        tracing::debug!(
            submissions = results.len(),
            pool_us = started.elapsed().as_micros() as u64,
            "pooled a turn of submissions"
        );
        for ((bytes, reply), result) in replies.into_iter().zip(results) {
            let verdict = result.map(|submitted| {
                (ctx.on_submitted)(&bytes);
                submitted.hash
            });
            let _ = reply.send(verdict.map_err(pool_error));
        }
    }
}
