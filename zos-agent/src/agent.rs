//! Start-up and the follow loop.
//!
//! 1. Starts the node's zdb server (embedded) or adopts one already listening on the port.
//! 2. Measures the machine; creates the node key's twin and registers the node in its farm if
//!    it is new, or updates its resources if they changed.
//! 3. Reconciles once before anything else, so orphans of an earlier run are gone and nothing is
//!    created twice.
//! 4. Follows final heads. For each, it verifies the header (commit certificate against the
//!    proven validator set) and the node's snapshot at that block (rebuilt from read proofs
//!    against the header's state root, and compared with `grid_nodeSnapshot`; see [`crate::light`]),
//!    and reconciles when it changed, and at least every `reconcile_interval`. An endpoint whose
//!    answers do not verify is left for the next one; nothing it said is acted on. The last
//!    processed height is persisted, so after a restart or an endpoint switch it resumes there;
//!    because the snapshot is the whole desired state, nothing between two processed blocks can
//!    be missed.
//! 5. Alongside, sends capacity proofs every period.

use crate::{
    capacity,
    chain::Chain,
    kinds::{
        container::ContainerKind, network::NetworkKind, public_ip::PublicIpKind,
        volume::VolumeKind, zdb::ZdbKind, Kinds, Secrets,
    },
    light::{self, LightClient, Refused},
    owner::{events::EventLog, OwnerApi},
    provision::{
        container::Containers,
        egress::Egress,
        image::{Images, RegistryPolicy},
        network::Networks,
        public_ip::PublicIps,
        volume::Volumes,
        zdb::ZdbAdmin,
    },
    reconcile::{node_tag, Reconciler, ReportPacer},
};
use anyhow::{bail, Context as _};
use gridchain_primitives::{Hash, Header, Pair};
use gridchain_rpc_api::{grid::NodeSnapshot, ChainApiClient, GridApiClient};
use gridchain_runtime::{
    reservations::{Mesh, ReservationState},
    tfgrid::{self, Location, Resources},
    twins, Call,
};
use serde::{Deserialize, Serialize};
use std::{
    net::SocketAddr,
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};
use tokio::sync::watch;

pub struct AgentConfig {
    pub node_key: Pair,
    /// The chain to follow, the light client's trust anchor. `None`: the hash every reachable
    /// endpoint agrees on at first start (trust on first use), then the one in
    /// `<data dir>/light.json`.
    pub genesis_hash: Option<Hash>,
    pub farm_id: u32,
    pub rpc: Vec<String>,
    pub data_dir: PathBuf,
    /// Where the node's zdb listens; an embedded server is started unless one already answers.
    pub zdb_listen: SocketAddr,
    pub zdb_admin_password: String,
    /// Share of the data disk offered as HRU for zdb namespaces, in percent.
    pub zdb_share_percent: u64,
    pub capacity_period: Duration,
    pub reconcile_interval: Duration,
    /// Pulled images no live workload used for this long are removed.
    pub image_grace: Duration,
    /// Pulled images together may take this many bytes; beyond it, unused ones are removed
    /// before their grace time, least recently used first.
    pub image_budget: u64,
    /// Which registry addresses image pulls may reach (private ones only on dev grids).
    pub registries: RegistryPolicy,
    /// A paced report token comes back after this long (see [`ReportPacer`]).
    pub report_refill: Duration,
    /// Destinations networks with egress never reach (see [`crate::provision::egress`]).
    pub egress_deny: Vec<String>,
    /// The owner API (logs, exec, events); `None`: not served.
    pub owner_api: Option<OwnerApiConfig>,
    /// Where this node's side of private networks across nodes listens.
    pub mesh: MeshConfig,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MeshConfig {
    /// The address other nodes and owners' peers reach this node at; `None`: the source
    /// address of the node's route towards the internet.
    pub endpoint: Option<std::net::IpAddr>,
    /// A network's WireGuard port is this plus its router's link index.
    pub port_base: u16,
}

impl Default for MeshConfig {
    fn default() -> MeshConfig {
        MeshConfig {
            endpoint: None,
            port_base: 51_820,
        }
    }
}

pub struct OwnerApiConfig {
    pub listen: SocketAddr,
    /// `host:port` clients dial, published as the node twin's endpoint.
    pub endpoint: String,
}

/// The last final block the agent processed, persisted in `<data dir>/cursor.json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    pub number: u64,
    pub hash: Hash,
}

impl Cursor {
    fn path(data_dir: &std::path::Path) -> PathBuf {
        data_dir.join("cursor.json")
    }

    /// The stored cursor; a missing or corrupt file is no cursor (the agent then reconciles
    /// against the latest final state, which it does at every start anyway).
    pub fn load(data_dir: &std::path::Path) -> anyhow::Result<Option<Cursor>> {
        Ok(crate::persist::read_json(&Self::path(data_dir))?)
    }

    /// Durably (file and directory fsynced): a crash leaves the old or the new cursor.
    fn store(&self, data_dir: &std::path::Path) -> anyhow::Result<()> {
        Ok(crate::persist::write_json(&Self::path(data_dir), self)?)
    }
}

/// Finds this key's node, registering it (and its twin, with `endpoint` where the owner API is
/// reached) if needed; keeps the twin's endpoint current. Returns the node id.
async fn ensure_registered(
    chain: &Chain,
    farm_id: u32,
    measured: Resources,
    endpoint: &str,
) -> anyhow::Result<u32> {
    let address = chain.key().public().to_string();
    let twin = chain
        .call(|c| {
            let a = address.clone();
            async move { c.twin_by_account(a, None).await }
        })
        .await?;
    match twin {
        None => {
            let name = format!("node-{}", &address[..12].to_lowercase());
            chain
                .submit(Call::Twins(twins::Call::CreateTwin {
                    name,
                    endpoint: endpoint.to_string(),
                }))
                .await?;
            tracing::info!(endpoint, "created the node's twin");
        }
        Some(twin) if twin.endpoint != endpoint => {
            chain
                .submit(Call::Twins(twins::Call::UpdateTwin {
                    name: twin.name,
                    endpoint: endpoint.to_string(),
                }))
                .await?;
            tracing::info!(endpoint, "updated the node twin's endpoint");
        }
        Some(_) => {}
    }
    let node = chain
        .call(|c| {
            let a = address.clone();
            async move { c.node_by_account(a, None).await }
        })
        .await?;
    let location = Location {
        country: String::new(),
        city: String::new(),
        latitude: String::new(),
        longitude: String::new(),
    };
    match node {
        Some(info) if info.node.resources == measured => Ok(info.node.id),
        Some(info) => {
            chain
                .submit(Call::Tfgrid(tfgrid::Call::UpdateNode {
                    resources: measured,
                    location: info.node.location.clone(),
                    public_config: info.node.public_config.clone(),
                }))
                .await?;
            tracing::info!(node_id = info.node.id, "updated the node's resources");
            Ok(info.node.id)
        }
        None => {
            chain
                .submit(Call::Tfgrid(tfgrid::Call::RegisterNode {
                    farm_id,
                    resources: measured,
                    location,
                    public_config: None,
                }))
                .await?;
            let Some(info) = chain
                .call(|c| {
                    let a = address.clone();
                    async move { c.node_by_account(a, None).await }
                })
                .await?
            else {
                bail!("node registration was final but the node is not on chain (check the farm id and the events)")
            };
            tracing::info!(node_id = info.node.id, farm_id, "registered the node");
            Ok(info.node.id)
        }
    }
}

/// Starts an embedded zdb unless one already listens on `addr`.
async fn start_zdb(config: &AgentConfig) -> anyhow::Result<Option<zdb::Server>> {
    if tokio::net::TcpStream::connect(config.zdb_listen)
        .await
        .is_ok()
    {
        tracing::info!(addr = %config.zdb_listen, "adopting the zdb server already listening");
        return Ok(None);
    }
    let mut zdb_config = zdb::ZdbConfig::new(config.data_dir.join("zdb"));
    zdb_config.listen = Some(config.zdb_listen);
    zdb_config.admin_password = Some(config.zdb_admin_password.clone());
    // tenants' acknowledged writes must survive a power loss: fsync before every
    // reply to a write (group commit shares one fsync among concurrent clients;
    // the cost is measured in zdb/README.md, "Durability cost")
    zdb_config.durability = zdb::Durability::Always;
    let server = zdb::Server::start(zdb_config)
        .await
        .context("cannot start zdb")?;
    tracing::info!(addr = %config.zdb_listen, "started the node's zdb");
    Ok(Some(server))
}

pub async fn run(config: AgentConfig) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.data_dir)?;
    let _zdb = start_zdb(&config).await?;
    let chain = Chain::new(config.rpc.clone(), config.node_key.clone())?;
    let measured = capacity::measure(&config.data_dir, config.zdb_share_percent)?;
    tracing::info!(?measured, "measured capacity");
    let genesis_hash = match config.genesis_hash {
        Some(h) => h,
        None => match light::Trusted::load(&config.data_dir)? {
            Some(t) => t.genesis,
            None => {
                let h = chain.agreed_genesis().await?;
                tracing::warn!(genesis = %h, "trusting the genesis hash the RPC endpoints agree on (first start); pin it with --genesis-hash");
                h
            }
        },
    };
    let node_account = config.node_key.public();
    let light = chain
        .verified("light client anchor", |c| {
            let data_dir = config.data_dir.clone();
            async move { LightClient::open(&data_dir, genesis_hash, node_account, &c).await }
        })
        .await?;
    chain.pin_genesis(genesis_hash);
    // Bound before registering, so the endpoint published is one that answers.
    let owner_listener = match &config.owner_api {
        Some(api) => Some(
            tokio::net::TcpListener::bind(api.listen)
                .await
                .with_context(|| format!("cannot listen for the owner API on {}", api.listen))?,
        ),
        None => None,
    };
    let endpoint = config
        .owner_api
        .as_ref()
        .map_or(String::new(), |api| api.endpoint.clone());
    let node_id = ensure_registered(&chain, config.farm_id, measured, &endpoint).await?;
    let docker = bollard::Docker::connect_with_local_defaults().context("cannot reach Docker")?;
    let node_tag = node_tag(&genesis_hash, &config.node_key.public(), node_id);
    let events = EventLog::open(&config.data_dir.join("events"))?;
    let (published, latest) = watch::channel(None);
    let containers = Containers::new(docker.clone(), &node_tag);
    let networks = Networks::new(&node_tag, &config.data_dir.join("interfaces.json"))?;
    let secrets = Secrets {
        node_seed: config.node_key.seed(),
        genesis_hash,
    };
    let public_ips = PublicIpKind::new(
        containers.clone(),
        networks.clone(),
        PublicIps::new(&node_tag, config.egress_deny.clone()),
    );
    let kinds = Kinds::new(vec![
        Box::new(NetworkKind::new(
            networks.clone(),
            Egress::new(&node_tag, config.egress_deny.clone()),
            secrets.clone(),
            config.mesh,
        )),
        Box::new(VolumeKind::new(
            Volumes::new(docker.clone(), &node_tag, &config.data_dir.join("volumes")),
            &node_tag,
        )),
        Box::new(ZdbKind::new(
            ZdbAdmin::new(&config.zdb_listen.to_string(), &config.zdb_admin_password),
            config.zdb_listen.to_string(),
            secrets.clone(),
        )),
        Box::new(ContainerKind {
            containers: containers.clone(),
            images: Images::new(
                docker,
                Some(config.data_dir.join("images.json")),
                config.registries,
            ),
            image_grace: config.image_grace,
            image_budget: config.image_budget,
            networks,
            secrets,
            node_tag: node_tag.clone(),
            rootfs: Default::default(),
            stopped_since: Default::default(),
            existing: Default::default(),
        }),
        Box::new(public_ips),
    ]);
    let reconciler = Reconciler {
        node_id,
        node_tag,
        kinds,
        report_backoff: Default::default(),
        report_pacer: ReportPacer::new(config.report_refill),
        events: events.clone(),
    };
    // Stopped with the agent (also when its task is aborted, as `gridnode --dev` does).
    struct AbortOnDrop(tokio::task::JoinHandle<()>);
    impl Drop for AbortOnDrop {
        fn drop(&mut self) {
            self.0.abort();
        }
    }
    let docker_events = events.clone();
    let _docker_events = AbortOnDrop(containers.watch_events(move |event| {
        docker_events.record(
            event.reservation,
            &event.workload,
            &event.kind,
            &event.message,
        )
    }));
    let _owner_api = owner_listener.map(|listener| {
        let api = Arc::new(OwnerApi::new(
            &config.node_key,
            genesis_hash,
            node_id,
            reconciler.node_tag.clone(),
            containers.docker().clone(),
            latest,
            events,
        ));
        tracing::info!(endpoint, "serving the owner API");
        AbortOnDrop(tokio::spawn(api.serve(listener)))
    });
    let capacity = capacity::report_loop(&chain, node_id, measured, config.capacity_period);
    let follow = follow(&chain, &light, &reconciler, &config, &published);
    tokio::select! {
        () = capacity => bail!("capacity reporting stopped"),
        result = follow => result,
    }
}

/// What the node must run, without what changes every block (billing counters, the results the
/// agent itself reports): a pass is needed when, and only when, this changes.
/// Meshes count whole: a peer's new key or endpoint changes this node's tunnels.
fn desired(snapshot: &NodeSnapshot) -> (Vec<(u64, u32, bool, bool)>, Vec<Mesh>) {
    let reservations = snapshot
        .reservations
        .iter()
        .map(|r| {
            let live = !r.is_deleted();
            let paused = matches!(r.state, ReservationState::GracePeriod { .. });
            (r.id, r.version, live, paused)
        })
        .collect();
    (reservations, snapshot.meshes.clone())
}

/// The node's snapshot at final block `head` (default: the endpoint's final head), verified:
/// the header is final by certificate, every value is proven against its state root, and the
/// endpoint's `grid_nodeSnapshot` must be exactly the proven one. Tried on one endpoint after the
/// other; returns the verified header too.
async fn snapshot(
    chain: &Chain,
    light: &LightClient,
    node_id: u32,
    head: Option<u64>,
) -> anyhow::Result<(Header, NodeSnapshot)> {
    chain
        .verified("node snapshot", |c| async move {
            let header = match head {
                Some(number) => LightClient::header_at(&c, number).await?,
                None => {
                    let hash = c.finalized_head().await?;
                    let Some(header) = c.header(Some(hash)).await? else {
                        return Err(Refused(format!("no header for the final head {hash}")).into());
                    };
                    if header.hash() != hash {
                        return Err(Refused(format!("final head header does not hash to {hash}")).into());
                    }
                    header
                }
            };
            let mut cost = light.verify_header(&c, &header).await?;
            let proven = light.proven_snapshot(&c, &header, node_id, &mut cost).await?;
            let served = c.node_snapshot(node_id, Some(header.hash())).await?;
            if served != proven {
                return Err(Refused(format!(
                    "grid_nodeSnapshot at block {} differs from the proven state ({} reservations served, {} proven)",
                    header.number,
                    served.as_ref().map_or(0, |s| s.reservations.len()),
                    proven.as_ref().map_or(0, |s| s.reservations.len()),
                ))
                .into());
            }
            tracing::debug!(
                number = header.number,
                verify_us = cost.verify_us,
                proofs = cost.proofs,
                certificates = cost.certificates,
                "verified final header and node state"
            );
            let snapshot = proven
                .ok_or_else(|| anyhow::anyhow!("node {node_id} is not on chain (deleted?)"))?;
            Ok((header, snapshot))
        })
        .await
}

/// The last verified snapshot, for the owner API.
type Published = watch::Sender<Option<Arc<NodeSnapshot>>>;

async fn follow(
    chain: &Chain,
    light: &LightClient,
    reconciler: &Reconciler,
    config: &AgentConfig,
    published: &Published,
) -> anyhow::Result<()> {
    if let Some(cursor) = Cursor::load(&config.data_dir)? {
        tracing::info!(
            number = cursor.number,
            "resuming after the last processed block"
        );
    }
    // Start-up pass against the latest final state.
    let (_, first) = snapshot(chain, light, reconciler.node_id, None).await?;
    published.send_replace(Some(Arc::new(first.clone())));
    let pass = Instant::now();
    let summary = reconciler.run(&first, Some(chain)).await?;
    tracing::info!(
        ?summary,
        number = first.number,
        ms = pass.elapsed().as_millis() as u64,
        "start-up reconciliation done"
    );
    Cursor {
        number: first.number,
        hash: first.at,
    }
    .store(&config.data_dir)?;
    // Empty after a failed report, so the first block retries it.
    let mut last_state = if summary.failed_reports == 0 {
        desired(&first)
    } else {
        Default::default()
    };
    let mut last_pass = Instant::now();
    loop {
        let mut heads = match chain.subscribe_finalized().await {
            Ok(h) => h,
            Err(e) => {
                tracing::warn!(error = %e, "cannot follow final heads; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        while let Some(head) = heads.next().await {
            let Ok(head) = head else { break };
            let (header, snap) =
                match snapshot(chain, light, reconciler.node_id, Some(head.number)).await {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::warn!(error = %format!("{e:#}"), "snapshot failed");
                        continue;
                    }
                };
            // The subscription's endpoint sent a head that is not the final one: follow another.
            let lied = header.hash() != head.hash();
            if lied {
                tracing::warn!(
                    number = head.number,
                    "refused a final head from the subscription (not the certified header); resubscribing"
                );
            }
            published.send_replace(Some(Arc::new(snap.clone())));
            let wanted = desired(&snap);
            // Something a kind saw change outside a pass (a pull ended, a container died, was
            // OOM-killed or restarted) changes what to run or report: pass at once.
            let changed = reconciler.kinds.take_changed();
            if wanted != last_state || changed || last_pass.elapsed() >= config.reconcile_interval {
                let pass = Instant::now();
                match reconciler.run(&snap, Some(chain)).await {
                    Ok(summary) => {
                        let ms = pass.elapsed().as_millis() as u64;
                        tracing::info!(number = snap.number, ?summary, ms, "reconciled");
                        // A failed report keeps the old state, so the next block retries.
                        if summary.failed_reports == 0 {
                            last_state = wanted;
                        }
                        last_pass = Instant::now();
                    }
                    // last_state stays, so the next block tries again.
                    Err(e) => {
                        tracing::warn!(error = %e, "reconciliation failed; retrying on the next block")
                    }
                }
            }
            Cursor {
                number: snap.number,
                hash: snap.at,
            }
            .store(&config.data_dir)?;
            if lied {
                break;
            }
        }
        tracing::warn!("final-head subscription ended; resubscribing");
    }
}
