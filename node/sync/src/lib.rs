//! # gridchain sync: catch-up in bulk
//!
//! A node that starts behind its peers (new, or restarted after a while) fetches the final blocks
//! it misses with their commit certificates, verifies and executes them, and only then starts
//! consensus. Malachite's own value sync would do the same one block per consensus height (a
//! WAL write and a round of engine messages each); this path imports a run of blocks at the cost
//! of executing them, and remains the tool for small gaps while running.
//!
//! ```text
//! peers ─ Status ─▶ target = highest best block among peers
//!        │
//!        ├─ segment tasks (≤ SEGMENTS_IN_FLIGHT): Blocks{from, max} from one peer; each
//!        │  response (a chunk, ≤ 1 MiB) ─▶ check_signatures (blocking thread) while the rest of
//!        │  the segment is already being fetched
//!        ▼
//! in chain order ─▶ Importer::import each block (blocking thread) ─▶ one fsync per chunk
//! ```
//!
//! Two cores work at once: one checks the signatures of chunks ahead while the other executes
//! and commits the current one. A peer whose blocks or certificates are wrong (bad signature,
//! a set that is not the height's, a state root execution does not reproduce, blocks other than
//! asked for) is banned for [`BAN`]; the segment is asked of another peer, or, when the fault
//! shows only at import, the whole run restarts from the best block.
//!
//! Blocks are committed without fsync as they are imported and flushed once per chunk, and
//! once more before consensus starts: a validator never votes on top of blocks a power cut could
//! take back.

#[cfg(any(test, feature = "fixtures"))]
pub mod fixtures;
pub mod import;
pub mod protocol;
#[cfg(test)]
mod tests;

use gridchain_network::{Network, PeerId};
use import::{check_signatures, CheckedBlock, ImportError, Importer, KnownSigners};
use parity_scale_codec::Encode;
use protocol::{SyncRequest, SyncResponse, MAX_BLOCKS_PER_REQUEST};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Blocks per segment: the range asked of one peer (it answers in chunks of ≤ 1 MiB).
const SEGMENT_BLOCKS: u64 = MAX_BLOCKS_PER_REQUEST as u64;
/// Segments fetched and checked ahead of the one being imported.
const SEGMENTS_IN_FLIGHT: usize = 4;
/// A peer that sent bad blocks is refused this long.
pub const BAN: Duration = Duration::from_secs(300);
/// Behind by no more than this, consensus's own sync finishes the job.
const CLOSE_ENOUGH: u64 = 2;
/// Rounds of status → fetch → import before giving the rest to consensus's sync.
const MAX_ROUNDS: usize = 8;
/// How long a peer may take to answer a status request.
const STATUS_TIMEOUT: Duration = Duration::from_secs(5);

/// Catch-up progress, for `system_health` and metrics.
#[derive(Debug, Default)]
pub struct SyncStatus {
    syncing: AtomicBool,
    target: AtomicU64,
    imported: AtomicU64,
    /// Time the importer waited for the next segment (fetch and signature checks behind).
    waited_us: AtomicU64,
    /// Time spent executing and committing.
    importing_us: AtomicU64,
}

impl SyncStatus {
    pub fn is_syncing(&self) -> bool {
        self.syncing.load(Ordering::Relaxed)
    }
    /// Highest best block peers reported in the last round.
    pub fn target(&self) -> u64 {
        self.target.load(Ordering::Relaxed)
    }
    /// Blocks imported by catch-up since the node started.
    pub fn imported(&self) -> u64 {
        self.imported.load(Ordering::Relaxed)
    }
}

/// What a catch-up did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CatchUpReport {
    pub imported: u64,
    pub best: u64,
    pub banned: Vec<PeerId>,
}

/// Imports blocks from the connected peers until within [`CLOSE_ENOUGH`] of the highest best
/// block they report. Waits up to `wait_for_peers` for a first peer when `expect_peers`. An error
/// is this node's own failure (its database); peers' faults only ban them.
pub async fn catch_up(
    network: &Network,
    importer: Arc<Importer>,
    status: &SyncStatus,
    expect_peers: bool,
    wait_for_peers: Duration,
) -> anyhow::Result<CatchUpReport> {
    let started = Instant::now();
    if expect_peers {
        let deadline = Instant::now() + wait_for_peers;
        while network.peers() == 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let mut report = CatchUpReport {
        best: best_number(&importer)?,
        ..Default::default()
    };
    let bans = Bans {
        network: network.handle(),
        banned: Arc::default(),
    };
    for _ in 0..MAX_ROUNDS {
        let sources = peer_statuses(network).await;
        let Some(target) = sources.iter().map(|(_, best)| *best).max() else {
            break;
        };
        status.target.store(target, Ordering::Relaxed);
        if target <= report.best + CLOSE_ENOUGH {
            break;
        }
        status.syncing.store(true, Ordering::Relaxed);
        tracing::info!(
            best = report.best,
            target,
            peers = sources.len(),
            "catching up"
        );
        let outcome =
            import_range(&bans, &importer, status, report.best + 1, target, sources).await;
        let best = best_number(&importer)?;
        report.imported += best - report.best;
        report.best = best;
        match outcome {
            Ok(()) => {}
            Err(RangeError::Local(e)) => {
                status.syncing.store(false, Ordering::Relaxed);
                return Err(e);
            }
            Err(RangeError::Peer { peer, reason }) => bans.ban(peer, &reason),
            // Someone failed to serve a segment: ask everyone again.
            Err(RangeError::NoPeer) => {}
        }
    }
    report.banned = bans.banned();
    let importer_for_sync = importer.clone();
    tokio::task::spawn_blocking(move || importer_for_sync.storage.sync_to_disk())
        .await
        .map_err(|e| anyhow::anyhow!("sync task failed: {e}"))??;
    status.syncing.store(false, Ordering::Relaxed);
    if report.imported > 0 {
        let secs = started.elapsed().as_secs_f64();
        tracing::info!(
            imported = report.imported,
            best = report.best,
            secs = format!("{secs:.1}"),
            blocks_per_s = (report.imported as f64 / secs) as u64,
            waited_ms = status.waited_us.load(Ordering::Relaxed) / 1_000,
            importing_ms = status.importing_us.load(Ordering::Relaxed) / 1_000,
            "caught up"
        );
    }
    Ok(report)
}

fn best_number(importer: &Importer) -> anyhow::Result<u64> {
    Ok(importer.storage.best_header()?.map_or(0, |h| h.number))
}

/// The best block of every connected peer that answers in time.
async fn peer_statuses(network: &Network) -> Vec<(PeerId, u64)> {
    let asks: Vec<_> = network
        .connected_peers()
        .into_iter()
        .map(|peer| {
            let network = network.handle();
            tokio::spawn(async move {
                let answer = tokio::time::timeout(
                    STATUS_TIMEOUT,
                    network.request(peer, SyncRequest::Status.encode()),
                )
                .await;
                match answer {
                    Ok(Ok(bytes)) => match SyncResponse::decode_untrusted(&bytes) {
                        Some(SyncResponse::Status { best }) => Some((peer, best)),
                        _ => None,
                    },
                    _ => None,
                }
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for ask in asks {
        if let Ok(Some(status)) = ask.await {
            statuses.push(status);
        }
    }
    statuses
}

enum RangeError {
    /// `peer` sent something wrong.
    Peer {
        peer: PeerId,
        reason: String,
    },
    /// No peer could serve the next segment.
    NoPeer,
    Local(anyhow::Error),
}

/// Bans peers and remembers whom.
#[derive(Clone)]
struct Bans {
    network: gridchain_network::NetworkHandle,
    banned: Arc<Mutex<Vec<PeerId>>>,
}

impl Bans {
    fn ban(&self, peer: PeerId, reason: &str) {
        self.network.ban(peer, BAN, reason);
        if let Ok(mut banned) = self.banned.lock() {
            if !banned.contains(&peer) {
                banned.push(peer);
            }
        }
    }

    fn banned(&self) -> Vec<PeerId> {
        self.banned.lock().map(|b| b.clone()).unwrap_or_default()
    }
}

/// Part of a segment as one peer's response brought it, signatures checked, and the task
/// fetching the rest of the segment (already running) if the response stopped short.
struct Chunk {
    peer: PeerId,
    blocks: Vec<CheckedBlock>,
    rest: Option<tokio::task::JoinHandle<Result<Chunk, RangeError>>>,
}

type ChunkTask = tokio::task::JoinHandle<Result<Chunk, RangeError>>;

/// Fetches `from ..= to` in segments (several in flight) and imports them in order, chunk by
/// chunk as their signatures are checked.
async fn import_range(
    bans: &Bans,
    importer: &Arc<Importer>,
    status: &SyncStatus,
    from: u64,
    to: u64,
    sources: Vec<(PeerId, u64)>,
) -> Result<(), RangeError> {
    let sources = Arc::new(sources);
    let mut in_flight: VecDeque<ChunkTask> = VecDeque::new();
    let mut next = from;
    let mut turn = 0usize;
    let result = loop {
        while in_flight.len() < SEGMENTS_IN_FLIGHT && next <= to {
            let last = (next + SEGMENT_BLOCKS - 1).min(to);
            in_flight.push_back(tokio::spawn(fetch_segment(
                bans.clone(),
                importer.storage.clone(),
                importer.chain,
                sources.clone(),
                turn,
                next,
                last,
            )));
            turn += 1;
            next = last + 1;
        }
        let Some(task) = in_flight.pop_front() else {
            break Ok(());
        };
        let waiting = Instant::now();
        let awaited = task.await;
        status
            .waited_us
            .fetch_add(waiting.elapsed().as_micros() as u64, Ordering::Relaxed);
        let Chunk { peer, blocks, rest } = match awaited {
            Ok(Ok(chunk)) => chunk,
            Ok(Err(e)) => break Err(e),
            Err(e) => {
                break Err(RangeError::Local(anyhow::anyhow!(
                    "segment task failed: {e}"
                )))
            }
        };
        // The rest of this segment comes before the next segments.
        if let Some(rest) = rest {
            in_flight.push_front(rest);
        }
        let worker = importer.clone();
        let importing = Instant::now();
        let imported = tokio::task::spawn_blocking(move || -> Result<u64, ImportError> {
            let mut count = 0;
            for block in blocks {
                worker.import(block)?;
                count += 1;
            }
            worker.storage.sync_to_disk().map_err(anyhow::Error::from)?;
            Ok(count)
        })
        .await
        .map_err(|e| RangeError::Local(anyhow::anyhow!("import task failed: {e}")))?;
        status
            .importing_us
            .fetch_add(importing.elapsed().as_micros() as u64, Ordering::Relaxed);
        match imported {
            Ok(count) => {
                status.imported.fetch_add(count, Ordering::Relaxed);
            }
            Err(ImportError::Peer { number, reason }) => {
                break Err(RangeError::Peer {
                    peer,
                    reason: format!("block {number}: {reason}"),
                })
            }
            Err(ImportError::Local(e)) => break Err(RangeError::Local(e)),
        }
    };
    for task in in_flight {
        task.abort();
    }
    result
}

/// Fetches the first chunk of blocks `first ..= last` from one source (trying the others in
/// turn when one fails), starts fetching the rest at once if the response stopped short, and
/// checks the chunk's signatures.
fn fetch_segment(
    bans: Bans,
    storage: Arc<gridchain_storage::Storage>,
    chain: gridchain_primitives::ChainContext,
    sources: Arc<Vec<(PeerId, u64)>>,
    turn: usize,
    first: u64,
    last: u64,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Chunk, RangeError>> + Send>> {
    Box::pin(async move {
        let candidates: Vec<PeerId> = (0..sources.len())
            .map(|i| sources[(turn + i) % sources.len()])
            .filter(|(_, best)| *best >= last)
            .map(|(peer, _)| peer)
            .collect();
        for peer in candidates {
            let blocks = match fetch_from(&bans.network, peer, first, last).await {
                Ok(blocks) => blocks,
                Err(FetchError::Fault(reason)) => {
                    bans.ban(peer, &reason);
                    continue;
                }
                Err(FetchError::Unavailable(reason)) => {
                    tracing::debug!(%peer, %reason, first, last, "peer could not serve blocks");
                    continue;
                }
            };
            let got_last = first + blocks.len() as u64 - 1;
            let rest = (got_last < last).then(|| {
                tokio::spawn(fetch_segment(
                    bans.clone(),
                    storage.clone(),
                    chain,
                    sources.clone(),
                    turn,
                    got_last + 1,
                    last,
                ))
            });
            let state = storage.clone();
            let check = move || {
                let known = KnownSigners::at_best(&state)?;
                check_signatures(chain, &known, blocks)
            };
            match tokio::task::spawn_blocking(check).await {
                Ok(Ok(blocks)) => return Ok(Chunk { peer, blocks, rest }),
                Ok(Err(ImportError::Peer { number, reason })) => {
                    bans.ban(peer, &format!("block {number}: {reason}"))
                }
                Ok(Err(ImportError::Local(e))) => return Err(RangeError::Local(e)),
                Err(e) => {
                    return Err(RangeError::Local(anyhow::anyhow!(
                        "signature task failed: {e}"
                    )))
                }
            }
            if let Some(rest) = rest {
                rest.abort();
            }
        }
        Err(RangeError::NoPeer)
    })
}

enum FetchError {
    /// The peer answered with something it should not have.
    Fault(String),
    /// No answer (timeout, disconnect) or a refusal: try someone else.
    Unavailable(String),
}

/// One request for blocks `first ..= last` (the peer may send fewer): the blocks from `first`
/// on, in order.
async fn fetch_from(
    network: &gridchain_network::NetworkHandle,
    peer: PeerId,
    first: u64,
    last: u64,
) -> Result<Vec<protocol::FinalBlock>, FetchError> {
    let request = SyncRequest::Blocks {
        from: first,
        max: (last - first + 1).min(SEGMENT_BLOCKS) as u32,
    };
    let bytes = network
        .request(peer, request.encode())
        .await
        .map_err(|e| FetchError::Unavailable(e.to_string()))?;
    let blocks = match SyncResponse::decode_untrusted(&bytes) {
        Some(SyncResponse::Blocks(blocks)) => blocks,
        Some(SyncResponse::Refused(reason)) => return Err(FetchError::Unavailable(reason)),
        Some(SyncResponse::Status { .. }) | None => {
            return Err(FetchError::Fault(
                "undecodable or unexpected response".into(),
            ))
        }
    };
    if blocks.is_empty() {
        // It said its best block was at least `last`.
        return Err(FetchError::Fault(format!("sent no blocks from {first}")));
    }
    for (expected, block) in (first..=last).zip(&blocks) {
        if block.block.header.number != expected {
            return Err(FetchError::Fault(format!(
                "sent block {} when {expected} was next",
                block.block.header.number
            )));
        }
    }
    if blocks.len() as u64 > last - first + 1 {
        return Err(FetchError::Fault(format!(
            "sent {} blocks when at most {} were asked for",
            blocks.len(),
            last - first + 1
        )));
    }
    Ok(blocks)
}
