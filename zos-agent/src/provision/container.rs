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
    models::{
        ContainerCreateBody, ContainerSummaryStateEnum, HealthConfig, HealthStatusEnum, HostConfig,
        HostConfigLogConfig, Mount, MountType, RestartPolicy as DockerRestartPolicy,
        RestartPolicyNameEnum,
    },
    query_parameters::{
        CreateContainerOptions, EventsOptions, InspectContainerOptions, ListContainersOptions,
        RemoveContainerOptions, RenameContainerOptions, StartContainerOptions,
    },
    Docker,
};
use futures::StreamExt;
use gridchain_runtime::reservations::{ContainerLimits, HealthCheck, HealthProbe, RestartPolicy};
use std::{
    collections::{BTreeMap, HashMap},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};

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
    /// Command split into words as a POSIX shell does (quotes, no expansion); empty runs the
    /// image's default.
    pub entrypoint: String,
    /// `NAME=value`, secrets already opened.
    pub env: Vec<String>,
    /// Docker volume name → path in the container.
    pub mounts: Vec<(String, String)>,
    pub labels: BTreeMap<String, String>,
    /// Done by Docker itself, so a crash is followed by a restart at once; the agent reports
    /// what happened from Docker's events ([`Containers::watch_events`]).
    pub restart: RestartPolicy,
    /// Run by Docker inside the container ([`health_test`]).
    pub health_check: Option<HealthCheck>,
}

/// Docker's `healthcheck.test` for a probe: the user's command through `sh`; HTTP and TCP
/// probes as argument lists, so a path from the chain is never read by a shell.
pub fn health_test(probe: &HealthProbe) -> Vec<String> {
    let words = |w: &[&str]| w.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    match probe {
        HealthProbe::Command { command } => words(&["CMD-SHELL", command]),
        HealthProbe::Http { port, path } => words(&[
            "CMD",
            "wget",
            "-q",
            "-O",
            "/dev/null",
            &format!("http://127.0.0.1:{port}{path}"),
        ]),
        HealthProbe::Tcp { port } => {
            words(&["CMD", "nc", "-z", "-w", "2", "127.0.0.1", &port.to_string()])
        }
    }
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
    /// Its process ended and Docker is about to start it again (restart policy).
    Restarting,
    /// Created, exited, dead or anything else that is not running.
    Stopped,
}

/// A Docker failure, with Docker's own words (e.g. "No such image: x").
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ContainerError(pub String);

/// Something Docker reported about a reservation's container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerEvent {
    pub reservation: u64,
    pub workload: String,
    /// `started`, `exited`, `oom`, `restarted`, `health`.
    pub kind: String,
    pub message: String,
}

impl ContainerEvent {
    /// From a Docker event's action and its actor's attributes (the container's labels among
    /// them); `None` for containers that are not a reservation's.
    fn from_docker(action: &str, attributes: &HashMap<String, String>) -> Option<ContainerEvent> {
        let reservation = attributes.get(LABEL_RESERVATION)?.parse().ok()?;
        let workload = attributes.get(LABEL_WORKLOAD)?.clone();
        let (kind, message) = match action {
            "start" => ("started", String::new()),
            "die" => (
                "exited",
                format!(
                    "exit code {}",
                    attributes.get("exitCode").map_or("?", String::as_str)
                ),
            ),
            "oom" => ("oom", "killed: out of memory".to_string()),
            "restart" => ("restarted", String::new()),
            health if health.starts_with("health_status") => (
                "health",
                health
                    .trim_start_matches("health_status")
                    .trim_start_matches(':')
                    .trim()
                    .to_string(),
            ),
            _ => return None,
        };
        Some(ContainerEvent {
            reservation,
            workload,
            kind: kind.to_string(),
            message,
        })
    }
}

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
    /// Set when Docker reports that one of this node's containers died, was OOM-killed,
    /// started or restarted: the agent runs a pass at once.
    changed: Arc<AtomicBool>,
}

/// What Docker says about a container's life so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerLife {
    /// Times Docker started it again under its restart policy.
    pub restarts: u32,
    /// Why it is not running (exit code, OOM, Docker's error); `None` while it runs.
    pub failure: Option<String>,
    /// Not running, and its restart policy says it runs again.
    pub will_restart: bool,
    /// Docker is about to start it again (its restart manager took it up).
    pub restarting: bool,
    /// With a health check, while it has not passed (yet): what the last probe printed.
    pub unhealthy: Option<String>,
}

impl Containers {
    /// Containers of the node tagged `node_tag` (see `reconcile::node_tag`) on `docker`.
    pub fn new(docker: Docker, node_tag: &str) -> Self {
        Containers {
            docker,
            node_label: node_tag.to_string(),
            changed: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Follows Docker's event stream for this node's containers (die, oom, start, restart,
    /// health) in the background, for as long as the agent runs; reconnects when the stream
    /// ends. Each event of a reservation's container goes to `on_event`.
    pub fn watch_events(
        &self,
        on_event: impl Fn(ContainerEvent) + Send + 'static,
    ) -> tokio::task::JoinHandle<()> {
        let (docker, changed) = (self.docker.clone(), self.changed.clone());
        let filters = HashMap::from([
            ("type".to_string(), vec!["container".to_string()]),
            (
                "label".to_string(),
                vec![format!("{LABEL_NODE}={}", self.node_label)],
            ),
            (
                "event".to_string(),
                ["die", "oom", "start", "restart", "health_status"]
                    .map(String::from)
                    .to_vec(),
            ),
        ]);
        tokio::spawn(async move {
            loop {
                let mut events = docker.events(Some(EventsOptions {
                    filters: Some(filters.clone()),
                    ..Default::default()
                }));
                while let Some(event) = events.next().await {
                    match event {
                        Ok(event) => {
                            let actor = event.actor.unwrap_or_default();
                            let attributes = actor.attributes.unwrap_or_default();
                            let action = event.action.as_deref().unwrap_or("");
                            tracing::info!(
                                action,
                                container = attributes.get("name").map_or("", String::as_str),
                                exit_code = attributes.get("exitCode").map_or("", String::as_str),
                                "container event"
                            );
                            if let Some(event) = ContainerEvent::from_docker(action, &attributes) {
                                on_event(event);
                            }
                            changed.store(true, Ordering::Release);
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "Docker event stream failed");
                            break;
                        }
                    }
                }
                // Whatever happened while the stream was down is found by the next pass.
                changed.store(true, Ordering::Release);
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        })
    }

    /// Whether a container event arrived since the last call.
    pub fn take_changed(&self) -> bool {
        self.changed.swap(false, Ordering::AcqRel)
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
                    Some(ContainerSummaryStateEnum::RESTARTING) => ContainerState::Restarting,
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
        // Split as a POSIX shell splits words (quotes group, no expansion), so
        // `sh -c 'sleep 1; exit 3'` is three words.
        let entrypoint: Vec<String> = shlex::split(&spec.entrypoint).ok_or_else(|| {
            ContainerError(format!(
                "entrypoint has an unbalanced quote: {}",
                spec.entrypoint
            ))
        })?;
        let body = ContainerCreateBody {
            image: Some(spec.image.clone()),
            entrypoint: (!entrypoint.is_empty()).then_some(entrypoint),
            env: Some(spec.env.clone()),
            labels: Some(labels),
            healthcheck: spec.health_check.as_ref().map(|h| {
                let seconds = |s: u32| i64::from(s) * 1_000_000_000;
                HealthConfig {
                    test: Some(health_test(&h.probe)),
                    interval: Some(seconds(h.interval_secs)),
                    timeout: Some(seconds(h.timeout_secs)),
                    retries: Some(i64::from(h.retries)),
                    ..Default::default()
                }
            }),
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
                // Whatever the daemon's defaults: a workload's output cannot fill the node's
                // disk (at most 3 files of 10 MiB; `grid reservation logs` reads them).
                log_config: Some(HostConfigLogConfig {
                    typ: Some("json-file".into()),
                    config: Some(HashMap::from([
                        ("max-size".to_string(), "10m".to_string()),
                        ("max-file".to_string(), "3".to_string()),
                    ])),
                }),
                mounts: Some(mounts),
                restart_policy: Some(match spec.restart {
                    RestartPolicy::Always => DockerRestartPolicy {
                        name: Some(RestartPolicyNameEnum::ALWAYS),
                        maximum_retry_count: None,
                    },
                    RestartPolicy::OnFailure { max_retries } => DockerRestartPolicy {
                        name: Some(RestartPolicyNameEnum::ON_FAILURE),
                        maximum_retry_count: Some(i64::from(max_retries)),
                    },
                    RestartPolicy::Never => DockerRestartPolicy {
                        name: Some(RestartPolicyNameEnum::NO),
                        maximum_retry_count: None,
                    },
                }),
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

    /// Gives container `id` the name `name` (an update's replacement taking over).
    pub async fn rename(&self, id: &str, name: &str) -> Result<(), ContainerError> {
        self.docker
            .rename_container(
                id,
                RenameContainerOptions {
                    name: name.to_string(),
                },
            )
            .await?;
        Ok(())
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

    /// How often Docker restarted a container, and why it is not running (if it is not).
    pub async fn life(&self, id: &str) -> Result<ContainerLife, ContainerError> {
        let inspect = self
            .docker
            .inspect_container(id, None::<InspectContainerOptions>)
            .await?;
        let restarts = inspect
            .restart_count
            .unwrap_or(0)
            .clamp(0, i64::from(u32::MAX)) as u32;
        let state = inspect.state.unwrap_or_default();
        let failure = (state.running != Some(true) || state.restarting == Some(true))
            .then(|| Self::stopped_reason(&state));
        // Whether Docker will start it again by its policy (it may sit `exited` for a moment
        // before its restart delay makes it `restarting`).
        let policy = inspect.host_config.and_then(|h| h.restart_policy);
        let will_restart = state.restarting == Some(true)
            || match policy.as_ref().and_then(|p| p.name) {
                Some(RestartPolicyNameEnum::ALWAYS | RestartPolicyNameEnum::UNLESS_STOPPED) => true,
                Some(RestartPolicyNameEnum::ON_FAILURE) => {
                    state.exit_code.is_some_and(|code| code != 0)
                        && i64::from(restarts)
                            < policy
                                .as_ref()
                                .and_then(|p| p.maximum_retry_count)
                                .unwrap_or(0)
                }
                _ => false,
            };
        let unhealthy = state.health.as_ref().and_then(|health| {
            let last = health.log.as_ref().and_then(|log| log.last()).map(|probe| {
                format!(
                    "exit code {}: {}",
                    probe.exit_code.unwrap_or(-1),
                    probe.output.as_deref().unwrap_or("").trim()
                )
            });
            match health.status {
                Some(HealthStatusEnum::HEALTHY) | Some(HealthStatusEnum::NONE) | None => None,
                Some(HealthStatusEnum::STARTING) => Some(match last {
                    Some(last) => format!("health check not passed yet (last probe {last})"),
                    None => "health check not run yet".to_string(),
                }),
                Some(_) => Some(format!(
                    "health check failing (last probe {})",
                    last.unwrap_or_default()
                )),
            }
        });
        Ok(ContainerLife {
            restarts,
            failure,
            will_restart,
            restarting: state.restarting == Some(true),
            unhealthy,
        })
    }

    /// The CPU, memory and pids limits Docker applies to a container (its rootfs is the
    /// agent's to report).
    pub async fn limits(&self, id: &str) -> Result<ContainerLimits, ContainerError> {
        let host = self
            .docker
            .inspect_container(id, None::<InspectContainerOptions>)
            .await?
            .host_config
            .unwrap_or_default();
        let clamp = |v: Option<i64>, max: u64| v.unwrap_or(0).clamp(0, max as i64) as u64;
        Ok(ContainerLimits {
            cpu_millicores: clamp(host.nano_cpus.map(|n| n / 1_000_000), u32::MAX.into()) as u32,
            memory: clamp(host.memory, i64::MAX as u64),
            pids: clamp(host.pids_limit, u32::MAX.into()) as u32,
            ..Default::default()
        })
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

    /// Bytes the container wrote to its root filesystem (its writable layer; volumes are not in
    /// it). Docker walks the layer to count them, so callers ask now and then, not every pass.
    pub async fn rootfs_written(&self, id: &str) -> Result<u64, ContainerError> {
        let inspect = self
            .docker
            .inspect_container(id, Some(InspectContainerOptions { size: true }))
            .await?;
        Ok(inspect.size_rw.unwrap_or(0).max(0) as u64)
    }

    /// Stops a container for good: Docker does not restart a container stopped by request.
    pub async fn stop(&self, id: &str) -> Result<(), ContainerError> {
        Ok(self
            .docker
            .stop_container(
                id,
                Some(bollard::query_parameters::StopContainerOptions {
                    t: Some(0),
                    ..Default::default()
                }),
            )
            .await?)
    }

    /// Starts a stopped container again.
    pub async fn start(&self, id: &str) -> Result<(), ContainerError> {
        Ok(self
            .docker
            .start_container(id, None::<bollard::query_parameters::StartContainerOptions>)
            .await?)
    }

    pub async fn pause(&self, id: &str) -> Result<(), ContainerError> {
        Ok(self.docker.pause_container(id).await?)
    }

    pub async fn resume(&self, id: &str) -> Result<(), ContainerError> {
        Ok(self.docker.unpause_container(id).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_users_own_command_goes_through_a_shell() {
        let http = HealthProbe::Http {
            port: 8080,
            path: "/x'; rm -rf /; '".into(),
        };
        let test = health_test(&http);
        assert_eq!(test[0], "CMD");
        assert_eq!(
            test.last().map(String::as_str),
            Some("http://127.0.0.1:8080/x'; rm -rf /; '")
        );
        assert_eq!(
            health_test(&HealthProbe::Tcp { port: 5432 }),
            ["CMD", "nc", "-z", "-w", "2", "127.0.0.1", "5432"]
        );
        assert_eq!(
            health_test(&HealthProbe::Command {
                command: "cat /ready".into()
            }),
            ["CMD-SHELL", "cat /ready"]
        );
    }
}
