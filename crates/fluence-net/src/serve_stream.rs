//! Serving one inbound `/fluence/rpc/2` stream: read requests, answer each
//! with the [`RequestHandler`] on a blocking thread of its own, write the
//! answers back in the order they are ready (each carries its request's
//! id), so a slow request (a durable write, a large page) never holds up
//! the quick ones. A handler that can only answer later (a replicated
//! write waits for its block to be finalized) returns a future, which is
//! awaited on a task of its own without holding a blocking thread; the
//! request keeps its in-progress permit until the answer is queued.
//!
//! The stream's own task never runs handler code. Answering quick requests
//! on it (or several in turn on one thread) saved about 15 % of the CPU of
//! a point read, but on this project's 2-core machines it tripled the p99
//! latency of YCSB workload C: one slow or descheduled lookup then delays
//! every request queued behind it (docs/benchmarks.md).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use fluence_proto::limits::MESSAGE_LEN_MAX;
use futures::{AsyncReadExt, FutureExt};
use libp2p::{PeerId, Stream};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};

use crate::frame::{Frame, FrameKind, FrameReader};
use crate::server::{Answer, RequestHandler};
use crate::writer::write_frames;

/// Requests of one stream being worked on at once. The stream is not read
/// further while this many are in progress, so a peer that sends faster
/// than the node answers is slowed by the multiplexer's flow control
/// instead of queueing unbounded work.
pub const REQUESTS_IN_PROGRESS_PER_STREAM_MAX: usize = 256;

/// Serves `stream` until the peer closes it (after answering everything
/// it asked) or it fails.
pub async fn serve_stream(peer: PeerId, stream: Stream, handler: Arc<dyn RequestHandler>) {
    let (read, write) = stream.split();
    // Every request in progress holds a permit until its answer is queued,
    // so the queue never holds more than this many answers.
    let (answers, queued) = mpsc::channel(REQUESTS_IN_PROGRESS_PER_STREAM_MAX);
    let reading = read_requests(peer, FrameReader::new(read), handler, answers);
    let writing = async {
        if let Err(error) = write_frames(write, queued).await {
            tracing::debug!(%peer, %error, "writing answers failed");
        }
    };
    // One task for both halves: fewer wake-ups than a task each.
    futures::join!(reading, writing);
}

async fn read_requests<R: futures::AsyncRead + Unpin>(
    peer: PeerId,
    mut reader: FrameReader<R>,
    handler: Arc<dyn RequestHandler>,
    answers: mpsc::Sender<Frame>,
) {
    let in_progress = Arc::new(Semaphore::new(REQUESTS_IN_PROGRESS_PER_STREAM_MAX));
    loop {
        // The semaphore is never closed, so this only waits.
        let Ok(permit) = Arc::clone(&in_progress).acquire_owned().await else {
            return;
        };
        let frame = match reader.next().await {
            Ok(Some(frame)) => frame,
            Ok(None) => return,
            Err(error) => {
                // Nothing after a malformed frame can be trusted; ending the
                // stream makes the peer's waiting calls fail at once.
                tracing::debug!(%peer, %error, "closing an rpc stream after a bad frame");
                return;
            }
        };
        if frame.kind != FrameKind::Request {
            tracing::debug!(%peer, kind = ?frame.kind, "closing an rpc stream after a non-request frame");
            return;
        }
        answer_on_blocking_thread(peer, frame.id, frame.payload, &handler, &answers, permit);
    }
}

/// Answers one request on a blocking thread and queues the answer; the
/// permit is released once it is queued.
fn answer_on_blocking_thread(
    peer: PeerId,
    id: u64,
    request: Vec<u8>,
    handler: &Arc<dyn RequestHandler>,
    answers: &mpsc::Sender<Frame>,
    permit: OwnedSemaphorePermit,
) {
    let handler = Arc::clone(handler);
    let answers = answers.clone();
    tokio::task::spawn_blocking(move || {
        let answer = catch_unwind(AssertUnwindSafe(|| handler.handle(peer, request)));
        match answer {
            Ok(Answer::Pending(later)) => {
                tokio::runtime::Handle::current().spawn(async move {
                    let answer = AssertUnwindSafe(later).catch_unwind().await;
                    // A closed queue means the stream is gone; the answer
                    // has nowhere to go.
                    let _ = answers.send(answer_frame(id, answer.map_err(|_| ()))).await;
                    drop(permit);
                });
            }
            Ok(Answer::Ready(answer)) => {
                let _ = answers.blocking_send(answer_frame(id, Ok(answer)));
                drop(permit);
            }
            Err(_) => {
                let _ = answers.blocking_send(answer_frame(id, Err(())));
                drop(permit);
            }
        }
    });
}

/// The frame that answers request `id`: the handler's answer, or a failure
/// if it panicked or its answer is too large to send.
fn answer_frame(id: u64, answer: Result<Vec<u8>, ()>) -> Frame {
    match answer {
        Ok(answer) if answer.len() <= MESSAGE_LEN_MAX => Frame::response(id, answer),
        Ok(answer) => {
            tracing::error!(
                len = answer.len(),
                "request handler produced an answer above the message size limit"
            );
            Frame::failure(
                id,
                &format!(
                    "answer of {} bytes exceeds the maximum {MESSAGE_LEN_MAX}",
                    answer.len()
                ),
            )
        }
        Err(()) => {
            // The handler panicked: an invariant broke. Log it; the peer
            // sees this request fail, the node goes on.
            tracing::error!(id, "request handler panicked");
            Frame::failure(id, "the node could not handle the request")
        }
    }
}
