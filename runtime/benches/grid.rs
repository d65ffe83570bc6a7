//! Grid block costs: a block of 1,000 `reserve` calls, a block of 1,000 `report_capacity` calls
//! (both executed without signature checks, which `block_execution` measures), and the
//! per-block billing settlement with 100,000 active, billed reservations (live parameters: one
//! of 600 buckets, ~167 reservations, per block).
//! Run: `cargo bench -p gridchain-runtime --bench grid`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use gridchain_primitives::{AccountId, ChainContext, Hash, Pair, StateChanges};
use gridchain_runtime::{
    reservations::{Deployment, ResultData, Workload, WorkloadResult, WorkloadSpec, WorkloadState},
    tfgrid::{Location, PricingPolicy, Resources, GIB},
    *,
};
use parity_scale_codec::Encode;
use std::collections::BTreeMap;

const NODES: usize = 1_000;
const USERS: usize = 1_000;
const T0: u64 = 1_700_000_000_000;

type State = BTreeMap<Vec<u8>, Vec<u8>>;

fn apply(state: &mut State, changes: StateChanges) {
    for (k, v) in changes {
        match v {
            Some(v) => state.insert(k, v),
            None => state.remove(&k),
        };
    }
}

fn small_deployment() -> Deployment {
    Deployment {
        metadata: String::new(),
        workloads: vec![Workload {
            name: "vol".into(),
            spec: WorkloadSpec::Volume { size: GIB },
        }],
    }
}

struct Grid {
    state: State,
    chain: ChainContext,
    nodes: Vec<Pair>,
    users: Vec<Pair>,
}

/// Live grid parameters, `NODES` Up nodes (1 TB SSD each) on one farm, `USERS` funded users with
/// twins, and `reservations` Deployed reservations spread over users and nodes.
fn grid(reservations: usize) -> Grid {
    let chain = ChainContext {
        genesis_hash: Hash::of(b"bench"),
        spec_version: SPEC_VERSION,
    };
    let nodes: Vec<Pair> = (0..NODES).map(|i| Pair::dev(&format!("node{i}"))).collect();
    let users: Vec<Pair> = (0..USERS).map(|i| Pair::dev(&format!("user{i}"))).collect();
    let farmer = Pair::dev("Farmer").public();
    let mut balances: Vec<(AccountId, u128)> = users
        .iter()
        .chain(&nodes)
        .map(|p| (p.public(), 1_000_000_000_000_000_000))
        .collect();
    balances.push((farmer, 1));
    let config = GenesisConfig {
        balances,
        grid: GridGenesis {
            pricing_policies: vec![PricingPolicy {
                id: 1,
                name: "bench".into(),
                cu_per_hour: 100_000_000_000,
                su_per_hour: 50_000_000_000,
                nu_per_gb: 0,
                ipu_per_hour: 0,
            }],
            farms: vec![GenesisFarm {
                owner: farmer,
                twin_name: "farmer".into(),
                name: "farm".into(),
                pricing_policy_id: 1,
                allowed_nodes: nodes.iter().map(Pair::public).collect(),
            }],
            ..Default::default()
        },
        ..Default::default()
    };
    let mut state: State = build_genesis(&config)
        .unwrap()
        .into_iter()
        .map(|(k, v)| (k, v.unwrap()))
        .collect();
    let changes = {
        let mut ctx: Context = Context::new(gridchain_primitives::Overlay::new(&state));
        timestamp::on_initialize(&mut ctx, T0).unwrap();
        for (i, p) in users.iter().enumerate() {
            twins::create_twin(&mut ctx, p.public(), format!("user{i}"), String::new()).unwrap();
        }
        for (i, p) in nodes.iter().enumerate() {
            twins::create_twin(&mut ctx, p.public(), format!("node{i}"), String::new()).unwrap();
            let resources = Resources {
                cru: 64,
                mru: 256 * GIB,
                sru: 1_000 * GIB,
                hru: 0,
            };
            let id = tfgrid::register_node(
                &mut ctx,
                p.public(),
                1,
                resources,
                Location::default(),
                None,
            )
            .unwrap();
            let mut health = tfgrid::health(&ctx, id);
            tfgrid::record_proof(&mut health, T0, tfgrid::config(&ctx).capacity_period_ms);
            tfgrid::put_health(&mut ctx, id, &health);
        }
        for i in 0..reservations {
            let node_id = (i % NODES) as u32 + 1;
            let id = reservations::reserve(
                &mut ctx,
                users[i % USERS].public(),
                node_id,
                small_deployment(),
            )
            .unwrap();
            reservations::dispatch(
                &mut ctx,
                nodes[i % NODES].public(),
                reservations::Call::ReportResults {
                    id,
                    version: 1,
                    results: vec![WorkloadResult {
                        name: "vol".into(),
                        state: WorkloadState::Ok,
                        message: String::new(),
                        data: ResultData::None,
                    }],
                },
            )
            .unwrap();
        }
        ctx.into_parts().0
    };
    apply(&mut state, changes);
    Grid {
        state,
        chain,
        nodes,
        users,
    }
}

fn execute(grid: &Grid, number: u64, xts: &[(Extrinsic, usize)]) -> BuiltBlock {
    let mut builder = BlockBuilder::new(
        &grid.state,
        grid.chain,
        Hash::ZERO,
        number,
        T0 + 1_000,
        Pair::dev("P").public(),
    )
    .unwrap();
    for (xt, len) in xts {
        builder.push(xt.clone(), *len, false).unwrap().unwrap();
    }
    builder.finish()
}

fn signed_block(grid: &Grid, calls: Vec<(Pair, Call)>) -> Vec<(Extrinsic, usize)> {
    calls
        .into_iter()
        .map(|(pair, call)| {
            let xt = Extrinsic::sign(&pair, call, 0, 1_000, 0, grid.chain);
            let len = xt.encoded_size();
            (xt, len)
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("grid");
    group.sample_size(10);

    let g = grid(0);
    // Block 1 settles bucket 1: empty here.
    let reserves = signed_block(
        &g,
        (0..1_000)
            .map(|i| {
                let call = Call::Reservations(reservations::Call::Reserve {
                    node_id: (i % NODES) as u32 + 1,
                    deployment: small_deployment(),
                });
                (g.users[i % USERS].clone(), call)
            })
            .collect(),
    );
    group.throughput(Throughput::Elements(1_000));
    group.bench_function(BenchmarkId::new("reserve_block", 1_000), |b| {
        b.iter(|| {
            let block = execute(&g, 1, &reserves);
            assert_eq!(block.extrinsics.len(), 1_000);
            block
        })
    });
    let proofs = signed_block(
        &g,
        g.nodes
            .iter()
            .map(|p| {
                let call = Call::Capacity(capacity::Call::ReportCapacity {
                    measured: Resources {
                        cru: 64,
                        mru: 256 * GIB,
                        sru: 1_000 * GIB,
                        hru: 0,
                    },
                    used: Resources::default(),
                    uptime_seconds: 3_600,
                    timestamp_ms: T0 + 1_000,
                });
                (p.clone(), call)
            })
            .collect(),
    );
    group.bench_function(BenchmarkId::new("report_capacity_block", 1_000), |b| {
        b.iter(|| execute(&g, 1, &proofs))
    });

    let g = grid(100_000);
    let buckets = reservations::ReservationsConfig::default().settlement_buckets as u64;
    // Block numbers ≡ 1 (mod 600) settle bucket 1.
    let number = buckets + 1;
    let settled = {
        let block = execute(&g, number, &[]);
        block
            .events
            .iter()
            .filter(|r| matches!(r.event, Event::Billing(billing::Event::Charged { .. })))
            .count()
    };
    println!("settlement block charges {settled} of 100000 reservations");
    assert!(settled > 100 && settled <= 1_000);
    group.throughput(Throughput::Elements(settled as u64));
    group.bench_function(
        BenchmarkId::new("settlement_block_of_100000_active", settled),
        |b| b.iter(|| execute(&g, number, &[])),
    );
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
