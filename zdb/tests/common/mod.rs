//! Helpers shared by the integration tests: an in-process server on an
//! ephemeral port, the real `zdb` binary as a child process, and clients.

#![allow(dead_code)] // each test binary uses its own subset of these helpers

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use zdb::{Server, ZdbConfig};

/// A server running in-process on its own runtime.
pub struct InProcess {
    pub rt: tokio::runtime::Runtime,
    pub server: Option<Server>,
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
}

impl InProcess {
    pub fn start() -> Self {
        Self::start_with(|_| {})
    }

    pub fn start_with(tweak: impl FnOnce(&mut ZdbConfig)) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = ZdbConfig::ephemeral(dir.path());
        tweak(&mut config);
        Self::start_in(dir, config)
    }

    pub fn start_in(dir: tempfile::TempDir, config: ZdbConfig) -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let server = rt.block_on(Server::start(config)).expect("server starts");
        let addr = server.local_addr().expect("tcp address");
        InProcess {
            rt,
            server: Some(server),
            addr,
            dir,
        }
    }

    pub fn client(&self) -> redis::Connection {
        connect(self.addr)
    }

    /// A raw connection from the loopback address `source` (any 127.x.y.z
    /// works on Linux), to look like another client machine.
    pub fn raw_from(&self, source: IpAddr) -> TcpStream {
        let addr = self.addr;
        let stream = self
            .rt
            .block_on(async move {
                let socket = tokio::net::TcpSocket::new_v4()?;
                socket.bind(SocketAddr::new(source, 0))?;
                socket.connect(addr).await
            })
            .expect("connect from a chosen source address")
            .into_std()
            .expect("std stream");
        stream.set_nonblocking(false).expect("blocking");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        stream
    }

    /// Stops the server gracefully and returns its directory for a restart.
    pub fn stop(mut self) -> tempfile::TempDir {
        if let Some(server) = self.server.take() {
            self.rt.block_on(server.shutdown()).expect("clean shutdown");
        }
        let InProcess { dir, .. } = self;
        dir
    }
}

pub fn connect(addr: SocketAddr) -> redis::Connection {
    let client = redis::Client::open(format!("redis://{addr}/")).expect("client");
    client
        .get_connection_with_timeout(Duration::from_secs(10))
        .expect("connect")
}

/// Runs a command, expecting success.
pub fn q<T: redis::FromRedisValue>(con: &mut redis::Connection, args: &[&[u8]]) -> T {
    let mut cmd = redis::cmd(std::str::from_utf8(args[0]).expect("utf8 command"));
    for a in &args[1..] {
        cmd.arg(*a);
    }
    match cmd.query(con) {
        Ok(v) => v,
        Err(e) => panic!("{:?} failed: {e}", String::from_utf8_lossy(&args.concat())),
    }
}

/// Runs a command, expecting an error reply; returns its text.
pub fn qerr(con: &mut redis::Connection, args: &[&[u8]]) -> String {
    let mut cmd = redis::cmd(std::str::from_utf8(args[0]).expect("utf8 command"));
    for a in &args[1..] {
        cmd.arg(*a);
    }
    match cmd.query::<redis::Value>(con) {
        Ok(v) => panic!(
            "{:?} should fail, got {v:?}",
            String::from_utf8_lossy(&args.concat())
        ),
        // The server's line as sent: redis-rs splits a reply's first word off as its code.
        Err(e) => match e.code() {
            Some(code) => format!("{code} {}", e.detail().unwrap_or_default()),
            None => e.to_string(),
        },
    }
}

/// The `zdb` binary as a child process.
pub struct Binary {
    pub child: Child,
    pub addr: SocketAddr,
}

pub fn zdb_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_zdb"))
}

impl Binary {
    pub fn start(root: &Path, extra: &[&str]) -> Binary {
        let mut child = Command::new(zdb_bin())
            .arg("--data")
            .arg(root.join("data"))
            .arg("--index")
            .arg(root.join("index"))
            .args(["--port", "0"])
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn zdb");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read listen line");
        let addr = line
            .trim()
            .strip_prefix("zdb listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .parse()
            .expect("address");
        Binary { child, addr }
    }

    pub fn kill9(mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reap");
    }

    pub fn terminate(mut self) {
        let pid = self.child.id().to_string();
        let status = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill -TERM");
        assert!(status.success());
        let exit = self.child.wait().expect("wait");
        assert!(exit.success(), "zdb exited with {exit}");
    }
}

impl Drop for Binary {
    /// A failed test must not leave a server behind (it would also keep
    /// the test harness' output pipe open).
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Polls `done` until it holds, failing the test after `timeout`; returns how
/// long it took.
pub fn wait_for(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    loop {
        if done() {
            return started.elapsed();
        }
        assert!(started.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// `clients_connected` from `INFO` (the asking connection included).
pub fn clients_connected(con: &mut redis::Connection) -> u64 {
    let info: String = q(con, &[b"INFO"]);
    info.lines()
        .find_map(|l| l.strip_prefix("clients_connected: "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no clients_connected in {info}"))
}

/// Sends an inline command and reads one single-line reply (`+...` or
/// `-...`, without CRLF); `None` if the server closed the connection.
pub fn ask(t: &mut TcpStream, line: &str) -> Option<String> {
    if t.write_all(format!("{line}\r\n").as_bytes()).is_err() {
        return None;
    }
    read_line(t)
}

/// Reads one reply line (without CRLF); `None` at end of stream.
pub fn read_line(t: &mut TcpStream) -> Option<String> {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while !line.ends_with(b"\r\n") {
        match t.read(&mut byte) {
            Ok(1) => line.push(byte[0]),
            _ => return None,
        }
    }
    line.truncate(line.len() - 2);
    Some(String::from_utf8_lossy(&line).into_owned())
}
