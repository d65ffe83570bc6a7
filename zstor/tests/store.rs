//! put / get / check / repair against real zdb servers.

mod common;

use common::{compressible_bytes, random_bytes, Cluster};
use zeroize::Zeroizing;
use zstor::{KeySource, Location, NoProgress, PutOptions, Store, ZstorError};

const MIB: usize = 1024 * 1024;

fn passphrase(text: &str) -> KeySource {
    KeySource::Passphrase(Zeroizing::new(text.to_string()))
}

fn put(store: &Store, data: &[u8], key: &KeySource) -> Location {
    store
        .put(
            &mut &data[..],
            "file",
            key,
            PutOptions::default(),
            &mut NoProgress,
        )
        .expect("put")
        .location
}

fn get(store: &Store, location: &Location, key: &KeySource) -> Result<Vec<u8>, ZstorError> {
    let mut out = Vec::new();
    store.get(location, key, &mut out, &mut NoProgress)?;
    Ok(out)
}

#[test]
fn round_trips_empty_tiny_chunk_sized_and_large_files() {
    let cluster = Cluster::start(6, 4, 2, 4 * MIB as u32);
    let store = Store::new(cluster.config.clone()).expect("store");
    let key = KeySource::raw_key_from_hex(&KeySource::generate_raw_key_hex()).expect("key");
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", Vec::new()),
        ("one byte", vec![7]),
        ("tiny", b"hello zstor".to_vec()),
        ("exactly one chunk", random_bytes(4 * MIB, 1)),
        ("one chunk and a byte", random_bytes(4 * MIB + 1, 2)),
        ("compressible", compressible_bytes(9 * MIB + 123)),
        ("large (50 MB)", random_bytes(50_000_000, 3)),
    ];
    for (what, data) in cases {
        let location = put(&store, &data, &key);
        let text = location.to_string();
        let parsed = Location::parse(&text).expect("location parses");
        assert_eq!(get(&store, &parsed, &key).expect(what), data, "{what}");
        let report = store.check(&parsed, &key, &mut NoProgress).expect("check");
        assert!(report.is_healthy(), "{what}: {report:?}");
        assert_eq!(report.size, data.len() as u64);
    }
}

#[test]
fn get_survives_m_backends_down_or_wiped_and_fails_clearly_beyond() {
    let mut cluster = Cluster::start(6, 4, 2, 256 * 1024);
    let store = Store::new(cluster.config.clone()).expect("store");
    let key = passphrase("correct horse battery staple");
    let data = random_bytes(3 * MIB + 777, 9);
    let location = put(&store, &data, &key);

    // two data-shard backends wiped
    cluster.wipe(0);
    cluster.wipe(2);
    assert_eq!(get(&store, &location, &key).expect("get, 2 wiped"), data);
    let report = store
        .check(&location, &key, &mut NoProgress)
        .expect("check");
    assert_eq!(report.missing, 2 * report.chunks);
    assert_eq!(report.unrecoverable_chunks, 0);
    assert!(!report.is_healthy());

    // repair rewrites them on the same (alive) backends
    let repaired = store
        .repair(&location, &key, &mut NoProgress)
        .expect("repair");
    assert_eq!(repaired.repaired_shards, 2 * repaired.chunks);
    assert!(repaired.moved.is_empty());
    let healthy = store
        .check(&repaired.location, &key, &mut NoProgress)
        .expect("check after repair");
    assert!(healthy.is_healthy(), "{healthy:?}");

    // two backends killed
    cluster.kill(1);
    cluster.kill(5);
    assert_eq!(
        get(&store, &repaired.location, &key).expect("get, 2 down"),
        data
    );

    // a third one lost: a clear error, no output
    cluster.wipe(3);
    match get(&store, &repaired.location, &key) {
        Err(ZstorError::ChunkUnavailable { index: 0, source }) => {
            assert!(matches!(
                *source,
                ZstorError::NotEnoughShards {
                    available: 3,
                    needed: 4
                }
            ))
        }
        other => panic!(
            "expected an unavailable chunk, got {:?}",
            other.map(|v| v.len())
        ),
    }
}

#[test]
fn corrupted_shard_is_detected_and_repaired() {
    let cluster = Cluster::start(6, 4, 2, 64 * 1024);
    let store = Store::new(cluster.config.clone()).expect("store");
    let key = passphrase("pw");
    let data = compressible_bytes(300 * 1024);
    let location = put(&store, &data, &key);
    let (manifest, _) = store.load_manifest(&location, &key).expect("manifest");
    let shard = manifest.chunks[1].shards[3].location.expect("stored");
    cluster.corrupt(usize::from(shard.backend), shard.key);

    let report = store
        .check(&location, &key, &mut NoProgress)
        .expect("check");
    assert_eq!(report.corrupt, 1);
    assert_eq!(report.backends[3].corrupt, 1);
    assert_eq!(get(&store, &location, &key).expect("get"), data);

    let repaired = store
        .repair(&location, &key, &mut NoProgress)
        .expect("repair");
    assert_eq!(repaired.repaired_shards, 1);
    assert!(repaired.changed);
    let report = store
        .check(&repaired.location, &key, &mut NoProgress)
        .expect("check");
    assert!(report.is_healthy(), "{report:?}");
    // a second repair has nothing to do
    let again = store
        .repair(&repaired.location, &key, &mut NoProgress)
        .expect("repair again");
    assert_eq!(again.repaired_shards, 0);
    assert!(!again.changed);
}

#[test]
fn repair_moves_shards_of_a_dead_backend_to_a_spare() {
    let mut cluster = Cluster::start(7, 4, 2, 128 * 1024);
    let store = Store::new(cluster.config.clone()).expect("store");
    let key = passphrase("pw");
    let data = random_bytes(700 * 1024, 4);
    let location = put(&store, &data, &key);
    cluster.kill(4);
    let repaired = store
        .repair(&location, &key, &mut NoProgress)
        .expect("repair");
    assert_eq!(repaired.repaired_shards, repaired.chunks);
    let spare = cluster.config.backends[6].clone();
    assert_eq!(repaired.moved.len(), 1);
    assert_eq!(
        repaired.moved[0].1,
        format!("{}/{}", spare.address, spare.namespace)
    );
    let report = store
        .check(&repaired.location, &key, &mut NoProgress)
        .expect("check");
    assert!(report.is_healthy(), "{report:?}");
    // with another backend lost, the repaired file still reads
    cluster.kill(0);
    cluster.kill(1);
    assert_eq!(get(&store, &repaired.location, &key).expect("get"), data);

    // no spare left for these losses: counted, not written, the file stays readable
    let partial = store
        .repair(&repaired.location, &key, &mut NoProgress)
        .expect("repair without spares");
    assert_eq!(partial.repaired_shards, 0);
    assert_eq!(partial.unrepaired_shards, 2 * partial.chunks);
    assert!(!partial.changed);
}

#[test]
fn wrong_key_is_a_clear_error() {
    let cluster = Cluster::start(6, 4, 2, 64 * 1024);
    let store = Store::new(cluster.config.clone()).expect("store");
    let location = put(&store, &random_bytes(100_000, 5), &passphrase("right"));
    assert!(matches!(
        get(&store, &location, &passphrase("wrong")),
        Err(ZstorError::WrongKey)
    ));
    let raw = KeySource::raw_key_from_hex(&"11".repeat(32)).expect("key");
    assert!(matches!(
        get(&store, &location, &raw),
        Err(ZstorError::WrongKeyKind(_))
    ));
    let raw_location = put(&store, b"raw", &raw);
    let other_raw = KeySource::raw_key_from_hex(&"22".repeat(32)).expect("key");
    assert!(matches!(
        get(&store, &raw_location, &other_raw),
        Err(ZstorError::WrongKey)
    ));
    assert!(matches!(
        store.check(&raw_location, &other_raw, &mut NoProgress),
        Err(ZstorError::WrongKey)
    ));
}

#[test]
fn put_refuses_unhealthy_backends_unless_degraded_and_repair_completes_it() {
    let mut cluster = Cluster::start(7, 4, 2, 64 * 1024);
    cluster.kill(6);
    // the spare being down does not matter: 6 healthy
    let store = Store::new(cluster.config.clone()).expect("store");
    let key = passphrase("pw");
    put(&store, b"fine", &key);
    cluster.kill(2);
    let data = random_bytes(200 * 1024, 6);
    match store.put(
        &mut &data[..],
        "f",
        &key,
        PutOptions::default(),
        &mut NoProgress,
    ) {
        Err(ZstorError::NotEnoughBackends {
            healthy: 5,
            needed: 6,
            ..
        }) => {}
        other => panic!("expected a refusal, got {:?}", other.map(|r| r.location)),
    }
    let degraded = store
        .put(
            &mut &data[..],
            "f",
            &key,
            PutOptions {
                allow_degraded: true,
            },
            &mut NoProgress,
        )
        .expect("degraded put");
    assert_eq!(degraded.missing_shards, degraded.chunks);
    assert_eq!(get(&store, &degraded.location, &key).expect("get"), data);
    let report = store
        .check(&degraded.location, &key, &mut NoProgress)
        .expect("check");
    assert_eq!(report.not_stored, report.chunks);
}

#[test]
fn garbage_locations_are_refused() {
    for text in [
        "",
        "zs1",
        "zs10OIl",
        "hello",
        "zs1zzzzzzzzzzzzzzzzzzzzzzzzzzz",
    ] {
        assert!(matches!(
            Location::parse(text),
            Err(ZstorError::InvalidLocation(_))
        ));
    }
}
