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

fn deployment(workloads: Vec<Workload>) -> Deployment {
    Deployment {
        metadata: String::new(),
        workloads,
    }
}

/// Polls `probe` until it gives `want` (60 s at most); each probe waits at most 5 s itself.
fn until(what: &str, want: Option<&str>, probe: impl Fn() -> Option<String>) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got = probe().map(|text| text.trim().to_string());
        if got.as_deref() == want {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: got {got:?}, want {want:?}");
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containers_on_two_nodes_and_the_owners_laptop_share_one_private_network() {
    ensure_image();
    let dir = tempfile::tempdir().unwrap();
    // Hosts 0 and 1: the 3Nodes A and B. Host 2: the internet, where the owner's laptop is.
    let hosts = Namespaces::create(3);
    hosts.internet(2, PUBLIC);
    let grid = local_grid_with(dir.path(), "mesh", 250, &["--rpc-external"]).await;
    let client = &grid.client;
    let rpc = vec![format!(
        "ws://{}:{}",
        hosts.lan_gateway(),
        grid.chain_node.rpc_port
    )];
    let (dir_a, dir_b) = (dir.path().join("a"), dir.path().join("b"));
    std::fs::create_dir_all(&dir_a).unwrap();
    std::fs::create_dir_all(&dir_b).unwrap();
    let (_agent_a, node_a, tag_a) =
        start_agent_in(Some(hosts.name(0)), &grid, &dir_a, &rpc, &zdb_addr()).await;
    let uri_b = another_node_key(&grid, "mesh-b").await;
    let zdb_b = zdb_addr();
    let (mut agent_b, node_b, tag_b) =
        start_agent_as(Some(hosts.name(1)), &grid, &uri_b, &dir_b, &rpc, &zdb_b).await;

    // Bob's laptop key: what `grid` derives from Bob's seed for network `net` of this chain.
    let bob = Pair::dev("Bob");
    let genesis = client.block_hash(Some(0)).await.unwrap().unwrap();
    let laptop = WireguardSecret::derive(&bob.seed(), &wireguard::user_context(&genesis.0, "net"));
    let on_a = reserve(
        &grid,
        &bob,
        node_a,
        deployment(vec![
            member(
                "10.60.1.0/24",
                vec![MeshPeer {
                    public_key: laptop.public(),
                    ip: LAPTOP.into(),
                }],
            ),
            web("a", "from-a", "10.60.1.2"),
        ]),
    )
    .await;
    let on_b = reserve(
        &grid,
        &bob,
        node_b,
        deployment(vec![
            member("10.60.2.0/24", vec![]),
            web("b", "from-b", "10.60.2.2"),
        ]),
    )
    .await;
    // Charlie: the same network name, a range overlapping Bob's subnet on A, on node B.
    let charlie = Pair::dev("Charlie");
    create_twin(&grid, &charlie, "charlie").await;
    let charlies = reserve(
        &grid,
        &charlie,
        node_b,
        deployment(vec![
            member("10.60.1.0/24", vec![]),
            web("c", "from-charlie", "10.60.1.2"),
        ]),
    )
    .await;
    for id in [on_a, on_b, charlies] {
        wait_for(client, id, "all Ok", |r| {
            all_ok(r) && r.state == ReservationState::Deployed
        })
        .await;
    }
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
    until("A to B", Some("from-b"), || fetch(&a, "http://10.60.2.2:8080/"));
    // B's 10.60.1.2 is Bob's container on A, never Charlie's on B itself.
    until("B to A", Some("from-a"), || fetch(&b, "http://10.60.1.2:8080/"));
    // Charlie's network is his alone: Bob's containers are not in it.
    assert_eq!(fetch(&c, "http://10.60.2.2:8080/"), None, "Charlie reached Bob");
    until("Charlie's own", Some("from-charlie"), || {
        fetch(&c, "http://10.60.1.2:8080/")
    });

    // The owner's laptop joins with what `grid reservation vpn` prints.
    let vpn = Command::new(gridchain_tests::binary("grid"))
        .args(["--rpc", &format!("ws://127.0.0.1:{}", grid.chain_node.rpc_port)])
        .args(["reservation", "vpn", &on_a.to_string(), "--from", "//Bob"])
        .output()
        .unwrap();
    assert!(
        vpn.status.success(),
        "grid reservation vpn: {}",
        String::from_utf8_lossy(&vpn.stderr)
    );
    let config = String::from_utf8(vpn.stdout).unwrap();
    assert!(config.contains(&format!("Address = {LAPTOP}/32")), "{config}");
    let conf = dir.path().join("gcvpn0.conf");
    std::fs::write(&conf, &config).unwrap();
    let up = hosts.exec(2, "wg-quick", &["up", conf.to_str().unwrap()]);
    assert!(
        up.status.success(),
        "wg-quick up: {}",
        String::from_utf8_lossy(&up.stderr)
    );
    let from_laptop = |url: &str| {
        let out = hosts.exec(2, "timeout", &["5", "busybox", "wget", "-q", "-O", "-", url]);
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
        let del = Command::new("ip").args(["netns", "del", &ns]).output().unwrap();
        assert!(del.status.success(), "{}", String::from_utf8_lossy(&del.stderr));
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
