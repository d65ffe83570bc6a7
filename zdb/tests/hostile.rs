//! Malformed and hostile clients must not crash the server, grow its memory
//! without bound, or slow down well-behaved clients.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{ask, clients_connected, q, read_line, wait_for, InProcess};

fn raw(s: &InProcess) -> TcpStream {
    let t = TcpStream::connect(s.addr).expect("connect");
    t.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    t
}

/// Reads until the server closes the connection.
fn read_to_close(t: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let _ = t.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

fn assert_healthy(s: &InProcess) {
    let mut c = s.client();
    assert_eq!(q::<String>(&mut c, &[b"PING"]), "PONG");
}

#[test]
fn absurd_lengths_and_garbage_close_only_that_connection() {
    let s = InProcess::start();
    let mut good = s.client();
    q::<Vec<u8>>(&mut good, &[b"SET", b"k", b"v"]);
    for bad in [
        &b"*2\r\n$999999999999\r\nxx"[..],
        b"*1\r\n$-7\r\n",
        b"*100000000\r\n",
        b"*2\r\n:5\r\n",
        b"*1\r\n$3\r\nGETxx",
    ] {
        let mut t = raw(&s);
        t.write_all(bad).expect("send");
        let reply = read_to_close(&mut t);
        // Too many arguments in 0-db's words, the rest in redis'.
        assert!(
            reply.contains("-Protocol error") || reply == "-Too many arguments\r\n",
            "{bad:?} -> {reply:?}"
        );
        assert_eq!(
            q::<Option<Vec<u8>>>(&mut good, &[b"GET", b"k"]),
            Some(b"v".to_vec())
        );
    }
    // a line with no end at all
    let mut t = raw(&s);
    t.write_all(&vec![b'a'; 100 * 1024]).expect("send");
    assert!(read_to_close(&mut t).contains("inline request too long"));
    assert_healthy(&s);
}

#[test]
fn random_bytes_never_crash_the_server() {
    let s = InProcess::start();
    let mut state = 0x2545F4914F6CDD1Du64;
    for _ in 0..200 {
        let mut t = raw(&s);
        t.set_write_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let mut buf = vec![0u8; 64 + (state % 512) as usize];
        for b in buf.iter_mut() {
            // xorshift: deterministic garbage, biased towards RESP's own bytes
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            *b = match state % 8 {
                0 => b'*',
                1 => b'$',
                2 => b'\r',
                3 => b'\n',
                4 => b'0' + (state >> 8) as u8 % 10,
                _ => (state >> 16) as u8,
            };
        }
        let _ = t.write_all(&buf);
        let _ = t.shutdown(std::net::Shutdown::Write);
        let _ = read_to_close(&mut t);
    }
    assert_healthy(&s);
}

#[test]
fn slowloris_is_cut_off_and_does_not_block_others() {
    let s = InProcess::start_with(|c| c.frame_timeout = Duration::from_secs(1));
    let mut slow: Vec<TcpStream> = (0..20)
        .map(|_| {
            let mut t = raw(&s);
            t.write_all(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$100\r\nabc")
                .expect("send");
            t
        })
        .collect();
    // others are served at once while the slow ones hang
    let started = Instant::now();
    let mut c = s.client();
    for i in 0..100 {
        q::<Vec<u8>>(&mut c, &[b"SET", format!("k{i}").as_bytes(), b"v"]);
    }
    assert!(started.elapsed() < Duration::from_secs(5));
    for t in &mut slow {
        let reply = read_to_close(t);
        assert!(reply.contains("Timeout"), "{reply:?}");
    }
    assert_healthy(&s);
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

#[test]
fn declared_sizes_do_not_reserve_memory() {
    let s = InProcess::start_with(|c| c.frame_timeout = Duration::from_secs(30));
    let before = rss_kib();
    // 100 clients each announce ~500 MB and 8 MiB bulks, then send almost nothing
    let conns: Vec<TcpStream> = (0..100)
        .map(|i| {
            let mut t = raw(&s);
            let header: &[u8] = if i % 2 == 0 {
                b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$500000000\r\nx"
            } else {
                b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$8388608\r\nx"
            };
            t.write_all(header).expect("send");
            t
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    assert_healthy(&s);
    let grown = rss_kib().saturating_sub(before);
    assert!(grown < 100 * 1024, "memory grew by {grown} KiB");
    drop(conns);
}

#[test]
fn oversized_value_is_refused_and_connection_kept() {
    let s = InProcess::start();
    let mut t = raw(&s);
    let n = 9 * 1024 * 1024;
    let mut req = format!("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n${n}\r\n").into_bytes();
    req.resize(req.len() + n, b'z');
    req.extend_from_slice(b"\r\n*1\r\n$4\r\nPING\r\n");
    t.write_all(&req).expect("send");
    let mut got = Vec::new();
    let mut buf = [0u8; 256];
    while !String::from_utf8_lossy(&got).contains("PONG") {
        let n = t.read(&mut buf).expect("read");
        assert!(n > 0, "closed early: {:?}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("-Payload too large"), "{text}");
}

#[test]
fn client_limit() {
    let s = InProcess::start_with(|c| c.max_clients = 2);
    let _a = s.client();
    let _b = s.client();
    let mut t = raw(&s);
    assert!(read_to_close(&mut t).contains("Max number of clients"));
}

/// Reads until the server closes the connection, returning what came and how
/// long the close took.
fn time_to_close(t: &mut TcpStream) -> (String, Duration) {
    let started = Instant::now();
    let got = read_to_close(t);
    (got, started.elapsed())
}

#[test]
fn idle_connection_is_closed() {
    let s = InProcess::start_with(|c| {
        c.idle_timeout = Duration::from_secs(1);
        c.frame_timeout = Duration::from_secs(60);
    });
    let mut t = raw(&s);
    t.write_all(b"PING\r\n").expect("send");
    let mut pong = [0u8; 7];
    t.read_exact(&mut pong).expect("pong");
    let (got, took) = time_to_close(&mut t);
    // an idle client is closed silently (as redis does), not sent an error
    assert_eq!(got, "");
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(5),
        "{took:?}"
    );
    // a client that keeps sending requests is not idle
    let mut c = s.client();
    for _ in 0..8 {
        std::thread::sleep(Duration::from_millis(300)); // pacing, not waiting
        assert_eq!(q::<String>(&mut c, &[b"PING"]), "PONG");
    }
}

#[test]
fn idle_timeout_zero_is_off() {
    let s = InProcess::start_with(|c| c.idle_timeout = Duration::ZERO);
    let mut t = raw(&s);
    t.set_read_timeout(Some(Duration::from_millis(1500)))
        .expect("timeout");
    let mut buf = [0u8; 1];
    let err = t.read(&mut buf).expect_err("still open, nothing to read");
    assert!(
        matches!(
            err.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
        "{err}"
    );
}

/// One byte at a time of a request that never ends: the timer counts from the
/// last complete request, so the trickle does not keep the connection alive,
/// even with a frame timeout far away.
#[test]
fn slowloris_trickle_is_closed_by_the_idle_timeout() {
    let s = InProcess::start_with(|c| {
        c.idle_timeout = Duration::from_secs(1);
        c.frame_timeout = Duration::from_secs(60);
    });
    let mut t = raw(&s);
    let mut writer = t.try_clone().expect("clone");
    let trickle = std::thread::spawn(move || {
        let request = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$100000\r\n";
        let body = std::iter::repeat_n(&b'x', 100_000);
        for b in request.iter().chain(body).take(200) {
            if writer.write_all(&[*b]).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50)); // the trickle's pace
        }
    });
    let (got, took) = time_to_close(&mut t);
    assert!(got.contains("Timeout"), "{got:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    trickle.join().expect("trickle thread");
    assert_healthy(&s);
}

/// A client streaming requests so that every read ends inside the next one is
/// making progress: the frame timeout counts from the last complete request,
/// not from the first partial one.
#[test]
fn steady_stream_ending_mid_request_is_not_cut_off() {
    let s = InProcess::start_with(|c| c.frame_timeout = Duration::from_secs(1));
    let mut t = raw(&s);
    t.set_nodelay(true).expect("nodelay");
    let ping = b"*1\r\n$4\r\nPING\r\n";
    // first half of a PING, then every 100 ms its rest and the first half of the next
    t.write_all(&ping[..7]).expect("send");
    let started = Instant::now();
    let mut sent = 0;
    while started.elapsed() < Duration::from_secs(3) {
        std::thread::sleep(Duration::from_millis(100)); // the stream's pace
        let mut chunk = ping[7..].to_vec();
        chunk.extend_from_slice(&ping[..7]);
        t.write_all(&chunk).expect("send");
        sent += 1;
    }
    t.write_all(&ping[7..]).expect("send");
    sent += 1;
    let want = "+PONG\r\n".repeat(sent);
    let mut got = vec![0u8; want.len()];
    t.read_exact(&mut got).expect("every reply, no timeout");
    assert_eq!(String::from_utf8_lossy(&got), want);
}

/// A client that sends requests but never reads the replies holds its
/// connection once the socket buffers are full: it is closed after the idle
/// timeout too.
#[test]
fn client_that_never_reads_replies_is_closed() {
    let s = InProcess::start_with(|c| c.idle_timeout = Duration::from_secs(1));
    let mut c = s.client();
    q::<Vec<u8>>(&mut c, &[b"SET", b"big", &vec![b'x'; 4 << 20]]);
    let mut t = raw(&s);
    t.write_all(&b"GET big\r\n".repeat(64)).expect("send");
    wait_for("the second connection", Duration::from_secs(10), || {
        clients_connected(&mut c) == 2
    });
    let took = wait_for(
        "the non-reading client to be closed",
        Duration::from_secs(10),
        || clients_connected(&mut c) == 1,
    );
    assert!(took >= Duration::from_millis(900), "{took:?}");
    drop(t);
}

#[test]
fn idle_timeout_flag_of_the_binary() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = common::Binary::start(dir.path(), &["--idle-timeout", "1"]);
    let mut t = TcpStream::connect(server.addr).expect("connect");
    t.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let (got, took) = time_to_close(&mut t);
    assert_eq!(got, "");
    assert!(took < Duration::from_secs(5), "{took:?}");
    server.terminate();
}

const ATTACKER: std::net::IpAddr = std::net::IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 2));
const OTHER: std::net::IpAddr = std::net::IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 1));

/// A loop guessing the admin password, reconnecting whenever it is thrown
/// out, gets at most `auth_max_failures_per_source` guesses checked before its
/// address is locked out; another address is not affected, and the locked one
/// gets in with the right password once the cool-down has passed.
#[test]
fn auth_brute_force_is_stopped_per_connection_and_per_source() {
    let s = InProcess::start_with(|c| {
        c.admin_password = Some("right".into());
        c.auth_lockout = Duration::from_secs(2);
    });
    let mut checked = 0; // guesses answered "Access denied": really compared
    let mut connections = 0;
    let mut locked_out = false;
    let started = Instant::now();
    'guessing: for _ in 0..100 {
        let mut t = s.raw_from(ATTACKER);
        connections += 1;
        let mut on_this_connection = 0;
        loop {
            match ask(&mut t, &format!("AUTH guess{checked}")) {
                None => break,
                Some(reply) if reply.starts_with("-Access denied") => {
                    checked += 1;
                    on_this_connection += 1;
                    assert!(on_this_connection <= 5, "6 failures on one connection");
                }
                Some(reply) => {
                    assert_eq!(
                        reply,
                        "-Too many failed authentication attempts, try again later"
                    );
                    locked_out = true;
                    break 'guessing;
                }
            }
        }
        assert_eq!(on_this_connection, 5, "closed after the 5th failure");
    }
    assert!(locked_out, "{checked} guesses checked, never locked out");
    assert_eq!(checked, 20);
    assert_eq!(
        connections, 5,
        "4 thrown out after 5 guesses, the 5th refused at once"
    );
    assert!(started.elapsed() < Duration::from_secs(2));

    // locked out: even the right password is not checked, by AUTH or SELECT
    let mut t = s.raw_from(ATTACKER);
    assert_eq!(
        ask(&mut t, "AUTH right").as_deref(),
        Some("-Too many failed authentication attempts, try again later")
    );
    // another client machine is not affected
    let mut admin = s.raw_from(OTHER);
    assert_eq!(ask(&mut admin, "AUTH right").as_deref(), Some("+OK"));
    assert_eq!(ask(&mut admin, "NSNEW t").as_deref(), Some("+OK"));
    assert_eq!(
        ask(&mut admin, "NSSET t password tpw").as_deref(),
        Some("+OK")
    );
    assert_eq!(
        ask(&mut t, "SELECT t tpw").as_deref(),
        Some("-Too many failed authentication attempts, try again later")
    );
    // after the cool-down the right password works from the locked address too
    let took = wait_for("the lockout to end", Duration::from_secs(10), || {
        let mut t = s.raw_from(ATTACKER);
        ask(&mut t, "AUTH right").as_deref() == Some("+OK")
    });
    assert!(took < Duration::from_secs(4), "{took:?}");
}

/// Failed `SELECT ns password`, `SELECT ns SECURE` and `AUTH SECURE` count as
/// failed attempts too; a pipelined burst is cut at the limit.
#[test]
fn auth_failures_close_the_connection() {
    let s = InProcess::start_with(|c| c.admin_password = Some("right".into()));
    let mut admin = s.raw_from(OTHER);
    assert_eq!(ask(&mut admin, "AUTH right").as_deref(), Some("+OK"));
    assert_eq!(ask(&mut admin, "NSNEW t").as_deref(), Some("+OK"));
    assert_eq!(
        ask(&mut admin, "NSSET t password tpw").as_deref(),
        Some("+OK")
    );

    let mut t = s.raw_from(ATTACKER);
    assert_eq!(
        ask(&mut t, "SELECT t bad").as_deref(),
        Some("-Access denied")
    );
    let nonce = ask(&mut t, "AUTH SECURE CHALLENGE").expect("nonce");
    assert!(nonce.starts_with('+'), "{nonce}");
    assert_eq!(
        ask(
            &mut t,
            "SELECT t SECURE 0000000000000000000000000000000000000000"
        )
        .as_deref(),
        Some("-Access denied")
    );
    ask(&mut t, "AUTH SECURE CHALLENGE").expect("nonce");
    assert_eq!(
        ask(
            &mut t,
            "AUTH SECURE 0000000000000000000000000000000000000000"
        )
        .as_deref(),
        Some("-Access denied")
    );
    // a burst of guesses in one write: two more are checked, then the close
    t.write_all(&b"AUTH guess\r\n".repeat(100)).expect("send");
    assert_eq!(read_line(&mut t).as_deref(), Some("-Access denied"));
    assert_eq!(
        read_line(&mut t).as_deref(),
        Some("-Access denied, too many failed attempts: closing the connection")
    );
    assert_eq!(read_line(&mut t), None);
}

/// Unix socket clients have no address: they share one source.
#[test]
fn unix_socket_clients_share_one_source() {
    use std::os::unix::net::UnixStream;
    let dir = tempfile::tempdir().expect("tempdir");
    let sock = dir.path().join("zdb.sock");
    let sock2 = sock.clone();
    let s = InProcess::start_with(move |c| {
        c.socket = Some(sock2);
        c.admin_password = Some("right".into());
        c.auth_max_failures_per_source = 3;
    });
    let ask_unix = |u: &mut UnixStream, line: &str| -> String {
        u.write_all(format!("{line}\r\n").as_bytes()).expect("send");
        let mut got = Vec::new();
        let mut byte = [0u8; 1];
        while !got.ends_with(b"\r\n") {
            u.read_exact(&mut byte).expect("reply");
            got.push(byte[0]);
        }
        String::from_utf8_lossy(&got).trim_end().to_string()
    };
    let mut first = UnixStream::connect(&sock).expect("connect");
    for _ in 0..3 {
        assert_eq!(ask_unix(&mut first, "AUTH wrong"), "-Access denied");
    }
    let mut second = UnixStream::connect(&sock).expect("connect");
    assert_eq!(
        ask_unix(&mut second, "AUTH right"),
        "-Too many failed authentication attempts, try again later"
    );
    let mut tcp = s.raw_from(OTHER);
    assert_eq!(ask(&mut tcp, "AUTH right").as_deref(), Some("+OK"));
}
