//! One member's outbound link: a queue of frames for it and the task that
//! keeps a stream to it open and writes the queue to it.
//!
//! While no stream is open the link refuses frames (senders drop them):
//! consensus messages go stale fast, and queueing them for a member that
//! may be down for hours would only hold memory. When the stream fails,
//! what was queued is dropped and the task reopens it, backing off.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::{AsyncReadExt, FutureExt};
use tokio::sync::{mpsc, oneshot};

use super::queue::{BoundedQueue, Pushed};
use super::{Member, OpenRequest, OUTBOUND_BYTES_PER_PEER_MAX, OUTBOUND_FRAMES_PER_PEER_MAX};
use crate::frame::Frame;
use crate::writer::{write_frames, FrameSource};

/// First pause before reopening a failed stream; doubles up to the max.
const REOPEN_DELAY_MIN: Duration = Duration::from_millis(100);
const REOPEN_DELAY_MAX: Duration = Duration::from_secs(2);
/// How long opening a stream (dial, noise, yamux, negotiation) may take.
const OPEN_TIMEOUT: Duration = Duration::from_secs(10);

pub struct Link {
    pub member: Member,
    /// Where to dial the member; starts as configured, can be replaced.
    pub addrs: std::sync::Mutex<Vec<libp2p::Multiaddr>>,
    pub queue: BoundedQueue<Frame>,
    /// True while a stream is open and the queue is written to it.
    pub connected: AtomicBool,
}

impl Link {
    pub fn new(member: Member) -> Self {
        Link {
            addrs: std::sync::Mutex::new(member.addrs.clone()),
            member,
            queue: BoundedQueue::new(OUTBOUND_FRAMES_PER_PEER_MAX, OUTBOUND_BYTES_PER_PEER_MAX),
            connected: AtomicBool::new(false),
        }
    }

    /// Queues `frame` if a stream is open and there is room.
    pub fn send(&self, frame: Frame, priority: bool) -> Pushed {
        if !self.connected.load(Ordering::Acquire) {
            return Pushed::Full;
        }
        let len = frame.payload.len();
        self.queue.push(frame, len, priority)
    }
}

/// The writer's view of a link's queue.
struct Source(Arc<Link>);

impl FrameSource for Source {
    fn recv(&mut self) -> impl std::future::Future<Output = Option<Frame>> + Send {
        let link = Arc::clone(&self.0);
        async move { link.queue.pop().await }
    }

    fn try_recv(&mut self) -> Option<Frame> {
        self.0.queue.try_pop()
    }
}

/// Keeps a stream to the link's member open and writes its queue to it,
/// until the task is aborted or the swarm is gone.
pub async fn run(link: Arc<Link>, open: mpsc::Sender<OpenRequest>) {
    let mut delay = REOPEN_DELAY_MIN;
    loop {
        let (reply, opened) = oneshot::channel();
        let request = OpenRequest {
            peer: link.member.peer,
            addrs: super::lock(&link.addrs).clone(),
            reply,
        };
        if open.send(request).await.is_err() {
            // The swarm is gone: the node is stopping.
            return;
        }
        match tokio::time::timeout(OPEN_TIMEOUT, opened).await {
            Ok(Ok(Ok(stream))) => {
                delay = REOPEN_DELAY_MIN;
                tracing::debug!(member = %link.member.key, "cluster stream open");
                serve(&link, stream).await;
                tracing::debug!(member = %link.member.key, "cluster stream closed");
            }
            Ok(Ok(Err(error))) => {
                tracing::debug!(member = %link.member.key, %error, "cannot open a cluster stream");
            }
            Ok(Err(_)) | Err(_) => {
                tracing::debug!(member = %link.member.key, "no cluster stream");
            }
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(REOPEN_DELAY_MAX);
    }
}

/// Writes the queue to `stream` until either side fails or closes it.
async fn serve(link: &Arc<Link>, stream: libp2p::Stream) {
    let (mut read, write) = stream.split();
    link.connected.store(true, Ordering::Release);
    let writing = write_frames(write, Source(Arc::clone(link))).fuse();
    // The member never writes on this stream: a read returns only when it
    // closes or fails, which the writer alone would notice only when it
    // next writes.
    let closed = async move {
        let mut byte = [0u8; 1];
        let _ = read.read(&mut byte).await;
    }
    .fuse();
    futures::pin_mut!(writing, closed);
    futures::select! {
        result = writing => {
            if let Err(error) = result {
                tracing::debug!(member = %link.member.key, %error, "writing to a cluster stream failed");
            }
        }
        () = closed => {}
    }
    link.connected.store(false, Ordering::Release);
    link.queue.clear();
}
