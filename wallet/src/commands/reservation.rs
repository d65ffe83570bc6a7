//! `grid reserve` and `grid reservation list|show|watch|update|cancel`: workloads on 3Nodes
//! (`logs|exec|events` are in [`super::owner`]).
//!
//! Deployments come from a YAML or JSON file ([`crate::deployment`]); their secrets are sealed to
//! the target node's account, read with `grid_getNode`, before the transaction is signed, each
//! bound to this chain's genesis hash, the signer (the owner), the node, its workload and its
//! env name or zdb password: the node opens it in that reservation only.

use crate::{
    accounts::{resolve_account, resolve_signer, KeystoreLocation},
    amount::format_grid,
    deployment::{format_resources, format_size, DeploymentFile, SealTarget},
    failure::Failure,
    output::{OutputFormat, Progress, Rendered},
    rpc::{Node, NodeClient},
};
use anyhow::{anyhow, bail, Result};
use clap::{Args, Subcommand};
use gridchain_primitives::{
    wireguard::{self, WireguardSecret},
    AccountId, Hash, Pair,
};
use gridchain_rpc_api::GridApiClient;
use gridchain_runtime::{
    reservations::{
        self, DeletionReason, EnvValue, Reservation, ReservationId, ReservationState, ResultData,
        RootfsEnforcement, WorkloadResult, WorkloadSpec, WorkloadState, ZdbMode,
    },
    tfgrid::NodeId,
    Call, Event,
};
use serde_json::json;
use std::{
    collections::BTreeMap,
    path::PathBuf,
    time::{Duration, Instant},
};

use super::{
    owner::{OwnerRequest, What},
    submit::{find_event, genesis_hash, submit_call, transaction_json},
};

/// How often `reservation watch` reads the reservation.
const WATCH_INTERVAL: Duration = Duration::from_millis(500);

const DEPLOYMENT_HELP: &str = "\
The deployment file is YAML (JSON if its name ends in .json): metadata and named
workloads of type container, zdb, network or volume. Sizes take units (64MiB, 1GiB).
Env values marked `secret: true` and zdb passwords are written in clear in the file
and sealed by `grid` to the node's key for this reservation (chain, owner, node,
workload, env name): they never leave this machine in clear, and copied into
someone else's reservation they do not open.
Format: wallet/README.md; examples: examples/*.yaml.";

#[derive(Debug, Args)]
#[command(after_help = DEPLOYMENT_HELP)]
pub struct ReserveArgs {
    /// The node to deploy on.
    #[arg(long, value_name = "ID")]
    pub node: NodeId,
    /// Deployment file (YAML, or JSON by extension).
    pub file: PathBuf,
    /// Signing key (the owner, who needs a twin): key name or secret URI.
    #[arg(long, value_name = "NAME|SECRET_URI")]
    pub from: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum ReservationCommand {
    /// List the reservations of an owner (deleted ones included) or of a node (live ones).
    List {
        /// Owner: address or key name.
        #[arg(long, value_name = "ADDRESS|KEY", conflicts_with = "node")]
        owner: Option<String>,
        /// Node id.
        #[arg(long, value_name = "ID")]
        node: Option<NodeId>,
    },
    /// Show a reservation: state, resources, billing, and each workload with the node's result.
    Show {
        /// Reservation id.
        id: ReservationId,
    },
    /// Follow each workload's state until all are Ok (exit 0) or one fails (exit 5, with the
    /// node's message).
    Watch {
        /// Reservation id.
        id: ReservationId,
        /// Give up (exit 1) after this many seconds [default: wait forever].
        #[arg(long, value_name = "SECONDS")]
        timeout: Option<u64>,
    },
    /// Replace a reservation's deployment (owner only; version + 1).
    #[command(after_help = DEPLOYMENT_HELP)]
    Update {
        /// Reservation id.
        id: ReservationId,
        /// Deployment file (YAML, or JSON by extension).
        file: PathBuf,
        /// Signing key (the owner): key name or secret URI.
        #[arg(long, value_name = "NAME|SECRET_URI")]
        from: Option<String>,
    },
    /// Cancel a reservation (owner only): the node removes its workloads and billing stops.
    Cancel {
        /// Reservation id.
        id: ReservationId,
        /// Signing key (the owner): key name or secret URI.
        #[arg(long, value_name = "NAME|SECRET_URI")]
        from: Option<String>,
    },
    /// Print a container workload's output, from the node (owner only).
    Logs {
        /// Reservation id.
        id: ReservationId,
        /// Container workload [default: all of them, each line prefixed with its name].
        workload: Option<String>,
        /// Keep printing new output until interrupted.
        #[arg(long, short)]
        follow: bool,
        /// Only the last N lines.
        #[arg(long, value_name = "N")]
        tail: Option<u32>,
        /// Only output of the last SECONDS.
        #[arg(long, value_name = "SECONDS")]
        since: Option<u64>,
        /// Signing key (the owner): key name or secret URI.
        #[arg(long, value_name = "NAME|SECRET_URI")]
        from: Option<String>,
    },
    /// Run a command in a container workload, on the node (owner only); exits with its code.
    #[command(
        after_help = "Examples:\n  grid reservation exec 7 web -- cat /etc/hostname\n  grid reservation exec 7 web -it -- sh"
    )]
    Exec {
        /// Reservation id.
        id: ReservationId,
        /// Container workload.
        workload: String,
        /// Keep stdin open (always on; accepted for docker's spelling).
        #[arg(short, long)]
        interactive: bool,
        /// Allocate a terminal (for a shell); stdin must be one.
        #[arg(short, long)]
        tty: bool,
        /// Signing key (the owner): key name or secret URI.
        #[arg(long, value_name = "NAME|SECRET_URI")]
        from: Option<String>,
        /// The command and its arguments, after `--`.
        #[arg(last = true, required = true)]
        cmd: Vec<String>,
    },
    /// Print a WireGuard config (for `wg-quick`) that joins this machine to a reservation's
    /// private network across nodes, as the owner's peer the deployment lists without a key.
    #[command(
        after_help = "Example:\n  grid reservation vpn 7 > gridnet.conf && sudo wg-quick up ./gridnet.conf"
    )]
    Vpn {
        /// Reservation id (any member of the mesh).
        id: ReservationId,
        /// The network workload [default: the reservation's only mesh network].
        #[arg(long, value_name = "NAME")]
        network: Option<String>,
        /// Signing key (the owner): key name or secret URI. Its seed derives the peer's key.
        #[arg(long, value_name = "NAME|SECRET_URI")]
        from: Option<String>,
    },
    /// What happened to a reservation's workloads on its node: pulls, starts, exits, OOM kills,
    /// restarts, health, reported states, commands run (owner only).
    Events {
        /// Reservation id.
        id: ReservationId,
        /// Signing key (the owner): key name or secret URI.
        #[arg(long, value_name = "NAME|SECRET_URI")]
        from: Option<String>,
    },
}

pub enum ReservationRequest {
    Reserve {
        signer: Pair,
        node_id: NodeId,
        file: DeploymentFile,
    },
    ListByOwner(AccountId),
    ListByNode(NodeId),
    Show(ReservationId),
    Watch {
        id: ReservationId,
        timeout: Option<Duration>,
    },
    Update {
        signer: Pair,
        id: ReservationId,
        file: DeploymentFile,
    },
    Cancel {
        signer: Pair,
        id: ReservationId,
    },
    Vpn {
        signer: Pair,
        id: ReservationId,
        network: Option<String>,
    },
    /// Logs, exec, events: from the node, not the chain.
    Owner(OwnerRequest),
}

impl ReservationRequest {
    pub fn prepare_reserve(args: ReserveArgs, keystore: &KeystoreLocation) -> Result<Self> {
        let file = DeploymentFile::load(&args.file)?;
        Ok(ReservationRequest::Reserve {
            signer: resolve_signer(args.from.as_deref(), keystore)?,
            node_id: args.node,
            file,
        })
    }

    pub fn prepare(command: ReservationCommand, keystore: &KeystoreLocation) -> Result<Self> {
        let owner = |id, what, from: Option<String>| {
            OwnerRequest::prepare(id, what, from.as_deref(), keystore)
                .map(ReservationRequest::Owner)
        };
        Ok(match command {
            ReservationCommand::List {
                owner: Some(owner), ..
            } => ReservationRequest::ListByOwner(resolve_account(&owner, keystore)?),
            ReservationCommand::List {
                node: Some(node), ..
            } => ReservationRequest::ListByNode(node),
            ReservationCommand::List { .. } => {
                bail!("give --owner ADDRESS|KEY or --node ID")
            }
            ReservationCommand::Show { id } => ReservationRequest::Show(id),
            ReservationCommand::Watch { id, timeout } => ReservationRequest::Watch {
                id,
                timeout: timeout.map(Duration::from_secs),
            },
            ReservationCommand::Update { id, file, from } => {
                let file = DeploymentFile::load(&file)?;
                ReservationRequest::Update {
                    signer: resolve_signer(from.as_deref(), keystore)?,
                    id,
                    file,
                }
            }
            ReservationCommand::Cancel { id, from } => ReservationRequest::Cancel {
                signer: resolve_signer(from.as_deref(), keystore)?,
                id,
            },
            ReservationCommand::Logs {
                id,
                workload,
                follow,
                tail,
                since,
                from,
            } => {
                let since_secs = since.map(|s| {
                    std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |now| now.as_secs().saturating_sub(s))
                });
                let what = What::Logs {
                    workload,
                    follow,
                    tail,
                    since_secs,
                };
                owner(id, what, from)?
            }
            ReservationCommand::Exec {
                id,
                workload,
                interactive: _,
                tty,
                from,
                cmd,
            } => owner(id, What::Exec { workload, cmd, tty }, from)?,
            ReservationCommand::Events { id, from } => owner(id, What::Events, from)?,
            ReservationCommand::Vpn { id, network, from } => ReservationRequest::Vpn {
                signer: resolve_signer(from.as_deref(), keystore)?,
                id,
                network,
            },
        })
    }

    pub async fn execute<C: NodeClient>(
        self,
        node: &Node<'_, C>,
        format: OutputFormat,
    ) -> Result<Rendered> {
        let mut progress = Progress::new(format);
        match self {
            ReservationRequest::Reserve {
                signer,
                node_id,
                file,
            } => {
                let genesis = genesis_hash(node).await?;
                let deployment = file.to_deployment_with(
                    &SealTarget {
                        genesis,
                        owner: signer.public(),
                        node: node_account(node, node_id).await?,
                    },
                    Some(&|network| own_peer_secret(&signer, &genesis, network).public()),
                )?;
                let call = Call::Reservations(reservations::Call::Reserve {
                    node_id,
                    deployment,
                });
                let info = submit_call(node, &signer, call, &mut progress).await?;
                let id = find_event(&info, |e| match e {
                    Event::Reservations(reservations::Event::Reserved { id, .. }) => Some(*id),
                    _ => None,
                })
                .ok_or_else(|| {
                    anyhow!("transaction {} succeeded but reserved nothing", info.hash)
                })?;
                let text = format!(
                    "reservation {id} created on node {node_id}\ntransaction {} in block #{}\nfollow it with: grid reservation watch {id}",
                    info.hash, info.block_number
                );
                let json = json!({
                    "id": id,
                    "nodeId": node_id,
                    "owner": signer.public(),
                    "transaction": transaction_json(&info),
                });
                Ok(Rendered::new(json, text))
            }
            ReservationRequest::ListByOwner(owner) => {
                let list = node
                    .read(node.client.reservations_by_owner(owner.to_string(), None))
                    .await?;
                Ok(render_list(&list, &format!("of {owner}")))
            }
            ReservationRequest::ListByNode(node_id) => {
                let list = node
                    .read(node.client.reservations_by_node(node_id, None))
                    .await?;
                Ok(render_list(&list, &format!("on node {node_id}")))
            }
            ReservationRequest::Show(id) => {
                let r = fetch(node, id).await?;
                Ok(Rendered::new(
                    serde_json::to_value(&r)?,
                    reservation_text(&r),
                ))
            }
            ReservationRequest::Watch { id, timeout } => watch(node, id, timeout, format).await,
            ReservationRequest::Vpn {
                signer,
                id,
                network,
            } => vpn(node, &signer, id, network).await,
            ReservationRequest::Update { signer, id, file } => {
                let current = fetch(node, id).await?;
                // Sealed for the signer, who must be the owner (the chain refuses anyone else).
                let genesis = genesis_hash(node).await?;
                let deployment = file.to_deployment_with(
                    &SealTarget {
                        genesis,
                        owner: signer.public(),
                        node: node_account(node, current.node_id).await?,
                    },
                    Some(&|network| own_peer_secret(&signer, &genesis, network).public()),
                )?;
                let call =
                    Call::Reservations(reservations::Call::UpdateReservation { id, deployment });
                let info = submit_call(node, &signer, call, &mut progress).await?;
                let version = find_event(&info, |e| match e {
                    Event::Reservations(reservations::Event::ReservationUpdated {
                        version,
                        ..
                    }) => Some(*version),
                    _ => None,
                })
                .unwrap_or(current.version + 1);
                let text = format!(
                    "reservation {id} updated to version {version}\ntransaction {} in block #{}",
                    info.hash, info.block_number
                );
                let json = json!({
                    "id": id,
                    "version": version,
                    "transaction": transaction_json(&info),
                });
                Ok(Rendered::new(json, text))
            }
            ReservationRequest::Owner(request) => request.execute(node).await,
            ReservationRequest::Cancel { signer, id } => {
                let call = Call::Reservations(reservations::Call::CancelReservation { id });
                let info = submit_call(node, &signer, call, &mut progress).await?;
                let text = format!(
                    "reservation {id} canceled\ntransaction {} in block #{}",
                    info.hash, info.block_number
                );
                let json = json!({
                    "id": id,
                    "state": ReservationState::Deleted {
                        reason: DeletionReason::CanceledByUser
                    },
                    "transaction": transaction_json(&info),
                });
                Ok(Rendered::new(json, text))
            }
        }
    }
}

/// The account key of node `node_id`, which its secrets are sealed to.
async fn node_account<C: NodeClient>(node: &Node<'_, C>, node_id: NodeId) -> Result<AccountId> {
    node.read(GridApiClient::node(node.client, node_id, None))
        .await?
        .map(|info| info.node.account)
        .ok_or_else(|| anyhow!("no node {node_id}"))
}

/// The signer's own WireGuard secret for network `network` of chain `genesis`.
fn own_peer_secret(signer: &Pair, genesis: &Hash, network: &str) -> WireguardSecret {
    WireguardSecret::derive(
        &signer.seed(),
        &wireguard::user_context(&genesis.0, network),
    )
}

/// `grid reservation vpn`: a wg-quick config for the signer's own peer of a mesh.
async fn vpn<C: NodeClient>(
    node: &Node<'_, C>,
    signer: &Pair,
    id: ReservationId,
    network: Option<String>,
) -> Result<Rendered> {
    let r = fetch(node, id).await?;
    let meshes: Vec<&str> = r
        .deployment
        .workloads
        .iter()
        .filter(|w| matches!(w.spec, WorkloadSpec::Network { mesh: Some(_), .. }))
        .map(|w| w.name.as_str())
        .collect();
    let network = match (network, meshes.as_slice()) {
        (Some(n), _) if meshes.contains(&n.as_str()) => n,
        (Some(n), _) => bail!("reservation {id} has no mesh network {n:?}"),
        (None, [only]) => only.to_string(),
        (None, []) => bail!("reservation {id} has no network in a mesh"),
        (None, _) => bail!("reservation {id} has several mesh networks; pick one with --network"),
    };
    let genesis = genesis_hash(node).await?;
    let secret = own_peer_secret(signer, &genesis, &network);
    let mesh = node
        .read(node.client.mesh(r.owner.to_string(), network.clone(), None))
        .await?
        .ok_or_else(|| anyhow!("the chain has no mesh {network:?} of {}", r.owner))?;
    let me = mesh
        .peers()
        .into_iter()
        .find(|p| p.public_key == secret.public())
        .ok_or_else(|| {
            anyhow!(
                "{} has no peer in mesh {network:?}: list one (an ip, no publicKey) under the \
                 network's mesh.peers and update a member with this key",
                signer.public()
            )
        })?;
    let mut text = format!(
        "# gridchain mesh {network:?} of {}, range {} (from reservation {id})\n\
         [Interface]\nPrivateKey = {}\nAddress = {}/32\n",
        r.owner,
        mesh.range,
        secret.to_base64().as_str(),
        me.ip
    );
    let mut members = Vec::new();
    for m in &mesh.members {
        match &m.wireguard {
            Some(wg) => {
                text.push_str(&format!(
                    "\n# node {}, reservation {}\n[Peer]\nPublicKey = {}\nEndpoint = {}\n\
                     AllowedIPs = {}\nPersistentKeepalive = 25\n",
                    m.node_id, m.reservation, wg.public_key, wg.endpoint, m.subnet
                ));
                members.push(
                    json!({"nodeId": m.node_id, "subnet": m.subnet, "endpoint": wg.endpoint}),
                );
            }
            None => text.push_str(&format!(
                "\n# node {} (reservation {}, {}) has not reported its WireGuard key yet\n",
                m.node_id, m.reservation, m.subnet
            )),
        }
    }
    // The config holds a private key: JSON output carries it too, only in `config`.
    Ok(Rendered::new(
        json!({"network": network, "address": me.ip, "members": members, "config": text}),
        text.trim_end().to_string(),
    ))
}

async fn fetch<C: NodeClient>(node: &Node<'_, C>, id: ReservationId) -> Result<Reservation> {
    node.read(GridApiClient::reservation(node.client, id, None))
        .await?
        .ok_or_else(|| anyhow!("no reservation {id}"))
}

pub fn state_text(state: &ReservationState) -> String {
    match state {
        ReservationState::Created => "created (waiting for the node)".into(),
        ReservationState::Deployed => "deployed".into(),
        ReservationState::Failed => "failed".into(),
        ReservationState::GracePeriod { since_ms } => {
            format!("grace period since {since_ms} ms (out of funds: workloads paused)")
        }
        ReservationState::Deleted { reason } => format!("deleted ({})", reason_text(*reason)),
    }
}

fn reason_text(reason: DeletionReason) -> &'static str {
    match reason {
        DeletionReason::CanceledByUser => "canceled by user",
        DeletionReason::OutOfFunds => "out of funds",
        DeletionReason::NodeDeleted => "node deleted",
        DeletionReason::CapacityLost => "capacity lost during its grace period",
    }
}

fn workload_state_text(state: WorkloadState) -> &'static str {
    match state {
        WorkloadState::Ok => "ok",
        WorkloadState::Error => "error",
        WorkloadState::Paused => "paused",
        WorkloadState::Deleted => "deleted",
        WorkloadState::Pulling => "pulling image",
        WorkloadState::Unhealthy => "unhealthy",
    }
}

fn spec_text(spec: &WorkloadSpec) -> String {
    match spec {
        WorkloadSpec::Container {
            image,
            cpu,
            memory,
            rootfs_size,
            env,
            mounts,
            networks,
            ..
        } => {
            let sealed = env
                .iter()
                .filter(|v| matches!(v.value, EnvValue::Sealed(_)))
                .count();
            format!(
                "container {image}: {cpu} cores, {} memory, {} rootfs, {} env ({sealed} sealed), {} mounts, {} networks",
                format_size(*memory),
                format_size(*rootfs_size),
                env.len(),
                mounts.len(),
                networks.len()
            )
        }
        WorkloadSpec::ZdbNamespace {
            size,
            mode,
            password,
            public,
        } => format!(
            "zdb {} {}{}{}",
            format_size(*size),
            match mode {
                ZdbMode::User => "user",
                ZdbMode::Seq => "seq",
            },
            if password.is_some() {
                ", sealed password"
            } else {
                ""
            },
            if *public { ", public" } else { "" }
        ),
        WorkloadSpec::Network {
            ip_range,
            egress,
            mesh,
        } => {
            let mut text = format!("network {ip_range}");
            if *egress {
                text.push_str(" with egress");
            }
            if let Some(mesh) = mesh {
                text.push_str(&format!(", in mesh {}", mesh.range));
                for peer in &mesh.peers {
                    text.push_str(&format!(", peer {} ({})", peer.ip, peer.public_key));
                }
            }
            text
        }
        WorkloadSpec::Volume { size } => format!("volume {}", format_size(*size)),
        WorkloadSpec::PublicIp { container } => format!("public IP for {container}"),
    }
}

fn data_text(data: &ResultData) -> String {
    match data {
        ResultData::None => String::new(),
        ResultData::Container {
            container_id,
            ips,
            image_digest,
            restarts,
            limits,
        } => {
            let mut text = format!(" [container {container_id}");
            if *restarts > 0 {
                text.push_str(&format!(", restarted {restarts}×"));
            }
            if !ips.is_empty() {
                text.push_str(&format!(", IPs {}", ips.join(", ")));
            }
            if !image_digest.is_empty() {
                text.push_str(&format!(", image {image_digest}"));
            }
            if limits.memory > 0 {
                text.push_str(&format!(
                    ", limits {}.{:03} cpu, {} memory, {} pids, {} rootfs{}",
                    limits.cpu_millicores / 1000,
                    limits.cpu_millicores % 1000,
                    format_size(limits.memory),
                    limits.pids,
                    format_size(limits.rootfs),
                    match limits.rootfs_enforcement {
                        RootfsEnforcement::Measured { every_secs } => {
                            format!(" (measured every {every_secs} s)")
                        }
                        RootfsEnforcement::StorageDriver => " (storage driver)".to_string(),
                        RootfsEnforcement::Unknown => String::new(),
                    }
                ));
            }
            text + "]"
        }
        ResultData::Zdb {
            namespace,
            endpoints,
        } => format!(" [namespace {namespace} at {}]", endpoints.join(", ")),
        ResultData::Network {
            subnet,
            gateway,
            wireguard,
        } => {
            let mut text = format!(" [subnet {subnet}");
            if let Some(gateway) = gateway {
                text.push_str(&format!(", gateway {gateway}"));
            }
            if let Some(wg) = wireguard {
                text.push_str(&format!(", WireGuard {} at {}", wg.public_key, wg.endpoint));
            }
            text + "]"
        }
        ResultData::Volume { path } => format!(" [{path}]"),
        ResultData::PublicIp { ip, container } => format!(" [{ip} → {container}]"),
    }
}

fn result_text(result: Option<&WorkloadResult>) -> String {
    match result {
        None => "pending".into(),
        Some(r) if r.message.is_empty() => {
            format!("{}{}", workload_state_text(r.state), data_text(&r.data))
        }
        Some(r) => format!(
            "{}: {}{}",
            workload_state_text(r.state),
            r.message,
            data_text(&r.data)
        ),
    }
}

fn reservation_text(r: &Reservation) -> String {
    let mut text = format!(
        "reservation {} (version {})\nowner:     {} (twin {})\nnode:      {}\nstate:     {}\ncreated:   block #{}\nmetadata:  {}\nresources: {}\nbilling:   {}/hour now, {} paid\nworkloads:",
        r.id,
        r.version,
        r.owner,
        r.twin_id,
        r.node_id,
        state_text(&r.state),
        r.created_at,
        if r.deployment.metadata.is_empty() { "-" } else { &r.deployment.metadata },
        format_resources(&r.resources),
        format_grid(r.billing.rate_per_hour),
        format_grid(r.billing.total_paid),
    );
    for w in &r.deployment.workloads {
        let result = r.results.iter().find(|res| res.name == w.name);
        let assigned = match r.public_ips.iter().find(|a| a.workload == w.name) {
            Some(a) => format!(" {} (gw {})", a.ip, a.gateway),
            None => String::new(),
        };
        text.push_str(&format!(
            "\n  {:<16} {}{assigned}\n  {:<16} └ {}",
            w.name,
            spec_text(&w.spec),
            "",
            result_text(result)
        ));
    }
    text
}

fn render_list(list: &[Reservation], whose: &str) -> Rendered {
    let mut text = format!("{} reservations {whose}", list.len());
    for r in list {
        text.push_str(&format!(
            "\n  {:>6}  node {:<5} v{:<3} {:<10} {} workloads  {}",
            r.id,
            r.node_id,
            r.version,
            short_state(&r.state),
            r.deployment.workloads.len(),
            r.deployment.metadata
        ));
    }
    let json = serde_json::to_value(list).unwrap_or_default();
    Rendered::new(json, text)
}

fn short_state(state: &ReservationState) -> &'static str {
    match state {
        ReservationState::Created => "created",
        ReservationState::Deployed => "deployed",
        ReservationState::Failed => "failed",
        ReservationState::GracePeriod { .. } => "grace",
        ReservationState::Deleted { .. } => "deleted",
    }
}

/// Follows reservation `id` until every workload is Ok, one fails, or it is deleted; in text
/// mode prints each workload's state as it changes.
async fn watch<C: NodeClient>(
    node: &Node<'_, C>,
    id: ReservationId,
    timeout: Option<Duration>,
    format: OutputFormat,
) -> Result<Rendered> {
    let live = format == OutputFormat::Text;
    let started = Instant::now();
    let mut shown: BTreeMap<String, String> = BTreeMap::new();
    let mut shown_version = None;
    loop {
        let r = fetch(node, id).await?;
        if shown_version != Some(r.version) {
            if live {
                println!(
                    "reservation {id} version {} on node {}: {} workloads",
                    r.version,
                    r.node_id,
                    r.deployment.workloads.len()
                );
            }
            shown.clear();
            shown_version = Some(r.version);
        }
        for w in &r.deployment.workloads {
            let line = result_text(r.results.iter().find(|res| res.name == w.name));
            if shown.get(&w.name) != Some(&line) {
                if live {
                    println!("  {}: {line}", w.name);
                }
                shown.insert(w.name.clone(), line);
            }
        }
        let report = || {
            Box::new(Rendered::new(
                serde_json::to_value(&r).unwrap_or_default(),
                "",
            ))
        };
        if let ReservationState::Deleted { reason } = r.state {
            return Err(Failure::WorkloadFailed {
                summary: format!("reservation {id} was deleted ({})", reason_text(reason)),
                report: report(),
            }
            .into());
        }
        if let Some(failed) = r
            .results
            .iter()
            .find(|res| res.state == WorkloadState::Error)
        {
            return Err(Failure::WorkloadFailed {
                summary: format!(
                    "workload {:?} of reservation {id} failed on node {}: {}",
                    failed.name,
                    r.node_id,
                    if failed.message.is_empty() {
                        "(no message)"
                    } else {
                        &failed.message
                    }
                ),
                report: report(),
            }
            .into());
        }
        let all_ok = r.deployment.workloads.iter().all(|w| {
            r.results
                .iter()
                .any(|res| res.name == w.name && res.state == WorkloadState::Ok)
        });
        if all_ok {
            let text = format!(
                "reservation {id}: all {} workloads ok on node {}",
                r.deployment.workloads.len(),
                r.node_id
            );
            return Ok(Rendered::new(serde_json::to_value(&r)?, text));
        }
        if let Some(limit) = timeout {
            if started.elapsed() >= limit {
                let pending: Vec<&str> = r
                    .deployment
                    .workloads
                    .iter()
                    .filter(|w| {
                        !r.results
                            .iter()
                            .any(|res| res.name == w.name && res.state == WorkloadState::Ok)
                    })
                    .map(|w| w.name.as_str())
                    .collect();
                bail!(
                    "timed out after {} s: reservation {id} still has workloads not ok: {}",
                    limit.as_secs(),
                    pending.join(", ")
                );
            }
        }
        tokio::time::sleep(WATCH_INTERVAL).await;
    }
}
