//! The dataset state root and Merkle proofs against it: the hashing and the
//! pure verification, shared by the node's store (which builds the tree)
//! and the gateway (which checks proofs without any store).
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
//! The tree itself (building it, reading it from disk, making proofs) lives
//! in `fluence_store::merkle`; this module is everything a reader needs.

use std::sync::OnceLock;

use crate::codec::{Decode, DecodeError, Encode, Reader, Writer};
use crate::ids::{DatasetId, DocId, Hash32};
use crate::write::IndexDecl;

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
        < crate::limits::MESSAGE_LEN_MAX
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

    /// The digest whose [`DocDigest::to_bytes`] is `bytes`, if it has the
    /// right length.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        let bytes: &[u8; 64] = bytes.try_into().ok()?;
        let (sealed, entries) = bytes.split_at(32);
        Some(DocDigest {
            sealed: Hash32(sealed.try_into().ok()?),
            entries: Hash32(entries.try_into().ok()?),
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

/// Incremental leaf hash of one bucket: push its documents in `DocId`
/// order.
pub struct BucketHasher {
    hasher: blake3::Hasher,
    count: usize,
}

impl Default for BucketHasher {
    fn default() -> Self {
        Self::new()
    }
}

impl BucketHasher {
    pub fn new() -> Self {
        BucketHasher {
            hasher: blake3::Hasher::new_derive_key(DOMAIN_BUCKET),
            count: 0,
        }
    }

    pub fn push(&mut self, doc: &DocId, digest: &DocDigest) {
        self.hasher.update(doc.as_bytes());
        self.hasher.update(digest.sealed.as_bytes());
        self.hasher.update(digest.entries.as_bytes());
        self.count += 1;
    }

    /// Documents pushed so far.
    pub fn count(&self) -> usize {
        self.count
    }

    pub fn finish(self) -> [u8; 32] {
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

/// Canonical encoding: it travels in proven read answers.
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
    fn domains_separate_equal_inputs() {
        let a = [1u8; 32];
        let digest = DocDigest::compute(&a, &a);
        assert_ne!(digest.sealed, digest.entries);
        assert_ne!(node_hash(&a, &a), descriptor_hash(&a, &[]).0);
    }

    #[test]
    fn digests_round_trip_through_their_bytes() {
        let digest = DocDigest::compute(b"sealed", b"entries");
        assert_eq!(DocDigest::from_slice(&digest.to_bytes()), Some(digest));
        assert_eq!(DocDigest::from_slice(&digest.to_bytes()[..63]), None);
    }
}
