//! Submitted writes waiting for a block, and the callers waiting for them.
//!
//! A write is identified by the digest of its signed body
//! (`WriteBody::digest`): the same body submitted twice, to one member or
//! to several, is one write, applied once (the store refuses a sequence
//! number twice) and acknowledged to every caller that submitted it.
//!
//! Candidates are kept by sequence number, the first admitted body per
//! number: the owner orders its writes by `seq`, so a proposer takes the
//! run `next, next + 1, ...` that follows the state it extends. Callers
//! are answered only when the write's block is finalized and applied
//! ([`Pool::finalized`]) or when it can never be (another write took its
//! number, or it was refused against the state it would extend).

use std::collections::BTreeMap;

use fluence_proto::{Action, Hash32, PublicKey, SignedWrite};
use futures::channel::oneshot;

use crate::error::SubmitError;

/// Candidate writes a member holds at once.
pub const POOL_WRITES_MAX: usize = 65_536;
/// Bytes of candidate writes a member holds at once.
pub const POOL_BYTES_MAX: usize = 512 * 1024 * 1024;
/// Callers waiting for one write (resubmissions of the same body).
pub const WAITERS_PER_WRITE_MAX: usize = 64;
/// Writes with waiting callers (bounds memory of conflicting submissions).
pub const WAITING_WRITES_MAX: usize = 2 * POOL_WRITES_MAX;

/// What a caller learns when its write is finalized and applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Committed {
    /// Height of the block that holds the write.
    pub height: u64,
    /// The write's sequence number.
    pub seq: u64,
    /// The state root after that block (the root its finalization
    /// certificate and attestations are about, which later writes of the
    /// same block may have changed after this one).
    pub state_root: Hash32,
}

/// The answer a waiting caller receives.
pub type Outcome = Result<Committed, SubmitError>;

struct Candidate {
    write: SignedWrite,
    digest: [u8; 32],
    bytes: usize,
}

struct Waiting {
    seq: u64,
    callers: Vec<oneshot::Sender<Outcome>>,
}

/// How an admitted write relates to what the pool held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admitted {
    /// A new candidate.
    New,
    /// The same body was already a candidate.
    Duplicate,
    /// Another body holds this sequence number; this one waits to learn
    /// which is finalized but is not proposed.
    Contender,
}

/// The pending writes of one dataset at one member.
#[derive(Default)]
pub struct Pool {
    candidates: BTreeMap<u64, Candidate>,
    /// Ordered, not hashed: dropping the pool wakes every waiting caller,
    /// and a deterministic simulation needs them woken in the same order
    /// on every run.
    waiting: BTreeMap<[u8; 32], Waiting>,
    bytes: usize,
}

impl Pool {
    /// Adds a write whose signature and sequence number the caller has
    /// checked. `encoded_len` is its canonical size.
    pub fn admit(
        &mut self,
        write: SignedWrite,
        digest: [u8; 32],
        encoded_len: usize,
    ) -> Result<Admitted, SubmitError> {
        let seq = write.body.seq;
        if let Some(existing) = self.candidates.get(&seq) {
            return Ok(if existing.digest == digest {
                Admitted::Duplicate
            } else {
                Admitted::Contender
            });
        }
        if self.candidates.len() >= POOL_WRITES_MAX
            || self.bytes.saturating_add(encoded_len) > POOL_BYTES_MAX
        {
            return Err(SubmitError::PoolFull);
        }
        self.bytes += encoded_len;
        self.candidates.insert(
            seq,
            Candidate {
                write,
                digest,
                bytes: encoded_len,
            },
        );
        Ok(Admitted::New)
    }

    /// Registers a caller to be answered when the write `digest` with
    /// number `seq` is finalized or can no longer be.
    pub fn wait(
        &mut self,
        digest: [u8; 32],
        seq: u64,
    ) -> Result<oneshot::Receiver<Outcome>, SubmitError> {
        if !self.waiting.contains_key(&digest) && self.waiting.len() >= WAITING_WRITES_MAX {
            return Err(SubmitError::PoolFull);
        }
        let waiting = self.waiting.entry(digest).or_insert_with(|| Waiting {
            seq,
            callers: Vec::new(),
        });
        if waiting.callers.len() >= WAITERS_PER_WRITE_MAX {
            return Err(SubmitError::PoolFull);
        }
        let (sender, receiver) = oneshot::channel();
        waiting.callers.push(sender);
        Ok(receiver)
    }

    /// Up to `writes_max` candidates with consecutive numbers from `next`,
    /// within `bytes_max` bytes (at least one if any is there, whatever
    /// its size: a single write always fits a block).
    pub fn run_from(&self, next: u64, writes_max: usize, bytes_max: usize) -> Vec<SignedWrite> {
        let mut out = Vec::new();
        let mut bytes = 0usize;
        let mut expected = next;
        for (seq, candidate) in self.candidates.range(next..) {
            if *seq != expected || out.len() == writes_max {
                break;
            }
            if !out.is_empty() && bytes + candidate.bytes > bytes_max {
                break;
            }
            bytes += candidate.bytes;
            out.push(candidate.write.clone());
            let Some(following) = expected.checked_add(1) else {
                break;
            };
            expected = following;
        }
        out
    }

    /// Drops the candidate with number `seq` (if it is `digest`) and
    /// answers its callers with `error`: it was refused against the state
    /// it would extend.
    pub fn refuse(&mut self, seq: u64, digest: [u8; 32], error: SubmitError) {
        if self
            .candidates
            .get(&seq)
            .is_some_and(|c| c.digest == digest)
        {
            if let Some(candidate) = self.candidates.remove(&seq) {
                self.bytes -= candidate.bytes;
            }
        }
        if let Some(waiting) = self.waiting.remove(&digest) {
            for caller in waiting.callers {
                let _ = caller.send(Err(error.clone()));
            }
        }
    }

    /// A block at `height` leaving `state_root` was finalized and applied:
    /// answers the callers of its writes (`(digest, seq)` in order), and
    /// drops every candidate and caller whose number is now taken.
    pub fn finalized(&mut self, height: u64, state_root: Hash32, writes: &[([u8; 32], u64)]) {
        for (digest, seq) in writes {
            if let Some(waiting) = self.waiting.remove(digest) {
                for caller in waiting.callers {
                    let _ = caller.send(Ok(Committed {
                        height,
                        seq: *seq,
                        state_root,
                    }));
                }
            }
        }
        let Some(&(_, last_seq)) = writes.last() else {
            return;
        };
        // Candidates up to the last finalized number can never apply.
        let kept = self.candidates.split_off(&last_seq.saturating_add(1));
        let taken = std::mem::replace(&mut self.candidates, kept);
        for candidate in taken.values() {
            self.bytes -= candidate.bytes;
        }
        let first_seq = writes[0].1;
        let stale: Vec<[u8; 32]> = self
            .waiting
            .iter()
            .filter(|(_, w)| (first_seq..=last_seq).contains(&w.seq))
            .map(|(digest, _)| *digest)
            .collect();
        for digest in stale {
            if let Some(waiting) = self.waiting.remove(&digest) {
                for caller in waiting.callers {
                    let _ = caller.send(Err(SubmitError::SeqTaken { seq: waiting.seq }));
                }
            }
        }
    }

    /// The owner named by a pending `Create` (seq 0), whose signature and
    /// id derivation were checked on admission: a member that has not yet
    /// applied the dataset's creation can still check its next writes.
    pub fn pending_owner(&self) -> Option<PublicKey> {
        match &self.candidates.get(&0)?.write.body.action {
            Action::Create { owner, .. } => Some(*owner),
            _ => None,
        }
    }

    /// Number of candidates held.
    pub fn len(&self) -> usize {
        self.candidates.len()
    }

    /// Whether no candidate is held.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.candidates.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fluence_proto::{DatasetId, Signature, WriteBody};

    fn write(seq: u64, tag: u8) -> SignedWrite {
        SignedWrite {
            body: WriteBody {
                dataset: DatasetId([1; 32]),
                seq,
                action: Action::Reindex {
                    descriptor: vec![tag],
                    indexes: Vec::new(),
                },
            },
            signature: Signature([0; 64]),
        }
    }

    fn admit(pool: &mut Pool, write: SignedWrite) -> Admitted {
        let digest = write.body.digest();
        pool.admit(write, digest, 100).unwrap()
    }

    #[test]
    fn the_same_body_is_one_candidate_and_every_caller_is_answered() {
        let mut pool = Pool::default();
        let w = write(1, 0);
        let digest = w.body.digest();
        assert_eq!(admit(&mut pool, w.clone()), Admitted::New);
        assert_eq!(admit(&mut pool, w.clone()), Admitted::Duplicate);
        assert_eq!(pool.len(), 1);
        let mut first = pool.wait(digest, 1).unwrap();
        let mut second = pool.wait(digest, 1).unwrap();
        pool.finalized(7, Hash32([7; 32]), &[(digest, 1)]);
        assert!(pool.is_empty());
        let expected = Committed {
            height: 7,
            seq: 1,
            state_root: Hash32([7; 32]),
        };
        assert_eq!(first.try_recv().unwrap(), Some(Ok(expected)));
        assert_eq!(second.try_recv().unwrap(), Some(Ok(expected)));
    }

    #[test]
    fn a_contender_for_a_taken_number_learns_it_lost() {
        let mut pool = Pool::default();
        let winner = write(1, 0);
        let loser = write(1, 9);
        assert_eq!(admit(&mut pool, winner.clone()), Admitted::New);
        assert_eq!(admit(&mut pool, loser.clone()), Admitted::Contender);
        let mut waiting = pool.wait(loser.body.digest(), 1).unwrap();
        pool.finalized(3, Hash32([3; 32]), &[(winner.body.digest(), 1)]);
        assert_eq!(
            waiting.try_recv().unwrap(),
            Some(Err(SubmitError::SeqTaken { seq: 1 }))
        );
    }

    #[test]
    fn runs_are_consecutive_and_bounded() {
        let mut pool = Pool::default();
        for seq in [1, 2, 3, 5] {
            admit(&mut pool, write(seq, 0));
        }
        let seqs = |run: Vec<SignedWrite>| run.iter().map(|w| w.body.seq).collect::<Vec<_>>();
        assert_eq!(seqs(pool.run_from(1, 10, 10_000)), vec![1, 2, 3]);
        assert_eq!(seqs(pool.run_from(1, 2, 10_000)), vec![1, 2]);
        // At least one write, whatever the byte budget.
        assert_eq!(seqs(pool.run_from(1, 10, 150)), vec![1]);
        assert_eq!(seqs(pool.run_from(4, 10, 10_000)), Vec::<u64>::new());
        let refused = write(2, 0);
        let mut waiting = pool.wait(refused.body.digest(), 2).unwrap();
        pool.refuse(
            2,
            refused.body.digest(),
            SubmitError::Refused(fluence_proto::NodeError::StaleSchema),
        );
        assert_eq!(seqs(pool.run_from(1, 10, 10_000)), vec![1]);
        assert!(matches!(
            waiting.try_recv().unwrap(),
            Some(Err(SubmitError::Refused(
                fluence_proto::NodeError::StaleSchema
            )))
        ));
    }
}
