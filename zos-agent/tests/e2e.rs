//! End to end on a real dev chain with the real agent binary and the real Docker daemon:
//! the agent registers its node, proves capacity, provisions a reservation with a network, a
//! volume, a zdb namespace and a container, reports Ok on chain, follows an update, and removes
//! everything on cancel.

mod common;

use common::*;
use gridchain_primitives::Pair;
use gridchain_rpc_api::GridApiClient;
use gridchain_runtime::{
    balances,
    reservations::{self, ReservationState},
    Call,
};
use std::{
    process::Command,
    time::{Duration, Instant},
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reserve_update_cancel_through_the_agent() {
    ensure_image();
    let dir = tempfile::tempdir().unwrap();
    let grid = local_grid(dir.path(), "e2e").await;
    let (client, chain, node_key) = (&grid.client, grid.chain, &grid.node_key);
    let bob = Pair::dev("Bob");
    let zdb_addr = zdb_addr();
    let (_cleanup, node_id, tag) =
        start_agent(&grid, dir.path(), &[grid.chain_node.ws_url()], &zdb_addr).await;

    // Reserve: everything Ok on chain, and real.
    send(
        &client,
        chain,
        &bob,
        Call::Reservations(reservations::Call::Reserve {
            node_id,
            deployment: deployment(chain, &bob.public(), &node_key.public(), "hello"),
        }),
    )
    .await;
    let id = GridApiClient::reservations_by_owner(client, bob.public().to_string(), None)
        .await
        .unwrap()[0]
        .id;
    let r = wait_for(&client, id, "all Ok", |r| {
        all_ok(r) && r.state == ReservationState::Deployed
    })
    .await;
    let containers = docker_ps(&tag);
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
    // The result names the container and the limits Docker applies to it, as `docker
    // inspect` shows them.
    let Some(reservations::ResultData::Container {
        container_id,
        limits,
        ..
    }) = r
        .results
        .iter()
        .map(|w| &w.data)
        .find(|d| matches!(d, reservations::ResultData::Container { .. }))
    else {
        panic!("no container result: {:?}", r.results)
    };
    assert_eq!(container_id, &first);
    let inspected = Command::new("docker")
        .args([
            "inspect",
            "-f",
            "{{.HostConfig.NanoCpus}} {{.HostConfig.Memory}} {{.HostConfig.PidsLimit}}",
            &first,
        ])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&inspected.stdout).trim(),
        format!(
            "{} {} {}",
            u64::from(limits.cpu_millicores) * 1_000_000,
            limits.memory,
            limits.pids
        )
    );
    assert_eq!(limits.memory, 64 * MIB);
    assert!(limits.pids > 0 && limits.cpu_millicores >= 1000);
    assert_eq!(
        limits.rootfs_enforcement,
        reservations::RootfsEnforcement::Measured { every_secs: 10 }
    );
    assert!(limits.rootfs > 0);

    // Update: the container is recreated, version 2 is Ok.
    send(
        &client,
        chain,
        &bob,
        Call::Reservations(reservations::Call::UpdateReservation {
            id,
            deployment: deployment(chain, &bob.public(), &node_key.public(), "bonjour"),
        }),
    )
    .await;
    wait_for(&client, id, "version 2 Ok", |r| r.version == 2 && all_ok(r)).await;
    let containers = docker_ps(&tag);
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
        let bridge_gone = common::links_with_alias(&format!("gridchain node {tag}")).is_empty();
        let volumes = Command::new("docker")
            .args([
                "volume",
                "ls",
                "-q",
                "--filter",
                &format!("label=gridchain.node={tag}"),
            ])
            .output()
            .unwrap();
        let mut conn = zdb.get_multiplexed_async_connection().await.unwrap();
        let namespaces: Vec<String> = redis::cmd("NSLIST").query_async(&mut conn).await.unwrap();
        if docker_ps(&tag).is_empty()
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

fn docker_state(container: &str) -> String {
    let out = Command::new("docker")
        .args(["inspect", "-f", "{{.State.Status}}", container])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_funds_pauses_and_refill_resumes() {
    ensure_image();
    let dir = tempfile::tempdir().unwrap();
    let grid = local_grid(dir.path(), "grace").await;
    let (client, chain, node_key) = (&grid.client, grid.chain, &grid.node_key);
    let (alice, user) = (Pair::dev("Alice"), Pair::dev("Bob"));
    let (_cleanup, node_id, tag) =
        start_agent(&grid, dir.path(), &[grid.chain_node.ws_url()], &zdb_addr()).await;

    send(
        &client,
        chain,
        &user,
        Call::Reservations(reservations::Call::Reserve {
            node_id,
            deployment: deployment(chain, &user.public(), &node_key.public(), "hi"),
        }),
    )
    .await;
    let id = GridApiClient::reservations_by_owner(client, user.public().to_string(), None)
        .await
        .unwrap()[0]
        .id;
    wait_for(&client, id, "Deployed", |r| {
        all_ok(r) && r.state == ReservationState::Deployed
    })
    .await;
    let container = docker_ps(&tag)[0].clone();
    assert_eq!(docker_state(&container), "running");

    // The owner empties the account: the next settlement cannot be paid.
    send(
        &client,
        chain,
        &user,
        Call::Balances(balances::Call::TransferAll {
            dest: alice.public(),
        }),
    )
    .await;
    wait_for(&client, id, "paused in grace", |r| {
        matches!(r.state, ReservationState::GracePeriod { .. })
            && r.results
                .iter()
                .any(|w| w.state == reservations::WorkloadState::Paused)
    })
    .await;
    assert_eq!(
        docker_state(&container),
        "paused",
        "the agent pauses workloads in grace"
    );

    // Refilled within the grace period: settled, resumed, Ok again.
    send(
        &client,
        chain,
        &alice,
        Call::Balances(balances::Call::Transfer {
            dest: user.public(),
            amount: 1_000_000_000_000_000,
        }),
    )
    .await;
    wait_for(&client, id, "resumed", |r| {
        all_ok(r) && r.state == ReservationState::Deployed
    })
    .await;
    assert_eq!(
        docker_state(&container),
        "running",
        "same container, resumed"
    );
}
