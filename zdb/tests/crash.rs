//! Crash safety of the real binary: `kill -9` in the middle of `--sync`
//! writes, torn tails, flipped bytes and lost index files.

mod common;

use std::collections::HashMap;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{connect, q, qerr, Binary, InProcess};

fn data_files(root: &Path, ns: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(root.join("data").join(ns))
        .expect("data dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "zdb"))
        .collect();
    files.sort();
    files
}

fn index_file(root: &Path, ns: &str) -> PathBuf {
    root.join("index").join(ns).join("index.zdb")
}

/// What the writer knows: the last acknowledged value of each key, and the
/// one write that was in flight when the server died (it may or may not have landed).
#[derive(Default)]
struct Ledger {
    acked: HashMap<String, String>,
    in_flight: Option<(String, String)>,
}

#[test]
fn kill9_during_sync_writes_loses_no_acknowledged_write() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let mut seq = 0u64;
    for round in 0..20 {
        let server = Binary::start(root, &["--sync", "--datasize", "65536"]);
        let addr = server.addr;
        {
            // everything acknowledged in earlier rounds is there, exactly
            let mut c = connect(addr);
            let l = ledger.lock().expect("ledger");
            for (k, v) in &l.acked {
                let got: Option<String> = q(&mut c, &[b"GET", k.as_bytes()]);
                let in_flight = l.in_flight.as_ref().filter(|(fk, _)| fk == k);
                let ok = got.as_deref() == Some(v.as_str())
                    || in_flight.is_some_and(|(_, fv)| got.as_deref() == Some(fv.as_str()));
                assert!(ok, "round {round}: key {k} has {got:?}, acknowledged {v:?}");
            }
        }
        let stop = Arc::new(AtomicBool::new(false));
        let writer = {
            let ledger = ledger.clone();
            let stop = stop.clone();
            let start = seq;
            std::thread::spawn(move || {
                let mut c = connect(addr);
                let mut n = start;
                while !stop.load(Ordering::Relaxed) {
                    // a bounded key space, so rounds also overwrite older keys
                    let key = format!("key{}", n % 700);
                    let value = format!("round{round}-write{n}-{}", "x".repeat((n % 300) as usize));
                    ledger.lock().expect("ledger").in_flight = Some((key.clone(), value.clone()));
                    let r: redis::RedisResult<Vec<u8>> =
                        redis::cmd("SET").arg(&key).arg(&value).query(&mut c);
                    match r {
                        Ok(k) => {
                            assert_eq!(k, key.as_bytes());
                            let mut l = ledger.lock().expect("ledger");
                            l.acked.insert(key, value);
                            l.in_flight = None;
                        }
                        Err(_) => break,
                    }
                    n += 1;
                }
                n
            })
        };
        std::thread::sleep(Duration::from_millis(100 + (round % 4) * 50));
        server.kill9();
        stop.store(true, Ordering::Relaxed);
        seq = writer.join().expect("writer");
        if round % 5 == 4 {
            // simulate a record torn mid-write: a plausible header and half a body
            let last = data_files(root, "default").pop().expect("a data file");
            let mut f = OpenOptions::new().append(true).open(&last).expect("open");
            let mut torn = vec![0u8; 30];
            torn[8] = 4;
            torn[10] = 200;
            torn.extend_from_slice(b"keyXpartial");
            f.write_all(&torn).expect("append torn tail");
        }
    }
    let l = ledger.lock().expect("ledger");
    assert!(
        l.acked.len() > 100,
        "the writer made progress: {}",
        l.acked.len()
    );
    // final restart: all there, and the namespace takes writes again
    let server = Binary::start(root, &["--sync"]);
    let mut c = connect(server.addr);
    for (k, v) in &l.acked {
        let got: Option<String> = q(&mut c, &[b"GET", k.as_bytes()]);
        let in_flight = l.in_flight.as_ref().filter(|(fk, _)| fk == k);
        assert!(
            got.as_deref() == Some(v.as_str())
                || in_flight.is_some_and(|(_, fv)| got.as_deref() == Some(fv.as_str())),
            "key {k}"
        );
    }
    assert_eq!(
        q::<Vec<u8>>(&mut c, &[b"SET", b"after", b"crashes"]),
        b"after"
    );
    server.terminate();
}

fn fill(c: &mut redis::Connection, n: usize) {
    for i in 0..n {
        q::<Vec<u8>>(
            c,
            &[
                b"SET",
                format!("k{i}").as_bytes(),
                format!("value number {i}").as_bytes(),
            ],
        );
    }
}

#[test]
fn truncated_tail_without_index_serves_intact_part() {
    let s = InProcess::start();
    fill(&mut s.client(), 50);
    let dir = s.stop();
    let file = data_files(dir.path(), "default").pop().expect("data file");
    let len = fs::metadata(&file).expect("meta").len();
    // cut the last record in half and lose the index too
    fs::OpenOptions::new()
        .write(true)
        .open(&file)
        .expect("open")
        .set_len(len - 10)
        .expect("truncate");
    fs::remove_file(index_file(dir.path(), "default")).expect("remove index");
    let config = zdb::ZdbConfig::ephemeral(dir.path());
    let s = InProcess::start_in(dir, config);
    let mut c = s.client();
    assert_eq!(q::<i64>(&mut c, &[b"DBSIZE"]), 49);
    assert_eq!(
        q::<Option<String>>(&mut c, &[b"GET", b"k48"]).as_deref(),
        Some("value number 48")
    );
    assert_eq!(q::<Option<String>>(&mut c, &[b"GET", b"k49"]), None);
    // writable again, and the repaired file keeps working after another restart
    q::<Vec<u8>>(&mut c, &[b"SET", b"k49", b"rewritten"]);
    drop(c);
    let dir = s.stop();
    let config = zdb::ZdbConfig::ephemeral(dir.path());
    let s = InProcess::start_in(dir, config);
    let mut c = s.client();
    assert_eq!(
        q::<Option<String>>(&mut c, &[b"GET", b"k49"]).as_deref(),
        Some("rewritten")
    );
    assert_eq!(q::<i64>(&mut c, &[b"DBSIZE"]), 50);
}

#[test]
fn flipped_byte_in_value_is_an_error_not_wrong_data() {
    let s = InProcess::start();
    let mut c = s.client();
    fill(&mut c, 10);
    let cur: Vec<u8> = q(&mut c, &[b"KEYCUR", b"k5"]);
    drop(c);
    let dir = s.stop();
    let offset = u32::from_le_bytes(cur[4..8].try_into().expect("4 bytes")) as u64;
    let file = data_files(dir.path(), "default").pop().expect("data file");
    let mut bytes = fs::read(&file).expect("read");
    // header (30) + key "k5" (2) + 3 bytes into the value
    bytes[offset as usize + 35] ^= 0x20;
    fs::write(&file, &bytes).expect("write");
    let config = zdb::ZdbConfig::ephemeral(dir.path());
    let s = InProcess::start_in(dir, config);
    let mut c = s.client();
    assert!(qerr(&mut c, &[b"GET", b"k5"]).contains("Data corrupted"));
    assert_eq!(q::<i64>(&mut c, &[b"CHECK", b"k5"]), 0);
    assert_eq!(q::<i64>(&mut c, &[b"CHECK", b"k4"]), 1);
    assert_eq!(
        q::<Option<String>>(&mut c, &[b"GET", b"k6"]).as_deref(),
        Some("value number 6")
    );
    // overwriting the damaged key works
    q::<Vec<u8>>(&mut c, &[b"SET", b"k5", b"fresh"]);
    assert_eq!(
        q::<Option<String>>(&mut c, &[b"GET", b"k5"]).as_deref(),
        Some("fresh")
    );
}

#[test]
fn flipped_byte_without_index_cuts_the_tail_there() {
    let s = InProcess::start();
    let mut c = s.client();
    fill(&mut c, 10);
    let cur: Vec<u8> = q(&mut c, &[b"KEYCUR", b"k7"]);
    drop(c);
    let dir = s.stop();
    let offset = u32::from_le_bytes(cur[4..8].try_into().expect("4 bytes")) as usize;
    let file = data_files(dir.path(), "default").pop().expect("data file");
    let mut bytes = fs::read(&file).expect("read");
    bytes[offset + 12] ^= 0xff;
    fs::write(&file, &bytes).expect("write");
    fs::remove_file(index_file(dir.path(), "default")).expect("remove index");
    let config = zdb::ZdbConfig::ephemeral(dir.path());
    let s = InProcess::start_in(dir, config);
    let mut c = s.client();
    assert_eq!(q::<i64>(&mut c, &[b"DBSIZE"]), 7);
    assert_eq!(
        q::<Option<String>>(&mut c, &[b"GET", b"k6"]).as_deref(),
        Some("value number 6")
    );
    assert_eq!(q::<Option<String>>(&mut c, &[b"GET", b"k8"]), None);
    assert_eq!(fs::metadata(&file).expect("meta").len() as usize, offset);
    q::<Vec<u8>>(&mut c, &[b"SET", b"new", b"write"]);
    assert_eq!(
        q::<Option<String>>(&mut c, &[b"GET", b"new"]).as_deref(),
        Some("write")
    );
}

#[test]
fn damaged_or_missing_index_is_rebuilt_from_data() {
    let s = InProcess::start();
    let mut c = s.client();
    fill(&mut c, 200);
    q::<String>(&mut c, &[b"DEL", b"k3"]);
    drop(c);
    let dir = s.stop();
    let index = index_file(dir.path(), "default");
    let mut bytes = fs::read(&index).expect("read index");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    fs::write(&index, &bytes).expect("write index");
    let config = zdb::ZdbConfig::ephemeral(dir.path());
    let s = InProcess::start_in(dir, config);
    let mut c = s.client();
    assert_eq!(q::<i64>(&mut c, &[b"DBSIZE"]), 199);
    for i in [0, 100, 199] {
        let v: Option<String> = q(&mut c, &[b"GET", format!("k{i}").as_bytes()]);
        assert_eq!(v, Some(format!("value number {i}")));
    }
    assert_eq!(q::<Option<String>>(&mut c, &[b"GET", b"k3"]), None);
    drop(c);
    let dir = s.stop();
    fs::remove_file(index_file(dir.path(), "default")).expect("remove index");
    let config = zdb::ZdbConfig::ephemeral(dir.path());
    let s = InProcess::start_in(dir, config);
    let mut c = s.client();
    assert_eq!(q::<i64>(&mut c, &[b"DBSIZE"]), 199);
}
