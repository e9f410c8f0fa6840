//! One simulated run for one network size: build the network by joins
//! and refreshes, measure lookups and place datasets, apply churn,
//! measure and place again.

use crate::lookup::LookupOutcome;
use crate::network::{Network, Params};
use crate::placing::{self, Changes, Cluster, Spread};
use crate::table::NodeId;

/// The smallest network a scenario accepts: 10 % churn must move at least
/// one node and a cluster must fit.
pub const NODES_MIN: usize = 10;

/// The largest network a scenario accepts (memory: a routing table per node).
pub const NODES_MAX: usize = 200_000;

/// Lookups or datasets one scenario may ask for.
pub const COUNT_MAX: usize = 1_000_000;

/// What to simulate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scenario {
    pub nodes: usize,
    /// Lookups measured before and again after churn.
    pub lookups: usize,
    /// Datasets placed before and again after churn.
    pub datasets: usize,
    /// Members per dataset (the cluster size).
    pub cluster_size: usize,
    /// Percent of nodes that leave, and percent that join, in the churn step.
    pub churn_percent: usize,
    /// Refresh intervals (each node bootstraps again) after the last join.
    pub refresh_rounds: usize,
    pub seed: u64,
    pub params: Params,
}

impl Scenario {
    /// The scenario for `nodes` nodes: clusters of 4, 10 % churn,
    /// two refresh rounds, libp2p's parameters.
    pub fn new(nodes: usize, lookups: usize, datasets: usize, seed: u64) -> Scenario {
        Scenario {
            nodes,
            lookups,
            datasets,
            cluster_size: 4,
            churn_percent: 10,
            refresh_rounds: 2,
            seed,
            params: Params::default(),
        }
    }

    /// Checks the scenario can run.
    pub fn validate(&self) -> Result<(), ScenarioError> {
        if !(NODES_MIN..=NODES_MAX).contains(&self.nodes) {
            return Err(ScenarioError::Nodes(self.nodes));
        }
        if self.lookups == 0 || self.lookups > COUNT_MAX {
            return Err(ScenarioError::Lookups(self.lookups));
        }
        if self.datasets > COUNT_MAX {
            return Err(ScenarioError::Datasets(self.datasets));
        }
        if self.cluster_size == 0 || self.cluster_size > self.params.bucket_size {
            return Err(ScenarioError::ClusterSize(self.cluster_size));
        }
        if self.churn_percent > 50 {
            return Err(ScenarioError::Churn(self.churn_percent));
        }
        if self.params.bucket_size == 0 || self.params.parallelism == 0 {
            return Err(ScenarioError::Params);
        }
        Ok(())
    }
}

/// Why a scenario cannot run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScenarioError {
    #[error("a network of {0} nodes: the simulation takes {NODES_MIN} to {NODES_MAX}")]
    Nodes(usize),
    #[error("{0} lookups: measure between 1 and {COUNT_MAX}")]
    Lookups(usize),
    #[error("{0} datasets: place at most {COUNT_MAX}")]
    Datasets(usize),
    #[error("clusters of {0}: the size must be between 1 and the bucket size k")]
    ClusterSize(usize),
    #[error("{0} % churn: at most 50 %")]
    Churn(usize),
    #[error("bucket size and parallelism must be at least 1")]
    Params,
}

/// Mean, median, 99th percentile and maximum of a sample.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Summary {
    pub mean: f64,
    pub p50: u64,
    pub p99: u64,
    pub max: u64,
}

impl Summary {
    /// Nearest-rank percentiles of `values` (all zero when empty).
    pub fn of(values: &[u64]) -> Summary {
        if values.is_empty() {
            return Summary::default();
        }
        let mut sorted = values.to_vec();
        sorted.sort_unstable();
        let rank =
            |p: f64| sorted[((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1];
        Summary {
            mean: sorted.iter().sum::<u64>() as f64 / sorted.len() as f64,
            p50: rank(0.50),
            p99: rank(0.99),
            max: *sorted.last().expect("not empty"),
        }
    }
}

/// Measured lookups of one phase.
#[derive(Debug, Clone, PartialEq)]
pub struct LookupStats {
    pub lookups: usize,
    pub hops: Summary,
    pub requests: Summary,
    pub failed_requests: Summary,
    pub latency_ms: Summary,
    /// Lookups whose answer equals the true k closest live nodes.
    pub exact: usize,
    /// Lookups ended by the query timeout.
    pub timed_out: usize,
}

impl LookupStats {
    /// Exact answers as a fraction of lookups.
    pub fn exact_fraction(&self) -> f64 {
        self.exact as f64 / self.lookups.max(1) as f64
    }
}

/// The network and what was measured at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct Phase {
    pub live_nodes: usize,
    /// Mean routing-table entries of live nodes.
    pub table_mean: f64,
    pub lookups: LookupStats,
    pub spread: Spread,
}

/// The result of one scenario.
#[derive(Debug, Clone, PartialEq)]
pub struct SizeReport {
    pub scenario: Scenario,
    /// After the joins and refresh rounds.
    pub steady: Phase,
    /// Right after churn, before any refresh.
    pub churned: Phase,
    pub departed: usize,
    pub joined: usize,
    pub changes: Changes,
}

impl SizeReport {
    /// The target for the mean hop count: log2(N)/2 + 2.
    pub fn hop_target(&self) -> f64 {
        (self.scenario.nodes as f64).log2() / 2.0 + 2.0
    }
}

/// Runs `scenario`.
pub fn run(scenario: &Scenario) -> Result<SizeReport, ScenarioError> {
    scenario.validate()?;
    let mut net = Network::new(scenario.params.clone(), scenario.seed);
    // Node 0 is the bootstrap node everyone joins through; it stays up.
    let bootstrap = net.spawn();
    for _ in 1..scenario.nodes {
        let node = net.spawn();
        net.join(node, bootstrap);
    }
    for _ in 0..scenario.refresh_rounds {
        net.refresh_round();
    }
    let steady_lookups = measure_lookups(&mut net, scenario.lookups);
    let datasets: Vec<_> = (0..scenario.datasets)
        .map(|_| net.random_dataset())
        .collect();
    let before: Vec<Cluster> = datasets
        .iter()
        .filter_map(|(id, key)| placing::place(&mut net, *id, *key, scenario.cluster_size))
        .collect();
    let steady = phase(&net, steady_lookups, &before, scenario.cluster_size);

    let moved = scenario.nodes * scenario.churn_percent / 100;
    let mut candidates: Vec<NodeId> = net.live_nodes();
    candidates.retain(|n| *n != bootstrap);
    for _ in 0..moved {
        let pick = rand::Rng::gen_range(&mut net.rng, 0..candidates.len());
        net.leave(candidates.swap_remove(pick));
    }
    for _ in 0..moved {
        let node = net.spawn();
        net.join(node, bootstrap);
    }
    let churned_lookups = measure_lookups(&mut net, scenario.lookups);
    let after: Vec<Option<Cluster>> = before
        .iter()
        .map(|c| placing::place(&mut net, c.dataset, c.key, scenario.cluster_size))
        .collect();
    let changes = placing::changes(&net, &before, &after);
    let after: Vec<Cluster> = after.into_iter().flatten().collect();
    let churned = phase(&net, churned_lookups, &after, scenario.cluster_size);
    Ok(SizeReport {
        scenario: scenario.clone(),
        steady,
        churned,
        departed: moved,
        joined: moved,
        changes,
    })
}

/// `count` lookups of random dataset positions from random live nodes,
/// each checked against the truth.
fn measure_lookups(net: &mut Network, count: usize) -> LookupStats {
    let k = net.params().bucket_size;
    let mut outcomes: Vec<LookupOutcome> = Vec::with_capacity(count);
    let mut exact = 0;
    for _ in 0..count {
        let from = net.random_live_node();
        let (_, target) = net.random_dataset();
        let outcome = net.lookup(from, target, k);
        if outcome.found == net.true_closest(&target, k) {
            exact += 1;
        }
        outcomes.push(outcome);
    }
    let of =
        |f: fn(&LookupOutcome) -> u64| Summary::of(&outcomes.iter().map(f).collect::<Vec<_>>());
    LookupStats {
        lookups: count,
        hops: of(|o| u64::from(o.hops)),
        requests: of(|o| u64::from(o.requests)),
        failed_requests: of(|o| u64::from(o.failed)),
        latency_ms: of(|o| o.latency_ms),
        exact,
        timed_out: outcomes.iter().filter(|o| !o.complete).count(),
    }
}

fn phase(net: &Network, lookups: LookupStats, clusters: &[Cluster], cluster_size: usize) -> Phase {
    let live = net.live_nodes();
    let entries: usize = live.iter().map(|n| net.table(*n).len()).sum();
    Phase {
        live_nodes: live.len(),
        table_mean: entries as f64 / live.len().max(1) as f64,
        lookups,
        spread: placing::spread(net, clusters, cluster_size),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_uses_nearest_rank_percentiles() {
        let values: Vec<u64> = (1..=100).collect();
        let s = Summary::of(&values);
        assert_eq!((s.p50, s.p99, s.max), (50, 99, 100));
        assert!((s.mean - 50.5).abs() < 1e-9);
        assert_eq!(Summary::of(&[]), Summary::default());
        assert_eq!(Summary::of(&[7]).p99, 7);
    }

    #[test]
    fn bad_scenarios_are_refused_with_a_reason() {
        let ok = Scenario::new(100, 10, 10, 1);
        assert_eq!(ok.validate(), Ok(()));
        assert_eq!(
            run(&Scenario::new(5, 10, 10, 1)).unwrap_err(),
            ScenarioError::Nodes(5)
        );
        assert_eq!(
            Scenario::new(100, 0, 10, 1).validate(),
            Err(ScenarioError::Lookups(0))
        );
        let mut big_cluster = ok.clone();
        big_cluster.cluster_size = 21;
        assert_eq!(big_cluster.validate(), Err(ScenarioError::ClusterSize(21)));
        let mut churn = ok;
        churn.churn_percent = 60;
        assert_eq!(churn.validate(), Err(ScenarioError::Churn(60)));
    }
}
