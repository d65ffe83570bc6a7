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
        },
    );
    // 8 CU → 8,000 units per hour of up time.
    set_config(
        ctx,
        &CapacityConfig {
            timestamp_tolerance_ms: 5_000,
            reward_per_cu_hour: 1_000,
            reward_per_su_hour: 0,
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

#[test]
fn rewards_are_capacity_times_up_time() {
    with_ctx(|ctx| {
        report(ctx, resources(), 100, 1_000).unwrap();
        // 9 s later: 8 CU × 1,000 per hour × 9 s = 20 units.
        at(ctx, 10_000);
        report(ctx, resources(), 109, 10_000).unwrap();
        assert_eq!(pallet_balances::account(ctx, &farmer()).free, 20);
        assert!(capacity_events(ctx).contains(&Event::FarmerRewarded {
            node_id: 1,
            farm_id: 1,
            payout: farmer(),
            amount: 20,
            up_ms: 9_000
        }));
        // An hour of silence: Down after 2 periods, so only 20 s count.
        at(ctx, 3_610_000);
        report(
            ctx,
            Resources {
                cru: 16,
                ..resources()
            },
            4_000,
            3_610_000,
        )
        .unwrap();
        // Measured beyond the registered resources counts as registered: 8 CU × 20 s.
        assert_eq!(pallet_balances::account(ctx, &farmer()).free, 20 + 44);
        // A reboot: uptime 2 s caps the credited time.
        at(ctx, 3_615_000);
        report(ctx, resources(), 2, 3_615_000).unwrap();
        assert_eq!(pallet_balances::account(ctx, &farmer()).free, 20 + 44 + 4);
        assert_eq!(pallet_balances::total_issuance(ctx), 68);
    });
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
