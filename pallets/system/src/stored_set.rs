//! A set stored as one key per member, so it can grow without any write rewriting it whole.
//!
//! A set `item[key]` of a pallet keeps three kinds of map entries:
//! - `item#len[key]`: the number of members;
//! - `item#at[key, i]`: the member at index `i` (`0..len`);
//! - `item#pos[key, member]`: the index of `member`.
//!
//! Inserting writes three entries, removing (swap with the last member) writes at most five,
//! whatever the size of the set, and a caller can walk a bounded batch of members from either
//! end. A list stored as one `Vec` would be read, decoded, re-encoded and written whole on every
//! change: a node hosting n reservations made each change O(n), and ending all of them O(n²).
//! Member order is not insertion order once members are removed.

use crate::Context;
use gridchain_primitives::state::storage_map_key;
use parity_scale_codec::{Decode, Encode};
use std::marker::PhantomData;

/// The set `item[key]` of pallet `pallet`, with members of type `M`.
pub struct StoredSet<M> {
    pallet: &'static str,
    len_item: String,
    at_item: String,
    pos_item: String,
    key: Vec<u8>,
    member: PhantomData<M>,
}

impl<M: Encode + Decode + Copy + PartialEq> StoredSet<M> {
    pub fn new<K: Encode>(pallet: &'static str, item: &str, key: &K) -> Self {
        StoredSet {
            pallet,
            len_item: format!("{item}#len"),
            at_item: format!("{item}#at"),
            pos_item: format!("{item}#pos"),
            key: key.encode(),
            member: PhantomData,
        }
    }

    fn len_key(&self) -> Vec<u8> {
        storage_map_key(self.pallet, &self.len_item, &self.key)
    }
    fn at_key(&self, index: u32) -> Vec<u8> {
        storage_map_key(self.pallet, &self.at_item, &(&self.key, index))
    }
    fn pos_key(&self, member: &M) -> Vec<u8> {
        storage_map_key(self.pallet, &self.pos_item, &(&self.key, member))
    }

    pub fn len<E>(&self, ctx: &Context<E>) -> u32 {
        ctx.overlay.get_decoded(&self.len_key()).unwrap_or(0)
    }

    pub fn is_empty<E>(&self, ctx: &Context<E>) -> bool {
        self.len(ctx) == 0
    }

    pub fn contains<E>(&self, ctx: &Context<E>, member: &M) -> bool {
        ctx.overlay.get(&self.pos_key(member)).is_some()
    }

    /// The member at `index` (`0..len`).
    pub fn get<E>(&self, ctx: &Context<E>, index: u32) -> Option<M> {
        ctx.overlay.get_decoded(&self.at_key(index))
    }

    /// The last member, if any: the cheapest one to remove.
    pub fn last<E>(&self, ctx: &Context<E>) -> Option<M> {
        self.len(ctx)
            .checked_sub(1)
            .and_then(|index| self.get(ctx, index))
    }

    /// Every member (reads `len` entries: for queries, not for bounded block work).
    pub fn members<E>(&self, ctx: &Context<E>) -> Vec<M> {
        (0..self.len(ctx))
            .filter_map(|index| self.get(ctx, index))
            .collect()
    }

    /// Adds `member`; false if it was there already.
    pub fn insert<E>(&self, ctx: &mut Context<E>, member: M) -> bool {
        if self.contains(ctx, &member) {
            return false;
        }
        let len = self.len(ctx);
        ctx.overlay.put_encoded(self.at_key(len), &member);
        ctx.overlay.put_encoded(self.pos_key(&member), &len);
        ctx.overlay.put_encoded(self.len_key(), &(len + 1));
        true
    }

    /// Removes `member` (the last member takes its index); false if it was not there.
    pub fn remove<E>(&self, ctx: &mut Context<E>, member: &M) -> bool {
        let Some(index) = ctx.overlay.get_decoded::<u32>(&self.pos_key(member)) else {
            return false;
        };
        let last_index = self.len(ctx).saturating_sub(1);
        if index != last_index {
            if let Some(last) = self.get(ctx, last_index) {
                ctx.overlay.put_encoded(self.at_key(index), &last);
                ctx.overlay.put_encoded(self.pos_key(&last), &index);
            }
        }
        ctx.overlay.delete(self.at_key(last_index));
        ctx.overlay.delete(self.pos_key(member));
        if last_index == 0 {
            ctx.overlay.delete(self.len_key());
        } else {
            ctx.overlay.put_encoded(self.len_key(), &last_index);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gridchain_primitives::Overlay;
    use proptest::prelude::*;
    use std::collections::{BTreeMap, BTreeSet};

    proptest! {
        /// Any sequence of inserts and removes leaves exactly the members a `BTreeSet` would
        /// have, each at one index, and no entry behind once the set is empty.
        #[test]
        fn behaves_as_a_set(ops in proptest::collection::vec((any::<bool>(), 0u64..20), 0..200)) {
            let backend = BTreeMap::new();
            let mut ctx: Context<()> = Context::new(Overlay::new(&backend));
            let set = StoredSet::<u64>::new("test", "set", &7u32);
            let mut model = BTreeSet::new();
            for (insert, member) in ops {
                if insert {
                    prop_assert_eq!(set.insert(&mut ctx, member), model.insert(member));
                } else {
                    prop_assert_eq!(set.remove(&mut ctx, &member), model.remove(&member));
                }
                let members: BTreeSet<u64> = set.members(&ctx).into_iter().collect();
                prop_assert_eq!(&members, &model);
                prop_assert_eq!(set.len(&ctx) as usize, model.len());
                for m in 0..20u64 {
                    prop_assert_eq!(set.contains(&ctx, &m), model.contains(&m));
                }
            }
            for m in model.clone() {
                set.remove(&mut ctx, &m);
            }
            let (changes, _) = ctx.into_parts();
            prop_assert!(changes.values().all(Option::is_none), "entries left behind");
        }
    }
}
