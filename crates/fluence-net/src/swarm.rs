//! Building the one libp2p swarm a process uses: TCP (no Nagle) + noise +
//! yamux, with the process's behaviour (a gateway's [`RpcStreams`](crate::streams::RpcStreams), a
//! node's rpc and cluster streams).

use std::time::Duration;

use libp2p::swarm::NetworkBehaviour;
use libp2p::{identity::Keypair, noise, tcp, yamux, Swarm};

use crate::NetError;

/// How long a connection without any open stream is kept. A gateway keeps
/// its rpc stream open, so this only ends connections nobody uses.
pub const IDLE_CONNECTION_TIMEOUT: Duration = Duration::from_secs(3600);

pub fn build<B: NetworkBehaviour>(keypair: Keypair, behaviour: B) -> Result<Swarm<B>, NetError> {
    let swarm = libp2p::SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_tcp(
            // Requests and answers are small and latency-bound: send each
            // write at once instead of waiting for more bytes.
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .map_err(|e| NetError::Setup(e.to_string()))?
        .with_behaviour(|_| behaviour)
        .map_err(|e| NetError::Setup(e.to_string()))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(IDLE_CONNECTION_TIMEOUT))
        .build();
    Ok(swarm)
}
