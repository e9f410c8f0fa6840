//! One run of the simulation: a cluster, a client writing to it, one
//! fault while it writes, reads judged as a gateway judges them, and the
//! checks at the end.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use commonware_p2p::simulated::Network;
use commonware_p2p::Manager as _;
use commonware_runtime::{deterministic, Clock, Runner, Spawner, Supervisor as _};
use commonware_utils::ordered::Set;
use fluence_consensus::keys::to_public_key;
use fluence_consensus::{Behavior, EquivocationKind, SubmitError};
use fluence_proto::{Encode, PublicKey, SealedDoc, SignedWrite};
use rand::{Rng, SeedableRng};

use super::adversary::{Conflicts, Deliveries, Equivocator, Key};
use super::check::{
    acked_docs, check, check_accusations, fingerprint, highest_height, AckedWrites,
};
use super::cluster::{
    connect, insert, isolate, network_config, start_node, test_owner, Handle, Membership, Node,
};
use super::reads::{answerable, read_round, Expected, Forgery, ReadTally};

/// Client writes per run (after the dataset's `Create`).
const WRITES: u64 = 24;
/// Writes a client keeps in flight.
const IN_FLIGHT: usize = 4;
/// Simulated time a run may take before it counts as stuck.
const RUN_DEADLINE: Duration = Duration::from_secs(240);
/// Simulated time a write waits for its acknowledgement before the client
/// submits it again, to another member.
pub const RESUBMIT_AFTER: Duration = Duration::from_secs(4);
/// Simulated time between two reads while the client writes.
const READ_EVERY: Duration = Duration::from_secs(2);

/// What goes wrong in one run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Lossy, jittery links only.
    Lossy,
    /// One member is cut off, then reconnected.
    Partition,
    /// One member crashes and restarts from its storage.
    Crash,
    /// One member claims wrong state roots (in its proposals and
    /// attestations).
    WrongRoot,
    /// Seven members: one Byzantine (claiming wrong roots, or
    /// equivocating, in alternate rounds of the rotation) and one crashing
    /// at once (f = 2).
    SevenByzantineAndCrash,
    /// One member loses its whole storage (store, chain and consensus
    /// partitions) and restarts empty: it syncs a snapshot and rejoins.
    Wipe,
    /// As `Wipe`, and the member the wiped one asks first serves altered
    /// snapshots: it must be abandoned for another.
    WipeAndBadSnapshot,
    /// One member equivocates: two proposals for the views it leads,
    /// conflicting notarize and finalize votes, nullify after finalize.
    Equivocate,
}

impl Fault {
    pub fn for_seed(seed: u64) -> Self {
        match seed % 8 {
            0 => Fault::Lossy,
            1 => Fault::Partition,
            2 => Fault::Crash,
            3 => Fault::WrongRoot,
            4 => Fault::SevenByzantineAndCrash,
            5 => Fault::Wipe,
            6 => Fault::WipeAndBadSnapshot,
            _ => Fault::Equivocate,
        }
    }

    fn members(self) -> usize {
        match self {
            Fault::SevenByzantineAndCrash => 7,
            _ => 4,
        }
    }

    /// Whether seed `seed`'s Byzantine member equivocates.
    fn equivocates(seed: u64) -> bool {
        match Fault::for_seed(seed) {
            Fault::Equivocate => true,
            Fault::SevenByzantineAndCrash => (seed / 8) % 2 == 1,
            _ => false,
        }
    }
}

/// What one run measured.
#[derive(Debug, Default)]
pub struct RunStats {
    /// Simulated time the run took.
    pub simulated: Duration,
    pub height: u64,
    pub acked: usize,
    /// Wrong-root evidence records on the chain.
    pub evidence: usize,
    /// Views in which honest members received conflicting votes of the
    /// equivocator, and the equivocation records each honest member
    /// verified.
    pub conflicts: Conflicts,
    pub split_proposals: u64,
    /// Heights whose finalized block is one of the equivocator's twins.
    pub twins_finalized: u64,
    pub equivocations_seen: Vec<usize>,
    pub reads: ReadTally,
    /// The deterministic runtime's audit of every task poll, random draw
    /// and storage operation, at the end of the run.
    pub auditor: String,
    /// [`fingerprint`] of the end state.
    pub fingerprint: String,
    /// The audit digest every [`AUDIT_EVERY`] of simulated time: where two
    /// runs of one seed part, if they do.
    pub audit_trail: Vec<(Duration, String)>,
}

/// Simulated time between two samples of the audit trail.
const AUDIT_EVERY: Duration = Duration::from_millis(100);

pub type Nodes = Arc<Mutex<Vec<Node>>>;
pub type Acked = Arc<Mutex<AckedWrites>>;

pub fn run(seed: u64) -> RunStats {
    let fault = Fault::for_seed(seed);
    let config = deterministic::Config::new()
        .with_seed(seed)
        .with_timeout(Some(RUN_DEADLINE + Duration::from_secs(60)));
    deterministic::Runner::new(config).start(|context| async move {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ 0x5eed);
        let n = fault.members();
        let mut byzantine = match fault {
            Fault::WrongRoot | Fault::SevenByzantineAndCrash | Fault::Equivocate => {
                Some(rng.gen_range(0..n))
            }
            _ => None,
        };
        let equivocates = Fault::equivocates(seed);
        let mut nodes: Vec<Node> = (0..n)
            .map(|i| {
                let behavior = if Some(i) == byzantine && !equivocates {
                    Behavior::WrongRoot
                } else {
                    Behavior::Honest
                };
                Node::new(seed, i, behavior)
            })
            .collect();
        // A wiped member asks the others in key order starting after its
        // own key: the victim is the first in key order, the bad server
        // the second.
        let mut in_key_order: Vec<usize> = (0..n).collect();
        in_key_order.sort_by_key(|&i| nodes[i].key.clone());
        if fault == Fault::WipeAndBadSnapshot {
            nodes[in_key_order[1]].behavior = Behavior::CorruptSnapshots;
            byzantine = Some(in_key_order[1]);
        }
        let keys: Vec<Key> = nodes.iter().map(|n| n.key.clone()).collect();
        let members: Vec<PublicKey> = keys.iter().map(to_public_key).collect();
        let membership = Membership::genesis(&members);
        let owner = Arc::new(test_owner(seed));
        let deliveries = Arc::new(Deliveries::default());
        let mut equivocator = None;
        if let (true, Some(b)) = (equivocates, byzantine) {
            let liar = Arc::new(Equivocator::new(&nodes[b].secret, &keys, &owner.dataset));
            nodes[b].equivocator = Some(Arc::clone(&liar));
            equivocator = Some((b, liar));
        }
        let tap = equivocator
            .as_ref()
            .map(|(b, _)| (Arc::clone(&deliveries), keys[*b].clone()));
        let (network, oracle) =
            Network::new_with_peers(context.child("network"), network_config(n), keys.clone())
                .await;
        network.start();
        let _ = oracle
            .manager()
            .track(0, Set::from_iter_dedup(keys.clone()));
        let lossy = true;
        connect(&oracle, &keys, lossy).await;

        for node in nodes.iter_mut() {
            let spec = node.spec();
            node.handle = Some(
                start_node(
                    &context,
                    &oracle,
                    spec,
                    &membership,
                    owner.dataset,
                    tap.clone(),
                )
                .await,
            );
        }

        // The victim of a crash or partition is never the Byzantine member
        // (that would be f + 1 faults in a 4-member cluster).
        let victim = if fault == Fault::WipeAndBadSnapshot {
            in_key_order[0]
        } else {
            loop {
                let candidate = rng.gen_range(0..n);
                if Some(candidate) != byzantine {
                    break candidate;
                }
            }
        };
        // The member that forges its read answers: the Byzantine one, or
        // (where there is none) one that is otherwise correct.
        let read_liar = byzantine.unwrap_or((victim + 1) % n);
        let acked: Acked = Arc::default();
        // The Create names the cluster, every member's acceptance signed
        // with its node key, as placement gathers them.
        let signers: Vec<fluence_crypto::sign::SigningKey> = nodes
            .iter()
            .map(|node| fluence_crypto::sign::SigningKey::from_seed(&node.secret))
            .collect();
        let create = Arc::new(owner.create_for_cluster(&signers));
        let nodes: Nodes = Arc::new(Mutex::new(nodes));
        let reads = Arc::new(Mutex::new(ReadTally::default()));

        // The client: Create, then WRITES inserts, IN_FLIGHT at a time,
        // each to a random live member, resubmitted elsewhere when a member
        // stops or is slow (duplicates must be applied once).
        let client = context.child("client").spawn({
            let nodes = Arc::clone(&nodes);
            let owner = Arc::clone(&owner);
            let acked = Arc::clone(&acked);
            let create = Arc::clone(&create);
            move |context| async move {
                let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ 0xc11e);
                submit_until_acked(&context, &nodes, &create, &acked, &mut rng).await;
                let mut next = 1u64;
                let mut running = Vec::new();
                while next <= WRITES || !running.is_empty() {
                    while running.len() < IN_FLIGHT && next <= WRITES {
                        let write = insert(&owner, next, 1 + next % 3);
                        let nodes = Arc::clone(&nodes);
                        let acked = Arc::clone(&acked);
                        let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ next);
                        running.push(context.child("write").spawn(move |context| async move {
                            submit_until_acked(&context, &nodes, &write, &acked, &mut rng).await;
                        }));
                        next += 1;
                    }
                    let first = running.remove(0);
                    first.await.expect("client write task");
                }
            }
        });

        // The reader: while the client writes, now and then every member
        // answers a read of an acknowledged document.
        let reading = Arc::new(AtomicBool::new(true));
        let reader = context.child("reader").spawn({
            let nodes = Arc::clone(&nodes);
            let acked = Arc::clone(&acked);
            let reads = Arc::clone(&reads);
            let reading = Arc::clone(&reading);
            let dataset = owner.dataset;
            move |context| async move {
                let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ 0x7ead);
                let mut round = 0usize;
                while reading.load(Ordering::Relaxed) {
                    context.sleep(READ_EVERY).await;
                    let docs = acked_docs(&acked.lock().unwrap());
                    if docs.is_empty() {
                        continue;
                    }
                    let (seq, id, sealed) = &docs[rng.gen_range(0..docs.len())];
                    let other = other_document(&docs, id, &mut rng);
                    let forgery = Forgery::ALL[round % Forgery::ALL.len()];
                    round += 1;
                    read_round(
                        &nodes.lock().unwrap(),
                        read_liar,
                        dataset,
                        *id,
                        Expected { sealed, seq: *seq },
                        &other,
                        forgery,
                        &mut reads.lock().unwrap(),
                    );
                }
            }
        });

        // The audit trail, sampled until the run ends; with
        // FLUENCE_SIM_VERBOSE=1, each member's progress every second.
        let trail = Arc::new(Mutex::new(Vec::new()));
        let verbose = std::env::var("FLUENCE_SIM_VERBOSE").as_deref() == Ok("1");
        context.child("audit").spawn({
            let trail = Arc::clone(&trail);
            let nodes = Arc::clone(&nodes);
            let acked = Arc::clone(&acked);
            move |context| async move {
                let began = context.current();
                loop {
                    context.sleep(AUDIT_EVERY).await;
                    let at = context.current().duration_since(began).unwrap_or_default();
                    trail.lock().unwrap().push((at, context.auditor().state()));
                    if verbose && at.subsec_millis() < AUDIT_EVERY.as_millis() as u32 {
                        eprintln!(
                            "{at:?}: {} acknowledged; {}",
                            acked.lock().unwrap().len(),
                            progress(&nodes.lock().unwrap())
                        );
                    }
                }
            }
        });

        // Faults, while the client writes.
        context.sleep(Duration::from_millis(1500)).await;
        match fault {
            Fault::Lossy | Fault::WrongRoot | Fault::Equivocate => {}
            Fault::Partition => {
                isolate(&oracle, &keys, &keys[victim]).await;
                context.sleep(Duration::from_secs(6)).await;
                connect(&oracle, &keys, lossy).await;
            }
            Fault::Crash
            | Fault::SevenByzantineAndCrash
            | Fault::Wipe
            | Fault::WipeAndBadSnapshot => {
                let wipe = matches!(fault, Fault::Wipe | Fault::WipeAndBadSnapshot);
                // A wipe after the dataset exists, so there is state to sync.
                while wipe && acked.lock().unwrap().len() < 4 {
                    context.sleep(Duration::from_millis(100)).await;
                }
                let handle = nodes.lock().unwrap()[victim]
                    .handle
                    .take()
                    .expect("running");
                handle.crash().await;
                if wipe {
                    nodes.lock().unwrap()[victim].wipe();
                }
                context.sleep(Duration::from_secs(5)).await;
                let spec = nodes.lock().unwrap()[victim].spec();
                let handle = start_node(
                    &context,
                    &oracle,
                    spec,
                    &membership,
                    owner.dataset,
                    tap.clone(),
                )
                .await;
                nodes.lock().unwrap()[victim].handle = Some(handle);
            }
        }

        // Faults heal: clean links from here on.
        client.await.expect("client task");
        reading.store(false, Ordering::Relaxed);
        reader.await.expect("reader task");
        connect(&oracle, &keys, false).await;

        // The cluster finalizes again: one more write after healing.
        let mut rng2 = rand::rngs::StdRng::seed_from_u64(seed ^ 0xf1a1);
        let last = insert(&owner, WRITES + 1, 1);
        submit_until_acked(&context, &nodes, &last, &acked, &mut rng2).await;

        // Every honest member reaches the highest acknowledged height.
        let target = highest_height(&acked.lock().unwrap());
        wait_for(&context, &nodes, Duration::from_secs(60), |nodes| {
            let behind = nodes
                .iter()
                .filter(|n| n.honest())
                .filter_map(|n| n.handle.as_ref())
                .filter(|h| h.applied().height < target)
                .count();
            (behind > 0).then(|| {
                format!("{behind} honest members did not reach height {target} after healing")
            })
        })
        .await;
        if matches!(fault, Fault::Wipe | Fault::WipeAndBadSnapshot) {
            let nodes = nodes.lock().unwrap();
            let report = nodes[victim]
                .handle
                .as_ref()
                .expect("running")
                .sync_report()
                .expect("the wiped member synced from a snapshot");
            assert!(report.height >= 1);
            if fault == Fault::WipeAndBadSnapshot {
                let bad = to_public_key(&nodes[in_key_order[1]].key);
                assert_ne!(report.from, bad, "synced from the bad snapshot");
                assert!(
                    report.abandoned.iter().any(|(member, _)| *member == bad),
                    "the bad snapshot was not abandoned: {report:?}"
                );
            }
        }

        // Every member, the read liar too, reaches it and can answer reads
        // (it holds a block of its state with its own certificate: the
        // idle cluster finalizes empty blocks, each certified).
        wait_for(&context, &nodes, Duration::from_secs(30), |nodes| {
            let waiting = nodes
                .iter()
                .filter_map(|n| n.handle.as_ref())
                .filter(|h| h.applied().height < target || !answerable(h, owner.dataset))
                .count();
            (waiting > 0)
                .then(|| format!("{waiting} members cannot answer reads at height {target}"))
        })
        .await;

        let nodes = nodes.lock().unwrap();
        let acked = acked.lock().unwrap();
        let mut stats = RunStats {
            height: target,
            acked: acked.len(),
            evidence: check(&nodes, &acked, owner.dataset, target),
            ..RunStats::default()
        };

        // Every member answers a read of acknowledged documents, once per
        // kind of forgery, now that all have applied every write.
        let mut reads = *reads.lock().unwrap();
        let docs = acked_docs(&acked);
        for forgery in Forgery::ALL {
            let before = reads;
            let (seq, id, sealed) = &docs[rng.gen_range(0..docs.len())];
            let other = other_document(&docs, id, &mut rng);
            read_round(
                &nodes,
                read_liar,
                owner.dataset,
                *id,
                Expected { sealed, seq: *seq },
                &other,
                forgery,
                &mut reads,
            );
            assert_eq!(
                reads.lies_refused_by_proof,
                before.lies_refused_by_proof + 1,
                "the liar's proven answer was not judged ({forgery:?})"
            );
            assert_eq!(
                reads.honest_proofs_accepted,
                before.honest_proofs_accepted + n as u64 - 1,
                "honest proven answers were not all judged ({forgery:?})"
            );
            assert_eq!(
                reads.documents_proven,
                before.documents_proven + n as u64 - 1,
                "an honest member did not prove the acknowledged document ({forgery:?})"
            );
            assert!(
                reads.quorums_refused_naming_liar > before.quorums_refused_naming_liar,
                "no quorum with the liar was judged ({forgery:?})"
            );
            assert!(
                reads.quorums_agreed > before.quorums_agreed,
                "no quorum of honest members was judged ({forgery:?})"
            );
        }
        stats.reads = reads;

        // Equivocation: evidence names only the equivocator; with one, its
        // conflicting messages reached honest members and they noticed.
        let accused = equivocator.as_ref().map(|(b, _)| to_public_key(&keys[*b]));
        let seen = check_accusations(&nodes, accused.as_ref());
        stats.equivocations_seen = seen.iter().map(Vec::len).collect();
        stats.conflicts = deliveries.conflicts();
        if let Some((_, liar)) = &equivocator {
            stats.split_proposals = liar.sent.split_proposals.load(Ordering::Relaxed);
            let honest = nodes
                .iter()
                .find(|n| n.honest())
                .and_then(|n| n.handle.as_ref())
                .expect("an honest member runs");
            let floor = honest.chain().floor_height().expect("chain readable");
            stats.twins_finalized = (floor.unwrap_or(1).max(1)..=target)
                .filter_map(|h| honest.chain().get(h).ok().flatten())
                .filter(|f| liar.is_twin(&f.block.hash()))
                .count() as u64;
            assert!(
                stats.split_proposals > 0,
                "the equivocator never led a view"
            );
            assert!(
                stats.conflicts.notarize > 0
                    && stats.conflicts.finalize > 0
                    && stats.conflicts.nullify_finalize > 0,
                "conflicting votes were not delivered: {:?}",
                stats.conflicts
            );
            assert!(
                seen.iter().all(|records| !records.is_empty()),
                "an honest member verified no evidence of the equivocation: {:?}",
                stats.equivocations_seen
            );
            let kinds: BTreeSet<EquivocationKind> =
                seen.iter().flatten().map(|record| record.kind).collect();
            assert_eq!(
                kinds.len(),
                3,
                "honest members verified only some kinds of equivocation: {kinds:?}"
            );
        }

        stats.simulated = context
            .current()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let extra = format!(
            "{:?} {:?} {:?} {} {} {:?}",
            stats.reads,
            stats.conflicts,
            stats.equivocations_seen,
            stats.split_proposals,
            stats.twins_finalized,
            stats.evidence
        );
        stats.fingerprint = fingerprint(&nodes, &acked, &extra);
        stats.auditor = context.auditor().state();
        stats.audit_trail = std::mem::take(&mut *trail.lock().unwrap());
        stats
    })
}

/// Waits (in simulated time, up to `limit`) until `unmet` finds nothing
/// missing on the members; fails with what it says is missing.
pub async fn wait_for(
    context: &deterministic::Context,
    nodes: &Nodes,
    limit: Duration,
    unmet: impl Fn(&[Node]) -> Option<String>,
) {
    let started = context.current();
    loop {
        let Some(missing) = unmet(&nodes.lock().unwrap()) else {
            return;
        };
        let waited = context
            .current()
            .duration_since(started)
            .unwrap_or_default();
        assert!(waited < limit, "{missing} within {limit:?}");
        context.sleep(Duration::from_millis(50)).await;
    }
}

/// Each member's applied and finalized heights and pending writes.
fn progress(nodes: &[Node]) -> String {
    let members: Vec<String> = nodes
        .iter()
        .enumerate()
        .map(|(i, node)| match &node.handle {
            Some(h) => format!(
                "{i}: applied {} of {}, {} pending{}",
                h.applied().height,
                h.finalized_tip(),
                h.pending(),
                h.fault()
                    .map(|f| format!(", fault {f}"))
                    .unwrap_or_default()
            ),
            None => format!("{i}: down"),
        })
        .collect();
    members.join("; ")
}

/// Another acknowledged document's sealed bytes than `id`'s (or, with
/// only one document so far, its bytes altered).
fn other_document(
    docs: &[(u64, fluence_proto::DocId, SealedDoc)],
    id: &fluence_proto::DocId,
    rng: &mut rand::rngs::StdRng,
) -> SealedDoc {
    let others: Vec<&SealedDoc> = docs
        .iter()
        .filter(|(_, other, _)| other != id)
        .map(|(_, _, sealed)| sealed)
        .collect();
    if others.is_empty() {
        let mut sealed = docs
            .iter()
            .find(|(_, other, _)| other == id)
            .map(|(_, _, sealed)| sealed.clone())
            .expect("the document read is acknowledged");
        sealed.ciphertext.push(b'!');
        return sealed;
    }
    others[rng.gen_range(0..others.len())].clone()
}

/// Submits `write` to random live members until one acknowledges it.
pub async fn submit_until_acked(
    context: &deterministic::Context,
    nodes: &Nodes,
    write: &SignedWrite,
    acked: &Acked,
    rng: &mut rand::rngs::StdRng,
) {
    loop {
        let submitted = {
            let nodes = nodes.lock().unwrap();
            let live: Vec<&Handle> = nodes.iter().filter_map(|n| n.handle.as_ref()).collect();
            let pick = rng.gen_range(0..live.len());
            // Now and then the same write goes to a second member too.
            if rng.gen_bool(0.15) {
                let other = rng.gen_range(0..live.len());
                drop(live[other].submit(write.clone()));
            }
            live[pick].submit(write.clone())
        };
        let timeout = context.sleep(RESUBMIT_AFTER);
        futures::pin_mut!(timeout);
        futures::pin_mut!(submitted);
        match futures::future::select(submitted, timeout).await {
            futures::future::Either::Left((Ok(committed), _)) => {
                assert_eq!(
                    committed.seq, write.body.seq,
                    "acknowledged the wrong write"
                );
                acked
                    .lock()
                    .unwrap()
                    .insert(committed.seq, (write.to_bytes(), committed.height));
                return;
            }
            // A member that has not applied the dataset's creation yet answers
            // `NoDataset`; another member (or a moment later) will do.
            futures::future::Either::Left((
                Err(
                    SubmitError::Stopped
                    | SubmitError::PoolFull
                    | SubmitError::NoDataset
                    | SubmitError::Syncing,
                ),
                _,
            )) => {
                context.sleep(Duration::from_millis(100)).await;
            }
            futures::future::Either::Left((Err(error), _)) => {
                panic!("write {} refused: {error}", write.body.seq);
            }
            futures::future::Either::Right(_) => {}
        }
    }
}

/// A hex digest for a log line.
pub fn short(text: &str) -> &str {
    &text[..text.len().min(16)]
}
