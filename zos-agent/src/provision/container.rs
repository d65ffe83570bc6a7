//! Containers through the Docker Engine API (bollard).
//!
//! Every container the agent creates carries labels saying whose it is
//! (`gridchain.node`, `gridchain.reservation`, `gridchain.version`, `gridchain.workload`,
//! `gridchain.owner`) and a `gridchain.spec` hash of everything it was created from, so
//! `docker ps --filter label=gridchain.node=<id>` lists what the agent owns and the reconciler
//! can tell an up-to-date container from a stale one without remembering anything itself.
//!
//! Containers are unprivileged: every capability dropped but the small set a usual service
//! needs ([`CAPABILITIES`]: no `NET_RAW`, `NET_ADMIN`, `SYS_*`, `MKNOD`, `SETPCAP`, `SETFCAP`,
//! `AUDIT_WRITE`), `no-new-privileges`, a pids limit. They have no network of Docker's
//! (`network_mode: none`; private networks are attached by [`super::network`]), IPv6 is off in
//! their network namespace (the host filters IPv4 only), and they mount nothing of the host
//! except their own Docker volumes.

use bollard::{
    errors::Error as DockerError,
    models::{ContainerCreateBody, ContainerSummaryStateEnum, HostConfig, Mount, MountType},
    query_parameters::{
        CreateContainerOptions, InspectContainerOptions, ListContainersOptions,
        RemoveContainerOptions, StartContainerOptions,
    },
    Docker,
};
use std::collections::{BTreeMap, HashMap};

pub const LABEL_NODE: &str = "gridchain.node";
pub const LABEL_RESERVATION: &str = "gridchain.reservation";
pub const LABEL_VERSION: &str = "gridchain.version";
pub const LABEL_WORKLOAD: &str = "gridchain.workload";
pub const LABEL_OWNER: &str = "gridchain.owner";
pub const LABEL_SPEC: &str = "gridchain.spec";

/// The capabilities a workload keeps (all others are dropped): owning and accessing its own
/// files, signals, switching to an unprivileged user, and binding ports below 1024.
pub const CAPABILITIES: [&str; 8] = [
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "NET_BIND_SERVICE",
];

/// What a container is created from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerSpec {
    /// Docker name, unique per node.
    pub name: String,
    pub image: String,
    /// Logical cores (CPU time limit).
    pub cpu: u32,
    /// Bytes; the container is killed past it.
    pub memory: u64,
    /// Command split on whitespace; empty runs the image's default.
    pub entrypoint: String,
    /// `NAME=value`, secrets already opened.
    pub env: Vec<String>,
    /// Docker volume name → path in the container.
    pub mounts: Vec<(String, String)>,
    pub labels: BTreeMap<String, String>,
}

/// A container the agent finds on the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActualContainer {
    pub id: String,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub state: ContainerState,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerState {
    Running,
    Paused,
    /// Created, exited, dead or anything else that is not running.
    Stopped,
}

/// A Docker failure, with Docker's own words (e.g. "No such image: x").
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ContainerError(pub String);

impl From<DockerError> for ContainerError {
    fn from(e: DockerError) -> Self {
        match e {
            DockerError::DockerResponseServerError { message, .. } => ContainerError(message),
            other => ContainerError(other.to_string()),
        }
    }
}

#[derive(Clone)]
pub struct Containers {
    docker: Docker,
    node_label: String,
}

impl Containers {
    /// Containers of the node tagged `node_tag` (see `reconcile::node_tag`) on `docker`.
    pub fn new(docker: Docker, node_tag: &str) -> Self {
        Containers {
            docker,
            node_label: node_tag.to_string(),
        }
    }

    pub fn docker(&self) -> &Docker {
        &self.docker
    }

    /// Every container labelled as this node's, running or not.
    pub async fn list(&self) -> Result<Vec<ActualContainer>, ContainerError> {
        let filters = HashMap::from([(
            "label".to_string(),
            vec![format!("{LABEL_NODE}={}", self.node_label)],
        )]);
        let summaries = self
            .docker
            .list_containers(Some(ListContainersOptions {
                all: true,
                filters: Some(filters),
                ..Default::default()
            }))
            .await?;
        Ok(summaries
            .into_iter()
            .map(|s| ActualContainer {
                id: s.id.unwrap_or_default(),
                name: s
                    .names
                    .and_then(|n| n.into_iter().next())
                    .map(|n| n.trim_start_matches('/').to_string())
                    .unwrap_or_default(),
                labels: s.labels.unwrap_or_default().into_iter().collect(),
                state: match s.state {
                    Some(ContainerSummaryStateEnum::RUNNING) => ContainerState::Running,
                    Some(ContainerSummaryStateEnum::PAUSED) => ContainerState::Paused,
                    _ => ContainerState::Stopped,
                },
            })
            .collect())
    }

    /// Creates and starts a container; returns its id and init pid.
    pub async fn create_and_start(
        &self,
        spec: &ContainerSpec,
    ) -> Result<(String, u32), ContainerError> {
        let mut labels: HashMap<String, String> = spec.labels.clone().into_iter().collect();
        labels.insert(LABEL_NODE.into(), self.node_label.clone());
        let mounts = spec
            .mounts
            .iter()
            .map(|(volume, path)| Mount {
                typ: Some(MountType::VOLUME),
                source: Some(volume.clone()),
                target: Some(path.clone()),
                read_only: Some(false),
                ..Default::default()
            })
            .collect();
        let entrypoint: Vec<String> = spec
            .entrypoint
            .split_whitespace()
            .map(str::to_string)
            .collect();
        let body = ContainerCreateBody {
            image: Some(spec.image.clone()),
            entrypoint: (!entrypoint.is_empty()).then_some(entrypoint),
            env: Some(spec.env.clone()),
            labels: Some(labels),
            host_config: Some(HostConfig {
                nano_cpus: Some(i64::from(spec.cpu) * 1_000_000_000),
                memory: Some(i64::try_from(spec.memory).unwrap_or(i64::MAX)),
                memory_swap: Some(i64::try_from(spec.memory).unwrap_or(i64::MAX)),
                network_mode: Some("none".into()),
                security_opt: Some(vec!["no-new-privileges".into()]),
                cap_drop: Some(vec!["ALL".into()]),
                cap_add: Some(CAPABILITIES.iter().map(|c| c.to_string()).collect()),
                sysctls: Some(HashMap::from([
                    (
                        "net.ipv6.conf.all.disable_ipv6".to_string(),
                        "1".to_string(),
                    ),
                    (
                        "net.ipv6.conf.default.disable_ipv6".to_string(),
                        "1".to_string(),
                    ),
                ])),
                privileged: Some(false),
                pids_limit: Some(4_096),
                mounts: Some(mounts),
                ..Default::default()
            }),
            ..Default::default()
        };
        let created = self
            .docker
            .create_container(
                Some(CreateContainerOptions {
                    name: Some(spec.name.clone()),
                    ..Default::default()
                }),
                body,
            )
            .await?;
        if let Err(e) = self
            .docker
            .start_container(&created.id, None::<StartContainerOptions>)
            .await
        {
            // Do not leave a created-but-dead container behind.
            let _ = self.remove(&created.id).await;
            return Err(e.into());
        }
        let pid = self.pid(&created.id).await?;
        Ok((created.id, pid))
    }

    /// The init pid of a running container (its network namespace is `/proc/<pid>/ns/net`).
    pub async fn pid(&self, id: &str) -> Result<u32, ContainerError> {
        let inspect = self
            .docker
            .inspect_container(id, None::<InspectContainerOptions>)
            .await?;
        let state = inspect.state.unwrap_or_default();
        match state.pid {
            Some(pid) if pid > 0 => Ok(pid as u32),
            _ => Err(ContainerError(Self::stopped_reason(&state))),
        }
    }

    /// Why a container is not running, in words a user can act on.
    pub async fn failure(&self, id: &str) -> Result<Option<String>, ContainerError> {
        let inspect = self
            .docker
            .inspect_container(id, None::<InspectContainerOptions>)
            .await?;
        let state = inspect.state.unwrap_or_default();
        if state.running == Some(true) {
            return Ok(None);
        }
        Ok(Some(Self::stopped_reason(&state)))
    }

    fn stopped_reason(state: &bollard::models::ContainerState) -> String {
        if state.oom_killed == Some(true) {
            return "out of memory: the container exceeded its memory limit".into();
        }
        match (&state.error, state.exit_code) {
            (Some(e), _) if !e.is_empty() => e.clone(),
            (_, Some(code)) => format!("container exited with code {code}"),
            _ => "container is not running".into(),
        }
    }

    /// Removes a container (running or not) and its anonymous volumes. Missing is fine.
    pub async fn remove(&self, id_or_name: &str) -> Result<(), ContainerError> {
        match self
            .docker
            .remove_container(
                id_or_name,
                Some(RemoveContainerOptions {
                    force: true,
                    v: true,
                    ..Default::default()
                }),
            )
            .await
        {
            Ok(()) => Ok(()),
            Err(DockerError::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn pause(&self, id: &str) -> Result<(), ContainerError> {
        Ok(self.docker.pause_container(id).await?)
    }

    pub async fn resume(&self, id: &str) -> Result<(), ContainerError> {
        Ok(self.docker.unpause_container(id).await?)
    }
}
