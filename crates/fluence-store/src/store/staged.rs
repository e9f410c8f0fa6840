//! [`Staged`]: a sequence of writes executed in an open transaction that
//! is committed later, or thrown away.
//!
//! A cluster member executes every block twice without it: once to verify
//! the state root a proposal claims (in a transaction that is aborted,
//! because the block is not finalized yet) and again, identically, to
//! apply the block once it is finalized. Keeping the verified transaction
//! open instead lets the member commit it when that same block is
//! finalized on the same parent state, which is the common case; if
//! anything else must write first, the staged transaction is dropped
//! (aborted) and the block is applied by executing it again.
//!
//! While a `Staged` is alive no other write of its dataset may begin:
//! redb has one write transaction per file and would block the caller, so
//! other writers get [`StoreError::Staged`] instead. Readers are not
//! affected: they see the last committed state, never the staged one.

use std::sync::Arc;

use fluence_proto::SignedWrite;
use redb::WriteTransaction;

use super::{lock, refuse, Applied, Dataset, Flush, SequenceError, Store};
use crate::error::{ApplyError, StoreError};
use crate::merkle::TreeOverlay;
use crate::order::OreOrder;

/// Writes executed, not yet committed. Dropping it aborts them.
pub struct Staged {
    dataset: Arc<Dataset>,
    txn: Option<(WriteTransaction, TreeOverlay)>,
    applied: Vec<Applied>,
}

impl<O: OreOrder> Store<O> {
    /// Executes `Batch` and `Reindex` writes of one dataset as
    /// [`Store::apply_sequence`] would, and keeps the transaction open:
    /// [`Staged::commit`] makes it durable, dropping it changes nothing.
    /// The results (and refusals) are exactly those of `apply_sequence`.
    pub fn stage_sequence(&self, writes: &[SignedWrite]) -> Result<Staged, SequenceError> {
        let Some((dataset, encoded)) = self.sequence_input(writes)? else {
            return Err(refuse(
                0,
                ApplyError::BadWrite("an empty sequence has nothing to stage".into()),
            ));
        };
        let mut writer = lock(&dataset.writer);
        writer.check_writable().map_err(|error| refuse(0, error))?;
        let (txn, overlay, applied) = Self::execute(&dataset, writes, &encoded)?;
        writer.staged = true;
        drop(writer);
        Ok(Staged {
            dataset,
            txn: Some((txn, overlay)),
            applied,
        })
    }
}

impl Staged {
    /// Each staged write's sequence number and the state root after it.
    pub fn applied(&self) -> &[Applied] {
        &self.applied
    }

    /// Commits the staged writes durably: `Ok` means they reached the disk.
    /// On an error nothing was committed.
    pub fn commit(self) -> Result<Vec<Applied>, StoreError> {
        self.commit_flushing(Flush::Now)
    }

    /// [`Staged::commit`], flushed to disk as `flush` says.
    pub fn commit_flushing(mut self, flush: Flush) -> Result<Vec<Applied>, StoreError> {
        let (txn, overlay) = self.txn.take().ok_or(StoreError::Staged)?;
        let committed = self.dataset.commit(txn, overlay, flush);
        self.release();
        committed?;
        Ok(std::mem::take(&mut self.applied))
    }

    /// Lets other writers of the dataset begin again.
    fn release(&self) {
        lock(&self.dataset.writer).staged = false;
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if let Some((txn, _)) = self.txn.take() {
            // An abort that fails leaves nothing committed either (redb
            // rolls the file back to its last commit when it reopens), and
            // a drop has no caller to tell.
            let _ = txn.abort();
            self.release();
        }
    }
}
