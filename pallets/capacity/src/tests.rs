use super::*;
use gridchain_primitives::{Overlay, Pair};
use pallet_tfgrid::{Location, PricingPolicy, GIB};
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq)]
enum TestEvent {
    Twins(pallet_twins::Event),
    Tfgrid(pallet_tfgrid::Event),
    Balances(pallet_balances::Event),
    Capacity(Event),
}
impl From<pallet_twins::Event> for TestEvent {
    fn from(e: pallet_twins::Event) -> Self {
        TestEvent::Twins(e)
    }
}
impl From<pallet_tfgrid::Event> for TestEvent {
    fn from(e: pallet_tfgrid::Event) -> Self {
        TestEvent::Tfgrid(e)
    }
}
impl From<pallet_balances::Event> for TestEvent {
    fn from(e: pallet_balances::Event) -> Self {
        TestEvent::Balances(e)
    }
}
impl From<Event> for TestEvent {
    fn from(e: Event) -> Self {
        TestEvent::Capacity(e)
    }
}

type Ctx<'a> = Context<'a, TestEvent>;

const PERIOD: u64 = 10_000;
const EPOCH: u64 = 60_000;

fn resources() -> Resources {
    Resources {
        cru: 8,
        mru: 32 * GIB,
        sru: 0,
        hru: 0,
    }
}

fn node() -> AccountId {
    Pair::dev("Node1").public()
}
fn farmer() -> AccountId {
    Pair::dev("Farmer").public()
}

fn setup(ctx: &mut Ctx) {
    pallet_tfgrid::set_config(
        ctx,
        &pallet_tfgrid::TfgridConfig {
            capacity_period_ms: PERIOD,
            ..Default::default()
        },
    );
    // 8 CU → 8,000 units per hour of up time.
    set_config(
        ctx,
        &CapacityConfig {
            timestamp_tolerance_ms: 5_000,
            reward_per_cu_hour: 1_000,
            reward_per_su_hour: 0,
            reward_epoch_ms: EPOCH,
            reward_budget_per_epoch: 1_000_000,
        },
    );
    pallet_timestamp::on_initialize(ctx, 1_000).unwrap();
    pallet_twins::create_twin(ctx, farmer(), "farmer".into(), String::new()).unwrap();
    pallet_twins::create_twin(ctx, node(), "node".into(), String::new()).unwrap();
    pallet_tfgrid::add_pricing_policy(
        ctx,
        PricingPolicy {
            id: 0,
            name: "p".into(),
            cu_per_hour: 1,
            su_per_hour: 1,
            nu_per_gb: 0,
            ipu_per_hour: 0,
        },
    );
    pallet_tfgrid::create_farm(ctx, farmer(), "farm".into(), 1).unwrap();
    pallet_tfgrid::allow_node(ctx, farmer(), 1, node()).unwrap();
    pallet_tfgrid::register_node(ctx, node(), 1, resources(), Location::default(), None).unwrap();
}

fn report(
    ctx: &mut Ctx,
    measured: Resources,
    uptime_seconds: u64,
    timestamp_ms: u64,
) -> Result<(), Error> {
    dispatch(
        ctx,
        node(),
        Call::ReportCapacity {
            measured,
            used: Resources::default(),
            uptime_seconds,
            timestamp_ms,
        },
    )
}

fn at(ctx: &mut Ctx, ms: u64) {
    pallet_timestamp::on_initialize(ctx, ms).unwrap();
}

fn capacity_events(ctx: &Ctx) -> Vec<Event> {
    ctx.events()
        .iter()
        .filter_map(|r| match &r.event {
            TestEvent::Capacity(e) => Some(e.clone()),
            _ => None,
        })
        .collect()
}

fn with_ctx(f: impl FnOnce(&mut Ctx)) {
    let backend = BTreeMap::new();
    let mut ctx = Context::new(Overlay::new(&backend));
    setup(&mut ctx);
    f(&mut ctx);
}

#[test]
fn first_proof_brings_the_node_up_without_reward() {
    with_ctx(|ctx| {
        report(ctx, resources(), 100, 1_000).unwrap();
        assert_eq!(
            capacity_events(ctx),
            vec![
                Event::CapacityReported {
                    node_id: 1,
                    measured: resources(),
                    used: Resources::default()
                },
                Event::NodeUp { node_id: 1 },
            ]
        );
        assert_eq!(pallet_tfgrid::node(ctx, 1).unwrap().status, NodeStatus::Up);
        assert_eq!(pallet_tfgrid::node_status(ctx, 1), NodeStatus::Up);
        assert_eq!(pallet_balances::account(ctx, &farmer()).free, 0);
    });
}

fn farmer_balance(ctx: &Ctx) -> Balance {
    pallet_balances::account(ctx, &farmer()).free
}

#[test]
fn rewards_are_capacity_times_up_time_paid_the_epoch_after() {
    with_ctx(|ctx| {
        report(ctx, resources(), 100, 1_000).unwrap();
        // 9 s later: 8 CU × 1,000 per hour × 9 s = 20 units claimed, not yet paid.
        at(ctx, 10_000);
        report(ctx, resources(), 109, 10_000).unwrap();
        assert_eq!(node_claim(ctx, 1).unwrap().amount, 20);
        at(ctx, 20_000);
        report(ctx, resources(), 119, 20_000).unwrap();
        assert_eq!(farmer_balance(ctx), 0);
        assert_eq!(reward_epochs(ctx).claimed, 42);
        // The first proof of epoch 1 is paid epoch 0's claim (20 + 22) and claims 20 s (two
        // periods at most) of epoch 1.
        at(ctx, 61_000);
        report(ctx, resources(), 160, 61_000).unwrap();
        assert_eq!(farmer_balance(ctx), 42);
        assert!(capacity_events(ctx).contains(&Event::FarmerRewarded {
            node_id: 1,
            farm_id: 1,
            payout: farmer(),
            epoch: 0,
            claimed: 42,
            amount: 42,
        }));
        assert_eq!(
            node_claim(ctx, 1).unwrap(),
            NodeClaim {
                epoch: 1,
                amount: 44
            }
        );
        // Silent through epoch 2: epoch 1's claim is forfeited. Measured beyond the registered
        // resources counts as registered (8 CU), up time capped at two periods: 44 claimed.
        at(ctx, 200_000);
        report(
            ctx,
            Resources {
                cru: 16,
                ..resources()
            },
            4_000,
            200_000,
        )
        .unwrap();
        assert_eq!(farmer_balance(ctx), 42);
        assert_eq!(
            node_claim(ctx, 1).unwrap(),
            NodeClaim {
                epoch: 3,
                amount: 44
            }
        );
        // A reboot: uptime 2 s caps the credited time (4 units).
        at(ctx, 205_000);
        report(ctx, resources(), 2, 205_000).unwrap();
        at(ctx, 245_000);
        report(ctx, resources(), 42, 245_000).unwrap();
        assert_eq!(farmer_balance(ctx), 42 + 48);
        assert_eq!(pallet_balances::total_issuance(ctx), 90);
    });
}

/// Registers `who` as a node of the farm (allowed by the farmer first).
fn add_node(ctx: &mut Ctx, who: AccountId, name: &str, resources: Resources) -> NodeId {
    pallet_twins::create_twin(ctx, who, name.into(), String::new()).unwrap();
    pallet_tfgrid::allow_node(ctx, farmer(), 1, who).unwrap();
    pallet_tfgrid::register_node(ctx, who, 1, resources, Location::default(), None).unwrap()
}

fn report_as(ctx: &mut Ctx, who: AccountId, measured: Resources, uptime_seconds: u64) {
    let now = pallet_timestamp::now(ctx);
    dispatch(
        ctx,
        who,
        Call::ReportCapacity {
            measured,
            used: Resources::default(),
            uptime_seconds,
            timestamp_ms: now,
        },
    )
    .unwrap();
}

#[test]
fn claims_above_the_budget_are_paid_pro_rata() {
    with_ctx(|ctx| {
        let budget = 30;
        let small = CapacityConfig {
            reward_budget_per_epoch: budget,
            ..config(ctx)
        };
        set_config(ctx, &small);
        // A liar declaring (and "measuring") the chain's maximum, beside the honest node.
        let liar = Pair::dev("Liar").public();
        let max = pallet_tfgrid::config(ctx).max_node_resources;
        add_node(ctx, liar, "liar", max);
        report(ctx, resources(), 100, 1_000).unwrap();
        report_as(ctx, liar, max, 100);
        at(ctx, 19_000);
        report(ctx, resources(), 118, 19_000).unwrap();
        report_as(ctx, liar, max, 118);
        let honest_claim = node_claim(ctx, 1).unwrap().amount;
        let liar_claim = node_claim(ctx, 2).unwrap().amount;
        assert_eq!(honest_claim, 40);
        assert!(liar_claim > 100 * honest_claim, "{liar_claim}");
        at(ctx, 61_000);
        report(ctx, resources(), 160, 61_000).unwrap();
        report_as(ctx, liar, max, 160);
        let total = honest_claim + liar_claim;
        // Each is paid claim × budget / total; the epoch mints at most the budget.
        assert_eq!(
            farmer_balance(ctx),
            pro_rata(honest_claim, budget, total) + pro_rata(liar_claim, budget, total)
        );
        assert!(pallet_balances::total_issuance(ctx) <= budget);
        assert_eq!(pro_rata(honest_claim, budget, total), 0);
    });
}

#[test]
fn pro_rata_is_exact_and_bounded() {
    assert_eq!(pro_rata(5, 100, 50), 5);
    assert_eq!(pro_rata(25, 10, 100), 2);
    // Products beyond u128 stay exact.
    assert_eq!(pro_rata(3 << 120, 1 << 120, 1 << 122), 3 << 118);
    assert_eq!(pro_rata(1 << 100, (1 << 100) + 1, 1 << 101), 1 << 99);
    assert_eq!(pro_rata(u128::MAX, u128::MAX - 1, u128::MAX), u128::MAX - 1);
}

/// One step of a random history of the grid.
#[derive(Debug, Clone)]
enum Step {
    /// Node `i` registers (allowed by the farmer) with these resources, if it can.
    Register(usize, Resources),
    /// Node `i` declares new resources.
    Update(usize, Resources),
    /// Node `i` proves its capacity now.
    Proof(usize, Resources, u64),
    /// Block time moves on.
    Advance(u64),
}

fn any_resources() -> impl proptest::strategy::Strategy<Value = Resources> {
    use proptest::prelude::*;
    // Mostly plausible values (so nodes register and earn), sometimes zero or absurd.
    let cores = prop_oneof![4 => 1u64..600, 1 => Just(0u64), 1 => Just(u64::MAX)];
    let bytes = prop_oneof![4 => GIB..(1u64 << 43), 1 => Just(0u64), 1 => Just(u64::MAX)];
    (cores, bytes.clone(), bytes.clone(), bytes).prop_map(|(cru, mru, sru, hru)| Resources {
        cru,
        mru,
        sru,
        hru,
    })
}

fn any_step() -> impl proptest::strategy::Strategy<Value = Step> {
    use proptest::prelude::*;
    prop_oneof![
        (0usize..4, any_resources()).prop_map(|(i, r)| Step::Register(i, r)),
        (0usize..4, any_resources()).prop_map(|(i, r)| Step::Update(i, r)),
        (0usize..4, any_resources(), 0u64..1_000_000).prop_map(|(i, r, u)| Step::Proof(i, r, u)),
        (0usize..4, any_resources(), 0u64..1_000_000).prop_map(|(i, r, u)| Step::Proof(i, r, u)),
        (1u64..50_000).prop_map(Step::Advance),
    ]
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

    /// Whatever nodes register, declare and prove, the issuance grows per epoch by at most
    /// the reward budget (this pallet mints nothing else).
    #[test]
    fn issuance_grows_per_epoch_by_at_most_the_budget(
        steps in proptest::collection::vec(any_step(), 1..120),
        budget in 0u128..1_000_000_000_000,
    ) {
        let backend = BTreeMap::new();
        let mut ctx: Ctx = Context::new(Overlay::new(&backend));
        setup(&mut ctx);
        let rich = CapacityConfig {
            reward_per_cu_hour: 1_000_000_000_000,
            reward_per_su_hour: 1_000_000_000_000,
            reward_budget_per_epoch: budget,
            ..config(&ctx)
        };
        set_config(&mut ctx, &rich);
        let keys: Vec<AccountId> = (0..4).map(|i| Pair::dev(&format!("Node{}", i + 10)).public()).collect();
        for (i, key) in keys.iter().enumerate() {
            pallet_twins::create_twin(&mut ctx, *key, format!("n{i}"), String::new()).unwrap();
            pallet_tfgrid::allow_node(&mut ctx, farmer(), 1, *key).unwrap();
        }
        let mut now = pallet_timestamp::now(&ctx);
        let mut epoch = now / EPOCH;
        let mut epoch_start_issuance = pallet_balances::total_issuance(&ctx);
        for step in steps {
            match step {
                Step::Register(i, r) => {
                    let _ = ctx.transactional(|ctx| pallet_tfgrid::register_node(ctx, keys[i], 1, r, Location::default(), None));
                }
                Step::Update(i, r) => {
                    let _ = ctx.transactional(|ctx| pallet_tfgrid::dispatch(ctx, keys[i], pallet_tfgrid::Call::UpdateNode { resources: r, location: Location::default(), public_config: None }));
                }
                Step::Proof(i, measured, uptime_seconds) => {
                    let _ = ctx.transactional(|ctx| dispatch(ctx, keys[i], Call::ReportCapacity { measured, used: Resources::default(), uptime_seconds, timestamp_ms: now }));
                }
                Step::Advance(ms) => {
                    now += ms;
                    at(&mut ctx, now);
                    if now / EPOCH != epoch {
                        epoch = now / EPOCH;
                        epoch_start_issuance = pallet_balances::total_issuance(&ctx);
                    }
                }
            }
            let grown = pallet_balances::total_issuance(&ctx) - epoch_start_issuance;
            proptest::prop_assert!(grown <= budget, "epoch {epoch} minted {grown} > budget {budget}");
        }
    }
}

#[test]
fn bad_proofs_are_rejected_and_change_nothing() {
    with_ctx(|ctx| {
        at(ctx, 100_000);
        let before = pallet_tfgrid::health(ctx, 1);
        assert_eq!(
            report(ctx, resources(), 1, 94_999),
            Err(Error::StaleProof {
                timestamp_ms: 94_999,
                block_time_ms: 100_000
            })
        );
        assert_eq!(
            report(ctx, resources(), 1, 105_001),
            Err(Error::FutureProof {
                timestamp_ms: 105_001,
                block_time_ms: 100_000
            })
        );
        assert_eq!(
            dispatch(
                ctx,
                farmer(),
                Call::ReportCapacity {
                    measured: resources(),
                    used: resources(),
                    uptime_seconds: 1,
                    timestamp_ms: 100_000
                }
            ),
            Err(Error::NotANode)
        );
        assert_eq!(pallet_tfgrid::health(ctx, 1), before);
        report(ctx, resources(), 1, 100_000).unwrap();
        assert_eq!(
            report(ctx, resources(), 1, 100_000),
            Err(Error::DuplicateProof)
        );
        assert!(capacity_events(ctx).len() == 2);
    });
}

#[test]
fn measured_below_reserved_is_flagged_then_restored() {
    with_ctx(|ctx| {
        pallet_tfgrid::set_used(
            ctx,
            1,
            &Resources {
                cru: 4,
                mru: 8 * GIB,
                sru: 0,
                hru: 0,
            },
        );
        let small = Resources {
            cru: 2,
            ..resources()
        };
        report(ctx, small, 1, 1_000).unwrap();
        assert!(
            capacity_events(ctx).contains(&Event::CapacityBelowReserved {
                node_id: 1,
                measured: small,
                reserved: Resources {
                    cru: 4,
                    mru: 8 * GIB,
                    sru: 0,
                    hru: 0
                }
            })
        );
        assert!(pallet_tfgrid::health(ctx, 1).below_reserved);
        at(ctx, 2_000);
        report(ctx, resources(), 2, 2_000).unwrap();
        assert!(capacity_events(ctx).contains(&Event::CapacityRestored { node_id: 1 }));
        assert!(!pallet_tfgrid::health(ctx, 1).below_reserved);
    });
}

#[test]
fn sweep_marks_silent_nodes_down() {
    with_ctx(|ctx| {
        report(ctx, resources(), 1, 1_000).unwrap();
        at(ctx, 21_000);
        on_initialize(ctx);
        assert!(!capacity_events(ctx).contains(&Event::NodeDown { node_id: 1 }));
        at(ctx, 21_001);
        on_initialize(ctx);
        assert_eq!(
            capacity_events(ctx).last(),
            Some(&Event::NodeDown { node_id: 1 })
        );
        assert_eq!(
            pallet_tfgrid::node(ctx, 1).unwrap().status,
            NodeStatus::Down
        );
        // Recorded once.
        at(ctx, 22_000);
        on_initialize(ctx);
        assert_eq!(
            capacity_events(ctx)
                .iter()
                .filter(|e| matches!(e, Event::NodeDown { .. }))
                .count(),
            1
        );
        // A proof brings it back.
        report(ctx, resources(), 30, 22_000).unwrap();
        assert_eq!(
            capacity_events(ctx)
                .iter()
                .filter(|e| **e == Event::NodeUp { node_id: 1 })
                .count(),
            2
        );
    });
}
