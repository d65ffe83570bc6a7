//! Helpers for tests that run real `gridnode` processes.
//!
//! The binaries come from the same target directory as the test executable, so build them first:
//! `cargo build --bins` (README's test command does).

use gridchain_primitives::{ChainContext, Extrinsic, Pair};
use gridchain_rpc_api::{jsonrpsee, ChainApiClient, StateApiClient};
use gridchain_runtime::Call;
use jsonrpsee::ws_client::{WsClient, WsClientBuilder};
use parity_scale_codec::Encode;
use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

/// Path of a workspace binary next to the running test executable.
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> → target/<profile>/<name>
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} not found: run `cargo build --bins` before the tests",
        path.display()
    );
    path
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// Waits until a node at `url` answers `chain_getBlockHash(0)`; panics after 30 s, pointing at
/// its `log`.
async fn wait_for_rpc(url: &str, log: &Path) {
    wait_for_rpc_of(url, log, None).await;
}

/// [`wait_for_rpc`], but false at once if `child` exits first (e.g. another process took one of
/// its free ports between `free_port` and the bind).
async fn wait_for_rpc_of(url: &str, log: &Path, mut child: Option<&mut Child>) -> bool {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(client) = WsClientBuilder::default().build(url).await {
            if client.block_hash(Some(0)).await.is_ok() {
                return true;
            }
        }
        if let Some(child) = child.as_deref_mut() {
            if child.try_wait().ok().flatten().is_some() {
                return false;
            }
        }
        assert!(
            Instant::now() < deadline,
            "gridnode did not answer RPC within 30 s; see {}",
            log.display()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A port `p` such that nobody listens on `p` or `p + 1` right now.
pub fn free_port_pair() -> u16 {
    loop {
        let p = free_port();
        if p < u16::MAX && std::net::TcpListener::bind(("127.0.0.1", p + 1)).is_ok() {
            return p;
        }
    }
}

/// A `gridnode --dev` child process on its own ports; killed on drop.
pub struct DevNode {
    child: Option<Child>,
    pub base_path: PathBuf,
    pub rpc_port: u16,
    pub metrics_port: u16,
    block_time_ms: u64,
    extra_args: Vec<String>,
}

impl DevNode {
    /// Starts a dev node storing its data in `base_path` and waits until its RPC answers.
    pub async fn start(base_path: &Path, block_time_ms: u64) -> Self {
        Self::start_with(base_path, block_time_ms, &[]).await
    }

    /// [`DevNode::start`] with more `gridnode` arguments.
    pub async fn start_with(base_path: &Path, block_time_ms: u64, extra_args: &[&str]) -> Self {
        let mut node = DevNode {
            child: None,
            base_path: base_path.to_path_buf(),
            rpc_port: free_port(),
            metrics_port: free_port(),
            block_time_ms,
            extra_args: extra_args.iter().map(|a| a.to_string()).collect(),
        };
        // A port taken by another process between `free_port` and the bind makes gridnode
        // exit at once: try again on other ports.
        for _ in 0..3 {
            if node.spawn().await {
                return node;
            }
            node.rpc_port = free_port();
            node.metrics_port = free_port();
        }
        panic!(
            "gridnode exited at start three times; see {}",
            node.base_path.with_extension("log").display()
        );
    }

    /// Starts the process; false if it exited before its RPC answered.
    async fn spawn(&mut self) -> bool {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.base_path.with_extension("log"))
            .expect("node log file");
        let child = Command::new(binary("gridnode"))
            .args(["--dev", "--no-agent", "--no-explorer", "--base-path"])
            .arg(&self.base_path)
            .args(["--rpc-port", &self.rpc_port.to_string()])
            .args(["--prometheus-port", &self.metrics_port.to_string()])
            .args(["--block-time-ms", &self.block_time_ms.to_string()])
            .args(&self.extra_args)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn gridnode");
        self.child = Some(child);
        let (url, log) = (self.ws_url(), self.base_path.with_extension("log"));
        wait_for_rpc_of(&url, &log, self.child.as_mut()).await
    }

    pub fn ws_url(&self) -> String {
        format!("ws://127.0.0.1:{}", self.rpc_port)
    }

    pub async fn client(&self) -> WsClient {
        WsClientBuilder::default()
            .max_concurrent_requests(4_096)
            .request_timeout(Duration::from_secs(120))
            .build(self.ws_url())
            .await
            .expect("connect to gridnode")
    }

    /// SIGTERM, then waits for the process to exit; its exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("the node is running");
        let sent = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -TERM failed");
        child.wait().expect("wait for gridnode")
    }

    /// SIGKILL: no shutdown code runs.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the node again on the same base path and ports.
    pub async fn restart(&mut self) {
        self.kill9();
        assert!(
            self.spawn().await,
            "gridnode exited after a restart; see {}",
            self.base_path.with_extension("log").display()
        );
    }
}

impl Drop for DevNode {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Writes a fresh node key where `gridnode` looks for it (`<base>/chains/<chain>/network`) and
/// returns its peer id.
pub fn generate_node_key(base_path: &Path, chain: &str) -> String {
    let key_path = base_path
        .join("chains")
        .join(chain)
        .join("network/secret_ed25519");
    let out = Command::new(binary("gridnode"))
        .args(["key", "generate-node-key", "--file"])
        .arg(&key_path)
        .output()
        .expect("run gridnode key generate-node-key");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stderr)
        .expect("utf8")
        .trim()
        .to_string()
}

/// The chain a node runs, as signers need it.
pub async fn chain_context(client: &WsClient) -> ChainContext {
    let genesis_hash = client
        .block_hash(Some(0))
        .await
        .expect("rpc")
        .expect("genesis exists");
    let version = client.runtime_version().await.expect("rpc");
    ChainContext {
        genesis_hash,
        spec_version: version.spec_version,
    }
}

/// SCALE bytes of a signed extrinsic, ready for `author_submitExtrinsic`.
pub fn signed(
    pair: &Pair,
    call: Call,
    nonce: u64,
    valid_until: u64,
    tip: u128,
    chain: ChainContext,
) -> gridchain_primitives::Bytes {
    gridchain_primitives::Bytes(
        Extrinsic::sign(pair, call, nonce, valid_until, tip, chain).encode(),
    )
}

/// One process of a [`Network`].
pub struct NetworkNode {
    child: Option<Child>,
    /// `//Name` of the validator key, `None` for a full node.
    pub key: Option<String>,
    pub base_path: PathBuf,
    pub log_path: PathBuf,
    /// Address the node's RPC and p2p are reached at.
    pub host: String,
    pub rpc_port: u16,
    pub p2p_port: u16,
    /// Network namespace the process runs in, if any.
    pub netns: Option<String>,
    args: Vec<String>,
}

impl NetworkNode {
    /// A node of `chain` on loopback with its own ports and a fresh node key, run with
    /// `extra` arguments (e.g. `--validator`, `--bootnodes`); not started yet. Returns it with
    /// its p2p address (`/ip4/127.0.0.1/tcp/<port>/p2p/<peer id>`).
    pub fn on_loopback(dir: &Path, name: &str, chain: &str, extra: &[&str]) -> (Self, String) {
        let base_path = dir.join(name);
        let peer_id = generate_node_key(&base_path, chain);
        let (p2p_port, rpc_port) = (free_port_pair(), free_port());
        let mut args: Vec<String> = ["--chain", chain, "--no-prometheus", "--name", name]
            .iter()
            .map(|a| a.to_string())
            .collect();
        args.extend(["--base-path".into(), base_path.display().to_string()]);
        args.extend(["--port".into(), p2p_port.to_string()]);
        args.extend(["--rpc-port".into(), rpc_port.to_string()]);
        args.extend(extra.iter().map(|a| a.to_string()));
        let node = NetworkNode {
            child: None,
            key: None,
            log_path: dir.join(format!("{name}.log")),
            base_path,
            host: "127.0.0.1".into(),
            rpc_port,
            p2p_port,
            netns: None,
            args,
        };
        let address = format!("/ip4/127.0.0.1/tcp/{p2p_port}/p2p/{peer_id}");
        (node, address)
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}:{}", self.host, self.rpc_port)
    }

    pub async fn client(&self) -> WsClient {
        WsClientBuilder::default()
            .request_timeout(Duration::from_secs(30))
            .build(self.ws_url())
            .await
            .expect("connect to gridnode")
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// SIGKILL: no shutdown code runs.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Waits up to `timeout` for the process to exit by itself; its exit status, or `None` if it
    /// still runs.
    pub async fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + timeout;
        let child = self.child.as_mut().expect("the node is running");
        loop {
            if let Some(status) = child.try_wait().expect("wait for gridnode") {
                self.child = None;
                return Some(status);
            }
            if std::time::Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Starts the process (again) on the same base path, key and ports, and waits until its
    /// RPC answers.
    pub async fn start(&mut self) {
        self.spawn();
        wait_for_rpc(&self.ws_url(), &self.log_path).await;
    }

    /// Starts the process without waiting for anything.
    pub fn spawn(&mut self) {
        assert!(self.child.is_none(), "already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .expect("node log file");
        let mut cmd = match &self.netns {
            // `ip netns exec` execs the program, so the child's pid is gridnode's.
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(binary("gridnode"));
                c
            }
            None => Command::new(binary("gridnode")),
        };
        let child = cmd
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn gridnode");
        self.child = Some(child);
    }

    /// Height of the best (= final) block, or `None` if the node does not answer.
    pub async fn height(&self) -> Option<u64> {
        let client = WsClientBuilder::default()
            .request_timeout(Duration::from_secs(5))
            .build(self.ws_url())
            .await
            .ok()?;
        let hash = client.finalized_head().await.ok()?;
        Some(client.header(Some(hash)).await.ok()??.number)
    }
}

impl Drop for NetworkNode {
    fn drop(&mut self) {
        self.kill9();
    }
}

fn run(program: &str, args: &[&str]) {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// One network namespace per node on a test bridge `10.<a>.<b>.0/24`; cut links by dropping
/// packets inside the namespaces. Everything is removed on drop.
pub struct Namespaces {
    bridge: String,
    names: Vec<String>,
    ips: Vec<String>,
    /// Each host's interface on the LAN.
    ifs: Vec<String>,
    gateway: String,
}

impl Namespaces {
    /// Creates `count` namespaces (needs root and iproute2/iptables).
    pub fn create(count: usize) -> Self {
        // Unique per test process, so tests running in parallel never share names or subnets.
        let id = std::process::id();
        let tag = format!("{:x}", id % 0xfffff);
        let subnet = format!("10.{}.{}", 100 + (id % 100), (id / 100) % 250);
        let bridge = format!("gcb{tag}");
        let ns = Namespaces {
            names: (0..count).map(|i| format!("gc{tag}n{i}")).collect(),
            ips: (0..count).map(|i| format!("{subnet}.{}", i + 1)).collect(),
            ifs: (0..count).map(|i| format!("gcn{tag}{i}")).collect(),
            gateway: format!("{subnet}.254"),
            bridge,
        };
        let _ = Command::new("ip")
            .args(["link", "del", &ns.bridge])
            .output();
        run("ip", &["link", "add", &ns.bridge, "type", "bridge"]);
        run(
            "ip",
            &[
                "addr",
                "add",
                &format!("{}/24", ns.gateway),
                "dev",
                &ns.bridge,
            ],
        );
        run("ip", &["link", "set", &ns.bridge, "up"]);
        // Docker's FORWARD policy is DROP; bridged traffic between our namespaces may pass.
        run(
            "iptables",
            &[
                "-I", "FORWARD", "-i", &ns.bridge, "-o", &ns.bridge, "-j", "ACCEPT",
            ],
        );
        for (i, name) in ns.names.iter().enumerate() {
            let host_if = format!("gch{tag}{i}");
            let ns_if = ns.ifs[i].clone();
            let _ = Command::new("ip").args(["netns", "del", name]).output();
            run("ip", &["netns", "add", name]);
            run(
                "ip",
                &[
                    "link", "add", &host_if, "type", "veth", "peer", "name", &ns_if,
                ],
            );
            run("ip", &["link", "set", &ns_if, "netns", name]);
            run("ip", &["link", "set", &host_if, "master", &ns.bridge, "up"]);
            run(
                "ip",
                &[
                    "-n",
                    name,
                    "addr",
                    "add",
                    &format!("{}/24", ns.ips[i]),
                    "dev",
                    &ns_if,
                ],
            );
            run("ip", &["-n", name, "link", "set", &ns_if, "up"]);
            run("ip", &["-n", name, "link", "set", "lo", "up"]);
        }
        ns
    }

    /// The namespace of host `i` (for `ip netns exec`).
    pub fn name(&self, i: usize) -> &str {
        &self.names[i]
    }

    /// Host `i`'s address on the test LAN.
    pub fn ip(&self, i: usize) -> &str {
        &self.ips[i]
    }

    /// The address this machine has on the test LAN (a service listening on all addresses of
    /// this machine, such as `gridnode --rpc-external`, is reached there from the hosts).
    pub fn lan_gateway(&self) -> &str {
        &self.gateway
    }

    /// Makes host `router` "the internet": it holds `public` (an address outside every
    /// private range, e.g. from TEST-NET-2, 198.51.100.0/24), and every
    /// other host routes its default through it. Nothing leaves the machine: the hosts have no
    /// other route, and the internet host has none at all beyond the LAN.
    pub fn internet(&self, router: usize, public: &str) {
        let ns = &self.names[router];
        // On its loopback: this kernel has no dummy interfaces.
        run(
            "ip",
            &[
                "-n",
                ns,
                "addr",
                "add",
                &format!("{public}/32"),
                "dev",
                "lo",
            ],
        );
        for other in self
            .names
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != router)
            .map(|(_, n)| n)
        {
            run(
                "ip",
                &[
                    "-n",
                    other,
                    "route",
                    "add",
                    "default",
                    "via",
                    &self.ips[router],
                ],
            );
        }
    }

    /// Gives host `i` one more address on the LAN (`a.b.c.d/prefix`), e.g. the internet's
    /// router address for a farm's public IP block.
    pub fn add_lan_address(&self, i: usize, cidr: &str) {
        run(
            "ip",
            &[
                "-n",
                &self.names[i],
                "addr",
                "add",
                cidr,
                "dev",
                &self.ifs[i],
            ],
        );
    }

    /// Runs `program` with `args` in host `i`'s namespace; its output, whatever its status.
    pub fn exec(&self, i: usize, program: &str, args: &[&str]) -> std::process::Output {
        Command::new("ip")
            .args(["netns", "exec", &self.names[i], program])
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("ip netns exec {program}: {e}"))
    }

    /// Drops all traffic between the two groups (node indexes).
    pub fn partition(&self, a: &[usize], b: &[usize]) {
        for (x, y) in a.iter().flat_map(|x| b.iter().map(move |y| (*x, *y))) {
            for (from, to) in [(x, y), (y, x)] {
                let ns = &self.names[from];
                let peer = &self.ips[to];
                run(
                    "ip",
                    &[
                        "netns", "exec", ns, "iptables", "-A", "INPUT", "-s", peer, "-j", "DROP",
                    ],
                );
                run(
                    "ip",
                    &[
                        "netns", "exec", ns, "iptables", "-A", "OUTPUT", "-d", peer, "-j", "DROP",
                    ],
                );
            }
        }
    }

    /// Removes every partition.
    pub fn heal(&self) {
        for ns in &self.names {
            run("ip", &["netns", "exec", ns, "iptables", "-F"]);
        }
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for name in &self.names {
            let _ = Command::new("ip").args(["netns", "del", name]).output();
        }
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge])
            .output();
        let _ = Command::new("iptables")
            .args([
                "-D",
                "FORWARD",
                "-i",
                &self.bridge,
                "-o",
                &self.bridge,
                "-j",
                "ACCEPT",
            ])
            .output();
    }
}

/// Validators (dev keys of the `local` chain spec) and full nodes as separate `gridnode`
/// processes, each connected to all the others: on loopback, or each in its own network
/// namespace so links can be cut. Logs are kept in `dir`.
pub struct Network {
    pub nodes: Vec<NetworkNode>,
    /// Declared after `nodes` so processes die before their namespaces go.
    pub namespaces: Option<Namespaces>,
}

impl Network {
    /// Starts `validators` validators (//Alice, //Bob, … of the `local` spec) and `full_nodes`
    /// followers on loopback with `block_time_ms` blocks, and waits until every RPC answers.
    pub async fn start(
        dir: &Path,
        validators: &[&str],
        full_nodes: usize,
        block_time_ms: u64,
    ) -> Self {
        Self::launch(dir, validators, full_nodes, block_time_ms, None).await
    }

    /// Like [`Network::start`], each node in its own network namespace (see [`Namespaces`]).
    pub async fn start_isolated(dir: &Path, validators: &[&str], block_time_ms: u64) -> Self {
        let namespaces = Namespaces::create(validators.len());
        Self::launch(dir, validators, 0, block_time_ms, Some(namespaces)).await
    }

    async fn launch(
        dir: &Path,
        validators: &[&str],
        full_nodes: usize,
        block_time_ms: u64,
        namespaces: Option<Namespaces>,
    ) -> Self {
        let count = validators.len() + full_nodes;
        let hosts: Vec<String> = match &namespaces {
            Some(ns) => ns.ips.clone(),
            None => vec!["127.0.0.1".to_string(); count],
        };
        // In namespaces every node has its own address, so the default ports do.
        let p2p_ports: Vec<u16> = match &namespaces {
            Some(_) => vec![30333; count],
            // Each node's transaction gossip listens on its p2p port + 1: keep that free too.
            None => (0..count).map(|_| free_port_pair()).collect(),
        };
        let peer_ids: Vec<String> = (0..count)
            .map(|i| generate_node_key(&dir.join(format!("node-{i}")), "local"))
            .collect();
        let mut nodes = Vec::new();
        for i in 0..count {
            let base_path = dir.join(format!("node-{i}"));
            let rpc_port = match &namespaces {
                Some(_) => 9944,
                None => free_port(),
            };
            let mut args: Vec<String> = vec![
                "--chain".into(),
                "local".into(),
                "--base-path".into(),
                base_path.display().to_string(),
                "--port".into(),
                p2p_ports[i].to_string(),
                "--rpc-port".into(),
                rpc_port.to_string(),
                "--no-prometheus".into(),
                "--block-time-ms".into(),
                block_time_ms.to_string(),
                "--name".into(),
                format!("node-{i}"),
                // Every signed vote, for the equivocation check.
                "--log".into(),
                "info,gridchain_consensus::votes=debug".into(),
            ];
            if namespaces.is_some() {
                args.extend(["--rpc-external".into(), "--p2p-external".into()]);
            }
            let key = validators.get(i).map(|n| format!("//{n}"));
            if let Some(k) = &key {
                args.extend(["--validator".into(), "--key".into(), k.clone()]);
            }
            args.push("--bootnodes".into());
            for j in (0..count).filter(|j| *j != i) {
                args.push(format!(
                    "/ip4/{}/tcp/{}/p2p/{}",
                    hosts[j], p2p_ports[j], peer_ids[j]
                ));
            }
            nodes.push(NetworkNode {
                child: None,
                key,
                log_path: dir.join(format!("node-{i}.log")),
                base_path,
                host: hosts[i].clone(),
                rpc_port,
                p2p_port: p2p_ports[i],
                netns: namespaces.as_ref().map(|ns| ns.names[i].clone()),
                args,
            });
        }
        for node in nodes.iter_mut() {
            node.start().await;
        }
        Network { nodes, namespaces }
    }
    /// Waits until every running node's final height is at least `height`.
    pub async fn wait_all(&self, height: u64, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let mut lowest = u64::MAX;
            for n in self.nodes.iter().filter(|n| n.is_running()) {
                lowest = lowest.min(n.height().await.unwrap_or(0));
            }
            if lowest >= height {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "nodes did not all reach height {height} within {timeout:?} (lowest {lowest})"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Lowest final height among running nodes.
    pub async fn min_height(&self) -> u64 {
        let mut lowest = u64::MAX;
        for n in self.nodes.iter().filter(|n| n.is_running()) {
            lowest = lowest.min(n.height().await.unwrap_or(0));
        }
        lowest
    }

    /// Highest final height among running nodes.
    pub async fn max_height(&self) -> u64 {
        let mut highest = 0;
        for n in self.nodes.iter().filter(|n| n.is_running()) {
            highest = highest.max(n.height().await.unwrap_or(0));
        }
        highest
    }

    /// Asserts that every running node has the same block hash at every height `1..=up_to`.
    pub async fn assert_one_chain(&self, up_to: u64) {
        let mut clients = Vec::new();
        for n in self.nodes.iter().filter(|n| n.is_running()) {
            clients.push(n.client().await);
        }
        for h in 1..=up_to {
            let mut hashes = Vec::new();
            for c in &clients {
                hashes.push(c.block_hash(Some(h)).await.expect("rpc"));
            }
            assert!(hashes[0].is_some(), "no block {h}");
            assert!(
                hashes.iter().all(|x| *x == hashes[0]),
                "nodes disagree at height {h}: {hashes:?}"
            );
        }
    }
}
