//! Helpers of the integration tests: run the real `grid` binary, and a real `gridnode --dev`
//! on a free port, killed when the test ends.
//!
//! `gridnode` is looked up next to the `grid` binary (the same target directory), so build it
//! first: `cargo build -p gridnode`.

#![allow(dead_code)] // each test file uses its own subset of the helpers

use std::{
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    time::{Duration, Instant},
};

/// What one `grid` run printed and how it exited.
pub struct GridRun {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl GridRun {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}):\n{}", self.stdout))
    }

    /// Asserts the exit code and, on failure, exactly one `error: …` line on stderr.
    pub fn assert_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code, code,
            "exit code\nstdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        if code != 0 {
            let lines: Vec<&str> = self.stderr.lines().collect();
            assert_eq!(lines.len(), 1, "one error line, got: {:?}", self.stderr);
            assert!(lines[0].starts_with("error: "), "{}", lines[0]);
        }
        self
    }
}

/// The keystore passphrase [`grid`] gives through `GRID_PASSWORD`.
pub const TEST_PASSWORD: &str = "test keystore passphrase";

/// Runs `grid` with `args`, a keystore at `keystore` whose passphrase is [`TEST_PASSWORD`]
/// (`GRID_PASSWORD`), no terminal, and no other inherited GRID_* settings.
pub fn grid(keystore: &Path, args: &[&str]) -> GridRun {
    grid_with_password(keystore, Some(TEST_PASSWORD), args)
}

/// [`grid`] with another `GRID_PASSWORD`, or none (`None`: the variable is unset).
pub fn grid_with_password(keystore: &Path, password: Option<&str>, args: &[&str]) -> GridRun {
    let mut command = Command::new(env!("CARGO_BIN_EXE_grid"));
    command
        .args(args)
        .env_remove("GRID_RPC")
        .env_remove("GRID_SECRET_URI")
        .env_remove("GRID_PASSWORD")
        .env("GRID_KEYSTORE", keystore)
        .stdin(Stdio::null());
    if let Some(password) = password {
        command.env("GRID_PASSWORD", password);
    }
    let output: Output = command.output().expect("run grid");
    GridRun {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// A `gridnode --dev --tmp` child process, killed on drop.
pub struct DevNode {
    child: Child,
    pub ws_url: String,
    pub http_url: String,
}

fn gridnode_path() -> PathBuf {
    let grid = PathBuf::from(env!("CARGO_BIN_EXE_grid"));
    let path = grid
        .parent()
        .expect("grid binary has a directory")
        .join("gridnode");
    assert!(
        path.exists(),
        "{} is missing: run `cargo build -p gridnode` (same CARGO_TARGET_DIR) before these tests",
        path.display()
    );
    path
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("bind a free port")
        .port()
}

impl DevNode {
    /// Starts a dev node and waits until it answers RPC with a block past genesis.
    pub fn start(keystore: &Path) -> Self {
        let port = free_port();
        let child = Command::new(gridnode_path())
            .args([
                "--dev",
                "--no-agent",
                "--no-explorer",
                "--tmp",
                "--no-prometheus",
                "--rpc-port",
            ])
            .arg(port.to_string())
            .args(["--log", "warn"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn gridnode");
        let node = DevNode {
            child,
            ws_url: format!("ws://127.0.0.1:{port}"),
            http_url: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let run = grid(
                keystore,
                &["block", "--output", "json", "--rpc", &node.ws_url],
            );
            if run.code == 0 && run.json()["number"].as_u64().unwrap_or(0) >= 1 {
                return node;
            }
            assert!(
                Instant::now() < deadline,
                "gridnode did not come up on port {port}: {}",
                run.stderr
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for DevNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
