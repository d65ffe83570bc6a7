//! Measuring the node and proving its capacity on chain.
//!
//! - CRU: logical cores. MRU: `MemTotal` of `/proc/meminfo`.
//! - Disk: the filesystem holding the data directory. It is reported as SSD (SRU), except a
//!   share (`zdb_share`, default 50%) offered as HRU for zdb namespaces: 3Nodes without spinning
//!   disks still serve zdb, and the chain accounts zdb namespaces in HRU.
//! - Used: what the node's live reservations hold (from the chain's own accounting).
//! - Uptime: the host's `/proc/uptime`.
//!
//! A report is sent every period; a failed one is retried with backoff, never more than one in
//! flight, and never back-dated: a period missed while the agent was down stays missed on chain.

use crate::chain::Chain;
use gridchain_rpc_api::GridApiClient;
use gridchain_runtime::{capacity, tfgrid::Resources, Call};
use std::{path::Path, time::Duration};

/// What this machine offers.
pub fn measure(data_dir: &Path, zdb_share_percent: u64) -> anyhow::Result<Resources> {
    let cru = std::thread::available_parallelism()
        .map(|n| n.get() as u64)
        .unwrap_or(1);
    let meminfo = std::fs::read_to_string("/proc/meminfo")?;
    let mem_kib: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no MemTotal in /proc/meminfo"))?;
    let fs = nix::sys::statvfs::statvfs(data_dir)?;
    let disk = fs.blocks() as u64 * fs.fragment_size() as u64;
    let hru = disk / 100 * zdb_share_percent.min(100);
    Ok(Resources {
        cru,
        mru: mem_kib * 1024,
        sru: disk - hru,
        hru,
    })
}

pub fn uptime_seconds() -> u64 {
    std::fs::read_to_string("/proc/uptime")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .next()
                .and_then(|v| v.parse::<f64>().ok())
        })
        .map_or(0, |v| v as u64)
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Sends a capacity proof every `period`, forever.
pub async fn report_loop(chain: &Chain, node_id: u32, measured: Resources, period: Duration) {
    let mut backoff = Duration::from_millis(500);
    loop {
        let used = chain
            .call(|c| async move { c.node_capacity(node_id, None).await })
            .await
            .ok()
            .flatten()
            .map(|cap| cap.reserved)
            .unwrap_or_default();
        let call = Call::Capacity(capacity::Call::ReportCapacity {
            measured,
            used,
            uptime_seconds: uptime_seconds(),
            timestamp_ms: now_ms(),
        });
        match chain.submit(call).await {
            Ok(block) => {
                tracing::debug!(%block, "capacity proof final");
                backoff = Duration::from_millis(500);
                tokio::time::sleep(period).await;
            }
            Err(e) => {
                tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "capacity proof failed");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(period);
            }
        }
    }
}
