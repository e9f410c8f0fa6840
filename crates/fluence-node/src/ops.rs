//! Answers to operations requests (`fluence status`, `fluence chain
//! show`): a cluster member's view of its cluster and the finalized blocks
//! of a dataset's chain, read from its replicas.

use fluence_chain::ChainStoreError;
use fluence_proto::ops::{CHAIN_BLOCKS_PER_ANSWER_MAX, STATUS_DATASETS_MAX};
use fluence_proto::{
    ChainRecord, ChainSlice, DatasetId, DatasetStatus, Encode, MemberStatus, NodeError, NodeStatus,
    OpsRequest, OpsResponse, Response,
};

use crate::cluster::Replicas;

/// Bytes of blocks one chain answer carries (at least one block, if it
/// fits a message at all): well inside the rpc message bound.
pub const CHAIN_ANSWER_BYTES_MAX: usize = 16 * 1024 * 1024;

/// The answer to `request` from a cluster member.
pub async fn answer(replicas: &Replicas, request: OpsRequest) -> Response {
    let answer = match request {
        OpsRequest::Status => Ok(OpsResponse::Status(status(replicas).await)),
        OpsRequest::Chain {
            dataset,
            from,
            limit,
        } => chain(replicas, dataset, from, limit)
            .await
            .map(OpsResponse::Chain),
    };
    match answer {
        Ok(answer) => Response::Ops(answer),
        Err(error) => Response::Error(error),
    }
}

/// The member's view: members, connections, and every running replica.
async fn status(replicas: &Replicas) -> NodeStatus {
    let net = replicas.net();
    let local = net.local().key;
    let members = net
        .members()
        .iter()
        .map(|member| MemberStatus {
            key: member.key,
            addrs: net
                .addresses(&member.key)
                .iter()
                .map(ToString::to_string)
                .collect(),
            local: member.key == local,
            connected: member.key == local || net.is_connected(&member.key),
        })
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
        });
    }
    NodeStatus {
        node: local,
        members,
        datasets,
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
