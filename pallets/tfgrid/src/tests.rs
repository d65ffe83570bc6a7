use super::*;
use gridchain_primitives::{Overlay, Pair};
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq)]
enum TestEvent {
    Twins(pallet_twins::Event),
    Tfgrid(Event),
}
impl From<pallet_twins::Event> for TestEvent {
    fn from(e: pallet_twins::Event) -> Self {
        TestEvent::Twins(e)
    }
}
impl From<Event> for TestEvent {
    fn from(e: Event) -> Self {
        TestEvent::Tfgrid(e)
    }
}

fn with_ctx(f: impl FnOnce(&mut Context<TestEvent>)) {
    let backend = BTreeMap::new();
    let mut ctx = Context::new(Overlay::new(&backend));
    f(&mut ctx);
}

fn twin(ctx: &mut Context<TestEvent>, who: AccountId, name: &str) {
    pallet_twins::create_twin(ctx, who, name.into(), String::new()).unwrap();
}

fn policy() -> PricingPolicy {
    PricingPolicy {
        id: 0,
        name: "default".into(),
        cu_per_hour: 1_000_000,
        su_per_hour: 500_000,
        nu_per_gb: 1,
        ipu_per_hour: 1,
    }
}

fn resources() -> Resources {
    Resources {
        cru: 8,
        mru: 32 * GIB,
        sru: 500 * GIB,
        hru: 4000 * GIB,
    }
}

fn last_event(ctx: &Context<TestEvent>) -> TestEvent {
    ctx.events().last().unwrap().event.clone()
}

/// Alice owns farm 1; Node1 is node 1 on it.
fn setup(ctx: &mut Context<TestEvent>) -> (AccountId, AccountId) {
    let alice = Pair::dev("Alice").public();
    let node = Pair::dev("Node1").public();
    twin(ctx, alice, "alice");
    twin(ctx, node, "node1");
    assert_eq!(add_pricing_policy(ctx, policy()), 1);
    create_farm(ctx, alice, "farm".into(), 1).unwrap();
    allow_node(ctx, alice, 1, node).unwrap();
    register_node(ctx, node, 1, resources(), Location::default(), None).unwrap();
    (alice, node)
}

#[test]
fn capacity_unit_formulas() {
    // 8 cores, 32 GiB: min(max(8,4), max(4,8), max(16,2)) = 8 CU.
    assert_eq!(cu_micro(&resources()), 8_000_000);
    // 1 core, 2 GiB: min(max(.5,.5), max(.25,1), max(1,.25)) = 0.5 CU.
    assert_eq!(
        cu_micro(&Resources {
            cru: 1,
            mru: 2 * GIB,
            ..Default::default()
        }),
        500_000
    );
    // 4000/1200 + 500/200 = 3.333333 + 2.5 SU.
    assert_eq!(su_micro(&resources()), 3_333_333 + 2_500_000);
    assert_eq!(
        policy().price_per_hour(&resources()),
        8 * 1_000_000 + (5_833_333u128 * 500_000) / 1_000_000
    );
    let reserve = system_reserve(&resources());
    assert_eq!(reserve.mru, 3 * GIB + GIB / 5);
    assert_eq!(reserve.sru, 50 * GIB);
    assert_eq!(usable_capacity(&resources()).cru, 8);
}

#[test]
fn cidr_parsing_and_membership() {
    let net = Cidr::parse("10.1.0.0/16").unwrap();
    assert!(net.contains(&"10.1.200.3".parse().unwrap()));
    assert!(!net.contains(&"10.2.0.1".parse().unwrap()));
    assert!(!net.contains(&"::1".parse().unwrap()));
    assert!(Cidr::parse("10.0.0.0/33").is_none());
    assert!(Cidr::parse("10.0.0.0").is_none());
    assert!(Cidr::parse("nonsense/8").is_none());
    assert!(Cidr::parse("2001:db8::/32")
        .unwrap()
        .contains(&"2001:db8::1".parse().unwrap()));
    assert!(Cidr::parse("0.0.0.0/0")
        .unwrap()
        .contains(&"1.2.3.4".parse().unwrap()));
}

#[test]
fn farms_create_update_and_errors() {
    with_ctx(|ctx| {
        let (alice, node) = setup(ctx);
        assert!(ctx.events().iter().any(|r| r.event
            == TestEvent::Tfgrid(Event::FarmCreated {
                id: 1,
                twin_id: 1,
                name: "farm".into()
            })));
        assert_eq!(pallet_twins::twin(ctx, 1).unwrap().references, 1);
        let bob = Pair::dev("Bob").public();
        let create = |ctx: &mut Context<TestEvent>, who, name: &str, policy| {
            dispatch(
                ctx,
                who,
                Call::CreateFarm {
                    name: name.into(),
                    pricing_policy_id: policy,
                },
            )
        };
        assert_eq!(create(ctx, bob, "x", 1), Err(Error::NoTwin));
        assert_eq!(
            create(ctx, alice, "bad name", 1),
            Err(Error::InvalidFarmName)
        );
        assert_eq!(
            create(ctx, alice, "FARM", 1),
            Err(Error::FarmNameTaken("FARM".into()))
        );
        assert_eq!(
            create(ctx, alice, "f2", 9),
            Err(Error::UnknownPricingPolicy(9))
        );
        let update = |ctx: &mut Context<TestEvent>, who, farm_id, name: &str| {
            dispatch(
                ctx,
                who,
                Call::UpdateFarm {
                    farm_id,
                    name: name.into(),
                    payout: bob,
                },
            )
        };
        assert_eq!(update(ctx, node, 1, "x"), Err(Error::NotFarmOwner));
        assert_eq!(update(ctx, alice, 7, "x"), Err(Error::UnknownFarm(7)));
        assert_eq!(update(ctx, alice, 1, ""), Err(Error::InvalidFarmName));
        create(ctx, alice, "other", 1).unwrap();
        assert_eq!(
            update(ctx, alice, 1, "other"),
            Err(Error::FarmNameTaken("other".into()))
        );
        update(ctx, alice, 1, "renamed").unwrap();
        assert_eq!(
            last_event(ctx),
            TestEvent::Tfgrid(Event::FarmUpdated {
                id: 1,
                name: "renamed".into(),
                payout: bob
            })
        );
        assert_eq!(farm(ctx, 1).unwrap().payout, bob);
        create(ctx, alice, "farm", 1).unwrap();
    });
}

#[test]
fn farm_ips_add_remove_and_errors() {
    with_ctx(|ctx| {
        let (alice, node) = setup(ctx);
        let add = |ctx: &mut Context<TestEvent>, who, ip: &str, gw: &str| {
            dispatch(
                ctx,
                who,
                Call::AddFarmIp {
                    farm_id: 1,
                    ip: ip.into(),
                    gateway: gw.into(),
                },
            )
        };
        add(ctx, alice, "185.1.2.3/24", "185.1.2.1").unwrap();
        assert_eq!(
            last_event(ctx),
            TestEvent::Tfgrid(Event::FarmIpAdded {
                farm_id: 1,
                ip: "185.1.2.3/24".into()
            })
        );
        assert_eq!(
            add(ctx, node, "185.1.2.4/24", "185.1.2.1"),
            Err(Error::NotFarmOwner)
        );
        assert_eq!(
            add(ctx, alice, "185.1.2.4", "185.1.2.1"),
            Err(Error::InvalidIp)
        );
        assert_eq!(
            add(ctx, alice, "185.1.2.4/24", "9.9.9.9"),
            Err(Error::InvalidIp)
        );
        assert_eq!(add(ctx, alice, "185.1.2.4/24", "gw"), Err(Error::InvalidIp));
        assert_eq!(
            add(ctx, alice, "185.1.2.3/24", "185.1.2.1"),
            Err(Error::IpExists("185.1.2.3/24".into()))
        );
        for i in 1..MAX_FARM_IPS {
            add(
                ctx,
                alice,
                &format!("10.0.{}.{}/8", i / 200, i % 200 + 2),
                "10.0.0.1",
            )
            .unwrap();
        }
        assert_eq!(
            add(ctx, alice, "11.0.0.2/8", "11.0.0.1"),
            Err(Error::TooManyIps)
        );
        let remove = |ctx: &mut Context<TestEvent>, who, ip: &str| {
            dispatch(
                ctx,
                who,
                Call::RemoveFarmIp {
                    farm_id: 1,
                    ip: ip.into(),
                },
            )
        };
        assert_eq!(remove(ctx, node, "185.1.2.3/24"), Err(Error::NotFarmOwner));
        assert_eq!(
            remove(ctx, alice, "1.1.1.1/32"),
            Err(Error::UnknownIp("1.1.1.1/32".into()))
        );
        remove(ctx, alice, "185.1.2.3/24").unwrap();
        assert_eq!(
            last_event(ctx),
            TestEvent::Tfgrid(Event::FarmIpRemoved {
                farm_id: 1,
                ip: "185.1.2.3/24".into()
            })
        );
        assert_eq!(farm(ctx, 1).unwrap().public_ips.len(), MAX_FARM_IPS - 1);
    });
}

#[test]
fn nodes_register_update_delete_and_errors() {
    with_ctx(|ctx| {
        let (alice, node) = setup(ctx);
        assert!(ctx.events().iter().any(|r| r.event
            == TestEvent::Tfgrid(Event::NodeRegistered {
                id: 1,
                farm_id: 1,
                account: node
            })));
        assert_eq!(node_id_of(ctx, &node), Some(1));
        assert_eq!(farm_nodes(ctx, 1), vec![1]);
        assert_eq!(node_status(ctx, 1), NodeStatus::Standby);
        let register = |ctx: &mut Context<TestEvent>, who, farm_id, resources, public_config| {
            dispatch(
                ctx,
                who,
                Call::RegisterNode {
                    farm_id,
                    resources,
                    location: Location::default(),
                    public_config,
                },
            )
        };
        let bob = Pair::dev("Bob").public();
        assert_eq!(register(ctx, bob, 1, resources(), None), Err(Error::NoTwin));
        assert_eq!(
            register(ctx, node, 1, resources(), None),
            Err(Error::AlreadyRegistered(1))
        );
        twin(ctx, bob, "bob");
        assert_eq!(
            register(ctx, bob, 5, resources(), None),
            Err(Error::UnknownFarm(5))
        );
        assert_eq!(
            register(ctx, bob, 1, resources(), None),
            Err(Error::NodeNotAllowed)
        );
        dispatch(
            ctx,
            alice,
            Call::AllowNode {
                farm_id: 1,
                account: bob,
            },
        )
        .unwrap();
        assert_eq!(
            register(ctx, bob, 1, Resources::default(), None),
            Err(Error::InvalidResources)
        );
        let bad_public = PublicConfig {
            ipv4: "1.2.3.4/24".into(),
            gw4: "5.6.7.8".into(),
            ipv6: None,
            domain: None,
        };
        assert_eq!(
            register(ctx, bob, 1, resources(), Some(bad_public)),
            Err(Error::InvalidNodeInfo)
        );
        let public = PublicConfig {
            ipv4: "1.2.3.4/24".into(),
            gw4: "1.2.3.1".into(),
            ipv6: Some("2001:db8::5/64".into()),
            domain: Some("node.example".into()),
        };
        register(ctx, bob, 1, resources(), Some(public)).unwrap();
        assert_eq!(farm_nodes(ctx, 1), vec![1, 2]);
        // The allowance is used up.
        assert!(!node_allowed(ctx, 1, &bob));

        let update = |ctx: &mut Context<TestEvent>, who, resources| {
            dispatch(
                ctx,
                who,
                Call::UpdateNode {
                    resources,
                    location: Location {
                        country: "BE".into(),
                        city: "Ghent".into(),
                        latitude: "51.05".into(),
                        longitude: "3.72".into(),
                    },
                    public_config: None,
                },
            )
        };
        assert_eq!(update(ctx, alice, resources()), Err(Error::NotANode));
        assert_eq!(
            update(ctx, node, Resources::default()),
            Err(Error::InvalidResources)
        );
        set_used(
            ctx,
            1,
            &Resources {
                cru: 8,
                ..Default::default()
            },
        );
        assert_eq!(
            update(
                ctx,
                node,
                Resources {
                    cru: 4,
                    ..resources()
                }
            ),
            Err(Error::ResourcesBelowReserved)
        );
        update(ctx, node, resources()).unwrap();
        assert_eq!(
            last_event(ctx),
            TestEvent::Tfgrid(Event::NodeUpdated { id: 1 })
        );
        assert_eq!(node_of(ctx, 1).location.city, "Ghent");

        let delete = |ctx: &mut Context<TestEvent>, who, node_id| {
            dispatch(ctx, who, Call::DeleteNode { node_id })
        };
        assert_eq!(delete(ctx, alice, 9), Err(Error::UnknownNode(9)));
        let charlie = Pair::dev("Charlie").public();
        assert_eq!(delete(ctx, charlie, 1), Err(Error::NotNodeOrFarmer));
        delete(ctx, node, 1).unwrap();
        assert_eq!(
            last_event(ctx),
            TestEvent::Tfgrid(Event::NodeDeleted { id: 1 })
        );
        delete(ctx, alice, 2).unwrap();
        assert_eq!(farm_nodes(ctx, 1), Vec::<NodeId>::new());
        assert_eq!(node_id_of(ctx, &node), None);
        assert_eq!(pallet_twins::twin_of(ctx, &node).unwrap().references, 0);
    });
}

fn node_of(ctx: &Context<TestEvent>, id: NodeId) -> Node {
    node(ctx, id).unwrap()
}

#[test]
fn up_clock_counts_only_up_time() {
    let period = 10_000;
    let mut h = NodeHealth::default();
    assert_eq!(effective_status(&h, 5_000, period), NodeStatus::Standby);
    assert_eq!(up_clock(&h, 5_000, period), 0);
    record_proof(&mut h, 1_000, period);
    assert_eq!(up_clock(&h, 11_000, period), 10_000);
    assert_eq!(effective_status(&h, 21_000, period), NodeStatus::Up);
    // Down after two periods: the clock stops at 21 s.
    assert_eq!(effective_status(&h, 21_001, period), NodeStatus::Down);
    assert_eq!(up_clock(&h, 50_000, period), 20_000);
    // A proof at 60 s restarts it; the clock is continuous across the proof.
    let before = up_clock(&h, 60_000, period);
    record_proof(&mut h, 60_000, period);
    assert_eq!(up_clock(&h, 60_000, period), before);
    assert_eq!(up_clock(&h, 65_000, period), 25_000);
    // A proof in time keeps the stretch going.
    record_proof(&mut h, 70_000, period);
    assert_eq!(up_clock(&h, 75_000, period), 35_000);
}

/// A node that declares absurd resources would mint rewards and attract reservations for
/// capacity it does not have: declarations are capped by the chain spec's per-node limits.
#[test]
fn declared_resources_above_the_chain_limits_are_refused() {
    with_ctx(|ctx| {
        let (_, node) = setup(ctx);
        let liar = Pair::dev("Liar").public();
        twin(ctx, liar, "liar");
        let huge = Resources {
            cru: u64::MAX,
            mru: u64::MAX,
            sru: u64::MAX,
            hru: u64::MAX,
        };
        allow_node(ctx, Pair::dev("Alice").public(), 1, liar).unwrap();
        assert_eq!(
            register_node(ctx, liar, 1, huge, Location::default(), None),
            Err(Error::ResourcesAboveLimit)
        );
        // One unit above the limit is refused; the limit itself is accepted.
        let max = config(ctx).max_node_resources;
        let above = Resources {
            cru: max.cru + 1,
            ..max
        };
        assert_eq!(
            register_node(ctx, liar, 1, above, Location::default(), None),
            Err(Error::ResourcesAboveLimit)
        );
        assert!(node_id_of(ctx, &liar).is_none());
        assert!(dispatch(
            ctx,
            node,
            Call::UpdateNode {
                resources: huge,
                location: Location::default(),
                public_config: None,
            },
        )
        .is_err());
        assert_eq!(node_of(ctx, 1).resources, resources());
        register_node(ctx, liar, 1, max, Location::default(), None).unwrap();
    });
}

/// Anyone could otherwise attach a node to someone else's farm and have it paid as theirs.
#[test]
fn a_node_joins_a_farm_only_with_the_farmers_consent() {
    with_ctx(|ctx| {
        setup(ctx);
        let stranger = Pair::dev("Stranger").public();
        twin(ctx, stranger, "stranger");
        assert_eq!(
            register_node(ctx, stranger, 1, resources(), Location::default(), None),
            Err(Error::NodeNotAllowed)
        );
        assert!(node_id_of(ctx, &stranger).is_none());
        assert_eq!(farm_nodes(ctx, 1), vec![1]);
        // Only the farm's owner gives or withdraws consent.
        let alice = Pair::dev("Alice").public();
        let allow = Call::AllowNode {
            farm_id: 1,
            account: stranger,
        };
        assert_eq!(
            dispatch(ctx, stranger, allow.clone()),
            Err(Error::NotFarmOwner)
        );
        dispatch(ctx, alice, allow).unwrap();
        let disallow = Call::DisallowNode {
            farm_id: 1,
            account: stranger,
        };
        dispatch(ctx, alice, disallow.clone()).unwrap();
        assert_eq!(dispatch(ctx, alice, disallow), Err(Error::UnknownAllowance));
        assert_eq!(
            register_node(ctx, stranger, 1, resources(), Location::default(), None),
            Err(Error::NodeNotAllowed)
        );
    });
}
