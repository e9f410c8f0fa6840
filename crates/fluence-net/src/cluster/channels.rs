//! commonware-p2p's `Sender` and `Receiver` for one (dataset, channel).
//!
//! Semantics follow commonware's authenticated network: a send goes to the
//! chosen members that are connected and whose queue has room, never
//! waits, and reports which members it was queued for; `Recipients::All`
//! means every other member of the dataset's cluster. The transport has no per-peer
//! rate limit (the members are configured and consensus paces itself), so
//! `check` never refuses for rate.

use std::sync::Arc;
use std::time::SystemTime;

use commonware_actor::{Feedback, Unreliable};
use commonware_cryptography::ed25519;
use commonware_p2p::{CheckedSender, LimitedSender, Message, Recipients};
use commonware_runtime::IoBufs;
use fluence_proto::DatasetId;

use super::queue::Pushed;
use super::{read, DatasetCluster, Inbox, Shared, CLUSTER_MESSAGE_LEN_MAX, DATASET_PREFIX_LEN};
use crate::frame::Frame;

/// Sends on one (dataset, channel) to other members.
#[derive(Clone)]
pub struct ClusterSender {
    shared: Arc<Shared>,
    cluster: Arc<DatasetCluster>,
    dataset: DatasetId,
    channel: u64,
}

impl std::fmt::Debug for ClusterSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterSender")
            .field("dataset", &self.dataset)
            .field("channel", &self.channel)
            .finish()
    }
}

impl ClusterSender {
    pub(super) fn new(
        shared: Arc<Shared>,
        cluster: Arc<DatasetCluster>,
        dataset: DatasetId,
        channel: u64,
    ) -> Self {
        ClusterSender {
            shared,
            cluster,
            dataset,
            channel,
        }
    }

    /// The members a send to `recipients` would be queued for now: other
    /// members of the dataset's cluster, connected and not blocked.
    fn reachable(&self, recipients: Recipients<ed25519::PublicKey>) -> Vec<ed25519::PublicKey> {
        let links = read(&self.shared.links);
        let membership = &self.cluster.membership;
        let usable = |key: &ed25519::PublicKey| {
            membership.by_consensus(key).is_some()
                && links
                    .get(key)
                    .is_some_and(|link| link.connected.load(std::sync::atomic::Ordering::Acquire))
                && !self.shared.peers.is_blocked(key)
        };
        match recipients {
            Recipients::All => membership
                .others()
                .map(|member| &member.consensus)
                .filter(|key| usable(key))
                .cloned()
                .collect(),
            Recipients::Some(keys) => {
                let mut keys: Vec<_> = keys.into_iter().filter(usable).collect();
                keys.sort();
                keys.dedup();
                keys
            }
            Recipients::One(key) => usable(&key).then_some(key).into_iter().collect(),
        }
    }
}

impl LimitedSender for ClusterSender {
    type PublicKey = ed25519::PublicKey;
    type Checked<'a> = ClusterChecked<'a>;

    fn check(
        &mut self,
        recipients: Recipients<Self::PublicKey>,
    ) -> Result<Self::Checked<'_>, SystemTime> {
        let recipients = self.reachable(recipients);
        Ok(ClusterChecked {
            sender: self,
            recipients,
        })
    }
}

/// A send whose recipients were chosen by [`LimitedSender::check`].
pub struct ClusterChecked<'a> {
    sender: &'a ClusterSender,
    recipients: Vec<ed25519::PublicKey>,
}

impl CheckedSender for ClusterChecked<'_> {
    type PublicKey = ed25519::PublicKey;

    fn recipients(&self) -> Vec<Self::PublicKey> {
        self.recipients.clone()
    }

    /// Queues the message for each recipient. A message above
    /// [`CLUSTER_MESSAGE_LEN_MAX`] is refused (logged; commonware's own
    /// networks panic instead, which a node must not).
    fn send(self, message: impl Into<IoBufs> + Send, priority: bool) -> Unreliable<Feedback> {
        let shared = &self.sender.shared;
        if shared.closed.load(std::sync::atomic::Ordering::Acquire) {
            return Unreliable::new(Feedback::Closed);
        }
        let message: IoBufs = message.into();
        if message.len() > CLUSTER_MESSAGE_LEN_MAX {
            tracing::error!(
                len = message.len(),
                channel = self.sender.channel,
                "refusing to send a cluster message above CLUSTER_MESSAGE_LEN_MAX"
            );
            return Unreliable::rejected();
        }
        if self.recipients.is_empty() {
            return Unreliable::new(Feedback::Ok);
        }
        let mut payload = Vec::with_capacity(DATASET_PREFIX_LEN + message.len());
        payload.extend_from_slice(self.sender.dataset.as_bytes());
        message.for_each_chunk(|chunk| payload.extend_from_slice(chunk));
        let mut accepted = 0;
        let last = self.recipients.len() - 1;
        let mut payload = Some(payload);
        let links = read(&shared.links);
        for (i, key) in self.recipients.iter().enumerate() {
            let Some(link) = links.get(key) else {
                continue;
            };
            // The last recipient takes the payload itself, the others a copy.
            let bytes = if i == last {
                payload.take().unwrap_or_default()
            } else {
                payload.clone().unwrap_or_default()
            };
            if link.send(Frame::cluster(self.sender.channel, bytes), priority) == Pushed::Accepted {
                accepted += 1;
            }
        }
        match accepted {
            0 => Unreliable::rejected(),
            n if n == self.recipients.len() => Unreliable::new(Feedback::Ok),
            _ => Unreliable::new(Feedback::Backoff),
        }
    }
}

/// Why a receiver returns no more messages.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the cluster transport has shut down")]
pub struct ClusterClosed;

/// Receives what members send on one (dataset, channel). Dropping it ends
/// the registration (the channel can be registered again).
pub struct ClusterReceiver {
    shared: Arc<Shared>,
    dataset: DatasetId,
    channel: u64,
    inbox: Arc<Inbox>,
}

impl std::fmt::Debug for ClusterReceiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterReceiver")
            .field("dataset", &self.dataset)
            .field("channel", &self.channel)
            .field("queued", &self.inbox.len())
            .finish()
    }
}

impl ClusterReceiver {
    pub(super) fn new(
        shared: Arc<Shared>,
        dataset: DatasetId,
        channel: u64,
        inbox: Arc<Inbox>,
    ) -> Self {
        ClusterReceiver {
            shared,
            dataset,
            channel,
            inbox,
        }
    }
}

impl Drop for ClusterReceiver {
    fn drop(&mut self) {
        self.shared
            .unregister(self.dataset, self.channel, &self.inbox);
        self.inbox.close();
    }
}

impl commonware_p2p::Receiver for ClusterReceiver {
    type Error = ClusterClosed;
    type PublicKey = ed25519::PublicKey;

    fn recv(
        &mut self,
    ) -> impl std::future::Future<Output = Result<Message<Self::PublicKey>, Self::Error>> + Send
    {
        let inbox = Arc::clone(&self.inbox);
        async move { inbox.pop().await.ok_or(ClusterClosed) }
    }

    fn capacity(&self) -> std::num::NonZeroUsize {
        std::num::NonZeroUsize::new(super::INBOUND_MESSAGES_PER_CHANNEL_MAX)
            .expect("the inbound bound is not zero")
    }
}
