//! [`ChainStore`]: the finalized blocks of one dataset's chain with their
//! finalization certificates, in one redb file, for `fluence chain show`
//! and for a member to know which height its dataset state is at.
//!
//! # File layout (`<dataset-id-hex>.chain.redb`)
//!
//! - table `meta`, key `"chain"`: format version `u16` ‖ dataset id (32).
//! - table `blocks`: height `u64` → [`FinalizedBlock`] canonical bytes:
//!   block bytes (`u32` length ‖ block encoding) ‖ certificate bytes (`u32`
//!   length ‖ opaque bytes of the consensus engine, at most
//!   `CERTIFICATE_LEN_MAX`). An empty certificate means the block was
//!   finalized through a descendant's certificate (the consensus engine
//!   finalizes ancestors with their descendant; the hash chain links them).
//! - table `writes`: `WriteBody::digest` (32) → height `u64` ‖ seq `u64`:
//!   where each client write was finalized, written in the same
//!   transaction as its block, so a resubmitted write is recognised and
//!   acknowledged instead of applied twice.
//!
//! - table `meta`, key `"floor"` (only on a member that synced from a
//!   snapshot): the height `u64` LE of the first block this chain holds.
//!   That block was installed by [`ChainStore::install_floor`] with its own
//!   certificate; the blocks below it were never stored here (the member
//!   took the dataset's state at that height from a peer's snapshot).
//!
//! Invariants, asserted on every append: heights start at 1 (the genesis
//! block is implicit, [`Block::genesis`]), or at the floor, and grow by
//! one; each block names the previous block's hash as its parent. Appends
//! commit with immediate durability: a block reported as stored survives a
//! crash.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use fluence_proto::limits::{BLOCK_LEN_MAX, CERTIFICATE_LEN_MAX};
use fluence_proto::{DatasetId, Decode, DecodeError, Encode, Hash32, Reader, Writer};
use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};

use crate::block::{hash_encoded, Block};

/// Version of the chain file layout, in its meta record.
pub const CHAIN_FORMAT_VERSION: u16 = 1;
/// Extension of a chain file: `<dataset-id-hex>.chain.redb`.
pub const CHAIN_FILE_SUFFIX: &str = "chain.redb";
/// Blocks returned by one [`ChainStore::range`] call.
pub const CHAIN_RANGE_MAX: usize = 1_000;

const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const META_KEY: &str = "chain";
const FLOOR_KEY: &str = "floor";
const BLOCKS: TableDefinition<u64, &[u8]> = TableDefinition::new("blocks");
const WRITES: TableDefinition<&[u8; 32], (u64, u64)> = TableDefinition::new("writes");

/// Where a client write was finalized.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteLocation {
    pub height: u64,
    pub seq: u64,
}

/// A finalized block and the certificate (2f + 1 member signatures) that
/// finalized it, as the consensus engine encoded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FinalizedBlock {
    pub block: Block,
    pub certificate: Vec<u8>,
}

impl Encode for FinalizedBlock {
    fn encode(&self, writer: &mut Writer) {
        writer.bytes(&self.block.to_bytes());
        writer.bytes(&self.certificate);
    }
}

impl Decode for FinalizedBlock {
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let block_bytes = reader.take_len_prefixed(BLOCK_LEN_MAX, "finalized block")?;
        let block = Block::from_untrusted(block_bytes)?;
        let certificate = reader.bytes(CERTIFICATE_LEN_MAX, "finalization certificate")?;
        Ok(FinalizedBlock { block, certificate })
    }
}

/// Small extension of the codec reader: a length-prefixed slice without
/// copying it.
trait TakeLenPrefixed<'a> {
    fn take_len_prefixed(
        &mut self,
        max: usize,
        what: &'static str,
    ) -> Result<&'a [u8], DecodeError>;
}

impl<'a> TakeLenPrefixed<'a> for Reader<'a> {
    fn take_len_prefixed(
        &mut self,
        max: usize,
        what: &'static str,
    ) -> Result<&'a [u8], DecodeError> {
        let len = self.len(max, what)?;
        self.take(len, what)
    }
}

/// The newest block of a chain: the genesis block until one is appended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainTip {
    pub height: u64,
    pub hash: Hash32,
    pub state_root: Hash32,
    pub timestamp_ms: u64,
}

impl ChainTip {
    fn of(block: &Block, hash: Hash32) -> Self {
        ChainTip {
            height: block.height,
            hash,
            state_root: block.state_root,
            timestamp_ms: block.timestamp_ms,
        }
    }
}

/// Why the chain file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum ChainStoreError {
    #[error("chain storage engine error: {0}")]
    Db(#[from] redb::Error),
    #[error("I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("corrupt chain file: {0}")]
    Corrupt(String),
    #[error("chain file format {found} is not supported (this build reads {supported})")]
    UnsupportedFormat { found: u16, supported: u16 },
    #[error("chain file holds dataset {found}, expected {expected}")]
    WrongDataset {
        expected: DatasetId,
        found: DatasetId,
    },
    #[error("block {found} does not extend the chain tip {tip}")]
    NotNext { tip: u64, found: u64 },
    #[error("block {height} names parent {found}, the tip hashes to {expected}")]
    WrongParent {
        height: u64,
        expected: Hash32,
        found: Hash32,
    },
    #[error("block {height} is for another dataset")]
    ForeignBlock { height: u64 },
    #[error("certificate of {len} bytes is above CERTIFICATE_LEN_MAX")]
    CertificateTooLong { len: usize },
    #[error("a floor can only be installed in an empty chain (this one is at height {tip})")]
    FloorOnNonEmpty { tip: u64 },
    #[error("a floor block needs its own finalization certificate (or, as an epoch's first block, a membership change) and a height above 0")]
    FloorWithoutCertificate,
}

macro_rules! redb_into_chain_error {
    ($($source:ty),*) => {$(
        impl From<$source> for ChainStoreError {
            fn from(error: $source) -> Self {
                ChainStoreError::Db(error.into())
            }
        }
    )*};
}
redb_into_chain_error!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    redb::SetDurabilityError
);

impl From<DecodeError> for ChainStoreError {
    fn from(error: DecodeError) -> Self {
        ChainStoreError::Corrupt(error.to_string())
    }
}

/// A block's stored record (see the module docs) and its hash.
fn record(block: &Block, certificate: &[u8]) -> Result<(Vec<u8>, Hash32), ChainStoreError> {
    let block_bytes = block.to_bounded_bytes()?;
    let hash = hash_encoded(&block_bytes);
    let mut writer = Writer::new();
    writer.bytes(&block_bytes);
    writer.bytes(certificate);
    Ok((writer.into_bytes(), hash))
}

/// The `WriteBody::digest` of each write of `block`, in order.
pub fn write_digests(block: &Block) -> Vec<[u8; 32]> {
    block.writes.iter().map(|w| w.body.digest()).collect()
}

/// Records where each write of `block` was finalized, in the block's
/// transaction; `digests` are the writes' [`write_digests`].
fn index_writes(
    txn: &redb::WriteTransaction,
    block: &Block,
    digests: &[[u8; 32]],
) -> Result<(), ChainStoreError> {
    if digests.len() != block.writes.len() {
        return Err(ChainStoreError::Corrupt(format!(
            "{} write digests for the {} writes of block {}",
            digests.len(),
            block.writes.len(),
            block.height
        )));
    }
    let mut writes = txn.open_table(WRITES)?;
    for (write, digest) in block.writes.iter().zip(digests) {
        // The first finalization of a body wins: after a Drop and a new
        // Create, sequence numbers restart, but a body names its seq, so a
        // repeated body is the same write again and the store refuses it.
        if writes.get(digest)?.is_none() {
            writes.insert(digest, (block.height, write.body.seq))?;
        }
    }
    Ok(())
}

/// The finalized blocks of one dataset's chain.
pub struct ChainStore {
    dataset: DatasetId,
    db: Database,
    /// The newest block, once read or appended: every append checks it,
    /// and reading it from the file means decoding (and hashing) the whole
    /// block, megabytes for a large batch. Only this store writes the file
    /// (redb opens a file once per process).
    tip: Mutex<Option<ChainTip>>,
}

impl std::fmt::Debug for ChainStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChainStore")
            .field("dataset", &self.dataset)
            .finish_non_exhaustive()
    }
}

impl ChainStore {
    /// Where the chain of `dataset` lives inside `dir`.
    pub fn path_in(dir: &Path, dataset: &DatasetId) -> PathBuf {
        dir.join(format!("{}.{CHAIN_FILE_SUFFIX}", dataset.to_hex()))
    }

    /// Opens (creating if needed) the chain of `dataset` in `dir`.
    pub fn open(dir: &Path, dataset: DatasetId) -> Result<Self, ChainStoreError> {
        std::fs::create_dir_all(dir).map_err(|source| ChainStoreError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let db = Database::create(Self::path_in(dir, &dataset))?;
        let store = ChainStore {
            dataset,
            db,
            tip: Mutex::new(None),
        };
        store.init_meta()?;
        Ok(store)
    }

    fn init_meta(&self) -> Result<(), ChainStoreError> {
        let mut txn = self.db.begin_write()?;
        txn.set_durability(Durability::Immediate)?;
        {
            let mut meta = txn.open_table(META)?;
            let existing = meta.get(META_KEY)?.map(|v| v.value().to_vec());
            match existing {
                Some(bytes) => {
                    let mut reader = Reader::new(&bytes);
                    let version = reader.u16("chain format version")?;
                    if version != CHAIN_FORMAT_VERSION {
                        return Err(ChainStoreError::UnsupportedFormat {
                            found: version,
                            supported: CHAIN_FORMAT_VERSION,
                        });
                    }
                    let found = DatasetId::decode(&mut reader)?;
                    reader.finish()?;
                    if found != self.dataset {
                        return Err(ChainStoreError::WrongDataset {
                            expected: self.dataset,
                            found,
                        });
                    }
                }
                None => {
                    let mut writer = Writer::new();
                    writer.u16(CHAIN_FORMAT_VERSION);
                    self.dataset.encode(&mut writer);
                    meta.insert(META_KEY, writer.into_bytes().as_slice())?;
                }
            }
            // Creates the tables so readers never meet a missing one.
            txn.open_table(BLOCKS)?;
            txn.open_table(WRITES)?;
        }
        txn.commit()?;
        Ok(())
    }

    /// The dataset this chain belongs to.
    pub fn dataset(&self) -> DatasetId {
        self.dataset
    }

    /// The newest stored block (the genesis block if none is).
    pub fn tip(&self) -> Result<ChainTip, ChainStoreError> {
        // Held while reading, so an append's commit (under the same lock)
        // is either seen or not yet made, never cached over.
        let mut cached = self.cached_tip();
        if let Some(tip) = *cached {
            return Ok(tip);
        }
        let tip = self.read_tip()?;
        *cached = Some(tip);
        Ok(tip)
    }

    fn cached_tip(&self) -> std::sync::MutexGuard<'_, Option<ChainTip>> {
        // Only ever replaced whole: a panic elsewhere cannot leave it torn.
        self.tip.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn read_tip(&self) -> Result<ChainTip, ChainStoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(BLOCKS)?;
        let last = table
            .last()?
            .map(|(height, bytes)| (height.value(), bytes.value().to_vec()));
        match last {
            None => {
                let genesis = Block::genesis(self.dataset);
                Ok(ChainTip::of(&genesis, genesis.hash()))
            }
            Some((height, bytes)) => {
                let finalized = self.decode_at(height, &bytes)?;
                let hash = finalized.block.hash();
                Ok(ChainTip::of(&finalized.block, hash))
            }
        }
    }

    fn decode_at(&self, height: u64, bytes: &[u8]) -> Result<FinalizedBlock, ChainStoreError> {
        let finalized = FinalizedBlock::from_bytes(bytes)?;
        if finalized.block.height != height {
            return Err(ChainStoreError::Corrupt(format!(
                "row {height} holds block {}",
                finalized.block.height
            )));
        }
        if finalized.block.dataset != self.dataset {
            return Err(ChainStoreError::ForeignBlock { height });
        }
        Ok(finalized)
    }

    /// The block at `height` with its certificate (`None` above the tip and
    /// for the implicit genesis block).
    pub fn get(&self, height: u64) -> Result<Option<FinalizedBlock>, ChainStoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(BLOCKS)?;
        match table.get(height)? {
            None => Ok(None),
            Some(bytes) => Ok(Some(self.decode_at(height, bytes.value())?)),
        }
    }

    /// Where the write whose body digest is `digest` was finalized, if it
    /// was.
    pub fn find_write(&self, digest: &[u8; 32]) -> Result<Option<WriteLocation>, ChainStoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(WRITES)?;
        Ok(table.get(digest)?.map(|guard| {
            let (height, seq) = guard.value();
            WriteLocation { height, seq }
        }))
    }

    /// The height of the first block this chain holds when the member
    /// synced from a snapshot (see [`ChainStore::install_floor`]); `None`
    /// for a chain that starts at height 1.
    pub fn floor_height(&self) -> Result<Option<u64>, ChainStoreError> {
        let txn = self.db.begin_read()?;
        let meta = txn.open_table(META)?;
        let Some(guard) = meta.get(FLOOR_KEY)? else {
            return Ok(None);
        };
        let bytes: [u8; 8] = guard
            .value()
            .try_into()
            .map_err(|_| ChainStoreError::Corrupt("floor record is not 8 bytes".into()))?;
        Ok(Some(u64::from_le_bytes(bytes)))
    }

    /// The first block of a chain that starts at a floor, with the
    /// certificate it was installed with; `None` for a chain that starts
    /// at height 1.
    pub fn floor(&self) -> Result<Option<FinalizedBlock>, ChainStoreError> {
        let Some(height) = self.floor_height()? else {
            return Ok(None);
        };
        let block = self.get(height)?.ok_or_else(|| {
            ChainStoreError::Corrupt(format!("the floor block {height} is missing"))
        })?;
        Ok(Some(block))
    }

    /// Starts an empty chain at `finalized`, a block above the genesis
    /// block with its own finalization certificate: a member that rebuilt
    /// the dataset from a peer's snapshot taken at that block keeps its
    /// chain from there on. The caller has verified the certificate (the
    /// chain store treats it as opaque bytes). Later appends extend it as
    /// usual; [`ChainStore::get`] answers `None` below it. Durable when it
    /// returns.
    pub fn install_floor(&self, finalized: &FinalizedBlock) -> Result<ChainTip, ChainStoreError> {
        if finalized.block.height == 0 || finalized.certificate.is_empty() {
            return Err(ChainStoreError::FloorWithoutCertificate);
        }
        self.install(finalized)
    }

    /// Installs the first block of a later membership epoch as the floor
    /// of an empty chain, for a newcomer that took the dataset's state at
    /// that block. No certificate is needed: the node checked the block's
    /// hash against the membership change it carries, which the previous
    /// members finalized (possibly only through a descendant, which is why
    /// the block may have no certificate of its own).
    pub fn install_epoch_base(&self, base: &Block) -> Result<ChainTip, ChainStoreError> {
        if base.height == 0 || base.change.is_none() {
            return Err(ChainStoreError::FloorWithoutCertificate);
        }
        self.install(&FinalizedBlock {
            block: base.clone(),
            certificate: Vec::new(),
        })
    }

    fn install(&self, finalized: &FinalizedBlock) -> Result<ChainTip, ChainStoreError> {
        let block = &finalized.block;
        if block.dataset != self.dataset {
            return Err(ChainStoreError::ForeignBlock {
                height: block.height,
            });
        }
        if finalized.certificate.len() > CERTIFICATE_LEN_MAX {
            return Err(ChainStoreError::CertificateTooLong {
                len: finalized.certificate.len(),
            });
        }
        let (record, hash) = record(block, &finalized.certificate)?;
        let mut txn = self.db.begin_write()?;
        txn.set_durability(Durability::Immediate)?;
        {
            let mut table = txn.open_table(BLOCKS)?;
            if let Some((tip, _)) = table.last()? {
                return Err(ChainStoreError::FloorOnNonEmpty { tip: tip.value() });
            }
            table.insert(block.height, record.as_slice())?;
            index_writes(&txn, block, &write_digests(block))?;
            let mut meta = txn.open_table(META)?;
            meta.insert(FLOOR_KEY, &block.height.to_le_bytes()[..])?;
        }
        let tip = ChainTip::of(block, hash);
        let mut cached = self.cached_tip();
        txn.commit()?;
        *cached = Some(tip);
        Ok(tip)
    }

    /// Up to `limit` (at most [`CHAIN_RANGE_MAX`]) blocks from `from` on.
    pub fn range(&self, from: u64, limit: usize) -> Result<Vec<FinalizedBlock>, ChainStoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(BLOCKS)?;
        let mut out = Vec::new();
        for entry in table.range(from..)?.take(limit.min(CHAIN_RANGE_MAX)) {
            let (height, bytes) = entry?;
            out.push(self.decode_at(height.value(), bytes.value())?);
        }
        Ok(out)
    }

    /// Appends the next finalized block, durably. It must extend the tip:
    /// height tip + 1 and parent = the tip's hash.
    pub fn append(&self, finalized: &FinalizedBlock) -> Result<ChainTip, ChainStoreError> {
        let digests = write_digests(&finalized.block);
        self.append_parts(&finalized.block, &finalized.certificate, &digests)
    }

    /// [`ChainStore::append`] of `block` with `certificate`, given its
    /// writes' [`write_digests`] (which its caller needs too: each is
    /// megabytes of encoding and hashing for a large batch).
    pub fn append_parts(
        &self,
        block: &Block,
        certificate: &[u8],
        digests: &[[u8; 32]],
    ) -> Result<ChainTip, ChainStoreError> {
        if block.dataset != self.dataset {
            return Err(ChainStoreError::ForeignBlock {
                height: block.height,
            });
        }
        if certificate.len() > CERTIFICATE_LEN_MAX {
            return Err(ChainStoreError::CertificateTooLong {
                len: certificate.len(),
            });
        }
        let tip = self.tip()?;
        if Some(block.height) != tip.height.checked_add(1) {
            return Err(ChainStoreError::NotNext {
                tip: tip.height,
                found: block.height,
            });
        }
        if block.parent != tip.hash {
            return Err(ChainStoreError::WrongParent {
                height: block.height,
                expected: tip.hash,
                found: block.parent,
            });
        }
        let (record, hash) = record(block, certificate)?;
        let mut txn = self.db.begin_write()?;
        txn.set_durability(Durability::Immediate)?;
        {
            let mut table = txn.open_table(BLOCKS)?;
            // The tip was read outside this transaction; only this store
            // appends, but check again inside it so two appenders could
            // never both succeed.
            let last = table.last()?.map(|(h, _)| h.value()).unwrap_or(0);
            if last != tip.height {
                return Err(ChainStoreError::NotNext {
                    tip: last,
                    found: block.height,
                });
            }
            table.insert(block.height, record.as_slice())?;
            index_writes(&txn, block, digests)?;
        }
        let tip = ChainTip::of(block, hash);
        // Held across the commit: see `tip`.
        let mut cached = self.cached_tip();
        txn.commit()?;
        *cached = Some(tip);
        Ok(tip)
    }
}
