//! The node as a cluster member: one consensus replica
//! (`fluence_consensus`) per dataset it serves, each with that dataset's
//! own members (its current membership, [`crate::memberships`]) on the
//! node's cluster transport (`fluence_net::cluster`), started when the
//! node starts (for the clusters it keeps), on the first write a gateway
//! submits for the dataset or the first message a member sends about it,
//! and bounded in number. One node is a member
//! of as many clusters as it serves datasets.
//!
//! Placement: a gateway offers the node a dataset with a proposed member
//! list ([`Replicas::offer`]); the node signs its acceptance unless it is
//! full or not accepting. The owner's `Create` then carries every
//! acceptance; the node checks them all and that it is listed before it
//! keeps the membership and starts the replica. A node that hears of a
//! dataset it has no membership for (a wiped disk, a missed `Create`)
//! asks the member that spoke for the dataset's history (its `Create`
//! and every membership change since) on the membership channel and
//! checks it the same way.
//!
//! Membership changes: when a replica's epoch ends on a finalized change
//! ([`ReplicaHandle::epoch_end`]), the node keeps the change with its
//! proof, stops that replica and starts the next epoch's on the change
//! block, or, if the change replaced this node, drops its copy. A node
//! that speaks in an older epoch, or was replaced, is told the history; a
//! node that hears a newer epoch asks for it. Replicas vote for replacing
//! an unreachable member only if this node's [`Detector`] has not reached
//! it for the grace period.
//!
//! A gateway's write is submitted to the local replica and answered only
//! once its block is finalized (2f + 1 signatures) and applied to this
//! node's store; a resubmitted write is answered from the chain, never
//! applied twice. Reads are served from the local store (r = 1).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use commonware_runtime::Supervisor;
use fluence_chain::history::Epoch;
use fluence_chain::{CertifiedChange, ChainRules, ChainTip, ClusterHistory, WriteAuthError};
use fluence_consensus::{
    Behavior, BlockLimits, Channel, ClusterNetwork, EpochStart, ReplicaConfig, ReplicaHandle,
    SubmitError, Timeouts, EPOCH_CHANNELS,
};
use fluence_crypto::sign::SigningKey;
use fluence_net::cluster::{ClusterMember, ClusterNet, ClusterSender, MembershipMessage};
use fluence_net::discovery::Discovery;
use fluence_proto::cluster::check_member_list;
use fluence_proto::{
    Action, DatasetId, Decode, Encode, MemberAddrs, NodeError, OfferAnswer, PublicKey, Refusal,
    Response, RouteAnswer, SignedWrite,
};
use zeroize::Zeroizing;

use crate::coordinator::Coordinator;
use crate::detector::Detector;
use crate::memberships::{ChangeOutcome, MembershipStoreError, Memberships};
use crate::order::LewiWuOrder;
use crate::service::NodeStore;

/// Datasets one node replicates at once unless configured otherwise.
pub const REPLICAS_MAX_DEFAULT: usize = 256;
/// How long a gateway's write waits for finalization before the node
/// answers that it does not know yet (the write may still be finalized;
/// resubmitting it is safe, it is applied once). Below the gateway's own
/// request timeout, so the gateway hears this rather than a timeout.
pub const WRITE_ACK_TIMEOUT: Duration = Duration::from_secs(240);

/// How often a node asks a member for a dataset's membership it lacks.
const MEMBERSHIP_ASK_INTERVAL: Duration = Duration::from_secs(1);
/// Datasets whose membership a node is asking for at once.
const MEMBERSHIP_ASKS_MAX: usize = 1024;
/// How often a new epoch's replica is tried while the old one's files
/// close, and the pause between tries.
const REPLICA_RESTART_ATTEMPTS: usize = 50;
const REPLICA_RESTART_PAUSE: Duration = Duration::from_millis(100);
/// How often the node looks for replicas whose epoch ended.
const EPOCH_WATCH_INTERVAL: Duration = Duration::from_millis(100);
/// Membership channel message kinds (first byte).
const MEMBERSHIP_ASK: u8 = 1;
const MEMBERSHIP_ANSWER: u8 = 2;

/// How a node serves clusters: nodes whose addresses it knows in advance
/// (others are found through discovery), how consensus runs, and whether
/// and how many datasets it takes. Each dataset's members come from its
/// genesis membership, not from here.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// An address book: where to dial these nodes when they are members
    /// of a dataset's cluster. May be empty.
    pub known: Vec<ClusterMember>,
    pub timeouts: Timeouts,
    /// Datasets this node serves (and replicas it runs) at most; further
    /// offers are refused as full.
    pub replicas_max: usize,
    /// Whether the node accepts offers of new datasets (`--no-accept`
    /// turns it off; datasets it serves already go on).
    pub accepting: bool,
    /// How long a member must have been out of this node's reach before
    /// it votes for replacing it (`--grace-period`).
    pub unreachable_grace: Duration,
}

impl ClusterConfig {
    /// Default timing and bounds, accepting datasets, knowing the
    /// addresses of `known`.
    pub fn new(known: Vec<ClusterMember>) -> Self {
        ClusterConfig {
            known,
            timeouts: Timeouts::default(),
            replicas_max: REPLICAS_MAX_DEFAULT,
            accepting: true,
            unreachable_grace: crate::detector::GRACE_DEFAULT,
        }
    }
}

/// One running replica.
pub type Replica = ReplicaHandle<LewiWuOrder, ClusterSender>;

/// The replicas of one node.
pub struct Replicas {
    context: commonware_runtime::tokio::Context,
    net: ClusterNet,
    seed: Zeroizing<[u8; 32]>,
    /// Signs acceptances: the node key.
    signer: SigningKey,
    memberships: Memberships,
    accepting: bool,
    /// When the node last asked for a dataset's membership.
    asked: std::sync::Mutex<HashMap<DatasetId, Instant>>,
    /// When the node last told a node a dataset's membership.
    told: std::sync::Mutex<HashMap<(DatasetId, PublicKey), Instant>>,
    store: Arc<NodeStore>,
    chain_dir: PathBuf,
    /// Unique per node among the runtime's storage partitions.
    partition_prefix: String,
    timeouts: Timeouts,
    replicas_max: usize,
    running: tokio::sync::Mutex<HashMap<DatasetId, Arc<Replica>>>,
    /// Which members this node has not reached for a while.
    detector: Arc<Detector>,
    /// Proposes membership changes (none without discovery: there is
    /// nowhere to look up a replacement).
    coordinator: Option<Coordinator>,
}

impl Replicas {
    /// Replicas in `context` (whose storage holds their consensus logs),
    /// over `net`, with the node's `seed`, sharing `store`, keeping chain
    /// files in `chain_dir` and the memberships of the datasets it serves
    /// in `memberships`.
    pub fn new(
        context: commonware_runtime::tokio::Context,
        net: ClusterNet,
        seed: Zeroizing<[u8; 32]>,
        store: Arc<NodeStore>,
        chain_dir: PathBuf,
        memberships: Memberships,
        discovery: Option<Discovery>,
        config: &ClusterConfig,
    ) -> Self {
        let local = net.local().key;
        Replicas {
            context,
            net,
            signer: SigningKey::from_seed(&seed),
            seed,
            memberships,
            accepting: config.accepting,
            asked: std::sync::Mutex::new(HashMap::new()),
            told: std::sync::Mutex::new(HashMap::new()),
            store,
            chain_dir,
            partition_prefix: format!("n{}", &local.to_hex()[..16]),
            timeouts: config.timeouts,
            replicas_max: config.replicas_max,
            running: tokio::sync::Mutex::new(HashMap::new()),
            detector: Detector::new(config.unreachable_grace),
            coordinator: discovery.map(Coordinator::new),
        }
    }

    /// The cluster transport.
    pub fn net(&self) -> &ClusterNet {
        &self.net
    }

    /// The memberships of the datasets this node serves.
    pub fn memberships(&self) -> &Memberships {
        &self.memberships
    }

    /// The failure detector the replicas vote by.
    pub fn detector(&self) -> &Arc<Detector> {
        &self.detector
    }

    /// The replica of `dataset`, started if it is not running yet, with
    /// the dataset's own members. A dataset without a membership here is
    /// not served by this node (`DatasetNotFound`).
    pub async fn get_or_start(&self, dataset: DatasetId) -> Result<Arc<Replica>, NodeError> {
        let mut running = self.running.lock().await;
        if let Some(replica) = running.get(&dataset) {
            return Ok(Arc::clone(replica));
        }
        let cluster = self
            .memberships
            .cluster(&dataset)
            .ok_or(NodeError::DatasetNotFound)?;
        let tip = self.chain_tip(&dataset)?;
        let cluster = self.keep_change_in_chain(&dataset, cluster, tip.as_ref())?;
        if running.len() >= self.replicas_max {
            return Err(NodeError::Internal(format!(
                "this node already replicates its maximum of {} datasets",
                self.replicas_max
            )));
        }
        let epoch = &cluster.current;
        self.discard_copy_below(&dataset, epoch, tip.as_ref())?;
        self.net.join(dataset, &epoch.members).map_err(|error| {
            NodeError::Internal(format!("cannot join the cluster of {dataset}: {error}"))
        })?;
        self.detector.expect(&epoch.members);
        let Some(peers) = self.net.peers(&dataset) else {
            unreachable!("the dataset was joined just before")
        };
        let mut channels = Vec::with_capacity(Channel::ALL.len());
        for channel in Channel::ALL {
            let pair = self
                .net
                .register(dataset, channel.wire_id(epoch.epoch))
                .map_err(|error| {
                    NodeError::Internal(format!("cannot start the replica of {dataset}: {error}"))
                })?;
            channels.push(pair);
        }
        let Ok(channels) = <[_; fluence_consensus::CHANNELS]>::try_from(channels) else {
            unreachable!("one pair per channel of Channel::ALL")
        };
        let config = ReplicaConfig {
            dataset,
            identity: self.seed.clone(),
            members: epoch.members.clone(),
            epoch: match &epoch.base {
                None => EpochStart::Genesis,
                Some(base) => EpochStart::Change {
                    epoch: epoch.epoch,
                    base: base.clone(),
                },
            },
            change_policy: self.detector.change_policy(),
            store: Arc::clone(&self.store),
            chain_dir: self.chain_dir.clone(),
            partition_prefix: format!("{}-{}", self.partition_prefix, dataset.to_hex()),
            rules: ChainRules::default(),
            limits: BlockLimits::default(),
            timeouts: self.timeouts,
            behavior: Behavior::Honest,
        };
        let network = ClusterNetwork {
            channels,
            peers,
            blocker: self.net.blocker(),
        };
        let context = self
            .context
            .child("replica")
            .with_attribute("node", &self.partition_prefix)
            .with_attribute("dataset", dataset.to_hex())
            .with_attribute("epoch", epoch.epoch);
        let replica = fluence_consensus::start(context, config, network)
            .await
            .map_err(|error| {
                tracing::error!(%dataset, %error, "replica did not start");
                NodeError::Internal(format!("cannot start the replica of {dataset}: {error}"))
            })?;
        tracing::info!(%dataset, epoch = epoch.epoch, "replica started");
        let replica = Arc::new(replica);
        running.insert(dataset, Arc::clone(&replica));
        Ok(replica)
    }

    /// A change this node's chain ends on but its memberships lack (it
    /// stopped between applying the change and keeping it): kept now when
    /// the block has its own certificate; otherwise the members are asked
    /// for the history (the proof needs blocks the chain never records).
    fn keep_change_in_chain(
        &self,
        dataset: &DatasetId,
        cluster: Arc<crate::memberships::Cluster>,
        tip: Option<&fluence_chain::FinalizedBlock>,
    ) -> Result<Arc<crate::memberships::Cluster>, NodeError> {
        let Some(tip) = tip else {
            return Ok(cluster);
        };
        let ahead = tip
            .block
            .change
            .as_ref()
            .is_some_and(|change| change.epoch > cluster.current.epoch);
        if !ahead {
            return Ok(cluster);
        }
        if tip.certificate.is_empty() {
            for member in &cluster.current.members {
                if *member != self.net.local().key {
                    self.ask_membership(*dataset, member);
                }
            }
            return Ok(cluster);
        }
        let certified = CertifiedChange {
            blocks: vec![tip.clone()],
        };
        match self.memberships.add_change(dataset, &certified) {
            Ok(ChangeOutcome::Member(_)) => self
                .memberships
                .cluster(dataset)
                .ok_or(NodeError::DatasetNotFound),
            Ok(ChangeOutcome::Departed) => {
                self.drop_copy(dataset)?;
                Err(NodeError::DatasetNotFound)
            }
            Err(error) => {
                tracing::warn!(%dataset, %error, "the change this node's chain ends on does not check out");
                Ok(cluster)
            }
        }
    }

    /// Discards this node's copy of `dataset` (chain and store) when its
    /// chain stops below the first block of `epoch`: the node missed the
    /// change that started it, and syncs like a newcomer instead.
    fn discard_copy_below(
        &self,
        dataset: &DatasetId,
        epoch: &Epoch,
        tip: Option<&fluence_chain::FinalizedBlock>,
    ) -> Result<(), NodeError> {
        let height = tip.map_or(0, |tip| tip.block.height);
        if epoch.base.is_none() || height == 0 || height >= epoch.base_height() {
            return Ok(());
        }
        tracing::warn!(%dataset, height, epoch = epoch.epoch, base = epoch.base_height(), "this copy predates the current epoch; discarding it to sync anew");
        self.drop_copy(dataset)
    }

    /// The newest block of this node's chain of `dataset`, if it keeps
    /// one (read once before a replica starts: the replica then holds the
    /// file).
    fn chain_tip(
        &self,
        dataset: &DatasetId,
    ) -> Result<Option<fluence_chain::FinalizedBlock>, NodeError> {
        if !self.holds_chain(dataset) {
            return Ok(None);
        }
        fluence_chain::ChainStore::open(&self.chain_dir, *dataset)
            .and_then(|chain| {
                let height = chain.tip()?.height;
                chain.get(height)
            })
            .map_err(|error| NodeError::Internal(format!("the chain of {dataset}: {error}")))
    }

    /// Removes this node's chain and store copy of `dataset`.
    fn drop_copy(&self, dataset: &DatasetId) -> Result<(), NodeError> {
        let path = fluence_chain::ChainStore::path_in(&self.chain_dir, dataset);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => {
                return Err(NodeError::Internal(format!(
                    "cannot remove {}: {error}",
                    path.display()
                )))
            }
        }
        self.store
            .discard(dataset)
            .map_err(|error| error.to_node_error())
    }

    /// Moves `dataset` to the epoch its finalized change `certified`
    /// started: the membership is kept with the change, the old epoch's
    /// replica stops, and the new epoch's starts (on a continuing member;
    /// a newcomer learns the change from the members) or, on the member
    /// it replaced, the dataset is dropped.
    async fn end_epoch(&self, dataset: DatasetId, certified: &CertifiedChange) {
        match self.memberships.add_change(&dataset, certified) {
            Ok(outcome) => self.follow_change(dataset, outcome).await,
            Err(error) => {
                // The retired replica can do nothing more; the node learns
                // the membership from the members instead.
                tracing::error!(%dataset, %error, "a finalized membership change does not check out");
                if let Some(replica) = self.running.lock().await.remove(&dataset) {
                    replica.stop();
                    self.net.leave(&dataset);
                }
            }
        }
    }

    /// Puts the kept membership of `dataset` into effect after it changed.
    async fn follow_change(&self, dataset: DatasetId, outcome: ChangeOutcome) {
        let stale = {
            let mut running = self.running.lock().await;
            let current = match &outcome {
                ChangeOutcome::Member(epoch) => Some(epoch.epoch),
                ChangeOutcome::Departed => None,
            };
            match running.get(&dataset) {
                Some(replica) if Some(replica.epoch()) != current => running.remove(&dataset),
                _ => None,
            }
        };
        if let Some(replica) = stale {
            replica.stop();
            self.net.leave(&dataset);
        }
        match outcome {
            ChangeOutcome::Member(epoch) => {
                tracing::info!(%dataset, epoch = epoch.epoch, base = epoch.base_height(), "membership changed; starting the new epoch");
                // The old replica's files close once its tasks are gone.
                for attempt in 0..REPLICA_RESTART_ATTEMPTS {
                    match self.get_or_start(dataset).await {
                        Ok(_) => return,
                        Err(error) if attempt + 1 == REPLICA_RESTART_ATTEMPTS => {
                            tracing::error!(%dataset, %error, "the new epoch's replica did not start");
                        }
                        Err(_) => tokio::time::sleep(REPLICA_RESTART_PAUSE).await,
                    }
                }
            }
            ChangeOutcome::Departed => {
                tracing::info!(%dataset, "this node was replaced in the cluster; dropping its copy");
                tokio::time::sleep(REPLICA_RESTART_PAUSE).await;
                if let Err(error) = self.drop_copy(&dataset) {
                    tracing::warn!(%dataset, %error, "could not remove a dropped dataset's copy");
                }
            }
        }
    }

    /// An offer to serve `dataset` in the cluster of `members` at `epoch`
    /// (a gateway placing a new dataset, or a member replacing another):
    /// the node's signed acceptance of exactly that membership, or why
    /// not. A node serving the dataset accepts only its current membership
    /// or the next epoch's with one seat replaced.
    pub fn offer(&self, dataset: DatasetId, epoch: u64, members: &[PublicKey]) -> Response {
        let local = self.net.local().key;
        if let Err(error) = check_member_list(members) {
            return Response::Error(NodeError::BadRequest(error.to_string()));
        }
        if !members.contains(&local) {
            return Response::Error(NodeError::BadRequest(format!(
                "the offered cluster does not include this node ({local})"
            )));
        }
        match self.memberships.cluster(&dataset) {
            Some(cluster) => {
                let current = &cluster.current;
                // Asked again for the membership it serves: the same
                // answer. Asked for the next epoch's, one seat replaced:
                // it would go on serving in it.
                let same = epoch == current.epoch && current.members == members;
                let next =
                    epoch == current.epoch + 1 && one_seat_replaced(&current.members, members);
                if !(same || next) {
                    return Response::Error(NodeError::DatasetExists);
                }
            }
            None if !self.accepting => {
                return Response::Offer(OfferAnswer::Refused(Refusal::NotAccepting))
            }
            None if self.memberships.len() >= self.replicas_max => {
                return Response::Offer(OfferAnswer::Refused(Refusal::Full))
            }
            None => {}
        }
        Response::Offer(OfferAnswer::Accepted(fluence_chain::sign_acceptance(
            &self.signer,
            &dataset,
            epoch,
            members,
        )))
    }

    /// Leaves `dataset`'s cluster gracefully at `epoch` (see
    /// [`Coordinator::leave`]); `signature` is this node's departure.
    pub async fn leave(
        &self,
        dataset: DatasetId,
        epoch: u64,
        signature: fluence_proto::Signature,
    ) -> Result<(u64, PublicKey), NodeError> {
        match &self.coordinator {
            Some(coordinator) => coordinator.leave(self, dataset, epoch, signature).await,
            None => Err(NodeError::BadRequest(
                "this node takes no part in the open network: it cannot look up a node to hand its seat to".into(),
            )),
        }
    }

    /// The cluster of `dataset` for a gateway: its owner-signed `Create`
    /// (genesis membership inside), every membership change since with
    /// its proof, and where this node dials each current member.
    pub fn route(&self, dataset: &DatasetId) -> Response {
        let Some(cluster) = self.memberships.cluster(dataset) else {
            return Response::Error(NodeError::DatasetNotFound);
        };
        let mut changes = fluence_proto::Writer::new();
        changes.vec(&cluster.changes);
        let addrs = cluster
            .current
            .members
            .iter()
            .map(|key| MemberAddrs {
                key: *key,
                addrs: self
                    .net
                    .addresses(key)
                    .iter()
                    .take(fluence_proto::ops::MEMBER_ADDRS_MAX)
                    .map(ToString::to_string)
                    .filter(|addr| addr.len() <= fluence_proto::ops::ADDR_LEN_MAX)
                    .collect(),
            })
            .collect();
        Response::Route(RouteAnswer {
            create: (*cluster.create).clone(),
            changes: changes.into_bytes(),
            addrs,
        })
    }

    /// Keeps the membership a `Create` carries, after checking it.
    fn accept_create(&self, write: &SignedWrite) -> Result<(), NodeError> {
        match &write.body.action {
            Action::Create { cluster: None, .. } => Err(NodeError::BadRequest(
                "this node serves datasets in clusters: the Create must carry the cluster's membership".into(),
            )),
            Action::Create { .. } => self.memberships.insert(write).map(drop).map_err(|error| match error {
                MembershipStoreError::Invalid(fluence_chain::CreateError::Owner(
                    WriteAuthError::IdNotDerived,
                )) => NodeError::BadRequest(
                    "dataset id is not derived from the owner key and name tag".into(),
                ),
                MembershipStoreError::Invalid(fluence_chain::CreateError::Owner(_)) => {
                    NodeError::BadSignature
                }
                MembershipStoreError::Conflict(_) => NodeError::DatasetExists,
                error @ MembershipStoreError::Full(_) => NodeError::Unavailable(error.to_string()),
                error @ (MembershipStoreError::Invalid(_)
                | MembershipStoreError::History(_)
                | MembershipStoreError::NotListed(_)
                | MembershipStoreError::Unknown(_)) => NodeError::BadRequest(error.to_string()),
                error @ MembershipStoreError::Io { .. } => NodeError::Internal(error.to_string()),
            }),
            _ => Ok(()),
        }
    }

    /// Submits a gateway's write and answers once it is finalized and
    /// applied here (or refused). A `Create` first establishes the
    /// dataset's cluster on this node.
    pub async fn submit(&self, write: SignedWrite) -> Response {
        let dataset = write.body.dataset;
        let creating = matches!(write.body.action, Action::Create { .. });
        if let Err(error) = self.accept_create(&write) {
            return Response::Error(error);
        }
        let deadline = Instant::now() + WRITE_ACK_TIMEOUT;
        let mut resubmits = 0;
        let outcome = loop {
            let replica = match self.get_or_start(dataset).await {
                Ok(replica) => replica,
                // The next epoch's replica is starting.
                Err(_) if resubmits > 0 && resubmits < REPLICA_RESTART_ATTEMPTS => {
                    resubmits += 1;
                    tokio::time::sleep(REPLICA_RESTART_PAUSE).await;
                    continue;
                }
                Err(error) => return Response::Error(error),
            };
            // The wait must not hold the replica: one whose epoch ended
            // releases its files only once nobody holds it, and the next
            // epoch's cannot start before that.
            let pending = replica.submit(write.clone());
            drop(replica);
            let remaining = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(remaining, pending).await {
                // The replica stopped (its epoch ended): the write goes to
                // the next epoch's (answered from the chain if it was
                // finalized after all).
                Ok(Err(SubmitError::Stopped)) if resubmits < REPLICA_RESTART_ATTEMPTS => {
                    resubmits += 1;
                    tokio::time::sleep(REPLICA_RESTART_PAUSE).await;
                }
                outcome => break outcome,
            }
        };
        match outcome {
            Ok(Ok(committed)) => Response::Written {
                seq: committed.seq,
                state_root: committed.state_root,
            },
            // Another `Create` of the same dataset (the same owner and
            // name, sealed anew) took sequence number 0 first: a single
            // node answers that race with `DatasetExists`, and so must a
            // cluster, or concurrent first writes to a new MongoDB
            // collection fail instead of using the collection.
            Ok(Err(SubmitError::Stale { .. } | SubmitError::SeqTaken { .. })) if creating => {
                Response::Error(NodeError::DatasetExists)
            }
            Ok(Err(error)) => Response::Error(self.node_error(&dataset, error)),
            Err(_) => Response::Error(NodeError::Internal(format!(
                "the write was not finalized within {WRITE_ACK_TIMEOUT:?}; it may still be, and resubmitting it is safe"
            ))),
        }
    }

    /// The error a gateway expects for a write the replica did not take:
    /// the same as a single node's store gives for the same cause.
    fn node_error(&self, dataset: &DatasetId, error: SubmitError) -> NodeError {
        match error {
            SubmitError::Refused(error) => error,
            SubmitError::NoDataset | SubmitError::Unauthorised(WriteAuthError::NoOwner) => {
                NodeError::DatasetNotFound
            }
            SubmitError::DatasetExists => NodeError::DatasetExists,
            SubmitError::Unauthorised(WriteAuthError::IdNotDerived) => NodeError::BadRequest(
                "dataset id is not derived from the owner key and name tag".into(),
            ),
            SubmitError::Unauthorised(
                WriteAuthError::BadOwnerKey | WriteAuthError::BadSignature,
            ) => NodeError::BadSignature,
            SubmitError::Stale { next, .. } => NodeError::SeqMismatch { expected: next },
            SubmitError::SeqTaken { .. } => match self.store.info(dataset) {
                Ok(info) => NodeError::SeqMismatch {
                    expected: info.seq.saturating_add(1),
                },
                Err(error) => error.to_node_error(),
            },
            error @ (SubmitError::WrongDataset { .. } | SubmitError::TooLarge) => {
                NodeError::BadRequest(error.to_string())
            }
            error @ (SubmitError::PoolFull
            | SubmitError::Stopped
            | SubmitError::Syncing
            | SubmitError::Storage(_)) => {
                tracing::warn!(%dataset, %error, "write not taken by the replica");
                NodeError::Internal(error.to_string())
            }
        }
    }

    /// Starts the replica of every dataset a member sends messages about
    /// (asking the sender for the membership when this node has none),
    /// and answers and takes membership messages, until the transport
    /// shuts down.
    pub fn follow_members(self: &Arc<Self>) {
        if let Some(mut reports) = self.net.take_unknown_datasets() {
            let replicas = Arc::downgrade(self);
            tokio::spawn(async move {
                while let Some(report) = reports.recv().await {
                    let Some(replicas) = replicas.upgrade() else {
                        return;
                    };
                    let Some(cluster) = replicas.memberships.cluster(&report.dataset) else {
                        replicas.ask_membership(report.dataset, &report.from);
                        continue;
                    };
                    let epoch = report.channel / EPOCH_CHANNELS;
                    // A later epoch's message: this node missed a change.
                    if epoch > cluster.current.epoch {
                        replicas.ask_membership(report.dataset, &report.from);
                        continue;
                    }
                    // An earlier epoch's, or from a node no longer a
                    // member: that node missed one.
                    if epoch < cluster.current.epoch
                        || !cluster.current.members.contains(&report.from)
                    {
                        replicas.tell_membership(&cluster, &report.from);
                        continue;
                    }
                    if let Err(error) = replicas.get_or_start(report.dataset).await {
                        tracing::warn!(dataset = %report.dataset, from = %report.from, %error, "not replicating a dataset a member sent messages about");
                    }
                }
            });
        }
        self.every(crate::detector::SAMPLE_INTERVAL, |replicas| async move {
            replicas.detector.sample(&replicas.net);
        });
        // Every kept cluster is rejoined at once: the members learn this
        // node is back, and it learns of any change it missed.
        let replicas = Arc::downgrade(self);
        tokio::spawn(async move {
            let Some(replicas) = replicas.upgrade() else {
                return;
            };
            for dataset in replicas.memberships.datasets() {
                if let Err(error) = replicas.get_or_start(dataset).await {
                    tracing::warn!(%dataset, %error, "not rejoining a kept cluster");
                }
            }
        });
        self.every(EPOCH_WATCH_INTERVAL, |replicas| async move {
            let ended: Vec<(DatasetId, CertifiedChange)> = replicas
                .running
                .lock()
                .await
                .iter()
                .filter_map(|(dataset, replica)| Some((*dataset, replica.epoch_end()?)))
                .collect();
            for (dataset, certified) in ended {
                replicas.end_epoch(dataset, &certified).await;
            }
        });
        if self.coordinator.is_some() {
            self.every(
                crate::coordinator::COORDINATE_INTERVAL,
                |replicas| async move {
                    if let Some(coordinator) = &replicas.coordinator {
                        coordinator.round(&replicas).await;
                    }
                },
            );
        }
        if let Some(mut messages) = self.net.take_membership_messages() {
            let replicas = Arc::downgrade(self);
            tokio::spawn(async move {
                while let Some(message) = messages.recv().await {
                    let Some(replicas) = replicas.upgrade() else {
                        return;
                    };
                    replicas.on_membership_message(message).await;
                }
            });
        }
    }

    /// Runs `act` every `period` until the node stops (the task holds
    /// only a weak reference to the replicas).
    fn every<F, Fut>(self: &Arc<Self>, period: Duration, act: F)
    where
        F: Fn(Arc<Replicas>) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send,
    {
        let replicas = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(period);
            loop {
                ticks.tick().await;
                let Some(replicas) = replicas.upgrade() else {
                    return;
                };
                if replicas.net.is_closed() {
                    return;
                }
                act(replicas).await;
            }
        });
    }

    /// Asks `from` for `dataset`'s history, at most once per
    /// [`MEMBERSHIP_ASK_INTERVAL`] per dataset once the link to `from` is
    /// open (before that, on every call: the question is dropped).
    fn ask_membership(&self, dataset: DatasetId, from: &PublicKey) {
        {
            let mut asked = self
                .asked
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let now = Instant::now();
            asked.retain(|_, at| now.duration_since(*at) < MEMBERSHIP_ASK_INTERVAL);
            if asked.contains_key(&dataset) || asked.len() >= MEMBERSHIP_ASKS_MAX {
                return;
            }
            // A link that is not open yet drops the question: only a
            // question that can go out counts, so the next message from
            // a member (they come often) asks again.
            if self.net.is_connected(from) {
                asked.insert(dataset, now);
            }
        }
        tracing::debug!(%dataset, %from, "asking a member for a dataset's membership");
        self.net.send_membership(from, dataset, &[MEMBERSHIP_ASK]);
    }

    /// Sends `dataset`'s history to `to`, a current member still in an
    /// earlier epoch or a node a change replaced, at most once per
    /// [`MEMBERSHIP_ASK_INTERVAL`] per node and dataset.
    fn tell_membership(&self, cluster: &crate::memberships::Cluster, to: &PublicKey) {
        let dataset = cluster.create.body.dataset;
        let concerned = cluster.current.members.contains(to)
            || cluster
                .changes
                .iter()
                .filter_map(CertifiedChange::change)
                .any(|change| change.departed == *to);
        if !concerned {
            return;
        }
        {
            let mut told = self
                .told
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let now = Instant::now();
            told.retain(|_, at| now.duration_since(*at) < MEMBERSHIP_ASK_INTERVAL);
            if told.contains_key(&(dataset, *to)) || told.len() >= MEMBERSHIP_ASKS_MAX {
                return;
            }
            told.insert((dataset, *to), now);
        }
        tracing::debug!(%dataset, %to, "telling a node the cluster's current membership");
        let mut answer = vec![MEMBERSHIP_ANSWER];
        answer.extend_from_slice(&cluster.history().to_bytes());
        self.net.send_membership(to, dataset, &answer);
    }

    /// A question (answered with the dataset's history, its `Create` and
    /// changes, to a member of its cluster or one a change replaced) or an
    /// answer (checked, kept, and put into effect).
    async fn on_membership_message(&self, message: MembershipMessage) {
        let MembershipMessage {
            dataset,
            from,
            message,
        } = message;
        match message.split_first() {
            Some((&MEMBERSHIP_ASK, [])) => {
                if let Some(cluster) = self.memberships.cluster(&dataset) {
                    self.tell_membership(&cluster, &from);
                }
            }
            Some((&MEMBERSHIP_ANSWER, bytes)) => {
                let history = match ClusterHistory::from_bytes(bytes) {
                    Ok(history) if history.create.body.dataset == dataset => history,
                    Ok(_) => {
                        tracing::warn!(%dataset, %from, "a membership answer for another dataset");
                        return;
                    }
                    Err(error) => {
                        tracing::warn!(%dataset, %from, %error, "an undecodable membership answer");
                        return;
                    }
                };
                let known = self
                    .memberships
                    .cluster(&dataset)
                    .map(|cluster| cluster.changes.len());
                if known.is_some_and(|changes| changes >= history.changes.len()) {
                    return;
                }
                let outcome = match self.memberships.insert_history(&history) {
                    Ok(outcome) => outcome,
                    Err(error) => {
                        tracing::warn!(%dataset, %from, %error, "refusing a membership a node sent");
                        return;
                    }
                };
                tracing::info!(%dataset, %from, changes = history.changes.len(), "learned a dataset's membership from a member");
                self.follow_change(dataset, outcome).await;
            }
            _ => tracing::debug!(%dataset, %from, "a malformed membership message"),
        }
    }

    /// Whether this node keeps a chain of `dataset` (it replicated it
    /// before, perhaps before a restart).
    pub fn holds_chain(&self, dataset: &DatasetId) -> bool {
        fluence_chain::ChainStore::path_in(&self.chain_dir, dataset).exists()
    }

    /// The replica of `dataset`, if it runs.
    pub async fn replica(&self, dataset: &DatasetId) -> Option<Arc<Replica>> {
        self.running.lock().await.get(dataset).cloned()
    }

    /// The newest block applied by the replica of `dataset`, if it runs.
    pub async fn applied(&self, dataset: &DatasetId) -> Option<ChainTip> {
        self.running.lock().await.get(dataset).map(|r| r.applied())
    }

    /// Datasets with a running replica.
    pub async fn datasets(&self) -> Vec<DatasetId> {
        self.running.lock().await.keys().copied().collect()
    }

    /// The datasets this node serves (whether or not their replica runs).
    pub fn served(&self) -> usize {
        self.memberships.len()
    }

    /// Stops every replica and the transport.
    pub async fn stop(&self) {
        for (_, replica) in self.running.lock().await.drain() {
            replica.stop();
        }
        self.net.shutdown();
    }
}

/// Whether `next` is `current` with exactly one member replaced by a node
/// not in it (same size; both lists without repeats).
fn one_seat_replaced(current: &[PublicKey], next: &[PublicKey]) -> bool {
    current.len() == next.len() && next.iter().filter(|key| !current.contains(key)).count() == 1
}
