//! The simulated cluster: members (identity, files, behaviour), the
//! simulated network between them, and starting a member's real replica
//! on it.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use commonware_cryptography::{ed25519, Signer};
use commonware_p2p::simulated::{self, Link, Oracle};
use commonware_runtime::{deterministic, Clock, Quota, Supervisor as _};
use commonware_utils::Probability;
use fluence_chain::ChainRules;
use fluence_consensus::{
    start, Behavior, BlockLimits, Channel, ClusterNetwork, EpochStart, ReplicaConfig,
    ReplicaHandle, Timeouts,
};
use fluence_proto::{DatasetId, DocId, DocOp, Precondition, PublicKey, SealedDoc, SignedWrite};
use fluence_store::{PlaintextOrder, Store};
use fluence_testkit::Owner;
use zeroize::Zeroizing;

use super::adversary::{Deliveries, Equivocator, Key, SimReceiver, SimSender};

pub type Handle = ReplicaHandle<PlaintextOrder, SimSender>;
pub type SimOracle = Oracle<Key, deterministic::Context>;

/// The dataset owner of seed `seed`, signing writes as a gateway would.
pub fn test_owner(seed: u64) -> Owner {
    let mut secret = [0u8; 32];
    secret[..8].copy_from_slice(&seed.to_le_bytes());
    secret[31] = 0xd0;
    Owner::new(secret, [7; 32])
}

/// The id of document `i` of write `seq`.
pub fn doc_id(seq: u64, i: u64) -> DocId {
    let mut id = [0u8; 16];
    id[..8].copy_from_slice(&seq.to_be_bytes());
    id[8..].copy_from_slice(&i.to_be_bytes());
    DocId(id)
}

/// Write `seq`: inserts of `docs` new documents.
pub fn insert(owner: &Owner, seq: u64, docs: u64) -> SignedWrite {
    let ops = (0..docs)
        .map(|i| DocOp::Put {
            doc: doc_id(seq, i),
            expect: Precondition::Absent,
            sealed: SealedDoc {
                version: 1,
                wrapped_key: vec![0xaa; 72],
                ciphertext: format!("doc {seq}/{i}").into_bytes(),
            },
            entries: Vec::new(),
        })
        .collect();
    owner.batch(seq, ops)
}

/// One member: its key, its directory, and its replica while it runs.
pub struct Node {
    pub secret: [u8; 32],
    pub key: Key,
    dir: tempfile::TempDir,
    pub behavior: Behavior,
    /// Set for a member whose network equivocates.
    pub equivocator: Option<Arc<Equivocator>>,
    /// Bumped when the member's storage is wiped: its consensus partitions
    /// are named after it, so the new life starts with none.
    generation: u32,
    pub handle: Option<Handle>,
}

impl Node {
    pub fn new(seed: u64, index: usize, behavior: Behavior) -> Self {
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
            equivocator: None,
            generation: 0,
            handle: None,
        }
    }

    /// Whether the member follows consensus honestly (one that only
    /// serves bad snapshots does).
    pub fn honest(&self) -> bool {
        self.equivocator.is_none()
            && matches!(self.behavior, Behavior::Honest | Behavior::CorruptSnapshots)
    }

    /// The member's key as the chain and read answers name it.
    pub fn public_key(&self) -> PublicKey {
        fluence_consensus::keys::to_public_key(&self.key)
    }

    /// Removes everything the (stopped) member stored.
    pub fn wipe(&mut self) {
        assert!(self.handle.is_none(), "wipe a stopped member only");
        for part in ["store", "chain"] {
            let path = self.dir.path().join(part);
            if path.exists() {
                std::fs::remove_dir_all(&path).expect("wipe member storage");
            }
        }
        self.generation += 1;
    }

    pub fn spec(&self) -> Spec {
        Spec {
            secret: self.secret,
            key: self.key.clone(),
            dir: self.dir.path().to_path_buf(),
            behavior: self.behavior,
            equivocator: self.equivocator.clone(),
            generation: self.generation,
        }
    }
}

/// What starting a member needs: its identity, files and behaviour.
#[derive(Clone)]
pub struct Spec {
    secret: [u8; 32],
    key: Key,
    dir: std::path::PathBuf,
    behavior: Behavior,
    equivocator: Option<Arc<Equivocator>>,
    generation: u32,
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

/// Links every pair of members (replacing the links they had).
pub async fn connect(oracle: &SimOracle, keys: &[Key], lossy: bool) {
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

/// Cuts every link of `cut`.
pub async fn isolate(oracle: &SimOracle, keys: &[Key], cut: &Key) {
    for other in keys {
        if other != cut {
            let _ = oracle.remove_link(cut.clone(), other.clone()).await;
            let _ = oracle.remove_link(other.clone(), cut.clone()).await;
        }
    }
}

/// The membership a replica runs: its members, its epoch and whether it
/// votes for proposed membership changes.
#[derive(Clone)]
pub struct Membership {
    pub members: Vec<PublicKey>,
    pub epoch: EpochStart,
    pub accepts_changes: bool,
}

impl Membership {
    /// The genesis membership, voting for no change.
    pub fn genesis(members: &[PublicKey]) -> Self {
        Membership {
            members: members.to_vec(),
            epoch: EpochStart::Genesis,
            accepts_changes: false,
        }
    }
}

/// Starts (or restarts, from the same files) a member's replica. With
/// `tap`, an honest member's votes receiver records what the Byzantine
/// member delivers to it.
pub async fn start_node(
    context: &deterministic::Context,
    oracle: &SimOracle,
    node: Spec,
    membership: &Membership,
    dataset: DatasetId,
    tap: Option<(Arc<Deliveries>, Key)>,
) -> Handle {
    let control = oracle.control(node.key.clone());
    let mut channels = Vec::with_capacity(Channel::ALL.len());
    for channel in Channel::ALL {
        let (sender, receiver) = control
            .register(channel.wire_id(membership.epoch.epoch()), QUOTA)
            .await
            .expect("channel registration");
        let sender = match &node.equivocator {
            Some(equivocator) => SimSender::lying(sender, Arc::clone(equivocator), channel),
            None => SimSender::honest(sender),
        };
        let receiver = match (&tap, channel) {
            (Some((deliveries, from)), Channel::Votes) if node.equivocator.is_none() => {
                SimReceiver::tapped(receiver, Arc::clone(deliveries), from.clone())
            }
            _ => SimReceiver::plain(receiver),
        };
        channels.push((sender, receiver));
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
        members: membership.members.clone(),
        epoch: membership.epoch.clone(),
        change_policy: {
            let accepts = membership.accepts_changes;
            Arc::new(move |_| accepts)
        },
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

/// The simulated network's configuration for `n` members.
pub fn network_config(n: usize) -> simulated::Config {
    simulated::Config {
        max_size: 8 * 1024 * 1024,
        max_peers_per_set: std::num::NonZeroUsize::new(n).expect("non-zero"),
        disconnect_on_block: false,
        tracked_peer_sets: std::num::NonZeroUsize::new(1).expect("non-zero"),
    }
}
