//! Fluence client SDK: everything that happens on the data owner's machine.
//!
//! Owns encryption of documents and index entries, MongoDB query semantics
//! (parsing, planning against encrypted indexes, exact evaluation after
//! decryption) and verification of node answers: signed pages agreed on
//! by a read quorum of cluster members, Merkle proofs against certified
//! state roots ([`reads`]). Must not depend on the node
//! daemon or its storage engine: it talks to nodes only through
//! `fluence-proto` messages over a [`Transport`].

pub mod client;
pub mod dataset;
pub mod descriptor;
pub mod error;
pub mod members;
pub mod network;
pub mod query;
pub mod reads;
pub mod transport;

pub use client::cursor::FindStream;
pub use client::find_and_modify::{FindAndModify, FindAndModifyResult, ModifyAction};
pub use client::{Client, DatasetView, FindOptions, InsertResult, UpdateResult};
pub use error::ClientError;
pub use members::Member;
pub use network::{NetworkConfig, CLUSTER_SIZE_DEFAULT};
pub use reads::{ReadConfig, ReadOptions, ReadQuorum};
pub use transport::{NodeDialer, Transport};
