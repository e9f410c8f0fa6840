//! Request dispatch: decode, authorise, hand to the store (or, in a
//! cluster, to the dataset's replica), encode. Verified reads (signed
//! pages, proven documents) are answered by [`crate::reads`].
//!
//! A write is applied only if its signature verifies against the dataset
//! owner's key: for `Create` the key named in the body, which must also be
//! the key the dataset id was derived from, so nobody can create (squat) a
//! dataset id that belongs to someone else's key; for every later write the
//! owner recorded at creation. A single node checks this here; a cluster
//! member's replica checks it when it admits the write and again when a
//! block holding it is verified.

use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};

use fluence_crypto::sign::SigningKey;
use fluence_net::discovery::Discovery;
use fluence_net::{Answer, PeerId, RequestHandler};
use fluence_proto::{
    Action, DatasetId, Decode, DocId, Encode, FindQuery, KnownRoot, NodeError, OfferAnswer,
    PublicKey, Refusal, Request, Response, SignedWrite, StatePin, WRITE_SIGNING_DOMAIN,
};
use fluence_store::{Store, StoreError};

use crate::cluster::{Replica, Replicas};
use crate::ops::Operations;
use crate::order::LewiWuOrder;
use crate::reads::{self, Heights, ReadSigner};

pub type NodeStore = Store<LewiWuOrder>;

pub struct NodeService {
    store: Arc<NodeStore>,
    /// In a cluster, where writes go; a single node applies them itself.
    replicas: Option<Arc<Replicas>>,
    /// Signs read answers: the node's identity key.
    signer: Arc<ReadSigner>,
    /// Optional copy of every request's bytes as received, for audits such
    /// as the leak test (`--debug-record-requests`).
    recorder: Option<Mutex<std::fs::File>>,
    /// The node's discovery (open network), for operations requests.
    discovery: Option<Discovery>,
}

impl NodeService {
    /// A single node: writes are applied to `store` directly. Its read
    /// answers are signed with `identity` (the node's identity key).
    pub fn with_identity(store: NodeStore, identity: SigningKey) -> Self {
        NodeService {
            store: Arc::new(store),
            replicas: None,
            signer: Arc::new(ReadSigner::new(identity)),
            recorder: None,
            discovery: None,
        }
    }

    /// A single node whose read answers are signed with a fresh key (an
    /// in-process node of tests and tools; the daemon uses its identity,
    /// [`NodeService::with_identity`]).
    pub fn new(store: NodeStore) -> Self {
        Self::with_identity(store, SigningKey::generate())
    }

    /// A cluster member: writes go through `replicas` (which share
    /// `store`), reads are served from `store` and signed with `identity`,
    /// the member key.
    pub fn replicated(
        store: Arc<NodeStore>,
        replicas: Arc<Replicas>,
        identity: SigningKey,
    ) -> Self {
        NodeService {
            store,
            replicas: Some(replicas),
            signer: Arc::new(ReadSigner::new(identity)),
            recorder: None,
            discovery: None,
        }
    }

    /// Answers operations requests about the open network (status,
    /// lookups) from `discovery`.
    pub fn with_discovery(mut self, discovery: Discovery) -> Self {
        self.discovery = Some(discovery);
        self
    }

    /// What operations requests are answered from.
    fn operations(&self) -> Operations {
        Operations {
            node: self.signing_key(),
            replicas: self.replicas.clone(),
            discovery: self.discovery.clone(),
        }
    }

    /// The key read answers are signed with.
    pub fn signing_key(&self) -> PublicKey {
        self.signer.public_key()
    }

    /// The replicas of a cluster member.
    pub fn replicas(&self) -> Option<&Arc<Replicas>> {
        self.replicas.as_ref()
    }

    /// Appends every received request, length-prefixed, to `path`.
    pub fn record_requests_to(mut self, path: &Path) -> std::io::Result<Self> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        self.recorder = Some(Mutex::new(file));
        Ok(self)
    }

    pub fn store(&self) -> &NodeStore {
        &self.store
    }

    /// Handles one encoded request and returns the encoded response. In
    /// a cluster a write waits, on the calling thread, until it is
    /// finalized; the network path uses [`NodeService::answer_bytes`].
    pub fn handle_bytes(&self, bytes: &[u8]) -> Vec<u8> {
        match self.answer_bytes(bytes) {
            Answer::Ready(answer) => answer,
            Answer::Pending(later) => futures::executor::block_on(later),
        }
    }

    /// Handles one encoded request: the encoded response, or (a write in
    /// a cluster) a future of it.
    pub fn answer_bytes(&self, bytes: &[u8]) -> Answer {
        if let Some(recorder) = &self.recorder {
            if let Ok(mut file) = recorder.lock() {
                let _ = file.write_all(&(bytes.len() as u64).to_le_bytes());
                let _ = file.write_all(bytes);
            }
        }
        let request = match Request::from_bytes(bytes) {
            Ok(request) => request,
            Err(error) => {
                return Response::Error(NodeError::BadRequest(format!(
                    "undecodable request: {error}"
                )))
                .to_bytes()
                .into()
            }
        };
        match (request, &self.replicas) {
            (Request::Write(write), Some(replicas)) => {
                let replicas = Arc::clone(replicas);
                Answer::Pending(Box::pin(
                    async move { replicas.submit(write).await.to_bytes() },
                ))
            }
            (Request::Ops(request), _) => {
                let operations = self.operations();
                Answer::Pending(Box::pin(async move {
                    crate::ops::answer(&operations, request).await.to_bytes()
                }))
            }
            (Request::SignedFind { query, at }, Some(replicas)) => {
                self.cluster_read(replicas, ClusterRead::Find { query, at })
            }
            (
                Request::ProveIds {
                    dataset,
                    ids,
                    known,
                },
                Some(replicas),
            ) => self.cluster_read(
                replicas,
                ClusterRead::Prove {
                    dataset,
                    ids,
                    known,
                },
            ),
            (request, _) => self.handle(request).to_bytes().into(),
        }
    }

    /// A verified read on a cluster member: its height comes from the
    /// dataset's replica (started if it is not running yet), and it may
    /// wait for a pinned state, so it runs on a blocking thread of its own.
    fn cluster_read(&self, replicas: &Arc<Replicas>, read: ClusterRead) -> Answer {
        let store = Arc::clone(&self.store);
        let signer = Arc::clone(&self.signer);
        let replicas = Arc::clone(replicas);
        Answer::Pending(Box::pin(async move {
            let answer = match replica_of(&store, &replicas, read.dataset()).await {
                Ok(replica) => {
                    tokio::task::spawn_blocking(move || read.answer(&store, &signer, &replica))
                        .await
                        .unwrap_or_else(|e| {
                            Err(NodeError::Internal(format!("read task failed: {e}")))
                        })
                }
                Err(error) => Err(error),
            };
            answer.unwrap_or_else(error_response).to_bytes()
        }))
    }

    /// Handles one request. In a cluster a write waits, on the calling
    /// thread, until it is finalized.
    pub fn handle(&self, request: Request) -> Response {
        let result = match request {
            Request::Write(write) => match &self.replicas {
                Some(replicas) => return futures::executor::block_on(replicas.submit(write)),
                None => self.write(&write),
            },
            Request::ListDatasets { owner } => self
                .store
                .list(&owner)
                .map(Response::Datasets)
                .map_err(|e| e.to_node_error()),
            Request::DatasetInfo { dataset } => self
                .store
                .info(&dataset)
                .map(Response::Info)
                .map_err(|e| e.to_node_error()),
            Request::Find {
                dataset,
                schema,
                plan,
                after,
                page_docs_max,
            } => self
                .store
                .find_planned_for(
                    &dataset,
                    Some(&schema),
                    &plan,
                    after,
                    page_docs_max as usize,
                )
                .map(|page| Response::Page {
                    docs: page.docs,
                    next: page.next,
                })
                .map_err(|e| e.to_node_error()),
            Request::Ops(request) => {
                return futures::executor::block_on(crate::ops::answer(&self.operations(), request))
            }
            Request::Offer {
                dataset,
                epoch,
                members,
            } => {
                return match &self.replicas {
                    Some(replicas) => replicas.offer(dataset, epoch, &members),
                    None => Response::Offer(OfferAnswer::Refused(Refusal::Alone)),
                }
            }
            Request::Route { dataset } => match &self.replicas {
                Some(replicas) => return replicas.route(&dataset),
                None => Err(NodeError::BadRequest(
                    "this node runs alone: it serves no cluster".into(),
                )),
            },
            Request::SignedFind { query, at } => match &self.replicas {
                Some(replicas) => {
                    let read = ClusterRead::Find { query, at };
                    futures::executor::block_on(self.cluster_read_now(replicas, read))
                }
                None => reads::signed_find(&self.store, &self.signer, Heights::Single, &query, at),
            },
            Request::ProveIds {
                dataset,
                ids,
                known,
            } => match &self.replicas {
                Some(replicas) => {
                    let read = ClusterRead::Prove {
                        dataset,
                        ids,
                        known,
                    };
                    futures::executor::block_on(self.cluster_read_now(replicas, read))
                }
                None => Err(NodeError::BadRequest(
                    "proofs need a cluster: a single node has no certified blocks".into(),
                )),
            },
        };
        result.unwrap_or_else(error_response)
    }

    /// [`NodeService::cluster_read`] on the calling thread.
    async fn cluster_read_now(
        &self,
        replicas: &Replicas,
        read: ClusterRead,
    ) -> Result<Response, NodeError> {
        let replica = replica_of(&self.store, replicas, read.dataset()).await?;
        read.answer(&self.store, &self.signer, &replica)
    }

    fn write(&self, write: &SignedWrite) -> Result<Response, NodeError> {
        let body = &write.body;
        let owner = match &body.action {
            Action::Create {
                owner, name_tag, ..
            } => {
                fluence_crypto::sign::check_public_key(&owner.0)
                    .map_err(|_| NodeError::BadSignature)?;
                if fluence_crypto::keys::dataset_id(&owner.0, name_tag) != body.dataset.0 {
                    return Err(NodeError::BadRequest(
                        "dataset id is not derived from the owner key and name tag".into(),
                    ));
                }
                *owner
            }
            _ => {
                self.store
                    .info(&body.dataset)
                    .map_err(|e| e.to_node_error())?
                    .owner
            }
        };
        fluence_crypto::sign::verify(
            &owner.0,
            WRITE_SIGNING_DOMAIN,
            &body.digest(),
            &write.signature.0,
        )
        .map_err(|_| NodeError::BadSignature)?;
        let applied = self.store.apply(write).map_err(|e| e.to_node_error())?;
        Ok(Response::Written {
            seq: applied.seq,
            state_root: applied.state_root,
        })
    }
}

/// A verified read a cluster member answers with its replica's chain.
enum ClusterRead {
    Find {
        query: FindQuery,
        at: Option<StatePin>,
    },
    Prove {
        dataset: DatasetId,
        ids: Vec<DocId>,
        known: Option<KnownRoot>,
    },
}

impl ClusterRead {
    fn dataset(&self) -> DatasetId {
        match self {
            ClusterRead::Find { query, .. } => query.dataset,
            ClusterRead::Prove { dataset, .. } => *dataset,
        }
    }

    fn answer(
        &self,
        store: &NodeStore,
        signer: &ReadSigner,
        replica: &Replica,
    ) -> Result<Response, NodeError> {
        match self {
            ClusterRead::Find { query, at } => {
                reads::signed_find(store, signer, Heights::Cluster(replica), query, *at)
            }
            ClusterRead::Prove {
                dataset,
                ids,
                known,
            } => reads::prove_ids(store, replica, dataset, ids, *known),
        }
    }
}

/// The replica of a dataset this node stores, started if needed. A read
/// of a dataset the node does not hold starts nothing (a stranger's reads
/// must not use up `replicas_max`).
async fn replica_of(
    store: &NodeStore,
    replicas: &Replicas,
    dataset: DatasetId,
) -> Result<Arc<Replica>, NodeError> {
    match store.info(&dataset) {
        Ok(_) => replicas.get_or_start(dataset).await,
        Err(StoreError::DatasetNotFound) => Err(NodeError::DatasetNotFound),
        Err(error) => Err(error.to_node_error()),
    }
}

fn error_response(error: NodeError) -> Response {
    if matches!(error, NodeError::Corrupt(_) | NodeError::Internal(_)) {
        tracing::error!(%error, "request failed");
    }
    Response::Error(error)
}

impl RequestHandler for NodeService {
    fn handle(&self, _peer: PeerId, request: Vec<u8>) -> Answer {
        self.answer_bytes(&request)
    }
}
