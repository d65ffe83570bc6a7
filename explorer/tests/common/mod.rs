//! Shared by the explorer's tests: a real dev chain with activity, an explorer indexing it, and
//! a minimal HTTP/1.1 client (one request per connection).

#![allow(dead_code)] // each test binary uses its own subset

use gridchain_primitives::{wireguard::WireguardKey, Hash, Pair};
use gridchain_rpc_api::{
    jsonrpsee::ws_client::WsClient, AuthorApiClient, ChainApiClient, ExtrinsicInfo,
    GridchainApiClient, SystemApiClient,
};
use gridchain_runtime::{
    balances, capacity,
    reservations::{
        self, Deployment, MeshPeer, MeshSpec, ResultData, WireguardEndpoint, Workload,
        WorkloadResult, WorkloadSpec, WorkloadState,
    },
    tfgrid::{self, Location, Resources, GIB},
    twins, Call,
};
use gridchain_tests::{chain_context, signed, DevNode};
use std::{
    net::SocketAddr,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub const UNIT: u128 = 1_000_000_000_000;

/// Signs `call` with `who`, submits it with the typed client and waits until it is final.
pub async fn send(client: &WsClient, who: &Pair, call: Call) -> ExtrinsicInfo {
    let chain = chain_context(client).await;
    let nonce = client
        .account_next_index(who.public().to_string())
        .await
        .expect("nonce");
    let best = client
        .header(None)
        .await
        .expect("rpc")
        .expect("best")
        .number;
    let hash: Hash = client
        .submit_extrinsic(signed(who, call, nonce, best + 256, 0, chain))
        .await
        .expect("submit");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(info) = client.extrinsic(hash).await.expect("rpc") {
            return info;
        }
        assert!(Instant::now() < deadline, "transaction not final in 30 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The chain activity the tests look for.
pub struct Activity {
    pub transfer: ExtrinsicInfo,
    pub failed: ExtrinsicInfo,
    pub alice: String,
    pub bob: String,
}

/// Alice pays Bob twice; Bob then tries to send more than he has (a failed call).
pub async fn make_activity(node: &DevNode) -> Activity {
    let client = node.client().await;
    let alice = Pair::dev("Alice");
    let bob = Pair::dev("Bob");
    let dave = Pair::dev("Dave");
    let transfer = send(
        &client,
        &alice,
        Call::Balances(balances::Call::Transfer {
            dest: bob.public(),
            amount: 7 * UNIT,
        }),
    )
    .await;
    assert!(transfer.success, "{:?}", transfer.error);
    send(
        &client,
        &alice,
        Call::Balances(balances::Call::Transfer {
            dest: dave.public(),
            amount: UNIT,
        }),
    )
    .await;
    let bob_free = client
        .account(bob.public().to_string())
        .await
        .expect("rpc")
        .free;
    let failed = send(
        &client,
        &bob,
        Call::Balances(balances::Call::Transfer {
            dest: alice.public(),
            amount: bob_free * 2,
        }),
    )
    .await;
    assert!(!failed.success);
    Activity {
        transfer,
        failed,
        alice: alice.public().to_string(),
        bob: bob.public().to_string(),
    }
}

async fn ok(client: &WsClient, who: &Pair, call: Call) -> u64 {
    let info = send(client, who, call).await;
    assert!(info.success, "{:?}", info.error);
    info.block_number
}

pub struct GridActivity {
    /// The block of the last grid call.
    pub last_block: u64,
    /// Owner of reservation 1.
    pub user: Pair,
}

/// Twins for a farmer, a node and a user; farm 2 "charlie-farm"; node 1 on it (8 cores,
/// 32 GiB) with a capacity proof, so it is Up; reservation 1 of the user on node 1, whose
/// "net" workload the node reports Ok and whose "web" container it reports failed.
pub async fn make_grid_activity(node: &DevNode) -> GridActivity {
    let client = node.client().await;
    let alice = Pair::dev("Alice");
    let farmer = Pair::dev("Charlie");
    let node_key = Pair::dev("ExplorerNode1");
    let user = Pair::dev("ExplorerUser");

    for to in [&node_key, &user] {
        ok(
            &client,
            &alice,
            Call::Balances(balances::Call::Transfer {
                dest: to.public(),
                amount: 100 * UNIT,
            }),
        )
        .await;
    }
    for (who, name) in [
        (&farmer, "charlie"),
        (&node_key, "node-one"),
        (&user, "explorer-user"),
    ] {
        ok(
            &client,
            who,
            Call::Twins(twins::Call::CreateTwin {
                name: name.into(),
                endpoint: String::new(),
            }),
        )
        .await;
    }
    ok(
        &client,
        &farmer,
        Call::Tfgrid(tfgrid::Call::CreateFarm {
            name: "charlie-farm".into(),
            pricing_policy_id: 1,
        }),
    )
    .await;
    let resources = Resources {
        cru: 8,
        mru: 32 * GIB,
        sru: 1_000 * GIB,
        hru: 4_000 * GIB,
    };
    ok(
        &client,
        &farmer,
        Call::Tfgrid(tfgrid::Call::AddFarmIp {
            farm_id: 2,
            ip: "198.51.100.70/26".into(),
            gateway: "198.51.100.65".into(),
        }),
    )
    .await;
    ok(
        &client,
        &farmer,
        Call::Tfgrid(tfgrid::Call::AllowNode {
            farm_id: 2,
            account: node_key.public(),
        }),
    )
    .await;
    ok(
        &client,
        &node_key,
        Call::Tfgrid(tfgrid::Call::RegisterNode {
            farm_id: 2,
            resources,
            location: Location {
                country: "Belgium".into(),
                city: "Ghent".into(),
                latitude: "51.05".into(),
                longitude: "3.72".into(),
            },
            public_config: None,
        }),
    )
    .await;
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_millis() as u64;
    ok(
        &client,
        &node_key,
        Call::Capacity(capacity::Call::ReportCapacity {
            measured: resources,
            used: Resources::default(),
            uptime_seconds: 60,
            timestamp_ms: now_ms,
        }),
    )
    .await;
    let deployment = Deployment {
        metadata: "explorer test".into(),
        workloads: vec![
            Workload {
                name: "net".into(),
                spec: WorkloadSpec::Network {
                    ip_range: "10.9.1.0/24".into(),
                    egress: false,
                    mesh: Some(MeshSpec {
                        range: "10.9.0.0/16".into(),
                        peers: vec![MeshPeer {
                            public_key: WireguardKey([7; 32]),
                            ip: "10.9.255.2".into(),
                        }],
                    }),
                },
            },
            Workload {
                name: "web".into(),
                spec: WorkloadSpec::Container {
                    image: "docker.io/library/nginx:1".into(),
                    cpu: 2,
                    memory: 2 * GIB,
                    rootfs_size: GIB,
                    entrypoint: String::new(),
                    env: vec![],
                    mounts: vec![],
                    networks: vec![],
                    registry_auth: None,
                    restart: Default::default(),
                    health_check: None,
                },
            },
            Workload {
                name: "web-ip".into(),
                spec: WorkloadSpec::PublicIp {
                    container: "web".into(),
                },
            },
        ],
    };
    ok(
        &client,
        &user,
        Call::Reservations(reservations::Call::Reserve {
            node_id: 1,
            deployment,
        }),
    )
    .await;
    let last = ok(
        &client,
        &node_key,
        Call::Reservations(reservations::Call::ReportResults {
            id: 1,
            version: 1,
            results: vec![
                WorkloadResult {
                    name: "net".into(),
                    state: WorkloadState::Ok,
                    message: "bridge up".into(),
                    data: ResultData::Network {
                        subnet: "10.9.1.0/24".into(),
                        gateway: Some("10.9.1.1".into()),
                        wireguard: Some(WireguardEndpoint {
                            public_key: WireguardKey([8; 32]),
                            endpoint: "198.51.100.9:51820".into(),
                        }),
                    },
                },
                WorkloadResult {
                    name: "web".into(),
                    state: WorkloadState::Error,
                    message: "image pull failed: manifest unknown".into(),
                    data: ResultData::None,
                },
            ],
        }),
    )
    .await;

    GridActivity {
        last_block: last,
        user,
    }
}

pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// `GET path` (already percent-encoded) over a fresh connection.
pub async fn get(addr: SocketAddr, path: &str) -> HttpResponse {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.expect("read");
    let text = String::from_utf8(raw).expect("utf-8 response");
    let (head, body) = text.split_once("\r\n\r\n").expect("HTTP head");
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_string()
    };
    HttpResponse {
        status,
        headers,
        body,
    }
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).expect("chunk size");
        if size == 0 {
            break;
        }
        out.push_str(&rest[..size]);
        body = &rest[size + 2..];
    }
    out
}

/// Waits until the explorer at `addr` has indexed block `height`.
pub async fn wait_indexed(addr: SocketAddr, height: u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let home = get(addr, "/api/").await.json();
        if home["chain"]["indexedHeight"].as_u64() >= Some(height) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "explorer did not index block {height} in 60 s: {home}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Starts an explorer on a free port, indexing `node` into `db`.
pub async fn start_explorer(node: &DevNode, db: &std::path::Path) -> explorer::ExplorerHandle {
    let mut config = explorer::Config::new(node.ws_url(), db);
    config.listen = "127.0.0.1:0".parse().expect("addr");
    explorer::serve(config).await.expect("explorer starts")
}
