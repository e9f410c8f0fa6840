//! Starting and stopping a node: identity, store, listener.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use fluence_net::{identity, Multiaddr, PeerId, Server};
use fluence_store::Store;

use crate::service::NodeService;

#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub data_dir: PathBuf,
    pub listen: Multiaddr,
    /// Where to copy every received request (audits and the leak test).
    pub record_requests: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum NodeStartError {
    #[error("cannot create data directory {0}: {1}")]
    DataDir(PathBuf, std::io::Error),
    #[error(transparent)]
    Net(#[from] fluence_net::NetError),
    #[error("cannot open the store: {0}")]
    Store(String),
    #[error("cannot open request record file: {0}")]
    Record(std::io::Error),
}

pub struct RunningNode {
    server: Server,
    service: Arc<NodeService>,
}

impl RunningNode {
    pub async fn start(config: NodeConfig) -> Result<RunningNode, NodeStartError> {
        std::fs::create_dir_all(&config.data_dir)
            .map_err(|e| NodeStartError::DataDir(config.data_dir.clone(), e))?;
        let keypair = identity::load_or_create(&identity_path(&config.data_dir))?;
        let store = Store::open(&config.data_dir.join("store"))
            .map_err(|e| NodeStartError::Store(e.to_string()))?;
        let mut service = NodeService::new(store);
        if let Some(path) = &config.record_requests {
            service = service
                .record_requests_to(path)
                .map_err(NodeStartError::Record)?;
        }
        let service = Arc::new(service);
        let server = Server::start(keypair, config.listen.clone(), service.clone()).await?;
        Ok(RunningNode { server, service })
    }

    pub fn peer_id(&self) -> PeerId {
        self.server.peer_id
    }

    /// The address gateways dial, including `/p2p/<peer id>`.
    pub fn dial_addr(&self) -> Multiaddr {
        self.server.dial_addr()
    }

    pub fn service(&self) -> &Arc<NodeService> {
        &self.service
    }

    pub async fn shutdown(self) {
        self.server.shutdown().await;
    }
}

pub fn identity_path(data_dir: &Path) -> PathBuf {
    data_dir.join("node.key")
}
