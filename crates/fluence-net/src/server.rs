//! The node side: accept `/fluence/rpc/1` requests and answer each with
//! whatever the node's [`RequestHandler`] returns.

use std::sync::Arc;

use futures::StreamExt;
use libp2p::request_response::{self, ProtocolSupport, ResponseChannel};
use libp2p::swarm::SwarmEvent;
use libp2p::{identity::Keypair, Multiaddr, PeerId};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::{swarm, NetError};

/// Answers one request. Runs on a blocking thread: handlers do disk I/O.
pub trait RequestHandler: Send + Sync + 'static {
    fn handle(&self, peer: PeerId, request: Vec<u8>) -> Vec<u8>;
}

/// Responses computed but not yet handed back to the swarm; bounded so a
/// stalled swarm task applies back-pressure to handlers.
const PENDING_RESPONSES_MAX: usize = 1024;

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
        let peer_id = keypair.public().to_peer_id();
        let mut swarm = swarm::build(keypair, ProtocolSupport::Inbound)?;
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
        let (stop_tx, stop_rx) = oneshot::channel();
        let task = tokio::spawn(serve(swarm, handler, stop_rx));
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
    mut swarm: libp2p::Swarm<swarm::RpcBehaviour>,
    handler: Arc<dyn RequestHandler>,
    mut stop: oneshot::Receiver<()>,
) {
    let (done_tx, mut done_rx) =
        mpsc::channel::<(ResponseChannel<Vec<u8>>, Vec<u8>)>(PENDING_RESPONSES_MAX);
    loop {
        tokio::select! {
            _ = &mut stop => break,
            Some((channel, response)) = done_rx.recv() => {
                if swarm.behaviour_mut().send_response(channel, response).is_err() {
                    tracing::debug!("peer went away before its response was sent");
                }
            }
            event = swarm.select_next_some() => match event {
                SwarmEvent::Behaviour(request_response::Event::Message {
                    peer,
                    message: request_response::Message::Request { request, channel, .. },
                    ..
                }) => {
                    let handler = Arc::clone(&handler);
                    let done = done_tx.clone();
                    tokio::spawn(async move {
                        let answered = tokio::task::spawn_blocking(move || handler.handle(peer, request)).await;
                        match answered {
                            Ok(response) => {
                                let _ = done.send((channel, response)).await;
                            }
                            // The handler panicked: an invariant broke. Log it;
                            // the peer sees its request fail, the node goes on.
                            Err(error) => tracing::error!(%peer, %error, "request handler failed"),
                        }
                    });
                }
                SwarmEvent::Behaviour(request_response::Event::InboundFailure { peer, error, .. }) => {
                    tracing::debug!(%peer, %error, "inbound request failed");
                }
                SwarmEvent::IncomingConnectionError { error, .. } => {
                    tracing::debug!(%error, "incoming connection failed");
                }
                _ => {}
            }
        }
    }
}
