//! Equivocation evidence: votes a member signed that contradict each other
//! (two notarize or two finalize votes for different proposals in one
//! view, or a nullify and a finalize vote in one view). simplex notices
//! them while counting votes and reports them as unverified activity;
//! [`EvidenceReporter`] checks both signatures and keeps the record, so a
//! member can tell (and the simulation tests can check) who equivocated.
//!
//! Votes only: a conflicting proposal is a leader's notarize vote, so a
//! leader that sends two blocks for one view to the same member shows up
//! as `ConflictingNotarize`. A member that shows each peer only one of
//! them is seen by none of them alone; only the union of what the members
//! received shows it (the simulation counts that side).

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use commonware_actor::Feedback;
use commonware_consensus::simplex::types::{Activity, Attributable};
use commonware_consensus::{Reporter, Viewable};
use commonware_cryptography::certificate::Scheme as _;
use commonware_parallel::Sequential;
use commonware_utils::ordered::Quorum as _;
use fluence_proto::PublicKey;
use rand_core::CryptoRng;
use tracing::warn;

use crate::app::Scheme;
use crate::block::Digest;
use crate::keys::to_public_key;

/// Records kept per replica; past it the oldest views are forgotten (a
/// member equivocating in every view must not grow memory without bound).
pub const EQUIVOCATIONS_KEPT: usize = 1024;

/// What a member signed twice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EquivocationKind {
    /// Notarize votes for two different proposals in one view (for a
    /// leader: two different proposals).
    ConflictingNotarize,
    /// Finalize votes for two different proposals in one view.
    ConflictingFinalize,
    /// A nullify vote and a finalize vote in one view.
    NullifyFinalize,
}

/// One verified piece of equivocation evidence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Equivocation {
    /// The consensus view both votes are for.
    pub view: u64,
    /// The member that signed both.
    pub member: PublicKey,
    pub kind: EquivocationKind,
}

/// The evidence a replica has verified, oldest view first, bounded by
/// [`EQUIVOCATIONS_KEPT`].
#[derive(Debug, Default)]
pub(crate) struct EvidenceLog {
    records: Mutex<BTreeSet<Equivocation>>,
}

impl EvidenceLog {
    fn lock(&self) -> MutexGuard<'_, BTreeSet<Equivocation>> {
        // Every update is one set operation: a panic elsewhere cannot
        // leave it half-done.
        self.records.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Keeps `record`; whether it was new.
    fn insert(&self, record: Equivocation) -> bool {
        let mut records = self.lock();
        let new = records.insert(record);
        while records.len() > EQUIVOCATIONS_KEPT {
            records.pop_first();
        }
        new
    }

    pub(crate) fn records(&self) -> Vec<Equivocation> {
        self.lock().iter().copied().collect()
    }
}

/// A simplex reporter that keeps verified equivocation evidence and
/// ignores every other activity (the replica's main reporter handles
/// those). Verification happens here, on the few conflicting votes only:
/// simplex reports them before it has checked their signatures.
pub(crate) struct EvidenceReporter<R> {
    rng: Arc<Mutex<R>>,
    scheme: Scheme,
    log: Arc<EvidenceLog>,
}

impl<R> Clone for EvidenceReporter<R> {
    fn clone(&self) -> Self {
        EvidenceReporter {
            rng: Arc::clone(&self.rng),
            scheme: self.scheme.clone(),
            log: Arc::clone(&self.log),
        }
    }
}

impl<R: CryptoRng + Send + 'static> EvidenceReporter<R> {
    pub(crate) fn new(rng: R, scheme: Scheme, log: Arc<EvidenceLog>) -> Self {
        EvidenceReporter {
            rng: Arc::new(Mutex::new(rng)),
            scheme,
            log,
        }
    }
}

impl<R: CryptoRng + Send + 'static> Reporter for EvidenceReporter<R> {
    type Activity = Activity<Scheme, Digest>;

    fn report(&mut self, activity: Self::Activity) -> Feedback {
        let (kind, signer) = match &activity {
            Activity::ConflictingNotarize(c) => (EquivocationKind::ConflictingNotarize, c.signer()),
            Activity::ConflictingFinalize(c) => (EquivocationKind::ConflictingFinalize, c.signer()),
            Activity::NullifyFinalize(c) => (EquivocationKind::NullifyFinalize, c.signer()),
            _ => return Feedback::Ok,
        };
        let verified = {
            let mut rng = self.rng.lock().unwrap_or_else(PoisonError::into_inner);
            activity.verify(&mut *rng, &self.scheme, &Sequential)
        };
        if !verified {
            return Feedback::Ok;
        }
        let Some(member) = self.scheme.participants().key(signer) else {
            return Feedback::Ok;
        };
        let record = Equivocation {
            view: activity.view().get(),
            member: to_public_key(member),
            kind,
        };
        if self.log.insert(record) {
            warn!(member = %record.member, view = record.view, ?kind, "a member equivocated");
        }
        Feedback::Ok
    }
}
