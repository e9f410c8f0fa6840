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
use crate::ids::{DatasetId, DocId, Hash32, PublicKey};
use crate::limits::{DESCRIPTOR_LEN_MAX, INDEXES_PER_DATASET_MAX};
use crate::write::{IndexDecl, IndexEntry, SealedDoc};

/// Everything about a dataset's state but its documents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotHeader {
    pub dataset: DatasetId,
    pub owner: PublicKey,
    pub name_tag: [u8; 32],
    /// The sealed descriptor, as the last `Create` or `Reindex` wrote it.
    pub descriptor: Vec<u8>,
    pub indexes: Vec<IndexDecl>,
    /// Sequence number of the last write the state includes.
    pub seq: u64,
    /// State root at `seq`.
    pub state_root: Hash32,
    pub doc_count: u64,
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
        self.dataset.encode(writer);
        self.owner.encode(writer);
        writer.fixed(&self.name_tag);
        writer.bytes(&self.descriptor);
        writer.vec(&self.indexes);
        writer.u64(self.seq);
        self.state_root.encode(writer);
        writer.u64(self.doc_count);
    }
}

impl Decode for SnapshotHeader {
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            dataset: DatasetId::decode(reader)?,
            owner: PublicKey::decode(reader)?,
            name_tag: reader.array("name tag")?,
            descriptor: reader.bytes(DESCRIPTOR_LEN_MAX, "descriptor")?,
            indexes: reader.vec(INDEXES_PER_DATASET_MAX, "index declarations")?,
            seq: reader.u64("seq")?,
            state_root: Hash32::decode(reader)?,
            doc_count: reader.u64("document count")?,
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
    use crate::write::{IndexKind, IndexValues};
    use crate::IndexId;

    #[test]
    fn round_trips_and_refuses_truncation() {
        let header = SnapshotHeader {
            dataset: DatasetId([1; 32]),
            owner: PublicKey([2; 32]),
            name_tag: [3; 32],
            descriptor: vec![4; 40],
            indexes: vec![IndexDecl {
                id: IndexId([5; 16]),
                kind: IndexKind::Range,
                unique: false,
            }],
            seq: 17,
            state_root: Hash32([6; 32]),
            doc_count: 2,
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
