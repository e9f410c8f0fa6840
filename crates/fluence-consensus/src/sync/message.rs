//! The messages of the sync channel ([`crate::Channel::Sync`]) and their
//! canonical, length-bounded encoding.
//!
//! ```text
//! message  version u8 (= SYNC_PROTOCOL_VERSION) · tag u8 · fields
//! 1 TipRequest   nonce u64
//! 2 Tip          nonce u64 · height u64
//! 3 OpenRequest  nonce u64
//! 4 Opened       nonce u64 · session u64 · anchor (FinalizedBlock) · header (SnapshotHeader)
//! 5 PageRequest  nonce u64 · session u64 · after Option<DocId>
//! 6 Page         nonce u64 · session u64 · done bool · docs Vec<SnapshotDoc>
//! 7 Close        session u64
//! 8 Refused      nonce u64 · reason u8
//! ```
//!
//! Integers are little endian, vectors and byte strings carry a `u32`
//! length checked against its bound before anything is allocated; a whole
//! message is at most [`SYNC_MESSAGE_LEN_MAX`]. Requests name a nonce the
//! answer repeats, so a late or duplicated answer is recognised and
//! ignored.

use fluence_chain::FinalizedBlock;
use fluence_proto::limits::OPS_PER_BATCH_MAX;
use fluence_proto::{
    Decode, DecodeError, DocId, Encode, Reader, SnapshotDoc, SnapshotHeader, Writer,
};

/// Version byte opening every sync message.
pub const SYNC_PROTOCOL_VERSION: u8 = 1;
/// The largest sync message: one cluster message (a page holds at least
/// one document, and a document had to fit in a block).
pub const SYNC_MESSAGE_LEN_MAX: usize = fluence_proto::limits::MESSAGE_LEN_MAX - 64;

/// Why a member does not serve a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// It holds no state of the dataset (or is syncing itself).
    NoState,
    /// Its store and chain are between two blocks, or its newest block has
    /// no certificate of its own: ask again in a moment.
    NotReady,
    /// The session is unknown (expired, or the member restarted).
    UnknownSession,
    /// Its storage failed, or the answer would not fit one message.
    Failed,
}

impl Refusal {
    fn tag(self) -> u8 {
        match self {
            Refusal::NoState => 1,
            Refusal::NotReady => 2,
            Refusal::UnknownSession => 3,
            Refusal::Failed => 4,
        }
    }

    fn from_tag(tag: u8) -> Result<Self, DecodeError> {
        Ok(match tag {
            1 => Refusal::NoState,
            2 => Refusal::NotReady,
            3 => Refusal::UnknownSession,
            4 => Refusal::Failed,
            tag => {
                return Err(DecodeError::UnknownTag {
                    what: "sync refusal",
                    tag,
                })
            }
        })
    }
}

/// One message of the sync exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncMessage {
    /// How far is your applied chain?
    TipRequest { nonce: u64 },
    /// The height of the newest applied block (0: nothing). Not proven:
    /// it only says whom to ask first.
    Tip { nonce: u64, height: u64 },
    /// Open a snapshot of your state at your newest applied block.
    OpenRequest { nonce: u64 },
    /// A snapshot is open: the block it is the state after (with its own
    /// certificate) and the dataset's header at that block.
    Opened {
        nonce: u64,
        session: u64,
        anchor: FinalizedBlock,
        header: SnapshotHeader,
    },
    /// The documents after `after` (from the first when `None`).
    PageRequest {
        nonce: u64,
        session: u64,
        after: Option<DocId>,
    },
    /// The next documents in `DocId` order; `done` when none follows.
    Page {
        nonce: u64,
        session: u64,
        done: bool,
        docs: Vec<SnapshotDoc>,
    },
    /// The requester is finished with the session.
    Close { session: u64 },
    /// The request is not served.
    Refused { nonce: u64, reason: Refusal },
}

impl SyncMessage {
    /// The nonce of an answer (`None` for requests).
    pub fn answer_nonce(&self) -> Option<u64> {
        match self {
            SyncMessage::Tip { nonce, .. }
            | SyncMessage::Opened { nonce, .. }
            | SyncMessage::Page { nonce, .. }
            | SyncMessage::Refused { nonce, .. } => Some(*nonce),
            SyncMessage::TipRequest { .. }
            | SyncMessage::OpenRequest { .. }
            | SyncMessage::PageRequest { .. }
            | SyncMessage::Close { .. } => None,
        }
    }

    /// Decodes a message from untrusted bytes, refusing anything above
    /// [`SYNC_MESSAGE_LEN_MAX`] before reading.
    pub fn from_untrusted(bytes: &[u8]) -> Result<Self, DecodeError> {
        if bytes.len() > SYNC_MESSAGE_LEN_MAX {
            return Err(DecodeError::TooLong {
                what: "sync message",
                len: bytes.len() as u64,
                max: SYNC_MESSAGE_LEN_MAX as u64,
            });
        }
        Self::from_bytes(bytes)
    }
}

impl Encode for SyncMessage {
    fn encode(&self, writer: &mut Writer) {
        writer.u8(SYNC_PROTOCOL_VERSION);
        match self {
            SyncMessage::TipRequest { nonce } => {
                writer.u8(1);
                writer.u64(*nonce);
            }
            SyncMessage::Tip { nonce, height } => {
                writer.u8(2);
                writer.u64(*nonce);
                writer.u64(*height);
            }
            SyncMessage::OpenRequest { nonce } => {
                writer.u8(3);
                writer.u64(*nonce);
            }
            SyncMessage::Opened {
                nonce,
                session,
                anchor,
                header,
            } => {
                writer.u8(4);
                writer.u64(*nonce);
                writer.u64(*session);
                anchor.encode(writer);
                header.encode(writer);
            }
            SyncMessage::PageRequest {
                nonce,
                session,
                after,
            } => {
                writer.u8(5);
                writer.u64(*nonce);
                writer.u64(*session);
                writer.option(after);
            }
            SyncMessage::Page {
                nonce,
                session,
                done,
                docs,
            } => {
                writer.u8(6);
                writer.u64(*nonce);
                writer.u64(*session);
                writer.bool(*done);
                writer.vec(docs);
            }
            SyncMessage::Close { session } => {
                writer.u8(7);
                writer.u64(*session);
            }
            SyncMessage::Refused { nonce, reason } => {
                writer.u8(8);
                writer.u64(*nonce);
                writer.u8(reason.tag());
            }
        }
    }
}

impl Decode for SyncMessage {
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let version = reader.u8("sync protocol version")?;
        if version != SYNC_PROTOCOL_VERSION {
            return Err(DecodeError::UnsupportedVersion {
                found: version.into(),
                supported: SYNC_PROTOCOL_VERSION.into(),
            });
        }
        Ok(match reader.u8("sync message tag")? {
            1 => SyncMessage::TipRequest {
                nonce: reader.u64("nonce")?,
            },
            2 => SyncMessage::Tip {
                nonce: reader.u64("nonce")?,
                height: reader.u64("height")?,
            },
            3 => SyncMessage::OpenRequest {
                nonce: reader.u64("nonce")?,
            },
            4 => SyncMessage::Opened {
                nonce: reader.u64("nonce")?,
                session: reader.u64("session")?,
                anchor: FinalizedBlock::decode(reader)?,
                header: SnapshotHeader::decode(reader)?,
            },
            5 => SyncMessage::PageRequest {
                nonce: reader.u64("nonce")?,
                session: reader.u64("session")?,
                after: reader.option("after")?,
            },
            6 => SyncMessage::Page {
                nonce: reader.u64("nonce")?,
                session: reader.u64("session")?,
                done: reader.bool("done")?,
                docs: reader.vec(OPS_PER_BATCH_MAX, "snapshot documents")?,
            },
            7 => SyncMessage::Close {
                session: reader.u64("session")?,
            },
            8 => SyncMessage::Refused {
                nonce: reader.u64("nonce")?,
                reason: Refusal::from_tag(reader.u8("refusal")?)?,
            },
            tag => {
                return Err(DecodeError::UnknownTag {
                    what: "sync message",
                    tag,
                })
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fluence_chain::Block;
    use fluence_proto::{DatasetId, DatasetInfo, Hash32, PublicKey, SealedDoc};

    fn samples() -> Vec<SyncMessage> {
        let dataset = DatasetId([3; 32]);
        let mut block = Block::genesis(dataset);
        block.height = 9;
        let header = SnapshotHeader {
            info: DatasetInfo {
                dataset,
                owner: PublicKey([4; 32]),
                descriptor: vec![1, 2, 3],
                indexes: Vec::new(),
                seq: 7,
                state_root: Hash32([5; 32]),
                doc_count: 1,
            },
            name_tag: [6; 32],
        };
        vec![
            SyncMessage::TipRequest { nonce: 1 },
            SyncMessage::Tip {
                nonce: 2,
                height: 40,
            },
            SyncMessage::OpenRequest { nonce: 3 },
            SyncMessage::Opened {
                nonce: 4,
                session: 5,
                anchor: FinalizedBlock {
                    block,
                    certificate: vec![9; 100],
                },
                header,
            },
            SyncMessage::PageRequest {
                nonce: 6,
                session: 5,
                after: Some(DocId([1; 16])),
            },
            SyncMessage::Page {
                nonce: 7,
                session: 5,
                done: true,
                docs: vec![SnapshotDoc {
                    doc: DocId([2; 16]),
                    sealed: SealedDoc {
                        version: 1,
                        wrapped_key: vec![0xaa; 72],
                        ciphertext: b"sealed".to_vec(),
                    },
                    entries: Vec::new(),
                }],
            },
            SyncMessage::Close { session: 5 },
            SyncMessage::Refused {
                nonce: 8,
                reason: Refusal::NotReady,
            },
        ]
    }

    #[test]
    fn every_message_round_trips_and_truncations_are_errors() {
        for message in samples() {
            let bytes = message.to_bytes();
            assert_eq!(SyncMessage::from_untrusted(&bytes).unwrap(), message);
            for cut in 0..bytes.len() {
                assert!(SyncMessage::from_untrusted(&bytes[..cut]).is_err());
            }
            let mut longer = bytes.clone();
            longer.push(0);
            assert!(SyncMessage::from_untrusted(&longer).is_err());
        }
    }

    #[test]
    fn unknown_versions_tags_and_refusals_are_typed_errors() {
        let mut bytes = SyncMessage::TipRequest { nonce: 1 }.to_bytes();
        bytes[0] = 2;
        assert!(matches!(
            SyncMessage::from_untrusted(&bytes),
            Err(DecodeError::UnsupportedVersion { found: 2, .. })
        ));
        bytes[0] = SYNC_PROTOCOL_VERSION;
        bytes[1] = 99;
        assert!(matches!(
            SyncMessage::from_untrusted(&bytes),
            Err(DecodeError::UnknownTag { tag: 99, .. })
        ));
        let mut refused = SyncMessage::Refused {
            nonce: 1,
            reason: Refusal::Failed,
        }
        .to_bytes();
        *refused.last_mut().unwrap() = 0;
        assert!(SyncMessage::from_untrusted(&refused).is_err());
    }
}
