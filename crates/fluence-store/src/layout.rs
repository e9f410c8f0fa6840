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
use redb::{MultimapTableDefinition, ReadableTable, TableDefinition};

use crate::error::StoreError;
use crate::merkle::{DigestFromDisk, DocDigest};
use crate::order::{FixedBytes, OreOrder, RangeKey};

/// Version of this layout, stored in the meta record. A file with another
/// version is refused at open rather than misread.
///
/// 2 added [`MULTI`]: a version-1 file lacks it (its multi-valued documents
/// would silently go missing from `And`-of-ranges answers), and a
/// version-1 build would write a version-2 file without maintaining it, so
/// each refuses the other's files.
///
/// 3 keys documents by row id (see [`IDS`]): every table but `ids` changed
/// its key, so neither build can read the other's files.
///
/// 4 added the `unique` flag to each index declaration in [`Meta`]: a
/// version-3 build would not enforce it.
///
/// 5 no longer stores the Merkle tree's nodes (the tree is rebuilt in
/// memory from [`IDS`]; see `merkle::TreeNodes`). A version-4 build would
/// read a version-5 file's missing tree as empty, so it refuses them. A
/// version-4 file is read as it is: the first write to it drops its
/// [`LEGACY_MERKLE`] table and rewrites the meta record as version 5.
pub const FORMAT_VERSION: u16 = 5;
/// The oldest version this build reads (see [`FORMAT_VERSION`]).
pub const FORMAT_VERSION_MIN: u16 = 4;

/// `"dataset"` → [`Meta`] record. One row: everything about the dataset
/// that is not a document.
pub const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
/// The one key of [`META`].
pub const META_KEY: &str = "dataset";
/// Key of the journal floor record in `meta` (u64 LE): the first seq the
/// journal holds, written only by a snapshot import.
pub const JOURNAL_FLOOR_KEY: &str = "journal_floor";

/// Length of a row id inside keys and values: a `u64`, big-endian so that
/// bytewise order is numeric order.
///
/// Every document gets a row id when it is first inserted, from
/// [`Meta::next_row`]: ids grow in insertion order and are never reused
/// (an update keeps its row, a delete retires it). Tables keyed by row id
/// therefore receive inserts at their tail, so a batch of new documents
/// dirties a few pages per table instead of one random page per document
/// (doc ids are uniform hashes). Only [`IDS`] is keyed by `DocId`.
pub const ROW_LEN: usize = 8;

/// `DocId` (16) → `row id (8) ‖ BLAKE3(sealed) (32) ‖ BLAKE3(entries)
/// (32)`: the only table keyed by doc id. It maps ids to rows, serves
/// `All` scans and page cursors in `DocId` order, and holds the Merkle
/// leaf material in `DocId` order, so recomputing a bucket is one range
/// scan that never re-reads ciphertext. Its records are small, which keeps
/// the random writes of a batch cheap.
pub const IDS: TableDefinition<FixedBytes<16>, FixedBytes<ID_RECORD_LEN>> =
    TableDefinition::new("ids");

/// Length of an [`IDS`] value.
pub const ID_RECORD_LEN: usize = ROW_LEN + DocDigest::LEN;

/// Row id (8) → `DocId (16) ‖ canonical SealedDoc bytes`: what `find`
/// serves. The doc id lets a reader (and `check`) confirm that a row is
/// the document an index or [`IDS`] says it is.
pub const DOCS: TableDefinition<FixedBytes<ROW_LEN>, &[u8]> = TableDefinition::new("docs");

/// Row id (8) → canonical `Vec<IndexEntry>` bytes: the postings the doc
/// currently holds, kept so an update or delete removes exactly those, and
/// so `And` filters test range membership without touching ciphertext.
pub const ENTRIES: TableDefinition<FixedBytes<ROW_LEN>, &[u8]> = TableDefinition::new("entries");

/// `index id (16) ‖ token (16) ‖ row id (8)` → `DocId` (16): eq and text
/// postings. The row id in the key makes a new document's posting the last
/// of its token; the doc id in the value turns a scan of a token into
/// (doc, row) candidates without a lookup per posting.
pub const POSTINGS: TableDefinition<FixedBytes<POSTING_KEY_LEN>, FixedBytes<16>> =
    TableDefinition::new("postings");

/// `index id (16) ‖ row id (8)` → `DocId` (16): the documents holding ORE
/// values of two or more distinct plaintexts in a range index. Derived
/// from [`ENTRIES`] (kept in the same transaction by every write) and, like
/// the postings, outside the state root. An `And` of ranges on one index
/// scans the intersection of their intervals and checks only these
/// documents besides: a document with one value (class) matches every
/// range iff that value lies in the intersection.
pub const MULTI: TableDefinition<FixedBytes<MULTI_KEY_LEN>, FixedBytes<16>> =
    TableDefinition::new("multi");

/// `seq` → the applied `SignedWrite`'s canonical bytes. Append-only.
pub const JOURNAL: TableDefinition<u64, &[u8]> = TableDefinition::new("journal");

/// Version 4's Merkle nodes (heap index → node hash), no longer kept: see
/// [`FORMAT_VERSION`]. Named only to be dropped.
pub const LEGACY_MERKLE: TableDefinition<u32, FixedBytes<32>> = TableDefinition::new("merkle");

/// Name of the range index table.
pub const RANGE_TABLE_NAME: &str = "range";

/// Length of a [`range_table`] value.
pub const RANGE_VALUE_LEN: usize = ROW_LEN + DocId::LEN;

/// `index id (16) ‖ marker (1) ‖ ORE ciphertext` (ordered by [`RangeKey`])
/// →→ `row id (8) ‖ DocId (16)`: range postings, kept in plaintext order.
/// Values of one key sort by row id (its prefix), so a new document's
/// value is the last of its key; the doc id spares a lookup per value.
pub fn range_table<O: OreOrder>(
) -> MultimapTableDefinition<'static, RangeKey<O>, FixedBytes<RANGE_VALUE_LEN>> {
    MultimapTableDefinition::new(RANGE_TABLE_NAME)
}

/// Encodes a row id as it appears in keys and values.
pub fn row_key(row: u64) -> [u8; ROW_LEN] {
    row.to_be_bytes()
}

/// A row id read from disk.
pub fn row_id(bytes: &[u8]) -> Result<u64, StoreError> {
    let array: [u8; ROW_LEN] = bytes.try_into().map_err(|_| {
        StoreError::Corrupt(format!(
            "row id has {} bytes, expected {ROW_LEN}",
            bytes.len()
        ))
    })?;
    Ok(u64::from_be_bytes(array))
}

/// The row id of `doc`, read from [`IDS`] in any transaction: the key of
/// its [`DOCS`] and [`ENTRIES`] records is `row_key(row)`. `None` when the
/// document does not exist. For operator tools and tests that reach the
/// records of one document through redb.
pub fn row_of(
    ids: &impl ReadableTable<FixedBytes<16>, FixedBytes<ID_RECORD_LEN>>,
    doc: &DocId,
) -> Result<Option<u64>, StoreError> {
    match ids.get(&doc.0[..])? {
        Some(guard) => Ok(Some(decode_id_record(guard.value())?.0)),
        None => Ok(None),
    }
}

/// Encodes an [`IDS`] value.
pub fn id_record(row: u64, digest: &DocDigest) -> [u8; ID_RECORD_LEN] {
    let mut record = [0u8; ID_RECORD_LEN];
    record[..ROW_LEN].copy_from_slice(&row_key(row));
    record[ROW_LEN..].copy_from_slice(&digest.to_bytes());
    record
}

/// Decodes an [`IDS`] value into (row id, digest).
pub fn decode_id_record(bytes: &[u8]) -> Result<(u64, DocDigest), StoreError> {
    if bytes.len() != ID_RECORD_LEN {
        return Err(StoreError::Corrupt(format!(
            "id record has {} bytes, expected {ID_RECORD_LEN}",
            bytes.len()
        )));
    }
    let (row, digest) = bytes.split_at(ROW_LEN);
    Ok((row_id(row)?, DocDigest::from_disk(digest)?))
}

/// Encodes a [`DOCS`] value: the doc id, then the canonical `SealedDoc`
/// bytes.
pub fn doc_record(doc: &DocId, sealed_bytes: &[u8]) -> Vec<u8> {
    let mut record = Vec::with_capacity(DocId::LEN + sealed_bytes.len());
    record.extend_from_slice(doc.as_bytes());
    record.extend_from_slice(sealed_bytes);
    record
}

/// Splits a [`DOCS`] value into (doc id, canonical `SealedDoc` bytes).
/// The sealed bytes are not decoded here.
pub fn split_doc_record(bytes: &[u8]) -> Result<(DocId, &[u8]), StoreError> {
    if bytes.len() < DocId::LEN {
        return Err(StoreError::Corrupt(format!(
            "document record has {} bytes, shorter than a doc id",
            bytes.len()
        )));
    }
    let (doc, sealed) = bytes.split_at(DocId::LEN);
    Ok((doc_id(doc)?, sealed))
}

/// Length of a posting key.
pub const POSTING_KEY_LEN: usize = IndexId::LEN + Token::LEN + ROW_LEN;

/// Encodes a posting key.
pub fn posting_key(index: &IndexId, token: &Token, row: u64) -> [u8; POSTING_KEY_LEN] {
    let mut key = [0u8; POSTING_KEY_LEN];
    key[..16].copy_from_slice(index.as_bytes());
    key[16..32].copy_from_slice(token.as_bytes());
    key[32..].copy_from_slice(&row_key(row));
    key
}

/// The row id at the end of a posting key read from disk.
pub fn posting_row(key: &[u8]) -> Result<u64, StoreError> {
    if key.len() != POSTING_KEY_LEN {
        return Err(StoreError::Corrupt(format!(
            "posting key has {} bytes, expected {POSTING_KEY_LEN}",
            key.len()
        )));
    }
    row_id(&key[32..])
}

/// Length of a [`MULTI`] key.
pub const MULTI_KEY_LEN: usize = IndexId::LEN + ROW_LEN;

/// Encodes a [`MULTI`] key.
pub fn multi_key(index: &IndexId, row: u64) -> [u8; MULTI_KEY_LEN] {
    let mut key = [0u8; MULTI_KEY_LEN];
    key[..16].copy_from_slice(index.as_bytes());
    key[16..].copy_from_slice(&row_key(row));
    key
}

/// The (index id, row id) of a [`MULTI`] key read from disk.
pub fn split_multi_key(key: &[u8]) -> Result<(IndexId, u64), StoreError> {
    if key.len() != MULTI_KEY_LEN {
        return Err(StoreError::Corrupt(format!(
            "multi-valued key has {} bytes, expected {MULTI_KEY_LEN}",
            key.len()
        )));
    }
    let index: [u8; 16] = key[..16]
        .try_into()
        .map_err(|_| StoreError::Corrupt("multi-valued key index".into()))?;
    Ok((IndexId(index), row_id(&key[16..])?))
}

/// Encodes a [`range_table`] value.
pub fn range_value(row: u64, doc: &DocId) -> [u8; RANGE_VALUE_LEN] {
    let mut value = [0u8; RANGE_VALUE_LEN];
    value[..ROW_LEN].copy_from_slice(&row_key(row));
    value[ROW_LEN..].copy_from_slice(doc.as_bytes());
    value
}

/// Decodes a [`range_table`] value into (row id, doc id).
pub fn decode_range_value(bytes: &[u8]) -> Result<(u64, DocId), StoreError> {
    if bytes.len() != RANGE_VALUE_LEN {
        return Err(StoreError::Corrupt(format!(
            "range value has {} bytes, expected {RANGE_VALUE_LEN}",
            bytes.len()
        )));
    }
    let (row, doc) = bytes.split_at(ROW_LEN);
    Ok((row_id(row)?, doc_id(doc)?))
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
    /// Row id the next new document gets; above every row id ever given.
    pub next_row: u64,
}

impl Meta {
    /// What a node reports about the dataset.
    pub fn info(&self) -> fluence_proto::DatasetInfo {
        fluence_proto::DatasetInfo {
            dataset: self.dataset,
            owner: self.owner,
            descriptor: self.descriptor.clone(),
            indexes: self.indexes.clone(),
            seq: self.seq,
            state_root: self.state_root,
            doc_count: self.doc_count,
        }
    }

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
        writer.u64(self.next_row);
        writer.into_bytes()
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, StoreError> {
        let corrupt =
            |e: fluence_proto::DecodeError| StoreError::Corrupt(format!("meta record: {e}"));
        let mut reader = Reader::new(bytes);
        let version = reader.u16("format version").map_err(corrupt)?;
        if !(FORMAT_VERSION_MIN..=FORMAT_VERSION).contains(&version) {
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
            next_row: reader.u64("next row id").map_err(corrupt)?,
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
                unique: false,
            }],
            seq: 7,
            state_root: Hash32([8; 32]),
            doc_count: 9,
            next_row: 10,
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

    #[test]
    fn row_keyed_records_round_trip_and_reject_wrong_lengths() {
        // Big-endian: bytewise order of row keys is numeric order, so new
        // rows sort last.
        assert!(row_key(255) < row_key(256));
        assert!(
            posting_key(&IndexId([1; 16]), &Token([2; 16]), 255)
                < posting_key(&IndexId([1; 16]), &Token([2; 16]), 256)
        );
        assert_eq!(row_id(&row_key(u64::MAX)).unwrap(), u64::MAX);
        assert!(matches!(row_id(&[1, 2, 3]), Err(StoreError::Corrupt(_))));

        let digest = DocDigest {
            sealed: Hash32([6; 32]),
            entries: Hash32([7; 32]),
        };
        let record = id_record(42, &digest);
        assert_eq!(decode_id_record(&record).unwrap(), (42, digest));
        assert!(decode_id_record(&record[1..]).is_err());

        let doc = DocId([9; 16]);
        let record = doc_record(&doc, b"sealed");
        assert_eq!(split_doc_record(&record).unwrap(), (doc, &b"sealed"[..]));
        assert_eq!(split_doc_record(&record[..16]).unwrap(), (doc, &b""[..]));
        assert!(matches!(
            split_doc_record(&record[..15]),
            Err(StoreError::Corrupt(_))
        ));

        let value = range_value(7, &doc);
        assert_eq!(decode_range_value(&value).unwrap(), (7, doc));
        assert!(decode_range_value(&value[..23]).is_err());
        let key = multi_key(&IndexId([3; 16]), 8);
        assert_eq!(split_multi_key(&key).unwrap(), (IndexId([3; 16]), 8));
        assert!(split_multi_key(&key[1..]).is_err());
        let key = posting_key(&IndexId([3; 16]), &Token([4; 16]), 9);
        assert_eq!(posting_row(&key).unwrap(), 9);
        assert!(posting_row(&key[..39]).is_err());
    }
}
