//! Applying one signed write inside one redb write transaction. Every
//! function here either completes its part or returns an error, after
//! which the caller aborts the transaction: a write applies entirely or not
//! at all.
//!
//! Invariants kept (checked by `Store::check`):
//! - `ids` maps every document to its row, one row per document; `docs`
//!   and `entries` hold exactly those rows, each `docs` record naming its
//!   document; every row is below `meta.next_row`;
//! - `ids[d].digest = DocDigest::compute(docs[row], entries[row])`;
//! - the postings and range tables hold exactly the values of `entries`,
//!   each with the row and doc id of its document, and `entries` only
//!   references declared indexes, with the right shape;
//! - `multi` holds exactly the (range index, row) pairs whose entry holds
//!   two or more distinct ORE plaintexts (`layout::multi_valued`);
//! - `meta.state_root` is the state root of (dataset, root of the Merkle
//!   tree over `ids`, descriptor, indexes, seq);
//! - `meta.doc_count = |ids|`; `journal` holds seq `0..=meta.seq`.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::ops::Bound;

use fluence_proto::limits::{
    DESCRIPTOR_LEN_MAX, DOCUMENT_CIPHERTEXT_LEN_MAX, INDEXES_PER_DATASET_MAX, OPS_PER_BATCH_MAX,
    ORE_CIPHERTEXT_LEN_MAX, VALUES_PER_INDEX_ENTRY_MAX, WRAPPED_KEY_LEN_MAX,
};
use fluence_proto::{
    DocId, DocOp, Encode, IndexDecl, IndexEntry, IndexId, IndexKind, IndexValues, Precondition,
    SealedDoc, SnapshotDoc, Token,
};
use redb::{
    MultimapTable, ReadableMultimapTable, ReadableTable, ReadableTableMetadata, Table,
    WriteTransaction,
};

use crate::error::{ApplyError, StoreError};
use crate::layout::{self, Meta};
use crate::merkle::{self, bucket_of, DocDigest};
use crate::order::{
    range_key, FixedBytes, OreOrder, RangeKey, MARKER_MAX, MARKER_MIN, MARKER_VALUE,
};
use crate::query::read_version;

/// Documents whose entries one pass of a `Reindex` rewrites before
/// re-reading the table (entries are buffered per pass).
pub const REINDEX_CHUNK_DOCS_MAX: usize = 1024;
/// Range keys one pass of a `Reindex` collects before removing them.
pub const REINDEX_CHUNK_KEYS_MAX: usize = 4096;

fn bad(text: impl Into<String>) -> ApplyError {
    ApplyError::BadWrite(text.into())
}

/// Checks a set of index declarations: bounded, no id declared twice.
pub(crate) fn validate_decls(indexes: &[IndexDecl]) -> Result<(), ApplyError> {
    if indexes.len() > INDEXES_PER_DATASET_MAX {
        return Err(bad(format!(
            "{} indexes declared, above INDEXES_PER_DATASET_MAX",
            indexes.len()
        )));
    }
    let mut seen = HashSet::with_capacity(indexes.len());
    for decl in indexes {
        if !seen.insert(decl.id) {
            return Err(bad(format!("index {} is declared twice", decl.id)));
        }
        if decl.unique && decl.kind != IndexKind::Eq {
            return Err(bad(format!(
                "index {} is a {} index; only eq indexes can be unique",
                decl.id,
                decl.kind.name()
            )));
        }
    }
    Ok(())
}

pub(crate) fn validate_descriptor(descriptor: &[u8]) -> Result<(), ApplyError> {
    if descriptor.len() > DESCRIPTOR_LEN_MAX {
        return Err(bad("descriptor is longer than DESCRIPTOR_LEN_MAX"));
    }
    Ok(())
}

fn validate_sealed(sealed: &SealedDoc) -> Result<(), ApplyError> {
    if sealed.wrapped_key.len() > WRAPPED_KEY_LEN_MAX {
        return Err(bad("wrapped key is longer than WRAPPED_KEY_LEN_MAX"));
    }
    if sealed.ciphertext.len() > DOCUMENT_CIPHERTEXT_LEN_MAX {
        return Err(bad("ciphertext is longer than DOCUMENT_CIPHERTEXT_LEN_MAX"));
    }
    Ok(())
}

/// Checks a document's index entries against the declared indexes: each
/// index declared, at most once, with the value shape of its kind, bounded,
/// and every ORE ciphertext valid (so garbage never reaches the range
/// table's comparator).
fn validate_entries<O: OreOrder>(
    entries: &[IndexEntry],
    kinds: &HashMap<IndexId, IndexKind>,
) -> Result<(), ApplyError> {
    if entries.len() > INDEXES_PER_DATASET_MAX {
        return Err(bad("more index entries than INDEXES_PER_DATASET_MAX"));
    }
    let mut seen = HashSet::with_capacity(entries.len());
    for entry in entries {
        let kind = kinds
            .get(&entry.index)
            .ok_or_else(|| bad(format!("index {} is not declared", entry.index)))?;
        if !seen.insert(entry.index) {
            return Err(bad(format!("index {} has two entries", entry.index)));
        }
        match (&entry.values, kind) {
            (IndexValues::Tokens(tokens), IndexKind::Eq | IndexKind::Text) => {
                if tokens.len() > VALUES_PER_INDEX_ENTRY_MAX {
                    return Err(bad("more tokens than VALUES_PER_INDEX_ENTRY_MAX"));
                }
            }
            (IndexValues::Ore(cts), IndexKind::Range) => {
                if cts.len() > VALUES_PER_INDEX_ENTRY_MAX {
                    return Err(bad("more ORE values than VALUES_PER_INDEX_ENTRY_MAX"));
                }
                for ct in cts {
                    if ct.len() > ORE_CIPHERTEXT_LEN_MAX || !O::validate(ct) {
                        return Err(bad(format!(
                            "index {}: invalid ORE ciphertext",
                            entry.index
                        )));
                    }
                }
            }
            (_, kind) => {
                return Err(bad(format!(
                    "index {} is a {} index: wrong value shape",
                    entry.index,
                    kind.name()
                )))
            }
        }
    }
    Ok(())
}

/// The document tables of one write transaction.
pub(crate) struct DocTables<'t, O: OreOrder> {
    pub ids: Table<'t, FixedBytes<16>, FixedBytes<{ layout::ID_RECORD_LEN }>>,
    pub docs: Table<'t, FixedBytes<{ layout::ROW_LEN }>, &'static [u8]>,
    pub entries: Table<'t, FixedBytes<{ layout::ROW_LEN }>, &'static [u8]>,
    pub postings: Table<'t, FixedBytes<{ layout::POSTING_KEY_LEN }>, FixedBytes<16>>,
    pub range: MultimapTable<'t, RangeKey<O>, FixedBytes<{ layout::RANGE_VALUE_LEN }>>,
    pub multi: Table<'t, FixedBytes<{ layout::MULTI_KEY_LEN }>, FixedBytes<16>>,
}

impl<'t, O: OreOrder> DocTables<'t, O> {
    /// Opens (creating on first use) every document table.
    pub fn open(txn: &'t WriteTransaction) -> Result<Self, StoreError> {
        Ok(DocTables {
            ids: txn.open_table(layout::IDS)?,
            docs: txn.open_table(layout::DOCS)?,
            entries: txn.open_table(layout::ENTRIES)?,
            postings: txn.open_table(layout::POSTINGS)?,
            range: txn.open_multimap_table(layout::range_table::<O>())?,
            multi: txn.open_table(layout::MULTI)?,
        })
    }

    fn read_entries(&self, row: u64, doc: &DocId) -> Result<Vec<IndexEntry>, StoreError> {
        match self.entries.get(&layout::row_key(row)[..])? {
            Some(guard) => layout::decode_entries(guard.value()),
            None => Err(StoreError::Corrupt(format!(
                "document {doc} has no index entries record"
            ))),
        }
    }

    /// The first unique index in `entries` where another document than
    /// `row` already holds one of the tokens.
    fn unique_conflict(
        &self,
        row: u64,
        entries: &[IndexEntry],
        unique: &HashSet<IndexId>,
    ) -> Result<Option<IndexId>, StoreError> {
        for entry in entries.iter().filter(|e| unique.contains(&e.index)) {
            let IndexValues::Tokens(tokens) = &entry.values else {
                continue;
            };
            for token in tokens {
                let low = layout::posting_key(&entry.index, token, 0);
                let high = layout::posting_key(&entry.index, token, u64::MAX);
                // At most two postings can be read before an answer: this
                // document's own (on an update) and another one.
                for posting in self.postings.range::<&[u8]>(&low[..]..=&high[..])? {
                    let (key, _) = posting?;
                    if layout::posting_row(key.value())? != row {
                        return Ok(Some(entry.index));
                    }
                }
            }
        }
        Ok(None)
    }

    fn insert_postings(
        &mut self,
        row: u64,
        doc: &DocId,
        entries: &[IndexEntry],
    ) -> Result<(), StoreError> {
        for entry in entries {
            match &entry.values {
                IndexValues::Tokens(tokens) => {
                    for token in tokens {
                        let key = layout::posting_key(&entry.index, token, row);
                        self.postings.insert(&key[..], &doc.0[..])?;
                    }
                }
                IndexValues::Ore(cts) => {
                    let value = layout::range_value(row, doc);
                    for ct in cts {
                        let key = range_key(&entry.index, MARKER_VALUE, ct);
                        self.range.insert(&key[..], &value[..])?;
                    }
                    if layout::multi_valued::<O>(cts) {
                        let key = layout::multi_key(&entry.index, row);
                        self.multi.insert(&key[..], &doc.0[..])?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Removes the postings (and multi-valued marks) `entries` put in.
    /// Removing an absent posting is a no-op, so duplicate values (or ORE
    /// ciphertexts of equal plaintexts, which share one key) are harmless.
    fn remove_postings(
        &mut self,
        row: u64,
        doc: &DocId,
        entries: &[IndexEntry],
    ) -> Result<(), StoreError> {
        for entry in entries {
            match &entry.values {
                IndexValues::Tokens(tokens) => {
                    for token in tokens {
                        let key = layout::posting_key(&entry.index, token, row);
                        self.postings.remove(&key[..])?;
                    }
                }
                IndexValues::Ore(cts) => {
                    let value = layout::range_value(row, doc);
                    for ct in cts {
                        let key = range_key(&entry.index, MARKER_VALUE, ct);
                        self.range.remove(&key[..], &value[..])?;
                    }
                    // Unconditional: one point removal, and it cannot disagree
                    // with the test the insert made.
                    let key = layout::multi_key(&entry.index, row);
                    self.multi.remove(&key[..])?;
                }
            }
        }
        Ok(())
    }

    /// Writes a document at `row`: its sealed record, entries, `ids`
    /// record and postings. The caller has removed an updated document's
    /// old postings.
    fn store_doc(
        &mut self,
        row: u64,
        doc: &DocId,
        sealed: &SealedDoc,
        entries: &[IndexEntry],
        new: bool,
    ) -> Result<(), StoreError> {
        let sealed_bytes = sealed.to_bytes();
        let previous = self.docs.insert(
            &layout::row_key(row)[..],
            layout::doc_record(doc, &sealed_bytes).as_slice(),
        )?;
        // A new document's row was never given before; finding a record
        // there means the counter went backwards, and overwriting would
        // lose a document.
        if new && previous.is_some() {
            return Err(StoreError::Corrupt(format!(
                "row {row} is taken although above every row given"
            )));
        }
        drop(previous);
        self.write_entries(
            row,
            doc,
            entries,
            fluence_proto::Hash32(merkle::hash_sealed(&sealed_bytes)),
        )?;
        self.insert_postings(row, doc, entries)
    }

    /// Writes a document's entries and its `ids` record (row and digest;
    /// the sealed part's hash is given so a reindex need not re-read
    /// ciphertext).
    fn write_entries(
        &mut self,
        row: u64,
        doc: &DocId,
        entries: &[IndexEntry],
        sealed_hash: fluence_proto::Hash32,
    ) -> Result<(), StoreError> {
        let entries_bytes = layout::encode_entries(entries);
        let digest = DocDigest {
            sealed: sealed_hash,
            entries: fluence_proto::Hash32(merkle::hash_entries(&entries_bytes)),
        };
        self.entries
            .insert(&layout::row_key(row)[..], entries_bytes.as_slice())?;
        self.ids
            .insert(&doc.0[..], &layout::id_record(row, &digest)[..])?;
        Ok(())
    }
}

/// Applies a batch's document operations in order, each precondition
/// checked against the state left by the earlier ones. Returns the buckets
/// it changed.
pub(crate) fn apply_batch<O: OreOrder>(
    tables: &mut DocTables<'_, O>,
    meta: &mut Meta,
    ops: &[DocOp],
) -> Result<BTreeSet<u16>, ApplyError> {
    if ops.len() > OPS_PER_BATCH_MAX {
        return Err(bad("more operations than OPS_PER_BATCH_MAX"));
    }
    let (kinds, unique) = declared(meta);
    let mut dirty = BTreeSet::new();
    for (i, op) in ops.iter().enumerate() {
        let op_index = u32::try_from(i).expect("OPS_PER_BATCH_MAX fits in u32");
        let doc = op.doc();
        let found_row = layout::row_of(&tables.ids, &doc)?;
        let found_version = match found_row {
            Some(row) => Some(read_version(&tables.docs, row, &doc)?),
            None => None,
        };
        match op {
            DocOp::Put {
                expect,
                sealed,
                entries,
                ..
            } => {
                let holds = match expect {
                    Precondition::Absent => found_version.is_none(),
                    Precondition::Version(v) => found_version == Some(*v),
                };
                if !holds {
                    return Err(ApplyError::Precondition {
                        op_index,
                        found_version,
                    });
                }
                // Versions start at 1 and grow by one per update: readers
                // rely on them (they are bound into the AEAD) to detect a
                // stale document.
                let version_expected = match found_version {
                    None => Some(1),
                    Some(v) => v.checked_add(1),
                };
                if Some(sealed.version) != version_expected {
                    return Err(bad(format!(
                        "operation {op_index}: new version {} must be {}",
                        sealed.version,
                        version_expected.map_or("impossible".to_string(), |v| v.to_string())
                    )));
                }
                validate_sealed(sealed)?;
                validate_entries::<O>(entries, &kinds)?;
                // An update keeps its row; a new document takes the next
                // one, so inserts land at the tail of every row-keyed table.
                let row = match found_row {
                    Some(row) => {
                        let old = tables.read_entries(row, &doc)?;
                        tables.remove_postings(row, &doc, &old)?;
                        row
                    }
                    None => take_new_row(meta)?,
                };
                // Checked after this document's old postings are gone, so an
                // update that keeps its own value is not a conflict.
                if let Some(index) = tables.unique_conflict(row, entries, &unique)? {
                    return Err(ApplyError::UniqueViolation { op_index, index });
                }
                tables.store_doc(row, &doc, sealed, entries, found_row.is_none())?;
            }
            DocOp::Delete { expect_version, .. } => {
                let row = match found_row {
                    Some(row) if found_version == Some(*expect_version) => row,
                    _ => {
                        return Err(ApplyError::Precondition {
                            op_index,
                            found_version,
                        })
                    }
                };
                let old = tables.read_entries(row, &doc)?;
                tables.remove_postings(row, &doc, &old)?;
                // The row is retired with its document, never given again.
                tables.docs.remove(&layout::row_key(row)[..])?;
                tables.entries.remove(&layout::row_key(row)[..])?;
                tables.ids.remove(&doc.0[..])?;
                meta.doc_count = meta.doc_count.checked_sub(1).ok_or_else(|| {
                    StoreError::Corrupt("document count is below the documents stored".into())
                })?;
            }
        }
        dirty.insert(bucket_of(&doc));
    }
    Ok(dirty)
}

/// The kind of every declared index, and the unique ones.
fn declared(meta: &Meta) -> (HashMap<IndexId, IndexKind>, HashSet<IndexId>) {
    let kinds = meta.indexes.iter().map(|d| (d.id, d.kind)).collect();
    let unique = meta
        .indexes
        .iter()
        .filter(|d| d.unique)
        .map(|d| d.id)
        .collect();
    (kinds, unique)
}

/// The row of a new document: the next row id, counted in the meta
/// record with the document itself.
fn take_new_row(meta: &mut Meta) -> Result<u64, ApplyError> {
    meta.doc_count = meta
        .doc_count
        .checked_add(1)
        .ok_or_else(|| StoreError::Corrupt("document count overflows".into()))?;
    let row = meta.next_row;
    meta.next_row = row
        .checked_add(1)
        .ok_or_else(|| bad("row ids are exhausted"))?;
    Ok(row)
}

/// Stores one page of a snapshot's documents, which must come in strictly
/// increasing `DocId` order after `after` (so none is given twice) and pass
/// the checks a `Put` passes. The import computes the tree once, at its
/// end, so no bucket is tracked.
pub(crate) fn import_docs<O: OreOrder>(
    tables: &mut DocTables<'_, O>,
    meta: &mut Meta,
    docs: &[SnapshotDoc],
    mut after: Option<DocId>,
) -> Result<(), ApplyError> {
    if docs.len() > OPS_PER_BATCH_MAX {
        return Err(bad("more snapshot documents than OPS_PER_BATCH_MAX"));
    }
    let (kinds, unique) = declared(meta);
    for snapshot_doc in docs {
        let doc = snapshot_doc.doc;
        if after.is_some_and(|previous| doc <= previous) {
            return Err(bad(format!(
                "snapshot document {doc} is out of DocId order"
            )));
        }
        after = Some(doc);
        if snapshot_doc.sealed.version == 0 {
            return Err(bad(format!("snapshot document {doc} has version 0")));
        }
        validate_sealed(&snapshot_doc.sealed)?;
        validate_entries::<O>(&snapshot_doc.entries, &kinds)?;
        let row = take_new_row(meta)?;
        if tables
            .unique_conflict(row, &snapshot_doc.entries, &unique)?
            .is_some()
        {
            return Err(bad(format!(
                "snapshot document {doc} breaks a unique index"
            )));
        }
        tables.store_doc(row, &doc, &snapshot_doc.sealed, &snapshot_doc.entries, true)?;
    }
    Ok(())
}

/// Replaces descriptor and index declarations. Indexes no longer declared
/// (or redeclared with another kind or uniqueness) lose their postings, and every
/// document's entries for them, so `entries` and the postings stay equal.
/// Returns the buckets it changed.
pub(crate) fn apply_reindex<O: OreOrder>(
    tables: &mut DocTables<'_, O>,
    meta: &mut Meta,
    descriptor: &[u8],
    indexes: &[IndexDecl],
) -> Result<BTreeSet<u16>, ApplyError> {
    validate_descriptor(descriptor)?;
    validate_decls(indexes)?;
    // An index redeclared with another kind or uniqueness starts empty: the
    // client rebuilds it document by document, and each `Put` is checked
    // against the new declaration (so a unique index never inherits
    // duplicates it did not check).
    let kept: HashSet<(IndexId, u8, bool)> = indexes
        .iter()
        .map(|d| (d.id, d.kind.tag(), d.unique))
        .collect();
    let removed: Vec<IndexDecl> = meta
        .indexes
        .iter()
        .filter(|d| !kept.contains(&(d.id, d.kind.tag(), d.unique)))
        .cloned()
        .collect();
    meta.descriptor = descriptor.to_vec();
    meta.indexes = indexes.to_vec();
    let mut dirty = BTreeSet::new();
    if removed.is_empty() {
        return Ok(dirty);
    }
    for decl in &removed {
        drop_index_postings(tables, decl)?;
    }
    let removed_ids: HashSet<IndexId> = removed.iter().map(|d| d.id).collect();
    strip_entries(tables, &removed_ids, meta.doc_count, &mut dirty)?;
    Ok(dirty)
}

fn drop_index_postings<O: OreOrder>(
    tables: &mut DocTables<'_, O>,
    decl: &IndexDecl,
) -> Result<(), StoreError> {
    match decl.kind {
        IndexKind::Eq | IndexKind::Text => {
            let low = layout::posting_key(&decl.id, &Token([0; 16]), 0);
            let high = layout::posting_key(&decl.id, &Token([0xff; 16]), u64::MAX);
            tables
                .postings
                .retain_in::<&[u8], _>(&low[..]..=&high[..], |_, _| false)?;
        }
        IndexKind::Range => {
            let low = layout::multi_key(&decl.id, 0);
            let high = layout::multi_key(&decl.id, u64::MAX);
            tables
                .multi
                .retain_in::<&[u8], _>(&low[..]..=&high[..], |_, _| false)?;
            let low = range_key(&decl.id, MARKER_MIN, &[]);
            let high = range_key(&decl.id, MARKER_MAX, &[]);
            // Each pass removes up to REINDEX_CHUNK_KEYS_MAX keys, so the
            // number of passes is bounded by the table size.
            let passes_max = tables.range.len()? / REINDEX_CHUNK_KEYS_MAX as u64 + 2;
            let mut passes = 0u64;
            loop {
                passes += 1;
                if passes > passes_max {
                    return Err(StoreError::Corrupt(
                        "range index keys do not go away when removed".into(),
                    ));
                }
                let mut keys = Vec::new();
                for item in tables.range.range::<&[u8]>((
                    Bound::Included(low.as_slice()),
                    Bound::Included(high.as_slice()),
                ))? {
                    let (key, _) = item?;
                    keys.push(key.value().to_vec());
                    if keys.len() == REINDEX_CHUNK_KEYS_MAX {
                        break;
                    }
                }
                if keys.is_empty() {
                    return Ok(());
                }
                for key in &keys {
                    tables.range.remove_all(key.as_slice())?;
                }
            }
        }
    }
    Ok(())
}

/// Removes entries of `removed` indexes from every document, walking
/// `ids` in chunks (each record gives the row and the sealed hash).
fn strip_entries<O: OreOrder>(
    tables: &mut DocTables<'_, O>,
    removed: &HashSet<IndexId>,
    doc_count: u64,
    dirty: &mut BTreeSet<u16>,
) -> Result<(), StoreError> {
    let passes_max = doc_count / REINDEX_CHUNK_DOCS_MAX as u64 + 2;
    let mut cursor: Option<[u8; 16]> = None;
    for _ in 0..passes_max {
        let mut chunk: Vec<(DocId, u64, DocDigest)> = Vec::new();
        let low = match &cursor {
            Some(c) => Bound::Excluded(&c[..]),
            None => Bound::Unbounded,
        };
        for item in tables.ids.range::<&[u8]>((low, Bound::Unbounded))? {
            let (key, value) = item?;
            let (row, digest) = layout::decode_id_record(value.value())?;
            chunk.push((layout::doc_id(key.value())?, row, digest));
            if chunk.len() == REINDEX_CHUNK_DOCS_MAX {
                break;
            }
        }
        let Some((last, _, _)) = chunk.last() else {
            return Ok(());
        };
        cursor = Some(last.0);
        for (doc, row, digest) in chunk {
            let entries = tables.read_entries(row, &doc)?;
            if !entries.iter().any(|e| removed.contains(&e.index)) {
                continue;
            }
            let kept: Vec<IndexEntry> = entries
                .into_iter()
                .filter(|e| !removed.contains(&e.index))
                .collect();
            tables.write_entries(row, &doc, &kept, digest.sealed)?;
            dirty.insert(bucket_of(&doc));
        }
    }
    Err(StoreError::Corrupt("more id records than documents".into()))
}
