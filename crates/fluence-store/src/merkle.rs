//! The dataset state root's tree as the store keeps it: in memory, built
//! from the documents' digests, updated on every write, and making proofs.
//!
//! The hashing (leaves, nodes, state root), [`MerkleProof`] and the pure
//! [`verify_proof`] live in `fluence_proto::merkle`, so a gateway checks
//! proofs with the same code without depending on this crate; they are
//! re-exported here. See that module for the tree's definition.
//!
//! The root depends only on the final state (documents, descriptor,
//! indexes, seq, dataset id), never on how it was reached: the order of the
//! operations of a batch, or how writes were grouped into batches, does not
//! change it.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use fluence_proto::{DatasetId, DocId, Hash32};
use redb::ReadableTable;

pub use fluence_proto::merkle::{
    bucket_of, descriptor_hash, empty_hashes, hash_entries, hash_sealed, node_hash, state_root,
    verify_proof, BucketHasher, DocDigest, MerkleProof, ProofError, BUCKETS, BUCKET_DOCS_MAX,
    DOMAIN_BUCKET, DOMAIN_DESCRIPTOR, DOMAIN_INDEX_ENTRIES, DOMAIN_NODE, DOMAIN_SEALED_DOC,
    DOMAIN_STATE, LEAF_BASE, TREE_DEPTH,
};

use crate::error::{ApplyError, StoreError};
use crate::layout;
use crate::order::FixedBytes;

/// Reads a document digest stored on disk (64 bytes, see `layout`).
pub(crate) trait DigestFromDisk: Sized {
    fn from_disk(bytes: &[u8]) -> Result<Self, StoreError>;
}

impl DigestFromDisk for DocDigest {
    fn from_disk(bytes: &[u8]) -> Result<Self, StoreError> {
        DocDigest::from_slice(bytes).ok_or_else(|| {
            StoreError::Corrupt(format!(
                "document digest has {} bytes, expected {}",
                bytes.len(),
                DocDigest::LEN
            ))
        })
    }
}

/// The whole tree of one dataset, in memory: a heap of `2 * BUCKETS`
/// nodes (index 1 is the root, `LEAF_BASE + b` the leaf of bucket `b`;
/// index 0 is unused). 4 MiB per dataset.
///
/// Only the documents' digests (the `ids` table) are on disk: the inner
/// nodes are a cache of them. Persisting them cost a B-tree insert per
/// changed node, about sixteen per changed bucket, which was the largest
/// single cost of applying a write; rebuilding them is one ordered scan of
/// `ids` ([`TreeNodes::build`]), done when a dataset is first written or
/// proven after the node starts.
pub(crate) struct TreeNodes {
    nodes: Vec<[u8; 32]>,
}

impl TreeNodes {
    /// Builds the tree of the documents in `ids` with one ordered scan;
    /// `Ok(Err(bucket))` if a bucket holds more than `BUCKET_DOCS_MAX`.
    pub(crate) fn build(
        ids: &impl ReadableTable<FixedBytes<16>, Ids>,
    ) -> Result<Result<Self, u16>, StoreError> {
        let empty = empty_hashes();
        let mut nodes = vec![[0u8; 32]; 2 * BUCKETS as usize];
        nodes[LEAF_BASE as usize..].fill(empty[TREE_DEPTH]);
        let mut current: Option<(u16, BucketHasher)> = None;
        let finish = |nodes: &mut Vec<[u8; 32]>, (bucket, hasher): (u16, BucketHasher)| {
            nodes[(LEAF_BASE + u32::from(bucket)) as usize] = hasher.finish();
        };
        for item in ids.iter()? {
            let (key, value) = item?;
            let doc = layout::doc_id(key.value())?;
            let (_, digest) = layout::decode_id_record(value.value())?;
            let bucket = bucket_of(&doc);
            match &mut current {
                Some((open, hasher)) if *open == bucket => {
                    if hasher.count() == BUCKET_DOCS_MAX {
                        return Ok(Err(bucket));
                    }
                    hasher.push(&doc, &digest);
                }
                _ => {
                    if let Some(done) = current.take() {
                        finish(&mut nodes, done);
                    }
                    let mut hasher = BucketHasher::new();
                    hasher.push(&doc, &digest);
                    current = Some((bucket, hasher));
                }
            }
        }
        if let Some(done) = current.take() {
            finish(&mut nodes, done);
        }
        for index in (1..LEAF_BASE).rev() {
            let (left, right) = (nodes[2 * index as usize], nodes[2 * index as usize + 1]);
            let below = empty[level_of(index) + 1];
            nodes[index as usize] = if left == below && right == below {
                // An empty subtree: its hash is known, skip the hashing
                // (most of a small dataset's tree).
                empty[level_of(index)]
            } else {
                node_hash(&left, &right)
            };
        }
        Ok(Ok(TreeNodes { nodes }))
    }

    pub(crate) fn root(&self) -> [u8; 32] {
        self.nodes[1]
    }

    fn node(&self, index: u32) -> [u8; 32] {
        self.nodes[index as usize]
    }

    /// Makes a committed transaction's changes part of the tree.
    pub(crate) fn merge(&mut self, overlay: TreeOverlay) {
        for (index, hash) in overlay.nodes {
            self.nodes[index as usize] = hash;
        }
    }
}

/// The nodes one write transaction changed, over the committed
/// [`TreeNodes`]: merged into them when the transaction commits, dropped
/// with it otherwise.
#[derive(Default)]
pub(crate) struct TreeOverlay {
    nodes: HashMap<u32, [u8; 32]>,
}

impl TreeOverlay {
    fn node(&self, base: &TreeNodes, index: u32) -> [u8; 32] {
        self.nodes
            .get(&index)
            .copied()
            .unwrap_or_else(|| base.node(index))
    }
}

/// Level of a heap index (0 = root, `TREE_DEPTH` = leaves).
fn level_of(index: u32) -> usize {
    assert!(
        (1..2 * BUCKETS).contains(&index),
        "heap index out of the tree"
    );
    (31 - index.leading_zeros()) as usize
}

/// First and last possible doc id of a bucket (inclusive bounds).
fn bucket_bounds(bucket: u16) -> ([u8; 16], [u8; 16]) {
    let [b0, b1] = bucket.to_be_bytes();
    let mut low = [0u8; 16];
    let mut high = [0xffu8; 16];
    low[0] = b0;
    low[1] = b1;
    high[0] = b0;
    high[1] = b1;
    (low, high)
}

/// The `ids` table's type: `DocId` → row id ‖ digest.
type Ids = FixedBytes<{ layout::ID_RECORD_LEN }>;

/// Visits a bucket's (doc id, digest) pairs in `DocId` order (a range scan
/// of `ids` by the bucket's doc id prefix); at most `BUCKET_DOCS_MAX` of
/// them, else `Ok(Err(()))`.
fn scan_bucket(
    ids: &impl ReadableTable<FixedBytes<16>, Ids>,
    bucket: u16,
    mut visit: impl FnMut(DocId, DocDigest),
) -> Result<Result<(), ()>, StoreError> {
    let (low, high) = bucket_bounds(bucket);
    for (count, item) in ids.range::<&[u8]>(&low[..]..=&high[..])?.enumerate() {
        let (key, value) = item?;
        if count == BUCKET_DOCS_MAX {
            return Ok(Err(()));
        }
        let doc = layout::doc_id(key.value())?;
        let (_, digest) = layout::decode_id_record(value.value())?;
        if bucket_of(&doc) != bucket {
            return Err(StoreError::Corrupt(format!(
                "document {doc} found in the range of bucket {bucket:#06x}"
            )));
        }
        visit(doc, digest);
    }
    Ok(Ok(()))
}

/// Leaf hash of one bucket, read from the `ids` table.
fn bucket_leaf(
    ids: &impl ReadableTable<FixedBytes<16>, Ids>,
    bucket: u16,
) -> Result<Result<[u8; 32], ()>, StoreError> {
    let mut hasher = BucketHasher::new();
    let scanned = scan_bucket(ids, bucket, |doc, digest| hasher.push(&doc, &digest))?;
    Ok(scanned.map(|()| {
        assert!(hasher.count() <= BUCKET_DOCS_MAX);
        hasher.finish()
    }))
}

/// Recomputes the dirty buckets and their ancestors (O(dirty × 16) hashes)
/// into `overlay` and returns the new tree root.
///
/// Each level is computed from the one below: a parent's dirty child comes
/// from that level's map, only its other child is read (from the overlay,
/// else the committed tree).
pub(crate) fn update_tree(
    base: &TreeNodes,
    overlay: &mut TreeOverlay,
    ids: &impl ReadableTable<FixedBytes<16>, Ids>,
    dirty: &BTreeSet<u16>,
) -> Result<[u8; 32], ApplyError> {
    let mut level: BTreeMap<u32, [u8; 32]> = BTreeMap::new();
    for &bucket in dirty {
        let leaf = bucket_leaf(ids, bucket)?.map_err(|()| ApplyError::BucketFull { bucket })?;
        level.insert(LEAF_BASE + u32::from(bucket), leaf);
    }
    // One pass per level, leaves to root: exactly TREE_DEPTH passes. Each
    // pass records the level it was given and computes the next one up.
    for _ in 0..TREE_DEPTH {
        let mut parents: BTreeMap<u32, [u8; 32]> = BTreeMap::new();
        for (&index, hash) in &level {
            overlay.nodes.insert(index, *hash);
            let parent = index >> 1;
            if parents.contains_key(&parent) {
                // Both children dirty: computed when the left one came by.
                continue;
            }
            let sibling = match level.get(&(index ^ 1)) {
                Some(hash) => *hash,
                None => overlay.node(base, index ^ 1),
            };
            // A left child (even heap index) hashes first.
            let hash = if index & 1 == 0 {
                node_hash(hash, &sibling)
            } else {
                node_hash(&sibling, hash)
            };
            parents.insert(parent, hash);
        }
        level = parents;
    }
    assert!(level.is_empty() || level.keys().eq([1u32].iter()));
    for (&index, hash) in &level {
        overlay.nodes.insert(index, *hash);
    }
    Ok(overlay.node(base, 1))
}

/// Recomputes the whole tree's root from the `ids` table: the integrity
/// check's and a snapshot import's reference. O(documents + 2^17).
pub(crate) fn recompute_root(
    ids: &impl ReadableTable<FixedBytes<16>, Ids>,
) -> Result<Result<[u8; 32], u16>, StoreError> {
    Ok(TreeNodes::build(ids)?.map(|tree| tree.root()))
}

/// Builds the proof for `doc` from a dataset's `ids` table and the tree
/// of the same state.
pub(crate) fn prove(
    ids: &impl ReadableTable<FixedBytes<16>, Ids>,
    tree: &TreeNodes,
    dataset: DatasetId,
    doc: DocId,
    seq: u64,
    descriptor_hash: Hash32,
) -> Result<MerkleProof, StoreError> {
    let bucket_number = bucket_of(&doc);
    let mut bucket = Vec::new();
    scan_bucket(ids, bucket_number, |d, digest| bucket.push((d, digest)))?.map_err(|()| {
        StoreError::Corrupt(format!(
            "bucket {bucket_number:#06x} holds more than BUCKET_DOCS_MAX documents"
        ))
    })?;
    let mut siblings = [Hash32([0; 32]); TREE_DEPTH];
    let mut index = LEAF_BASE + u32::from(bucket_number);
    for sibling in &mut siblings {
        *sibling = Hash32(tree.node(index ^ 1));
        index >>= 1;
    }
    Ok(MerkleProof {
        dataset,
        doc,
        seq,
        descriptor_hash,
        bucket,
        siblings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heap_levels() {
        assert_eq!(level_of(1), 0);
        assert_eq!(level_of(2), 1);
        assert_eq!(level_of(3), 1);
        assert_eq!(level_of(LEAF_BASE), TREE_DEPTH);
        assert_eq!(level_of(2 * BUCKETS - 1), TREE_DEPTH);
    }
}
