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
