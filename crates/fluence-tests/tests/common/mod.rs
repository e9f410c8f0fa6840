//! An in-process node: the real `NodeService` over a real store in a
//! temporary directory, reached through the canonical codec (every request
//! and response is encoded and decoded, as on the wire).

#![allow(dead_code)]

use std::sync::Arc;

use fluence_client::{Client, ClientError, Transport};
use fluence_crypto::keys::MasterKey;
use fluence_node::service::NodeStore;
use fluence_node::NodeService;
use fluence_proto::{Decode, Encode, Request, Response};

#[derive(Clone)]
pub struct Local(pub Arc<NodeService>);

impl Transport for Local {
    async fn call(&self, request: &Request) -> Result<Response, ClientError> {
        let bytes = self.0.handle_bytes(&request.to_bytes());
        Response::from_bytes(&bytes).map_err(|e| ClientError::Integrity(e.to_string()))
    }
}

pub struct Harness {
    pub dir: tempfile::TempDir,
    pub node: Arc<NodeService>,
    pub client: Client<Local>,
}

impl Harness {
    pub fn new() -> Harness {
        Harness::with_key(tempfile::tempdir().expect("tempdir"), MasterKey::generate())
    }

    /// A node over the store in `dir` and a client holding `master`.
    pub fn with_key(dir: tempfile::TempDir, master: MasterKey) -> Harness {
        let node = Arc::new(NodeService::new(
            NodeStore::open(dir.path()).expect("open store"),
        ));
        let client = Client::new(master, Local(node.clone()));
        Harness { dir, node, client }
    }

    /// Closes the node (releasing its files) and hands back the directory.
    pub fn close(self) -> tempfile::TempDir {
        let Harness { dir, node, client } = self;
        drop(client);
        drop(node);
        dir
    }

    /// Another owner's client on the same node.
    pub fn other_client(&self) -> Client<Local> {
        Client::new(MasterKey::generate(), Local(self.node.clone()))
    }
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// Cases per property: short by default, many more with FLUENCE_LONG_TESTS=1.
pub fn cases(short: u32, long: u32) -> u32 {
    match std::env::var("FLUENCE_LONG_TESTS").as_deref() {
        Ok("1") | Ok("true") => long,
        _ => short,
    }
}
