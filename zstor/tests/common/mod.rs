//! Real zdb servers, in-process on ephemeral ports, each with one password-protected seq
//! namespace, and a store config pointing at them.

#![allow(dead_code)] // each test binary uses its own subset of these helpers

use std::net::SocketAddr;
use std::time::Duration;
use zdb::{Server, ZdbConfig};
use zstor::{BackendSpec, StoreConfig};

pub const NAMESPACE: &str = "zstor";
pub const PASSWORD: &str = "ns-secret";

pub struct Cluster {
    rt: tokio::runtime::Runtime,
    servers: Vec<Option<Server>>,
    pub addrs: Vec<SocketAddr>,
    _dirs: Vec<tempfile::TempDir>,
    pub config: StoreConfig,
}

impl Cluster {
    /// `backends` servers; the config asks for `k + m` shards, so the rest are spares.
    pub fn start(backends: usize, k: u16, m: u16, chunk_size: u32) -> Cluster {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let mut servers = Vec::new();
        let mut addrs = Vec::new();
        let mut dirs = Vec::new();
        for _ in 0..backends {
            let dir = tempfile::tempdir().expect("tempdir");
            let server = rt
                .block_on(Server::start(ZdbConfig::ephemeral(dir.path())))
                .expect("zdb starts");
            let addr = server.local_addr().expect("tcp address");
            let mut admin = connect(addr);
            for args in [
                vec!["NSNEW", NAMESPACE],
                vec!["NSSET", NAMESPACE, "mode", "seq"],
                vec!["NSSET", NAMESPACE, "password", PASSWORD],
                vec!["NSSET", NAMESPACE, "public", "0"],
            ] {
                let mut cmd = redis::cmd(args[0]);
                for a in &args[1..] {
                    cmd.arg(*a);
                }
                cmd.query::<()>(&mut admin).expect("namespace setup");
            }
            servers.push(Some(server));
            addrs.push(addr);
            dirs.push(dir);
        }
        let config = StoreConfig {
            version: 1,
            data_shards: k,
            parity_shards: m,
            chunk_size,
            compression_level: 3,
            backends: addrs
                .iter()
                .map(|a| BackendSpec {
                    address: a.to_string(),
                    namespace: NAMESPACE.into(),
                    password: Some(PASSWORD.into()),
                })
                .collect(),
        };
        Cluster {
            rt,
            servers,
            addrs,
            _dirs: dirs,
            config,
        }
    }

    /// Stops backend `i` (its port then refuses connections).
    pub fn kill(&mut self, i: usize) {
        if let Some(server) = self.servers[i].take() {
            self.rt.block_on(server.shutdown()).expect("clean shutdown");
        }
    }

    /// Empties backend `i`'s namespace.
    pub fn wipe(&self, i: usize) {
        let mut con = self.namespace(i);
        redis::cmd("FLUSH").query::<()>(&mut con).expect("flush");
    }

    /// Overwrites every value of backend `i` whose key is in `keys` with garbage.
    pub fn corrupt(&self, i: usize, key: u64) {
        let mut con = self.namespace(i);
        let value: Vec<u8> = redis::cmd("GET")
            .arg(&key.to_le_bytes()[..])
            .query(&mut con)
            .expect("get");
        let mut garbage = value.clone();
        garbage[0] ^= 0xff;
        let _: Vec<u8> = redis::cmd("SET")
            .arg(&key.to_le_bytes()[..])
            .arg(garbage)
            .query(&mut con)
            .expect("overwrite");
    }

    /// A connection to backend `i` with its namespace selected.
    pub fn namespace(&self, i: usize) -> redis::Connection {
        let mut con = connect(self.addrs[i]);
        redis::cmd("SELECT")
            .arg(NAMESPACE)
            .arg(PASSWORD)
            .query::<()>(&mut con)
            .expect("select");
        con
    }
}

pub fn connect(addr: SocketAddr) -> redis::Connection {
    redis::Client::open(format!("redis://{addr}/"))
        .expect("client")
        .get_connection_with_timeout(Duration::from_secs(10))
        .expect("connect")
}

/// Deterministic pseudo-random bytes (incompressible).
pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Text-like bytes that compress well.
pub fn compressible_bytes(len: usize) -> Vec<u8> {
    let line = b"gridchain zstor stores chunks over zdb namespaces; ";
    line.iter().copied().cycle().take(len).collect()
}
