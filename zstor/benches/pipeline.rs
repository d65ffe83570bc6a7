//! Zero-Store throughput and memory figures (a plain bench binary, not criterion: the numbers
//! wanted are MB/s over hundreds of MB and a peak RSS).
//!
//! ```sh
//! cargo bench -p zstor --bench pipeline -- codec        # single-core chunk+zstd+encrypt+RS(+blake3)
//! cargo bench -p zstor --bench pipeline -- get          # put/get through 6 in-process zdb, 2 down
//! cargo bench -p zstor --bench pipeline -- rss CONFIG BYTES   # put+get a generated stream, VmHWM
//! ```

use std::io::Read;
use std::time::Instant;
use zstor::codec::{ChunkDecoder, ChunkEncoder, CodecParams, DEFAULT_CHUNK_SIZE};
use zstor::crypto::FileKey;
use zstor::{KeySource, NoProgress, PutOptions, Store, StoreConfig};

const MB: f64 = 1e6;

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    match args.first().map(String::as_str) {
        Some("codec") | None => codec(),
        Some("get") => get_with_backends_down(),
        Some("rss") => rss(&args[1..]),
        Some(other) => eprintln!("unknown mode {other}: codec | get | rss CONFIG BYTES"),
    }
}

fn params() -> CodecParams {
    CodecParams {
        data_shards: 4,
        parity_shards: 2,
        chunk_size: DEFAULT_CHUNK_SIZE,
        zstd_level: 3,
    }
}

fn incompressible(len: usize) -> Vec<u8> {
    let mut data = vec![0u8; len];
    blake3::Hasher::new()
        .update(b"zstor bench")
        .finalize_xof()
        .fill(&mut data);
    data
}

fn compressible(len: usize) -> Vec<u8> {
    // log-like lines with varying numbers: compresses ~5-10x, not trivially
    let mut data = Vec::with_capacity(len + 128);
    let mut i = 0u64;
    while data.len() < len {
        data.extend_from_slice(
            format!(
                "2026-11-02T10:{:02}:{:02}Z node-{} reservation {} state=Ok used_hru={} \n",
                (i / 60) % 60,
                i % 60,
                i % 17,
                i * 7919 % 100_003,
                i * 31 % 4096
            )
            .as_bytes(),
        );
        i += 1;
    }
    data.truncate(len);
    data
}

/// Encodes `total` bytes chunk by chunk (cycling over `input`) on this thread; MB/s of plaintext.
fn encode_rate(params: CodecParams, input: &[u8], total: usize) -> f64 {
    let key = FileKey::random();
    let mut encoder = ChunkEncoder::new(params).expect("encoder");
    let chunk = params.chunk_size as usize;
    let started = Instant::now();
    let mut done = 0usize;
    let mut index = 0u64;
    while done < total {
        let at = done % input.len();
        let end = (at + chunk).min(input.len());
        let encoded = encoder
            .encode(&key, [0; 16], index, &input[at..end])
            .expect("encode");
        std::hint::black_box(&encoded);
        done += end - at;
        index += 1;
    }
    done as f64 / MB / started.elapsed().as_secs_f64()
}

/// Decodes chunks with `lost` shards missing (parity used); MB/s of plaintext.
fn decode_rate(params: CodecParams, input: &[u8], lost: usize) -> f64 {
    let key = FileKey::random();
    let mut encoder = ChunkEncoder::new(params).expect("encoder");
    let chunk = params.chunk_size as usize;
    let encoded: Vec<_> = input
        .chunks(chunk)
        .enumerate()
        .map(|(i, c)| encoder.encode(&key, [0; 16], i as u64, c).expect("encode"))
        .collect();
    let mut decoder = ChunkDecoder::new(params).expect("decoder");
    let mut out = Vec::new();
    let rounds = 4;
    let started = Instant::now();
    for _ in 0..rounds {
        for (i, e) in encoded.iter().enumerate() {
            let mut shards: Vec<Option<Vec<u8>>> = e.shards().map(|s| Some(s.to_vec())).collect();
            for shard in shards.iter_mut().take(lost) {
                *shard = None;
            }
            decoder
                .decode(&key, [0; 16], i as u64, &e.layout, &mut shards, &mut out)
                .expect("decode");
        }
    }
    // the shard clones are part of the loop: they stand for the network buffers of a real get
    (input.len() * rounds) as f64 / MB / started.elapsed().as_secs_f64()
}

fn codec() {
    let total = 1 << 30;
    let random = incompressible(256 << 20);
    let text = compressible(256 << 20);
    let p = params();
    println!("single core, k=4 m=2, 4 MiB chunks, zstd level 3, 1 GiB per figure");
    println!(
        "encode incompressible: {:7.0} MB/s",
        encode_rate(p, &random, total)
    );
    println!(
        "encode compressible:   {:7.0} MB/s (ratio {:.1}x)",
        encode_rate(p, &text, total),
        text.len() as f64 / zstd::bulk::compress(&text[..4 << 20], 3).map_or(1, |c| c.len()) as f64
            * (4 << 20) as f64
            / text.len() as f64
    );
    let fast = CodecParams { zstd_level: 1, ..p };
    println!(
        "encode incompressible, zstd level 1: {:7.0} MB/s",
        encode_rate(fast, &random, total)
    );
    println!(
        "decode incompressible, all shards:   {:7.0} MB/s",
        decode_rate(p, &random, 0)
    );
    println!(
        "decode incompressible, 2 data shards lost: {:7.0} MB/s",
        decode_rate(p, &random, 2)
    );
    println!(
        "decode compressible, 2 data shards lost:   {:7.0} MB/s",
        decode_rate(p, &text, 2)
    );
}

fn get_with_backends_down() {
    use zdb::{Server, ZdbConfig};
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mut servers = Vec::new();
    let mut dirs = Vec::new();
    let mut backends = Vec::new();
    for _ in 0..6 {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = ZdbConfig::ephemeral(dir.path());
        config.mode = Some(zdb::Mode::Seq);
        let server = rt.block_on(Server::start(config)).expect("zdb");
        let addr = server.local_addr().expect("addr");
        let mut con = redis::Client::open(format!("redis://{addr}/"))
            .expect("client")
            .get_connection()
            .expect("connect");
        redis::cmd("NSNEW")
            .arg("bench")
            .query::<()>(&mut con)
            .expect("nsnew");
        backends.push(zstor::BackendSpec {
            address: addr.to_string(),
            namespace: "bench".into(),
            password: None,
        });
        servers.push(Some(server));
        dirs.push(dir);
    }
    let config = StoreConfig {
        version: 1,
        data_shards: 4,
        parity_shards: 2,
        chunk_size: DEFAULT_CHUNK_SIZE,
        compression_level: 3,
        backends,
    };
    let store = Store::new(config).expect("store");
    let key = KeySource::raw_key_from_hex(&KeySource::generate_raw_key_hex()).expect("key");
    let data = incompressible(256 << 20);
    let started = Instant::now();
    let report = store
        .put(
            &mut data.as_slice(),
            "bench",
            &key,
            PutOptions::default(),
            &mut NoProgress,
        )
        .expect("put");
    let put_rate = data.len() as f64 / MB / started.elapsed().as_secs_f64();
    println!(
        "6 in-process zdb (same machine, 2 cores shared with the servers), 256 MB incompressible"
    );
    println!("put:                          {put_rate:7.0} MB/s");
    let get_rate = |store: &Store| {
        let started = Instant::now();
        let mut sink = std::io::sink();
        store
            .get(&report.location, &key, &mut sink, &mut NoProgress)
            .expect("get");
        data.len() as f64 / MB / started.elapsed().as_secs_f64()
    };
    println!(
        "get, all backends up:         {:7.0} MB/s",
        get_rate(&store)
    );
    for i in [0, 1] {
        if let Some(server) = servers[i].take() {
            rt.block_on(server.shutdown()).expect("shutdown");
        }
    }
    println!(
        "get, 2 data backends down:    {:7.0} MB/s",
        get_rate(&store)
    );
}

/// A reader producing `remaining` pseudo-random bytes without holding them.
struct Generated {
    remaining: u64,
    xof: blake3::OutputReader,
}

impl Read for Generated {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = (buf.len() as u64).min(self.remaining) as usize;
        self.xof.fill(&mut buf[..n]);
        self.remaining -= n as u64;
        Ok(n)
    }
}

fn vm_hwm_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn rss(args: &[String]) {
    let (Some(config), Some(size)) = (args.first(), args.get(1).and_then(|s| s.parse().ok()))
    else {
        eprintln!("usage: rss CONFIG BYTES");
        return;
    };
    let config = StoreConfig::load(std::path::Path::new(config)).expect("config");
    let store = Store::new(config).expect("store");
    let key = KeySource::raw_key_from_hex(&KeySource::generate_raw_key_hex()).expect("key");
    let mut input = Generated {
        remaining: size,
        xof: blake3::Hasher::new().update(b"rss").finalize_xof(),
    };
    println!("VmHWM before: {} KiB", vm_hwm_kib());
    let started = Instant::now();
    let report = store
        .put(
            &mut input,
            "rss",
            &key,
            PutOptions::default(),
            &mut NoProgress,
        )
        .expect("put");
    println!(
        "put {} bytes: {:.0} MB/s, VmHWM {} KiB",
        size,
        size as f64 / MB / started.elapsed().as_secs_f64(),
        vm_hwm_kib()
    );
    let started = Instant::now();
    store
        .get(
            &report.location,
            &key,
            &mut std::io::sink(),
            &mut NoProgress,
        )
        .expect("get");
    println!(
        "get {} bytes: {:.0} MB/s, VmHWM {} KiB",
        size,
        size as f64 / MB / started.elapsed().as_secs_f64(),
        vm_hwm_kib()
    );
}
