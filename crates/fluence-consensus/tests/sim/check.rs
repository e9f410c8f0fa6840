//! The invariants every run ends with, and the run's fingerprint (what
//! two runs of one seed must agree on).

use std::collections::BTreeMap;

use commonware_cryptography::{Hasher, Sha256};
use fluence_consensus::Equivocation;
use fluence_proto::{DatasetId, Decode, DocId, DocOp, SealedDoc, SignedWrite};

use super::cluster::{Handle, Node};

/// Acknowledged writes: seq → (write bytes, height).
pub type AckedWrites = BTreeMap<u64, (Vec<u8>, u64)>;

/// The height of the newest acknowledged write (0 if none).
pub fn highest_height(acked: &AckedWrites) -> u64 {
    acked.values().map(|(_, h)| *h).max().unwrap_or(0)
}

/// The documents the acknowledged writes put: (write seq, id, sealed).
pub fn acked_docs(acked: &AckedWrites) -> Vec<(u64, DocId, SealedDoc)> {
    let mut docs = Vec::new();
    for (seq, (bytes, _)) in acked {
        let write = <SignedWrite as Decode>::from_bytes(bytes).expect("acknowledged bytes decode");
        if let fluence_proto::Action::Batch { ops, .. } = write.body.action {
            for op in ops {
                if let DocOp::Put { doc, sealed, .. } = op {
                    docs.push((*seq, doc, sealed));
                }
            }
        }
    }
    docs
}

/// Checks the chains and stores of the honest members at the end of a run
/// (every honest member has reached `height`); returns how many evidence
/// records (wrong-root attestations) the chain holds.
///
/// No two finalized blocks at one height; all honest members hold the
/// same block, hence the same state root, at every height; their stores
/// end on the root of their chain tip; every acknowledged write is in
/// every honest member's journal and chain (for a member that synced,
/// below its floor: its documents are in the store).
pub fn check(nodes: &[Node], acked: &AckedWrites, dataset: DatasetId, height: u64) -> usize {
    let honest: Vec<&Handle> = nodes
        .iter()
        .filter(|n| n.honest())
        .map(|n| n.handle.as_ref().expect("every member runs at the end"))
        .collect();
    for handle in &honest {
        assert_eq!(handle.fault(), None, "an honest member stopped applying");
    }
    // A member that synced holds its chain from its floor on.
    let floors: Vec<Option<u64>> = honest
        .iter()
        .map(|handle| handle.chain().floor_height().expect("chain readable"))
        .collect();
    // One block per height, the same on every honest member (and so the
    // same state root).
    let mut evidence = 0;
    for h in 1..=height {
        let blocks: Vec<_> = honest
            .iter()
            .zip(&floors)
            .filter(|(_, floor)| floor.is_none_or(|floor| h >= floor))
            .map(|(handle, _)| {
                handle
                    .chain()
                    .get(h)
                    .expect("chain readable")
                    .unwrap_or_else(|| panic!("height {h} missing on a member"))
                    .block
            })
            .collect();
        let first = blocks[0].hash();
        for block in &blocks {
            assert_eq!(block.hash(), first, "two finalized blocks at height {h}");
        }
        evidence += blocks[0].evidence.len();
    }
    // Each honest store holds exactly its chain tip's state.
    for handle in &honest {
        let tip = handle.applied();
        let info = handle.store().info(&dataset).expect("dataset exists");
        assert_eq!(
            info.state_root, tip.state_root,
            "store root differs from its chain tip"
        );
    }
    // Every acknowledged write is in every honest member's journal and chain,
    // or (up to a synced member's floor: its snapshot was the state after
    // the floor block) its documents are in the store.
    let docs = acked_docs(acked);
    for (seq, (bytes, at)) in acked {
        for (handle, floor) in honest.iter().zip(&floors) {
            if floor.is_some_and(|floor| *at <= floor) {
                for (_, doc, sealed) in docs.iter().filter(|(s, _, _)| s == seq) {
                    assert_eq!(
                        handle.store().get(&dataset, doc).expect("store").as_ref(),
                        Some(sealed),
                        "document of write {seq} missing on a synced member"
                    );
                }
                continue;
            }
            let entries = handle.store().journal(&dataset, *seq, 1).expect("journal");
            assert_eq!(
                entries.first().map(|e| &e.write),
                Some(bytes),
                "write {seq} missing"
            );
            let write =
                <SignedWrite as Decode>::from_bytes(bytes).expect("acknowledged bytes decode");
            let digest = write.body.digest();
            let location = handle
                .chain()
                .find_write(&digest)
                .expect("chain index")
                .unwrap_or_else(|| panic!("write {seq} not in the chain"));
            assert_eq!(
                location.height, *at,
                "write {seq} acknowledged at another height"
            );
        }
    }
    evidence
}

/// The equivocation evidence each honest member verified: it may name
/// only `equivocator` (never an honest member); returns the records of
/// each honest member.
pub fn check_accusations(
    nodes: &[Node],
    equivocator: Option<&fluence_proto::PublicKey>,
) -> Vec<Vec<Equivocation>> {
    let mut seen = Vec::new();
    for node in nodes.iter().filter(|n| n.honest()) {
        let records = node
            .handle
            .as_ref()
            .expect("every member runs at the end")
            .equivocations();
        for record in &records {
            assert_eq!(
                Some(&record.member),
                equivocator,
                "an honest member holds evidence against a member that did not equivocate: {record:?}"
            );
        }
        seen.push(records);
    }
    seen
}

/// A digest of what a run ended with: every member's chain (block hashes
/// by height) and applied tip, the acknowledged writes and their heights,
/// and `extra` (whatever else the run counted). Two runs of one seed must
/// agree on it.
pub fn fingerprint(nodes: &[Node], acked: &AckedWrites, extra: &str) -> String {
    // Everything hashed, in order (a few kilobytes).
    let mut hashed = Vec::new();
    for node in nodes {
        let Some(handle) = node.handle.as_ref() else {
            hashed.extend_from_slice(b"stopped");
            continue;
        };
        let tip = handle.applied();
        hashed.extend_from_slice(&tip.height.to_le_bytes());
        hashed.extend_from_slice(tip.state_root.as_bytes());
        let floor = handle.chain().floor_height().expect("chain readable");
        for h in floor.unwrap_or(1).max(1)..=tip.height {
            if let Ok(Some(finalized)) = handle.chain().get(h) {
                hashed.extend_from_slice(finalized.block.hash().as_bytes());
            }
        }
    }
    for (seq, (bytes, height)) in acked {
        hashed.extend_from_slice(&seq.to_le_bytes());
        hashed.extend_from_slice(&height.to_le_bytes());
        hashed.extend_from_slice(bytes);
    }
    hashed.extend_from_slice(extra.as_bytes());
    format!("{}", Sha256::hash(&[&hashed]))
}
