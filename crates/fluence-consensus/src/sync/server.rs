//! The serving side of sync: answers other members' requests from this
//! member's chain and store.
//!
//! A snapshot is served from one store read transaction (a
//! [`fluence_store::Snapshot`]) taken when the requester opens it, at the
//! newest applied block; the requester then pages through it at its own
//! pace, naming the last document it holds, so a lost answer is simply
//! asked again. Each member has at most one open session here (a new open
//! replaces it) and a session unused for [`SESSION_IDLE_MAX`] is closed:
//! while it lives, the store cannot reuse the pages it reads.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use commonware_cryptography::ed25519;
use fluence_chain::FinalizedBlock;
use fluence_proto::{DocId, Encode, SnapshotHeader};
use fluence_store::{OreOrder, Snapshot, StoreError};
use tracing::{debug, warn};

use super::message::{Refusal, SyncMessage, SYNC_MESSAGE_LEN_MAX};
use crate::member::{Behavior, Member};

/// How long a snapshot session stays open without a request.
pub const SESSION_IDLE_MAX: Duration = Duration::from_secs(30);
/// Bytes of document data aimed at per page (a page holds at least one
/// document, whatever its size).
pub const PAGE_BYTES_TARGET: usize = 1024 * 1024;

struct Session {
    id: u64,
    snapshot: Snapshot,
    last_used: SystemTime,
}

/// Answers sync requests for one member.
pub struct Server<O: OreOrder> {
    member: Arc<Member<O>>,
    sessions: HashMap<ed25519::PublicKey, Session>,
    next_session: u64,
}

impl<O: OreOrder> Server<O> {
    pub fn new(member: Arc<Member<O>>) -> Self {
        Server {
            member,
            sessions: HashMap::new(),
            next_session: 1,
        }
    }

    /// Open snapshot sessions.
    pub fn sessions(&self) -> usize {
        self.sessions.len()
    }

    /// Closes the sessions unused since `now - SESSION_IDLE_MAX`.
    pub fn expire(&mut self, now: SystemTime) {
        self.sessions.retain(|_, session| {
            now.duration_since(session.last_used)
                .map_or(true, |idle| idle < SESSION_IDLE_MAX)
        });
    }

    /// The answer to `request` from member `from`, if it is a request.
    pub fn handle(
        &mut self,
        from: &ed25519::PublicKey,
        request: SyncMessage,
        now: SystemTime,
    ) -> Option<SyncMessage> {
        self.expire(now);
        let answer = match request {
            SyncMessage::TipRequest { nonce } => SyncMessage::Tip {
                nonce,
                height: self.member.exec.applied().height,
            },
            SyncMessage::OpenRequest { nonce } => match self.open(from, now) {
                Ok((session, anchor, header)) => SyncMessage::Opened {
                    nonce,
                    session,
                    anchor,
                    header,
                },
                Err(reason) => SyncMessage::Refused { nonce, reason },
            },
            SyncMessage::PageRequest {
                nonce,
                session,
                after,
            } => self.page(from, nonce, session, after, now),
            SyncMessage::Close { session } => {
                if self.sessions.get(from).is_some_and(|s| s.id == session) {
                    self.sessions.remove(from);
                }
                return None;
            }
            // Answers are the client's business.
            SyncMessage::Tip { .. }
            | SyncMessage::Opened { .. }
            | SyncMessage::Page { .. }
            | SyncMessage::Refused { .. } => return None,
        };
        Some(answer)
    }

    /// [`Server::handle`], encoded: an answer that would not fit one
    /// message becomes a [`Refusal::Failed`].
    pub fn handle_encoded(
        &mut self,
        from: &ed25519::PublicKey,
        request: SyncMessage,
        now: SystemTime,
    ) -> Option<Vec<u8>> {
        let answer = self.handle(from, request, now)?;
        let bytes = answer.to_bytes();
        if bytes.len() <= SYNC_MESSAGE_LEN_MAX {
            return Some(bytes);
        }
        warn!(len = bytes.len(), "a sync answer does not fit one message");
        let refused = SyncMessage::Refused {
            nonce: answer.answer_nonce().unwrap_or_default(),
            reason: Refusal::Failed,
        };
        Some(refused.to_bytes())
    }

    /// Opens a snapshot at the newest applied block, if that block has a
    /// certificate of its own (or is this later epoch's first block) and
    /// the store is exactly at it.
    fn open(
        &mut self,
        from: &ed25519::PublicKey,
        now: SystemTime,
    ) -> Result<(u64, FinalizedBlock, SnapshotHeader), Refusal> {
        let exec = &self.member.exec;
        let snapshot = match exec.store().snapshot(&exec.dataset()) {
            Ok(snapshot) => snapshot,
            Err(StoreError::DatasetNotFound) => return Err(Refusal::NoState),
            Err(error) => {
                warn!(%error, "cannot open a snapshot");
                return Err(Refusal::Failed);
            }
        };
        let header = snapshot.header();
        let applied = exec.applied();
        // The store commits a block before the chain records it: between
        // the two the snapshot is a block ahead. Equal roots mean equal
        // states (the root commits to the seq too).
        if applied.height == 0 || header.info.state_root != applied.state_root {
            return Err(Refusal::NotReady);
        }
        let anchor = match exec.chain().get(applied.height) {
            Ok(Some(anchor)) if !anchor.certificate.is_empty() => anchor,
            // A later epoch's first block needs none: a newcomer knows
            // its hash, and may be what the epoch needs to finalize more.
            Ok(Some(anchor))
                if self.member.base.is_some() && applied.height == self.member.base_height =>
            {
                anchor
            }
            // Finalized through a descendant: the next block will do.
            Ok(_) => return Err(Refusal::NotReady),
            Err(error) => {
                warn!(%error, "cannot read the chain");
                return Err(Refusal::Failed);
            }
        };
        let id = self.next_session;
        self.next_session += 1;
        self.sessions.insert(
            from.clone(),
            Session {
                id,
                snapshot,
                last_used: now,
            },
        );
        debug!(
            height = applied.height,
            session = id,
            "snapshot opened for a member"
        );
        Ok((id, anchor, header))
    }

    fn page(
        &mut self,
        from: &ed25519::PublicKey,
        nonce: u64,
        session: u64,
        after: Option<DocId>,
        now: SystemTime,
    ) -> SyncMessage {
        let Some(open) = self.sessions.get_mut(from).filter(|s| s.id == session) else {
            return SyncMessage::Refused {
                nonce,
                reason: Refusal::UnknownSession,
            };
        };
        open.last_used = now;
        match open.snapshot.docs(after, PAGE_BYTES_TARGET) {
            Ok(mut page) => {
                if self.member.behavior == Behavior::CorruptSnapshots {
                    if let Some(doc) = page.docs.first_mut() {
                        doc.sealed.ciphertext.push(0x66);
                    }
                }
                SyncMessage::Page {
                    nonce,
                    session,
                    done: page.done,
                    docs: page.docs,
                }
            }
            Err(error) => {
                warn!(%error, "cannot read a snapshot page");
                self.sessions.remove(from);
                SyncMessage::Refused {
                    nonce,
                    reason: Refusal::Failed,
                }
            }
        }
    }
}
