//! The on-disk format of one dataset file: table definitions, key
//! encodings and record codecs. DESIGN.md describes the same layout in
//! prose; changing anything here is a file-format change (bump
//! [`FORMAT_VERSION`]).
//!
//! Public so operator tools and tests can open a dataset file with redb
//! directly; the node never writes these tables except through
//! [`crate::Store`].

use fluence_proto::codec::{Decode, Encode, Reader, Writer};
use fluence_proto::limits::{DESCRIPTOR_LEN_MAX, INDEXES_PER_DATASET_MAX};
use fluence_proto::{DatasetId, DocId, Hash32, IndexDecl, IndexEntry, IndexId, PublicKey, Token};
use redb::{MultimapTableDefinition, TableDefinition};

use crate::error::StoreError;
use crate::order::{FixedBytes, OreOrder, RangeKey};

/// Version of this layout, stored in the meta record. A file with another
/// version is refused at open rather than misread.
///
/// 2 added [`MULTI`]: a version-1 file lacks it (its multi-valued documents
/// would silently go missing from `And`-of-ranges answers), and a
/// version-1 build would write a version-2 file without maintaining it, so
/// each refuses the other's files.
pub const FORMAT_VERSION: u16 = 2;

/// `"dataset"` → [`Meta`] record. One row: everything about the dataset
/// that is not a document.
pub const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
/// The one key of [`META`].
pub const META_KEY: &str = "dataset";

/// `DocId` (16) → canonical `SealedDoc` bytes: what `find` serves.
pub const DOCS: TableDefinition<FixedBytes<16>, &[u8]> = TableDefinition::new("docs");

/// `DocId` (16) → canonical `Vec<IndexEntry>` bytes: the postings the doc
/// currently holds, kept so an update or delete removes exactly those, and
/// so `And` filters test range membership without touching ciphertext.
pub const ENTRIES: TableDefinition<FixedBytes<16>, &[u8]> = TableDefinition::new("entries");

/// `DocId` (16) → `BLAKE3(sealed) (32) ‖ BLAKE3(entries) (32)`: the Merkle
/// leaf material, so recomputing a bucket never re-reads ciphertext.
pub const DIGESTS: TableDefinition<FixedBytes<16>, FixedBytes<64>> =
    TableDefinition::new("digests");

/// `index id (16) ‖ token (16) ‖ DocId (16)` → `()`: eq and text
/// postings. The doc id is part of the key (a hand-made multimap) so the
/// docs of one token are in `DocId` order and seekable from a cursor.
pub const POSTINGS: TableDefinition<FixedBytes<48>, ()> = TableDefinition::new("postings");

/// `index id (16) ‖ DocId (16)` → `()`: the documents holding ORE values
/// of two or more distinct plaintexts in a range index. Derived from
/// [`ENTRIES`] (kept in the same transaction by every write) and, like the
/// postings, outside the state root. An `And` of ranges on one index scans
/// the intersection of their intervals and checks only these documents
/// besides: a document with one value (class) matches every range iff that
/// value lies in the intersection. The doc id is in the key so the docs of
/// one index are in `DocId` order and seekable from a page cursor.
pub const MULTI: TableDefinition<FixedBytes<32>, ()> = TableDefinition::new("multi");

/// `seq` → the applied `SignedWrite`'s canonical bytes. Append-only.
pub const JOURNAL: TableDefinition<u64, &[u8]> = TableDefinition::new("journal");

/// Merkle heap index (`1` = root, leaves at `2^16 + bucket`) → node hash.
/// Only nodes that differ from the empty subtree hash of their level are
/// stored.
pub const MERKLE: TableDefinition<u32, FixedBytes<32>> = TableDefinition::new("merkle");

/// Name of the range index table.
pub const RANGE_TABLE_NAME: &str = "range";

/// `index id (16) ‖ marker (1) ‖ ORE ciphertext` (ordered by [`RangeKey`])
/// →→ `DocId` (16): range postings, kept in plaintext order.
pub fn range_table<O: OreOrder>() -> MultimapTableDefinition<'static, RangeKey<O>, FixedBytes<16>> {
    MultimapTableDefinition::new(RANGE_TABLE_NAME)
}

/// Length of a posting key.
pub const POSTING_KEY_LEN: usize = IndexId::LEN + Token::LEN + DocId::LEN;

/// Encodes a posting key.
pub fn posting_key(index: &IndexId, token: &Token, doc: &DocId) -> [u8; POSTING_KEY_LEN] {
    let mut key = [0u8; POSTING_KEY_LEN];
    key[..16].copy_from_slice(index.as_bytes());
    key[16..32].copy_from_slice(token.as_bytes());
    key[32..].copy_from_slice(doc.as_bytes());
    key
}

/// Length of a [`MULTI`] key.
pub const MULTI_KEY_LEN: usize = IndexId::LEN + DocId::LEN;

/// Encodes a [`MULTI`] key.
pub fn multi_key(index: &IndexId, doc: &DocId) -> [u8; MULTI_KEY_LEN] {
    let mut key = [0u8; MULTI_KEY_LEN];
    key[..16].copy_from_slice(index.as_bytes());
    key[16..].copy_from_slice(doc.as_bytes());
    key
}

/// The doc id at the end of a [`MULTI`] key read from disk.
pub fn multi_doc(key: &[u8]) -> Result<DocId, StoreError> {
    if key.len() != MULTI_KEY_LEN {
        return Err(StoreError::Corrupt(format!(
            "multi-valued key has {} bytes, expected {MULTI_KEY_LEN}",
            key.len()
        )));
    }
    doc_id(&key[16..])
}

/// Whether ORE ciphertexts hold two or more distinct plaintexts under `O`,
/// i.e. whether their document belongs in [`MULTI`] for their index.
/// Ciphertexts of one plaintext count once: such a document matches every
/// range of an `And` exactly when that one value lies in the intersection
/// of their intervals, which the intersection scan already finds.
pub fn multi_valued<O: OreOrder>(cts: &[Vec<u8>]) -> bool {
    // A total preorder: two or more classes iff some value differs from
    // the first.
    match cts.split_first() {
        Some((first, rest)) => rest.iter().any(|ct| O::compare(first, ct).is_ne()),
        None => false,
    }
}

/// The doc id at the end of a posting key read from disk.
pub fn posting_doc(key: &[u8]) -> Result<DocId, StoreError> {
    if key.len() != POSTING_KEY_LEN {
        return Err(StoreError::Corrupt(format!(
            "posting key has {} bytes, expected {POSTING_KEY_LEN}",
            key.len()
        )));
    }
    doc_id(&key[32..])
}

/// A `DocId` read from disk.
pub fn doc_id(bytes: &[u8]) -> Result<DocId, StoreError> {
    let array: [u8; 16] = bytes.try_into().map_err(|_| {
        StoreError::Corrupt(format!(
            "document id has {} bytes, expected 16",
            bytes.len()
        ))
    })?;
    Ok(DocId(array))
}

/// A 32-byte hash read from disk.
pub fn hash32(bytes: &[u8]) -> Result<[u8; 32], StoreError> {
    bytes
        .try_into()
        .map_err(|_| StoreError::Corrupt(format!("hash has {} bytes, expected 32", bytes.len())))
}

/// Encodes a doc's index entries as stored in [`ENTRIES`].
pub fn encode_entries(entries: &[IndexEntry]) -> Vec<u8> {
    let mut writer = Writer::new();
    writer.vec(entries);
    writer.into_bytes()
}

/// Decodes an [`ENTRIES`] value.
pub fn decode_entries(bytes: &[u8]) -> Result<Vec<IndexEntry>, StoreError> {
    let mut reader = Reader::new(bytes);
    let entries = reader
        .vec(INDEXES_PER_DATASET_MAX, "index entries")
        .and_then(|entries| reader.finish().map(|()| entries))
        .map_err(|e| StoreError::Corrupt(format!("index entries record: {e}")))?;
    Ok(entries)
}

/// Everything about a dataset that is not a document: the single row of
/// [`META`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meta {
    pub dataset: DatasetId,
    pub owner: PublicKey,
    pub name_tag: [u8; 32],
    pub descriptor: Vec<u8>,
    pub indexes: Vec<IndexDecl>,
    /// Sequence number of the last applied write.
    pub seq: u64,
    pub state_root: Hash32,
    pub doc_count: u64,
}

impl Meta {
    pub fn encode(&self) -> Vec<u8> {
        let mut writer = Writer::new();
        writer.u16(FORMAT_VERSION);
        self.dataset.encode(&mut writer);
        self.owner.encode(&mut writer);
        writer.fixed(&self.name_tag);
        writer.bytes(&self.descriptor);
        writer.vec(&self.indexes);
        writer.u64(self.seq);
        self.state_root.encode(&mut writer);
        writer.u64(self.doc_count);
        writer.into_bytes()
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, StoreError> {
        let corrupt =
            |e: fluence_proto::DecodeError| StoreError::Corrupt(format!("meta record: {e}"));
        let mut reader = Reader::new(bytes);
        let version = reader.u16("format version").map_err(corrupt)?;
        if version != FORMAT_VERSION {
            return Err(StoreError::UnsupportedFormat {
                found: version,
                supported: FORMAT_VERSION,
            });
        }
        let meta = Meta {
            dataset: DatasetId::decode(&mut reader).map_err(corrupt)?,
            owner: PublicKey::decode(&mut reader).map_err(corrupt)?,
            name_tag: reader.array("name tag").map_err(corrupt)?,
            descriptor: reader
                .bytes(DESCRIPTOR_LEN_MAX, "descriptor")
                .map_err(corrupt)?,
            indexes: reader
                .vec(INDEXES_PER_DATASET_MAX, "index declarations")
                .map_err(corrupt)?,
            seq: reader.u64("sequence number").map_err(corrupt)?,
            state_root: Hash32::decode(&mut reader).map_err(corrupt)?,
            doc_count: reader.u64("document count").map_err(corrupt)?,
        };
        reader.finish().map_err(corrupt)?;
        Ok(meta)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fluence_proto::IndexKind;

    #[test]
    fn meta_round_trips_and_rejects_other_versions() {
        let meta = Meta {
            dataset: DatasetId([1; 32]),
            owner: PublicKey([2; 32]),
            name_tag: [3; 32],
            descriptor: vec![4; 10],
            indexes: vec![IndexDecl {
                id: IndexId([5; 16]),
                kind: IndexKind::Range,
            }],
            seq: 7,
            state_root: Hash32([8; 32]),
            doc_count: 9,
        };
        let bytes = meta.encode();
        assert_eq!(Meta::decode(&bytes).unwrap(), meta);
        let mut other = bytes.clone();
        other[0] = 99;
        assert!(matches!(
            Meta::decode(&other),
            Err(StoreError::UnsupportedFormat { found: 99, .. })
        ));
        assert!(matches!(
            Meta::decode(&bytes[..bytes.len() - 1]),
            Err(StoreError::Corrupt(_))
        ));
    }
}
