use super::*;
use gridchain_primitives::Pair;
use gridchain_runtime::{
    balances, build_genesis, system, Call, Context, GenesisConfig, SPEC_VERSION,
};
use parity_scale_codec::Encode;

type State = BTreeMap<Vec<u8>, Vec<u8>>;

fn chain() -> ChainContext {
    ChainContext {
        genesis_hash: Hash::of(b"pool test"),
        spec_version: SPEC_VERSION,
    }
}

fn state() -> State {
    state_of(&[
        ("Alice", 1_000_000_000_000_000),
        ("Bob", 1_000_000_000_000_000),
        ("Charlie", 1_000_000_000_000_000),
        ("Dave", 1_000_000_000_000_000),
    ])
}

/// The genesis state with these (dev account, free balance) pairs.
fn state_of(balances: &[(&str, u128)]) -> State {
    let config = GenesisConfig {
        balances: balances
            .iter()
            .map(|(n, free)| (Pair::dev(n).public(), *free))
            .collect(),
        ..Default::default()
    };
    build_genesis(&config)
        .unwrap()
        .into_iter()
        .map(|(k, v)| (k, v.unwrap()))
        .collect()
}

fn xt(who: &str, nonce: u64, tip: u128) -> Extrinsic {
    let call = Call::Balances(balances::Call::Transfer {
        dest: Pair::dev("Eve").public(),
        amount: 1,
    });
    Extrinsic::sign(&Pair::dev(who), call, nonce, 100, tip, chain())
}

fn submit(pool: &TxPool, state: &State, x: Extrinsic) -> Result<Submitted, PoolError> {
    let len = x.encoded_size();
    pool.submit(state, 1, x, len)
}

fn nonce_of(state: &dyn StateRead, who: &AccountId) -> u64 {
    let ctx: Context = Context::new(gridchain_primitives::Overlay::new(state));
    system::nonce(&ctx, who)
}

fn order(pool: &TxPool) -> Vec<(AccountId, u64)> {
    pool.ready(usize::MAX)
        .iter()
        .map(|t| (t.xt.signer, t.xt.nonce))
        .collect()
}

#[test]
fn future_transactions_wait_for_the_gap() {
    let (s, pool) = (state(), TxPool::new(chain(), PoolLimits::default()));
    assert_eq!(
        submit(&pool, &s, xt("Alice", 2, 0)).unwrap().status,
        TxStatus::Future
    );
    assert!(pool.ready(10).is_empty());
    assert_eq!(
        submit(&pool, &s, xt("Alice", 0, 0)).unwrap().status,
        TxStatus::Ready
    );
    assert_eq!(pool.ready(10).len(), 1);
    assert_eq!(
        submit(&pool, &s, xt("Alice", 1, 0)).unwrap().status,
        TxStatus::Ready
    );
    let alice = Pair::dev("Alice").public();
    assert_eq!(order(&pool), vec![(alice, 0), (alice, 1), (alice, 2)]);
}

#[test]
fn higher_tips_go_first_but_nonce_order_holds() {
    let (s, pool) = (state(), TxPool::new(chain(), PoolLimits::default()));
    submit(&pool, &s, xt("Alice", 0, 1)).unwrap();
    submit(&pool, &s, xt("Alice", 1, 100)).unwrap();
    submit(&pool, &s, xt("Bob", 0, 50)).unwrap();
    submit(&pool, &s, xt("Charlie", 0, 1)).unwrap();
    let (alice, bob, charlie) = (
        Pair::dev("Alice").public(),
        Pair::dev("Bob").public(),
        Pair::dev("Charlie").public(),
    );
    // Bob pays most among heads; Alice's high-tip nonce 1 must wait for her nonce 0; Alice and
    // Charlie tie on tip, and Alice arrived first.
    assert_eq!(
        order(&pool),
        vec![(bob, 0), (alice, 0), (alice, 1), (charlie, 0)]
    );
    assert_eq!(pool.ready(2).len(), 2);
}

#[test]
fn duplicates_replacement_and_invalid_are_refused_without_change() {
    let (s, pool) = (state(), TxPool::new(chain(), PoolLimits::default()));
    let first = xt("Alice", 0, 10);
    let h = submit(&pool, &s, first.clone()).unwrap().hash;
    let mut watcher = pool.watch(&h).unwrap();
    assert_eq!(submit(&pool, &s, first), Err(PoolError::AlreadyImported(h)));
    assert_eq!(
        submit(&pool, &s, xt("Alice", 0, 10)).map(|_| ()),
        Err(PoolError::AlreadyImported(h))
    );
    // Same nonce, lower tip: refused. Higher tip: replaces.
    let mut cheaper = xt("Alice", 0, 5);
    cheaper.call = Call::System(system::Call::Remark {
        data: vec![1].into(),
    });
    let cheaper = Extrinsic::sign(&Pair::dev("Alice"), cheaper.call, 0, 100, 5, chain());
    assert_eq!(submit(&pool, &s, cheaper), Err(PoolError::TooLowPriority));
    let better = submit(&pool, &s, xt("Alice", 0, 11)).unwrap();
    assert_eq!(watcher.try_recv().unwrap(), TxStatus::Usurped(better.hash));
    assert_eq!(pool.len(), 1);

    let mut forged = xt("Bob", 0, 0);
    forged.signature.0[0] ^= 1;
    assert_eq!(
        submit(&pool, &s, forged),
        Err(PoolError::Invalid(InvalidTransaction::BadSignature))
    );
    let poor = xt("Nobody", 0, 0);
    assert!(matches!(
        submit(&pool, &s, poor),
        Err(PoolError::Invalid(InvalidTransaction::Payment { .. }))
    ));
    let bytes = pool.bytes();
    assert_eq!(pool.len(), 1);
    assert_eq!(bytes, pool.pending()[0].encoded_len);
}

#[test]
fn bounded_pool_evicts_future_then_cheapest_tail() {
    let limits = PoolLimits {
        max_count: 3,
        max_bytes: usize::MAX,
        max_future: 1,
        ..PoolLimits::default()
    };
    let (s, pool) = (state(), TxPool::new(chain(), limits));
    let future = submit(&pool, &s, xt("Dave", 5, 100)).unwrap().hash;
    let mut future_watch = pool.watch(&future).unwrap();
    assert_eq!(
        submit(&pool, &s, xt("Dave", 7, 100)),
        Err(PoolError::PoolFull)
    );
    submit(&pool, &s, xt("Alice", 0, 10)).unwrap();
    submit(&pool, &s, xt("Bob", 0, 20)).unwrap();
    // Full: the future transaction goes first.
    submit(&pool, &s, xt("Charlie", 0, 1)).unwrap();
    assert_eq!(future_watch.try_recv().unwrap(), TxStatus::Dropped);
    // Full again, all ready: a newcomer must outbid the cheapest tail (Charlie, tip 1).
    assert_eq!(
        submit(&pool, &s, xt("Dave", 0, 1)),
        Err(PoolError::PoolFull)
    );
    submit(&pool, &s, xt("Dave", 0, 2)).unwrap();
    let senders: Vec<_> = order(&pool).into_iter().map(|(a, _)| a).collect();
    assert!(!senders.contains(&Pair::dev("Charlie").public()));
    assert_eq!(pool.len(), 3);
}

#[test]
fn committed_block_reports_and_prunes() {
    let (s, pool) = (state(), TxPool::new(chain(), PoolLimits::default()));
    let a0 = submit(&pool, &s, xt("Alice", 0, 0)).unwrap().hash;
    let a1 = submit(&pool, &s, xt("Alice", 1, 0)).unwrap().hash;
    let b0 = submit(&pool, &s, xt("Bob", 0, 0)).unwrap().hash;
    let mut w0 = pool.watch(&a0).unwrap();
    let mut w1 = pool.watch(&a1).unwrap();

    // A block included Alice's nonce 0 and, from another node, something that used her nonce 1.
    let mut after = s.clone();
    after.insert(
        system::nonce_key(&Pair::dev("Alice").public()),
        2u64.encode(),
    );
    let block = Hash::of(b"block 1");
    pool.on_block_committed(&after, block, 1, &[a0], nonce_of);
    assert_eq!(w0.try_recv().unwrap(), TxStatus::InBlock(block));
    assert_eq!(w0.try_recv().unwrap(), TxStatus::Finalized(block));
    assert_eq!(w1.try_recv().unwrap(), TxStatus::Dropped);
    assert_eq!(
        pool.pending().iter().map(|t| t.hash).collect::<Vec<_>>(),
        vec![b0]
    );

    // Expiry: Bob's transaction is valid until block 100.
    pool.on_block_committed(&after, Hash::of(b"block 100"), 100, &[], nonce_of);
    assert!(pool.is_empty());
    assert_eq!(pool.bytes(), 0);
}

#[test]
fn invalid_at_build_time_is_removed_and_reported() {
    let (s, pool) = (state(), TxPool::new(chain(), PoolLimits::default()));
    let h = submit(&pool, &s, xt("Alice", 0, 0)).unwrap().hash;
    let mut w = pool.watch(&h).unwrap();
    pool.remove_invalid(&h);
    assert_eq!(w.try_recv().unwrap(), TxStatus::Invalid);
    assert!(pool.is_empty());
    assert!(pool.watch(&h).is_none());
}

#[test]
fn a_batch_gets_the_verdicts_one_by_one_submission_would() {
    let s = state();
    let mut forged = xt("Bob", 0, 0);
    forged.signature.0[10] ^= 1;
    let other_chain = {
        let call = Call::Balances(balances::Call::Transfer {
            dest: Pair::dev("Eve").public(),
            amount: 1,
        });
        let mut chain = chain();
        chain.genesis_hash = Hash::of(b"another chain");
        Extrinsic::sign(&Pair::dev("Dave"), call, 0, 100, 0, chain)
    };
    let batch = vec![
        xt("Alice", 0, 0),
        forged,
        xt("Alice", 0, 0), // the same bytes again
        xt("Charlie", 1, 0),
        other_chain,
        xt("Alice", 1, 0),
        xt("Charlie", 0, 0),
    ];
    let one_by_one = {
        let pool = TxPool::new(chain(), PoolLimits::default());
        batch
            .iter()
            .map(|x| submit(&pool, &s, x.clone()))
            .collect::<Vec<_>>()
    };
    let pool = TxPool::new(chain(), PoolLimits::default());
    let together = pool.submit_many(
        &s,
        1,
        batch
            .iter()
            .map(|x| (x.clone(), x.encoded_size()))
            .collect(),
    );
    assert_eq!(together, one_by_one);
    let bad = PoolError::Invalid(InvalidTransaction::BadSignature);
    assert_eq!(together[1], Err(bad.clone()));
    assert!(matches!(together[2], Err(PoolError::AlreadyImported(_))));
    assert_eq!(together[4], Err(bad));
    assert_eq!(together[3].as_ref().unwrap().status, TxStatus::Future);
    let (alice, charlie) = (Pair::dev("Alice").public(), Pair::dev("Charlie").public());
    assert_eq!(
        order(&pool),
        vec![(alice, 0), (alice, 1), (charlie, 0), (charlie, 1)]
    );
}

/// Each transaction alone can pay its fee; together they cannot: the pool takes only what
/// the balance covers (an account could otherwise fill every pool with transactions only the
/// first of which would ever pay).
#[test]
fn fees_of_one_sender_are_summed_against_its_balance() {
    let one = xt("Alice", 0, 0);
    let fee = gridchain_runtime::extrinsic_fee(&one, one.encoded_size());
    let s = state_of(&[("Alice", fee * 2 + fee / 2)]);
    let pool = TxPool::new(chain(), PoolLimits::default());
    submit(&pool, &s, one).unwrap();
    submit(&pool, &s, xt("Alice", 1, 0)).unwrap();
    assert!(matches!(
        submit(&pool, &s, xt("Alice", 2, 0)),
        Err(PoolError::Invalid(InvalidTransaction::Payment { needed, .. })) if needed == 3 * fee
    ));
    assert_eq!(pool.len(), 2);
    // A replacement counts instead of the transaction it replaces, not beside it.
    submit(&pool, &s, xt("Alice", 1, fee / 4)).unwrap();
    assert_eq!(pool.len(), 2);
}

#[test]
fn one_sender_holds_at_most_max_per_sender() {
    let limits = PoolLimits {
        max_per_sender: 3,
        ..PoolLimits::default()
    };
    let (s, pool) = (state(), TxPool::new(chain(), limits));
    for nonce in 0..3 {
        submit(&pool, &s, xt("Alice", nonce, 0)).unwrap();
    }
    assert_eq!(
        submit(&pool, &s, xt("Alice", 3, 0)),
        Err(PoolError::TooManyFromSender(3))
    );
    // Replacing one of its own is still allowed, and other senders are not affected.
    submit(&pool, &s, xt("Alice", 2, 5)).unwrap();
    submit(&pool, &s, xt("Bob", 0, 0)).unwrap();
    assert_eq!(pool.len(), 4);
}

proptest::proptest! {
    /// Whatever is submitted, evicted and committed, the incremental indexes (future count,
    /// senders with future transactions, chain tails, per-sender fees) equal what a full walk
    /// of the queues gives.
    #[test]
    fn indexes_match_the_queues(
        ops in proptest::collection::vec((0usize..4, 0u64..6, 0u128..4, proptest::bool::ANY), 1..80),
    ) {
        let names = ["Alice", "Bob", "Charlie", "Dave"];
        let limits = PoolLimits { max_count: 8, max_bytes: usize::MAX, max_future: 3, max_per_sender: 4 };
        let (s, pool) = (state(), TxPool::new(chain(), limits));
        for (who, nonce, tip, commit) in ops {
            let _ = submit(&pool, &s, xt(names[who], nonce, tip));
            if commit {
                let first = pool.ready(1);
                let included: Vec<Hash> = first.iter().map(|t| t.hash).collect();
                pool.on_block_committed(&s, Hash::of(b"b"), 1, &included, nonce_of);
            }
            let inner = pool.inner.lock();
            let future: usize = inner.senders.values().map(|q| q.by_nonce.len() - q.ready_len()).sum();
            proptest::prop_assert_eq!(inner.future_total, future);
            let with_future: BTreeSet<AccountId> = inner.senders.iter()
                .filter(|(_, q)| q.by_nonce.len() > q.ready_len()).map(|(a, _)| *a).collect();
            proptest::prop_assert_eq!(&inner.with_future, &with_future);
            let tails: BTreeSet<TailKey> = inner.senders.values().filter_map(|q| q.stats().tail).collect();
            proptest::prop_assert_eq!(&inner.tails, &tails);
            for q in inner.senders.values() {
                proptest::prop_assert_eq!(q.fees, q.by_nonce.values().map(|t| t.fee).sum::<u128>());
            }
            proptest::prop_assert_eq!(inner.by_hash.len(), inner.senders.values().map(|q| q.by_nonce.len()).sum::<usize>());
        }
    }
}
