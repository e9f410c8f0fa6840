//! A dataset's state as a snapshot: what a cluster member with an empty
//! disk fetches from a peer instead of replaying the whole chain.
//!
//! A snapshot is a [`SnapshotHeader`] (everything the state root commits to
//! besides the documents, plus the root itself) and the documents in
//! `DocId` order, in pages of [`SnapshotDoc`]s. Nothing in it is trusted:
//! the importer rebuilds the state from it and accepts it only if the state
//! root it computes is the header's, and the header's root is accepted
//! only if a finalized block of the dataset's chain carries it.

use crate::codec::{Decode, DecodeError, Encode, Reader, Writer};
use crate::ids::DocId;
use crate::limits::INDEXES_PER_DATASET_MAX;
use crate::message::DatasetInfo;
use crate::write::{IndexEntry, SealedDoc};

/// Everything about a dataset's state but its documents: what a node
/// reports as [`DatasetInfo`] (the state root and the seq it is at
/// included), and the name tag the dataset was created with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotHeader {
    pub info: DatasetInfo,
    pub name_tag: [u8; 32],
}

/// One document of a snapshot: its sealed form and its index entries, as
/// the last write of it stored them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotDoc {
    pub doc: DocId,
    pub sealed: SealedDoc,
    pub entries: Vec<IndexEntry>,
}

impl Encode for SnapshotHeader {
    fn encode(&self, writer: &mut Writer) {
        self.info.encode(writer);
        writer.fixed(&self.name_tag);
    }
}

impl Decode for SnapshotHeader {
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            info: DatasetInfo::decode(reader)?,
            name_tag: reader.array("name tag")?,
        })
    }
}

impl Encode for SnapshotDoc {
    fn encode(&self, writer: &mut Writer) {
        self.doc.encode(writer);
        self.sealed.encode(writer);
        writer.vec(&self.entries);
    }
}

impl Decode for SnapshotDoc {
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            doc: DocId::decode(reader)?,
            sealed: SealedDoc::decode(reader)?,
            entries: reader.vec(INDEXES_PER_DATASET_MAX, "index entries")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::write::{IndexDecl, IndexKind, IndexValues};
    use crate::{DatasetId, Hash32, IndexId, PublicKey};

    #[test]
    fn round_trips_and_refuses_truncation() {
        let header = SnapshotHeader {
            info: DatasetInfo {
                dataset: DatasetId([1; 32]),
                owner: PublicKey([2; 32]),
                descriptor: vec![4; 40],
                indexes: vec![IndexDecl {
                    id: IndexId([5; 16]),
                    kind: IndexKind::Range,
                    unique: false,
                }],
                seq: 17,
                state_root: Hash32([6; 32]),
                doc_count: 2,
            },
            name_tag: [3; 32],
        };
        let doc = SnapshotDoc {
            doc: DocId([7; 16]),
            sealed: SealedDoc {
                version: 3,
                wrapped_key: vec![8; 72],
                ciphertext: vec![9; 100],
            },
            entries: vec![IndexEntry {
                index: IndexId([5; 16]),
                values: IndexValues::Ore(vec![vec![10; 30]]),
            }],
        };
        assert_eq!(
            SnapshotHeader::from_bytes(&header.to_bytes()).unwrap(),
            header
        );
        assert_eq!(SnapshotDoc::from_bytes(&doc.to_bytes()).unwrap(), doc);
        for bytes in [header.to_bytes(), doc.to_bytes()] {
            for cut in [0, 1, bytes.len() / 2, bytes.len() - 1] {
                assert!(SnapshotHeader::from_bytes(&bytes[..cut]).is_err());
                assert!(SnapshotDoc::from_bytes(&bytes[..cut]).is_err());
            }
        }
    }
}
