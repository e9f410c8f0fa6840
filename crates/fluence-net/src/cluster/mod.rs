//! The cluster transport: consensus messages between the members of a
//! cluster, over the node's one libp2p swarm, on the `/fluence/cluster/1`
//! protocol.
//!
//! # Wire format
//!
//! Each member opens one long-lived outbound stream to every other member
//! and only writes to it; the receiving member only reads. Frames are the
//! ones of `/fluence/rpc/2` ([`crate::frame`]) with kind `Cluster`:
//!
//! ```text
//! header   u32 LE payload length (≤ MESSAGE_LEN_MAX) · u64 LE channel id · kind 3
//! payload  dataset id (32 bytes) · message (≤ CLUSTER_MESSAGE_LEN_MAX)
//! ```
//!
//! Lengths are checked before anything is allocated; a malformed frame (a
//! wrong kind, a payload shorter than a dataset id, a channel id at or
//! above [`CHANNELS_PER_DATASET_MAX`]) ends the stream.
//!
//! # Demultiplexing
//!
//! A replica registers one [`ClusterSender`]/[`ClusterReceiver`] pair per
//! (dataset, channel) ([`ClusterNet::register`]); arriving messages go to
//! that pair's queue. Messages for a dataset no replica has registered are
//! dropped and reported once in a while on the unknown-dataset queue
//! ([`ClusterNet::take_unknown_datasets`]), so the node can start the
//! replica.
//!
//! # Who may speak
//!
//! Only members (membership is configured) are dialed, and inbound streams
//! from any other peer are closed unread. A member's consensus key is its
//! node identity ([`members`]). A peer blocked through [`ClusterBlocker`]
//! (consensus found it sent garbage) is ignored in both directions for
//! [`BLOCK_DURATION`].
//!
//! # Bounds
//!
//! Nothing waits for room and nothing grows without bound: each inbound
//! (dataset, channel) queue holds at most [`INBOUND_MESSAGES_PER_CHANNEL_MAX`]
//! messages and [`INBOUND_BYTES_PER_CHANNEL_MAX`] bytes, each peer's
//! outbound queue [`OUTBOUND_FRAMES_PER_PEER_MAX`] frames and
//! [`OUTBOUND_BYTES_PER_PEER_MAX`] bytes (an empty queue always takes one
//! message of any allowed size). What does not fit is dropped, as are
//! messages to a member that is not connected: consensus treats the
//! network as lossy and retransmits what matters (commonware's own
//! networks drop the same way).

mod channels;
mod inbound;
mod link;
pub mod members;
mod peers;
mod queue;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use fluence_proto::limits::MESSAGE_LEN_MAX;
use fluence_proto::{DatasetId, PublicKey};
use libp2p::identity::Keypair;
use libp2p::{Multiaddr, PeerId, StreamProtocol};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

pub use channels::{ClusterChecked, ClusterClosed, ClusterReceiver, ClusterSender};
pub use members::{ClusterMember, Member, Membership};
pub use peers::{ClusterBlocker, ClusterPeers};

use crate::streams::{InboundStream, StreamReply};
use crate::NetError;
use link::Link;
use queue::BoundedQueue;

/// The node-to-node protocol, negotiated once per stream.
pub const CLUSTER_PROTOCOL: StreamProtocol = StreamProtocol::new("/fluence/cluster/1");
/// Bytes of the dataset id that opens every cluster frame's payload.
pub const DATASET_PREFIX_LEN: usize = DatasetId::LEN;
/// The largest message one cluster frame carries.
pub const CLUSTER_MESSAGE_LEN_MAX: usize = MESSAGE_LEN_MAX - DATASET_PREFIX_LEN;
/// Channel ids a dataset may use (`0..CHANNELS_PER_DATASET_MAX`); a
/// replica uses eight.
pub const CHANNELS_PER_DATASET_MAX: u64 = 16;
/// Messages one inbound (dataset, channel) queue holds before arrivals
/// are dropped.
pub const INBOUND_MESSAGES_PER_CHANNEL_MAX: usize = 4096;
/// Bytes one inbound (dataset, channel) queue holds before arrivals are
/// dropped.
pub const INBOUND_BYTES_PER_CHANNEL_MAX: usize = 64 * 1024 * 1024;
/// Frames queued for one peer before further sends to it are dropped.
pub const OUTBOUND_FRAMES_PER_PEER_MAX: usize = 8192;
/// Bytes queued for one peer before further sends to it are dropped.
pub const OUTBOUND_BYTES_PER_PEER_MAX: usize = 128 * 1024 * 1024;
/// How long a blocked member is ignored.
pub const BLOCK_DURATION: Duration = Duration::from_secs(300);
/// Unknown-dataset reports waiting for the node; more are dropped.
pub const UNKNOWN_DATASET_REPORTS_MAX: usize = 64;

/// A message arrived for a dataset that has no registered replica here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnknownDataset {
    pub dataset: DatasetId,
    /// The member that sent it.
    pub from: PublicKey,
}

/// Why a channel could not be registered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegisterError {
    #[error("channel {channel} of dataset {dataset} is already registered")]
    Taken { dataset: DatasetId, channel: u64 },
    #[error("channel id {0} is not below {CHANNELS_PER_DATASET_MAX}")]
    OutOfRange(u64),
    #[error("the cluster transport has shut down")]
    Closed,
}

/// Asks the swarm for an outbound cluster stream to a peer.
pub struct OpenRequest {
    pub peer: PeerId,
    pub addrs: Vec<Multiaddr>,
    pub reply: StreamReply,
}

/// The swarm's side of the transport, handed to the [`crate::Server`]
/// that runs the node's swarm: it opens the streams the links ask for and
/// delivers the inbound cluster streams.
pub struct SwarmSide {
    pub open_requests: mpsc::Receiver<OpenRequest>,
    pub inbound: mpsc::Sender<InboundStream>,
}

type Inbox = BoundedQueue<(
    commonware_cryptography::ed25519::PublicKey,
    commonware_runtime::IoBuf,
)>;

struct Shared {
    membership: Membership,
    /// One per other member, by consensus key.
    links: HashMap<commonware_cryptography::ed25519::PublicKey, Arc<Link>>,
    inboxes: RwLock<HashMap<(DatasetId, u64), Arc<Inbox>>>,
    unknown: mpsc::Sender<UnknownDataset>,
    unknown_receiver: Mutex<Option<mpsc::Receiver<UnknownDataset>>>,
    peers: peers::PeerState,
    closed: std::sync::atomic::AtomicBool,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    runtime: tokio::runtime::Handle,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The transport: cheap to clone, shared by every replica of the node.
#[derive(Clone)]
pub struct ClusterNet {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for ClusterNet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterNet")
            .field("local", &self.shared.membership.local().key)
            .field("members", &self.shared.membership.all().len())
            .finish()
    }
}

/// Stream requests the links may have queued for the swarm at once.
const OPEN_REQUESTS_QUEUED_MAX: usize = 64;
/// Inbound streams negotiated and waiting to be read.
const INBOUND_STREAMS_QUEUED_MAX: usize = 64;

impl ClusterNet {
    /// Starts the transport of the node with `keypair` in the cluster of
    /// `members` (which must include it): one link task per other member
    /// that keeps a stream to it open, and one task that accepts inbound
    /// streams. Must run inside a tokio runtime. The returned
    /// [`SwarmSide`] goes to the node's [`crate::Server`].
    pub fn start(
        keypair: &Keypair,
        members: Vec<ClusterMember>,
    ) -> Result<(ClusterNet, SwarmSide), NetError> {
        let local = crate::identity::member_key(keypair)?;
        let membership = Membership::new(local, members)?;
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| NetError::Setup("the cluster transport needs a tokio runtime".into()))?;
        let (open_sender, open_requests) = mpsc::channel(OPEN_REQUESTS_QUEUED_MAX);
        let (inbound, inbound_streams) = mpsc::channel(INBOUND_STREAMS_QUEUED_MAX);
        let (unknown, unknown_receiver) = mpsc::channel(UNKNOWN_DATASET_REPORTS_MAX);
        let links = membership
            .others()
            .map(|member| {
                (
                    member.consensus.clone(),
                    Arc::new(Link::new(member.clone())),
                )
            })
            .collect();
        let shared = Arc::new(Shared {
            peers: peers::PeerState::new(&membership),
            membership,
            links,
            inboxes: RwLock::new(HashMap::new()),
            unknown,
            unknown_receiver: Mutex::new(Some(unknown_receiver)),
            closed: std::sync::atomic::AtomicBool::new(false),
            tasks: Mutex::new(Vec::new()),
            runtime: runtime.clone(),
        });
        let mut tasks = Vec::new();
        for link in shared.links.values() {
            tasks.push(runtime.spawn(link::run(Arc::clone(link), open_sender.clone())));
        }
        tasks.push(runtime.spawn(inbound::accept(Arc::downgrade(&shared), inbound_streams)));
        *lock(&shared.tasks) = tasks;
        Ok((
            ClusterNet { shared },
            SwarmSide {
                open_requests,
                inbound,
            },
        ))
    }

    /// This node as a member.
    pub fn local(&self) -> &Member {
        self.shared.membership.local()
    }

    /// The cluster's members, this node included.
    pub fn members(&self) -> &[Member] {
        self.shared.membership.all()
    }

    /// Registers channel `channel` of `dataset`: what members send on it
    /// arrives at the receiver, and the sender reaches the other members.
    /// The registration ends when the receiver is dropped.
    pub fn register(
        &self,
        dataset: DatasetId,
        channel: u64,
    ) -> Result<(ClusterSender, ClusterReceiver), RegisterError> {
        if channel >= CHANNELS_PER_DATASET_MAX {
            return Err(RegisterError::OutOfRange(channel));
        }
        if self.is_closed() {
            return Err(RegisterError::Closed);
        }
        let inbox = Arc::new(Inbox::new(
            INBOUND_MESSAGES_PER_CHANNEL_MAX,
            INBOUND_BYTES_PER_CHANNEL_MAX,
        ));
        {
            let mut inboxes = self
                .shared
                .inboxes
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            if inboxes.contains_key(&(dataset, channel)) {
                return Err(RegisterError::Taken { dataset, channel });
            }
            inboxes.insert((dataset, channel), Arc::clone(&inbox));
        }
        Ok((
            ClusterSender::new(Arc::clone(&self.shared), dataset, channel),
            ClusterReceiver::new(Arc::clone(&self.shared), dataset, channel, inbox),
        ))
    }

    /// The member set, as commonware's peer [`Provider`](commonware_p2p::Provider).
    pub fn peers(&self) -> ClusterPeers {
        ClusterPeers::new(Arc::clone(&self.shared))
    }

    /// Blocks members for every cluster of this node, as commonware's
    /// [`Blocker`](commonware_p2p::Blocker).
    pub fn blocker(&self) -> ClusterBlocker {
        ClusterBlocker::new(Arc::clone(&self.shared))
    }

    /// The reports of messages for datasets without a replica here; only
    /// the first call gets them.
    pub fn take_unknown_datasets(&self) -> Option<mpsc::Receiver<UnknownDataset>> {
        lock(&self.shared.unknown_receiver).take()
    }

    /// Whether a stream to `member` is open now (messages to it are sent,
    /// not dropped).
    pub fn is_connected(&self, member: &PublicKey) -> bool {
        self.shared.links.values().any(|link| {
            link.member.key == *member && link.connected.load(std::sync::atomic::Ordering::Acquire)
        })
    }

    /// Where `member` is dialed now (for this node: where it was
    /// configured to be reached).
    pub fn addresses(&self, member: &PublicKey) -> Vec<Multiaddr> {
        match self.shared.links.values().find(|l| l.member.key == *member) {
            Some(link) => lock(&link.addrs).clone(),
            None => self
                .members()
                .iter()
                .find(|m| m.key == *member)
                .map(|m| m.addrs.clone())
                .unwrap_or_default(),
        }
    }

    /// Replaces where `member` is dialed (a member that listens on a port
    /// it picked at start is known only once it runs); used from its next
    /// connection attempt on. Returns whether `member` is another member.
    pub fn set_addresses(&self, member: &PublicKey, addrs: Vec<Multiaddr>) -> bool {
        match self.shared.links.values().find(|l| l.member.key == *member) {
            Some(link) => {
                *lock(&link.addrs) = addrs;
                true
            }
            None => false,
        }
    }

    fn is_closed(&self) -> bool {
        self.shared
            .closed
            .load(std::sync::atomic::Ordering::Acquire)
    }

    /// Stops every task, closes every queue (receivers then fail with
    /// [`ClusterClosed`]) and drops what was queued.
    pub fn shutdown(&self) {
        self.shared
            .closed
            .store(true, std::sync::atomic::Ordering::Release);
        for task in lock(&self.shared.tasks).drain(..) {
            task.abort();
        }
        for link in self.shared.links.values() {
            link.queue.close();
        }
        let inboxes = self
            .shared
            .inboxes
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        for inbox in inboxes.values() {
            inbox.close();
        }
    }
}

impl Shared {
    /// Delivers one message that arrived from `from` (already checked to
    /// be a member) to its (dataset, channel) queue.
    fn deliver(
        &self,
        from: &Member,
        dataset: DatasetId,
        channel: u64,
        message: commonware_runtime::IoBuf,
    ) {
        let inbox = self
            .inboxes
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&(dataset, channel))
            .cloned();
        match inbox {
            Some(inbox) => {
                let len = message.len();
                let pushed = inbox.push((from.consensus.clone(), message), len, false);
                if pushed != queue::Pushed::Accepted {
                    tracing::debug!(from = %from.key, %dataset, channel, ?pushed, "dropping a cluster message");
                }
            }
            None => {
                // Full means the node has reports to work through already.
                let _ = self.unknown.try_send(UnknownDataset {
                    dataset,
                    from: from.key,
                });
            }
        }
    }

    fn unregister(&self, dataset: DatasetId, channel: u64, inbox: &Arc<Inbox>) {
        let mut inboxes = self.inboxes.write().unwrap_or_else(PoisonError::into_inner);
        if inboxes
            .get(&(dataset, channel))
            .is_some_and(|registered| Arc::ptr_eq(registered, inbox))
        {
            inboxes.remove(&(dataset, channel));
        }
    }
}
