//! One node's routing table: 256 k-buckets by XOR distance, as
//! libp2p-kad keeps them.
//!
//! Bucket `i` holds the peers at distance `[2^i, 2^(i+1))` from the node,
//! at most k of them. A full bucket keeps its entries and refuses the
//! newcomer (libp2p's `InsertResult::Full`). libp2p lets a newcomer take
//! the least recently seen entry's slot only when that entry is
//! *disconnected* (after a 60 s pending period); in the model no entry is
//! ever present and disconnected, because a live peer's connection stays
//! open (the node's idle timeout is an hour, far longer than the 5-minute
//! refresh) and a departed peer is removed at its first failed request
//! (the Fluence driver's rule on a failed dial). So full means full.
//!
//! The admission rule's subnet limits (at most 2 entries per /24 per
//! bucket, 10 per table) are not modelled: every simulated node sits in
//! its own subnet, where they never bind.

use std::collections::BTreeMap;

use crate::space::{Distance, Key};

/// A node's index in the simulated network.
pub type NodeId = u32;

/// What inserting a peer did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Insert {
    Inserted,
    AlreadyPresent,
    /// The bucket holds k entries already: the newcomer is dropped.
    BucketFull,
    /// The peer is the table's own node (distance zero, no bucket).
    OwnKey,
}

/// A node's k-buckets.
#[derive(Debug, Clone)]
pub struct RoutingTable {
    local: Key,
    bucket_size: usize,
    /// Non-empty buckets by index; each holds entries in insertion order.
    buckets: BTreeMap<u8, Vec<NodeId>>,
    len: usize,
}

impl RoutingTable {
    /// An empty table for the node at `local`, buckets of `bucket_size` (k).
    pub fn new(local: Key, bucket_size: usize) -> RoutingTable {
        RoutingTable {
            local,
            bucket_size,
            buckets: BTreeMap::new(),
            len: 0,
        }
    }

    /// Offers `peer` (at `key`) to its bucket.
    pub fn insert(&mut self, peer: NodeId, key: &Key) -> Insert {
        let Some(index) = self.local.distance(key).bucket_index() else {
            return Insert::OwnKey;
        };
        let bucket = self.buckets.entry(index).or_default();
        if bucket.contains(&peer) {
            Insert::AlreadyPresent
        } else if bucket.len() >= self.bucket_size {
            Insert::BucketFull
        } else {
            bucket.push(peer);
            self.len += 1;
            Insert::Inserted
        }
    }

    /// Removes `peer` (at `key`); true if it was there.
    pub fn remove(&mut self, peer: NodeId, key: &Key) -> bool {
        let Some(index) = self.local.distance(key).bucket_index() else {
            return false;
        };
        let Some(bucket) = self.buckets.get_mut(&index) else {
            return false;
        };
        let Some(position) = bucket.iter().position(|p| *p == peer) else {
            return false;
        };
        bucket.remove(position);
        if bucket.is_empty() {
            self.buckets.remove(&index);
        }
        self.len -= 1;
        true
    }

    /// Whether `peer` (at `key`) is in the table.
    pub fn contains(&self, peer: NodeId, key: &Key) -> bool {
        self.local
            .distance(key)
            .bucket_index()
            .and_then(|index| self.buckets.get(&index))
            .is_some_and(|bucket| bucket.contains(&peer))
    }

    /// Entries in the table.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when the table has no entries.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Entries of bucket `index`.
    pub fn bucket(&self, index: u8) -> &[NodeId] {
        self.buckets.get(&index).map_or(&[], |b| b.as_slice())
    }

    /// The lowest-numbered (nearest) non-empty bucket.
    pub fn nearest_bucket(&self) -> Option<u8> {
        self.buckets.keys().next().copied()
    }

    /// Up to `count` entries closest to `target`, closest first, never
    /// `exclude` (libp2p leaves the asking peer out of its answer).
    /// `keys[id]` is node `id`'s position.
    pub fn closest(
        &self,
        target: &Key,
        keys: &[Key],
        count: usize,
        exclude: Option<NodeId>,
    ) -> Vec<(Distance, NodeId)> {
        let mut all: Vec<(Distance, NodeId)> = self
            .buckets
            .values()
            .flatten()
            .filter(|id| Some(**id) != exclude)
            .map(|id| (keys[*id as usize].distance(target), *id))
            .collect();
        if all.len() > count {
            all.select_nth_unstable(count);
            all.truncate(count);
        }
        all.sort_unstable();
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A position at exactly `distance` from `base`.
    fn at(base: &Key, distance: [u8; 32]) -> Key {
        Key(base.distance(&Key(distance)).0)
    }

    fn distance_with_bit(bit: usize, low: u8) -> [u8; 32] {
        let mut d = [0u8; 32];
        d[31 - bit / 8] |= 1 << (bit % 8);
        // Lower bits below the leading one keep the peers distinct.
        if bit >= 8 {
            d[31] = low;
        }
        d
    }

    #[test]
    fn a_full_bucket_keeps_its_entries_and_drops_the_newcomer() {
        let local = Key([0x5a; 32]);
        let mut keys = Vec::new();
        let mut table = RoutingTable::new(local, 20);
        for i in 0..21u8 {
            keys.push(at(&local, distance_with_bit(200, i)));
        }
        for (id, key) in keys.iter().enumerate().take(20) {
            assert_eq!(table.insert(id as NodeId, key), Insert::Inserted);
        }
        assert_eq!(table.insert(20, &keys[20]), Insert::BucketFull);
        assert_eq!(table.insert(3, &keys[3]), Insert::AlreadyPresent);
        assert_eq!(table.bucket(200).len(), 20);
        assert!(!table.contains(20, &keys[20]));
        // A slot freed by a removal (a dead peer) is taken by the next newcomer.
        assert!(table.remove(7, &keys[7]));
        assert!(!table.remove(7, &keys[7]));
        assert_eq!(table.insert(20, &keys[20]), Insert::Inserted);
        assert_eq!(table.len(), 20);
        assert_eq!(table.insert(99, &local), Insert::OwnKey);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Every entry sits in the bucket of its distance's leading zeros,
        /// no bucket exceeds k, and `closest` equals sorting everything.
        #[test]
        fn buckets_and_closest_match_a_brute_force_reference(
            local in any::<[u8; 32]>(),
            peers in prop::collection::vec(any::<[u8; 32]>(), 1..200),
            target in any::<[u8; 32]>(),
            count in 1usize..30,
            bucket_size in 1usize..8,
        ) {
            let local = Key(local);
            let keys: Vec<Key> = peers.into_iter().map(Key).collect();
            let mut table = RoutingTable::new(local, bucket_size);
            for (id, key) in keys.iter().enumerate() {
                table.insert(id as NodeId, key);
            }
            let mut present = Vec::new();
            for index in 0..=255u8 {
                let bucket = table.bucket(index);
                prop_assert!(bucket.len() <= bucket_size);
                for id in bucket {
                    let d = local.distance(&keys[*id as usize]);
                    prop_assert_eq!(255 - d.leading_zeros(), index as u32);
                    present.push(*id);
                }
            }
            prop_assert_eq!(present.len(), table.len());
            let target = Key(target);
            let exclude = present.first().copied();
            let mut expected: Vec<(Distance, NodeId)> = present
                .iter()
                .filter(|id| Some(**id) != exclude)
                .map(|id| (keys[*id as usize].distance(&target), *id))
                .collect();
            expected.sort();
            expected.truncate(count);
            prop_assert_eq!(table.closest(&target, &keys, count, exclude), expected);
        }
    }
}
