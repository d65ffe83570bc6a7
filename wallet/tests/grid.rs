//! The grid commands against a real `gridnode --dev --no-agent`: twins, farms, nodes,
//! reservations from the example deployment files, `reservation watch` following results the
//! test reports as the node, cancel, a full node, and bad deployment files.
//!
//! The 3Node is played by the test: it registers with the typed RPC client, signed by its own
//! key, keeps proving its capacity, and reports results.

#![allow(clippy::unwrap_used)]

mod common;

use common::{grid, DevNode, GridRun};
use gridchain_primitives::{
    seal::{self, SealContext, SealPurpose},
    Bytes, ChainContext, Pair,
};
use gridchain_rpc_api::{
    jsonrpsee::ws_client::{WsClient, WsClientBuilder},
    AuthorApiClient, ChainApiClient, ExtrinsicInfo, GridApiClient, GridchainApiClient,
    StateApiClient, SystemApiClient,
};
use gridchain_runtime::{
    capacity,
    reservations::{self, EnvValue, ResultData, WorkloadResult, WorkloadSpec, WorkloadState},
    tfgrid::{self, Location, Resources, GIB},
    Call, Extrinsic,
};
use parity_scale_codec::Encode;
use std::{
    future::Future,
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};
use tokio::sync::Mutex;

fn example(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(name)
        .display()
        .to_string()
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as u64
}

/// Runs `grid` on a blocking thread, so the node's background proofs keep going.
fn run(keystore: &Path, args: Vec<String>) -> impl Future<Output = GridRun> + Send + 'static {
    let keystore = keystore.to_path_buf();
    async move {
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            grid(&keystore, &args)
        })
        .await
        .expect("grid run")
    }
}

struct Chain {
    client: WsClient,
    context: ChainContext,
    /// Serialises the node key's transactions (proofs and results share its nonce).
    node_lock: Mutex<()>,
}

impl Chain {
    async fn connect(url: &str) -> Self {
        let client = WsClientBuilder::default()
            .build(url)
            .await
            .expect("connect");
        let genesis_hash = client.block_hash(Some(0)).await.unwrap().unwrap();
        let spec_version = client.runtime_version().await.unwrap().spec_version;
        Chain {
            client,
            context: ChainContext {
                genesis_hash,
                spec_version,
            },
            node_lock: Mutex::new(()),
        }
    }

    /// Signs and submits `call`, waiting until it is in a final block.
    async fn send(&self, who: &Pair, call: Call) -> ExtrinsicInfo {
        let nonce = self
            .client
            .account_next_index(who.public().to_string())
            .await
            .unwrap();
        let best = self.client.header(None).await.unwrap().unwrap().number;
        let xt = Extrinsic::sign(who, call, nonce, best + 256, 0, self.context);
        let hash = self
            .client
            .submit_extrinsic(Bytes(xt.encode()))
            .await
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(info) = self.client.extrinsic(hash).await.unwrap() {
                return info;
            }
            assert!(Instant::now() < deadline, "transaction not final in 30 s");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A call by the node's key that must succeed.
    async fn as_node(&self, node_key: &Pair, call: Call) {
        let _guard = self.node_lock.lock().await;
        let info = self.send(node_key, call).await;
        assert!(info.success, "node call failed: {:?}", info.error);
    }
}

fn node_resources() -> Resources {
    Resources {
        cru: 8,
        mru: 32 * GIB,
        sru: 1_000 * GIB,
        hru: 4_000 * GIB,
    }
}

fn proof() -> Call {
    Call::Capacity(capacity::Call::ReportCapacity {
        measured: node_resources(),
        used: Resources::default(),
        uptime_seconds: 60,
        timestamp_ms: now_ms(),
    })
}

fn args(list: &[&str], rpc: &str) -> Vec<String> {
    let mut all: Vec<String> = list.iter().map(|s| s.to_string()).collect();
    all.extend(["--rpc".to_string(), rpc.to_string()]);
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twins_farms_nodes_and_reservations() {
    let dir = tempfile::tempdir().unwrap();
    let keystore: PathBuf = dir.path().join("keystore.json");
    let ks = keystore.as_path();
    let dev = DevNode::start(ks);
    let rpc = dev.ws_url.clone();
    let chain = Arc::new(Chain::connect(&rpc).await);
    let node_key = Pair::dev("GridNode1");
    let node_address = node_key.public().to_string();
    let bob = Pair::dev("Bob").public().to_string();
    let a = |list: &[&str]| args(list, &rpc);

    // The node's key needs GRID for fees.
    run(
        ks,
        a(&["transfer", &node_address, "100", "--from", "//Alice"]),
    )
    .await
    .assert_code(0);

    // Twins.
    let created = run(
        ks,
        a(&[
            "twin",
            "create",
            "bob",
            "--endpoint",
            "https://bob.example",
            "--from",
            "//Bob",
            "--output",
            "json",
        ]),
    )
    .await;
    created.assert_code(0);
    let bob_twin = created.json()["id"].as_u64().expect("twin id");
    assert_eq!(created.json()["twin"]["name"], "bob");
    run(ks, a(&["twin", "create", "node1", "--from", "//GridNode1"]))
        .await
        .assert_code(0);
    for by in ["bob".to_string(), bob.clone(), bob_twin.to_string()] {
        let shown = run(ks, a(&["twin", "show", &by, "--output", "json"])).await;
        shown.assert_code(0);
        assert_eq!(shown.json()["id"].as_u64(), Some(bob_twin), "by {by}");
        assert_eq!(shown.json()["endpoint"], "https://bob.example");
    }
    let text = run(ks, a(&["twin", "show", "bob"])).await;
    assert!(
        text.stdout.contains("https://bob.example"),
        "{}",
        text.stdout
    );
    let all = run(ks, a(&["twin", "show", "--output", "json"])).await;
    assert!(all.json().as_array().unwrap().len() >= 3);
    run(ks, a(&["twin", "show", "nobody"])).await.assert_code(1);
    let again = run(ks, a(&["twin", "create", "bob2", "--from", "//Bob"])).await;
    again.assert_code(5);
    assert!(again.stderr.contains("AlreadyHasTwin"), "{}", again.stderr);

    // Farms.
    let farm = run(
        ks,
        a(&[
            "farm", "create", "bob-farm", "--from", "//Bob", "--output", "json",
        ]),
    )
    .await;
    farm.assert_code(0);
    let farm_id = farm.json()["id"].as_u64().expect("farm id") as u32;
    for by in ["bob-farm".to_string(), farm_id.to_string()] {
        let shown = run(ks, a(&["farm", "show", &by, "--output", "json"])).await;
        shown.assert_code(0);
        assert_eq!(shown.json()["name"], "bob-farm");
        assert_eq!(shown.json()["twinId"].as_u64(), Some(bob_twin));
    }
    let list = run(ks, a(&["farm", "list", "--output", "json"])).await;
    list.assert_code(0);
    let names: Vec<String> = list
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["dev-farm", "bob-farm"]);
    run(ks, a(&["farm", "show", "99"])).await.assert_code(1);
    let taken = run(ks, a(&["farm", "create", "dev-farm", "--from", "//Bob"])).await;
    taken.assert_code(5);

    // The farm's owner lets the 3Node's key join (nobody else may), then the node registers
    // with its own key and proves its capacity, then keeps doing so.
    let farm_text = farm_id.to_string();
    run(
        ks,
        a(&[
            "farm",
            "allow-node",
            &farm_text,
            &node_address,
            "--from",
            "//Charlie",
        ]),
    )
    .await
    .assert_code(5);
    let allowed = run(
        ks,
        a(&[
            "farm",
            "allow-node",
            &farm_text,
            &node_address,
            "--from",
            "//Bob",
        ]),
    )
    .await;
    allowed.assert_code(0);
    assert!(
        allowed.stdout.contains("may now register on farm"),
        "{}",
        allowed.stdout
    );
    // Public IPs: the owner lists one (a gateway outside its network, a second listing and a
    // stranger are refused by the chain), `farm show` says it is free, and it can go again.
    let add_ip = |gateway: &'static str, from: &'static str| {
        a(&[
            "farm",
            "add-ip",
            &farm_text,
            "198.51.100.70/26",
            "--gateway",
            gateway,
            "--from",
            from,
        ])
    };
    run(ks, add_ip("198.51.100.1", "//Bob"))
        .await
        .assert_code(5);
    run(ks, add_ip("198.51.100.65", "//Charlie"))
        .await
        .assert_code(5);
    run(ks, add_ip("198.51.100.65", "//Bob"))
        .await
        .assert_code(0);
    run(ks, add_ip("198.51.100.65", "//Bob"))
        .await
        .assert_code(5);
    let shown = run(ks, a(&["farm", "show", &farm_text])).await;
    shown.assert_code(0);
    assert!(
        shown
            .stdout
            .contains("198.51.100.70/26 (gw 198.51.100.65, free)"),
        "{}",
        shown.stdout
    );
    run(
        ks,
        a(&[
            "farm",
            "remove-ip",
            &farm_text,
            "198.51.100.70/26",
            "--from",
            "//Bob",
        ]),
    )
    .await
    .assert_code(0);
    chain
        .as_node(
            &node_key,
            Call::Tfgrid(tfgrid::Call::RegisterNode {
                farm_id,
                resources: node_resources(),
                location: Location {
                    country: "BE".into(),
                    city: "Ghent".into(),
                    ..Default::default()
                },
                public_config: None,
            }),
        )
        .await;
    let node_id = chain
        .client
        .node_by_account(node_address.clone(), None)
        .await
        .unwrap()
        .expect("node registered")
        .node
        .id;
    chain.as_node(&node_key, proof()).await;
    let keeper = {
        let chain = chain.clone();
        let node_key = node_key.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(3)).await;
                chain.as_node(&node_key, proof()).await;
            }
        })
    };
    let node_id_text = node_id.to_string();

    // Nodes.
    let listed = run(
        ks,
        a(&["node", "list", "--farm", &farm_text, "--output", "json"]),
    )
    .await;
    listed.assert_code(0);
    let nodes = listed.json();
    assert_eq!(nodes.as_array().unwrap().len(), 1);
    assert_eq!(nodes[0]["node"]["id"].as_u64(), Some(node_id as u64));
    assert_eq!(nodes[0]["status"], "up");
    for (filter, expected) in [
        (vec!["--status", "up"], 1),
        (vec!["--status", "standby"], 0),
        (vec!["--min-free-cru", "8", "--min-free-mru", "16GiB"], 1),
        (vec!["--min-free-cru", "9"], 0),
        (vec!["--min-free-hru", "5TiB"], 0),
    ] {
        let mut list = vec!["node", "list", "--farm", &farm_text, "--output", "json"];
        list.extend(filter.iter().copied());
        let got = run(ks, a(&list)).await;
        got.assert_code(0);
        assert_eq!(got.json().as_array().unwrap().len(), expected, "{filter:?}");
    }
    let shown = run(ks, a(&["node", "show", &node_id_text, "--output", "json"])).await;
    shown.assert_code(0);
    let info = shown.json();
    assert_eq!(info["capacity"]["total"]["cru"].as_u64(), Some(8));
    assert_eq!(info["capacity"]["reserved"]["cru"].as_u64(), Some(0));
    assert_eq!(info["status"], "up");
    assert!(info["health"]["lastProofMs"].as_u64().is_some());
    let text = run(ks, a(&["node", "show", &node_id_text])).await;
    text.assert_code(0);
    for expected in ["status:      up", "Ghent, BE", "free", "memory", "32GiB"] {
        assert!(
            text.stdout.contains(expected),
            "{expected}: {}",
            text.stdout
        );
    }
    run(ks, a(&["node", "show", "999"])).await.assert_code(1);
    // A usage error (clap's own message, exit 2).
    let usage = run(ks, a(&["node", "list", "--status", "sideways"])).await;
    assert_eq!(usage.code, 2, "{}", usage.stderr);

    // Reserve the container example: its secret env value is sealed to the node.
    let reserved = run(
        ks,
        a(&[
            "reserve",
            "--node",
            &node_id_text,
            &example("container.yaml"),
            "--from",
            "//Bob",
            "--output",
            "json",
        ]),
    )
    .await;
    reserved.assert_code(0);
    let web = reserved.json()["id"].as_u64().expect("reservation id");
    let web_text = web.to_string();
    let on_chain = GridApiClient::reservation(&chain.client, web, None)
        .await
        .unwrap()
        .unwrap();
    let WorkloadSpec::Container { env, memory, .. } = &on_chain.deployment.workloads[2].spec else {
        panic!("container expected: {:?}", on_chain.deployment);
    };
    assert_eq!(*memory, 512 << 20);
    assert_eq!(env[0].value, EnvValue::Plain("80".into()));
    let EnvValue::Sealed(sealed) = &env[1].value else {
        panic!("ADMIN_TOKEN is not sealed: {env:?}");
    };
    // Sealed for this reservation: this chain, Bob, the node, that workload and variable.
    let context = SealContext {
        genesis: chain.context.genesis_hash,
        owner: Pair::dev("Bob").public(),
        node: node_key.public(),
        workload: on_chain.deployment.workloads[2].name.clone(),
        purpose: SealPurpose::Env {
            name: "ADMIN_TOKEN".into(),
        },
    };
    assert_eq!(
        seal::open(&node_key.seed(), &context, &sealed.0).unwrap(),
        b"change-me"
    );
    let mut stolen = context.clone();
    stolen.owner = Pair::dev("Charlie").public();
    assert!(seal::open(&node_key.seed(), &stolen, &sealed.0).is_err());

    let shown = run(
        ks,
        a(&["reservation", "show", &web_text, "--output", "json"]),
    )
    .await;
    shown.assert_code(0);
    assert_eq!(shown.json()["state"], "created");
    assert_eq!(shown.json()["version"].as_u64(), Some(1));
    let text = run(ks, a(&["reservation", "show", &web_text])).await;
    assert!(text.stdout.contains("pending"), "{}", text.stdout);
    assert!(!text.stdout.contains("change-me"), "{}", text.stdout);
    for by in [vec!["--owner", bob.as_str()], vec!["--node", &node_id_text]] {
        let mut list = vec!["reservation", "list", "--output", "json"];
        list.extend(by.iter().copied());
        let got = run(ks, a(&list)).await;
        got.assert_code(0);
        let ids: Vec<u64> = got
            .json()
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_u64().unwrap())
            .collect();
        assert_eq!(ids, [web], "{by:?}");
    }
    run(ks, a(&["reservation", "list"])).await.assert_code(1);
    run(ks, a(&["reservation", "show", "999"]))
        .await
        .assert_code(1);
    // `vpn` needs a network in a mesh: one readable line, exit 1, no config printed.
    let vpn = run(ks, a(&["reservation", "vpn", &web_text, "--from", "//Bob"])).await;
    vpn.assert_code(1);
    assert!(
        vpn.stderr.contains("has no network in a mesh") && vpn.stdout.is_empty(),
        "{} / {}",
        vpn.stderr,
        vpn.stdout
    );

    // `watch` follows the results the node reports, and exits 0 once every workload is Ok.
    let watcher = tokio::spawn(run(
        ks,
        a(&["reservation", "watch", &web_text, "--timeout", "60"]),
    ));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let ok_results: Vec<WorkloadResult> = on_chain
        .deployment
        .workloads
        .iter()
        .map(|w| WorkloadResult {
            name: w.name.clone(),
            state: WorkloadState::Ok,
            message: format!("{} running", w.name),
            data: ResultData::None,
        })
        .collect();
    chain
        .as_node(
            &node_key,
            Call::Reservations(reservations::Call::ReportResults {
                id: web,
                version: 1,
                results: ok_results,
            }),
        )
        .await;
    let watched = watcher.await.unwrap();
    watched.assert_code(0);
    assert!(
        watched.stdout.contains("web: pending") && watched.stdout.contains("web: ok: web running"),
        "{}",
        watched.stdout
    );
    let shown = run(
        ks,
        a(&["reservation", "show", &web_text, "--output", "json"]),
    )
    .await;
    assert_eq!(shown.json()["state"], "deployed");
    let watched = run(
        ks,
        a(&["reservation", "watch", &web_text, "--output", "json"]),
    )
    .await;
    watched.assert_code(0);
    assert_eq!(watched.json()["id"].as_u64(), Some(web));

    // A workload the node reports as Error: watch exits 5 with the node's message.
    let reserved = run(
        ks,
        a(&[
            "reserve",
            "--node",
            &node_id_text,
            &example("zdb.yaml"),
            "--from",
            "//Bob",
        ]),
    )
    .await;
    reserved.assert_code(0);
    let zdb: u64 = reserved
        .stdout
        .split_whitespace()
        .nth(1)
        .and_then(|id| id.parse().ok())
        .unwrap_or_else(|| panic!("reservation id in {:?}", reserved.stdout));
    let zdb_text = zdb.to_string();
    chain
        .as_node(
            &node_key,
            Call::Reservations(reservations::Call::ReportResults {
                id: zdb,
                version: 1,
                results: vec![WorkloadResult {
                    name: "backend".into(),
                    state: WorkloadState::Error,
                    message: "zdb: no space left on device".into(),
                    data: ResultData::None,
                }],
            }),
        )
        .await;
    let failed = run(ks, a(&["reservation", "watch", &zdb_text])).await;
    failed.assert_code(5);
    assert!(
        failed.stderr.contains("\"backend\"")
            && failed.stderr.contains("zdb: no space left on device"),
        "{}",
        failed.stderr
    );
    let failed = run(
        ks,
        a(&["reservation", "watch", &zdb_text, "--output", "json"]),
    )
    .await;
    failed.assert_code(5);
    assert_eq!(failed.json()["state"], "failed");

    // Update: a new version with the full example (JSON form).
    let updated = run(
        ks,
        a(&[
            "reservation",
            "update",
            &web_text,
            &example("full.json"),
            "--from",
            "//Bob",
            "--output",
            "json",
        ]),
    )
    .await;
    updated.assert_code(0);
    assert_eq!(updated.json()["version"].as_u64(), Some(2));
    let shown = run(
        ks,
        a(&["reservation", "show", &web_text, "--output", "json"]),
    )
    .await;
    assert_eq!(
        shown.json()["deployment"]["workloads"]
            .as_array()
            .unwrap()
            .len(),
        5
    );

    // Cancel: someone else may not; the owner may.
    let not_owner = run(
        ks,
        a(&["reservation", "cancel", &zdb_text, "--from", "//GridNode1"]),
    )
    .await;
    not_owner.assert_code(5);
    assert!(
        not_owner.stderr.contains("NotOwner"),
        "{}",
        not_owner.stderr
    );
    run(
        ks,
        a(&["reservation", "cancel", &zdb_text, "--from", "//Bob"]),
    )
    .await
    .assert_code(0);
    let shown = run(
        ks,
        a(&["reservation", "show", &zdb_text, "--output", "json"]),
    )
    .await;
    assert_eq!(shown.json()["state"]["deleted"]["reason"], "canceledByUser");
    let gone = run(ks, a(&["reservation", "watch", &zdb_text])).await;
    gone.assert_code(5);
    assert!(gone.stderr.contains("deleted"), "{}", gone.stderr);

    // A node without room for the deployment: exit 5 with InsufficientCapacity.
    let big = dir.path().join("big.yaml");
    std::fs::write(
        &big,
        "workloads:\n  - name: huge\n    type: container\n    image: alpine\n    cpu: 64\n    memory: 1GiB\n",
    )
    .unwrap();
    let full = run(
        ks,
        a(&[
            "reserve",
            "--node",
            &node_id_text,
            big.to_str().unwrap(),
            "--from",
            "//Bob",
        ]),
    )
    .await;
    full.assert_code(5);
    assert!(
        full.stderr.contains("InsufficientCapacity"),
        "{}",
        full.stderr
    );
    let full = run(
        ks,
        a(&[
            "reserve",
            "--node",
            &node_id_text,
            big.to_str().unwrap(),
            "--from",
            "//Bob",
            "--output",
            "json",
        ]),
    )
    .await;
    full.assert_code(5);
    assert_eq!(full.json()["success"], false);

    // A deployment the chain would refuse is refused before anything is signed, naming the
    // workload.
    let bad = dir.path().join("bad-mount.yaml");
    std::fs::write(
        &bad,
        "workloads:\n  - name: web\n    type: container\n    image: nginx\n    cpu: 1\n    memory: 64MiB\n    mounts: [{volume: nope, path: /data}]\n",
    )
    .unwrap();
    let refused = run(
        ks,
        a(&[
            "reserve",
            "--node",
            &node_id_text,
            bad.to_str().unwrap(),
            "--from",
            "//Bob",
        ]),
    )
    .await;
    refused.assert_code(1);
    assert!(
        refused.stderr.contains("\"web\"") && refused.stderr.contains("\"nope\""),
        "{}",
        refused.stderr
    );

    // An unknown node is refused before anything is signed.
    let unknown = run(
        ks,
        a(&[
            "reserve",
            "--node",
            "999",
            &example("zdb.yaml"),
            "--from",
            "//Bob",
        ]),
    )
    .await;
    unknown.assert_code(1);
    assert!(unknown.stderr.contains("no node 999"), "{}", unknown.stderr);

    keeper.abort();
}

/// Bad deployment files are refused before the node is contacted, with the line and column.
#[test]
fn bad_deployment_files_exit_1_with_position() {
    let dir = tempfile::tempdir().unwrap();
    let keystore = dir.path().join("keystore.json");
    // Nothing listens on this port: the file is refused before any connection.
    let rpc = "ws://127.0.0.1:9";
    let cases = [
        (
            "syntax.yaml",
            "workloads:\n  - name: a\n    type: volume\n   size: [1\n",
            "line",
        ),
        (
            "field.yaml",
            "workloads:\n  - name: a\n    type: volume\n    sise: 1GiB\n",
            "unknown field `sise`",
        ),
        (
            "unit.yaml",
            "workloads:\n  - name: a\n    type: volume\n    size: 10XB\n",
            "line 4",
        ),
        ("bad.json", "{\"workloads\": [ }", "line 1 column"),
        ("empty.yaml", "", "invalid deployment file"),
    ];
    for (name, text, expected) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        let run = grid(
            &keystore,
            &[
                "reserve",
                "--node",
                "1",
                path.to_str().unwrap(),
                "--from",
                "//Bob",
                "--rpc",
                rpc,
            ],
        );
        run.assert_code(1);
        assert!(run.stderr.contains(expected), "{name}: {}", run.stderr);
        let json = grid(
            &keystore,
            &[
                "reserve",
                "--node",
                "1",
                path.to_str().unwrap(),
                "--from",
                "//Bob",
                "--rpc",
                rpc,
                "--output",
                "json",
            ],
        );
        json.assert_code(1);
        assert_eq!(json.json()["error"]["exitCode"], 1);
    }
    let missing = grid(
        &keystore,
        &[
            "reserve",
            "--node",
            "1",
            "/nonexistent/deployment.yaml",
            "--from",
            "//Bob",
            "--rpc",
            rpc,
        ],
    );
    missing.assert_code(1);
}
