//! [`start`]: wires one member of one cluster (simplex, marshal with its
//! buffered broadcast and backfill resolver, the application, the applier,
//! the two gossip channels and sync) onto eight network channels, and
//! returns a [`ReplicaHandle`] to submit writes and observe progress.
//!
//! A member with no state of the dataset first syncs it from the others
//! (see [`crate::sync`]); consensus then starts from the synced block.

use std::num::{NonZeroU16, NonZeroU64, NonZeroUsize};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use commonware_broadcast::buffered;
use commonware_consensus::marshal::core::Actor as MarshalActor;
use commonware_consensus::marshal::resolver::p2p as marshal_resolver;
use commonware_consensus::marshal::standard::Inline;
use commonware_consensus::marshal::{Config as MarshalConfig, Start};
use commonware_consensus::simplex::config::{
    Config as SimplexConfig, Floor, ForwardPolicy, SkipBudget, SkipPolicy,
};
use commonware_consensus::simplex::elector::RoundRobin;
use commonware_consensus::simplex::Engine as SimplexEngine;
use commonware_consensus::types::{Epoch, EpochInfo, Epocher, Height, ViewDelta};
use commonware_consensus::Reporters;
use commonware_cryptography::certificate::{ConstantProvider, Verifier as _};
use commonware_cryptography::{ed25519, sha256::Sha256, Digested, Digestible};
use commonware_p2p::{Blocker, Provider, Receiver, Recipients, Sender};
use commonware_parallel::Sequential;
use commonware_runtime::buffer::paged::CacheRef;
use commonware_runtime::{Clock, Handle, Metrics, Spawner, Storage, Supervisor};
use commonware_storage::archive::immutable;
use commonware_utils::ordered::Set;
use commonware_utils::NonZeroDuration;
use fluence_chain::{Block, ChainRules, ChainStore, ChainTip};
use fluence_proto::{DatasetId, Encode, MembershipChange, MembershipError, PublicKey, SignedWrite};
use fluence_store::{OreOrder, Store};
use rand_core::CryptoRng;
use zeroize::Zeroizing;

use crate::app::{ChainApp, Scheme};
use crate::block::ChainBlock;
use crate::error::{ReplicaFault, SubmitError};
use crate::evidence::{Equivocation, EvidenceLog, EvidenceReporter};
use crate::exec::Executor;
use crate::finalizer::{self, Progress};
use crate::keys::{to_consensus_key, Identity};
use crate::member::{Behavior, BlockLimits, ChangePolicy, Member};
use crate::pool::{Committed, Outcome};
use crate::sync::SyncReport;
use tracing::error;

/// The channels of one cluster, in a fixed order. A network adapter keys
/// its demultiplexing by (dataset, [`Channel::id`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Channel {
    /// simplex: notarize, nullify and finalize votes.
    Votes,
    /// simplex: notarization, nullification and finalization certificates.
    Certificates,
    /// simplex: fetching missing certificates.
    Resolver,
    /// marshal: backfill of blocks and finalizations.
    Backfill,
    /// marshal's buffered broadcast of proposed blocks.
    Blocks,
    /// Client writes forwarded between members.
    Submissions,
    /// State-root attestations.
    Attestations,
    /// Empty-disk sync: tips, snapshots and their pages ([`crate::sync`]).
    Sync,
    /// Proposed membership changes, so whichever member leads next can
    /// put one in a block.
    Changes,
}

impl Channel {
    /// Every channel, in id order.
    pub const ALL: [Channel; CHANNELS] = [
        Channel::Votes,
        Channel::Certificates,
        Channel::Resolver,
        Channel::Backfill,
        Channel::Blocks,
        Channel::Submissions,
        Channel::Attestations,
        Channel::Sync,
        Channel::Changes,
    ];

    /// The channel's number within its cluster's epoch (0..9). Stable:
    /// part of the wire protocol.
    pub const fn id(self) -> u64 {
        match self {
            Channel::Votes => 0,
            Channel::Certificates => 1,
            Channel::Resolver => 2,
            Channel::Backfill => 3,
            Channel::Blocks => 4,
            Channel::Submissions => 5,
            Channel::Attestations => 6,
            Channel::Sync => 7,
            Channel::Changes => 8,
        }
    }

    /// The channel's number on the wire for membership `epoch`: each
    /// epoch has a block of [`EPOCH_CHANNELS`] numbers of its own, so the
    /// consensus messages of two epochs never meet (members of both
    /// epochs run a replica of each for a moment). The network's own
    /// per-dataset channel 15 is in no replica's block.
    pub const fn wire_id(self, epoch: u64) -> u64 {
        epoch
            .saturating_mul(EPOCH_CHANNELS)
            .saturating_add(self.id())
    }
}

/// Channels a replica uses.
pub const CHANNELS: usize = 9;
/// Wire channel numbers reserved per membership epoch.
pub const EPOCH_CHANNELS: u64 = 16;

/// One sender and receiver per [`Channel`], plus the peer set and blocker
/// of the cluster: everything the replica needs from the network.
pub struct ClusterNetwork<S, R, P, B> {
    /// Pairs indexed by [`Channel::id`].
    pub channels: [(S, R); CHANNELS],
    /// The cluster's members as the network tracks them.
    pub peers: P,
    /// Disconnects peers that send invalid messages.
    pub blocker: B,
}

/// Consensus timing. Defaults suit a cluster on one network (milliseconds
/// of latency); the simulation tests set their own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// How long to wait for the leader's proposal.
    pub leader: Duration,
    /// How long to wait for a notarized block to be certified.
    pub certification: Duration,
    /// How often to rebroadcast a nullify vote while stuck.
    pub retry: Duration,
    /// How long to wait for a missing certificate or block from a peer.
    pub fetch: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            leader: Duration::from_secs(1),
            certification: Duration::from_secs(2),
            retry: Duration::from_secs(5),
            fetch: Duration::from_secs(1),
        }
    }
}

/// The membership epoch a replica runs and the block it starts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EpochStart {
    /// Epoch 0, the genesis membership, from the chain's genesis block.
    Genesis,
    /// A later epoch, from the finalized block whose membership change
    /// started it (that block's height is the epoch's base height).
    Change { epoch: u64, base: Block },
}

impl EpochStart {
    /// The epoch's number.
    pub fn epoch(&self) -> u64 {
        match self {
            EpochStart::Genesis => fluence_proto::cluster::GENESIS_EPOCH,
            EpochStart::Change { epoch, .. } => *epoch,
        }
    }

    /// The chain height of the epoch's first block.
    pub fn base_height(&self) -> u64 {
        match self {
            EpochStart::Genesis => 0,
            EpochStart::Change { base, .. } => base.height,
        }
    }
}

/// The one epoch a replica runs, for marshal and its wrapper: every height
/// it sees (counted from the epoch's first block, see [`ChainBlock`]) is in
/// it, and it never ends; a membership change ends it by stopping the
/// replica, and the next epoch runs in a replica of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct SingleEpoch(Epoch);

impl Epocher for SingleEpoch {
    fn containing(&self, height: Height) -> Option<EpochInfo> {
        Some(EpochInfo::new(
            self.0,
            height,
            Height::zero(),
            Height::new(u64::MAX),
        ))
    }

    fn first(&self, epoch: Epoch) -> Option<Height> {
        (epoch == self.0).then(Height::zero)
    }

    fn last(&self, epoch: Epoch) -> Option<Height> {
        (epoch == self.0).then(|| Height::new(u64::MAX))
    }
}

/// What a replica is: which cluster, which member, where it keeps state.
pub struct ReplicaConfig<O: OreOrder> {
    pub dataset: DatasetId,
    /// The member's secret ed25519 seed (node identity).
    pub identity: Zeroizing<[u8; 32]>,
    /// Every member of the cluster in `epoch`, this one included.
    pub members: Vec<PublicKey>,
    /// The membership epoch `members` run and where it starts.
    pub epoch: EpochStart,
    /// The node's dataset store (shared by all clusters of the node).
    pub store: Arc<Store<O>>,
    /// Directory of the node's chain files.
    pub chain_dir: PathBuf,
    /// Prefix of the runtime storage partitions of consensus and marshal;
    /// unique per node and dataset.
    pub partition_prefix: String,
    pub rules: ChainRules,
    pub limits: BlockLimits,
    pub timeouts: Timeouts,
    /// [`Behavior::Honest`] except in tests of Byzantine members.
    pub behavior: Behavior,
    /// Whether this member votes for a membership change (see
    /// [`ChangePolicy`]).
    pub change_policy: ChangePolicy,
}

/// Why a replica could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cluster has {0} members; a cluster has 1 to CLUSTER_MEMBERS_MAX")]
    BadClusterSize(usize),
    #[error("this node ({0}) is not a member of the cluster")]
    NotAMember(PublicKey),
    #[error("member key {0} is not a valid ed25519 key")]
    BadMemberKey(PublicKey),
    #[error(transparent)]
    Fault(#[from] ReplicaFault),
}

/// Submits writes to, and observes, a running replica.
pub struct ReplicaHandle<O: OreOrder, S> {
    member: Arc<Member<O>>,
    submissions: S,
    changes: S,
    progress: Arc<Progress>,
    /// Equivocations of members this replica has verified.
    evidence: Arc<EvidenceLog>,
    /// The replica's root task: aborting it stops every part.
    task: Handle<()>,
}

impl<O: OreOrder, S: Sender<PublicKey = ed25519::PublicKey>> ReplicaHandle<O, S> {
    /// Submits a client-signed write. The returned future resolves when
    /// the write's block is finalized and applied on this member (or when
    /// it can no longer be); a resubmitted write is recognised and
    /// acknowledged, never applied twice. The write is forwarded to every
    /// member so whichever leads next can include it.
    pub fn submit(
        &self,
        write: SignedWrite,
    ) -> impl std::future::Future<Output = Result<Committed, SubmitError>> + Send + 'static {
        let bytes = write.to_bytes();
        let admitted = self.member.admit(write, true);
        if admitted.is_ok() {
            let mut sender = self.submissions.clone();
            sender.send(Recipients::All, bytes, false);
        }
        async move {
            let receiver = admitted?.ok_or(SubmitError::Stopped)?;
            let outcome: Outcome = receiver.await.map_err(|_| SubmitError::Stopped)?;
            outcome
        }
    }

    /// Proposes a membership change of this epoch to every member (it is
    /// checked first: the next epoch, one member replaced, every
    /// signature). Whichever member leads next puts it in a block if its
    /// own [`ChangePolicy`] agrees; the others vote for it only if theirs
    /// do.
    pub fn propose_change(&self, change: MembershipChange) -> Result<(), MembershipError> {
        let bytes = change.to_bytes();
        self.member.receive_change(change)?;
        let mut sender = self.changes.clone();
        sender.send(Recipients::All, bytes, false);
        Ok(())
    }

    /// The finalized membership change that ended this replica's epoch,
    /// once it is applied here, with its proof (the change block and, if
    /// it has no certificate of its own, the empty blocks above it up to
    /// the first certified one: see [`fluence_chain::CertifiedChange`]).
    /// The replica then proposes and applies nothing more: the next epoch
    /// runs in a replica of its own, started on the change block.
    pub fn epoch_end(&self) -> Option<fluence_chain::CertifiedChange> {
        self.progress.epoch_end()
    }

    /// The membership epoch this replica runs.
    pub fn epoch(&self) -> u64 {
        self.member.epoch
    }

    /// The newest finalized block applied on this member.
    pub fn applied(&self) -> ChainTip {
        self.member.exec.applied()
    }

    /// The newest finalized height this member has heard of.
    pub fn finalized_tip(&self) -> u64 {
        self.progress
            .finalized_tip
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The member's chain of finalized blocks.
    pub fn chain(&self) -> &ChainStore {
        self.member.exec.chain()
    }

    /// The node's dataset store.
    pub fn store(&self) -> &Store<O> {
        self.member.exec.store()
    }

    /// Why the replica stopped applying blocks, if it did.
    pub fn fault(&self) -> Option<String> {
        self.progress.fault()
    }

    /// Stops every task of the replica at once, as a crash would (nothing
    /// is flushed or handed over), and waits until they are gone so its
    /// files can be opened again.
    pub async fn crash(self) {
        self.task.abort();
        let ReplicaHandle { task, member, .. } = self;
        let _ = task.await;
        drop(member);
    }

    /// Stops every task of the replica (as [`ReplicaHandle::crash`] does)
    /// without waiting for them to end; for a node shutting down while
    /// submissions may still hold the handle.
    pub fn stop(&self) {
        self.task.abort();
    }

    /// Writes waiting in this member's pool.
    pub fn pending(&self) -> usize {
        self.member.pool().len()
    }

    /// Whether the member is rebuilding the dataset from another member's
    /// snapshot (writes are refused meanwhile).
    pub fn syncing(&self) -> bool {
        self.member.syncing()
    }

    /// What the sync at start did, if this member synced from a snapshot
    /// since it started.
    pub fn sync_report(&self) -> Option<SyncReport> {
        self.member.sync_report()
    }

    /// The cluster's members, sorted.
    pub fn members(&self) -> &[PublicKey] {
        &self.member.members
    }

    /// The equivocations (conflicting signed votes) of members this
    /// replica has received and verified, oldest view first; at most
    /// [`crate::EQUIVOCATIONS_KEPT`], the newest.
    pub fn equivocations(&self) -> Vec<Equivocation> {
        self.evidence.records()
    }
}

const PAGE_SIZE: NonZeroU16 = NonZeroU16::new(4096).expect("non-zero");
const PAGE_CACHE_PAGES: NonZeroUsize = NonZeroUsize::new(64).expect("non-zero");
const MAILBOX_SIZE: NonZeroUsize = NonZeroUsize::new(1024).expect("non-zero");
const BUFFER_ITEMS: NonZeroUsize = NonZeroUsize::new(1024).expect("non-zero");
/// Bytes buffered by each journal writer before it writes; commonware's
/// paged writer raises anything below 8 KiB to that floor (with a warning).
const WRITE_BUFFER_BYTES: NonZeroUsize = NonZeroUsize::new(64 * 1024).expect("non-zero");
/// Finalized blocks marshal hands over before waiting for acknowledgements.
const PENDING_ACKS_MAX: NonZeroUsize = NonZeroUsize::new(8).expect("non-zero");
/// Missing finalized heights fetched from peers at once.
const REPAIR_MAX: NonZeroUsize = NonZeroUsize::new(16).expect("non-zero");
/// Views of votes and blocks kept behind the finalized view.
const VIEW_RETENTION: u64 = 64;
/// Blocks per archive section.
const ITEMS_PER_SECTION: NonZeroU64 = NonZeroU64::new(64).expect("non-zero");

fn fetch_timeout(duration: Duration) -> NonZeroDuration {
    NonZeroDuration::new(duration.max(Duration::from_millis(1))).expect("at least a millisecond")
}

fn immutable_config<C>(
    prefix: &str,
    name: &str,
    page_cache: &CacheRef,
    codec_config: C,
) -> immutable::Config<C> {
    immutable::Config {
        metadata_partition: format!("{prefix}-{name}-metadata"),
        freezer_table_partition: format!("{prefix}-{name}-freezer-table"),
        freezer_table_initial_size: 64,
        freezer_table_resize_frequency: 10,
        freezer_table_resize_chunk_size: 10,
        freezer_key_partition: format!("{prefix}-{name}-freezer-key"),
        freezer_key_page_cache: page_cache.clone(),
        freezer_value_partition: format!("{prefix}-{name}-freezer-value"),
        freezer_value_target_size: 1024 * 1024,
        freezer_value_compression: None,
        ordinal_partition: format!("{prefix}-{name}-ordinal"),
        items_per_section: ITEMS_PER_SECTION,
        codec_config,
        replay_buffer: BUFFER_ITEMS,
        freezer_key_write_buffer: WRITE_BUFFER_BYTES,
        freezer_value_write_buffer: WRITE_BUFFER_BYTES,
        ordinal_write_buffer: WRITE_BUFFER_BYTES,
    }
}

/// Starts one replica in `context` (every task it spawns is a descendant:
/// aborting [`ReplicaHandle::task`] stops them all, as a crash would).
pub async fn start<E, O, S, R, P, B>(
    context: E,
    config: ReplicaConfig<O>,
    network: ClusterNetwork<S, R, P, B>,
) -> Result<ReplicaHandle<O, S>, StartError>
where
    E: Clock + CryptoRng + Spawner + Storage + Metrics + Supervisor,
    O: OreOrder + 'static,
    S: Sender<PublicKey = ed25519::PublicKey>,
    R: Receiver<PublicKey = ed25519::PublicKey>,
    P: Provider<PublicKey = ed25519::PublicKey>,
    B: Blocker<PublicKey = ed25519::PublicKey>,
{
    let members = &config.members;
    if members.is_empty() || members.len() > fluence_proto::limits::CLUSTER_MEMBERS_MAX {
        return Err(StartError::BadClusterSize(members.len()));
    }
    let identity = Identity::from_seed(&config.identity);
    let me = identity.public_key();
    if !members.contains(&me) {
        return Err(StartError::NotAMember(me));
    }
    let mut participants = Vec::with_capacity(members.len());
    for member in members {
        participants.push(to_consensus_key(member).ok_or(StartError::BadMemberKey(*member))?);
    }
    let participants = Set::from_iter_dedup(participants);
    let sync_peers: Vec<_> = participants.iter().cloned().collect();
    let namespace = fluence_chain::consensus_namespace(&config.dataset);
    let scheme = Scheme::signer(&namespace, participants, identity.consensus.clone())
        .ok_or(StartError::NotAMember(me))?;
    let consensus_key = to_consensus_key(&me).ok_or(StartError::BadMemberKey(me))?;

    let chain = ChainStore::open(&config.chain_dir, config.dataset).map_err(ReplicaFault::from)?;
    let exec = Executor::new(config.dataset, Arc::clone(&config.store), chain)?;
    let limits = BlockLimits {
        empty_block_delay: config
            .limits
            .empty_block_delay
            .min(config.timeouts.leader / 2),
        parent_apply_wait: config
            .limits
            .parent_apply_wait
            .min(config.timeouts.leader / 4),
        ..config.limits
    };
    let member = Arc::new(Member::new(
        exec,
        identity.chain,
        config.members.clone(),
        &config.epoch,
        config.rules,
        limits,
        config.behavior,
        config.change_policy,
    ));

    let ClusterNetwork {
        channels,
        peers,
        blocker,
    } = network;
    let [votes, certificates, resolver, backfill, blocks, submissions, attestations, sync, changes] =
        channels;
    let changes_sender = changes.0.clone();
    let submissions_sender = submissions.0.clone();
    // Each epoch keeps its consensus logs in partitions of its own (the
    // genesis epoch's keep the names they always had).
    let prefix = match config.epoch.epoch() {
        0 => config.partition_prefix.clone(),
        epoch => format!("{}-e{epoch}", config.partition_prefix),
    };
    let epoch_start = config.epoch.clone();
    let base_height = epoch_start.base_height();
    let epoch = Epoch::new(epoch_start.epoch());
    let timeouts = config.timeouts;
    let dataset = config.dataset;
    let progress = Arc::new(Progress::default());
    let evidence = Arc::new(EvidenceLog::default());
    let task_member = Arc::clone(&member);
    let task_progress = Arc::clone(&progress);
    let task_evidence = Arc::clone(&evidence);

    let task = context.child("replica").spawn(move |context| async move {
        let member = task_member;
        // Sync first: serve the other members from the start, and bring
        // this member's state to where consensus can start.
        let (sync_sender, sync_receiver) = sync;
        let (serve, answers) = crate::sync::serve(
            context.child("sync_server"),
            Arc::clone(&member),
            sync_sender.clone(),
            sync_receiver,
        );
        context.child("sync_server").spawn(move |_| serve);
        let client = crate::sync::client::Client::new(
            context.child("sync_client"),
            sync_sender,
            answers,
            Arc::clone(&member),
            &consensus_key,
            sync_peers,
        );
        let (prefix, marshal_start, simplex_floor) = match crate::sync::prepare(client, &member)
            .await
        {
            Ok(crate::sync::Start::Genesis) => {
                let genesis = match &epoch_start {
                    EpochStart::Genesis => ChainBlock::genesis(dataset),
                    EpochStart::Change { base, .. } => {
                        match ChainBlock::in_epoch(base.clone(), base.height) {
                            Ok(base) => base,
                            Err(error) => {
                                *task_progress
                                    .fault
                                    .lock()
                                    .unwrap_or_else(std::sync::PoisonError::into_inner) =
                                    Some(format!("the epoch's first block: {error}"));
                                return;
                            }
                        }
                    }
                };
                let digest = genesis.digest();
                (
                    prefix,
                    Start::Genesis(Digested::precomputed(genesis, digest)),
                    Floor::Genesis(digest),
                )
            }
            Ok(crate::sync::Start::Floor {
                height,
                finalization,
            }) => (
                format!("{prefix}-f{height}"),
                Start::Floor(finalization.clone()),
                Floor::Finalized(finalization),
            ),
            Err(fault) => {
                error!(%fault, "the replica cannot start");
                *task_progress
                    .fault
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(fault.to_string());
                return;
            }
        };
        let page_cache = CacheRef::new(PAGE_SIZE, PAGE_CACHE_PAGES);
        let resolver_engine = marshal_resolver::init(
            context.child("marshal_resolver"),
            marshal_resolver::Config {
                public_key: consensus_key.clone(),
                peer_provider: peers.clone(),
                blocker: blocker.clone(),
                mailbox_size: MAILBOX_SIZE,
                fetch_timeout: fetch_timeout(timeouts.fetch.saturating_mul(2)),
                fetch_retry_delay: Duration::from_millis(100),
                priority_requests: false,
                priority_responses: false,
            },
            backfill,
        );
        let (broadcast_engine, buffer) = buffered::Engine::new(
            context.child("broadcast"),
            buffered::Config {
                public_key: consensus_key.clone(),
                mailbox_size: MAILBOX_SIZE,
                deque_size: 16,
                priority: false,
                codec_config: base_height,
                peer_provider: peers.clone(),
                strategy: Sequential,
            },
        );
        broadcast_engine.start(blocks);

        let finalizations = immutable::Archive::init(
            context.child("finalizations_by_height"),
            immutable_config(
                &prefix,
                "finalizations",
                &page_cache,
                Scheme::certificate_codec_config_unbounded(),
            ),
        )
        .await;
        let finalized_blocks = immutable::Archive::init(
            context.child("finalized_blocks"),
            immutable_config(&prefix, "blocks", &page_cache, base_height),
        )
        .await;
        let (Ok(finalizations), Ok(finalized_blocks)) = (finalizations, finalized_blocks) else {
            *task_progress
                .fault
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) =
                Some("consensus archives could not be opened".into());
            return;
        };
        let epocher = SingleEpoch(epoch);
        let (actor, marshal, _floor) = MarshalActor::init(
            context.child("marshal"),
            finalizations,
            finalized_blocks,
            MarshalConfig {
                provider: ConstantProvider::new(scheme.clone()),
                epocher: epocher.clone(),
                start: marshal_start,
                partition_prefix: format!("{prefix}-marshal"),
                mailbox_size: MAILBOX_SIZE,
                view_retention: ViewDelta::new(VIEW_RETENTION),
                prunable_items_per_section: ITEMS_PER_SECTION,
                page_cache: page_cache.clone(),
                replay_buffer: BUFFER_ITEMS,
                key_write_buffer: WRITE_BUFFER_BYTES,
                value_write_buffer: WRITE_BUFFER_BYTES,
                block_codec_config: base_height,
                max_repair: REPAIR_MAX,
                max_pending_acks: PENDING_ACKS_MAX,
                strategy: Sequential,
            },
        )
        .await;
        let (finalizer, updates) = finalizer::channel();
        actor.start(finalizer, buffer, resolver_engine);
        context.child("applier").spawn({
            let member = Arc::clone(&member);
            let marshal = marshal.clone();
            let progress = Arc::clone(&task_progress);
            move |_| finalizer::run(member, marshal, progress, updates)
        });
        context.child("submissions").spawn({
            let member = Arc::clone(&member);
            move |_| crate::gossip::receive_submissions(member, submissions.1)
        });
        context.child("changes").spawn({
            let member = Arc::clone(&member);
            move |_| crate::gossip::receive_changes(member, changes.1)
        });
        let (attestation_sender, attestation_receiver) = attestations;
        context.child("attestations").spawn({
            let member = Arc::clone(&member);
            move |_| crate::gossip::receive_attestations(member, attestation_receiver)
        });

        let application = ChainApp::new(Arc::clone(&member), attestation_sender);
        let inline = Inline::new(context.child("inline"), application, marshal, epocher);
        let evidence =
            EvidenceReporter::new(context.child("evidence"), scheme.clone(), task_evidence);
        let engine = SimplexEngine::new(
            context.child("simplex"),
            SimplexConfig {
                scheme,
                elector: RoundRobin::<Sha256>::default(),
                blocker,
                automaton: inline.clone(),
                relay: inline.clone(),
                reporter: Reporters::from((inline, evidence)),
                strategy: Sequential,
                partition: format!("{prefix}-simplex"),
                mailbox_size: MAILBOX_SIZE,
                epoch,
                floor: simplex_floor,
                replay_buffer: BUFFER_ITEMS,
                write_buffer: WRITE_BUFFER_BYTES,
                page_cache,
                leader_timeout: timeouts.leader,
                certification_timeout: timeouts.certification,
                timeout_retry: timeouts.retry,
                view_retention: ViewDelta::new(VIEW_RETENTION),
                skip: SkipPolicy::Enabled {
                    timeout: timeouts.certification + timeouts.retry + timeouts.leader,
                    budget: SkipBudget::Participants,
                },
                fetch_timeout: fetch_timeout(timeouts.fetch),
                fetch_retry_delay: Duration::from_millis(100),
                forward: ForwardPolicy::SilentVoters,
                track_historical_votes: false,
            },
        );
        engine.start(votes, certificates, resolver).await.ok();
    });
    Ok(ReplicaHandle {
        member,
        submissions: submissions_sender,
        changes: changes_sender,
        progress,
        evidence,
        task,
    })
}
