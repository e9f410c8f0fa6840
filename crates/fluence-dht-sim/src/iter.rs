//! The iterative lookup's state machine, modelled on libp2p-kad 0.49's
//! `ClosestPeersIter` (`src/query/peers/closest.rs`), rule for rule:
//!
//! - it starts from the k closest entries of the asking node's table;
//! - at most α requests are in flight while the lookup makes progress
//!   (an answer makes progress when it brings a new peer closer than the
//!   `num_results`-th closest known, or fewer than `num_results` peers are
//!   known); after α answers in a row without progress it is *stalled*
//!   and allows up to `max(num_results, α)` requests in flight;
//! - peers are contacted closest first; it finishes as soon as the
//!   `num_results` closest peers it knows of (ignoring failed ones) have
//!   all answered, or when nobody is left to ask and nothing is in flight;
//! - its result is the `num_results` closest peers that answered.
//!
//! libp2p also marks a peer *unresponsive* after a 10 s per-peer timeout.
//! The Fluence node's requests fail after 5 s (its substream timeout), so
//! a failure always arrives first and the model leaves that state out.
//!
//! On top of libp2p's bookkeeping the model records, for each peer, the
//! **depth** at which it was first learned: 0 for the asking node's own
//! table, `d + 1` for a peer first learned from the answer of a peer of
//! depth `d`. See [`crate::lookup`] for how hops are derived from it.

use std::collections::btree_map::{BTreeMap, Entry};

use crate::space::{Distance, Key};
use crate::table::NodeId;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PeerState {
    NotContacted,
    Waiting,
    Succeeded,
    Failed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Iterating { no_progress: usize },
    Stalled,
    Finished,
}

#[derive(Debug, Clone)]
struct Peer {
    id: NodeId,
    state: PeerState,
    depth: u32,
}

/// What the lookup wants next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Send a request to this peer now.
    Contact(NodeId),
    /// Wait for an answer (at the parallelism limit, or nobody new to ask).
    Wait,
    /// Done: read [`ClosestPeersIter::result`].
    Finished,
}

/// One lookup's iterator towards the peers closest to a target.
#[derive(Debug, Clone)]
pub struct ClosestPeersIter {
    target: Key,
    num_results: usize,
    parallelism: usize,
    state: State,
    closest: BTreeMap<Distance, Peer>,
    num_waiting: usize,
}

impl ClosestPeersIter {
    /// A lookup of `target` for `num_results` peers, α = `parallelism`,
    /// seeded with at most `seed_max` (libp2p: k) of `known`, which must
    /// come closest first (the asking node's table).
    pub fn new(
        target: Key,
        num_results: usize,
        parallelism: usize,
        seed_max: usize,
        known: impl IntoIterator<Item = (Distance, NodeId)>,
    ) -> ClosestPeersIter {
        let closest = known
            .into_iter()
            .take(seed_max)
            .map(|(distance, id)| {
                let peer = Peer {
                    id,
                    state: PeerState::NotContacted,
                    depth: 0,
                };
                (distance, peer)
            })
            .collect();
        ClosestPeersIter {
            target,
            num_results: num_results.max(1),
            parallelism: parallelism.max(1),
            state: State::Iterating { no_progress: 0 },
            closest,
            num_waiting: 0,
        }
    }

    /// The depth `peer` was first learned at, if it is known.
    pub fn depth(&self, peer_key: &Key) -> Option<u32> {
        self.closest
            .get(&peer_key.distance(&self.target))
            .map(|p| p.depth)
    }

    /// `peer` (at `peer_key`) answered with `closer` (ids and positions).
    /// False if the lookup was not waiting for it.
    pub fn on_success(
        &mut self,
        peer_key: &Key,
        closer: impl IntoIterator<Item = (NodeId, Key)>,
    ) -> bool {
        if self.state == State::Finished {
            return false;
        }
        let distance = peer_key.distance(&self.target);
        let responder_depth = match self.closest.get_mut(&distance) {
            Some(peer) if peer.state == PeerState::Waiting => {
                self.num_waiting -= 1;
                peer.state = PeerState::Succeeded;
                peer.depth
            }
            _ => return false,
        };
        // The range progress is judged against: the num_results-th closest
        // known before this answer (or the farthest, if fewer are known).
        let cur_range = self
            .closest
            .keys()
            .nth(self.num_results - 1)
            .or_else(|| self.closest.keys().last())
            .copied()
            .unwrap_or(distance);
        let mut progress = self.closest.len() < self.num_results;
        for (id, key) in closer {
            let distance = key.distance(&self.target);
            if let Entry::Vacant(slot) = self.closest.entry(distance) {
                slot.insert(Peer {
                    id,
                    state: PeerState::NotContacted,
                    depth: responder_depth + 1,
                });
                progress |= distance < cur_range;
            }
        }
        self.state = match self.state {
            State::Iterating { no_progress } => {
                let no_progress = if progress { 0 } else { no_progress + 1 };
                if no_progress >= self.parallelism {
                    State::Stalled
                } else {
                    State::Iterating { no_progress }
                }
            }
            State::Stalled if progress => State::Iterating { no_progress: 0 },
            other => other,
        };
        true
    }

    /// The request to `peer` failed. False if the lookup was not waiting
    /// for it.
    pub fn on_failure(&mut self, peer_key: &Key) -> bool {
        if self.state == State::Finished {
            return false;
        }
        match self.closest.get_mut(&peer_key.distance(&self.target)) {
            Some(peer) if peer.state == PeerState::Waiting => {
                self.num_waiting -= 1;
                peer.state = PeerState::Failed;
                true
            }
            _ => false,
        }
    }

    fn at_capacity(&self) -> bool {
        match self.state {
            State::Stalled => self.num_waiting >= self.num_results.max(self.parallelism),
            State::Iterating { .. } => self.num_waiting >= self.parallelism,
            State::Finished => true,
        }
    }

    /// Advances the lookup (libp2p's `next`): the next peer to contact,
    /// or wait, or done.
    pub fn advance(&mut self) -> Next {
        if self.state == State::Finished {
            return Next::Finished;
        }
        // Successes among the closest, counted until a request in flight
        // is met (then the lookup cannot be done yet).
        let mut result_counter = Some(0usize);
        let at_capacity = self.at_capacity();
        for peer in self.closest.values_mut() {
            match peer.state {
                PeerState::Waiting => {
                    if at_capacity {
                        return Next::Wait;
                    }
                    result_counter = None;
                }
                PeerState::Succeeded => {
                    if let Some(count) = result_counter.as_mut() {
                        *count += 1;
                        if *count >= self.num_results {
                            self.state = State::Finished;
                            return Next::Finished;
                        }
                    }
                }
                PeerState::NotContacted => {
                    if at_capacity {
                        return Next::Wait;
                    }
                    peer.state = PeerState::Waiting;
                    self.num_waiting += 1;
                    return Next::Contact(peer.id);
                }
                PeerState::Failed => {}
            }
        }
        if self.num_waiting > 0 {
            Next::Wait
        } else {
            self.state = State::Finished;
            Next::Finished
        }
    }

    /// Ends the lookup now (libp2p's query timeout).
    pub fn finish(&mut self) {
        self.state = State::Finished;
    }

    /// The `num_results` closest peers that answered, closest first, each
    /// with the depth it was first learned at.
    pub fn result(&self) -> Vec<(NodeId, u32)> {
        self.closest
            .values()
            .filter(|p| p.state == PeerState::Succeeded)
            .take(self.num_results)
            .map(|p| (p.id, p.depth))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> Key {
        let mut k = [0u8; 32];
        k[0] = byte;
        Key(k)
    }

    fn seeded(target: Key, ids: &[u8], num_results: usize) -> ClosestPeersIter {
        let mut known: Vec<(Distance, NodeId)> = ids
            .iter()
            .map(|b| (key(*b).distance(&target), *b as NodeId))
            .collect();
        known.sort();
        ClosestPeersIter::new(target, num_results, 3, 20, known)
    }

    #[test]
    fn at_most_alpha_requests_in_flight_closest_first() {
        let target = key(0);
        let mut iter = seeded(target, &[8, 1, 4, 2, 16], 3);
        assert_eq!(iter.advance(), Next::Contact(1));
        assert_eq!(iter.advance(), Next::Contact(2));
        assert_eq!(iter.advance(), Next::Contact(4));
        assert_eq!(iter.advance(), Next::Wait);
        // 2 answers with 3, closer than the 3rd closest known (4).
        assert!(iter.on_success(&key(2), [(3, key(3))]));
        assert!(!iter.on_success(&key(2), []), "an answer counts once");
        assert_eq!(iter.depth(&key(3)), Some(1));
        assert_eq!(iter.advance(), Next::Contact(3));
        assert!(iter.on_success(&key(1), []));
        assert!(iter.on_failure(&key(3)));
        // 4 is in flight, so the lookup is not done: it keeps asking.
        assert_eq!(iter.advance(), Next::Contact(8));
        assert_eq!(iter.advance(), Next::Contact(16));
        assert_eq!(iter.advance(), Next::Wait, "three in flight");
        assert!(iter.on_success(&key(4), []));
        // The 3 closest not failed (1, 2, 4) have answered.
        assert_eq!(iter.advance(), Next::Finished);
        assert_eq!(iter.result(), vec![(1, 0), (2, 0), (4, 0)]);
        assert!(
            !iter.on_success(&key(8), []),
            "finished: late answers are ignored"
        );
    }

    #[test]
    fn stalls_after_alpha_answers_without_progress_then_widens() {
        let target = key(0);
        let ids: Vec<u8> = (1..=10).collect();
        let mut iter = seeded(target, &ids, 5);
        for expected in 1..=3 {
            assert_eq!(iter.advance(), Next::Contact(expected));
        }
        for answered in 1..=3u8 {
            assert!(iter.on_success(&key(answered), []));
        }
        // Three answers, none closer: stalled, so up to max(5, 3) in flight.
        for expected in 4..=8 {
            assert_eq!(iter.advance(), Next::Contact(expected));
        }
        assert_eq!(iter.advance(), Next::Wait);
        assert!(iter.on_success(&key(4), []));
        assert!(iter.on_success(&key(5), []));
        assert_eq!(iter.advance(), Next::Finished);
    }

    #[test]
    fn finishes_when_nobody_is_left() {
        let target = key(0);
        let mut iter = seeded(target, &[1], 20);
        assert_eq!(iter.advance(), Next::Contact(1));
        assert!(iter.on_failure(&key(1)));
        assert_eq!(iter.advance(), Next::Finished);
        assert!(iter.result().is_empty());
        assert!(!iter.on_success(&key(1), []));
    }
}
