//! `zos-agent`: runs on a 3Node; see the crate docs.
//!
//! ```text
//! zos-agent --key-file /etc/zos-agent/node.key --farm-id 1 --rpc ws://10.0.0.1:9944 --rpc ws://10.0.0.2:9944
//! zos-agent --config /etc/zos-agent/agent.toml
//! ```

use anyhow::Context;
use clap::Parser;
use gridchain_primitives::{Hash, Pair};
use serde::Deserialize;
use std::{net::SocketAddr, path::PathBuf, time::Duration};
use zos_agent::{
    agent::{run, AgentConfig, MeshConfig, OwnerApiConfig},
    provision::{egress, image::RegistryPolicy},
};

#[derive(Parser)]
#[command(
    name = "zos-agent",
    version,
    about = "Provisions what the final chain reserves on this 3Node"
)]
struct Cli {
    /// TOML file with any of the options below (same names, `_` for `-`); flags win.
    #[arg(long)]
    config: Option<PathBuf>,
    /// File holding the node key's secret URI (mode 0600).
    #[arg(long)]
    key_file: Option<PathBuf>,
    #[arg(long)]
    farm_id: Option<u32>,
    /// Genesis hash (0x…) of the chain to follow: the light client's trust anchor. Without it,
    /// the hash all reachable endpoints agree on at first start is kept in the data directory.
    #[arg(long)]
    genesis_hash: Option<Hash>,
    /// Chain RPC endpoint; repeat for failover.
    #[arg(long)]
    rpc: Vec<String>,
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Address of the node's zdb server.
    #[arg(long)]
    zdb_listen: Option<SocketAddr>,
    /// zdb admin password (also read from ZOS_AGENT_ZDB_ADMIN).
    #[arg(long, env = "ZOS_AGENT_ZDB_ADMIN", hide_env_values = true)]
    zdb_admin_password: Option<String>,
    #[arg(long)]
    zdb_share_percent: Option<u64>,
    #[arg(long)]
    capacity_period_secs: Option<u64>,
    #[arg(long)]
    reconcile_interval_secs: Option<u64>,
    /// Pulled images no live workload used for this long are removed [default: 3600].
    #[arg(long)]
    image_grace_secs: Option<u64>,
    /// Bytes pulled images may take together; beyond it unused ones go first [default: 20 GiB].
    #[arg(long)]
    image_budget_bytes: Option<u64>,
    /// A reservation's results are reported at most 4 times at once, then once per this many
    /// seconds, so a flapping workload cannot make the node pay a fee per flap [default: 60].
    #[arg(long)]
    report_refill_secs: Option<u64>,
    /// Serve the owner API (logs, exec, events for reservation owners) on this address.
    #[arg(long, value_name = "ADDR:PORT")]
    owner_api_listen: Option<SocketAddr>,
    /// Where clients reach the owner API (`host:port`), published as the node twin's endpoint
    /// [default: the listen address, unless it is 0.0.0.0 or [::]].
    #[arg(long, value_name = "HOST:PORT")]
    owner_api_endpoint: Option<String>,
    /// Let pulls reach registries on loopback or private addresses (a dev grid, tests). A real
    /// node must not: tenants name the registry, and its errors are published on chain.
    #[arg(long)]
    allow_private_registries: bool,
    /// Destinations (IPv4 CIDRs) no network with egress may reach, instead of the default list
    /// (every private, shared, link-local, loopback and multicast range); repeat or separate by
    /// commas. Give `none` to deny nothing.
    #[arg(long, value_delimiter = ',', value_name = "CIDR")]
    egress_deny: Vec<String>,
    /// The address other nodes and owners' WireGuard peers reach this node at, for private
    /// networks across nodes [default: the source address of the node's route to the internet].
    #[arg(long, value_name = "ADDR")]
    mesh_endpoint: Option<std::net::IpAddr>,
    /// A mesh network's WireGuard UDP port is this plus its router's index [default: 51820].
    #[arg(long, value_name = "PORT")]
    mesh_port_base: Option<u16>,
    #[arg(long, default_value = "info")]
    log: String,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    key_file: Option<PathBuf>,
    farm_id: Option<u32>,
    genesis_hash: Option<String>,
    #[serde(default)]
    rpc: Vec<String>,
    data_dir: Option<PathBuf>,
    zdb_listen: Option<SocketAddr>,
    zdb_admin_password: Option<String>,
    zdb_share_percent: Option<u64>,
    capacity_period_secs: Option<u64>,
    reconcile_interval_secs: Option<u64>,
    image_grace_secs: Option<u64>,
    image_budget_bytes: Option<u64>,
    #[serde(default)]
    allow_private_registries: bool,
    owner_api_listen: Option<SocketAddr>,
    owner_api_endpoint: Option<String>,
    report_refill_secs: Option<u64>,
    egress_deny: Option<Vec<String>>,
    mesh_endpoint: Option<std::net::IpAddr>,
    mesh_port_base: Option<u16>,
}

fn config(cli: Cli) -> anyhow::Result<AgentConfig> {
    let file: FileConfig = match &cli.config {
        Some(path) => toml::from_str(
            &std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?,
        )
        .with_context(|| format!("invalid config {}", path.display()))?,
        None => FileConfig::default(),
    };
    let key_file = cli
        .key_file
        .or(file.key_file)
        .context("--key-file is required")?;
    // A key file other local users can read would hand them the node's identity.
    let uri = gridchain_primitives::secret_file::read_secret_file(&key_file)?;
    let node_key = Pair::from_uri(&uri).context("invalid node key")?;
    let rpc = if cli.rpc.is_empty() {
        file.rpc
    } else {
        cli.rpc
    };
    let genesis_hash = match cli.genesis_hash {
        Some(h) => Some(h),
        None => file
            .genesis_hash
            .map(|s| s.parse::<Hash>())
            .transpose()
            .map_err(|e| anyhow::anyhow!("invalid genesis_hash: {e}"))?,
    };
    Ok(AgentConfig {
        node_key,
        genesis_hash,
        farm_id: cli
            .farm_id
            .or(file.farm_id)
            .context("--farm-id is required")?,
        rpc: if rpc.is_empty() {
            vec!["ws://127.0.0.1:9944".into()]
        } else {
            rpc
        },
        data_dir: cli
            .data_dir
            .or(file.data_dir)
            .unwrap_or_else(|| PathBuf::from("/var/lib/zos-agent")),
        zdb_listen: cli
            .zdb_listen
            .or(file.zdb_listen)
            .unwrap_or_else(|| "127.0.0.1:9900".parse().expect("valid")),
        zdb_admin_password: cli
            .zdb_admin_password
            .or(file.zdb_admin_password)
            .context("--zdb-admin-password (or ZOS_AGENT_ZDB_ADMIN) is required")?,
        zdb_share_percent: cli
            .zdb_share_percent
            .or(file.zdb_share_percent)
            .unwrap_or(50),
        capacity_period: Duration::from_secs(
            cli.capacity_period_secs
                .or(file.capacity_period_secs)
                .unwrap_or(600),
        ),
        reconcile_interval: Duration::from_secs(
            cli.reconcile_interval_secs
                .or(file.reconcile_interval_secs)
                .unwrap_or(30),
        ),
        image_grace: Duration::from_secs(
            cli.image_grace_secs
                .or(file.image_grace_secs)
                .unwrap_or(3_600),
        ),
        image_budget: cli
            .image_budget_bytes
            .or(file.image_budget_bytes)
            .unwrap_or(20 << 30),
        report_refill: Duration::from_secs(
            cli.report_refill_secs
                .or(file.report_refill_secs)
                .unwrap_or(60),
        ),
        owner_api: owner_api(
            cli.owner_api_listen.or(file.owner_api_listen),
            cli.owner_api_endpoint.or(file.owner_api_endpoint),
        )?,
        registries: if cli.allow_private_registries || file.allow_private_registries {
            RegistryPolicy::AllowPrivate
        } else {
            RegistryPolicy::PublicOnly
        },
        egress_deny: egress_deny(match cli.egress_deny.is_empty() {
            true => file.egress_deny,
            false => Some(cli.egress_deny),
        })?,
        mesh: MeshConfig {
            endpoint: cli.mesh_endpoint.or(file.mesh_endpoint),
            port_base: cli
                .mesh_port_base
                .or(file.mesh_port_base)
                .unwrap_or(MeshConfig::default().port_base),
        },
    })
}

/// The deny list for egress: given (checked), or the default.
fn egress_deny(given: Option<Vec<String>>) -> anyhow::Result<Vec<String>> {
    let Some(given) = given else {
        return Ok(egress::DEFAULT_DENY.iter().map(|s| s.to_string()).collect());
    };
    if given == ["none"] {
        return Ok(Vec::new());
    }
    for range in &given {
        anyhow::ensure!(
            gridchain_runtime::tfgrid::Cidr::parse(range).is_some_and(|c| c.addr.is_ipv4()),
            "--egress-deny: {range} is not an IPv4 CIDR"
        );
    }
    Ok(given)
}

fn owner_api(
    listen: Option<SocketAddr>,
    endpoint: Option<String>,
) -> anyhow::Result<Option<OwnerApiConfig>> {
    let Some(listen) = listen else {
        anyhow::ensure!(
            endpoint.is_none(),
            "--owner-api-endpoint needs --owner-api-listen"
        );
        tracing::warn!(
            "no --owner-api-listen: owners cannot read logs or run commands on this node"
        );
        return Ok(None);
    };
    let endpoint = match endpoint {
        Some(e) => e,
        None if listen.ip().is_unspecified() => anyhow::bail!(
            "--owner-api-endpoint is required when the owner API listens on {listen} (clients need an address they can reach)"
        ),
        None => listen.to_string(),
    };
    Ok(Some(OwnerApiConfig { listen, endpoint }))
}

fn main() {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_new(&cli.log).unwrap_or_else(|_| "info".into());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let result = config(cli).and_then(|config| {
        tokio::runtime::Runtime::new()?.block_on(async {
            tokio::select! {
                r = run(config) => r,
                _ = tokio::signal::ctrl_c() => Ok(()),
            }
        })
    });
    if let Err(e) = result {
        eprintln!("Error: {e:#}");
        std::process::exit(1);
    }
}
