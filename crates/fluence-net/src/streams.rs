//! A libp2p behaviour that hands out long-lived streams of one protocol
//! (`/fluence/rpc/2` between gateways and nodes, `/fluence/cluster/1`
//! between cluster members): a process asks for an outbound stream to a
//! peer (dialing it if need be) and receives every inbound stream a peer
//! opens.
//!
//! After negotiation a stream is read and written by the task that holds it,
//! directly against the connection's multiplexer: the swarm's event loop
//! is no longer on the path of each request, only of opening streams.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::future::{ready, Ready};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use libp2p::core::transport::PortUse;
use libp2p::core::upgrade::{InboundUpgrade, OutboundUpgrade, UpgradeInfo};
use libp2p::core::Endpoint;
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::handler::{
    ConnectionEvent, DialUpgradeError, FullyNegotiatedInbound, FullyNegotiatedOutbound,
};
use libp2p::swarm::{
    ConnectionClosed, ConnectionDenied, ConnectionHandler, ConnectionHandlerEvent, ConnectionId,
    DialError, DialFailure, FromSwarm, NetworkBehaviour, NotifyHandler, Stream, StreamUpgradeError,
    SubstreamProtocol, THandler, THandlerOutEvent, ToSwarm,
};
use libp2p::{Multiaddr, PeerId, StreamProtocol};
use tokio::sync::{mpsc, oneshot};

use crate::frame::RPC_PROTOCOL;
use crate::NetError;

/// Inbound streams of one protocol one connection may hold open at once. A gateway
/// opens one; the bound stops a peer from multiplying the requests a node
/// works on by opening streams (each stream bounds its own requests).
pub const INBOUND_STREAMS_PER_CONNECTION_MAX: usize = 8;

/// Where an opened outbound stream (or why it failed) is delivered.
pub type StreamReply = oneshot::Sender<Result<Stream, NetError>>;

/// An inbound stream, with the token that counts it against its
/// connection's [`INBOUND_STREAMS_PER_CONNECTION_MAX`] until dropped.
pub struct InboundStream {
    pub peer: PeerId,
    pub stream: Stream,
    pub token: Arc<()>,
}

/// The behaviour, for one protocol. A gateway builds it with
/// [`RpcStreams::outbound`]; a node with [`RpcStreams::inbound`] for the
/// rpc protocol and [`RpcStreams::for_protocol`] for the cluster protocol,
/// whose streams it both accepts and opens.
pub struct RpcStreams {
    protocol: StreamProtocol,
    /// Where inbound streams go; `None` refuses inbound streams.
    inbound: Option<mpsc::Sender<InboundStream>>,
    connections: HashMap<PeerId, Vec<ConnectionId>>,
    /// Stream requests for peers being dialed.
    awaiting_connection: HashMap<PeerId, Vec<StreamReply>>,
    events: VecDeque<ToSwarm<Infallible, OpenStream>>,
    waker: Option<Waker>,
}

impl RpcStreams {
    /// For a process that opens rpc streams and accepts none.
    pub fn outbound() -> Self {
        Self::for_protocol(RPC_PROTOCOL, None)
    }

    /// For a process that accepts rpc streams and delivers them to `inbound`.
    pub fn inbound(inbound: mpsc::Sender<InboundStream>) -> Self {
        Self::for_protocol(RPC_PROTOCOL, Some(inbound))
    }

    /// Streams of `protocol`: opened on request, and accepted into
    /// `inbound` unless it is `None` (then the protocol is not offered).
    pub fn for_protocol(
        protocol: StreamProtocol,
        inbound: Option<mpsc::Sender<InboundStream>>,
    ) -> Self {
        RpcStreams {
            protocol,
            inbound,
            connections: HashMap::new(),
            awaiting_connection: HashMap::new(),
            events: VecDeque::new(),
            waker: None,
        }
    }

    /// Opens a stream to `peer`, over an existing connection or after
    /// dialing `addresses` and whatever addresses the swarm's other
    /// behaviours (Kademlia's routing table) know for `peer`; the result
    /// goes to `reply`. The dial only accepts a connection whose noise
    /// handshake proves it is `peer`.
    pub fn open_stream(&mut self, peer: PeerId, addresses: Vec<Multiaddr>, reply: StreamReply) {
        if let Some(&connection) = self.connections.get(&peer).and_then(|c| c.last()) {
            self.push(ToSwarm::NotifyHandler {
                peer_id: peer,
                handler: NotifyHandler::One(connection),
                event: OpenStream(reply),
            });
            return;
        }
        self.awaiting_connection
            .entry(peer)
            .or_default()
            .push(reply);
        self.push(ToSwarm::Dial {
            opts: DialOpts::peer_id(peer)
                .addresses(addresses)
                .extend_addresses_through_behaviour()
                .condition(PeerCondition::DisconnectedAndNotDialing)
                .build(),
        });
    }

    fn push(&mut self, event: ToSwarm<Infallible, OpenStream>) {
        self.events.push_back(event);
        if let Some(waker) = self.waker.take() {
            waker.wake();
        }
    }

    fn handler(&self, peer: PeerId) -> StreamHandler {
        StreamHandler {
            protocol: self.protocol.clone(),
            peer,
            inbound: self.inbound.clone(),
            inbound_streams: Arc::new(()),
            requested: VecDeque::new(),
        }
    }
}

impl NetworkBehaviour for RpcStreams {
    type ConnectionHandler = StreamHandler;
    type ToSwarm = Infallible;

    fn handle_established_inbound_connection(
        &mut self,
        _: ConnectionId,
        peer: PeerId,
        _: &Multiaddr,
        _: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(self.handler(peer))
    }

    fn handle_established_outbound_connection(
        &mut self,
        _: ConnectionId,
        peer: PeerId,
        _: &Multiaddr,
        _: Endpoint,
        _: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(self.handler(peer))
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        match event {
            FromSwarm::ConnectionEstablished(established) => {
                let peer = established.peer_id;
                let connection = established.connection_id;
                self.connections.entry(peer).or_default().push(connection);
                for reply in self.awaiting_connection.remove(&peer).unwrap_or_default() {
                    self.push(ToSwarm::NotifyHandler {
                        peer_id: peer,
                        handler: NotifyHandler::One(connection),
                        event: OpenStream(reply),
                    });
                }
            }
            FromSwarm::ConnectionClosed(ConnectionClosed {
                peer_id,
                connection_id,
                ..
            }) => {
                if let Some(connections) = self.connections.get_mut(&peer_id) {
                    connections.retain(|c| *c != connection_id);
                    if connections.is_empty() {
                        self.connections.remove(&peer_id);
                    }
                }
            }
            FromSwarm::DialFailure(DialFailure {
                peer_id: Some(peer),
                error,
                ..
            }) => {
                // The condition failing means a dial is already under way;
                // its outcome answers the waiting requests.
                if matches!(error, DialError::DialPeerConditionFalse(_)) {
                    return;
                }
                let reason = error.to_string();
                for reply in self.awaiting_connection.remove(&peer).unwrap_or_default() {
                    let _ = reply.send(Err(NetError::Dial(peer.to_string(), reason.clone())));
                }
            }
            _ => {}
        }
    }

    fn on_connection_handler_event(
        &mut self,
        _: PeerId,
        _: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        match event {}
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<ToSwarm<Infallible, OpenStream>> {
        match self.events.pop_front() {
            Some(event) => Poll::Ready(event),
            None => {
                self.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

/// Asks a connection's handler to open a stream.
#[derive(Debug)]
pub struct OpenStream(StreamReply);

/// One connection's side of [`RpcStreams`].
pub struct StreamHandler {
    protocol: StreamProtocol,
    peer: PeerId,
    inbound: Option<mpsc::Sender<InboundStream>>,
    /// Cloned into each inbound stream handed out; its count beyond one is
    /// the number of this connection's inbound streams still alive.
    inbound_streams: Arc<()>,
    /// Outbound streams asked for and not yet requested from the muxer.
    requested: VecDeque<StreamReply>,
}

impl ConnectionHandler for StreamHandler {
    type FromBehaviour = OpenStream;
    type ToBehaviour = Infallible;
    type InboundProtocol = RpcUpgrade;
    type OutboundProtocol = RpcUpgrade;
    type InboundOpenInfo = ();
    type OutboundOpenInfo = StreamReply;

    fn listen_protocol(&self) -> SubstreamProtocol<RpcUpgrade, ()> {
        SubstreamProtocol::new(
            RpcUpgrade {
                protocol: self.inbound.is_some().then(|| self.protocol.clone()),
            },
            (),
        )
    }

    fn poll(
        &mut self,
        _: &mut Context<'_>,
    ) -> Poll<ConnectionHandlerEvent<RpcUpgrade, StreamReply, Infallible>> {
        match self.requested.pop_front() {
            Some(reply) => Poll::Ready(ConnectionHandlerEvent::OutboundSubstreamRequest {
                protocol: SubstreamProtocol::new(
                    RpcUpgrade {
                        protocol: Some(self.protocol.clone()),
                    },
                    reply,
                ),
            }),
            None => Poll::Pending,
        }
    }

    fn on_behaviour_event(&mut self, OpenStream(reply): OpenStream) {
        // The connection task polls the handler right after delivering an
        // event, so no waker is needed here.
        self.requested.push_back(reply);
    }

    fn on_connection_event(
        &mut self,
        event: ConnectionEvent<RpcUpgrade, RpcUpgrade, (), StreamReply>,
    ) {
        match event {
            ConnectionEvent::FullyNegotiatedInbound(FullyNegotiatedInbound {
                protocol: stream,
                ..
            }) => self.on_inbound(stream),
            ConnectionEvent::FullyNegotiatedOutbound(FullyNegotiatedOutbound {
                protocol: stream,
                info: reply,
            }) => {
                let _ = reply.send(Ok(stream));
            }
            ConnectionEvent::DialUpgradeError(DialUpgradeError { info: reply, error }) => {
                let reason = match error {
                    StreamUpgradeError::NegotiationFailed => {
                        format!("the peer does not speak {}", self.protocol)
                    }
                    StreamUpgradeError::Timeout => "stream negotiation timed out".to_string(),
                    StreamUpgradeError::Io(error) => error.to_string(),
                    StreamUpgradeError::Apply(never) => match never {},
                };
                let _ = reply.send(Err(NetError::Request(reason)));
            }
            _ => {}
        }
    }
}

impl StreamHandler {
    fn on_inbound(&mut self, stream: Stream) {
        let Some(inbound) = &self.inbound else {
            // `listen_protocol` offered nothing, so nothing can be negotiated.
            return;
        };
        let open = Arc::strong_count(&self.inbound_streams) - 1;
        if open >= INBOUND_STREAMS_PER_CONNECTION_MAX {
            tracing::debug!(peer = %self.peer, open, protocol = %self.protocol, "refusing a stream beyond the per-connection limit");
            return;
        }
        let accepted = InboundStream {
            peer: self.peer,
            stream,
            token: Arc::clone(&self.inbound_streams),
        };
        if inbound.try_send(accepted).is_err() {
            tracing::debug!(peer = %self.peer, protocol = %self.protocol, "streams are not being accepted; dropping one");
        }
    }
}

/// Negotiates one protocol and hands the stream over as it is.
pub struct RpcUpgrade {
    /// The protocol offered; `None` offers nothing (a gateway accepts no
    /// inbound streams).
    protocol: Option<StreamProtocol>,
}

impl UpgradeInfo for RpcUpgrade {
    type Info = StreamProtocol;
    type InfoIter = std::option::IntoIter<StreamProtocol>;

    fn protocol_info(&self) -> Self::InfoIter {
        self.protocol.clone().into_iter()
    }
}

impl InboundUpgrade<Stream> for RpcUpgrade {
    type Output = Stream;
    type Error = Infallible;
    type Future = Ready<Result<Stream, Infallible>>;

    fn upgrade_inbound(self, stream: Stream, _: Self::Info) -> Self::Future {
        ready(Ok(stream))
    }
}

impl OutboundUpgrade<Stream> for RpcUpgrade {
    type Output = Stream;
    type Error = Infallible;
    type Future = Ready<Result<Stream, Infallible>>;

    fn upgrade_outbound(self, stream: Stream, _: Self::Info) -> Self::Future {
        ready(Ok(stream))
    }
}
