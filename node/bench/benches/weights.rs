//! # Call weights
//!
//! Measures what every call of the runtime costs a validator, in its worst case within the
//! chain's bounds, on a RocksDB-backed state (`gridchain-storage`, as a node runs it), and writes
//! `runtime/src/weights.rs` (the model is in `runtime/src/weight.rs`):
//!
//! - `compute`: criterion times `BlockBuilder::push` of one signed extrinsic (nonce check, fee,
//!   dispatch with its state reads from RocksDB, events; no signature check) on a state prepared
//!   so the call does the most work the chain allows: a farm with 999 nodes and 255 public IPs, a
//!   candidate list one short of full, 31 unbonding chunks, the largest deployment…
//! - `per_byte`: for calls whose work grows with their data (remark, reserve, reserve many,
//!   update, report results), the slope between a small and a large instance.
//! - `writes`: the state keys the call changed, each priced at `DB_WRITE`, which is measured
//!   here too: preparing the Jellyfish Merkle tree update and committing a block that changes
//!   1,000 existing keys, per key.
//!
//! Run: `cargo bench -p gridchain-bench --bench weights` (criterion's report per call), and
//! `GRIDCHAIN_WRITE_WEIGHTS=$PWD/runtime/src/weights.rs cargo bench -p gridchain-bench --bench weights`
//! to rewrite the weights from the medians of this run. Weights are only comparable when
//! measured on the same machine; the file records where and when.

use criterion::Criterion;
use gridchain_chain_spec::ChainSpec;
use gridchain_primitives::{finality::CommitCertificate, AccountId, ChainContext, Hash, Pair};
use gridchain_runtime::{
    balances, build_genesis, capacity, genesis_header,
    reservations::{
        self, Deployment, EnvValue, EnvVar, Mount, ReserveRequest, ResultData, Workload,
        WorkloadResult, WorkloadSpec, WorkloadState,
    },
    system, tfgrid,
    tfgrid::{Location, PublicConfig, Resources, GIB},
    twins, validators, Block, BlockBuilder, BuiltBlock, Call, Extrinsic, SPEC_VERSION,
};
use gridchain_storage::Storage;
use parity_scale_codec::Encode;
use std::{
    collections::{BTreeMap, HashMap},
    fmt::Write as _,
    time::{Duration, Instant},
};

const UNIT: u128 = 1_000_000_000_000;
/// Funded accounts besides the actors, so the database is not trivially small.
const FILLERS: usize = 20_000;
const BLOCK_TIME_MS: u64 = 1_000;

/// A chain on a real database, advanced by real blocks.
struct World {
    storage: Storage,
    _dir: tempfile::TempDir,
    chain: ChainContext,
    parent: Hash,
    number: u64,
    timestamp_ms: u64,
    nonces: HashMap<AccountId, u64>,
}

fn filler(i: usize) -> Pair {
    Pair::dev(&format!("filler{i}"))
}

impl World {
    fn new(spec: &ChainSpec, extra: &[AccountId]) -> World {
        let dir = tempfile::tempdir().expect("temp dir");
        let storage = Storage::open(dir.path()).expect("open storage");
        let mut config = spec.genesis_config();
        config
            .balances
            .extend((0..FILLERS).map(|i| (filler(i).public(), 10_000 * UNIT)));
        config
            .balances
            .extend(extra.iter().map(|a| (*a, 1_000_000 * UNIT)));
        let changes = build_genesis(&config).expect("genesis");
        let prepared = storage.prepare_state(&changes, 0).expect("prepare genesis");
        let header = genesis_header(prepared.root);
        storage
            .commit_genesis(&header, &changes, prepared)
            .expect("commit genesis");
        World {
            storage,
            _dir: dir,
            chain: ChainContext {
                genesis_hash: header.hash(),
                spec_version: SPEC_VERSION,
            },
            parent: header.hash(),
            number: 0,
            timestamp_ms: 1_700_000_000_000,
            nonces: HashMap::new(),
        }
    }

    fn builder(&self) -> BlockBuilder<'_> {
        BlockBuilder::new(
            &self.storage,
            self.chain,
            self.parent,
            self.number + 1,
            self.timestamp_ms + BLOCK_TIME_MS,
            Pair::dev("Alice").public(),
        )
        .expect("block starts")
    }

    fn commit(&mut self, built: BuiltBlock) {
        let prepared = self
            .storage
            .prepare_state(&built.changes, built.number)
            .expect("prepare state");
        let header = built.header(prepared.root);
        let block = Block {
            header: header.clone(),
            extrinsics: built.extrinsics,
        };
        let certificate = CommitCertificate {
            height: header.number,
            round: 0,
            block_hash: header.hash(),
            signatures: vec![],
        };
        self.storage
            .commit_block_unsynced(&block, &certificate, &built.changes, prepared)
            .expect("commit");
        self.parent = header.hash();
        self.number = header.number;
        self.timestamp_ms = header.timestamp_ms;
    }

    /// Signs `call` by `who` with its next nonce, without using the nonce up.
    fn sign_next(&self, who: &Pair, call: Call) -> Extrinsic {
        let nonce = self.nonces.get(&who.public()).copied().unwrap_or(0);
        Extrinsic::sign(who, call, nonce, u64::MAX, 0, self.chain)
    }

    /// Applies `calls` in as many blocks as they need; every call must succeed.
    fn run(&mut self, calls: Vec<(Pair, Call)>) {
        let mut calls = calls.into_iter().peekable();
        while calls.peek().is_some() {
            let mut nonces = std::mem::take(&mut self.nonces);
            let mut builder = self.builder();
            let mut included = 0;
            while let Some((who, call)) = calls.peek() {
                let nonce = nonces.entry(who.public()).or_default();
                let xt = Extrinsic::sign(who, call.clone(), *nonce, u64::MAX, 0, self.chain);
                let len = xt.encoded_size();
                match builder.push(xt, len, false) {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => panic!("setup call {call:?} failed: {e:?}"),
                    Err(gridchain_runtime::InvalidTransaction::ExhaustsResources) => break,
                    Err(e) => panic!("setup call {call:?} refused: {e}"),
                }
                *nonce += 1;
                included += 1;
                calls.next();
            }
            assert!(included > 0, "a setup call does not fit in an empty block");
            let built = builder.finish();
            self.nonces = nonces;
            self.commit(built);
        }
    }

    /// Empty blocks, to let time pass.
    fn advance(&mut self, blocks: u64) {
        for _ in 0..blocks {
            let built = self.builder().finish();
            self.commit(built);
        }
    }
}

/// What one measured extrinsic gives.
struct Sample {
    len: usize,
    /// Median over criterion's samples, ns.
    median_ns: f64,
    spread_ns: (f64, f64),
    writes: usize,
}

/// Times pushing `call` signed by `who` onto a fresh block over `world`'s state, and counts the
/// keys it changes.
fn measure(c: &mut Criterion, world: &World, id: &str, who: &Pair, call: Call) -> Sample {
    let xt = world.sign_next(who, call);
    let len = xt.encoded_size();
    let empty_changes = world.builder().finish().changes.len();
    let writes = {
        let mut builder = world.builder();
        let outcome = builder.push(xt.clone(), len, false).expect("included");
        assert_eq!(outcome, Ok(()), "{id}: the measured call must succeed");
        builder.finish().changes.len().saturating_sub(empty_changes)
    };
    let mut per_sample: Vec<f64> = Vec::new();
    c.bench_function(id, |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let mut builder = world.builder();
                let xt = xt.clone();
                let start = Instant::now();
                let outcome = builder.push(xt, len, false);
                total += start.elapsed();
                debug_assert!(matches!(outcome, Ok(Ok(()))));
                drop(builder);
            }
            per_sample.push(total.as_nanos() as f64 / iters as f64);
            total
        })
    });
    per_sample.sort_by(f64::total_cmp);
    Sample {
        len,
        median_ns: per_sample[per_sample.len() / 2],
        spread_ns: (per_sample[0], per_sample[per_sample.len() - 1]),
        writes,
    }
}

/// Cost of one changed key at commit, in a block as large as full blocks are: 10,000 transfers
/// (about 30,000 changed keys) prepared (tree update) and committed, per key.
fn measure_db_write(c: &mut Criterion, world: &mut World) -> f64 {
    const TRANSFERS: usize = 10_000;
    let mut per_sample: Vec<f64> = Vec::new();
    let mut round = 0usize;
    let mut group = c.benchmark_group("db");
    group.sample_size(10);
    group.bench_function("write_per_key", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut keys = 0usize;
            for _ in 0..iters {
                round += 1;
                let (built, _) = transfer_block(world, TRANSFERS, round);
                keys += built.changes.len();
                let start = Instant::now();
                world.commit(built);
                total += start.elapsed();
            }
            per_sample.push(total.as_nanos() as f64 / keys as f64);
            total
        })
    });
    group.finish();
    per_sample.sort_by(f64::total_cmp);
    per_sample[per_sample.len() / 2]
}

/// A block of up to `max` transfers between fillers (stopping early at the weight limit), and
/// the time its pushes took.
fn transfer_block(world: &mut World, max: usize, round: usize) -> (BuiltBlock, Duration) {
    let mut nonces = std::mem::take(&mut world.nonces);
    let mut builder = world.builder();
    let mut pushing = Duration::ZERO;
    for i in 0..max {
        let from = filler(i % FILLERS);
        let call = Call::Balances(balances::Call::Transfer {
            dest: filler((i + round) % FILLERS).public(),
            amount: 1,
        });
        let nonce = nonces.entry(from.public()).or_default();
        let xt = Extrinsic::sign(&from, call, *nonce, u64::MAX, 0, world.chain);
        let len = xt.encoded_size();
        let start = Instant::now();
        let pushed = builder.push(xt, len, false);
        pushing += start.elapsed();
        match pushed {
            Ok(outcome) => outcome.expect("a filler can pay"),
            Err(gridchain_runtime::InvalidTransaction::ExhaustsResources) => break,
            Err(e) => panic!("transfer refused: {e}"),
        }
        *nonce += 1;
    }
    let built = builder.finish();
    world.nonces = nonces;
    (built, pushing)
}

/// How the weights compiled into this runtime compare with the time a full block of transfers
/// takes to apply and commit here.
fn calibration(world: &mut World) -> String {
    let mut lines = Vec::new();
    for round in 0..3 {
        let (built, pushing) = transfer_block(world, usize::MAX, 7 + round);
        let count = built.extrinsics.len();
        let weight: u64 = built
            .extrinsics
            .iter()
            .map(|xt| gridchain_runtime::weight::extrinsic_weight(&xt.call, xt.encoded_size()))
            .sum();
        let start = Instant::now();
        world.commit(built);
        let took = pushing + start.elapsed();
        lines.push(format!(
            "a full block of {count} transfers weighs {:.3} s; applying and committing it took {:.3} s ({:.0} %)",
            weight as f64 / 1e12,
            took.as_secs_f64(),
            100.0 * took.as_secs_f64() / (weight as f64 / 1e12)
        ));
    }
    lines.join("\n")
}

fn location() -> Location {
    Location {
        country: "Belgium".into(),
        city: "Lochristi".into(),
        latitude: "51.0966".into(),
        longitude: "3.8357".into(),
    }
}

fn public_config() -> PublicConfig {
    PublicConfig {
        ipv4: "185.69.166.10/24".into(),
        gw4: "185.69.166.1".into(),
        ipv6: Some("2a02:1802:5e::10/64".into()),
        domain: Some("gateway.node.example".into()),
    }
}

fn node_resources() -> Resources {
    Resources {
        cru: 256,
        mru: 2_048 * GIB,
        sru: 64_000 * GIB,
        hru: 0,
    }
}

/// A deployment of `workloads` workloads (half volumes, half containers mounting them, each
/// with four env values), as large as the chain accepts at 64.
fn deployment(workloads: usize) -> Deployment {
    let mut list = Vec::new();
    for i in 0..workloads {
        let volume = format!("vol{}", i / 2);
        if i % 2 == 0 {
            list.push(Workload {
                name: volume,
                spec: WorkloadSpec::Volume { size: GIB },
            });
        } else {
            list.push(Workload {
                name: format!("app{i}"),
                spec: WorkloadSpec::Container {
                    image: "registry.example/team/application:1.2.3".into(),
                    cpu: 1,
                    memory: GIB,
                    rootfs_size: 2 * GIB,
                    entrypoint: "/bin/server --port 8080 --verbose".into(),
                    env: (0..4)
                        .map(|e| EnvVar {
                            name: format!("SETTING_{e}"),
                            value: EnvValue::Plain("x".repeat(80)),
                        })
                        .collect(),
                    mounts: vec![Mount {
                        volume,
                        path: "/data".into(),
                    }],
                    networks: vec![],
                    registry_auth: None,
                    restart: Default::default(),
                    health_check: None,
                },
            });
        }
    }
    Deployment {
        metadata: "bench".into(),
        workloads: list,
    }
}

fn ok_results(deployment: &Deployment) -> Vec<WorkloadResult> {
    deployment
        .workloads
        .iter()
        .map(|w| WorkloadResult {
            name: w.name.clone(),
            state: WorkloadState::Ok,
            message: "running since the last report of this node".into(),
            data: match w.spec {
                WorkloadSpec::Container { .. } => ResultData::Container {
                    container_id: "0123456789abcdef".repeat(4),
                    ips: vec!["10.20.3.4".into()],
                    image_digest: String::new(),
                    restarts: 0,
                    limits: Default::default(),
                },
                _ => ResultData::None,
            },
        })
        .collect()
}

/// A call's figures, for `weights.rs`.
struct Figure {
    name: &'static str,
    compute_ns: f64,
    per_byte_ns: f64,
    writes: usize,
    /// Keys a larger instance writes beyond `writes`, per byte more it has: priced at
    /// `DB_WRITE` into `per_byte`, so a small instance does not pay for a large one's writes.
    writes_per_byte: f64,
    note: String,
}

fn fixed(name: &'static str, sample: Sample) -> Figure {
    Figure {
        name,
        compute_ns: sample.median_ns,
        per_byte_ns: 0.0,
        writes: sample.writes,
        writes_per_byte: 0.0,
        note: format!(
            "{} bytes: median {:.1} µs (samples {:.1}–{:.1} µs), {} keys written",
            sample.len,
            sample.median_ns / 1e3,
            sample.spread_ns.0 / 1e3,
            sample.spread_ns.1 / 1e3,
            sample.writes
        ),
    }
}

/// Intercept and slope through a small and a large instance of the same call.
fn sloped(name: &'static str, small: Sample, large: Sample) -> Figure {
    let extra_bytes = (large.len - small.len) as f64;
    let per_byte = ((large.median_ns - small.median_ns) / extra_bytes).max(0.0);
    Figure {
        name,
        compute_ns: (small.median_ns - per_byte * small.len as f64).max(0.0),
        per_byte_ns: per_byte,
        writes: small.writes,
        writes_per_byte: large.writes.saturating_sub(small.writes) as f64 / extra_bytes,
        note: format!(
            "{} bytes: median {:.1} µs, {} keys; {} bytes: median {:.1} µs, {} keys",
            small.len,
            small.median_ns / 1e3,
            small.writes,
            large.len,
            large.median_ns / 1e3,
            large.writes
        ),
    }
}

fn main() {
    let mut c = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args();

    let spec = gridchain_chain_spec::local();
    let alice = Pair::dev("Alice"); // farm 1's owner (genesis)
    let ferdie = Pair::dev("Ferdie"); // allowed on farm 1 (genesis)
    let user = Pair::dev("bench-user");
    let fresh = Pair::dev("bench-fresh"); // funded, nothing else
    let twin_only = Pair::dev("bench-twin-only");
    let staker = Pair::dev("bench-staker");
    let unbonder = Pair::dev("bench-unbonder");
    let withdrawer = Pair::dev("bench-withdrawer");
    let newcomer_node = Pair::dev("bench-node-newcomer");
    let actors: Vec<AccountId> = [
        &user,
        &fresh,
        &twin_only,
        &staker,
        &unbonder,
        &withdrawer,
        &newcomer_node,
    ]
    .iter()
    .map(|p| p.public())
    .collect();
    let mut world = World::new(&spec, &actors);
    let (staking, genesis_candidates) = {
        let ctx: gridchain_runtime::Context =
            gridchain_runtime::Context::new(gridchain_primitives::Overlay::new(&world.storage));
        (validators::config(&ctx), validators::candidates(&ctx).len())
    };
    let max_name = "n".repeat(twins::MAX_NAME_LEN);

    // ---- the worst case every measured call runs in ----
    let twin = |p: &Pair, name: String| {
        (
            p.clone(),
            Call::Twins(twins::Call::CreateTwin {
                name,
                endpoint: "e".repeat(twins::MAX_ENDPOINT_LEN),
            }),
        )
    };
    let mut setup = vec![
        twin(&user, "benchuser".into()),
        twin(&twin_only, "benchtwinonly".into()),
        twin(&ferdie, "ferdie".into()),
        twin(&newcomer_node, "benchnewcomer".into()),
    ];
    // Farm 1 one node short of full: Ferdie plus 998 fillers.
    let node_operators: Vec<Pair> = (0..tfgrid::MAX_FARM_NODES - 2).map(filler).collect();
    for (i, p) in node_operators.iter().enumerate() {
        setup.push(twin(p, format!("node{i}")));
        setup.push((
            alice.clone(),
            Call::Tfgrid(tfgrid::Call::AllowNode {
                farm_id: 1,
                account: p.public(),
            }),
        ));
    }
    setup.push((
        alice.clone(),
        Call::Tfgrid(tfgrid::Call::AllowNode {
            farm_id: 1,
            account: newcomer_node.public(),
        }),
    ));
    let register = |p: &Pair| {
        (
            p.clone(),
            Call::Tfgrid(tfgrid::Call::RegisterNode {
                farm_id: 1,
                resources: node_resources(),
                location: location(),
                public_config: Some(public_config()),
            }),
        )
    };
    setup.push(register(&ferdie));
    setup.extend(node_operators.iter().map(register));
    // Farm 1 one public IP short of full.
    for i in 0..tfgrid::MAX_FARM_IPS - 1 {
        setup.push((
            alice.clone(),
            Call::Tfgrid(tfgrid::Call::AddFarmIp {
                farm_id: 1,
                ip: format!("185.{}.{}.10/24", 100 + i / 200, i % 200),
                gateway: format!("185.{}.{}.1", 100 + i / 200, i % 200),
            }),
        ));
    }
    // The candidate list one short of full.
    let candidates: Vec<Pair> = (FILLERS + genesis_candidates + 1 - validators::MAX_CANDIDATES
        ..FILLERS)
        .map(filler)
        .collect();
    let bond = |p: &Pair| {
        (
            p.clone(),
            Call::Validators(validators::Call::Bond {
                amount: staking.min_bond,
            }),
        )
    };
    for p in &candidates {
        setup.push(bond(p));
        setup.push((
            p.clone(),
            Call::Validators(validators::Call::Validate {
                consensus_key: p.public(),
                commission: 10,
            }),
        ));
    }
    setup.push(bond(&staker));
    setup.push((
        unbonder.clone(),
        Call::Validators(validators::Call::Bond {
            amount: 100 * staking.min_bond,
        }),
    ));
    setup.push((
        withdrawer.clone(),
        Call::Validators(validators::Call::Bond {
            amount: 100 * staking.min_bond,
        }),
    ));
    world.run(setup);
    eprintln!(
        "setup: farm, nodes, IPs, candidates at block {}",
        world.number
    );

    // Unbonding chunks: one per block, 31 for the unbonder, 32 (all due) for the withdrawer.
    for chunk in 0..validators::MAX_UNBONDING_CHUNKS {
        let mut calls = vec![(
            withdrawer.clone(),
            Call::Validators(validators::Call::Unbond { amount: UNIT }),
        )];
        if chunk + 1 < validators::MAX_UNBONDING_CHUNKS {
            calls.push((
                unbonder.clone(),
                Call::Validators(validators::Call::Unbond { amount: UNIT }),
            ));
        }
        world.run(calls);
    }
    world.advance(staking.unbonding_period + 1);

    // Ferdie's node is up, and the user holds reservations on it.
    let now = world.timestamp_ms + BLOCK_TIME_MS;
    let report = |timestamp_ms: u64| {
        Call::Capacity(capacity::Call::ReportCapacity {
            measured: node_resources(),
            used: Resources::default(),
            uptime_seconds: 3_600,
            timestamp_ms,
        })
    };
    world.run(vec![(ferdie.clone(), report(now))]);
    let large = deployment(reservations::MAX_WORKLOADS);
    let small = deployment(1);
    let reserve = |deployment: Deployment| {
        Call::Reservations(reservations::Call::Reserve {
            node_id: 1,
            deployment,
        })
    };
    world.run(vec![
        (user.clone(), reserve(large.clone())), // reservation 1: updated, reported
        (user.clone(), reserve(large.clone())), // reservation 2: cancelled
    ]);
    world.run(vec![(
        ferdie.clone(),
        Call::Reservations(reservations::Call::ReportResults {
            id: 2,
            version: 1,
            results: ok_results(&large),
        }),
    )]);
    eprintln!("setup done at block {}", world.number);

    // ---- measurements ----
    let mut figures = Vec::new();
    let remark = |n: usize| {
        Call::System(system::Call::Remark {
            data: gridchain_primitives::Bytes(vec![7; n]),
        })
    };
    let s = measure(&mut c, &world, "system/remark/0", &user, remark(0));
    let l = measure(&mut c, &world, "system/remark/60000", &user, remark(60_000));
    figures.push(sloped("SYSTEM_REMARK", s, l));

    let transfer = Call::Balances(balances::Call::Transfer {
        dest: Pair::dev("bench-new-account").public(),
        amount: 10 * UNIT,
    });
    figures.push(fixed(
        "BALANCES_TRANSFER",
        measure(&mut c, &world, "balances/transfer", &fresh, transfer),
    ));
    let transfer_all = Call::Balances(balances::Call::TransferAll {
        dest: Pair::dev("bench-new-account").public(),
    });
    figures.push(fixed(
        "BALANCES_TRANSFER_ALL",
        measure(
            &mut c,
            &world,
            "balances/transfer_all",
            &fresh,
            transfer_all,
        ),
    ));

    let (_, create) = twin(&fresh, max_name.clone());
    figures.push(fixed(
        "TWINS_CREATE_TWIN",
        measure(&mut c, &world, "twins/create_twin", &fresh, create),
    ));
    let update_twin = Call::Twins(twins::Call::UpdateTwin {
        name: max_name.clone(),
        endpoint: "u".repeat(twins::MAX_ENDPOINT_LEN),
    });
    figures.push(fixed(
        "TWINS_UPDATE_TWIN",
        measure(&mut c, &world, "twins/update_twin", &user, update_twin),
    ));
    figures.push(fixed(
        "TWINS_DELETE_TWIN",
        measure(
            &mut c,
            &world,
            "twins/delete_twin",
            &twin_only,
            Call::Twins(twins::Call::DeleteTwin),
        ),
    ));

    let farm_name = "f".repeat(tfgrid::MAX_FIELD_LEN.min(twins::MAX_NAME_LEN));
    figures.push(fixed(
        "TFGRID_CREATE_FARM",
        measure(
            &mut c,
            &world,
            "tfgrid/create_farm",
            &user,
            Call::Tfgrid(tfgrid::Call::CreateFarm {
                name: farm_name.clone(),
                pricing_policy_id: 1,
            }),
        ),
    ));
    figures.push(fixed(
        "TFGRID_UPDATE_FARM",
        measure(
            &mut c,
            &world,
            "tfgrid/update_farm",
            &alice,
            Call::Tfgrid(tfgrid::Call::UpdateFarm {
                farm_id: 1,
                name: farm_name,
                payout: user.public(),
            }),
        ),
    ));
    figures.push(fixed(
        "TFGRID_ADD_FARM_IP",
        measure(
            &mut c,
            &world,
            "tfgrid/add_farm_ip",
            &alice,
            Call::Tfgrid(tfgrid::Call::AddFarmIp {
                farm_id: 1,
                ip: "185.250.250.10/24".into(),
                gateway: "185.250.250.1".into(),
            }),
        ),
    ));
    let last_ip = tfgrid::MAX_FARM_IPS - 2;
    figures.push(fixed(
        "TFGRID_REMOVE_FARM_IP",
        measure(
            &mut c,
            &world,
            "tfgrid/remove_farm_ip",
            &alice,
            Call::Tfgrid(tfgrid::Call::RemoveFarmIp {
                farm_id: 1,
                ip: format!("185.{}.{}.10/24", 100 + last_ip / 200, last_ip % 200),
            }),
        ),
    ));
    figures.push(fixed(
        "TFGRID_ALLOW_NODE",
        measure(
            &mut c,
            &world,
            "tfgrid/allow_node",
            &alice,
            Call::Tfgrid(tfgrid::Call::AllowNode {
                farm_id: 1,
                account: fresh.public(),
            }),
        ),
    ));
    figures.push(fixed(
        "TFGRID_DISALLOW_NODE",
        measure(
            &mut c,
            &world,
            "tfgrid/disallow_node",
            &alice,
            Call::Tfgrid(tfgrid::Call::DisallowNode {
                farm_id: 1,
                account: newcomer_node.public(),
            }),
        ),
    ));
    let (_, register_call) = register(&newcomer_node);
    figures.push(fixed(
        "TFGRID_REGISTER_NODE",
        measure(
            &mut c,
            &world,
            "tfgrid/register_node",
            &newcomer_node,
            register_call,
        ),
    ));
    figures.push(fixed(
        "TFGRID_UPDATE_NODE",
        measure(
            &mut c,
            &world,
            "tfgrid/update_node",
            &ferdie,
            Call::Tfgrid(tfgrid::Call::UpdateNode {
                resources: node_resources(),
                location: location(),
                public_config: Some(public_config()),
            }),
        ),
    ));
    // The farmer deletes the node that holds the user's reservations.
    figures.push(fixed(
        "TFGRID_DELETE_NODE",
        measure(
            &mut c,
            &world,
            "tfgrid/delete_node",
            &alice,
            Call::Tfgrid(tfgrid::Call::DeleteNode { node_id: 1 }),
        ),
    ));

    let s = measure(
        &mut c,
        &world,
        "reservations/reserve/1",
        &user,
        reserve(small.clone()),
    );
    let l = measure(
        &mut c,
        &world,
        "reservations/reserve/64",
        &user,
        reserve(large.clone()),
    );
    figures.push(sloped("RESERVATIONS_RESERVE", s, l));
    let many = |n: usize, deployment: &Deployment| {
        Call::Reservations(reservations::Call::ReserveMany {
            requests: (0..n)
                .map(|_| ReserveRequest {
                    node_id: 1,
                    deployment: deployment.clone(),
                })
                .collect(),
        })
    };
    let s = measure(
        &mut c,
        &world,
        "reservations/reserve_many/1",
        &user,
        many(1, &small),
    );
    let l = measure(
        &mut c,
        &world,
        "reservations/reserve_many/16x8",
        &user,
        many(reservations::MAX_BATCH, &deployment(8)),
    );
    figures.push(sloped("RESERVATIONS_RESERVE_MANY", s, l));
    let update = |deployment: Deployment| {
        Call::Reservations(reservations::Call::UpdateReservation { id: 1, deployment })
    };
    let s = measure(
        &mut c,
        &world,
        "reservations/update/1",
        &user,
        update(small.clone()),
    );
    let mut changed = large.clone();
    changed.metadata = "changed".into();
    let l = measure(
        &mut c,
        &world,
        "reservations/update/64",
        &user,
        update(changed),
    );
    figures.push(sloped("RESERVATIONS_UPDATE_RESERVATION", s, l));
    figures.push(fixed(
        "RESERVATIONS_CANCEL_RESERVATION",
        measure(
            &mut c,
            &world,
            "reservations/cancel",
            &user,
            Call::Reservations(reservations::Call::CancelReservation { id: 2 }),
        ),
    ));
    let results = |n: usize| {
        Call::Reservations(reservations::Call::ReportResults {
            id: 1,
            version: 1,
            results: ok_results(&large).into_iter().take(n).collect(),
        })
    };
    let s = measure(
        &mut c,
        &world,
        "reservations/report_results/1",
        &ferdie,
        results(1),
    );
    let l = measure(
        &mut c,
        &world,
        "reservations/report_results/64",
        &ferdie,
        results(reservations::MAX_WORKLOADS),
    );
    figures.push(sloped("RESERVATIONS_REPORT_RESULTS", s, l));

    let proof_time = world.timestamp_ms + BLOCK_TIME_MS;
    figures.push(fixed(
        "CAPACITY_REPORT_CAPACITY",
        measure(
            &mut c,
            &world,
            "capacity/report_capacity",
            &ferdie,
            report(proof_time),
        ),
    ));

    figures.push(fixed(
        "VALIDATORS_BOND",
        measure(&mut c, &world, "validators/bond", &fresh, bond(&fresh).1),
    ));
    figures.push(fixed(
        "VALIDATORS_UNBOND",
        measure(
            &mut c,
            &world,
            "validators/unbond",
            &unbonder,
            Call::Validators(validators::Call::Unbond { amount: UNIT }),
        ),
    ));
    figures.push(fixed(
        "VALIDATORS_WITHDRAW_UNBONDED",
        measure(
            &mut c,
            &world,
            "validators/withdraw_unbonded",
            &withdrawer,
            Call::Validators(validators::Call::WithdrawUnbonded),
        ),
    ));
    figures.push(fixed(
        "VALIDATORS_VALIDATE",
        measure(
            &mut c,
            &world,
            "validators/validate",
            &staker,
            Call::Validators(validators::Call::Validate {
                consensus_key: staker.public(),
                commission: 10,
            }),
        ),
    ));
    figures.push(fixed(
        "VALIDATORS_CHILL",
        measure(
            &mut c,
            &world,
            "validators/chill",
            &candidates[0],
            Call::Validators(validators::Call::Chill),
        ),
    ));

    let db_write_ns = measure_db_write(&mut c, &mut world);
    c.final_summary();
    eprintln!("{}", calibration(&mut world));

    let text = render(&figures, db_write_ns);
    eprintln!("{text}");
    if let Some(path) = std::env::var_os("GRIDCHAIN_WRITE_WEIGHTS") {
        std::fs::write(&path, text).expect("write weights.rs");
        eprintln!("wrote {}", std::path::Path::new(&path).display());
    }
}

fn render(figures: &[Figure], db_write_ns: f64) -> String {
    let ps = |ns: f64| (ns * 1_000.0).round() as u64;
    let date = std::process::Command::new("date")
        .arg("-u")
        .arg("+%Y-%m-%d")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "//! Measured call weights (picoseconds; the model is in `weight.rs`). GENERATED by\n\
         //! `GRIDCHAIN_WRITE_WEIGHTS=$PWD/runtime/src/weights.rs cargo bench -p gridchain-bench --bench weights`\n\
         //! on {date}, {} cores, the reference machine (medians of criterion's samples, worst cases\n\
         //! as `node/bench/benches/weights.rs` prepares them). Do not edit by hand.\n",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let _ = writeln!(out, "use crate::weight::{{CallWeight, Weight}};\n");
    let _ = writeln!(
        out,
        "/// One state key changed by a call: its tree path and versioned value at commit \
         ({db_write_ns:.0} ns).\npub const DB_WRITE: Weight = {};\n",
        ps(db_write_ns)
    );
    let by_name: BTreeMap<&str, &Figure> = figures.iter().map(|f| (f.name, f)).collect();
    for (name, f) in by_name {
        let _ = writeln!(
            out,
            "/// {}\npub const {name}: CallWeight = CallWeight {{\n    compute: {},\n    per_byte: {},\n    writes: {},\n}};\n",
            f.note,
            ps(f.compute_ns),
            ps(f.per_byte_ns + f.writes_per_byte * db_write_ns),
            f.writes
        );
    }
    out.trim_end().to_string() + "\n"
}
