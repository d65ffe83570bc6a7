//! One private network across nodes, on real hosts: nodes A and B are network namespaces on a
//! test LAN, each running its own agent; a third namespace is "the internet", where the owner's
//! laptop joins with the config `grid reservation vpn` prints, through `wg-quick`. WireGuard is
//! Debian's `wireguard-go` (this kernel has no module).
//!
//! Bob's network `net` spans A (10.60.1.0/24) and B (10.60.2.0/24); Charlie has a network of the
//! same name whose range overlaps Bob's A subnet, on B. Containers of Bob reach each other across
//! the nodes, the laptop reaches both, Charlie reaches neither; `kill -9` of B's agent plus the
//! loss of B's router is repaired by B's next agent without A changing; a member's end removes it
//! from the other node's tunnel, and the last end removes everything.

mod common;

use common::{internet::*, *};
use gridchain_primitives::{
    wireguard::{self, WireguardSecret},
    Pair,
};
use gridchain_rpc_api::{ChainApiClient, GridApiClient};
use gridchain_runtime::reservations::{
    self, Deployment, MeshPeer, MeshSpec, NetworkAttachment, ReservationState, Workload,
    WorkloadSpec,
};
use gridchain_runtime::Call;
use gridchain_tests::Namespaces;
use std::{
    process::Command,
    time::{Duration, Instant},
};

const RANGE: &str = "10.60.0.0/16";
const LAPTOP: &str = "10.60.255.2";

fn member(subnet: &str, peers: Vec<MeshPeer>) -> Workload {
    Workload {
        name: "net".into(),
        spec: WorkloadSpec::Network {
            ip_range: subnet.into(),
            egress: false,
            mesh: Some(MeshSpec {
                range: RANGE.into(),
                peers,
            }),
        },
    }
}

/// A web server on port 8080 at `ip` of `net`, serving `body` at `/`.
fn web(name: &str, body: &str, ip: &str) -> Workload {
    let mut w = sleeper(name, IMAGE, &["net"]);
    if let WorkloadSpec::Container {
        entrypoint,
        networks,
        ..
    } = &mut w.spec
    {
        *entrypoint = format!(
            "sh -c 'mkdir -p /www && echo {body} > /www/index.html && httpd -f -p 8080 -h /www'"
        );
        *networks = vec![NetworkAttachment {
            network: "net".into(),
            ip: Some(ip.into()),
        }];
    }
    w
}

/// `who` reserves `workloads` on `node`; returns the id once every workload is Ok.
async fn reserve_deployed(
    grid: &LocalGrid,
    who: &Pair,
    node: u32,
    workloads: Vec<Workload>,
) -> u64 {
    let deployment = Deployment {
        metadata: String::new(),
        workloads,
    };
    let id = reserve(grid, who, node, deployment).await;
    wait_for(&grid.client, id, "all Ok", |r| {
        all_ok(r) && r.state == ReservationState::Deployed
    })
    .await;
    id
}

/// Polls `probe` until it gives `want` (60 s at most); each probe waits at most 5 s itself.
fn until(what: &str, want: Option<&str>, probe: impl Fn() -> Option<String>) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got = probe().map(|text| text.trim().to_string());
        if got.as_deref() == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: got {got:?}, want {want:?}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// The router namespace of node `tag` (it has one network here), if it exists.
fn router_of(tag: &str) -> Option<String> {
    let out = Command::new("ip").args(["netns", "list"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .find(|ns| ns.starts_with(&format!("gc-{tag}-")))
        .map(str::to_string)
}

/// `index:name` of the WireGuard interface in router namespace `ns`, and its routes.
fn tunnel(ns: &str) -> (String, String) {
    let links = Command::new("ip")
        .args(["-n", ns, "-o", "link", "show"])
        .output()
        .unwrap();
    let link = String::from_utf8_lossy(&links.stdout)
        .lines()
        .find(|l| l.contains(": gw"))
        .map(|l| l.split(':').take(2).collect::<Vec<_>>().join(":"))
        .unwrap_or_default();
    let routes = Command::new("ip")
        .args(["-n", ns, "route", "show"])
        .output()
        .unwrap();
    (link, String::from_utf8_lossy(&routes.stdout).into_owned())
}

/// Two node hosts (0: A, 1: B) and the internet (2), a chain, an agent per node, and Bob's
/// network `net` across both: 10.60.1.0/24 on A (his laptop as a peer), 10.60.2.0/24 on B, a
/// web server in each (`a` at 10.60.1.2 says from-a, `b` at 10.60.2.2 says from-b).
struct TwoNodes {
    dir: tempfile::TempDir,
    hosts: Namespaces,
    grid: LocalGrid,
    rpc: Vec<String>,
    agent_a: Cleanup,
    agent_b: Cleanup,
    tag_a: String,
    tag_b: String,
    node_b: u32,
    uri_b: String,
    zdb_b: String,
    bob: Pair,
    laptop: WireguardSecret,
    on_a: u64,
    on_b: u64,
}

async fn two_nodes(name: &str) -> TwoNodes {
    ensure_image();
    let dir = tempfile::tempdir().unwrap();
    let hosts = Namespaces::create(3);
    hosts.internet(2, PUBLIC);
    let grid = local_grid_with(dir.path(), name, 250, &["--rpc-external"]).await;
    let rpc = vec![format!(
        "ws://{}:{}",
        hosts.lan_gateway(),
        grid.chain_node.rpc_port
    )];
    let (dir_a, dir_b) = (dir.path().join("a"), dir.path().join("b"));
    std::fs::create_dir_all(&dir_a).unwrap();
    std::fs::create_dir_all(&dir_b).unwrap();
    let (agent_a, node_a, tag_a) =
        start_agent_in(Some(hosts.name(0)), &grid, &dir_a, &rpc, &zdb_addr()).await;
    let uri_b = another_node_key(&grid, &format!("{name}-b")).await;
    let zdb_b = zdb_addr();
    let (agent_b, node_b, tag_b) =
        start_agent_as(Some(hosts.name(1)), &grid, &uri_b, &dir_b, &rpc, &zdb_b).await;
    // Bob's laptop key: what `grid` derives from Bob's seed for network `net` of this chain.
    let bob = Pair::dev("Bob");
    let genesis = grid.client.block_hash(Some(0)).await.unwrap().unwrap();
    let laptop = WireguardSecret::derive(&bob.seed(), &wireguard::user_context(&genesis.0, "net"));
    let on_a = reserve_deployed(
        &grid,
        &bob,
        node_a,
        vec![
            member(
                "10.60.1.0/24",
                vec![MeshPeer {
                    public_key: laptop.public(),
                    ip: LAPTOP.into(),
                }],
            ),
            web("a", "from-a", "10.60.1.2"),
        ],
    )
    .await;
    let on_b = reserve_deployed(
        &grid,
        &bob,
        node_b,
        vec![
            member("10.60.2.0/24", vec![]),
            web("b", "from-b", "10.60.2.2"),
        ],
    )
    .await;
    TwoNodes {
        dir,
        hosts,
        grid,
        rpc,
        agent_a,
        agent_b,
        tag_a,
        tag_b,
        node_b,
        uri_b,
        zdb_b,
        bob,
        laptop,
        on_a,
        on_b,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containers_on_two_nodes_and_the_owners_laptop_share_one_private_network() {
    // Every field bound: what is not would be dropped (agents killed, hosts removed) here.
    let TwoNodes {
        dir,
        hosts,
        grid,
        rpc,
        agent_a: _agent_a,
        mut agent_b,
        tag_a,
        tag_b,
        node_b,
        uri_b,
        zdb_b,
        bob,
        laptop: _laptop,
        on_a,
        on_b,
    } = two_nodes("mesh").await;
    let dir_b = dir.path().join("b");
    let client = &grid.client;
    // Charlie: the same network name, a range overlapping Bob's subnet on A, on node B.
    let charlie = Pair::dev("Charlie");
    create_twin(&grid, &charlie, "charlie").await;
    let charlies = reserve_deployed(
        &grid,
        &charlie,
        node_b,
        vec![
            member("10.60.1.0/24", vec![]),
            web("c", "from-charlie", "10.60.1.2"),
        ],
    )
    .await;
    let mesh = GridApiClient::mesh(client, bob.public().to_string(), "net".into(), None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(mesh.members.len(), 2);
    assert!(
        mesh.members.iter().all(|m| m.wireguard.is_some()),
        "both nodes reported their keys: {mesh:?}"
    );

    // Across the nodes, by address.
    let (a, b, c) = (
        container_of(&tag_a, on_a, "a"),
        container_of(&tag_b, on_b, "b"),
        container_of(&tag_b, charlies, "c"),
    );
    until("A to B", Some("from-b"), || {
        fetch(&a, "http://10.60.2.2:8080/")
    });
    // B's 10.60.1.2 is Bob's container on A, never Charlie's on B itself.
    until("B to A", Some("from-a"), || {
        fetch(&b, "http://10.60.1.2:8080/")
    });
    // Charlie's network is his alone: Bob's containers are not in it.
    assert_eq!(
        fetch(&c, "http://10.60.2.2:8080/"),
        None,
        "Charlie reached Bob"
    );
    until("Charlie's own", Some("from-charlie"), || {
        fetch(&c, "http://10.60.1.2:8080/")
    });

    // The owner's laptop joins with what `grid reservation vpn` prints.
    let vpn = Command::new(gridchain_tests::binary("grid"))
        .args([
            "--rpc",
            &format!("ws://127.0.0.1:{}", grid.chain_node.rpc_port),
        ])
        .args(["reservation", "vpn", &on_a.to_string(), "--from", "//Bob"])
        .output()
        .unwrap();
    assert!(
        vpn.status.success(),
        "grid reservation vpn: {}",
        String::from_utf8_lossy(&vpn.stderr)
    );
    let config = String::from_utf8(vpn.stdout).unwrap();
    assert!(
        config.contains(&format!("Address = {LAPTOP}/32")),
        "{config}"
    );
    let conf = dir.path().join("gcvpn0.conf");
    std::fs::write(&conf, &config).unwrap();
    let up = hosts.exec(2, "wg-quick", &["up", conf.to_str().unwrap()]);
    assert!(
        up.status.success(),
        "wg-quick up: {}",
        String::from_utf8_lossy(&up.stderr)
    );
    let from_laptop = |url: &str| {
        let out = hosts.exec(
            2,
            "timeout",
            &["5", "busybox", "wget", "-q", "-O", "-", url],
        );
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    };
    until("laptop to A", Some("from-a"), || {
        from_laptop("http://10.60.1.2:8080/")
    });
    until("laptop to B", Some("from-b"), || {
        from_laptop("http://10.60.2.2:8080/")
    });

    // B's agent dies (kill -9) and B loses its router (tunnel included); its next agent
    // rebuilds them with the same key and port, so A has nothing to change.
    let router_a = router_of(&tag_a).expect("A has a router");
    let tunnel_a = tunnel(&router_a);
    if let Some(mut agent) = agent_b.agent.take() {
        agent.kill().unwrap();
        agent.wait().unwrap();
    }
    let router_b = router_of(&tag_b).expect("B has a router");
    // Bob's and Charlie's routers on B both go.
    while let Some(ns) = router_of(&tag_b) {
        let del = Command::new("ip")
            .args(["netns", "del", &ns])
            .output()
            .unwrap();
        assert!(
            del.status.success(),
            "{}",
            String::from_utf8_lossy(&del.stderr)
        );
    }
    until("A to B while B is down", None, || {
        fetch(&a, "http://10.60.2.2:8080/")
    });
    agent_b.agent = Some(spawn_agent_in(
        Some(hosts.name(1)),
        &dir_b,
        &uri_b,
        &rpc,
        &zdb_b,
        &[],
    ));
    until("A to B after B's restart", Some("from-b"), || {
        fetch(&a, "http://10.60.2.2:8080/")
    });
    until("laptop to B after B's restart", Some("from-b"), || {
        from_laptop("http://10.60.2.2:8080/")
    });
    assert!(router_of(&tag_b).is_some(), "B rebuilt {router_b}");
    assert_eq!(tunnel(&router_a), tunnel_a, "A's tunnel was touched");
    let after = GridApiClient::mesh(client, bob.public().to_string(), "net".into(), None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(after, mesh, "B came back with the same key and endpoint");

    // B's member ends: A drops its route; Bob's mesh has one member left.
    send(
        client,
        grid.chain,
        &bob,
        Call::Reservations(reservations::Call::CancelReservation { id: on_b }),
    )
    .await;
    until("A's routes without B", Some("gone"), || {
        (!tunnel(&router_a).1.contains("10.60.2.0/24")).then(|| "gone".to_string())
    });
    let left = GridApiClient::mesh(client, bob.public().to_string(), "net".into(), None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(left.members.len(), 1);
    assert_eq!(
        from_laptop("http://10.60.1.2:8080/").as_deref(),
        Some("from-a")
    );

    // The last ends: no record, no router on either node.
    for (who, id) in [(&bob, on_a), (&charlie, charlies)] {
        send(
            client,
            grid.chain,
            who,
            Call::Reservations(reservations::Call::CancelReservation { id }),
        )
        .await;
    }
    assert_eq!(
        GridApiClient::mesh(client, bob.public().to_string(), "net".into(), None)
            .await
            .unwrap(),
        None
    );
    until("no routers left", Some("none"), || {
        (router_of(&tag_a).is_none() && router_of(&tag_b).is_none()).then(|| "none".to_string())
    });
    let _ = hosts.exec(2, "wg-quick", &["down", conf.to_str().unwrap()]);
}

/// Bits per second an `iperf3 -J` client run reports as received, or why not.
fn iperf_bps(out: &std::process::Output) -> f64 {
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "iperf3: {e}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    json["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .unwrap_or_else(|| panic!("iperf3 reported no throughput: {json}"))
}

/// One iperf3 run (5 s, TCP): a server by `server` (a command prefix, killed after), the
/// client by `client`, towards `address`.
fn iperf(server: &[&str], client: &[&str], address: &str) -> f64 {
    let port = gridchain_tests::free_port().to_string();
    let mut srv = Command::new(server[0])
        .args(&server[1..])
        .args(["iperf3", "-s", "-4", "-p", &port])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let out = loop {
        let out = Command::new("timeout")
            .arg("30")
            .args(client)
            .args(["iperf3", "-J", "-t", "5", "--connect-timeout", "2000"])
            .args(["-p", &port, "-c", address])
            .output()
            .unwrap();
        // Refused: the server may not listen yet (iperf3 -J exits 0 even then).
        let refused = String::from_utf8_lossy(&out.stdout).contains("Connection refused");
        if !refused || Instant::now() > deadline {
            break out;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let _ = srv.kill();
    let server = srv.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "iperf3 to {address} via {client:?}: {}; the server said {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&server.stderr)
    );
    iperf_bps(&out)
}

fn pid_of(container: &str) -> String {
    let out = Command::new("docker")
        .args(["inspect", "-f", "{{.State.Pid}}", container])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn spread(name: &str, runs: &mut [f64]) -> f64 {
    runs.sort_by(f64::total_cmp);
    let gbps = |x: f64| x / 1e9;
    let median = runs[runs.len() / 2];
    eprintln!(
        "{name}: median {:.2} Gbit/s (min {:.2}, max {:.2}, {} runs)",
        gbps(median),
        gbps(runs[0]),
        gbps(runs[runs.len() - 1]),
        runs.len()
    );
    median
}

/// Benchmark, not a test (run by hand, it asserts no speed): TCP throughput between Bob's
/// containers on A and B over the mesh, beside the same two hosts over their plain LAN link and
/// over a WireGuard tunnel made by hand with the same `wireguard-go`, interleaved in one run.
///
/// `cargo nextest run --workspace -E 'binary(mesh)' --run-ignored only --no-capture`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: run by hand"]
async fn bench_mesh_throughput_beside_plain_veth_and_wireguard_go() {
    let t = two_nodes("meshbench").await;
    let (a, b) = (
        container_of(&t.tag_a, t.on_a, "a"),
        container_of(&t.tag_b, t.on_b, "b"),
    );
    until("A to B", Some("from-b"), || {
        fetch(&a, "http://10.60.2.2:8080/")
    });
    // The peer by hand: wireguard-go between the two hosts' own namespaces.
    let tag = std::process::id() % 100_000;
    let (wg0, wg1) = (format!("gcbw{tag}a"), format!("gcbw{tag}b"));
    let keys: Vec<WireguardSecret> = (0..2u8)
        .map(|i| WireguardSecret::derive(&[i + 1; 32], &[b"bench"]))
        .collect();
    for (host, (name, other)) in [(0usize, (&wg0, 1usize)), (1, (&wg1, 0))] {
        let run = |args: &[&str]| {
            let out = t.hosts.exec(host, args[0], &args[1..]);
            assert!(
                out.status.success(),
                "{args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        run(&["wireguard-go", name]);
        let key_file = t.dir.path().join(format!("wg{host}.key"));
        std::fs::write(&key_file, keys[host].to_base64().as_bytes()).unwrap();
        run(&[
            "wg",
            "set",
            name,
            "listen-port",
            "41820",
            "private-key",
            key_file.to_str().unwrap(),
            "peer",
            &keys[other].public().to_base64(),
            "endpoint",
            &format!("{}:41820", t.hosts.ip(other)),
            "allowed-ips",
            &format!("10.250.0.{}/32", other + 1),
        ]);
        run(&[
            "ip",
            "addr",
            "add",
            &format!("10.250.0.{}/24", host + 1),
            "dev",
            name,
        ]);
        run(&["ip", "link", "set", name, "up"]);
    }
    let ns = |i: usize| vec!["ip", "netns", "exec", t.hosts.name(i)];
    let (pid_a, pid_b) = (pid_of(&a), pid_of(&b));
    fn in_container(pid: &str) -> Vec<&str> {
        vec!["nsenter", "-t", pid, "-n"]
    }
    let (mut veth, mut by_hand, mut mesh) = (vec![], vec![], vec![]);
    for _ in 0..5 {
        veth.push(iperf(&ns(1), &ns(0), t.hosts.ip(1)));
        by_hand.push(iperf(&ns(1), &ns(0), "10.250.0.2"));
        mesh.push(iperf(
            &in_container(&pid_b),
            &in_container(&pid_a),
            "10.60.2.2",
        ));
    }
    let veth = spread("plain veth (host A to host B)", &mut veth);
    let by_hand = spread("wireguard-go by hand (host A to host B)", &mut by_hand);
    let mesh = spread("mesh (container on A to container on B)", &mut mesh);
    eprintln!(
        "mesh / wireguard-go by hand = {:.2}; mesh / plain veth = {:.3}",
        mesh / by_hand,
        mesh / veth
    );
}
