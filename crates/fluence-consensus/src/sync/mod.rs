//! Empty-disk sync: a member that holds nothing of a dataset it replicates
//! rebuilds it from another member's snapshot, checked against a finalized
//! block, instead of replaying the chain from its first block.
//!
//! # When
//!
//! At start, before consensus runs ([`prepare`]):
//!
//! - a chain that starts at a floor (an earlier sync) restarts from that
//!   floor's certificate;
//! - a chain holding blocks from height 1 restarts as before (marshal
//!   redelivers what was not applied);
//! - an empty chain means this member holds nothing the cluster agreed
//!   on. A copy of the dataset in the store without any chain block
//!   behind it (a crash inside a sync, or between applying the dataset's
//!   `Create` and recording its block) is discarded first; then the
//!   [`client`] probes the other members and, if any has state, fetches
//!   and imports a snapshot, records its anchor block as the chain's floor
//!   (`ChainStore::install_floor`) and moves the executor there.
//!
//! Store first, chain second: a crash between them leaves a store copy with
//! an empty chain, which the next start discards and fetches again.
//!
//! # Consensus after a sync
//!
//! simplex and marshal start from the anchor's finalization
//! (`Floor::Finalized`, `Start::Floor`) instead of genesis, in storage
//! partitions named after the floor height (`<prefix>-f<height>-...`), so
//! nothing a previous life of this member left in the old partitions is
//! replayed into a state it no longer has. simplex then votes only in
//! views above the anchor's; marshal fetches the anchor block and every
//! later finalized block from the members and hands them to the applier
//! from the anchor on (the anchor itself is recognised as applied).
//!
//! Lost votes are the price of a lost disk: a member whose simplex journal
//! is gone does not remember how it voted in views after the anchor, so
//! until it has caught up it may vote again in such a view. That is the
//! equivocation of one member, which consensus tolerates among its f
//! faults; operators should count a wiped member as faulty until it is
//! back (see ARCHITECTURE.md).
//!
//! # The channel
//!
//! One channel ([`crate::Channel::Sync`]) carries requests and answers
//! ([`message`]); the [`serve`] task reads it, answers requests from this
//! member's state ([`server`]) and hands answers to the client.

pub mod client;
pub mod message;
pub mod server;

use std::sync::Arc;
use std::time::Duration;

use commonware_cryptography::ed25519;
use commonware_p2p::{Receiver, Recipients, Sender};
use commonware_runtime::Clock;
use fluence_store::OreOrder;
use futures::channel::mpsc;
use tracing::{debug, warn};

use crate::certificate::{self, FinalizationCertificate};
use crate::error::ReplicaFault;
use crate::member::Member;
use message::SyncMessage;

pub use client::SyncReport;

/// Answers waiting for the client; more are dropped (the client asks
/// again).
const ANSWERS_QUEUED_MAX: usize = 64;
/// How often idle snapshot sessions are looked for while nothing arrives.
const EXPIRY_INTERVAL: Duration = Duration::from_secs(5);

/// The client's end of the sync channel.
pub type Answers = mpsc::Receiver<(ed25519::PublicKey, SyncMessage)>;

/// Reads the sync channel until it closes: requests are answered from
/// `member`'s state, answers go to the returned client queue.
pub fn serve<E, O, S, R>(
    context: E,
    member: Arc<Member<O>>,
    mut sender: S,
    mut receiver: R,
) -> (impl std::future::Future<Output = ()>, Answers)
where
    E: Clock,
    O: OreOrder,
    S: Sender<PublicKey = ed25519::PublicKey>,
    R: Receiver<PublicKey = ed25519::PublicKey>,
{
    let (mut answers, client_end) = mpsc::channel(ANSWERS_QUEUED_MAX);
    let task = async move {
        let mut server = server::Server::new(member);
        loop {
            let received = {
                let tick = context.sleep(EXPIRY_INTERVAL);
                let next = receiver.recv();
                futures::pin_mut!(tick, next);
                match futures::future::select(next, tick).await {
                    futures::future::Either::Left((received, _)) => Some(received),
                    futures::future::Either::Right(_) => None,
                }
            };
            let now = context.current();
            let Some(received) = received else {
                server.expire(now);
                continue;
            };
            let Ok((from, bytes)) = received else {
                return;
            };
            let message = match SyncMessage::from_untrusted(bytes.as_ref()) {
                Ok(message) => message,
                Err(error) => {
                    debug!(%from, %error, "undecodable sync message");
                    continue;
                }
            };
            if message.answer_nonce().is_some() {
                // A full queue or a finished client: the answer is not needed.
                let _ = answers.try_send((from, message));
                continue;
            }
            if let Some(answer) = server.handle_encoded(&from, message, now) {
                sender.send(Recipients::One(from), answer, false);
            }
        }
    };
    (task, client_end)
}

/// How consensus starts after [`prepare`].
pub enum Start {
    /// From the epoch's first block: the chain's genesis block in epoch 0,
    /// the block of the change that started a later epoch (or from what
    /// its partitions recorded).
    Genesis,
    /// From the chain's floor, in partitions named after its height.
    Floor {
        height: u64,
        finalization: FinalizationCertificate,
    },
}

/// Brings the member's chain and store to where consensus can start (see
/// the module docs) and says from where.
pub async fn prepare<E, S, O>(
    client: client::Client<E, S, O>,
    member: &Member<O>,
) -> Result<Start, ReplicaFault>
where
    E: Clock + rand_core::CryptoRng,
    S: Sender<PublicKey = ed25519::PublicKey>,
    O: OreOrder,
{
    let exec = &member.exec;
    let chain = exec.chain();
    // A floor inside this epoch restarts from its certificate; one at the
    // epoch's first block (a newcomer's sync) or below restarts from that
    // block, as the epoch's members do.
    if let Some(floor) = chain.floor()? {
        if floor.block.height > member.base_height {
            let finalization = certificate::decode(&floor.certificate, member.members.len())
                .map_err(|e| ReplicaFault::Store(format!("the chain's floor certificate: {e}")))?;
            return Ok(Start::Floor {
                height: floor.block.height,
                finalization,
            });
        }
    }
    let tip = chain.tip()?.height;
    if tip > 0 && tip >= member.base_height {
        return Ok(Start::Genesis);
    }
    if tip > 0 {
        // Blocks of an earlier epoch that stop before this one began:
        // nothing in this epoch can extend them.
        return Err(ReplicaFault::Store(format!(
            "the chain ends at height {tip}, below the first block of epoch {} at height {}",
            member.epoch, member.base_height
        )));
    }
    let dataset = exec.dataset();
    if exec
        .committed()
        .map_err(|e| ReplicaFault::Store(e.to_string()))?
        .is_some()
    {
        warn!(%dataset, "discarding a copy of the dataset no finalized block backs");
        exec.store()
            .discard(&dataset)
            .map_err(|e| ReplicaFault::Store(e.to_string()))?;
        exec.resume_from_chain()?;
    }
    let start = match client.run().await {
        client::Outcome::Genesis => Start::Genesis,
        client::Outcome::Synced {
            anchor,
            finalization,
            report,
        } => {
            let start = match finalization {
                Some(finalization) => {
                    chain.install_floor(&anchor)?;
                    exec.resume_from_chain()?;
                    Start::Floor {
                        height: anchor.block.height,
                        finalization,
                    }
                }
                // The epoch's first block: consensus starts there, as on
                // the members that applied it.
                None => {
                    chain.install_epoch_base(&anchor.block)?;
                    exec.resume_from_chain()?;
                    Start::Genesis
                }
            };
            // Reported once the chain holds the anchor: whoever sees the
            // report sees the floor too.
            member.set_sync_report(report);
            start
        }
    };
    // Writes are taken again only once store and chain agree.
    member.set_syncing(false);
    Ok(start)
}
