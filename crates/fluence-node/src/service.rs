//! Request dispatch: decode, authorise, hand to the store (or, in a
//! cluster, to the dataset's replica), encode.
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

use fluence_net::{Answer, PeerId, RequestHandler};
use fluence_proto::{
    Action, Decode, Encode, NodeError, Request, Response, SignedWrite, WRITE_SIGNING_DOMAIN,
};
use fluence_store::Store;

use crate::cluster::Replicas;
use crate::order::LewiWuOrder;

pub type NodeStore = Store<LewiWuOrder>;

pub struct NodeService {
    store: Arc<NodeStore>,
    /// In a cluster, where writes go; a single node applies them itself.
    replicas: Option<Arc<Replicas>>,
    /// Optional copy of every request's bytes as received, for audits such
    /// as the leak test (`--debug-record-requests`).
    recorder: Option<Mutex<std::fs::File>>,
}

impl NodeService {
    /// A single node: writes are applied to `store` directly.
    pub fn new(store: NodeStore) -> Self {
        NodeService {
            store: Arc::new(store),
            replicas: None,
            recorder: None,
        }
    }

    /// A cluster member: writes go through `replicas` (which share
    /// `store`), reads are served from `store`.
    pub fn replicated(store: Arc<NodeStore>, replicas: Arc<Replicas>) -> Self {
        NodeService {
            store,
            replicas: Some(replicas),
            recorder: None,
        }
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
            (Request::Ops(request), Some(replicas)) => {
                let replicas = Arc::clone(replicas);
                Answer::Pending(Box::pin(async move {
                    crate::ops::answer(&replicas, request).await.to_bytes()
                }))
            }
            (request, _) => self.handle(request).to_bytes().into(),
        }
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
            Request::Ops(request) => match &self.replicas {
                Some(replicas) => {
                    return futures::executor::block_on(crate::ops::answer(replicas, request))
                }
                None => Err(NodeError::BadRequest(
                    "this node runs alone: it has no cluster and keeps no chain".into(),
                )),
            },
        };
        result.unwrap_or_else(|error| {
            if matches!(error, NodeError::Corrupt(_) | NodeError::Internal(_)) {
                tracing::error!(%error, "request failed");
            }
            Response::Error(error)
        })
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

impl RequestHandler for NodeService {
    fn handle(&self, _peer: PeerId, request: Vec<u8>) -> Answer {
        self.answer_bytes(&request)
    }
}
