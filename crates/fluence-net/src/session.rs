//! The client's side of one `/fluence/rpc/2` stream: requests from many
//! tasks are written to it by one writer, answers are read by one reader and
//! handed to the task that asked, matched by request id.
//!
//! When the stream fails every waiting caller gets the error at once and the
//! session refuses new calls; the [`NodeClient`](crate::NodeClient) then
//! opens a new one.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::AsyncReadExt;
use libp2p::Stream;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::frame::{Frame, FrameKind, FrameReader};
use crate::writer::write_frames;
use crate::NetError;

/// Requests queued for the writer; callers wait when it is full.
const QUEUED_REQUESTS_MAX: usize = 1024;

type Reply = oneshot::Sender<Result<Vec<u8>, NetError>>;

/// One multiplexed stream to a node.
pub struct Session {
    frames: mpsc::Sender<Frame>,
    calls: Arc<PendingCalls>,
    next_id: AtomicU64,
    reader: JoinHandle<()>,
}

impl Session {
    /// Starts the reader and writer tasks of `stream`.
    pub fn start(stream: Stream) -> Session {
        let (read, write) = stream.split();
        let (frames, queued) = mpsc::channel(QUEUED_REQUESTS_MAX);
        let calls = Arc::new(PendingCalls::default());
        let reader = tokio::spawn(read_answers(FrameReader::new(read), Arc::clone(&calls)));
        let writer_calls = Arc::clone(&calls);
        tokio::spawn(async move {
            if let Err(error) = write_frames(write, queued).await {
                writer_calls.close(NetError::Request(format!("writing to the node: {error}")));
            }
        });
        Session {
            frames,
            calls,
            next_id: AtomicU64::new(0),
            reader,
        }
    }

    /// Whether the stream has failed; a closed session answers every call
    /// with an error.
    pub fn is_closed(&self) -> bool {
        self.calls.closed.load(Ordering::Acquire)
    }

    /// Sends `request` and waits up to `timeout` for its answer.
    pub async fn call(&self, request: Vec<u8>, timeout: Duration) -> Result<Vec<u8>, NetError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (reply, answer) = oneshot::channel();
        self.calls.register(id, reply)?;
        // Removes the registration if this future is dropped or times out
        // before the answer came, so abandoned calls do not accumulate.
        let mut guard = PendingGuard {
            calls: &self.calls,
            id,
            armed: true,
        };
        if self.frames.send(Frame::request(id, request)).await.is_err() {
            return Err(self.calls.closed_reason());
        }
        let answered = tokio::time::timeout(timeout, answer).await;
        guard.armed = false;
        match answered {
            Ok(Ok(result)) => result,
            // The reply was dropped unanswered: only `close` does that, after
            // recording why.
            Ok(Err(_)) => Err(self.calls.closed_reason()),
            Err(_) => {
                self.calls.remove(id);
                Err(NetError::Request(format!(
                    "no answer from the node within {timeout:?}"
                )))
            }
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // The writer ends by itself once `frames` is gone (closing the
        // stream's write side); the reader would wait for the node.
        self.reader.abort();
        self.calls.close(NetError::Closed);
    }
}

/// Reads answers until the stream ends or misbehaves, then fails every
/// call still waiting.
async fn read_answers<R: futures::AsyncRead + Unpin>(
    mut reader: FrameReader<R>,
    calls: Arc<PendingCalls>,
) {
    let reason = loop {
        match reader.next().await {
            Ok(Some(frame)) => match frame.kind {
                FrameKind::Response => calls.complete(frame.id, Ok(frame.payload)),
                FrameKind::Failure => calls.complete(
                    frame.id,
                    Err(NetError::Request(format!(
                        "the node failed: {}",
                        frame.reason()
                    ))),
                ),
                FrameKind::Request | FrameKind::Cluster => {
                    break NetError::BadResponse(format!("the node sent a {:?} frame", frame.kind))
                }
            },
            Ok(None) => break NetError::Closed,
            Err(error) => break NetError::BadResponse(format!("reading from the node: {error}")),
        }
    };
    tracing::debug!(%reason, "rpc stream to the node ended");
    calls.close(reason);
}

/// Calls waiting for their answers, by request id.
#[derive(Default)]
struct PendingCalls {
    /// Set once, with `state.closed`, when the stream has failed; read
    /// without the lock on the fast path.
    closed: AtomicBool,
    state: Mutex<PendingState>,
}

#[derive(Default)]
struct PendingState {
    waiting: HashMap<u64, Reply>,
    closed: Option<NetError>,
}

impl PendingCalls {
    fn lock(&self) -> std::sync::MutexGuard<'_, PendingState> {
        // A panic while holding this lock cannot leave the map inconsistent
        // (every operation is a single insert or remove), so poisoning is
        // ignored rather than spread.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn register(&self, id: u64, reply: Reply) -> Result<(), NetError> {
        let mut state = self.lock();
        if let Some(reason) = &state.closed {
            return Err(reason.clone());
        }
        let previous = state.waiting.insert(id, reply);
        assert!(previous.is_none(), "request id {id} reused");
        Ok(())
    }

    fn complete(&self, id: u64, result: Result<Vec<u8>, NetError>) {
        match self.lock().waiting.remove(&id) {
            Some(reply) => {
                let _ = reply.send(result);
            }
            // The caller gave up (timeout or cancellation) before the answer.
            None => tracing::debug!(id, "answer to a call nobody waits for"),
        }
    }

    fn remove(&self, id: u64) {
        self.lock().waiting.remove(&id);
    }

    /// Fails every waiting call with `reason` and refuses new ones. Only the
    /// first reason is kept: later ones are consequences.
    fn close(&self, reason: NetError) {
        let waiting = {
            let mut state = self.lock();
            if state.closed.is_none() {
                state.closed = Some(reason);
                self.closed.store(true, Ordering::Release);
            }
            std::mem::take(&mut state.waiting)
        };
        let reason = self.closed_reason();
        for (_, reply) in waiting {
            let _ = reply.send(Err(reason.clone()));
        }
    }

    fn closed_reason(&self) -> NetError {
        self.lock().closed.clone().unwrap_or(NetError::Closed)
    }
}

struct PendingGuard<'a> {
    calls: &'a PendingCalls,
    id: u64,
    armed: bool,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.calls.remove(self.id);
        }
    }
}
