//! Compatibility with Debian's `redis-cli` (package redis-tools) against the real binary.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::Binary;

#[test]
fn scripted_redis_cli_session() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Binary::start(dir.path(), &["--admin", "pw"]);
    let script = "PING\nSET hello world\nSET hello world\nGET hello\nEXISTS hello\nLENGTH hello\n\
                  NSNEW denied\nAUTH pw\nNSNEW mine\nSELECT mine\nSET a 1\nDBSIZE\nNSLIST\nBOGUS\n";
    let mut child = Command::new("redis-cli")
        .args(["-h", &server.addr.ip().to_string()])
        .args(["-p", &server.addr.port().to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("redis-cli must be installed (Debian package redis-tools)");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(script.as_bytes())
        .expect("write script");
    let out = child.wait_with_output().expect("redis-cli output");
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines,
        vec![
            "PONG",
            "hello",
            "",
            "world",
            "1",
            "5",
            // redis-cli follows error replies with a blank line when not on a terminal
            "Permission denied",
            "",
            "OK",
            "OK",
            "OK",
            "a",
            "1",
            "default",
            "mine",
            "Command not supported",
            "",
        ],
        "{text}"
    );
    server.terminate();
}
