//! Fluence networking: the libp2p swarm (TCP, noise, yamux), the
//! `/fluence/rpc/2` protocol between gateways and nodes, the
//! `/fluence/cluster/1` transport of consensus messages between cluster
//! members ([`cluster`]), and the open network's discovery: Kademlia over
//! one key space for node and dataset ids ([`discovery`], [`keyspace`])
//! and the rule placing a dataset on the closest nodes ([`placement`]).
//!
//! Owns transport, framing, dialing and serving. Must not depend on storage
//! internals, on the consensus engine or on the client's keys: a node plugs
//! in a [`RequestHandler`], a gateway uses a [`NodeClient`]; both exchange
//! `fluence-proto` bytes. The cluster transport implements commonware-p2p's
//! traits, so a consensus replica runs on it without knowing libp2p.
//!
//! A gateway opens one long-lived stream per node connection and pipelines
//! every request over it, each frame tagged with a request id (see
//! [`frame`]); the node answers in whatever order answers are ready. This
//! replaces a stream (with its protocol negotiation) per request, which
//! cost more than the node's work for a point read.

pub mod client;
pub mod cluster;
pub mod discovery;
pub mod frame;
pub mod identity;
pub mod keyspace;
pub mod placement;
mod serve_stream;
pub mod server;
mod session;
pub mod streams;
pub mod swarm;
mod writer;

pub use client::NodeClient;
pub use libp2p::identity::Keypair;
pub use libp2p::{Multiaddr, PeerId};
pub use server::{Answer, NodeParts, RequestHandler, Server};

/// Why a network operation failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum NetError {
    #[error("could not set up the network stack: {0}")]
    Setup(String),
    #[error("could not listen on {0}: {1}")]
    Listen(String, String),
    #[error("could not reach node at {0}: {1}")]
    Dial(String, String),
    #[error("request to node failed: {0}")]
    Request(String),
    #[error("message of {0} bytes exceeds the maximum {max}", max = fluence_proto::limits::MESSAGE_LEN_MAX)]
    Oversized(usize),
    #[error("node sent an undecodable response: {0}")]
    BadResponse(String),
    #[error("the connection to the node was shut down")]
    Closed,
    #[error("node identity file {0}: {1}")]
    Identity(String, String),
}
