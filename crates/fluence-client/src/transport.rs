//! How the client reaches a node. The gateway uses a libp2p connection;
//! tests may plug a node's request handler in directly.

use std::future::Future;

use fluence_proto::{Decode, Encode, Request, Response};

use crate::error::ClientError;

pub trait Transport: Send + Sync + 'static {
    /// Sends one request and returns the node's response.
    fn call(&self, request: &Request)
        -> impl Future<Output = Result<Response, ClientError>> + Send;
}

impl Transport for fluence_net::NodeClient {
    async fn call(&self, request: &Request) -> Result<Response, ClientError> {
        let bytes = self
            .call_bytes(request.to_bytes())
            .await
            .map_err(|e| ClientError::Unavailable(e.to_string()))?;
        Response::from_bytes(&bytes)
            .map_err(|e| ClientError::Integrity(format!("node sent an undecodable response: {e}")))
    }
}

impl<T: Transport> Transport for std::sync::Arc<T> {
    fn call(
        &self,
        request: &Request,
    ) -> impl Future<Output = Result<Response, ClientError>> + Send {
        T::call(self, request)
    }
}

/// Dials nodes over libp2p for the open network's routes
/// ([`crate::network::Dial`]): each address in turn, with the node's
/// peer id appended (the noise handshake proves the node holds the key).
pub struct NodeDialer {
    pub timeout: std::time::Duration,
}

impl crate::network::Dial<fluence_net::NodeClient> for NodeDialer {
    fn dial(
        &self,
        key: fluence_proto::PublicKey,
        addrs: Vec<String>,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<fluence_net::NodeClient, ClientError>> + Send>>
    {
        let timeout = self.timeout;
        Box::pin(async move {
            let peer = fluence_net::identity::peer_id_of(&key)
                .map_err(|e| ClientError::Unavailable(e.to_string()))?;
            let mut last = format!("no address known for node {key}");
            for addr in addrs {
                let base = addr.split("/p2p/").next().unwrap_or(&addr).to_string();
                let Ok(dial) = format!("{base}/p2p/{peer}").parse::<fluence_net::Multiaddr>()
                else {
                    last = format!("{addr:?} is not a multiaddr");
                    continue;
                };
                match fluence_net::NodeClient::connect(dial, timeout).await {
                    Ok(client) => return Ok(client),
                    Err(error) => last = format!("connecting to {addr}: {error}"),
                }
            }
            Err(ClientError::Unavailable(last))
        })
    }
}
