//! Submissions, pooled in batches.
//!
//! Each `author_submit*` call hands its decoded extrinsic to the submission threads (one per
//! core) and awaits the verdict. A free thread takes everything that has queued up (up to
//! [`MAX_BATCH`]) as its turn and pools it with `TxPool::submit_many`, which checks the
//! signatures together (ZIP-215 batches, a fraction of the cost of one check each, same
//! verdicts). Under light load
//! a turn holds one submission, so nothing waits for a batch to fill; under a flood turns grow
//! and each signature costs less.

use crate::{errors::pool_error, RpcContext};
use gridchain_primitives::Hash;
use gridchain_runtime::Extrinsic;
use jsonrpsee::types::ErrorObjectOwned;
use parking_lot::Mutex;
use std::{
    sync::{mpsc, Arc},
    thread::JoinHandle,
};
use tokio::sync::oneshot;

/// Most submissions pooled in one turn.
const MAX_BATCH: usize = 1_024;

enum Message {
    Submit(Box<Job>),
    /// Ends the thread that takes it (see [`Submitter::stop`]).
    Stop,
}

struct Job {
    xt: Extrinsic,
    bytes: Vec<u8>,
    reply: oneshot::Sender<Result<Hash, ErrorObjectOwned>>,
}

/// Queues submissions for the submission threads.
#[derive(Clone)]
pub(crate) struct Submitter {
    queue: mpsc::Sender<Message>,
    threads: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Submitter {
    pub(crate) fn start(ctx: Arc<RpcContext>) -> Self {
        let (queue, messages) = mpsc::channel();
        let messages = Arc::new(Mutex::new(messages));
        // One thread per core: while one checks its turn's signatures, another gathers the next.
        let threads = (0..std::thread::available_parallelism().map_or(2, |n| n.get()))
            .map(|_| {
                let (ctx, messages) = (ctx.clone(), messages.clone());
                std::thread::Builder::new()
                    .name("rpc-submit".into())
                    .spawn(move || run(&ctx, &messages))
                    .expect("cannot spawn an RPC submission thread")
            })
            .collect();
        Submitter {
            queue,
            threads: Arc::new(Mutex::new(threads)),
        }
    }

    /// Pools `xt` (whose SCALE encoding is `bytes`); on success the node gossips it.
    pub(crate) async fn submit(
        &self,
        xt: Extrinsic,
        bytes: Vec<u8>,
    ) -> Result<Hash, ErrorObjectOwned> {
        let (reply, verdict) = oneshot::channel();
        self.queue
            .send(Message::Submit(Box::new(Job { xt, bytes, reply })))
            .map_err(|_| crate::internal("the node is shutting down"))?;
        verdict
            .await
            .map_err(|_| crate::internal("the node is shutting down"))?
    }

    /// Ends the threads once they have answered what was queued before, and waits for them
    /// (blocking): after this nothing here holds the node's storage, which must be closed
    /// before the process exits (RocksDB crashes on exit otherwise).
    pub(crate) fn stop(&self) {
        let threads = std::mem::take(&mut *self.threads.lock());
        for _ in &threads {
            let _ = self.queue.send(Message::Stop);
        }
        for thread in threads {
            let _ = thread.join();
        }
    }
}

/// Takes the submissions waiting (at least one) as this thread's next turn, and whether the
/// thread must end after it.
fn next_turn(messages: &Mutex<mpsc::Receiver<Message>>) -> (Vec<Job>, bool) {
    let messages = messages.lock();
    let mut jobs = Vec::new();
    let mut next = messages.recv();
    loop {
        match next {
            Ok(Message::Submit(job)) => jobs.push(*job),
            Ok(Message::Stop) | Err(_) => return (jobs, true),
        }
        if jobs.len() == MAX_BATCH {
            return (jobs, false);
        }
        match messages.try_recv() {
            Ok(message) => next = Ok(message),
            Err(mpsc::TryRecvError::Empty) => return (jobs, false),
            Err(mpsc::TryRecvError::Disconnected) => return (jobs, true),
        }
    }
}

fn run(ctx: &RpcContext, messages: &Mutex<mpsc::Receiver<Message>>) {
    loop {
        let (jobs, last) = next_turn(messages);
        if !jobs.is_empty() {
            pool_turn(ctx, jobs);
        }
        if last {
            return;
        }
    }
}

fn pool_turn(ctx: &RpcContext, jobs: Vec<Job>) {
    let next_block = match ctx.storage.best_header() {
        Ok(best) => best.map_or(0, |h| h.number) + 1,
        Err(e) => {
            for job in jobs {
                let _ = job.reply.send(Err(crate::internal(e.to_string())));
            }
            return;
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
