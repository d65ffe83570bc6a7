//! `reserve-bench`: latency from a signed `reserve` of one small container to its `Ok` result
//! being final, on a running local grid (`gridnode --dev`, whose agent runs node 1).
//!
//! For each of `--count` reservations, one at a time:
//! 1. submit with `author_submitAndWatchExtrinsic` and wait for `finalized` (inclusion +
//!    finality);
//! 2. follow final heads until the reservation's results for its version are all Ok (the agent
//!    noticing the block, Docker creating and starting the container, and the `report_results`
//!    transaction being included and final);
//! 3. cancel it, so the node's capacity is free for the next one.
//!
//! Prints p50/p99/max of each phase and of the total. With `--fresh-pull`, the image is removed
//! before each reservation, so each one includes the agent's pull from its registry. With
//! `--crash`, once a reservation is Ok its container's process is killed (`kill -9` of its
//! init process, from the host): timed are Docker's restart (until `docker inspect` shows it running again with a
//! restart count) and the restart being reported on chain (until a final head shows the
//! workload Ok with `restarts` ≥ 1); each run uses a new reservation, so report pacing never
//! holds a report back.

use anyhow::{bail, Context};
use clap::Parser;
use gridchain_primitives::{Bytes, ChainContext, Extrinsic, Pair};
use gridchain_rpc_api::{
    jsonrpsee::ws_client::{WsClient, WsClientBuilder},
    AuthorApiClient, ChainApiClient, GridApiClient, GridchainApiClient, StateApiClient,
    SystemApiClient, TransactionStatus,
};
use gridchain_runtime::{
    reservations::{
        self, Deployment, ReserveRequest, Workload, WorkloadSpec, WorkloadState, ZdbMode,
    },
    twins, Call,
};
use parity_scale_codec::Encode;
use std::time::{Duration, Instant};

#[derive(Parser)]
struct Args {
    #[arg(long, default_value = "ws://127.0.0.1:9944")]
    rpc: String,
    #[arg(long, default_value_t = 1)]
    node_id: u32,
    #[arg(long, default_value_t = 50)]
    count: usize,
    /// The user reserving (needs funds; a twin is created if missing).
    #[arg(long, default_value = "//Bob")]
    from: String,
    #[arg(long, default_value = "gridchain/busybox:latest")]
    image: String,
    /// Remove `--image` from the local Docker before each reservation, so the agent pulls it
    /// every time (compare with `docker pull` + `docker run` of the same image by hand).
    #[arg(long)]
    fresh_pull: bool,
    /// Also time a crash: kill -9 the container's process once it is Ok, until Docker
    /// restarted it and until the chain shows the restart.
    #[arg(long)]
    crash: bool,
    /// Instead: place this many reservations of a zdb namespace and a volume (16 per
    /// `reserve_many`), wait until all are Ok and print how long that took. Restarting the agent
    /// afterwards and reading its "start-up reconciliation done … ms" log line gives the
    /// reconcile time for that many reservations.
    #[arg(long, default_value_t = 0)]
    many: usize,
}

async fn submit(
    client: &WsClient,
    chain: ChainContext,
    who: &Pair,
    call: Call,
) -> anyhow::Result<()> {
    let nonce = client.account_next_index(who.public().to_string()).await?;
    let best = client.header(None).await?.context("no best block")?.number;
    let xt = Extrinsic::sign(who, call, nonce, best + 64, 0, chain);
    let hash = xt.hash();
    let mut watch = client
        .submit_and_watch_extrinsic(Bytes(xt.encode()))
        .await?;
    while let Some(status) = watch.next().await {
        match status? {
            TransactionStatus::Finalized(_) => {
                let info = client
                    .extrinsic(hash)
                    .await?
                    .context("final but not indexed")?;
                if !info.success {
                    bail!("call failed: {:?}", info.error);
                }
                return Ok(());
            }
            TransactionStatus::Dropped
            | TransactionStatus::Invalid
            | TransactionStatus::Usurped(_) => {
                bail!("transaction not included")
            }
            _ => {}
        }
    }
    bail!("watch ended")
}

fn stats(name: &str, mut v: Vec<Duration>) {
    v.sort();
    let p = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize].as_millis();
    println!(
        "{name:<34} p50 {:>5} ms   p99 {:>5} ms   max {:>5} ms",
        p(0.5),
        p(0.99),
        v.last().unwrap().as_millis()
    );
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let client = WsClientBuilder::default()
        .build(&args.rpc)
        .await
        .with_context(|| format!("connect {}", args.rpc))?;
    let chain = ChainContext {
        genesis_hash: client.block_hash(Some(0)).await?.context("no genesis")?,
        spec_version: client.runtime_version().await?.spec_version,
    };
    let user = Pair::from_uri(&args.from)?;
    if client
        .twin_by_account(user.public().to_string(), None)
        .await?
        .is_none()
    {
        let name = format!("bench-{}", &user.public().to_string()[..8].to_lowercase());
        submit(
            &client,
            chain,
            &user,
            Call::Twins(twins::Call::CreateTwin {
                name,
                endpoint: String::new(),
            }),
        )
        .await?;
    }
    if args.many > 0 {
        return place_many(&client, chain, &user, args.node_id, args.many).await;
    }
    let deployment = Deployment {
        metadata: "reserve-bench".into(),
        workloads: vec![Workload {
            name: "app".into(),
            spec: WorkloadSpec::Container {
                image: args.image.clone(),
                cpu: 1,
                memory: 32 << 20,
                rootfs_size: 32 << 20,
                entrypoint: "sleep 3600".into(),
                env: vec![],
                mounts: vec![],
                networks: vec![],
                registry_auth: None,
                restart: Default::default(),
                health_check: None,
            },
        }],
    };
    let (mut final_t, mut ok_t, mut total_t) = (Vec::new(), Vec::new(), Vec::new());
    let (mut restarted_t, mut reported_t) = (Vec::new(), Vec::new());
    for i in 0..args.count {
        if args.fresh_pull {
            // The previous run's container may still be going away: force the untag.
            let removed = std::process::Command::new("docker")
                .args(["image", "rm", "-f", &args.image])
                .output()
                .context("docker image rm")?;
            if !removed.status.success() && i > 0 {
                bail!(
                    "cannot remove {}: {}",
                    args.image,
                    String::from_utf8_lossy(&removed.stderr).trim()
                );
            }
        }
        let started = Instant::now();
        submit(
            &client,
            chain,
            &user,
            Call::Reservations(reservations::Call::Reserve {
                node_id: args.node_id,
                deployment: deployment.clone(),
            }),
        )
        .await?;
        let reserved = started.elapsed();
        let id = client
            .reservations_by_owner(user.public().to_string(), None)
            .await?
            .iter()
            .map(|r| r.id)
            .max()
            .context("reservation not found")?;
        let mut heads = client.subscribe_finalized_heads().await?;
        let ok = loop {
            let r = client
                .reservation(id, None)
                .await?
                .context("reservation vanished")?;
            if let Some(bad) = r.results.iter().find(|w| w.state == WorkloadState::Error) {
                bail!("reservation {id} failed: {}", bad.message);
            }
            if !r.results.is_empty() && r.results.iter().all(|w| w.state == WorkloadState::Ok) {
                break r;
            }
            heads.next().await.context("head subscription ended")??;
        };
        let total = started.elapsed();
        if args.crash {
            let (restarted, reported) = crash(&client, &ok).await?;
            restarted_t.push(restarted);
            reported_t.push(reported);
        }
        final_t.push(reserved);
        ok_t.push(total - reserved);
        total_t.push(total);
        eprintln!(
            "#{i}: reservation {id} final in {} ms, Ok after {} ms",
            reserved.as_millis(),
            total.as_millis()
        );
        submit(
            &client,
            chain,
            &user,
            Call::Reservations(reservations::Call::CancelReservation { id }),
        )
        .await?;
    }
    println!(
        "{} reservations of one container on node {}",
        args.count, args.node_id
    );
    stats("submit → reserve final", final_t);
    stats("reserve final → Ok result final", ok_t);
    stats("submit → Ok result final (total)", total_t);
    if args.crash {
        stats("kill → Docker restarted it", restarted_t);
        stats("kill → restart reported, final", reported_t);
    }
    Ok(())
}

/// Kills the process of reservation `r`'s container; how long until Docker runs it again, and
/// until a final head shows the workload Ok with its restart counted.
async fn crash(
    client: &WsClient,
    r: &reservations::Reservation,
) -> anyhow::Result<(Duration, Duration)> {
    let container = r
        .results
        .iter()
        .find_map(|w| match &w.data {
            reservations::ResultData::Container { container_id, .. } => Some(container_id.clone()),
            _ => None,
        })
        .context("no container in the result")?;
    let docker = |args: &[&str]| -> anyhow::Result<String> {
        let out = std::process::Command::new("docker").args(args).output()?;
        if !out.status.success() {
            bail!(
                "docker {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    };
    let mut heads = client.subscribe_finalized_heads().await?;
    // A crash, not a stop: `docker kill` would count as stopped by hand, which Docker's
    // restart policy ignores.
    let pid = docker(&["inspect", "-f", "{{.State.Pid}}", &container])?;
    let killed = Instant::now();
    let status = std::process::Command::new("kill")
        .args(["-9", &pid])
        .status()?;
    if !status.success() {
        bail!("kill -9 {pid} failed");
    }
    let mut restarted = None;
    loop {
        if restarted.is_none() {
            let state = docker(&[
                "inspect",
                "-f",
                "{{.State.Running}} {{.RestartCount}}",
                &container,
            ])?;
            if state != "true 0" && state.starts_with("true") {
                restarted = Some(killed.elapsed());
            }
        }
        let now = client
            .reservation(r.id, None)
            .await?
            .context("reservation vanished")?;
        let counted = now.results.iter().any(|w| {
            w.state == WorkloadState::Ok
                && matches!(w.data, reservations::ResultData::Container { restarts, .. } if restarts >= 1)
        });
        if counted {
            let reported = killed.elapsed();
            return Ok((restarted.unwrap_or(reported), reported));
        }
        if restarted.is_none() {
            // Docker restarts within tens of milliseconds: look again soon, not per block.
            tokio::time::sleep(Duration::from_millis(5)).await;
        } else {
            heads.next().await.context("head subscription ended")??;
        }
    }
}

/// Places `count` zdb + volume reservations and waits until every one is Ok.
async fn place_many(
    client: &WsClient,
    chain: ChainContext,
    user: &Pair,
    node_id: u32,
    count: usize,
) -> anyhow::Result<()> {
    let deployment = Deployment {
        metadata: "reserve-bench many".into(),
        workloads: vec![
            Workload {
                name: "store".into(),
                spec: WorkloadSpec::ZdbNamespace {
                    size: 1 << 20,
                    mode: ZdbMode::Seq,
                    password: None,
                    public: false,
                },
            },
            Workload {
                name: "data".into(),
                spec: WorkloadSpec::Volume { size: 1 << 20 },
            },
        ],
    };
    let started = Instant::now();
    let mut placed = 0;
    while placed < count {
        let batch = (count - placed).min(16);
        let requests = (0..batch)
            .map(|_| ReserveRequest {
                node_id,
                deployment: deployment.clone(),
            })
            .collect();
        submit(
            client,
            chain,
            user,
            Call::Reservations(reservations::Call::ReserveMany { requests }),
        )
        .await?;
        placed += batch;
        eprintln!("placed {placed}/{count}");
    }
    let final_in = started.elapsed();
    loop {
        let all = client.reservations_by_node(node_id, None).await?;
        let ok = all
            .iter()
            .filter(|r| {
                !r.results.is_empty() && r.results.iter().all(|w| w.state == WorkloadState::Ok)
            })
            .count();
        eprintln!("{ok} of {} reservations Ok", all.len());
        if ok >= count {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    println!(
        "{count} zdb+volume reservations: all final in {:.1} s, all Ok in {:.1} s",
        final_in.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
