//! The Fluence node: checks every client-signed write and serves encrypted
//! datasets from its store over the network, alone or as a member of the
//! cluster that replicates them.
//!
//! Owns request dispatch, signature and ownership checks, the daemon's
//! start-up (identity, store, listener) and, for a cluster member, its
//! replicas (one consensus replica per dataset, see [`cluster`]). Must not
//! depend on the gateway or the client: a node never holds keys that
//! decrypt anything.

pub mod cluster;
pub mod coordinator;
pub mod daemon;
pub mod detector;
pub mod memberships;
pub mod ops;
pub mod order;
pub mod reads;
pub mod service;

pub use cluster::{ClusterConfig, Replicas};
pub use daemon::{NodeConfig, RunningNode};
pub use service::NodeService;
