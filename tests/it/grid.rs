//! The grid end to end over RPC against a real dev node: twin → farm → node → capacity proof →
//! reservation → results → billing → grace period → refill → cancel, with state and balances
//! checked at each step, and the bad inputs of each step refused with their error, changing
//! nothing.

use gridchain_primitives::{
    seal::{self, SealContext, SealPurpose},
    AccountId, Bytes, ChainContext, Hash, Pair,
};
use gridchain_rpc_api::{
    jsonrpsee::ws_client::WsClient, AuthorApiClient, ChainApiClient, ExtrinsicInfo, GridApiClient,
    GridchainApiClient, NodeFilter, SystemApiClient,
};
use gridchain_runtime::{
    balances, billing, capacity,
    reservations::{
        self, Deployment, EnvValue, EnvVar, Mount, NetworkAttachment, Reservation,
        ReservationState, ResultData, Workload, WorkloadResult, WorkloadSpec, WorkloadState,
        ZdbMode,
    },
    tfgrid::{self, Location, NodeStatus, Resources, GIB},
    twins, Call,
};
use gridchain_tests::{chain_context, signed, DevNode};
use parity_scale_codec::Encode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const UNIT: u128 = 1_000_000_000_000;

struct Grid {
    client: WsClient,
    chain: ChainContext,
    node_key: Pair,
    last_proof: Instant,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as u64
}

impl Grid {
    /// Signs, submits and waits until `call` is in a final block.
    async fn send(&self, who: &Pair, call: Call) -> ExtrinsicInfo {
        let nonce = self
            .client
            .account_next_index(who.public().to_string())
            .await
            .unwrap();
        let best = self.client.header(None).await.unwrap().unwrap().number;
        let xt = signed(who, call, nonce, best + 256, 0, self.chain);
        let hash: Hash = self.client.submit_extrinsic(xt).await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(info) = self.client.extrinsic(hash).await.unwrap() {
                return info;
            }
            assert!(
                Instant::now() < deadline,
                "transaction not included in 30 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn ok(&self, who: &Pair, call: Call) {
        let info = self.send(who, call).await;
        assert!(info.success, "call failed: {:?}", info.error);
    }

    /// Sends a call that must fail with pallet error `error`.
    async fn fails(&self, who: &Pair, call: Call, error: &str) {
        let info = self.send(who, call).await;
        assert!(!info.success, "call should have failed with {error}");
        let got = info.error.expect("failed call has an error");
        assert_eq!(got.error, error, "{got}");
    }

    async fn free(&self, who: &AccountId) -> u128 {
        self.client.account(who.to_string()).await.unwrap().free
    }

    async fn reservation(&self, id: u64) -> Reservation {
        GridApiClient::reservation(&self.client, id, None)
            .await
            .unwrap()
            .expect("reservation exists")
    }

    fn proof(timestamp_ms: u64) -> Call {
        let measured = node_resources();
        Call::Capacity(capacity::Call::ReportCapacity {
            measured,
            used: Resources::default(),
            uptime_seconds: 3_600,
            timestamp_ms,
        })
    }

    /// A capacity proof if the last one is 4 s old (the dev period is 10 s).
    async fn keep_node_up(&mut self) {
        if self.last_proof.elapsed() > Duration::from_secs(4) {
            let key = self.node_key.clone();
            self.ok(&key, Self::proof(now_ms())).await;
            self.last_proof = Instant::now();
        }
    }

    /// Polls reservation `id` (keeping the node Up) until `done` holds.
    async fn wait_for(
        &mut self,
        id: u64,
        what: &str,
        done: impl Fn(&Reservation) -> bool,
    ) -> Reservation {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            self.keep_node_up().await;
            let r = self.reservation(id).await;
            if done(&r) {
                return r;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}: {r:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

fn node_resources() -> Resources {
    Resources {
        cru: 8,
        mru: 32 * GIB,
        sru: 1_000 * GIB,
        hru: 4_000 * GIB,
    }
}

/// What a secret of `owner`'s reservation on `node` is sealed for, as the wallet does.
fn sealed_for(
    genesis: Hash,
    owner: &AccountId,
    node: &AccountId,
    workload: &str,
    purpose: SealPurpose,
) -> SealContext {
    SealContext {
        genesis,
        owner: *owner,
        node: *node,
        workload: workload.into(),
        purpose,
    }
}

fn deployment(genesis: Hash, owner: &AccountId, node: &AccountId) -> Deployment {
    let sealed = |workload: &str, purpose: SealPurpose, s: &[u8]| {
        let context = sealed_for(genesis, owner, node, workload, purpose);
        Bytes(seal::seal(node, &context, s).unwrap())
    };
    Deployment {
        metadata: "e2e".into(),
        workloads: vec![
            Workload {
                name: "net".into(),
                spec: WorkloadSpec::Network {
                    ip_range: "10.1.0.0/16".into(),
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
                    mode: ZdbMode::User,
                    password: Some(sealed("db", SealPurpose::ZdbPassword, b"zdb-password")),
                    public: false,
                },
            },
            Workload {
                name: "app".into(),
                spec: WorkloadSpec::Container {
                    image: "docker.io/library/nginx:1".into(),
                    cpu: 8,
                    memory: 24 * GIB,
                    rootfs_size: 2 * GIB,
                    entrypoint: String::new(),
                    env: vec![EnvVar {
                        name: "API_KEY".into(),
                        value: EnvValue::Sealed(sealed(
                            "app",
                            SealPurpose::Env {
                                name: "API_KEY".into(),
                            },
                            b"s3cret",
                        )),
                    }],
                    mounts: vec![Mount {
                        volume: "data".into(),
                        path: "/data".into(),
                    }],
                    networks: vec![NetworkAttachment {
                        network: "net".into(),
                        ip: Some("10.1.0.10".into()),
                    }],
                    registry_auth: None,
                    restart: Default::default(),
                    health_check: None,
                },
            },
        ],
    }
}

fn all_ok(d: &Deployment) -> Vec<WorkloadResult> {
    d.workloads
        .iter()
        .map(|w| WorkloadResult {
            name: w.name.clone(),
            state: WorkloadState::Ok,
            message: "running".into(),
            data: match w.name.as_str() {
                "app" => ResultData::Container {
                    container_id: "c-1".into(),
                    ips: vec!["10.1.0.10".into()],
                    image_digest: String::new(),
                    restarts: 0,
                    limits: Default::default(),
                },
                "db" => ResultData::Zdb {
                    namespace: "ns-1".into(),
                    endpoints: vec!["[::1]:9900".into()],
                },
                "net" => ResultData::Network {
                    subnet: "10.1.3.0/24".into(),
                    gateway: None,
                    wireguard: None,
                },
                _ => ResultData::Volume {
                    path: "/mnt/data".into(),
                },
            },
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reservation_lifecycle_with_billing_grace_and_refill() {
    let dir = tempfile::tempdir().unwrap();
    let dev = DevNode::start(&dir.path().join("node"), 250).await;
    let client = dev.client().await;
    let chain = chain_context(&client).await;
    let alice = Pair::dev("Alice");
    let charlie = Pair::dev("Charlie"); // farmer
    let node_key = Pair::dev("GridNode1");
    let other_node = Pair::dev("GridNode2");
    let user = Pair::dev("GridUser");
    let bob = Pair::dev("Bob");
    let mut grid = Grid {
        client,
        chain,
        node_key: node_key.clone(),
        last_proof: Instant::now(),
    };

    // Genesis: Alice's dev farm and the dev pricing policy.
    let farms = grid.client.list_farms(None, None, None).await.unwrap();
    assert_eq!(farms.len(), 1);
    assert_eq!(farms[0].name, "dev-farm");
    assert_eq!(grid.client.pricing_policies(None).await.unwrap().len(), 1);

    // Fund the node keys and the user (enough for the reservation's deposit; once it is held,
    // the user keeps just enough for fees and ~10 s of billing).
    for (to, amount) in [
        (&node_key, 100 * UNIT),
        (&other_node, 100 * UNIT),
        (&user, 40 * UNIT),
    ] {
        grid.ok(
            &alice,
            Call::Balances(balances::Call::Transfer {
                dest: to.public(),
                amount,
            }),
        )
        .await;
    }

    // Twins.
    for (who, name) in [
        (&charlie, "charlie"),
        (&node_key, "node1"),
        (&other_node, "node2"),
        (&user, "user"),
        (&bob, "bob"),
    ] {
        grid.ok(
            who,
            Call::Twins(twins::Call::CreateTwin {
                name: name.into(),
                endpoint: String::new(),
            }),
        )
        .await;
    }
    grid.fails(
        &bob,
        Call::Twins(twins::Call::CreateTwin {
            name: "user".into(),
            endpoint: String::new(),
        }),
        "AlreadyHasTwin",
    )
    .await;
    let user_twin = grid
        .client
        .twin_by_account(user.public().to_string(), None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(user_twin.name, "user");

    // Farm.
    grid.ok(
        &charlie,
        Call::Tfgrid(tfgrid::Call::CreateFarm {
            name: "charlie-farm".into(),
            pricing_policy_id: 1,
        }),
    )
    .await;
    let farm = grid.client.farm(2, None).await.unwrap().unwrap();
    assert_eq!(
        (farm.name.as_str(), farm.payout),
        ("charlie-farm", charlie.public())
    );

    // Nodes, registered by their own keys once the farmer allowed them.
    grid.fails(
        &node_key,
        Call::Tfgrid(tfgrid::Call::RegisterNode {
            farm_id: 2,
            resources: node_resources(),
            location: Location::default(),
            public_config: None,
        }),
        "NodeNotAllowed",
    )
    .await;
    grid.fails(
        &node_key,
        Call::Tfgrid(tfgrid::Call::AllowNode {
            farm_id: 2,
            account: node_key.public(),
        }),
        "NotFarmOwner",
    )
    .await;
    for key in [&node_key, &other_node] {
        grid.ok(
            &charlie,
            Call::Tfgrid(tfgrid::Call::AllowNode {
                farm_id: 2,
                account: key.public(),
            }),
        )
        .await;
    }
    for key in [&node_key, &other_node] {
        grid.ok(
            key,
            Call::Tfgrid(tfgrid::Call::RegisterNode {
                farm_id: 2,
                resources: node_resources(),
                location: Location::default(),
                public_config: None,
            }),
        )
        .await;
    }
    let info = grid.client.node(1, None).await.unwrap().unwrap();
    assert_eq!(info.node.account, node_key.public());
    assert_eq!(info.status, NodeStatus::Standby);
    let on_farm = grid
        .client
        .list_nodes(
            NodeFilter {
                farm_id: Some(2),
                ..Default::default()
            },
            None,
        )
        .await
        .unwrap();
    assert_eq!(on_farm.len(), 2);

    // Not Up yet: no reservations.
    let d = deployment(chain.genesis_hash, &user.public(), &node_key.public());
    grid.fails(
        &user,
        Call::Reservations(reservations::Call::Reserve {
            node_id: 1,
            deployment: d.clone(),
        }),
        "NodeNotUp",
    )
    .await;

    // Capacity proof; a stale one is refused and changes nothing.
    grid.ok(&node_key, Grid::proof(now_ms())).await;
    grid.last_proof = Instant::now();
    let health = grid.client.node(1, None).await.unwrap().unwrap().health;
    grid.fails(&node_key, Grid::proof(now_ms() - 120_000), "StaleProof")
        .await;
    let after = grid.client.node(1, None).await.unwrap().unwrap();
    assert_eq!(after.health, health);
    assert_eq!(after.status, NodeStatus::Up);
    let up = grid
        .client
        .list_nodes(
            NodeFilter {
                status: Some(NodeStatus::Up),
                min_free: Some(Resources {
                    cru: 8,
                    ..Default::default()
                }),
                ..Default::default()
            },
            None,
        )
        .await
        .unwrap();
    assert_eq!(up.iter().map(|n| n.node.id).collect::<Vec<_>>(), vec![1]);

    // Reserve.
    grid.ok(
        &user,
        Call::Reservations(reservations::Call::Reserve {
            node_id: 1,
            deployment: d.clone(),
        }),
    )
    .await;
    let r = grid.reservation(1).await;
    assert_eq!(
        (r.owner, r.node_id, r.state),
        (user.public(), 1, ReservationState::Created)
    );
    // The deposit is held from the user's balance (dev chain: 1 GRID per workload + 24 hours).
    let account = grid
        .client
        .account(user.public().to_string())
        .await
        .unwrap();
    assert!(r.billing.deposit > 4 * UNIT);
    assert_eq!(account.reserved, r.billing.deposit);
    // The user keeps ~10 s of billing after this transfer's own fee (priced by its weight; an
    // amount as large as the free balance encodes at least as long as the one sent).
    let fee = {
        let probe = gridchain_runtime::Extrinsic::sign(
            &user,
            Call::Balances(balances::Call::Transfer {
                dest: alice.public(),
                amount: account.free,
            }),
            0,
            0,
            0,
            grid.chain,
        );
        gridchain_runtime::extrinsic_fee(&probe, probe.encoded_size())
    };
    grid.ok(
        &user,
        Call::Balances(balances::Call::Transfer {
            dest: alice.public(),
            amount: account.free - UNIT / 400 - fee,
        }),
    )
    .await;
    let capacity = grid.client.node_capacity(1, None).await.unwrap().unwrap();
    assert_eq!(capacity.reserved, r.resources);
    assert_eq!(capacity.free.cru, 0);
    // Only sealed secrets are on chain, and the node opens them.
    let WorkloadSpec::ZdbNamespace {
        password: Some(sealed),
        ..
    } = &r.deployment.workloads[2].spec
    else {
        panic!("zdb workload");
    };
    let context = sealed_for(
        chain.genesis_hash,
        &user.public(),
        &node_key.public(),
        "db",
        SealPurpose::ZdbPassword,
    );
    assert_eq!(
        seal::open(&node_key.seed(), &context, &sealed.0).unwrap(),
        b"zdb-password"
    );

    // Bad input: over the node's capacity, someone else's reservation, another node's results.
    grid.fails(
        &bob,
        Call::Reservations(reservations::Call::Reserve {
            node_id: 1,
            deployment: d.clone(),
        }),
        "InsufficientCapacity",
    )
    .await;
    grid.fails(
        &bob,
        Call::Reservations(reservations::Call::CancelReservation { id: 1 }),
        "NotOwner",
    )
    .await;
    grid.fails(
        &other_node,
        Call::Reservations(reservations::Call::ReportResults {
            id: 1,
            version: 1,
            results: all_ok(&d),
        }),
        "NotHostingNode",
    )
    .await;
    // Nothing changed but billing's checkpoint, which moves with the node's up clock.
    let now = grid.reservation(1).await;
    assert_eq!(
        reservations::Reservation {
            billing: r.billing.clone(),
            ..now
        },
        r
    );
    assert_eq!(
        grid.client
            .reservations_by_owner(bob.public().to_string(), None)
            .await
            .unwrap(),
        vec![]
    );

    // Results from the hosting node: Deployed, and billing starts.
    grid.ok(
        &node_key,
        Call::Reservations(reservations::Call::ReportResults {
            id: 1,
            version: 1,
            results: all_ok(&d),
        }),
    )
    .await;
    let r = grid.reservation(1).await;
    assert_eq!(r.state, ReservationState::Deployed);
    assert!(r.billing.rate_per_hour > 0);
    let snapshot = grid.client.node_snapshot(1, None).await.unwrap().unwrap();
    assert_eq!(snapshot.reservations, vec![r.clone()]);
    let user_before = grid.free(&user.public()).await;
    let treasury = billing::default_treasury();

    // Billing over blocks: the user pays, the treasury gets its share.
    let paid = grid
        .wait_for(1, "a charge", |r| r.billing.total_paid > 0)
        .await;
    let user_now = grid.free(&user.public()).await;
    let latest = grid.reservation(1).await;
    assert_eq!(user_before - user_now, latest.billing.total_paid);
    assert!(grid.free(&treasury).await > 0);
    assert!(paid.billing.total_paid > 0);

    // Out of funds: grace period, nothing more charged.
    let grace = grid
        .wait_for(1, "the grace period", |r| {
            matches!(r.state, ReservationState::GracePeriod { .. })
        })
        .await;
    assert_eq!(grace.billing.rate_per_hour, 0);
    // In grace the reservation holds no capacity on the node.
    assert!(grid
        .client
        .node_capacity(1, None)
        .await
        .unwrap()
        .unwrap()
        .reserved
        .is_zero());
    tokio::time::sleep(Duration::from_secs(3)).await;
    grid.keep_node_up().await;
    assert_eq!(
        grid.reservation(1).await.billing.total_paid,
        grace.billing.total_paid
    );

    // Refill: the debt is paid and the reservation resumes.
    grid.ok(
        &alice,
        Call::Balances(balances::Call::Transfer {
            dest: user.public(),
            amount: 10 * UNIT,
        }),
    )
    .await;
    let resumed = grid
        .wait_for(1, "resumption", |r| r.state == ReservationState::Deployed)
        .await;
    assert!(resumed.billing.total_paid > grace.billing.total_paid);

    // Cancel: capacity is free again; the final bill is settled within a settlement period.
    grid.ok(
        &user,
        Call::Reservations(reservations::Call::CancelReservation { id: 1 }),
    )
    .await;
    let canceled = grid.reservation(1).await;
    assert_eq!(
        canceled.state,
        ReservationState::Deleted {
            reason: reservations::DeletionReason::CanceledByUser
        }
    );
    assert!(grid
        .client
        .node_capacity(1, None)
        .await
        .unwrap()
        .unwrap()
        .reserved
        .is_zero());
    assert!(grid
        .client
        .reservations_by_node(1, None)
        .await
        .unwrap()
        .is_empty());
    let settled = grid
        .wait_for(1, "the final settlement", |r| r.billing.unpaid_scaled == 0)
        .await;
    // ... which gave the whole deposit back.
    assert_eq!(settled.billing.deposit, 0);
    let account = grid
        .client
        .account(user.public().to_string())
        .await
        .unwrap();
    assert_eq!(account.reserved, 0);
    let user_final = grid.free(&user.public()).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        grid.free(&user.public()).await,
        user_final,
        "charged after cancel"
    );
    assert_eq!(
        grid.reservation(1).await.billing.total_paid,
        settled.billing.total_paid
    );
}
