//! Binary Merkle root over a list of hashes (the extrinsics root).
//!
//! Built with `rs_merkle` using blake2b-256 at every node. `rs_merkle` promotes an odd last node
//! unhashed instead of duplicating it, but the root of a tree still does not say how many leaves it
//! had, so the committed root is `blake2b-256(count_le_u64 ++ tree_root)`: lists of different
//! lengths can never share a root (the CVE-2012-2459 class of bug). The empty list's root is
//! `blake2b-256(0u64_le)`.

use crate::hash::{blake2_256, Hash};
use rs_merkle::{Hasher, MerkleTree};

#[derive(Clone)]
struct Blake2Hasher;

impl Hasher for Blake2Hasher {
    type Hash = [u8; 32];
    fn hash(data: &[u8]) -> [u8; 32] {
        blake2_256(data)
    }
}

/// The root committing to `leaves` and their count.
pub fn root(leaves: &[Hash]) -> Hash {
    let raw: Vec<[u8; 32]> = leaves.iter().map(|h| h.0).collect();
    let tree_root = MerkleTree::<Blake2Hasher>::from_leaves(&raw)
        .root()
        .unwrap_or([0; 32]);
    let mut input = Vec::with_capacity(40);
    input.extend_from_slice(&(leaves.len() as u64).to_le_bytes());
    input.extend_from_slice(&tree_root);
    Hash(blake2_256(&input))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_commits_to_count_and_order() {
        let a = Hash::of(b"a");
        let b = Hash::of(b"b");
        let c = Hash::of(b"c");
        assert_ne!(root(&[a, b, c]), root(&[a, b, c, c]));
        assert_ne!(root(&[a, b]), root(&[b, a]));
        assert_ne!(root(&[]), root(&[a]));
        assert_eq!(root(&[a, b, c]), root(&[a, b, c]));
    }
}
