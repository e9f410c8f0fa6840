//! Fluence's local gateway: the HTTP/JSON API applications use.
//!
//! Owns request parsing, the mapping of client errors to stable JSON error
//! codes, and request size limits. Everything cryptographic happens in
//! `fluence-client`; the gateway never holds plaintext beyond one request.
//! Must not depend on the node daemon.

mod http;
mod json;

pub use http::{router, serve, REQUEST_BODY_LEN_MAX};
