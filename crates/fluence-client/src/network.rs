//! The open network as a gateway uses it: placing a new dataset on the k
//! closest nodes that accept it, and finding an existing dataset's
//! cluster (its route) through the DHT, both starting from one entry node.
//!
//! Placement: the entry node looks up the nodes closest to the dataset id
//! (`OpsRequest::Closest`); the gateway offers the dataset to the k
//! closest with that very member list (`Request::Offer`); a refusal or no
//! answer removes that node and the next closest takes its place, and
//! the new list is offered again (each member signs the exact list), until
//! k accept or too few are left ([`gather_acceptances`]).
//!
//! Routing: the nodes closest to the dataset id are asked for its route
//! (`Request::Route`) until one serves it; its answer is the owner-signed
//! `Create` with every member's acceptance, checked here
//! (`fluence_chain::verify_create`) before any member is trusted; the
//! gateway then dials the members directly and caches the route. A member
//! that says it does not serve the dataset, or no member answering, drops
//! the route and it is looked up again.

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use fluence_chain::history::Epoch;
use fluence_net::keyspace::{self, Target};
use fluence_net::PeerId;
use fluence_proto::ops::{DhtPeer, DhtTarget, PeerIdBytes, CLOSEST_PEERS_MAX};
use fluence_proto::{
    DatasetId, NodeError, OfferAnswer, OpsRequest, OpsResponse, PublicKey, Request, Response, Seat,
};

use crate::error::ClientError;
use crate::members::Member;
use crate::transport::Transport;

/// Members of a dataset's cluster unless the gateway says otherwise.
pub const CLUSTER_SIZE_DEFAULT: usize = 4;
/// Rounds of offers one placement makes at most (each removes a node).
const PLACEMENT_ROUNDS_MAX: usize = CLOSEST_PEERS_MAX as usize;

/// Opens a connection to a node, by its key and the addresses (multiaddrs
/// as text, without `/p2p/`) it may be reached at.
pub trait Dial<T>: Send + Sync + 'static {
    fn dial(
        &self,
        key: PublicKey,
        addrs: Vec<String>,
    ) -> Pin<Box<dyn Future<Output = Result<T, ClientError>> + Send>>;
}

/// How a client places and finds datasets in the open network.
pub struct NetworkConfig<T> {
    /// k: members of each new dataset's cluster (n = 3f + 1).
    pub cluster_size: usize,
    pub dial: Arc<dyn Dial<T>>,
}

/// A dataset's cluster as the gateway reaches it.
pub struct Route<T> {
    /// The current member keys, in the order the `Create` or the last
    /// membership change lists them.
    pub keys: Vec<PublicKey>,
    /// Every membership epoch of the cluster, the current one last (their
    /// members certified the blocks of their heights).
    pub epochs: Vec<Epoch>,
    /// The members it could connect to: the entry node first if it is
    /// one, then in placement order.
    pub members: Vec<Member<Arc<T>>>,
}

/// Connections and routes of a client in the open network.
pub(crate) struct Network<T> {
    pub cluster_size: usize,
    dial: Arc<dyn Dial<T>>,
    /// The entry node's key and address (a lookup lists the answering
    /// node without addresses).
    entry: Option<(PublicKey, String)>,
    connections: tokio::sync::Mutex<HashMap<PublicKey, Arc<T>>>,
    routes: std::sync::Mutex<HashMap<DatasetId, Arc<Route<T>>>>,
}

impl<T: Transport> Network<T> {
    pub fn new(
        config: NetworkConfig<T>,
        entry: Option<(PublicKey, String)>,
    ) -> Result<Self, ClientError> {
        fluence_proto::cluster::check_member_list(
            &(0..config.cluster_size)
                .map(|i| PublicKey([i as u8; 32]))
                .collect::<Vec<_>>(),
        )
        .map_err(|e| ClientError::InvalidRequest(format!("cluster size: {e}")))?;
        Ok(Network {
            cluster_size: config.cluster_size,
            dial: config.dial,
            entry,
            connections: tokio::sync::Mutex::new(HashMap::new()),
            routes: std::sync::Mutex::new(HashMap::new()),
        })
    }

    /// A connection to `key`, reused if there is one.
    pub async fn connect(
        &self,
        key: PublicKey,
        mut addrs: Vec<String>,
    ) -> Result<Arc<T>, ClientError> {
        if let Some(connection) = self.connections.lock().await.get(&key) {
            return Ok(Arc::clone(connection));
        }
        if let Some((entry, addr)) = &self.entry {
            if *entry == key && !addrs.contains(addr) {
                addrs.push(addr.clone());
            }
        }
        let connection = Arc::new(self.dial.dial(key, addrs).await?);
        Ok(Arc::clone(
            self.connections
                .lock()
                .await
                .entry(key)
                .or_insert(connection),
        ))
    }

    pub fn cached(&self, dataset: &DatasetId) -> Option<Arc<Route<T>>> {
        self.lock_routes().get(dataset).cloned()
    }

    pub fn remember(&self, dataset: DatasetId, route: Arc<Route<T>>) {
        self.lock_routes().insert(dataset, route);
    }

    /// Drops the route of `dataset` (it was stale) and the connections
    /// of its members that failed, so the next use looks it up again.
    pub async fn forget(&self, dataset: &DatasetId, failed: &[PublicKey]) {
        self.lock_routes().remove(dataset);
        let mut connections = self.connections.lock().await;
        for key in failed {
            connections.remove(key);
        }
    }

    fn lock_routes(&self) -> std::sync::MutexGuard<'_, HashMap<DatasetId, Arc<Route<T>>>> {
        self.routes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The route of `dataset`, looked up through `entry` if not cached.
    pub async fn route<E: Transport>(
        &self,
        entry: &E,
        dataset: DatasetId,
    ) -> Result<Arc<Route<T>>, ClientError> {
        if let Some(route) = self.cached(&dataset) {
            return Ok(route);
        }
        let closest = closest(entry, DhtTarget::Dataset(dataset), CLOSEST_PEERS_MAX).await?;
        let mut last_error = ClientError::Node(NodeError::DatasetNotFound);
        for peer in &closest {
            let Some(key) = key_of(&peer.peer) else {
                continue;
            };
            let connection = match self.connect(key, peer.addrs.clone()).await {
                Ok(connection) => connection,
                Err(error) => {
                    last_error = error;
                    continue;
                }
            };
            match connection.call(&Request::Route { dataset }).await {
                Ok(Response::Route(answer)) => {
                    let epochs = check_route(&dataset, &answer)?;
                    let keys = epochs.last().map(|e| e.members.clone()).unwrap_or_default();
                    let mut addrs: HashMap<PublicKey, Vec<String>> = answer
                        .addrs
                        .into_iter()
                        .map(|entry| (entry.key, entry.addrs))
                        .collect();
                    for peer in &closest {
                        if let Some(key) = key_of(&peer.peer) {
                            addrs.entry(key).or_default().extend(peer.addrs.clone());
                        }
                    }
                    let mut route = self.connect_route(entry, keys, addrs).await?;
                    route.epochs = epochs;
                    let route = Arc::new(route);
                    self.remember(dataset, Arc::clone(&route));
                    return Ok(route);
                }
                Ok(Response::Error(NodeError::DatasetNotFound)) => {}
                Ok(Response::Error(error)) => last_error = ClientError::Node(error),
                Ok(other) => {
                    last_error = ClientError::Integrity(format!(
                        "a node answered a route request with {other:?}"
                    ))
                }
                Err(error) => last_error = error,
            }
        }
        Err(last_error)
    }

    /// Connections to the members `keys` (addresses from `addrs`, else
    /// looked up through `entry`); members that cannot be reached are
    /// left out, as long as one can be.
    pub async fn connect_route<E: Transport>(
        &self,
        entry: &E,
        keys: Vec<PublicKey>,
        mut addrs: HashMap<PublicKey, Vec<String>>,
    ) -> Result<Route<T>, ClientError> {
        let mut members = Vec::with_capacity(keys.len());
        let mut last_error = None;
        for key in &keys {
            let mut known = addrs.remove(key).unwrap_or_default();
            known.sort();
            known.dedup();
            if known.is_empty() {
                if let Ok(peer) = fluence_net::identity::peer_id_of(key) {
                    let target = DhtTarget::Peer(PeerIdBytes(peer.to_bytes()));
                    if let Ok(found) = closest(entry, target, 1).await {
                        known = found
                            .into_iter()
                            .filter(|p| key_of(&p.peer) == Some(*key))
                            .flat_map(|p| p.addrs)
                            .collect();
                    }
                }
            }
            let label = known.first().cloned().unwrap_or_else(|| key.to_hex());
            match self.connect(*key, known).await {
                Ok(connection) => members.push(Member::new(Some(*key), label, connection)),
                // Left out of the route; reads and writes use the others.
                Err(error) => last_error = Some(error),
            }
        }
        // The entry node first when it is a member: writes and r = 1 reads
        // then go to the same member, so a read follows the gateway's own
        // acknowledged writes as long as that member is up.
        if let Some((entry, _)) = &self.entry {
            members.sort_by_key(|member| member.key != Some(*entry));
        }
        if members.is_empty() {
            return Err(last_error.unwrap_or_else(|| {
                ClientError::Unavailable("no member of the cluster is reachable".into())
            }));
        }
        let epochs = vec![Epoch {
            epoch: fluence_proto::cluster::GENESIS_EPOCH,
            members: keys.clone(),
            base: None,
        }];
        Ok(Route {
            keys,
            epochs,
            members,
        })
    }
}

/// The membership epochs of a route answer for `dataset`, the current
/// one last, after checking them: the `Create` is this dataset's, signed
/// by its owner (whose key the id derives from), and carries a genesis
/// every member signed; every change since was finalized by the members
/// before it (`fluence_chain::verify_history`).
pub fn check_route(
    dataset: &DatasetId,
    answer: &fluence_proto::RouteAnswer,
) -> Result<Vec<Epoch>, ClientError> {
    if answer.create.body.dataset != *dataset {
        return Err(ClientError::Integrity(format!(
            "asked for the cluster of {dataset}, a node answered with {}'s",
            answer.create.body.dataset
        )));
    }
    let invalid = |what: String| {
        ClientError::Integrity(format!(
            "a node sent an invalid cluster for {dataset}: {what}"
        ))
    };
    let mut reader = fluence_proto::Reader::new(&answer.changes);
    let changes = reader
        .vec(fluence_chain::HISTORY_CHANGES_MAX, "membership changes")
        .map_err(|e| invalid(e.to_string()))?;
    reader.finish().map_err(|e| invalid(e.to_string()))?;
    let history = fluence_chain::ClusterHistory {
        create: answer.create.clone(),
        changes,
    };
    fluence_chain::verify_history(&history).map_err(|e| invalid(e.to_string()))
}

/// The member key a peer id carries, if it is an ed25519 one.
pub fn key_of(peer: &PeerIdBytes) -> Option<PublicKey> {
    let peer = PeerId::from_bytes(&peer.0).ok()?;
    fluence_net::identity::member_key_of(&peer).ok()
}

/// The `count` nodes closest to `target`, by a lookup through `entry`.
pub async fn closest<E: Transport>(
    entry: &E,
    target: DhtTarget,
    count: u8,
) -> Result<Vec<DhtPeer>, ClientError> {
    match entry
        .call(&Request::Ops(OpsRequest::Closest { target, count }))
        .await?
    {
        Response::Ops(OpsResponse::Closest(closest)) => Ok(closest.peers),
        Response::Error(error) => Err(ClientError::Node(error)),
        other => Err(ClientError::Integrity(format!(
            "a node answered a lookup with {other:?}"
        ))),
    }
}

/// Why no cluster could be formed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TooFewAccepting {
    pub k: usize,
    /// Each node that refused or did not answer, and why.
    pub refusals: Vec<(PublicKey, String)>,
    pub candidates: usize,
}

impl std::fmt::Display for TooFewAccepting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "only {} of the {} nodes closest to the dataset accept it; its cluster needs {}",
            self.candidates - self.refusals.len(),
            self.candidates,
            self.k
        )?;
        for (key, reason) in &self.refusals {
            write!(f, "; {}…: {reason}", &key.to_hex()[..16])?;
        }
        Ok(())
    }
}

/// What a candidate answered an offer.
pub type OfferResult = Result<OfferAnswer, String>;

/// Placement's offers: `candidates` (the nodes closest to `dataset`) are
/// put in distance order; the k closest not yet refused are offered the
/// dataset with exactly that member list (`ask(node, members)`, all at
/// once); any refusal, error or missing answer removes that node and the
/// next list is offered, until all k accept. Returns the members in
/// distance order with their acceptances (not checked here: the caller
/// checks them with the genesis).
pub async fn gather_acceptances<F, Fut>(
    dataset: &DatasetId,
    k: usize,
    candidates: &[PublicKey],
    ask: F,
) -> Result<Vec<Seat>, TooFewAccepting>
where
    F: Fn(PublicKey, Vec<PublicKey>) -> Fut,
    Fut: Future<Output = OfferResult>,
{
    let target = Target::Dataset(*dataset).key();
    let mut ordered: Vec<(PeerId, PublicKey)> = candidates
        .iter()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .filter_map(|key| Some((fluence_net::identity::peer_id_of(key).ok()?, *key)))
        .collect();
    ordered.sort_by(|(a, _), (b, _)| keyspace::by_distance(&target, a, b));
    let mut refusals: Vec<(PublicKey, String)> = Vec::new();
    for _ in 0..=PLACEMENT_ROUNDS_MAX {
        let proposal: Vec<PublicKey> = ordered
            .iter()
            .map(|(_, key)| *key)
            .filter(|key| !refusals.iter().any(|(refused, _)| refused == key))
            .take(k)
            .collect();
        if proposal.len() < k {
            break;
        }
        let answers =
            futures::future::join_all(proposal.iter().map(|key| ask(*key, proposal.clone()))).await;
        let mut seats = Vec::with_capacity(k);
        for (key, answer) in proposal.iter().zip(answers) {
            match answer {
                Ok(OfferAnswer::Accepted(acceptance)) => seats.push(Seat {
                    key: *key,
                    acceptance,
                }),
                Ok(OfferAnswer::Refused(refusal)) => {
                    refusals.push((*key, refusal.describe().to_string()))
                }
                Err(error) => refusals.push((*key, error)),
            }
        }
        if seats.len() == k {
            return Ok(seats);
        }
    }
    Err(TooFewAccepting {
        k,
        refusals,
        candidates: ordered.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use fluence_net::placement::{place, Candidate};
    use fluence_proto::{Refusal, Signature};
    use proptest::prelude::*;
    use std::sync::Mutex;

    fn node_keys(n: usize, seed: u8) -> Vec<PublicKey> {
        (0..n)
            .map(|i| {
                let key =
                    fluence_crypto::sign::SigningKey::from_seed(&[seed.wrapping_add(i as u8); 32]);
                PublicKey(key.public_key())
            })
            .collect()
    }

    proptest! {
        /// The members offers end with are exactly the placement rule's:
        /// the k closest that accept, in distance order, whatever the
        /// candidates' order; every accepted list was offered whole to
        /// each of its members.
        #[test]
        fn offers_end_at_the_k_closest_accepting(
            seed in any::<u8>(),
            n in 1usize..12,
            refusing in proptest::collection::vec(any::<bool>(), 12),
            k in prop_oneof![Just(1usize), Just(4usize), Just(7usize)],
            dataset in any::<[u8; 32]>(),
        ) {
            let keys = node_keys(n, seed);
            let dataset = DatasetId(dataset);
            let refuses = |key: &PublicKey| {
                refusing[keys.iter().position(|k| k == key).unwrap()]
            };
            let offered: Mutex<Vec<(PublicKey, Vec<PublicKey>)>> = Mutex::new(Vec::new());
            let mut shuffled = keys.clone();
            shuffled.reverse();
            let result = futures::executor::block_on(gather_acceptances(&dataset, k, &shuffled, |key, members| {
                offered.lock().unwrap().push((key, members));
                let answer = if refuses(&key) {
                    OfferAnswer::Refused(Refusal::Full)
                } else {
                    OfferAnswer::Accepted(Signature([1; 64]))
                };
                async move { Ok(answer) }
            }));
            let candidates: Vec<Candidate> = keys
                .iter()
                .map(|key| Candidate {
                    peer: fluence_net::identity::peer_id_of(key).unwrap(),
                    accepts: !refuses(key),
                })
                .collect();
            match (result, place(&dataset, k, &candidates)) {
                (Ok(seats), Ok(placement)) => {
                    let chosen: Vec<PublicKey> = seats.iter().map(|s| s.key).collect();
                    let expected: Vec<PublicKey> = placement
                        .members
                        .iter()
                        .map(|p| fluence_net::identity::member_key_of(p).unwrap())
                        .collect();
                    prop_assert_eq!(&chosen, &expected);
                    let offered = offered.lock().unwrap();
                    for key in &chosen {
                        prop_assert!(offered.iter().any(|(to, list)| to == key && *list == chosen));
                    }
                }
                (Err(error), Err(_)) => {
                    prop_assert_eq!(error.k, k);
                    prop_assert!(error.candidates - error.refusals.len() < k);
                }
                (ours, rule) => prop_assert!(false, "offers {:?}, rule {:?}", ours.map(|s| s.len()), rule),
            }
        }
    }

    #[test]
    fn a_silent_node_is_skipped_like_a_refusal_and_named() {
        let keys = node_keys(6, 40);
        let dataset = DatasetId([3; 32]);
        let target = Target::Dataset(dataset).key();
        let mut by_distance = keys.clone();
        by_distance.sort_by(|a, b| {
            keyspace::by_distance(
                &target,
                &fluence_net::identity::peer_id_of(a).unwrap(),
                &fluence_net::identity::peer_id_of(b).unwrap(),
            )
        });
        let silent = by_distance[1];
        let seats = futures::executor::block_on(gather_acceptances(
            &dataset,
            4,
            &keys,
            |key, _| async move {
                if key == silent {
                    Err("no answer".to_string())
                } else {
                    Ok(OfferAnswer::Accepted(Signature([2; 64])))
                }
            },
        ))
        .unwrap();
        let chosen: Vec<PublicKey> = seats.iter().map(|s| s.key).collect();
        let mut expected = by_distance.clone();
        expected.remove(1);
        expected.truncate(4);
        assert_eq!(chosen, expected);

        // Three of six silent: a clear error naming them.
        let error =
            futures::executor::block_on(gather_acceptances(&dataset, 4, &keys, |key, _| {
                let refuse = by_distance[..3].contains(&key);
                async move {
                    if refuse {
                        Ok(OfferAnswer::Refused(Refusal::NotAccepting))
                    } else {
                        Ok(OfferAnswer::Accepted(Signature([2; 64])))
                    }
                }
            }))
            .unwrap_err();
        assert_eq!(error.refusals.len(), 3);
        assert!(
            error.to_string().contains("only 3 of the 6 nodes"),
            "{error}"
        );
        assert!(error.to_string().contains("not accepting"), "{error}");
    }
}
