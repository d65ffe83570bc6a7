//! "The internet" for multi-host tests: a web server in the internet namespace and a client
//! in a container.
#![allow(dead_code)] // each test binary uses a different subset

use super::{start_agent_in, zdb_addr, Cleanup, LocalGrid};
use gridchain_tests::Namespaces;
use std::{
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

/// The internet's own public address (TEST-NET-2): where its web server answers.
pub const PUBLIC: &str = "198.51.100.1";

/// A web server in the internet namespace on every address it has, logging each client.
pub struct WebServer(Child, std::path::PathBuf);

impl WebServer {
    pub fn start(hosts: &Namespaces, internet: usize, dir: &std::path::Path, port: u16) -> Self {
        let root = dir.join("www");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::write(root.join("hello"), "hello from the internet\n").unwrap();
        let log = dir.join("www.log");
        let child = Command::new("ip")
            .args(["netns", "exec", hosts.name(internet), "python3", "-m"])
            .args(["http.server", &port.to_string(), "--bind", "0.0.0.0"])
            .arg("--directory")
            .arg(&root)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        // Up once it answers inside its own namespace.
        let deadline = Instant::now() + Duration::from_secs(20);
        let url = format!("http://{PUBLIC}:{port}/hello");
        while !hosts
            .exec(internet, "busybox", &["wget", "-q", "-O", "-", &url])
            .status
            .success()
        {
            assert!(Instant::now() < deadline, "web server not up");
            std::thread::sleep(Duration::from_millis(100));
        }
        WebServer(child, log)
    }

    /// What the server logged: one line per request, the client's address first.
    pub fn clients(&self) -> String {
        std::fs::read_to_string(&self.1).unwrap_or_default()
    }
}

impl Drop for WebServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What `wget` in `container` gets from `url` (at most 5 s), or `None`.
pub fn fetch(container: &str, url: &str) -> Option<String> {
    let out = Command::new("docker")
        .args([
            "exec", container, "timeout", "5", "wget", "-q", "-O", "-", url,
        ])
        .output()
        .unwrap();
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The Docker name of workload `workload` of reservation `id` on the node tagged `tag`.
pub fn container_of(tag: &str, id: u64, workload: &str) -> String {
    format!("gc-{tag}-r{id}-{workload}")
}

/// Starts the agent of `grid`'s node as test host `host` of `hosts` (its own namespace,
/// reaching the chain at this machine's LAN address: `grid` runs with `--rpc-external`).
pub async fn agent_on_host(
    hosts: &Namespaces,
    host: usize,
    grid: &LocalGrid,
    dir: &std::path::Path,
) -> (Cleanup, u32, String) {
    let rpc = format!("ws://{}:{}", hosts.lan_gateway(), grid.chain_node.rpc_port);
    start_agent_in(Some(hosts.name(host)), grid, dir, &[rpc], &zdb_addr()).await
}
