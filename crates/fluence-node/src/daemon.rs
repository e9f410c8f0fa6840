//! Starting and stopping a node: identity, store, listener, discovery
//! (Kademlia, joining through the configured bootstrap peers), and for a
//! cluster member its cluster transport and replicas.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use fluence_crypto::sign::SigningKey;
use fluence_net::cluster::ClusterNet;
use fluence_net::discovery::{Discovery, DiscoveryConfig, DiscoveryError};
use fluence_net::{identity, Multiaddr, NodeParts, PeerId, Server};
use fluence_proto::PublicKey;
use fluence_store::Store;

use crate::cluster::{ClusterConfig, Replicas};
use crate::memberships::Memberships;
use crate::service::NodeService;

#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub data_dir: PathBuf,
    pub listen: Multiaddr,
    /// Where to copy every received request (audits and the leak test).
    pub record_requests: Option<PathBuf>,
    /// Kademlia: the bootstrap peers to join through (none: the node
    /// waits to be found) and the routing table's limits.
    pub discovery: DiscoveryConfig,
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
    #[error(transparent)]
    Discovery(#[from] DiscoveryError),
}

pub struct RunningNode {
    server: Server,
    service: Arc<NodeService>,
    member_key: PublicKey,
    discovery: Discovery,
}

impl RunningNode {
    /// A single node: it applies every write itself, as soon as it is
    /// checked.
    pub async fn start(config: NodeConfig) -> Result<RunningNode, NodeStartError> {
        let (keypair, store) = open(&config)?;
        let member_key = identity::member_key(&keypair)?;
        let signer = SigningKey::from_seed(&*identity::secret_seed(&keypair)?);
        let (discovery, discovery_side) = Discovery::new(config.discovery.clone())?;
        let service = NodeService::with_identity(store, signer).with_discovery(discovery.clone());
        let service = Arc::new(with_recorder(service, &config)?);
        let parts = NodeParts {
            cluster: None,
            discovery: Some(discovery_side),
        };
        let server =
            Server::start_node(keypair, config.listen.clone(), service.clone(), parts).await?;
        Ok(RunningNode {
            server,
            service,
            member_key,
            discovery,
        })
    }

    /// A node of the open network that serves clusters as `cluster`
    /// says: each dataset it accepts is replicated by that dataset's own
    /// members (its genesis membership, kept in `<data_dir>/clusters`);
    /// writes are ordered by a consensus replica per dataset, running in
    /// `context` (a commonware tokio runtime context
    /// whose storage directory holds the replicas' consensus logs, under
    /// partitions named after this node and the dataset) and keeping its
    /// chain files in `<data_dir>/chain`. Must run on that runtime.
    pub async fn start_member(
        context: commonware_runtime::tokio::Context,
        config: NodeConfig,
        cluster: ClusterConfig,
    ) -> Result<RunningNode, NodeStartError> {
        let (keypair, store) = open(&config)?;
        let member_key = identity::member_key(&keypair)?;
        let seed = identity::secret_seed(&keypair)?;
        let signer = SigningKey::from_seed(&seed);
        let (discovery, discovery_side) = Discovery::new(config.discovery.clone())?;
        let (net, swarm_side) = ClusterNet::start(&keypair, cluster.known.clone())?;
        let memberships = Memberships::open(
            &config.data_dir.join("clusters"),
            member_key,
            cluster.replicas_max,
        )
        .map_err(|e| NodeStartError::DataDir(config.data_dir.join("clusters"), e))?;
        let store = Arc::new(store);
        let replicas = Arc::new(Replicas::new(
            context,
            net,
            seed,
            Arc::clone(&store),
            config.data_dir.join("chain"),
            memberships,
            Some(discovery.clone()),
            &cluster,
        ));
        replicas.follow_members();
        let service =
            NodeService::replicated(store, replicas, signer).with_discovery(discovery.clone());
        let service = Arc::new(with_recorder(service, &config)?);
        let parts = NodeParts {
            cluster: Some(swarm_side),
            discovery: Some(discovery_side),
        };
        let server =
            Server::start_node(keypair, config.listen.clone(), service.clone(), parts).await?;
        Ok(RunningNode {
            server,
            service,
            member_key,
            discovery,
        })
    }

    /// The node's public key: its identity, and its key as a cluster member.
    pub fn member_key(&self) -> PublicKey {
        self.member_key
    }

    /// A cluster member's replicas (and through them its transport).
    pub fn replicas(&self) -> Option<&Arc<Replicas>> {
        self.service.replicas()
    }

    /// The addresses the node listens on (without `/p2p/...`).
    pub fn listen_addrs(&self) -> &[Multiaddr] {
        &self.server.listen_addrs
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

    /// The node's discovery: lookups in the open network, its routing table.
    pub fn discovery(&self) -> &Discovery {
        &self.discovery
    }

    /// Stops listening (every connection closes) and, in a cluster, stops
    /// the replicas and the cluster transport.
    pub async fn shutdown(self) {
        self.server.shutdown().await;
        if let Some(replicas) = self.service.replicas() {
            replicas.stop().await;
        }
    }
}

/// The data directory, the node's identity and its store.
fn open(
    config: &NodeConfig,
) -> Result<(fluence_net::Keypair, crate::service::NodeStore), NodeStartError> {
    std::fs::create_dir_all(&config.data_dir)
        .map_err(|e| NodeStartError::DataDir(config.data_dir.clone(), e))?;
    let keypair = identity::load_or_create(&identity_path(&config.data_dir))?;
    let store = Store::open(&config.data_dir.join("store"))
        .map_err(|e| NodeStartError::Store(e.to_string()))?;
    Ok((keypair, store))
}

fn with_recorder(service: NodeService, config: &NodeConfig) -> Result<NodeService, NodeStartError> {
    match &config.record_requests {
        Some(path) => service
            .record_requests_to(path)
            .map_err(NodeStartError::Record),
        None => Ok(service),
    }
}

pub fn identity_path(data_dir: &Path) -> PathBuf {
    data_dir.join("node.key")
}
