//! The node side: accept `/fluence/rpc/2` streams and answer every request
//! on them with whatever the node's [`RequestHandler`] returns; for a
//! cluster member, carry the `/fluence/cluster/1` streams of the cluster
//! transport ([`crate::cluster`]) on the same swarm; and, for a node of
//! the open network, run Kademlia and identify ([`crate::discovery`]).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use libp2p::kad::{self, store::MemoryStore};
use libp2p::swarm::{behaviour::toggle::Toggle, NetworkBehaviour, SwarmEvent};
use libp2p::{identify, identity::Keypair, Multiaddr, PeerId, Swarm};
use tokio::sync::{mpsc, oneshot};
use tokio::task::{JoinHandle, JoinSet};

use crate::cluster::{OpenRequest, SwarmSide, CLUSTER_PROTOCOL};
use crate::discovery::driver::{Driver, Wake};
use crate::discovery::{self, DiscoverySide};
use crate::serve_stream::serve_stream;
use crate::streams::{InboundStream, RpcStreams};
use crate::{swarm, NetError};

/// A handler's answer to one request.
pub enum Answer {
    /// The answer bytes, now.
    Ready(Vec<u8>),
    /// The answer bytes once the future resolves (a replicated write is
    /// answered when its block is finalized). The future runs on a task of
    /// its own; the request counts as in progress until it resolves.
    Pending(Pin<Box<dyn Future<Output = Vec<u8>> + Send>>),
}

impl From<Vec<u8>> for Answer {
    fn from(answer: Vec<u8>) -> Self {
        Answer::Ready(answer)
    }
}

/// Answers requests.
pub trait RequestHandler: Send + Sync + 'static {
    /// Answers one request. Runs on a blocking thread: handlers do disk
    /// I/O; one that must wait for something else returns
    /// [`Answer::Pending`] instead of blocking the thread.
    fn handle(&self, peer: PeerId, request: Vec<u8>) -> Answer;
}

/// The node's swarm: the rpc streams gateways open; for a cluster
/// member, the cluster streams members open to each other; for a node of
/// the open network, Kademlia and identify.
#[derive(NetworkBehaviour)]
pub struct NodeBehaviour {
    rpc: RpcStreams,
    cluster: RpcStreams,
    pub(crate) kad: Toggle<kad::Behaviour<MemoryStore>>,
    pub(crate) identify: Toggle<identify::Behaviour>,
}

/// What a node's swarm carries besides the rpc streams.
#[derive(Default)]
pub struct NodeParts {
    /// A cluster transport's streams (from [`crate::cluster::ClusterNet::start`]).
    pub cluster: Option<SwarmSide>,
    /// Discovery (from [`crate::discovery::Discovery::new`]).
    pub discovery: Option<DiscoverySide>,
}

/// Negotiated streams waiting for the server task to start serving them.
const ACCEPTED_STREAMS_QUEUED_MAX: usize = 64;

/// A running server; dropping it (or calling [`Server::shutdown`]) stops it.
pub struct Server {
    pub peer_id: PeerId,
    pub listen_addrs: Vec<Multiaddr>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Server {
    /// Listens on `listen` (port 0 picks a free port) and serves until shut
    /// down. Returns once the listener is bound, with its real addresses.
    pub async fn start(
        keypair: Keypair,
        listen: Multiaddr,
        handler: Arc<dyn RequestHandler>,
    ) -> Result<Server, NetError> {
        Self::start_with_cluster(keypair, listen, handler, None).await
    }

    /// [`Server::start`], also carrying a cluster transport's streams
    /// (from [`crate::cluster::ClusterNet::start`]) when `cluster` is set.
    pub async fn start_with_cluster(
        keypair: Keypair,
        listen: Multiaddr,
        handler: Arc<dyn RequestHandler>,
        cluster: Option<SwarmSide>,
    ) -> Result<Server, NetError> {
        let parts = NodeParts {
            cluster,
            discovery: None,
        };
        Self::start_node(keypair, listen, handler, parts).await
    }

    /// [`Server::start`], also carrying what `parts` holds: a cluster
    /// transport and discovery (which joins through its bootstrap peers
    /// once the listener is bound).
    pub async fn start_node(
        keypair: Keypair,
        listen: Multiaddr,
        handler: Arc<dyn RequestHandler>,
        parts: NodeParts,
    ) -> Result<Server, NetError> {
        let peer_id = keypair.public().to_peer_id();
        let (accepted, streams) = mpsc::channel(ACCEPTED_STREAMS_QUEUED_MAX);
        let (cluster_inbound, open_requests) = match parts.cluster {
            Some(side) => (Some(side.inbound), Some(side.open_requests)),
            None => (None, None),
        };
        let (kad, identify) = match &parts.discovery {
            Some(side) => (
                Some(discovery::kademlia(peer_id, &side.config)),
                Some(discovery::identify(&keypair)),
            ),
            None => (None, None),
        };
        let behaviour = NodeBehaviour {
            rpc: RpcStreams::inbound(accepted),
            cluster: RpcStreams::for_protocol(CLUSTER_PROTOCOL, cluster_inbound),
            kad: kad.into(),
            identify: identify.into(),
        };
        let mut swarm = swarm::build(keypair, behaviour)?;
        swarm
            .listen_on(listen.clone())
            .map_err(|e| NetError::Listen(listen.to_string(), e.to_string()))?;
        let mut listen_addrs = Vec::new();
        while listen_addrs.is_empty() {
            match swarm.select_next_some().await {
                SwarmEvent::NewListenAddr { address, .. } => listen_addrs.push(address),
                SwarmEvent::ListenerError { error, .. }
                | SwarmEvent::ListenerClosed {
                    reason: Err(error), ..
                } => return Err(NetError::Listen(listen.to_string(), error.to_string())),
                _ => {}
            }
        }
        let driver = parts.discovery.map(|side| Driver::start(side, &mut swarm));
        let (stop_tx, stop_rx) = oneshot::channel();
        let task = tokio::spawn(serve(
            swarm,
            streams,
            open_requests,
            driver,
            handler,
            stop_rx,
        ));
        Ok(Server {
            peer_id,
            listen_addrs,
            stop: Some(stop_tx),
            task: Some(task),
        })
    }

    /// The first listen address with `/p2p/<peer id>` appended: what a
    /// gateway dials.
    pub fn dial_addr(&self) -> Multiaddr {
        let mut addr = self.listen_addrs[0].clone();
        addr.push(libp2p::multiaddr::Protocol::P2p(self.peer_id));
        addr
    }

    /// Stops listening, drops every connection and waits until the server
    /// task has ended. Requests in progress on blocking threads finish, but
    /// their answers are not sent.
    pub async fn shutdown(mut self) {
        self.stop_and_join().await;
    }

    async fn stop_and_join(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn serve(
    mut swarm: Swarm<NodeBehaviour>,
    mut streams: mpsc::Receiver<InboundStream>,
    mut open_requests: Option<mpsc::Receiver<OpenRequest>>,
    mut driver: Option<Driver>,
    handler: Arc<dyn RequestHandler>,
    mut stop: oneshot::Receiver<()>,
) {
    // Owning the stream tasks here means stopping the server ends them too.
    let mut serving = JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut stop => break,
            Some(accepted) = streams.recv() => {
                let handler = Arc::clone(&handler);
                serving.spawn(async move {
                    let InboundStream { peer, stream, token } = accepted;
                    serve_stream(peer, stream, handler).await;
                    drop(token);
                });
            }
            // Reap finished stream tasks so the set does not grow.
            Some(_) = serving.join_next(), if !serving.is_empty() => {}
            Some(request) = next_open_request(&mut open_requests) => {
                let OpenRequest { peer, addrs, reply } = request;
                swarm.behaviour_mut().cluster.open_stream(peer, addrs, reply);
            }
            wake = next_wake(&mut driver) => {
                if let Some(driver) = driver.as_mut() {
                    driver.on_wake(&mut swarm, wake);
                }
            }
            event = swarm.select_next_some() => {
                match &event {
                    SwarmEvent::IncomingConnectionError { error, .. } => {
                        tracing::debug!(%error, "incoming connection failed");
                    }
                    SwarmEvent::ConnectionClosed { peer_id, cause: Some(error), .. } => {
                        tracing::debug!(%peer_id, %error, "connection closed");
                    }
                    _ => {}
                }
                if let Some(driver) = driver.as_mut() {
                    driver.on_event(&mut swarm, event);
                }
            }
        }
    }
    serving.shutdown().await;
    close_connections(&mut swarm).await;
}

/// The next stream a cluster link asks for; pending forever without a
/// cluster (or once its links are gone).
async fn next_open_request(
    requests: &mut Option<mpsc::Receiver<OpenRequest>>,
) -> Option<OpenRequest> {
    match requests {
        Some(receiver) => match receiver.recv().await {
            Some(request) => Some(request),
            None => {
                *requests = None;
                std::future::pending().await
            }
        },
        None => std::future::pending().await,
    }
}

/// What discovery's task half waits for; pending forever without discovery.
async fn next_wake(driver: &mut Option<Driver>) -> Wake {
    match driver {
        Some(driver) => driver.wake().await,
        None => std::future::pending().await,
    }
}

/// How long a stopping server waits for its connections to close.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// Closes every connection and waits (bounded) until they are gone, so
/// that when [`Server::shutdown`] returns no peer can still reach this
/// server. Dropping the swarm alone closes them too, but later, from their
/// own tasks: a client could meanwhile open a stream on a connection whose
/// server is gone.
async fn close_connections(swarm: &mut Swarm<NodeBehaviour>) {
    let peers: Vec<PeerId> = swarm.connected_peers().copied().collect();
    for peer in peers {
        let _ = swarm.disconnect_peer_id(peer);
    }
    let closed = tokio::time::timeout(CLOSE_TIMEOUT, async {
        while swarm.connected_peers().next().is_some() {
            swarm.select_next_some().await;
        }
    })
    .await;
    if closed.is_err() {
        tracing::debug!("connections still open after {CLOSE_TIMEOUT:?}; dropping them");
    }
}
