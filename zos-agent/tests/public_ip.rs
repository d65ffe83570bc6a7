//! A farm's public IP routed to a container, across real hosts: the node is its own network
//! namespace on a test LAN running its own agent; another namespace is "the internet", which
//! also routes the farm's public block (198.51.100.64/26, gateway .65) on the LAN. The chain
//! assigns the IP at reserve; the internet reaches the container's web server on it, the
//! container reaches the internet as that address (no NAT); after cancel the internet no
//! longer reaches it, the node keeps nothing of it, and the IP is free on chain.

mod common;

use common::{internet::*, *};
use gridchain_primitives::Pair;
use gridchain_rpc_api::GridApiClient;
use gridchain_runtime::{
    reservations::{self, Deployment, ReservationState, ResultData, Workload, WorkloadSpec},
    tfgrid, Call,
};
use gridchain_tests::{free_port, Namespaces};
use std::time::{Duration, Instant};

const FARM_IP: &str = "198.51.100.70";

/// A web server on port 8080 serving `body` at `/`.
fn web(name: &str, body: &str) -> Workload {
    let mut w = sleeper(name, IMAGE, &["net"]);
    if let WorkloadSpec::Container { entrypoint, .. } = &mut w.spec {
        *entrypoint = format!(
            "sh -c 'mkdir -p /www && echo {body} > /www/index.html && httpd -f -p 8080 -h /www'"
        );
    }
    w
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_public_ip_reaches_its_container_from_the_internet_until_cancel() {
    ensure_image();
    let dir = tempfile::tempdir().unwrap();
    // Host 0: the 3Node. Host 1: the internet, also the farm's gateway for its public block.
    let hosts = Namespaces::create(2);
    hosts.internet(1, PUBLIC);
    hosts.add_lan_address(1, "198.51.100.65/26");
    let port = free_port();
    let internet_web = WebServer::start(&hosts, 1, dir.path(), port);

    let grid = local_grid_with(dir.path(), "pubip", 250, &["--rpc-external"]).await;
    let (client, chain) = (&grid.client, grid.chain);
    // Alice owns the dev farm: she lists the public IP.
    let alice = Pair::dev("Alice");
    send(
        client,
        chain,
        &alice,
        Call::Tfgrid(tfgrid::Call::AddFarmIp {
            farm_id: 1,
            ip: format!("{FARM_IP}/26"),
            gateway: "198.51.100.65".into(),
        }),
    )
    .await;
    let (_cleanup, node_id, tag) = agent_on_host(&hosts, 0, &grid, dir.path()).await;

    let bob = Pair::dev("Bob");
    let id = reserve(
        &grid,
        &bob,
        node_id,
        Deployment {
            metadata: String::new(),
            workloads: vec![
                Workload {
                    name: "net".into(),
                    spec: WorkloadSpec::Network {
                        ip_range: "10.79.0.0/24".into(),
                        egress: false,
                        mesh: None,
                    },
                },
                web("site", "hello-from-a-public-ip"),
                Workload {
                    name: "ip".into(),
                    spec: WorkloadSpec::PublicIp {
                        container: "site".into(),
                    },
                },
            ],
        },
    )
    .await;
    let r = wait_for(client, id, "all Ok", |r| {
        all_ok(r) && r.state == ReservationState::Deployed
    })
    .await;
    assert_eq!(r.public_ips[0].ip, format!("{FARM_IP}/26"));
    assert!(r.results.iter().any(|w| w.data
        == ResultData::PublicIp {
            ip: FARM_IP.into(),
            container: "site".into()
        }));
    let farm = GridApiClient::farm(client, 1, None).await.unwrap().unwrap();
    assert_eq!(farm.public_ips[0].reservation, Some(id));

    // The internet reaches the container on its public IP.
    let url = format!("http://{FARM_IP}:8080/");
    let from_internet = || {
        let out = hosts.exec(
            1,
            "timeout",
            &["5", "busybox", "wget", "-q", "-O", "-", &url],
        );
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    };
    assert_eq!(from_internet().as_deref(), Some("hello-from-a-public-ip"));
    // The container reaches the internet as its public address, not NATed.
    let site = container_of(&tag, id, "site");
    assert_eq!(
        fetch(&site, &format!("http://{PUBLIC}:{port}/hello")).as_deref(),
        Some("hello from the internet\n")
    );
    let seen = internet_web.clients();
    assert!(
        seen.lines().any(|l| l.starts_with(&format!("{FARM_IP} "))),
        "the internet saw {seen:?}"
    );
    // Nor does the public IP open the farmer's LAN or this machine to the container.
    let lan_url = format!("http://{}:{port}/hello", hosts.ip(1));
    assert_eq!(fetch(&site, &lan_url), None, "the LAN is reachable");

    // Cancel: unreachable, nothing left on the node, the IP free on chain.
    send(
        client,
        chain,
        &bob,
        Call::Reservations(reservations::Call::CancelReservation { id }),
    )
    .await;
    let farm = GridApiClient::farm(client, 1, None).await.unwrap().unwrap();
    assert_eq!(
        farm.public_ips[0].reservation, None,
        "freed in the same block"
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let proxies = hosts.exec(0, "ip", &["neigh", "show", "proxy"]);
        let proxied = String::from_utf8_lossy(&proxies.stdout).contains(FARM_IP);
        let routes = hosts.exec(0, "ip", &["route"]);
        let routed = String::from_utf8_lossy(&routes.stdout).contains(FARM_IP);
        let rules = hosts.exec(0, "iptables", &["-w", "-S"]);
        let ruled = String::from_utf8_lossy(&rules.stdout).contains("gcp");
        if !proxied && !routed && !ruled && docker_ps(&tag).is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "left after cancel: proxy ARP {proxied}, route {routed}, rules {ruled}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(from_internet(), None, "still reachable after cancel");
}
