//! The ed25519 verification rule of the chain, and batch verification that agrees with it.
//!
//! Every node must reach the same verdict on every signature, honest or crafted, or a block
//! valid for one node is invalid for another. Plain ed25519 leaves edge cases open
//! (non-canonical point encodings, small-order keys and `R`, torsion components) and
//! implementations differ on them; worse, batch verification with random coefficients can
//! accept a signature that single verification rejects, by chance, differently on each node.
//!
//! gridchain uses the [ZIP-215] rule (`ed25519-zebra`): canonical `s`, any point encodings
//! that decode, and the *cofactored* equation `[8]([s]B - R - [k]A) = 0`. Under that rule a
//! batch passes exactly when each of its signatures passes alone, so a node checks many
//! signatures as one multi-scalar multiplication (several times cheaper per signature; see
//! the runtime's `block_execution` bench) and still agrees with every other node. When a batch
//! fails, its signatures are checked one by one to name the bad ones. Batches are capped at
//! [`MAX_BATCH`] so a bad signature costs at most that many single checks.
//!
//! Signing is unchanged: ed25519 signatures from any standard signer verify under ZIP-215.
//!
//! [ZIP-215]: https://zips.z.cash/zip-0215

use crate::account::{AccountId, Signature};
use ed25519_zebra::{batch, VerificationKey, VerificationKeyBytes};

/// Signatures per multi-scalar multiplication.
pub const MAX_BATCH: usize = 256;

/// Whether `signature` by `signer` covers `message` (ZIP-215).
pub fn verify(signer: &AccountId, message: &[u8], signature: &Signature) -> bool {
    VerificationKey::try_from(signer.0).is_ok_and(|key| {
        key.verify(&ed25519_zebra::Signature::from_bytes(&signature.0), message)
            .is_ok()
    })
}

/// Signature checks queued to run together.
#[derive(Default)]
pub struct SignatureBatch {
    items: Vec<batch::Item>,
}

impl SignatureBatch {
    pub fn with_capacity(capacity: usize) -> Self {
        SignatureBatch {
            items: Vec::with_capacity(capacity),
        }
    }

    /// Queues a check that `signature` by `signer` covers `message` (hashed now, not kept).
    pub fn push(&mut self, signer: &AccountId, message: &[u8], signature: &Signature) {
        let key = VerificationKeyBytes::from(signer.0);
        let signature = ed25519_zebra::Signature::from_bytes(&signature.0);
        self.items
            .push(batch::Item::from((key, signature, message)));
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The verdict on each queued signature, in order: the same as [`verify`] on each. Batches
    /// run on all cores (one thread per core at most).
    pub fn verdicts(self) -> Vec<bool> {
        let judge = |part: &[batch::Item]| -> Vec<bool> {
            if batch_passes(part) {
                vec![true; part.len()]
            } else {
                part.iter()
                    .map(|item| item.clone().verify_single().is_ok())
                    .collect()
            }
        };
        // Whole batches per thread, one thread per core at most: a flood of large gossip
        // batches must not turn into a flood of threads.
        let per_thread = self
            .items
            .len()
            .div_ceil(cores())
            .next_multiple_of(MAX_BATCH);
        on_cores(&self.items, per_thread, |_, part| {
            part.chunks(MAX_BATCH).flat_map(judge).collect::<Vec<_>>()
        })
        .into_iter()
        .flatten()
        .collect()
    }

    /// The position of the first queued signature that fails [`verify`], if any.
    pub fn first_invalid(self) -> Option<usize> {
        for (n, part) in self.items.chunks(MAX_BATCH).enumerate() {
            if !batch_passes(part) {
                let bad = part
                    .iter()
                    .position(|item| item.clone().verify_single().is_err())
                    // Only with probability 2^-128 does a batch of good signatures fail:
                    // refuse it rather than accept anything unchecked.
                    .unwrap_or(0);
                return Some(n * MAX_BATCH + bad);
            }
        }
        None
    }
}

fn batch_passes(items: &[batch::Item]) -> bool {
    let mut verifier = batch::Verifier::new();
    for item in items {
        verifier.queue(item.clone());
    }
    verifier.verify(rand_batch::rng()).is_ok()
}

/// Checks the signatures of all `items` on all cores: `queue(item, batch)` pushes the
/// signatures `item` carries. Returns the index of the first item with a bad one.
pub fn first_invalid<T: Sync>(
    items: &[T],
    queue: impl Fn(&T, &mut SignatureBatch) + Sync,
) -> Option<usize> {
    let chunk = items.len().div_ceil(cores()).max(MAX_BATCH / 4);
    on_cores(items, chunk, |offset, part| {
        let mut batch = SignatureBatch::with_capacity(part.len());
        // owner[i]: the item (within `part`) that pushed the i-th signature.
        let mut owner = Vec::with_capacity(part.len());
        for (index, item) in part.iter().enumerate() {
            queue(item, &mut batch);
            owner.resize(batch.len(), index);
        }
        batch.first_invalid().map(|bad| offset + owner[bad])
    })
    .into_iter()
    .flatten()
    .min()
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// `work(offset, part)` on each `chunk`-long part of `items`, one thread per part (on this
/// thread if there is only one); the results in order.
fn on_cores<T: Sync, R: Send>(
    items: &[T],
    chunk: usize,
    work: impl Fn(usize, &[T]) -> R + Sync,
) -> Vec<R> {
    if items.len() <= chunk {
        return vec![work(0, items)];
    }
    std::thread::scope(|scope| {
        let handles: Vec<_> = items
            .chunks(chunk)
            .enumerate()
            .map(|(n, part)| {
                let work = &work;
                scope.spawn(move || work(n * chunk, part))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("signature thread panicked"))
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Pair;

    fn signed(n: usize) -> Vec<(AccountId, Vec<u8>, Signature)> {
        (0..n)
            .map(|i| {
                let pair = Pair::dev(&format!("signer{}", i % 7));
                let message = format!("message {i}").into_bytes();
                let signature = pair.sign(&message);
                (pair.public(), message, signature)
            })
            .collect()
    }

    fn queue(item: &(AccountId, Vec<u8>, Signature), batch: &mut SignatureBatch) {
        batch.push(&item.0, &item.1, &item.2);
    }

    #[test]
    fn good_signatures_pass_alone_and_in_batches() {
        let items = signed(MAX_BATCH * 2 + 3);
        assert!(items.iter().all(|(who, m, s)| verify(who, m, s)));
        assert_eq!(first_invalid(&items, queue), None);
        let mut batch = SignatureBatch::default();
        items.iter().for_each(|item| queue(item, &mut batch));
        assert!(batch.verdicts().into_iter().all(|ok| ok));
    }

    #[test]
    fn the_first_bad_signature_is_named_in_any_batch() {
        for bad in [0, 1, MAX_BATCH - 1, MAX_BATCH, 2 * MAX_BATCH + 2] {
            let mut items = signed(MAX_BATCH * 2 + 3);
            items[bad].1.push(0); // the message no longer matches
            let later = (bad + 40).min(items.len() - 1);
            items[later].2 .0[0] ^= 1;
            assert!(!verify(&items[bad].0, &items[bad].1, &items[bad].2));
            assert_eq!(first_invalid(&items, queue), Some(bad.min(later)));
            let mut batch = SignatureBatch::default();
            items.iter().for_each(|item| queue(item, &mut batch));
            let verdicts = batch.verdicts();
            let rejected: Vec<usize> = (0..items.len()).filter(|i| !verdicts[*i]).collect();
            if later == bad {
                assert_eq!(rejected, vec![bad]);
            } else {
                assert_eq!(rejected, vec![bad, later]);
            }
        }
    }

    #[test]
    fn a_non_canonical_s_is_refused() {
        let (who, message, mut signature) = signed(1).remove(0);
        // s + l is the same scalar, encoded non-canonically; ZIP-215 requires canonical s.
        const L: [u8; 32] = [
            0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9,
            0xde, 0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
        ];
        let mut carry = 0u16;
        for i in 0..32 {
            let sum = signature.0[32 + i] as u16 + L[i] as u16 + carry;
            signature.0[32 + i] = sum as u8;
            carry = sum >> 8;
        }
        assert!(!verify(&who, &message, &signature));
        let mut batch = SignatureBatch::default();
        batch.push(&who, &message, &signature);
        assert_eq!(batch.first_invalid(), Some(0));
    }

    #[test]
    fn a_torsion_component_is_judged_alike_alone_and_in_every_batch() {
        use curve25519_dalek::{edwards::CompressedEdwardsY, EdwardsPoint, Scalar};
        use sha2::{Digest, Sha512};
        // A signature whose R carries a point T of order 2: [s]B - R - [k]A = -T. The
        // cofactored equation ignores T, so ZIP-215 accepts it where `verify_strict` does
        // not; a cofactorless random batch would accept it half the time. Here batch and
        // single must agree every time.
        let seed = [7u8; 32];
        let expanded = Sha512::digest(seed);
        let mut a = [0u8; 32];
        a.copy_from_slice(&expanded[..32]);
        a[0] &= 248;
        a[31] &= 127;
        a[31] |= 64;
        let a = Scalar::from_bytes_mod_order(a);
        let public = EdwardsPoint::mul_base(&a).compress();
        assert_eq!(public.0, Pair::from_seed(&seed).public().0);
        let mut order_two = [0xffu8; 32];
        order_two[0] = 0xec;
        order_two[31] = 0x7f; // y = -1: the point (0, -1)
        let torsion = CompressedEdwardsY(order_two).decompress().unwrap();
        let r = Scalar::from_bytes_mod_order([9u8; 32]);
        let big_r = (EdwardsPoint::mul_base(&r) + torsion).compress();
        let message = b"pay 7 to Ferdie".to_vec();
        let mut hasher = Sha512::new();
        hasher.update(big_r.as_bytes());
        hasher.update(public.as_bytes());
        hasher.update(&message);
        let mut wide = [0u8; 64];
        wide.copy_from_slice(&hasher.finalize());
        let k = Scalar::from_bytes_mod_order_wide(&wide);
        let s = r + k * a;
        let mut signature = Signature([0; 64]);
        signature.0[..32].copy_from_slice(big_r.as_bytes());
        signature.0[32..].copy_from_slice(s.as_bytes());
        let signer = AccountId(public.0);
        assert!(verify(&signer, &message, &signature));
        let strict = ed25519_dalek::VerifyingKey::from_bytes(&public.0)
            .unwrap()
            .verify_strict(
                &message,
                &ed25519_dalek::Signature::from_bytes(&signature.0),
            );
        assert!(strict.is_err(), "the case ZIP-215 settles differently");

        let mut items = signed(10);
        items[3] = (signer, message, signature);
        for _ in 0..32 {
            assert_eq!(first_invalid(&items, queue), None);
            let mut batch = SignatureBatch::default();
            items.iter().for_each(|item| queue(item, &mut batch));
            assert!(batch.verdicts().into_iter().all(|ok| ok));
        }
    }
}
