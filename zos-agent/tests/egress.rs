//! A way out for a private network, across real hosts: the node is its own network namespace
//! on a test LAN, running its own agent; another namespace plays "the internet" (a web server
//! on a public address, 198.51.100.1). A container on a network with `egress: true` reaches
//! it, NATed to the node's address; private destinations (the LAN) and a network without
//! egress stay unreachable; cancel removes the router and every rule.

mod common;

use common::{internet::*, *};
use gridchain_primitives::Pair;
use gridchain_runtime::{
    reservations::{self, Deployment, ReservationState, ResultData, Workload, WorkloadSpec},
    Call,
};
use gridchain_tests::{free_port, Namespaces};
use std::{
    process::Command,
    time::{Duration, Instant},
};

fn network(name: &str, range: &str, egress: bool) -> Workload {
    Workload {
        name: name.into(),
        spec: WorkloadSpec::Network {
            ip_range: range.into(),
            egress,
            mesh: None,
        },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_network_with_egress_reaches_the_internet_and_nothing_private() {
    ensure_image();
    let dir = tempfile::tempdir().unwrap();
    // Host 0: the 3Node. Host 1: the internet.
    let hosts = Namespaces::create(2);
    hosts.internet(1, PUBLIC);
    let port = free_port();
    let web = WebServer::start(&hosts, 1, dir.path(), port);

    let grid = local_grid_with(dir.path(), "egress", 250, &["--rpc-external"]).await;
    let (client, chain) = (&grid.client, grid.chain);
    let (_cleanup, node_id, tag) = agent_on_host(&hosts, 0, &grid, dir.path()).await;

    let bob = Pair::dev("Bob");
    let id = reserve(
        &grid,
        &bob,
        node_id,
        Deployment {
            metadata: String::new(),
            workloads: vec![
                network("out", "10.77.0.0/24", true),
                network("closed", "10.78.0.0/24", false),
                sleeper("app", IMAGE, &["out"]),
                sleeper("shut", IMAGE, &["closed"]),
            ],
        },
    )
    .await;
    let r = wait_for(client, id, "all Ok", |r| {
        all_ok(r) && r.state == ReservationState::Deployed
    })
    .await;
    // The result says it has a way out, and through what.
    let gateways: Vec<_> = r
        .results
        .iter()
        .filter_map(|w| match &w.data {
            ResultData::Network { gateway, .. } => Some((w.name.as_str(), gateway.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        gateways,
        [("out", Some("10.77.0.1".to_string())), ("closed", None)]
    );

    let app = container_of(&tag, id, "app");
    let public_url = format!("http://{PUBLIC}:{port}/hello");
    assert_eq!(
        fetch(&app, &public_url).as_deref(),
        Some("hello from the internet\n"),
        "egress reaches the internet"
    );
    // The internet saw the node's own address (NAT), not the container's.
    let seen = web.clients();
    assert!(
        seen.lines()
            .any(|l| l.starts_with(&format!("{} ", hosts.ip(0)))),
        "the server saw {seen:?}, not the node's address {}",
        hosts.ip(0)
    );
    assert!(
        !seen.contains("10.77.0."),
        "a private address leaked: {seen}"
    );
    // Private destinations are not reachable: the same server at its LAN address, and the
    // machine's own address on the LAN.
    let lan_url = format!("http://{}:{port}/hello", hosts.ip(1));
    assert_eq!(fetch(&app, &lan_url), None, "the LAN is reachable");
    let host_url = format!(
        "http://{}:{}/",
        hosts.lan_gateway(),
        grid.chain_node.rpc_port
    );
    assert_eq!(fetch(&app, &host_url), None, "this machine is reachable");
    // A network without egress has no way out.
    let shut = container_of(&tag, id, "shut");
    assert_eq!(fetch(&shut, &public_url), None, "no egress, yet out");

    // Another owner with the same range and the same container address: each gets its own
    // replies (one routing table per network; a shared one would send one owner's replies to
    // the other's bridge).
    // (The node has two cores: Bob's second container goes first; `app` is untouched.)
    send(
        client,
        chain,
        &bob,
        Call::Reservations(reservations::Call::UpdateReservation {
            id,
            deployment: Deployment {
                metadata: String::new(),
                workloads: vec![
                    network("out", "10.77.0.0/24", true),
                    sleeper("app", IMAGE, &["out"]),
                ],
            },
        }),
    )
    .await;
    wait_for(client, id, "version 2 Ok", |r| r.version == 2 && all_ok(r)).await;
    let alice = Pair::dev("Alice");
    let other = reserve(
        &grid,
        &alice,
        node_id,
        Deployment {
            metadata: String::new(),
            workloads: vec![
                network("out", "10.77.0.0/24", true),
                sleeper("app", IMAGE, &["out"]),
            ],
        },
    )
    .await;
    wait_for(client, other, "the other owner's Ok", |r| {
        all_ok(r) && r.state == ReservationState::Deployed
    })
    .await;
    let other_app = container_of(&tag, other, "app");
    assert_eq!(
        exec(
            &other_app,
            "ip -4 -o addr show eth0 | grep -o '10.77.0.[0-9]*'"
        ),
        exec(&app, "ip -4 -o addr show eth0 | grep -o '10.77.0.[0-9]*'"),
        "both containers have the same address"
    );
    for _ in 0..3 {
        for c in [&app, &other_app] {
            assert_eq!(
                fetch(c, &public_url).as_deref(),
                Some("hello from the internet\n"),
                "{c}"
            );
        }
    }
    send(
        client,
        chain,
        &alice,
        Call::Reservations(reservations::Call::CancelReservation { id: other }),
    )
    .await;

    // Cancel: the router namespace and every rule of it go.
    send(
        client,
        chain,
        &bob,
        Call::Reservations(reservations::Call::CancelReservation { id }),
    )
    .await;
    let router_prefix = format!("gc-{tag}-");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let list = Command::new("ip").args(["netns", "list"]).output().unwrap();
        let routers = String::from_utf8_lossy(&list.stdout).contains(&router_prefix);
        let nat = hosts.exec(0, "iptables", &["-w", "-t", "nat", "-S"]);
        let filter = hosts.exec(0, "iptables", &["-w", "-S"]);
        let rules = [nat.stdout, filter.stdout]
            .iter()
            .any(|out| String::from_utf8_lossy(out).contains("gce"));
        let links = hosts.exec(0, "ip", &["-o", "link"]);
        let links = String::from_utf8_lossy(&links.stdout).contains("gce");
        if !routers && !rules && !links && docker_ps(&tag).is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "left after cancel: routers {routers}, rules {rules}, links {links}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
