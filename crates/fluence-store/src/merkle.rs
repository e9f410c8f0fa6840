//! The dataset state root's tree as the store keeps it: building it on
//! every write, reading it from the `merkle` table, and making proofs.
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

use std::collections::{BTreeMap, BTreeSet};

use fluence_proto::{DatasetId, DocId, Hash32};
use redb::{ReadableTable, Table};

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

/// Level of a heap index (0 = root, `TREE_DEPTH` = leaves).
fn level_of(index: u32) -> usize {
    assert!(
        (1..2 * BUCKETS).contains(&index),
        "heap index out of the tree"
    );
    (31 - index.leading_zeros()) as usize
}

/// Reads a tree node; nodes not stored are empty subtrees.
fn read_node(
    merkle: &impl ReadableTable<u32, FixedBytes<32>>,
    index: u32,
) -> Result<[u8; 32], StoreError> {
    match merkle.get(index)? {
        Some(guard) => layout::hash32(guard.value()),
        None => Ok(empty_hashes()[level_of(index)]),
    }
}

/// Writes a tree node, deleting it when it equals the empty subtree hash so
/// the table only holds what an empty tree would not.
fn write_node(
    merkle: &mut Table<'_, u32, FixedBytes<32>>,
    index: u32,
    hash: &[u8; 32],
) -> Result<(), StoreError> {
    if *hash == empty_hashes()[level_of(index)] {
        merkle.remove(index)?;
    } else {
        merkle.insert(index, &hash[..])?;
    }
    Ok(())
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
/// and returns the new tree root.
///
/// Each level is computed in memory from the one below: a parent's dirty
/// child comes from that map, only its other child is read from the table
/// (a B-tree lookup), and every node is written once, in key order.
pub(crate) fn update_tree(
    merkle: &mut Table<'_, u32, FixedBytes<32>>,
    ids: &impl ReadableTable<FixedBytes<16>, Ids>,
    dirty: &BTreeSet<u16>,
) -> Result<[u8; 32], ApplyError> {
    let mut level: BTreeMap<u32, [u8; 32]> = BTreeMap::new();
    for &bucket in dirty {
        let leaf = bucket_leaf(ids, bucket)?.map_err(|()| ApplyError::BucketFull { bucket })?;
        level.insert(LEAF_BASE + u32::from(bucket), leaf);
    }
    // One pass per level, leaves to root: exactly TREE_DEPTH passes. Each
    // pass writes the level it was given and computes the next one up.
    for _ in 0..TREE_DEPTH {
        let mut parents: BTreeMap<u32, [u8; 32]> = BTreeMap::new();
        for (&index, hash) in &level {
            write_node(merkle, index, hash)?;
            let parent = index >> 1;
            if parents.contains_key(&parent) {
                // Both children dirty: computed when the left one came by.
                continue;
            }
            let sibling = match level.get(&(index ^ 1)) {
                Some(hash) => *hash,
                None => read_node(merkle, index ^ 1)?,
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
        write_node(merkle, index, hash)?;
    }
    Ok(read_node(merkle, 1)?)
}

/// The stored tree root.
pub(crate) fn tree_root(
    merkle: &impl ReadableTable<u32, FixedBytes<32>>,
) -> Result<[u8; 32], StoreError> {
    read_node(merkle, 1)
}

/// Recomputes the whole tree from the `ids` table without writing it:
/// the integrity check's reference. O(documents + 2^17).
pub(crate) fn recompute_root(
    ids: &impl ReadableTable<FixedBytes<16>, Ids>,
) -> Result<Result<[u8; 32], u16>, StoreError> {
    let mut level: Vec<[u8; 32]> = Vec::with_capacity(BUCKETS as usize);
    for bucket in 0..=u16::MAX {
        match bucket_leaf(ids, bucket)? {
            Ok(leaf) => level.push(leaf),
            Err(()) => return Ok(Err(bucket)),
        }
    }
    for _ in 0..TREE_DEPTH {
        level = level
            .chunks_exact(2)
            .map(|pair| node_hash(&pair[0], &pair[1]))
            .collect();
    }
    assert_eq!(level.len(), 1);
    Ok(Ok(level[0]))
}

/// Builds the proof for `doc` from a dataset's tables.
pub(crate) fn prove(
    ids: &impl ReadableTable<FixedBytes<16>, Ids>,
    merkle: &impl ReadableTable<u32, FixedBytes<32>>,
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
        *sibling = Hash32(read_node(merkle, index ^ 1)?);
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
