//! Execution of blocks against the member's store: speculative (to propose
//! or verify a block whose ancestors are not finalized yet) and final (to
//! apply a finalized block, idempotently, after a crash too).
//!
//! One lock serialises every store write and simulation of the dataset with
//! the applied tip, so a simulation always starts from a committed state
//! that matches a known chain height. Store calls are synchronous and run
//! under that lock; nothing awaits while holding it.
//!
//! # Speculation
//!
//! Consensus asks to build on, or verify, a block whose parent may be
//! notarized but not finalized. The unfinalized ancestors (at most
//! [`SPECULATION_DEPTH_MAX`]) are replayed with the new writes in one
//! store transaction that is aborted ([`Store::simulate_sequence`]). A
//! `Create` or `Drop` changes the dataset file itself, so a block holding
//! one is simulated only on top of fully applied ancestors, and no block is
//! simulated on top of an unapplied one: the caller waits for finalization.

use std::cell::RefCell;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use fluence_chain::{is_lifecycle_write, ChainStore, ChainTip, ABSENT_STATE_ROOT};
use fluence_proto::{
    Action, DatasetId, DatasetInfo, Encode, Hash32, NodeError, PublicKey, SignedWrite,
};
use fluence_store::{Applied, Flush, OreOrder, SequenceError, Staged, Store, StoreError};

use crate::block::ChainBlock;
use crate::error::ReplicaFault;

/// Unfinalized ancestors a proposal or verification may replay. Deeper
/// than this, the member waits for finalization to catch up.
pub const SPECULATION_DEPTH_MAX: usize = 32;

/// Every this many finalized blocks with writes, the store commit is
/// flushed to disk; the others are flushed with it ([`Flush::Deferred`]).
/// The chain append that follows each block is always flushed, so a
/// finalized block is acknowledged after one durable commit instead of
/// two, and a crash loses at most this many blocks of store commits,
/// which [`Executor::new`] re-applies from the chain.
///
/// Larger intervals flush more pages at once, on the acknowledgement path
/// of the block that flushes: with 16 the p99 commit latency of a 4-node
/// devnet rose above 300 ms; 4 keeps it under 200 ms (docs/benchmarks.md).
pub const STORE_FLUSH_INTERVAL: u64 = 4;

/// Blocks [`Executor::new`] walks back through the chain to find those the
/// store lost. A store further behind is not caught up from the chain
/// (more than `STORE_FLUSH_INTERVAL` blocks with writes cannot have been
/// lost; the rest are empty blocks, cheap to walk).
pub const STORE_CATCH_UP_BLOCKS_MAX: u64 = 65_536;

struct ExecState {
    applied: ChainTip,
    /// False after a restart until the store and the chain agree again: a
    /// crash between applying a block's writes and recording the block
    /// leaves the store one block ahead until that block is redelivered.
    reconciled: bool,
    /// The last block's writes executed on the applied tip, uncommitted.
    staged: Option<StagedWrites>,
    /// Store commits of finalized blocks not yet flushed to disk.
    deferred_commits: u64,
}

/// Writes executed on the applied block `parent` in a transaction kept
/// open: committing it applies exactly those writes on exactly that state.
struct StagedWrites {
    parent: Hash32,
    writes: Vec<SignedWrite>,
    staged: Staged,
}

impl StagedWrites {
    fn matches(&self, parent: &Hash32, writes: &[SignedWrite]) -> bool {
        self.parent == *parent && self.writes == writes
    }
}

/// The dataset as of the end of the committed store state, plus the
/// unapplied ancestors' writes, under the execution lock.
pub struct ParentView<'a, O: OreOrder> {
    store: &'a Store<O>,
    /// The applied tip the committed state is at.
    applied: Hash32,
    /// The executor's staged writes, replaced by a simulation on the tip.
    staged: RefCell<&'a mut Option<StagedWrites>>,
    committed: Option<DatasetInfo>,
    pending: Vec<SignedWrite>,
    /// `(height, index of its last write in pending, claimed root)` for
    /// each unapplied ancestor with writes, to check they replay exactly.
    checkpoints: Vec<(u64, usize, Hash32)>,
    parent_root: Hash32,
}

/// Why a speculation cannot run now or at all.
#[derive(Debug)]
pub enum SpecError {
    /// Retry after more blocks are finalized and applied.
    Wait,
    /// The ancestry does not extend this member's finalized chain.
    ForksFinalized,
    /// An unapplied ancestor does not replay to its claimed root here.
    AncestorDiverged {
        height: u64,
    },
    /// A write of the new block is refused (index within the new writes).
    Refused {
        index: usize,
        error: NodeError,
    },
    Storage(String),
}

impl<O: OreOrder> ParentView<'_, O> {
    /// The dataset owner at the parent (`None` if it does not exist).
    /// Ancestors never create or drop it (see the module docs), so the
    /// committed owner is the parent's.
    pub fn owner(&self) -> Option<PublicKey> {
        self.committed.as_ref().map(|info| info.owner)
    }

    /// The sequence number the next write must carry at the parent.
    pub fn next_seq(&self) -> u64 {
        match (self.pending.last(), &self.committed) {
            (Some(write), _) => write.body.seq.saturating_add(1),
            (None, Some(info)) => info.seq.saturating_add(1),
            (None, None) => 0,
        }
    }

    /// The state root at the parent.
    pub fn parent_root(&self) -> Hash32 {
        self.parent_root
    }

    /// Whether a lone `Create` or `Drop` may be simulated here.
    pub fn lifecycle_allowed(&self) -> bool {
        self.pending.is_empty()
    }

    /// The state root after `writes` on the parent's state, with each
    /// write's outcome. Nothing is changed.
    pub fn simulate(&self, writes: &[SignedWrite]) -> Result<Vec<Applied>, SpecError> {
        if writes.is_empty() {
            return Ok(Vec::new());
        }
        if writes.iter().any(is_lifecycle_write) && !self.lifecycle_allowed() {
            return Err(SpecError::Wait);
        }
        if self.pending.is_empty() && !writes.iter().any(is_lifecycle_write) {
            return self.stage(writes);
        }
        // Only one write transaction may be open: the staged one goes.
        self.staged.borrow_mut().take();
        let mut all = Vec::with_capacity(self.pending.len() + writes.len());
        all.extend_from_slice(&self.pending);
        all.extend_from_slice(writes);
        match self.store.simulate_sequence(&all) {
            Ok(mut applied) => {
                for &(height, last, root) in &self.checkpoints {
                    if applied[last].state_root != root {
                        return Err(SpecError::AncestorDiverged { height });
                    }
                }
                Ok(applied.split_off(self.pending.len()))
            }
            Err(SequenceError { index, error }) => {
                if index < self.pending.len() {
                    let height = self
                        .checkpoints
                        .iter()
                        .find(|(_, last, _)| *last >= index)
                        .map_or(0, |(height, _, _)| *height);
                    return Err(SpecError::AncestorDiverged { height });
                }
                Err(SpecError::Refused {
                    index: index - self.pending.len(),
                    error: error.to_node_error(),
                })
            }
        }
    }

    /// Simulates `writes` on the applied tip itself, keeping the execution
    /// staged for when the block that holds them is finalized.
    fn stage(&self, writes: &[SignedWrite]) -> Result<Vec<Applied>, SpecError> {
        let mut slot = self.staged.borrow_mut();
        if let Some(staged) = slot.as_ref().filter(|s| s.matches(&self.applied, writes)) {
            return Ok(staged.staged.applied().to_vec());
        }
        slot.take();
        match self.store.stage_sequence(writes) {
            Ok(staged) => {
                let applied = staged.applied().to_vec();
                **slot = Some(StagedWrites {
                    parent: self.applied,
                    writes: writes.to_vec(),
                    staged,
                });
                Ok(applied)
            }
            Err(SequenceError { index, error }) => Err(SpecError::Refused {
                index,
                error: error.to_node_error(),
            }),
        }
    }
}

/// A finalized block's writes as applied: `(body digest, seq)` in order.
pub type AppliedWrites = Vec<([u8; 32], u64)>;

/// The store and chain of one dataset at one member.
pub struct Executor<O: OreOrder> {
    dataset: DatasetId,
    store: Arc<Store<O>>,
    chain: ChainStore,
    state: Mutex<ExecState>,
}

impl ExecState {
    /// The chain's tip as applied, nothing staged; reconciled if the
    /// store's committed root is the tip's.
    fn from_chain<O: OreOrder>(
        store: &Store<O>,
        dataset: &DatasetId,
        chain: &ChainStore,
    ) -> Result<ExecState, ReplicaFault> {
        let applied = chain.tip()?;
        let committed_root = committed_info(store, dataset)
            .map_err(|e| ReplicaFault::Store(e.to_string()))?
            .map_or(ABSENT_STATE_ROOT, |info| info.state_root);
        Ok(ExecState {
            applied,
            reconciled: committed_root == applied.state_root,
            staged: None,
            deferred_commits: 0,
        })
    }
}

/// Re-applies the finalized blocks whose store commits were lost: they
/// were deferred ([`STORE_FLUSH_INTERVAL`]) and the node stopped before a
/// flushed one followed. The chain, flushed with every block, holds them.
/// Each re-applied block must reach the root it was finalized with.
fn catch_up_store<O: OreOrder>(
    store: &Store<O>,
    dataset: &DatasetId,
    chain: &ChainStore,
) -> Result<(), ReplicaFault> {
    let storage = |e: &dyn std::fmt::Display| ReplicaFault::Store(e.to_string());
    // A dataset's creation and removal are always flushed at once.
    let Some(info) = committed_info(store, dataset).map_err(|e| storage(&e))? else {
        return Ok(());
    };
    let tip = chain.tip()?;
    if info.state_root == tip.state_root {
        return Ok(());
    }
    // The blocks above the store's state, newest first.
    let mut lost = Vec::new();
    let lowest = tip.height.saturating_sub(STORE_CATCH_UP_BLOCKS_MAX);
    let mut height = tip.height;
    while height > lowest {
        let Some(finalized) = chain.get(height)? else {
            break;
        };
        match finalized.block.last_seq() {
            Some(last) if last <= info.seq => break,
            Some(_) => lost.push(finalized.block),
            None => {}
        }
        height -= 1;
    }
    for block in lost.into_iter().rev() {
        let writes: Vec<SignedWrite> = block
            .writes
            .iter()
            .filter(|w| w.body.seq > info.seq)
            .cloned()
            .collect();
        if writes.first().is_some_and(is_lifecycle_write) {
            // Never deferred: the store holding the dataset but missing
            // a later Create or Drop is not a lost commit.
            return Ok(());
        }
        let applied =
            store
                .apply_sequence(&writes)
                .map_err(|refused| ReplicaFault::DoesNotApply {
                    height: block.height,
                    reason: refused.to_string(),
                })?;
        let computed = applied.last().map_or(info.state_root, |a| a.state_root);
        if computed != block.state_root {
            return Err(ReplicaFault::StateDiverged {
                height: block.height,
                claimed: block.state_root,
                computed,
            });
        }
        tracing::info!(%dataset, height = block.height, "re-applied a finalized block the store lost");
    }
    Ok(())
}

fn committed_info<O: OreOrder>(
    store: &Store<O>,
    dataset: &DatasetId,
) -> Result<Option<DatasetInfo>, StoreError> {
    match store.info(dataset) {
        Ok(info) => Ok(Some(info)),
        Err(StoreError::DatasetNotFound) => Ok(None),
        Err(error) => Err(error),
    }
}

impl<O: OreOrder> Executor<O> {
    pub fn new(
        dataset: DatasetId,
        store: Arc<Store<O>>,
        chain: ChainStore,
    ) -> Result<Self, ReplicaFault> {
        catch_up_store(&store, &dataset, &chain)?;
        let state = ExecState::from_chain(&store, &dataset, &chain)?;
        Ok(Executor {
            dataset,
            store,
            chain,
            state: Mutex::new(state),
        })
    }

    fn lock(&self) -> MutexGuard<'_, ExecState> {
        // Every update of the state is a single assignment after the store
        // call succeeded, so a panic elsewhere never leaves it half-done.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn dataset(&self) -> DatasetId {
        self.dataset
    }

    pub fn store(&self) -> &Store<O> {
        &self.store
    }

    pub fn chain(&self) -> &ChainStore {
        &self.chain
    }

    /// The newest finalized block applied to the store.
    pub fn applied(&self) -> ChainTip {
        self.lock().applied
    }

    /// The committed dataset info (`None` if it does not exist).
    pub fn committed(&self) -> Result<Option<DatasetInfo>, StoreError> {
        committed_info(&self.store, &self.dataset)
    }

    /// Takes the applied tip from the chain again, after the chain and the
    /// store were changed under this executor before consensus started (a
    /// sync installed a snapshot and its floor block, see `crate::sync`).
    pub fn resume_from_chain(&self) -> Result<ChainTip, ReplicaFault> {
        let mut state = self.lock();
        // Anything staged was executed on the state the sync replaced.
        *state = ExecState::from_chain(&self.store, &self.dataset, &self.chain)?;
        Ok(state.applied)
    }

    /// Runs `f` on the parent state reached by `ancestors` (unapplied
    /// blocks, oldest first, ending with the parent; those the applied tip
    /// has meanwhile passed are skipped), under the execution lock.
    /// Without `replay`, unapplied ancestors with writes are not replayed:
    /// the caller is told to wait for them to be applied.
    pub fn with_parent<R>(
        &self,
        ancestors: &[Arc<ChainBlock>],
        parent: &ChainBlock,
        replay: bool,
        f: impl FnOnce(&ParentView<'_, O>) -> Result<R, SpecError>,
    ) -> Result<R, SpecError> {
        let mut state = self.lock();
        if !state.reconciled {
            return Err(SpecError::Wait);
        }
        let applied = state.applied;
        // The ancestry must pass through the applied tip.
        if parent.block().height < applied.height {
            return Err(SpecError::ForksFinalized);
        }
        let mut unapplied = Vec::new();
        for block in ancestors {
            let height = block.block().height;
            if height < applied.height {
                continue;
            }
            if height == applied.height {
                if block.hash() != applied.hash {
                    return Err(SpecError::ForksFinalized);
                }
                continue;
            }
            unapplied.push(block);
        }
        if parent.block().height == applied.height && parent.hash() != applied.hash {
            return Err(SpecError::ForksFinalized);
        }
        if let Some(first) = unapplied.first() {
            if first.block().height != applied.height + 1 || first.block().parent != applied.hash {
                return Err(SpecError::ForksFinalized);
            }
        }
        let mut pending = Vec::new();
        let mut checkpoints = Vec::new();
        for block in &unapplied {
            if block.block().is_lifecycle() {
                return Err(SpecError::Wait);
            }
            if !block.block().writes.is_empty() {
                if !replay {
                    return Err(SpecError::Wait);
                }
                pending.extend_from_slice(&block.block().writes);
                checkpoints.push((
                    block.block().height,
                    pending.len() - 1,
                    block.block().state_root,
                ));
            }
        }
        let committed = committed_info(&self.store, &self.dataset)
            .map_err(|e| SpecError::Storage(e.to_string()))?;
        let view = ParentView {
            store: &self.store,
            applied: applied.hash,
            staged: RefCell::new(&mut state.staged),
            committed,
            pending,
            checkpoints,
            parent_root: parent.block().state_root,
        };
        let result = f(&view);
        drop(state);
        result
    }

    /// Applies a finalized block with its encoded certificate, durably:
    /// the store first, then the chain. Redelivery of an applied block is
    /// recognised (`Ok(None)`); after a crash between the two steps the
    /// writes the store already holds are skipped after checking they are
    /// the same bytes. Returns the writes applied.
    pub fn apply_finalized(
        &self,
        block: &ChainBlock,
        certificate: Vec<u8>,
    ) -> Result<Option<AppliedWrites>, ReplicaFault> {
        let mut state = self.lock();
        let height = block.block().height;
        let applied = state.applied;
        if height <= applied.height {
            let stored = if height == applied.height {
                Some(applied.hash)
            } else {
                self.chain.get(height)?.map(|f| f.block.hash())
            };
            // Height 0 (genesis) and pruned history have nothing stored.
            if let Some(stored) = stored {
                if stored != block.hash() {
                    return Err(ReplicaFault::ConflictingFinalized {
                        height,
                        stored,
                        found: block.hash(),
                    });
                }
            }
            return Ok(None);
        }
        if height != applied.height + 1 || block.block().parent != applied.hash {
            return Err(ReplicaFault::OutOfOrder {
                height,
                tip: applied.height,
            });
        }
        let writes = &block.block().writes;
        let staged = state
            .staged
            .take()
            .filter(|staged| staged.matches(&applied.hash, writes));
        let skip = match staged {
            Some(_) => 0,
            None => self.already_applied(writes, &applied, height)?,
        };
        let store_commits = staged.is_some() || skip < writes.len();
        let flush = if state.deferred_commits + 1 >= STORE_FLUSH_INTERVAL {
            Flush::Now
        } else {
            Flush::Deferred
        };
        let computed = if let Some(staged) = staged {
            match staged.staged.commit_flushing(flush) {
                Ok(results) => results
                    .last()
                    .map(|a| a.state_root)
                    .unwrap_or(applied.state_root),
                Err(error) => return Err(ReplicaFault::Store(error.to_string())),
            }
        } else if skip < writes.len() {
            match self.store.apply_sequence_flushing(&writes[skip..], flush) {
                Ok(results) => results
                    .last()
                    .map(|a| a.state_root)
                    .unwrap_or(applied.state_root),
                Err(refused) => {
                    return Err(ReplicaFault::DoesNotApply {
                        height,
                        reason: refused.to_string(),
                    })
                }
            }
        } else if writes.is_empty() {
            applied.state_root
        } else {
            self.committed()
                .map_err(|e| ReplicaFault::Store(e.to_string()))?
                .map_or(ABSENT_STATE_ROOT, |info| info.state_root)
        };
        if computed != block.block().state_root {
            return Err(ReplicaFault::StateDiverged {
                height,
                claimed: block.block().state_root,
                computed,
            });
        }
        let digests = fluence_chain::write_digests(block.block());
        let tip = self
            .chain
            .append_parts(block.block(), &certificate, &digests)?;
        debug_assert_eq!(tip.hash, block.hash());
        state.applied = tip;
        state.reconciled = true;
        if store_commits {
            // A Create or Drop is flushed whatever `flush` says.
            let flushed = flush == Flush::Now || writes.first().is_some_and(is_lifecycle_write);
            state.deferred_commits = if flushed {
                0
            } else {
                state.deferred_commits + 1
            };
        }
        Ok(Some(
            digests
                .into_iter()
                .zip(writes)
                .map(|(digest, w)| (digest, w.body.seq))
                .collect(),
        ))
    }

    /// How many of a finalized block's leading writes the store already
    /// holds (a crash after the store commit, before the chain append).
    fn already_applied(
        &self,
        writes: &[SignedWrite],
        applied: &ChainTip,
        height: u64,
    ) -> Result<usize, ReplicaFault> {
        let Some(first) = writes.first() else {
            return Ok(0);
        };
        let committed = self
            .committed()
            .map_err(|e| ReplicaFault::Store(e.to_string()))?;
        let diverged = |reason: &str| ReplicaFault::DoesNotApply {
            height,
            reason: reason.to_string(),
        };
        match (&first.body.action, committed) {
            // A Drop alone: the dataset existed at the parent; if it is
            // gone, this Drop removed it.
            (Action::Drop, None) if applied.state_root != ABSENT_STATE_ROOT => Ok(1),
            (Action::Drop, _) => Ok(0),
            (Action::Create { .. }, None) => Ok(0),
            (Action::Create { .. }, Some(_)) => {
                if applied.state_root != ABSENT_STATE_ROOT {
                    return Err(diverged("a Create on a dataset that exists at its parent"));
                }
                self.journal_matches(0, first)
                    .then_some(1)
                    .ok_or_else(|| diverged("the store holds another Create"))
            }
            (_, None) => Ok(0),
            (_, Some(info)) => {
                let mut skip = 0;
                for write in writes {
                    if write.body.seq > info.seq {
                        break;
                    }
                    if !self.journal_matches(write.body.seq, write) {
                        return Err(diverged("the store holds another write at this seq"));
                    }
                    skip += 1;
                }
                Ok(skip)
            }
        }
    }

    fn journal_matches(&self, seq: u64, write: &SignedWrite) -> bool {
        match self.store.journal(&self.dataset, seq, 1) {
            Ok(entries) => entries
                .first()
                .is_some_and(|e| e.seq == seq && e.write == write.to_bytes()),
            Err(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fluence_chain::Block;
    use fluence_proto::{DocId, DocOp, Precondition, SealedDoc};
    use fluence_store::PlaintextOrder;
    use fluence_testkit::Owner;

    struct Fixture {
        _dir: tempfile::TempDir,
        owner: Owner,
        exec: Executor<PlaintextOrder>,
        /// The applied block holding the dataset's `Create`.
        created: ChainBlock,
    }

    /// An executor whose dataset is created (block 1 applied).
    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let owner = Owner::new([0x0e; 32], [5; 32]);
        let store = Arc::new(Store::<PlaintextOrder>::open(&dir.path().join("store")).unwrap());
        let chain = ChainStore::open(&dir.path().join("chain"), owner.dataset).unwrap();
        let exec = Executor::new(owner.dataset, store, chain).unwrap();
        let genesis = ChainBlock::genesis(owner.dataset);
        let create = owner.create();
        let root = exec
            .store()
            .simulate_sequence(std::slice::from_ref(&create))
            .unwrap()[0]
            .state_root;
        let created = child(&genesis, vec![create], root);
        exec.apply_finalized(&created, Vec::new()).unwrap().unwrap();
        Fixture {
            _dir: dir,
            owner,
            exec,
            created,
        }
    }

    fn child(parent: &ChainBlock, writes: Vec<SignedWrite>, state_root: Hash32) -> ChainBlock {
        ChainBlock::new(Block {
            dataset: parent.block().dataset,
            height: parent.block().height + 1,
            parent: parent.hash(),
            timestamp_ms: parent.block().timestamp_ms + 1,
            writes,
            state_root,
            attestations: Vec::new(),
            evidence: Vec::new(),
            change: None,
        })
        .unwrap()
    }

    /// Write `seq`: `docs` new documents, told apart by `tag`.
    fn insert(owner: &Owner, seq: u64, docs: u8, tag: u8) -> SignedWrite {
        let ops = (0..docs)
            .map(|i| DocOp::Put {
                doc: doc_id(tag, i),
                expect: Precondition::Absent,
                sealed: SealedDoc {
                    version: 1,
                    wrapped_key: vec![tag; 72],
                    ciphertext: vec![tag, i],
                },
                entries: Vec::new(),
            })
            .collect();
        owner.batch(seq, ops)
    }

    fn doc_id(tag: u8, i: u8) -> DocId {
        let mut id = [0; 16];
        id[..2].copy_from_slice(&[tag, i]);
        DocId(id)
    }

    /// The root `writes` leave on the committed state, from an aborted
    /// simulation.
    fn root_of(exec: &Executor<PlaintextOrder>, writes: &[SignedWrite]) -> Hash32 {
        exec.store()
            .simulate_sequence(writes)
            .unwrap()
            .last()
            .unwrap()
            .state_root
    }

    /// Whether a staged transaction holds the dataset: another write is
    /// then refused with `StoreError::Staged`.
    fn staged_held(exec: &Executor<PlaintextOrder>) -> bool {
        let owner = Owner::new([0x0e; 32], [5; 32]);
        let next = exec.committed().unwrap().unwrap().seq + 1;
        match exec
            .store()
            .simulate_sequence(&[insert(&owner, next, 1, 0xee)])
        {
            Ok(_) => false,
            Err(SequenceError {
                error: fluence_store::ApplyError::Store(StoreError::Staged),
                ..
            }) => true,
            Err(other) => panic!("probe refused: {other}"),
        }
    }

    #[test]
    fn store_commits_are_flushed_every_interval_and_a_store_that_lost_some_is_caught_up_from_the_chain(
    ) {
        let dir = tempfile::tempdir().unwrap();
        let owner = Owner::new([0x0e; 32], [5; 32]);
        let chain_dir = dir.path().join("chain");
        let store = Arc::new(Store::<PlaintextOrder>::open(&dir.path().join("store")).unwrap());
        let chain = ChainStore::open(&chain_dir, owner.dataset).unwrap();
        let exec = Executor::new(owner.dataset, store, chain).unwrap();
        // Block 1 creates the dataset, block 2 inserts, block 3 is empty,
        // blocks 4 and 5 insert.
        let mut blocks = vec![ChainBlock::genesis(owner.dataset)];
        let writes_of = |height: u64| match height {
            1 => vec![owner.create()],
            2 => vec![insert(&owner, 1, 3, 1), insert(&owner, 2, 1, 2)],
            3 => Vec::new(),
            4 => vec![insert(&owner, 3, 2, 4)],
            5 => vec![insert(&owner, 4, 2, 5)],
            _ => unreachable!(),
        };
        for height in 1..=5 {
            let writes = writes_of(height);
            let root = if writes.is_empty() {
                exec.committed().unwrap().unwrap().state_root
            } else {
                root_of(&exec, &writes)
            };
            let block = child(blocks.last().unwrap(), writes, root);
            exec.apply_finalized(&block, Vec::new()).unwrap().unwrap();
            blocks.push(block);
        }
        assert_eq!(
            exec.lock().deferred_commits,
            3,
            "blocks 2, 4 and 5 wait to be flushed"
        );
        let final_root = exec.committed().unwrap().unwrap().state_root;
        drop(exec);

        // A store holding only the flushed state (the dataset's creation)
        // beside the full chain: what a crash leaves.
        let behind = Arc::new(Store::<PlaintextOrder>::open(&dir.path().join("behind")).unwrap());
        behind.apply_sequence(&writes_of(1)).unwrap();
        let chain = ChainStore::open(&chain_dir, owner.dataset).unwrap();
        let exec = Executor::new(owner.dataset, Arc::clone(&behind), chain).unwrap();
        let info = exec.committed().unwrap().unwrap();
        assert_eq!(
            (info.seq, info.state_root, info.doc_count),
            (4, final_root, 8)
        );
        assert!(exec.lock().reconciled);
        // And the member goes on from there.
        let next = vec![insert(&owner, 5, 1, 6)];
        let root = root_of(&exec, &next);
        let block = child(blocks.last().unwrap(), next, root);
        exec.apply_finalized(&block, Vec::new()).unwrap().unwrap();
        assert_eq!(exec.committed().unwrap().unwrap().seq, 5);

        // A store that re-applies to another root is a fault, not a
        // silent divergence.
        drop(exec);
        let other = Arc::new(Store::<PlaintextOrder>::open(&dir.path().join("other")).unwrap());
        other.apply_sequence(&writes_of(1)).unwrap();
        other.apply_sequence(&[insert(&owner, 1, 1, 9)]).unwrap();
        let chain = ChainStore::open(&chain_dir, owner.dataset).unwrap();
        assert!(matches!(
            Executor::new(owner.dataset, other, chain),
            Err(ReplicaFault::DoesNotApply { height: 2, .. }
                | ReplicaFault::StateDiverged { height: 2, .. })
        ));
    }

    #[test]
    fn a_block_verified_on_the_applied_tip_is_committed_from_its_staged_execution() {
        let f = fixture();
        let writes = vec![insert(&f.owner, 1, 3, 1), insert(&f.owner, 2, 2, 2)];
        let expected = root_of(&f.exec, &writes);
        let simulated = f
            .exec
            .with_parent(&[], &f.created, false, |view| view.simulate(&writes))
            .unwrap();
        assert_eq!(simulated.last().unwrap().state_root, expected);
        // The execution is held open, invisible to readers.
        assert!(staged_held(&f.exec));
        assert_eq!(f.exec.committed().unwrap().unwrap().seq, 0);

        let block = child(&f.created, writes.clone(), expected);
        let applied = f.exec.apply_finalized(&block, Vec::new()).unwrap().unwrap();
        assert_eq!(
            applied.iter().map(|(_, seq)| *seq).collect::<Vec<_>>(),
            [1, 2]
        );
        let info = f.exec.committed().unwrap().unwrap();
        assert_eq!(
            (info.seq, info.state_root, info.doc_count),
            (2, expected, 5)
        );
        assert!(!staged_held(&f.exec), "the commit released the dataset");
        assert_eq!(f.exec.applied().hash, block.hash());
    }

    #[test]
    fn a_staged_execution_of_another_block_is_dropped_and_the_finalized_one_applied() {
        let f = fixture();
        let verified = vec![insert(&f.owner, 1, 3, 1)];
        let finalized = vec![insert(&f.owner, 1, 4, 2)];
        let expected = root_of(&f.exec, &finalized);
        f.exec
            .with_parent(&[], &f.created, false, |view| view.simulate(&verified))
            .unwrap();
        assert!(staged_held(&f.exec));
        let block = child(&f.created, finalized, expected);
        f.exec.apply_finalized(&block, Vec::new()).unwrap().unwrap();
        let info = f.exec.committed().unwrap().unwrap();
        assert_eq!(
            (info.seq, info.state_root, info.doc_count),
            (1, expected, 4)
        );
        assert!(!staged_held(&f.exec));
    }

    #[test]
    fn unapplied_ancestors_with_writes_wait_unless_replayed_and_replaying_unstages() {
        let f = fixture();
        let first = vec![insert(&f.owner, 1, 3, 1)];
        let first_root = root_of(&f.exec, &first);
        // Staged on the tip, as a verification of block 2 would.
        f.exec
            .with_parent(&[], &f.created, false, |view| view.simulate(&first))
            .unwrap();
        let parent = Arc::new(child(&f.created, first.clone(), first_root));
        let ancestors = [Arc::new(f.created.clone()), Arc::clone(&parent)];
        let next = vec![insert(&f.owner, 2, 1, 9)];
        let waited = f
            .exec
            .with_parent(&ancestors, &parent, false, |view| view.simulate(&next));
        assert!(matches!(waited, Err(SpecError::Wait)), "{waited:?}");
        assert!(staged_held(&f.exec), "waiting keeps the staged execution");

        let replayed = f
            .exec
            .with_parent(&ancestors, &parent, true, |view| view.simulate(&next))
            .unwrap();
        let mut both = first.clone();
        both.extend(next.clone());
        assert!(
            !staged_held(&f.exec),
            "replaying needs the write transaction"
        );
        assert_eq!(replayed.last().unwrap().state_root, root_of(&f.exec, &both));
        // The parent is then applied by executing it again.
        f.exec
            .apply_finalized(&parent, Vec::new())
            .unwrap()
            .unwrap();
        assert_eq!(f.exec.committed().unwrap().unwrap().state_root, first_root);
    }
}
