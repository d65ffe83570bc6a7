//! The operations: `put`, `get`, `check` and `repair` over the backends of a [`StoreConfig`].

use crate::backend::{BackendPool, ZdbNamespace};
use crate::codec::{restore_all_shards, ChunkDecoder, ChunkEncoder, MAX_SHARD_LEN};
use crate::config::{BackendSpec, StoreConfig};
use crate::crypto::{FileKey, KeySource, MasterKey};
use crate::error::ZstorError;
use crate::fetch::{ShardFetcher, ShardStatus};
use crate::manifest::{
    open_sealed, sealed_hash, BackendRef, ChunkEntry, Location, Manifest, ManifestCopy, ShardEntry,
    ShardLocation,
};
use parity_scale_codec::Compact;
use rand::RngCore;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::sync::mpsc::channel;
use std::sync::Arc;

/// Receives the number of plaintext bytes processed so far.
pub trait Progress {
    fn advance(&mut self, bytes: u64);
}

/// Progress that goes nowhere.
pub struct NoProgress;

impl Progress for NoProgress {
    fn advance(&mut self, _bytes: u64) {}
}

#[derive(Debug, Clone, Copy, Default)]
pub struct PutOptions {
    /// Write even when fewer than `k + m` backends are healthy (at least `k` must be); the
    /// shards that could not be written are recorded as not stored, for `repair`.
    pub allow_degraded: bool,
}

#[derive(Debug, Clone)]
pub struct PutReport {
    pub location: Location,
    pub name: String,
    pub size: u64,
    pub chunks: u64,
    /// Bytes of all shards written.
    pub stored_bytes: u64,
    /// Shards that could not be written (only with `allow_degraded`).
    pub missing_shards: u64,
    pub manifest_copies: usize,
}

#[derive(Debug, Clone)]
pub struct GetReport {
    pub name: String,
    pub size: u64,
    pub chunks: u64,
    /// Chunks for which parity shards had to be used.
    pub reconstructed_chunks: u64,
}

/// Shard counts of one backend after a check.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BackendHealth {
    pub backend: String,
    pub valid: u64,
    pub missing: u64,
    pub corrupt: u64,
    pub unreachable: u64,
    /// Why it was unreachable, when it was.
    pub error: Option<String>,
}

#[derive(Debug, Clone)]
pub struct CheckReport {
    pub name: String,
    pub size: u64,
    pub chunks: u64,
    pub shards: u64,
    pub valid: u64,
    pub missing: u64,
    pub corrupt: u64,
    pub unreachable: u64,
    pub not_stored: u64,
    /// Chunks with fewer than `k` valid shards: data lost.
    pub unrecoverable_chunks: u64,
    pub manifest_copies: usize,
    pub intact_manifest_copies: usize,
    pub backends: Vec<BackendHealth>,
}

impl CheckReport {
    /// Every shard and every manifest copy present and valid.
    pub fn is_healthy(&self) -> bool {
        self.valid == self.shards && self.intact_manifest_copies == self.manifest_copies
    }
}

#[derive(Debug, Clone)]
pub struct RepairReport {
    pub name: String,
    pub chunks: u64,
    pub repaired_shards: u64,
    /// Shards that could not be re-created: their backend is gone and every other healthy
    /// backend of the config already holds a shard of the chunk (add backends to the config).
    pub unrepaired_shards: u64,
    /// `(from, to)` backend labels for shards moved to replacement namespaces.
    pub moved: Vec<(String, String)>,
    /// The new location when anything changed (the old one keeps working as long as at most
    /// `m` shards of any chunk are lost), else the same.
    pub location: Location,
    pub changed: bool,
}

/// Zero-Store over the backends of one config.
pub struct Store {
    config: StoreConfig,
}

impl Store {
    pub fn new(config: StoreConfig) -> Result<Store, ZstorError> {
        config.validate()?;
        Ok(Store { config })
    }

    pub fn config(&self) -> &StoreConfig {
        &self.config
    }

    /// Reads `reader` to its end and stores it under `name`.
    pub fn put(
        &self,
        reader: &mut dyn Read,
        name: &str,
        key_source: &KeySource,
        options: PutOptions,
        progress: &mut dyn Progress,
    ) -> Result<PutReport, ZstorError> {
        let params = self.config.codec_params();
        let total = params.total_shards();
        let k = usize::from(params.data_shards);
        let pool = BackendPool::start(&self.config.backends);
        let health = pool.probe();
        let healthy: Vec<usize> = (0..pool.len()).filter(|&i| health[i].is_ok()).collect();
        if healthy.len() < total && (!options.allow_degraded || healthy.len() < k) {
            let unhealthy = health
                .iter()
                .filter_map(|h| h.as_ref().err().map(ToString::to_string))
                .collect::<Vec<_>>()
                .join("; ");
            return Err(ZstorError::NotEnoughBackends {
                healthy: healthy.len(),
                needed: total,
                unhealthy,
            });
        }
        // shard position i goes to worker chosen[i]; positions past the end are not stored
        let chosen: Vec<usize> = healthy.into_iter().take(total).collect();
        let master = key_source.master_key(&key_source.fresh_kdf_params())?;
        let file_key = FileKey::random();
        let mut file_id = [0u8; 16];
        rand::rng().fill_bytes(&mut file_id);

        let mut encoder = ChunkEncoder::new(params)?;
        let (results_tx, results) = channel::<(u64, usize, Result<u64, ZstorError>)>();
        let mut chunks: Vec<ChunkEntry> = Vec::new();
        let mut acknowledged: Vec<usize> = Vec::new();
        let mut hasher = blake3::Hasher::new();
        let mut buffer = vec![0u8; params.chunk_size as usize];
        let mut size = 0u64;
        let mut stored_bytes = 0u64;
        let mut missing_shards = 0u64;

        // applies replies until every shard of `chunk` is acknowledged
        let mut settle = |chunk: u64,
                          chunks: &mut Vec<ChunkEntry>,
                          acknowledged: &mut Vec<usize>|
         -> Result<(), ZstorError> {
            let index = chunk as usize;
            while acknowledged[index] < chosen.len() {
                let Ok((c, position, result)) = results.recv() else {
                    break;
                };
                acknowledged[c as usize] += 1;
                match result {
                    Ok(key) => {
                        chunks[c as usize].shards[position].location = Some(ShardLocation {
                            backend: position as u16,
                            key,
                        })
                    }
                    Err(e) if !options.allow_degraded => return Err(e),
                    Err(e) => tracing::warn!("chunk {c} shard {position}: {e}"),
                }
            }
            let stored = chunks[index]
                .shards
                .iter()
                .filter(|s| s.location.is_some())
                .count();
            if stored < k {
                return Err(ZstorError::ChunkUnavailable {
                    index: chunk,
                    source: Box::new(ZstorError::NotEnoughShards {
                        available: stored,
                        needed: k,
                    }),
                });
            }
            missing_shards += (total - stored) as u64;
            Ok(())
        };

        let mut pending: Option<u64> = None;
        loop {
            let read = read_full(reader, &mut buffer)?;
            if read == 0 {
                break;
            }
            let plaintext = &buffer[..read];
            hasher.update(plaintext);
            let index = chunks.len() as u64;
            let encoded = encoder.encode(&file_key, file_id, index, plaintext)?;
            stored_bytes += encoded
                .shards()
                .take(chosen.len())
                .map(|s| s.len() as u64)
                .sum::<u64>();
            chunks.push(ChunkEntry {
                plain_len: encoded.layout.plain_len,
                compressed: encoded.layout.compressed,
                payload_len: encoded.layout.payload_len,
                shard_len: encoded.layout.shard_len,
                shards: encoded
                    .checksums
                    .iter()
                    .map(|checksum| ShardEntry {
                        location: None,
                        checksum: *checksum,
                    })
                    .collect(),
            });
            acknowledged.push(0);
            let encoded = Arc::new(encoded);
            for (position, &worker) in chosen.iter().enumerate() {
                let shards = encoded.clone();
                let results_tx = results_tx.clone();
                pool.submit(
                    worker,
                    Box::new(move |conn| {
                        let result = conn.and_then(|c| c.append(shards.shard(position)));
                        let _ = results_tx.send((index, position, result));
                    }),
                );
            }
            // keep at most two chunks in flight
            if let Some(previous) = pending.replace(index) {
                settle(previous, &mut chunks, &mut acknowledged)?;
            }
            size += read as u64;
            progress.advance(size);
            if read < buffer.len() {
                break;
            }
        }
        if let Some(previous) = pending {
            settle(previous, &mut chunks, &mut acknowledged)?;
        }

        let backends = chosen
            .iter()
            .map(|&worker| backend_ref(&self.config.backends[worker]))
            .collect();
        let manifest = Manifest {
            file_id,
            name: name.to_string(),
            size,
            stored_at: unix_now(),
            data_shards: params.data_shards,
            parity_shards: params.parity_shards,
            chunk_size: params.chunk_size,
            zstd_level: params.zstd_level,
            content_hash: *hasher.finalize().as_bytes(),
            file_key: *file_key.as_bytes(),
            backends,
            chunks,
        };
        let workers: Vec<(usize, BackendSpec)> = chosen
            .iter()
            .map(|&w| (w, self.config.backends[w].clone()))
            .collect();
        let (location, failures) = store_manifest(&pool, &workers, &manifest, &master)?;
        if !failures.is_empty() && !options.allow_degraded {
            return Err(failures.into_iter().next().unwrap_or_else(|| {
                ZstorError::ManifestUnavailable("no copy could be stored".into())
            }));
        }
        Ok(PutReport {
            manifest_copies: location.copies.len(),
            location,
            name: manifest.name,
            size,
            chunks: manifest.chunks.len() as u64,
            stored_bytes,
            missing_shards,
        })
    }

    /// Fetches and decrypts a file's manifest, trying each copy in turn.
    pub fn load_manifest(
        &self,
        location: &Location,
        key_source: &KeySource,
    ) -> Result<(Manifest, MasterKey), ZstorError> {
        let mut failures = Vec::new();
        for copy in &location.copies {
            let candidates = self
                .config
                .backends
                .iter()
                .filter(|b| b.fingerprint() == copy.backend_fingerprint);
            let mut any = false;
            for spec in candidates {
                any = true;
                let sealed = match ZdbNamespace::connect(spec).and_then(|mut c| c.get(copy.key.0)) {
                    Ok(Some(sealed)) => sealed,
                    Ok(None) => {
                        failures.push(format!("{}: no manifest under its key", spec.label()));
                        continue;
                    }
                    Err(e) => {
                        failures.push(e.to_string());
                        continue;
                    }
                };
                if sealed_hash(&sealed) != location.sealed_hash {
                    failures.push(format!("{}: manifest copy is corrupt", spec.label()));
                    continue;
                }
                // the copy is intact, so a failure to decrypt means the key is wrong
                return open_sealed(&sealed, key_source);
            }
            if !any {
                failures.push(format!(
                    "no backend in the config has fingerprint {}",
                    hex_bytes(&copy.backend_fingerprint)
                ));
            }
        }
        Err(ZstorError::ManifestUnavailable(failures.join("; ")))
    }

    /// Restores a file into `writer`. Every chunk is authenticated before it is written, and
    /// the whole content is compared with its stored hash at the end.
    pub fn get(
        &self,
        location: &Location,
        key_source: &KeySource,
        writer: &mut dyn Write,
        progress: &mut dyn Progress,
    ) -> Result<GetReport, ZstorError> {
        let (manifest, _) = self.load_manifest(location, key_source)?;
        let pool = BackendPool::start(&self.manifest_backends(&manifest));
        let params = manifest.codec_params();
        let file_key = manifest.file_key();
        let mut decoder = ChunkDecoder::new(params)?;
        let mut fetcher = ShardFetcher::new(&pool, &manifest, false);
        let mut hasher = blake3::Hasher::new();
        let mut plaintext = Vec::new();
        let mut done = 0u64;
        let mut reconstructed_chunks = 0u64;
        let chunk_count = manifest.chunks.len() as u64;
        for (index, entry) in (0u64..).zip(&manifest.chunks) {
            if index + 1 < chunk_count {
                fetcher.request(index + 1);
            }
            let mut fetched = fetcher.finish(index);
            let needs_parity = fetched
                .shards
                .iter()
                .take(usize::from(params.data_shards))
                .any(Option::is_none);
            decoder
                .decode(
                    &file_key,
                    manifest.file_id,
                    index,
                    &entry.layout(),
                    &mut fetched.shards,
                    &mut plaintext,
                )
                .map_err(|e| match e {
                    ZstorError::NotEnoughShards { .. } => ZstorError::ChunkUnavailable {
                        index,
                        source: Box::new(e),
                    },
                    other => other,
                })?;
            reconstructed_chunks += u64::from(needs_parity);
            hasher.update(&plaintext);
            writer
                .write_all(&plaintext)
                .map_err(|e| ZstorError::io("writing the output", e))?;
            done += plaintext.len() as u64;
            progress.advance(done);
        }
        if *hasher.finalize().as_bytes() != manifest.content_hash {
            return Err(ZstorError::ContentHashMismatch);
        }
        writer
            .flush()
            .map_err(|e| ZstorError::io("writing the output", e))?;
        Ok(GetReport {
            name: manifest.name,
            size: manifest.size,
            chunks: chunk_count,
            reconstructed_chunks,
        })
    }

    /// Reads every shard and every manifest copy and verifies their checksums.
    pub fn check(
        &self,
        location: &Location,
        key_source: &KeySource,
        progress: &mut dyn Progress,
    ) -> Result<CheckReport, ZstorError> {
        let (manifest, _) = self.load_manifest(location, key_source)?;
        let intact_manifest_copies = self.intact_manifest_copies(location);
        let pool = BackendPool::start(&self.manifest_backends(&manifest));
        let mut backends: Vec<BackendHealth> = manifest
            .backends
            .iter()
            .map(|b| BackendHealth {
                backend: b.label(),
                ..BackendHealth::default()
            })
            .collect();
        let k = usize::from(manifest.data_shards);
        let mut report = CheckReport {
            name: manifest.name.clone(),
            size: manifest.size,
            chunks: manifest.chunks.len() as u64,
            shards: 0,
            valid: 0,
            missing: 0,
            corrupt: 0,
            unreachable: 0,
            not_stored: 0,
            unrecoverable_chunks: 0,
            manifest_copies: location.copies.len(),
            intact_manifest_copies,
            backends: Vec::new(),
        };
        let mut fetcher = ShardFetcher::new(&pool, &manifest, true);
        let mut done = 0u64;
        for (index, entry) in (0u64..).zip(&manifest.chunks) {
            if index + 1 < report.chunks {
                fetcher.request(index + 1);
            }
            let fetched = fetcher.finish(index);
            for (shard, status) in entry.shards.iter().zip(&fetched.statuses) {
                report.shards += 1;
                let health = shard
                    .location
                    .map(|l| &mut backends[usize::from(l.backend)]);
                match (status, health) {
                    (Some(ShardStatus::Valid), Some(h)) => {
                        report.valid += 1;
                        h.valid += 1;
                    }
                    (Some(ShardStatus::Missing), Some(h)) => {
                        report.missing += 1;
                        h.missing += 1;
                    }
                    (Some(ShardStatus::Corrupt), Some(h)) => {
                        report.corrupt += 1;
                        h.corrupt += 1;
                    }
                    (Some(ShardStatus::Unreachable(reason)), Some(h)) => {
                        report.unreachable += 1;
                        h.unreachable += 1;
                        h.error.get_or_insert_with(|| reason.clone());
                    }
                    _ => report.not_stored += 1,
                }
            }
            report.unrecoverable_chunks += u64::from(fetched.valid() < k);
            done += u64::from(entry.plain_len);
            progress.advance(done);
        }
        report.backends = backends;
        Ok(report)
    }

    fn intact_manifest_copies(&self, location: &Location) -> usize {
        location
            .copies
            .iter()
            .filter(|copy| {
                self.config
                    .backends
                    .iter()
                    .filter(|b| b.fingerprint() == copy.backend_fingerprint)
                    .any(|spec| {
                        ZdbNamespace::connect(spec)
                            .and_then(|mut c| c.get(copy.key.0))
                            .is_ok_and(|sealed| {
                                sealed.is_some_and(|s| sealed_hash(&s) == location.sealed_hash)
                            })
                    })
            })
            .count()
    }

    /// Re-creates every missing or corrupt shard: on its own backend when that still answers,
    /// else on a replacement namespace from the config that holds no other shard of the chunk
    /// (shards with no such namespace are counted as unrepaired). Writes a new manifest when
    /// anything changed.
    pub fn repair(
        &self,
        location: &Location,
        key_source: &KeySource,
        progress: &mut dyn Progress,
    ) -> Result<RepairReport, ZstorError> {
        let (mut manifest, master) = self.load_manifest(location, key_source)?;
        let read_manifest = manifest.clone();
        // workers: the manifest's backends (same indexes), then the config's spares
        let mut specs = self.manifest_backends(&manifest);
        let spares: Vec<BackendSpec> = self
            .config
            .backends
            .iter()
            .filter(|b| !specs.iter().any(|s| s.label() == b.label()))
            .cloned()
            .collect();
        specs.extend(spares);
        let pool = BackendPool::start(&specs);
        let usable: Vec<bool> = pool.probe().iter().map(Result::is_ok).collect();
        let mut manifest_index_of_worker: Vec<Option<u16>> = (0..specs.len())
            .map(|w| (w < manifest.backends.len()).then_some(w as u16))
            .collect();
        // (old backend, position) → replacement worker, so one lost backend moves to one spare
        let mut replacements: HashMap<(Option<u16>, usize), usize> = HashMap::new();
        let params = read_manifest.codec_params();
        let mut fetcher = ShardFetcher::new(&pool, &read_manifest, true);
        let mut repaired_shards = 0u64;
        let mut unrepaired_shards = 0u64;
        let mut moved = Vec::new();
        let mut done = 0u64;
        let chunk_count = read_manifest.chunks.len() as u64;
        for (index, entry) in (0u64..).zip(&read_manifest.chunks) {
            if index + 1 < chunk_count {
                fetcher.request(index + 1);
            }
            let mut fetched = fetcher.finish(index);
            done += u64::from(entry.plain_len);
            let bad: Vec<usize> = (0..entry.shards.len())
                .filter(|&p| fetched.statuses[p] != Some(ShardStatus::Valid))
                .collect();
            if bad.is_empty() {
                progress.advance(done);
                continue;
            }
            restore_all_shards(&params, &entry.layout(), &mut fetched.shards).map_err(|e| {
                ZstorError::ChunkUnavailable {
                    index,
                    source: Box::new(e),
                }
            })?;
            for &position in &bad {
                let shard = fetched.shards[position].take().unwrap_or_default();
                if *blake3::hash(&shard).as_bytes() != entry.shards[position].checksum {
                    return Err(ZstorError::CorruptChunk {
                        index,
                        reason: format!("rebuilt shard {position} does not match its checksum"),
                    });
                }
                let old_backend = entry.shards[position].location.map(|l| l.backend);
                let own_backend = old_backend
                    .map(usize::from)
                    .filter(|&w| usable[w] && pool.is_usable(w));
                let worker = match own_backend {
                    Some(worker) => worker,
                    None => {
                        let in_use: Vec<usize> = manifest.chunks[index as usize]
                            .shards
                            .iter()
                            .enumerate()
                            .filter(|(p, _)| *p != position)
                            .filter_map(|(_, s)| s.location.map(|l| usize::from(l.backend)))
                            .collect();
                        let previous = replacements
                            .get(&(old_backend, position))
                            .copied()
                            .filter(|w| pool.is_usable(*w) && !in_use.contains(w));
                        let worker = previous.or_else(|| {
                            (0..specs.len()).find(|&w| {
                                usable[w]
                                    && pool.is_usable(w)
                                    && !in_use.contains(&w)
                                    && Some(w) != old_backend.map(usize::from)
                            })
                        });
                        let Some(worker) = worker else {
                            unrepaired_shards += 1;
                            continue;
                        };
                        replacements.insert((old_backend, position), worker);
                        worker
                    }
                };
                let key = pool.call(worker, move |c| c.append(&shard))?;
                let backend = match manifest_index_of_worker[worker] {
                    Some(b) => b,
                    None => {
                        manifest.backends.push(backend_ref(&specs[worker]));
                        let b = (manifest.backends.len() - 1) as u16;
                        manifest_index_of_worker[worker] = Some(b);
                        b
                    }
                };
                if Some(worker) != own_backend {
                    moved.push((
                        old_backend
                            .map(|b| read_manifest.backends[usize::from(b)].label())
                            .unwrap_or_else(|| "(not stored)".into()),
                        specs[worker].label(),
                    ));
                }
                manifest.chunks[index as usize].shards[position].location =
                    Some(ShardLocation { backend, key });
                repaired_shards += 1;
            }
            progress.advance(done);
        }
        moved.sort();
        moved.dedup();
        if repaired_shards == 0 {
            return Ok(RepairReport {
                name: manifest.name,
                chunks: chunk_count,
                repaired_shards,
                unrepaired_shards,
                moved,
                location: location.clone(),
                changed: false,
            });
        }
        // the new manifest goes to every backend the file now uses that still answers
        let mut used: Vec<usize> = manifest
            .chunks
            .iter()
            .flat_map(|c| c.shards.iter().filter_map(|s| s.location))
            .map(|l| usize::from(l.backend))
            .collect();
        if manifest.chunks.is_empty() {
            used = (0..manifest.backends.len()).collect();
        }
        used.sort_unstable();
        used.dedup();
        let workers: Vec<(usize, BackendSpec)> = used
            .into_iter()
            .filter_map(|b| {
                let worker = manifest_index_of_worker
                    .iter()
                    .position(|m| *m == Some(b as u16))?;
                (usable[worker] && pool.is_usable(worker)).then(|| (worker, specs[worker].clone()))
            })
            .collect();
        let (new_location, _) = store_manifest(&pool, &workers, &manifest, &master)?;
        Ok(RepairReport {
            name: manifest.name,
            chunks: chunk_count,
            repaired_shards,
            unrepaired_shards,
            moved,
            location: new_location,
            changed: true,
        })
    }

    /// Specs for a manifest's backends, indexed alike, with passwords from the config (a
    /// backend missing from the config is tried without one).
    fn manifest_backends(&self, manifest: &Manifest) -> Vec<BackendSpec> {
        manifest
            .backends
            .iter()
            .map(|b| {
                self.config
                    .find(&b.address, &b.namespace)
                    .cloned()
                    .unwrap_or_else(|| BackendSpec {
                        address: b.address.clone(),
                        namespace: b.namespace.clone(),
                        password: None,
                    })
            })
            .collect()
    }
}

fn backend_ref(spec: &BackendSpec) -> BackendRef {
    BackendRef {
        address: spec.address.clone(),
        namespace: spec.namespace.clone(),
    }
}

/// Seals the manifest and appends it to each of `workers`; returns the location of the copies
/// that were stored and the errors of those that were not (at least one copy must succeed).
fn store_manifest(
    pool: &BackendPool,
    workers: &[(usize, BackendSpec)],
    manifest: &Manifest,
    master: &MasterKey,
) -> Result<(Location, Vec<ZstorError>), ZstorError> {
    let sealed = Arc::new(manifest.seal(master)?);
    if sealed.len() > MAX_SHARD_LEN {
        return Err(ZstorError::ManifestTooLarge {
            len: sealed.len(),
            max: MAX_SHARD_LEN,
        });
    }
    let (replies_tx, replies) = channel();
    for (slot, (worker, _)) in workers.iter().enumerate() {
        let sealed = sealed.clone();
        let replies_tx = replies_tx.clone();
        pool.submit(
            *worker,
            Box::new(move |conn| {
                let _ = replies_tx.send((slot, conn.and_then(|c| c.append(&sealed))));
            }),
        );
    }
    drop(replies_tx);
    let mut stored: Vec<(usize, u64)> = Vec::new();
    let mut failures = Vec::new();
    for (slot, result) in replies.iter() {
        match result {
            Ok(key) => stored.push((slot, key)),
            Err(e) => failures.push(e),
        }
    }
    stored.sort_unstable();
    let copies: Vec<ManifestCopy> = stored
        .into_iter()
        .map(|(slot, key)| ManifestCopy {
            backend_fingerprint: workers[slot].1.fingerprint(),
            key: Compact(key),
        })
        .collect();
    if copies.is_empty() {
        let reasons: Vec<String> = failures.iter().map(ToString::to_string).collect();
        return Err(ZstorError::ManifestUnavailable(format!(
            "no copy of the manifest could be stored: {}",
            reasons.join("; ")
        )));
    }
    Ok((
        Location {
            sealed_hash: sealed_hash(&sealed),
            copies,
        },
        failures,
    ))
}

/// Fills `buffer` from `reader`; returns fewer bytes only at the end of the input.
fn read_full(reader: &mut dyn Read, buffer: &mut [u8]) -> Result<usize, ZstorError> {
    let mut filled = 0;
    while filled < buffer.len() {
        match reader.read(&mut buffer[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(ZstorError::io("reading the input", e)),
        }
    }
    Ok(filled)
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn hex_bytes(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
