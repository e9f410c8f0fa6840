//! The dataset state root: a fixed-depth bucket Merkle tree over the
//! documents, bound to the descriptor, the index declarations and the write
//! sequence number.
//!
//! Tree: 2^16 buckets, a document's bucket is the first two bytes of its
//! `DocId` (uniform, since doc ids are keyed hashes). Heap numbering: the
//! root is node 1, node `i` has children `2i` and `2i + 1`, bucket `b` is
//! leaf `2^16 + b`, so every leaf is at depth 16.
//!
//! - doc digest: `DocDigest { sealed: BLAKE3_dk("FLUENCE_SEALED_DOC_V1",
//!   SealedDoc bytes), entries: BLAKE3_dk("FLUENCE_INDEX_ENTRIES_V1",
//!   Vec<IndexEntry> bytes) }` — two halves so a reader holding only a
//!   `SealedDoc` can check it against a proof;
//! - leaf: `BLAKE3_dk("FLUENCE_BUCKET_V1", (doc id ‖ sealed ‖ entries)*)`
//!   over the bucket's docs in `DocId` order (fixed 80-byte items, so the
//!   input is unambiguous); an empty bucket hashes the empty input;
//! - inner node: `BLAKE3_dk("FLUENCE_MERKLE_NODE_V1", left ‖ right)`;
//! - state root: `BLAKE3_dk("FLUENCE_STATE_V1", dataset id ‖ tree root ‖
//!   descriptor hash ‖ seq as u64 LE)`, with descriptor hash
//!   `BLAKE3_dk("FLUENCE_DESCRIPTOR_V1", bytes(descriptor) ‖
//!   vec(index declarations))` in the canonical (length-prefixed) encoding.
//!
//! `BLAKE3_dk(context, input)` is BLAKE3 in derive-key mode: the context
//! string is the domain separation. Changing any context or layout here is
//! a breaking change of every state root.
//!
//! The root depends only on the final state (documents, descriptor,
//! indexes, seq, dataset id), never on how it was reached: the order of the
//! operations of a batch, or how writes were grouped into batches, does not
//! change it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

use fluence_proto::codec::{Decode, DecodeError, Encode, Reader, Writer};
use fluence_proto::{DatasetId, DocId, Hash32, IndexDecl};
use redb::{ReadableTable, Table};

use crate::error::{ApplyError, StoreError};
use crate::layout;
use crate::order::FixedBytes;

pub const DOMAIN_SEALED_DOC: &str = "FLUENCE_SEALED_DOC_V1";
pub const DOMAIN_INDEX_ENTRIES: &str = "FLUENCE_INDEX_ENTRIES_V1";
pub const DOMAIN_BUCKET: &str = "FLUENCE_BUCKET_V1";
pub const DOMAIN_NODE: &str = "FLUENCE_MERKLE_NODE_V1";
pub const DOMAIN_DESCRIPTOR: &str = "FLUENCE_DESCRIPTOR_V1";
pub const DOMAIN_STATE: &str = "FLUENCE_STATE_V1";

/// Depth of every leaf; also the number of sibling hashes in a proof.
pub const TREE_DEPTH: usize = 16;
/// Number of buckets (leaves).
pub const BUCKETS: u32 = 1 << TREE_DEPTH;
/// Heap index of bucket 0.
pub const LEAF_BASE: u32 = BUCKETS;
/// Documents one bucket may hold. Keeps a proof (80 bytes per doc) at
/// 5 MiB, far below `MESSAGE_LEN_MAX`; with uniform doc ids a bucket reaches
/// it only near 2^32 documents per dataset.
pub const BUCKET_DOCS_MAX: usize = 1 << 16;

const _: () = assert!(
    BUCKET_DOCS_MAX * (DocId::LEN + DocDigest::LEN) + TREE_DEPTH * 32 + 1024
        < fluence_proto::limits::MESSAGE_LEN_MAX
);

/// What the tree commits to for one document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DocDigest {
    /// Hash of the canonical `SealedDoc` bytes.
    pub sealed: Hash32,
    /// Hash of the canonical `Vec<IndexEntry>` bytes.
    pub entries: Hash32,
}

impl DocDigest {
    pub const LEN: usize = 64;

    /// Digest of a document from its canonical sealed and entries bytes.
    pub fn compute(sealed_bytes: &[u8], entries_bytes: &[u8]) -> Self {
        DocDigest {
            sealed: Hash32(hash_sealed(sealed_bytes)),
            entries: Hash32(hash_entries(entries_bytes)),
        }
    }

    pub fn to_bytes(&self) -> [u8; 64] {
        let mut out = [0u8; 64];
        out[..32].copy_from_slice(self.sealed.as_bytes());
        out[32..].copy_from_slice(self.entries.as_bytes());
        out
    }

    pub(crate) fn from_disk(bytes: &[u8]) -> Result<Self, StoreError> {
        if bytes.len() != Self::LEN {
            return Err(StoreError::Corrupt(format!(
                "document digest has {} bytes, expected {}",
                bytes.len(),
                Self::LEN
            )));
        }
        let (sealed, entries) = bytes.split_at(32);
        Ok(DocDigest {
            sealed: Hash32(layout::hash32(sealed)?),
            entries: Hash32(layout::hash32(entries)?),
        })
    }
}

/// `DocDigest::sealed` of a `SealedDoc`'s canonical bytes: what a reader
/// recomputes from a served document to check it against a proof.
pub fn hash_sealed(sealed_bytes: &[u8]) -> [u8; 32] {
    *blake3::Hasher::new_derive_key(DOMAIN_SEALED_DOC)
        .update(sealed_bytes)
        .finalize()
        .as_bytes()
}

/// `DocDigest::entries` of a `Vec<IndexEntry>`'s canonical bytes.
pub fn hash_entries(entries_bytes: &[u8]) -> [u8; 32] {
    *blake3::Hasher::new_derive_key(DOMAIN_INDEX_ENTRIES)
        .update(entries_bytes)
        .finalize()
        .as_bytes()
}

/// The bucket (leaf number) of a document.
pub fn bucket_of(doc: &DocId) -> u16 {
    u16::from_be_bytes([doc.0[0], doc.0[1]])
}

/// Incremental leaf hash of one bucket.
struct BucketHasher {
    hasher: blake3::Hasher,
    count: usize,
}

impl BucketHasher {
    fn new() -> Self {
        BucketHasher {
            hasher: blake3::Hasher::new_derive_key(DOMAIN_BUCKET),
            count: 0,
        }
    }

    fn push(&mut self, doc: &DocId, digest: &DocDigest) {
        self.hasher.update(doc.as_bytes());
        self.hasher.update(digest.sealed.as_bytes());
        self.hasher.update(digest.entries.as_bytes());
        self.count += 1;
    }

    fn finish(self) -> [u8; 32] {
        *self.hasher.finalize().as_bytes()
    }
}

pub fn node_hash(left: &[u8; 32], right: &[u8; 32]) -> [u8; 32] {
    *blake3::Hasher::new_derive_key(DOMAIN_NODE)
        .update(left)
        .update(right)
        .finalize()
        .as_bytes()
}

/// Hash of the descriptor and index declarations, in their canonical,
/// length-prefixed encoding (a bare concatenation would be ambiguous).
pub fn descriptor_hash(descriptor: &[u8], indexes: &[IndexDecl]) -> Hash32 {
    let mut writer = Writer::new();
    writer.bytes(descriptor);
    writer.vec(indexes);
    Hash32(
        *blake3::Hasher::new_derive_key(DOMAIN_DESCRIPTOR)
            .update(&writer.into_bytes())
            .finalize()
            .as_bytes(),
    )
}

/// The state root a cluster signs. Binding the dataset id means a root (and
/// its proofs) cannot be presented for another dataset with equal content.
pub fn state_root(
    dataset: &DatasetId,
    tree_root: &[u8; 32],
    descriptor_hash: &Hash32,
    seq: u64,
) -> Hash32 {
    Hash32(
        *blake3::Hasher::new_derive_key(DOMAIN_STATE)
            .update(dataset.as_bytes())
            .update(tree_root)
            .update(descriptor_hash.as_bytes())
            .update(&seq.to_le_bytes())
            .finalize()
            .as_bytes(),
    )
}

/// Hash of an empty subtree per level: index 0 is the root level, index
/// `TREE_DEPTH` the leaf level (an empty bucket).
pub fn empty_hashes() -> &'static [[u8; 32]; TREE_DEPTH + 1] {
    static EMPTY: OnceLock<[[u8; 32]; TREE_DEPTH + 1]> = OnceLock::new();
    EMPTY.get_or_init(|| {
        let mut hashes = [[0u8; 32]; TREE_DEPTH + 1];
        hashes[TREE_DEPTH] = BucketHasher::new().finish();
        for level in (0..TREE_DEPTH).rev() {
            hashes[level] = node_hash(&hashes[level + 1], &hashes[level + 1]);
        }
        hashes
    })
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
        assert!(hasher.count <= BUCKET_DOCS_MAX);
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

/// Evidence that a document is (or is not) in a dataset at a state root:
/// the document's whole bucket and the 16 sibling hashes from its leaf up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MerkleProof {
    pub dataset: DatasetId,
    pub doc: DocId,
    /// Sequence number of the state proven; bound by the root.
    pub seq: u64,
    /// Hash of descriptor and index declarations; bound by the root.
    pub descriptor_hash: Hash32,
    /// Every (doc id, digest) in `doc`'s bucket, in `DocId` order. Absence
    /// is proven by `doc` not being among them.
    pub bucket: Vec<(DocId, DocDigest)>,
    /// Sibling hashes from the leaf level (first) up to the root's children.
    pub siblings: [Hash32; TREE_DEPTH],
}

/// Why a proof does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    #[error("proof is for another dataset")]
    WrongDataset,
    #[error("bucket entries are not in strictly increasing doc id order")]
    BucketUnordered,
    #[error("bucket entry {0} belongs to another bucket")]
    BucketMismatch(DocId),
    #[error("bucket holds {0} documents, above BUCKET_DOCS_MAX")]
    BucketTooLarge(usize),
    #[error("proof does not hash to the state root")]
    RootMismatch,
}

/// Checks `proof` against a trusted `state_root` of `dataset`. Returns the
/// digest of `proof.doc` when it is in the dataset, `None` when the proof
/// shows it absent. `proof.seq` and `proof.descriptor_hash` are then
/// authenticated too; the caller checks them against what it expects.
pub fn verify_proof(
    dataset: &DatasetId,
    state_root_expected: &Hash32,
    proof: &MerkleProof,
) -> Result<Option<DocDigest>, ProofError> {
    if proof.dataset != *dataset {
        return Err(ProofError::WrongDataset);
    }
    if proof.bucket.len() > BUCKET_DOCS_MAX {
        return Err(ProofError::BucketTooLarge(proof.bucket.len()));
    }
    let bucket = bucket_of(&proof.doc);
    let mut hasher = BucketHasher::new();
    let mut previous: Option<DocId> = None;
    let mut found = None;
    for (doc, digest) in &proof.bucket {
        if previous.is_some_and(|p| p >= *doc) {
            return Err(ProofError::BucketUnordered);
        }
        if bucket_of(doc) != bucket {
            return Err(ProofError::BucketMismatch(*doc));
        }
        if *doc == proof.doc {
            found = Some(*digest);
        }
        hasher.push(doc, digest);
        previous = Some(*doc);
    }
    let mut node = hasher.finish();
    let mut index = LEAF_BASE + u32::from(bucket);
    for sibling in &proof.siblings {
        // A left child (even heap index) hashes first.
        node = if index & 1 == 0 {
            node_hash(&node, sibling.as_bytes())
        } else {
            node_hash(sibling.as_bytes(), &node)
        };
        index >>= 1;
    }
    assert_eq!(index, 1, "a proof climbs exactly to the root");
    let root = state_root(dataset, &node, &proof.descriptor_hash, proof.seq);
    if root != *state_root_expected {
        return Err(ProofError::RootMismatch);
    }
    Ok(found)
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

impl Encode for DocDigest {
    fn encode(&self, writer: &mut Writer) {
        self.sealed.encode(writer);
        self.entries.encode(writer);
    }
}

impl Decode for DocDigest {
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(DocDigest {
            sealed: Hash32::decode(reader)?,
            entries: Hash32::decode(reader)?,
        })
    }
}

/// Canonical encoding, ready to travel in a future proof response.
impl Encode for MerkleProof {
    fn encode(&self, writer: &mut Writer) {
        self.dataset.encode(writer);
        self.doc.encode(writer);
        writer.u64(self.seq);
        self.descriptor_hash.encode(writer);
        writer.len(self.bucket.len());
        for (doc, digest) in &self.bucket {
            doc.encode(writer);
            digest.encode(writer);
        }
        for sibling in &self.siblings {
            sibling.encode(writer);
        }
    }
}

impl Decode for MerkleProof {
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let dataset = DatasetId::decode(reader)?;
        let doc = DocId::decode(reader)?;
        let seq = reader.u64("proof sequence number")?;
        let descriptor_hash = Hash32::decode(reader)?;
        let bucket = reader.vec_with(BUCKET_DOCS_MAX, "proof bucket", |r| {
            Ok((DocId::decode(r)?, DocDigest::decode(r)?))
        })?;
        let mut siblings = [Hash32([0; 32]); TREE_DEPTH];
        for sibling in &mut siblings {
            *sibling = Hash32::decode(reader)?;
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_hashes_chain_up_from_the_empty_bucket() {
        let empty = empty_hashes();
        assert_eq!(empty[TREE_DEPTH], BucketHasher::new().finish());
        for level in 0..TREE_DEPTH {
            assert_eq!(
                empty[level],
                node_hash(&empty[level + 1], &empty[level + 1])
            );
        }
    }

    #[test]
    fn heap_levels() {
        assert_eq!(level_of(1), 0);
        assert_eq!(level_of(2), 1);
        assert_eq!(level_of(3), 1);
        assert_eq!(level_of(LEAF_BASE), TREE_DEPTH);
        assert_eq!(level_of(2 * BUCKETS - 1), TREE_DEPTH);
    }

    #[test]
    fn domains_separate_equal_inputs() {
        let a = [1u8; 32];
        let digest = DocDigest::compute(&a, &a);
        assert_ne!(digest.sealed, digest.entries);
        assert_ne!(node_hash(&a, &a), descriptor_hash(&a, &[]).0);
    }
}
