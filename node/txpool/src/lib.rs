//! # gridchain transaction pool
//!
//! Holds signed transactions between submission and inclusion.
//!
//! - **Validation** on submit ([`TxPool::submit`], or [`TxPool::submit_many`] for a batch whose
//!   signatures are checked together): size, mortality, signature, stale nonce and fee balance
//!   are checked by the runtime against the best state, *outside* the pool lock, so callers
//!   validate in parallel. Invalid transactions never enter.
//! - **Queues**: per sender, transactions are kept by nonce. The ones whose nonces continue the
//!   account's next nonce without a gap are *ready*; the rest wait in the *future* part until the
//!   gap is filled.
//! - **Ordering** ([`TxPool::ready`]): each sender's ready chain in nonce order; across senders,
//!   the highest tip first, then the earliest arrival.
//! - **Duplicates and replacement**: a known hash is refused; a different transaction with the
//!   same sender and nonce replaces the pooled one only if its tip is higher (the old one is
//!   reported `usurped`).
//! - **Per sender**: the fees (with tips) of all of a sender's pooled transactions together
//!   must fit in its free balance (checking each alone would let one account fill the pool with
//!   transactions only the first of which can pay), and a sender holds at most
//!   `max_per_sender` transactions.
//! - **Bounds**: count and bytes are capped. When full, a future transaction is evicted first,
//!   then the lowest-tip tail of some sender's chain if the newcomer pays more; else `PoolFull`.
//!   Both candidates come from indexes kept up to date as queues change (senders with future
//!   transactions; chain tails ordered by tip), so an insert into a full pool costs O(log n),
//!   not a walk over every sender.
//! - **Maintenance** ([`TxPool::on_block_committed`]): included transactions leave with
//!   `inBlock`/`finalized`, stale nonces and expired transactions are dropped.
//! - **Watchers** ([`TxPool::watch`]): a channel of [`TxStatus`] per transaction, for
//!   `author_submitAndWatchExtrinsic`.

use gridchain_primitives::{
    block::BlockNumber, signature::SignatureBatch, AccountId, Balance, ChainContext, Hash,
    StateRead,
};
use gridchain_runtime::{
    validate_transaction_except_signature, Extrinsic, InvalidTransaction, ValidTransaction,
};
use parking_lot::Mutex;
use serde::Serialize;
use std::{
    cmp::Reverse,
    collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap},
    sync::Arc,
};
use tokio::sync::mpsc;

#[cfg(test)]
mod tests;

#[derive(Debug, Clone, Copy)]
pub struct PoolLimits {
    pub max_count: usize,
    pub max_bytes: usize,
    /// Cap on transactions waiting for a nonce gap, so one account cannot fill the pool with
    /// transactions that may never become ready.
    pub max_future: usize,
    /// Most transactions one sender may have pooled.
    pub max_per_sender: usize,
}

impl Default for PoolLimits {
    fn default() -> Self {
        PoolLimits {
            max_count: 250_000,
            max_bytes: 128 * 1024 * 1024,
            max_future: 25_000,
            max_per_sender: 1_024,
        }
    }
}

/// Why the pool refused a transaction. The pool is unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PoolError {
    #[error("invalid transaction: {0}")]
    Invalid(#[from] InvalidTransaction),
    #[error("transaction {0} is already in the pool")]
    AlreadyImported(Hash),
    #[error("a transaction with the same nonce and an equal or higher tip is already in the pool")]
    TooLowPriority,
    #[error("the pool is full and this transaction's tip does not outbid any pooled one")]
    PoolFull,
    #[error("the sender already has {0} transactions in the pool, the most one sender may")]
    TooManyFromSender(usize),
}

/// A transaction's life, as watchers see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum TxStatus {
    Future,
    Ready,
    InBlock(Hash),
    Finalized(Hash),
    /// Replaced by another transaction with the same sender and nonce.
    Usurped(Hash),
    /// Evicted, expired, or made stale by another transaction.
    Dropped,
    /// Became invalid while waiting (e.g. the account can no longer pay the fee).
    Invalid,
}

/// A validated transaction in the pool.
#[derive(Debug)]
pub struct PoolTx {
    pub xt: Extrinsic,
    pub hash: Hash,
    pub encoded_len: usize,
    /// Fee plus tip it pays.
    pub fee: Balance,
    arrival: u64,
}

impl PoolTx {
    pub fn tip(&self) -> Balance {
        self.xt.tip
    }
}

#[derive(Default)]
struct SenderQueue {
    /// The account's next nonce in the last state we checked against.
    next_nonce: u64,
    /// The first nonce at or after `next_nonce` that is missing: `next_nonce..ready_end` is the
    /// ready chain. Kept up to date on every change so no operation walks the whole queue.
    ready_end: u64,
    by_nonce: BTreeMap<u64, Arc<PoolTx>>,
    /// Sum of the pooled transactions' fees.
    fees: Balance,
}

/// A chain tail in the eviction index: cheapest tip first, then the latest arrival.
type TailKey = (Balance, Reverse<u64>, Hash);

/// What the pool-wide indexes need to know about one sender's queue.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
struct QueueStats {
    future: usize,
    tail: Option<TailKey>,
}

impl SenderQueue {
    fn ready_len(&self) -> usize {
        (self.ready_end - self.next_nonce) as usize
    }

    fn extend_ready(&mut self) {
        while self.by_nonce.contains_key(&self.ready_end) {
            self.ready_end += 1;
        }
    }

    fn set_next_nonce(&mut self, next: u64) {
        self.next_nonce = next;
        self.ready_end = self.ready_end.max(next);
        self.extend_ready();
    }

    fn insert(&mut self, tx: Arc<PoolTx>) {
        self.fees = self.fees.saturating_add(tx.fee);
        self.by_nonce.insert(tx.xt.nonce, tx);
        self.extend_ready();
    }

    fn remove(&mut self, nonce: u64) {
        if let Some(tx) = self.by_nonce.remove(&nonce) {
            self.fees = self.fees.saturating_sub(tx.fee);
        }
        if nonce >= self.next_nonce && nonce < self.ready_end {
            self.ready_end = nonce;
        }
    }

    fn stats(&self) -> QueueStats {
        QueueStats {
            future: self.by_nonce.len() - self.ready_len(),
            tail: self
                .by_nonce
                .values()
                .next_back()
                .map(|t| (t.tip(), Reverse(t.arrival), t.hash)),
        }
    }
}

#[derive(Default)]
struct Inner {
    by_hash: HashMap<Hash, Arc<PoolTx>>,
    senders: HashMap<AccountId, SenderQueue>,
    bytes: usize,
    arrivals: u64,
    watchers: HashMap<Hash, Vec<mpsc::UnboundedSender<TxStatus>>>,
    /// Future transactions in all queues.
    future_total: usize,
    /// Senders with at least one future transaction.
    with_future: BTreeSet<AccountId>,
    /// Every sender's last transaction, for eviction.
    tails: BTreeSet<TailKey>,
}

impl Inner {
    fn notify(&mut self, hash: &Hash, status: TxStatus, last: bool) {
        if last {
            if let Some(list) = self.watchers.remove(hash) {
                for w in list {
                    let _ = w.send(status.clone());
                }
            }
        } else if let Some(list) = self.watchers.get_mut(hash) {
            list.retain(|w| w.send(status.clone()).is_ok());
        }
    }

    fn stats_of(&self, who: &AccountId) -> QueueStats {
        self.senders
            .get(who)
            .map(SenderQueue::stats)
            .unwrap_or_default()
    }

    /// Runs `change` on `who`'s queue (created if missing, dropped if left empty) and brings
    /// the pool-wide indexes up to date with what it did.
    fn change_queue<T>(
        &mut self,
        who: &AccountId,
        change: impl FnOnce(&mut SenderQueue) -> T,
    ) -> T {
        let before = self.stats_of(who);
        let queue = self.senders.entry(*who).or_default();
        let out = change(queue);
        if queue.by_nonce.is_empty() {
            self.senders.remove(who);
        }
        let after = self.stats_of(who);
        self.future_total = self.future_total - before.future + after.future;
        if after.future > 0 {
            self.with_future.insert(*who);
        } else {
            self.with_future.remove(who);
        }
        if before.tail != after.tail {
            if let Some(tail) = before.tail {
                self.tails.remove(&tail);
            }
            if let Some(tail) = after.tail {
                self.tails.insert(tail);
            }
        }
        out
    }

    fn remove(&mut self, hash: &Hash) -> Option<Arc<PoolTx>> {
        let tx = self.by_hash.remove(hash)?;
        self.bytes -= tx.encoded_len;
        self.change_queue(&tx.xt.signer, |queue| queue.remove(tx.xt.nonce));
        Some(tx)
    }

    /// Picks a transaction to evict for a newcomer paying `tip`: the highest-nonce future
    /// transaction if any, else the cheapest chain tail that pays less than `tip`.
    fn eviction_candidate(&self, tip: Balance) -> Option<Hash> {
        if let Some(who) = self.with_future.iter().next() {
            return self.senders[who]
                .by_nonce
                .values()
                .next_back()
                .map(|t| t.hash);
        }
        self.tails
            .iter()
            .next()
            .filter(|(t, _, _)| *t < tip)
            .map(|(_, _, hash)| *hash)
    }
}

pub struct TxPool {
    inner: Mutex<Inner>,
    limits: PoolLimits,
    chain: ChainContext,
}

/// What became of a submitted transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submitted {
    pub hash: Hash,
    pub status: TxStatus,
}

impl TxPool {
    pub fn new(chain: ChainContext, limits: PoolLimits) -> Self {
        TxPool {
            inner: Mutex::new(Inner::default()),
            limits,
            chain,
        }
    }

    pub fn len(&self) -> usize {
        self.inner.lock().by_hash.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the pool holds (and so has validated) the extrinsic with this hash.
    pub fn contains(&self, hash: &Hash) -> bool {
        self.inner.lock().by_hash.contains_key(hash)
    }

    pub fn bytes(&self) -> usize {
        self.inner.lock().bytes
    }

    /// Validates `xt` against `state` (the best block's, whose successor is `next_block`) and
    /// adds it. `encoded_len` is the length of its SCALE encoding.
    pub fn submit(
        &self,
        state: &dyn StateRead,
        next_block: BlockNumber,
        xt: Extrinsic,
        encoded_len: usize,
    ) -> Result<Submitted, PoolError> {
        self.submit_many(state, next_block, vec![(xt, encoded_len)])
            .pop()
            .expect("submit_many answers each transaction")
    }

    /// [`Self::submit`] for many transactions at once (a gossip batch, an RPC turn): the
    /// signatures are checked together (`gridchain_primitives::signature`), which costs a fraction of checking
    /// each alone and gives the same verdicts. One result per transaction, in order.
    pub fn submit_many(
        &self,
        state: &dyn StateRead,
        next_block: BlockNumber,
        txs: Vec<(Extrinsic, usize)>,
    ) -> Vec<Result<Submitted, PoolError>> {
        let mut results: Vec<Result<Submitted, PoolError>> = Vec::with_capacity(txs.len());
        // (position in `results`, extrinsic, hash, length, account nonce) of those that pass
        // every check but the signature.
        let mut unsigned = Vec::with_capacity(txs.len());
        let mut batch = SignatureBatch::with_capacity(txs.len());
        for (position, (xt, encoded_len)) in txs.into_iter().enumerate() {
            let hash = xt.hash();
            let checked = if self.inner.lock().by_hash.contains_key(&hash) {
                Err(PoolError::AlreadyImported(hash))
            } else {
                validate_transaction_except_signature(state, next_block, &xt, encoded_len)
                    .map_err(PoolError::from)
            };
            match checked {
                Ok(valid) => {
                    xt.queue_signature(self.chain, &mut batch);
                    unsigned.push((position, xt, hash, encoded_len, valid));
                    // Its verdict if the signature check below fails; replaced if it passes.
                    results.push(Err(PoolError::Invalid(InvalidTransaction::BadSignature)));
                }
                Err(e) => results.push(Err(e)),
            }
        }
        for ((position, xt, hash, encoded_len, valid), signed) in
            unsigned.into_iter().zip(batch.verdicts())
        {
            if signed {
                results[position] = self.insert(xt, hash, encoded_len, valid);
            }
        }
        results
    }

    fn insert(
        &self,
        xt: Extrinsic,
        hash: Hash,
        encoded_len: usize,
        valid: ValidTransaction,
    ) -> Result<Submitted, PoolError> {
        let account_nonce = valid.account_nonce;
        let mut inner = self.inner.lock();
        if inner.by_hash.contains_key(&hash) {
            return Err(PoolError::AlreadyImported(hash));
        }
        let signer = xt.signer;
        let nonce = xt.nonce;
        let tip = xt.tip;
        // The state may have moved on since validation: never keep a nonce it has used.
        let known_next = inner
            .senders
            .get(&signer)
            .map_or(account_nonce, |q| q.next_nonce.max(account_nonce));
        if nonce < known_next {
            return Err(InvalidTransaction::Stale {
                expected: known_next,
                got: nonce,
            }
            .into());
        }
        let replaced = match inner
            .senders
            .get(&signer)
            .and_then(|q| q.by_nonce.get(&nonce))
        {
            Some(existing) if existing.tip() >= tip => return Err(PoolError::TooLowPriority),
            Some(existing) => Some(existing.clone()),
            None => None,
        };
        // What the sender has pooled once the replaced transaction (if any) is gone.
        let (pooled, pooled_fees) = inner.senders.get(&signer).map_or((0, 0), |q| {
            let replaced_fee = replaced.as_ref().map_or(0, |r| r.fee);
            (
                q.by_nonce.len() - usize::from(replaced.is_some()),
                q.fees - replaced_fee,
            )
        });
        if pooled >= self.limits.max_per_sender {
            return Err(PoolError::TooManyFromSender(pooled));
        }
        let needed = pooled_fees.saturating_add(valid.fee);
        if needed > valid.available {
            return Err(InvalidTransaction::Payment {
                needed,
                available: valid.available,
            }
            .into());
        }
        if let Some(old) = replaced {
            inner.remove(&old.hash);
            inner.notify(&old.hash, TxStatus::Usurped(hash), true);
        }
        if inner.senders.contains_key(&signer) {
            inner.change_queue(&signer, |queue| queue.set_next_nonce(known_next));
        }
        // Would this transaction wait for a gap? Then the future cap applies.
        let ready_end = inner
            .senders
            .get(&signer)
            .map_or(known_next, |q| q.ready_end);
        let is_future = nonce > ready_end;
        if is_future && inner.future_total >= self.limits.max_future {
            return Err(PoolError::PoolFull);
        }
        while inner.by_hash.len() + 1 > self.limits.max_count
            || inner.bytes + encoded_len > self.limits.max_bytes
        {
            let Some(victim) = inner.eviction_candidate(tip) else {
                return Err(PoolError::PoolFull);
            };
            inner.remove(&victim);
            inner.notify(&victim, TxStatus::Dropped, true);
        }
        inner.arrivals += 1;
        let tx = Arc::new(PoolTx {
            xt,
            hash,
            encoded_len,
            fee: valid.fee,
            arrival: inner.arrivals,
        });
        inner.bytes += encoded_len;
        inner.by_hash.insert(hash, tx.clone());
        inner.change_queue(&signer, |queue| {
            queue.set_next_nonce(known_next);
            queue.insert(tx);
        });
        let status = if is_future {
            TxStatus::Future
        } else {
            TxStatus::Ready
        };
        Ok(Submitted { hash, status })
    }

    /// Subscribes to status changes of a pooled transaction; `None` if it is not in the pool.
    pub fn watch(&self, hash: &Hash) -> Option<mpsc::UnboundedReceiver<TxStatus>> {
        let mut inner = self.inner.lock();
        if !inner.by_hash.contains_key(hash) {
            return None;
        }
        let (tx, rx) = mpsc::unbounded_channel();
        inner.watchers.entry(*hash).or_default().push(tx);
        Some(rx)
    }

    /// Ready transactions in inclusion order, at most `max` of them.
    pub fn ready(&self, max: usize) -> Vec<Arc<PoolTx>> {
        let inner = self.inner.lock();
        // Each sender contributes its gap-free chain; a heap picks the best head across senders.
        struct Head<'a> {
            tx: &'a Arc<PoolTx>,
            rest: std::collections::btree_map::Range<'a, u64, Arc<PoolTx>>,
        }
        impl PartialEq for Head<'_> {
            fn eq(&self, other: &Self) -> bool {
                self.tx.hash == other.tx.hash
            }
        }
        impl Eq for Head<'_> {}
        impl PartialOrd for Head<'_> {
            fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
                Some(self.cmp(other))
            }
        }
        impl Ord for Head<'_> {
            fn cmp(&self, other: &Self) -> std::cmp::Ordering {
                self.tx
                    .tip()
                    .cmp(&other.tx.tip())
                    .then(other.tx.arrival.cmp(&self.tx.arrival))
            }
        }
        let mut heap = BinaryHeap::new();
        for queue in inner.senders.values() {
            let mut rest = queue.by_nonce.range(queue.next_nonce..);
            if let Some((n, tx)) = rest.next() {
                if *n == queue.next_nonce {
                    heap.push(Head { tx, rest });
                }
            }
        }
        let mut out = Vec::new();
        while out.len() < max {
            let Some(mut head) = heap.pop() else { break };
            out.push(head.tx.clone());
            let expected = head.tx.xt.nonce + 1;
            if let Some((n, tx)) = head.rest.next() {
                if *n == expected {
                    head.tx = tx;
                    heap.push(head);
                }
            }
        }
        out
    }

    /// The nonce `who` should sign with next: past the ready chain already pooled on top of
    /// `state_nonce` (the account's nonce in the best state).
    pub fn next_nonce(&self, who: &AccountId, state_nonce: u64) -> u64 {
        let inner = self.inner.lock();
        inner.senders.get(who).map_or(state_nonce, |q| {
            let mut end = q.ready_end.max(state_nonce);
            while q.by_nonce.contains_key(&end) {
                end += 1;
            }
            end
        })
    }

    /// All pooled transactions (ready and future).
    pub fn pending(&self) -> Vec<Arc<PoolTx>> {
        self.inner.lock().by_hash.values().cloned().collect()
    }

    /// Removes a transaction the block builder found invalid.
    pub fn remove_invalid(&self, hash: &Hash) {
        let mut inner = self.inner.lock();
        if inner.remove(hash).is_some() {
            inner.notify(hash, TxStatus::Invalid, true);
        }
    }

    /// After block `block_hash` (number `number`) is committed and final: reports and removes its
    /// transactions, then re-reads the nonce of every sender still pooled from `state` and drops
    /// what became stale or expired.
    pub fn on_block_committed(
        &self,
        state: &dyn StateRead,
        block_hash: Hash,
        number: BlockNumber,
        included: &[Hash],
        nonce_of: impl Fn(&dyn StateRead, &AccountId) -> u64,
    ) {
        let mut inner = self.inner.lock();
        for hash in included {
            inner.remove(hash);
            if inner.watchers.contains_key(hash) {
                inner.notify(hash, TxStatus::InBlock(block_hash), false);
                inner.notify(hash, TxStatus::Finalized(block_hash), true);
            }
        }
        let mut gone = Vec::new();
        let senders: Vec<AccountId> = inner.senders.keys().copied().collect();
        for signer in senders {
            let next = nonce_of(state, &signer);
            let stale = inner.change_queue(&signer, |queue| {
                queue.set_next_nonce(next);
                queue
                    .by_nonce
                    .values()
                    .filter(|t| t.xt.nonce < next || t.xt.valid_until <= number)
                    .map(|t| t.hash)
                    .collect::<Vec<_>>()
            });
            gone.extend(stale);
        }
        for hash in gone {
            inner.remove(&hash);
            inner.notify(&hash, TxStatus::Dropped, true);
        }
    }
}
