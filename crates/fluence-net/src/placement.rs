//! The placement rule (issue 4, part 2): a dataset is served by the k
//! nodes closest to its id that accept it. A node may refuse (full, or not
//! accepting new datasets); the next closest is asked instead.
//!
//! This module is the pure rule: given the answers, who serves. Asking the
//! nodes is the caller's job; they are asked closest first, so the
//! candidate list normally arrives in distance order, but the rule sorts
//! it itself, so its result depends only on the set of answers, never on
//! the order they arrived in.

use std::collections::BTreeMap;

use fluence_proto::DatasetId;
use libp2p::PeerId;

use crate::keyspace::{self, Target};

/// One node's answer to "will you serve this dataset?".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate {
    pub peer: PeerId,
    pub accepts: bool,
}

/// Why no cluster could be chosen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlacementError {
    #[error("a cluster needs at least one member (k = 0)")]
    EmptyCluster,
    #[error("only {accepting} of the candidates accept the dataset; the cluster needs {k}")]
    TooFewAccepting { accepting: usize, k: usize },
}

/// A chosen cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// The k closest accepting nodes, closest first.
    pub members: Vec<PeerId>,
    /// Nodes closer than the farthest member that refused, closest first:
    /// the ones that were skipped.
    pub skipped: Vec<PeerId>,
}

/// The k candidates closest to `dataset` that accept, closest first,
/// skipping refusals. A peer listed more than once counts as accepting
/// only if every one of its answers accepts (a refusal is never
/// overridden, whatever the order). Fails when fewer than k accept.
pub fn place(
    dataset: &DatasetId,
    k: usize,
    candidates: &[Candidate],
) -> Result<Placement, PlacementError> {
    if k == 0 {
        return Err(PlacementError::EmptyCluster);
    }
    let mut answers: BTreeMap<PeerId, bool> = BTreeMap::new();
    for candidate in candidates {
        answers
            .entry(candidate.peer)
            .and_modify(|accepts| *accepts &= candidate.accepts)
            .or_insert(candidate.accepts);
    }
    let target = Target::Dataset(*dataset).key();
    let mut ordered: Vec<(PeerId, bool)> = answers.into_iter().collect();
    ordered.sort_by(|(a, _), (b, _)| keyspace::by_distance(&target, a, b));
    let mut members = Vec::with_capacity(k);
    let mut skipped = Vec::new();
    for (peer, accepts) in ordered {
        if members.len() == k {
            break;
        }
        if accepts {
            members.push(peer);
        } else {
            skipped.push(peer);
        }
    }
    if members.len() < k {
        return Err(PlacementError::TooFewAccepting {
            accepting: members.len(),
            k,
        });
    }
    Ok(Placement { members, skipped })
}

#[cfg(test)]
mod tests {
    use super::*;
    use libp2p::identity::Keypair;
    use proptest::prelude::*;

    fn peers(n: usize, seed: u8) -> Vec<PeerId> {
        (0..n)
            .map(|i| {
                let mut secret = [0u8; 32];
                secret[0] = seed;
                secret[1..9].copy_from_slice(&(i as u64).to_le_bytes());
                Keypair::ed25519_from_bytes(secret)
                    .unwrap()
                    .public()
                    .to_peer_id()
            })
            .collect()
    }

    /// The reference: every candidate's distance computed on its own, the
    /// accepting ones sorted, the first k taken.
    fn reference(dataset: &DatasetId, k: usize, candidates: &[Candidate]) -> Option<Vec<PeerId>> {
        let target = Target::Dataset(*dataset);
        let refused: Vec<PeerId> = candidates
            .iter()
            .filter(|c| !c.accepts)
            .map(|c| c.peer)
            .collect();
        let mut accepting: Vec<PeerId> = candidates
            .iter()
            .filter(|c| c.accepts && !refused.contains(&c.peer))
            .map(|c| c.peer)
            .collect();
        accepting.sort_by_key(|p| keyspace::distance_bytes(&keyspace::distance(&target, p)));
        accepting.dedup();
        (accepting.len() >= k).then(|| accepting[..k].to_vec())
    }

    fn arbitrary_case() -> impl Strategy<Value = (DatasetId, usize, Vec<Candidate>, Vec<usize>)> {
        (
            any::<[u8; 32]>(),
            1usize..8,
            any::<u8>(),
            prop::collection::vec(any::<bool>(), 0..24),
        )
            .prop_flat_map(|(id, k, seed, accepts)| {
                let candidates: Vec<Candidate> = peers(accepts.len(), seed)
                    .into_iter()
                    .zip(accepts)
                    .map(|(peer, accepts)| Candidate { peer, accepts })
                    .collect();
                let n = candidates.len();
                (
                    Just(DatasetId(id)),
                    Just(k),
                    Just(candidates),
                    Just((0..n).collect::<Vec<_>>()).prop_shuffle(),
                )
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn picks_the_k_closest_accepting((dataset, k, candidates, _) in arbitrary_case()) {
            match (place(&dataset, k, &candidates), reference(&dataset, k, &candidates)) {
                (Ok(placement), Some(expected)) => {
                    prop_assert_eq!(&placement.members, &expected);
                    // Everything skipped refused and is closer than the farthest member.
                    let target = Target::Dataset(dataset);
                    let farthest = keyspace::distance(&target, expected.last().unwrap());
                    for peer in &placement.skipped {
                        prop_assert!(candidates.iter().any(|c| c.peer == *peer && !c.accepts));
                        prop_assert!(keyspace::distance(&target, peer) < farthest);
                    }
                }
                (Err(PlacementError::TooFewAccepting { accepting, k: needed }), None) => {
                    prop_assert_eq!(needed, k);
                    prop_assert!(accepting < k);
                }
                (got, expected) => prop_assert!(false, "got {:?}, expected {:?}", got, expected),
            }
        }

        #[test]
        fn stable_under_permutation((dataset, k, candidates, order) in arbitrary_case()) {
            let permuted: Vec<Candidate> = order.iter().map(|&i| candidates[i]).collect();
            prop_assert_eq!(place(&dataset, k, &candidates), place(&dataset, k, &permuted));
        }

        #[test]
        fn deterministic((dataset, k, candidates, _) in arbitrary_case()) {
            prop_assert_eq!(place(&dataset, k, &candidates), place(&dataset, k, &candidates));
        }

        #[test]
        fn a_duplicate_refusal_wins_in_any_order((dataset, _k, candidates, order) in arbitrary_case()) {
            prop_assume!(!candidates.is_empty());
            let mut with_refusal = candidates.clone();
            with_refusal.push(Candidate { peer: candidates[0].peer, accepts: false });
            let k = 1;
            let placed = place(&dataset, k, &with_refusal);
            if let Ok(placement) = &placed {
                prop_assert!(!placement.members.contains(&candidates[0].peer));
            }
            let mut shuffled: Vec<Candidate> = order.iter().map(|&i| candidates[i]).collect();
            shuffled.insert(0, Candidate { peer: candidates[0].peer, accepts: false });
            prop_assert_eq!(placed, place(&dataset, k, &shuffled));
        }
    }

    #[test]
    fn refusals_are_skipped_and_the_next_closest_asked() {
        let dataset = DatasetId([3; 32]);
        let target = Target::Dataset(dataset).key();
        let mut all = peers(6, 1);
        all.sort_by(|a, b| keyspace::by_distance(&target, a, b));
        let candidates: Vec<Candidate> = all
            .iter()
            .enumerate()
            .map(|(i, peer)| Candidate {
                peer: *peer,
                // The closest and the third closest are full.
                accepts: i != 0 && i != 2,
            })
            .collect();
        let placement = place(&dataset, 3, &candidates).unwrap();
        assert_eq!(placement.members, vec![all[1], all[3], all[4]]);
        assert_eq!(placement.skipped, vec![all[0], all[2]]);
        assert_eq!(
            place(&dataset, 5, &candidates),
            Err(PlacementError::TooFewAccepting { accepting: 4, k: 5 })
        );
        assert_eq!(
            place(&dataset, 0, &candidates),
            Err(PlacementError::EmptyCluster)
        );
    }
}
