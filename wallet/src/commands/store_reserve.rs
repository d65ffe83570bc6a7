//! `grid store reserve`: reserves the zdb namespaces of a Zero-Store backend config on the grid.
//!
//! 1. Lists the nodes that are Up with at least `--size` free HRU (`grid_listNodes`, paged).
//! 2. Picks `k + m` of them ([`select_nodes`]): one per farm first, then one per node, so that
//!    losing a farm or a node loses as few shards as possible. Fewer distinct nodes than
//!    `k + m` is refused unless `--allow-shared-nodes`.
//! 3. Generates a random password per namespace, seals it to its node's account (for this
//!    chain, the signer as owner, that node and namespace workload: see `deployment::SealTarget`),
//!    and reserves
//!    every namespace (seq mode, private) in one `reserve_many` transaction: all or none.
//! 4. Follows the reservations until every node reports Ok (a workload error is exit 5 with the
//!    node's message), then writes the backend config (mode 0600) that `grid store put/get/…`
//!    read: the address and namespace of each result, the passwords, `k` and `m`, plus the node,
//!    farm and reservation of each namespace for reference.

use crate::{
    accounts::{resolve_signer, KeystoreLocation},
    deployment::{format_size, parse_size, SealTarget},
    failure::Failure,
    output::{OutputFormat, Progress, Rendered},
    rpc::{Node, NodeClient},
};
use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use gridchain_primitives::{seal::SealPurpose, AccountId, Bytes, Pair};
use gridchain_rpc_api::{grid::MAX_PAGE, GridApiClient, NodeFilter};
use gridchain_runtime::{
    reservations::{
        self, Deployment, ReservationId, ReservationState, ReserveRequest, ResultData, Workload,
        WorkloadSpec, WorkloadState, ZdbMode, MAX_BATCH,
    },
    tfgrid::{FarmId, NodeId, NodeStatus, Resources},
    Call, Event,
};
use serde::Serialize;
use serde_json::json;
use std::{
    collections::BTreeMap,
    io::{IsTerminal, Write},
    path::{Path, PathBuf},
    time::{Duration, Instant},
};
use zeroize::Zeroizing;

use super::submit::{genesis_hash, submit_call, transaction_json};

/// How often the reservations are read while waiting for the nodes.
const POLL_INTERVAL: Duration = Duration::from_millis(500);
/// Length of a generated namespace password (alphanumeric: ~5.95 bits each, ~190 bits).
const PASSWORD_LEN: usize = 32;

#[derive(Debug, Args)]
pub struct StoreReserveArgs {
    /// Data shards k: any k of the k + m namespaces are enough to read a file back.
    #[arg(long, value_name = "K")]
    pub data: u16,
    /// Parity shards m: this many namespaces may be lost.
    #[arg(long, value_name = "M")]
    pub parity: u16,
    /// Size of each namespace (64MiB, 1GiB, …); each node must have this much free HRU.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub size: u64,
    /// Signing key (the owner, who needs a twin and pays): key name or secret URI.
    #[arg(long, value_name = "NAME|SECRET_URI")]
    pub from: Option<String>,
    /// When fewer than k + m distinct nodes qualify, put several namespaces on one node. This
    /// loses failure independence: one node going down then takes several shards with it.
    #[arg(long)]
    pub allow_shared_nodes: bool,
    /// Give up waiting for the nodes (exit 1) after this many seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 300)]
    pub timeout: u64,
    /// Replace an existing backend config (its namespaces stay reserved; files stored through
    /// it cannot be read without it).
    #[arg(long)]
    pub force: bool,
}

/// A node that qualifies: Up, with `free_hru` ≥ the namespace size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate {
    pub node_id: NodeId,
    pub farm_id: FarmId,
    pub free_hru: u64,
}

/// Picks `count` placements (node ids, a node repeated only with `allow_shared`) among
/// `candidates` for namespaces of `size` bytes.
///
/// Distinct farms first: farms take turns (the farm with the most free space first), each
/// giving its node with the most free space not yet used; when every farm has given all its
/// nodes, and only with `allow_shared`, nodes take further namespaces round-robin as long as
/// their free space holds them.
pub fn select_nodes(
    candidates: &[Candidate],
    count: usize,
    size: u64,
    allow_shared: bool,
) -> Result<Vec<Candidate>> {
    if count == 0 {
        bail!("nothing to reserve: k + m is 0");
    }
    let mut nodes: Vec<Candidate> = candidates
        .iter()
        .filter(|c| c.free_hru >= size)
        .copied()
        .collect();
    nodes.sort_by(|a, b| b.free_hru.cmp(&a.free_hru).then(a.node_id.cmp(&b.node_id)));
    nodes.dedup_by_key(|c| c.node_id);
    // farms in order of their best node; each farm's nodes best first
    let mut farms: Vec<(FarmId, Vec<Candidate>)> = Vec::new();
    for node in &nodes {
        match farms.iter_mut().find(|(farm, _)| *farm == node.farm_id) {
            Some((_, list)) => list.push(*node),
            None => farms.push((node.farm_id, vec![*node])),
        }
    }
    let mut picked: Vec<Candidate> = Vec::with_capacity(count);
    let mut round = 0;
    while picked.len() < count {
        let mut any = false;
        for (_, list) in &farms {
            if let Some(node) = list.get(round) {
                any = true;
                if picked.len() < count {
                    picked.push(*node);
                }
            }
        }
        if !any {
            break;
        }
        round += 1;
    }
    if picked.len() == count {
        return Ok(picked);
    }
    let distinct = picked.len();
    if !allow_shared {
        bail!(
            "only {distinct} node{} Up with {} free HRU, but {count} namespaces need {count} distinct nodes \
             (use fewer shards, a smaller --size, or --allow-shared-nodes, which loses failure independence)",
            if distinct == 1 { " is" } else { "s are" },
            format_size(size)
        );
    }
    // several namespaces per node: round-robin over the distinct nodes while space lasts
    let mut remaining: Vec<u64> = picked.iter().map(|c| c.free_hru - size).collect();
    let distinct_nodes = picked.clone();
    while picked.len() < count {
        let mut placed = false;
        for (i, node) in distinct_nodes.iter().enumerate() {
            if picked.len() < count && remaining[i] >= size {
                remaining[i] -= size;
                picked.push(*node);
                placed = true;
            }
        }
        if !placed {
            bail!(
                "the {distinct} qualifying node{} can hold only {} namespaces of {}, {count} needed",
                if distinct == 1 { "" } else { "s" },
                picked.len(),
                format_size(size)
            );
        }
    }
    Ok(picked)
}

/// `grid store reserve`, checked locally.
pub struct StoreReserve {
    signer: Pair,
    data: u16,
    parity: u16,
    size: u64,
    allow_shared: bool,
    timeout: Duration,
    config_path: PathBuf,
}

impl StoreReserve {
    pub fn prepare(
        args: StoreReserveArgs,
        config_path: PathBuf,
        keystore: &KeystoreLocation,
    ) -> Result<Self> {
        if args.data == 0 {
            bail!("--data must be at least 1");
        }
        let total = usize::from(args.data) + usize::from(args.parity);
        if total > MAX_BATCH {
            bail!(
                "--data + --parity is {total}, but one reserve_many transaction holds at most {MAX_BATCH} namespaces"
            );
        }
        // the same limits `grid store put` applies to the config
        zstor::codec::CodecParams {
            data_shards: args.data,
            parity_shards: args.parity,
            chunk_size: zstor::codec::DEFAULT_CHUNK_SIZE,
            zstd_level: zstor::codec::DEFAULT_ZSTD_LEVEL,
        }
        .validate()
        .map_err(|e| anyhow!("invalid --data/--parity: {e}"))?;
        if args.size == 0 {
            bail!("--size must be more than 0 bytes");
        }
        if config_path.exists() && !args.force {
            bail!(
                "{} already exists: files stored through it need its passwords; choose another --config, or pass --force to replace it",
                config_path.display()
            );
        }
        Ok(StoreReserve {
            signer: resolve_signer(args.from.as_deref(), keystore)?,
            data: args.data,
            parity: args.parity,
            size: args.size,
            allow_shared: args.allow_shared_nodes,
            timeout: Duration::from_secs(args.timeout),
            config_path,
        })
    }

    pub async fn execute<C: NodeClient>(
        self,
        node: &Node<'_, C>,
        format: OutputFormat,
    ) -> Result<Rendered> {
        let live = format == OutputFormat::Text && std::io::stderr().is_terminal();
        let count = usize::from(self.data) + usize::from(self.parity);
        let candidates = list_candidates(node, self.size).await?;
        let picked = select_nodes(&candidates, count, self.size, self.allow_shared)?;
        let farms: std::collections::BTreeSet<FarmId> = picked.iter().map(|c| c.farm_id).collect();
        let nodes: std::collections::BTreeSet<NodeId> = picked.iter().map(|c| c.node_id).collect();
        if live {
            eprintln!(
                "placing {count} namespaces of {} on {} nodes in {} farms",
                format_size(self.size),
                nodes.len(),
                farms.len()
            );
        }

        // one password per namespace, sealed to its node
        let mut accounts: BTreeMap<NodeId, AccountId> = BTreeMap::new();
        for node_id in &nodes {
            let info = node
                .read(GridApiClient::node(node.client, *node_id, None))
                .await?
                .ok_or_else(|| anyhow!("node {node_id} disappeared"))?;
            accounts.insert(*node_id, info.node.account);
        }
        let genesis = genesis_hash(node).await?;
        let mut passwords: Vec<Zeroizing<String>> = Vec::with_capacity(count);
        let mut requests = Vec::with_capacity(count);
        for (i, c) in picked.iter().enumerate() {
            let password = random_password();
            let account = accounts
                .get(&c.node_id)
                .ok_or_else(|| anyhow!("node {} disappeared", c.node_id))?;
            let name = workload_name(i);
            let sealed = SealTarget {
                genesis,
                owner: self.signer.public(),
                node: *account,
            }
            .seal(&name, SealPurpose::ZdbPassword, password.as_bytes())
            .map_err(|e| anyhow!("cannot seal the password to node {}: {e}", c.node_id))?;
            passwords.push(password);
            requests.push(ReserveRequest {
                node_id: c.node_id,
                deployment: Deployment {
                    metadata: format!("zstor {}+{} shard {i}", self.data, self.parity),
                    workloads: vec![Workload {
                        name,
                        spec: WorkloadSpec::ZdbNamespace {
                            size: self.size,
                            mode: ZdbMode::Seq,
                            password: Some(Bytes(sealed)),
                            public: false,
                        },
                    }],
                },
            });
        }

        let mut progress = Progress::new(format);
        let call = Call::Reservations(reservations::Call::ReserveMany { requests });
        let info = submit_call(node, &self.signer, call, &mut progress).await?;
        let ids: Vec<ReservationId> = info
            .events
            .iter()
            .filter_map(|record| match &record.event {
                Event::Reservations(reservations::Event::Reserved { id, .. }) => Some(*id),
                _ => None,
            })
            .collect();
        if ids.len() != count {
            bail!(
                "transaction {} reserved {} namespaces, {count} expected",
                info.hash,
                ids.len()
            );
        }
        if live {
            eprintln!(
                "reserved {} in block #{}; waiting for the nodes",
                ids_text(&ids),
                info.block_number
            );
        }

        let results = wait_all_ok(node, &ids, self.timeout, live).await?;

        let backends: Vec<ReservedBackend> = picked
            .iter()
            .zip(&ids)
            .zip(&results)
            .zip(&passwords)
            .map(
                |(((c, id), (address, namespace)), password)| ReservedBackend {
                    address: address.clone(),
                    namespace: namespace.clone(),
                    password: password.to_string(),
                    node_id: c.node_id,
                    farm_id: c.farm_id,
                    reservation_id: *id,
                },
            )
            .collect();
        let config = ReservedConfig {
            version: zstor::config::CONFIG_VERSION,
            data_shards: self.data,
            parity_shards: self.parity,
            namespace_size: self.size,
            owner: self.signer.public().to_string(),
            backends,
        };
        write_config(&self.config_path, &config).with_context(|| {
            format!(
                "namespaces reserved ({}) but the config could not be written",
                ids_text(&ids)
            )
        })?;

        let mut text = format!(
            "{count} namespaces of {} ({} data + {} parity) on {} nodes in {} farms{}\n",
            format_size(self.size),
            self.data,
            self.parity,
            nodes.len(),
            farms.len(),
            if nodes.len() < count {
                " (shared nodes: one node down loses several shards)"
            } else {
                ""
            }
        );
        for b in &config.backends {
            text.push_str(&format!(
                "  node {:<5} farm {:<5} reservation {:<6} {}/{}\n",
                b.node_id, b.farm_id, b.reservation_id, b.address, b.namespace
            ));
        }
        text.push_str(&format!(
            "transaction {} in block #{}\nbackend config written to {} (mode 0600, holds the passwords)",
            info.hash,
            info.block_number,
            self.config_path.display()
        ));
        let json = json!({
            "config": self.config_path.display().to_string(),
            "dataShards": self.data,
            "parityShards": self.parity,
            "namespaceSize": self.size,
            "distinctNodes": nodes.len(),
            "distinctFarms": farms.len(),
            "backends": config.backends.iter().map(|b| json!({
                "address": b.address,
                "namespace": b.namespace,
                "nodeId": b.node_id,
                "farmId": b.farm_id,
                "reservationId": b.reservation_id,
            })).collect::<Vec<_>>(),
            "transaction": transaction_json(&info),
        });
        Ok(Rendered::new(json, text))
    }
}

fn workload_name(i: usize) -> String {
    format!("zstor-{i}")
}

fn ids_text(ids: &[ReservationId]) -> String {
    let list: Vec<String> = ids.iter().map(ToString::to_string).collect();
    format!("reservations {}", list.join(", "))
}

fn random_password() -> Zeroizing<String> {
    use rand::{distr::Alphanumeric, Rng};
    Zeroizing::new(
        rand::rng()
            .sample_iter(&Alphanumeric)
            .take(PASSWORD_LEN)
            .map(char::from)
            .collect(),
    )
}

/// Every node that is Up with at least `size` free HRU, all pages.
async fn list_candidates<C: NodeClient>(node: &Node<'_, C>, size: u64) -> Result<Vec<Candidate>> {
    let mut out = Vec::new();
    let mut start: Option<NodeId> = None;
    loop {
        let filter = NodeFilter {
            status: Some(NodeStatus::Up),
            min_free: Some(Resources {
                hru: size,
                ..Default::default()
            }),
            start,
            limit: Some(MAX_PAGE),
            ..Default::default()
        };
        let page = node
            .read(GridApiClient::list_nodes(node.client, filter, None))
            .await?;
        let full = page.len() >= MAX_PAGE as usize;
        let last = page.last().map(|n| n.node.id);
        out.extend(
            page.into_iter()
                .filter(|n| n.status == NodeStatus::Up)
                .map(|n| Candidate {
                    node_id: n.node.id,
                    farm_id: n.node.farm_id,
                    free_hru: n.capacity.free.hru,
                }),
        );
        match last {
            Some(id) if full => match id.checked_add(1) {
                Some(next) => start = Some(next),
                None => break,
            },
            _ => break,
        }
    }
    Ok(out)
}

/// Waits until the single workload of every reservation in `ids` is Ok; returns each one's
/// (address, namespace). A workload error or a deleted reservation is exit 5.
async fn wait_all_ok<C: NodeClient>(
    node: &Node<'_, C>,
    ids: &[ReservationId],
    timeout: Duration,
    live: bool,
) -> Result<Vec<(String, String)>> {
    let started = Instant::now();
    let mut done: Vec<Option<(String, String)>> = vec![None; ids.len()];
    let mut shown = usize::MAX;
    loop {
        for (i, id) in ids.iter().enumerate() {
            if done[i].is_some() {
                continue;
            }
            let r = node
                .read(GridApiClient::reservation(node.client, *id, None))
                .await?
                .ok_or_else(|| anyhow!("reservation {id} disappeared"))?;
            let report = || {
                Box::new(Rendered::new(
                    serde_json::to_value(&r).unwrap_or_default(),
                    "",
                ))
            };
            let others = || {
                let rest: Vec<ReservationId> = ids.iter().copied().filter(|x| x != id).collect();
                if rest.is_empty() {
                    String::new()
                } else {
                    format!(
                        "; the other {} are still reserved (grid reservation cancel ID)",
                        ids_text(&rest)
                    )
                }
            };
            if let ReservationState::Deleted { .. } = r.state {
                return Err(Failure::WorkloadFailed {
                    summary: format!(
                        "reservation {id} on node {} was deleted before it was ready{}",
                        r.node_id,
                        others()
                    ),
                    report: report(),
                }
                .into());
            }
            let name = workload_name(i);
            let Some(result) = r.results.iter().find(|res| res.name == name) else {
                continue;
            };
            match result.state {
                WorkloadState::Ok => {
                    let ResultData::Zdb {
                        namespace,
                        endpoints,
                    } = &result.data
                    else {
                        bail!(
                            "node {} reported reservation {id} Ok without a zdb namespace",
                            r.node_id
                        );
                    };
                    let Some(address) = endpoints.first() else {
                        bail!(
                            "node {} reported namespace {namespace} of reservation {id} without an endpoint",
                            r.node_id
                        );
                    };
                    done[i] = Some((address.clone(), namespace.clone()));
                }
                WorkloadState::Error => {
                    return Err(Failure::WorkloadFailed {
                        summary: format!(
                            "namespace of reservation {id} failed on node {}: {}{}",
                            r.node_id,
                            if result.message.is_empty() {
                                "(no message)"
                            } else {
                                &result.message
                            },
                            others()
                        ),
                        report: report(),
                    }
                    .into());
                }
                WorkloadState::Paused
                | WorkloadState::Deleted
                | WorkloadState::Pulling
                | WorkloadState::Unhealthy => {}
            }
        }
        let ready = done.iter().filter(|d| d.is_some()).count();
        if live && ready != shown {
            eprintln!("  {ready} of {} namespaces ready", ids.len());
            shown = ready;
        }
        if ready == ids.len() {
            return Ok(done.into_iter().flatten().collect());
        }
        if started.elapsed() >= timeout {
            let pending: Vec<ReservationId> = ids
                .iter()
                .zip(&done)
                .filter(|(_, d)| d.is_none())
                .map(|(id, _)| *id)
                .collect();
            bail!(
                "timed out after {} s: {} not ready yet (all of {} stay reserved; raise --timeout or cancel them)",
                timeout.as_secs(),
                ids_text(&pending),
                ids_text(ids)
            );
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// The backend config `reserve` writes: zstor's format plus reference fields zstor ignores.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ReservedConfig {
    version: u32,
    data_shards: u16,
    parity_shards: u16,
    namespace_size: u64,
    owner: String,
    backends: Vec<ReservedBackend>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ReservedBackend {
    address: String,
    namespace: String,
    password: String,
    node_id: NodeId,
    farm_id: FarmId,
    reservation_id: ReservationId,
}

impl Drop for ReservedBackend {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.password);
    }
}

/// Writes `config` to `path` with mode 0600 (a temporary file in the same directory, renamed),
/// after checking that zstor reads it back.
fn write_config(path: &Path, config: &ReservedConfig) -> Result<()> {
    let text = Zeroizing::new(serde_json::to_string_pretty(config)?);
    let parsed: zstor::StoreConfig = serde_json::from_str(&text)?;
    parsed
        .validate()
        .map_err(|e| anyhow!("the config would not be valid: {e}"))?;
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("cannot create directory {}", dir.display()))?;
    let file_name = path
        .file_name()
        .ok_or_else(|| anyhow!("{} is not a file path", path.display()))?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        file_name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| -> Result<()> {
        use std::os::unix::fs::OpenOptionsExt;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .with_context(|| format!("cannot create {}", tmp.display()))?;
        file.write_all(text.as_bytes())?;
        file.write_all(b"\n")?;
        file.sync_all()?;
        std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    fn c(node_id: NodeId, farm_id: FarmId, free_mib: u64) -> Candidate {
        Candidate {
            node_id,
            farm_id,
            free_hru: free_mib * MIB,
        }
    }

    fn ids(picked: &[Candidate]) -> Vec<NodeId> {
        picked.iter().map(|c| c.node_id).collect()
    }

    #[test]
    fn distinct_farms_first_then_distinct_nodes() {
        // farm 1: nodes 1, 2, 3; farm 2: node 4; farm 3: node 5
        let nodes = [
            c(1, 1, 100),
            c(2, 1, 300),
            c(3, 1, 200),
            c(4, 2, 50),
            c(5, 3, 80),
        ];
        // three namespaces: one per farm, the best node of each
        let picked = select_nodes(&nodes, 3, 16 * MIB, false).unwrap();
        assert_eq!(ids(&picked), vec![2, 5, 4]);
        // five: every farm once, then farm 1's remaining nodes, best first
        let picked = select_nodes(&nodes, 5, 16 * MIB, false).unwrap();
        assert_eq!(ids(&picked), vec![2, 5, 4, 3, 1]);
        let farms: Vec<FarmId> = picked[..3].iter().map(|c| c.farm_id).collect();
        assert_eq!(farms, vec![1, 3, 2]);
    }

    #[test]
    fn one_farm_uses_distinct_nodes() {
        let nodes = [c(7, 1, 64), c(8, 1, 64), c(9, 1, 64)];
        let picked = select_nodes(&nodes, 3, 16 * MIB, false).unwrap();
        let mut got = ids(&picked);
        got.sort();
        assert_eq!(got, vec![7, 8, 9]);
    }

    #[test]
    fn too_small_nodes_do_not_count() {
        let nodes = [c(1, 1, 8), c(2, 2, 64), c(3, 3, 64)];
        let err = select_nodes(&nodes, 3, 16 * MIB, false).unwrap_err();
        assert!(err.to_string().contains("only 2 nodes are Up"), "{err}");
    }

    #[test]
    fn too_few_nodes_is_refused_without_the_flag() {
        let nodes = [c(1, 1, 64), c(2, 2, 64)];
        let err = select_nodes(&nodes, 3, 16 * MIB, false).unwrap_err();
        let message = err.to_string();
        assert!(message.contains("3 distinct nodes"), "{message}");
        assert!(message.contains("--allow-shared-nodes"), "{message}");
        assert!(select_nodes(&[], 1, MIB, false).is_err());
    }

    #[test]
    fn shared_nodes_spread_round_robin_within_capacity() {
        let nodes = [c(1, 1, 64), c(2, 2, 32)];
        let picked = select_nodes(&nodes, 5, 16 * MIB, true).unwrap();
        assert_eq!(ids(&picked), vec![1, 2, 1, 2, 1]);
        // 64 + 32 MiB hold at most 6 namespaces of 16 MiB
        let err = select_nodes(&nodes, 7, 16 * MIB, true).unwrap_err();
        assert!(err.to_string().contains("only 6 namespaces"), "{err}");
    }

    #[test]
    fn duplicate_candidates_count_once() {
        let nodes = [c(1, 1, 64), c(1, 1, 64)];
        assert!(select_nodes(&nodes, 2, 16 * MIB, false).is_err());
    }

    #[test]
    fn passwords_are_long_and_distinct() {
        let a = random_password();
        let b = random_password();
        assert_eq!(a.len(), PASSWORD_LEN);
        assert!(a.chars().all(|ch| ch.is_ascii_alphanumeric()));
        assert_ne!(*a, *b);
    }

    #[test]
    fn written_config_is_private_and_readable_by_zstor() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/store.json");
        let config = ReservedConfig {
            version: zstor::config::CONFIG_VERSION,
            data_shards: 2,
            parity_shards: 1,
            namespace_size: 16 * MIB,
            owner: "x".into(),
            backends: (0..3)
                .map(|i| ReservedBackend {
                    address: format!("127.0.0.1:{}", 9900 + i),
                    namespace: format!("r{i}-zstor-{i}"),
                    password: "p".into(),
                    node_id: i,
                    farm_id: 1,
                    reservation_id: u64::from(i),
                })
                .collect(),
        };
        write_config(&path, &config).unwrap();
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let loaded = zstor::StoreConfig::load(&path).unwrap();
        assert_eq!(loaded.backends.len(), 3);
        assert_eq!(loaded.backends[1].password.as_deref(), Some("p"));
    }
}
