//! Node discovery: Kademlia (`/fluence/kad/1.0.0`) and identify in the
//! node's swarm.
//!
//! A node's id is its libp2p peer id (the identity multihash of its
//! ed25519 key, which noise checks on every connection). A node started
//! with bootstrap addresses joins the network through them, fills its
//! routing table with a self-lookup and bucket refreshes (libp2p's
//! bootstrap, repeated every [`DiscoveryConfig::refresh_interval`]) and
//! answers other nodes' lookups (server mode: `fluence node` is meant to
//! be reachable).
//!
//! The routing table is filled by our own rule, not by whoever connects
//! (`BucketInserts::Manual`, see [`admission`]): a peer enters only once
//! it has completed identify on a live connection, lists our Kademlia
//! protocol and sent a signed peer record; the addresses kept are the one
//! we dialed it on, or those of its signed record on the IP its
//! connection came from; and at most a few peers per IP subnet per bucket
//! and per table. docs/security.md ("Open network (Kademlia)") lists what
//! this does and does not defend against.
//!
//! [`Discovery`] is the handle the rest of the node uses (lookups, status);
//! the swarm task runs the other half ([`driver`]).

pub mod admission;
pub(crate) mod driver;
pub mod wire;

use std::num::NonZeroUsize;
use std::time::Duration;

use libp2p::identity::Keypair;
use libp2p::kad::{self, store::MemoryStore};
use libp2p::multiaddr::Protocol;
use libp2p::{identify, Multiaddr, PeerId, StreamProtocol};
use tokio::sync::{mpsc, oneshot};

use crate::keyspace::Target;

pub use admission::SubnetLimits;

/// The Kademlia protocol of the Fluence network. Peers speaking another
/// Kademlia (e.g. IPFS's `/ipfs/kad/1.0.0`) never share routing tables
/// with us.
pub const KAD_PROTOCOL: StreamProtocol = StreamProtocol::new("/fluence/kad/1.0.0");

/// The protocol version a Fluence node announces in identify.
pub const IDENTIFY_PROTOCOL_VERSION: &str = "/fluence/id/1.0.0";

/// Peers one lookup may return (libp2p's k: a lookup never returns more).
pub const CLOSEST_PEERS_MAX: usize = fluence_proto::ops::CLOSEST_PEERS_MAX as usize;

/// Lookups one node runs at once for operators and tests; more are refused.
pub const LOOKUPS_IN_FLIGHT_MAX: usize = 16;

/// Requests from the node to its swarm task waiting to be taken.
const COMMANDS_QUEUED_MAX: usize = 64;

/// Kademlia's α: how many peers a lookup asks at once.
const LOOKUP_PARALLELISM: usize = 3;

/// Bytes of one Kademlia message (libp2p's default): a FIND_NODE answer
/// lists at most k = 20 peers with a few addresses each.
const KAD_PACKET_LEN_MAX: usize = 16 * 1024;

/// How long one Kademlia request to a peer may take.
const KAD_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// How often a node whose routing table is empty (its bootstrap peers
/// were unreachable, or every peer it knew died) adds its bootstrap
/// addresses again and bootstraps.
pub const RESEED_INTERVAL: Duration = Duration::from_secs(2);

/// How a node takes part in discovery.
#[derive(Debug, Clone)]
pub struct DiscoveryConfig {
    /// Nodes to join through, each `.../p2p/<peer id>`.
    pub bootstrap: Vec<Multiaddr>,
    /// How often the routing table is refreshed (a self-lookup and a
    /// lookup of a random key in every bucket).
    pub refresh_interval: Duration,
    /// How long one lookup may take before it answers with what it found.
    pub query_timeout: Duration,
    /// Routing-table entries allowed per IP subnet.
    pub subnet_limits: SubnetLimits,
}

impl Default for DiscoveryConfig {
    fn default() -> Self {
        DiscoveryConfig {
            bootstrap: Vec::new(),
            refresh_interval: Duration::from_secs(5 * 60),
            query_timeout: Duration::from_secs(10),
            subnet_limits: SubnetLimits::default(),
        }
    }
}

/// Why discovery could not start or answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DiscoveryError {
    #[error("bootstrap address {0} does not end in /p2p/<peer id>")]
    BootstrapWithoutPeerId(String),
    #[error("{LOOKUPS_IN_FLIGHT_MAX} lookups are already running; try again")]
    Busy,
    #[error("the node's network task has stopped")]
    Stopped,
}

/// A node found by a lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundPeer {
    pub peer: PeerId,
    /// Where the lookup learned it can be reached (empty for the node
    /// that answered, which is itself among the closest).
    pub addrs: Vec<Multiaddr>,
}

/// The answer to a lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Closest {
    /// Closest first; the answering node included when it is among them.
    pub peers: Vec<FoundPeer>,
    /// False when the lookup ran out of time: `peers` is what it had found.
    pub complete: bool,
}

/// One bucket of the routing table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BucketSummary {
    /// `floor(log2(distance))` of the bucket's peers from this node, 0..=255.
    pub index: u8,
    pub entries: usize,
}

/// The node's view of the network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkStatus {
    pub peer_id: PeerId,
    pub listen_addrs: Vec<Multiaddr>,
    /// Peers with an open connection (nodes and gateways alike).
    pub connected: Vec<PeerId>,
    /// Non-empty buckets, nearest first.
    pub buckets: Vec<BucketSummary>,
}

impl NetworkStatus {
    /// Peers in the routing table.
    pub fn routing_table_size(&self) -> usize {
        self.buckets.iter().map(|b| b.entries).sum()
    }
}

pub(crate) enum Command {
    Closest {
        target: Target,
        count: usize,
        reply: oneshot::Sender<Result<Closest, DiscoveryError>>,
    },
    Status {
        reply: oneshot::Sender<NetworkStatus>,
    },
}

/// The node's handle on discovery: lookups and status, answered by the
/// swarm task. Cheap to clone.
#[derive(Clone)]
pub struct Discovery {
    commands: mpsc::Sender<Command>,
}

/// What the swarm task needs to run discovery (hand it to
/// [`crate::Server::start_node`]).
pub struct DiscoverySide {
    pub(crate) commands: mpsc::Receiver<Command>,
    pub(crate) config: DiscoveryConfig,
    pub(crate) bootstrap: Vec<(PeerId, Multiaddr)>,
}

impl Discovery {
    /// A handle and the swarm task's side. Refuses a bootstrap address
    /// without `/p2p/<peer id>`: the peer id is what noise checks, so
    /// joining through an address alone would trust whoever answers there.
    pub fn new(config: DiscoveryConfig) -> Result<(Discovery, DiscoverySide), DiscoveryError> {
        let bootstrap = config
            .bootstrap
            .iter()
            .map(|addr| bootstrap_peer(addr))
            .collect::<Result<Vec<_>, _>>()?;
        let (commands_tx, commands) = mpsc::channel(COMMANDS_QUEUED_MAX);
        Ok((
            Discovery {
                commands: commands_tx,
            },
            DiscoverySide {
                commands,
                config,
                bootstrap,
            },
        ))
    }

    /// The `count` nodes closest to `target` (at most
    /// [`CLOSEST_PEERS_MAX`]) by an iterative lookup through the network,
    /// this node included when it is among them.
    pub async fn closest(&self, target: Target, count: usize) -> Result<Closest, DiscoveryError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::Closest {
                target,
                count: count.clamp(1, CLOSEST_PEERS_MAX),
                reply,
            })
            .await
            .map_err(|_| DiscoveryError::Stopped)?;
        answer.await.map_err(|_| DiscoveryError::Stopped)?
    }

    /// The node's peer id, connections and routing table.
    pub async fn status(&self) -> Result<NetworkStatus, DiscoveryError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::Status { reply })
            .await
            .map_err(|_| DiscoveryError::Stopped)?;
        answer.await.map_err(|_| DiscoveryError::Stopped)
    }
}

/// The peer id at the end of a bootstrap address, and the address
/// without it.
pub fn bootstrap_peer(addr: &Multiaddr) -> Result<(PeerId, Multiaddr), DiscoveryError> {
    let mut dial = addr.clone();
    match dial.pop() {
        Some(Protocol::P2p(peer)) if !dial.is_empty() => Ok((peer, dial)),
        _ => Err(DiscoveryError::BootstrapWithoutPeerId(addr.to_string())),
    }
}

/// The Kademlia behaviour of a node: our protocol, server mode, a routing
/// table filled only by [`admission`], bounded lookups, no records stored
/// for others.
pub(crate) fn kademlia(local: PeerId, config: &DiscoveryConfig) -> kad::Behaviour<MemoryStore> {
    let mut kad_config = kad::Config::new(KAD_PROTOCOL);
    kad_config
        .set_kbucket_inserts(kad::BucketInserts::Manual)
        .set_query_timeout(config.query_timeout)
        .set_parallelism(NonZeroUsize::new(LOOKUP_PARALLELISM).expect("non-zero"))
        .set_periodic_bootstrap_interval(Some(config.refresh_interval))
        .set_max_packet_size(KAD_PACKET_LEN_MAX)
        .set_substreams_timeout(KAD_REQUEST_TIMEOUT)
        // Fluence uses the DHT for routing only: a record or provider
        // another peer asks us to keep is handed to us as an event, which
        // we drop, so nobody can use a node's memory as storage.
        .set_record_filtering(kad::StoreInserts::FilterBoth)
        .set_caching(kad::Caching::Disabled)
        .set_replication_interval(None)
        .set_publication_interval(None)
        .set_provider_publication_interval(None);
    let mut kad = kad::Behaviour::with_config(local, MemoryStore::new(local), kad_config);
    // Explicit: libp2p would otherwise wait for a confirmed external
    // address before answering; a node is run to be reached.
    kad.set_mode(Some(kad::Mode::Server));
    kad
}

/// Identify, sending a peer record signed with the node key (its listen
/// addresses), which is where [`admission`] takes a peer's addresses from.
pub(crate) fn identify(keypair: &Keypair) -> identify::Behaviour {
    identify::Behaviour::new(
        identify::Config::new_with_signed_peer_record(IDENTIFY_PROTOCOL_VERSION.into(), keypair)
            .with_agent_version(format!("fluence/{}", env!("CARGO_PKG_VERSION"))),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_return_at_most_kademlias_k() {
        assert_eq!(CLOSEST_PEERS_MAX, kad::K_VALUE.get());
    }

    #[test]
    fn a_bootstrap_address_must_name_its_peer() {
        let peer = Keypair::generate_ed25519().public().to_peer_id();
        let addr: Multiaddr = format!("/ip4/127.0.0.1/tcp/4001/p2p/{peer}")
            .parse()
            .unwrap();
        let (found, dial) = bootstrap_peer(&addr).unwrap();
        assert_eq!(found, peer);
        assert_eq!(
            dial,
            "/ip4/127.0.0.1/tcp/4001".parse::<Multiaddr>().unwrap()
        );
        for bad in ["/ip4/127.0.0.1/tcp/4001", &format!("/p2p/{peer}")] {
            let bad: Multiaddr = bad.parse().unwrap();
            assert!(matches!(
                Discovery::new(DiscoveryConfig {
                    bootstrap: vec![bad],
                    ..DiscoveryConfig::default()
                }),
                Err(DiscoveryError::BootstrapWithoutPeerId(_))
            ));
        }
    }
}
