//! Helpers shared by the agent's end-to-end tests: a dev chain, the real agent binary, signed
//! calls, and cleanup of everything the agent created.
#![allow(dead_code)] // each test binary uses a different subset

pub mod internet;
pub mod lying_proxy;

use gridchain_primitives::{
    seal::{self, SealContext, SealPurpose},
    AccountId, Bytes, ChainContext, Hash, Pair,
};
use gridchain_rpc_api::{
    jsonrpsee::ws_client::WsClient, AuthorApiClient, ChainApiClient, GridApiClient,
    GridchainApiClient, SystemApiClient,
};
use gridchain_runtime::{
    balances,
    reservations::{
        self, Deployment, EnvValue, EnvVar, Mount, NetworkAttachment, Reservation, Workload,
        WorkloadSpec, WorkloadState, ZdbMode,
    },
    tfgrid::{self, NodeStatus},
    twins, Call,
};
use gridchain_tests::{chain_context, free_port, signed, DevNode};
use std::{
    os::unix::fs::PermissionsExt,
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

pub const IMAGE: &str = "gridchain/busybox:latest";
pub const MIB: u64 = 1024 * 1024;

pub fn ensure_image() {
    build_image_once(IMAGE, 0);
}

/// The test image with `blob_mb` MiB of random bytes added (0: none), built as `tag` unless
/// Docker has it.
fn build_image_once(tag: &str, blob_mb: u32) {
    let present = Command::new("docker")
        .args(["image", "inspect", tag])
        .output()
        .unwrap()
        .status
        .success();
    if !present {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/images/build-busybox-image.sh");
        let mut build = Command::new("bash");
        build.arg(script).arg(tag);
        if blob_mb > 0 {
            build.env("BLOB_MB", blob_mb.to_string());
        }
        assert!(build.status().unwrap().success(), "building {tag}");
    }
}

/// A test image with `blob_mb` MiB of random bytes, new each time (`unique` names it).
pub fn build_blob_image(unique: &str, blob_mb: u32) -> String {
    let tag = format!("gridchain/busybox-blob:{unique}-{}", std::process::id());
    remove_image(&tag);
    build_image_once(&tag, blob_mb);
    tag
}

/// Kills the agent and removes whatever the node's agent created, even if the test failed.
pub struct Cleanup {
    pub agent: Option<Child>,
    /// The agent's node tag (`zos_agent::reconcile::node_tag`), once known.
    pub node_tag: Option<String>,
    pub bridges: Vec<String>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(mut agent) = self.agent.take() {
            let _ = agent.kill();
            let _ = agent.wait();
        }
        if let Some(node) = &self.node_tag {
            let filter = format!("label=gridchain.node={node}");
            let ids = Command::new("docker")
                .args(["ps", "-aq", "--filter", &filter])
                .output()
                .unwrap();
            for id in String::from_utf8_lossy(&ids.stdout).split_whitespace() {
                let _ = Command::new("docker").args(["rm", "-f", id]).output();
            }
            let vols = Command::new("docker")
                .args(["volume", "ls", "-q", "--filter", &filter])
                .output()
                .unwrap();
            for v in String::from_utf8_lossy(&vols.stdout).split_whitespace() {
                let _ = Command::new("docker")
                    .args(["volume", "rm", "-f", v])
                    .output();
            }
            // Volume images the agent loop-mounted (`<data dir>/volumes/gc-<tag>-….mnt`).
            let table = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
            for mount in table.lines().filter_map(|l| l.split_whitespace().nth(4)) {
                let file = mount.rsplit('/').next().unwrap_or_default();
                if file.starts_with(&format!("gc-{node}-")) && file.ends_with(".mnt") {
                    let _ = Command::new("umount").args(["-d", mount]).output();
                }
            }
        }
        // Egress routers: namespaces named after the node.
        if let Some(node) = &self.node_tag {
            let list = Command::new("ip").args(["netns", "list"]).output().unwrap();
            for ns in String::from_utf8_lossy(&list.stdout)
                .lines()
                .filter_map(|l| l.split_whitespace().next())
                .filter(|ns| ns.starts_with(&format!("gc-{node}-")))
            {
                let _ = Command::new("ip").args(["netns", "del", ns]).output();
            }
        }
        // Every interface the node's agent made carries its alias; the bridges listed by hand
        // are those a test made itself.
        let mut bridges = self.bridges.clone();
        if let Some(node) = &self.node_tag {
            bridges.extend(links_with_alias(&format!("gridchain node {node}")));
        }
        for b in &bridges {
            let _ = Command::new("ip").args(["link", "del", b]).output();
            for chain in ["DOCKER-USER", "FORWARD"] {
                let _ = Command::new("iptables")
                    .args(["-w", "-D", chain, "-i", b, "-o", b, "-j", "ACCEPT"])
                    .output();
            }
            let _ = Command::new("iptables")
                .args(["-w", "-D", "INPUT", "-i", b, "-j", "DROP"])
                .output();
        }
    }
}

/// The namespaces of the agent's zdb at `zdb_addr` (admin password `admin-pass`).
pub async fn zdb_namespaces(zdb_addr: &str) -> Vec<String> {
    let mut conn = redis::Client::open(format!("redis://{zdb_addr}/"))
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    redis::cmd("AUTH")
        .arg("admin-pass")
        .query_async::<()>(&mut conn)
        .await
        .unwrap();
    redis::cmd("NSLIST").query_async(&mut conn).await.unwrap()
}

/// Names of the host's interfaces whose alias is `alias`.
pub fn links_with_alias(alias: &str) -> Vec<String> {
    let out = Command::new("ip")
        .args(["-o", "link", "show"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.trim_end().ends_with(&format!("alias {alias}")))
        .filter_map(|l| l.split(':').nth(1))
        .map(|name| {
            name.trim()
                .split('@')
                .next()
                .unwrap_or_default()
                .to_string()
        })
        .collect()
}

pub async fn send(client: &WsClient, chain: ChainContext, who: &Pair, call: Call) {
    let nonce = client
        .account_next_index(who.public().to_string())
        .await
        .unwrap();
    let best = client.header(None).await.unwrap().unwrap().number;
    let hash: Hash = client
        .submit_extrinsic(signed(who, call, nonce, best + 256, 0, chain))
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(info) = client.extrinsic(hash).await.unwrap() {
            assert!(info.success, "call failed: {:?}", info.error);
            return;
        }
        assert!(Instant::now() < deadline, "not included in 30 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub async fn wait_for(
    client: &WsClient,
    id: u64,
    what: &str,
    done: impl Fn(&Reservation) -> bool,
) -> Reservation {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let r = GridApiClient::reservation(client, id, None)
            .await
            .unwrap()
            .expect("reservation exists");
        if done(&r) {
            return r;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {r:#?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// What a secret is sealed for, as the wallet sees it: the chain, the reservation's owner, the
/// node, and the workload.
#[derive(Clone, Copy)]
pub struct SealFor<'a> {
    pub chain: ChainContext,
    pub owner: &'a AccountId,
    pub node: &'a AccountId,
    pub workload: &'a str,
}

fn seal_for(to: SealFor, purpose: SealPurpose, plaintext: &[u8]) -> Bytes {
    let context = SealContext {
        genesis: to.chain.genesis_hash,
        owner: *to.owner,
        node: *to.node,
        workload: to.workload.into(),
        purpose,
    };
    Bytes(seal::seal(to.node, &context, plaintext).expect("a node key seals"))
}

/// Seals `plaintext` as the wallet does for env var `env` of `to.workload`.
pub fn seal_env(to: SealFor, env: &str, plaintext: &[u8]) -> Bytes {
    seal_for(to, SealPurpose::Env { name: env.into() }, plaintext)
}

/// Seals `plaintext` as the wallet does for the password of zdb namespace `to.workload`.
pub fn seal_zdb_password(to: SealFor, plaintext: &[u8]) -> Bytes {
    seal_for(to, SealPurpose::ZdbPassword, plaintext)
}

/// The agent's log so far (`spawn_agent` writes it to `dir/agent.log`).
pub fn agent_log(dir: &Path) -> String {
    String::from_utf8_lossy(&std::fs::read(dir.join("agent.log")).unwrap_or_default()).into_owned()
}

/// Environment (`NAME=value` lines) of a container, as `docker inspect` shows it.
pub fn docker_env(container: &str) -> String {
    let out = Command::new("docker")
        .args([
            "inspect",
            "-f",
            "{{range .Config.Env}}{{println .}}{{end}}",
            container,
        ])
        .output()
        .expect("docker runs");
    assert!(out.status.success(), "docker inspect {container}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A network, a volume, a zdb namespace `store` (sealed password `zdb-s3cret`) and a container
/// `web` (env GREETING=`greeting`, sealed API_KEY=`env-s3cret`), secrets sealed for `owner`'s
/// reservation on `node` of `chain`.
pub fn deployment(
    chain: ChainContext,
    owner: &AccountId,
    node: &AccountId,
    greeting: &str,
) -> Deployment {
    let to = |workload| SealFor {
        chain,
        owner,
        node,
        workload,
    };
    Deployment {
        metadata: "agent e2e".into(),
        workloads: vec![
            Workload {
                name: "net".into(),
                spec: WorkloadSpec::Network {
                    ip_range: "10.240.0.0/24".into(),
                    egress: false,
                    mesh: None,
                },
            },
            Workload {
                name: "data".into(),
                spec: WorkloadSpec::Volume { size: 64 * MIB },
            },
            Workload {
                name: "store".into(),
                spec: WorkloadSpec::ZdbNamespace {
                    size: 16 * MIB,
                    mode: ZdbMode::Seq,
                    password: Some(seal_zdb_password(to("store"), b"zdb-s3cret")),
                    public: false,
                },
            },
            Workload {
                name: "web".into(),
                spec: WorkloadSpec::Container {
                    image: IMAGE.into(),
                    cpu: 1,
                    memory: 64 * MIB,
                    rootfs_size: 64 * MIB,
                    entrypoint: "sleep 3600".into(),
                    env: vec![
                        EnvVar {
                            name: "GREETING".into(),
                            value: EnvValue::Plain(greeting.into()),
                        },
                        EnvVar {
                            name: "API_KEY".into(),
                            value: EnvValue::Sealed(seal_env(to("web"), "API_KEY", b"env-s3cret")),
                        },
                    ],
                    mounts: vec![Mount {
                        volume: "data".into(),
                        path: "/data".into(),
                    }],
                    networks: vec![NetworkAttachment {
                        network: "net".into(),
                        ip: None,
                    }],
                    registry_auth: None,
                    restart: Default::default(),
                    health_check: None,
                },
            },
        ],
    }
}

pub fn all_ok(r: &Reservation) -> bool {
    r.results.len() == r.deployment.workloads.len()
        && r.results.iter().all(|w| w.state == WorkloadState::Ok)
}

pub fn docker_ps(node: &str) -> Vec<String> {
    let out = Command::new("docker")
        .args([
            "ps",
            "-aq",
            "--no-trunc",
            "--filter",
            &format!("label=gridchain.node={node}"),
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

/// Names of every container of node `tag`, running or not.
pub fn docker_names(tag: &str) -> Vec<String> {
    let out = Command::new("docker")
        .args([
            "ps",
            "-a",
            "--format",
            "{{.Names}}",
            "--filter",
            &format!("label=gridchain.node={tag}"),
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

pub fn exec(container: &str, cmd: &str) -> String {
    let out = Command::new("docker")
        .args(["exec", container, "sh", "-c", cmd])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Writes the node key file and starts the agent binary for `node_uri` against `rpc`.
pub fn spawn_agent(dir: &Path, node_uri: &str, rpc: &[String], zdb_addr: &str) -> Child {
    spawn_agent_in(None, dir, node_uri, rpc, zdb_addr, &[])
}

/// [`spawn_agent`] in network namespace `netns` (a test host), with `extra` arguments.
pub fn spawn_agent_in(
    netns: Option<&str>,
    dir: &Path,
    node_uri: &str,
    rpc: &[String],
    zdb_addr: &str,
    extra: &[&str],
) -> Child {
    let key_file = dir.join("node.key");
    std::fs::write(&key_file, node_uri).unwrap();
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("agent.log"))
        .unwrap();
    let mut cmd = match netns {
        // `ip netns exec` execs the agent: the child's pid is the agent's.
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns, env!("CARGO_BIN_EXE_zos-agent")]);
            c
        }
        None => Command::new(env!("CARGO_BIN_EXE_zos-agent")),
    };
    cmd.arg("--key-file")
        .arg(&key_file)
        .args(["--farm-id", "1"]);
    for url in rpc {
        cmd.args(["--rpc", url]);
    }
    cmd.arg("--data-dir")
        .arg(dir.join("agent"))
        .args([
            "--zdb-listen",
            zdb_addr,
            "--zdb-admin-password",
            "admin-pass",
        ])
        .args([
            "--capacity-period-secs",
            "3",
            "--reconcile-interval-secs",
            "5",
            "--log",
            "info,zos_agent=debug",
            // The tests' registry is on loopback.
            "--allow-private-registries",
            "--owner-api-listen",
            &format!("127.0.0.1:{}", free_port()),
            // Tests watch restart counts and health flaps one by one: a token every 2 s
            // (the pacing itself: reconcile.rs unit tests).
            "--report-refill-secs",
            "2",
        ])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap()
}

/// A zdb address nobody uses.
pub fn zdb_addr() -> String {
    format!("127.0.0.1:{}", free_port())
}

/// Waits until the node of `node_key` is registered and Up; returns its id.
pub async fn wait_node_up(
    client: &WsClient,
    node_key: &Pair,
    cleanup: &mut Cleanup,
    dir: &Path,
) -> u32 {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(info) = client
            .node_by_account(node_key.public().to_string(), None)
            .await
            .unwrap()
        {
            let genesis = client.block_hash(Some(0)).await.unwrap().unwrap();
            cleanup.node_tag = Some(zos_agent::reconcile::node_tag(
                &genesis,
                &node_key.public(),
                info.node.id,
            ));
            if info.status == NodeStatus::Up {
                return info.node.id;
            }
        }
        assert!(
            Instant::now() < deadline,
            "node not Up in 60 s; see {}",
            dir.join("agent.log").display()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub const GRID: u128 = 1_000_000_000_000;

/// A dev chain, a funded node key for an agent, and Bob with a twin.
pub struct LocalGrid {
    pub chain_node: DevNode,
    pub client: WsClient,
    pub chain: ChainContext,
    pub node_uri: String,
    pub node_key: Pair,
}

pub async fn local_grid(dir: &Path, tag: &str) -> LocalGrid {
    local_grid_with_block_time(dir, tag, 250).await
}

/// [`local_grid`] with blocks every `block_time_ms`.
pub async fn local_grid_with_block_time(dir: &Path, tag: &str, block_time_ms: u64) -> LocalGrid {
    local_grid_with(dir, tag, block_time_ms, &[]).await
}

/// [`local_grid`] with blocks every `block_time_ms` and more `gridnode` arguments.
pub async fn local_grid_with(
    dir: &Path,
    tag: &str,
    block_time_ms: u64,
    gridnode_args: &[&str],
) -> LocalGrid {
    ensure_image();
    let node = DevNode::start_with(&dir.join("chain"), block_time_ms, gridnode_args).await;
    let client = node.client().await;
    let chain = chain_context(&client).await;
    let node_uri = format!("//agent-{tag}-{}", std::process::id());
    let node_key = Pair::from_uri(&node_uri).unwrap();
    let alice = Pair::dev("Alice");
    send(
        &client,
        chain,
        &alice,
        Call::Balances(balances::Call::Transfer {
            dest: node_key.public(),
            amount: 1_000 * GRID,
        }),
    )
    .await;
    // Alice owns the dev farm: the agent's node may join it.
    send(
        &client,
        chain,
        &alice,
        Call::Tfgrid(tfgrid::Call::AllowNode {
            farm_id: 1,
            account: node_key.public(),
        }),
    )
    .await;
    send(
        &client,
        chain,
        &Pair::dev("Bob"),
        Call::Twins(twins::Call::CreateTwin {
            name: "bob".into(),
            endpoint: String::new(),
        }),
    )
    .await;
    LocalGrid {
        chain_node: node,
        client,
        chain,
        node_uri,
        node_key,
    }
}

/// One more 3Node key for `grid` (`//agent-<name>-<pid>`): funded, allowed into the dev farm.
pub async fn another_node_key(grid: &LocalGrid, name: &str) -> String {
    let uri = format!("//agent-{name}-{}", std::process::id());
    let key = Pair::from_uri(&uri).unwrap();
    let alice = Pair::dev("Alice");
    send(
        &grid.client,
        grid.chain,
        &alice,
        Call::Balances(balances::Call::Transfer {
            dest: key.public(),
            amount: 1_000 * GRID,
        }),
    )
    .await;
    send(
        &grid.client,
        grid.chain,
        &alice,
        Call::Tfgrid(tfgrid::Call::AllowNode {
            farm_id: 1,
            account: key.public(),
        }),
    )
    .await;
    uri
}

/// Starts the agent of `grid` against `rpc` with its zdb on `zdb`, waits until its node is Up,
/// and returns the cleanup guard, the node id and the node tag.
pub async fn start_agent(
    grid: &LocalGrid,
    dir: &Path,
    rpc: &[String],
    zdb: &str,
) -> (Cleanup, u32, String) {
    start_agent_in(None, grid, dir, rpc, zdb).await
}

/// [`start_agent`] in network namespace `netns` (a test host).
pub async fn start_agent_in(
    netns: Option<&str>,
    grid: &LocalGrid,
    dir: &Path,
    rpc: &[String],
    zdb: &str,
) -> (Cleanup, u32, String) {
    start_agent_as(netns, grid, &grid.node_uri, dir, rpc, zdb).await
}

/// [`start_agent_in`] with node key `node_uri` (one [`another_node_key`] made).
pub async fn start_agent_as(
    netns: Option<&str>,
    grid: &LocalGrid,
    node_uri: &str,
    dir: &Path,
    rpc: &[String],
    zdb: &str,
) -> (Cleanup, u32, String) {
    let agent = spawn_agent_in(netns, dir, node_uri, rpc, zdb, &[]);
    let mut cleanup = Cleanup {
        agent: Some(agent),
        node_tag: None,
        bridges: vec![],
    };
    let node_key = Pair::from_uri(node_uri).unwrap();
    let node_id = wait_node_up(&grid.client, &node_key, &mut cleanup, dir).await;
    let tag = cleanup.node_tag.clone().expect("set by wait_node_up");
    (cleanup, node_id, tag)
}

/// One container `name` running `image` (`sleep 3600`), nothing else.
pub fn container_only(name: &str, image: &str) -> Deployment {
    Deployment {
        metadata: String::new(),
        workloads: vec![sleeper(name, image, &[])],
    }
}

/// A container workload `name` running `image` (`sleep 3600`) on `networks` (addresses picked
/// by the node).
pub fn sleeper(name: &str, image: &str, networks: &[&str]) -> Workload {
    Workload {
        name: name.into(),
        spec: WorkloadSpec::Container {
            image: image.into(),
            cpu: 1,
            memory: 32 * MIB,
            rootfs_size: 32 * MIB,
            entrypoint: "sleep 3600".into(),
            env: vec![],
            mounts: vec![],
            networks: networks
                .iter()
                .map(|n| NetworkAttachment {
                    network: n.to_string(),
                    ip: None,
                })
                .collect(),
            registry_auth: None,
            restart: Default::default(),
            health_check: None,
        },
    }
}

/// Bob's newest reservation.
pub async fn last_reservation_id(client: &WsClient) -> u64 {
    GridApiClient::reservations_by_owner(client, Pair::dev("Bob").public().to_string(), None)
        .await
        .unwrap()
        .iter()
        .map(|r| r.id)
        .max()
        .unwrap()
}

/// Seals `user:password` as the wallet does for the registry credentials of `to.workload`.
pub fn seal_registry_auth(to: SealFor, user: &str, password: &str) -> Bytes {
    seal_for(
        to,
        SealPurpose::RegistryAuth,
        format!("{user}:{password}").as_bytes(),
    )
}

/// A real container registry (Debian's `docker-registry`) on loopback, removed on drop.
pub struct Registry {
    child: std::process::Child,
    /// `127.0.0.1:PORT`: Docker pulls from loopback registries over plain HTTP.
    pub addr: String,
    credentials: Option<(String, String)>,
    _dir: tempfile::TempDir,
}

impl Registry {
    /// Starts a registry; with `credentials`, it requires them (htpasswd, bcrypt).
    pub fn start(credentials: Option<(&str, &str)>) -> Registry {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let mut config = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {addr}\n",
            dir.path().join("data").display()
        );
        if let Some((user, password)) = credentials {
            let htpasswd = Command::new("htpasswd")
                .args(["-Bbn", user, password])
                .output()
                .expect("htpasswd (apache2-utils) is installed");
            assert!(htpasswd.status.success());
            let file = dir.path().join("htpasswd");
            std::fs::write(&file, &htpasswd.stdout).unwrap();
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: gridchain-test\n    path: {}\n",
                file.display()
            ));
        }
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config_path)
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("registry.log")).unwrap())
            .spawn()
            .expect("docker-registry (Debian package) is installed");
        let registry = Registry {
            child,
            addr,
            credentials: credentials.map(|(u, p)| (u.into(), p.into())),
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(&registry.addr).is_err() {
            assert!(
                Instant::now() < deadline,
                "the registry did not listen in 30 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        registry
    }

    /// Pushes the local test image as `<addr>/<repository>:<tag>` (with the registry's
    /// credentials if it has any), then forgets that name locally so the agent must pull it.
    /// Returns the reference and the digest the registry gave it (`repo@sha256:…`).
    pub async fn push(&self, repository: &str, tag: &str) -> (String, String) {
        ensure_image();
        self.push_image(IMAGE, repository, tag).await
    }

    /// Pushes a new image with `blob_mb` MiB of random bytes and removes it locally, layers
    /// included, so a pull downloads all of it. Returns (reference, digest) as [`Registry::push`].
    pub async fn push_blob_image(
        &self,
        repository: &str,
        tag: &str,
        blob_mb: u32,
    ) -> (String, String) {
        let source = build_blob_image(&repository.replace('/', "-"), blob_mb);
        let pushed = self.push_image(&source, repository, tag).await;
        remove_image(&source);
        remove_image(&pushed.1);
        pushed
    }

    /// [`Registry::push`] of any local image `source`.
    pub async fn push_image(&self, source: &str, repository: &str, tag: &str) -> (String, String) {
        let docker = bollard::Docker::connect_with_local_defaults().unwrap();
        let name = format!("{}/{repository}", self.addr);
        let reference = format!("{name}:{tag}");
        docker
            .tag_image(
                source,
                Some(bollard::query_parameters::TagImageOptions {
                    repo: Some(name.clone()),
                    tag: Some(tag.into()),
                }),
            )
            .await
            .unwrap();
        let credentials =
            self.credentials
                .as_ref()
                .map(|(u, p)| bollard::auth::DockerCredentials {
                    username: Some(u.clone()),
                    password: Some(p.clone()),
                    serveraddress: Some(self.addr.clone()),
                    ..Default::default()
                });
        let mut push = docker.push_image(
            &name,
            Some(bollard::query_parameters::PushImageOptions {
                tag: Some(tag.into()),
                ..Default::default()
            }),
            credentials,
        );
        use futures::StreamExt;
        while let Some(info) = push.next().await {
            let info = info.expect("push");
            assert!(info.error_detail.is_none(), "push failed: {info:?}");
        }
        let digests = docker
            .inspect_image(&reference)
            .await
            .unwrap()
            .repo_digests
            .unwrap_or_default();
        let digest = digests
            .into_iter()
            .find(|d| d.starts_with(&format!("{name}@")))
            .expect("the push recorded a digest");
        remove_image(&reference);
        (reference, digest)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Forgets a local image name (the layers stay while another name uses them).
pub fn remove_image(reference: &str) {
    let _ = Command::new("docker")
        .args(["image", "rm", reference])
        .output();
}

/// `who` reserves `deployment` on `node_id`; returns the id (their newest reservation).
pub async fn reserve(grid: &LocalGrid, who: &Pair, node_id: u32, deployment: Deployment) -> u64 {
    send(
        &grid.client,
        grid.chain,
        who,
        Call::Reservations(reservations::Call::Reserve {
            node_id,
            deployment,
        }),
    )
    .await;
    GridApiClient::reservations_by_owner(&grid.client, who.public().to_string(), None)
        .await
        .unwrap()
        .iter()
        .map(|r| r.id)
        .max()
        .expect("the reservation exists")
}

/// `who` gets a twin named `name`.
pub async fn create_twin(grid: &LocalGrid, who: &Pair, name: &str) {
    send(
        &grid.client,
        grid.chain,
        who,
        Call::Twins(twins::Call::CreateTwin {
            name: name.into(),
            endpoint: String::new(),
        }),
    )
    .await;
}

/// `who` cancels reservation `id`; returns once node `tag` runs no container any more.
pub async fn cancel_and_wait_removed(grid: &LocalGrid, who: &Pair, id: u64, tag: &str) {
    send(
        &grid.client,
        grid.chain,
        who,
        Call::Reservations(reservations::Call::CancelReservation { id }),
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while !docker_ps(tag).is_empty() {
        assert!(Instant::now() < deadline, "containers of {tag} not removed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Where node `node_id`'s owner API is, and the account key it must prove: from the chain.
pub async fn owner_api_of(client: &WsClient, node_id: u32) -> (String, AccountId) {
    let info = GridApiClient::node(client, node_id, None)
        .await
        .unwrap()
        .expect("the node exists");
    let twin = GridApiClient::twin(client, info.node.twin_id, None)
        .await
        .unwrap()
        .expect("the node has a twin");
    assert!(!twin.endpoint.is_empty(), "the agent published no endpoint");
    (twin.endpoint, info.node.account)
}

/// A dev chain with the real agent running node `node_id` (tagged `tag`) on it. Fields drop in
/// order: the agent and what it made first, then the chain, then the directory.
pub struct AgentGrid {
    pub cleanup: Cleanup,
    pub grid: LocalGrid,
    pub node_id: u32,
    pub tag: String,
    pub dir: tempfile::TempDir,
}

/// [`local_grid`] plus [`start_agent`] in a fresh directory.
pub async fn grid_with_agent(name: &str) -> AgentGrid {
    let dir = tempfile::tempdir().unwrap();
    let grid = local_grid(dir.path(), name).await;
    let (cleanup, node_id, tag) =
        start_agent(&grid, dir.path(), &[grid.chain_node.ws_url()], &zdb_addr()).await;
    AgentGrid {
        cleanup,
        grid,
        node_id,
        tag,
        dir,
    }
}
