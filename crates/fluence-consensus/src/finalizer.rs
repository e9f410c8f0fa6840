//! [`Finalizer`]: receives finalized blocks from marshal, in height order,
//! and applies them to the member's store and chain before acknowledging
//! them; then answers the callers waiting for their writes.
//!
//! Marshal delivers each finalized block at least once and waits for its
//! acknowledgement; a block is acknowledged only once it is durably in the
//! store and the chain, so a crash at any point redelivers it and the
//! executor recognises what was already applied.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use commonware_actor::Feedback;
use commonware_codec::Encode;
use commonware_consensus::marshal::core::Mailbox;
use commonware_consensus::marshal::standard::Standard;
use commonware_consensus::marshal::Update;
use commonware_consensus::{Heightable, Reporter};
use commonware_utils::Acknowledgement;
use fluence_store::OreOrder;
use futures::channel::mpsc;
use futures::StreamExt;
use tracing::error;

use crate::app::Scheme;
use crate::block::ChainBlock;
use crate::error::ReplicaFault;
use crate::member::Member;

/// Marshal's reporter: hands updates to the applier task.
#[derive(Clone)]
pub struct Finalizer {
    updates: mpsc::UnboundedSender<Update<ChainBlock>>,
}

impl Reporter for Finalizer {
    type Activity = Update<ChainBlock>;

    fn report(&mut self, activity: Self::Activity) -> Feedback {
        // Unbounded on purpose: marshal itself bounds the blocks in flight
        // (`max_pending_acks`), and tips are one small value each.
        match self.updates.unbounded_send(activity) {
            Ok(()) => Feedback::Ok,
            Err(_) => Feedback::Closed,
        }
    }
}

/// What the applier reports about its progress.
#[derive(Default)]
pub struct Progress {
    /// Height of the newest finalization marshal has seen (may be above
    /// the applied tip while blocks are fetched).
    pub finalized_tip: AtomicU64,
    /// Why the applier stopped, if it did.
    pub fault: Mutex<Option<String>>,
    /// The applied block whose membership change ended the epoch, and
    /// the empty blocks above it up to the first certified one (just the
    /// change block when it has its own certificate).
    pub epoch_end: Mutex<EpochEnd>,
}

/// How far the proof of the change that ended the epoch is.
#[derive(Default)]
pub struct EpochEnd {
    blocks: Vec<fluence_chain::FinalizedBlock>,
}

impl EpochEnd {
    fn complete(&self) -> bool {
        self.blocks
            .last()
            .is_some_and(|last| !last.certificate.is_empty())
    }

    /// Adds the next finalized block of the ended epoch while the proof
    /// still lacks a certificate.
    fn extend(&mut self, block: fluence_chain::FinalizedBlock) {
        if !self.blocks.is_empty()
            && !self.complete()
            && self.blocks.len() < fluence_chain::CHANGE_PROOF_BLOCKS_MAX
        {
            self.blocks.push(block);
        }
    }
}

impl Progress {
    pub fn fault(&self) -> Option<String> {
        self.fault
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The change that ended the epoch with its proof, once the proof
    /// holds a certificate.
    pub fn epoch_end(&self) -> Option<fluence_chain::CertifiedChange> {
        let end = self
            .epoch_end
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        end.complete().then(|| fluence_chain::CertifiedChange {
            blocks: end.blocks.clone(),
        })
    }

    fn record_epoch_end(&self, block: fluence_chain::FinalizedBlock) {
        let mut end = self
            .epoch_end
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if end.blocks.is_empty() {
            end.blocks.push(block);
        } else {
            end.extend(block);
        }
    }
}

/// The finalizer and the receiving end its applier task runs on.
pub fn channel() -> (Finalizer, mpsc::UnboundedReceiver<Update<ChainBlock>>) {
    let (updates, receiver) = mpsc::unbounded();
    (Finalizer { updates }, receiver)
}

/// Applies finalized blocks until marshal stops or a fault is found. On a
/// fault the block stays unacknowledged (its acknowledgement is kept, so
/// marshal waits rather than stops) and the member stops advancing.
pub async fn run<O: OreOrder>(
    member: Arc<Member<O>>,
    marshal: Mailbox<Scheme, Standard<ChainBlock>>,
    progress: Arc<Progress>,
    mut updates: mpsc::UnboundedReceiver<Update<ChainBlock>>,
) {
    let mut parked = Vec::new();
    while let Some(update) = updates.next().await {
        let (block, ack) = match update {
            Update::Tip(_, height, _) => {
                // Marshal counts heights from the epoch's first block.
                progress
                    .finalized_tip
                    .fetch_max(member.base_height + height.get(), Ordering::Relaxed);
                continue;
            }
            Update::Block(block, ack) => (block, ack),
        };
        if !parked.is_empty() {
            parked.push(ack);
            continue;
        }
        let height = block.height();
        let chain_height = block.inner().block().height;
        // Descendants can finalize a block without a certificate of its own.
        let certificate = marshal
            .get_finalization(height)
            .await
            .map(|finalization| finalization.encode().to_vec())
            .unwrap_or_default();
        // After the change that ends this epoch, the epoch finalizes only
        // empty blocks (they may be what finalized the change: the first
        // certified one completes its proof); they are not part of the
        // chain, which the next epoch continues from the change.
        if member.retired() {
            progress.record_epoch_end(fluence_chain::FinalizedBlock {
                block: block.inner().block().clone(),
                certificate,
            });
            ack.acknowledge();
            continue;
        }
        progress
            .finalized_tip
            .fetch_max(chain_height, Ordering::Relaxed);
        let ends_epoch = block
            .inner()
            .block()
            .change
            .as_ref()
            .is_some_and(|change| change.epoch > member.epoch);
        let record = ends_epoch.then(|| fluence_chain::FinalizedBlock {
            block: block.inner().block().clone(),
            certificate: certificate.clone(),
        });
        match member.exec.apply_finalized(block.inner(), certificate) {
            Ok(_) if ends_epoch => {
                member.retire();
                if let Some(record) = record {
                    progress.record_epoch_end(record);
                }
                ack.acknowledge();
            }
            Ok(Some(writes)) => {
                member
                    .pool()
                    .finalized(chain_height, block.inner().block().state_root, &writes);
                member.inbox().prune(chain_height);
                ack.acknowledge();
            }
            Ok(None) => ack.acknowledge(),
            Err(fault) => {
                report_fault(&progress, &fault);
                parked.push(ack);
            }
        }
    }
}

fn report_fault(progress: &Progress, fault: &ReplicaFault) {
    error!(%fault, "replica stopped applying finalized blocks");
    *progress
        .fault
        .lock()
        .unwrap_or_else(PoisonError::into_inner) = Some(fault.to_string());
}
