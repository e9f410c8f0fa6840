//! The fetching side of sync: probe the other members, then rebuild the
//! dataset from one member's snapshot, checked against a finalized block.
//!
//! 1. **Probe**: ask every other member how far its applied chain is
//!    ([`SyncMessage::TipRequest`]), resending to the silent ones, until
//!    all answered or [`PROBE_WINDOW`] passed (longer, up to
//!    [`PROBE_DEADLINE`], while nobody answered at all). Heights are not
//!    proven; they only say who has something to serve. If nobody does,
//!    the dataset is new (or everyone lost it): start from genesis.
//! 2. **Fetch** from the members that have state, in turn (starting after
//!    this member in key order, so several newcomers spread their load):
//!    open a snapshot; check its anchor block's certificate against the
//!    member keys (2f + 1 signatures, payload = the block's hash) and that
//!    the header's state root is the block's; import every page; the
//!    import installs the dataset only if the documents hash to that root.
//!    Anything else (a bad certificate, a refused page, a wrong root, a
//!    member that stops answering) abandons that member for the next.
//! 3. After [`FETCH_ROUNDS_MAX`] rounds without success, give up and start
//!    from genesis: marshal then backfills every block from the start,
//!    which is slow but needs nothing but the chain.

use std::sync::Arc;
use std::time::Duration;

use commonware_cryptography::ed25519;
use commonware_p2p::{Recipients, Sender};
use commonware_runtime::Clock;
use fluence_chain::FinalizedBlock;
use fluence_proto::{Encode, PublicKey};
use fluence_store::OreOrder;
use futures::channel::mpsc;
use futures::StreamExt;
use rand_core::CryptoRng;
use tracing::{info, warn};

use super::message::{Refusal, SyncMessage};
use crate::certificate::{verify_finalization, FinalizationCertificate};
use crate::keys::to_public_key;
use crate::member::Member;

/// How often silent members are asked again during the probe.
pub const PROBE_INTERVAL: Duration = Duration::from_millis(250);
/// How long the probe waits for every member to answer.
pub const PROBE_WINDOW: Duration = Duration::from_secs(2);
/// How long the probe waits when no member answered at all.
pub const PROBE_DEADLINE: Duration = Duration::from_secs(10);
/// How long one request waits for its answer.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// How often one request is sent before its member is abandoned.
pub const REQUEST_ATTEMPTS: usize = 4;
/// How long to wait before opening again at a member that is between
/// blocks, and how often.
pub const NOT_READY_RETRY: Duration = Duration::from_millis(100);
pub const NOT_READY_ATTEMPTS: usize = 100;
/// Rounds of probing and fetching before starting from genesis (in the
/// genesis epoch; a later epoch's newcomer keeps trying).
pub const FETCH_ROUNDS_MAX: usize = 20;
/// Abandoned snapshots a report keeps (the newest).
const ABANDONED_KEPT: usize = 32;
/// Pause between rounds.
pub const ROUND_BACKOFF: Duration = Duration::from_secs(1);

/// What a sync achieved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncReport {
    /// The height of the block the snapshot was taken at.
    pub height: u64,
    /// The member that served it.
    pub from: PublicKey,
    /// Members abandoned on the way, and why.
    pub abandoned: Vec<(PublicKey, String)>,
}

/// How the replica starts.
pub enum Outcome {
    /// The dataset was rebuilt from a snapshot at `anchor`, certified by
    /// `finalization` (none when the anchor is the first block of this
    /// later epoch, which the node already knows by hash).
    Synced {
        anchor: FinalizedBlock,
        finalization: Option<FinalizationCertificate>,
        report: SyncReport,
    },
    /// No member has anything to serve: start from genesis.
    Genesis,
}

/// Why fetching from one member failed.
#[derive(Debug, thiserror::Error)]
enum FetchError {
    #[error("no answer after {REQUEST_ATTEMPTS} attempts")]
    Silent,
    #[error("refused: {0:?}")]
    Refused(Refusal),
    #[error("the anchor block: {0}")]
    Anchor(String),
    #[error("the snapshot: {0}")]
    Snapshot(String),
    #[error("an answer that does not fit the request")]
    Unexpected,
    #[error("the sync channel closed")]
    Closed,
}

/// Fetches a snapshot for one member.
pub struct Client<E, S, O: OreOrder> {
    context: E,
    sender: S,
    answers: mpsc::Receiver<(ed25519::PublicKey, SyncMessage)>,
    member: Arc<Member<O>>,
    /// The other members, starting after this one in key order.
    peers: Vec<ed25519::PublicKey>,
    next_nonce: u64,
}

impl<E, S, O> Client<E, S, O>
where
    E: Clock + CryptoRng,
    S: Sender<PublicKey = ed25519::PublicKey>,
    O: OreOrder,
{
    pub fn new(
        mut context: E,
        sender: S,
        answers: mpsc::Receiver<(ed25519::PublicKey, SyncMessage)>,
        member: Arc<Member<O>>,
        me: &ed25519::PublicKey,
        mut members: Vec<ed25519::PublicKey>,
    ) -> Self {
        members.sort();
        members.dedup();
        let split = members.partition_point(|key| key <= me);
        let mut peers = members.split_off(split);
        peers.extend(members.into_iter().filter(|key| key != me));
        // Answers to an earlier run of this member must not match.
        let next_nonce = context.next_u64();
        Client {
            context,
            sender,
            answers,
            member,
            peers,
            next_nonce,
        }
    }

    fn nonce(&mut self) -> u64 {
        self.next_nonce = self.next_nonce.wrapping_add(1);
        self.next_nonce
    }

    fn send(&mut self, to: Recipients<ed25519::PublicKey>, message: &SyncMessage) {
        self.sender.send(to, message.to_bytes(), false);
    }

    /// Runs the sync (see the module docs).
    pub async fn run(mut self) -> Outcome {
        let mut abandoned = Vec::new();
        // A later epoch starts where the previous one ended: its members
        // hold the state, and there is no chain of this epoch to replay
        // from genesis, so its newcomer keeps trying.
        let may_replay = self.member.epoch == fluence_proto::cluster::GENESIS_EPOCH;
        let mut round = 0usize;
        loop {
            if may_replay && round >= FETCH_ROUNDS_MAX {
                warn!("no member served a usable snapshot; replaying the chain from genesis");
                return Outcome::Genesis;
            }
            round += 1;
            let holders = self.probe().await;
            if holders.is_empty() && may_replay {
                return Outcome::Genesis;
            }
            if !holders.is_empty() {
                self.member.set_syncing(true);
            }
            for peer in holders {
                match self.fetch(&peer).await {
                    Ok((anchor, finalization)) => {
                        let report = SyncReport {
                            height: anchor.block.height,
                            from: to_public_key(&peer),
                            abandoned,
                        };
                        info!(
                            height = report.height,
                            from = %report.from,
                            "rebuilt the dataset from a member's snapshot"
                        );
                        return Outcome::Synced {
                            anchor,
                            finalization,
                            report,
                        };
                    }
                    Err(error) => {
                        warn!(member = %peer, %error, round, "abandoning a member's snapshot");
                        abandoned.push((to_public_key(&peer), error.to_string()));
                        if abandoned.len() > ABANDONED_KEPT {
                            abandoned.remove(0);
                        }
                    }
                }
            }
            self.context.sleep(ROUND_BACKOFF).await;
        }
    }

    /// The members that report applied blocks, in this member's order.
    async fn probe(&mut self) -> Vec<ed25519::PublicKey> {
        let started = self.context.current();
        let mut heights: Vec<Option<u64>> = vec![None; self.peers.len()];
        let nonce = self.nonce();
        loop {
            let silent: Vec<_> = self
                .peers
                .iter()
                .zip(&heights)
                .filter(|(_, height)| height.is_none())
                .map(|(peer, _)| peer.clone())
                .collect();
            let elapsed = self
                .context
                .current()
                .duration_since(started)
                .unwrap_or_default();
            let anyone = heights.iter().any(Option::is_some);
            if silent.is_empty() || (anyone && elapsed >= PROBE_WINDOW) || elapsed >= PROBE_DEADLINE
            {
                break;
            }
            self.send(Recipients::Some(silent), &SyncMessage::TipRequest { nonce });
            let until = self.context.current() + PROBE_INTERVAL;
            while let Some((from, answer)) = self.next_answer(until).await {
                if let SyncMessage::Tip {
                    nonce: answered,
                    height,
                } = answer
                {
                    if answered == nonce {
                        if let Some(i) = self.peers.iter().position(|p| *p == from) {
                            heights[i] = Some(height);
                        }
                    }
                }
            }
        }
        self.peers
            .iter()
            .zip(heights)
            .filter(|(_, height)| height.is_some_and(|h| h > 0))
            .map(|(peer, _)| peer.clone())
            .collect()
    }

    /// The next answer arriving before `until`.
    async fn next_answer(
        &mut self,
        until: std::time::SystemTime,
    ) -> Option<(ed25519::PublicKey, SyncMessage)> {
        let deadline = self.context.sleep_until(until);
        let next = self.answers.next();
        futures::pin_mut!(deadline);
        match futures::future::select(next, deadline).await {
            futures::future::Either::Left((answer, _)) => answer,
            futures::future::Either::Right(_) => None,
        }
    }

    /// Sends the request `build(nonce)` to `peer` until it answers.
    async fn request(
        &mut self,
        peer: &ed25519::PublicKey,
        build: impl Fn(u64) -> SyncMessage,
    ) -> Result<SyncMessage, FetchError> {
        for _ in 0..REQUEST_ATTEMPTS {
            let nonce = self.nonce();
            self.send(Recipients::One(peer.clone()), &build(nonce));
            let until = self.context.current() + REQUEST_TIMEOUT;
            loop {
                let deadline = self.context.sleep_until(until);
                let next = self.answers.next();
                futures::pin_mut!(deadline);
                let answer = match futures::future::select(next, deadline).await {
                    futures::future::Either::Left((Some(answer), _)) => answer,
                    futures::future::Either::Left((None, _)) => return Err(FetchError::Closed),
                    futures::future::Either::Right(_) => break,
                };
                let (from, message) = answer;
                if from == *peer && message.answer_nonce() == Some(nonce) {
                    return Ok(message);
                }
            }
        }
        Err(FetchError::Silent)
    }

    /// Opens a snapshot at `peer`, waiting while it is between blocks.
    async fn open(
        &mut self,
        peer: &ed25519::PublicKey,
    ) -> Result<(u64, FinalizedBlock, fluence_proto::SnapshotHeader), FetchError> {
        for _ in 0..NOT_READY_ATTEMPTS {
            match self
                .request(peer, |nonce| SyncMessage::OpenRequest { nonce })
                .await?
            {
                SyncMessage::Opened {
                    session,
                    anchor,
                    header,
                    ..
                } => return Ok((session, anchor, header)),
                SyncMessage::Refused {
                    reason: Refusal::NotReady,
                    ..
                } => self.context.sleep(NOT_READY_RETRY).await,
                SyncMessage::Refused { reason, .. } => return Err(FetchError::Refused(reason)),
                _ => return Err(FetchError::Unexpected),
            }
        }
        Err(FetchError::Refused(Refusal::NotReady))
    }

    /// Whether a snapshot may be taken at `anchor`: a block of this epoch
    /// certified by its members, or the epoch's first block itself (its
    /// hash is known; the previous members certified it). A block of this
    /// epoch below its first one cannot be.
    fn check_anchor(
        &self,
        dataset: &fluence_proto::DatasetId,
        anchor: &FinalizedBlock,
    ) -> Result<Option<FinalizationCertificate>, FetchError> {
        if let Some(base) = &self.member.base {
            if anchor.block.height < base.height {
                return Err(FetchError::Anchor(format!(
                    "height {} is below this epoch's first block at {}",
                    anchor.block.height, base.height
                )));
            }
            if anchor.block.height == base.height {
                return if anchor.block.hash() == base.hash() {
                    Ok(None)
                } else {
                    Err(FetchError::Anchor(
                        "not this epoch's first block at its height".into(),
                    ))
                };
            }
        }
        verify_finalization(dataset, self.member.epoch, &self.member.members, anchor)
            .map(Some)
            .map_err(|e| FetchError::Anchor(e.to_string()))
    }

    /// Rebuilds the dataset from `peer`'s snapshot.
    async fn fetch(
        &mut self,
        peer: &ed25519::PublicKey,
    ) -> Result<(FinalizedBlock, Option<FinalizationCertificate>), FetchError> {
        let (session, anchor, header) = self.open(peer).await?;
        let exec = &self.member.exec;
        let dataset = exec.dataset();
        let finalization = self.check_anchor(&dataset, &anchor)?;
        if header.info.dataset != dataset || header.info.state_root != anchor.block.state_root {
            return Err(FetchError::Anchor(format!(
                "the snapshot's state root {} is not the block's {}",
                header.info.state_root, anchor.block.state_root
            )));
        }
        let member = Arc::clone(&self.member);
        let mut import = member
            .exec
            .store()
            .import(header)
            .map_err(|e| FetchError::Snapshot(e.to_string()))?;
        let mut after = None;
        loop {
            let page = self
                .request(peer, |nonce| SyncMessage::PageRequest {
                    nonce,
                    session,
                    after,
                })
                .await?;
            let (docs, done) = match page {
                SyncMessage::Page {
                    session: answered,
                    docs,
                    done,
                    ..
                } if answered == session => (docs, done),
                SyncMessage::Refused { reason, .. } => return Err(FetchError::Refused(reason)),
                _ => return Err(FetchError::Unexpected),
            };
            if docs.is_empty() && !done {
                return Err(FetchError::Snapshot("an empty page before the end".into()));
            }
            if !docs.is_empty() {
                import
                    .add(&docs)
                    .map_err(|e| FetchError::Snapshot(e.to_string()))?;
                after = docs.last().map(|d| d.doc);
            }
            if done {
                break;
            }
        }
        import
            .finish()
            .map_err(|e| FetchError::Snapshot(e.to_string()))?;
        self.send(
            Recipients::One(peer.clone()),
            &SyncMessage::Close { session },
        );
        Ok((anchor, finalization))
    }
}
