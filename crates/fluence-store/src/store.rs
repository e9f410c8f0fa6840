//! [`Store`]: one node's datasets, one redb file each, shared by many
//! request handlers at once.

use std::collections::{BTreeSet, HashMap};
use std::fs;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};

use fluence_proto::limits::{DATASETS_LIST_MAX, MESSAGE_LEN_MAX};
use fluence_proto::{
    Action, DatasetId, DatasetInfo, DatasetSummary, Decode, DocId, Encode, Hash32, IndexEntry,
    IndexKind, IndexValues, Plan, ProvenDoc, PublicKey, SealedDoc, SignedWrite, StatePin,
};
use redb::{
    Database, Durability, ReadTransaction, ReadableDatabase, ReadableTable, ReadableTableMetadata,
    WriteTransaction,
};

use crate::apply::{self, DocTables};

mod snapshot;
mod staged;
pub use snapshot::{Import, Snapshot, SnapshotPage};
pub use staged::Staged;

use crate::error::{ApplyError, FindError, StoreError};
use crate::layout::{self, Meta};
use crate::merkle::{self, DocDigest, MerkleProof, TreeNodes, TreeOverlay};
use crate::order::{range_key, OreOrder, MARKER_VALUE};
use crate::query::{self, Page, PAGE_BYTES_MAX};

/// Sub-directory of the node data directory holding the dataset files.
pub const DATASETS_DIR: &str = "datasets";
/// Extension of a dataset file: `<dataset-id-hex>.redb`.
pub const DATASET_FILE_EXT: &str = "redb";
/// Extension of a dataset file being created; renamed to `.redb` once its
/// first commit is durable, removed at start-up if a crash interrupted it
/// (the create was never acknowledged).
pub const CREATING_FILE_EXT: &str = "creating";
/// Extension of a dataset file being imported from a snapshot (see
/// [`Store::import`]); like a `.creating` file it was never acknowledged and
/// is deleted at open.
pub const IMPORTING_FILE_EXT: &str = "importing";
/// Directory entries examined at start-up. Every dataset stays open (one
/// file descriptor each), so a node serves at most this many.
pub const DATASET_FILES_MAX: usize = 1_000_000;
/// Default redb page cache per dataset file ([`StoreOptions::cache_bytes`]).
/// redb's default (1 GiB) per file would let a node with many datasets
/// grow without bound; the cache fills only with pages a dataset touches,
/// so small datasets stay small. 64 MiB rather than 32: redb counts a
/// commit's dirty pages (~23 MB per 1,000-document batch at 10^5
/// documents) against the same budget, and at 32 MiB they evicted the
/// `ids` and posting pages the next batch reads (apply 74 → 69 ms at 10^5
/// documents, 98 → 83 ms at 3·10^5; 128 MiB gained only 2 ms more).
pub const DATASET_CACHE_BYTES: usize = 64 * 1024 * 1024;
/// Journal entries returned by one `journal` call.
pub const JOURNAL_READ_MAX: usize = 10_000;
/// Bytes of journal entries returned by one `journal` call (one entry is
/// always returned, whatever its size, so a reader makes progress).
pub const JOURNAL_BYTES_MAX: usize = PAGE_BYTES_MAX;

/// How a [`Store`] opens its dataset files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreOptions {
    /// redb page cache of each dataset file, in bytes: a bound per dataset
    /// (a node keeps every dataset open), filled only by pages it touches.
    /// A node with few large datasets can raise it; one with many hot
    /// datasets can lower it. Default [`DATASET_CACHE_BYTES`].
    pub cache_bytes: usize,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            cache_bytes: DATASET_CACHE_BYTES,
        }
    }
}

/// When a commit of applied writes reaches the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flush {
    /// Before the call returns (one fsync).
    Now,
    /// With the next [`Flush::Now`] commit of the dataset. Readers see
    /// the writes at once, but a crash before that commit loses them: the
    /// dataset reopens at its last flushed state. Only for writes kept
    /// durably elsewhere: a cluster member's finalized blocks are in its
    /// chain, from which it re-applies them after a crash.
    Deferred,
}

/// The outcome of an applied write, as acknowledged to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Applied {
    pub seq: u64,
    /// State root after the write; all zeros after a `Drop` (no state).
    pub state_root: Hash32,
}

/// One journal entry: a write as it was applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalEntry {
    pub seq: u64,
    /// Canonical `SignedWrite` bytes, exactly as signed by the owner.
    pub write: Vec<u8>,
}

/// What a full integrity check counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckReport {
    pub docs: u64,
    pub postings: u64,
    pub range_postings: u64,
    /// (range index, doc) pairs with two or more distinct values.
    pub multi_valued: u64,
    pub journal_entries: u64,
}

/// A write of a sequence was refused; nothing of the sequence applied.
#[derive(Debug, thiserror::Error)]
#[error("write {index} of the sequence was refused: {error}")]
pub struct SequenceError {
    /// Position of the refused write in the sequence.
    pub index: usize,
    #[source]
    pub error: ApplyError,
}

/// A storage failure before any write of a sequence ran (building the
/// dataset's tree) counts as the first write's.
impl From<StoreError> for SequenceError {
    fn from(error: StoreError) -> Self {
        refuse(0, error.into())
    }
}

/// Whether a sequence's transaction is committed or thrown away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Commit(Flush),
    Abort,
}

/// A write's canonical bytes (what the journal keeps), refused if they
/// exceed `MESSAGE_LEN_MAX`: such a write could never be served back.
fn encoded_within_limit(write: &SignedWrite) -> Result<Vec<u8>, ApplyError> {
    let bytes = write.to_bytes();
    if bytes.len() > MESSAGE_LEN_MAX {
        return Err(ApplyError::BadWrite(
            "write is larger than MESSAGE_LEN_MAX and could not be served back".into(),
        ));
    }
    Ok(bytes)
}

/// Write `index` of a sequence was refused with `error`.
fn refuse(index: usize, error: ApplyError) -> SequenceError {
    SequenceError { index, error }
}

/// The write of a one-write sequence that creates or drops its dataset.
fn lifecycle_alone(writes: &[SignedWrite]) -> Option<&SignedWrite> {
    match writes {
        [write] if matches!(write.body.action, Action::Create { .. } | Action::Drop) => Some(write),
        _ => None,
    }
}

struct Dataset {
    path: PathBuf,
    owner: PublicKey,
    db: Database,
    /// Serialises this dataset's writes (redb would too) and records a
    /// `Drop`, so no write commits into a file that was already unlinked.
    writer: Mutex<WriterState>,
    /// The Merkle tree of the committed state, built on first use (see
    /// `merkle::TreeNodes`). Lock order: `writer`, then `tree`. A commit
    /// holds it for writing across the redb commit and the merge of its
    /// changes, and readers hold it while they open their read
    /// transaction, so a reader's documents and tree are of one state.
    tree: RwLock<Option<TreeNodes>>,
}

impl Dataset {
    fn new(path: PathBuf, owner: PublicKey, db: Database) -> Self {
        Dataset {
            path,
            owner,
            db,
            writer: Mutex::new(WriterState::default()),
            tree: RwLock::new(None),
        }
    }

    /// Runs `f` on the tree of the committed state, building the tree
    /// first if this is its first use since the dataset was opened.
    fn with_tree<R, E: From<StoreError>>(
        &self,
        f: impl FnOnce(&TreeNodes) -> Result<R, E>,
    ) -> Result<R, E> {
        {
            let tree = self.tree.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(tree) = tree.as_ref() {
                return f(tree);
            }
        }
        let mut tree = self.tree.write().unwrap_or_else(PoisonError::into_inner);
        if tree.is_none() {
            let txn = self.db.begin_read().map_err(StoreError::from)?;
            let ids = txn.open_table(layout::IDS).map_err(StoreError::from)?;
            let built = TreeNodes::build(&ids)?.map_err(|bucket| {
                StoreError::Corrupt(format!(
                    "bucket {bucket:#06x} holds more than BUCKET_DOCS_MAX documents"
                ))
            })?;
            *tree = Some(built);
        }
        // A tree, once built, is only ever replaced by its successor.
        match tree.as_ref() {
            Some(tree) => f(tree),
            None => Err(StoreError::Corrupt("Merkle tree vanished".into()).into()),
        }
    }

    /// Commits `txn` and merges its tree changes, as one step for readers.
    fn commit(
        &self,
        mut txn: WriteTransaction,
        overlay: TreeOverlay,
        flush: Flush,
    ) -> Result<(), StoreError> {
        txn.set_durability(match flush {
            Flush::Now => Durability::Immediate,
            Flush::Deferred => Durability::None,
        })?;
        let mut tree = self.tree.write().unwrap_or_else(PoisonError::into_inner);
        txn.commit()?;
        // Always built by the writes being committed; were it not, the next
        // use would build it from what was just committed.
        if let Some(tree) = tree.as_mut() {
            tree.merge(overlay);
        }
        Ok(())
    }
}

#[derive(Debug, Default)]
struct WriterState {
    dropped: bool,
    /// A [`Staged`] transaction is open: until it is committed or dropped
    /// no other write may begin (redb would block the caller until then).
    staged: bool,
}

impl WriterState {
    /// Whether a new write transaction may begin.
    fn check_writable(&self) -> Result<(), ApplyError> {
        if self.dropped {
            return Err(ApplyError::DatasetNotFound);
        }
        if self.staged {
            return Err(ApplyError::Store(StoreError::Staged));
        }
        Ok(())
    }
}

/// The node storage engine: every dataset of one node. `Send + Sync`:
/// share it behind an `Arc`; reads run concurrently (redb MVCC read
/// transactions), writes to one dataset are serialised, writes to different
/// datasets run in parallel.
pub struct Store<O: OreOrder> {
    datasets_dir: PathBuf,
    options: StoreOptions,
    datasets: RwLock<HashMap<DatasetId, Arc<Dataset>>>,
    /// Serialises dataset creation and removal (file appearance and
    /// disappearance). Lock order: `lifecycle`, then a dataset's `writer`,
    /// then `datasets`.
    lifecycle: Mutex<()>,
    _order: PhantomData<fn() -> O>,
}

/// Locks a mutex even if a thread panicked while holding it: every state
/// these locks protect is updated in one step (a flag, a map entry), so it
/// is never observed half-changed.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn open_database(
    path: &Path,
    create: bool,
    options: &StoreOptions,
) -> Result<Database, StoreError> {
    let mut builder = Database::builder();
    builder.set_cache_size(options.cache_bytes);
    let db = if create {
        builder.create(path)?
    } else {
        builder.open(path)?
    };
    Ok(db)
}

fn read_meta(txn: &ReadTransaction) -> Result<Meta, StoreError> {
    let table = txn.open_table(layout::META)?;
    let guard = table
        .get(layout::META_KEY)?
        .ok_or_else(|| StoreError::Corrupt("dataset file has no meta record".into()))?;
    Meta::decode(guard.value())
}

fn read_meta_write(txn: &WriteTransaction) -> Result<Meta, StoreError> {
    let table = txn.open_table(layout::META)?;
    let guard = table
        .get(layout::META_KEY)?
        .ok_or_else(|| StoreError::Corrupt("dataset file has no meta record".into()))?;
    Meta::decode(guard.value())
}

/// The first seq the journal holds: 0, or for a dataset imported from a
/// snapshot at seq `s`, `s + 1`. Absent means 0, so files written before
/// imports existed read unchanged.
fn read_journal_floor(txn: &ReadTransaction) -> Result<u64, StoreError> {
    let table = txn.open_table(layout::META)?;
    let Some(guard) = table.get(layout::JOURNAL_FLOOR_KEY)? else {
        return Ok(0);
    };
    let bytes: [u8; 8] = guard
        .value()
        .try_into()
        .map_err(|_| StoreError::Corrupt("journal floor record is not 8 bytes".into()))?;
    Ok(u64::from_le_bytes(bytes))
}

fn write_meta(txn: &WriteTransaction, meta: &Meta) -> Result<(), StoreError> {
    let mut table = txn.open_table(layout::META)?;
    table.insert(layout::META_KEY, meta.encode().as_slice())?;
    Ok(())
}

/// Drops a version-4 file's stored Merkle nodes (see
/// `layout::FORMAT_VERSION`); the write that does it rewrites the meta
/// record as the current version. A lookup in redb's table of tables when
/// there is nothing to drop.
fn drop_legacy_tree(txn: &WriteTransaction) -> Result<(), StoreError> {
    txn.delete_table(layout::LEGACY_MERKLE)?;
    Ok(())
}

/// The sequence number after `meta`'s, which `seq` must be.
fn next_seq(meta: &Meta, seq: u64) -> Result<u64, ApplyError> {
    let expected = meta
        .seq
        .checked_add(1)
        .ok_or_else(|| ApplyError::BadWrite("sequence numbers are exhausted".into()))?;
    if seq != expected {
        return Err(ApplyError::SeqMismatch { expected });
    }
    Ok(expected)
}

/// Makes a rename or unlink in `dir` durable.
fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StoreError::io(dir, e))
}

impl<O: OreOrder> Store<O> {
    /// Opens (creating if needed) the node data directory `dir` and every
    /// dataset file in `dir/datasets`, with the default [`StoreOptions`].
    /// Cheap: one meta read per dataset, never a scan; the range index is
    /// persisted in order, not rebuilt.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, StoreError> {
        Self::open_with(dir, StoreOptions::default())
    }

    /// [`Store::open`] with explicit options.
    pub fn open_with(dir: impl AsRef<Path>, options: StoreOptions) -> Result<Self, StoreError> {
        let datasets_dir = dir.as_ref().join(DATASETS_DIR);
        fs::create_dir_all(&datasets_dir).map_err(|e| StoreError::io(&datasets_dir, e))?;
        let mut datasets = HashMap::new();
        let listing = fs::read_dir(&datasets_dir).map_err(|e| StoreError::io(&datasets_dir, e))?;
        for (seen, entry) in listing.enumerate() {
            if seen == DATASET_FILES_MAX {
                return Err(StoreError::Corrupt(format!(
                    "{} holds more than DATASET_FILES_MAX entries",
                    datasets_dir.display()
                )));
            }
            let entry = entry.map_err(|e| StoreError::io(&datasets_dir, e))?;
            let path = entry.path();
            let extension = path.extension().and_then(|e| e.to_str());
            let stem = path.file_stem().and_then(|s| s.to_str());
            let (Some(extension), Some(stem)) = (extension, stem) else {
                continue;
            };
            if extension == CREATING_FILE_EXT || extension == IMPORTING_FILE_EXT {
                fs::remove_file(&path).map_err(|e| StoreError::io(&path, e))?;
                continue;
            }
            if extension != DATASET_FILE_EXT {
                continue;
            }
            // Anything not named by a dataset id is not ours: leave it.
            let Ok(dataset) = DatasetId::from_hex(stem) else {
                continue;
            };
            let db = open_database(&path, false, &options)?;
            let meta = read_meta(&db.begin_read()?)?;
            if meta.dataset != dataset {
                return Err(StoreError::Corrupt(format!(
                    "{} holds dataset {}",
                    path.display(),
                    meta.dataset
                )));
            }
            datasets.insert(dataset, Arc::new(Dataset::new(path, meta.owner, db)));
        }
        sync_dir(&datasets_dir)?;
        Ok(Store {
            datasets_dir,
            options,
            datasets: RwLock::new(datasets),
            lifecycle: Mutex::new(()),
            _order: PhantomData,
        })
    }

    fn dataset(&self, id: &DatasetId) -> Option<Arc<Dataset>> {
        let map = self.datasets.read().unwrap_or_else(PoisonError::into_inner);
        map.get(id).cloned()
    }

    fn file_path(&self, id: &DatasetId, extension: &str) -> PathBuf {
        self.datasets_dir
            .join(format!("{}.{extension}", id.to_hex()))
    }

    /// Ids of every dataset this node holds, in order.
    pub fn datasets(&self) -> Vec<DatasetId> {
        let map = self.datasets.read().unwrap_or_else(PoisonError::into_inner);
        let mut ids: Vec<DatasetId> = map.keys().copied().collect();
        ids.sort_unstable();
        ids
    }

    /// Applies one write, durably: `Ok` means the commit reached the disk.
    ///
    /// The caller (the node service) has verified the owner's signature and,
    /// for `Create`, that the dataset id derives from owner and name tag.
    /// Everything else is checked here; a refused write changes nothing.
    pub fn apply(&self, write: &SignedWrite) -> Result<Applied, ApplyError> {
        let id = write.body.dataset;
        match &write.body.action {
            Action::Create { .. } => self.create(write, &encoded_within_limit(write)?),
            Action::Drop => {
                encoded_within_limit(write)?;
                self.drop_dataset(&id, write.body.seq)
            }
            // Encoded and size-checked once, in `sequence_input`: a batch
            // write is megabytes, and it was encoded here a second time.
            Action::Batch { .. } | Action::Reindex { .. } => self
                .run_sequence(std::slice::from_ref(write), Outcome::Commit(Flush::Now))
                .map(|applied| applied[0])
                .map_err(|refused| refused.error),
        }
    }

    /// Applies consecutive writes of one dataset in one durable
    /// transaction: all of them or none. `Ok` means the commit reached the
    /// disk; the result holds each write's [`Applied`], in order.
    ///
    /// This is how a cluster member applies a finalized block: one commit
    /// (and one fsync) per block instead of one per write. A `Create` or
    /// `Drop` must be the only write of its sequence: it creates or
    /// unlinks the dataset file itself. The caller has verified the owner's
    /// signatures, as for [`Store::apply`].
    pub fn apply_sequence(&self, writes: &[SignedWrite]) -> Result<Vec<Applied>, SequenceError> {
        self.apply_sequence_flushing(writes, Flush::Now)
    }

    /// [`Store::apply_sequence`], flushed to disk as `flush` says; a
    /// `Create` or `Drop` is always flushed at once.
    pub fn apply_sequence_flushing(
        &self,
        writes: &[SignedWrite],
        flush: Flush,
    ) -> Result<Vec<Applied>, SequenceError> {
        match lifecycle_alone(writes) {
            Some(write) => self
                .apply(write)
                .map(|applied| vec![applied])
                .map_err(|error| SequenceError { index: 0, error }),
            None => self.run_sequence(writes, Outcome::Commit(flush)),
        }
    }

    /// What [`Store::apply_sequence`] would return, without changing
    /// anything: the writes run inside a transaction that is then aborted.
    ///
    /// A cluster member verifies a proposed block with it: the state root
    /// after the block's writes must be the one the proposer claims. A
    /// `Create` alone is checked and its root computed without creating
    /// the file; a `Drop` alone is checked against the dataset's sequence.
    pub fn simulate_sequence(&self, writes: &[SignedWrite]) -> Result<Vec<Applied>, SequenceError> {
        match lifecycle_alone(writes) {
            Some(write) => self
                .simulate_lifecycle(write)
                .map(|applied| vec![applied])
                .map_err(|error| SequenceError { index: 0, error }),
            None => self.run_sequence(writes, Outcome::Abort),
        }
    }

    /// Runs `Batch` and `Reindex` writes of one dataset in one transaction
    /// and commits or aborts it.
    fn run_sequence(
        &self,
        writes: &[SignedWrite],
        outcome: Outcome,
    ) -> Result<Vec<Applied>, SequenceError> {
        let Some((dataset, encoded)) = self.sequence_input(writes)? else {
            return Ok(Vec::new());
        };
        let writer = lock(&dataset.writer);
        writer.check_writable().map_err(|error| refuse(0, error))?;
        let (txn, overlay, applied) = Self::execute(&dataset, writes, &encoded)?;
        match outcome {
            Outcome::Commit(flush) => dataset
                .commit(txn, overlay, flush)
                .map_err(|e| refuse(0, e.into()))?,
            Outcome::Abort => txn.abort().map_err(|e| refuse(0, e.into()))?,
        }
        drop(writer);
        Ok(applied)
    }

    /// The dataset of a sequence of `Batch` and `Reindex` writes and each
    /// write's canonical bytes (`None` for no writes).
    fn sequence_input(
        &self,
        writes: &[SignedWrite],
    ) -> Result<Option<(Arc<Dataset>, Vec<Vec<u8>>)>, SequenceError> {
        let Some(first) = writes.first() else {
            return Ok(None);
        };
        let id = first.body.dataset;
        let mut encoded = Vec::with_capacity(writes.len());
        for (index, write) in writes.iter().enumerate() {
            if write.body.dataset != id {
                return Err(refuse(
                    index,
                    ApplyError::BadWrite("a sequence of writes spans two datasets".into()),
                ));
            }
            if matches!(write.body.action, Action::Create { .. } | Action::Drop) {
                return Err(refuse(
                    index,
                    ApplyError::BadWrite("a Create or Drop must be applied alone".into()),
                ));
            }
            encoded.push(encoded_within_limit(write).map_err(|error| refuse(index, error))?);
        }
        let dataset = self
            .dataset(&id)
            .ok_or(refuse(0, ApplyError::DatasetNotFound))?;
        Ok(Some((dataset, encoded)))
    }

    /// Applies `writes` inside a new write transaction of `dataset` (whose
    /// writer lock the caller holds), set to commit durably unless it is
    /// to be aborted. A refused write aborts it.
    fn execute(
        dataset: &Dataset,
        writes: &[SignedWrite],
        encoded: &[Vec<u8>],
    ) -> Result<(WriteTransaction, TreeOverlay, Vec<Applied>), SequenceError> {
        let at_first = |error: ApplyError| refuse(0, error);
        dataset.with_tree(|tree| {
            // Durability is set when committing (`Dataset::commit`).
            let txn = dataset.db.begin_write().map_err(|e| at_first(e.into()))?;
            drop_legacy_tree(&txn).map_err(|e| at_first(e.into()))?;
            let mut overlay = TreeOverlay::default();
            let mut applied = Vec::with_capacity(writes.len());
            for (index, (write, bytes)) in writes.iter().zip(encoded).enumerate() {
                match Self::apply_in(&txn, tree, &mut overlay, write, bytes) {
                    Ok(one) => applied.push(one),
                    Err(error) => {
                        txn.abort().map_err(|e| at_first(e.into()))?;
                        return Err(refuse(index, error));
                    }
                }
            }
            Ok((txn, overlay, applied))
        })
    }

    /// Everything a `Create` must satisfy before any file is touched.
    fn check_create(
        &self,
        id: &DatasetId,
        seq: u64,
        descriptor: &[u8],
        indexes: &[fluence_proto::IndexDecl],
    ) -> Result<(), ApplyError> {
        if self.dataset(id).is_some() {
            return Err(ApplyError::DatasetExists);
        }
        if seq != 0 {
            return Err(ApplyError::SeqMismatch { expected: 0 });
        }
        apply::validate_descriptor(descriptor)?;
        apply::validate_decls(indexes)?;
        Ok(())
    }

    /// Checks a lone `Create` or `Drop` and computes the state root it
    /// would leave, changing nothing.
    fn simulate_lifecycle(&self, write: &SignedWrite) -> Result<Applied, ApplyError> {
        let id = write.body.dataset;
        let _lifecycle = lock(&self.lifecycle);
        match &write.body.action {
            Action::Create {
                descriptor,
                indexes,
                ..
            } => {
                self.check_create(&id, write.body.seq, descriptor, indexes)?;
                // `create` computes the same from the empty tree it writes.
                let empty_tree_root = merkle::empty_hashes()[0];
                Ok(Applied {
                    seq: 0,
                    state_root: merkle::state_root(
                        &id,
                        &empty_tree_root,
                        &merkle::descriptor_hash(descriptor, indexes),
                        0,
                    ),
                })
            }
            Action::Drop => {
                let dataset = self.dataset(&id).ok_or(ApplyError::DatasetNotFound)?;
                let expected = next_seq(&read_meta(&dataset.db.begin_read()?)?, write.body.seq)?;
                Ok(Applied {
                    seq: expected,
                    state_root: Hash32([0; 32]),
                })
            }
            Action::Batch { .. } | Action::Reindex { .. } => Err(ApplyError::BadWrite(
                "only a lone Create or Drop is simulated on its own".into(),
            )),
        }
    }

    /// Applies a `Batch` or `Reindex` inside `txn`.
    fn apply_in(
        txn: &WriteTransaction,
        tree: &TreeNodes,
        overlay: &mut TreeOverlay,
        write: &SignedWrite,
        write_bytes: &[u8],
    ) -> Result<Applied, ApplyError> {
        let mut meta = read_meta_write(txn)?;
        let expected = next_seq(&meta, write.body.seq)?;
        let (tree_root, doc_count) = {
            let mut tables = DocTables::<O>::open(txn)?;
            let dirty = match &write.body.action {
                Action::Batch { schema, ops } => {
                    if *schema != fluence_proto::schema_digest(&meta.indexes) {
                        return Err(ApplyError::StaleSchema);
                    }
                    apply::apply_batch(&mut tables, &mut meta, ops)?
                }
                Action::Reindex {
                    descriptor,
                    indexes,
                } => apply::apply_reindex(&mut tables, &mut meta, descriptor, indexes)?,
                Action::Create { .. } | Action::Drop => {
                    unreachable!("create and drop are applied by their own paths")
                }
            };
            let root = merkle::update_tree(tree, overlay, &tables.ids, &dirty)?;
            // O(1) each: redb keeps table lengths.
            let counts = [tables.ids.len()?, tables.docs.len()?];
            (root, counts)
        };
        if doc_count != [meta.doc_count; 2] {
            return Err(StoreError::Corrupt(format!(
                "document count {} disagrees with the {doc_count:?} ids and documents stored",
                meta.doc_count
            ))
            .into());
        }
        meta.seq = expected;
        meta.state_root = merkle::state_root(
            &meta.dataset,
            &tree_root,
            &merkle::descriptor_hash(&meta.descriptor, &meta.indexes),
            meta.seq,
        );
        Self::append_journal(txn, meta.seq, write_bytes)?;
        write_meta(txn, &meta)?;
        Ok(Applied {
            seq: meta.seq,
            state_root: meta.state_root,
        })
    }

    fn append_journal(
        txn: &WriteTransaction,
        seq: u64,
        write_bytes: &[u8],
    ) -> Result<(), StoreError> {
        let mut journal = txn.open_table(layout::JOURNAL)?;
        // Append-only: a seq is written once, by the write that takes it.
        let previous = journal.insert(seq, write_bytes)?;
        if previous.is_some() {
            return Err(StoreError::Corrupt(format!(
                "journal already holds seq {seq}"
            )));
        }
        Ok(())
    }

    fn create(&self, write: &SignedWrite, write_bytes: &[u8]) -> Result<Applied, ApplyError> {
        let Action::Create {
            owner,
            name_tag,
            descriptor,
            indexes,
            ..
        } = &write.body.action
        else {
            unreachable!("create is only called for Create")
        };
        let id = write.body.dataset;
        let _lifecycle = lock(&self.lifecycle);
        self.check_create(&id, write.body.seq, descriptor, indexes)?;

        let creating = self.file_path(&id, CREATING_FILE_EXT);
        // A leftover from a crashed create was never acknowledged.
        if creating.exists() {
            fs::remove_file(&creating).map_err(|e| StoreError::io(&creating, e))?;
        }
        let meta = {
            let db = open_database(&creating, true, &self.options)?;
            let mut txn = db.begin_write()?;
            txn.set_durability(Durability::Immediate)?;
            let mut meta = Meta {
                dataset: id,
                owner: *owner,
                name_tag: *name_tag,
                descriptor: descriptor.clone(),
                indexes: indexes.clone(),
                seq: 0,
                state_root: Hash32([0; 32]),
                doc_count: 0,
                next_row: 0,
            };
            // Creates every table, so readers never meet a missing one.
            DocTables::<O>::open(&txn)?;
            let tree_root = merkle::empty_hashes()[0];
            meta.state_root = merkle::state_root(
                &id,
                &tree_root,
                &merkle::descriptor_hash(descriptor, indexes),
                0,
            );
            Self::append_journal(&txn, 0, write_bytes)?;
            write_meta(&txn, &meta)?;
            txn.commit()?;
            meta
        };
        self.install(id, *owner, &creating)?;
        Ok(Applied {
            seq: 0,
            state_root: meta.state_root,
        })
    }

    /// Makes the complete, durable dataset file `from` the dataset `id`:
    /// renames it into place, makes the rename durable and serves it. The
    /// caller holds the lifecycle lock and has checked `id` is absent.
    fn install(&self, id: DatasetId, owner: PublicKey, from: &Path) -> Result<(), StoreError> {
        let path = self.file_path(&id, DATASET_FILE_EXT);
        // The file becomes a dataset only once complete and durable.
        fs::rename(from, &path).map_err(|e| StoreError::io(&path, e))?;
        sync_dir(&self.datasets_dir)?;
        let db = open_database(&path, false, &self.options)?;
        let dataset = Arc::new(Dataset::new(path, owner, db));
        self.datasets
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id, dataset);
        Ok(())
    }

    fn drop_dataset(&self, id: &DatasetId, seq: u64) -> Result<Applied, ApplyError> {
        let _lifecycle = lock(&self.lifecycle);
        let dataset = self.dataset(id).ok_or(ApplyError::DatasetNotFound)?;
        let mut writer = lock(&dataset.writer);
        writer.check_writable()?;
        next_seq(&read_meta(&dataset.db.begin_read()?)?, seq)?;
        // Unlink first: if that fails the dataset is still whole and served.
        // Readers holding it keep reading the unlinked file until they
        // finish; no writer can commit to it once `dropped` is set (this
        // thread holds the writer lock throughout).
        fs::remove_file(&dataset.path).map_err(|e| StoreError::io(&dataset.path, e))?;
        writer.dropped = true;
        self.datasets
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(id);
        sync_dir(&self.datasets_dir)?;
        Ok(Applied {
            seq,
            state_root: Hash32([0; 32]),
        })
    }

    fn read_txn(&self, id: &DatasetId) -> Result<(Arc<Dataset>, ReadTransaction), StoreError> {
        let dataset = self.dataset(id).ok_or(StoreError::DatasetNotFound)?;
        let txn = dataset.db.begin_read()?;
        Ok((dataset, txn))
    }

    /// Datasets created by `owner`, in id order, at most
    /// `DATASETS_LIST_MAX`.
    pub fn list(&self, owner: &PublicKey) -> Result<Vec<DatasetSummary>, StoreError> {
        let mut owned: Vec<(DatasetId, Arc<Dataset>)> = {
            let map = self.datasets.read().unwrap_or_else(PoisonError::into_inner);
            map.iter()
                .filter(|(_, d)| d.owner == *owner)
                .map(|(id, d)| (*id, Arc::clone(d)))
                .collect()
        };
        owned.sort_unstable_by_key(|(id, _)| *id);
        owned.truncate(DATASETS_LIST_MAX);
        let mut out = Vec::with_capacity(owned.len());
        for (dataset, handle) in owned {
            let meta = read_meta(&handle.db.begin_read()?)?;
            out.push(DatasetSummary {
                dataset,
                descriptor: meta.descriptor,
            });
        }
        Ok(out)
    }

    /// The dataset's description and current state root.
    pub fn info(&self, dataset: &DatasetId) -> Result<DatasetInfo, StoreError> {
        let (_, txn) = self.read_txn(dataset)?;
        Ok(read_meta(&txn)?.info())
    }

    /// One page of the documents `plan` selects, in `DocId` order strictly
    /// after `after`: at most `page_docs_max` (capped at `PAGE_DOCS_MAX`)
    /// and about `PAGE_BYTES_MAX` bytes. `Page::next` resumes the query;
    /// a page may be short, even empty, while `next` is `Some`.
    pub fn find(
        &self,
        dataset: &DatasetId,
        plan: &Plan,
        after: Option<DocId>,
        page_docs_max: usize,
    ) -> Result<Page, FindError> {
        self.find_planned_for(dataset, None, plan, after, page_docs_max)
    }

    /// [`Store::find`] for a plan made for the index declarations whose
    /// digest is `schema`; refused with `StaleSchema` if the dataset's
    /// declarations differ.
    pub fn find_planned_for(
        &self,
        dataset: &DatasetId,
        schema: Option<&Hash32>,
        plan: &Plan,
        after: Option<DocId>,
        page_docs_max: usize,
    ) -> Result<Page, FindError> {
        self.find_with_state(dataset, schema, plan, after, page_docs_max)
            .map(|(page, _)| page)
    }

    /// [`Store::find_planned_for`], also naming the state (seq and state
    /// root) the page was read at: the same read transaction, so a signed
    /// answer states exactly what it was computed from.
    pub fn find_with_state(
        &self,
        dataset: &DatasetId,
        schema: Option<&Hash32>,
        plan: &Plan,
        after: Option<DocId>,
        page_docs_max: usize,
    ) -> Result<(Page, StatePin), FindError> {
        let (_, txn) = self.read_txn(dataset).map_err(|e| match e {
            StoreError::DatasetNotFound => FindError::DatasetNotFound,
            e => FindError::Store(e),
        })?;
        let meta = read_meta(&txn)?;
        if schema.is_some_and(|schema| *schema != fluence_proto::schema_digest(&meta.indexes)) {
            return Err(FindError::StaleSchema);
        }
        let page = query::find::<O>(
            &txn,
            &meta,
            plan,
            after,
            page_docs_max,
            query::CANDIDATES_PER_PAGE_MAX,
        )?;
        let state = StatePin {
            seq: meta.seq,
            state_root: meta.state_root,
        };
        Ok((page, state))
    }

    /// One document, if present.
    pub fn get(&self, dataset: &DatasetId, doc: &DocId) -> Result<Option<SealedDoc>, StoreError> {
        let (_, txn) = self.read_txn(dataset)?;
        let ids = txn.open_table(layout::IDS)?;
        let Some(row) = layout::row_of(&ids, doc)? else {
            return Ok(None);
        };
        let docs = txn.open_table(layout::DOCS)?;
        query::read_sealed(&docs, row, doc).map(Some)
    }

    /// Journal entries from `from_seq` on: at most `max` (capped at
    /// `JOURNAL_READ_MAX`) and about `JOURNAL_BYTES_MAX` bytes.
    pub fn journal(
        &self,
        dataset: &DatasetId,
        from_seq: u64,
        max: usize,
    ) -> Result<Vec<JournalEntry>, StoreError> {
        let (_, txn) = self.read_txn(dataset)?;
        let journal = txn.open_table(layout::JOURNAL)?;
        let max = max.min(JOURNAL_READ_MAX);
        let mut out = Vec::new();
        let mut bytes = 0usize;
        for item in journal.range(from_seq..)? {
            if out.len() == max {
                break;
            }
            let (seq, write) = item?;
            let write = write.value();
            if !out.is_empty() && bytes + write.len() > JOURNAL_BYTES_MAX {
                break;
            }
            bytes += write.len();
            out.push(JournalEntry {
                seq: seq.value(),
                write: write.to_vec(),
            });
        }
        Ok(out)
    }

    /// A proof of `doc`'s presence (with its digest) or absence at the
    /// dataset's current state root; check it with [`crate::verify_proof`].
    pub fn prove(&self, dataset: &DatasetId, doc: &DocId) -> Result<MerkleProof, StoreError> {
        let handle = self.dataset(dataset).ok_or(StoreError::DatasetNotFound)?;
        handle.with_tree(|tree| {
            let txn = handle.db.begin_read()?;
            let meta = read_meta(&txn)?;
            let ids = txn.open_table(layout::IDS)?;
            merkle::prove(
                &ids,
                tree,
                meta.dataset,
                *doc,
                meta.seq,
                merkle::descriptor_hash(&meta.descriptor, &meta.indexes),
            )
        })
    }

    /// Each of `docs` (in the order given) with the proof of its presence
    /// or absence, all read in one transaction at the state returned.
    /// Stops before the documents and proofs pass `bytes_max` bytes (at
    /// least one is always returned), so the caller asks for the rest.
    pub fn prove_docs(
        &self,
        dataset: &DatasetId,
        docs: &[DocId],
        bytes_max: usize,
    ) -> Result<(Vec<ProvenDoc>, StatePin), StoreError> {
        let handle = self.dataset(dataset).ok_or(StoreError::DatasetNotFound)?;
        handle
            .with_tree(|tree| Self::prove_docs_in(&handle.db.begin_read()?, tree, docs, bytes_max))
    }

    fn prove_docs_in(
        txn: &ReadTransaction,
        tree: &TreeNodes,
        docs: &[DocId],
        bytes_max: usize,
    ) -> Result<(Vec<ProvenDoc>, StatePin), StoreError> {
        let meta = read_meta(txn)?;
        let ids = txn.open_table(layout::IDS)?;
        let docs_table = txn.open_table(layout::DOCS)?;
        let descriptor_hash = merkle::descriptor_hash(&meta.descriptor, &meta.indexes);
        let mut proven = Vec::new();
        let mut bytes = 0usize;
        for doc in docs {
            let sealed = match layout::row_of(&ids, doc)? {
                Some(row) => Some(query::read_sealed(&docs_table, row, doc)?),
                None => None,
            };
            let proof = merkle::prove(&ids, tree, meta.dataset, *doc, meta.seq, descriptor_hash)?;
            // What the entry adds to the answer, to within its framing.
            let size = sealed
                .as_ref()
                .map_or(0, |s| s.ciphertext.len() + s.wrapped_key.len() + 64)
                + proof.bucket.len() * (DocId::LEN + DocDigest::LEN)
                + 1024;
            if !proven.is_empty() && bytes.saturating_add(size) > bytes_max {
                break;
            }
            bytes = bytes.saturating_add(size);
            proven.push(ProvenDoc { sealed, proof });
        }
        let state = StatePin {
            seq: meta.seq,
            state_root: meta.state_root,
        };
        Ok((proven, state))
    }

    /// Full integrity check of one dataset: every record decodes, every
    /// invariant of the layout holds (see `apply`), the Merkle tree and the
    /// state root recompute. O(dataset size): an operator or test tool,
    /// never run at start-up. Any violation is `StoreError::Corrupt`.
    pub fn check(&self, dataset: &DatasetId) -> Result<CheckReport, StoreError> {
        let (_, txn) = self.read_txn(dataset)?;
        check_dataset::<O>(&txn)
    }
}

fn corrupt(text: String) -> StoreError {
    StoreError::Corrupt(text)
}

fn check_dataset<O: OreOrder>(txn: &ReadTransaction) -> Result<CheckReport, StoreError> {
    let meta = read_meta(txn)?;
    let kinds: HashMap<_, _> = meta.indexes.iter().map(|d| (d.id, d.kind)).collect();
    let ids = txn.open_table(layout::IDS)?;
    let docs = txn.open_table(layout::DOCS)?;
    let entries_table = txn.open_table(layout::ENTRIES)?;
    let postings = txn.open_table(layout::POSTINGS)?;
    let range = txn.open_multimap_table(layout::range_table::<O>())?;
    let multi = txn.open_table(layout::MULTI)?;
    let journal = txn.open_table(layout::JOURNAL)?;

    let doc_count = ids.len()?;
    if doc_count != meta.doc_count {
        return Err(corrupt(format!(
            "meta counts {} documents, ids table holds {doc_count}",
            meta.doc_count
        )));
    }
    if docs.len()? != doc_count || entries_table.len()? != doc_count {
        return Err(corrupt(
            "ids, docs and entries tables differ in size".into(),
        ));
    }
    // Row ids are never given twice: every stored row is below the
    // counter (the tables are in row order, so their last key is the
    // largest).
    for (table, last) in [("docs", docs.last()?), ("entries", entries_table.last()?)] {
        if let Some((key, _)) = last {
            let row = layout::row_id(key.value())?;
            if row >= meta.next_row {
                return Err(corrupt(format!(
                    "{table} holds row {row}, at or above the next row id {}",
                    meta.next_row
                )));
            }
        }
    }
    let mut postings_expected = 0u64;
    let mut range_expected = 0u64;
    let mut multi_expected = 0u64;
    // Each id's row holds a docs record naming that id, so distinct ids
    // have distinct rows; with equal table sizes, ids, docs and entries are
    // in one-to-one correspondence.
    for item in ids.iter()? {
        let (key, value) = item?;
        let doc = layout::doc_id(key.value())?;
        let (row, digest) = layout::decode_id_record(value.value())?;
        let row_key = layout::row_key(row);
        let doc_guard = docs
            .get(&row_key[..])?
            .ok_or_else(|| corrupt(format!("document {doc} has no record at row {row}")))?;
        let (stored, sealed_bytes) = layout::split_doc_record(doc_guard.value())?;
        if stored != doc {
            return Err(corrupt(format!(
                "row {row} holds document {stored}, ids say {doc}"
            )));
        }
        let sealed = SealedDoc::from_bytes(sealed_bytes)
            .map_err(|e| corrupt(format!("document {doc} record: {e}")))?;
        if sealed.version == 0 {
            return Err(corrupt(format!("document {doc} has version 0")));
        }
        let entries_guard = entries_table
            .get(&row_key[..])?
            .ok_or_else(|| corrupt(format!("document {doc} has no entries record")))?;
        let entries: Vec<IndexEntry> = layout::decode_entries(entries_guard.value())?;
        if digest != DocDigest::compute(sealed_bytes, entries_guard.value()) {
            return Err(corrupt(format!(
                "document {doc} digest does not match its records"
            )));
        }
        for entry in &entries {
            match (kinds.get(&entry.index), &entry.values) {
                (Some(IndexKind::Eq | IndexKind::Text), IndexValues::Tokens(tokens)) => {
                    let distinct: BTreeSet<_> = tokens.iter().collect();
                    for token in &distinct {
                        let key = layout::posting_key(&entry.index, token, row);
                        match postings.get(&key[..])? {
                            Some(named) if named.value() == doc.0 => {}
                            Some(_) => {
                                return Err(corrupt(format!(
                                    "a posting of row {row} names another document than {doc}"
                                )))
                            }
                            None => {
                                return Err(corrupt(format!("document {doc} misses a posting")))
                            }
                        }
                    }
                    postings_expected += distinct.len() as u64;
                }
                (Some(IndexKind::Range), IndexValues::Ore(cts)) => {
                    // Ciphertexts of equal plaintexts share one key.
                    let mut classes: Vec<&Vec<u8>> = cts.iter().collect();
                    classes.sort_by(|a, b| O::compare(a, b));
                    classes.dedup_by(|a, b| O::compare(a, b).is_eq());
                    let expected_value = layout::range_value(row, &doc);
                    for ct in &classes {
                        let key = range_key(&entry.index, MARKER_VALUE, ct);
                        let mut found = false;
                        for value in range.get(key.as_slice())? {
                            if value?.value() == expected_value {
                                found = true;
                                break;
                            }
                        }
                        if !found {
                            return Err(corrupt(format!("document {doc} misses a range posting")));
                        }
                    }
                    range_expected += classes.len() as u64;
                    if layout::multi_valued::<O>(cts) {
                        let key = layout::multi_key(&entry.index, row);
                        match multi.get(&key[..])? {
                            Some(named) if named.value() == doc.0 => {}
                            _ => {
                                return Err(corrupt(format!(
                                    "document {doc} is not marked multi-valued"
                                )))
                            }
                        }
                        multi_expected += 1;
                    }
                }
                _ => {
                    return Err(corrupt(format!(
                        "document {doc} holds an entry for an undeclared or other-kind index"
                    )))
                }
            }
        }
    }
    // Every expected posting exists and the counts agree: the sets are equal.
    let postings_count = postings.len()?;
    if postings_count != postings_expected {
        return Err(corrupt(format!(
            "postings table holds {postings_count} postings, documents imply {postings_expected}"
        )));
    }
    let range_count = range.len()?;
    if range_count != range_expected {
        return Err(corrupt(format!(
            "range table holds {range_count} postings, documents imply {range_expected}"
        )));
    }

    // Every expected mark exists and the counts agree: no stale marks.
    let multi_count = multi.len()?;
    if multi_count != multi_expected {
        return Err(corrupt(format!(
            "multi-valued table holds {multi_count} marks, documents imply {multi_expected}"
        )));
    }

    let tree_root = merkle::recompute_root(&ids)?
        .map_err(|bucket| corrupt(format!("bucket {bucket:#06x} is above BUCKET_DOCS_MAX")))?;
    let state_root = merkle::state_root(
        &meta.dataset,
        &tree_root,
        &merkle::descriptor_hash(&meta.descriptor, &meta.indexes),
        meta.seq,
    );
    if state_root != meta.state_root {
        return Err(corrupt("stored state root does not match the state".into()));
    }

    // A dataset imported from a snapshot holds the writes after the
    // snapshot's seq only.
    let floor = read_journal_floor(txn)?;
    let mut next_seq = floor;
    for item in journal.iter()? {
        let (seq, bytes) = item?;
        let seq = seq.value();
        if seq != next_seq {
            return Err(corrupt(format!("journal skips from {next_seq} to {seq}")));
        }
        let write = SignedWrite::from_bytes(bytes.value())
            .map_err(|e| corrupt(format!("journal entry {seq}: {e}")))?;
        if write.body.seq != seq || write.body.dataset != meta.dataset {
            return Err(corrupt(format!("journal entry {seq} is another write")));
        }
        next_seq += 1;
    }
    if next_seq != meta.seq + 1 {
        return Err(corrupt(format!(
            "journal ends at {next_seq}, dataset is at seq {}",
            meta.seq
        )));
    }
    Ok(CheckReport {
        docs: doc_count,
        postings: postings_count,
        range_postings: range_count,
        multi_valued: multi_count,
        journal_entries: next_seq - floor,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::order::PlaintextOrder;
    use fluence_proto::{DocOp, IndexDecl, IndexId, Precondition, Signature, Token, WriteBody};

    const EQ: IndexId = IndexId([1; 16]);

    fn write(seq: u64, action: Action) -> SignedWrite {
        SignedWrite {
            body: WriteBody {
                dataset: DatasetId([1; 32]),
                seq,
                action,
            },
            signature: Signature([0; 64]),
        }
    }

    /// A batch made for the indexes the test dataset declares now.
    fn batch(store: &Store<PlaintextOrder>, ops: Vec<DocOp>) -> Action {
        let indexes = store.info(&DatasetId([1; 32])).unwrap().indexes;
        Action::Batch {
            schema: fluence_proto::schema_digest(&indexes),
            ops,
        }
    }

    fn doc(n: u8) -> DocId {
        DocId([n; 16])
    }

    /// Pages of `plan` found with a tiny rejection budget, concatenated.
    fn pages_with_budget(
        store: &Store<PlaintextOrder>,
        plan: &Plan,
        budget: u64,
    ) -> (Vec<DocId>, usize) {
        let (_, txn) = store.read_txn(&DatasetId([1; 32])).unwrap();
        let meta = read_meta(&txn).unwrap();
        let mut found = Vec::new();
        let mut after = None;
        for pages in 1..=1000 {
            let page =
                query::find::<PlaintextOrder>(&txn, &meta, plan, after, 100, budget).unwrap();
            found.extend(page.docs.iter().map(|d| d.doc));
            match page.next {
                None => return (found, pages),
                Some(next) => {
                    assert!(Some(next) > after);
                    after = Some(next);
                }
            }
        }
        panic!("query did not finish");
    }

    #[test]
    fn an_exhausted_budget_answers_early_with_a_resumable_cursor() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::<PlaintextOrder>::open(dir.path()).unwrap();
        store
            .apply(&write(
                0,
                Action::Create {
                    owner: PublicKey([1; 32]),
                    name_tag: [0; 32],
                    descriptor: vec![],
                    indexes: vec![IndexDecl {
                        id: EQ,
                        kind: IndexKind::Eq,
                        unique: false,
                    }],
                    cluster: None,
                },
            ))
            .unwrap();
        // Doc n holds tokens {n % 2, n % 3 + 10}.
        let ops = (0..60u8)
            .map(|n| DocOp::Put {
                doc: doc(n),
                expect: Precondition::Absent,
                sealed: SealedDoc {
                    version: 1,
                    wrapped_key: vec![],
                    ciphertext: vec![n],
                },
                entries: vec![IndexEntry {
                    index: EQ,
                    values: IndexValues::Tokens(vec![Token([n % 2; 16]), Token([n % 3 + 10; 16])]),
                }],
            })
            .collect();
        store.apply(&write(1, batch(&store, ops))).unwrap();
        let tokens = |t: u8| Plan::Tokens {
            index: EQ,
            any_of: vec![Token([t; 16])],
        };

        // No match at all: 30 rejections, 4 per page with budget 3.
        let none = Plan::And(vec![tokens(0), tokens(1)]);
        let (found, pages) = pages_with_budget(&store, &none, 3);
        assert!(found.is_empty());
        assert!(pages >= 7, "the budget must have cut pages short ({pages})");

        // Matches interleaved with rejections: the union of short pages is
        // the full answer.
        let some = Plan::And(vec![tokens(0), tokens(10)]);
        let expected: Vec<DocId> = (0..60u8).filter(|n| n % 6 == 0).map(doc).collect();
        let (full, one_page) = pages_with_budget(&store, &some, query::CANDIDATES_PER_PAGE_MAX);
        assert_eq!((full.clone(), one_page), (expected.clone(), 1));
        let (cut, pages) = pages_with_budget(&store, &some, 1);
        assert_eq!(cut, expected);
        assert!(pages > 1);
        // Ids that do not exist spend the budget too.
        let ids = Plan::Ids((100..120u8).map(doc).chain([doc(5)]).collect());
        let (found, pages) = pages_with_budget(&store, &ids, 2);
        assert_eq!(found, vec![doc(5)]);
        assert!(pages > 1);
        // An Or of paused children still returns every match.
        let or = Plan::Or(vec![some.clone(), Plan::And(vec![tokens(1), tokens(11)])]);
        let expected: Vec<DocId> = (0..60u8)
            .filter(|n| n % 6 == 0 || (n % 2 == 1 && n % 3 == 1))
            .map(doc)
            .collect();
        assert_eq!(pages_with_budget(&store, &or, 1).0, expected);
        // With no budget an And pauses at its first rejected candidate; a
        // sibling that found that very document must win the tie, or the
        // cursor would skip it.
        // (`{11, 1}` is estimated larger than `{0}`, so `{0}` drives and
        // the And's first candidate is doc 0.)
        let eleven_or_one = Plan::Tokens {
            index: EQ,
            any_of: vec![Token([11; 16]), Token([1; 16])],
        };
        let tie = Plan::Or(vec![
            Plan::Ids(vec![doc(0)]),
            Plan::And(vec![tokens(0), eleven_or_one]),
        ]);
        let expected: Vec<DocId> = (0..60u8)
            .filter(|n| *n == 0 || n % 6 == 4)
            .map(doc)
            .collect();
        assert_eq!(pages_with_budget(&store, &tie, 0).0, expected);
    }

    const R1: IndexId = IndexId([0x41; 16]);
    const R2: IndexId = IndexId([0x42; 16]);

    fn range_decls() -> Vec<IndexDecl> {
        vec![
            IndexDecl {
                id: R1,
                kind: IndexKind::Range,
                unique: false,
            },
            IndexDecl {
                id: R2,
                kind: IndexKind::Range,
                unique: false,
            },
        ]
    }

    fn create_ranges(store: &Store<PlaintextOrder>) {
        store
            .apply(&write(
                0,
                Action::Create {
                    owner: PublicKey([1; 32]),
                    name_tag: [0; 32],
                    descriptor: vec![],
                    indexes: range_decls(),
                    cluster: None,
                },
            ))
            .unwrap();
    }

    fn ore(v: u8) -> Vec<u8> {
        vec![v]
    }

    /// A put of doc `n` at `version` with the given values per index.
    fn put(n: u8, version: u64, r1: &[u8], r2: &[u8]) -> DocOp {
        let mut entries = Vec::new();
        for (index, values) in [(R1, r1), (R2, r2)] {
            if !values.is_empty() {
                entries.push(IndexEntry {
                    index,
                    values: IndexValues::Ore(values.iter().map(|v| ore(*v)).collect()),
                });
            }
        }
        DocOp::Put {
            doc: doc(n),
            expect: if version == 1 {
                Precondition::Absent
            } else {
                Precondition::Version(version - 1)
            },
            sealed: SealedDoc {
                version,
                wrapped_key: vec![],
                ciphertext: vec![n],
            },
            entries,
        }
    }

    /// The `multi` table's (index, doc) pairs, read directly.
    fn marks(store: &Store<PlaintextOrder>) -> BTreeSet<(IndexId, DocId)> {
        let (_, txn) = store.read_txn(&DatasetId([1; 32])).unwrap();
        let table = txn.open_table(layout::MULTI).unwrap();
        let mut out = BTreeSet::new();
        for item in table.iter().unwrap() {
            let (key, value) = item.unwrap();
            let (index, _) = layout::split_multi_key(key.value()).unwrap();
            out.insert((index, layout::doc_id(value.value()).unwrap()));
        }
        out
    }

    #[test]
    fn multi_valued_marks_follow_every_write() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::<PlaintextOrder>::open(dir.path()).unwrap();
        create_ranges(&store);
        let set = |pairs: &[(IndexId, u8)]| -> BTreeSet<(IndexId, DocId)> {
            pairs.iter().map(|(i, n)| (*i, doc(*n))).collect()
        };

        // Two distinct values mark; one value, or equal values, do not.
        let ops = vec![
            put(1, 1, &[5, 25], &[]),
            put(2, 1, &[7], &[3, 4, 3]),
            put(3, 1, &[9, 9], &[]),
        ];
        store.apply(&write(1, batch(&store, ops))).unwrap();
        assert_eq!(marks(&store), set(&[(R1, 1), (R2, 2)]));
        assert_eq!(store.check(&DatasetId([1; 32])).unwrap().multi_valued, 2);

        // An update to one value removes the mark, to two adds it.
        let ops = vec![put(1, 2, &[5], &[]), put(3, 2, &[9, 10], &[1, 2])];
        store.apply(&write(2, batch(&store, ops))).unwrap();
        assert_eq!(marks(&store), set(&[(R2, 2), (R1, 3), (R2, 3)]));

        // A refused batch changes nothing, marks included.
        let ops = vec![
            put(1, 3, &[1, 2], &[]),
            DocOp::Delete {
                doc: doc(2),
                expect_version: 9,
            },
        ];
        assert!(store.apply(&write(3, batch(&store, ops))).is_err());
        assert_eq!(marks(&store), set(&[(R2, 2), (R1, 3), (R2, 3)]));

        // A delete removes the doc's marks in every index.
        let ops = vec![DocOp::Delete {
            doc: doc(3),
            expect_version: 2,
        }];
        store.apply(&write(3, batch(&store, ops))).unwrap();
        assert_eq!(marks(&store), set(&[(R2, 2)]));

        // A reindex dropping an index drops its marks and keeps the others;
        // redeclaring one with another kind drops them too.
        let ops = vec![put(4, 1, &[1, 2], &[1, 2])];
        store.apply(&write(4, batch(&store, ops))).unwrap();
        assert_eq!(marks(&store), set(&[(R2, 2), (R1, 4), (R2, 4)]));
        let reindex = Action::Reindex {
            descriptor: vec![],
            indexes: vec![IndexDecl {
                id: R1,
                kind: IndexKind::Range,
                unique: false,
            }],
        };
        store.apply(&write(5, reindex)).unwrap();
        assert_eq!(marks(&store), set(&[(R1, 4)]));
        store.check(&DatasetId([1; 32])).unwrap();
        let reindex = Action::Reindex {
            descriptor: vec![],
            indexes: vec![IndexDecl {
                id: R1,
                kind: IndexKind::Eq,
                unique: false,
            }],
        };
        store.apply(&write(6, reindex)).unwrap();
        assert_eq!(marks(&store), BTreeSet::new());
        assert_eq!(store.check(&DatasetId([1; 32])).unwrap().multi_valued, 0);
    }

    fn range(lower: Option<(u8, bool)>, upper: Option<(u8, bool)>) -> Plan {
        let bound = |b: Option<(u8, bool)>| {
            b.map(|(v, inclusive)| fluence_proto::OreBound {
                ct: ore(v),
                inclusive,
            })
        };
        Plan::Range {
            index: R1,
            lower: bound(lower),
            upper: bound(upper),
        }
    }

    #[test]
    fn a_meet_paused_by_the_budget_resumes_without_losing_matches() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::<PlaintextOrder>::open(dir.path()).unwrap();
        create_ranges(&store);
        // Docs 0..60: n % 3 == 0 holds one value in [10, 20); n % 3 == 1
        // holds {5, 25} (a match only through the multi walk); n % 3 == 2
        // holds {1, 2} (multi-valued, rejected by the walk).
        let ops = (0..60u8)
            .map(|n| match n % 3 {
                0 => put(n, 1, &[15], &[]),
                1 => put(n, 1, &[5, 25], &[]),
                _ => put(n, 1, &[1, 2], &[]),
            })
            .collect();
        store.apply(&write(1, batch(&store, ops))).unwrap();
        let meet = Plan::And(vec![
            range(Some((10, true)), None),
            range(None, Some((20, false))),
        ]);
        let mut expected: Vec<DocId> = (0..60u8).filter(|n| n % 3 != 2).map(doc).collect();
        expected.sort();
        let (full, pages) = pages_with_budget(&store, &meet, query::CANDIDATES_PER_PAGE_MAX);
        assert_eq!((full, pages), (expected.clone(), 1));
        for budget in [0, 1, 3] {
            let (cut, pages) = pages_with_budget(&store, &meet, budget);
            assert_eq!(cut, expected, "budget {budget}");
            assert!(pages > 1, "budget {budget}: rejections must cut pages");
        }
        // Disjoint intervals: only the multi walk can match.
        let disjoint = Plan::And(vec![
            range(Some((20, true)), None),
            range(None, Some((5, true))),
        ]);
        let mut expected: Vec<DocId> = (0..60u8).filter(|n| n % 3 == 1).map(doc).collect();
        expected.sort();
        assert_eq!(pages_with_budget(&store, &disjoint, 0).0, expected);
    }
}
