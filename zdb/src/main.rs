//! `zdb` binary: parses 0-db style flags and runs the server until SIGINT/SIGTERM.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Parser;
use tracing_subscriber::EnvFilter;
use zdb::{Durability, Mode, Server, ZdbConfig};

/// A 0-db compatible key-value server (RESP2 over TCP and Unix sockets).
#[derive(Debug, Parser)]
#[command(name = "zdb", version)]
struct Args {
    /// Directory of data files.
    #[arg(long, default_value = "zdb-data")]
    data: PathBuf,
    /// Directory of index files.
    #[arg(long, default_value = "zdb-index")]
    index: PathBuf,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    listen: IpAddr,
    /// TCP port (0 picks a free one).
    #[arg(long, default_value_t = zdb::config::DEFAULT_PORT)]
    port: u16,
    /// Also listen on this Unix socket.
    #[arg(long)]
    socket: Option<PathBuf>,
    /// Disable TCP (useful with --socket).
    #[arg(long)]
    no_tcp: bool,
    /// Admin password; without it every client is admin.
    #[arg(long)]
    admin: Option<String>,
    /// Maximum size of a data file in bytes before a new one is started.
    #[arg(long, default_value_t = zdb::config::DEFAULT_DATASIZE)]
    datasize: u64,
    /// Force every namespace into one mode (user or seq); default: per namespace.
    #[arg(long)]
    mode: Option<String>,
    /// fsync before acknowledging every write.
    #[arg(long)]
    sync: bool,
    /// fsync at most every SECONDS (writes within the last period may be lost on power failure).
    #[arg(long, value_name = "SECONDS")]
    synctime: Option<u64>,
    /// Size limit (bytes of payload) of the default namespace, applied at every start
    /// (0-db's --maxsize); 0 is unlimited.
    #[arg(long, default_value_t = zdb::config::DEFAULT_NAMESPACE_MAXSIZE)]
    maxsize: u64,
    /// Protect the default namespace with the admin password: readable by all, writable only
    /// after `SELECT default <admin password>` (0-db's --protect; needs --admin).
    #[arg(long)]
    protect: bool,
    /// Size limit (bytes of payload) given to namespaces created by NSNEW; 0 is unlimited.
    #[arg(long, default_value_t = 0)]
    ns_maxsize: u64,
    /// Bytes of memory keeping recently written records for reads, all namespaces (0: none).
    #[arg(long, default_value_t = 64 * 1024 * 1024)]
    cache: usize,
    /// Maximum simultaneous clients.
    #[arg(long, default_value_t = 1024)]
    max_clients: usize,
    /// Close a connection without a complete request (or that does not read its
    /// replies) for SECONDS; 0 never closes idle connections.
    #[arg(long, value_name = "SECONDS", default_value_t = zdb::config::DEFAULT_IDLE_TIMEOUT.as_secs())]
    idle_timeout: u64,
}

fn config_from(args: Args) -> Result<ZdbConfig> {
    let mut config = ZdbConfig::new(".");
    config.data_dir = args.data;
    config.index_dir = args.index;
    config.listen = (!args.no_tcp).then_some(SocketAddr::new(args.listen, args.port));
    config.socket = args.socket;
    config.admin_password = args.admin;
    config.datasize = args.datasize;
    config.mode = match args.mode.as_deref() {
        None | Some("mixed") => None,
        Some(m) => Some(Mode::parse(m).with_context(|| format!("unknown mode {m:?} (user, seq)"))?),
    };
    config.durability = match (args.sync, args.synctime) {
        (true, Some(_)) => bail!("--sync and --synctime are exclusive"),
        (true, None) => Durability::Always,
        (false, Some(0)) => bail!("--synctime must be at least 1 second"),
        (false, Some(s)) => Durability::Periodic(Duration::from_secs(s)),
        (false, None) => Durability::OsBuffered,
    };
    config.default_namespace_maxsize = args.maxsize;
    config.protect = args.protect;
    config.default_maxsize = args.ns_maxsize;
    config.max_clients = args.max_clients;
    config.idle_timeout = Duration::from_secs(args.idle_timeout);
    config.cache_bytes = args.cache;
    Ok(config)
}

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    let config = config_from(Args::parse())?;
    // handlers first: a SIGTERM right after the "listening" line must stop
    // the server gracefully, not kill it
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing SIGINT handler")?;
    let server = Server::start(config).await.context("starting zdb")?;
    if let Some(addr) = server.local_addr() {
        // scripts and tests read this line to find an ephemeral port
        println!("zdb listening on {addr}");
    }
    tokio::select! {
        _ = int.recv() => {}
        _ = term.recv() => {}
    }
    server.shutdown().await.context("shutting down")?;
    Ok(())
}
