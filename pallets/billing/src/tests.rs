use super::*;
use gridchain_primitives::{Overlay, Pair};
use pallet_reservations::{
    Deployment, ResultData, Workload, WorkloadResult, WorkloadSpec, WorkloadState,
};
use pallet_tfgrid::{Location, PricingPolicy, Resources, GIB};
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Clone, PartialEq)]
enum TestEvent {
    Twins(pallet_twins::Event),
    Tfgrid(pallet_tfgrid::Event),
    Reservations(pallet_reservations::Event),
    Balances(pallet_balances::Event),
    Billing(Event),
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
impl From<pallet_reservations::Event> for TestEvent {
    fn from(e: pallet_reservations::Event) -> Self {
        TestEvent::Reservations(e)
    }
}
impl From<pallet_balances::Event> for TestEvent {
    fn from(e: pallet_balances::Event) -> Self {
        TestEvent::Balances(e)
    }
}
impl From<Event> for TestEvent {
    fn from(e: Event) -> Self {
        TestEvent::Billing(e)
    }
}

type Ctx<'a> = Context<'a, TestEvent>;

const PERIOD_MS: u64 = 10_000;
const GRACE_MS: u64 = 20_000;
const BUCKETS: u32 = 5;

fn users() -> [AccountId; 3] {
    ["Alice", "Bob", "Charlie"].map(|n| Pair::dev(n).public())
}
fn node_account() -> AccountId {
    Pair::dev("Node1").public()
}
fn farmer() -> AccountId {
    Pair::dev("Farmer").public()
}

/// Farmer owns farm 1 (1 CU-hour = 3,600,000 units) with node 1, Up at t = 1 s; users have
/// twins and `funds` each.
fn setup(ctx: &mut Ctx, funds: Balance) {
    pallet_tfgrid::set_config(
        ctx,
        &pallet_tfgrid::TfgridConfig {
            capacity_period_ms: PERIOD_MS,
            ..Default::default()
        },
    );
    pallet_reservations::set_config(
        ctx,
        &pallet_reservations::ReservationsConfig {
            settlement_buckets: BUCKETS,
            max_per_bucket: 100,
            ..Default::default()
        },
    );
    set_config(
        ctx,
        &BillingConfig {
            grace_period_ms: GRACE_MS,
            ..Default::default()
        },
    );
    pallet_timestamp::on_initialize(ctx, 1_000).unwrap();
    for (i, who) in users().into_iter().enumerate() {
        pallet_twins::create_twin(ctx, who, format!("user{i}"), String::new()).unwrap();
        pallet_balances::endow(ctx, who, funds).unwrap();
    }
    pallet_twins::create_twin(ctx, farmer(), "farmer".into(), String::new()).unwrap();
    pallet_twins::create_twin(ctx, node_account(), "node".into(), String::new()).unwrap();
    pallet_tfgrid::add_pricing_policy(
        ctx,
        PricingPolicy {
            id: 0,
            name: "p".into(),
            cu_per_hour: 3_600_000,
            su_per_hour: 0,
            nu_per_gb: 0,
            ipu_per_hour: 0,
        },
    );
    pallet_tfgrid::create_farm(ctx, farmer(), "farm".into(), 1).unwrap();
    pallet_tfgrid::allow_node(ctx, farmer(), 1, node_account()).unwrap();
    pallet_tfgrid::register_node(
        ctx,
        node_account(),
        1,
        Resources {
            cru: 64,
            mru: 256 * GIB,
            sru: 4000 * GIB,
            hru: 0,
        },
        Location::default(),
        None,
    )
    .unwrap();
    prove(ctx, 1_000);
}

fn prove(ctx: &mut Ctx, at_ms: u64) {
    let mut health = pallet_tfgrid::health(ctx, 1);
    pallet_tfgrid::record_proof(&mut health, at_ms, PERIOD_MS);
    pallet_tfgrid::put_health(ctx, 1, &health);
}

/// 2 cores, 4 GiB: 1 CU, 1,000 units per second of up time.
fn deployment() -> Deployment {
    Deployment {
        metadata: String::new(),
        workloads: vec![Workload {
            name: "vm".into(),
            spec: WorkloadSpec::Container {
                image: "img".into(),
                cpu: 2,
                memory: 4 * GIB,
                rootfs_size: GIB,
                entrypoint: String::new(),
                env: vec![],
                mounts: vec![],
                networks: vec![],
                registry_auth: None,
                restart: Default::default(),
                health_check: None,
            },
        }],
    }
}

fn report(ctx: &mut Ctx, id: u64, state: WorkloadState) {
    let version = pallet_reservations::reservation(ctx, id).unwrap().version;
    pallet_reservations::dispatch(
        ctx,
        node_account(),
        pallet_reservations::Call::ReportResults {
            id,
            version,
            results: vec![WorkloadResult {
                name: "vm".into(),
                state,
                message: String::new(),
                data: ResultData::None,
            }],
        },
    )
    .unwrap();
}

/// Runs the billing hook of every block from `from` to `to`, one second apart.
fn run_blocks(ctx: &mut Ctx, from: u64, to: u64) {
    for n in from..=to {
        pallet_timestamp::on_initialize(ctx, n * 1_000).unwrap();
        on_initialize(ctx, n);
    }
}

/// Block time in seconds, one block per second, with the node kept Up (a proof every 5 s).
struct Clock(u64);

impl Clock {
    fn step(&mut self, ctx: &mut Ctx, blocks: u64) {
        for _ in 0..blocks {
            self.0 += 1;
            if self.0 % 5 == 0 {
                prove(ctx, self.0 * 1_000);
            }
            run_blocks(ctx, self.0, self.0);
        }
    }
}

fn billing_events(ctx: &Ctx) -> Vec<Event> {
    ctx.events()
        .iter()
        .filter_map(|r| match &r.event {
            TestEvent::Billing(e) => Some(e.clone()),
            _ => None,
        })
        .collect()
}

fn free(ctx: &Ctx, who: &AccountId) -> Balance {
    pallet_balances::account(ctx, who).free
}

#[test]
fn settlement_charges_ok_time_and_splits_the_payment() {
    let backend = BTreeMap::new();
    let mut ctx = Context::new(Overlay::new(&backend));
    let ctx = &mut ctx;
    let bob = users()[1];
    setup(ctx, 1_000_000_000);
    let id = pallet_reservations::reserve(ctx, bob, 1, deployment()).unwrap();
    let bucket = pallet_reservations::reservation(ctx, id)
        .unwrap()
        .billing
        .bucket as u64;
    // Not Ok yet: a settlement charges nothing.
    run_blocks(ctx, 2, 6);
    assert!(billing_events(ctx).is_empty());
    report(ctx, id, WorkloadState::Ok); // at t = 6 s
    prove(ctx, 6_000);
    run_blocks(ctx, 7, 11);
    // Settled once, in block 10 or 11 (its bucket): 1,000 units per second since t = 6 s.
    let settled_at = (7..=11).find(|n| n % BUCKETS as u64 == bucket).unwrap();
    let amount = (settled_at - 6) as u128 * 1_000;
    assert_eq!(
        billing_events(ctx),
        vec![Event::Charged {
            id,
            amount,
            farmer: amount * 8 / 10,
            treasury: amount / 10,
            burned: amount - amount * 8 / 10 - amount / 10
        }]
    );
    assert_eq!(free(ctx, &farmer()), amount * 8 / 10);
    assert_eq!(free(ctx, &default_treasury()), amount / 10);
    assert_eq!(
        pallet_balances::burned(ctx),
        amount - amount * 8 / 10 - amount / 10
    );
    assert_eq!(free(ctx, &bob), 1_000_000_000 - amount);
    assert_eq!(
        pallet_reservations::reservation(ctx, id)
            .unwrap()
            .billing
            .total_paid,
        amount
    );
}

#[test]
fn out_of_funds_grace_refill_and_deletion() {
    let backend = BTreeMap::new();
    let mut ctx = Context::new(Overlay::new(&backend));
    let ctx = &mut ctx;
    let [alice, bob, _] = users();
    setup(ctx, 3_000);
    let id = pallet_reservations::reserve(ctx, bob, 1, deployment()).unwrap();
    report(ctx, id, WorkloadState::Ok);
    let mut clock = Clock(1);
    let mut step = |ctx: &mut Ctx, blocks: u64| clock.step(ctx, blocks);
    step(ctx, 10);
    // Bob had 3,000 units: the second settlement cannot pay 5,000 → grace.
    let events = billing_events(ctx);
    assert!(
        matches!(events.last(), Some(Event::GracePeriodStarted { id: 1, .. })),
        "{events:?}"
    );
    let r = pallet_reservations::reservation(ctx, id).unwrap();
    assert!(matches!(r.state, ReservationState::GracePeriod { .. }));
    assert_eq!(r.billing.rate_per_hour, 0);
    let owed = r.billing.unpaid_scaled / MS_PER_HOUR;
    // Nothing accrues during grace.
    step(ctx, 5);
    assert_eq!(
        pallet_reservations::reservation(ctx, id)
            .unwrap()
            .billing
            .unpaid_scaled
            / MS_PER_HOUR,
        owed
    );
    // Refill: the next settlement pays the debt and resumes.
    pallet_balances::endow(ctx, bob, 1_000_000_000).unwrap();
    step(ctx, 5);
    assert!(billing_events(ctx).contains(&Event::GracePeriodEnded { id }));
    let r = pallet_reservations::reservation(ctx, id).unwrap();
    assert_eq!(r.state, ReservationState::Deployed);
    assert_eq!(r.billing.rate_per_hour, 1_000 * 3_600);
    // Drain Bob: grace again, then deletion after the grace period.
    let rest = free(ctx, &bob);
    pallet_balances::transfer(ctx, bob, alice, rest).unwrap();
    step(ctx, 5);
    assert!(matches!(
        pallet_reservations::reservation(ctx, id).unwrap().state,
        ReservationState::GracePeriod { .. }
    ));
    step(ctx, (GRACE_MS / 1_000) + 5);
    let r = pallet_reservations::reservation(ctx, id).unwrap();
    assert_eq!(
        r.state,
        ReservationState::Deleted {
            reason: DeletionReason::OutOfFunds
        }
    );
    assert!(billing_events(ctx)
        .iter()
        .any(|e| matches!(e, Event::FinalSettlement { id: 1, paid: 0, .. })));
    assert!(pallet_reservations::bucket(ctx, r.billing.bucket).is_empty());
    assert!(pallet_tfgrid::used(ctx, 1).is_zero());
}

#[test]
fn canceled_reservations_pay_their_last_bill_then_leave_billing() {
    let backend = BTreeMap::new();
    let mut ctx = Context::new(Overlay::new(&backend));
    let ctx = &mut ctx;
    let bob = users()[1];
    setup(ctx, 1_000_000);
    let id = pallet_reservations::reserve(ctx, bob, 1, deployment()).unwrap();
    report(ctx, id, WorkloadState::Ok);
    pallet_timestamp::on_initialize(ctx, 4_000).unwrap();
    pallet_reservations::dispatch(
        ctx,
        bob,
        pallet_reservations::Call::CancelReservation { id },
    )
    .unwrap();
    let bucket = pallet_reservations::reservation(ctx, id)
        .unwrap()
        .billing
        .bucket;
    // Later time does not add to the bill.
    let n = (5..).find(|n| n % BUCKETS as u64 == bucket as u64).unwrap();
    run_blocks(ctx, 5, n);
    assert_eq!(
        billing_events(ctx),
        vec![
            Event::Charged {
                id,
                amount: 3_000,
                farmer: 2_400,
                treasury: 300,
                burned: 300
            },
            Event::FinalSettlement {
                id,
                paid: 3_000,
                written_off: 0
            },
        ]
    );
    assert!(pallet_reservations::bucket(ctx, bucket).is_empty());
}

#[test]
fn failed_workloads_and_down_nodes_are_not_charged() {
    let backend = BTreeMap::new();
    let mut ctx = Context::new(Overlay::new(&backend));
    let ctx = &mut ctx;
    let bob = users()[1];
    setup(ctx, 1_000_000_000);
    let id = pallet_reservations::reserve(ctx, bob, 1, deployment()).unwrap();
    report(ctx, id, WorkloadState::Error);
    run_blocks(ctx, 2, 10);
    assert!(billing_events(ctx).is_empty());
    report(ctx, id, WorkloadState::Ok); // t = 10 s; node Down after 21 s (last proof 1 s)
    run_blocks(ctx, 11, 100);
    let paid: Balance = billing_events(ctx)
        .iter()
        .map(|e| match e {
            Event::Charged { amount, .. } => *amount,
            _ => 0,
        })
        .sum();
    assert_eq!(paid, 11_000);
}

#[test]
fn config_shares_must_add_up() {
    assert!(BillingConfig::default().shares_valid());
    assert!(!BillingConfig {
        burn_share_bps: 0,
        ..Default::default()
    }
    .shares_valid());
}

#[derive(Debug, Clone)]
enum Op {
    Reserve {
        user: usize,
    },
    Report {
        pick: usize,
        ok: bool,
    },
    Transfer {
        from: usize,
        to: usize,
        amount: Balance,
    },
    Cancel {
        pick: usize,
    },
    Blocks {
        count: u64,
        prove: bool,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..3usize).prop_map(|user| Op::Reserve { user }),
        (0..64usize, any::<bool>()).prop_map(|(pick, ok)| Op::Report { pick, ok }),
        (0..3usize, 0..3usize, 1..50_000u128).prop_map(|(from, to, amount)| Op::Transfer {
            from,
            to,
            amount
        }),
        (0..64usize).prop_map(|pick| Op::Cancel { pick }),
        (1..15u64, any::<bool>()).prop_map(|(count, prove)| Op::Blocks { count, prove }),
    ]
}

fn check_issuance(ctx: &Ctx) {
    let mut accounts: BTreeSet<AccountId> = users().into_iter().collect();
    accounts.extend([farmer(), node_account(), default_treasury()]);
    let held: Balance = accounts
        .iter()
        .map(|a| {
            let d = pallet_balances::account(ctx, a);
            d.free + d.reserved
        })
        .sum();
    assert_eq!(
        pallet_balances::total_issuance(ctx),
        held + pallet_balances::burned(ctx)
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Over random reservations, reports, transfers, cancellations and blocks: issuance equals
    /// balances plus burned; the rate is non-zero exactly when a live reservation has Ok
    /// workloads; no reservation is charged unless it had a non-zero rate since it last owed
    /// nothing; a charge never exceeds what was accrued.
    #[test]
    fn billing_invariants(ops in proptest::collection::vec(op(), 1..60)) {
        let backend = BTreeMap::new();
        let mut ctx = Context::new(Overlay::new(&backend));
        let ctx = &mut ctx;
        setup(ctx, 40_000);
        let users = users();
        let mut block = 1u64;
        let mut ids: Vec<u64> = vec![];
        // Reservations that had a non-zero rate since their last settlement.
        let mut chargeable: BTreeSet<u64> = BTreeSet::new();
        for op in ops {
            match op {
                Op::Reserve { user } => {
                    if let Ok(id) = pallet_reservations::reserve(ctx, users[user], 1, deployment()) {
                        ids.push(id);
                    }
                }
                Op::Report { pick, ok } if !ids.is_empty() => {
                    let id = ids[pick % ids.len()];
                    let r = pallet_reservations::reservation(ctx, id).unwrap();
                    if !r.is_deleted() {
                        report(ctx, id, if ok { WorkloadState::Ok } else { WorkloadState::Error });
                    }
                }
                Op::Transfer { from, to, amount } => {
                    let _ = pallet_balances::transfer(ctx, users[from], users[to], amount);
                }
                Op::Cancel { pick } if !ids.is_empty() => {
                    let id = ids[pick % ids.len()];
                    let owner = pallet_reservations::reservation(ctx, id).unwrap().owner;
                    let _ = pallet_reservations::dispatch(ctx, owner, pallet_reservations::Call::CancelReservation { id });
                }
                Op::Blocks { count, prove: do_prove } => {
                    for _ in 0..count {
                        block += 1;
                        let now = block * 1_000;
                        pallet_timestamp::on_initialize(ctx, now).unwrap();
                        if do_prove {
                            prove(ctx, now);
                        }
                        let before = ctx.events().len();
                        let owed_before: BTreeMap<u64, u128> = ids.iter().map(|id| {
                            let mut r = pallet_reservations::reservation(ctx, *id).unwrap();
                            pallet_reservations::checkpoint(ctx, &mut r);
                            (*id, r.billing.unpaid_scaled / MS_PER_HOUR)
                        }).collect();
                        on_initialize(ctx, block);
                        for record in &ctx.events()[before..] {
                            if let TestEvent::Billing(Event::Charged { id, amount, .. }) = &record.event {
                                prop_assert!(chargeable.contains(id), "charged {id} without Ok time");
                                prop_assert!(*amount <= owed_before[id]);
                            }
                        }
                        let bucket = (block % BUCKETS as u64) as u32;
                        for id in &ids {
                            let r = pallet_reservations::reservation(ctx, *id).unwrap();
                            let owes = r.billing.unpaid_scaled >= MS_PER_HOUR;
                            if r.billing.bucket == bucket && r.billing.rate_per_hour == 0 && !owes {
                                chargeable.remove(id);
                            }
                        }
                        check_issuance(ctx);
                    }
                }
                _ => {}
            }
            for id in &ids {
                let r = pallet_reservations::reservation(ctx, *id).unwrap();
                let has_ok = r.results.iter().any(|x| x.state == WorkloadState::Ok);
                let live = matches!(r.state, ReservationState::Created | ReservationState::Deployed | ReservationState::Failed);
                prop_assert_eq!(r.billing.rate_per_hour > 0, has_ok && live);
                if r.billing.rate_per_hour > 0 {
                    chargeable.insert(*id);
                }
            }
            check_issuance(ctx);
        }
    }
}

fn reserved(ctx: &Ctx, who: &AccountId) -> Balance {
    pallet_balances::account(ctx, who).reserved
}

fn with_deposits(ctx: &mut Ctx, deposit_per_workload: Balance) {
    pallet_reservations::set_config(
        ctx,
        &pallet_reservations::ReservationsConfig {
            settlement_buckets: BUCKETS,
            max_per_bucket: 100,
            deposit_per_workload,
            ..Default::default()
        },
    );
}

/// Running costs come from the free balance only (then grace); the deposit pays what is still
/// owed when the reservation ends, and the rest of it goes back to the owner.
#[test]
fn the_deposit_pays_the_last_bill_and_the_rest_returns() {
    let backend = BTreeMap::new();
    let mut ctx = Context::new(Overlay::new(&backend));
    let ctx = &mut ctx;
    let bob = users()[1];
    setup(ctx, 0);
    with_deposits(ctx, 20_000);
    pallet_balances::endow(ctx, bob, 23_000).unwrap();
    let id = pallet_reservations::reserve(ctx, bob, 1, deployment()).unwrap();
    assert_eq!((free(ctx, &bob), reserved(ctx, &bob)), (3_000, 20_000));
    report(ctx, id, WorkloadState::Ok);
    let mut clock = Clock(1);
    let mut step = |ctx: &mut Ctx, blocks: u64| clock.step(ctx, blocks);
    // 3,000 free pays the first settlement, not the second: grace, deposit untouched.
    step(ctx, 10);
    let r = pallet_reservations::reservation(ctx, id).unwrap();
    assert!(matches!(r.state, ReservationState::GracePeriod { .. }));
    assert_eq!((r.billing.deposit, reserved(ctx, &bob)), (20_000, 20_000));
    let owed = r.billing.unpaid_scaled / MS_PER_HOUR;
    assert!(owed > free(ctx, &bob), "{owed}");
    // Cancel: the final settlement takes the debt from free balance and deposit, and gives
    // the rest back.
    pallet_reservations::dispatch(
        ctx,
        bob,
        pallet_reservations::Call::CancelReservation { id },
    )
    .unwrap();
    step(ctx, BUCKETS as u64);
    assert!(billing_events(ctx).contains(&Event::FinalSettlement {
        id,
        paid: owed,
        written_off: 0
    }));
    let r = pallet_reservations::reservation(ctx, id).unwrap();
    assert_eq!((r.billing.deposit, reserved(ctx, &bob)), (0, 0));
    assert_eq!(free(ctx, &bob), 23_000 - r.billing.total_paid);
}

/// A reservation in grace gives its capacity back; once its debt is paid it takes it again,
/// or ends with `CapacityLost` if others took it meanwhile.
#[test]
fn grace_releases_capacity_and_refill_retakes_it_if_it_still_fits() {
    let backend = BTreeMap::new();
    let mut ctx = Context::new(Overlay::new(&backend));
    let ctx = &mut ctx;
    let [alice, bob, charlie] = users();
    setup(ctx, 3_000);
    let id = pallet_reservations::reserve(ctx, bob, 1, deployment()).unwrap();
    let held = pallet_tfgrid::used(ctx, 1);
    assert!(!held.is_zero());
    report(ctx, id, WorkloadState::Ok);
    let mut clock = Clock(1);
    let mut step = |ctx: &mut Ctx, blocks: u64| clock.step(ctx, blocks);
    step(ctx, 10);
    assert!(matches!(
        pallet_reservations::reservation(ctx, id).unwrap().state,
        ReservationState::GracePeriod { .. }
    ));
    assert!(pallet_tfgrid::used(ctx, 1).is_zero());
    // Refill while the capacity is free: taken back.
    pallet_balances::endow(ctx, bob, 1_000_000_000).unwrap();
    step(ctx, 5);
    assert_eq!(
        pallet_reservations::reservation(ctx, id).unwrap().state,
        ReservationState::Deployed
    );
    assert_eq!(pallet_tfgrid::used(ctx, 1), held);
    // Grace again; meanwhile Charlie fills the node (64 cores: 31 deployments of 2 cores fit
    // beside nothing else once Bob's 2 are free).
    let rest = free(ctx, &bob);
    pallet_balances::transfer(ctx, bob, alice, rest).unwrap();
    step(ctx, 5);
    assert!(pallet_tfgrid::used(ctx, 1).is_zero());
    while pallet_reservations::reserve(ctx, charlie, 1, deployment()).is_ok() {}
    pallet_balances::endow(ctx, bob, 1_000_000_000).unwrap();
    step(ctx, 5);
    assert_eq!(
        pallet_reservations::reservation(ctx, id).unwrap().state,
        ReservationState::Deleted {
            reason: DeletionReason::CapacityLost
        }
    );
}
