//! The Fluence node: checks every client-signed write and serves encrypted
//! datasets from its store over the network.
//!
//! Owns request dispatch, signature and ownership checks, and the daemon's
//! start-up (identity, store, listener). Must not depend on the gateway or
//! the client: a node never holds keys that decrypt anything.

pub mod daemon;
pub mod order;
pub mod service;

pub use daemon::{NodeConfig, RunningNode};
pub use service::NodeService;
