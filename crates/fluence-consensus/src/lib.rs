//! Fluence cluster replica: one member of the cluster that replicates a dataset, ordering its owner's writes with BFT consensus into the dataset's chain.
//!
//! Owns: the integration of commonware's `simplex` consensus and `marshal`
//! block dissemination with the cluster chain (`fluence-chain`) and the
//! node store (`fluence-store`). Must not depend on storage internals (it
//! uses the store's public API) or on a concrete network: it runs over any
//! commonware p2p `Sender`/`Receiver`, one pair per [`Channel`], so the
//! simulated network of the tests and the node's libp2p swarm both fit.
//! commonware is pinned to one release (`=2026.10.0`); its APIs change
//! monthly.
//!
//! # Data flow
//!
//! ```text
//! submit(write) ─▶ Member::admit ─▶ pool ──forward──▶ other members' pools
//!                                    │
//! simplex ──propose──▶ ChainApp ◀────┘  take the run after the parent's seq,
//!    │                 (Inline)          simulate on the store, claim the root,
//!    │                                   attach attestations of the parent
//!    ├──verify───▶ ChainApp: rules of fluence-chain, re-execute, root must match,
//!    │                       then sign and send an attestation
//!    └─finalize─▶ marshal ─▶ Finalizer ─▶ Executor::apply_finalized
//!                 (in order)               store (one commit) ─▶ chain (+ certificate)
//!                                          ─▶ pool answers the waiting callers
//!
//! start, empty chain ─▶ sync: probe members ─▶ snapshot of one, checked against
//!                       its finalized block ─▶ Store::import ─▶ chain floor
//!                       ─▶ simplex and marshal start from that block
//! ```
//!
//! # Guarantees
//!
//! - A submitted write is acknowledged only after the block holding it is
//!   finalized (2f + 1 signatures) and durably applied on this member. A
//!   write's identity is its signed body's digest: resubmissions are
//!   acknowledged once applied, never applied twice.
//! - A member votes for a block only if every chain rule holds and
//!   re-executing its writes (after any unfinalized ancestors) on its own
//!   store gives the claimed state root.
//! - Finalized blocks are applied strictly in height order, each in one
//!   store commit then one chain append; a crash between the two is
//!   repaired when the block is redelivered. A member whose state diverges
//!   from a finalized block stops applying (see [`ReplicaFault`]) rather
//!   than serve a state the cluster did not agree on.
//!
//! One process can run many replicas (one per dataset it serves): each has
//! its own channels, chain file and storage partitions
//! ([`ReplicaConfig::partition_prefix`]).

mod app;
mod attestations;
pub mod block;
pub mod certificate;
mod error;
mod evidence;
mod exec;
mod finalizer;
mod gossip;
pub mod keys;
mod member;
mod pool;
mod replica;
pub mod sync;

pub use app::{ConsensusContext, Scheme, SPECULATION_RETRY};
pub use block::{ChainBlock, Digest};
pub use certificate::{verify_finalization, CertificateError, CONSENSUS_NAMESPACE_DOMAIN};
pub use error::{ReplicaFault, SubmitError, VerifyError};
pub use evidence::{Equivocation, EquivocationKind, EQUIVOCATIONS_KEPT};
pub use exec::SPECULATION_DEPTH_MAX;
pub use member::{Behavior, BlockLimits, ChangePolicy};
pub use pool::{Committed, POOL_BYTES_MAX, POOL_WRITES_MAX};
pub use replica::{
    start, Channel, ClusterNetwork, EpochStart, ReplicaConfig, ReplicaHandle, StartError, Timeouts,
    CHANNELS, EPOCH_CHANNELS,
};
pub use sync::SyncReport;
