//! Concurrent inserts into one dataset are committed together.
//!
//! A gateway sends one signed write at a time per dataset (each takes the
//! next sequence number, under the dataset's `last_seq` lock). On a single
//! node a write costs one durable commit; in a cluster it costs a
//! consensus round as well, so concurrent inserters (a MongoDB driver's
//! connection pool loading a collection, many HTTP clients) would each
//! wait for every round queued before theirs, one batch per round.
//! Instead an insert queues its operations, and whoever holds the write
//! lock next sends every queued insert that fits one batch
//! ([`OPS_PER_BATCH_MAX`] operations, [`BATCH_BYTES_MAX`] bytes) as one
//! signed write, and answers each. Nothing waits on a timer: an insert with
//! no concurrency goes out at once, alone, as before.
//!
//! A node applies a batch atomically, so a combined batch is applied whole
//! (each insert is answered with its own count) or not at all. When the
//! node refuses it because of one operation (a duplicate `_id`, a unique
//! value already held), every insert of it is sent again on its own, in
//! queue order, so each receives exactly the answer it would have received
//! alone. Any other error (the dataset's indexes changed, the node is
//! unreachable and the outcome unknown) reaches every insert of the batch,
//! as it would have reached each. Inserts whose caller went away before
//! their batch is sent are left out; one whose batch was being sent by a
//! caller that went away meanwhile is told its outcome is unknown.

use std::collections::VecDeque;
use std::sync::Mutex;

use fluence_proto::limits::OPS_PER_BATCH_MAX;
use fluence_proto::{Action, DocOp};
use tokio::sync::oneshot::{self, error::TryRecvError};

use super::{approximate_encoded_len, refused_op, Client, DatasetState, BATCH_BYTES_MAX};
use crate::error::ClientError;
use crate::transport::Transport;

/// What an insert's operations came to: how many were applied, or how many
/// were applied before an error (as [`Client::submit_ops`] answers).
pub(crate) type InsertOutcome = Result<u64, (u64, ClientError)>;

/// The inserts of one dataset waiting for a batch.
#[derive(Default)]
pub(crate) struct InsertQueue {
    queued: Mutex<VecDeque<Queued>>,
}

struct Queued {
    ops: Vec<DocOp>,
    bytes: usize,
    answer: oneshot::Sender<InsertOutcome>,
}

impl InsertQueue {
    fn push(&self, ops: Vec<DocOp>) -> oneshot::Receiver<InsertOutcome> {
        let bytes = ops.iter().map(approximate_encoded_len).sum();
        let (answer, receiver) = oneshot::channel();
        self.lock().push_back(Queued { ops, bytes, answer });
        receiver
    }

    /// Queued inserts from the front, as many as fit one batch together
    /// (always at least one, whatever its size), skipping those whose
    /// caller went away.
    fn take_group(&self) -> Vec<Queued> {
        let mut queued = self.lock();
        let mut group: Vec<Queued> = Vec::new();
        let (mut ops, mut bytes) = (0usize, 0usize);
        while let Some(next) = queued.front() {
            if next.answer.is_closed() {
                queued.pop_front();
                continue;
            }
            let fits =
                ops + next.ops.len() <= OPS_PER_BATCH_MAX && bytes + next.bytes <= BATCH_BYTES_MAX;
            if !group.is_empty() && !fits {
                break;
            }
            ops += next.ops.len();
            bytes += next.bytes;
            group.extend(queued.pop_front());
        }
        group
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Queued>> {
        // Every change is a single push or pop: a panic elsewhere never
        // leaves the queue half-changed.
        self.queued
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl<T: Transport> Client<T> {
    /// Inserts `ops` (new documents of one insert call), together with
    /// whatever other inserts of the dataset are waiting (see the module
    /// docs). Answers as [`Client::submit_ops`] would for `ops` alone.
    pub(super) async fn submit_inserts(
        &self,
        state: &DatasetState,
        ops: Vec<DocOp>,
    ) -> InsertOutcome {
        let mut answer = state.inserts.push(ops);
        loop {
            let mut last_seq = state.last_seq.lock().await;
            // Inserts are taken from the queue and answered only under the
            // lock, so holding it, this one is either answered or queued.
            match answer.try_recv() {
                Ok(outcome) => return outcome,
                Err(TryRecvError::Closed) => {
                    return Err((
                        0,
                        ClientError::Unavailable(
                            "the request carrying this insert was abandoned; it may or may not have been applied"
                                .into(),
                        ),
                    ))
                }
                Err(TryRecvError::Empty) => {}
            }
            let group = state.inserts.take_group();
            self.commit_group(state, &mut last_seq, group).await;
        }
    }

    /// Sends `group` as one batch (or its insert alone) and answers each.
    async fn commit_group(&self, state: &DatasetState, last_seq: &mut u64, group: Vec<Queued>) {
        let mut group = group;
        if group.len() <= 1 {
            if let Some(alone) = group.pop() {
                let outcome = self.submit_ops(state, last_seq, alone.ops).await;
                let _ = alone.answer.send(outcome);
            }
            return;
        }
        let lens: Vec<usize> = group.iter().map(|q| q.ops.len()).collect();
        let mut answers = Vec::with_capacity(group.len());
        let mut combined = Vec::with_capacity(lens.iter().sum());
        for queued in group {
            combined.extend(queued.ops);
            answers.push(queued.answer);
        }
        let action = Action::Batch {
            schema: state.dataset.schema(),
            ops: combined,
        };
        match self.submit_keeping(state, last_seq, action).await {
            (Ok(()), _) => {
                for (answer, len) in answers.into_iter().zip(lens) {
                    let _ = answer.send(Ok(len as u64));
                }
            }
            (Err(ClientError::Node(error)), Action::Batch { ops, .. })
                if refused_op(&error).is_some() =>
            {
                // Nothing applied: each insert again, on its own.
                let mut ops = ops.into_iter();
                for (answer, len) in answers.into_iter().zip(lens) {
                    let own: Vec<DocOp> = ops.by_ref().take(len).collect();
                    let outcome = self.submit_ops(state, last_seq, own).await;
                    let _ = answer.send(outcome);
                }
            }
            (Err(error), _) => {
                for answer in answers {
                    let _ = answer.send(Err((0, error.clone())));
                }
            }
        }
    }
}
