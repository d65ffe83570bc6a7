//! `gridchain-bench`: end-to-end throughput and latency of a gridchain node.
//!
//! 1. Funds `--senders` fresh accounts from //Alice and waits until that is final.
//! 2. Signs `--senders × --per-sender` transfers up front (signing is the clients' cost, not the
//!    node's, so it stays out of the measurement).
//! 3. Follows final heads; for each final block, fetches it and records when each of its
//!    extrinsics became final.
//! 4. Submits every transfer with `author_submitExtrinsic` over `--connections` WebSocket
//!    connections in JSON-RPC batches of `--batch`, `--in-flight` batches outstanding per
//!    connection, and records when each was sent.
//! 5. Prints finalized transactions per second (first send → last final) and submit→final
//!    latency percentiles.
//!
//! Run against a release node: `gridnode --dev` in one terminal, then
//! `gridchain-bench --rpc ws://127.0.0.1:9944` in another.

use anyhow::{bail, Context};
use clap::Parser;
use futures::{stream, StreamExt};
use gridchain_primitives::{Bytes, ChainContext, Extrinsic, Hash, Pair};
use gridchain_rpc_api::{
    jsonrpsee::{
        core::{client::ClientT, params::BatchRequestBuilder},
        rpc_params,
        ws_client::{WsClient, WsClientBuilder},
    },
    AuthorApiClient, ChainApiClient, GridchainApiClient, StateApiClient, SystemApiClient,
};
use gridchain_runtime::{balances, Call};
use parity_scale_codec::Encode;
use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

#[derive(Parser)]
#[command(about = "Flood a gridchain node with signed transfers; report final tx/s and latency")]
struct Args {
    #[arg(long, default_value = "ws://127.0.0.1:9944")]
    rpc: String,
    /// Accounts sending in parallel (funded from //Alice first).
    #[arg(long, default_value_t = 1_000)]
    senders: usize,
    /// Transfers per sender.
    #[arg(long, default_value_t = 50)]
    per_sender: u64,
    /// WebSocket connections used for submission.
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// Outstanding requests per connection.
    #[arg(long, default_value_t = 64)]
    in_flight: usize,
    /// Submissions per JSON-RPC batch request (1 = no batching).
    #[arg(long, default_value_t = 50)]
    batch: usize,
}

async fn connect(url: &str) -> anyhow::Result<WsClient> {
    WsClientBuilder::default()
        .max_concurrent_requests(100_000)
        .max_response_size(256 * 1024 * 1024)
        .request_timeout(Duration::from_secs(300))
        .build(url)
        .await
        .with_context(|| format!("cannot connect to {url}"))
}

fn transfer(
    from: &Pair,
    to: gridchain_primitives::AccountId,
    amount: u128,
    nonce: u64,
    chain: ChainContext,
) -> Bytes {
    let call = Call::Balances(balances::Call::Transfer { dest: to, amount });
    Bytes(Extrinsic::sign(from, call, nonce, u64::MAX, 0, chain).encode())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let client = Arc::new(connect(&args.rpc).await?);
    let genesis_hash = client
        .block_hash(Some(0))
        .await?
        .context("node has no genesis")?;
    let chain = ChainContext {
        genesis_hash,
        spec_version: client.runtime_version().await?.spec_version,
    };

    // 1. Fund the senders.
    let alice = Pair::dev("Alice");
    let senders: Vec<Pair> = (0..args.senders)
        .map(|i| Pair::dev(&format!("bench-sender-{i}")))
        .collect();
    let mut alice_nonce = client
        .account_next_index(alice.public().to_string())
        .await?;
    let mut funding = Vec::new();
    for s in &senders {
        // 100 GRID each: enough for every transfer and fee, and 1,000 senders fit in what
        // //Alice has free beside her validator stake.
        let xt = transfer(&alice, s.public(), 100_000_000_000_000, alice_nonce, chain);
        alice_nonce += 1;
        funding.push(
            client
                .submit_extrinsic(xt)
                .await
                .context("funding transfer refused")?,
        );
    }
    eprintln!("funding {} senders…", senders.len());
    let last = *funding.last().context("--senders must be positive")?;
    let deadline = Instant::now() + Duration::from_secs(120);
    while client.extrinsic(last).await?.is_none() {
        if Instant::now() > deadline {
            bail!("funding did not finalize in 120 s");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // 2. Sign everything up front, spread over the cores.
    let total = args.senders * args.per_sender as usize;
    eprintln!("signing {total} transfers…");
    let first_nonces: Vec<u64> = {
        let mut out = Vec::new();
        for s in &senders {
            out.push(client.account_next_index(s.public().to_string()).await?);
        }
        out
    };
    let senders = Arc::new(senders);
    let per_sender = args.per_sender;
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let mut handles = Vec::new();
    for t in 0..threads {
        let senders = senders.clone();
        let first_nonces = first_nonces.clone();
        handles.push(std::thread::spawn(move || {
            let mut out = Vec::new();
            // Interleave senders so consecutive submissions come from different accounts.
            for k in 0..per_sender {
                for (i, s) in senders.iter().enumerate().filter(|(i, _)| i % threads == t) {
                    let dest = senders[(i + 1) % senders.len()].public();
                    let bytes = transfer(s, dest, 1, first_nonces[i] + k, chain);
                    out.push((k, Hash::of(&bytes.0), bytes));
                }
            }
            out
        }));
    }
    let mut txs: Vec<(u64, Hash, Bytes)> = Vec::with_capacity(total);
    for h in handles {
        txs.extend(h.join().expect("signer thread"));
    }
    txs.sort_by_key(|(k, _, _)| *k);

    // 3. Follow final blocks.
    let final_at: Arc<Mutex<HashMap<Hash, Instant>>> = Arc::default();
    let block_sizes: Arc<Mutex<Vec<usize>>> = Arc::default();
    let follower = {
        let client = connect(&args.rpc).await?;
        let final_at = final_at.clone();
        let block_sizes = block_sizes.clone();
        let mut heads = client.subscribe_finalized_heads().await?;
        tokio::spawn(async move {
            while let Some(Ok(header)) = heads.next().await {
                let seen = Instant::now();
                let Ok(Some(block)) = client.block(Some(header.hash())).await else {
                    continue;
                };
                let mut map = final_at.lock().expect("lock");
                for xt in &block.block.extrinsics {
                    map.insert(Hash::of(&xt.0), seen);
                }
                block_sizes
                    .lock()
                    .expect("lock")
                    .push(block.block.extrinsics.len());
            }
        })
    };

    // 4. Submit.
    let clients: Vec<Arc<WsClient>> = {
        let mut v = Vec::new();
        for _ in 0..args.connections {
            v.push(Arc::new(connect(&args.rpc).await?));
        }
        v
    };
    eprintln!(
        "submitting {total} transfers over {} connections…",
        clients.len()
    );
    let sent_at: Arc<Mutex<HashMap<Hash, Instant>>> = Arc::default();
    let started = Instant::now();
    let rejected = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut chunks: Vec<Vec<(Hash, Bytes)>> = vec![Vec::new(); clients.len()];
    for (i, (_, h, b)) in txs.into_iter().enumerate() {
        chunks[i % clients.len()].push((h, b));
    }
    let mut submitters = Vec::new();
    for (client, chunk) in clients.iter().cloned().zip(chunks) {
        let sent_at = sent_at.clone();
        let rejected = rejected.clone();
        let in_flight = args.in_flight;
        let batch = args.batch.max(1);
        submitters.push(tokio::spawn(async move {
            let batches: Vec<Vec<(Hash, Bytes)>> = chunk.chunks(batch).map(<[_]>::to_vec).collect();
            stream::iter(batches)
                .for_each_concurrent(in_flight, |txs| {
                    let client = client.clone();
                    let sent_at = sent_at.clone();
                    let rejected = rejected.clone();
                    async move {
                        let mut request = BatchRequestBuilder::new();
                        for (hash, bytes) in &txs {
                            sent_at.lock().expect("lock").insert(*hash, Instant::now());
                            request
                                .insert("author_submitExtrinsic", rpc_params![bytes])
                                .expect("serializable");
                        }
                        let errors: Vec<String> = match client.batch_request::<Hash>(request).await
                        {
                            Ok(response) => response
                                .into_iter()
                                .filter_map(|r| r.err())
                                .map(|e| e.to_string())
                                .collect(),
                            Err(e) => vec![e.to_string(); txs.len()],
                        };
                        for e in errors {
                            if rejected.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < 5 {
                                eprintln!("rejected: {e}");
                            }
                        }
                    }
                })
                .await
        }));
    }
    for s in submitters {
        s.await?;
    }
    let submitted_in = started.elapsed();
    let rejected = rejected.load(std::sync::atomic::Ordering::Relaxed);
    eprintln!(
        "submitted in {:.2} s ({rejected} rejected); waiting for finality…",
        submitted_in.as_secs_f64()
    );

    // 5. Wait for all accepted transfers to be final, then report.
    let expected = total - rejected;
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let done = {
            let f = final_at.lock().expect("lock");
            sent_at
                .lock()
                .expect("lock")
                .keys()
                .filter(|h| f.contains_key(h))
                .count()
        };
        if done >= expected {
            break;
        }
        if Instant::now() > deadline {
            bail!("only {done} of {expected} transfers final after 600 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    follower.abort();
    let final_at = final_at.lock().expect("lock");
    let sent_at = sent_at.lock().expect("lock");
    let mut latencies: Vec<Duration> = sent_at
        .iter()
        .filter_map(|(h, sent)| final_at.get(h).map(|f| f.saturating_duration_since(*sent)))
        .collect();
    latencies.sort();
    let last_final = sent_at
        .keys()
        .filter_map(|h| final_at.get(h))
        .max()
        .copied()
        .unwrap_or(started);
    let span = last_final.duration_since(started).as_secs_f64();
    let sizes: Vec<usize> = block_sizes
        .lock()
        .expect("lock")
        .iter()
        .copied()
        .filter(|n| *n > 0)
        .collect();
    println!(
        "transfers         {expected} final ({rejected} rejected) from {} senders",
        args.senders
    );
    println!(
        "submission        {:.0} tx/s accepted by RPC ({:.2} s)",
        expected as f64 / submitted_in.as_secs_f64(),
        submitted_in.as_secs_f64()
    );
    println!(
        "finalized         {:.0} tx/s (first submit → last final: {span:.2} s)",
        expected as f64 / span
    );
    println!(
        "submit → final    p50 {} ms, p99 {} ms, max {} ms",
        percentile(&latencies, 0.50).as_millis(),
        percentile(&latencies, 0.99).as_millis(),
        latencies.last().copied().unwrap_or_default().as_millis()
    );
    println!(
        "blocks            {} non-empty, largest {} tx, mean {:.0} tx",
        sizes.len(),
        sizes.iter().max().copied().unwrap_or(0),
        sizes.iter().sum::<usize>() as f64 / sizes.len().max(1) as f64
    );
    Ok(())
}
