//! Desired state from the chain, actual state from Docker, zdb and netlink, and the actions that
//! make them agree.
//!
//! One pass ([`Reconciler::run`]):
//! 1. lists what exists (labelled containers and volumes, namespaces, `gcbr*` bridges);
//! 2. removes everything no live reservation of this node wants (cancelled, out of funds, node
//!    deleted, or left over from a crash);
//! 3. for each live reservation, ensures its networks, volumes, namespaces and containers —
//!    adopting what already matches (same spec hash label), recreating what changed — and pauses
//!    or resumes them with the grace period;
//! 4. reports each reservation's per-workload results on chain when they differ from what the
//!    chain already has for the current version;
//! 5. removes pulled images no live workload uses (after a grace time, or over the disk budget).
//!
//! A container whose image is not on the node is reported `Pulling` while
//! [`crate::provision::image`] pulls it in the background; the pass does not wait for it.
//!
//! Everything is named after the reservation (`gc-<node tag>-r<id>-<workload>`, namespace
//! `r<id>-<workload>`), so a second pass finds the first pass's work and changes nothing.

use crate::{
    chain::Chain,
    owner::events::EventLog,
    provision::{
        container::{
            ActualContainer, ContainerSpec, ContainerState, Containers, LABEL_OWNER,
            LABEL_RESERVATION, LABEL_SPEC, LABEL_VERSION, LABEL_WORKLOAD,
        },
        image::{ImageStatus, Images, RegistryAuth},
        network::Networks,
        volume::Volumes,
        zdb::{NamespaceSpec, ZdbAdmin},
    },
};
use gridchain_primitives::{
    hash::blake2_256,
    seal::{self, SealContext, SealError, SealPurpose},
    AccountId, Hash, Pair,
};
use gridchain_rpc_api::grid::NodeSnapshot;
use gridchain_runtime::{
    reservations::{
        self, EnvValue, Reservation, ReservationState, RestartPolicy, ResultData, Workload,
        WorkloadResult, WorkloadSpec, WorkloadState, ZdbMode,
    },
    tfgrid::Cidr,
    Call,
};
use parity_scale_codec::Encode;
use std::{
    collections::{BTreeMap, BTreeSet},
    net::{IpAddr, Ipv4Addr},
    time::{Duration, Instant},
};

/// Suffix of the container that replaces a running one during an update (see
/// [`Reconciler::replace_running`]).
pub const NEXT_SUFFIX: &str = ".next";

/// Label holding a container's address on one of its networks: `gridchain.ip.<network>`.
const LABEL_IP_PREFIX: &str = "gridchain.ip.";

/// Names this node's things apart from any other node's on the same host, including nodes of
/// other chains and other keys: `<8 hex digits of blake2(genesis hash ++ node key)>-<node id>`.
pub fn node_tag(
    genesis_hash: &gridchain_primitives::Hash,
    node_key: &AccountId,
    node_id: u32,
) -> String {
    let mut input = genesis_hash.0.to_vec();
    input.extend_from_slice(&node_key.0);
    format!("{}-{node_id}", &hex(&blake2_256(&input))[..8])
}

pub struct Reconciler {
    pub node_id: u32,
    /// See [`node_tag`].
    pub node_tag: String,
    pub node_seed: [u8; 32],
    /// Genesis hash of the chain followed: part of the context every secret is sealed in.
    pub genesis_hash: Hash,
    pub containers: Containers,
    pub images: Images,
    /// See `AgentConfig::image_grace` and `image_budget`.
    pub image_grace: Duration,
    pub image_budget: u64,
    pub volumes: Volumes,
    pub networks: Networks,
    pub zdb: ZdbAdmin,
    /// How clients reach this node's zdb (`host:port`), reported in results.
    pub zdb_endpoint: String,
    /// Reports that failed, per (reservation, version): when to try again.
    pub report_backoff: ReportBackoff,
    /// How often one reservation version may be reported (see [`ReportPacer`]).
    pub report_pacer: ReportPacer,
    /// Root filesystem sizes (see [`RootfsGuard`]).
    pub rootfs: RootfsGuard,
    /// Each reservation's events, for its owner: the states reported are recorded here.
    pub events: EventLog,
}

/// `rootfsSize`, enforced by the agent: the storage driver here (fuse-overlayfs) has no size
/// option, so every [`RootfsGuard::EVERY`] the agent asks Docker how much each running
/// container wrote to its root filesystem and stops one that wrote more than its size, for good
/// (its workload is `Error` with the figures until the reservation is updated or cancelled).
/// Between two checks a container can write past its size; volumes are hard limits, the
/// rootfs only this.
#[derive(Default)]
pub struct RootfsGuard {
    /// Container id → when its rootfs was last measured.
    checked: std::sync::Mutex<BTreeMap<String, Instant>>,
    /// Container id → why it was stopped.
    stopped: std::sync::Mutex<BTreeMap<String, String>>,
}

impl RootfsGuard {
    pub const EVERY: Duration = Duration::from_secs(10);

    fn due(&self, id: &str) -> bool {
        let mut checked = self.checked.lock().unwrap_or_else(|e| e.into_inner());
        match checked.get(id) {
            Some(at) if at.elapsed() < Self::EVERY => false,
            _ => {
                checked.insert(id.to_string(), Instant::now());
                true
            }
        }
    }

    fn stopped(&self, id: &str) -> Option<String> {
        self.stopped
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .cloned()
    }

    /// Forgets containers that no longer exist.
    fn retain(&self, ids: &BTreeSet<&str>) {
        let keep = |id: &String, _: &mut _| ids.contains(id.as_str());
        self.checked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(keep);
        self.stopped
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|id, _| ids.contains(id.as_str()));
    }

    fn record_stop(&self, id: &str, why: &str) {
        self.stopped
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.to_string(), why.to_string());
    }
}

/// A report that fails (the chain refuses it, or the endpoint is down) is retried after 2, 4,
/// 8 … up to 300 seconds rather than on every block: a report the chain refuses for good would
/// otherwise pay a fee every second for ever.
#[derive(Default)]
pub struct ReportBackoff(std::sync::Mutex<BTreeMap<(u64, u32), (u32, Instant)>>);

impl ReportBackoff {
    const MAX: Duration = Duration::from_secs(300);

    fn due(&self, id: u64, version: u32) -> bool {
        let map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.get(&(id, version))
            .is_none_or(|(_, next)| Instant::now() >= *next)
    }

    fn failed(&self, id: u64, version: u32) {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let failures = map.get(&(id, version)).map_or(0, |(f, _)| *f) + 1;
        let wait = Duration::from_secs(1u64 << failures.min(9)).min(Self::MAX);
        map.insert((id, version), (failures, Instant::now() + wait));
    }

    fn succeeded(&self, id: u64, version: u32) {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.remove(&(id, version));
    }
}

/// Reports of one reservation version are paced, so a workload that flaps (a crash loop under
/// `restart: always`, a health check that comes and goes) cannot make the node pay a report fee
/// per flap: each report spends a token, [`ReportPacer::BURST`] at most, one back every
/// `refill` (`--report-refill-secs`, 60 s); a change of data alone (restart count, digest)
/// needs two, so one is always left for a change of state. What waits is sent by a later pass
/// (at least every reconcile interval), with the state of that moment.
pub struct ReportPacer {
    refill: Duration,
    tokens: std::sync::Mutex<BTreeMap<(u64, u32), (f64, Instant)>>,
}

impl ReportPacer {
    pub const BURST: f64 = 4.0;

    pub fn new(refill: Duration) -> ReportPacer {
        ReportPacer {
            refill,
            tokens: Default::default(),
        }
    }

    /// Whether a report of (`id`, `version`) may go now; spends its tokens if so.
    fn allow(&self, id: u64, version: u32, state_changed: bool, now: Instant) -> bool {
        let mut map = self.tokens.lock().unwrap_or_else(|e| e.into_inner());
        let (tokens, at) = map.entry((id, version)).or_insert((Self::BURST, now));
        let refilled =
            now.saturating_duration_since(*at).as_secs_f64() / self.refill.as_secs_f64().max(0.001);
        *tokens = (*tokens + refilled).min(Self::BURST);
        *at = now;
        let needed = if state_changed { 1.0 } else { 2.0 };
        if *tokens < needed {
            return false;
        }
        *tokens -= 1.0;
        true
    }

    /// Forgets the versions not in `live`.
    fn retain(&self, live: &BTreeSet<(u64, u32)>) {
        let mut map = self.tokens.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|key, _| live.contains(key));
    }
}

/// Cuts a result down to what the chain accepts (`reservations::MAX_TEXT_LEN` bytes per text,
/// at a character boundary; at most 64 data fields), so a long Docker or registry error does
/// not make the whole report fail on chain.
pub fn fit_for_chain(mut result: WorkloadResult) -> WorkloadResult {
    fn cut(text: &mut String) {
        if text.len() > reservations::MAX_TEXT_LEN {
            let mut end = reservations::MAX_TEXT_LEN - '…'.len_utf8();
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text.truncate(end);
            text.push('…');
        }
    }
    cut(&mut result.message);
    match &mut result.data {
        ResultData::None => {}
        ResultData::Container {
            container_id,
            ips,
            image_digest,
            ..
        } => {
            cut(container_id);
            cut(image_digest);
            ips.truncate(62);
            ips.iter_mut().for_each(cut);
        }
        ResultData::Zdb {
            namespace,
            endpoints,
        } => {
            cut(namespace);
            endpoints.truncate(63);
            endpoints.iter_mut().for_each(cut);
        }
        ResultData::Network { subnet } => cut(subnet),
        ResultData::Volume { path } => cut(path),
    }
    result
}

/// Where a container workload stands after a pass.
enum ContainerOutcome {
    /// Running (and healthy, if it has a health check).
    Running(ResultData),
    /// Its image is being pulled.
    Pulling,
    /// Running, but its health check has not passed (yet).
    Unhealthy { message: String, data: ResultData },
}

/// What one pass did, for logs and tests.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PassSummary {
    pub created: usize,
    pub removed: usize,
    pub reported: usize,
    /// Reports that did not make it on chain; the caller runs another pass soon.
    pub failed_reports: usize,
}

fn is_live(r: &Reservation) -> bool {
    !matches!(r.state, ReservationState::Deleted { .. })
}

fn is_paused(r: &Reservation) -> bool {
    matches!(r.state, ReservationState::GracePeriod { .. })
}

/// The Docker name of workload `workload` of reservation `id` on the node tagged `node_tag`.
pub fn container_name(node_tag: &str, id: u64, workload: &str) -> String {
    format!("gc-{node_tag}-r{id}-{workload}")
}

impl Reconciler {
    pub fn container_name(&self, id: u64, workload: &str) -> String {
        container_name(&self.node_tag, id, workload)
    }

    pub fn namespace_name(id: u64, workload: &str) -> String {
        format!("r{id}-{workload}")
    }

    /// Opens a secret of workload `w` of reservation `r`, only in that reservation's context:
    /// its owner, this node, this chain, that workload and `purpose`. A value sealed for any
    /// other context (copied from someone else's reservation, say) is an error for this
    /// workload, which never carries the plaintext.
    fn open_secret(
        &self,
        r: &Reservation,
        w: &Workload,
        purpose: SealPurpose,
        sealed: &[u8],
    ) -> Result<String, String> {
        let what = match &purpose {
            SealPurpose::Env { name } => format!("sealed value for env {name}"),
            SealPurpose::ZdbPassword => "sealed zdb password".to_string(),
            SealPurpose::RegistryAuth => "sealed registry credentials".to_string(),
        };
        let context = SealContext {
            genesis: self.genesis_hash,
            owner: r.owner,
            node: Pair::from_seed(&self.node_seed).public(),
            workload: w.name.clone(),
            purpose,
        };
        match seal::open(&self.node_seed, &context, sealed) {
            Ok(plain) => String::from_utf8(plain).map_err(|_| format!("{what} is not UTF-8")),
            Err(SealError::Open) => Err(format!(
                "{what} does not open in this reservation's context (sealed for another owner, \
                 node, chain or workload, or altered?)"
            )),
            Err(e) => Err(format!("{what}: {e}")),
        }
    }

    /// One reconciliation pass against `snapshot`; reports results through `chain` (if given).
    pub async fn run(
        &self,
        snapshot: &NodeSnapshot,
        chain: Option<&Chain>,
    ) -> anyhow::Result<PassSummary> {
        let mut summary = PassSummary::default();
        let live: Vec<&Reservation> = snapshot
            .reservations
            .iter()
            .filter(|r| is_live(r))
            .collect();

        // What is wanted, by name.
        let mut want_containers = BTreeSet::new();
        let mut want_images = BTreeSet::new();
        let mut want_volumes = BTreeSet::new();
        let mut want_namespaces = BTreeSet::new();
        // One bridge per (owner, network name): reservations of one owner share their
        // networks. Names come from the agent's name book, never from the names users chose.
        let mut want_bridges = BTreeSet::new();
        let mut want_veths = BTreeSet::new();
        for r in &live {
            for w in &r.deployment.workloads {
                let name = self.container_name(r.id, &w.name);
                match &w.spec {
                    WorkloadSpec::Container {
                        networks, image, ..
                    } => {
                        want_images.insert(image.clone());
                        for n in networks {
                            want_veths.insert((name.clone(), n.network.clone()));
                        }
                        want_containers.insert(name);
                    }
                    WorkloadSpec::Volume { .. } => {
                        want_volumes.insert(name);
                    }
                    WorkloadSpec::ZdbNamespace { .. } => {
                        want_namespaces.insert(Self::namespace_name(r.id, &w.name));
                    }
                    WorkloadSpec::Network { .. } => {
                        want_bridges.insert(self.networks.bridge_for(&r.owner, &w.name).await?);
                    }
                }
            }
        }

        // Remove what nobody wants. Containers first: they hold volumes and veths.
        let actual = self.containers.list().await?;
        let wanted = |name: &str| {
            want_containers.contains(name)
                || name
                    .strip_suffix(NEXT_SUFFIX)
                    .is_some_and(|n| want_containers.contains(n))
        };
        for c in actual.iter().filter(|c| !wanted(&c.name)) {
            self.containers.remove(&c.id).await?;
            summary.removed += 1;
        }
        // Volumes that stay are adopted as they are: name → mount point.
        let mut volumes = BTreeMap::new();
        for v in self.volumes.list().await? {
            if want_volumes.contains(&v.name) {
                volumes.insert(v.name, v.mountpoint);
            } else {
                self.volumes.remove(&v.name).await?;
                summary.removed += 1;
            }
        }
        for ns in self
            .zdb
            .list()
            .await?
            .iter()
            .filter(|n| is_ours(n) && !want_namespaces.contains(*n))
        {
            self.zdb.remove(ns).await?;
            summary.removed += 1;
        }
        for b in self
            .networks
            .bridges()
            .await?
            .iter()
            .filter(|b| !want_bridges.contains(*b))
        {
            self.networks.remove_bridge(b).await?;
            summary.removed += 1;
        }
        self.networks.retain_veths(&want_veths).await?;

        let mut existing: BTreeMap<String, ActualContainer> = self
            .containers
            .list()
            .await?
            .into_iter()
            .map(|c| (c.name.clone(), c))
            .collect();
        self.rootfs
            .retain(&existing.values().map(|c| c.id.as_str()).collect());
        let mut reports = Vec::new();
        for r in live.iter().copied() {
            let results: Vec<WorkloadResult> = self
                .ensure_reservation(r, &mut existing, &volumes, &mut summary)
                .await
                .into_iter()
                .map(fit_for_chain)
                .collect();
            let changed_states: Vec<&WorkloadResult> = results
                .iter()
                .filter(|result| {
                    r.results
                        .iter()
                        .find(|old| old.name == result.name)
                        .is_none_or(|old| {
                            (old.state, &old.message) != (result.state, &result.message)
                        })
                })
                .collect();
            if results != r.results
                && self.report_backoff.due(r.id, r.version)
                && self.report_pacer.allow(
                    r.id,
                    r.version,
                    !changed_states.is_empty() || results.len() != r.results.len(),
                    Instant::now(),
                )
            {
                for result in changed_states {
                    let message = match result.message.as_str() {
                        "" => format!("{:?}", result.state),
                        m => format!("{:?}: {m}", result.state),
                    };
                    self.events.record(r.id, &result.name, "state", &message);
                }
                reports.push((
                    (r.id, r.version),
                    Call::Reservations(reservations::Call::ReportResults {
                        id: r.id,
                        version: r.version,
                        results,
                    }),
                ));
            }
        }
        self.images
            .collect_garbage(&want_images, self.image_grace, self.image_budget)
            .await;
        self.events.retain(&live.iter().map(|r| r.id).collect());
        self.report_pacer
            .retain(&live.iter().map(|r| (r.id, r.version)).collect());
        // All reports at once, so they land in the same block instead of one block each.
        if let Some(chain) = chain {
            let outcomes = futures::future::join_all(
                reports
                    .into_iter()
                    .map(|(key, call)| async move { (key, chain.submit(call).await) }),
            )
            .await;
            for ((id, version), outcome) in outcomes {
                match outcome {
                    Ok(_) => {
                        self.report_backoff.succeeded(id, version);
                        summary.reported += 1;
                    }
                    Err(e) => {
                        self.report_backoff.failed(id, version);
                        summary.failed_reports += 1;
                        tracing::warn!(reservation = id, error = %e, "reporting results failed; will retry after a back-off")
                    }
                }
            }
        }
        Ok(summary)
    }

    /// Brings one reservation's workloads to what it asks; returns a result per workload.
    async fn ensure_reservation(
        &self,
        r: &Reservation,
        existing: &mut BTreeMap<String, ActualContainer>,
        volumes: &BTreeMap<String, String>,
        summary: &mut PassSummary,
    ) -> Vec<WorkloadResult> {
        let paused = is_paused(r);
        let mut results = Vec::new();
        // Networks and volumes before the containers that use them.
        let mut order: Vec<&Workload> = r.deployment.workloads.iter().collect();
        order.sort_by_key(|w| matches!(w.spec, WorkloadSpec::Container { .. }));
        let mut networks: BTreeMap<String, Cidr> = BTreeMap::new();
        for w in order {
            let outcome = match &w.spec {
                WorkloadSpec::Network { ip_range } => {
                    self.ensure_network(r, w, ip_range, &mut networks).await
                }
                WorkloadSpec::Volume { .. } => self.ensure_volume(r, w, volumes).await,
                WorkloadSpec::ZdbNamespace {
                    size,
                    mode,
                    password,
                    public,
                } => {
                    self.ensure_namespace(
                        r,
                        w,
                        *size,
                        *mode,
                        password.as_ref().map(|b| &b.0[..]),
                        *public,
                        paused,
                    )
                    .await
                }
                WorkloadSpec::Container { image, .. } => {
                    let outcome = self
                        .ensure_container(r, w, &networks, existing, summary, paused)
                        .await;
                    let (state, message, data) = match outcome {
                        Ok(ContainerOutcome::Running(data)) => {
                            (WorkloadState::Ok, String::new(), data)
                        }
                        Ok(ContainerOutcome::Pulling) => (
                            WorkloadState::Pulling,
                            format!("pulling {image}"),
                            ResultData::None,
                        ),
                        // Paused in grace: its probe cannot run; it is reported paused below.
                        Ok(ContainerOutcome::Unhealthy { data, .. }) if paused => {
                            (WorkloadState::Ok, String::new(), data)
                        }
                        Ok(ContainerOutcome::Unhealthy { message, data }) => {
                            (WorkloadState::Unhealthy, message, data)
                        }
                        Err(e) => (WorkloadState::Error, e, ResultData::None),
                    };
                    match state {
                        WorkloadState::Ok => Ok(data),
                        WorkloadState::Error => Err(message),
                        _ => {
                            results.push(WorkloadResult {
                                name: w.name.clone(),
                                state,
                                message,
                                data,
                            });
                            continue;
                        }
                    }
                }
            };
            let (state, message, data) = match outcome {
                Ok(data) if paused => (
                    WorkloadState::Paused,
                    "paused: reservation is in its grace period".into(),
                    data,
                ),
                Ok(data) => (WorkloadState::Ok, String::new(), data),
                Err(message) => (WorkloadState::Error, message, ResultData::None),
            };
            results.push(WorkloadResult {
                name: w.name.clone(),
                state,
                message,
                data,
            });
        }
        // Report in deployment order.
        let position: BTreeMap<&str, usize> = r
            .deployment
            .workloads
            .iter()
            .enumerate()
            .map(|(i, w)| (w.name.as_str(), i))
            .collect();
        results.sort_by_key(|res| {
            position
                .get(res.name.as_str())
                .copied()
                .unwrap_or(usize::MAX)
        });
        results
    }

    async fn ensure_network(
        &self,
        r: &Reservation,
        w: &Workload,
        ip_range: &str,
        networks: &mut BTreeMap<String, Cidr>,
    ) -> Result<ResultData, String> {
        let cidr = Cidr::parse(ip_range).ok_or_else(|| format!("invalid ip range {ip_range}"))?;
        let bridge = self
            .networks
            .bridge_for(&r.owner, &w.name)
            .await
            .map_err(|e| e.to_string())?;
        self.networks
            .ensure_bridge(&bridge)
            .await
            .map_err(|e| e.to_string())?;
        networks.insert(w.name.clone(), cidr);
        Ok(ResultData::Network {
            subnet: ip_range.to_string(),
        })
    }

    async fn ensure_volume(
        &self,
        r: &Reservation,
        w: &Workload,
        volumes: &BTreeMap<String, String>,
    ) -> Result<ResultData, String> {
        let name = self.container_name(r.id, &w.name);
        if let Some(mountpoint) = volumes.get(&name) {
            // After a reboot the image is no longer mounted: mount it before any container
            // binds the volume.
            self.volumes
                .ensure_mounted(&name)
                .await
                .map_err(|e| e.to_string())?;
            return Ok(ResultData::Volume {
                path: mountpoint.clone(),
            });
        }
        let labels = BTreeMap::from([(LABEL_RESERVATION.to_string(), r.id.to_string())]);
        let WorkloadSpec::Volume { size } = w.spec else {
            return Err(format!("workload {} is not a volume", w.name));
        };
        let v = self
            .volumes
            .ensure(&name, size, &labels)
            .await
            .map_err(|e| e.to_string())?;
        Ok(ResultData::Volume { path: v.mountpoint })
    }

    #[allow(clippy::too_many_arguments)]
    async fn ensure_namespace(
        &self,
        r: &Reservation,
        w: &Workload,
        size: u64,
        mode: ZdbMode,
        sealed_password: Option<&[u8]>,
        public: bool,
        paused: bool,
    ) -> Result<ResultData, String> {
        let password = sealed_password
            .map(|s| self.open_secret(r, w, SealPurpose::ZdbPassword, s))
            .transpose()?;
        let name = Self::namespace_name(r.id, &w.name);
        let spec = NamespaceSpec {
            name: name.clone(),
            maxsize: size,
            mode: match mode {
                ZdbMode::Seq => "seq",
                ZdbMode::User => "user",
            },
            password,
            public,
            locked: paused,
        };
        self.zdb.ensure(&spec).await.map_err(|e| e.to_string())?;
        Ok(ResultData::Zdb {
            namespace: name,
            endpoints: vec![self.zdb_endpoint.clone()],
        })
    }

    async fn ensure_container(
        &self,
        r: &Reservation,
        w: &Workload,
        networks: &BTreeMap<String, Cidr>,
        existing: &mut BTreeMap<String, ActualContainer>,
        summary: &mut PassSummary,
        paused: bool,
    ) -> Result<ContainerOutcome, String> {
        let WorkloadSpec::Container {
            image,
            cpu,
            memory,
            entrypoint,
            env,
            mounts,
            networks: attachments,
            registry_auth,
            restart,
            health_check,
            rootfs_size,
            ..
        } = &w.spec
        else {
            return Err(format!("workload {} is not a container", w.name));
        };
        let name = self.container_name(r.id, &w.name);
        let mut env_plain = Vec::new();
        for var in env {
            let value = match &var.value {
                EnvValue::Plain(v) => v.clone(),
                EnvValue::Sealed(sealed) => self.open_secret(
                    r,
                    w,
                    SealPurpose::Env {
                        name: var.name.clone(),
                    },
                    &sealed.0,
                )?,
            };
            env_plain.push(format!("{}={value}", var.name));
        }
        // A switch the agent did not finish (it died between removing the previous container
        // and renaming its replacement): the replacement is the container.
        let next_name = format!("{name}{NEXT_SUFFIX}");
        if !existing.contains_key(&name) {
            if let Some(next) = existing.remove(&next_name) {
                self.containers
                    .rename(&next.id, &name)
                    .await
                    .map_err(|e| e.to_string())?;
                existing.insert(
                    name.clone(),
                    ActualContainer {
                        name: name.clone(),
                        ..next
                    },
                );
            }
        }
        // Addresses: asked for, kept from the running container, or the first free one.
        let current = existing.get(&name);
        let mut addresses = Vec::new();
        for a in attachments {
            let cidr = networks
                .get(&a.network)
                .ok_or_else(|| format!("network {} is not ready", a.network))?;
            let ip = match &a.ip {
                Some(ip) => ip
                    .parse::<Ipv4Addr>()
                    .map_err(|_| format!("invalid ip {ip}"))?,
                None => match current
                    .and_then(|c| c.labels.get(&format!("{LABEL_IP_PREFIX}{}", a.network)))
                {
                    Some(kept) => kept
                        .parse()
                        .map_err(|_| format!("invalid kept ip {kept}"))?,
                    None => self.free_ip(r, &a.network, cidr, existing)?,
                },
            };
            addresses.push((a.network.clone(), ip, cidr.prefix));
        }
        let spec_hash = hex(&blake2_256(
            &(
                &w.spec,
                &addresses
                    .iter()
                    .map(|(n, ip, p)| (n, ip.octets(), p))
                    .collect::<Vec<_>>(),
            )
                .encode(),
        ));
        let mut labels = BTreeMap::from([
            (LABEL_RESERVATION.to_string(), r.id.to_string()),
            (LABEL_VERSION.to_string(), r.version.to_string()),
            (LABEL_WORKLOAD.to_string(), w.name.clone()),
            (LABEL_OWNER.to_string(), r.owner.to_string()),
            (LABEL_SPEC.to_string(), spec_hash.clone()),
        ]);
        for (network, ip, _) in &addresses {
            labels.insert(format!("{LABEL_IP_PREFIX}{network}"), ip.to_string());
        }
        let ips: Vec<String> = addresses
            .iter()
            .map(|(n, ip, _)| format!("{n}:{ip}"))
            .collect();

        let auth = match registry_auth {
            None => None,
            Some(sealed) => {
                let text = self.open_secret(r, w, SealPurpose::RegistryAuth, &sealed.0)?;
                Some(RegistryAuth::parse(&text).ok_or(
                    "the sealed registry credentials are not username:password".to_string(),
                )?)
            }
        };
        // Asked even for a container that runs already: it gives the digest, and a container
        // that runs keeps running whatever the registry says now.
        let image_status = self.images.ensure(image, auth.as_ref(), *rootfs_size).await;
        let image_size = match &image_status {
            ImageStatus::Ready { size, .. } => *size,
            _ => 0,
        };
        if let Some(c) = current {
            if c.labels.get(LABEL_SPEC) == Some(&spec_hash) {
                let image_digest = match &image_status {
                    ImageStatus::Ready { digest, .. } => digest.clone(),
                    _ => String::new(),
                };
                // Adopt: it is what the reservation asks for.
                let id = c.id.clone();
                match (c.state, paused) {
                    (ContainerState::Running, true) => self
                        .containers
                        .pause(&id)
                        .await
                        .map_err(|e| e.to_string())?,
                    (ContainerState::Paused, false) => self
                        .containers
                        .resume(&id)
                        .await
                        .map_err(|e| e.to_string())?,
                    _ => {}
                }
                if let Some(why) = self.rootfs.stopped(&id) {
                    return Err(why);
                }
                if c.state == ContainerState::Running && self.rootfs.due(&id) {
                    let written = self
                        .containers
                        .rootfs_written(&id)
                        .await
                        .map_err(|e| e.to_string())?;
                    if written.saturating_add(image_size) > *rootfs_size {
                        let why = format!(
                            "stopped: its image ({image_size} bytes) and what it wrote to its \
                             root filesystem ({written} bytes) take more than its rootfsSize of \
                             {rootfs_size} (use a volume for data)"
                        );
                        self.containers.stop(&id).await.map_err(|e| e.to_string())?;
                        self.rootfs.record_stop(&id, &why);
                        return Err(why);
                    }
                }
                // Docker restarts it by its policy; the chain hears of every exit (from the
                // event stream, at the next block) with its cause, and of the restart count.
                let life = self.containers.life(&id).await.map_err(|e| e.to_string())?;
                if let Some(reason) = life.failure {
                    let restarts = match life.restarts {
                        0 => String::new(),
                        n => format!(" (restarted {n} times)"),
                    };
                    return Err(match (life.will_restart, restart) {
                        (true, _) => format!("{reason}; restarting{restarts}"),
                        (false, RestartPolicy::Never) => format!("{reason}{restarts}"),
                        (false, _) => format!("{reason}; not restarted again{restarts}"),
                    });
                }
                let data = ResultData::Container {
                    container_id: id,
                    ips,
                    image_digest,
                    restarts: life.restarts,
                };
                return Ok(match life.unhealthy {
                    Some(message) => ContainerOutcome::Unhealthy { message, data },
                    None => ContainerOutcome::Running(data),
                });
            }
        }
        let image_digest = match image_status {
            ImageStatus::Ready { digest, size } if size > *rootfs_size => {
                return Err(format!(
                    "image {image} ({digest}) takes {size} bytes, more than the workload's \
                     rootfsSize of {rootfs_size}; the image counts against it"
                ))
            }
            ImageStatus::Ready { digest, .. } => digest,
            ImageStatus::Pulling => return Ok(ContainerOutcome::Pulling),
            ImageStatus::Failed(message) => return Err(message),
        };
        let running = current
            .filter(|c| c.state == ContainerState::Running && !paused)
            .map(|c| c.id.clone());
        let spec = ContainerSpec {
            name: name.clone(),
            image: image.clone(),
            cpu: *cpu,
            memory: *memory,
            entrypoint: entrypoint.clone(),
            env: env_plain,
            mounts: mounts
                .iter()
                .map(|m| (self.container_name(r.id, &m.volume), m.path.clone()))
                .collect(),
            labels: labels.clone(),
            restart: *restart,
            health_check: health_check.clone(),
        };
        if let Some(previous) = running {
            // The deployment changed and the container serves: replace it without downtime.
            let data = ResultData::Container {
                container_id: previous.clone(),
                ips,
                image_digest,
                restarts: 0,
            };
            return self
                .replace_running(r, previous, spec, &addresses, data, existing, summary)
                .await;
        }
        if let Some(c) = existing.remove(&name) {
            // The deployment changed and the container does not run: replace it.
            self.containers
                .remove(&c.id)
                .await
                .map_err(|e| e.to_string())?;
            summary.removed += 1;
        }
        let (id, pid) = self
            .containers
            .create_and_start(&spec)
            .await
            .map_err(|e| e.to_string())?;
        summary.created += 1;
        if let Err(e) = self.attach_networks(r, &name, pid, &addresses).await {
            // A half-connected container is no use: remove it and report why.
            let _ = self.containers.remove(&id).await;
            return Err(e);
        }
        if paused {
            self.containers
                .pause(&id)
                .await
                .map_err(|e| e.to_string())?;
        }
        existing.insert(
            name.clone(),
            ActualContainer {
                id: id.clone(),
                name,
                labels,
                state: ContainerState::Running,
            },
        );
        let data = ResultData::Container {
            container_id: id,
            ips,
            image_digest,
            restarts: 0,
        };
        // A fresh container with a health check has not passed it yet.
        Ok(match health_check {
            Some(_) => ContainerOutcome::Unhealthy {
                message: "health check not run yet".into(),
                data,
            },
            None => ContainerOutcome::Running(data),
        })
    }

    /// Connects the container `name` (init `pid`) to its networks at `addresses`. Attaching
    /// replaces the host end of an earlier container of the same name, which cuts that one off.
    async fn attach_networks(
        &self,
        r: &Reservation,
        name: &str,
        pid: u32,
        addresses: &[(String, Ipv4Addr, u8)],
    ) -> Result<(), String> {
        for (i, (network, ip, prefix)) in addresses.iter().enumerate() {
            let bridge = self
                .networks
                .bridge_for(&r.owner, network)
                .await
                .map_err(|e| e.to_string())?;
            let host_if = self
                .networks
                .veth_for(name, network)
                .await
                .map_err(|e| e.to_string())?;
            self.networks
                .attach(&bridge, pid, &host_if, &format!("eth{i}"), *ip, *prefix)
                .await
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// An update of a running container, without downtime: the new container (`<name>.next`)
    /// starts beside the old one, off the networks; once it runs (and passes its health check,
    /// if it has one) it takes over the old one's interfaces (same addresses, same MAC
    /// addresses, so peers' ARP caches stay right), the old one is removed and the new one
    /// renamed. Until then the old one serves and the workload is `Unhealthy` saying so; a new
    /// container that does not run leaves the old one running and the result says why. Each
    /// step is found again by the next pass, so the agent may die anywhere in between.
    #[allow(clippy::too_many_arguments)]
    async fn replace_running(
        &self,
        r: &Reservation,
        previous: String,
        spec: ContainerSpec,
        addresses: &[(String, Ipv4Addr, u8)],
        previous_data: ResultData,
        existing: &mut BTreeMap<String, ActualContainer>,
        summary: &mut PassSummary,
    ) -> Result<ContainerOutcome, String> {
        let name = spec.name.clone();
        let next_name = format!("{name}{NEXT_SUFFIX}");
        let wanted_spec = spec.labels.get(LABEL_SPEC).cloned();
        // A replacement made for an earlier version of the deployment is no use.
        if let Some(stale) = existing
            .get(&next_name)
            .filter(|n| n.labels.get(LABEL_SPEC) != wanted_spec.as_ref())
        {
            self.containers
                .remove(&stale.id)
                .await
                .map_err(|e| e.to_string())?;
            existing.remove(&next_name);
            summary.removed += 1;
        }
        let next_id = match existing.get(&next_name) {
            Some(next) => next.id.clone(),
            None => {
                let next_spec = ContainerSpec {
                    name: next_name.clone(),
                    ..spec.clone()
                };
                let (id, _) = self
                    .containers
                    .create_and_start(&next_spec)
                    .await
                    .map_err(|e| {
                        format!(
                            "the new version cannot start ({e}); the previous one keeps running"
                        )
                    })?;
                summary.created += 1;
                existing.insert(
                    next_name.clone(),
                    ActualContainer {
                        id: id.clone(),
                        name: next_name.clone(),
                        labels: spec.labels.clone(),
                        state: ContainerState::Running,
                    },
                );
                id
            }
        };
        let life = self
            .containers
            .life(&next_id)
            .await
            .map_err(|e| e.to_string())?;
        if let Some(reason) = life.failure {
            return Err(format!(
                "the new version does not run ({reason}); the previous one keeps running"
            ));
        }
        if let Some(probe) = life.unhealthy {
            return Ok(ContainerOutcome::Unhealthy {
                message: format!(
                    "the new version is not healthy yet ({probe}); the previous one keeps serving"
                ),
                data: previous_data,
            });
        }
        // The switch: interfaces first (the old container is cut off as its host ends are
        // replaced), then the old container goes and the new one takes its name.
        let pid = self
            .containers
            .pid(&next_id)
            .await
            .map_err(|e| e.to_string())?;
        self.attach_networks(r, &name, pid, addresses).await?;
        self.containers
            .remove(&previous)
            .await
            .map_err(|e| e.to_string())?;
        existing.remove(&name);
        summary.removed += 1;
        self.containers
            .rename(&next_id, &name)
            .await
            .map_err(|e| e.to_string())?;
        existing.remove(&next_name);
        existing.insert(
            name.clone(),
            ActualContainer {
                id: next_id.clone(),
                name,
                labels: spec.labels.clone(),
                state: ContainerState::Running,
            },
        );
        let ResultData::Container {
            ips, image_digest, ..
        } = previous_data
        else {
            return Err("internal: container data expected".into());
        };
        Ok(ContainerOutcome::Running(ResultData::Container {
            container_id: next_id,
            ips,
            image_digest,
            restarts: 0,
        }))
    }

    /// The lowest host address of `cidr` (after the first) not used on this owner's network.
    fn free_ip(
        &self,
        r: &Reservation,
        network: &str,
        cidr: &Cidr,
        existing: &BTreeMap<String, ActualContainer>,
    ) -> Result<Ipv4Addr, String> {
        let IpAddr::V4(base) = cidr.addr else {
            return Err("only IPv4 networks are supported".into());
        };
        let owner = r.owner.to_string();
        let label = format!("{LABEL_IP_PREFIX}{network}");
        let used: BTreeSet<Ipv4Addr> = existing
            .values()
            .filter(|c| c.labels.get(LABEL_OWNER) == Some(&owner))
            .filter_map(|c| c.labels.get(&label)?.parse().ok())
            .collect();
        let size = 1u64 << (32 - u32::from(cidr.prefix.min(32)));
        let base = u32::from(base)
            & (u32::MAX
                .checked_shl(32 - u32::from(cidr.prefix))
                .unwrap_or(0));
        (2..size.saturating_sub(1))
            .map(|host| Ipv4Addr::from(base + host as u32))
            .find(|ip| !used.contains(ip))
            .ok_or_else(|| format!("network {network} has no free address"))
    }
}

/// Namespaces this agent manages are named `r<id>-<workload>`.
fn is_ours(namespace: &str) -> bool {
    namespace
        .strip_prefix('r')
        .and_then(|rest| rest.split_once('-'))
        .is_some_and(|(id, _)| id.parse::<u64>().is_ok())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_are_cut_to_what_the_chain_accepts() {
        let long = "é".repeat(reservations::MAX_TEXT_LEN);
        let result = fit_for_chain(WorkloadResult {
            name: "web".into(),
            state: WorkloadState::Error,
            message: long.clone(),
            data: ResultData::Container {
                container_id: "c".into(),
                ips: vec![long.clone(); 100],
                image_digest: long,
                restarts: 0,
            },
        });
        assert!(result.message.len() <= reservations::MAX_TEXT_LEN);
        assert!(result.message.ends_with('…'));
        let ResultData::Container { ips, .. } = &result.data else {
            panic!("container data")
        };
        // With the container id and the image digest: the chain's 64 fields.
        assert_eq!(ips.len(), 62);
        assert!(ips.iter().all(|ip| ip.len() <= reservations::MAX_TEXT_LEN));
    }

    #[test]
    fn failed_reports_back_off_until_they_succeed() {
        let backoff = ReportBackoff::default();
        assert!(backoff.due(1, 1));
        backoff.failed(1, 1);
        assert!(!backoff.due(1, 1), "retried at once");
        assert!(backoff.due(1, 2), "a new version is reported at once");
        backoff.succeeded(1, 1);
        assert!(backoff.due(1, 1));
    }

    #[test]
    fn a_flapping_workload_is_reported_in_a_burst_then_once_a_minute() {
        let refill = Duration::from_secs(60);
        let pacer = ReportPacer::new(refill);
        let start = Instant::now();
        // Four reports at once (a version's Pulling, Ok, then two changes).
        for _ in 0..4 {
            assert!(pacer.allow(1, 1, true, start));
        }
        assert!(!pacer.allow(1, 1, true, start), "a fifth at once");
        // A minute later, one token: enough for a state change, not for data alone.
        let later = start + refill;
        assert!(!pacer.allow(1, 1, false, later));
        assert!(pacer.allow(1, 1, true, later));
        assert!(!pacer.allow(1, 1, true, later));
        // Another version or reservation has its own tokens.
        assert!(pacer.allow(1, 2, true, later));
        assert!(pacer.allow(2, 1, true, later));
        // Long quiet: back to the burst, not beyond.
        let much_later = later + 100 * refill;
        for _ in 0..4 {
            assert!(pacer.allow(1, 1, true, much_later));
        }
        assert!(!pacer.allow(1, 1, true, much_later));
        pacer.retain(&BTreeSet::new());
        assert!(pacer.tokens.lock().unwrap().is_empty());
    }

    #[test]
    fn only_reservation_namespaces_are_ours() {
        assert!(is_ours("r12-store"));
        assert!(!is_ours("default"));
        assert!(!is_ours("rogue"));
        assert!(!is_ours("r-x"));
    }
}
