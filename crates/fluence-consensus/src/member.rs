//! [`Member`]: what one cluster member holds for one dataset (executor,
//! pending writes, attestations, keys) and the admission of writes and
//! attestations into it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use commonware_utils::channel::watch;

use fluence_chain::{verify_change, verify_write_signature, ChainRules, SignedAttestation};
use fluence_crypto::sign::SigningKey;
use fluence_proto::limits::BLOCK_LEN_MAX;
use fluence_proto::{Action, Encode, MembershipChange, MembershipError, PublicKey, SignedWrite};
use fluence_store::OreOrder;
use futures::channel::oneshot;

use crate::attestations::Inbox;
use crate::error::SubmitError;
use crate::exec::Executor;
use crate::pool::{Admitted, Committed, Outcome, Pool};
use crate::sync::SyncReport;

/// How large the blocks this member proposes may grow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockLimits {
    /// Client writes in one proposed block (at most `WRITES_PER_BLOCK_MAX`).
    pub writes_max: usize,
    /// Bytes of client writes in one proposed block; well below
    /// `BLOCK_LEN_MAX` so attestations and framing always fit.
    pub write_bytes_max: usize,
    /// How long a leader with no pending write waits for one before it
    /// proposes an empty block. Without it an idle cluster finalizes empty
    /// blocks as fast as it can (each costing votes, certificates and
    /// fsyncs); with it, about one per this delay, which still carries the
    /// attestations of the block before. Capped at half the leader timeout
    /// so the view never times out while its leader waits.
    pub empty_block_delay: Duration,
    /// How long a proposal or verification whose parent is finalized but
    /// not yet applied here waits for it before it replays the parent's
    /// writes speculatively. Waiting costs about one finalization round;
    /// replaying executes the parent a second time and loses the staged
    /// execution (see `exec`), which on a busy member costs more. Capped
    /// at a quarter of the leader timeout, so a parent that is never
    /// finalized (a notarized block left behind) delays a view only a
    /// little.
    pub parent_apply_wait: Duration,
}

impl Default for BlockLimits {
    fn default() -> Self {
        BlockLimits {
            writes_max: 1024,
            write_bytes_max: 16 * 1024 * 1024,
            empty_block_delay: Duration::from_millis(500),
            parent_apply_wait: Duration::from_millis(250),
        }
    }
}

/// Deliberate deviations, for the Byzantine member of the simulation tests.
/// An honest replica uses [`Behavior::Honest`]; nothing else is reachable
/// without building a replica with it on purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Behavior {
    #[default]
    Honest,
    /// Proposes blocks claiming a state root that is not the result of
    /// their writes, and attests wrong roots for others' blocks.
    WrongRoot,
    /// Follows consensus honestly but serves snapshots whose documents
    /// were altered (a member syncing from it must notice and go
    /// elsewhere).
    CorruptSnapshots,
}

/// Whether a member votes for a membership change proposed in its epoch
/// (already checked for shape and signatures): a departure the leaver
/// signed is always acceptable; for an `Unreachable` one the node says
/// whether it, too, has not heard from that member for the grace period.
pub type ChangePolicy = Arc<dyn Fn(&MembershipChange) -> bool + Send + Sync>;

/// One member's state for one dataset's chain.
pub struct Member<O: OreOrder> {
    pub(crate) exec: Executor<O>,
    pub(crate) key: SigningKey,
    pub(crate) public: PublicKey,
    /// The cluster, sorted.
    pub(crate) members: Vec<PublicKey>,
    /// The membership epoch `members` run (0 for the genesis membership).
    pub(crate) epoch: u64,
    /// Chain height of the epoch's first block.
    pub(crate) base_height: u64,
    /// The epoch's first block when it is a later epoch's (the block whose
    /// membership change started it): a newcomer's sync may start there.
    pub(crate) base: Option<fluence_chain::Block>,
    pub(crate) rules: ChainRules,
    pub(crate) limits: BlockLimits,
    pub(crate) behavior: Behavior,
    pool: Mutex<Pool>,
    /// Bumped whenever a new write enters the pool, so an idle leader
    /// proposes as soon as there is something to propose.
    admissions: watch::Sender<u64>,
    inbox: Mutex<Inbox>,
    /// True while the member rebuilds the dataset from a snapshot: writes
    /// are refused ([`SubmitError::Syncing`]) until store and chain agree.
    syncing: AtomicBool,
    /// What the sync at start did, if one ran.
    sync_report: Mutex<Option<SyncReport>>,
    /// Whether this member votes for a change, see [`ChangePolicy`].
    change_policy: ChangePolicy,
    /// The membership change waiting to be put in a block, if any.
    pending_change: Mutex<Option<MembershipChange>>,
    /// Set once a change ending this epoch is applied: the member then
    /// proposes, verifies and applies nothing more in this epoch.
    retired: AtomicBool,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Pool and inbox updates are single map operations; a panic elsewhere
    // cannot leave them half-done.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<O: OreOrder> Member<O> {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        exec: Executor<O>,
        key: SigningKey,
        mut members: Vec<PublicKey>,
        start: &crate::EpochStart,
        rules: ChainRules,
        limits: BlockLimits,
        behavior: Behavior,
        change_policy: ChangePolicy,
    ) -> Self {
        members.sort_unstable();
        members.dedup();
        let public = PublicKey(key.public_key());
        Member {
            exec,
            key,
            public,
            members,
            epoch: start.epoch(),
            base_height: start.base_height(),
            base: match start {
                crate::EpochStart::Genesis => None,
                crate::EpochStart::Change { base, .. } => Some(base.clone()),
            },
            rules,
            limits,
            behavior,
            pool: Mutex::new(Pool::default()),
            admissions: watch::channel(0).0,
            inbox: Mutex::new(Inbox::default()),
            syncing: AtomicBool::new(false),
            sync_report: Mutex::new(None),
            change_policy,
            pending_change: Mutex::new(None),
            retired: AtomicBool::new(false),
        }
    }

    /// Keeps a membership change proposed for this epoch once it checks
    /// out (the first one stays until it is finalized or the epoch ends),
    /// and wakes an idle leader.
    pub(crate) fn receive_change(&self, change: MembershipChange) -> Result<(), MembershipError> {
        verify_change(&self.exec.dataset(), self.epoch, &self.members, &change)?;
        let mut pending = lock(&self.pending_change);
        if pending.is_none() {
            *pending = Some(change);
            drop(pending);
            self.admissions
                .send_modify(|count| *count = count.wrapping_add(1));
        }
        Ok(())
    }

    /// The pending change this member would propose now, if any.
    pub(crate) fn change_to_propose(&self) -> Option<MembershipChange> {
        let pending = lock(&self.pending_change).clone()?;
        self.votes_for(&pending).then_some(pending)
    }

    /// Whether this member votes for `change` in a proposal: it must be
    /// valid for this epoch and the node's policy must agree.
    pub(crate) fn votes_for(&self, change: &MembershipChange) -> bool {
        !self.retired()
            && verify_change(&self.exec.dataset(), self.epoch, &self.members, change).is_ok()
            && (self.change_policy)(change)
    }

    /// Whether a change ending this epoch has been applied.
    pub(crate) fn retired(&self) -> bool {
        self.retired.load(Ordering::Acquire)
    }

    pub(crate) fn retire(&self) {
        self.retired.store(true, Ordering::Release);
    }

    /// Whether the member is rebuilding the dataset from a snapshot.
    pub(crate) fn syncing(&self) -> bool {
        self.syncing.load(Ordering::Acquire)
    }

    pub(crate) fn set_syncing(&self, syncing: bool) {
        self.syncing.store(syncing, Ordering::Release);
    }

    /// What the sync at start did, if one ran.
    pub(crate) fn sync_report(&self) -> Option<SyncReport> {
        lock(&self.sync_report).clone()
    }

    pub(crate) fn set_sync_report(&self, report: SyncReport) {
        *lock(&self.sync_report) = Some(report);
    }

    pub(crate) fn pool(&self) -> MutexGuard<'_, Pool> {
        lock(&self.pool)
    }

    /// Changes each time a new write is admitted to the pool.
    pub(crate) fn admissions(&self) -> watch::Receiver<u64> {
        self.admissions.subscribe()
    }

    pub(crate) fn inbox(&self) -> MutexGuard<'_, Inbox> {
        lock(&self.inbox)
    }

    /// Checks a write against the committed state and adds it to the pool.
    /// With `wait`, also returns a receiver answered when it is finalized.
    /// A write already finalized is answered at once.
    pub(crate) fn admit(
        &self,
        write: SignedWrite,
        wait: bool,
    ) -> Result<Option<oneshot::Receiver<Outcome>>, SubmitError> {
        if self.syncing() {
            return Err(SubmitError::Syncing);
        }
        let dataset = self.exec.dataset();
        if write.body.dataset != dataset {
            return Err(SubmitError::WrongDataset {
                expected: dataset,
                found: write.body.dataset,
            });
        }
        let encoded_len = write.to_bytes().len();
        if encoded_len > self.limits.write_bytes_max.min(BLOCK_LEN_MAX / 2) {
            return Err(SubmitError::TooLarge);
        }
        let digest = write.body.digest();
        // A resubmission of a finalized write is acknowledged, not applied.
        let storage = |e: &dyn std::fmt::Display| SubmitError::Storage(e.to_string());
        if let Some(location) = self
            .exec
            .chain()
            .find_write(&digest)
            .map_err(|e| storage(&e))?
        {
            let block = self
                .exec
                .chain()
                .get(location.height)
                .map_err(|e| storage(&e))?
                .ok_or_else(|| storage(&"a recorded write's block is missing"))?;
            let (sender, receiver) = oneshot::channel();
            let _ = sender.send(Ok(Committed {
                height: location.height,
                seq: location.seq,
                state_root: block.block.state_root,
            }));
            return Ok(wait.then_some(receiver));
        }
        let committed = self.exec.committed().map_err(|e| storage(&e))?;
        if committed.is_some() && matches!(write.body.action, Action::Create { .. }) {
            return Err(SubmitError::DatasetExists);
        }
        // Only the owner's writes occupy a sequence number in the pool: a
        // forged write must not be able to block the owner's.
        let owner = match &committed {
            Some(info) => Some(info.owner),
            None => self.pool().pending_owner(),
        };
        if owner.is_none() && !matches!(write.body.action, Action::Create { .. }) {
            return Err(SubmitError::NoDataset);
        }
        verify_write_signature(&write, owner.as_ref()).map_err(SubmitError::Unauthorised)?;
        let next = match (&write.body.action, &committed) {
            (Action::Create { .. }, None) => 0,
            (_, Some(info)) => info.seq.saturating_add(1),
            (_, None) => 0,
        };
        if write.body.seq < next {
            return Err(SubmitError::Stale {
                seq: write.body.seq,
                next,
            });
        }
        let mut pool = self.pool();
        let seq = write.body.seq;
        let admitted = pool.admit(write, digest, encoded_len)?;
        if admitted == Admitted::New {
            self.admissions
                .send_modify(|count| *count = count.wrapping_add(1));
        }
        if admitted == Admitted::Contender && !wait {
            return Ok(None);
        }
        if wait {
            return pool.wait(digest, seq).map(Some);
        }
        Ok(None)
    }

    /// Keeps an attestation received from `sender` if it is a member's,
    /// for this dataset, signed by the member that sent it.
    pub(crate) fn receive_attestation(
        &self,
        sender: &PublicKey,
        attestation: SignedAttestation,
    ) -> bool {
        if attestation.member != *sender
            || attestation.body.dataset != self.exec.dataset()
            || self.members.binary_search(sender).is_err()
            || attestation.verify().is_err()
        {
            return false;
        }
        let applied = self.exec.applied().height;
        self.inbox().insert(attestation, applied)
    }
}
