//! The issue 4 simulation: a 1,000-node network built by joins and
//! refreshes, lookups checked against the truth, datasets placed with the
//! real rule, then 10 % of the nodes leave silently and 10 % join.
//!
//! `FLUENCE_LONG_TESTS=1` adds more seeds and a 10,000-node run.

use fluence_dht_sim::scenario::SizeReport;
use fluence_dht_sim::{report, run, Scenario};

fn long_tests() -> bool {
    std::env::var("FLUENCE_LONG_TESTS").as_deref() == Ok("1")
}

/// The checks every simulated size must pass.
fn check(r: &SizeReport) {
    let text = report::text(std::slice::from_ref(r));
    let n = r.scenario.nodes;
    // The target, before and after churn.
    assert!(r.steady.lookups.hops.mean <= r.hop_target(), "{text}");
    assert!(r.churned.lookups.hops.mean <= r.hop_target(), "{text}");

    // Without churn, lookups find the true 20 closest live nodes.
    assert!(r.steady.lookups.exact_fraction() >= 0.99, "{text}");
    assert_eq!(r.steady.lookups.timed_out, 0, "{text}");
    assert_eq!(r.steady.lookups.failed_requests.max, 0, "{text}");
    // With 10 % of the nodes silently gone, answers still list them until
    // their holders notice, and each costs a 5 s timeout; most lookups
    // are still exact (observed 97–99 % at 1,000 nodes).
    assert!(r.churned.lookups.exact_fraction() >= 0.90, "{text}");
    assert!(r.churned.lookups.failed_requests.mean > 0.0, "{text}");
    assert_eq!(r.churned.live_nodes, n, "as many joined as left: {text}");

    assert_eq!(r.steady.spread.placed, r.scenario.datasets, "{text}");
    // After churn a lookup that hits the query timeout may return fewer
    // than 4 nodes (2 of 40,000 at 10,000 nodes, seed 1); a node retries.
    let placed_after = r.churned.spread.placed as f64;
    assert!(placed_after >= 0.999 * r.scenario.datasets as f64, "{text}");
    for phase in [&r.steady, &r.churned] {
        let spread = &phase.spread;
        // Placement from a lookup is placement on the true closest.
        assert!(spread.exact as f64 >= 0.99 * spread.placed as f64, "{text}");
        // Spread bound: two independent sources of unevenness.
        // (1) Sampling: even if each dataset went to 4 uniformly random
        //     nodes, a node's load would be binomial ≈ Poisson(ideal),
        //     CV = 1/sqrt(ideal).
        // (2) Geometry: a node's share of the key space in which it is
        //     among the 4 closest varies with the gaps between random ids;
        //     measured 0.37 with 160 datasets per node (seeds 1, 2), and
        //     bounded here by 0.5, the CV of a sum of 4 exponential gaps
        //     (what a node's share among the 4 closest is on a line).
        // A broken mapping (ids not hashed, so clustered) or lookups that
        // keep returning the same nodes would break it.
        let bound = (0.5f64.powi(2) + 1.0 / spread.ideal).sqrt();
        assert!(
            spread.coefficient_of_variation <= bound,
            "CV bound {bound:.2}: {text}"
        );
        assert!(spread.max as f64 <= 4.0 * spread.ideal, "{text}");
    }

    // 10 % of the nodes left: a cluster of 4 loses a member with
    // probability 1 − 0.9^4 ≈ 0.344.
    let c = &r.changes;
    assert_eq!(c.compared, r.churned.spread.placed, "{text}");
    let lost = c.lost_a_member as f64 / c.compared as f64;
    assert!((0.28..=0.41).contains(&lost), "{lost}: {text}");
    assert!(c.members_lost >= c.lost_a_member, "{text}");
}

#[test]
fn a_thousand_nodes_meet_the_lookup_and_placement_targets_through_churn() {
    // (nodes, lookups, datasets, seed)
    let runs: &[(usize, usize, usize, u64)] = if long_tests() {
        &[
            (1_000, 300, 2_000, 1),
            (1_000, 1_000, 4_000, 2),
            (1_000, 1_000, 4_000, 3),
            (10_000, 1_000, 40_000, 1),
        ]
    } else {
        &[(1_000, 300, 2_000, 1)]
    };
    for (nodes, lookups, datasets, seed) in runs {
        let r = run(&Scenario::new(*nodes, *lookups, *datasets, *seed)).expect("a valid scenario");
        check(&r);
    }
}

#[test]
fn a_seed_replays_byte_for_byte() {
    let scenario = Scenario::new(200, 50, 200, 42);
    let first = report::text(&[run(&scenario).expect("valid")]);
    let again = report::text(&[run(&scenario).expect("valid")]);
    assert_eq!(first, again);
    let other = report::markdown(&[run(&Scenario::new(200, 50, 200, 43)).expect("valid")]);
    let first_markdown = report::markdown(&[run(&scenario).expect("valid")]);
    assert_ne!(first_markdown, other, "the seed drives the run");
}
