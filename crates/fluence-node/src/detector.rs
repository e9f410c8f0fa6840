//! The failure detector: which nodes this one has not reached for a
//! while. A member votes for a membership change that replaces an
//! `Unreachable` member only if its own detector agrees the member has
//! been out of reach for the whole grace period (a change the departed
//! member signed itself, `Left`, needs no such agreement). Each member
//! decides alone, so a change needs 2f + 1 members that all lost the
//! departed one: a member that only some nodes cannot reach stays.
//!
//! "Reached" means a cluster link to the node was open when the detector
//! last looked ([`SAMPLE_INTERVAL`]). Out of reach counts from when this
//! node started needing the link: a replica starting (at node start, or
//! in a new epoch, or on a newcomer) gives each of its members a full
//! grace period to be reached, so no node votes out a member it never
//! had the time to reach.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use fluence_consensus::ChangePolicy;
use fluence_net::cluster::ClusterNet;
use fluence_proto::{Departure, PublicKey};

/// How often the links are looked at.
pub const SAMPLE_INTERVAL: Duration = Duration::from_millis(500);
/// How long a member must have been out of reach by default.
pub const GRACE_DEFAULT: Duration = Duration::from_secs(30);

/// When each node was last reached.
pub struct Detector {
    grace: Duration,
    started: Instant,
    last_reached: Mutex<HashMap<PublicKey, Instant>>,
}

impl Detector {
    pub fn new(grace: Duration) -> Arc<Detector> {
        Arc::new(Detector {
            grace,
            started: Instant::now(),
            last_reached: Mutex::new(HashMap::new()),
        })
    }

    /// The grace period.
    pub fn grace(&self) -> Duration {
        self.grace
    }

    /// Records which linked nodes are reached now.
    pub fn sample(&self, net: &ClusterNet) {
        let now = Instant::now();
        let mut last = self.lock();
        for (member, connected) in net.linked() {
            if connected {
                last.insert(member.key, now);
            }
        }
    }

    /// Starts counting each of `members` as out of reach from now, unless
    /// it is reached at the next look: called when a replica with these
    /// members starts.
    pub fn expect(&self, members: &[PublicKey]) {
        let now = Instant::now();
        let mut last = self.lock();
        for member in members {
            last.insert(*member, now);
        }
    }

    /// Notes that `node` was reached now (tests and the sampler).
    pub fn reached(&self, node: PublicKey) {
        self.lock().insert(node, Instant::now());
    }

    /// How long `node` has been out of reach (zero if it was reached at
    /// the last look).
    pub fn out_of_reach(&self, node: &PublicKey) -> Duration {
        let since = self.lock().get(node).copied().unwrap_or(self.started);
        since.elapsed()
    }

    /// Whether `node` has been out of reach for the grace period.
    pub fn unreachable(&self, node: &PublicKey) -> bool {
        self.out_of_reach(node) >= self.grace
    }

    /// The policy a replica votes for membership changes by.
    pub fn change_policy(self: &Arc<Self>) -> ChangePolicy {
        let detector = Arc::clone(self);
        Arc::new(move |change| match change.departure {
            Departure::Left(_) => true,
            Departure::Unreachable => detector.unreachable(&change.departed),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<PublicKey, Instant>> {
        self.last_reached
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_is_unreachable_only_after_the_grace_period_without_contact() {
        let detector = Detector::new(Duration::from_millis(300));
        let node = PublicKey([7; 32]);
        // Never reached: counted from the start.
        assert!(!detector.unreachable(&node));
        std::thread::sleep(Duration::from_millis(350));
        assert!(detector.unreachable(&node));
        detector.reached(node);
        assert!(!detector.unreachable(&node));
        assert!(detector.out_of_reach(&node) < Duration::from_millis(300));
        std::thread::sleep(Duration::from_millis(350));
        assert!(detector.unreachable(&node));
        // A replica starting with the node as a member gives it a new
        // grace period.
        detector.expect(&[node]);
        assert!(!detector.unreachable(&node));
    }
}
