//! In-memory key index of a namespace.
//!
//! User mode keeps a hash map from key to [`Meta`] (20 bytes of metadata plus
//! the key and the map's overhead per key). Keys of up to [`INLINE_KEY_LEN`]
//! bytes are stored inside the map's slot, so a lookup touches one slot
//! instead of a slot and a separate heap allocation (the second memory miss
//! in a table of millions of keys), and growing the table rehashes without
//! chasing pointers. Seq mode keys are dense integers, so a vector indexed by
//! id is enough and costs 24 bytes per id.
//!
//! The user map is hashbrown's with foldhash, seeded randomly per process
//! (keys come from clients, so the seed is what keeps collisions unguessable);
//! it hashes a 16-byte key several times faster than std's SipHash, and its
//! `entry_ref` looks a key up once and allocates it only when it is new.

use std::borrow::Borrow;
use std::hash::{Hash, Hasher};

use hashbrown::hash_map::EntryRef;
use hashbrown::HashMap;

use crate::config::Mode;
use crate::storage::record::{Loc, RECORD_HEADER_LEN};

/// Where the live version of a key is and what the server answers without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    pub loc: Loc,
    pub value_len: u32,
    pub timestamp: u32,
    pub value_crc: u32,
}

impl Meta {
    /// Size of the data record this meta points at.
    pub fn record_len(&self, key_len: usize) -> u64 {
        (RECORD_HEADER_LEN + key_len) as u64 + self.value_len as u64
    }
}

/// Seq ids are 8-byte little-endian integers.
pub const SEQ_KEY_LEN: usize = 8;
/// A seq record whose id is further than this past the known ids is treated
/// as damage rather than as a reason to allocate a huge vector.
const MAX_SEQ_GAP: u64 = 1 << 24;

/// A seq key that is not 8 bytes, or an id absurdly far past the known ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("key does not fit the namespace's seq ids")]
pub struct BadSeqId;

/// Longest key kept inside the map slot (the slot's key part stays 24 bytes,
/// the size of the boxed form).
pub const INLINE_KEY_LEN: usize = 22;

/// A user key as the map stores it.
#[derive(Debug, Clone)]
pub enum StoredKey {
    Inline {
        len: u8,
        bytes: [u8; INLINE_KEY_LEN],
    },
    Heap(Box<[u8]>),
}

impl StoredKey {
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            StoredKey::Inline { len, bytes } => &bytes[..*len as usize],
            StoredKey::Heap(b) => b,
        }
    }
}

impl From<&[u8]> for StoredKey {
    fn from(key: &[u8]) -> Self {
        if key.len() <= INLINE_KEY_LEN {
            let mut bytes = [0u8; INLINE_KEY_LEN];
            bytes[..key.len()].copy_from_slice(key);
            StoredKey::Inline {
                len: key.len() as u8,
                bytes,
            }
        } else {
            StoredKey::Heap(key.into())
        }
    }
}

impl Borrow<[u8]> for StoredKey {
    fn borrow(&self) -> &[u8] {
        self.as_bytes()
    }
}

// hashed and compared as the bytes they hold, as `Borrow` requires
impl Hash for StoredKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_bytes().hash(state);
    }
}

impl PartialEq for StoredKey {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for StoredKey {}

pub enum KeyIndex {
    User(HashMap<StoredKey, Meta>),
    Seq {
        slots: Vec<Option<Meta>>,
        live: usize,
    },
}

pub fn seq_id(key: &[u8]) -> Option<u64> {
    let bytes: [u8; SEQ_KEY_LEN] = key.try_into().ok()?;
    Some(u64::from_le_bytes(bytes))
}

impl KeyIndex {
    pub fn new(mode: Mode) -> Self {
        match mode {
            Mode::User => KeyIndex::User(HashMap::new()),
            Mode::Seq => KeyIndex::Seq {
                slots: Vec::new(),
                live: 0,
            },
        }
    }

    pub fn get(&self, key: &[u8]) -> Option<Meta> {
        match self {
            KeyIndex::User(map) => map.get(key).copied(),
            KeyIndex::Seq { slots, .. } => {
                let id = usize::try_from(seq_id(key)?).ok()?;
                slots.get(id).copied().flatten()
            }
        }
    }

    /// Sets the live version of `key`; returns the version it replaces.
    /// In seq mode an id far beyond the known ones is refused (`Err`).
    pub fn insert(&mut self, key: &[u8], meta: Meta) -> Result<Option<Meta>, BadSeqId> {
        match self {
            KeyIndex::User(map) => Ok(match map.entry_ref(key) {
                EntryRef::Occupied(mut e) => Some(e.insert(meta)),
                EntryRef::Vacant(e) => {
                    e.insert(meta);
                    None
                }
            }),
            KeyIndex::Seq { slots, live } => {
                let id = Self::seq_slot(slots, key)?;
                let old = slots[id].replace(meta);
                if old.is_none() {
                    *live += 1;
                }
                Ok(old)
            }
        }
    }

    /// Removes `key`; in seq mode the id stays reserved so it is never handed out again.
    pub fn remove(&mut self, key: &[u8]) -> Result<Option<Meta>, BadSeqId> {
        match self {
            KeyIndex::User(map) => Ok(map.remove(key)),
            KeyIndex::Seq { slots, live } => {
                let id = Self::seq_slot(slots, key)?;
                let old = slots[id].take();
                if old.is_some() {
                    *live -= 1;
                }
                Ok(old)
            }
        }
    }

    fn seq_slot(slots: &mut Vec<Option<Meta>>, key: &[u8]) -> Result<usize, BadSeqId> {
        let id = seq_id(key).ok_or(BadSeqId)?;
        if id >= slots.len() as u64 + MAX_SEQ_GAP {
            return Err(BadSeqId);
        }
        let id = usize::try_from(id).map_err(|_| BadSeqId)?;
        if id >= slots.len() {
            slots.resize(id + 1, None);
        }
        Ok(id)
    }

    /// Makes room for `additional` more keys without rehashing as they come.
    pub fn reserve(&mut self, additional: usize) {
        match self {
            KeyIndex::User(map) => map.reserve(additional),
            // ids are dense and the vector grows by doubling anyway
            KeyIndex::Seq { .. } => {}
        }
    }

    pub fn count(&self) -> usize {
        match self {
            KeyIndex::User(map) => map.len(),
            KeyIndex::Seq { live, .. } => *live,
        }
    }

    /// The id the next `SET ""` of a seq namespace gets.
    pub fn next_seq_id(&self) -> u64 {
        match self {
            KeyIndex::User(_) => 0,
            KeyIndex::Seq { slots, .. } => slots.len() as u64,
        }
    }

    /// Calls `f` with every live key and its meta, in no particular order.
    pub fn for_each(&self, mut f: impl FnMut(&[u8], &Meta)) {
        match self {
            KeyIndex::User(map) => map.iter().for_each(|(k, m)| f(k.as_bytes(), m)),
            KeyIndex::Seq { slots, .. } => {
                for (id, slot) in slots.iter().enumerate() {
                    if let Some(m) = slot {
                        f(&(id as u64).to_le_bytes(), m);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(offset: u32) -> Meta {
        Meta {
            loc: Loc { file: 1, offset },
            value_len: 1,
            timestamp: 0,
            value_crc: 0,
        }
    }

    #[test]
    fn seq_ids_stay_reserved_after_delete() {
        let mut k = KeyIndex::new(Mode::Seq);
        let id0 = 0u64.to_le_bytes();
        let id1 = 1u64.to_le_bytes();
        assert_eq!(k.insert(&id0, meta(16)), Ok(None));
        assert_eq!(k.insert(&id1, meta(50)), Ok(None));
        assert_eq!(k.remove(&id1), Ok(Some(meta(50))));
        assert_eq!(k.count(), 1);
        assert_eq!(k.next_seq_id(), 2);
        assert_eq!(k.get(&id1), None);
        assert_eq!(k.get(b"short"), None);
        assert!(k.insert(&u64::MAX.to_le_bytes(), meta(1)).is_err());
    }

    #[test]
    fn short_keys_stay_inline_in_a_slot_the_size_of_a_boxed_key() {
        assert_eq!(std::mem::size_of::<StoredKey>(), 24);
        let short = [7u8; INLINE_KEY_LEN];
        let long = [7u8; INLINE_KEY_LEN + 1];
        assert!(matches!(
            StoredKey::from(&short[..]),
            StoredKey::Inline { .. }
        ));
        assert!(matches!(StoredKey::from(&long[..]), StoredKey::Heap(_)));
        let mut k = KeyIndex::new(Mode::User);
        for key in [&short[..], &long[..], b"", &[0u8; 3][..]] {
            assert_eq!(k.insert(key, meta(16)), Ok(None));
            assert_eq!(k.get(key), Some(meta(16)));
        }
        assert_eq!(k.get(&short[..INLINE_KEY_LEN - 1]), None);
        assert_eq!(k.get(&[0u8; 2]), None);
        assert_eq!(k.count(), 4);
    }

    #[test]
    fn user_map_replaces() {
        let mut k = KeyIndex::new(Mode::User);
        assert_eq!(k.insert(b"a", meta(16)), Ok(None));
        assert_eq!(k.insert(b"a", meta(40)), Ok(Some(meta(16))));
        assert_eq!(k.count(), 1);
        let mut seen = Vec::new();
        k.for_each(|key, m| seen.push((key.to_vec(), m.loc.offset)));
        assert_eq!(seen, vec![(b"a".to_vec(), 40)]);
    }
}
