//! `container`: a Docker container with its image pulled from a registry, its secrets opened
//! in their own context, its networks attached through veths, its volumes mounted, its restart
//! policy and health check, its rootfs size watched, and updates without downtime.
//!
//! For each container workload a pass:
//! 1. opens its sealed env values and registry credentials (only in their context);
//! 2. finishes a switch to a replacement that an earlier agent did not finish;
//! 3. picks its addresses (asked for, kept from the running container, or the first free one
//!    of the network's range, which the network's own result gives);
//! 4. asks for its image ([`crate::provision::image`]): `Pulling` while it is pulled;
//! 5. adopts a container with the same spec hash (pausing or resuming it with the grace
//!    period, checking its rootfs size and its life: exits, restarts, health), or replaces one
//!    that runs without downtime ([`ContainerKind::replace_running`]), or creates it.
//!
//! Containers are named [`container_name`]; a replacement in progress is `<name>.next`.

use super::{container_name, Outcome, PassSummary, ReservationPass, Secrets, WorkloadKind};
use crate::provision::{
    container::{
        ActualContainer, ContainerSpec, ContainerState, Containers, LABEL_OWNER, LABEL_RESERVATION,
        LABEL_SPEC, LABEL_VERSION, LABEL_WORKLOAD,
    },
    image::{ImageStatus, Images, RegistryAuth},
    network::Networks,
};
use async_trait::async_trait;
use gridchain_primitives::{hash::blake2_256, seal::SealPurpose};
use gridchain_runtime::{
    reservations::{
        ContainerLimits, EnvValue, Reservation, RestartPolicy, ResultData, RootfsEnforcement,
        Workload, WorkloadSpec,
    },
    tfgrid::Cidr,
};
use parity_scale_codec::Encode;
use std::{
    collections::{BTreeMap, BTreeSet},
    net::{IpAddr, Ipv4Addr},
    time::{Duration, Instant},
};

/// Suffix of the container that replaces a running one during an update (see
/// [`ContainerKind::replace_running`]).
pub const NEXT_SUFFIX: &str = ".next";

/// How long a container whose policy says it runs may stay stopped before the node starts it
/// itself (Docker restarts a crashed one within this; one stopped by hand, never).
const MANUAL_STOP_GRACE: Duration = Duration::from_secs(5);

/// A container's place on one of its networks.
struct Address {
    network: String,
    ip: Ipv4Addr,
    prefix: u8,
    /// Its default route, through the network's egress router.
    gateway: Option<Ipv4Addr>,
}

/// Label holding a container's address on one of its networks: `gridchain.ip.<network>`.
const LABEL_IP_PREFIX: &str = "gridchain.ip.";

pub struct ContainerKind {
    pub containers: Containers,
    pub images: Images,
    /// Pulled images no live workload uses are removed after this long …
    pub image_grace: Duration,
    /// … or at once while the images take more than this many bytes.
    pub image_budget: u64,
    pub networks: Networks,
    pub secrets: Secrets,
    pub node_tag: String,
    /// Root filesystem sizes (see [`RootfsGuard`]).
    pub rootfs: RootfsGuard,
    /// Containers stopped although their policy says they run, since when (see
    /// [`MANUAL_STOP_GRACE`]).
    pub stopped_since: std::sync::Mutex<BTreeMap<String, Instant>>,
    /// This node's containers as the last [`WorkloadKind::remove_unwanted`] left them, by
    /// name; each ensure keeps it current (addresses in use are read from it).
    pub existing: tokio::sync::Mutex<BTreeMap<String, ActualContainer>>,
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

impl ContainerKind {
    /// `data` with the limits its container runs under, as Docker reports them (left unknown
    /// if Docker cannot say: the result is still worth reporting).
    async fn with_limits(&self, mut data: ResultData, spec: &WorkloadSpec) -> ResultData {
        let (
            ResultData::Container {
                container_id,
                limits,
                ..
            },
            WorkloadSpec::Container { rootfs_size, .. },
        ) = (&mut data, spec)
        else {
            return data;
        };
        match self.containers.limits(container_id).await {
            Ok(applied) => {
                *limits = ContainerLimits {
                    rootfs: *rootfs_size,
                    rootfs_enforcement: RootfsEnforcement::Measured {
                        every_secs: RootfsGuard::EVERY.as_secs() as u32,
                    },
                    ..applied
                }
            }
            Err(e) => {
                tracing::warn!(container = %container_id, error = %e, "cannot read its limits")
            }
        }
        data
    }

    async fn ensure_container(
        &self,
        w: &Workload,
        pass: &mut ReservationPass<'_>,
        existing: &mut BTreeMap<String, ActualContainer>,
    ) -> Result<Outcome, String> {
        let (r, paused) = (pass.reservation, pass.paused);
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
        let name = container_name(&self.node_tag, r.id, &w.name);
        let mut env_plain = Vec::new();
        for var in env {
            let value = match &var.value {
                EnvValue::Plain(v) => v.clone(),
                EnvValue::Sealed(sealed) => self.secrets.open(
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
            // The network's own workload, ensured earlier in this pass, gives its range.
            let (cidr, gateway) = match pass.ready(&a.network) {
                Some(ResultData::Network {
                    subnet, gateway, ..
                }) => (
                    Cidr::parse(subnet)
                        .ok_or_else(|| format!("network {} has an invalid range", a.network))?,
                    gateway
                        .as_ref()
                        .map(|g| g.parse::<Ipv4Addr>())
                        .transpose()
                        .map_err(|_| format!("network {} has an invalid gateway", a.network))?,
                ),
                _ => return Err(format!("network {} is not ready", a.network)),
            };
            let cidr = &cidr;
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
            if Some(ip) == gateway {
                return Err(format!("{ip} is the gateway of network {}", a.network));
            }
            // Only the first network with a way out routes the container's default.
            let routed = addresses.iter().any(|a: &Address| a.gateway.is_some());
            addresses.push(Address {
                network: a.network.clone(),
                ip,
                prefix: cidr.prefix,
                gateway: gateway.filter(|_| !routed),
            });
        }
        let spec_hash = hex(&blake2_256(
            &(
                &w.spec,
                &addresses
                    .iter()
                    .map(|a| {
                        (
                            &a.network,
                            a.ip.octets(),
                            a.prefix,
                            a.gateway.map(|g| g.octets()),
                        )
                    })
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
        for a in &addresses {
            labels.insert(format!("{LABEL_IP_PREFIX}{}", a.network), a.ip.to_string());
        }
        let ips: Vec<String> = addresses
            .iter()
            .map(|a| format!("{}:{}", a.network, a.ip))
            .collect();

        let auth = match registry_auth {
            None => None,
            Some(sealed) => {
                let text = self
                    .secrets
                    .open(r, w, SealPurpose::RegistryAuth, &sealed.0)?;
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
                // Docker ignores the policy of a container stopped by hand (`docker stop` or
                // `kill`): once it has stayed stopped for `MANUAL_STOP_GRACE`, the node starts
                // it, as its reservation says it runs.
                if life.failure.is_some() && life.will_restart && !life.restarting && !paused {
                    let since = *self
                        .stopped_since
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .entry(id.clone())
                        .or_insert_with(Instant::now);
                    if since.elapsed() >= MANUAL_STOP_GRACE {
                        self.containers
                            .start(&id)
                            .await
                            .map_err(|e| e.to_string())?;
                        self.stopped_since
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .remove(&id);
                    }
                } else {
                    self.stopped_since
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .remove(&id);
                }
                // A start (Docker's restart after a crash, or the one above) gives the
                // container a new network namespace, without the interfaces the node put in
                // the old one: put them back.
                if life.failure.is_none() && !paused {
                    let mut attached = true;
                    for a in &addresses {
                        let host_if = self
                            .networks
                            .veth_for(&name, &a.network)
                            .await
                            .map_err(|e| e.to_string())?;
                        attached &= self
                            .networks
                            .has_link(&host_if)
                            .await
                            .map_err(|e| e.to_string())?;
                    }
                    if !attached {
                        let pid = self.containers.pid(&id).await.map_err(|e| e.to_string())?;
                        self.attach_networks(r, &name, pid, &addresses).await?;
                    }
                }
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
                    limits: Default::default(),
                };
                return Ok(match life.unhealthy {
                    Some(message) => Outcome::Unhealthy { message, data },
                    None => Outcome::Ready(data),
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
            ImageStatus::Pulling => return Ok(Outcome::Pulling(format!("pulling {image}"))),
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
                .map(|m| {
                    (
                        container_name(&self.node_tag, r.id, &m.volume),
                        m.path.clone(),
                    )
                })
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
                limits: Default::default(),
            };
            return self
                .replace_running(r, previous, spec, &addresses, data, existing, pass.summary)
                .await;
        }
        if let Some(c) = existing.remove(&name) {
            // The deployment changed and the container does not run: replace it.
            self.containers
                .remove(&c.id)
                .await
                .map_err(|e| e.to_string())?;
            pass.summary.removed += 1;
        }
        let (id, pid) = self
            .containers
            .create_and_start(&spec)
            .await
            .map_err(|e| e.to_string())?;
        pass.summary.created += 1;
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
            limits: Default::default(),
        };
        // A fresh container with a health check has not passed it yet.
        Ok(match health_check {
            Some(_) => Outcome::Unhealthy {
                message: "health check not run yet".into(),
                data,
            },
            None => Outcome::Ready(data),
        })
    }

    /// Connects the container `name` (init `pid`) to its networks at `addresses`. Attaching
    /// replaces the host end of an earlier container of the same name, which cuts that one off.
    async fn attach_networks(
        &self,
        r: &Reservation,
        name: &str,
        pid: u32,
        addresses: &[Address],
    ) -> Result<(), String> {
        for (i, a) in addresses.iter().enumerate() {
            let bridge = self
                .networks
                .bridge_for(&r.owner, &a.network)
                .await
                .map_err(|e| e.to_string())?;
            let host_if = self
                .networks
                .veth_for(name, &a.network)
                .await
                .map_err(|e| e.to_string())?;
            self.networks
                .attach(
                    &bridge,
                    pid,
                    &host_if,
                    &format!("eth{i}"),
                    (a.ip, a.prefix),
                    a.gateway,
                )
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
        addresses: &[Address],
        previous_data: ResultData,
        existing: &mut BTreeMap<String, ActualContainer>,
        summary: &mut PassSummary,
    ) -> Result<Outcome, String> {
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
            return Ok(Outcome::Unhealthy {
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
        Ok(Outcome::Ready(ResultData::Container {
            container_id: next_id,
            ips,
            image_digest,
            restarts: 0,
            limits: Default::default(),
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

#[async_trait]
impl WorkloadKind for ContainerKind {
    fn kind(&self) -> &'static str {
        "container"
    }

    /// After the networks and volumes they use.
    fn stage(&self) -> u8 {
        1
    }

    async fn remove_unwanted(&self, live: &[&Reservation]) -> anyhow::Result<usize> {
        let mut wanted = BTreeSet::new();
        let mut attachments = BTreeSet::new();
        for r in live {
            for w in &r.deployment.workloads {
                if let WorkloadSpec::Container { networks, .. } = &w.spec {
                    let name = container_name(&self.node_tag, r.id, &w.name);
                    for n in networks {
                        attachments.insert((name.clone(), n.network.clone()));
                    }
                    wanted.insert(name);
                }
            }
        }
        // A replacement in progress is wanted with its container.
        let is_wanted = |name: &str| {
            wanted.contains(name)
                || name
                    .strip_suffix(NEXT_SUFFIX)
                    .is_some_and(|n| wanted.contains(n))
        };
        let mut removed = 0;
        let mut existing = BTreeMap::new();
        for c in self.containers.list().await? {
            if is_wanted(&c.name) {
                existing.insert(c.name.clone(), c);
            } else {
                self.containers.remove(&c.id).await?;
                removed += 1;
            }
        }
        self.networks.retain_veths(&attachments).await?;
        self.rootfs
            .retain(&existing.values().map(|c| c.id.as_str()).collect());
        let ids: BTreeSet<&str> = existing.values().map(|c| c.id.as_str()).collect();
        self.stopped_since
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|id, _| ids.contains(id.as_str()));
        *self.existing.lock().await = existing;
        Ok(removed)
    }

    async fn ensure(&self, w: &Workload, pass: &mut ReservationPass<'_>) -> Outcome {
        let mut existing = self.existing.lock().await;
        match self.ensure_container(w, pass, &mut existing).await {
            Ok(Outcome::Ready(data)) => Outcome::Ready(self.with_limits(data, &w.spec).await),
            Ok(Outcome::Unhealthy { message, data }) => Outcome::Unhealthy {
                message,
                data: self.with_limits(data, &w.spec).await,
            },
            Ok(outcome) => outcome,
            Err(why) => Outcome::Failed(why),
        }
    }

    async fn finish_pass(&self, live: &[&Reservation]) {
        let wanted: BTreeSet<String> = live
            .iter()
            .flat_map(|r| &r.deployment.workloads)
            .filter_map(|w| match &w.spec {
                WorkloadSpec::Container { image, .. } => Some(image.clone()),
                _ => None,
            })
            .collect();
        self.images
            .collect_garbage(&wanted, self.image_grace, self.image_budget)
            .await;
    }

    /// A pull that ended (either way) changes what the node can run, and a container that
    /// died, was OOM-killed or restarted changes what to report.
    fn take_changed(&self) -> bool {
        // Both flags are cleared.
        self.images.take_settled() | self.containers.take_changed()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
