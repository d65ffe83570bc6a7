//! End to end on a real dev chain with the real agent binary and the real Docker daemon:
//! the agent registers its node, proves capacity, provisions a reservation with a network, a
//! volume, a zdb namespace and a container, reports Ok on chain, follows an update, and removes
//! everything on cancel.

use gridchain_primitives::{seal, AccountId, Bytes, ChainContext, Hash, Pair};
use gridchain_rpc_api::{
    jsonrpsee::ws_client::WsClient, AuthorApiClient, ChainApiClient, GridApiClient,
    GridchainApiClient, SystemApiClient,
};
use gridchain_runtime::{
    balances,
    reservations::{
        self, Deployment, EnvValue, EnvVar, Mount, NetworkAttachment, Reservation,
        ReservationState, Workload, WorkloadSpec, WorkloadState, ZdbMode,
    },
    tfgrid::NodeStatus,
    twins, Call,
};
use gridchain_tests::{chain_context, free_port, signed, DevNode};
use std::{
    os::unix::fs::PermissionsExt,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};
use zos_agent::reconcile::Reconciler;

const IMAGE: &str = "gridchain/busybox:latest";
const MIB: u64 = 1024 * 1024;

fn ensure_image() {
    let present = Command::new("docker")
        .args(["image", "inspect", IMAGE])
        .output()
        .unwrap()
        .status
        .success();
    if !present {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/images/build-busybox-image.sh");
        assert!(
            Command::new("bash").arg(script).status().unwrap().success(),
            "building the test image"
        );
    }
}

/// Kills the agent and removes whatever the node's agent created, even if the test failed.
struct Cleanup {
    agent: Option<Child>,
    node_id: Option<u32>,
    bridges: Vec<String>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(mut agent) = self.agent.take() {
            let _ = agent.kill();
            let _ = agent.wait();
        }
        if let Some(node) = self.node_id {
            let filter = format!("label=gridchain.node={node}");
            let ids = Command::new("docker")
                .args(["ps", "-aq", "--filter", &filter])
                .output()
                .unwrap();
            for id in String::from_utf8_lossy(&ids.stdout).split_whitespace() {
                let _ = Command::new("docker").args(["rm", "-f", id]).output();
            }
            let vols = Command::new("docker")
                .args(["volume", "ls", "-q", "--filter", &filter])
                .output()
                .unwrap();
            for v in String::from_utf8_lossy(&vols.stdout).split_whitespace() {
                let _ = Command::new("docker")
                    .args(["volume", "rm", "-f", v])
                    .output();
            }
        }
        for b in &self.bridges {
            let _ = Command::new("ip").args(["link", "del", b]).output();
            for chain in ["DOCKER-USER", "FORWARD"] {
                let _ = Command::new("iptables")
                    .args(["-w", "-D", chain, "-i", b, "-o", b, "-j", "ACCEPT"])
                    .output();
            }
        }
    }
}

async fn send(client: &WsClient, chain: ChainContext, who: &Pair, call: Call) {
    let nonce = client
        .account_next_index(who.public().to_string())
        .await
        .unwrap();
    let best = client.header(None).await.unwrap().unwrap().number;
    let hash: Hash = client
        .submit_extrinsic(signed(who, call, nonce, best + 256, 0, chain))
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(info) = client.extrinsic(hash).await.unwrap() {
            assert!(info.success, "call failed: {:?}", info.error);
            return;
        }
        assert!(Instant::now() < deadline, "not included in 30 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn wait_for(
    client: &WsClient,
    id: u64,
    what: &str,
    done: impl Fn(&Reservation) -> bool,
) -> Reservation {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let r = GridApiClient::reservation(client, id, None)
            .await
            .unwrap()
            .expect("reservation exists");
        if done(&r) {
            return r;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {r:#?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn deployment(node: &AccountId, greeting: &str) -> Deployment {
    let sealed = |s: &[u8]| Bytes(seal::seal(node, s).unwrap());
    Deployment {
        metadata: "agent e2e".into(),
        workloads: vec![
            Workload {
                name: "net".into(),
                spec: WorkloadSpec::Network {
                    ip_range: "10.240.0.0/24".into(),
                },
            },
            Workload {
                name: "data".into(),
                spec: WorkloadSpec::Volume { size: 64 * MIB },
            },
            Workload {
                name: "store".into(),
                spec: WorkloadSpec::ZdbNamespace {
                    size: 16 * MIB,
                    mode: ZdbMode::Seq,
                    password: Some(sealed(b"zdb-s3cret")),
                    public: false,
                },
            },
            Workload {
                name: "web".into(),
                spec: WorkloadSpec::Container {
                    image: IMAGE.into(),
                    cpu: 1,
                    memory: 64 * MIB,
                    rootfs_size: 64 * MIB,
                    entrypoint: "sleep 3600".into(),
                    env: vec![
                        EnvVar {
                            name: "GREETING".into(),
                            value: EnvValue::Plain(greeting.into()),
                        },
                        EnvVar {
                            name: "API_KEY".into(),
                            value: EnvValue::Sealed(sealed(b"env-s3cret")),
                        },
                    ],
                    mounts: vec![Mount {
                        volume: "data".into(),
                        path: "/data".into(),
                    }],
                    networks: vec![NetworkAttachment {
                        network: "net".into(),
                        ip: None,
                    }],
                },
            },
        ],
    }
}

fn all_ok(r: &Reservation) -> bool {
    r.results.len() == r.deployment.workloads.len()
        && r.results.iter().all(|w| w.state == WorkloadState::Ok)
}

fn docker_ps(node: u32) -> Vec<String> {
    let out = Command::new("docker")
        .args([
            "ps",
            "-aq",
            "--no-trunc",
            "--filter",
            &format!("label=gridchain.node={node}"),
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

fn exec(container: &str, cmd: &str) -> String {
    let out = Command::new("docker")
        .args(["exec", container, "sh", "-c", cmd])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reserve_update_cancel_through_the_agent() {
    ensure_image();
    let dir = tempfile::tempdir().unwrap();
    let node_chain = DevNode::start(&dir.path().join("chain"), 250).await;
    let client = node_chain.client().await;
    let chain = chain_context(&client).await;
    let (alice, bob) = (Pair::dev("Alice"), Pair::dev("Bob"));
    let node_uri = format!("//agent-e2e-{}", std::process::id());
    let node_key = Pair::from_uri(&node_uri).unwrap();

    // The node's key needs funds for its fees; the user needs a twin.
    send(
        &client,
        chain,
        &alice,
        Call::Balances(balances::Call::Transfer {
            dest: node_key.public(),
            amount: 1_000_000_000_000_000,
        }),
    )
    .await;
    send(
        &client,
        chain,
        &bob,
        Call::Twins(twins::Call::CreateTwin {
            name: "bob".into(),
            endpoint: String::new(),
        }),
    )
    .await;

    let key_file = dir.path().join("node.key");
    std::fs::write(&key_file, &node_uri).unwrap();
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let zdb_addr = format!("127.0.0.1:{}", free_port());
    let log = std::fs::File::create(dir.path().join("agent.log")).unwrap();
    let agent = Command::new(env!("CARGO_BIN_EXE_zos-agent"))
        .arg("--key-file")
        .arg(&key_file)
        .args(["--farm-id", "1", "--rpc", &node_chain.ws_url()])
        .arg("--data-dir")
        .arg(dir.path().join("agent"))
        .args([
            "--zdb-listen",
            &zdb_addr,
            "--zdb-admin-password",
            "admin-pass",
        ])
        .args([
            "--capacity-period-secs",
            "3",
            "--reconcile-interval-secs",
            "5",
            "--log",
            "info,zos_agent=debug",
        ])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let mut cleanup = Cleanup {
        agent: Some(agent),
        node_id: None,
        bridges: vec![Reconciler::bridge_name(&bob.public(), "net")],
    };

    // Registration and the first capacity proof make the node Up.
    let deadline = Instant::now() + Duration::from_secs(60);
    let node_id = loop {
        if let Some(info) = client
            .node_by_account(node_key.public().to_string(), None)
            .await
            .unwrap()
        {
            cleanup.node_id = Some(info.node.id);
            if info.status == NodeStatus::Up {
                break info.node.id;
            }
        }
        assert!(
            Instant::now() < deadline,
            "node not Up in 60 s; see {}",
            dir.path().join("agent.log").display()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };

    // Reserve: everything Ok on chain, and real.
    send(
        &client,
        chain,
        &bob,
        Call::Reservations(reservations::Call::Reserve {
            node_id,
            deployment: deployment(&node_key.public(), "hello"),
        }),
    )
    .await;
    let id = GridApiClient::reservations_by_owner(&client, bob.public().to_string(), None)
        .await
        .unwrap()[0]
        .id;
    let r = wait_for(&client, id, "all Ok", |r| {
        all_ok(r) && r.state == ReservationState::Deployed
    })
    .await;
    let containers = docker_ps(node_id);
    assert_eq!(containers.len(), 1);
    let first = containers[0].clone();
    assert_eq!(
        exec(&first, "echo $GREETING $API_KEY"),
        "hello env-s3cret",
        "env and opened secret"
    );
    assert!(exec(&first, "ip -4 addr show eth0").contains("10.240.0.2/24"));
    assert!(exec(&first, "echo kept > /data/f && cat /data/f") == "kept");
    let labels = Command::new("docker")
        .args([
            "inspect",
            "-f",
            "{{index .Config.Labels \"gridchain.reservation\"}} {{.HostConfig.Memory}}",
            &first,
        ])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&labels.stdout).trim(),
        format!("{id} {}", 64 * MIB)
    );
    let namespace = format!("r{id}-store");
    let zdb = redis::Client::open(format!("redis://{zdb_addr}/")).unwrap();
    let mut conn = zdb.get_multiplexed_async_connection().await.unwrap();
    assert!(
        redis::cmd("SELECT")
            .arg(&namespace)
            .query_async::<()>(&mut conn)
            .await
            .is_err(),
        "needs the password"
    );
    redis::cmd("SELECT")
        .arg(&namespace)
        .arg("zdb-s3cret")
        .query_async::<()>(&mut conn)
        .await
        .unwrap();
    assert!(r.results.iter().any(|w| matches!(&w.data, reservations::ResultData::Container { container_id, .. } if *container_id == first)));

    // Update: the container is recreated, version 2 is Ok.
    send(
        &client,
        chain,
        &bob,
        Call::Reservations(reservations::Call::UpdateReservation {
            id,
            deployment: deployment(&node_key.public(), "bonjour"),
        }),
    )
    .await;
    wait_for(&client, id, "version 2 Ok", |r| r.version == 2 && all_ok(r)).await;
    let containers = docker_ps(node_id);
    assert_eq!(containers.len(), 1);
    assert_ne!(containers[0], first, "recreated");
    assert_eq!(
        exec(&containers[0], "echo $GREETING; cat /data/f"),
        "bonjour\nkept",
        "same volume"
    );

    // Cancel: everything goes.
    send(
        &client,
        chain,
        &bob,
        Call::Reservations(reservations::Call::CancelReservation { id }),
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let bridge_gone = !Command::new("ip")
            .args(["link", "show", &cleanup.bridges[0]])
            .output()
            .unwrap()
            .status
            .success();
        let volumes = Command::new("docker")
            .args([
                "volume",
                "ls",
                "-q",
                "--filter",
                &format!("label=gridchain.node={node_id}"),
            ])
            .output()
            .unwrap();
        let mut conn = zdb.get_multiplexed_async_connection().await.unwrap();
        let namespaces: Vec<String> = redis::cmd("NSLIST").query_async(&mut conn).await.unwrap();
        if docker_ps(node_id).is_empty()
            && bridge_gone
            && volumes.stdout.is_empty()
            && !namespaces.contains(&namespace)
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "cancelled reservation not cleaned up in 30 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
