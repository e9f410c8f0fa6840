//! Placing datasets with the real rule (`fluence_net::placement`) on the
//! answers of simulated lookups, and measuring how evenly they spread and
//! how many clusters churn would change.

use std::collections::BTreeSet;

use fluence_net::placement::{self, Candidate};
use fluence_proto::DatasetId;

use crate::network::Network;
use crate::space::Key;
use crate::table::NodeId;

/// One dataset's cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cluster {
    pub dataset: DatasetId,
    pub key: Key,
    /// Members, closest first.
    pub members: Vec<NodeId>,
    /// True when the members are the true `cluster_size` closest live nodes.
    pub exact: bool,
}

/// Places `dataset` on `cluster_size` nodes: a random live node (the one
/// a gateway reached) looks up the k closest, every candidate accepts
/// (nodes have room), and the placement rule picks. `None` when the
/// lookup found fewer than `cluster_size` nodes.
pub fn place(
    net: &mut Network,
    dataset: DatasetId,
    key: Key,
    cluster_size: usize,
) -> Option<Cluster> {
    let asker = net.random_live_node();
    let k = net.params().bucket_size;
    let outcome = net.lookup(asker, key, k);
    let candidates: Vec<Candidate> = outcome
        .found
        .iter()
        .map(|node| Candidate {
            peer: net.peer(*node),
            accepts: true,
        })
        .collect();
    let chosen = placement::place(&dataset, cluster_size, &candidates).ok()?;
    let members: Vec<NodeId> = chosen
        .members
        .iter()
        .map(|peer| {
            net.node_of(peer)
                .expect("the placement rule picks among the candidates given")
        })
        .collect();
    let exact = members == net.true_closest(&key, cluster_size);
    Some(Cluster {
        dataset,
        key,
        members,
        exact,
    })
}

/// How datasets spread over the live nodes.
#[derive(Debug, Clone, PartialEq)]
pub struct Spread {
    /// Datasets placed (a dataset whose lookup found too few nodes is not).
    pub placed: usize,
    pub live_nodes: usize,
    /// Placements equal to the true closest live nodes.
    pub exact: usize,
    /// Datasets served by the least and most loaded live node.
    pub min: usize,
    pub max: usize,
    /// `cluster_size · placed / live_nodes`: every node's load if perfectly even.
    pub ideal: f64,
    /// Standard deviation of the per-node load divided by its mean.
    pub coefficient_of_variation: f64,
    /// Live nodes serving no dataset.
    pub idle: usize,
}

/// The spread of `clusters` over the network's live nodes.
pub fn spread(net: &Network, clusters: &[Cluster], cluster_size: usize) -> Spread {
    let mut load = vec![0usize; net.len()];
    for cluster in clusters {
        for member in &cluster.members {
            load[*member as usize] += 1;
        }
    }
    let live: Vec<usize> = net
        .live_nodes()
        .into_iter()
        .map(|n| load[n as usize])
        .collect();
    let n = live.len().max(1) as f64;
    let mean = live.iter().sum::<usize>() as f64 / n;
    let variance = live.iter().map(|l| (*l as f64 - mean).powi(2)).sum::<f64>() / n;
    Spread {
        placed: clusters.len(),
        live_nodes: live.len(),
        exact: clusters.iter().filter(|c| c.exact).count(),
        min: live.iter().copied().min().unwrap_or(0),
        max: live.iter().copied().max().unwrap_or(0),
        ideal: (cluster_size * clusters.len()) as f64 / n,
        coefficient_of_variation: if mean > 0.0 {
            variance.sqrt() / mean
        } else {
            0.0
        },
        idle: live.iter().filter(|l| **l == 0).count(),
    }
}

/// How placing the same datasets again after churn differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Changes {
    /// Datasets placed both times.
    pub compared: usize,
    /// Datasets with at least one member that left: the network must
    /// replace it (a membership change on the chain).
    pub lost_a_member: usize,
    /// Members that left, summed over datasets.
    pub members_lost: usize,
    /// Datasets whose members all stayed but whose placement now differs
    /// (a newcomer is closer): churn the running network avoids, since a
    /// node joining closer than current members does not move a cluster.
    pub closer_newcomer_only: usize,
}

/// Compares placements before (`before`) and after churn (`after`, same
/// datasets, missing where the second placement failed).
pub fn changes(net: &Network, before: &[Cluster], after: &[Option<Cluster>]) -> Changes {
    let mut out = Changes::default();
    for (old, new) in before.iter().zip(after) {
        let Some(new) = new else { continue };
        out.compared += 1;
        let lost = old.members.iter().filter(|m| !net.is_alive(**m)).count();
        out.members_lost += lost;
        if lost > 0 {
            out.lost_a_member += 1;
        } else {
            let old_set: BTreeSet<_> = old.members.iter().collect();
            let new_set: BTreeSet<_> = new.members.iter().collect();
            if old_set != new_set {
                out.closer_newcomer_only += 1;
            }
        }
    }
    out
}
