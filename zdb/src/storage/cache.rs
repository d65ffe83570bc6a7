//! A bounded cache of recently written or read values, shared by all
//! namespaces of a server, so hot reads skip the `pread` and the CRC check.
//!
//! Entries are keyed by namespace and record location, and a location is
//! never reused for other bytes (data files are append-only; compaction
//! writes new files with new ids; `FLUSH` clears the namespace's entries),
//! so an entry can never be stale: at worst it is unreachable until evicted.
//! Eviction is FIFO by insertion under a byte budget.

use std::collections::VecDeque;

use hashbrown::HashMap;

use bytes::Bytes;
use parking_lot::Mutex;

use crate::storage::record::Loc;

type CacheKey = (u32, Loc);

/// Per-entry bookkeeping charged against the budget on top of the value.
const ENTRY_OVERHEAD: usize = 64;

pub struct ValueCache {
    budget: usize,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    map: HashMap<CacheKey, Bytes>,
    order: VecDeque<CacheKey>,
    used: usize,
}

impl ValueCache {
    /// A cache holding at most `budget` bytes; 0 disables it.
    pub fn new(budget: usize) -> Self {
        ValueCache {
            budget,
            inner: Mutex::new(Inner::default()),
        }
    }

    pub fn get(&self, ns: u32, loc: Loc) -> Option<Bytes> {
        if self.budget == 0 {
            return None;
        }
        self.inner.lock().map.get(&(ns, loc)).cloned()
    }

    /// Caches `value`; values over 1/16 of the budget are not worth evicting others for.
    pub fn insert(&self, ns: u32, loc: Loc, value: &[u8]) {
        let cost = value.len() + ENTRY_OVERHEAD;
        if cost > self.budget / 16 {
            return;
        }
        let mut inner = self.inner.lock();
        if inner
            .map
            .insert((ns, loc), Bytes::copy_from_slice(value))
            .is_some()
        {
            return;
        }
        inner.order.push_back((ns, loc));
        inner.used += cost;
        while inner.used > self.budget {
            let Some(old) = inner.order.pop_front() else {
                break;
            };
            if let Some(v) = inner.map.remove(&old) {
                inner.used -= v.len() + ENTRY_OVERHEAD;
            }
        }
    }

    /// Drops every entry of namespace `ns` (after `FLUSH` or deletion).
    pub fn forget_namespace(&self, ns: u32) {
        let mut inner = self.inner.lock();
        let Inner { map, order, used } = &mut *inner;
        map.retain(|(n, _), v| {
            if *n == ns {
                *used -= v.len() + ENTRY_OVERHEAD;
                false
            } else {
                true
            }
        });
        order.retain(|(n, _)| *n != ns);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loc(offset: u32) -> Loc {
        Loc { file: 1, offset }
    }

    #[test]
    fn evicts_oldest_within_budget() {
        let c = ValueCache::new(16 * (ENTRY_OVERHEAD + 10));
        for i in 0..20 {
            c.insert(0, loc(i), &[i as u8; 10]);
        }
        assert_eq!(c.get(0, loc(0)), None);
        assert_eq!(c.get(0, loc(19)).as_deref(), Some(&[19u8; 10][..]));
        c.forget_namespace(0);
        assert_eq!(c.get(0, loc(19)), None);
    }

    #[test]
    fn disabled_cache_holds_nothing() {
        let c = ValueCache::new(0);
        c.insert(0, loc(1), b"x");
        assert_eq!(c.get(0, loc(1)), None);
    }
}
