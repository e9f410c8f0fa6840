//! The coordinator: who proposes a membership change, and how its new
//! member list is gathered (issue 4, part 4; whitepaper, "Network
//! Overview").
//!
//! A member that has been out of reach for the grace period is replaced
//! by the next closest willing node. Every member looks at each cluster it
//! serves once per [`COORDINATE_INTERVAL`]; the one that acts is the
//! first member, in key order, that its own failure detector still
//! reaches ([`coordinator`]), so normally exactly one member proposes and
//! a coordinator that dies is succeeded by the next one a grace period
//! later. It:
//!
//! 1. looks up the nodes closest to the dataset id through the DHT;
//! 2. offers the departed member's seat, at the same position in the
//!    list, to the closest non-member; a refusal (full, not accepting)
//!    or no answer moves on to the next closest ([`gather_replacement`]);
//! 3. once the newcomer accepts, asks every continuing member to accept
//!    the same list for the next epoch (each checks that exactly one seat
//!    changed);
//! 4. proposes the change to its replica, which gossips it to the
//!    members; it is finalized only if 2f + 1 of them, each by its own
//!    detector, agree the departed member is out of reach.
//!
//! A change that is not finalized within [`RETRY_AFTER`] is gathered and
//! proposed again. Nothing else moves a seat: a node that joins closer to
//! a dataset than its members causes no change (no rebalancing), so
//! joins never churn clusters.
//!
//! A member leaving gracefully (`fluence leave`) runs the same steps for
//! its own seat with its signed departure, after checking that every
//! other member is reachable: it hands its seat over while it still
//! votes, so the cluster never runs short of a member.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use fluence_chain::history::Epoch;
use fluence_net::discovery::Discovery;
use fluence_net::keyspace::{self, Target};
use fluence_net::{Multiaddr, NodeClient, PeerId};
use fluence_proto::{
    DatasetId, Departure, MembershipChange, NodeError, OfferAnswer, PublicKey, Request, Response,
    Seat, Signature,
};

use crate::cluster::{Replica, Replicas};
use crate::detector::SAMPLE_INTERVAL;

/// How often each member looks for a member to replace.
pub const COORDINATE_INTERVAL: Duration = Duration::from_secs(1);
/// Waited past the grace period before proposing, so the other members'
/// detectors (sampled every [`SAMPLE_INTERVAL`]) agree by the time the
/// change is voted on.
pub const PROPOSE_MARGIN: Duration = SAMPLE_INTERVAL.saturating_mul(2);
/// How long a proposed change has to be finalized before it is gathered
/// and proposed again.
pub const RETRY_AFTER: Duration = Duration::from_secs(10);
/// Nodes a replacement lookup asks the DHT for: room for the members
/// themselves and for several refusals.
pub const CANDIDATES_MAX: usize = 20;
/// How long dialing a node and hearing its answer to an offer may take.
pub const OFFER_TIMEOUT: Duration = Duration::from_secs(5);
/// Distinct addresses of one candidate an offer tries, at most. Each may
/// take [`OFFER_TIMEOUT`], so a node that advertises many addresses (or one
/// many times) holds a replacement up for 15 s at worst, not 5 s per entry.
pub const OFFER_ADDRESSES_MAX: usize = 3;

/// How long `fluence leave` waits for its change to be finalized.
pub const LEAVE_TIMEOUT: Duration = Duration::from_secs(120);

/// A node's part in membership changes: it looks for members to replace
/// in the clusters it coordinates, and hands its own seat over when it
/// leaves.
pub struct Coordinator {
    discovery: Discovery,
    proposals: Proposals,
}

impl Coordinator {
    /// Looks up replacements through `discovery`.
    pub fn new(discovery: Discovery) -> Self {
        Coordinator {
            discovery,
            proposals: Proposals::default(),
        }
    }

    /// One look at every cluster whose replica runs here: a member out
    /// of reach past the grace period (and [`PROPOSE_MARGIN`]) is
    /// replaced if this node coordinates the cluster.
    pub async fn round(&self, replicas: &Replicas) {
        let local = replicas.net().local().key;
        let detector = replicas.detector();
        let gone_after = detector.grace() + PROPOSE_MARGIN;
        for dataset in replicas.datasets().await {
            let Some(replica) = replicas.replica(&dataset).await else {
                continue;
            };
            let Some(cluster) = replicas.memberships().cluster(&dataset) else {
                continue;
            };
            let epoch = &cluster.current;
            if !serves_epoch(&replica, epoch) {
                continue;
            }
            // The first gone member in key order: one change at a time.
            let departed = epoch
                .members
                .iter()
                .filter(|member| **member != local && detector.out_of_reach(member) >= gone_after)
                .min();
            let Some(departed) = departed else {
                continue;
            };
            let reachable = |member: &PublicKey| *member == local || !detector.unreachable(member);
            if coordinator(&epoch.members, reachable) != Some(local)
                || !self.proposals.start(dataset, epoch.epoch)
            {
                continue;
            }
            drop(replica);
            tracing::info!(%dataset, %departed, epoch = epoch.epoch, "a member is out of reach past the grace period; replacing it");
            match self
                .replace(replicas, dataset, epoch, *departed, Departure::Unreachable)
                .await
            {
                Ok(newcomer) => {
                    tracing::info!(%dataset, %departed, %newcomer, next_epoch = epoch.epoch + 1, "proposed a membership change")
                }
                Err(error) => {
                    tracing::warn!(%dataset, %departed, %error, "could not propose a replacement yet");
                    self.proposals.failed(&dataset);
                }
            }
        }
    }

    /// Gathers the next epoch's list with `departed`'s seat handed to
    /// the closest willing non-member, and proposes the change to the
    /// dataset's replica if it still serves `epoch` (it is not held
    /// meanwhile: a replica whose epoch ends must be free to close).
    /// Returns the newcomer.
    async fn replace(
        &self,
        replicas: &Replicas,
        dataset: DatasetId,
        epoch: &Epoch,
        departed: PublicKey,
        departure: Departure,
    ) -> Result<PublicKey, String> {
        let local = replicas.net().local().key;
        let near = lookup_near(&self.discovery, &dataset).await?;
        // Where to dial everyone the lookup found, members included (they
        // are usually among the nodes closest to their dataset).
        let mut addrs: HashMap<PublicKey, Vec<Multiaddr>> = HashMap::new();
        for (peer, found) in &near {
            if let Ok(key) = fluence_net::identity::member_key_of(peer) {
                addrs.entry(key).or_default().extend(found.iter().cloned());
            }
        }
        let candidates = candidates(
            &dataset,
            &epoch.members,
            near.into_iter().map(|(peer, _)| peer),
        );
        for member in &epoch.members {
            if *member != local && *member != departed {
                let mut known = replicas.net().addresses(member);
                known.extend(addrs.remove(member).unwrap_or_default());
                addrs.insert(*member, addresses_of(&self.discovery, member, known).await);
            }
        }
        let next_epoch = epoch.epoch + 1;
        let seats = gather_replacement(&epoch.members, &departed, &candidates, |key, list| {
            let addrs = addrs.get(&key).cloned().unwrap_or_default();
            async move {
                if key != local {
                    return offer_remote(key, &addrs, dataset, next_epoch, list).await;
                }
                match replicas.offer(dataset, next_epoch, &list) {
                    Response::Offer(answer) => Ok(answer),
                    Response::Error(error) => Err(error.to_string()),
                    other => Err(format!("answered an offer with {other:?}")),
                }
            }
        })
        .await
        .map_err(|error| error.to_string())?;
        let newcomer = seats
            .iter()
            .map(|seat| seat.key)
            .find(|key| !epoch.members.contains(key))
            .ok_or("the gathered list has no newcomer")?;
        let change = MembershipChange {
            epoch: next_epoch,
            departed,
            departure,
            members: seats,
        };
        let replica = replicas
            .replica(&dataset)
            .await
            .filter(|replica| serves_epoch(replica, epoch))
            .ok_or("the replica no longer serves the epoch")?;
        replica
            .propose_change(change)
            .map_err(|error| format!("the replica refused the change: {error}"))?;
        Ok(newcomer)
    }

    /// Leaves `dataset`'s cluster: checks `signature` is this node's
    /// departure from `epoch` (the one it serves), that every other
    /// member is reachable (so handing the seat over never leaves the
    /// cluster two members short), hands the seat to the closest
    /// willing non-member, and waits until the change is finalized.
    /// Returns the new epoch and the newcomer.
    pub async fn leave(
        &self,
        replicas: &Replicas,
        dataset: DatasetId,
        epoch: u64,
        signature: Signature,
    ) -> Result<(u64, PublicKey), NodeError> {
        let local = replicas.net().local().key;
        let cluster = replicas
            .memberships()
            .cluster(&dataset)
            .ok_or(NodeError::DatasetNotFound)?;
        let current = &cluster.current;
        if current.epoch != epoch {
            return Err(NodeError::BadRequest(format!(
                "this node serves {dataset} in epoch {}, not {epoch}",
                current.epoch
            )));
        }
        fluence_crypto::sign::verify(
            &local.0,
            fluence_proto::LEAVE_SIGNING_DOMAIN,
            &fluence_proto::cluster::leave_digest(&dataset, epoch),
            &signature.0,
        )
        .map_err(|_| NodeError::BadSignature)?;
        if let Some(missing) = current
            .members
            .iter()
            .find(|member| **member != local && !replicas.net().is_connected(member))
        {
            return Err(NodeError::Unavailable(format!(
                "member {missing} is out of reach: leaving now would leave the cluster two members short; try again once it is back or replaced"
            )));
        }
        let replica = replicas.get_or_start(dataset).await?;
        if !serves_epoch(&replica, current) {
            return Err(NodeError::Unavailable(format!(
                "this node's replica of {dataset} is not serving epoch {epoch} yet (syncing or restarting); try again"
            )));
        }
        drop(replica);
        let newcomer = self
            .replace(
                replicas,
                dataset,
                current,
                local,
                Departure::Left(signature),
            )
            .await
            .map_err(|error| {
                NodeError::Unavailable(format!("cannot hand the seat over: {error}"))
            })?;
        tracing::info!(%dataset, %newcomer, epoch, "leaving the cluster; waiting for the change to be finalized");
        let deadline = Instant::now() + LEAVE_TIMEOUT;
        while Instant::now() < deadline {
            let left = replicas
                .memberships()
                .cluster(&dataset)
                .is_none_or(|cluster| cluster.current.epoch > epoch);
            if left {
                return Ok((epoch + 1, newcomer));
            }
            tokio::time::sleep(SAMPLE_INTERVAL).await;
        }
        Err(NodeError::Unavailable(format!(
            "the change handing this node's seat to {newcomer} was not finalized within {LEAVE_TIMEOUT:?}; it may still be; ask again to retry"
        )))
    }
}

/// Whether `replica` serves `epoch` and can propose in it: not syncing,
/// not stopped on a fault, its epoch not ended.
fn serves_epoch(replica: &Replica, epoch: &Epoch) -> bool {
    replica.epoch() == epoch.epoch
        && !replica.syncing()
        && replica.fault().is_none()
        && replica.epoch_end().is_none()
}

/// The member that coordinates changes of a cluster of `members`: the
/// first in key order that is `reachable` (by the asking node's own
/// detector; the node itself always is). `None` if none is.
pub fn coordinator(
    members: &[PublicKey],
    reachable: impl Fn(&PublicKey) -> bool,
) -> Option<PublicKey> {
    let mut ordered = members.to_vec();
    ordered.sort_unstable();
    ordered.into_iter().find(|member| reachable(member))
}

/// `members` with `departed`'s seat given to `newcomer`, at the same
/// position (the order of the list is what every member signs).
pub fn seat_replaced(
    members: &[PublicKey],
    departed: &PublicKey,
    newcomer: PublicKey,
) -> Vec<PublicKey> {
    members
        .iter()
        .map(|member| {
            if member == departed {
                newcomer
            } else {
                *member
            }
        })
        .collect()
}

/// The nodes `found` by a lookup that may take a seat in a cluster of
/// `members`: not members (nor the departed one, who is still listed),
/// closest to `dataset` first, each once.
pub fn candidates(
    dataset: &DatasetId,
    members: &[PublicKey],
    found: impl IntoIterator<Item = PeerId>,
) -> Vec<PublicKey> {
    let target = Target::Dataset(*dataset).key();
    let mut peers: Vec<(PeerId, PublicKey)> = Vec::new();
    for peer in found {
        let Ok(key) = fluence_net::identity::member_key_of(&peer) else {
            continue;
        };
        if !members.contains(&key) && !peers.iter().any(|(_, known)| *known == key) {
            peers.push((peer, key));
        }
    }
    peers.sort_by(|(a, _), (b, _)| keyspace::by_distance(&target, a, b));
    peers.into_iter().map(|(_, key)| key).collect()
}

/// Why no replacement list could be gathered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplacementError {
    #[error("no node outside the cluster took the seat ({}); asked {asked}", describe(.refusals))]
    NoTaker {
        asked: usize,
        refusals: Vec<(PublicKey, String)>,
    },
    #[error("member {0} did not accept the next epoch's list: {1}")]
    MemberRefused(PublicKey, String),
}

fn describe(refusals: &[(PublicKey, String)]) -> String {
    if refusals.is_empty() {
        return "no candidates".into();
    }
    refusals
        .iter()
        .map(|(key, why)| format!("{}…: {why}", &key.to_hex()[..16]))
        .collect::<Vec<_>>()
        .join("; ")
}

/// What a node answered an offer (an error: no answer).
pub type OfferResult = Result<OfferAnswer, String>;

/// Gathers the next epoch's members: `departed`'s seat in `members` is
/// offered to each of `candidates` in turn (closest first) until one
/// accepts; then every continuing member is asked to accept the same
/// list. `ask(node, list)` makes one offer. Returns the seats in list
/// order with their acceptances (checked later, with the change).
pub async fn gather_replacement<F, Fut>(
    members: &[PublicKey],
    departed: &PublicKey,
    candidates: &[PublicKey],
    ask: F,
) -> Result<Vec<Seat>, ReplacementError>
where
    F: Fn(PublicKey, Vec<PublicKey>) -> Fut,
    Fut: std::future::Future<Output = OfferResult>,
{
    let mut refusals = Vec::new();
    for newcomer in candidates {
        let list = seat_replaced(members, departed, *newcomer);
        let accepted = match ask(*newcomer, list.clone()).await {
            Ok(OfferAnswer::Accepted(acceptance)) => acceptance,
            Ok(OfferAnswer::Refused(refusal)) => {
                refusals.push((*newcomer, refusal.describe().to_string()));
                continue;
            }
            Err(error) => {
                refusals.push((*newcomer, error));
                continue;
            }
        };
        let continuing: Vec<PublicKey> =
            list.iter().copied().filter(|key| key != newcomer).collect();
        let answers =
            futures::future::join_all(continuing.iter().map(|key| ask(*key, list.clone()))).await;
        let mut seats = Vec::with_capacity(list.len());
        for key in &list {
            if key == newcomer {
                seats.push(Seat {
                    key: *key,
                    acceptance: accepted,
                });
                continue;
            }
            let index = continuing
                .iter()
                .position(|member| member == key)
                .expect("every other listed key is a continuing member");
            match &answers[index] {
                Ok(OfferAnswer::Accepted(acceptance)) => seats.push(Seat {
                    key: *key,
                    acceptance: *acceptance,
                }),
                Ok(OfferAnswer::Refused(refusal)) => {
                    return Err(ReplacementError::MemberRefused(
                        *key,
                        refusal.describe().to_string(),
                    ))
                }
                Err(error) => return Err(ReplacementError::MemberRefused(*key, error.clone())),
            }
        }
        return Ok(seats);
    }
    Err(ReplacementError::NoTaker {
        asked: candidates.len(),
        refusals,
    })
}

/// The addresses an offer dials, in the order given: duplicates dropped,
/// at most [`OFFER_ADDRESSES_MAX`].
fn offer_addresses(addrs: &[Multiaddr]) -> Vec<&Multiaddr> {
    let mut chosen: Vec<&Multiaddr> = Vec::with_capacity(OFFER_ADDRESSES_MAX);
    for addr in addrs {
        if chosen.len() == OFFER_ADDRESSES_MAX {
            break;
        }
        if !chosen.contains(&addr) {
            chosen.push(addr);
        }
    }
    chosen
}

/// Offers `dataset` at `epoch` with `members` to the node `key`, dialing
/// it at its [`offer_addresses`] (its peer id appended) until one answers.
pub async fn offer_remote(
    key: PublicKey,
    addrs: &[Multiaddr],
    dataset: DatasetId,
    epoch: u64,
    members: Vec<PublicKey>,
) -> OfferResult {
    let peer = fluence_net::identity::peer_id_of(&key).map_err(|e| e.to_string())?;
    if addrs.is_empty() {
        return Err("no known address".into());
    }
    let mut last_error = String::new();
    let request = Request::Offer {
        dataset,
        epoch,
        members,
    };
    for addr in offer_addresses(addrs) {
        let dial = addr
            .clone()
            .with_p2p(peer)
            .map_err(|addr| format!("{addr} names another peer"))?;
        let answer = tokio::time::timeout(OFFER_TIMEOUT, async {
            let client = NodeClient::connect(dial, OFFER_TIMEOUT).await?;
            client.call(&request).await
        })
        .await;
        match answer {
            Ok(Ok(Response::Offer(answer))) => return Ok(answer),
            Ok(Ok(Response::Error(error))) => return Err(error.to_string()),
            Ok(Ok(other)) => return Err(format!("answered an offer with {other:?}")),
            Ok(Err(error)) => last_error = error.to_string(),
            Err(_) => last_error = format!("no answer within {OFFER_TIMEOUT:?}"),
        }
    }
    Err(last_error)
}

/// The nodes closest to `dataset` (members among them) with where to
/// dial them, as a lookup through the network finds them.
pub async fn lookup_near(
    discovery: &Discovery,
    dataset: &DatasetId,
) -> Result<Vec<(PeerId, Vec<Multiaddr>)>, String> {
    let closest = discovery
        .closest(Target::Dataset(*dataset), CANDIDATES_MAX)
        .await
        .map_err(|e| format!("lookup of the nodes closest to {dataset}: {e}"))?;
    Ok(closest
        .peers
        .into_iter()
        .map(|found| (found.peer, found.addrs))
        .collect())
}

/// Where a node is dialed: the addresses given, else a lookup of its
/// peer id.
pub async fn addresses_of(
    discovery: &Discovery,
    key: &PublicKey,
    known: Vec<Multiaddr>,
) -> Vec<Multiaddr> {
    if !known.is_empty() {
        return known;
    }
    let Ok(peer) = fluence_net::identity::peer_id_of(key) else {
        return Vec::new();
    };
    match discovery.closest(Target::Peer(peer), 1).await {
        Ok(closest) => closest
            .peers
            .into_iter()
            .filter(|found| found.peer == peer)
            .flat_map(|found| found.addrs)
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// When a change of each dataset was last proposed, per epoch: a
/// proposal is repeated only after [`RETRY_AFTER`].
#[derive(Default)]
pub struct Proposals {
    last: std::sync::Mutex<HashMap<DatasetId, (u64, Instant)>>,
}

impl Proposals {
    /// Whether a change of `dataset` in `epoch` may be gathered now; if
    /// so, it counts as proposed from now on.
    pub fn start(&self, dataset: DatasetId, epoch: u64) -> bool {
        let mut last = self
            .last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        if let Some((proposed_epoch, at)) = last.get(&dataset) {
            if *proposed_epoch == epoch && now.duration_since(*at) < RETRY_AFTER {
                return false;
            }
        }
        last.insert(dataset, (epoch, now));
        true
    }

    /// Forgets a failed attempt, so the next round tries again at once
    /// (after the round's own interval).
    pub fn failed(&self, dataset: &DatasetId) {
        self.last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(dataset);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fluence_proto::{Refusal, Signature};

    fn keys(n: u8) -> Vec<PublicKey> {
        (0..n)
            .map(|i| {
                PublicKey(fluence_crypto::sign::SigningKey::from_seed(&[i + 1; 32]).public_key())
            })
            .collect()
    }

    #[test]
    fn an_offer_dials_a_few_distinct_addresses_in_order() {
        let addr =
            |port: u16| -> Multiaddr { format!("/ip4/127.0.0.1/tcp/{port}").parse().unwrap() };
        let many: Vec<Multiaddr> = [1, 1, 2, 1, 3, 4, 5].into_iter().map(addr).collect();
        let chosen: Vec<Multiaddr> = offer_addresses(&many).into_iter().cloned().collect();
        assert_eq!(chosen, vec![addr(1), addr(2), addr(3)]);
        let same: Vec<Multiaddr> = vec![addr(9); 50];
        assert_eq!(offer_addresses(&same), vec![&addr(9)]);
        assert!(offer_addresses(&[]).is_empty());
    }

    #[test]
    fn the_first_reachable_member_in_key_order_coordinates() {
        let members = keys(4);
        let mut sorted = members.clone();
        sorted.sort();
        assert_eq!(coordinator(&members, |_| true), Some(sorted[0]));
        assert_eq!(
            coordinator(&members, |key| *key != sorted[0]),
            Some(sorted[1])
        );
        assert_eq!(coordinator(&members, |_| false), None);
    }

    #[test]
    fn the_seat_keeps_its_position() {
        let members = keys(4);
        let newcomer = keys(5)[4];
        let next = seat_replaced(&members, &members[2], newcomer);
        assert_eq!(next, vec![members[0], members[1], newcomer, members[3]]);
    }

    #[test]
    fn candidates_leave_out_members_and_come_closest_first() {
        let all = keys(8);
        let dataset = DatasetId([9; 32]);
        let members = &all[..4];
        let found = all
            .iter()
            .rev()
            .map(|key| fluence_net::identity::peer_id_of(key).unwrap());
        let got = candidates(&dataset, members, found);
        let target = Target::Dataset(dataset).key();
        let mut expected = all[4..].to_vec();
        expected.sort_by(|a, b| {
            keyspace::by_distance(
                &target,
                &fluence_net::identity::peer_id_of(a).unwrap(),
                &fluence_net::identity::peer_id_of(b).unwrap(),
            )
        });
        assert_eq!(got, expected);
    }

    #[test]
    fn a_refusing_candidate_is_passed_over_and_every_member_signs_the_list() {
        let all = keys(7);
        let members = &all[..4];
        let departed = members[1];
        let candidates = &all[4..];
        let asked = std::sync::Mutex::new(Vec::new());
        let seats = futures::executor::block_on(gather_replacement(
            members,
            &departed,
            candidates,
            |key, list| {
                asked.lock().unwrap().push((key, list));
                let answer = if key == candidates[0] {
                    Ok(OfferAnswer::Refused(Refusal::Full))
                } else if key == candidates[1] {
                    Err("no answer".to_string())
                } else {
                    Ok(OfferAnswer::Accepted(Signature([key.0[0]; 64])))
                };
                async move { answer }
            },
        ))
        .unwrap();
        let expected = seat_replaced(members, &departed, candidates[2]);
        let keys: Vec<PublicKey> = seats.iter().map(|seat| seat.key).collect();
        assert_eq!(keys, expected);
        for seat in &seats {
            assert_eq!(seat.acceptance, Signature([seat.key.0[0]; 64]));
        }
        // The departed member is never asked; every continuing member
        // is asked for exactly the final list.
        let asked = asked.lock().unwrap();
        assert!(asked.iter().all(|(key, _)| *key != departed));
        for member in members.iter().filter(|key| **key != departed) {
            assert!(asked
                .iter()
                .any(|(key, list)| key == member && *list == expected));
        }
    }

    #[test]
    fn a_continuing_member_that_refuses_stops_the_round_and_no_taker_is_named() {
        let all = keys(6);
        let members = &all[..4];
        let error = futures::executor::block_on(gather_replacement(
            members,
            &members[0],
            &all[4..],
            |key, _| {
                let answer = if key == members[2] {
                    Err("busy".to_string())
                } else {
                    Ok(OfferAnswer::Accepted(Signature([1; 64])))
                };
                async move { answer }
            },
        ))
        .unwrap_err();
        assert_eq!(
            error,
            ReplacementError::MemberRefused(members[2], "busy".into())
        );
        let error = futures::executor::block_on(gather_replacement(
            members,
            &members[0],
            &all[4..],
            |_, _| async { Ok(OfferAnswer::Refused(Refusal::NotAccepting)) },
        ))
        .unwrap_err();
        assert!(
            matches!(&error, ReplacementError::NoTaker { asked: 2, refusals } if refusals.len() == 2)
        );
        assert!(error.to_string().contains("not accepting"), "{error}");
    }

    #[test]
    fn a_change_is_proposed_again_only_after_the_retry_interval_or_a_failure() {
        let proposals = Proposals::default();
        let dataset = DatasetId([1; 32]);
        assert!(proposals.start(dataset, 0));
        assert!(!proposals.start(dataset, 0));
        // The next epoch is a new change.
        assert!(proposals.start(dataset, 1));
        proposals.failed(&dataset);
        assert!(proposals.start(dataset, 1));
    }
}
