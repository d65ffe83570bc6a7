//! The agent as a light client: an RPC endpoint that lies about the node's desired state — an
//! empty snapshot, forged headers, forged read proofs, forged certificates — is refused, the
//! agent fails over to an honest endpoint, and nothing of the node is removed.

#![allow(clippy::unwrap_used)]

mod common;

use common::{
    lying_proxy::{Lie, LyingProxy},
    *,
};
use gridchain_primitives::Pair;
use gridchain_rpc_api::{jsonrpsee::ws_client::WsClient, ChainApiClient};
use gridchain_runtime::{reservations, Call};
use std::{
    path::Path,
    time::{Duration, Instant},
};

/// The agent's log from byte `from` on.
fn log_since(dir: &Path, from: usize) -> String {
    agent_log(dir).get(from..).unwrap_or_default().to_string()
}

/// Whether `log` shows an answer refused for `reason` followed by a reconciliation pass (from the
/// honest endpoint: the liar's answers are never used).
/// Returns the refusal's line.
fn refused_then_reconciled(log: &str, reason: &str) -> Option<String> {
    let refused = log
        .lines()
        .position(|l| l.contains("refused") && l.contains(reason))?;
    let after = log.lines().skip(refused).collect::<Vec<_>>().join("\n");
    (after.contains("reconciled") || after.contains("start-up reconciliation done"))
        .then(|| log.lines().nth(refused).unwrap_or_default().to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lying_rpc_endpoint_is_refused_and_nothing_is_removed() {
    let dir = tempfile::tempdir().unwrap();
    let grid = local_grid(dir.path(), "liar").await;
    let (client, chain) = (&grid.client, grid.chain);
    let proxy = LyingProxy::start(grid.chain_node.rpc_port).await;
    // The liar first: the agent uses it until it catches it.
    let rpc = [proxy.url(), grid.chain_node.ws_url()];
    let zdb = zdb_addr();
    let (mut cleanup, node_id, tag) = start_agent(&grid, dir.path(), &rpc, &zdb).await;
    let bob = Pair::dev("Bob");
    send(
        client,
        chain,
        &bob,
        Call::Reservations(reservations::Call::Reserve {
            node_id,
            deployment: container_only("web", IMAGE),
        }),
    )
    .await;
    let first = last_reservation_id(client).await;
    wait_for(client, first, "Ok through the (still honest) proxy", all_ok).await;
    let running = docker_ps(&tag);
    assert_eq!(running.len(), 1);

    // Each lie, and what the agent must have caught.
    for (round, (lie, reason)) in [
        (Lie::EmptySnapshot, "differs from the proven state"),
        (Lie::ForgedHeaders, "certificate is for block"),
        (Lie::ForgedProofs, "does not match the state root"),
        (Lie::ForgedCertificates, "bad precommit signature"),
    ]
    .into_iter()
    .enumerate()
    {
        let from = agent_log(dir.path()).len();
        proxy.lie(lie);
        if round > 0 {
            // After catching the liar the agent stays on the honest endpoint; a restart puts it
            // back on the first one (and resumes from the persisted trusted header).
            let mut agent = cleanup.agent.take().unwrap();
            agent.kill().unwrap();
            agent.wait().unwrap();
            // A head at the trusted height itself would be refused for that alone; let the
            // chain move past it so the lie meets the check it is aimed at.
            let trusted = trusted_height(dir.path());
            while best(client).await <= trusted + 1 {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            cleanup.agent = Some(spawn_agent(dir.path(), &grid.node_uri, &rpc, &zdb));
        }
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            assert_eq!(
                docker_ps(&tag),
                running,
                "the agent removed or replaced workloads on a lying endpoint's word ({lie:?}); see {}",
                dir.path().join("agent.log").display()
            );
            if let Some(line) = refused_then_reconciled(&log_since(dir.path(), from), reason) {
                eprintln!("{lie:?}: {line}");
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{lie:?}: no refusal ({reason}) followed by a pass in 90 s; log:\n{}",
                log_since(dir.path(), from)
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    // Through the honest endpoint the agent still does its work, and the first container was
    // never touched.
    send(
        client,
        chain,
        &bob,
        Call::Reservations(reservations::Call::Reserve {
            node_id,
            deployment: container_only("web2", IMAGE),
        }),
    )
    .await;
    let second = last_reservation_id(client).await;
    wait_for(client, second, "Ok through the honest endpoint", all_ok).await;
    let now = docker_ps(&tag);
    assert_eq!(now.len(), 2);
    assert!(
        now.contains(&running[0]),
        "the first container was replaced"
    );
}

/// The height of the header the agent's light client trusts (`light.json`).
fn trusted_height(dir: &Path) -> u64 {
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("agent/light.json")).unwrap()).unwrap();
    json["header"]["number"].as_u64().unwrap()
}

async fn best(client: &WsClient) -> u64 {
    client.header(None).await.unwrap().unwrap().number
}

/// Reserves one container on `node_id` and waits until it is Ok.
async fn reserve_one(grid: &LocalGrid, node_id: u32, name: &str) -> u64 {
    send(
        &grid.client,
        grid.chain,
        &Pair::dev("Bob"),
        Call::Reservations(reservations::Call::Reserve {
            node_id,
            deployment: container_only(name, IMAGE),
        }),
    )
    .await;
    let id = last_reservation_id(&grid.client).await;
    wait_for(&grid.client, id, "Ok", all_ok).await;
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_after_epochs_down_the_agent_walks_the_validator_set_forward() {
    let dir = tempfile::tempdir().unwrap();
    let grid = local_grid(dir.path(), "walk").await;
    let rpc = [grid.chain_node.ws_url()];
    let zdb = zdb_addr();
    let (mut cleanup, node_id, tag) = start_agent(&grid, dir.path(), &rpc, &zdb).await;
    reserve_one(&grid, node_id, "web").await;
    let running = docker_ps(&tag);
    let mut agent = cleanup.agent.take().unwrap();
    agent.kill().unwrap();
    agent.wait().unwrap();
    let before = trusted_height(dir.path());
    // Down for more than six epochs (epochs of 10 blocks on the dev chain).
    let deadline = Instant::now() + Duration::from_secs(120);
    while best(&grid.client).await < before + 65 {
        assert!(Instant::now() < deadline, "the chain stalled");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let from = agent_log(dir.path()).len();
    cleanup.agent = Some(spawn_agent(dir.path(), &grid.node_uri, &rpc, &zdb));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let log = log_since(dir.path(), from);
        if log.contains("start-up reconciliation done") {
            let walks = log.matches("walked the validator set forward").count();
            assert!(walks >= 3, "{walks} walking steps for 65 blocks:\n{log}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no start-up pass in 60 s:\n{log}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(trusted_height(dir.path()) >= before + 60);
    assert_eq!(docker_ps(&tag), running);
}

/// The cost figure: the agent following a chain of one block per second with one reservation,
/// for 60 blocks: CPU of the agent process, and per block the light client's verification time
/// (certificate and proofs, without the network) from its debug log.
/// `cargo nextest run -p zos-agent agent_cost --run-ignored only --no-capture`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement (about 90 s), not a check"]
async fn agent_cost_at_one_block_per_second() {
    let dir = tempfile::tempdir().unwrap();
    let grid = local_grid_with_block_time(dir.path(), "cost", 1000).await;
    let rpc = [grid.chain_node.ws_url()];
    let (cleanup, node_id, _tag) = start_agent(&grid, dir.path(), &rpc, &zdb_addr()).await;
    reserve_one(&grid, node_id, "web").await;
    let pid = cleanup.agent.as_ref().unwrap().id();
    let cpu_ticks = || {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        let fields: Vec<&str> = stat.rsplit_once(") ").unwrap().1.split(' ').collect();
        fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
    };
    let ticks_per_s = 100.0; // CLK_TCK on Linux
    let (start_ticks, start_block, from) = (
        cpu_ticks(),
        best(&grid.client).await,
        agent_log(dir.path()).len(),
    );
    let started = Instant::now();
    while best(&grid.client).await < start_block + 60 {
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let cpu_s = (cpu_ticks() - start_ticks) as f64 / ticks_per_s;
    let wall_s = started.elapsed().as_secs_f64();
    let log = log_since(dir.path(), from);
    let mut us: Vec<u64> = log
        .lines()
        .filter(|l| l.contains("verified final header and node state"))
        .filter_map(|l| {
            // Without the colour codes (ESC [ … m) tracing writes.
            let plain: String = l
                .split('\u{1b}')
                .enumerate()
                .map(|(i, p)| {
                    if i == 0 {
                        p
                    } else {
                        p.split_once('m').map_or(p, |x| x.1)
                    }
                })
                .collect();
            plain
                .split_whitespace()
                .find_map(|w| w.strip_prefix("verify_us=")?.parse().ok())
        })
        .collect();
    us.sort_unstable();
    assert!(!us.is_empty(), "no verification lines:\n{log}");
    eprintln!(
        "agent CPU at 1 block/s: {:.2} % of one core ({cpu_s:.2} s CPU in {wall_s:.1} s); \
         light-client verification per block: median {} µs, p90 {} µs, max {} µs over {} blocks",
        100.0 * cpu_s / wall_s,
        us[us.len() / 2],
        us[us.len() * 9 / 10],
        us[us.len() - 1],
        us.len()
    );
}
