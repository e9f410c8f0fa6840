//! One iterative lookup (`get_closest_peers`) run as a discrete-event
//! simulation over the network, with its measurements.
//!
//! **Hops.** Every peer a lookup knows of has a depth: 0 if it came from
//! the asking node's own routing table, `d + 1` if it was first learned
//! from the answer of a peer of depth `d`. A lookup's hop count is the
//! largest depth among the peers it returns: the longest chain of
//! requests, each sent to a peer named in the previous one's answer,
//! that was needed to learn the final closest. A lookup whose answer the
//! asking node already had in its table takes 0 hops; the confirming
//! requests to the result peers themselves are counted in `requests`,
//! not in hops.
//!
//! **Time.** Each message (request, answer) takes a one-way delay drawn
//! from [`Params::message_delay_ms`](crate::network::Params); a request
//! to a departed node fails after the request timeout; the lookup ends
//! at the query timeout with what it has. Lookups run one after another:
//! the model does not interleave two lookups' messages.
//!
//! **Tables.** A live responder admits the asking node (the inbound
//! connection completed identify), the asker admits the responder when
//! it answers, and the asker removes a peer whose request failed (the
//! Fluence driver removes a peer it cannot dial).

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use crate::iter::{ClosestPeersIter, Next};
use crate::network::Network;
use crate::space::Key;
use crate::table::NodeId;

/// What one lookup found and cost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LookupOutcome {
    /// The answer as the Fluence node gives it: the peers the lookup
    /// found plus the asking node, closest first, at most `num_results`.
    pub found: Vec<NodeId>,
    /// See the module documentation.
    pub hops: u32,
    /// Requests sent, failed ones included.
    pub requests: u32,
    /// Requests to departed nodes (each failed after the request timeout).
    pub failed: u32,
    /// Simulated time from start to answer.
    pub latency_ms: u64,
    /// False when the query timeout ended the lookup.
    pub complete: bool,
}

impl Network {
    /// `from` looks up the `num_results` nodes closest to `target`.
    pub fn lookup(&mut self, from: NodeId, target: Key, num_results: usize) -> LookupOutcome {
        let k = self.params.bucket_size;
        let seed = self.tables[from as usize].closest(&target, &self.keys, k, None);
        let mut iter = ClosestPeersIter::new(target, num_results, self.params.parallelism, k, seed);
        // Requests in flight by completion time; the sequence number
        // breaks ties in sending order, so the run is deterministic.
        let mut in_flight: BinaryHeap<Reverse<(u64, u64, NodeId)>> = BinaryHeap::new();
        let mut sent = 0u64;
        let mut now = 0u64;
        let mut failed = 0u32;
        let mut complete = true;
        loop {
            let finished = loop {
                match iter.advance() {
                    Next::Contact(peer) => {
                        let done_at = if self.alive[peer as usize] {
                            let from_key = self.keys[from as usize];
                            self.tables[peer as usize].insert(from, &from_key);
                            now + self.message_delay() + self.message_delay()
                        } else {
                            failed += 1;
                            now + self.params.request_timeout_ms
                        };
                        in_flight.push(Reverse((done_at, sent, peer)));
                        sent += 1;
                    }
                    Next::Wait => break false,
                    Next::Finished => break true,
                }
            };
            if finished {
                break;
            }
            let Some(Reverse((at, _, peer))) = in_flight.pop() else {
                // The iterator waits only while a request is in flight.
                unreachable!("a lookup waiting with no request in flight");
            };
            if at > self.params.query_timeout_ms {
                iter.finish();
                now = self.params.query_timeout_ms;
                complete = false;
                break;
            }
            now = at;
            let peer_key = self.keys[peer as usize];
            if self.alive[peer as usize] {
                let answer = self.tables[peer as usize].closest(&target, &self.keys, k, Some(from));
                self.tables[from as usize].insert(peer, &peer_key);
                let keys = &self.keys;
                iter.on_success(
                    &peer_key,
                    answer.into_iter().map(|(_, id)| (id, keys[id as usize])),
                );
            } else {
                self.tables[from as usize].remove(peer, &peer_key);
                iter.on_failure(&peer_key);
            }
        }
        self.answer(
            from,
            &target,
            num_results,
            iter.result(),
            sent,
            failed,
            now,
            complete,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn answer(
        &self,
        from: NodeId,
        target: &Key,
        num_results: usize,
        result: Vec<(NodeId, u32)>,
        sent: u64,
        failed: u32,
        latency_ms: u64,
        complete: bool,
    ) -> LookupOutcome {
        // The Fluence driver adds the asking node and keeps the closest.
        let mut found: Vec<(NodeId, u32)> = result;
        found.push((from, 0));
        found.sort_by_key(|(id, _)| self.keys[*id as usize].distance(target));
        found.dedup_by_key(|(id, _)| *id);
        found.truncate(num_results);
        LookupOutcome {
            hops: found.iter().map(|(_, depth)| *depth).max().unwrap_or(0),
            found: found.into_iter().map(|(id, _)| id).collect(),
            requests: u32::try_from(sent).unwrap_or(u32::MAX),
            failed,
            latency_ms,
            complete,
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::network::{Network, Params};

    /// Every node knows every other (k larger than the network): a lookup
    /// returns the true closest in 0 hops.
    #[test]
    fn a_lookup_on_a_fully_known_network_returns_the_true_closest() {
        let params = Params {
            bucket_size: 64,
            ..Params::default()
        };
        let mut net = Network::new(params, 7);
        let nodes: Vec<_> = (0..40).map(|_| net.spawn()).collect();
        for a in &nodes {
            for b in &nodes {
                let key = net.key(*b);
                net.tables[*a as usize].insert(*b, &key);
            }
        }
        for _ in 0..50 {
            let from = net.random_live_node();
            let (_, target) = net.random_dataset();
            let outcome = net.lookup(from, target, 20);
            assert_eq!(outcome.found, net.true_closest(&target, 20));
            assert_eq!(outcome.hops, 0);
            assert!(outcome.complete);
            assert_eq!(outcome.failed, 0);
            assert!(outcome.requests >= 19, "every result peer is asked");
        }
    }

    /// Departed nodes cost requests and time, never appear in answers, and
    /// leave the asking node's table.
    #[test]
    fn departed_nodes_fail_and_are_forgotten() {
        let mut net = Network::new(Params::default(), 11);
        let first = net.spawn();
        for _ in 0..150 {
            let node = net.spawn();
            net.join(node, first);
        }
        let (_, target) = net.random_dataset();
        let gone = net.true_closest(&target, 3);
        let asker = (0..net.len() as u32)
            .find(|n| !gone.contains(n) && net.table(*n).contains(gone[0], &net.key(gone[0])))
            .expect("someone knows the closest node");
        for node in &gone {
            net.leave(*node);
        }
        let outcome = net.lookup(asker, target, 20);
        assert!(outcome.failed >= 1);
        assert!(outcome.latency_ms >= net.params().request_timeout_ms);
        assert!(gone.iter().all(|g| !outcome.found.contains(g)));
        assert!(!net.table(asker).contains(gone[0], &net.key(gone[0])));
        // Answers still list the departed nodes (their holders have not
        // noticed), so they crowd out live ones, as in libp2p: the lookup
        // may end with fewer than k live peers, but those it has are the
        // true closest, in order.
        let others: Vec<_> = outcome
            .found
            .iter()
            .filter(|n| **n != asker)
            .copied()
            .collect();
        let truth: Vec<_> = net
            .true_closest(&target, 21)
            .into_iter()
            .filter(|n| *n != asker)
            .collect();
        assert!(others.len() >= 15, "{outcome:?}");
        assert!(truth.starts_with(&others), "{outcome:?} vs {truth:?}");
    }
}
