//! Building the one libp2p swarm a process uses: TCP + noise + yamux with
//! the `/fluence/rpc/1` request-response protocol.

use std::time::Duration;

use libp2p::request_response::{self, ProtocolSupport};
use libp2p::{identity::Keypair, noise, tcp, yamux, Swarm};

use crate::frame::{FrameCodec, RPC_PROTOCOL};
use crate::NetError;

pub type RpcBehaviour = request_response::Behaviour<FrameCodec>;

/// A single request may carry a batch of tens of thousands of documents, so
/// the timeout is generous; liveness is the caller's concern.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(300);
/// Concurrent inbound streams per connection: bounds the work one peer can
/// queue on a node.
pub const STREAMS_PER_CONNECTION_MAX: usize = 256;
pub const IDLE_CONNECTION_TIMEOUT: Duration = Duration::from_secs(3600);

pub fn build(keypair: Keypair, support: ProtocolSupport) -> Result<Swarm<RpcBehaviour>, NetError> {
    let config = request_response::Config::default()
        .with_request_timeout(REQUEST_TIMEOUT)
        .with_max_concurrent_streams(STREAMS_PER_CONNECTION_MAX);
    let swarm = libp2p::SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .map_err(|e| NetError::Setup(e.to_string()))?
        .with_behaviour(|_| RpcBehaviour::with_codec(FrameCodec, [(RPC_PROTOCOL, support)], config))
        .map_err(|e| NetError::Setup(e.to_string()))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(IDLE_CONNECTION_TIMEOUT))
        .build();
    Ok(swarm)
}
