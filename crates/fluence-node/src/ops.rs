//! Answers to operations requests (`fluence status`, `fluence chain
//! show`, `fluence dht closest`, `fluence leave`): a node's place in the
//! open network (from discovery), a cluster member's view of its cluster
//! and the finalized blocks of a dataset's chain (from its replicas),
//! lookups of the nodes closest to a key, and a member's graceful leave.

use std::sync::Arc;

use fluence_chain::ChainStoreError;
use fluence_net::discovery::{Discovery, DiscoveryError};
use fluence_net::keyspace::Target;
use fluence_proto::ops::{self, DhtTarget, CHAIN_BLOCKS_PER_ANSWER_MAX, STATUS_DATASETS_MAX};
use fluence_proto::{
    ChainRecord, ChainSlice, DatasetId, DatasetStatus, Encode, MemberStatus, NodeError, NodeStatus,
    OpsRequest, OpsResponse, PublicKey, Response,
};

use crate::cluster::Replicas;

/// What a node answers operations requests from.
#[derive(Clone)]
pub struct Operations {
    /// The node's key (its identity, and its member key).
    pub node: PublicKey,
    /// A cluster member's replicas.
    pub replicas: Option<Arc<Replicas>>,
    /// The node's discovery, when it takes part in the open network.
    pub discovery: Option<Discovery>,
}

/// Bytes of blocks one chain answer carries (at least one block, if it
/// fits a message at all): well inside the rpc message bound.
pub const CHAIN_ANSWER_BYTES_MAX: usize = 16 * 1024 * 1024;

/// The answer to `request`.
pub async fn answer(operations: &Operations, request: OpsRequest) -> Response {
    let answer = match request {
        OpsRequest::Status => status(operations).await.map(OpsResponse::Status),
        OpsRequest::Chain {
            dataset,
            from,
            limit,
        } => match &operations.replicas {
            Some(replicas) => chain(replicas, dataset, from, limit)
                .await
                .map(OpsResponse::Chain),
            None => Err(NodeError::BadRequest(
                "this node runs alone: it has no cluster and keeps no chain".into(),
            )),
        },
        OpsRequest::Closest { target, count } => closest(operations, &target, count)
            .await
            .map(OpsResponse::Closest),
        OpsRequest::Leave {
            dataset,
            epoch,
            signature,
        } => match &operations.replicas {
            Some(replicas) => replicas
                .leave(dataset, epoch, signature)
                .await
                .map(|(epoch, newcomer)| OpsResponse::Left { epoch, newcomer }),
            None => Err(NodeError::BadRequest(
                "this node runs alone: it serves no cluster to leave".into(),
            )),
        },
    };
    match answer {
        Ok(answer) => Response::Ops(answer),
        Err(error) => Response::Error(error),
    }
}

fn discovery_error(error: DiscoveryError) -> NodeError {
    match error {
        DiscoveryError::Busy => NodeError::Unavailable(error.to_string()),
        other => NodeError::Internal(format!("discovery: {other}")),
    }
}

/// The node's view: its place in the network, and for a cluster member
/// its cluster and every running replica.
async fn status(operations: &Operations) -> Result<NodeStatus, NodeError> {
    let network = match &operations.discovery {
        Some(discovery) => Some(ops::NetworkStatus::from(
            &discovery.status().await.map_err(discovery_error)?,
        )),
        None => None,
    };
    let mut status = match &operations.replicas {
        Some(replicas) => cluster_status(replicas).await,
        None => NodeStatus {
            node: operations.node,
            members: Vec::new(),
            datasets: Vec::new(),
            network: None,
        },
    };
    status.network = network;
    Ok(status)
}

/// The nodes closest to `target`, by a lookup through the network.
async fn closest(
    operations: &Operations,
    target: &DhtTarget,
    count: u8,
) -> Result<ops::ClosestPeers, NodeError> {
    let Some(discovery) = &operations.discovery else {
        return Err(NodeError::BadRequest(
            "this node takes no part in the open network (no discovery)".into(),
        ));
    };
    let target = Target::try_from(target).map_err(|e| NodeError::BadRequest(e.to_string()))?;
    let closest = discovery
        .closest(target, usize::from(count))
        .await
        .map_err(discovery_error)?;
    Ok(ops::ClosestPeers::from(&closest))
}

/// A member's view: members, connections, and every running replica.
async fn cluster_status(replicas: &Replicas) -> NodeStatus {
    let net = replicas.net();
    let local = net.local().key;
    let mut linked = net.linked();
    linked.sort_by_key(|(member, _)| member.key);
    let members = std::iter::once(MemberStatus {
        key: local,
        addrs: Vec::new(),
        local: true,
        connected: true,
    })
    .chain(
        linked
            .into_iter()
            .take(ops::STATUS_MEMBERS_MAX - 1)
            .map(|(member, connected)| MemberStatus {
                key: member.key,
                addrs: net
                    .addresses(&member.key)
                    .iter()
                    .map(ToString::to_string)
                    .collect(),
                local: false,
                connected,
            }),
    )
    .collect();
    let mut datasets = Vec::new();
    let mut running = replicas.datasets().await;
    running.sort_unstable();
    running.truncate(STATUS_DATASETS_MAX);
    for dataset in running {
        let Some(replica) = replicas.replica(&dataset).await else {
            continue;
        };
        let applied = replica.applied();
        datasets.push(DatasetStatus {
            dataset,
            finalized_height: replica.finalized_tip().max(applied.height),
            applied_height: applied.height,
            state_root: applied.state_root,
            floor_height: replica.chain().floor_height().ok().flatten(),
            syncing: replica.syncing(),
            fault: replica.fault(),
            epoch: replica.epoch(),
            // The epoch's list order, not consensus's sorted one.
            members: replicas
                .memberships()
                .members(&dataset)
                .unwrap_or_else(|| replica.members().to_vec()),
        });
    }
    NodeStatus {
        node: local,
        members,
        datasets,
        network: None,
    }
}

fn chain_error(error: ChainStoreError) -> NodeError {
    NodeError::Internal(format!("chain storage: {error}"))
}

/// Blocks of `dataset`'s chain (see `OpsRequest::Chain`).
async fn chain(
    replicas: &Replicas,
    dataset: DatasetId,
    from: Option<u64>,
    limit: u32,
) -> Result<ChainSlice, NodeError> {
    // A replica that is not running (after a restart, before the cluster
    // talked about the dataset) starts if this node holds its chain.
    let replica = match replicas.replica(&dataset).await {
        Some(replica) => replica,
        None if replicas.holds_chain(&dataset) => replicas.get_or_start(dataset).await?,
        None => return Err(NodeError::DatasetNotFound),
    };
    let store = replica.chain();
    let tip = store.tip().map_err(chain_error)?.height;
    let floor = store.floor_height().map_err(chain_error)?;
    let limit = limit.clamp(1, CHAIN_BLOCKS_PER_ANSWER_MAX);
    let from = from.unwrap_or_else(|| tip.saturating_sub(u64::from(limit) - 1).max(1));
    let mut blocks = Vec::new();
    let mut bytes = 0usize;
    for finalized in store.range(from, limit as usize).map_err(chain_error)? {
        let block = finalized.block.to_bytes();
        let size = block.len() + finalized.certificate.len();
        if !blocks.is_empty() && bytes + size > CHAIN_ANSWER_BYTES_MAX {
            break;
        }
        bytes += size;
        blocks.push(ChainRecord {
            block,
            certificate: finalized.certificate,
        });
    }
    Ok(ChainSlice {
        members: replica.members().to_vec(),
        tip,
        floor,
        blocks,
    })
}
