//! A deterministic model of the Fluence open network's Kademlia lookups and dataset placement, for its simulation tests and the `dht-sim` benchmark.
//!
//! libp2p's swarm cannot run 10,000 nodes deterministically in one
//! process, so this crate models the protocol the node runs
//! (`fluence_net::discovery`: libp2p-kad 0.49, k = 20, α = 3) rather than
//! running it: real ed25519 identities and the real key space
//! (`fluence_net::keyspace`), routing tables of 256 k-buckets
//! ([`table`]), libp2p's lookup state machine ([`iter`]) driven as a
//! discrete-event simulation with simulated message delays ([`lookup`]),
//! nodes joining through a bootstrap node and refreshing as libp2p's
//! bootstrap does ([`network`]), and the real placement rule
//! (`fluence_net::placement`) applied to lookup answers ([`placing`]).
//! [`scenario`] runs one network size end to end, with churn; [`report`]
//! prints the results.
//!
//! One seeded generator drives everything, there are no threads and no
//! clock: a seed replays a run byte for byte. What the model leaves out
//! is listed in `docs/benchmarks.md` ("Open network: lookups and
//! placement (simulation)").

pub mod iter;
pub mod lookup;
pub mod network;
pub mod placing;
pub mod report;
pub mod scenario;
pub mod space;
pub mod table;

pub use network::{Network, Params};
pub use scenario::{run, Scenario, ScenarioError, SizeReport};
