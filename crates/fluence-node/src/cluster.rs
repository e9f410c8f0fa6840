//! The node as a cluster member: one consensus replica
//! (`fluence_consensus`) per dataset it serves, each on the node's cluster
//! transport (`fluence_net::cluster`), started lazily on the first write a
//! gateway submits for the dataset or the first message a member sends
//! about it, and bounded in number.
//!
//! A gateway's write is submitted to the local replica and answered only
//! once its block is finalized (2f + 1 signatures) and applied to this
//! node's store; a resubmitted write is answered from the chain, never
//! applied twice. Reads are served from the local store (r = 1).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use commonware_runtime::Supervisor;
use fluence_chain::{ChainRules, ChainTip, WriteAuthError};
use fluence_consensus::{
    Behavior, BlockLimits, Channel, ClusterNetwork, ReplicaConfig, ReplicaHandle, SubmitError,
    Timeouts,
};
use fluence_net::cluster::{ClusterMember, ClusterNet, ClusterSender};
use fluence_proto::{Action, DatasetId, NodeError, PublicKey, Response, SignedWrite};
use zeroize::Zeroizing;

use crate::order::LewiWuOrder;
use crate::service::NodeStore;

/// Datasets one node replicates at once unless configured otherwise.
pub const REPLICAS_MAX_DEFAULT: usize = 256;
/// How long a gateway's write waits for finalization before the node
/// answers that it does not know yet (the write may still be finalized;
/// resubmitting it is safe, it is applied once). Below the gateway's own
/// request timeout, so the gateway hears this rather than a timeout.
pub const WRITE_ACK_TIMEOUT: Duration = Duration::from_secs(240);

/// The cluster a node belongs to: its members (this node among them) and
/// how consensus runs. Membership is given (the open network that forms
/// clusters is a later issue); every dataset the node serves is
/// replicated by this one cluster.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    pub members: Vec<ClusterMember>,
    pub timeouts: Timeouts,
    /// Replicas (datasets) this node runs at once; further datasets are
    /// refused.
    pub replicas_max: usize,
}

impl ClusterConfig {
    /// The cluster of `members` with default timing and bounds.
    pub fn new(members: Vec<ClusterMember>) -> Self {
        ClusterConfig {
            members,
            timeouts: Timeouts::default(),
            replicas_max: REPLICAS_MAX_DEFAULT,
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
    members: Vec<PublicKey>,
    store: Arc<NodeStore>,
    chain_dir: PathBuf,
    /// Unique per node among the runtime's storage partitions.
    partition_prefix: String,
    timeouts: Timeouts,
    replicas_max: usize,
    running: tokio::sync::Mutex<HashMap<DatasetId, Arc<Replica>>>,
}

impl Replicas {
    /// Replicas in `context` (whose storage holds their consensus logs),
    /// over `net`, with the node's `seed`, sharing `store`, keeping chain
    /// files in `chain_dir`.
    pub fn new(
        context: commonware_runtime::tokio::Context,
        net: ClusterNet,
        seed: Zeroizing<[u8; 32]>,
        store: Arc<NodeStore>,
        chain_dir: PathBuf,
        config: &ClusterConfig,
    ) -> Self {
        let local = net.local().key;
        Replicas {
            context,
            members: net.members().iter().map(|m| m.key).collect(),
            net,
            seed,
            store,
            chain_dir,
            partition_prefix: format!("n{}", &local.to_hex()[..16]),
            timeouts: config.timeouts,
            replicas_max: config.replicas_max,
            running: tokio::sync::Mutex::new(HashMap::new()),
        }
    }

    /// The cluster transport.
    pub fn net(&self) -> &ClusterNet {
        &self.net
    }

    /// The replica of `dataset`, started if it is not running yet.
    pub async fn get_or_start(&self, dataset: DatasetId) -> Result<Arc<Replica>, NodeError> {
        let mut running = self.running.lock().await;
        if let Some(replica) = running.get(&dataset) {
            return Ok(Arc::clone(replica));
        }
        if running.len() >= self.replicas_max {
            return Err(NodeError::Internal(format!(
                "this node already replicates its maximum of {} datasets",
                self.replicas_max
            )));
        }
        let mut channels = Vec::with_capacity(Channel::ALL.len());
        for channel in Channel::ALL {
            let pair = self.net.register(dataset, channel.id()).map_err(|error| {
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
            members: self.members.clone(),
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
            peers: self.net.peers(),
            blocker: self.net.blocker(),
        };
        let context = self
            .context
            .child("replica")
            .with_attribute("node", &self.partition_prefix)
            .with_attribute("dataset", dataset.to_hex());
        let replica = fluence_consensus::start(context, config, network)
            .await
            .map_err(|error| {
                tracing::error!(%dataset, %error, "replica did not start");
                NodeError::Internal(format!("cannot start the replica of {dataset}: {error}"))
            })?;
        tracing::info!(%dataset, "replica started");
        let replica = Arc::new(replica);
        running.insert(dataset, Arc::clone(&replica));
        Ok(replica)
    }

    /// Submits a gateway's write and answers once it is finalized and
    /// applied here (or refused).
    pub async fn submit(&self, write: SignedWrite) -> Response {
        let dataset = write.body.dataset;
        let creating = matches!(write.body.action, Action::Create { .. });
        let replica = match self.get_or_start(dataset).await {
            Ok(replica) => replica,
            Err(error) => return Response::Error(error),
        };
        match tokio::time::timeout(WRITE_ACK_TIMEOUT, replica.submit(write)).await {
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

    /// Starts the replica of every dataset a member sends messages about,
    /// until the transport shuts down.
    pub fn follow_members(self: &Arc<Self>) {
        let Some(mut reports) = self.net.take_unknown_datasets() else {
            return;
        };
        let replicas = Arc::downgrade(self);
        tokio::spawn(async move {
            while let Some(report) = reports.recv().await {
                let Some(replicas) = replicas.upgrade() else {
                    return;
                };
                if let Err(error) = replicas.get_or_start(report.dataset).await {
                    tracing::warn!(dataset = %report.dataset, from = %report.from, %error, "not replicating a dataset a member sent messages about");
                }
            }
        });
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

    /// Stops every replica and the transport.
    pub async fn stop(&self) {
        for (_, replica) in self.running.lock().await.drain() {
            replica.stop();
        }
        self.net.shutdown();
    }
}
