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
use fluence_store::{Applied, OreOrder, SequenceError, Staged, Store, StoreError};

use crate::block::ChainBlock;
use crate::error::ReplicaFault;

/// Unfinalized ancestors a proposal or verification may replay. Deeper
/// than this, the member waits for finalization to catch up.
pub const SPECULATION_DEPTH_MAX: usize = 32;

struct ExecState {
    applied: ChainTip,
    /// False after a restart until the store and the chain agree again: a
    /// crash between applying a block's writes and recording the block
    /// leaves the store one block ahead until that block is redelivered.
    reconciled: bool,
    /// The last block's writes executed on the applied tip, uncommitted.
    staged: Option<StagedWrites>,
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
        })
    }
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
        let computed = if let Some(staged) = staged {
            match staged.staged.commit() {
                Ok(results) => results
                    .last()
                    .map(|a| a.state_root)
                    .unwrap_or(applied.state_root),
                Err(error) => return Err(ReplicaFault::Store(error.to_string())),
            }
        } else if skip < writes.len() {
            match self.store.apply_sequence(&writes[skip..]) {
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
