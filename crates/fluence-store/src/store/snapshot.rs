//! Snapshots: exporting a dataset's state and importing it on another node.
//!
//! A cluster member with an empty disk does not replay the dataset's whole
//! chain: it fetches a snapshot from a peer ([`Store::snapshot`], served in
//! pages by [`Snapshot::docs`]) and rebuilds the dataset from it
//! ([`Store::import`], [`Import::add`], [`Import::finish`]). The importer
//! trusts nothing it receives: every document passes the checks a `Put`
//! passes, postings and the Merkle tree are recomputed locally, and the
//! dataset appears only if the state root it computes is the one the
//! snapshot claims (which the caller accepts only from a finalized block).
//! Until then it lives in a `.importing` file that open deletes, so a crash
//! mid-import leaves nothing behind.
//!
//! An imported dataset's journal starts after the snapshot's seq (the
//! writes before it are not known); its floor is recorded in `meta` and
//! `Store::check` accepts exactly that.

use std::fs;
use std::path::PathBuf;

use fluence_proto::limits::OPS_PER_BATCH_MAX;
use fluence_proto::{DatasetId, DocId, Hash32, SnapshotDoc, SnapshotHeader};
use redb::{Database, Durability, ReadTransaction, ReadableDatabase};

use super::{
    corrupt, lock, open_database, read_meta, sync_dir, write_meta, Applied, Store,
    IMPORTING_FILE_EXT,
};
use crate::apply::{self, DocTables};
use crate::error::{ApplyError, StoreError};
use crate::layout::{self, Meta};
use crate::merkle;
use crate::order::OreOrder;
use crate::query;

/// A consistent view of one dataset to export: a read transaction, so
/// writes applied meanwhile do not show in it. While it lives, redb keeps
/// the pages it sees, so the file cannot reuse them: drop it when the
/// transfer ends (or stalls).
pub struct Snapshot {
    txn: ReadTransaction,
    meta: Meta,
}

/// One page of a snapshot's documents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotPage {
    /// Documents in `DocId` order.
    pub docs: Vec<SnapshotDoc>,
    /// No document follows the last one of this page.
    pub done: bool,
}

impl<O: OreOrder> Store<O> {
    /// A snapshot of `dataset` as it is now.
    pub fn snapshot(&self, dataset: &DatasetId) -> Result<Snapshot, StoreError> {
        let (_, txn) = self.read_txn(dataset)?;
        let meta = read_meta(&txn)?;
        Ok(Snapshot { txn, meta })
    }

    /// Starts importing the dataset `header` describes, which this store
    /// must not hold. Add its documents with [`Import::add`], then
    /// [`Import::finish`]; dropping the import unfinished removes it.
    pub fn import(&self, header: SnapshotHeader) -> Result<Import<'_, O>, ApplyError> {
        let info = &header.info;
        apply::validate_descriptor(&info.descriptor)?;
        apply::validate_decls(&info.indexes)?;
        let id = info.dataset;
        if self.dataset(&id).is_some() {
            return Err(ApplyError::DatasetExists);
        }
        let path = self.file_path(&id, IMPORTING_FILE_EXT);
        // A leftover of an import that never finished.
        if path.exists() {
            fs::remove_file(&path).map_err(|e| StoreError::io(&path, e))?;
        }
        let meta = Meta {
            dataset: id,
            owner: info.owner,
            name_tag: header.name_tag,
            descriptor: info.descriptor.clone(),
            indexes: info.indexes.clone(),
            seq: info.seq,
            // Set by `finish`, once the documents hash to the claimed root.
            state_root: Hash32([0; 32]),
            doc_count: 0,
            next_row: 0,
        };
        let db = open_database(&path, true, &self.options)?;
        let import = Import {
            store: self,
            header,
            path,
            db: Some(db),
            meta,
            last: None,
        };
        import.commit(&[], Durability::None)?;
        Ok(import)
    }

    /// Removes `dataset` without a write, durably; nothing happens if it
    /// is absent. For a cluster member whose chain holds no block backing
    /// its copy (a crash inside a sync, or between a `Create`'s commit and
    /// the record of its block), before it fetches the dataset again.
    /// Readers holding the dataset finish on the unlinked file.
    pub fn discard(&self, dataset: &DatasetId) -> Result<(), StoreError> {
        let _lifecycle = lock(&self.lifecycle);
        let Some(held) = self.dataset(dataset) else {
            return Ok(());
        };
        // No writer commits to it from here on (this thread holds the
        // writer lock until it is gone from the map).
        let mut writer = lock(&held.writer);
        fs::remove_file(&held.path).map_err(|e| StoreError::io(&held.path, e))?;
        writer.dropped = true;
        self.datasets
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(dataset);
        sync_dir(&self.datasets_dir)
    }
}

impl Snapshot {
    /// Everything but the documents, with the state root they hash to.
    pub fn header(&self) -> SnapshotHeader {
        SnapshotHeader {
            info: self.meta.info(),
            name_tag: self.meta.name_tag,
        }
    }

    /// The documents after `after`, in `DocId` order: at least one (if any
    /// is left), then more while their sealed and entries bytes stay within
    /// `bytes_max`, and at most `OPS_PER_BATCH_MAX` (what one
    /// [`Import::add`] takes).
    pub fn docs(&self, after: Option<DocId>, bytes_max: usize) -> Result<SnapshotPage, StoreError> {
        let ids = self.txn.open_table(layout::IDS)?;
        let docs_table = self.txn.open_table(layout::DOCS)?;
        let entries_table = self.txn.open_table(layout::ENTRIES)?;
        let mut items = match after {
            Some(after) => ids.range::<&[u8]>((
                std::ops::Bound::Excluded(&after.0[..]),
                std::ops::Bound::Unbounded,
            ))?,
            None => ids.range::<&[u8]>(..)?,
        };
        let mut docs = Vec::new();
        let mut bytes = 0usize;
        let done = loop {
            if docs.len() == OPS_PER_BATCH_MAX {
                // Full by count: done only if nothing follows.
                break items.next().is_none();
            }
            let Some(item) = items.next() else {
                break true;
            };
            let (key, value) = item?;
            let doc = layout::doc_id(key.value())?;
            let (row, _) = layout::decode_id_record(value.value())?;
            let sealed = query::read_sealed(&docs_table, row, &doc)?;
            let entries_record = entries_table
                .get(&layout::row_key(row)[..])?
                .ok_or_else(|| corrupt(format!("document {doc} has no entries record")))?;
            let size =
                sealed.wrapped_key.len() + sealed.ciphertext.len() + entries_record.value().len();
            if !docs.is_empty() && bytes + size > bytes_max {
                // This document starts the next page.
                break false;
            }
            bytes += size;
            docs.push(SnapshotDoc {
                doc,
                sealed,
                entries: layout::decode_entries(entries_record.value())?,
            });
        };
        Ok(SnapshotPage { docs, done })
    }
}

/// A dataset being imported (see [`Store::import`]).
pub struct Import<'s, O: OreOrder> {
    store: &'s Store<O>,
    header: SnapshotHeader,
    path: PathBuf,
    /// `None` once installed (or closed for the rename).
    db: Option<Database>,
    meta: Meta,
    /// The last document added: the next must follow it.
    last: Option<DocId>,
}

impl<O: OreOrder> Import<'_, O> {
    /// Adds the next documents of the snapshot (in `DocId` order, after
    /// every document added before). A refused page changes nothing.
    pub fn add(&mut self, docs: &[SnapshotDoc]) -> Result<(), ApplyError> {
        self.meta = self.commit(docs, Durability::None)?;
        self.last = docs.last().map(|d| d.doc).or(self.last);
        Ok(())
    }

    /// Checks the whole state against the snapshot's header and makes the
    /// dataset appear, durably. A state that does not hash to the header's
    /// root is refused and the import removed.
    pub fn finish(mut self) -> Result<Applied, ApplyError> {
        if self.meta.doc_count != self.header.info.doc_count {
            return Err(ApplyError::BadWrite(format!(
                "snapshot holds {} documents, its header says {}",
                self.meta.doc_count, self.header.info.doc_count
            )));
        }
        let tree_root = {
            let db = self.database()?;
            let txn = db.begin_read().map_err(StoreError::from)?;
            let ids = txn.open_table(layout::IDS).map_err(StoreError::from)?;
            merkle::recompute_root(&ids)?.map_err(|bucket| ApplyError::BucketFull { bucket })?
        };
        let state_root = merkle::state_root(
            &self.meta.dataset,
            &tree_root,
            &merkle::descriptor_hash(&self.meta.descriptor, &self.meta.indexes),
            self.meta.seq,
        );
        if state_root != self.header.info.state_root {
            return Err(ApplyError::BadWrite(format!(
                "snapshot documents hash to state root {state_root}, not to the {} it claims",
                self.header.info.state_root
            )));
        }
        self.meta.state_root = state_root;
        self.commit(&[], Durability::Immediate)?;
        // Closed before the rename; the store reopens it in place.
        self.db = None;
        let store = self.store;
        let _lifecycle = lock(&store.lifecycle);
        if store.dataset(&self.meta.dataset).is_some() {
            return Err(ApplyError::DatasetExists);
        }
        store.install(self.meta.dataset, self.meta.owner, &self.path)?;
        // Installed: nothing left for Drop to remove.
        self.path = PathBuf::new();
        Ok(Applied {
            seq: self.meta.seq,
            state_root,
        })
    }

    fn database(&self) -> Result<&Database, StoreError> {
        self.db
            .as_ref()
            .ok_or_else(|| StoreError::Corrupt("import already closed".into()))
    }

    /// One transaction: stores `docs` and writes the meta and journal
    /// floor records (the tree is computed once, by `finish`). Returns the meta record it
    /// wrote; on an error nothing is written.
    fn commit(&self, docs: &[SnapshotDoc], durability: Durability) -> Result<Meta, ApplyError> {
        let db = self.database()?;
        let mut txn = db.begin_write().map_err(StoreError::from)?;
        txn.set_durability(durability).map_err(StoreError::from)?;
        let mut meta = self.meta.clone();
        {
            // Also creates every table on the first call.
            let mut tables = DocTables::<O>::open(&txn)?;
            apply::import_docs(&mut tables, &mut meta, docs, self.last)?;
        }
        write_meta(&txn, &meta)?;
        // Created empty: the journal holds the writes after the snapshot.
        txn.open_table(layout::JOURNAL).map_err(StoreError::from)?;
        {
            let mut table = txn.open_table(layout::META).map_err(StoreError::from)?;
            let floor = meta.seq.checked_add(1).ok_or_else(|| {
                ApplyError::BadWrite("snapshot seq leaves no room for later writes".into())
            })?;
            table
                .insert(layout::JOURNAL_FLOOR_KEY, &floor.to_le_bytes()[..])
                .map_err(StoreError::from)?;
        }
        txn.commit().map_err(StoreError::from)?;
        Ok(meta)
    }
}

impl<O: OreOrder> Drop for Import<'_, O> {
    fn drop(&mut self) {
        self.db = None;
        if !self.path.as_os_str().is_empty() {
            // Best effort: a leftover is removed by the next open anyway.
            let _ = fs::remove_file(&self.path);
        }
    }
}
