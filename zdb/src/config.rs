//! Server configuration shared by the binary's flags and embedders.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

/// Key layout of a namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Client-chosen binary keys of 1..=255 bytes.
    User,
    /// Server-assigned 8-byte little-endian sequential ids.
    Seq,
}

impl Mode {
    /// Name as used by `--mode` and `NSSET mode`.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::User => "user",
            Mode::Seq => "seq",
        }
    }

    /// Parses `user` / `seq`.
    pub fn parse(s: &str) -> Option<Mode> {
        match s {
            "user" => Some(Mode::User),
            "seq" => Some(Mode::Seq),
            _ => None,
        }
    }
}

/// When appended data is forced to stable storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Data reaches the OS page cache before the reply is sent; the OS
    /// decides when it hits the disk. Survives a process crash, not a power loss.
    OsBuffered,
    /// `fsync` before any reply of a write is sent (`--sync`).
    Always,
    /// `fsync` at most this often (`--synctime N`); on power loss, writes
    /// acknowledged within the last period may be lost.
    Periodic(Duration),
}

/// Everything a [`crate::Server`] needs to run.
#[derive(Debug, Clone)]
pub struct ZdbConfig {
    /// Root of the per-namespace data directories.
    pub data_dir: PathBuf,
    /// Root of the per-namespace index directories.
    pub index_dir: PathBuf,
    /// TCP listen address; `None` disables TCP. Port 0 picks an ephemeral port.
    pub listen: Option<SocketAddr>,
    /// Unix socket path; `None` disables it.
    pub socket: Option<PathBuf>,
    /// Admin password; `None` makes every client admin (as 0-db does).
    pub admin_password: Option<String>,
    /// Data files are rotated before they would grow past this size.
    pub datasize: u64,
    /// Forces every namespace into one mode; `None` lets each namespace choose.
    pub mode: Option<Mode>,
    pub durability: Durability,
    /// `maxsize` given to newly created namespaces (0 = unlimited).
    pub default_maxsize: u64,
    /// `maxsize` of the `default` namespace, which every client may use
    /// without credentials (0 = unlimited). Applied at every start, also to a
    /// `default` namespace created earlier. Clients cannot change it (`NSSET
    /// default maxsize` is refused, as in 0-db).
    pub default_namespace_maxsize: u64,
    /// 0-db's `--protect`: the `default` namespace's password is the admin
    /// password, so anyone may read it and only who gives that password
    /// (`SELECT default <password>`) may write. Needs `admin_password`.
    pub protect: bool,
    /// Connections beyond this are refused with an error.
    pub max_clients: usize,
    /// A partially received request must complete within this time.
    pub frame_timeout: Duration,
    /// A connection without a complete request for this long is closed
    /// (zero: never); bytes that do not complete a request do not count, so a
    /// request trickled in byte by byte is cut off too. A reply the client
    /// does not take within this time also closes the connection.
    pub idle_timeout: Duration,
    /// A connection is closed after this many failed password attempts
    /// (`AUTH`, `AUTH SECURE`, `SELECT ns password`, `SELECT ns SECURE`).
    pub auth_max_failures_per_connection: u32,
    /// After this many failed password attempts from one source (an IPv4
    /// address, an IPv6 /64, or all Unix socket clients together) within
    /// `auth_lockout`, that source's password attempts are refused unchecked
    /// for `auth_lockout`.
    pub auth_max_failures_per_source: u32,
    /// The window of `auth_max_failures_per_source`, and the cool-down of a
    /// source that reached it.
    pub auth_lockout: Duration,
    /// Background compaction runs when a namespace has at least this many
    /// reclaimable bytes and they are at least half of its data files.
    pub compaction_min_dead_bytes: u64,
    /// How often namespaces are checked for background compaction.
    pub compaction_interval: Duration,
    /// Memory for recently written records kept for reads, shared by all
    /// namespaces (see [`crate::storage::tail`]).
    pub cache_bytes: usize,
}

/// 0-db's default data file size.
pub const DEFAULT_DATASIZE: u64 = 256 * 1024 * 1024;
/// Limit of the `default` namespace unless configured otherwise: it is open
/// to every client that reaches the port, so it must not fill the disk.
pub const DEFAULT_NAMESPACE_MAXSIZE: u64 = 64 * 1024 * 1024;
/// Connections without a complete request for this long are closed.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// 0-db's default port.
pub const DEFAULT_PORT: u16 = 9900;
/// Offsets in a data file are 32 bits wide.
pub const MAX_DATASIZE: u64 = u32::MAX as u64;

impl ZdbConfig {
    /// A configuration with 0-db's defaults, storing under `root/data` and `root/index`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        let root = root.into();
        ZdbConfig {
            data_dir: root.join("data"),
            index_dir: root.join("index"),
            listen: Some(SocketAddr::new(
                IpAddr::V4(Ipv4Addr::LOCALHOST),
                DEFAULT_PORT,
            )),
            socket: None,
            admin_password: None,
            datasize: DEFAULT_DATASIZE,
            mode: None,
            durability: Durability::OsBuffered,
            default_maxsize: 0,
            default_namespace_maxsize: DEFAULT_NAMESPACE_MAXSIZE,
            protect: false,
            max_clients: 1024,
            frame_timeout: Duration::from_secs(30),
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            auth_max_failures_per_connection: 5,
            auth_max_failures_per_source: 20,
            auth_lockout: Duration::from_secs(60),
            compaction_min_dead_bytes: 64 * 1024 * 1024,
            compaction_interval: Duration::from_secs(10),
            cache_bytes: 64 * 1024 * 1024,
        }
    }

    /// Same as [`ZdbConfig::new`] but listening on an ephemeral loopback port,
    /// which is what tests and embedders usually want.
    pub fn ephemeral(root: impl Into<PathBuf>) -> Self {
        let mut config = Self::new(root);
        config.listen = Some(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0));
        config
    }
}
