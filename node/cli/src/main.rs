//! `gridnode`: runs a gridchain node.
//!
//! ```text
//! gridnode --dev                       # single-validator dev chain on a throwaway base path
//! gridnode --chain local --base-path /var/lib/gridnode --validator --key "<secret uri>"
//! gridnode build-spec --chain dev      # print a chain spec to start a new network from
//! ```

mod dev_registry;
mod local_testnet;

use anyhow::Context;
use clap::{Parser, Subcommand};
use gridchain_chain_spec::ChainSpec;
use gridchain_primitives::Pair;
use gridchain_service::NodeConfig;
use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    path::PathBuf,
};

#[derive(Parser)]
#[command(
    name = "gridnode",
    version,
    about = "A gridchain node: the chain that orchestrates the grid"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,

    /// Development chain: `--chain dev`, validator key //Alice, and `--tmp` unless
    /// `--base-path` is given.
    #[arg(long)]
    dev: bool,

    /// Chain spec: `dev`, `local`, or a path to a JSON file.
    #[arg(long)]
    chain: Option<String>,

    /// Where the node keeps its data (default: ~/.local/share/gridchain).
    #[arg(long, short = 'd')]
    base_path: Option<PathBuf>,

    /// Use a temporary base path, deleted when the node stops.
    #[arg(long, conflicts_with = "base_path")]
    tmp: bool,

    /// JSON-RPC port (HTTP and WebSocket).
    #[arg(long, default_value_t = 9944)]
    rpc_port: u16,

    /// Listen for RPC on all interfaces instead of 127.0.0.1. Exposes transaction submission
    /// and chain data to the network: put it behind a proxy you trust.
    #[arg(long)]
    rpc_external: bool,

    /// Browser origins allowed to use the RPC: `all`, or a comma-separated list such as
    /// `http://localhost:*,https://polkadot.js.org`. Requests from other web pages are refused
    /// (403); clients that send no Origin (CLIs, scripts, agents) are not affected. Default:
    /// `all` with --dev, otherwise localhost/127.0.0.1 on any port and https://polkadot.js.org.
    #[arg(long, value_name = "ORIGINS")]
    rpc_cors: Option<String>,

    /// libp2p port (default 30333; with --dev any free port, since a dev chain needs no peers).
    #[arg(long)]
    port: Option<u16>,

    /// Listen for p2p on all interfaces instead of 127.0.0.1.
    #[arg(long)]
    p2p_external: bool,

    /// Peers to connect to, as `/ip4/<ip>/tcp/<port>/p2p/<peer id>` (repeatable).
    #[arg(long, num_args = 1..)]
    bootnodes: Vec<String>,

    /// Take part in consensus: propose and vote (needs --key, or --dev). Without it the node
    /// follows the chain and verifies every commit certificate.
    #[arg(long)]
    validator: bool,

    /// Secret URI of the validator key (`//Alice`, a BIP39 phrase, or 0x seed); also read from
    /// GRIDNODE_KEY. On the command line it is visible to every local user (`ps`): prefer
    /// --key-file or the environment variable.
    #[arg(long, env = "GRIDNODE_KEY", hide_env_values = true)]
    key: Option<String>,

    /// File holding the validator key's secret URI; refused unless only its owner may read it
    /// (mode 0600 or 0400).
    #[arg(long, value_name = "PATH", conflicts_with = "key")]
    key_file: Option<PathBuf>,

    /// Human-readable node name (system_name).
    #[arg(long, default_value = "gridnode")]
    name: String,

    /// Log filter, e.g. `info`, `debug`, `gridchain_service=debug`. The consensus engine's and
    /// libp2p's own logs stay at `warn` unless named, e.g. `arc_malachitebft_core_consensus=info`.
    #[arg(long, short = 'l', default_value = "info")]
    log: String,

    /// Time between blocks in milliseconds (default: the chain spec's).
    #[arg(long)]
    block_time_ms: Option<u64>,

    /// Prometheus metrics port.
    #[arg(long, default_value_t = 9615)]
    prometheus_port: u16,

    /// Do not serve Prometheus metrics.
    #[arg(long)]
    no_prometheus: bool,

    /// With --dev: do not start the local 3Node agent (zos-agent) and its zdb.
    #[arg(long)]
    no_agent: bool,

    /// With --dev: do not start the explorer web UI.
    #[arg(long)]
    no_explorer: bool,

    /// With --dev: port of the explorer web UI (127.0.0.1).
    #[arg(long, default_value_t = 8080)]
    explorer_port: u16,

    /// With --dev: port of the local node's zdb server.
    #[arg(long, default_value_t = 9900)]
    zdb_port: u16,

    /// With --dev: port of the local node's owner API (logs, exec, events; 127.0.0.1).
    #[arg(long, default_value_t = 9955)]
    owner_api_port: u16,

    /// With --dev: also run a container registry (Debian's docker-registry) on 127.0.0.1,
    /// holding the local test image as 127.0.0.1:<port>/gridchain/busybox:latest, so
    /// deployments pull their image (examples/registry.yaml).
    #[arg(long)]
    registry: bool,

    /// With --dev --registry: the registry's port.
    #[arg(long, default_value_t = 5000)]
    registry_port: u16,

    /// Most transactions the pool holds.
    #[arg(long, default_value_t = gridchain_txpool::PoolLimits::default().max_count)]
    pool_limit: usize,
}

/// Malachite and libp2p log every round at info; a node's own log says what matters.
const QUIET_LIBRARIES: &str = "arc_malachitebft_core_consensus=warn,arc_malachitebft_engine=warn,\
arc_malachitebft_network=warn,arc_malachitebft_discovery=warn,arc_malachitebft_sync=warn,\
arc_malachitebft_wal=warn,libp2p_swarm=warn,libp2p_gossipsub=warn,libp2p_kad=warn";

/// A dev chain has no peers by design: the network's complaints about that are noise.
const QUIET_ALONE: &str =
    "arc_malachitebft_network=off,arc_malachitebft_discovery=error,libp2p_kad=error,";

#[derive(Subcommand)]
enum Command {
    /// Print a chain spec as JSON.
    BuildSpec {
        #[arg(long, default_value = "dev")]
        chain: String,
    },
    /// Node key tools.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Run a local network: N validators (//Alice, //Bob, …) and one RPC node, each a separate
    /// gridnode process on loopback with its own base path. Ctrl-C stops them all.
    LocalTestnet(local_testnet::Args),
}

#[derive(Subcommand)]
enum KeyCommand {
    /// Create a libp2p node key; prints its peer id. Without --file, prints the secret (hex) on
    /// stdout.
    GenerateNodeKey {
        /// Write the secret here (mode 0600) instead, e.g.
        /// `<base path>/chains/<chain id>/network/secret_ed25519`.
        #[arg(long)]
        file: Option<PathBuf>,
    },
}

fn main() {
    let cli = Cli::parse();
    if let Err(e) = run(cli) {
        eprintln!("Error: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match &cli.command {
        Some(Command::BuildSpec { chain }) => {
            print!("{}", ChainSpec::load(chain)?.to_json());
            return Ok(());
        }
        Some(Command::Key(KeyCommand::GenerateNodeKey { file })) => {
            let key: [u8; 32] = rand::random();
            match file {
                Some(path) => gridchain_service::write_node_key(path, &key)?,
                None => println!("{}", gridchain_primitives::hash::encode_hex(&key)),
            }
            eprintln!("{}", gridchain_consensus::peer_id_of(&key)?);
            return Ok(());
        }
        Some(Command::LocalTestnet(args)) => return local_testnet::run(args),
        None => {}
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(format!(
                "{QUIET_LIBRARIES},{}{}",
                if cli.dev { QUIET_ALONE } else { "" },
                cli.log
            ))
            .context("invalid --log filter")?,
        )
        .with_writer(std::io::stderr)
        // Colours only on a terminal: logs in files stay greppable.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();

    let chain = cli.chain.clone().unwrap_or_else(|| {
        if cli.dev {
            "dev".into()
        } else {
            "local".into()
        }
    });
    let spec = ChainSpec::load(&chain)?;
    if cli.key.is_some() && std::env::var_os("GRIDNODE_KEY").is_none() {
        tracing::warn!(
            "--key puts the validator's secret on the command line, where every local user \
             can read it (ps, /proc); use --key-file or GRIDNODE_KEY"
        );
    }
    let key_uri = match &cli.key_file {
        Some(path) => Some(gridchain_primitives::secret_file::read_secret_file(path)?),
        None => cli.key.clone(),
    }
    .or_else(|| cli.dev.then(|| "//Alice".to_string()));
    let validator = if cli.validator || cli.dev {
        let uri = key_uri.context("--validator needs --key-file, --key or GRIDNODE_KEY")?;
        Some(Pair::from_uri(&uri).context("invalid --key")?)
    } else {
        None
    };
    let tmp = if cli.tmp || (cli.dev && cli.base_path.is_none()) {
        Some(tempfile::Builder::new().prefix("gridnode-").tempdir()?)
    } else {
        None
    };
    let base_path = match (&tmp, &cli.base_path) {
        (Some(t), _) => t.path().to_path_buf(),
        (None, Some(p)) => p.clone(),
        (None, None) => default_base_path()?,
    };
    let p2p_host = if cli.p2p_external {
        "0.0.0.0"
    } else {
        "127.0.0.1"
    };
    let p2p_port = cli.port.unwrap_or(if cli.dev { 0 } else { 30333 });
    let host = if cli.rpc_external {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    } else {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    };
    let config = NodeConfig {
        block_time_ms: cli.block_time_ms.unwrap_or(spec.block_time_ms),
        spec,
        base_path: base_path.clone(),
        node_name: cli.name.clone(),
        rpc_addr: SocketAddr::new(host, cli.rpc_port),
        rpc_cors: match &cli.rpc_cors {
            Some(text) => gridchain_rpc::cors::Cors::parse(text).map_err(anyhow::Error::msg)?,
            None => gridchain_rpc::cors::Cors::default_for(cli.dev),
        },
        metrics_addr: (!cli.no_prometheus)
            .then(|| SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), cli.prometheus_port)),
        validator,
        pool_limits: gridchain_txpool::PoolLimits {
            max_count: cli.pool_limit,
            ..Default::default()
        },
        p2p_listen: format!("/ip4/{p2p_host}/tcp/{p2p_port}"),
        bootnodes: cli.bootnodes.clone(),
    };
    if config.block_time_ms == 0 {
        anyhow::bail!("--block-time-ms must be positive");
    }
    tracing::info!(base_path = %base_path.display(), name = %cli.name, "starting gridnode");

    let dev_agent = (cli.dev && !cli.no_agent)
        .then(|| (base_path.join("agent"), cli.zdb_port, cli.owner_api_port));
    let dev_explorer = (cli.dev && !cli.no_explorer)
        .then(|| (base_path.join("explorer.sqlite"), cli.explorer_port));
    if cli.registry && !cli.dev {
        anyhow::bail!("--registry runs with --dev only");
    }
    let dev_registry = cli
        .registry
        .then(|| (base_path.join("registry"), cli.registry_port));
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        // Before the agent, so a deployment's first pull finds the image there.
        let registry = match dev_registry {
            Some((dir, port)) => Some(dev_registry::start(&dir, port).await?),
            None => None,
        };
        let mut node = gridchain_service::start(config).await?;
        tracing::info!(peer_id = %node.peer_id, "local node identity");
        let agent = match dev_agent {
            Some((data_dir, zdb_port, owner_api_port)) => {
                start_dev_agent(node.rpc_addr, data_dir, zdb_port, owner_api_port)
            }
            None => None,
        };
        let explorer = match dev_explorer {
            Some((db_path, port)) => start_dev_explorer(node.rpc_addr, db_path, port).await,
            None => None,
        };
        let failure = tokio::select! {
            _ = shutdown_signal() => None,
            e = node.failed() => Some(e),
        };
        tracing::info!("shutting down");
        if let Some(agent) = agent {
            agent.abort();
        }
        if let Some(explorer) = explorer {
            explorer.stop().await;
        }
        node.stop().await;
        drop(registry);
        match failure {
            Some(e) => Err(e),
            None => anyhow::Ok(()),
        }
    })?;
    drop(tmp);
    Ok(())
}

/// The local grid of `--dev`: this machine as a 3Node of the dev farm, provisioned by an
/// in-process zos-agent whose node key is the dev account //Ferdie. Needs Docker (and root for
/// private networks); without a Docker socket the chain runs alone.
fn start_dev_agent(
    rpc_addr: SocketAddr,
    data_dir: PathBuf,
    zdb_port: u16,
    owner_api_port: u16,
) -> Option<tokio::task::JoinHandle<()>> {
    if !std::path::Path::new("/var/run/docker.sock").exists() {
        tracing::warn!(
            "no Docker socket at /var/run/docker.sock: not starting the local 3Node agent"
        );
        return None;
    }
    let config = zos_agent::agent::AgentConfig {
        node_key: Pair::dev("Ferdie"),
        // Its own node: the genesis hash it answers with is the one it runs.
        genesis_hash: None,
        farm_id: 1,
        rpc: vec![format!("ws://{rpc_addr}")],
        data_dir,
        zdb_listen: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), zdb_port),
        zdb_admin_password: "dev".into(),
        zdb_share_percent: 50,
        capacity_period: std::time::Duration::from_secs(5),
        reconcile_interval: std::time::Duration::from_secs(30),
        image_grace: std::time::Duration::from_secs(3_600),
        image_budget: 20 << 30,
        // The dev grid's registry (`--registry`) is on loopback.
        registries: zos_agent::provision::image::RegistryPolicy::AllowPrivate,
        egress_deny: zos_agent::provision::egress::DEFAULT_DENY
            .iter()
            .map(|s| s.to_string())
            .collect(),
        report_refill: std::time::Duration::from_secs(60),
        owner_api: Some(zos_agent::agent::OwnerApiConfig {
            listen: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), owner_api_port),
            endpoint: format!("127.0.0.1:{owner_api_port}"),
        }),
        mesh: zos_agent::agent::MeshConfig::default(),
    };
    tracing::info!(
        zdb_port,
        "starting the local 3Node agent (node key //Ferdie, zdb admin password \"dev\")"
    );
    Some(tokio::spawn(async move {
        if let Err(e) = zos_agent::agent::run(config).await {
            tracing::error!(error = %format!("{e:#}"), "local 3Node agent stopped");
        }
    }))
}

/// The explorer of `--dev`, indexing this node. A failure (e.g. the port is taken) is logged and
/// the chain runs on without it.
async fn start_dev_explorer(
    rpc_addr: SocketAddr,
    db_path: PathBuf,
    port: u16,
) -> Option<explorer::ExplorerHandle> {
    let mut config = explorer::Config::new(format!("ws://{rpc_addr}"), db_path);
    config.listen = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port);
    config.rebuild_on_mismatch = true;
    match explorer::serve(config).await {
        Ok(handle) => {
            tracing::info!(url = %format!("http://{}", handle.local_addr()), "explorer");
            Some(handle)
        }
        Err(e) => {
            tracing::warn!(error = %e, "explorer not started");
            None
        }
    }
}

fn default_base_path() -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("XDG_DATA_HOME") {
        return Ok(PathBuf::from(dir).join("gridchain"));
    }
    let home = std::env::var_os("HOME").context("HOME is not set; pass --base-path")?;
    Ok(PathBuf::from(home).join(".local/share/gridchain"))
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("installing a SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
