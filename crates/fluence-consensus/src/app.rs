//! [`ChainApp`]: the application side of consensus. It builds a block from
//! pending writes and verifies others' blocks by re-executing them; the
//! marshal `Inline` wrapper turns it into simplex's automaton and relay.

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use commonware_consensus::marshal::ancestry::Ancestry;
use commonware_consensus::simplex::types::Context;
use commonware_consensus::Application;
use commonware_cryptography::{ed25519, Digested};
use commonware_p2p::{Recipients, Sender};
use commonware_runtime::Clock;
use fluence_chain::{
    is_lifecycle_write, verify_block, verify_write_signature, AttestationBody, Block, ChainRules,
    SignedAttestation, VerifyContext,
};
use fluence_proto::{Encode, Hash32, SignedWrite};
use fluence_store::{Applied, OreOrder};
use futures::StreamExt;
use tracing::{debug, warn};

use crate::block::{ChainBlock, Digest};
use crate::error::{SubmitError, VerifyError};
use crate::exec::{SpecError, SPECULATION_DEPTH_MAX};
use crate::member::{Behavior, Member};

/// How long a proposal or verification waits before looking again when it
/// depends on blocks not yet finalized.
pub const SPECULATION_RETRY: Duration = Duration::from_millis(5);

/// The scheme simplex signs votes and certificates with.
pub type Scheme = commonware_consensus::simplex::scheme::ed25519::Scheme;
/// What consensus tells the application about a proposal.
pub type ConsensusContext = Context<Digest, ed25519::PublicKey>;

/// The application of one member in one cluster.
pub struct ChainApp<O: OreOrder, S> {
    member: Arc<Member<O>>,
    /// Where this member's attestations go (every cluster member).
    attestations: S,
}

impl<O: OreOrder, S: Clone> Clone for ChainApp<O, S> {
    fn clone(&self) -> Self {
        ChainApp {
            member: Arc::clone(&self.member),
            attestations: self.attestations.clone(),
        }
    }
}

/// Why walking the ancestry stopped.
enum Walk {
    /// The ancestry does not pass through the applied tip.
    Forks,
    /// More unfinalized ancestors than [`SPECULATION_DEPTH_MAX`].
    TooDeep,
}

/// The blocks from the applied tip (inclusive) to the first block of
/// `ancestry`, oldest first.
async fn down_to_applied(
    mut ancestry: impl Ancestry<ChainBlock>,
    applied_height: u64,
) -> Result<Vec<Arc<ChainBlock>>, Walk> {
    let mut out = Vec::new();
    while let Some(block) = ancestry.next().await {
        let height = block.inner().block().height;
        if height < applied_height {
            return Err(Walk::Forks);
        }
        out.push(block.inner_shared());
        if height == applied_height {
            out.reverse();
            return Ok(out);
        }
        if out.len() > SPECULATION_DEPTH_MAX {
            return Err(Walk::TooDeep);
        }
    }
    Err(Walk::Forks)
}

fn now_ms(context: &impl Clock) -> u64 {
    context
        .current()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A root no honest execution produces, for [`Behavior::WrongRoot`].
fn corrupt(root: Hash32) -> Hash32 {
    let mut bytes = root.0;
    bytes[0] ^= 0xff;
    Hash32(bytes)
}

impl<O: OreOrder, S: Sender<PublicKey = ed25519::PublicKey>> ChainApp<O, S> {
    pub(crate) fn new(member: Arc<Member<O>>, attestations: S) -> Self {
        ChainApp {
            member,
            attestations,
        }
    }

    /// Signs that executing `block` leaves `root`, keeps it, and sends it
    /// to every member.
    fn attest(&self, block: &ChainBlock, root: Hash32) {
        let member = &self.member;
        let root = match member.behavior {
            Behavior::Honest | Behavior::CorruptSnapshots => root,
            Behavior::WrongRoot => corrupt(root),
        };
        let attestation = SignedAttestation::sign(
            &member.key,
            AttestationBody {
                dataset: block.block().dataset,
                height: block.block().height,
                block: block.hash(),
                root,
            },
        );
        member.receive_attestation(&member.public, attestation);
        let mut sender = self.attestations.clone();
        sender.send(Recipients::All, attestation.to_bytes(), false);
    }

    /// Walks the ancestry to the applied tip and runs `f` on the parent's
    /// state, waiting while it depends on unfinalized lifecycle blocks, a
    /// store not yet reconciled after a restart, or too deep a backlog;
    /// and, for up to `BlockLimits::parent_apply_wait`, while unapplied
    /// ancestors with writes would have to be replayed.
    async fn on_parent<E: Clock, R>(
        &self,
        runtime: &E,
        ancestry: impl Ancestry<ChainBlock>,
        parent: &ChainBlock,
        mut f: impl FnMut(&crate::exec::ParentView<'_, O>) -> Result<R, SpecError>,
    ) -> Result<R, SpecError> {
        let replay_from = runtime.current() + self.member.limits.parent_apply_wait;
        loop {
            let applied = self.member.exec.applied();
            let ancestors = match down_to_applied(ancestry.clone(), applied.height).await {
                Ok(ancestors) => ancestors,
                Err(Walk::Forks) => return Err(SpecError::ForksFinalized),
                Err(Walk::TooDeep) => {
                    runtime.sleep(SPECULATION_RETRY).await;
                    continue;
                }
            };
            let replay = runtime.current() >= replay_from;
            match self
                .member
                .exec
                .with_parent(&ancestors, parent, replay, &mut f)
            {
                Err(SpecError::Wait) => runtime.sleep(SPECULATION_RETRY).await,
                other => return other,
            }
        }
    }

    /// Whether an ancestor above the applied tip (down from the first
    /// block of `ancestry`) creates or drops the dataset, after waiting up
    /// to `wait` for such ancestors to be applied. Nothing executes on top
    /// of an unapplied `Create` or `Drop` (dataset files are never created
    /// or removed speculatively), but an empty block needs no execution:
    /// its root is its parent's. Building empty blocks on it is what lets
    /// it be finalized when its own view never finalizes (its leader
    /// equivocated, say): a finalized descendant finalizes it.
    async fn behind_lifecycle<E: Clock>(
        &self,
        runtime: &E,
        ancestry: impl Ancestry<ChainBlock>,
        wait: Duration,
    ) -> Result<bool, SpecError> {
        let until = runtime.current() + wait;
        loop {
            let applied = self.member.exec.applied();
            let pending = match down_to_applied(ancestry.clone(), applied.height).await {
                Ok(ancestors) => ancestors.iter().any(|block| {
                    block.block().height > applied.height && block.block().is_lifecycle()
                }),
                Err(Walk::Forks) => return Err(SpecError::ForksFinalized),
                // Too deep to be only empty blocks on an unapplied
                // lifecycle block: the usual path waits for the backlog.
                Err(Walk::TooDeep) => false,
            };
            if !pending || runtime.current() >= until {
                return Ok(pending);
            }
            runtime.sleep(SPECULATION_RETRY).await;
        }
    }

    /// Verifies an empty block whose ancestry holds an unapplied `Create`
    /// or `Drop` (see [`Self::behind_lifecycle`]): every chain rule, and
    /// its root must be its parent's. Not executed, so not attested.
    fn verify_unexecuted(&self, block: &ChainBlock, parent: &ChainBlock, now_ms: u64) -> bool {
        let context = VerifyContext {
            rules: &self.member.rules,
            members: &self.member.members,
            now_ms,
            // No writes: no signature to check against an owner.
            owner: None,
            epoch: self.member.epoch,
        };
        if let Err(error) = verify_block(block.block(), parent.block(), &parent.hash(), &context) {
            warn!(height = block.block().height, %error, "proposal refused");
            return false;
        }
        if block.block().state_root != parent.block().state_root {
            warn!(
                height = block.block().height,
                "an empty block claims another root than its parent's"
            );
            return false;
        }
        true
    }

    /// The writes this member would propose on `parent` now and the root
    /// they leave, refusing (and answering) the pending writes the parent's
    /// state refuses; plus whether pending writes exist that cannot go in
    /// until more blocks are finalized.
    async fn build<E: Clock>(
        &self,
        runtime: &E,
        ancestry: impl Ancestry<ChainBlock>,
        parent: &ChainBlock,
    ) -> Result<(Vec<SignedWrite>, Hash32, bool), SpecError> {
        let member = Arc::clone(&self.member);
        self.on_parent(runtime, ancestry, parent, |view| {
            let owner = view.owner();
            let candidates = member.pool().run_from(
                view.next_seq(),
                member.limits.writes_max,
                member.limits.write_bytes_max,
            );
            let waiting = !candidates.is_empty();
            let mut writes = eligible(candidates, view.lifecycle_allowed());
            let waiting = waiting && writes.is_empty();
            // A write whose signature fails against the parent's owner
            // (the dataset was re-created meanwhile) ends the run.
            if let Some(bad) = writes
                .iter()
                .position(|w| verify_write_signature(w, owner.as_ref()).is_err())
            {
                let write = &writes[bad];
                member.pool().refuse(
                    write.body.seq,
                    write.body.digest(),
                    SubmitError::Refused(fluence_proto::NodeError::BadSignature),
                );
                writes.truncate(bad);
            }
            let applied: Vec<Applied> = loop {
                match view.simulate(&writes) {
                    Ok(applied) => break applied,
                    Err(SpecError::Refused { index, error }) => {
                        let write = &writes[index];
                        debug!(seq = write.body.seq, %error, "pending write refused");
                        member.pool().refuse(
                            write.body.seq,
                            write.body.digest(),
                            SubmitError::Refused(error),
                        );
                        writes.truncate(index);
                    }
                    Err(other) => return Err(other),
                }
            };
            let root = applied.last().map_or(view.parent_root(), |a| a.state_root);
            Ok((writes, root, waiting))
        })
        .await
    }
}

/// The writes a proposal takes: the pending run after the parent's state,
/// cut before any `Create` or `Drop` that cannot go alone here.
fn eligible(candidates: Vec<SignedWrite>, lifecycle_allowed: bool) -> Vec<SignedWrite> {
    match candidates.first() {
        Some(first) if is_lifecycle_write(first) => {
            if lifecycle_allowed {
                candidates.into_iter().take(1).collect()
            } else {
                Vec::new()
            }
        }
        _ => candidates
            .into_iter()
            .take_while(|write| !is_lifecycle_write(write))
            .collect(),
    }
}

impl<E, O, S> Application<E> for ChainApp<O, S>
where
    E: Clock + Send + Sync + 'static,
    O: OreOrder + 'static,
    S: Sender<PublicKey = ed25519::PublicKey>,
{
    type SigningScheme = Scheme;
    type Context = ConsensusContext;
    type Block = ChainBlock;
    type Input = ();

    async fn propose(
        &mut self,
        (runtime, _context): (E, Self::Context),
        ancestry: impl Ancestry<Self::Block>,
        _input: (),
    ) -> Option<Digested<Self::Block>> {
        let parent = ancestry.peek()?.inner_shared();
        // With nothing to propose, wait (a little) for a write rather than
        // finalize an empty block at once; see `BlockLimits::empty_block_delay`.
        let mut admissions = self.member.admissions();
        let idle_until = runtime.current() + self.member.limits.empty_block_delay;
        // Behind an unapplied `Create` or `Drop` (after waiting a little for
        // it), the proposal is an empty block: see `behind_lifecycle`.
        let wait = self.member.limits.parent_apply_wait;
        let unexecuted = match self
            .behind_lifecycle(&runtime, ancestry.clone(), wait)
            .await
        {
            Ok(behind) => behind,
            Err(error) => {
                warn!(?error, "cannot build on the proposed parent");
                return None;
            }
        };
        // This epoch is over once its change is applied: the next runs in
        // a replica of its own.
        if self.member.retired() {
            return None;
        }
        // A pending membership change goes in a block of its own, which
        // keeps its parent's root (nothing executes).
        let change = if unexecuted {
            None
        } else {
            self.member.change_to_propose()
        };
        let built = loop {
            if unexecuted || change.is_some() {
                break Ok((Vec::new(), parent.block().state_root));
            }
            admissions.borrow_and_update();
            let built = self.build(&runtime, ancestry.clone(), &parent).await;
            let idle = matches!(&built, Ok((writes, _, false)) if writes.is_empty());
            if !idle || runtime.current() >= idle_until {
                break built.map(|(writes, root, _)| (writes, root));
            }
            let admitted = admissions.changed();
            let deadline = runtime.sleep_until(idle_until);
            futures::pin_mut!(admitted, deadline);
            futures::future::select(admitted, deadline).await;
        };
        let (writes, root) = match built {
            Ok(built) => built,
            Err(error) => {
                warn!(?error, "cannot build on the proposed parent");
                return None;
            }
        };
        let parent_block = parent.block();
        let for_parent = self.member.inbox().for_parent(
            parent_block.height,
            &parent.hash(),
            &parent_block.state_root,
        );
        let claimed = match self.member.behavior {
            Behavior::Honest | Behavior::CorruptSnapshots => root,
            Behavior::WrongRoot => corrupt(root),
        };
        let block = Block {
            dataset: parent_block.dataset,
            height: parent_block.height + 1,
            parent: parent.hash(),
            timestamp_ms: now_ms(&runtime).max(parent_block.timestamp_ms),
            writes,
            state_root: claimed,
            attestations: for_parent.attestations,
            evidence: for_parent.evidence,
            change,
        };
        let block = match ChainBlock::in_epoch(block, parent.base()) {
            Ok(block) => block,
            Err(error) => {
                warn!(%error, "proposal does not fit a block");
                return None;
            }
        };
        // An empty block on an unapplied lifecycle block was not executed
        // here: nothing to attest.
        if !unexecuted {
            self.attest(&block, root);
        }
        let digest = commonware_cryptography::Digestible::digest(&block);
        Some(Digested::precomputed(block, digest))
    }

    async fn verify(
        &mut self,
        (runtime, _context): (E, Self::Context),
        mut ancestry: impl Ancestry<Self::Block>,
    ) -> bool {
        let Some(block) = ancestry.next().await else {
            return false;
        };
        let block = block.inner_shared();
        // After a restart consensus may ask again about a block this member
        // already finalized.
        let applied = self.member.exec.applied();
        if block.block().height <= applied.height {
            return self
                .member
                .exec
                .chain()
                .get(block.block().height)
                .ok()
                .flatten()
                .is_some_and(|f| f.block.hash() == block.hash());
        }
        let Some(parent) = ancestry.peek().map(|p| p.inner_shared()) else {
            return false;
        };
        if self.member.retired() {
            return false;
        }
        if let Some(change) = &block.block().change {
            if !self.member.votes_for(change) {
                warn!(
                    height = block.block().height,
                    departed = %change.departed,
                    "proposal carries a membership change this member does not vote for"
                );
                return false;
            }
        }
        let member = Arc::clone(&self.member);
        let rules: ChainRules = member.rules;
        let now = now_ms(&runtime);
        if block.block().writes.is_empty() {
            match self
                .behind_lifecycle(&runtime, ancestry.clone(), Duration::ZERO)
                .await
            {
                Ok(true) => return self.verify_unexecuted(&block, &parent, now),
                Ok(false) => {}
                Err(_) => {
                    warn!(
                        height = block.block().height,
                        "proposal forks the finalized chain"
                    );
                    return false;
                }
            }
        }
        let checked = self
            .on_parent(&runtime, ancestry, &parent, |view| {
                let owner = view.owner();
                let context = VerifyContext {
                    rules: &rules,
                    members: &member.members,
                    now_ms: now,
                    owner: owner.as_ref(),
                    epoch: member.epoch,
                };
                if let Err(error) =
                    verify_block(block.block(), parent.block(), &parent.hash(), &context)
                {
                    return Ok(Err(VerifyError::Block(error)));
                }
                match view.simulate(&block.block().writes) {
                    Ok(applied) => Ok(Ok(applied
                        .last()
                        .map_or(view.parent_root(), |a| a.state_root))),
                    Err(SpecError::Refused { index, error }) => {
                        Ok(Err(VerifyError::WriteRefused {
                            index,
                            reason: error.to_string(),
                        }))
                    }
                    Err(other) => Err(other),
                }
            })
            .await;
        let outcome = match checked {
            Ok(outcome) => outcome,
            Err(SpecError::ForksFinalized) => Err(VerifyError::ForksFinalized),
            Err(SpecError::AncestorDiverged { height }) => {
                Err(VerifyError::AncestorDiverged { height })
            }
            Err(SpecError::Storage(reason)) => Err(VerifyError::Storage(reason)),
            Err(SpecError::Refused { index, error }) => Err(VerifyError::WriteRefused {
                index,
                reason: error.to_string(),
            }),
            Err(SpecError::Wait) => unreachable!("on_parent retries while it must wait"),
        };
        match outcome {
            Ok(computed) if computed == block.block().state_root => {
                self.attest(&block, computed);
                true
            }
            Ok(computed) => {
                // Executed but disagrees: say so, signed (the dissent is
                // evidence if the block is finalized anyway).
                self.attest(&block, computed);
                warn!(
                    height = block.block().height,
                    claimed = %block.block().state_root,
                    %computed,
                    "proposal claims a state root its writes do not produce"
                );
                false
            }
            Err(error) => {
                warn!(height = block.block().height, %error, "proposal refused");
                false
            }
        }
    }
}
