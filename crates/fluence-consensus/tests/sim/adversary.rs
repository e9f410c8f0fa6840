//! The equivocating member and what its lies reach.
//!
//! The Byzantine member runs the real replica; its network does the
//! lying, with the member's own consensus key, as a compromised node's
//! network layer could (the way commonware's own `equivocator` and
//! `conflicter` mocks lie, but around our replica instead of in place of
//! it):
//!
//! - leading a view (it knows its views from the replica's round-robin
//!   elector), it signs two proposals: its replica's block A and a twin B
//!   (the same block one millisecond later), sends both blocks to
//!   everyone, and its notarize vote for A to one member, for B to all
//!   the others and to that member too (who so holds both, signed). Its
//!   replica may send the vote before marshal sends the block: the vote
//!   then waits for the block;
//! - voting on others' proposals, it follows each notarize and finalize
//!   vote with a conflicting one (a proposal nobody made), and each
//!   finalize vote with a nullify vote for the same view.
//!
//! [`Deliveries`] taps what honest members actually receive from it, so a
//! run can show that conflicting signed messages were delivered, not only
//! sent.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use commonware_actor::{Feedback, Unreliable};
use commonware_codec::{Decode as _, DecodeExt, Encode as _};
use commonware_consensus::simplex::elector::{
    Config as _, Elector as _, RoundRobin, RoundRobinElector,
};
use commonware_consensus::simplex::types::{Finalize, Notarize, Nullify, Proposal, Vote};
use commonware_consensus::types::{Participant, Round};
use commonware_cryptography::{ed25519, sha256::Sha256, Digestible};
use commonware_p2p::{
    simulated, CheckedSender, LimitedSender, Message, Receiver, Recipients, Sender as _,
};
use commonware_runtime::{deterministic, IoBuf, IoBufs};
use commonware_utils::ordered::Set;
use fluence_consensus::block::{to_digest, to_hash};
use fluence_consensus::keys::Identity;
use fluence_consensus::{ChainBlock, Channel, Digest, Scheme};
use fluence_proto::{DatasetId, Hash32};
use zeroize::Zeroizing;

pub type Key = ed25519::PublicKey;
type Raw = simulated::Sender<Key, deterministic::Context>;
type Votes = Vote<Scheme, Digest>;

/// Blocks the equivocator remembers having broadcast (its proposals are
/// among the newest).
const PROPOSALS_KEPT: usize = 32;

/// What the equivocator signed and sent (not necessarily delivered).
#[derive(Debug, Default)]
pub struct Sent {
    /// Views it led with two proposals.
    pub split_proposals: AtomicU64,
    pub conflicting_notarizes: AtomicU64,
    pub conflicting_finalizes: AtomicU64,
    pub nullifies_after_finalize: AtomicU64,
}

/// The equivocating member's signing side.
pub struct Equivocator {
    scheme: Scheme,
    /// Who leads which view, as its replica's simplex elects them.
    elector: RoundRobinElector<Scheme>,
    me: Participant,
    /// The other members, sorted.
    others: Vec<Key>,
    /// Its raw senders on the votes and blocks channels (set on every
    /// start of its replica), for the messages its replica did not send.
    votes: Mutex<Option<Raw>>,
    blocks: Mutex<Option<Raw>>,
    /// Blocks it broadcast lately: a notarize vote for one of them is its
    /// own proposal.
    proposed: Mutex<VecDeque<ChainBlock>>,
    /// Its notarize votes for its own proposals whose block its replica
    /// has not sent yet: (vote, its encoding, priority).
    waiting: Mutex<Vec<(Notarize<Scheme, Digest>, IoBuf, bool)>>,
    /// Digests of the twin blocks it made.
    twins: Mutex<BTreeSet<Hash32>>,
    pub sent: Sent,
}

impl std::fmt::Debug for Equivocator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Equivocator")
            .field("sent", &self.sent)
            .finish()
    }
}

impl Equivocator {
    pub fn new(secret: &[u8; 32], members: &[Key], dataset: &DatasetId) -> Self {
        let identity = Identity::from_seed(&Zeroizing::new(*secret));
        let me = commonware_cryptography::Signer::public_key(&identity.consensus);
        let namespace = fluence_chain::consensus_namespace(dataset);
        let participants = Set::from_iter_dedup(members.iter().cloned());
        let index = participants
            .iter()
            .position(|key| *key == me)
            .expect("the equivocator is a member");
        // The replica's election (`RoundRobin::<Sha256>::default()`).
        let elector = RoundRobin::<Sha256>::default().build(&participants);
        let scheme = Scheme::signer(&namespace, participants, identity.consensus)
            .expect("the equivocator is a member");
        let mut others: Vec<Key> = members.iter().filter(|k| **k != me).cloned().collect();
        others.sort();
        Equivocator {
            scheme,
            elector,
            me: Participant::from_usize(index),
            others,
            votes: Mutex::new(None),
            blocks: Mutex::new(None),
            proposed: Mutex::new(VecDeque::new()),
            waiting: Mutex::new(Vec::new()),
            twins: Mutex::new(BTreeSet::new()),
            sent: Sent::default(),
        }
    }

    /// Its raw sender on `channel`, if the lies need it there.
    pub fn set_sender(&self, channel: Channel, raw: &Raw) {
        match channel {
            Channel::Votes => *self.votes.lock().unwrap() = Some(raw.clone()),
            Channel::Blocks => *self.blocks.lock().unwrap() = Some(raw.clone()),
            _ => {}
        }
    }

    fn leads(&self, round: Round) -> bool {
        self.elector.elect(round, ()) == self.me
    }

    /// Sends on its raw votes or blocks sender.
    fn send(
        &self,
        channel: Channel,
        recipients: Recipients<Key>,
        message: impl Into<IoBufs> + Send,
    ) {
        let sender = match channel {
            Channel::Votes => &self.votes,
            _ => &self.blocks,
        };
        if let Some(sender) = sender.lock().unwrap().as_mut() {
            sender.send(recipients, message, false);
        }
    }

    /// Whether `hash` is the hash of a twin block it made.
    pub fn is_twin(&self, hash: &Hash32) -> bool {
        self.twins.lock().unwrap().contains(hash)
    }

    /// Its replica broadcast a block: remembered, and a vote waiting for
    /// it goes out now.
    fn remember(&self, message: IoBuf) {
        // The simulation runs the genesis epoch (base height 0).
        let Ok(block) = ChainBlock::decode_cfg(message, &0) else {
            return;
        };
        let digest = block.digest();
        let waiting = {
            let mut waiting = self.waiting.lock().unwrap();
            let found = waiting
                .iter()
                .position(|(vote, _, _)| vote.proposal.payload == digest);
            found.map(|i| waiting.remove(i))
        };
        if let Some((vote, encoded, priority)) = waiting {
            self.split_proposal(&vote, &block, encoded, priority);
        }
        let mut proposed = self.proposed.lock().unwrap();
        proposed.push_back(block);
        while proposed.len() > PROPOSALS_KEPT {
            proposed.pop_front();
        }
    }

    /// The block of `digest`, if it broadcast it.
    fn proposal(&self, digest: &Digest) -> Option<ChainBlock> {
        self.proposed
            .lock()
            .unwrap()
            .iter()
            .rev()
            .find(|block| block.digest() == *digest)
            .cloned()
    }

    /// Rewrites one vote of its replica into the lies above.
    fn vote(
        &self,
        checked: impl CheckedSender<PublicKey = Key>,
        message: IoBufs,
        priority: bool,
    ) -> Unreliable<Feedback> {
        let bytes = message.coalesce();
        let Ok(vote) = Votes::decode(bytes.clone()) else {
            return checked.send(bytes, priority);
        };
        match vote {
            Vote::Notarize(notarize) if self.leads(notarize.proposal.round) => {
                drop(checked);
                match self.proposal(&notarize.proposal.payload) {
                    Some(block) => self.split_proposal(&notarize, &block, bytes, priority),
                    None => {
                        let mut waiting = self.waiting.lock().unwrap();
                        waiting.push((notarize, bytes, priority));
                        // Votes whose block never came (a proposal its
                        // replica dropped) are forgotten.
                        while waiting.len() > PROPOSALS_KEPT {
                            waiting.remove(0);
                        }
                    }
                }
                Unreliable::new(Feedback::Ok)
            }
            Vote::Notarize(notarize) => {
                let sent = checked.send(bytes, priority);
                let other = self.conflicting(&notarize.proposal);
                let lie = Notarize::sign(&self.scheme, other).expect("a member signs");
                self.send(
                    Channel::Votes,
                    Recipients::All,
                    Votes::Notarize(lie).encode(),
                );
                self.sent
                    .conflicting_notarizes
                    .fetch_add(1, Ordering::Relaxed);
                sent
            }
            Vote::Finalize(finalize) => {
                let sent = checked.send(bytes, priority);
                let other = self.conflicting(&finalize.proposal);
                let lie = Finalize::sign(&self.scheme, other).expect("a member signs");
                self.send(
                    Channel::Votes,
                    Recipients::All,
                    Votes::Finalize(lie).encode(),
                );
                let round = finalize.proposal.round;
                let nullify = Nullify::sign::<Digest>(&self.scheme, round).expect("a member signs");
                self.send(
                    Channel::Votes,
                    Recipients::All,
                    Votes::Nullify(nullify).encode(),
                );
                self.sent
                    .conflicting_finalizes
                    .fetch_add(1, Ordering::Relaxed);
                self.sent
                    .nullifies_after_finalize
                    .fetch_add(1, Ordering::Relaxed);
                sent
            }
            Vote::Nullify(_) => checked.send(bytes, priority),
        }
    }

    /// Its replica proposed `block` with `notarize` (encoded as
    /// `original`): sends a twin block and splits its vote between the two.
    fn split_proposal(
        &self,
        notarize: &Notarize<Scheme, Digest>,
        block: &ChainBlock,
        original: IoBuf,
        priority: bool,
    ) {
        let mut twin = block.block().clone();
        twin.timestamp_ms += 1;
        let twin =
            ChainBlock::in_epoch(twin, block.base()).expect("the twin fits as its original did");
        self.twins.lock().unwrap().insert(twin.hash());
        self.send(Channel::Blocks, Recipients::All, twin.encode());
        let proposal = Proposal::new(
            notarize.proposal.round,
            notarize.proposal.parent,
            twin.digest(),
        );
        let twin_vote = Notarize::sign(&self.scheme, proposal).expect("a member signs");
        let view = notarize.proposal.round.view().get();
        let victim = self.others[(view as usize) % self.others.len()].clone();
        if let Some(votes) = self.votes.lock().unwrap().as_mut() {
            votes.send(Recipients::One(victim), original, priority);
            votes.send(
                Recipients::Some(self.others.clone()),
                Votes::Notarize(twin_vote).encode(),
                priority,
            );
        }
        self.sent.split_proposals.fetch_add(1, Ordering::Relaxed);
    }

    /// `proposal` with a payload nobody proposed.
    fn conflicting(&self, proposal: &Proposal<Digest>) -> Proposal<Digest> {
        let mut bytes = to_hash(&proposal.payload).0;
        bytes[0] ^= 0x5a;
        bytes[31] ^= 0xa5;
        Proposal::new(proposal.round, proposal.parent, to_digest(&Hash32(bytes)))
    }
}

/// A member's sender on one channel: the simulated network's, through the
/// equivocator for the Byzantine member.
#[derive(Clone, Debug)]
pub struct SimSender {
    raw: Raw,
    lies: Option<(Arc<Equivocator>, Channel)>,
}

impl SimSender {
    pub fn honest(raw: Raw) -> Self {
        SimSender { raw, lies: None }
    }

    pub fn lying(raw: Raw, equivocator: Arc<Equivocator>, channel: Channel) -> Self {
        equivocator.set_sender(channel, &raw);
        SimSender {
            raw,
            lies: Some((equivocator, channel)),
        }
    }
}

/// [`SimSender`]'s checked sender: the simulated network's own, and for a
/// liar what it needs to change the message at send time.
pub struct SimChecked<'a> {
    checked: <Raw as LimitedSender>::Checked<'a>,
    lies: Option<(&'a Equivocator, Channel)>,
}

impl LimitedSender for SimSender {
    type PublicKey = Key;
    type Checked<'a> = SimChecked<'a>;

    fn check(
        &mut self,
        recipients: Recipients<Self::PublicKey>,
    ) -> Result<Self::Checked<'_>, SystemTime> {
        let lies = self
            .lies
            .as_ref()
            .map(|(equivocator, channel)| (equivocator.as_ref(), *channel));
        let checked = self.raw.check(recipients)?;
        Ok(SimChecked { checked, lies })
    }
}

impl CheckedSender for SimChecked<'_> {
    type PublicKey = Key;

    fn recipients(&self) -> Vec<Self::PublicKey> {
        self.checked.recipients()
    }

    fn send(self, message: impl Into<IoBufs> + Send, priority: bool) -> Unreliable<Feedback> {
        match self.lies {
            None => self.checked.send(message, priority),
            Some((equivocator, Channel::Votes)) => {
                equivocator.vote(self.checked, message.into(), priority)
            }
            Some((equivocator, Channel::Blocks)) => {
                let bytes = message.into().coalesce();
                let sent = self.checked.send(bytes.clone(), priority);
                equivocator.remember(bytes);
                sent
            }
            Some(_) => self.checked.send(message, priority),
        }
    }
}

/// Votes honest members received from the Byzantine member, by view.
#[derive(Debug, Default)]
pub struct Deliveries {
    views: Mutex<BTreeMap<u64, Delivered>>,
}

#[derive(Debug, Default)]
struct Delivered {
    notarized: BTreeSet<Digest>,
    finalized: BTreeSet<Digest>,
    nullified: bool,
}

/// Views in which honest members, together, received contradicting signed
/// votes from the Byzantine member.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Conflicts {
    pub notarize: usize,
    pub finalize: usize,
    pub nullify_finalize: usize,
}

impl Deliveries {
    fn observe(&self, message: IoBuf) {
        let Ok(vote) = Votes::decode(message) else {
            return;
        };
        let mut views = self.views.lock().unwrap();
        match vote {
            Vote::Notarize(n) => {
                let view = n.proposal.round.view().get();
                views
                    .entry(view)
                    .or_default()
                    .notarized
                    .insert(n.proposal.payload);
            }
            Vote::Finalize(f) => {
                let view = f.proposal.round.view().get();
                views
                    .entry(view)
                    .or_default()
                    .finalized
                    .insert(f.proposal.payload);
            }
            Vote::Nullify(n) => {
                views.entry(n.round.view().get()).or_default().nullified = true;
            }
        }
    }

    pub fn conflicts(&self) -> Conflicts {
        let views = self.views.lock().unwrap();
        Conflicts {
            notarize: views.values().filter(|v| v.notarized.len() > 1).count(),
            finalize: views.values().filter(|v| v.finalized.len() > 1).count(),
            nullify_finalize: views
                .values()
                .filter(|v| v.nullified && !v.finalized.is_empty())
                .count(),
        }
    }
}

/// A member's receiver on one channel; an honest member's votes receiver
/// records what the Byzantine member delivered.
#[derive(Debug)]
pub struct SimReceiver {
    raw: simulated::Receiver<Key>,
    tap: Option<(Arc<Deliveries>, Key)>,
}

impl SimReceiver {
    pub fn plain(raw: simulated::Receiver<Key>) -> Self {
        SimReceiver { raw, tap: None }
    }

    /// Records votes `from` delivers into `deliveries`.
    pub fn tapped(raw: simulated::Receiver<Key>, deliveries: Arc<Deliveries>, from: Key) -> Self {
        SimReceiver {
            raw,
            tap: Some((deliveries, from)),
        }
    }
}

impl Receiver for SimReceiver {
    type Error = simulated::Error;
    type PublicKey = Key;

    async fn recv(&mut self) -> Result<Message<Key>, simulated::Error> {
        let (from, message) = self.raw.recv().await?;
        if let Some((deliveries, byzantine)) = &self.tap {
            if from == *byzantine {
                deliveries.observe(message.clone());
            }
        }
        Ok((from, message))
    }

    fn capacity(&self) -> NonZeroUsize {
        self.raw.capacity()
    }
}
