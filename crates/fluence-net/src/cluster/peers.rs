//! commonware-p2p's `Provider` (one dataset's member set, fixed from its
//! genesis: peer set 0) and `Blocker` (members ignored for
//! [`BLOCK_DURATION`] after consensus caught them sending invalid
//! messages).
//!
//! Blocking is node-wide, as in commonware's networks: a member that
//! misbehaves in one cluster is not trusted in another. It is not a
//! disconnection of the libp2p connection (which may carry other
//! protocols) but of the cluster protocol: frames from the member are
//! dropped on arrival and nothing is sent to it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use commonware_actor::Feedback;
use commonware_cryptography::ed25519;
use commonware_p2p::{
    BlockedSubscription, Blocker, PeerSetSubscription, PeerSetUpdate, Provider, TrackedPeers,
};
use commonware_utils::channel::{mpsc, ring};
use commonware_utils::ordered::Set;

use super::{lock, read, DatasetCluster, Membership, Shared, BLOCK_DURATION};

/// The one peer set id of a dataset: its genesis membership (a later
/// membership change would be the next).
pub const PEER_SET_ID: u64 = 0;

/// One dataset's member set and the subscribers to it.
pub struct PeerSet {
    members: Set<ed25519::PublicKey>,
    /// Kept so the subscriptions stay open: commonware's engines stop
    /// when their peer-set subscription closes.
    subscribers: Mutex<Vec<mpsc::UnboundedSender<PeerSetUpdate<ed25519::PublicKey>>>>,
}

impl PeerSet {
    pub fn new(membership: &Membership) -> Self {
        PeerSet {
            members: Set::from_iter_dedup(membership.all().iter().map(|m| m.consensus.clone())),
            subscribers: Mutex::new(Vec::new()),
        }
    }

    fn update(&self) -> PeerSetUpdate<ed25519::PublicKey> {
        let tracked = TrackedPeers::primary(self.members.clone());
        PeerSetUpdate {
            index: PEER_SET_ID,
            latest: tracked.clone(),
            all: tracked,
        }
    }
}

/// Blocked nodes (node-wide) and the subscribers to changes.
pub struct PeerState {
    blocked: Mutex<HashMap<ed25519::PublicKey, Instant>>,
    blocked_subscribers: Mutex<Vec<ring::Sender<Set<ed25519::PublicKey>>>>,
}

impl PeerState {
    pub fn new() -> Self {
        PeerState {
            blocked: Mutex::new(HashMap::new()),
            blocked_subscribers: Mutex::new(Vec::new()),
        }
    }

    pub fn is_blocked(&self, key: &ed25519::PublicKey) -> bool {
        lock(&self.blocked)
            .get(key)
            .is_some_and(|until| Instant::now() < *until)
    }

    fn blocked_now(&self) -> Set<ed25519::PublicKey> {
        let mut blocked = lock(&self.blocked);
        let now = Instant::now();
        blocked.retain(|_, until| now < *until);
        Set::from_iter_dedup(blocked.keys().cloned())
    }

    fn publish_blocked(&self) {
        let set = self.blocked_now();
        lock(&self.blocked_subscribers).retain(|subscriber| subscriber.send_lossy(set.clone()));
    }
}

/// One dataset's member set, for commonware's engines.
#[derive(Clone)]
pub struct ClusterPeers {
    cluster: Arc<DatasetCluster>,
}

impl std::fmt::Debug for ClusterPeers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterPeers")
            .field("members", &self.cluster.peers.members.len())
            .finish()
    }
}

impl ClusterPeers {
    pub(super) fn new(cluster: Arc<DatasetCluster>) -> Self {
        ClusterPeers { cluster }
    }
}

impl Provider for ClusterPeers {
    type PublicKey = ed25519::PublicKey;

    fn peer_set(
        &mut self,
        id: u64,
    ) -> impl std::future::Future<Output = Option<TrackedPeers<Self::PublicKey>>> + Send {
        let peers =
            (id == PEER_SET_ID).then(|| TrackedPeers::primary(self.cluster.peers.members.clone()));
        async move { peers }
    }

    fn subscribe(
        &mut self,
    ) -> impl std::future::Future<Output = PeerSetSubscription<Self::PublicKey>> + Send {
        let (sender, receiver) = mpsc::unbounded_channel();
        // One update, now; membership never changes afterwards.
        let _ = sender.send(self.cluster.peers.update());
        let mut subscribers = lock(&self.cluster.peers.subscribers);
        subscribers.retain(|s| !s.is_closed());
        subscribers.push(sender);
        async move { receiver }
    }
}

/// Blocks misbehaving members.
#[derive(Clone)]
pub struct ClusterBlocker {
    shared: Arc<Shared>,
}

impl ClusterBlocker {
    pub(super) fn new(shared: Arc<Shared>) -> Self {
        ClusterBlocker { shared }
    }
}

impl Blocker for ClusterBlocker {
    type PublicKey = ed25519::PublicKey;

    fn block(&mut self, peer: Self::PublicKey) -> Feedback {
        let shared = &self.shared;
        if shared.closed.load(std::sync::atomic::Ordering::Acquire) {
            return Feedback::Closed;
        }
        // Only other members are blocked: the local node never sends to
        // itself, and a stranger is never heard from anyway.
        if !read(&shared.links).contains_key(&peer) {
            return Feedback::Ok;
        }
        tracing::warn!(member = ?peer, "blocking a cluster member for {BLOCK_DURATION:?}");
        lock(&shared.peers.blocked).insert(peer, Instant::now() + BLOCK_DURATION);
        shared.peers.publish_blocked();
        // Tell subscribers again when the block has run out.
        let expiring = Arc::downgrade(shared);
        shared.runtime.spawn(async move {
            tokio::time::sleep(BLOCK_DURATION).await;
            if let Some(shared) = expiring.upgrade() {
                shared.peers.publish_blocked();
            }
        });
        Feedback::Ok
    }

    fn blocked(&mut self) -> BlockedSubscription<Self::PublicKey> {
        let (sender, receiver) =
            ring::channel(std::num::NonZeroUsize::new(1).expect("one is not zero"));
        let _ = sender.send_lossy(self.shared.peers.blocked_now());
        lock(&self.shared.peers.blocked_subscribers).push(sender);
        receiver
    }
}
