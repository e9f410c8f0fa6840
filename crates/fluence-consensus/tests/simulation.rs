//! Deterministic simulation of clusters: real replicas (simplex, marshal,
//! the chain application, real store and chain files) on commonware's
//! deterministic runtime and simulated network, with message loss and
//! delay, partitions that heal, a member that crashes and restarts from its
//! storage, a member whose storage is wiped (it rejoins by syncing a
//! snapshot from the others), and a Byzantine member.
//!
//! Every run checks: no two finalized blocks at one height; all honest
//! members hold the same block, hence the same state root, at every
//! height, and their stores end on the root of their chain tip; every
//! acknowledged write is in every honest member's journal and chain (for a
//! member that synced, below its floor: its documents are in the store);
//! the cluster finalizes again once faults heal.
//!
//! Seeds: a short default run; `FLUENCE_SIM_SEEDS=N` runs N seeds,
//! `FLUENCE_LONG_TESTS=1` runs LONG_SEEDS, `FLUENCE_SIM_SEED=S` replays one
//! seed. A failing seed prints the command that replays it.

use std::collections::BTreeMap;
use std::num::{NonZeroU32, NonZeroUsize};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use commonware_cryptography::{ed25519, Signer};
use commonware_p2p::simulated::{self, Link, Network, Oracle};
use commonware_p2p::Manager as _;
use commonware_runtime::{deterministic, Clock, Quota, Runner, Spawner, Supervisor as _};
use commonware_utils::ordered::Set;
use commonware_utils::Probability;
use fluence_chain::ChainRules;
use fluence_consensus::keys::to_public_key;
use fluence_consensus::{
    start, Behavior, BlockLimits, Channel, ClusterNetwork, ReplicaConfig, ReplicaHandle,
    SubmitError, Timeouts,
};
use fluence_proto::{
    DatasetId, Decode, DocId, DocOp, Encode, Precondition, PublicKey, SealedDoc, SignedWrite,
};
use fluence_store::{PlaintextOrder, Store};
use fluence_testkit::Owner;
use rand::{Rng, SeedableRng};
use zeroize::Zeroizing;

type Sender = simulated::Sender<ed25519::PublicKey, deterministic::Context>;
type Handle = ReplicaHandle<PlaintextOrder, Sender>;

/// Seeds in a default (CI) run; see the module docs for the others.
const DEFAULT_SEEDS: u64 = 200;
/// Seeds with `FLUENCE_LONG_TESTS=1`.
const LONG_SEEDS: u64 = 1000;
/// Client writes per run (after the dataset's `Create`).
const WRITES: u64 = 24;
/// Writes a client keeps in flight.
const IN_FLIGHT: usize = 4;
/// Simulated time a run may take before it counts as stuck.
const RUN_DEADLINE: Duration = Duration::from_secs(240);
/// Simulated time a write waits for its acknowledgement before the client
/// submits it again, to another member.
const RESUBMIT_AFTER: Duration = Duration::from_secs(4);

/// What goes wrong in one run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// Lossy, jittery links only.
    Lossy,
    /// One member is cut off, then reconnected.
    Partition,
    /// One member crashes and restarts from its storage.
    Crash,
    /// One member claims wrong state roots (in its proposals and
    /// attestations).
    WrongRoot,
    /// Seven members: one Byzantine and one crashing at once (f = 2).
    SevenByzantineAndCrash,
    /// One member loses its whole storage (store, chain and consensus
    /// partitions) and restarts empty: it syncs a snapshot and rejoins.
    Wipe,
    /// As `Wipe`, and the member the wiped one asks first serves altered
    /// snapshots: it must be abandoned for another.
    WipeAndBadSnapshot,
}

impl Fault {
    fn for_seed(seed: u64) -> Self {
        match seed % 7 {
            0 => Fault::Lossy,
            1 => Fault::Partition,
            2 => Fault::Crash,
            3 => Fault::WrongRoot,
            4 => Fault::SevenByzantineAndCrash,
            5 => Fault::Wipe,
            _ => Fault::WipeAndBadSnapshot,
        }
    }

    fn members(self) -> usize {
        match self {
            Fault::SevenByzantineAndCrash => 7,
            _ => 4,
        }
    }
}

/// The dataset owner of seed `seed`, signing writes as a gateway would.
fn test_owner(seed: u64) -> Owner {
    let mut secret = [0u8; 32];
    secret[..8].copy_from_slice(&seed.to_le_bytes());
    secret[31] = 0xd0;
    Owner::new(secret, [7; 32])
}

/// Write `seq`: inserts of `docs` new documents.
fn insert(owner: &Owner, seq: u64, docs: u64) -> SignedWrite {
    let ops = (0..docs)
        .map(|i| {
            let mut id = [0u8; 16];
            id[..8].copy_from_slice(&seq.to_be_bytes());
            id[8..].copy_from_slice(&i.to_be_bytes());
            DocOp::Put {
                doc: DocId(id),
                expect: Precondition::Absent,
                sealed: SealedDoc {
                    version: 1,
                    wrapped_key: vec![0xaa; 72],
                    ciphertext: format!("doc {seq}/{i}").into_bytes(),
                },
                entries: Vec::new(),
            }
        })
        .collect();
    owner.batch(seq, ops)
}

/// One member: its key, its directory, and its replica while it runs.
struct Node {
    secret: [u8; 32],
    key: ed25519::PublicKey,
    dir: tempfile::TempDir,
    behavior: Behavior,
    /// Bumped when the member's storage is wiped: its consensus partitions
    /// are named after it, so the new life starts with none.
    generation: u32,
    handle: Option<Handle>,
}

impl Node {
    fn new(seed: u64, index: usize, behavior: Behavior) -> Self {
        let mut secret = [0u8; 32];
        secret[..8].copy_from_slice(&seed.to_le_bytes());
        secret[8] = index as u8;
        secret[31] = 0x5e;
        let key = commonware_codec::DecodeExt::decode(bytes::Bytes::copy_from_slice(&secret))
            .map(|k: ed25519::PrivateKey| k.public_key())
            .expect("any 32 bytes are an ed25519 seed");
        Node {
            secret,
            key,
            dir: tempfile::tempdir_in(sim_dir()).expect("temporary directory"),
            behavior,
            generation: 0,
            handle: None,
        }
    }

    /// Whether the member follows consensus honestly (one that only
    /// serves bad snapshots does).
    fn honest(&self) -> bool {
        matches!(self.behavior, Behavior::Honest | Behavior::CorruptSnapshots)
    }

    /// Removes everything the (stopped) member stored.
    fn wipe(&mut self) {
        assert!(self.handle.is_none(), "wipe a stopped member only");
        for part in ["store", "chain"] {
            let path = self.dir.path().join(part);
            if path.exists() {
                std::fs::remove_dir_all(&path).expect("wipe member storage");
            }
        }
        self.generation += 1;
    }
}

/// Where members keep their files: memory-backed when the machine has it,
/// so fsyncs cost nothing and runs stay fast.
fn sim_dir() -> std::path::PathBuf {
    let shm = std::path::Path::new("/dev/shm");
    if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    }
}

/// Per-peer message rate of each channel. The simulated receiver sizes its
/// queue from it (one burst per tracked peer), so it stays modest.
const QUOTA: Quota = Quota::per_second(NonZeroU32::new(4_096).expect("non-zero"));

fn link(lossy: bool) -> Link {
    Link {
        latency: Duration::from_millis(20),
        jitter: Duration::from_millis(if lossy { 15 } else { 2 }),
        success_rate: if lossy {
            Probability::from_f64(0.9).expect("valid probability")
        } else {
            Probability::from_f64(1.0).expect("valid probability")
        },
    }
}

async fn connect(
    oracle: &Oracle<ed25519::PublicKey, deterministic::Context>,
    keys: &[ed25519::PublicKey],
    lossy: bool,
) {
    for a in keys {
        for b in keys {
            if a != b {
                let _ = oracle.remove_link(a.clone(), b.clone()).await;
                oracle
                    .add_link(a.clone(), b.clone(), link(lossy))
                    .await
                    .expect("link between members");
            }
        }
    }
}

async fn isolate(
    oracle: &Oracle<ed25519::PublicKey, deterministic::Context>,
    keys: &[ed25519::PublicKey],
    cut: &ed25519::PublicKey,
) {
    for other in keys {
        if other != cut {
            let _ = oracle.remove_link(cut.clone(), other.clone()).await;
            let _ = oracle.remove_link(other.clone(), cut.clone()).await;
        }
    }
}

/// What starting a member needs: its identity, files and behaviour.
#[derive(Clone)]
struct Spec {
    secret: [u8; 32],
    key: ed25519::PublicKey,
    dir: std::path::PathBuf,
    behavior: Behavior,
    generation: u32,
}

impl Node {
    fn spec(&self) -> Spec {
        Spec {
            secret: self.secret,
            key: self.key.clone(),
            dir: self.dir.path().to_path_buf(),
            behavior: self.behavior,
            generation: self.generation,
        }
    }
}

/// Starts (or restarts, from the same files) a member's replica.
async fn start_node(
    context: &deterministic::Context,
    oracle: &Oracle<ed25519::PublicKey, deterministic::Context>,
    node: Spec,
    members: &[PublicKey],
    dataset: DatasetId,
) -> Handle {
    let control = oracle.control(node.key.clone());
    let mut channels = Vec::with_capacity(Channel::ALL.len());
    for channel in Channel::ALL {
        channels.push(
            control
                .register(channel.id(), QUOTA)
                .await
                .expect("channel registration"),
        );
    }
    let channels: [_; fluence_consensus::CHANNELS] =
        channels.try_into().expect("one pair per channel");
    // A crashed replica's files close once its aborted tasks are dropped;
    // give the runtime a moment if they are not yet.
    let store = loop {
        match Store::<PlaintextOrder>::open(node.dir.join("store")) {
            Ok(store) => break Arc::new(store),
            Err(error) => {
                assert!(
                    format!("{error}").contains("already open"),
                    "store does not reopen: {error}"
                );
                context.sleep(Duration::from_millis(10)).await;
            }
        }
    };
    let config = ReplicaConfig {
        dataset,
        identity: Zeroizing::new(node.secret),
        members: members.to_vec(),
        store,
        chain_dir: node.dir.join("chain"),
        partition_prefix: format!("member-{}-g{}", hex(&node.secret[..9]), node.generation),
        rules: ChainRules::default(),
        limits: BlockLimits::default(),
        timeouts: Timeouts {
            leader: Duration::from_millis(500),
            certification: Duration::from_secs(1),
            retry: Duration::from_secs(1),
            fetch: Duration::from_millis(500),
        },
        behavior: node.behavior,
    };
    let network = ClusterNetwork {
        channels,
        peers: oracle.manager(),
        blocker: control,
    };
    start(context.child("member"), config, network)
        .await
        .expect("replica starts")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Acknowledged writes: seq → (write bytes, height).
type Acked = Arc<Mutex<BTreeMap<u64, (Vec<u8>, u64)>>>;

/// What one run measured.
#[derive(Debug, Default)]
struct RunStats {
    /// Simulated time the run took.
    simulated: Duration,
    height: u64,
    acked: usize,
    evidence: usize,
}

fn run(seed: u64) -> RunStats {
    let fault = Fault::for_seed(seed);
    let config = deterministic::Config::new()
        .with_seed(seed)
        .with_timeout(Some(RUN_DEADLINE + Duration::from_secs(60)));
    deterministic::Runner::new(config).start(|context| async move {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ 0x5eed);
        let n = fault.members();
        let mut byzantine = match fault {
            Fault::WrongRoot | Fault::SevenByzantineAndCrash => Some(rng.gen_range(0..n)),
            _ => None,
        };
        let mut nodes: Vec<Node> = (0..n)
            .map(|i| {
                let behavior = if Some(i) == byzantine {
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
        let keys: Vec<ed25519::PublicKey> = nodes.iter().map(|n| n.key.clone()).collect();
        let members: Vec<PublicKey> = keys.iter().map(to_public_key).collect();
        let (network, oracle) = Network::new_with_peers(
            context.child("network"),
            simulated::Config {
                max_size: 8 * 1024 * 1024,
                max_peers_per_set: NonZeroUsize::new(n).expect("non-zero"),
                disconnect_on_block: false,
                tracked_peer_sets: NonZeroUsize::new(1).expect("non-zero"),
            },
            keys.clone(),
        )
        .await;
        network.start();
        let _ = oracle
            .manager()
            .track(0, Set::from_iter_dedup(keys.clone()));
        let lossy = true;
        connect(&oracle, &keys, lossy).await;

        let owner = Arc::new(test_owner(seed));
        for node in nodes.iter_mut() {
            node.handle =
                Some(start_node(&context, &oracle, node.spec(), &members, owner.dataset).await);
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
        let acked: Acked = Arc::default();
        let nodes = Arc::new(Mutex::new(nodes));

        // The client: Create, then WRITES inserts, IN_FLIGHT at a time,
        // each to a random live member, resubmitted elsewhere when a member
        // stops or is slow (duplicates must be applied once).
        let client = context.child("client").spawn({
            let nodes = Arc::clone(&nodes);
            let owner = Arc::clone(&owner);
            let acked = Arc::clone(&acked);
            move |context| async move {
                let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ 0xc11e);
                submit_until_acked(&context, &nodes, &owner.create(), &acked, &mut rng).await;
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

        // Faults, while the client writes.
        context.sleep(Duration::from_millis(1500)).await;
        match fault {
            Fault::Lossy | Fault::WrongRoot => {}
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
                let handle = start_node(&context, &oracle, spec, &members, owner.dataset).await;
                nodes.lock().unwrap()[victim].handle = Some(handle);
            }
        }

        // Faults heal: clean links from here on.
        client.await.expect("client task");
        connect(&oracle, &keys, false).await;

        // The cluster finalizes again: one more write after healing.
        let mut rng2 = rand::rngs::StdRng::seed_from_u64(seed ^ 0xf1a1);
        let last = insert(&owner, WRITES + 1, 1);
        submit_until_acked(&context, &nodes, &last, &acked, &mut rng2).await;

        // Every honest member reaches the highest acknowledged height.
        let target = acked
            .lock()
            .unwrap()
            .values()
            .map(|(_, h)| *h)
            .max()
            .unwrap_or(0);
        let started = context.current();
        loop {
            let behind = {
                let nodes = nodes.lock().unwrap();
                nodes
                    .iter()
                    .filter(|n| n.honest())
                    .filter_map(|n| n.handle.as_ref())
                    .filter(|h| h.applied().height < target)
                    .count()
            };
            if behind == 0 {
                break;
            }
            let waited = context
                .current()
                .duration_since(started)
                .unwrap_or_default();
            assert!(
                waited < Duration::from_secs(60),
                "{behind} honest members did not reach height {target} within 60 s after healing"
            );
            context.sleep(Duration::from_millis(50)).await;
        }
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
        let mut stats = check(
            &nodes.lock().unwrap(),
            &acked.lock().unwrap(),
            owner.dataset,
            target,
        );
        stats.simulated = context
            .current()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        stats
    })
}

/// Submits `write` to random live members until one acknowledges it.
async fn submit_until_acked(
    context: &deterministic::Context,
    nodes: &Arc<Mutex<Vec<Node>>>,
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

/// The invariants of every run.
fn check(
    nodes: &[Node],
    acked: &BTreeMap<u64, (Vec<u8>, u64)>,
    dataset: DatasetId,
    height: u64,
) -> RunStats {
    let honest: Vec<&Handle> = nodes
        .iter()
        .filter(|n| n.honest())
        .map(|n| n.handle.as_ref().expect("every member runs at the end"))
        .collect();
    for handle in &honest {
        assert_eq!(handle.fault(), None, "an honest member stopped applying");
    }
    // A member that synced holds its chain from its floor on.
    let floors: Vec<Option<u64>> = honest
        .iter()
        .map(|handle| handle.chain().floor_height().expect("chain readable"))
        .collect();
    // One block per height, the same on every honest member (and so the
    // same state root).
    let mut evidence = 0;
    for h in 1..=height {
        let blocks: Vec<_> = honest
            .iter()
            .zip(&floors)
            .filter(|(_, floor)| floor.is_none_or(|floor| h >= floor))
            .map(|(handle, _)| {
                handle
                    .chain()
                    .get(h)
                    .expect("chain readable")
                    .unwrap_or_else(|| panic!("height {h} missing on a member"))
                    .block
            })
            .collect();
        let first = blocks[0].hash();
        for block in &blocks {
            assert_eq!(block.hash(), first, "two finalized blocks at height {h}");
        }
        evidence += blocks[0].evidence.len();
    }
    // Each honest store holds exactly its chain tip's state.
    for handle in &honest {
        let tip = handle.applied();
        let info = handle.store().info(&dataset).expect("dataset exists");
        assert_eq!(
            info.state_root, tip.state_root,
            "store root differs from its chain tip"
        );
    }
    // Every acknowledged write is in every honest member's journal and chain,
    // or (up to a synced member's floor: its snapshot was the state after
    // the floor block) its documents are in the store.
    for (seq, (bytes, at)) in acked {
        for (handle, floor) in honest.iter().zip(&floors) {
            if floor.is_some_and(|floor| *at <= floor) {
                let write =
                    <SignedWrite as Decode>::from_bytes(bytes).expect("acknowledged bytes decode");
                if let fluence_proto::Action::Batch { ops, .. } = &write.body.action {
                    for op in ops {
                        if let DocOp::Put { doc, .. } = op {
                            assert!(
                                handle.store().get(&dataset, doc).expect("store").is_some(),
                                "document of write {seq} missing on a synced member"
                            );
                        }
                    }
                }
                continue;
            }
            let entries = handle.store().journal(&dataset, *seq, 1).expect("journal");
            assert_eq!(
                entries.first().map(|e| &e.write),
                Some(bytes),
                "write {seq} missing"
            );
            let write =
                <SignedWrite as Decode>::from_bytes(bytes).expect("acknowledged bytes decode");
            let digest = write.body.digest();
            let location = handle
                .chain()
                .find_write(&digest)
                .expect("chain index")
                .unwrap_or_else(|| panic!("write {seq} not in the chain"));
            assert_eq!(
                location.height, *at,
                "write {seq} acknowledged at another height"
            );
        }
    }
    RunStats {
        simulated: Duration::ZERO,
        height,
        acked: acked.len(),
        evidence,
    }
}

fn seeds() -> Vec<u64> {
    if let Ok(seed) = std::env::var("FLUENCE_SIM_SEED") {
        return vec![seed.parse().expect("FLUENCE_SIM_SEED is a number")];
    }
    let count = match std::env::var("FLUENCE_SIM_SEEDS") {
        Ok(count) => count.parse().expect("FLUENCE_SIM_SEEDS is a number"),
        Err(_) if std::env::var("FLUENCE_LONG_TESTS").as_deref() == Ok("1") => LONG_SEEDS,
        Err(_) => DEFAULT_SEEDS,
    };
    (0..count).collect()
}

#[test]
fn clusters_stay_safe_and_live_under_faults() {
    let seeds = seeds();
    let started = Instant::now();
    let mut failed = Vec::new();
    for seed in &seeds {
        let seed = *seed;
        let began = Instant::now();
        let outcome = std::panic::catch_unwind(|| run(seed));
        match outcome {
            Ok(stats) => eprintln!(
                "seed {seed} ({:?}): {:.1} s simulated, height {}, {} writes acknowledged, {} evidence records, {:.2} s",
                Fault::for_seed(seed),
                stats.simulated.as_secs_f64(),
                stats.height,
                stats.acked,
                stats.evidence,
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
