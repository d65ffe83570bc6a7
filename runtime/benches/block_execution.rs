//! Block execution cost: a block of N signed transfers from many senders, split into signature
//! checking (parallel, batched `verify_signatures`; and on one core, each signature alone vs
//! batches) and execution (`BlockBuilder::push` without signature checks). Run: `cargo bench -p gridchain-runtime --bench block_execution`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use gridchain_primitives::{signature::SignatureBatch, ChainContext, Hash, Pair};
use gridchain_runtime::*;
use parity_scale_codec::Encode;
use std::collections::BTreeMap;

const SENDERS: usize = 1_000;

fn setup(n: usize) -> (BTreeMap<Vec<u8>, Vec<u8>>, ChainContext, Vec<Extrinsic>) {
    let chain = ChainContext {
        genesis_hash: Hash::of(b"bench"),
        spec_version: SPEC_VERSION,
    };
    let senders: Vec<Pair> = (0..SENDERS)
        .map(|i| Pair::dev(&format!("sender{i}")))
        .collect();
    let config = GenesisConfig {
        balances: senders
            .iter()
            .map(|p| (p.public(), 1_000_000_000_000_000_000))
            .collect(),
        ..Default::default()
    };
    let state: BTreeMap<_, _> = build_genesis(&config)
        .unwrap()
        .into_iter()
        .map(|(k, v)| (k, v.unwrap()))
        .collect();
    let dest = Pair::dev("Dest").public();
    let xts = (0..n)
        .map(|i| {
            let call = Call::Balances(balances::Call::Transfer { dest, amount: 1 });
            Extrinsic::sign(
                &senders[i % SENDERS],
                call,
                (i / SENDERS) as u64,
                1_000,
                0,
                chain,
            )
        })
        .collect();
    (state, chain, xts)
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("block");
    group.sample_size(10);
    for n in [1_000usize, 10_000] {
        let (state, chain, xts) = setup(n);
        let lens: Vec<usize> = xts.iter().map(|x| x.encoded_size()).collect();
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::new("verify_signatures", n), &n, |b, _| {
            b.iter(|| verify_signatures(chain, &xts).unwrap())
        });
        // One core, to compare checking each signature alone with checking them as batches.
        group.bench_with_input(
            BenchmarkId::new("signatures_one_by_one_1core", n),
            &n,
            |b, _| b.iter(|| assert!(xts.iter().all(|xt| xt.verify_signature(chain)))),
        );
        group.bench_with_input(
            BenchmarkId::new("signatures_batched_1core", n),
            &n,
            |b, _| {
                b.iter(|| {
                    let mut batch = SignatureBatch::with_capacity(xts.len());
                    xts.iter()
                        .for_each(|xt| xt.queue_signature(chain, &mut batch));
                    assert_eq!(batch.first_invalid(), None)
                })
            },
        );
        group.bench_with_input(
            BenchmarkId::new("execute_without_signatures", n),
            &n,
            |b, _| {
                b.iter(|| {
                    let mut builder =
                        BlockBuilder::new(&state, chain, Hash::ZERO, 1, 1, Pair::dev("P").public())
                            .unwrap();
                    for (xt, len) in xts.iter().zip(&lens) {
                        builder.push(xt.clone(), *len, false).unwrap().unwrap();
                    }
                    builder.finish()
                })
            },
        );
        let block = {
            let mut builder =
                BlockBuilder::new(&state, chain, Hash::ZERO, 1, 1, Pair::dev("P").public())
                    .unwrap();
            for (xt, len) in xts.iter().zip(&lens) {
                builder.push(xt.clone(), *len, false).unwrap().unwrap();
            }
            let built = builder.finish();
            Block {
                header: built.header(Hash::ZERO),
                extrinsics: built.extrinsics,
            }
        };
        group.bench_with_input(BenchmarkId::new("execute_block", n), &n, |b, _| {
            b.iter(|| execute_block(&state, chain, &block).unwrap())
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
