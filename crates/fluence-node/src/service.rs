//! Request dispatch: decode, authorise, hand to the store, encode.
//!
//! A write is applied only if its signature verifies against the dataset
//! owner's key: for `Create` the key named in the body, which must also be
//! the key the dataset id was derived from, so nobody can create (squat) a
//! dataset id that belongs to someone else's key; for every later write the
//! owner recorded at creation.

use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

use fluence_net::{Answer, PeerId, RequestHandler};
use fluence_proto::{
    Action, Decode, Encode, NodeError, Request, Response, SignedWrite, WRITE_SIGNING_DOMAIN,
};
use fluence_store::Store;

use crate::order::LewiWuOrder;

pub type NodeStore = Store<LewiWuOrder>;

pub struct NodeService {
    store: NodeStore,
    /// Optional copy of every request's bytes as received, for audits such
    /// as the leak test (`--debug-record-requests`).
    recorder: Option<Mutex<std::fs::File>>,
}

impl NodeService {
    pub fn new(store: NodeStore) -> Self {
        NodeService {
            store,
            recorder: None,
        }
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

    /// Handles one encoded request and returns the encoded response.
    pub fn handle_bytes(&self, bytes: &[u8]) -> Vec<u8> {
        if let Some(recorder) = &self.recorder {
            if let Ok(mut file) = recorder.lock() {
                let _ = file.write_all(&(bytes.len() as u64).to_le_bytes());
                let _ = file.write_all(bytes);
            }
        }
        let response = match Request::from_bytes(bytes) {
            Ok(request) => self.handle(request),
            Err(error) => Response::Error(NodeError::BadRequest(format!(
                "undecodable request: {error}"
            ))),
        };
        response.to_bytes()
    }

    pub fn handle(&self, request: Request) -> Response {
        let result = match request {
            Request::Write(write) => self.write(&write),
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
        self.handle_bytes(&request).into()
    }
}
