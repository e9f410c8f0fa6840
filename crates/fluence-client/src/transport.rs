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
