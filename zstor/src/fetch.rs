//! Reading the shards of chunks from the backends, several chunks in flight.
//!
//! For `get`, a chunk needs only `k` valid shards: the fetcher asks for `k` of them (data
//! shards and backends still answering first) and asks for another one each time a shard turns
//! out missing, corrupt (checksum mismatch) or unreachable. For `check` and `repair` it asks
//! for all of them. Checksums are verified on the worker threads.

use crate::backend::{failure_reason, BackendPool};
use crate::codec::Checksum;
use crate::manifest::Manifest;
use std::collections::HashMap;
use std::sync::mpsc::{channel, Receiver, Sender};

/// What became of one shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShardStatus {
    Valid,
    /// The backend answered but has no value under the key (wiped or deleted).
    Missing,
    /// The value does not match its checksum.
    Corrupt,
    /// The backend could not be reached or failed.
    Unreachable(String),
    /// The manifest has no location for it (written degraded).
    NotStored,
}

struct ShardReply {
    chunk: u64,
    position: usize,
    result: Result<Vec<u8>, ShardStatus>,
}

/// The shards of one chunk, as far as they were fetched.
pub struct FetchedChunk {
    /// `Some` only for valid shards.
    pub shards: Vec<Option<Vec<u8>>>,
    /// `None` for shards never asked for (enough others were valid).
    pub statuses: Vec<Option<ShardStatus>>,
    requested: Vec<bool>,
    outstanding: usize,
}

impl FetchedChunk {
    pub fn valid(&self) -> usize {
        self.shards.iter().filter(|s| s.is_some()).count()
    }
}

pub struct ShardFetcher<'a> {
    pool: &'a BackendPool,
    manifest: &'a Manifest,
    want_all: bool,
    replies_tx: Sender<ShardReply>,
    replies: Receiver<ShardReply>,
    active: HashMap<u64, FetchedChunk>,
}

impl<'a> ShardFetcher<'a> {
    /// `pool` workers must be indexed like `manifest.backends`.
    pub fn new(pool: &'a BackendPool, manifest: &'a Manifest, want_all: bool) -> Self {
        let (replies_tx, replies) = channel();
        ShardFetcher {
            pool,
            manifest,
            want_all,
            replies_tx,
            replies,
            active: HashMap::new(),
        }
    }

    /// Starts fetching a chunk's shards.
    pub fn request(&mut self, chunk: u64) {
        let Some(entry) = usize::try_from(chunk)
            .ok()
            .and_then(|c| self.manifest.chunks.get(c))
        else {
            return;
        };
        let n = entry.shards.len();
        let mut fetched = FetchedChunk {
            shards: vec![None; n],
            statuses: vec![None; n],
            requested: vec![false; n],
            outstanding: 0,
        };
        for (position, shard) in entry.shards.iter().enumerate() {
            if shard.location.is_none() {
                fetched.statuses[position] = Some(ShardStatus::NotStored);
                fetched.requested[position] = true;
            }
        }
        let wanted = if self.want_all {
            n
        } else {
            usize::from(self.manifest.data_shards)
        };
        for _ in 0..wanted {
            if !self.request_next(chunk, &mut fetched) {
                break;
            }
        }
        self.active.insert(chunk, fetched);
    }

    /// Asks for the best shard not asked for yet; false when none is left.
    fn request_next(&self, chunk: u64, fetched: &mut FetchedChunk) -> bool {
        let Some(entry) = usize::try_from(chunk)
            .ok()
            .and_then(|c| self.manifest.chunks.get(c))
        else {
            return false;
        };
        let candidates = entry
            .shards
            .iter()
            .enumerate()
            .filter(|(position, _)| !fetched.requested[*position])
            .filter_map(|(position, shard)| shard.location.map(|l| (position, l)));
        // backends that still answer first, then data shards before parity
        let best = candidates.min_by_key(|(position, location)| {
            (
                !self.pool.is_usable(usize::from(location.backend)),
                *position,
            )
        });
        let Some((position, location)) = best else {
            return false;
        };
        fetched.requested[position] = true;
        fetched.outstanding += 1;
        let checksum: Checksum = entry.shards[position].checksum;
        let replies = self.replies_tx.clone();
        self.pool.submit(
            usize::from(location.backend),
            Box::new(move |conn| {
                let result = match conn.and_then(|c| c.get(location.key)) {
                    Ok(Some(value)) if *blake3::hash(&value).as_bytes() == checksum => Ok(value),
                    Ok(Some(_)) => Err(ShardStatus::Corrupt),
                    Ok(None) => Err(ShardStatus::Missing),
                    Err(e) => Err(ShardStatus::Unreachable(failure_reason(&e))),
                };
                let _ = replies.send(ShardReply {
                    chunk,
                    position,
                    result,
                });
            }),
        );
        true
    }

    /// Waits until the chunk has all the shards it can get (`k` valid ones, or every one with
    /// `want_all`) and hands them over. Requests it first if needed.
    pub fn finish(&mut self, chunk: u64) -> FetchedChunk {
        if !self.active.contains_key(&chunk) {
            self.request(chunk);
        }
        while self.active.get(&chunk).is_some_and(|f| f.outstanding > 0) {
            let Ok(reply) = self.replies.recv() else {
                break;
            };
            self.apply(reply);
        }
        self.active.remove(&chunk).unwrap_or(FetchedChunk {
            shards: Vec::new(),
            statuses: Vec::new(),
            requested: Vec::new(),
            outstanding: 0,
        })
    }

    fn apply(&mut self, reply: ShardReply) {
        let Some(mut fetched) = self.active.remove(&reply.chunk) else {
            return;
        };
        fetched.outstanding -= 1;
        match reply.result {
            Ok(shard) => {
                fetched.shards[reply.position] = Some(shard);
                fetched.statuses[reply.position] = Some(ShardStatus::Valid);
            }
            Err(status) => {
                fetched.statuses[reply.position] = Some(status);
                let needed = usize::from(self.manifest.data_shards);
                if !self.want_all && fetched.valid() + fetched.outstanding < needed {
                    self.request_next(reply.chunk, &mut fetched);
                }
            }
        }
        self.active.insert(reply.chunk, fetched);
    }
}
