use super::*;
use gridchain_primitives::{seal, Overlay, Pair};
use pallet_tfgrid::{Location, PricingPolicy, GIB};
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq)]
enum TestEvent {
    Twins(pallet_twins::Event),
    Tfgrid(pallet_tfgrid::Event),
    Balances(pallet_balances::Event),
    Reservations(Event),
}
impl From<pallet_balances::Event> for TestEvent {
    fn from(e: pallet_balances::Event) -> Self {
        TestEvent::Balances(e)
    }
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
impl From<Event> for TestEvent {
    fn from(e: Event) -> Self {
        TestEvent::Reservations(e)
    }
}

type Ctx<'a> = Context<'a, TestEvent>;

fn with_grid(f: impl FnOnce(&mut Ctx, Accounts)) {
    let backend = BTreeMap::new();
    let mut ctx = Context::new(Overlay::new(&backend));
    let accounts = setup(&mut ctx);
    f(&mut ctx, accounts);
}

#[derive(Clone, Copy)]
struct Accounts {
    alice: AccountId,
    bob: AccountId,
    node: AccountId,
}

fn prove(ctx: &mut Ctx, node_id: NodeId, at_ms: u64) {
    let mut health = pallet_tfgrid::health(ctx, node_id);
    pallet_tfgrid::record_proof(&mut health, at_ms, 10_000);
    pallet_tfgrid::put_health(ctx, node_id, &health);
}

/// Alice (farmer, user) and Bob (user) have twins; Node1 (node 1: 8 cores, 32 GiB, 1 TB SSD,
/// 4 TB HDD) is Up at t = 1 s.
fn setup(ctx: &mut Ctx) -> Accounts {
    let accounts = Accounts {
        alice: Pair::dev("Alice").public(),
        bob: Pair::dev("Bob").public(),
        node: Pair::dev("Node1").public(),
    };
    pallet_tfgrid::set_config(
        ctx,
        &pallet_tfgrid::TfgridConfig {
            capacity_period_ms: 10_000,
            ..Default::default()
        },
    );
    set_config(
        ctx,
        &ReservationsConfig {
            settlement_buckets: 4,
            max_per_bucket: 3,
            ..ReservationsConfig::default()
        },
    );
    pallet_timestamp::on_initialize(ctx, 1_000).unwrap();
    for (who, name) in [
        (accounts.alice, "alice"),
        (accounts.bob, "bob"),
        (accounts.node, "node1"),
    ] {
        pallet_twins::create_twin(ctx, who, name.into(), String::new()).unwrap();
    }
    pallet_tfgrid::add_pricing_policy(
        ctx,
        PricingPolicy {
            id: 0,
            name: "p".into(),
            cu_per_hour: 3_600_000,
            su_per_hour: 0,
            nu_per_gb: 0,
            ipu_per_hour: 5_000_000,
        },
    );
    pallet_tfgrid::create_farm(ctx, accounts.alice, "farm".into(), 1).unwrap();
    pallet_tfgrid::allow_node(ctx, accounts.alice, 1, accounts.node).unwrap();
    pallet_tfgrid::register_node(
        ctx,
        accounts.node,
        1,
        Resources {
            cru: 8,
            mru: 32 * GIB,
            sru: 1000 * GIB,
            hru: 4000 * GIB,
        },
        Location::default(),
        None,
    )
    .unwrap();
    prove(ctx, 1, 1_000);
    accounts
}

fn container(name: &str, cpu: u32, memory: u64) -> Workload {
    Workload {
        name: name.into(),
        spec: WorkloadSpec::Container {
            image: "docker.io/library/redis:7".into(),
            cpu,
            memory,
            rootfs_size: GIB,
            entrypoint: String::new(),
            env: vec![],
            mounts: vec![],
            networks: vec![],
            registry_auth: None,
            restart: Default::default(),
            health_check: None,
        },
    }
}

fn small() -> Deployment {
    Deployment {
        metadata: "test".into(),
        workloads: vec![container("web", 1, 2 * GIB)],
    }
}

/// What `full()`'s secrets are sealed for (the pallet checks only their length).
fn sealed_for() -> seal::SealContext {
    seal::SealContext {
        genesis: Default::default(),
        owner: Pair::dev("Bob").public(),
        node: Pair::dev("Node1").public(),
        workload: "db".into(),
        purpose: seal::SealPurpose::ZdbPassword,
    }
}

fn full() -> Deployment {
    let node = Pair::dev("Node1").public();
    let sealed = Bytes(seal::seal(&node, &sealed_for(), b"secret").unwrap());
    Deployment {
        metadata: "full".into(),
        workloads: vec![
            Workload {
                name: "net".into(),
                spec: WorkloadSpec::Network {
                    ip_range: "10.20.0.0/16".into(),
                    egress: false,
                    mesh: None,
                },
            },
            Workload {
                name: "data".into(),
                spec: WorkloadSpec::Volume { size: 10 * GIB },
            },
            Workload {
                name: "db".into(),
                spec: WorkloadSpec::ZdbNamespace {
                    size: 100 * GIB,
                    mode: ZdbMode::Seq,
                    password: Some(sealed.clone()),
                    public: false,
                },
            },
            Workload {
                name: "app".into(),
                spec: WorkloadSpec::Container {
                    image: "app:1".into(),
                    cpu: 2,
                    memory: 4 * GIB,
                    rootfs_size: 2 * GIB,
                    entrypoint: "/start".into(),
                    env: vec![
                        EnvVar {
                            name: "MODE".into(),
                            value: EnvValue::Plain("prod".into()),
                        },
                        EnvVar {
                            name: "TOKEN".into(),
                            value: EnvValue::Sealed(sealed),
                        },
                    ],
                    mounts: vec![Mount {
                        volume: "data".into(),
                        path: "/data".into(),
                    }],
                    networks: vec![NetworkAttachment {
                        network: "net".into(),
                        ip: Some("10.20.0.5".into()),
                    }],
                    registry_auth: None,
                    restart: Default::default(),
                    health_check: None,
                },
            },
        ],
    }
}

fn last(ctx: &Ctx) -> TestEvent {
    ctx.events().last().unwrap().event.clone()
}

fn ok(name: &str) -> WorkloadResult {
    WorkloadResult {
        name: name.into(),
        state: WorkloadState::Ok,
        message: String::new(),
        data: ResultData::None,
    }
}

#[test]
fn reserve_stores_indexes_and_takes_capacity() {
    with_grid(|ctx, a| {
        dispatch(
            ctx,
            a.bob,
            Call::Reserve {
                node_id: 1,
                deployment: full(),
            },
        )
        .unwrap();
        assert_eq!(
            last(ctx),
            TestEvent::Reservations(Event::Reserved {
                id: 1,
                owner: a.bob,
                node_id: 1
            })
        );
        let r = reservation(ctx, 1).unwrap();
        assert_eq!(r.state, ReservationState::Created);
        assert_eq!(r.version, 1);
        assert_eq!(
            r.resources,
            Resources {
                cru: 2,
                mru: 4 * GIB,
                sru: 12 * GIB,
                hru: 100 * GIB
            }
        );
        assert_eq!(pallet_tfgrid::used(ctx, 1), r.resources);
        assert_eq!(by_owner(ctx, &a.bob), vec![1]);
        assert_eq!(by_node(ctx, 1), vec![1]);
        assert_eq!(bucket(ctx, r.billing.bucket), vec![1]);
        assert_eq!(pallet_twins::twin_of(ctx, &a.bob).unwrap().references, 1);
        // Only sealed bytes are on chain, and the node opens them.
        let WorkloadSpec::ZdbNamespace {
            password: Some(sealed),
            ..
        } = &r.deployment.workloads[2].spec
        else {
            panic!("zdb workload")
        };
        assert_eq!(
            seal::open(&Pair::dev("Node1").seed(), &sealed_for(), &sealed.0).unwrap(),
            b"secret"
        );
    });
}

#[test]
fn reserve_rejections_change_nothing() {
    with_grid(|ctx, a| {
        let charlie = Pair::dev("Charlie").public();
        let before = ctx.events().len();
        let reserve =
            |ctx: &mut Ctx, who, node_id, deployment| reserve(ctx, who, node_id, deployment);
        assert_eq!(reserve(ctx, charlie, 1, small()), Err(Error::NoTwin));
        assert_eq!(reserve(ctx, a.bob, 9, small()), Err(Error::UnknownNode(9)));
        // Too big for the usable capacity (8 cores, 32 GiB minus the 3.2 GiB system reserve).
        let too_big = Deployment {
            metadata: String::new(),
            workloads: vec![container("big", 8, 30 * GIB)],
        };
        assert!(matches!(
            reserve(ctx, a.bob, 1, too_big),
            Err(Error::InsufficientCapacity { node_id: 1, .. })
        ));
        let mut d = small();
        d.workloads.clear();
        assert_eq!(reserve(ctx, a.bob, 1, d), Err(Error::WorkloadCount));
        let mut d = small();
        d.metadata = "x".repeat(MAX_TEXT_LEN + 1);
        assert_eq!(reserve(ctx, a.bob, 1, d), Err(Error::DeploymentTooLarge));
        let mut d = small();
        d.workloads[0].name = "Web".into();
        assert_eq!(
            reserve(ctx, a.bob, 1, d),
            Err(Error::InvalidName("Web".into()))
        );
        let mut d = small();
        d.workloads.push(container("web", 1, GIB));
        assert_eq!(
            reserve(ctx, a.bob, 1, d),
            Err(Error::DuplicateName("web".into()))
        );
        let d = Deployment {
            metadata: String::new(),
            workloads: vec![container("web", 0, GIB)],
        };
        assert_eq!(
            reserve(ctx, a.bob, 1, d),
            Err(Error::ZeroSize("web".into()))
        );
        // Health checks with nothing to run or out-of-range timing; restarts beyond 1,000;
        // registry credentials that are not sealed.
        let check = |probe, interval_secs, timeout_secs, retries| HealthCheck {
            probe,
            interval_secs,
            timeout_secs,
            retries,
        };
        let command = |c: &str| HealthProbe::Command { command: c.into() };
        for bad in [
            check(command(""), 10, 5, 3),
            check(
                HealthProbe::Http {
                    port: 80,
                    path: "health".into(),
                },
                10,
                5,
                3,
            ),
            check(HealthProbe::Tcp { port: 0 }, 10, 5, 3),
            check(command("true"), 0, 0, 3),
            check(command("true"), 10, 11, 3),
            check(command("true"), 10, 5, 0),
            check(command("true"), 3_601, 5, 3),
        ] {
            let mut d = small();
            let WorkloadSpec::Container { health_check, .. } = &mut d.workloads[0].spec else {
                unreachable!()
            };
            *health_check = Some(bad.clone());
            assert!(
                matches!(
                    reserve(ctx, a.bob, 1, d),
                    Err(Error::InvalidWorkload { .. })
                ),
                "{bad:?}"
            );
        }
        let mut d = small();
        let WorkloadSpec::Container { restart, .. } = &mut d.workloads[0].spec else {
            unreachable!()
        };
        *restart = RestartPolicy::OnFailure { max_retries: 1_001 };
        assert!(matches!(
            reserve(ctx, a.bob, 1, d.clone()),
            Err(Error::InvalidWorkload { .. })
        ));
        let WorkloadSpec::Container {
            restart,
            registry_auth,
            ..
        } = &mut d.workloads[0].spec
        else {
            unreachable!()
        };
        *restart = RestartPolicy::OnFailure { max_retries: 3 };
        *registry_auth = Some(Bytes(b"bob:plain".to_vec()));
        assert!(matches!(
            reserve(ctx, a.bob, 1, d),
            Err(Error::InvalidWorkload { .. })
        ));
        let d = Deployment {
            metadata: String::new(),
            workloads: vec![Workload {
                name: "v".into(),
                spec: WorkloadSpec::Volume { size: 0 },
            }],
        };
        assert_eq!(reserve(ctx, a.bob, 1, d), Err(Error::ZeroSize("v".into())));
        let mut d = full();
        d.workloads[0].spec = WorkloadSpec::Network {
            ip_range: "10.20.0.0/33".into(),
            egress: false,
            mesh: None,
        };
        assert_eq!(
            reserve(ctx, a.bob, 1, d),
            Err(Error::InvalidCidr {
                workload: "net".into(),
                cidr: "10.20.0.0/33".into()
            })
        );
        // Public ranges, and ranges reaching beyond a private one, are refused.
        for range in [
            "8.8.8.0/24",
            "172.15.0.0/16",
            "172.16.0.0/11",
            "192.168.0.0/15",
            "100.64.0.0/10",
        ] {
            let mut d = full();
            d.workloads[0].spec = WorkloadSpec::Network {
                ip_range: range.into(),
                egress: false,
                mesh: None,
            };
            assert_eq!(
                reserve(ctx, a.bob, 1, d),
                Err(Error::InvalidCidr {
                    workload: "net".into(),
                    cidr: range.into()
                }),
                "{range}"
            );
        }
        let mut d = full();
        d.workloads.remove(1);
        assert_eq!(
            reserve(ctx, a.bob, 1, d),
            Err(Error::UnknownMount {
                workload: "app".into(),
                volume: "data".into()
            })
        );
        let mut d = full();
        d.workloads.remove(0);
        assert_eq!(
            reserve(ctx, a.bob, 1, d),
            Err(Error::UnknownNetwork {
                workload: "app".into(),
                network: "net".into()
            })
        );
        let mut d = full();
        if let WorkloadSpec::ZdbNamespace { password, .. } = &mut d.workloads[2].spec {
            *password = Some(Bytes(b"plaintext".to_vec()));
        }
        assert!(matches!(
            reserve(ctx, a.bob, 1, d),
            Err(Error::InvalidWorkload { .. })
        ));
        // Outside the range; the network's own address, its gateway, its broadcast address.
        let range = match &full().workloads[0].spec {
            WorkloadSpec::Network { ip_range, .. } => Cidr::parse(ip_range).unwrap(),
            _ => unreachable!("the network comes first"),
        };
        let std::net::IpAddr::V4(base) = range.addr else {
            unreachable!("IPv4")
        };
        let last = u32::from(base) | (u32::MAX >> range.prefix);
        for ip in [
            "192.168.1.1".to_string(),
            base.to_string(),
            std::net::Ipv4Addr::from(u32::from(base) + 1).to_string(),
            std::net::Ipv4Addr::from(last).to_string(),
        ] {
            let mut d = full();
            if let WorkloadSpec::Container { networks, .. } = &mut d.workloads[3].spec {
                networks[0].ip = Some(ip.clone());
            }
            assert!(
                matches!(
                    reserve(ctx, a.bob, 1, d),
                    Err(Error::InvalidWorkload { .. })
                ),
                "{ip}"
            );
        }
        assert_eq!(
            dispatch(ctx, a.bob, Call::ReserveMany { requests: vec![] }),
            Err(Error::BatchSize)
        );
        assert_eq!(ctx.events().len(), before);
        assert_eq!(next_id(ctx), 1);
        assert!(pallet_tfgrid::used(ctx, 1).is_zero());
    });
}

#[test]
fn nodes_that_are_not_up_or_below_reserved_take_nothing() {
    with_grid(|ctx, a| {
        pallet_timestamp::on_initialize(ctx, 30_000).unwrap();
        assert_eq!(
            reserve(ctx, a.bob, 1, small()),
            Err(Error::NodeNotUp {
                node_id: 1,
                status: NodeStatus::Down
            })
        );
        prove(ctx, 1, 30_000);
        let mut health = pallet_tfgrid::health(ctx, 1);
        health.below_reserved = true;
        pallet_tfgrid::put_health(ctx, 1, &health);
        assert_eq!(
            reserve(ctx, a.bob, 1, small()),
            Err(Error::NodeBelowReserved(1))
        );
    });
}

#[test]
fn buckets_bound_the_number_of_reservations() {
    with_grid(|ctx, a| {
        // 4 buckets × 3 each.
        for _ in 0..12 {
            reserve(
                ctx,
                a.bob,
                1,
                Deployment {
                    metadata: String::new(),
                    workloads: vec![Workload {
                        name: "v".into(),
                        spec: WorkloadSpec::Volume { size: 1 },
                    }],
                },
            )
            .unwrap();
        }
        for b in 0..4 {
            assert_eq!(bucket(ctx, b).len(), 3);
        }
        assert_eq!(
            reserve(ctx, a.bob, 1, small()),
            Err(Error::TooManyReservations)
        );
    });
}

#[test]
fn reserve_many_is_all_or_nothing() {
    with_grid(|ctx, a| {
        let good = ReserveRequest {
            node_id: 1,
            deployment: small(),
        };
        let bad = ReserveRequest {
            node_id: 7,
            deployment: small(),
        };
        assert_eq!(
            dispatch(
                ctx,
                a.bob,
                Call::ReserveMany {
                    requests: vec![good.clone(), bad]
                }
            ),
            Err(Error::UnknownNode(7))
        );
        assert_eq!(next_id(ctx), 1);
        assert!(pallet_tfgrid::used(ctx, 1).is_zero());
        assert_eq!(
            dispatch(
                ctx,
                a.bob,
                Call::ReserveMany {
                    requests: vec![good; MAX_BATCH + 1]
                }
            ),
            Err(Error::BatchSize)
        );
        let ids = reserve_many(
            ctx,
            a.bob,
            vec![
                ReserveRequest {
                    node_id: 1,
                    deployment: small()
                };
                2
            ],
        )
        .unwrap();
        assert_eq!(ids, vec![1, 2]);
    });
}

#[test]
fn report_results_drives_the_state_and_the_rate() {
    with_grid(|ctx, a| {
        reserve(ctx, a.bob, 1, full()).unwrap();
        let report = |ctx: &mut Ctx, who, version, results| {
            dispatch(
                ctx,
                who,
                Call::ReportResults {
                    id: 1,
                    version,
                    results,
                },
            )
        };
        assert_eq!(
            report(ctx, a.bob, 1, vec![ok("app")]),
            Err(Error::NotHostingNode)
        );
        assert_eq!(
            report(ctx, a.node, 2, vec![ok("app")]),
            Err(Error::StaleVersion { current: 1, got: 2 })
        );
        assert_eq!(
            report(ctx, a.node, 1, vec![ok("nope")]),
            Err(Error::UnknownWorkload("nope".into()))
        );
        assert_eq!(
            report(ctx, a.node, 1, vec![ok("app"), ok("app")]),
            Err(Error::DuplicateResult("app".into()))
        );
        let mut long = ok("app");
        long.message = "x".repeat(MAX_TEXT_LEN + 1);
        assert_eq!(
            report(ctx, a.node, 1, vec![long]),
            Err(Error::ResultTooLarge)
        );
        assert_eq!(
            dispatch(
                ctx,
                a.node,
                Call::ReportResults {
                    id: 5,
                    version: 1,
                    results: vec![]
                }
            ),
            Err(Error::UnknownReservation(5))
        );
        // Partial: the Ok container is charged (2 cores, 4 GiB: 1 CU = 3,600,000 units/hour).
        let mut app = ok("app");
        app.data = ResultData::Container {
            container_id: "c1".into(),
            ips: vec!["10.20.0.5".into()],
            image_digest: String::new(),
            restarts: 0,
            limits: Default::default(),
        };
        report(ctx, a.node, 1, vec![app]).unwrap();
        assert_eq!(
            last(ctx),
            TestEvent::Reservations(Event::ResultsReported {
                id: 1,
                version: 1,
                state: ReservationState::Created
            })
        );
        assert_eq!(
            reservation(ctx, 1).unwrap().billing.rate_per_hour,
            3_600_000
        );
        report(ctx, a.node, 1, vec![ok("net"), ok("data"), ok("db")]).unwrap();
        assert_eq!(
            reservation(ctx, 1).unwrap().state,
            ReservationState::Deployed
        );
        let mut failed = ok("db");
        failed.state = WorkloadState::Error;
        failed.message = "disk full".into();
        report(ctx, a.node, 1, vec![failed]).unwrap();
        let r = reservation(ctx, 1).unwrap();
        assert_eq!(r.state, ReservationState::Failed);
        assert_eq!(
            r.results.iter().find(|x| x.name == "db").unwrap().message,
            "disk full"
        );
    });
}

#[test]
fn accrual_follows_the_node_up_clock() {
    with_grid(|ctx, a| {
        reserve(ctx, a.bob, 1, small()).unwrap();
        dispatch(
            ctx,
            a.node,
            Call::ReportResults {
                id: 1,
                version: 1,
                results: vec![ok("web")],
            },
        )
        .unwrap();
        // 1 core, 2 GiB = 0.5 CU → 1,800,000 units/hour = 500 units/s.
        pallet_timestamp::on_initialize(ctx, 11_000).unwrap();
        let mut r = reservation(ctx, 1).unwrap();
        checkpoint(ctx, &mut r);
        assert_eq!(r.billing.unpaid_scaled / MS_PER_HOUR, 5_000);
        // The node's last proof was at 1 s: it is Down after 21 s, so 21..100 s cost nothing.
        pallet_timestamp::on_initialize(ctx, 100_000).unwrap();
        checkpoint(ctx, &mut r);
        assert_eq!(r.billing.unpaid_scaled / MS_PER_HOUR, 10_000);
    });
}

#[test]
fn update_and_cancel_are_owner_only() {
    with_grid(|ctx, a| {
        reserve(ctx, a.bob, 1, small()).unwrap();
        dispatch(
            ctx,
            a.node,
            Call::ReportResults {
                id: 1,
                version: 1,
                results: vec![ok("web")],
            },
        )
        .unwrap();
        let update = |ctx: &mut Ctx, who, deployment| {
            dispatch(ctx, who, Call::UpdateReservation { id: 1, deployment })
        };
        assert_eq!(update(ctx, a.alice, full()), Err(Error::NotOwner));
        assert_eq!(
            dispatch(
                ctx,
                a.bob,
                Call::UpdateReservation {
                    id: 3,
                    deployment: full()
                }
            ),
            Err(Error::UnknownReservation(3))
        );
        let too_big = Deployment {
            metadata: String::new(),
            workloads: vec![container("big", 9, GIB)],
        };
        assert!(matches!(
            update(ctx, a.bob, too_big),
            Err(Error::InsufficientCapacity { .. })
        ));
        // Growing to the whole usable memory works: the old deployment's share is given back.
        let whole = Deployment {
            metadata: String::new(),
            workloads: vec![container("web", 8, 28 * GIB)],
        };
        update(ctx, a.bob, whole).unwrap();
        assert_eq!(
            last(ctx),
            TestEvent::Reservations(Event::ReservationUpdated { id: 1, version: 2 })
        );
        let r = reservation(ctx, 1).unwrap();
        assert_eq!(
            (r.version, r.state, r.results.len()),
            (2, ReservationState::Created, 0)
        );
        assert_eq!(r.billing.rate_per_hour, 0);
        assert_eq!(pallet_tfgrid::used(ctx, 1).cru, 8);

        assert_eq!(
            dispatch(ctx, a.alice, Call::CancelReservation { id: 1 }),
            Err(Error::NotOwner)
        );
        dispatch(ctx, a.bob, Call::CancelReservation { id: 1 }).unwrap();
        assert_eq!(
            last(ctx),
            TestEvent::Reservations(Event::ReservationDeleted {
                id: 1,
                reason: DeletionReason::CanceledByUser
            })
        );
        assert!(pallet_tfgrid::used(ctx, 1).is_zero());
        assert!(by_node(ctx, 1).is_empty());
        assert_eq!(pallet_twins::twin_of(ctx, &a.bob).unwrap().references, 0);
        assert_eq!(
            dispatch(ctx, a.bob, Call::CancelReservation { id: 1 }),
            Err(Error::ReservationDeleted(1))
        );
        assert_eq!(
            update(ctx, a.bob, small()),
            Err(Error::ReservationDeleted(1))
        );
        assert_eq!(
            dispatch(
                ctx,
                a.node,
                Call::ReportResults {
                    id: 1,
                    version: 2,
                    results: vec![]
                }
            ),
            Err(Error::ReservationDeleted(1))
        );
        // Still in its bucket: billing settles what it owes, then drops it.
        assert_eq!(
            bucket(ctx, reservation(ctx, 1).unwrap().billing.bucket),
            vec![1]
        );
    });
}

fn network_only(i: usize) -> Deployment {
    Deployment {
        metadata: format!("n{i}"),
        workloads: vec![Workload {
            name: "net".into(),
            spec: WorkloadSpec::Network {
                ip_range: "10.20.0.0/16".into(),
                egress: false,
                mesh: None,
            },
        }],
    }
}

fn node_deleted(ctx: &Ctx, id: ReservationId) -> bool {
    reservation(ctx, id).unwrap().state
        == ReservationState::Deleted {
            reason: DeletionReason::NodeDeleted,
        }
}

#[test]
fn deleting_a_node_ends_its_reservations_in_bounded_batches() {
    with_grid(|ctx, a| {
        set_config(
            ctx,
            &ReservationsConfig {
                settlement_buckets: 4,
                max_per_bucket: 1_000,
                ..ReservationsConfig::default()
            },
        );
        reserve(ctx, a.bob, 1, small()).unwrap();
        let count = END_PER_BLOCK as u64 + 10;
        for i in 1..count {
            reserve(ctx, a.bob, 1, network_only(i as usize)).unwrap();
        }
        assert_eq!(by_node(ctx, 1).len() as u64, count);
        pallet_timestamp::on_initialize(ctx, 5_000).unwrap();
        let clock = pallet_tfgrid::node_up_clock(ctx, 1);
        pallet_tfgrid::dispatch(ctx, a.node, pallet_tfgrid::Call::DeleteNode { node_id: 1 })
            .unwrap();
        schedule_node_end(ctx, 1);
        // Nothing ended inside the call; the node's up clock stopped with it.
        assert!(!node_deleted(ctx, 1));
        pallet_timestamp::on_initialize(ctx, 9_000).unwrap();
        assert_eq!(pallet_tfgrid::node_up_clock(ctx, 1), clock);
        on_initialize(ctx);
        let ended = (1..=count).filter(|id| node_deleted(ctx, *id)).count();
        assert_eq!(ended, END_PER_BLOCK as usize);
        assert_eq!(by_node(ctx, 1).len(), 10);
        on_initialize(ctx);
        assert!((1..=count).all(|id| node_deleted(ctx, id)));
        assert!(by_node(ctx, 1).is_empty());
        assert!(ending_nodes_set().is_empty(ctx));
        assert!(pallet_tfgrid::used(ctx, 1).is_zero());
        // The frozen health goes with the last reservation; the owner keeps the history.
        assert_eq!(pallet_tfgrid::health(ctx, 1), Default::default());
        assert_eq!(by_owner(ctx, &a.bob).len() as u64, count);
        on_initialize(ctx);
    });
}

/// A stranger's `DeleteNode` is refused before any of the node's reservations is read.
#[test]
fn refused_node_deletions_end_nothing() {
    with_grid(|ctx, a| {
        reserve(ctx, a.bob, 1, small()).unwrap();
        assert!(pallet_tfgrid::dispatch(
            ctx,
            a.bob,
            pallet_tfgrid::Call::DeleteNode { node_id: 1 }
        )
        .is_err());
        on_initialize(ctx);
        assert_eq!(
            reservation(ctx, 1).unwrap().state,
            ReservationState::Created
        );
        assert!(ending_nodes_set().is_empty(ctx));
    });
}

/// Deposits, minimum prices and per-owner caps (`ReservationsConfig`): holding capacity costs.
fn priced(ctx: &mut Ctx) {
    set_config(
        ctx,
        &ReservationsConfig {
            settlement_buckets: 4,
            max_per_bucket: 100,
            deposit_per_workload: 100,
            deposit_hours: 2,
            min_price_per_workload_hour: 10,
            max_live_per_owner: 2,
        },
    );
}

#[test]
fn reserving_holds_a_deposit_from_the_owners_free_balance() {
    with_grid(|ctx, a| {
        priced(ctx);
        // small(): 1 core, 2 GiB = 0.5 CU = 1,800,000 per hour; deposit 100 + 2 hours.
        let deposit = 100 + 2 * 1_800_000;
        assert_eq!(
            ctx.transactional(|ctx| reserve(ctx, a.bob, 1, small())),
            Err(Error::InsufficientDeposit {
                needed: deposit,
                available: 0
            })
        );
        pallet_balances::endow(ctx, a.bob, 5_000_000).unwrap();
        let id = reserve(ctx, a.bob, 1, small()).unwrap();
        let account = pallet_balances::account(ctx, &a.bob);
        assert_eq!(
            (account.free, account.reserved),
            (5_000_000 - deposit, deposit)
        );
        assert_eq!(reservation(ctx, id).unwrap().billing.deposit, deposit);
        // What is left cannot hold a second one; nothing changes on failure (the runtime's
        // transaction drops the partial writes: here, checked through `transactional`).
        let second = ctx.transactional(|ctx| reserve(ctx, a.bob, 1, small()));
        assert!(
            matches!(second, Err(Error::InsufficientDeposit { .. })),
            "{second:?}"
        );
        assert_eq!(by_owner(ctx, &a.bob), vec![id]);
        assert_eq!(live_count(ctx, &a.bob), 1);
        // An update to a smaller deployment gives the difference back at once.
        dispatch(
            ctx,
            a.bob,
            Call::UpdateReservation {
                id,
                deployment: network_only(0),
            },
        )
        .unwrap();
        assert_eq!(reservation(ctx, id).unwrap().billing.deposit, 120);
        assert_eq!(pallet_balances::account(ctx, &a.bob).reserved, 120);
    });
}

#[test]
fn tiny_workloads_pay_the_minimum_price_and_owners_are_capped() {
    with_grid(|ctx, a| {
        priced(ctx);
        pallet_balances::endow(ctx, a.bob, 1_000_000).unwrap();
        let first = reserve(ctx, a.bob, 1, network_only(1)).unwrap();
        dispatch(
            ctx,
            a.node,
            Call::ReportResults {
                id: first,
                version: 1,
                results: vec![ok("net")],
            },
        )
        .unwrap();
        // A network holds no resources, so its farm price is 0; the chain's floor applies.
        assert_eq!(reservation(ctx, first).unwrap().billing.rate_per_hour, 10);
        reserve(ctx, a.bob, 1, network_only(2)).unwrap();
        assert_eq!(
            reserve(ctx, a.bob, 1, network_only(3)),
            Err(Error::TooManyForOwner(2))
        );
        dispatch(ctx, a.bob, Call::CancelReservation { id: first }).unwrap();
        assert_eq!(live_count(ctx, &a.bob), 1);
        reserve(ctx, a.bob, 1, network_only(3)).unwrap();
    });
}

/// `small()` plus a public IP for its container.
fn with_public_ip() -> Deployment {
    let mut d = small();
    d.workloads.push(Workload {
        name: "ip".into(),
        spec: WorkloadSpec::PublicIp {
            container: "web".into(),
        },
    });
    d
}

fn farm_ips(ctx: &Ctx) -> Vec<(String, Option<u64>)> {
    pallet_tfgrid::farm(ctx, 1)
        .unwrap()
        .public_ips
        .into_iter()
        .map(|p| (p.ip, p.reservation))
        .collect()
}

#[test]
fn public_ips_are_assigned_once_billed_while_ok_and_freed_in_the_block_the_reservation_ends() {
    with_grid(|ctx, a| {
        let pool = ["198.51.100.10/24", "198.51.100.11/24"];
        for ip in pool {
            dispatch_tfgrid(ctx, a.alice, ip);
        }
        // Bad input: a public IP for something that is not a container, two for one container.
        let mut d = with_public_ip();
        d.workloads[1].spec = WorkloadSpec::PublicIp {
            container: "nope".into(),
        };
        assert!(matches!(
            reserve(ctx, a.bob, 1, d),
            Err(Error::InvalidWorkload { .. })
        ));
        let mut d = with_public_ip();
        d.workloads.push(Workload {
            name: "ip2".into(),
            spec: WorkloadSpec::PublicIp {
                container: "web".into(),
            },
        });
        assert!(matches!(
            reserve(ctx, a.bob, 1, d),
            Err(Error::InvalidWorkload { .. })
        ));
        // Two reservations take the two IPs; a third finds none and changes nothing.
        let first = reserve(ctx, a.bob, 1, with_public_ip()).unwrap();
        let second = reserve(ctx, a.alice, 1, with_public_ip()).unwrap();
        assert_eq!(
            farm_ips(ctx),
            [
                (pool[0].to_string(), Some(first)),
                (pool[1].to_string(), Some(second))
            ]
        );
        let r = reservation(ctx, first).unwrap();
        assert_eq!(
            r.public_ips,
            [AssignedIp {
                workload: "ip".into(),
                ip: pool[0].into(),
                gateway: "198.51.100.1".into(),
            }]
        );
        let next = next_id(ctx);
        assert_eq!(
            ctx.transactional(|ctx| reserve(ctx, a.bob, 1, with_public_ip())),
            Err(Error::NoFreeIp(1))
        );
        assert_eq!(next_id(ctx), next);
        // The farmer cannot take back an IP in use.
        assert_eq!(
            pallet_tfgrid::dispatch(
                ctx,
                a.alice,
                pallet_tfgrid::Call::RemoveFarmIp {
                    farm_id: 1,
                    ip: pool[0].into(),
                },
            ),
            Err(pallet_tfgrid::Error::IpInUse {
                ip: pool[0].into(),
                reservation: first
            })
        );
        // Billed per hour while Ok: the IP's price (setup: 5,000,000) on top of the container's.
        dispatch(
            ctx,
            a.node,
            Call::ReportResults {
                id: first,
                version: 1,
                results: vec![ok("web")],
            },
        )
        .unwrap();
        let container_rate = reservation(ctx, first).unwrap().billing.rate_per_hour;
        dispatch(
            ctx,
            a.node,
            Call::ReportResults {
                id: first,
                version: 1,
                results: vec![ok("web"), ok("ip")],
            },
        )
        .unwrap();
        assert_eq!(
            reservation(ctx, first).unwrap().billing.rate_per_hour,
            container_rate + 5_000_000
        );
        // An update without the public IP frees it at once; with it again, it takes a free one.
        dispatch(
            ctx,
            a.bob,
            Call::UpdateReservation {
                id: first,
                deployment: small(),
            },
        )
        .unwrap();
        assert!(reservation(ctx, first).unwrap().public_ips.is_empty());
        assert_eq!(farm_ips(ctx)[0], (pool[0].to_string(), None));
        dispatch(
            ctx,
            a.bob,
            Call::UpdateReservation {
                id: first,
                deployment: with_public_ip(),
            },
        )
        .unwrap();
        assert_eq!(farm_ips(ctx)[0], (pool[0].to_string(), Some(first)));
        // Cancel frees it in the same block.
        dispatch(ctx, a.bob, Call::CancelReservation { id: first }).unwrap();
        assert_eq!(farm_ips(ctx)[0], (pool[0].to_string(), None));
        assert!(reservation(ctx, first).unwrap().public_ips.is_empty());
        // And the farmer may remove it now.
        pallet_tfgrid::dispatch(
            ctx,
            a.alice,
            pallet_tfgrid::Call::RemoveFarmIp {
                farm_id: 1,
                ip: pool[0].into(),
            },
        )
        .unwrap();
    });
}

fn dispatch_tfgrid(ctx: &mut Ctx, farmer: AccountId, ip: &str) {
    pallet_tfgrid::dispatch(
        ctx,
        farmer,
        pallet_tfgrid::Call::AddFarmIp {
            farm_id: 1,
            ip: ip.into(),
            gateway: "198.51.100.1".into(),
        },
    )
    .unwrap();
}

/// Node2 (same farm, same resources) joins and is Up.
fn second_node(ctx: &mut Ctx, a: Accounts) -> AccountId {
    let node2 = Pair::dev("Node2").public();
    pallet_twins::create_twin(ctx, node2, "node2".into(), String::new()).unwrap();
    pallet_tfgrid::allow_node(ctx, a.alice, 1, node2).unwrap();
    pallet_tfgrid::register_node(
        ctx,
        node2,
        1,
        pallet_tfgrid::node(ctx, 1).unwrap().resources,
        Location::default(),
        None,
    )
    .unwrap();
    prove(ctx, 2, 1_000);
    node2
}

fn mesh_member(subnet: &str, range: &str, peers: Vec<MeshPeer>) -> Deployment {
    Deployment {
        metadata: String::new(),
        workloads: vec![Workload {
            name: "net".into(),
            spec: WorkloadSpec::Network {
                ip_range: subnet.into(),
                egress: false,
                mesh: Some(MeshSpec {
                    range: range.into(),
                    peers,
                }),
            },
        }],
    }
}

fn peer(key: u8, ip: &str) -> MeshPeer {
    MeshPeer {
        public_key: gridchain_primitives::wireguard::WireguardKey([key; 32]),
        ip: ip.into(),
    }
}

/// Reserves through the transactional wrapper the executive uses, so a refusal keeps nothing.
fn try_reserve(ctx: &mut Ctx, who: AccountId, node_id: NodeId, d: Deployment) -> Result<(), Error> {
    ctx.transactional(|ctx| {
        dispatch(
            ctx,
            who,
            Call::Reserve {
                node_id,
                deployment: d,
            },
        )
    })
}

#[test]
fn meshes_admit_one_disjoint_member_per_node_and_forget_members_that_end() {
    with_grid(|ctx, a| {
        let node2 = second_node(ctx, a);
        let range = "10.40.0.0/16";
        // Bad specs, refused before any state is read.
        for (d, why) in [
            (mesh_member("10.41.1.0/24", range, vec![]), "not inside"),
            (mesh_member("10.40.1.0/24", "10.40.0.0/33", vec![]), "range"),
            (
                mesh_member("10.40.1.0/24", range, vec![peer(1, "10.40.1.7")]),
                "inside the member",
            ),
            (
                mesh_member("10.40.1.0/24", range, vec![peer(1, "10.41.0.2")]),
                "not a host address",
            ),
            (
                mesh_member(
                    "10.40.1.0/24",
                    range,
                    vec![peer(1, "10.40.255.2"), peer(1, "10.40.255.3")],
                ),
                "twice",
            ),
        ] {
            let err = try_reserve(ctx, a.bob, 1, d).unwrap_err();
            assert!(
                matches!(err, Error::MeshConflict { .. } | Error::InvalidCidr { .. }),
                "{why}: {err}"
            );
            assert!(
                err.to_string().contains(why) || matches!(err, Error::InvalidCidr { .. }),
                "{why}: {err}"
            );
        }
        assert_eq!(mesh::mesh(ctx, &a.bob, "net"), None);

        // Member 1 on node 1, with Bob's laptop as a peer.
        let laptop = peer(9, "10.40.255.2");
        try_reserve(
            ctx,
            a.bob,
            1,
            mesh_member("10.40.1.0/24", range, vec![laptop.clone()]),
        )
        .unwrap();
        let first = next_id(ctx) - 1;
        // Clashes with it, each refused with nothing kept: an overlapping subnet, a second
        // member on the same node, another range, a peer address taken by another key, a peer
        // address inside a member's subnet.
        let before = (next_id(ctx), mesh::mesh(ctx, &a.bob, "net"));
        for (node_id, d, why) in [
            (2, mesh_member("10.40.0.0/23", range, vec![]), "overlaps"),
            (
                1,
                mesh_member("10.40.2.0/24", range, vec![]),
                "one member per node",
            ),
            (
                2,
                mesh_member("10.40.2.0/24", "10.40.0.0/15", vec![]),
                "range is",
            ),
            (
                2,
                mesh_member("10.40.2.0/24", range, vec![peer(8, "10.40.255.2")]),
                "clashes",
            ),
            (
                2,
                mesh_member("10.40.2.0/24", range, vec![peer(8, "10.40.1.200")]),
                "inside member subnet",
            ),
        ] {
            let err = try_reserve(ctx, a.bob, node_id, d).unwrap_err();
            assert!(
                matches!(err, Error::MeshConflict { .. }) && err.to_string().contains(why),
                "{why}: {err}"
            );
            assert_eq!(
                (next_id(ctx), mesh::mesh(ctx, &a.bob, "net")),
                before,
                "{why}"
            );
        }
        // Another owner's mesh of the same name and range is another mesh.
        try_reserve(ctx, a.alice, 1, mesh_member("10.40.1.0/24", range, vec![])).unwrap();
        assert_eq!(mesh::mesh(ctx, &a.alice, "net").unwrap().members.len(), 1);

        // Member 2 on node 2: the same laptop may be listed again.
        try_reserve(
            ctx,
            a.bob,
            2,
            mesh_member("10.40.2.0/24", range, vec![laptop.clone()]),
        )
        .unwrap();
        let second = next_id(ctx) - 1;
        let m = mesh::mesh(ctx, &a.bob, "net").unwrap();
        assert_eq!(
            m.members
                .iter()
                .map(|x| (x.reservation, x.node_id, x.subnet.as_str()))
                .collect::<Vec<_>>(),
            vec![(first, 1, "10.40.1.0/24"), (second, 2, "10.40.2.0/24")]
        );
        assert_eq!(m.peers(), vec![&laptop]);

        // Only the hosting node's report sets its key and endpoint.
        let wg = WireguardEndpoint {
            public_key: gridchain_primitives::wireguard::WireguardKey([2; 32]),
            endpoint: "192.0.2.2:51821".into(),
        };
        let report = |wg: &WireguardEndpoint| Call::ReportResults {
            id: second,
            version: 1,
            results: vec![WorkloadResult {
                name: "net".into(),
                state: WorkloadState::Ok,
                message: String::new(),
                data: ResultData::Network {
                    subnet: "10.40.2.0/24".into(),
                    gateway: Some("10.40.2.1".into()),
                    wireguard: Some(wg.clone()),
                },
            }],
        };
        assert_eq!(
            dispatch(ctx, a.node, report(&wg)),
            Err(Error::NotHostingNode)
        );
        let long = WireguardEndpoint {
            endpoint: "x".repeat(mesh::MAX_ENDPOINT_LEN + 1),
            ..wg.clone()
        };
        assert_eq!(
            dispatch(ctx, node2, report(&long)),
            Err(Error::ResultTooLarge)
        );
        // Not an address and port: it would break every other member's configuration.
        for bad in [
            "192.0.2.2",
            "host:51821",
            "192.0.2.2:51821\nPublicKey = x",
            "[::1]",
        ] {
            let bad = WireguardEndpoint {
                endpoint: bad.into(),
                ..wg.clone()
            };
            assert_eq!(
                ctx.transactional(|ctx| dispatch(ctx, node2, report(&bad))),
                Err(Error::InvalidEndpoint(bad.endpoint.clone()))
            );
        }
        assert_eq!(
            mesh::mesh(ctx, &a.bob, "net").unwrap().members[1].wireguard,
            None
        );
        dispatch(ctx, node2, report(&wg)).unwrap();
        let m = mesh::mesh(ctx, &a.bob, "net").unwrap();
        assert_eq!(m.members[1].wireguard.as_ref(), Some(&wg));
        assert_eq!(m.members[0].wireguard, None);

        // An update that keeps the subnet keeps the node's key; one that drops the mesh leaves.
        let mut d = mesh_member("10.40.2.0/24", range, vec![laptop.clone()]);
        d.metadata = "v2".into();
        dispatch(
            ctx,
            a.bob,
            Call::UpdateReservation {
                id: second,
                deployment: d,
            },
        )
        .unwrap();
        let m = mesh::mesh(ctx, &a.bob, "net").unwrap();
        assert_eq!(m.members[1].wireguard.as_ref(), Some(&wg));
        dispatch(
            ctx,
            a.bob,
            Call::UpdateReservation {
                id: second,
                deployment: network_only(0),
            },
        )
        .unwrap();
        assert_eq!(mesh::mesh(ctx, &a.bob, "net").unwrap().members.len(), 1);

        // The last member's end removes the record in the same block.
        dispatch(ctx, a.bob, Call::CancelReservation { id: first }).unwrap();
        assert_eq!(mesh::mesh(ctx, &a.bob, "net"), None);
        assert!(mesh::mesh(ctx, &a.alice, "net").is_some());
    })
}
