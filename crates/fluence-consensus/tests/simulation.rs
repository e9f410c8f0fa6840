//! Deterministic simulation of clusters: real replicas (simplex, marshal,
//! the chain application, real store and chain files) on commonware's
//! deterministic runtime and simulated network. Each seed runs one fault
//! while a client writes (the fault rotates with the seed, see
//! [`sim::run::Fault`]):
//!
//! - message loss and delay (every run, until faults heal);
//! - a partition that heals;
//! - a member that crashes and restarts from its storage;
//! - a member whose storage is wiped (it rejoins by syncing a snapshot
//!   from the others), and one where the first member it asks serves
//!   altered snapshots;
//! - a Byzantine member proposing and attesting wrong state roots;
//! - a Byzantine member that equivocates: two different signed proposals
//!   (blocks) for each view it leads, conflicting notarize and finalize
//!   votes, and nullify votes after finalize votes ([`sim::adversary`]);
//! - seven members, one Byzantine (wrong roots or equivocating) and one
//!   crashing at once.
//!
//! In every run one member (the Byzantine one, if any) also forges its
//! read answers: another document's ciphertext, a document left out, a
//! state root it does not hold, signed with its key. Every member answers
//! reads of acknowledged documents now and then while the client writes,
//! and once per forgery at the end, and the gateway's own checks judge the
//! answers ([`sim::reads`]).
//!
//! Every run checks: no two finalized blocks at one height; all honest
//! members hold the same block, hence the same state root, at every
//! height, and their stores end on the root of their chain tip; every
//! acknowledged write is in every honest member's journal and chain (for a
//! member that synced, below its floor: its documents are in the store);
//! the cluster finalizes again once faults heal; honest proven answers
//! pass and prove the acknowledged document, honest members at one state
//! agree as a read quorum, and the liar's answers are refused, naming it,
//! at r ≥ 2 and by the Merkle proof at r = 1; equivocation evidence names
//! no honest member, and an equivocator's conflicting messages reach
//! honest members, each of which verifies evidence against it.
//!
//! Seeds: a short default run; `FLUENCE_SIM_SEEDS=N` runs N seeds,
//! `FLUENCE_LONG_TESTS=1` runs LONG_SEEDS, `FLUENCE_SIM_SEED=S` replays one
//! seed. A failing seed prints the command that replays it; a seed replays
//! identically (`a_seed_replays_identically` checks it). Replaying,
//! `FLUENCE_SIM_VERBOSE=1` prints every member's progress each simulated
//! second and `FLUENCE_SIM_LOG=<filter>` the replicas' logs.

mod sim;

use std::time::Instant;

use sim::run::{run, short, Fault};

/// Seeds in a default (CI) run; see the module docs for the others.
const DEFAULT_SEEDS: u64 = 200;
/// Seeds with `FLUENCE_LONG_TESTS=1`.
const LONG_SEEDS: u64 = 1000;
/// Seeds run twice by `a_seed_replays_identically` (without
/// `FLUENCE_SIM_SEED`): an equivocator, seven members with an equivocator
/// and a crash, a crash, a wrong root, a wiped member. Crashes and wipes
/// matter most: a stopped member's waiting callers are all woken at once,
/// and their order must not depend on a hash seed.
const REPLAY_SEEDS: [u64; 5] = [7, 12, 2, 3, 5];

fn seeds() -> Vec<u64> {
    if let Some(seed) = replayed_seed() {
        return vec![seed];
    }
    let count = match std::env::var("FLUENCE_SIM_SEEDS") {
        Ok(count) => count.parse().expect("FLUENCE_SIM_SEEDS is a number"),
        Err(_) if std::env::var("FLUENCE_LONG_TESTS").as_deref() == Ok("1") => LONG_SEEDS,
        Err(_) => DEFAULT_SEEDS,
    };
    (0..count).collect()
}

/// With `FLUENCE_SIM_LOG=<filter>` (e.g. `warn`, or
/// `debug,commonware_runtime=warn`), the replicas' logs go to stderr: for
/// replaying a failing seed.
fn log_if_asked() {
    if std::env::var("FLUENCE_SIM_LOG").is_ok() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_env("FLUENCE_SIM_LOG"))
            .with_writer(std::io::stderr)
            .with_thread_names(true)
            .with_ansi(false)
            .try_init();
    }
}

fn replayed_seed() -> Option<u64> {
    std::env::var("FLUENCE_SIM_SEED")
        .ok()
        .map(|seed| seed.parse().expect("FLUENCE_SIM_SEED is a number"))
}

#[test]
fn clusters_stay_safe_and_live_under_faults() {
    log_if_asked();
    let seeds = seeds();
    let started = Instant::now();
    let mut failed = Vec::new();
    for seed in &seeds {
        let seed = *seed;
        let began = Instant::now();
        let outcome = std::panic::catch_unwind(|| run(seed));
        match outcome {
            Ok(stats) => eprintln!(
                "seed {seed} ({:?}): {:.1} s simulated, height {}, {} writes acknowledged, {} evidence records, conflicts {:?} ({} split proposals, {} twins finalized), equivocations seen {:?}, reads {:?}, run {}, {:.2} s",
                Fault::for_seed(seed),
                stats.simulated.as_secs_f64(),
                stats.height,
                stats.acked,
                stats.evidence,
                stats.conflicts,
                stats.split_proposals,
                stats.twins_finalized,
                stats.equivocations_seen,
                stats.reads,
                short(&stats.fingerprint),
                began.elapsed().as_secs_f64()
            ),
            Err(_) => {
                eprintln!(
                    "seed {seed} ({:?}) FAILED; replay with:\n  FLUENCE_SIM_SEED={seed} cargo test -p fluence-consensus --test simulation",
                    Fault::for_seed(seed)
                );
                failed.push(seed);
            }
        }
    }
    eprintln!(
        "{} seeds in {:.1} s ({:.2} s per seed)",
        seeds.len(),
        started.elapsed().as_secs_f64(),
        started.elapsed().as_secs_f64() / seeds.len().max(1) as f64
    );
    assert!(failed.is_empty(), "failing seeds: {failed:?}");
}

/// A seed is a complete description of a run: run twice, it schedules the
/// same tasks in the same order, draws the same random numbers and
/// performs the same storage operations (the runtime's audit digest), and
/// ends with the same chains, acknowledgements, evidence and read
/// verdicts.
#[test]
fn a_seed_replays_identically() {
    log_if_asked();
    let seeds = match replayed_seed() {
        Some(seed) => vec![seed],
        None => REPLAY_SEEDS.to_vec(),
    };
    for seed in seeds {
        let first = run(seed);
        let second = run(seed);
        if first.fingerprint != second.fingerprint {
            let trimmed = |stats: &sim::run::RunStats| {
                format!(
                    "height {}, {} acknowledged, reads {:?}, equivocations seen {:?}",
                    stats.height, stats.acked, stats.reads, stats.equivocations_seen
                )
            };
            panic!(
                "seed {seed} ({:?}) ended differently on a second run:\n  {}\n  {}",
                Fault::for_seed(seed),
                trimmed(&first),
                trimmed(&second)
            );
        }
        let parted = first
            .audit_trail
            .iter()
            .zip(&second.audit_trail)
            .find(|(a, b)| a != b)
            .map(|(a, _)| a.0);
        assert_eq!(
            first.auditor, second.auditor,
            "seed {seed} ({:?}) ran differently on a second run (runtime audit), first seen {parted:?} into the run",
            Fault::for_seed(seed)
        );
        eprintln!(
            "seed {seed} ({:?}) replays identically: run {}, audit {}",
            Fault::for_seed(seed),
            short(&first.fingerprint),
            short(&first.auditor)
        );
    }
}

/// Seeds of the membership-change run: a few by default, more with
/// `FLUENCE_LONG_TESTS=1`, one with `FLUENCE_SIM_SEED`.
fn change_seeds() -> Vec<u64> {
    if let Some(seed) = replayed_seed() {
        return vec![seed];
    }
    let count = if std::env::var("FLUENCE_LONG_TESTS").as_deref() == Ok("1") {
        40
    } else {
        4
    };
    (0..count).collect()
}

/// A stopped member's seat passes to a newcomer through a membership
/// change the other members finalize on the chain: they restart in the
/// new epoch on the change block, the newcomer syncs from their
/// snapshot, writes go on being acknowledged (also once a second member
/// stops and every block needs the newcomer's votes), nothing
/// acknowledged is lost and every running member of the new epoch holds
/// the same chain and state (see `sim::change`). A seed replays
/// identically.
#[test]
fn a_stopped_member_is_replaced_through_a_membership_change() {
    log_if_asked();
    let seeds = change_seeds();
    for seed in &seeds {
        let stats = sim::change::replace_one(*seed);
        eprintln!(
            "seed {seed}: change finalized at height {}, newcomer synced at {}, {} writes acknowledged ({} needing the newcomer's votes) up to height {}, run {}",
            stats.base_height,
            stats.synced_at,
            stats.acked,
            stats.acked_with_newcomer,
            stats.height,
            short(&stats.fingerprint)
        );
    }
    let again = sim::change::replace_one(seeds[0]);
    let first = sim::change::replace_one(seeds[0]);
    assert_eq!(
        first.fingerprint, again.fingerprint,
        "seed {} ended differently on a second run",
        seeds[0]
    );
}
