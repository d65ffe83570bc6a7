//! Restart policies through the real agent on a dev chain and the real Docker daemon: Docker
//! restarts a container by its policy, the agent hears of each exit from Docker's event stream
//! and reports it on chain with its cause and the restart count.

mod common;

use common::*;
use gridchain_primitives::Pair;
use gridchain_runtime::reservations::{
    self, Deployment, HealthCheck, HealthProbe, RestartPolicy, ResultData, WorkloadSpec,
    WorkloadState,
};

fn job(entrypoint: &str, restart: RestartPolicy) -> Deployment {
    let mut d = container_only("job", IMAGE);
    let WorkloadSpec::Container {
        entrypoint: e,
        restart: r,
        ..
    } = &mut d.workloads[0].spec
    else {
        unreachable!()
    };
    *e = entrypoint.into();
    *r = restart;
    d
}

fn restarts_of(r: &reservations::Reservation) -> Option<u32> {
    match r.results.first().map(|w| (&w.state, &w.data)) {
        Some((WorkloadState::Ok, ResultData::Container { restarts, .. })) => Some(*restarts),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crashes_and_oom_are_restarted_by_policy_and_reported_with_their_cause() {
    let agent = grid_with_agent("restarts").await;
    let (grid, node_id, tag) = (&agent.grid, agent.node_id, &agent.tag);
    let client = &grid.client;
    let bob = Pair::dev("Bob");

    // A service that crashes every 2 s: Docker starts it again each time, the chain shows the
    // count going up while it runs.
    let id = reserve(
        grid,
        &bob,
        node_id,
        job("sh -c 'sleep 2; exit 1'", RestartPolicy::Always),
    )
    .await;
    let r = wait_for(client, id, "running after two restarts", |r| {
        restarts_of(r).is_some_and(|n| n >= 2)
    })
    .await;
    assert_eq!(r.results[0].message, "");
    cancel_and_wait_removed(grid, &bob, id, tag).await;

    // A job that fails: restarted twice on failure, then left down, its exit code on chain.
    let id = reserve(
        grid,
        &bob,
        node_id,
        job(
            "sh -c 'sleep 1; exit 3'",
            RestartPolicy::OnFailure { max_retries: 2 },
        ),
    )
    .await;
    let r = wait_for(client, id, "given up after two restarts", |r| {
        r.results.first().is_some_and(|w| {
            w.state == WorkloadState::Error && w.message.contains("not restarted again")
        })
    })
    .await;
    let message = &r.results[0].message;
    assert!(
        message.contains("exited with code 3") && message.contains("restarted 2 times"),
        "{message}"
    );
    cancel_and_wait_removed(grid, &bob, id, tag).await;

    // Past its memory limit (32 MiB), with no restart: the kernel's OOM kill, in words.
    let id = reserve(
        grid,
        &bob,
        node_id,
        job(
            "sh -c 'sleep 1; head -c 500m /dev/zero | tail'",
            RestartPolicy::Never,
        ),
    )
    .await;
    let r = wait_for(client, id, "an OOM kill", |r| {
        r.results
            .first()
            .is_some_and(|w| w.state == WorkloadState::Error)
    })
    .await;
    assert!(
        r.results[0].message.contains("out of memory"),
        "{}",
        r.results[0].message
    );
    cancel_and_wait_removed(grid, &bob, id, tag).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_health_check_decides_when_the_workload_is_ok() {
    let agent = grid_with_agent("health").await;
    let (grid, node_id) = (&agent.grid, agent.node_id);
    let client = &grid.client;
    let bob = Pair::dev("Bob");
    // Ready after 2 s, not ready any more 6 s later: Unhealthy, Ok, Unhealthy with the probe's
    // words.
    let mut deployment = job(
        "sh -c 'sleep 2; echo yes > /tmp/ready; sleep 6; rm /tmp/ready; sleep 3600'",
        RestartPolicy::Always,
    );
    let WorkloadSpec::Container { health_check, .. } = &mut deployment.workloads[0].spec else {
        unreachable!()
    };
    *health_check = Some(HealthCheck {
        probe: HealthProbe::Command {
            command: "cat /tmp/ready".into(),
        },
        interval_secs: 1,
        timeout_secs: 1,
        retries: 1,
    });
    let id = reserve(grid, &bob, node_id, deployment).await;
    let state = |r: &reservations::Reservation| r.results.first().map(|w| w.state);
    let r = wait_for(client, id, "unhealthy at first", |r| {
        state(r) == Some(WorkloadState::Unhealthy)
    })
    .await;
    assert!(
        r.results[0].message.contains("health check not"),
        "{:?}",
        r.results[0]
    );
    wait_for(client, id, "healthy", |r| {
        state(r) == Some(WorkloadState::Ok)
    })
    .await;
    let r = wait_for(client, id, "failing its health check", |r| {
        state(r) == Some(WorkloadState::Unhealthy)
    })
    .await;
    let message = &r.results[0].message;
    assert!(
        message.contains("health check failing") && message.contains("/tmp/ready"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_writing_past_its_rootfs_size_is_stopped_for_good() {
    let agent = grid_with_agent("rootfs").await;
    let (grid, node_id, tag) = (&agent.grid, agent.node_id, &agent.tag);
    let client = &grid.client;
    let bob = Pair::dev("Bob");
    // 32 MiB of rootfs (container_only), 40 MiB written outside any volume.
    let id = reserve(
        grid,
        &bob,
        node_id,
        job(
            "sh -c 'head -c 40m /dev/zero > /big; sleep 3600'",
            RestartPolicy::Always,
        ),
    )
    .await;
    let r = wait_for(client, id, "stopped for its rootfs", |r| {
        r.results
            .first()
            .is_some_and(|w| w.state == WorkloadState::Error)
    })
    .await;
    let message = &r.results[0].message;
    assert!(message.contains("more than its rootfsSize"), "{message}");
    // Stopped for good: not restarted by its `always` policy.
    let containers = docker_ps(tag);
    assert_eq!(containers.len(), 1);
    let state = std::process::Command::new("docker")
        .args([
            "inspect",
            "-f",
            "{{.State.Status}} {{.RestartCount}}",
            &containers[0],
        ])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&state.stdout).trim(), "exited 0");
    cancel_and_wait_removed(grid, &bob, id, tag).await;
}

/// A restart gives the container a new network namespace: the agent puts its interfaces back,
/// after a crash (Docker restarts it) and after a `docker stop` by hand (Docker never would:
/// the agent starts it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_container_gets_its_network_back_and_one_stopped_by_hand_runs_again() {
    let agent = grid_with_agent("renet").await;
    let (grid, node_id, tag) = (&agent.grid, agent.node_id, &agent.tag);
    let client = &grid.client;
    let bob = Pair::dev("Bob");
    let d = Deployment {
        metadata: String::new(),
        workloads: vec![
            reservations::Workload {
                name: "net".into(),
                spec: WorkloadSpec::Network {
                    ip_range: "10.81.0.0/24".into(),
                    egress: false,
                    mesh: None,
                },
            },
            sleeper("app", IMAGE, &["net"]),
        ],
    };
    let id = reserve(grid, &bob, node_id, d).await;
    wait_for(client, id, "Ok", all_ok).await;
    let app = format!("gc-{tag}-r{id}-app");
    let has_address = || exec(&app, "ip -4 -o addr show eth0").contains("10.81.0.2/24");
    assert!(has_address());

    // A crash: its process killed from outside (not by Docker).
    let pid = docker_inspect(&app, "{{.State.Pid}}");
    assert!(std::process::Command::new("kill")
        .args(["-9", &pid])
        .status()
        .unwrap()
        .success());
    wait_for(client, id, "Ok after the crash, restart counted", |r| {
        all_ok(r)
            && r.results
                .iter()
                .any(|w| matches!(w.data, ResultData::Container { restarts, .. } if restarts >= 1))
    })
    .await;
    wait_until("its address back after the restart", has_address).await;

    // Stopped by hand: Docker leaves it stopped; the agent starts it, with its network.
    assert!(std::process::Command::new("docker")
        .args(["stop", "-t", "0", &app])
        .status()
        .unwrap()
        .success());
    wait_until("running again after a manual stop", || {
        docker_inspect(&app, "{{.State.Running}}") == "true" && has_address()
    })
    .await;
    wait_for(client, id, "Ok again", all_ok).await;
    cancel_and_wait_removed(grid, &bob, id, tag).await;
}

fn docker_inspect(container: &str, format: &str) -> String {
    let out = std::process::Command::new("docker")
        .args(["inspect", "-f", format, container])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

async fn wait_until(what: &str, done: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
    while !done() {
        assert!(std::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}
