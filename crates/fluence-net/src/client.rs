//! The gateway side: one connection to one node, shared by every task that
//! needs to ask it something.

use std::collections::HashMap;
use std::time::Duration;

use fluence_proto::{Decode, Encode, Request, Response};
use futures::StreamExt;
use libp2p::multiaddr::Protocol;
use libp2p::request_response::{self, OutboundRequestId, ProtocolSupport};
use libp2p::swarm::SwarmEvent;
use libp2p::{identity::Keypair, Multiaddr, PeerId};
use tokio::sync::{mpsc, oneshot};

use crate::{swarm, NetError};

/// Requests queued for the swarm task; callers wait when it is full.
const QUEUED_REQUESTS_MAX: usize = 1024;

type Reply = oneshot::Sender<Result<Vec<u8>, NetError>>;

/// A cheaply clonable handle to a connection with one node.
#[derive(Clone)]
pub struct NodeClient {
    peer_id: PeerId,
    addr: Multiaddr,
    commands: mpsc::Sender<(Vec<u8>, Reply)>,
}

impl std::fmt::Debug for NodeClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeClient")
            .field("peer_id", &self.peer_id)
            .field("addr", &self.addr)
            .finish()
    }
}

impl NodeClient {
    /// Dials `addr` (with or without a `/p2p/<peer id>` suffix; without one,
    /// the id is learnt from the noise handshake) and waits until connected.
    pub async fn connect(addr: Multiaddr, timeout: Duration) -> Result<NodeClient, NetError> {
        let keypair = Keypair::generate_ed25519();
        let mut swarm = swarm::build(keypair, ProtocolSupport::Outbound)?;
        let expected = match addr.iter().last() {
            Some(Protocol::P2p(peer)) => Some(peer),
            _ => None,
        };
        swarm
            .dial(addr.clone())
            .map_err(|e| NetError::Dial(addr.to_string(), e.to_string()))?;
        let connected = tokio::time::timeout(timeout, async {
            loop {
                match swarm.select_next_some().await {
                    SwarmEvent::ConnectionEstablished { peer_id, .. } => return Ok(peer_id),
                    SwarmEvent::OutgoingConnectionError { error, .. } => {
                        return Err(NetError::Dial(addr.to_string(), error.to_string()))
                    }
                    _ => {}
                }
            }
        })
        .await
        .map_err(|_| {
            NetError::Dial(
                addr.to_string(),
                format!("no connection within {timeout:?}"),
            )
        })??;
        if let Some(expected) = expected {
            if expected != connected {
                return Err(NetError::Dial(
                    addr.to_string(),
                    format!("peer is {connected}, not {expected}"),
                ));
            }
        }
        // Remember the address so the behaviour can redial after a node
        // restart without the caller noticing.
        let plain: Multiaddr = addr
            .iter()
            .filter(|p| !matches!(p, Protocol::P2p(_)))
            .collect();
        swarm.add_peer_address(connected, plain);
        let (tx, rx) = mpsc::channel(QUEUED_REQUESTS_MAX);
        tokio::spawn(drive(swarm, connected, rx));
        Ok(NodeClient {
            peer_id: connected,
            addr,
            commands: tx,
        })
    }

    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    pub fn addr(&self) -> &Multiaddr {
        &self.addr
    }

    /// Sends raw request bytes and returns the raw response bytes.
    pub async fn call_bytes(&self, request: Vec<u8>) -> Result<Vec<u8>, NetError> {
        let (reply_tx, reply_rx) = oneshot::channel();
        self.commands
            .send((request, reply_tx))
            .await
            .map_err(|_| NetError::Closed)?;
        reply_rx.await.map_err(|_| NetError::Closed)?
    }

    /// Sends a request and decodes the node's response.
    pub async fn call(&self, request: &Request) -> Result<Response, NetError> {
        let bytes = self.call_bytes(request.to_bytes()).await?;
        Response::from_bytes(&bytes).map_err(|e| NetError::BadResponse(e.to_string()))
    }
}

async fn drive(
    mut swarm: libp2p::Swarm<swarm::RpcBehaviour>,
    peer: PeerId,
    mut commands: mpsc::Receiver<(Vec<u8>, Reply)>,
) {
    let mut pending: HashMap<OutboundRequestId, Reply> = HashMap::new();
    loop {
        tokio::select! {
            command = commands.recv() => match command {
                Some((request, reply)) => {
                    let id = swarm.behaviour_mut().send_request(&peer, request);
                    pending.insert(id, reply);
                }
                // Every handle was dropped: nothing more can be asked.
                None => break,
            },
            event = swarm.select_next_some() => match event {
                SwarmEvent::Behaviour(request_response::Event::Message {
                    message: request_response::Message::Response { request_id, response },
                    ..
                }) => {
                    if let Some(reply) = pending.remove(&request_id) {
                        let _ = reply.send(Ok(response));
                    }
                }
                SwarmEvent::Behaviour(request_response::Event::OutboundFailure { request_id, error, .. }) => {
                    if let Some(reply) = pending.remove(&request_id) {
                        let _ = reply.send(Err(NetError::Request(error.to_string())));
                    }
                }
                _ => {}
            }
        }
    }
}
