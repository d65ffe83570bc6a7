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

/// A `gridnode --dev` child process on its own ports; killed on drop.
pub struct DevNode {
    child: Option<Child>,
    pub base_path: PathBuf,
    pub rpc_port: u16,
    pub metrics_port: u16,
    block_time_ms: u64,
}

impl DevNode {
    /// Starts a dev node storing its data in `base_path` and waits until its RPC answers.
    pub async fn start(base_path: &Path, block_time_ms: u64) -> Self {
        let mut node = DevNode {
            child: None,
            base_path: base_path.to_path_buf(),
            rpc_port: free_port(),
            metrics_port: free_port(),
            block_time_ms,
        };
        node.spawn().await;
        node
    }

    async fn spawn(&mut self) {
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
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn gridnode");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(client) = WsClientBuilder::default().build(self.ws_url()).await {
                if client.block_hash(Some(0)).await.is_ok() {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "gridnode did not answer RPC within 30 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
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
        self.spawn().await;
    }
}

impl Drop for DevNode {
    fn drop(&mut self) {
        self.kill9();
    }
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
