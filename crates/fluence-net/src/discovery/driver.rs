//! The swarm task's half of discovery: joins through the bootstrap peers,
//! applies the admission rule when identify completes, evicts peers that
//! cannot be dialed, runs lookups for [`super::Discovery`] and reports
//! status.

use std::collections::HashMap;
use std::num::NonZeroUsize;

use libp2p::core::{ConnectedPoint, PeerRecord};
use libp2p::kad::{self, store::MemoryStore, QueryId};
use libp2p::swarm::{ConnectionId, DialError, SwarmEvent};
use libp2p::{identify, PeerId, Swarm};
use tokio::sync::oneshot;
use tokio::time::{Interval, MissedTickBehavior};

use super::admission::{self, Subnet};
use super::{
    BucketSummary, Closest, Command, DiscoveryError, DiscoverySide, FoundPeer, NetworkStatus,
    KAD_PROTOCOL, LOOKUPS_IN_FLIGHT_MAX, RESEED_INTERVAL,
};
use crate::keyspace::{self, Target};
use crate::server::{NodeBehaviour, NodeBehaviourEvent};

/// Peers listed as connected in one status answer.
pub const STATUS_CONNECTED_LISTED_MAX: usize = fluence_proto::ops::CONNECTED_PEERS_LISTED_MAX;

/// A lookup waiting for its answer.
struct Lookup {
    target: Target,
    count: usize,
    reply: oneshot::Sender<Result<Closest, DiscoveryError>>,
}

/// Why the task woke up.
pub(crate) enum Wake {
    Command(Command),
    Reseed,
}

pub(crate) struct Driver {
    side: DiscoverySide,
    /// Every open connection's endpoint: identify's answer is judged by
    /// the connection it arrived on.
    endpoints: HashMap<ConnectionId, ConnectedPoint>,
    lookups: HashMap<QueryId, Lookup>,
    reseed: Interval,
    commands_open: bool,
}

fn kad(swarm: &mut Swarm<NodeBehaviour>) -> &mut kad::Behaviour<MemoryStore> {
    swarm
        .behaviour_mut()
        .kad
        .as_mut()
        .expect("a driver runs only with the Kademlia behaviour enabled")
}

impl Driver {
    /// Adds the bootstrap peers and starts joining.
    pub(crate) fn start(side: DiscoverySide, swarm: &mut Swarm<NodeBehaviour>) -> Driver {
        let mut reseed = tokio::time::interval(RESEED_INTERVAL);
        reseed.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut driver = Driver {
            side,
            endpoints: HashMap::new(),
            lookups: HashMap::new(),
            reseed,
            commands_open: true,
        };
        driver.join(swarm);
        driver
    }

    /// Puts the bootstrap peers into the routing table (trusted: the
    /// operator named them with their peer ids) and bootstraps.
    fn join(&mut self, swarm: &mut Swarm<NodeBehaviour>) {
        if self.side.bootstrap.is_empty() {
            return;
        }
        let local = *swarm.local_peer_id();
        let kad = kad(swarm);
        for (peer, addr) in &self.side.bootstrap {
            if *peer != local {
                kad.add_address(peer, addr.clone());
            }
        }
        if let Err(error) = kad.bootstrap() {
            tracing::debug!(%error, "cannot bootstrap yet");
        }
    }

    /// The next command, or the reseed timer; pending forever once the
    /// handles are gone and there is nothing to reseed.
    pub(crate) async fn wake(&mut self) -> Wake {
        loop {
            tokio::select! {
                command = self.side.commands.recv(), if self.commands_open => match command {
                    Some(command) => return Wake::Command(command),
                    None => self.commands_open = false,
                },
                _ = self.reseed.tick() => return Wake::Reseed,
            }
        }
    }

    pub(crate) fn on_wake(&mut self, swarm: &mut Swarm<NodeBehaviour>, wake: Wake) {
        match wake {
            Wake::Command(Command::Closest {
                target,
                count,
                reply,
            }) => self.start_lookup(swarm, target, count, reply),
            Wake::Command(Command::Status { reply }) => {
                let _ = reply.send(status(swarm));
            }
            Wake::Reseed => {
                let empty = kad(swarm).kbuckets().next().is_none();
                if empty && !self.side.bootstrap.is_empty() {
                    tracing::debug!(
                        "routing table empty: joining through the bootstrap peers again"
                    );
                    self.join(swarm);
                }
            }
        }
    }

    fn start_lookup(
        &mut self,
        swarm: &mut Swarm<NodeBehaviour>,
        target: Target,
        count: usize,
        reply: oneshot::Sender<Result<Closest, DiscoveryError>>,
    ) {
        // Drop lookups whose caller gave up, then bound the rest.
        self.lookups.retain(|_, lookup| !lookup.reply.is_closed());
        if self.lookups.len() >= LOOKUPS_IN_FLIGHT_MAX {
            let _ = reply.send(Err(DiscoveryError::Busy));
            return;
        }
        let num_results = NonZeroUsize::new(count.max(1)).expect("at least one");
        let id = kad(swarm).get_n_closest_peers(target.preimage(), num_results);
        self.lookups.insert(
            id,
            Lookup {
                target,
                count,
                reply,
            },
        );
    }

    /// Handles one swarm event (the server logs errors itself).
    pub(crate) fn on_event(
        &mut self,
        swarm: &mut Swarm<NodeBehaviour>,
        event: SwarmEvent<NodeBehaviourEvent>,
    ) {
        match event {
            SwarmEvent::ConnectionEstablished {
                connection_id,
                endpoint,
                ..
            } => {
                self.endpoints.insert(connection_id, endpoint);
            }
            SwarmEvent::ConnectionClosed { connection_id, .. } => {
                self.endpoints.remove(&connection_id);
            }
            SwarmEvent::OutgoingConnectionError {
                peer_id: Some(peer),
                error,
                ..
            } => self.on_dial_failure(swarm, peer, &error),
            SwarmEvent::Behaviour(NodeBehaviourEvent::Identify(identify::Event::Received {
                connection_id,
                peer_id,
                info,
            })) => self.on_identified(swarm, connection_id, peer_id, info),
            SwarmEvent::Behaviour(NodeBehaviourEvent::Kad(event)) => self.on_kad(swarm, event),
            _ => {}
        }
    }

    /// A peer we could not reach leaves the routing table at once
    /// (libp2p would keep its last address until a newcomer needs the
    /// slot), so lookups stop being sent to dead nodes; it comes back when
    /// it connects again and identifies.
    fn on_dial_failure(
        &mut self,
        swarm: &mut Swarm<NodeBehaviour>,
        peer: PeerId,
        error: &DialError,
    ) {
        let permanent = matches!(
            error,
            DialError::Transport(_) | DialError::WrongPeerId { .. } | DialError::NoAddresses
        );
        if permanent && !swarm.is_connected(&peer) && kad(swarm).remove_peer(&peer).is_some() {
            tracing::debug!(%peer, %error, "unreachable: removed from the routing table");
        }
    }

    /// The admission rule (see [`admission`]) for a peer that completed
    /// identify on `connection`.
    fn on_identified(
        &mut self,
        swarm: &mut Swarm<NodeBehaviour>,
        connection: ConnectionId,
        peer: PeerId,
        info: identify::Info,
    ) {
        let Some(endpoint) = self.endpoints.get(&connection) else {
            return;
        };
        if !info.protocols.contains(&KAD_PROTOCOL) {
            return;
        }
        // Identify has checked the record's signature against the peer's
        // key; decoding it again gives its addresses, not the unsigned
        // list a later push may have replaced them with.
        let Some(record) = info
            .signed_peer_record
            .and_then(|envelope| PeerRecord::from_signed_envelope(envelope).ok())
            .filter(|record| record.peer_id() == peer)
        else {
            tracing::debug!(%peer, "no signed peer record: not admitted");
            return;
        };
        let addrs = admission::routable_addrs(endpoint, record.addresses());
        if addrs.is_empty() {
            tracing::debug!(%peer, "no address we can vouch for: not admitted");
            return;
        }
        let subnet = admission::ip_of(admission::remote_addr(endpoint)).and_then(Subnet::of);
        let kad = kad(swarm);
        if !in_table(kad, &peer) {
            let (in_bucket, in_table) = subnet_counts(kad, &peer, subnet);
            if let Err(refusal) = admission::check_subnet(
                &self.side.config.subnet_limits,
                subnet,
                in_bucket,
                in_table,
            ) {
                tracing::debug!(%peer, %refusal, "not admitted");
                return;
            }
        }
        for addr in addrs {
            kad.add_address(&peer, addr);
        }
    }

    fn on_kad(&mut self, swarm: &mut Swarm<NodeBehaviour>, event: kad::Event) {
        match event {
            kad::Event::OutboundQueryProgressed {
                id,
                result: kad::QueryResult::GetClosestPeers(result),
                step,
                ..
            } => {
                let (found, complete) = match result {
                    Ok(ok) => (ok.peers, true),
                    Err(kad::GetClosestPeersError::Timeout { peers, .. }) => (peers, false),
                };
                if !step.last {
                    return;
                }
                if let Some(lookup) = self.lookups.remove(&id) {
                    let local = *swarm.local_peer_id();
                    let answer = closest(local, &lookup.target, lookup.count, found, complete);
                    let _ = lookup.reply.send(Ok(answer));
                }
            }
            kad::Event::OutboundQueryProgressed {
                result: kad::QueryResult::Bootstrap(result),
                ..
            } => tracing::debug!(?result, "bootstrap step"),
            kad::Event::RoutingUpdated {
                peer,
                is_new_peer: true,
                old_peer,
                ..
            } => tracing::debug!(%peer, ?old_peer, "routing table: added"),
            _ => {}
        }
    }
}

/// The lookup's answer: what it found plus this node, closest first.
fn closest(
    local: PeerId,
    target: &Target,
    count: usize,
    found: Vec<kad::PeerInfo>,
    complete: bool,
) -> Closest {
    let key = target.key();
    let mut peers: Vec<FoundPeer> = found
        .into_iter()
        .filter(|info| info.peer_id != local)
        .map(|info| FoundPeer {
            peer: info.peer_id,
            addrs: info.addrs,
        })
        .collect();
    peers.push(FoundPeer {
        peer: local,
        addrs: Vec::new(),
    });
    peers.sort_by(|a, b| keyspace::by_distance(&key, &a.peer, &b.peer));
    peers.dedup_by(|a, b| a.peer == b.peer);
    peers.truncate(count);
    Closest { peers, complete }
}

fn in_table(kad: &mut kad::Behaviour<MemoryStore>, peer: &PeerId) -> bool {
    kad.kbucket(*peer)
        .is_some_and(|bucket| bucket.iter().any(|e| e.node.key.preimage() == peer))
}

/// Entries of `subnet` in `peer`'s bucket and in the whole table (zero
/// for an unlimited subnet).
fn subnet_counts(
    kad: &mut kad::Behaviour<MemoryStore>,
    peer: &PeerId,
    subnet: Option<Subnet>,
) -> (usize, usize) {
    let Some(subnet) = subnet else {
        return (0, 0);
    };
    let of_subnet = |addrs: &kad::Addresses| {
        addrs
            .iter()
            .any(|a| admission::ip_of(a).and_then(Subnet::of) == Some(subnet))
    };
    let in_bucket = kad
        .kbucket(*peer)
        .map_or(0, |b| b.iter().filter(|e| of_subnet(e.node.value)).count());
    let in_table = kad
        .kbuckets()
        .map(|b| b.iter().filter(|e| of_subnet(e.node.value)).count())
        .sum();
    (in_bucket, in_table)
}

fn status(swarm: &mut Swarm<NodeBehaviour>) -> NetworkStatus {
    let peer_id = *swarm.local_peer_id();
    let listen_addrs = swarm.listeners().cloned().collect();
    let connected = swarm
        .connected_peers()
        .take(STATUS_CONNECTED_LISTED_MAX)
        .copied()
        .collect();
    let mut buckets: Vec<BucketSummary> = kad(swarm)
        .kbuckets()
        .filter_map(|bucket| {
            // A bucket's smallest distance is 2^index (bucket 0 holds
            // distance 1 only).
            Some(BucketSummary {
                index: keyspace::bucket_index(&bucket.range().0)?,
                entries: bucket.num_entries(),
            })
        })
        .collect();
    buckets.sort_by_key(|b| b.index);
    NetworkStatus {
        peer_id,
        listen_addrs,
        connected,
        buckets,
    }
}
