//! The key-value state the runtime reads and writes, and proofs of it.
//!
//! State is a flat map of byte keys to byte values. Pallets name their keys
//! `"<pallet>/<item>"` or `"<pallet>/<item>/" ++ SCALE(key)` (see [`storage_key`]), so keys of
//! one pallet share a prefix and are readable in a debugger.
//!
//! The runtime never writes to the database directly: it writes into an [`Overlay`] on top of a
//! read-only [`StateRead`] backend. The overlay has nested transactions, so a failed call's writes
//! (and events) are rolled back while its fee payment stays. The node then commits the overlay's
//! changes to RocksDB and the Jellyfish Merkle tree in one batch.

use crate::hash::{Blake2b256, Hash};
use jmt::{proof::SparseMerkleProof, KeyHash, RootHash};
use parity_scale_codec::{Decode, Encode};
use std::collections::BTreeMap;

/// Read access to committed state.
pub trait StateRead {
    fn get(&self, key: &[u8]) -> Option<Vec<u8>>;
}

impl StateRead for BTreeMap<Vec<u8>, Vec<u8>> {
    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        BTreeMap::get(self, key).cloned()
    }
}

/// The changes a block makes: `None` deletes the key.
pub type StateChanges = BTreeMap<Vec<u8>, Option<Vec<u8>>>;

/// The key of a plain storage item.
pub fn storage_key(pallet: &str, item: &str) -> Vec<u8> {
    format!("{pallet}/{item}").into_bytes()
}

/// The key of one entry of a storage map.
pub fn storage_map_key<K: Encode>(pallet: &str, item: &str, key: &K) -> Vec<u8> {
    let mut out = format!("{pallet}/{item}/").into_bytes();
    key.encode_to(&mut out);
    out
}

/// Writes over a read-only backend, with nested transactions.
pub struct Overlay<'a> {
    backend: &'a dyn StateRead,
    /// `layers[0]` is the block-level change set; each open transaction pushes one more.
    layers: Vec<StateChanges>,
}

impl<'a> Overlay<'a> {
    pub fn new(backend: &'a dyn StateRead) -> Self {
        Overlay {
            backend,
            layers: vec![StateChanges::new()],
        }
    }

    pub fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        for layer in self.layers.iter().rev() {
            if let Some(v) = layer.get(key) {
                return v.clone();
            }
        }
        self.backend.get(key)
    }

    pub fn get_decoded<T: Decode>(&self, key: &[u8]) -> Option<T> {
        // State is written only by the runtime, so undecodable bytes mean a bug or corruption;
        // treating them as absent would silently mint or burn, so fail loudly instead.
        self.get(key).map(|bytes| {
            T::decode(&mut &bytes[..]).unwrap_or_else(|e| {
                panic!("corrupt state at key {}: {e}", String::from_utf8_lossy(key))
            })
        })
    }

    pub fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.top().insert(key, Some(value));
    }

    pub fn put_encoded<T: Encode>(&mut self, key: Vec<u8>, value: &T) {
        self.put(key, value.encode());
    }

    pub fn delete(&mut self, key: Vec<u8>) {
        self.top().insert(key, None);
    }

    fn top(&mut self) -> &mut StateChanges {
        self.layers
            .last_mut()
            .expect("the block layer is never popped")
    }

    /// Opens a nested transaction.
    pub fn start_transaction(&mut self) {
        self.layers.push(StateChanges::new());
    }

    /// Folds the innermost transaction into its parent.
    pub fn commit_transaction(&mut self) {
        assert!(self.layers.len() > 1, "no open transaction to commit");
        let top = self.layers.pop().expect("checked above");
        self.top().extend(top);
    }

    /// Drops the innermost transaction's writes.
    pub fn rollback_transaction(&mut self) {
        assert!(self.layers.len() > 1, "no open transaction to roll back");
        self.layers.pop();
    }

    pub fn transaction_depth(&self) -> usize {
        self.layers.len() - 1
    }

    /// The block's changes. All transactions must be closed.
    pub fn into_changes(mut self) -> StateChanges {
        assert_eq!(
            self.layers.len(),
            1,
            "open transactions at the end of a block"
        );
        self.layers.pop().expect("block layer")
    }
}

/// The key hash the state tree files `key` under.
pub fn state_key_hash(key: &[u8]) -> KeyHash {
    KeyHash::with::<Blake2b256>(key)
}

/// A read proof for one key, SCALE-encoded for transport (`state_getReadProof`).
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct ReadProof {
    pub key: Vec<u8>,
    pub value: Option<Vec<u8>>,
    /// borsh encoding of a `jmt::proof::SparseMerkleProof<Blake2b256>`.
    pub proof: Vec<u8>,
}

/// Why a read proof did not verify.
#[derive(Debug, thiserror::Error)]
pub enum ProofError {
    #[error("proof is malformed: {0}")]
    Malformed(String),
    #[error("proof does not match the state root: {0}")]
    Mismatch(String),
}

impl ReadProof {
    /// Checks that under `state_root`, `self.key` maps to `self.value` (or is absent).
    /// This is all a light client needs, given a header it trusts.
    pub fn verify(&self, state_root: Hash) -> Result<(), ProofError> {
        let proof: SparseMerkleProof<Blake2b256> =
            borsh::from_slice(&self.proof).map_err(|e| ProofError::Malformed(e.to_string()))?;
        proof
            .verify(
                RootHash(state_root.0),
                state_key_hash(&self.key),
                self.value.as_ref(),
            )
            .map_err(|e| ProofError::Mismatch(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_transactions_roll_back_only_their_writes() {
        let mut backend = BTreeMap::new();
        backend.insert(b"a".to_vec(), b"1".to_vec());
        let mut o = Overlay::new(&backend);
        o.put(b"b".to_vec(), b"2".to_vec());
        o.start_transaction();
        o.put(b"a".to_vec(), b"9".to_vec());
        o.delete(b"b".to_vec());
        assert_eq!(o.get(b"a"), Some(b"9".to_vec()));
        assert_eq!(o.get(b"b"), None);
        o.rollback_transaction();
        assert_eq!(o.get(b"a"), Some(b"1".to_vec()));
        assert_eq!(o.get(b"b"), Some(b"2".to_vec()));
        o.start_transaction();
        o.put(b"c".to_vec(), b"3".to_vec());
        o.commit_transaction();
        let changes = o.into_changes();
        assert_eq!(changes.len(), 2);
        assert_eq!(changes.get(&b"c".to_vec()), Some(&Some(b"3".to_vec())));
    }
}
