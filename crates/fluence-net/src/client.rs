//! The gateway side: one connection to one node, shared by every task that
//! needs to ask it something.
//!
//! Requests travel over one long-lived `/fluence/rpc/2` stream (a
//! [`Session`]), many in flight at once. If the stream or the connection
//! fails, the calls waiting on it get an error and the next call opens a new
//! stream, redialing the node if needed (the node's peer id is checked again
//! by the noise handshake).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use fluence_proto::limits::MESSAGE_LEN_MAX;
use fluence_proto::{Decode, Encode, Request, Response};
use futures::StreamExt;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::SwarmEvent;
use libp2p::{identity::Keypair, Multiaddr, PeerId, Swarm};
use tokio::sync::{mpsc, oneshot, Semaphore};

use crate::session::Session;
use crate::streams::{RpcStreams, StreamReply};
use crate::{swarm, NetError};

/// A single request may carry a batch of tens of thousands of documents, so
/// the timeout is generous; liveness is the caller's concern.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(300);

/// Calls in flight on one client at once; further callers wait for a slot.
/// Bounds the memory of waiting calls; the node bounds its own work per
/// stream separately.
pub const CALLS_IN_FLIGHT_MAX: usize = 1024;

/// Stream requests queued for the swarm task.
const QUEUED_STREAM_REQUESTS_MAX: usize = 16;

/// A cheaply clonable handle to a connection with one node.
#[derive(Clone)]
pub struct NodeClient {
    inner: Arc<Inner>,
}

struct Inner {
    peer_id: PeerId,
    addr: Multiaddr,
    /// How long opening a stream (with a redial) may take.
    dial_timeout: Duration,
    streams: mpsc::Sender<StreamReply>,
    session: Mutex<Arc<Session>>,
    /// Held while a failed session is replaced, so concurrent callers wait
    /// for one new stream instead of each opening their own.
    reopening: tokio::sync::Mutex<()>,
    in_flight: Semaphore,
}

impl std::fmt::Debug for NodeClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeClient")
            .field("peer_id", &self.inner.peer_id)
            .field("addr", &self.inner.addr)
            .finish()
    }
}

impl NodeClient {
    /// Dials `addr` (with or without a `/p2p/<peer id>` suffix; without one,
    /// the id is learnt from the noise handshake), opens the rpc stream and
    /// returns once both are up, within `timeout`.
    pub async fn connect(addr: Multiaddr, timeout: Duration) -> Result<NodeClient, NetError> {
        let keypair = Keypair::generate_ed25519();
        let mut swarm = swarm::build(keypair, RpcStreams::outbound())?;
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
        // Redials go to the same address and must reach the same peer.
        let plain: Multiaddr = addr
            .iter()
            .filter(|p| !matches!(p, Protocol::P2p(_)))
            .collect();
        let (streams, stream_requests) = mpsc::channel(QUEUED_STREAM_REQUESTS_MAX);
        tokio::spawn(drive(swarm, connected, plain, stream_requests));
        let first = open_session(&streams, timeout).await?;
        Ok(NodeClient {
            inner: Arc::new(Inner {
                peer_id: connected,
                addr,
                dial_timeout: timeout,
                streams,
                session: Mutex::new(Arc::new(first)),
                reopening: tokio::sync::Mutex::new(()),
                in_flight: Semaphore::new(CALLS_IN_FLIGHT_MAX),
            }),
        })
    }

    pub fn peer_id(&self) -> PeerId {
        self.inner.peer_id
    }

    pub fn addr(&self) -> &Multiaddr {
        &self.inner.addr
    }

    /// Sends raw request bytes and returns the raw response bytes.
    ///
    /// Fails with [`NetError::Oversized`] for a request above
    /// `MESSAGE_LEN_MAX` (nothing is sent), and with another error if the
    /// node cannot be reached, the connection drops before the answer, the
    /// node could not answer, or no answer came within [`REQUEST_TIMEOUT`].
    pub async fn call_bytes(&self, request: Vec<u8>) -> Result<Vec<u8>, NetError> {
        if request.len() > MESSAGE_LEN_MAX {
            return Err(NetError::Oversized(request.len()));
        }
        let _slot = self
            .inner
            .in_flight
            .acquire()
            .await
            .map_err(|_| NetError::Closed)?;
        let session = self.live_session().await?;
        session.call(request, REQUEST_TIMEOUT).await
    }

    /// Sends a request and decodes the node's response.
    pub async fn call(&self, request: &Request) -> Result<Response, NetError> {
        let bytes = self.call_bytes(request.to_bytes()).await?;
        Response::from_bytes(&bytes).map_err(|e| NetError::BadResponse(e.to_string()))
    }

    /// The current session, or a new one if it has failed.
    async fn live_session(&self) -> Result<Arc<Session>, NetError> {
        let current = self.current_session();
        if !current.is_closed() {
            return Ok(current);
        }
        let _reopening = self.inner.reopening.lock().await;
        let current = self.current_session();
        if !current.is_closed() {
            // Another caller replaced it while this one waited.
            return Ok(current);
        }
        let fresh = Arc::new(open_session(&self.inner.streams, self.inner.dial_timeout).await?);
        *self.inner.session.lock().unwrap_or_else(|e| e.into_inner()) = Arc::clone(&fresh);
        Ok(fresh)
    }

    fn current_session(&self) -> Arc<Session> {
        // Poisoning cannot leave an `Arc` half-written; ignore it.
        Arc::clone(&self.inner.session.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// Attempts at opening a stream before giving up. A request for a stream
/// on a connection that has just died (before the swarm task has seen it
/// close) is dropped unanswered; the next attempt redials.
const OPEN_STREAM_ATTEMPTS_MAX: u32 = 3;
/// Pause before another attempt, for the swarm task to see the close.
const OPEN_STREAM_RETRY_DELAY: Duration = Duration::from_millis(10);

/// Asks the swarm task for a stream (it redials if the connection is gone)
/// and starts a session on it, all within `timeout`.
async fn open_session(
    streams: &mpsc::Sender<StreamReply>,
    timeout: Duration,
) -> Result<Session, NetError> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut attempt = 1;
    loop {
        let (reply, stream) = oneshot::channel();
        streams.send(reply).await.map_err(|_| NetError::Closed)?;
        match tokio::time::timeout_at(deadline, stream).await {
            Ok(Ok(opened)) => return opened.map(Session::start),
            Ok(Err(_dropped)) if attempt < OPEN_STREAM_ATTEMPTS_MAX => {
                attempt += 1;
                tokio::time::sleep(OPEN_STREAM_RETRY_DELAY).await;
            }
            Ok(Err(_dropped)) => return Err(NetError::Closed),
            Err(_) => {
                return Err(NetError::Request(format!(
                    "no rpc stream to the node within {timeout:?}"
                )))
            }
        }
    }
}

/// Runs the client's swarm: it only opens streams (and the connections they
/// need); requests bypass it.
async fn drive(
    mut swarm: Swarm<RpcStreams>,
    peer: PeerId,
    addr: Multiaddr,
    mut stream_requests: mpsc::Receiver<StreamReply>,
) {
    loop {
        tokio::select! {
            request = stream_requests.recv() => match request {
                Some(reply) => swarm.behaviour_mut().open_stream(peer, vec![addr.clone()], reply),
                // Every handle was dropped: nothing more can be asked.
                None => break,
            },
            event = swarm.select_next_some() => {
                if let SwarmEvent::ConnectionClosed { cause: Some(error), .. } = event {
                    tracing::debug!(%peer, %error, "connection to the node closed");
                }
            }
        }
    }
}
