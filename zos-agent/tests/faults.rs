//! The agent under faults: a bad image, another node's reservation, an RPC endpoint dying, and
//! `kill -9` in the middle of provisioning, again and again.

mod common;

use common::*;
use gridchain_primitives::Pair;
use gridchain_rpc_api::GridApiClient;
use gridchain_runtime::{
    balances, capacity,
    reservations::{self, ReservationState, WorkloadState},
    tfgrid::{self, Location, Resources},
    twins, Call,
};
use std::{
    collections::BTreeSet,
    process::Command,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};
use tokio::{net::TcpListener, task::JoinHandle};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_image_reports_docker_error_and_other_nodes_work_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let grid = local_grid(dir.path(), "bad").await;
    let (client, chain) = (&grid.client, grid.chain);
    let (_cleanup, node_id, tag) =
        start_agent(&grid, dir.path(), &[grid.chain_node.ws_url()], &zdb_addr()).await;

    // A second node that no agent runs: registered and proved by hand.
    let other = Pair::dev("other-node");
    send(
        &client,
        chain,
        &Pair::dev("Alice"),
        Call::Balances(balances::Call::Transfer {
            dest: other.public(),
            amount: 1_000 * GRID,
        }),
    )
    .await;
    send(
        &client,
        chain,
        &Pair::dev("Alice"),
        Call::Tfgrid(tfgrid::Call::AllowNode {
            farm_id: 1,
            account: other.public(),
        }),
    )
    .await;
    send(
        &client,
        chain,
        &other,
        Call::Twins(twins::Call::CreateTwin {
            name: "other".into(),
            endpoint: String::new(),
        }),
    )
    .await;
    let resources = Resources {
        cru: 8,
        mru: 16 << 30,
        sru: 500 << 30,
        hru: 0,
    };
    let location = Location {
        country: String::new(),
        city: String::new(),
        latitude: String::new(),
        longitude: String::new(),
    };
    send(
        &client,
        chain,
        &other,
        Call::Tfgrid(tfgrid::Call::RegisterNode {
            farm_id: 1,
            resources,
            location,
            public_config: None,
        }),
    )
    .await;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    send(
        &client,
        chain,
        &other,
        Call::Capacity(capacity::Call::ReportCapacity {
            measured: resources,
            used: Resources::default(),
            uptime_seconds: 1,
            timestamp_ms: now,
        }),
    )
    .await;
    let other_id = client
        .node_by_account(other.public().to_string(), None)
        .await
        .unwrap()
        .unwrap()
        .node
        .id;
    let bob = Pair::dev("Bob");
    send(
        &client,
        chain,
        &bob,
        Call::Reservations(reservations::Call::Reserve {
            node_id: other_id,
            deployment: container_only("elsewhere", IMAGE),
        }),
    )
    .await;
    let elsewhere = last_reservation_id(&client).await;

    // A reservation on our node whose image cannot be had: its registry (a loopback port
    // nobody listens on; tests never reach outside the machine) refuses the connection. The
    // pull is reported as Pulling first, then the failure in Docker's words.
    send(
        &client,
        chain,
        &bob,
        Call::Reservations(reservations::Call::Reserve {
            node_id,
            deployment: container_only("broken", "127.0.0.1:1/gridchain/no-such-image:1"),
        }),
    )
    .await;
    let broken = last_reservation_id(&client).await;
    let r = wait_for(&client, broken, "an Error result", |r| {
        r.results.iter().any(|w| w.state == WorkloadState::Error)
    })
    .await;
    assert!(
        r.results[0].message.contains("connection refused"),
        "{}",
        r.results[0].message
    );
    assert_eq!(r.state, ReservationState::Failed);

    // Nothing ever ran for the other node's reservation, and it has no results.
    let out = Command::new("docker")
        .args([
            "ps",
            "-aq",
            "--filter",
            &format!("label=gridchain.node={tag}"),
            "--filter",
            &format!("label=gridchain.reservation={elsewhere}"),
        ])
        .output()
        .unwrap();
    assert!(
        out.stdout.is_empty(),
        "the agent acted on another node's reservation"
    );
    let r = GridApiClient::reservation(client, elsewhere, None)
        .await
        .unwrap()
        .unwrap();
    assert!(r.results.is_empty());
    assert!(
        docker_ps(&tag).is_empty(),
        "no container for a failed create"
    );
}

/// A TCP forwarder to `upstream` that can be killed with all its connections.
struct Proxy {
    port: u16,
    task: JoinHandle<()>,
}

impl Proxy {
    async fn start(upstream: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            while let Ok((mut inbound, _)) = listener.accept().await {
                connections.spawn(async move {
                    if let Ok(mut outbound) =
                        tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await
                    {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        Proxy { port, task }
    }

    fn url(&self) -> String {
        format!("ws://127.0.0.1:{}", self.port)
    }

    /// Closes the listener and every forwarded connection.
    fn kill(self) {
        self.task.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_fails_over_when_its_rpc_endpoint_dies() {
    let dir = tempfile::tempdir().unwrap();
    let grid = local_grid(dir.path(), "failover").await;
    let (client, chain) = (&grid.client, grid.chain);
    let (first, second) = (
        Proxy::start(grid.chain_node.rpc_port).await,
        Proxy::start(grid.chain_node.rpc_port).await,
    );
    let (_cleanup, node_id, tag) =
        start_agent(&grid, dir.path(), &[first.url(), second.url()], &zdb_addr()).await;

    first.kill();
    let bob = Pair::dev("Bob");
    send(
        &client,
        chain,
        &bob,
        Call::Reservations(reservations::Call::Reserve {
            node_id,
            deployment: container_only("web", IMAGE),
        }),
    )
    .await;
    let id = last_reservation_id(&client).await;
    wait_for(&client, id, "Ok through the second endpoint", all_ok).await;
    assert_eq!(docker_ps(&tag).len(), 1);
    second.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_during_provisioning_twenty_times_leaves_no_orphans_or_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let grid = local_grid(dir.path(), "kill9").await;
    let (client, chain, node_key, node_uri) =
        (&grid.client, grid.chain, &grid.node_key, &grid.node_uri);
    let zdb = zdb_addr();
    let rpc = [grid.chain_node.ws_url()];
    let (mut cleanup, node_id, tag) = start_agent(&grid, dir.path(), &rpc, &zdb).await;
    let bob = Pair::dev("Bob");

    let mut live = BTreeSet::new();
    let mut marks: std::collections::BTreeMap<u64, Vec<u64>> = Default::default();
    for round in 0..20u64 {
        // Change the desired state: cancel the oldest when two are live (the node has two
        // cores), then reserve a new one.
        if live.len() >= 2 {
            let victim = *live.iter().next().unwrap();
            send(
                &client,
                chain,
                &bob,
                Call::Reservations(reservations::Call::CancelReservation { id: victim }),
            )
            .await;
            live.remove(&victim);
        }
        let deployment = deployment(
            chain,
            &bob.public(),
            &node_key.public(),
            &format!("round {round}"),
        );
        send(
            &client,
            chain,
            &bob,
            Call::Reservations(reservations::Call::Reserve {
                node_id,
                deployment,
            }),
        )
        .await;
        // Data written to the volumes of the earlier reservations must survive every kill.
        for id in &live {
            let c = format!("gc-{tag}-r{id}-web");
            let written = Command::new("docker")
                .args([
                    "exec",
                    &c,
                    "sh",
                    "-c",
                    &format!("echo {round} >> /data/marks"),
                ])
                .output()
                .unwrap();
            if written.status.success() {
                marks.entry(*id).or_insert_with(Vec::new).push(round);
            }
        }
        live.insert(last_reservation_id(&client).await);
        // Let the agent get into the middle of it, then kill -9 and start again.
        tokio::time::sleep(Duration::from_millis(100 + (round * 137) % 900)).await;
        let mut agent = cleanup.agent.take().unwrap();
        agent.kill().unwrap();
        agent.wait().unwrap();
        cleanup.agent = Some(spawn_agent(dir.path(), &node_uri, &rpc, &zdb));
    }

    // Converged: every live reservation Ok with exactly its containers, nothing else.
    for id in &live {
        wait_for(&client, *id, "Ok after the kills", all_ok).await;
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let names = docker_names(&tag);
        let expected: BTreeSet<String> = live
            .iter()
            .map(|id| format!("gc-{tag}-r{id}-web"))
            .collect();
        let unique: BTreeSet<String> = names.iter().cloned().collect();
        if unique == expected && names.len() == expected.len() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "containers {names:?} != expected {expected:?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let namespaces: BTreeSet<String> = zdb_namespaces(&zdb)
        .await
        .into_iter()
        .filter(|n| n != "default")
        .collect();
    let expected: BTreeSet<String> = live.iter().map(|id| format!("r{id}-store")).collect();
    assert_eq!(
        namespaces, expected,
        "namespaces match the live reservations"
    );
    // Volumes: exactly the live ones on disk (no half-made image left by a kill), and every
    // line written to them before a kill is there.
    let on_disk: BTreeSet<String> = std::fs::read_dir(dir.path().join("agent/volumes"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let expected: BTreeSet<String> = live
        .iter()
        .flat_map(|id| ["img", "mnt"].map(|ext| format!("gc-{tag}-r{id}-data.{ext}")))
        .collect();
    assert_eq!(
        on_disk, expected,
        "volume files match the live reservations"
    );
    for (id, rounds) in marks.iter().filter(|(id, _)| live.contains(id)) {
        let kept = exec(&format!("gc-{tag}-r{id}-web"), "cat /data/marks");
        let expected: Vec<String> = rounds.iter().map(u64::to_string).collect();
        assert_eq!(kept, expected.join("\n"), "volume data of reservation {id}");
    }
}

/// What an agent killed half-way through making a volume leaves (an unfinished image, or a
/// whole one Docker never got, mounted), for a reservation that then ended: the next agent
/// removes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn volume_files_left_by_a_killed_agent_for_an_ended_reservation_are_removed() {
    let dir = tempfile::tempdir().unwrap();
    let grid = local_grid(dir.path(), "volorphan").await;
    let (_cleanup, _, tag) =
        start_agent(&grid, dir.path(), &[grid.chain_node.ws_url()], &zdb_addr()).await;
    let volumes = dir.path().join("agent/volumes");
    std::fs::create_dir_all(&volumes).unwrap();
    let unfinished = volumes.join(format!("gc-{tag}-r900-data.img.tmp"));
    std::fs::write(&unfinished, b"half an image").unwrap();
    // A whole image, loop-mounted at its mount point, that Docker never heard of.
    let image = volumes.join(format!("gc-{tag}-r901-data.img"));
    let mount = volumes.join(format!("gc-{tag}-r901-data.mnt"));
    std::fs::File::create(&image)
        .unwrap()
        .set_len(4 * MIB)
        .unwrap();
    assert!(Command::new("mkfs.ext4")
        .args(["-q", "-F"])
        .arg(&image)
        .status()
        .unwrap()
        .success());
    std::fs::create_dir_all(&mount).unwrap();
    assert!(Command::new("mount")
        .args(["-o", "loop"])
        .arg(&image)
        .arg(&mount)
        .status()
        .unwrap()
        .success());
    let deadline = Instant::now() + Duration::from_secs(60);
    while unfinished.exists() || image.exists() || mount.exists() {
        assert!(
            Instant::now() < deadline,
            "left: {:?}",
            std::fs::read_dir(&volumes).unwrap().collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let table = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !table.contains(&mount.display().to_string()),
        "still mounted"
    );
}
