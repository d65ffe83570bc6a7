//! Every command and its error paths, through a real redis client over TCP
//! against an in-process server.

mod common;

use common::{q, qerr, InProcess};
use redis::Value;
use sha1::Digest;

fn bulk(v: &Value) -> Vec<u8> {
    match v {
        Value::BulkString(b) => b.clone(),
        other => panic!("expected bulk, got {other:?}"),
    }
}

fn items(v: &Value) -> &Vec<Value> {
    match v {
        Value::Array(a) => a,
        other => panic!("expected array, got {other:?}"),
    }
}

fn sha1_hex(s: &str) -> String {
    hex::encode(sha1::Sha1::digest(s.as_bytes()))
}

#[test]
fn system_commands() {
    let s = InProcess::start();
    let mut c = s.client();
    assert_eq!(q::<String>(&mut c, &[b"PING"]), "PONG");
    assert_eq!(q::<String>(&mut c, &[b"PING", b"hi"]), "hi");
    let time: Vec<String> = q(&mut c, &[b"TIME"]);
    assert_eq!(time.len(), 2);
    assert!(time[0].parse::<u64>().expect("secs") > 1_600_000_000);
    let info: String = q(&mut c, &[b"INFO"]);
    assert!(info.contains("# server"), "{info}");
    assert_eq!(qerr(&mut c, &[b"NOPE"]), "Command not supported");
    assert_eq!(qerr(&mut c, &[b"GET"]), "Unexpected arguments");
    assert_eq!(qerr(&mut c, &[b"SET", b"k"]), "Missing arguments");
    assert!(qerr(&mut c, &[b"AUTH", b"x"]).contains("Authentication disabled"));
    // As 0-db: a challenge is issued without an admin password (SELECT ns SECURE needs it),
    // answering it is not.
    let nonce: String = q(&mut c, &[b"AUTH", b"SECURE", b"CHALLENGE"]);
    assert_eq!(nonce.len(), 16, "{nonce}");
    assert!(qerr(&mut c, &[b"AUTH", b"SECURE", b"00"]).contains("Authentication disabled"));
}

/// `AUTH SECURE` with a hash of the wrong length, and an over-long password, are refused in
/// 0-db's words before any check counts against the client.
#[test]
fn auth_refuses_malformed_answers_in_0_db_words() {
    let s = InProcess::start_with(|c| c.admin_password = Some("adminpw".into()));
    let mut c = s.client();
    q::<String>(&mut c, &[b"AUTH", b"SECURE", b"CHALLENGE"]);
    assert!(qerr(&mut c, &[b"AUTH", b"SECURE", b"abc"]).contains("Invalid hash length"));
    assert!(qerr(&mut c, &[b"AUTH", &[b'p'; 129]]).contains("Password too long"));
    assert_eq!(q::<String>(&mut c, &[b"AUTH", b"adminpw"]), "OK");
}

#[test]
fn data_commands_user_mode() {
    let s = InProcess::start();
    let mut c = s.client();
    assert_eq!(q::<Vec<u8>>(&mut c, &[b"SET", b"k1", b"v1"]), b"k1");
    // unchanged value: nil, nothing appended
    assert_eq!(q::<Option<Vec<u8>>>(&mut c, &[b"SET", b"k1", b"v1"]), None);
    assert_eq!(q::<Vec<u8>>(&mut c, &[b"SET", b"k1", b"v2"]), b"k1");
    assert_eq!(
        q::<Vec<u8>>(&mut c, &[b"SET", b"bin\x00\xff", b""]),
        b"bin\x00\xff"
    );
    assert_eq!(
        q::<Option<Vec<u8>>>(&mut c, &[b"GET", b"k1"]),
        Some(b"v2".to_vec())
    );
    assert_eq!(
        q::<Option<Vec<u8>>>(&mut c, &[b"GET", b"bin\x00\xff"]),
        Some(Vec::new())
    );
    assert_eq!(q::<Option<Vec<u8>>>(&mut c, &[b"GET", b"missing"]), None);
    let m: Vec<Option<Vec<u8>>> = q(&mut c, &[b"MGET", b"k1", b"missing", b"bin\x00\xff"]);
    assert_eq!(m, vec![Some(b"v2".to_vec()), None, Some(Vec::new())]);
    assert_eq!(q::<i64>(&mut c, &[b"EXISTS", b"k1"]), 1);
    assert_eq!(q::<i64>(&mut c, &[b"EXISTS", b"missing"]), 0);
    assert_eq!(q::<i64>(&mut c, &[b"CHECK", b"k1"]), 1);
    assert_eq!(q::<Option<i64>>(&mut c, &[b"CHECK", b"missing"]), None);
    assert_eq!(q::<i64>(&mut c, &[b"LENGTH", b"k1"]), 2);
    assert_eq!(q::<Option<i64>>(&mut c, &[b"LENGTH", b"missing"]), None);
    let t: i64 = q(&mut c, &[b"KEYTIME", b"k1"]);
    assert!(t > 1_600_000_000);
    assert_eq!(q::<Option<i64>>(&mut c, &[b"KEYTIME", b"missing"]), None);
    assert_eq!(q::<i64>(&mut c, &[b"DBSIZE"]), 2);

    // errors
    assert!(qerr(&mut c, &[b"SET", b"", b"v"]).contains("Invalid argument, key needed"));
    let long = vec![b'k'; 256];
    assert!(qerr(&mut c, &[b"SET", &long, b"v"]).contains("Key too large"));
    assert!(qerr(&mut c, &[b"GET", b""]).contains("Invalid key"));
    assert!(qerr(&mut c, &[b"DEL", b"missing"]).contains("Key not found"));
    assert!(qerr(&mut c, &[b"KEYCUR", b"missing"]).contains("Key not found"));
    let ok255 = vec![b'k'; 255];
    assert_eq!(q::<Vec<u8>>(&mut c, &[b"SET", &ok255, b"v"]), ok255);

    assert_eq!(q::<String>(&mut c, &[b"DEL", b"k1"]), "OK");
    assert_eq!(q::<Option<Vec<u8>>>(&mut c, &[b"GET", b"k1"]), None);
    assert_eq!(q::<i64>(&mut c, &[b"DBSIZE"]), 2);
}

#[test]
fn payload_limit() {
    let s = InProcess::start();
    let mut c = s.client();
    let max = vec![7u8; 8 * 1024 * 1024];
    assert_eq!(q::<Vec<u8>>(&mut c, &[b"SET", b"big", &max]), b"big");
    assert_eq!(q::<i64>(&mut c, &[b"LENGTH", b"big"]), max.len() as i64);
    let too_big = vec![7u8; 8 * 1024 * 1024 + 1];
    assert!(qerr(&mut c, &[b"SET", b"big2", &too_big]).contains("Payload too large"));
    // the connection survives the refusal
    assert_eq!(q::<String>(&mut c, &[b"PING"]), "PONG");
    assert_eq!(q::<Option<Vec<u8>>>(&mut c, &[b"GET", b"big"]), Some(max));
}

#[test]
fn scan_rscan_keycur_history() {
    let s = InProcess::start();
    let mut c = s.client();
    for i in 0..250 {
        q::<Vec<u8>>(&mut c, &[b"SET", format!("k{i:03}").as_bytes(), b"x"]);
    }
    // overwrite one and delete one: SCAN shows each live key once, in write order
    q::<Vec<u8>>(&mut c, &[b"SET", b"k000", b"newer"]);
    q::<String>(&mut c, &[b"DEL", b"k001"]);
    let mut seen = Vec::new();
    let mut cursor: Option<Vec<u8>> = None;
    loop {
        let mut cmd: Vec<&[u8]> = vec![b"SCAN"];
        if let Some(cur) = &cursor {
            cmd.push(cur);
        }
        let mut r = redis::cmd("SCAN");
        for a in &cmd[1..] {
            r.arg(*a);
        }
        match r.query::<Value>(&mut c) {
            Ok(v) => {
                let page = items(&v);
                cursor = Some(bulk(&page[0]));
                for item in items(&page[1]) {
                    let fields = items(item);
                    seen.push(String::from_utf8(bulk(&fields[0])).expect("utf8"));
                }
            }
            Err(e) => {
                assert_eq!(
                    (e.code(), e.detail()),
                    (Some("No"), Some("more data")),
                    "{e}"
                );
                break;
            }
        }
    }
    let mut want: Vec<String> = (2..250).map(|i| format!("k{i:03}")).collect();
    want.push("k000".into());
    assert_eq!(seen, want);

    // RSCAN walks the other way
    let v: Value = q(&mut c, &[b"RSCAN"]);
    let page = items(&v);
    let first = items(&items(&page[1])[0]);
    assert_eq!(bulk(&first[0]), b"k000");
    assert_eq!(first[1], Value::Int(5));

    // KEYCUR: scanning from a key's cursor continues after it
    let cur: Vec<u8> = q(&mut c, &[b"KEYCUR", b"k248"]);
    assert_eq!(cur.len(), 8);
    let v: Value = q(&mut c, &[b"SCAN", &cur]);
    let page = items(&v);
    let names: Vec<Vec<u8>> = items(&page[1]).iter().map(|i| bulk(&items(i)[0])).collect();
    assert_eq!(names, vec![b"k249".to_vec(), b"k000".to_vec()]);
    assert!(qerr(&mut c, &[b"SCAN", b"bad"]).contains("Invalid key format"));
    assert!(qerr(&mut c, &[b"SCAN", &[0u8; 8]]).contains("Invalid key format"));

    // HISTORY walks back through the versions of a key
    q::<Vec<u8>>(&mut c, &[b"SET", b"h", b"one"]);
    q::<Vec<u8>>(&mut c, &[b"SET", b"h", b"two"]);
    let v: Value = q(&mut c, &[b"HISTORY", b"h"]);
    let step = items(&v);
    assert_eq!(bulk(&step[2]), b"two");
    let prev = bulk(&step[0]);
    let v: Value = q(&mut c, &[b"HISTORY", b"h", &prev]);
    let step = items(&v);
    assert_eq!(bulk(&step[2]), b"one");
    assert_eq!(step[0], Value::Nil);
    assert!(qerr(&mut c, &[b"HISTORY", b"nope"]).contains("Key not found"));
    assert!(qerr(&mut c, &[b"HISTORY", b"h", b"xx"]).contains("Invalid arguments"));
    // a cursor of another key is refused
    let other: Vec<u8> = q(&mut c, &[b"KEYCUR", b"k100"]);
    assert!(qerr(&mut c, &[b"HISTORY", b"h", &other]).contains("Invalid key format"));
}

#[test]
fn empty_namespace_scan() {
    let s = InProcess::start();
    let mut c = s.client();
    assert!(qerr(&mut c, &[b"SCAN"]).contains("No more data"));
    assert!(qerr(&mut c, &[b"RSCAN"]).contains("No more data"));
}

#[test]
fn seq_mode() {
    let s = InProcess::start();
    let mut c = s.client();
    q::<String>(&mut c, &[b"NSNEW", b"seq"]);
    q::<String>(&mut c, &[b"NSSET", b"seq", b"mode", b"seq"]);
    q::<String>(&mut c, &[b"SELECT", b"seq"]);
    let k0: Vec<u8> = q(&mut c, &[b"SET", b"", b"first"]);
    let k1: Vec<u8> = q(&mut c, &[b"SET", b"", b"second"]);
    assert_eq!(k0, 0u64.to_le_bytes());
    assert_eq!(k1, 1u64.to_le_bytes());
    assert_eq!(q::<Vec<u8>>(&mut c, &[b"SET", &k0, b"updated"]), k0);
    assert_eq!(
        q::<Option<Vec<u8>>>(&mut c, &[b"GET", &k0]),
        Some(b"updated".to_vec())
    );
    assert!(qerr(&mut c, &[b"SET", &5u64.to_le_bytes(), b"v"]).contains("only update authorized"));
    assert!(qerr(&mut c, &[b"SET", b"userkey", b"v"]).contains("only update authorized"));
    assert_eq!(q::<String>(&mut c, &[b"DEL", &k1]), "OK");
    // deleted ids are not handed out again
    assert_eq!(
        q::<Vec<u8>>(&mut c, &[b"SET", b"", b"third"]),
        2u64.to_le_bytes()
    );
    // mode can only change while empty
    assert!(qerr(&mut c, &[b"NSSET", b"seq", b"mode", b"user"]).contains("Cannot change mode"));
    assert!(qerr(&mut c, &[b"NSSET", b"seq", b"mode", b"weird"]).contains("expected: user, seq"));
}

#[test]
fn namespaces_passwords_and_flags() {
    let s = InProcess::start_with(|c| c.admin_password = Some("adminpw".into()));
    let mut admin = s.client();
    let mut user = s.client();
    // namespace management needs the admin password
    assert!(qerr(&mut user, &[b"NSNEW", b"x"]).contains("Permission denied"));
    assert!(qerr(&mut admin, &[b"AUTH", b"wrong"]).contains("Access denied"));
    assert_eq!(q::<String>(&mut admin, &[b"AUTH", b"adminpw"]), "OK");
    assert_eq!(q::<String>(&mut admin, &[b"NSNEW", b"priv"]), "OK");
    assert!(qerr(&mut admin, &[b"NSNEW", b"priv"]).contains("not available"));
    assert!(qerr(&mut admin, &[b"NSNEW", b"../etc"]).contains("not allowed"));
    q::<String>(&mut admin, &[b"NSNEW", b"pub"]);
    let list: Vec<String> = q(&mut admin, &[b"NSLIST"]);
    assert_eq!(list, vec!["default", "priv", "pub"]);

    // private namespace with password: nothing without it
    q::<String>(&mut admin, &[b"NSSET", b"priv", b"password", b"secret"]);
    q::<String>(&mut admin, &[b"NSSET", b"priv", b"public", b"0"]);
    assert!(qerr(&mut user, &[b"SELECT", b"priv"]).contains("protected and private"));
    assert!(qerr(&mut user, &[b"SELECT", b"priv", b"bad"]).contains("Access denied"));
    assert!(qerr(&mut user, &[b"SELECT", b"nope"]).contains("Namespace not found"));
    assert_eq!(
        q::<String>(&mut user, &[b"SELECT", b"priv", b"secret"]),
        "OK"
    );
    q::<Vec<u8>>(&mut user, &[b"SET", b"a", b"1"]);

    // public namespace with password: read-only without it
    q::<String>(&mut admin, &[b"SELECT", b"pub"]);
    q::<Vec<u8>>(&mut admin, &[b"SET", b"a", b"1"]);
    q::<String>(&mut admin, &[b"NSSET", b"pub", b"password", b"pw2"]);
    let mut reader = s.client();
    q::<String>(&mut reader, &[b"SELECT", b"pub"]);
    assert_eq!(
        q::<Option<Vec<u8>>>(&mut reader, &[b"GET", b"a"]),
        Some(b"1".to_vec())
    );
    assert!(qerr(&mut reader, &[b"SET", b"b", b"2"]).contains("read-only"));
    assert!(qerr(&mut reader, &[b"DEL", b"a"]).contains("read-only"));

    // SELECT ... SECURE with a challenge
    assert!(qerr(&mut reader, &[b"SELECT", b"pub", b"SECURE", b"00"]).contains("No CHALLENGE"));
    let nonce: String = q(&mut reader, &[b"AUTH", b"SECURE", b"CHALLENGE"]);
    assert!(qerr(&mut reader, &[b"SELECT", b"pub", b"SECURE", b"0000"]).contains("Access denied"));
    let nonce2: String = q(&mut reader, &[b"AUTH", b"SECURE", b"CHALLENGE"]);
    assert_ne!(nonce, nonce2);
    let hash = sha1_hex(&format!("{nonce2}:pw2"));
    assert_eq!(
        q::<String>(
            &mut reader,
            &[b"SELECT", b"pub", b"SECURE", hash.as_bytes()]
        ),
        "OK"
    );
    q::<Vec<u8>>(&mut reader, &[b"SET", b"b", b"2"]);
    // a challenge is single use
    assert!(qerr(
        &mut reader,
        &[b"SELECT", b"pub", b"SECURE", hash.as_bytes()]
    )
    .contains("No CHALLENGE"));

    // AUTH SECURE for the admin
    let mut other = s.client();
    let nonce: String = q(&mut other, &[b"AUTH", b"SECURE", b"CHALLENGE"]);
    let hash = sha1_hex(&format!("{nonce}:adminpw"));
    assert_eq!(
        q::<String>(&mut other, &[b"AUTH", b"SECURE", hash.as_bytes()]),
        "OK"
    );
    q::<String>(&mut other, &[b"NSNEW", b"byother"]);

    // password '*' clears it
    q::<String>(&mut admin, &[b"NSSET", b"priv", b"password", b"*"]);
    let mut fresh = s.client();
    assert_eq!(q::<String>(&mut fresh, &[b"SELECT", b"priv"]), "OK");
    assert_eq!(
        q::<Option<Vec<u8>>>(&mut fresh, &[b"GET", b"a"]),
        Some(b"1".to_vec())
    );

    // NSINFO
    let info: String = q(&mut fresh, &[b"NSINFO", b"priv"]);
    assert!(info.contains("entries: 1"), "{info}");
    assert!(info.contains("public: no"), "{info}");
    assert!(qerr(&mut fresh, &[b"NSINFO", b"nope"]).contains("Namespace not found"));
    assert!(qerr(&mut admin, &[b"NSSET", b"priv", b"colour", b"1"]).contains("Invalid property"));
    assert!(qerr(&mut admin, &[b"NSSET", b"priv", b"worm", b"2"]).contains("expected 0 or 1"));

    // NSDEL: not the current one, not default; clients still on it are told
    assert!(qerr(&mut admin, &[b"NSDEL", b"default"]).contains("Cannot remove"));
    q::<String>(&mut admin, &[b"SELECT", b"priv"]);
    assert!(qerr(&mut admin, &[b"NSDEL", b"priv"]).contains("currently using"));
    q::<String>(&mut admin, &[b"SELECT", b"default"]);
    assert_eq!(q::<String>(&mut admin, &[b"NSDEL", b"priv"]), "OK");
    assert!(qerr(&mut fresh, &[b"GET", b"a"]).contains("not available anymore"));
    assert!(qerr(&mut admin, &[b"NSDEL", b"priv"]).contains("doesn't exist"));
}

#[test]
fn maxsize_worm_lock_freeze_flush() {
    let s = InProcess::start();
    let mut c = s.client();
    q::<String>(&mut c, &[b"NSNEW", b"n"]);
    q::<String>(&mut c, &[b"SELECT", b"n"]);
    q::<String>(&mut c, &[b"NSSET", b"n", b"maxsize", b"10"]);
    q::<Vec<u8>>(&mut c, &[b"SET", b"a", b"12345678"]);
    assert!(qerr(&mut c, &[b"SET", b"b", b"123"]).contains("No space left on this namespace"));
    // replacing a value only needs room for the difference
    q::<Vec<u8>>(&mut c, &[b"SET", b"a", b"1234567890"]);
    q::<String>(&mut c, &[b"NSSET", b"n", b"maxsize", b"0"]);

    q::<String>(&mut c, &[b"NSSET", b"n", b"worm", b"1"]);
    q::<Vec<u8>>(&mut c, &[b"SET", b"w", b"1"]);
    assert!(qerr(&mut c, &[b"SET", b"w", b"2"]).contains("worm"));
    assert!(qerr(&mut c, &[b"DEL", b"w"]).contains("worm"));
    q::<String>(&mut c, &[b"NSSET", b"n", b"worm", b"0"]);

    q::<String>(&mut c, &[b"NSSET", b"n", b"lock", b"1"]);
    assert!(qerr(&mut c, &[b"SET", b"l", b"1"]).contains("locked"));
    assert!(qerr(&mut c, &[b"DEL", b"w"]).contains("locked"));
    assert_eq!(
        q::<Option<Vec<u8>>>(&mut c, &[b"GET", b"w"]),
        Some(b"1".to_vec())
    );
    q::<String>(&mut c, &[b"NSSET", b"n", b"lock", b"0"]);

    q::<String>(&mut c, &[b"NSSET", b"n", b"freeze", b"1"]);
    assert!(qerr(&mut c, &[b"GET", b"w"]).contains("frozen"));
    assert!(qerr(&mut c, &[b"SET", b"w", b"3"]).contains("frozen"));
    q::<String>(&mut c, &[b"NSSET", b"n", b"freeze", b"0"]);

    assert!(qerr(&mut c, &[b"FLUSH"]).contains("public namespace denied"));
    q::<String>(&mut c, &[b"NSSET", b"n", b"public", b"0"]);
    assert_eq!(q::<String>(&mut c, &[b"FLUSH"]), "OK");
    assert_eq!(q::<i64>(&mut c, &[b"DBSIZE"]), 0);
    assert_eq!(q::<Option<Vec<u8>>>(&mut c, &[b"GET", b"w"]), None);
    q::<Vec<u8>>(&mut c, &[b"SET", b"after", b"flush"]);
    assert_eq!(q::<i64>(&mut c, &[b"DBSIZE"]), 1);
}

#[test]
fn data_survives_restart_and_compaction() {
    let s = InProcess::start_with(|c| c.datasize = 4096);
    let mut c = s.client();
    for round in 0..5 {
        for i in 0..100 {
            let v = format!("value-{round}-{i}");
            q::<Vec<u8>>(
                &mut c,
                &[b"SET", format!("key{i}").as_bytes(), v.as_bytes()],
            );
        }
    }
    for i in 0..20 {
        q::<String>(&mut c, &[b"DEL", format!("key{i}").as_bytes()]);
    }
    let before: String = q(&mut c, &[b"NSINFO", b"default"]);
    let report: String = q(&mut c, &[b"COMPACT"]);
    assert!(report.starts_with("OK"), "{report}");
    let after: String = q(&mut c, &[b"NSINFO", b"default"]);
    let disk = |info: &str| -> u64 {
        info.lines()
            .find_map(|l| l.strip_prefix("data_disk_bytes: "))
            .and_then(|v| v.parse().ok())
            .expect("data_disk_bytes")
    };
    assert!(disk(&after) * 3 < disk(&before), "{before}\n{after}");
    for i in 20..100 {
        let v: Option<Vec<u8>> = q(&mut c, &[b"GET", format!("key{i}").as_bytes()]);
        assert_eq!(v, Some(format!("value-4-{i}").into_bytes()));
    }
    // writes after compaction, then a restart
    q::<Vec<u8>>(&mut c, &[b"SET", b"late", b"write"]);
    drop(c);
    let dir = s.stop();
    let mut config = zdb::ZdbConfig::ephemeral(dir.path());
    config.datasize = 4096;
    let s = InProcess::start_in(dir, config);
    let mut c = s.client();
    assert_eq!(q::<i64>(&mut c, &[b"DBSIZE"]), 81);
    assert_eq!(q::<Option<Vec<u8>>>(&mut c, &[b"GET", b"key0"]), None);
    assert_eq!(
        q::<Option<Vec<u8>>>(&mut c, &[b"GET", b"key50"]),
        Some(b"value-4-50".to_vec())
    );
    assert_eq!(
        q::<Option<Vec<u8>>>(&mut c, &[b"GET", b"late"]),
        Some(b"write".to_vec())
    );
}

#[test]
fn unix_socket() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sock = dir.path().join("zdb.sock");
    let sock2 = sock.clone();
    let s = InProcess::start_with(move |c| c.socket = Some(sock2));
    let client = redis::Client::open(format!("redis+unix://{}", sock.display())).expect("client");
    let mut c = client.get_connection().expect("connect");
    assert_eq!(q::<Vec<u8>>(&mut c, &[b"SET", b"via", b"unix"]), b"via");
    let mut tcp = s.client();
    assert_eq!(
        q::<Option<Vec<u8>>>(&mut tcp, &[b"GET", b"via"]),
        Some(b"unix".to_vec())
    );
}

/// One write holding a whole pipeline: runs of SET/GET/DEL share a namespace
/// lock, other commands (SELECT, DBSIZE, MGET) end a run; replies stay in order.
#[test]
fn pipelined_batch_mixes_data_and_other_commands_in_order() {
    use std::io::{Read, Write};
    let s = InProcess::start();
    let mut c = s.client();
    assert_eq!(q::<String>(&mut c, &[b"NSNEW", b"other"]), "OK");
    let requests: &[&[&[u8]]] = &[
        &[b"GET", b"a"],
        &[b"SET", b"a", b"1"],
        &[b"GET", b"a"],
        &[b"SET", b"a", b"1"],
        &[b"SET", b"b", b"2"],
        &[b"DEL", b"b"],
        &[b"DEL", b"b"],
        &[b"GET", b"b"],
        &[b"DBSIZE"],
        &[b"SELECT", b"other"],
        &[b"GET", b"a"],
        &[b"SET", b"a", b"x"],
        &[b"GET"],
        &[b"MGET", b"a"],
        &[b"SELECT", b"default"],
        &[b"GET", b"a"],
    ];
    let mut wire = Vec::new();
    for args in requests {
        wire.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
        for a in *args {
            wire.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            wire.extend_from_slice(a);
            wire.extend_from_slice(b"\r\n");
        }
    }
    let expected =
        "$-1\r\n$1\r\na\r\n$1\r\n1\r\n$-1\r\n$1\r\nb\r\n+OK\r\n-Key not found\r\n$-1\r\n\
                    :1\r\n+OK\r\n$-1\r\n$1\r\na\r\n-Unexpected arguments\r\n\
                    *1\r\n$1\r\nx\r\n+OK\r\n$1\r\n1\r\n";
    let mut t = std::net::TcpStream::connect(s.addr).expect("connect");
    t.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .expect("timeout");
    t.write_all(&wire).expect("send pipeline");
    let mut got = vec![0u8; expected.len()];
    t.read_exact(&mut got).expect("all replies");
    assert_eq!(String::from_utf8_lossy(&got), expected);
}

/// A pipeline longer than the server parses ahead at once still gets every
/// reply, in order.
#[test]
fn long_pipeline_gets_every_reply_in_order() {
    let s = InProcess::start();
    let mut c = s.client();
    let mut pipe = redis::pipe();
    for i in 0..3000 {
        pipe.cmd("SET").arg(format!("k{i}")).arg(i);
    }
    for i in 0..3000 {
        pipe.cmd("GET").arg(format!("k{i}"));
    }
    let replies: Vec<Value> = pipe.query(&mut c).expect("pipeline");
    assert_eq!(replies.len(), 6000);
    for (i, v) in replies[..3000].iter().enumerate() {
        assert_eq!(bulk(v), format!("k{i}").into_bytes());
    }
    for (i, v) in replies[3000..].iter().enumerate() {
        assert_eq!(bulk(v), i.to_string().into_bytes());
    }
}

/// The `default` namespace is open to every client without credentials, so it
/// must not be a way to fill the node's disk: it is limited out of the box.
#[test]
fn default_namespace_is_limited_to_64_mib_by_default() {
    let s = InProcess::start();
    let mut c = s.client();
    let chunk = vec![b'x'; 8 * 1024 * 1024];
    for i in 0..8 {
        q::<Vec<u8>>(&mut c, &[b"SET", format!("k{i}").as_bytes(), &chunk]);
    }
    // exactly 64 MiB of live payload now: one more byte is refused
    assert!(qerr(&mut c, &[b"SET", b"one-more", b"x"]).contains("No space left on this namespace"));
    let info: String = q(&mut c, &[b"NSINFO", b"default"]);
    assert!(info.contains("data_limits_bytes: 67108864"), "{info}");
    // freeing space makes room again
    q::<String>(&mut c, &[b"DEL", b"k0"]);
    q::<Vec<u8>>(&mut c, &[b"SET", b"one-more", b"x"]);
}

/// `--maxsize` (0-db's flag) is the default namespace's limit, applied at
/// every start, also to a default namespace created by an earlier run.
#[test]
fn default_namespace_limit_follows_the_flag_at_every_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = common::Binary::start(dir.path(), &["--maxsize", "0"]);
    let mut c = common::connect(server.addr);
    q::<Vec<u8>>(&mut c, &[b"SET", b"big", &[b'v'; 200]]);
    drop(c);
    server.terminate();

    let server = common::Binary::start(dir.path(), &["--maxsize", "100"]);
    let mut c = common::connect(server.addr);
    assert!(qerr(&mut c, &[b"SET", b"more", b"0123456789"]).contains("No space left"));
    let info: String = q(&mut c, &[b"NSINFO", b"default"]);
    assert!(info.contains("data_limits_bytes: 100"), "{info}");
    assert_eq!(q::<i64>(&mut c, &[b"LENGTH", b"big"]), 200);
    // nobody changes it at run time (0-db's words), not even the admin of a server without one
    assert!(qerr(&mut c, &[b"NSSET", b"default", b"maxsize", b"1000"])
        .contains("Cannot update default namespace"));
    assert!(qerr(&mut c, &[b"SET", b"more", b"0123456789"]).contains("No space left"));
    drop(c);
    server.terminate();
}

/// As in 0-db, `default` takes only mode, lock and freeze from `NSSET`; its size and access are
/// the server's flags. `--protect` makes it readable by all and writable only with the admin
/// password (`SELECT default <password>`), and that holds after a restart with the flag; without
/// it, the same data is open again (nothing a client did persists on `default`).
#[test]
fn default_namespace_settings_are_the_servers_and_protect_guards_its_writes() {
    let s = InProcess::start_with(|c| {
        c.admin_password = Some("adminpw".into());
        c.protect = true;
    });
    let mut admin = s.client();
    q::<String>(&mut admin, &[b"AUTH", b"adminpw"]);
    for (property, value) in [
        (&b"password"[..], &b"dpw"[..]),
        (b"public", b"0"),
        (b"maxsize", b"1"),
        (b"worm", b"1"),
    ] {
        assert!(qerr(&mut admin, &[b"NSSET", b"default", property, value])
            .contains("Cannot update default namespace"));
    }
    // lock is one of the three it takes (and gives back)
    q::<String>(&mut admin, &[b"NSSET", b"default", b"lock", b"1"]);
    q::<String>(&mut admin, &[b"NSSET", b"default", b"lock", b"0"]);
    let info: String = q(&mut admin, &[b"NSINFO", b"default"]);
    assert!(
        info.contains("public: yes") && info.contains("password: yes"),
        "{info}"
    );

    let check_protected = |s: &InProcess| {
        let mut anon = s.client();
        assert!(qerr(&mut anon, &[b"SET", b"k", b"v"]).contains("read-only"));
        assert!(qerr(&mut anon, &[b"SELECT", b"default", b"bad"]).contains("Access denied"));
        q::<String>(&mut anon, &[b"SELECT", b"default", b"adminpw"]);
        q::<Vec<u8>>(&mut anon, &[b"SET", b"k", b"v"]);
        let mut reader = s.client();
        assert_eq!(
            q::<Option<Vec<u8>>>(&mut reader, &[b"GET", b"k"]),
            Some(b"v".to_vec())
        );
    };
    check_protected(&s);
    drop(admin);
    let dir = s.stop();
    let mut config = zdb::ZdbConfig::ephemeral(dir.path());
    config.admin_password = Some("adminpw".into());
    config.protect = true;
    let s = InProcess::start_in(dir, config);
    check_protected(&s);
    let dir = s.stop();
    // Without --protect the same data is open to all again.
    let config = zdb::ZdbConfig::ephemeral(dir.path());
    let s = InProcess::start_in(dir, config);
    let mut anon = s.client();
    q::<Vec<u8>>(&mut anon, &[b"SET", b"k2", b"v"]);
}

/// `--protect` without an admin password is refused at start, as 0-db does.
#[test]
fn protect_needs_an_admin_password() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_zdb"))
        .arg("--data")
        .arg(dir.path().join("data"))
        .arg("--index")
        .arg(dir.path().join("index"))
        .args(["--port", "0", "--protect"])
        .output()
        .expect("run zdb");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("only works with an admin password"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `NSSET ns password` ends what the old password (or the absence of one)
/// gave to sessions already in the namespace: they keep only what `SELECT ns`
/// without password gives now, and must SELECT again with the new password.
#[test]
fn password_change_ends_access_given_by_the_old_password() {
    let s = InProcess::start_with(|c| c.admin_password = Some("adminpw".into()));
    let mut admin = s.client();
    q::<String>(&mut admin, &[b"AUTH", b"adminpw"]);

    // private namespace: a session selected with the old password cannot read
    q::<String>(&mut admin, &[b"NSNEW", b"t"]);
    q::<String>(&mut admin, &[b"NSSET", b"t", b"password", b"old"]);
    q::<String>(&mut admin, &[b"NSSET", b"t", b"public", b"0"]);
    let mut tenant = s.client();
    q::<String>(&mut tenant, &[b"SELECT", b"t", b"old"]);
    q::<Vec<u8>>(&mut tenant, &[b"SET", b"k", b"v"]);
    // setting the same password again (the agent does so every pass) changes nothing
    q::<String>(&mut admin, &[b"NSSET", b"t", b"password", b"old"]);
    q::<Vec<u8>>(&mut tenant, &[b"SET", b"k2", b"v"]);
    q::<String>(&mut admin, &[b"NSSET", b"t", b"password", b"new"]);
    assert!(qerr(&mut tenant, &[b"GET", b"k"]).contains("Namespace protected and private"));
    assert!(qerr(&mut tenant, &[b"SET", b"k", b"x"]).contains("Namespace protected and private"));
    assert!(qerr(&mut tenant, &[b"MGET", b"k"]).contains("Namespace protected and private"));
    assert!(qerr(&mut tenant, &[b"SCAN"]).contains("Namespace protected and private"));
    assert!(qerr(&mut tenant, &[b"SELECT", b"t", b"old"]).contains("Access denied"));
    q::<String>(&mut tenant, &[b"SELECT", b"t", b"new"]);
    assert_eq!(
        q::<Option<Vec<u8>>>(&mut tenant, &[b"GET", b"k"]),
        Some(b"v".to_vec())
    );
    // changing only `public` keeps a session that gave the current password
    q::<String>(&mut admin, &[b"NSSET", b"t", b"public", b"1"]);
    q::<String>(&mut admin, &[b"NSSET", b"t", b"public", b"0"]);
    q::<Vec<u8>>(&mut tenant, &[b"SET", b"k3", b"v"]);

    // requests pipelined behind the change are refused too
    {
        use std::io::{Read, Write};
        let mut raw = std::net::TcpStream::connect(s.addr).expect("connect");
        raw.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .expect("timeout");
        let read_exactly = |raw: &mut std::net::TcpStream, want: &str| {
            let mut got = vec![0u8; want.len()];
            raw.read_exact(&mut got).expect("reply");
            assert_eq!(String::from_utf8_lossy(&got), want);
        };
        raw.write_all(b"SELECT t new\r\n").expect("send");
        read_exactly(&mut raw, "+OK\r\n");
        q::<String>(&mut admin, &[b"NSSET", b"t", b"password", b"newer"]);
        raw.write_all(b"GET k\r\nSET k y\r\nEXISTS k\r\n")
            .expect("send");
        read_exactly(
            &mut raw,
            "-Namespace protected and private\r\n\
             -Namespace protected and private\r\n\
             -Namespace protected and private\r\n",
        );
    }

    // public namespace: the old password's session drops to read-only
    q::<String>(&mut admin, &[b"NSNEW", b"p"]);
    q::<String>(&mut admin, &[b"NSSET", b"p", b"password", b"old"]);
    let mut writer = s.client();
    q::<String>(&mut writer, &[b"SELECT", b"p", b"old"]);
    q::<Vec<u8>>(&mut writer, &[b"SET", b"a", b"1"]);
    q::<String>(&mut admin, &[b"NSSET", b"p", b"password", b"new"]);
    assert_eq!(
        q::<Option<Vec<u8>>>(&mut writer, &[b"GET", b"a"]),
        Some(b"1".to_vec())
    );
    assert!(qerr(&mut writer, &[b"SET", b"a", b"2"]).contains("Namespace is in read-only mode"));
    assert!(qerr(&mut writer, &[b"DEL", b"a"]).contains("Namespace is in read-only mode"));

    // sessions that entered while there was no password
    q::<String>(&mut admin, &[b"NSNEW", b"o"]);
    let mut open_o = s.client();
    q::<String>(&mut open_o, &[b"SELECT", b"o"]);
    q::<Vec<u8>>(&mut open_o, &[b"SET", b"x", b"1"]);
    q::<String>(&mut admin, &[b"NSSET", b"o", b"password", b"pw"]);
    q::<String>(&mut admin, &[b"NSSET", b"o", b"public", b"0"]);
    assert!(qerr(&mut open_o, &[b"GET", b"x"]).contains("Namespace protected and private"));
    assert!(qerr(&mut open_o, &[b"SET", b"x", b"2"]).contains("Namespace protected and private"));
}

/// Multibulk headers 0-db refuses at once, in its words: `*0` (`-Missing arguments`, and the
/// connection goes on) and more than 1,024 arguments (`-Too many arguments`, and the
/// connection closes: the arguments that follow cannot be told from new requests).
#[test]
fn empty_and_oversized_multibulk_headers_are_answered_as_0_db_does() {
    use std::io::{Read, Write};
    let s = InProcess::start();
    let mut raw = std::net::TcpStream::connect(s.addr).expect("connect");
    raw.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .expect("timeout");
    raw.write_all(b"*0\r\n*1\r\n$4\r\nPING\r\n").expect("send");
    let want = "-Missing arguments\r\n+PONG\r\n";
    let mut got = vec![0u8; want.len()];
    raw.read_exact(&mut got).expect("replies");
    assert_eq!(String::from_utf8_lossy(&got), want);
    // 1,024 arguments are taken (and answered: no command takes that many) …
    let mut wire = b"*1024\r\n".to_vec();
    for _ in 0..1024 {
        wire.extend_from_slice(b"$1\r\nx\r\n");
    }
    raw.write_all(&wire).expect("send");
    let mut first = [0u8; 1];
    raw.read_exact(&mut first).expect("a reply");
    assert_eq!(first[0], b'-', "an error reply for an unknown command");
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while !line.ends_with(b"\r\n") {
        raw.read_exact(&mut byte).expect("reply line");
        line.push(byte[0]);
    }
    // … 1,025 are not.
    raw.write_all(b"*1025\r\n").expect("send");
    let mut rest = Vec::new();
    raw.read_to_end(&mut rest)
        .expect("reply, then the connection closes");
    assert_eq!(String::from_utf8_lossy(&rest), "-Too many arguments\r\n");
}

/// Every error a client can provoke with a well-formed request, as the exact line 0-db sends
/// (its `zdbd/` sources are the reference: no `ERR` code, its words). Clients of 0-db match
/// these texts.
#[test]
fn error_replies_are_0_db_lines_exactly() {
    use std::io::{BufRead, BufReader, Write};
    let s = InProcess::start_with(|c| c.admin_password = Some("adminpw".into()));
    let stream = std::net::TcpStream::connect(s.addr).expect("connect");
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .expect("timeout");
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut writer = stream;
    let mut ask = |args: &[&[u8]]| -> String {
        let mut frame = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            frame.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            frame.extend_from_slice(a);
            frame.extend_from_slice(b"\r\n");
        }
        writer.write_all(&frame).expect("send");
        let mut line = String::new();
        reader.read_line(&mut line).expect("reply");
        if line.starts_with('$') && !line.starts_with("$-1") {
            // a bulk reply: its payload is the next line here (short, no CR or LF)
            reader.read_line(&mut String::new()).expect("bulk");
        }
        line.trim_end().to_string()
    };
    let long_key = vec![b'k'; 256];
    let table: &[(&[&[u8]], &str)] = &[
        (&[b"NOPE"], "-Command not supported"),
        (&[b"GET"], "-Unexpected arguments"),
        (&[b"SET", b"k"], "-Missing arguments"),
        (&[b"NSNEW", b"x"], "-Permission denied"),
        (
            &[b"AUTH", b"FOO", b"bar"],
            "-Only SECURE extra method supported",
        ),
        (
            &[
                b"AUTH",
                b"SECURE",
                b"0123456789012345678901234567890123456789",
            ],
            "-No CHALLENGE requested, secure authentication not available",
        ),
        (&[b"AUTH", b"wrong"], "-Access denied"),
        (&[b"SELECT", b"nope"], "-Namespace not found"),
        (&[b"DEL", b"missing"], "-Key not found"),
        (&[b"SET", b"", b"v"], "-Invalid argument, key needed"),
        (&[b"SET", &long_key, b"v"], "-Key too large"),
        (&[b"AUTH", b"adminpw"], "+OK"),
        (&[b"NSDEL", b"default"], "-Cannot remove default namespace"),
        (
            &[b"NSSET", b"default", b"maxsize", b"1"],
            "-Cannot update default namespace",
        ),
        (&[b"NSINFO", b"nope"], "-Namespace not found"),
        (&[b"NSDEL", b"nope"], "-This namespace doesn't exists"),
        (&[b"NSNEW", b"t"], "+OK"),
        (&[b"NSSET", b"t", b"nope", b"1"], "-Invalid property"),
        (
            &[b"NSSET", b"t", b"mode", b"zz"],
            "-Invalid property value (expected: user, seq)",
        ),
        (&[b"NSSET", b"t", b"mode", b"seq"], "+OK"),
        (&[b"SELECT", b"t"], "+OK"),
        (
            &[b"SET", b"\x07\0\0\0\0\0\0\0", b"v"],
            "-Invalid key, only update authorized",
        ),
        (&[b"NSNEW", b"w"], "+OK"),
        (&[b"NSSET", b"w", b"worm", b"1"], "+OK"),
        (&[b"SELECT", b"w"], "+OK"),
        (&[b"SET", b"a", b"1"], "$1"),
        (
            &[b"SET", b"a", b"2"],
            "-Namespace is protected by worm mode",
        ),
        (&[b"NSSET", b"w", b"worm", b"0"], "+OK"),
        (&[b"NSSET", b"w", b"lock", b"1"], "+OK"),
        (
            &[b"SET", b"a", b"3"],
            "-Namespace is temporarily locked (read-only)",
        ),
        (&[b"NSSET", b"w", b"lock", b"0"], "+OK"),
        (&[b"NSSET", b"w", b"freeze", b"1"], "+OK"),
        (
            &[b"GET", b"a"],
            "-Namespace is temporarily frozen (read-write disabled)",
        ),
        (&[b"NSSET", b"w", b"freeze", b"0"], "+OK"),
        (&[b"NSSET", b"w", b"maxsize", b"1"], "+OK"),
        (&[b"SET", b"b", b"22"], "-No space left on this namespace"),
        (
            &[b"NSDEL", b"w"],
            "-Cannot remove namespace you're currently using.",
        ),
    ];
    for (args, want) in table {
        let shown: Vec<String> = args
            .iter()
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        assert_eq!(ask(args), *want, "{shown:?}");
    }
}

/// `NSJUMP` (admin) seals the current namespace's data file and starts the next; data written on
/// both sides reads back, also after a restart.
#[test]
fn nsjump_starts_the_next_data_file() {
    let s = InProcess::start_with(|c| c.admin_password = Some("adminpw".into()));
    let mut c = s.client();
    assert!(qerr(&mut c, &[b"NSJUMP"]).contains("Permission denied"));
    q::<String>(&mut c, &[b"AUTH", b"adminpw"]);
    let files = |c: &mut redis::Connection| -> String {
        let info: String = q(c, &[b"NSINFO", b"default"]);
        info.lines()
            .find(|l| l.starts_with("data_files: "))
            .expect("data_files")
            .to_string()
    };
    q::<Vec<u8>>(&mut c, &[b"SET", b"a", b"1"]);
    assert_eq!(files(&mut c), "data_files: 1");
    assert_eq!(q::<String>(&mut c, &[b"NSJUMP"]), "OK");
    assert_eq!(files(&mut c), "data_files: 2");
    // an empty active file is not sealed again
    assert_eq!(q::<String>(&mut c, &[b"NSJUMP"]), "OK");
    assert_eq!(files(&mut c), "data_files: 2");
    q::<Vec<u8>>(&mut c, &[b"SET", b"b", b"2"]);
    drop(c);
    let dir = s.stop();
    let mut config = zdb::ZdbConfig::ephemeral(dir.path());
    config.admin_password = Some("adminpw".into());
    let s = InProcess::start_in(dir, config);
    let mut c = s.client();
    assert_eq!(
        q::<Option<Vec<u8>>>(&mut c, &[b"GET", b"a"]),
        Some(b"1".to_vec())
    );
    assert_eq!(
        q::<Option<Vec<u8>>>(&mut c, &[b"GET", b"b"]),
        Some(b"2".to_vec())
    );
}
