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
//! above [`CHANNEL_IDS_MAX`]) ends the stream.
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
//! Each dataset has its own member set ([`ClusterNet::join`], from the
//! dataset's genesis membership): sends on a dataset's channels go only to
//! its members, and a message about a dataset is delivered only if its
//! sender is one of that dataset's members. One node is in as many
//! clusters as it serves datasets; it keeps one link per other node it
//! shares a cluster with (at most [`LINKS_MAX`]), dialed through the
//! addresses it was given or, without any, through the swarm's discovery.
//! A member's consensus key is its node identity ([`members`]). A peer
//! blocked through [`ClusterBlocker`] (consensus found it sent garbage) is
//! ignored in both directions, in every cluster, for [`BLOCK_DURATION`].
//!
//! Channel [`MEMBERSHIP_CHANNEL`] is not a replica's: its messages are
//! about memberships themselves (a node that hears of a dataset it has no
//! membership for asks the sender for it) and go to one node-wide queue
//! ([`ClusterNet::take_membership_messages`]) from any peer.
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
use std::sync::{Arc, Mutex, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use fluence_proto::limits::MESSAGE_LEN_MAX;
use fluence_proto::{DatasetId, PublicKey};
use libp2p::identity::Keypair;
use libp2p::{Multiaddr, PeerId, StreamProtocol};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

pub use channels::{ClusterChecked, ClusterClosed, ClusterReceiver, ClusterSender};
pub use members::{consensus_key, ClusterMember, Member, Membership};
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
/// Channel ids a dataset may use (`0..CHANNEL_IDS_MAX`): each membership
/// epoch's replica takes a block of sixteen (`16 · epoch + 0..9`, see
/// `fluence_consensus::Channel::wire_id`).
pub const CHANNEL_IDS_MAX: u64 = 1 << 32;
/// The channel of membership messages (see the module documentation):
/// the last of the first block of sixteen, which no replica uses.
pub const MEMBERSHIP_CHANNEL: u64 = 15;
/// Membership messages waiting for the node; more are dropped.
pub const MEMBERSHIP_MESSAGES_MAX: usize = 256;
/// Other nodes this node keeps links to at once (members of all its
/// clusters, and nodes it asked for a membership).
pub const LINKS_MAX: usize = 4096;
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

/// A message arrived for a dataset, or a channel of it, that has no
/// registered replica here, or from a node that is not a member of the
/// dataset's cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnknownDataset {
    pub dataset: DatasetId,
    /// The channel it came on (a later epoch's tells the node its
    /// membership is behind).
    pub channel: u64,
    /// The node that sent it.
    pub from: PublicKey,
}

/// A message on [`MEMBERSHIP_CHANNEL`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MembershipMessage {
    pub dataset: DatasetId,
    pub from: PublicKey,
    pub message: Vec<u8>,
}

/// Why a channel could not be registered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegisterError {
    #[error("channel {channel} of dataset {dataset} is already registered")]
    Taken { dataset: DatasetId, channel: u64 },
    #[error("channel id {0} is the membership channel ({MEMBERSHIP_CHANNEL}) or not below {CHANNEL_IDS_MAX}")]
    OutOfRange(u64),
    #[error("dataset {0} has no membership on this node (join it first)")]
    NotJoined(DatasetId),
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

/// One dataset's cluster on this node.
pub struct DatasetCluster {
    pub membership: Membership,
    pub(crate) peers: peers::PeerSet,
}

struct Shared {
    local: Member,
    /// Where to dial nodes, as configured or learned ([`ClusterNet::set_addresses`]).
    book: RwLock<HashMap<PublicKey, Vec<Multiaddr>>>,
    /// One per other node this node shares a cluster with (or asked for
    /// a membership), by consensus key.
    links: RwLock<HashMap<commonware_cryptography::ed25519::PublicKey, Arc<Link>>>,
    clusters: RwLock<HashMap<DatasetId, Arc<DatasetCluster>>>,
    inboxes: RwLock<HashMap<(DatasetId, u64), Arc<Inbox>>>,
    unknown: mpsc::Sender<UnknownDataset>,
    unknown_receiver: Mutex<Option<mpsc::Receiver<UnknownDataset>>>,
    membership_messages: mpsc::Sender<MembershipMessage>,
    membership_receiver: Mutex<Option<mpsc::Receiver<MembershipMessage>>>,
    peers: peers::PeerState,
    open_sender: mpsc::Sender<OpenRequest>,
    closed: std::sync::atomic::AtomicBool,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    runtime: tokio::runtime::Handle,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(PoisonError::into_inner)
}

/// The transport: cheap to clone, shared by every replica of the node.
#[derive(Clone)]
pub struct ClusterNet {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for ClusterNet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterNet")
            .field("local", &self.shared.local.key)
            .field("clusters", &read(&self.shared.clusters).len())
            .field("links", &read(&self.shared.links).len())
            .finish()
    }
}

/// Stream requests the links may have queued for the swarm at once.
const OPEN_REQUESTS_QUEUED_MAX: usize = 64;
/// Inbound streams negotiated and waiting to be read.
const INBOUND_STREAMS_QUEUED_MAX: usize = 64;

impl ClusterNet {
    /// Starts the transport of the node with `keypair`, knowing where to
    /// dial the nodes of `known` (an address book; it may be empty, and
    /// it may list this node, which is ignored): one task that accepts
    /// inbound streams, and a link task per node as clusters are joined.
    /// Must run inside a tokio runtime. The returned [`SwarmSide`] goes
    /// to the node's [`crate::Server`].
    pub fn start(
        keypair: &Keypair,
        known: Vec<ClusterMember>,
    ) -> Result<(ClusterNet, SwarmSide), NetError> {
        let local_key = crate::identity::member_key(keypair)?;
        let local = Member::from_key(local_key, Vec::new())?;
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| NetError::Setup("the cluster transport needs a tokio runtime".into()))?;
        let (open_sender, open_requests) = mpsc::channel(OPEN_REQUESTS_QUEUED_MAX);
        let (inbound, inbound_streams) = mpsc::channel(INBOUND_STREAMS_QUEUED_MAX);
        let (unknown, unknown_receiver) = mpsc::channel(UNKNOWN_DATASET_REPORTS_MAX);
        let (membership_messages, membership_receiver) = mpsc::channel(MEMBERSHIP_MESSAGES_MAX);
        let book = known
            .into_iter()
            .filter(|node| node.key != local_key)
            .map(|node| (node.key, node.addrs))
            .collect();
        let shared = Arc::new(Shared {
            local,
            book: RwLock::new(book),
            links: RwLock::new(HashMap::new()),
            clusters: RwLock::new(HashMap::new()),
            inboxes: RwLock::new(HashMap::new()),
            unknown,
            unknown_receiver: Mutex::new(Some(unknown_receiver)),
            membership_messages,
            membership_receiver: Mutex::new(Some(membership_receiver)),
            peers: peers::PeerState::new(),
            open_sender,
            closed: std::sync::atomic::AtomicBool::new(false),
            tasks: Mutex::new(Vec::new()),
            runtime: runtime.clone(),
        });
        let accept = runtime.spawn(inbound::accept(Arc::downgrade(&shared), inbound_streams));
        lock(&shared.tasks).push(accept);
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
        &self.shared.local
    }

    /// Serves `dataset` in the cluster of `members` (this node among
    /// them, each at most once): from now on its channels reach these
    /// members and accept messages only from them, and a link to each is
    /// kept open. Joining again with the same members changes nothing;
    /// with others it is refused (a membership change is a later epoch,
    /// not supported yet).
    pub fn join(&self, dataset: DatasetId, members: &[PublicKey]) -> Result<(), NetError> {
        if self.is_closed() {
            return Err(NetError::Setup(
                "the cluster transport has shut down".into(),
            ));
        }
        if let Some(existing) = read(&self.shared.clusters).get(&dataset) {
            let keys: Vec<PublicKey> = existing.membership.all().iter().map(|m| m.key).collect();
            if keys == members {
                return Ok(());
            }
            return Err(NetError::Setup(format!(
                "dataset {dataset} is served with other members already"
            )));
        }
        let book = read(&self.shared.book).clone();
        let configured = members
            .iter()
            .map(|key| ClusterMember {
                key: *key,
                addrs: book.get(key).cloned().unwrap_or_default(),
            })
            .collect();
        let membership = Membership::new(self.shared.local.key, configured)?;
        for member in membership.others() {
            self.shared.link_to(member)?;
        }
        let cluster = Arc::new(DatasetCluster {
            peers: peers::PeerSet::new(&membership),
            membership,
        });
        write(&self.shared.clusters)
            .entry(dataset)
            .or_insert(cluster);
        Ok(())
    }

    /// Stops serving `dataset`'s cluster (its replica stopped). Links
    /// stay open for the node's other clusters.
    pub fn leave(&self, dataset: &DatasetId) {
        write(&self.shared.clusters).remove(dataset);
    }

    /// The members of `dataset`'s cluster, if this node serves it.
    pub fn members(&self, dataset: &DatasetId) -> Option<Vec<Member>> {
        read(&self.shared.clusters)
            .get(dataset)
            .map(|cluster| cluster.membership.all().to_vec())
    }

    /// Every other node this node keeps a link to (the members of all
    /// its clusters), with whether a stream to it is open.
    pub fn linked(&self) -> Vec<(Member, bool)> {
        read(&self.shared.links)
            .values()
            .map(|link| {
                (
                    link.member.clone(),
                    link.connected.load(std::sync::atomic::Ordering::Acquire),
                )
            })
            .collect()
    }

    /// Registers channel `channel` of `dataset` (joined first): what its
    /// members send on it arrives at the receiver, and the sender reaches
    /// them. The registration ends when the receiver is dropped.
    pub fn register(
        &self,
        dataset: DatasetId,
        channel: u64,
    ) -> Result<(ClusterSender, ClusterReceiver), RegisterError> {
        if channel == MEMBERSHIP_CHANNEL || channel >= CHANNEL_IDS_MAX {
            return Err(RegisterError::OutOfRange(channel));
        }
        if self.is_closed() {
            return Err(RegisterError::Closed);
        }
        let cluster = read(&self.shared.clusters)
            .get(&dataset)
            .cloned()
            .ok_or(RegisterError::NotJoined(dataset))?;
        let inbox = Arc::new(Inbox::new(
            INBOUND_MESSAGES_PER_CHANNEL_MAX,
            INBOUND_BYTES_PER_CHANNEL_MAX,
        ));
        {
            let mut inboxes = write(&self.shared.inboxes);
            if inboxes.contains_key(&(dataset, channel)) {
                return Err(RegisterError::Taken { dataset, channel });
            }
            inboxes.insert((dataset, channel), Arc::clone(&inbox));
        }
        Ok((
            ClusterSender::new(Arc::clone(&self.shared), cluster, dataset, channel),
            ClusterReceiver::new(Arc::clone(&self.shared), dataset, channel, inbox),
        ))
    }

    /// `dataset`'s member set, as commonware's peer
    /// [`Provider`](commonware_p2p::Provider); `None` if not joined.
    pub fn peers(&self, dataset: &DatasetId) -> Option<ClusterPeers> {
        read(&self.shared.clusters)
            .get(dataset)
            .map(|cluster| ClusterPeers::new(Arc::clone(cluster)))
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

    /// The messages on [`MEMBERSHIP_CHANNEL`]; only the first call gets them.
    pub fn take_membership_messages(&self) -> Option<mpsc::Receiver<MembershipMessage>> {
        lock(&self.shared.membership_receiver).take()
    }

    /// Sends `message` about `dataset` on [`MEMBERSHIP_CHANNEL`] to `to`,
    /// opening a link to it if there is none. Like every cluster send it
    /// may be dropped (no stream open yet, a full queue): the caller asks
    /// again later. Returns whether it was queued.
    pub fn send_membership(&self, to: &PublicKey, dataset: DatasetId, message: &[u8]) -> bool {
        if self.is_closed()
            || *to == self.shared.local.key
            || message.len() > CLUSTER_MESSAGE_LEN_MAX
        {
            return false;
        }
        let addrs = read(&self.shared.book).get(to).cloned().unwrap_or_default();
        let Ok(member) = Member::from_key(*to, addrs) else {
            return false;
        };
        let Ok(link) = self.shared.link_to(&member) else {
            return false;
        };
        let mut payload = Vec::with_capacity(DATASET_PREFIX_LEN + message.len());
        payload.extend_from_slice(dataset.as_bytes());
        payload.extend_from_slice(message);
        link.send(
            crate::frame::Frame::cluster(MEMBERSHIP_CHANNEL, payload),
            true,
        ) == queue::Pushed::Accepted
    }

    /// Whether a stream to `member` is open now (messages to it are sent,
    /// not dropped).
    pub fn is_connected(&self, member: &PublicKey) -> bool {
        read(&self.shared.links).values().any(|link| {
            link.member.key == *member && link.connected.load(std::sync::atomic::Ordering::Acquire)
        })
    }

    /// Where `member` is dialed now (empty: through discovery).
    pub fn addresses(&self, member: &PublicKey) -> Vec<Multiaddr> {
        match read(&self.shared.links)
            .values()
            .find(|l| l.member.key == *member)
        {
            Some(link) => lock(&link.addrs).clone(),
            None => read(&self.shared.book)
                .get(member)
                .cloned()
                .unwrap_or_default(),
        }
    }

    /// Replaces where `member` is dialed (a node that listens on a port
    /// it picked at start is known only once it runs); used from its next
    /// connection attempt on, and for links opened later.
    pub fn set_addresses(&self, member: &PublicKey, addrs: Vec<Multiaddr>) {
        if *member == self.shared.local.key {
            return;
        }
        if let Some(link) = read(&self.shared.links)
            .values()
            .find(|l| l.member.key == *member)
        {
            *lock(&link.addrs) = addrs.clone();
        }
        write(&self.shared.book).insert(*member, addrs);
    }

    /// Whether the transport has shut down.
    pub fn is_closed(&self) -> bool {
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
        for link in read(&self.shared.links).values() {
            link.queue.close();
        }
        for inbox in read(&self.shared.inboxes).values() {
            inbox.close();
        }
    }
}

impl Shared {
    /// The link to `member`, started if there is none yet.
    fn link_to(&self, member: &Member) -> Result<Arc<Link>, NetError> {
        if let Some(link) = read(&self.links).get(&member.consensus) {
            return Ok(Arc::clone(link));
        }
        let mut links = write(&self.links);
        if let Some(link) = links.get(&member.consensus) {
            return Ok(Arc::clone(link));
        }
        if links.len() >= LINKS_MAX {
            return Err(NetError::Setup(format!(
                "this node keeps links to {LINKS_MAX} nodes already"
            )));
        }
        let mut member = member.clone();
        if member.addrs.is_empty() {
            member.addrs = read(&self.book)
                .get(&member.key)
                .cloned()
                .unwrap_or_default();
        }
        let link = Arc::new(Link::new(member.clone()));
        links.insert(member.consensus.clone(), Arc::clone(&link));
        let task = self
            .runtime
            .spawn(link::run(Arc::clone(&link), self.open_sender.clone()));
        lock(&self.tasks).push(task);
        Ok(link)
    }

    /// Delivers one message that arrived from `from` to its (dataset,
    /// channel) queue, if `from` is a member of that dataset's cluster.
    fn deliver(
        &self,
        from: &Member,
        dataset: DatasetId,
        channel: u64,
        message: commonware_runtime::IoBuf,
    ) {
        if channel == MEMBERSHIP_CHANNEL {
            let _ = self.membership_messages.try_send(MembershipMessage {
                dataset,
                from: from.key,
                message: message.as_ref().to_vec(),
            });
            return;
        }
        let member = match read(&self.clusters).get(&dataset) {
            Some(cluster) => cluster.membership.by_peer(&from.peer).is_some(),
            None => {
                // Full means the node has reports to work through already.
                let _ = self.unknown.try_send(UnknownDataset {
                    dataset,
                    channel,
                    from: from.key,
                });
                return;
            }
        };
        if !member {
            // Reported too: a node a membership change replaced, still
            // speaking in the old epoch, is told the new membership.
            tracing::debug!(from = %from.key, %dataset, "dropping a message from a non-member");
            let _ = self.unknown.try_send(UnknownDataset {
                dataset,
                channel,
                from: from.key,
            });
            return;
        }
        let inbox = read(&self.inboxes).get(&(dataset, channel)).cloned();
        match inbox {
            Some(inbox) => {
                let len = message.len();
                let pushed = inbox.push((from.consensus.clone(), message), len, false);
                if pushed != queue::Pushed::Accepted {
                    tracing::debug!(from = %from.key, %dataset, channel, ?pushed, "dropping a cluster message");
                }
            }
            None => {
                let _ = self.unknown.try_send(UnknownDataset {
                    dataset,
                    channel,
                    from: from.key,
                });
            }
        }
    }

    fn unregister(&self, dataset: DatasetId, channel: u64, inbox: &Arc<Inbox>) {
        let mut inboxes = write(&self.inboxes);
        if inboxes
            .get(&(dataset, channel))
            .is_some_and(|registered| Arc::ptr_eq(registered, inbox))
        {
            inboxes.remove(&(dataset, channel));
        }
    }
}
