//! Attestations received from cluster members, kept until a proposer puts
//! them into the child of the block they attest.
//!
//! Members sign `(dataset, height, block hash, root)` when they have
//! executed a block (verified or proposed it) and send it to every member.
//! The inbox keeps signature-checked attestations for a window of heights
//! around the applied tip, at most [`ATTESTED_BLOCKS_PER_MEMBER_MAX`]
//! blocks per member and height (a Byzantine member cannot flood it with
//! attestations of invented blocks).

use std::collections::BTreeMap;

use fluence_chain::{Attestation, Evidence, SignedAttestation};
use fluence_proto::{Hash32, PublicKey};

/// Heights below the applied tip whose attestations are still kept (a
/// proposal's parent can lag behind the tip by a few blocks).
pub const ATTESTATION_HEIGHTS_BELOW_TIP: u64 = 16;
/// Heights above the applied tip accepted (speculative blocks).
pub const ATTESTATION_HEIGHTS_ABOVE_TIP: u64 = 64;
/// Distinct blocks one member may attest at one height (competing
/// proposals before finalization).
pub const ATTESTED_BLOCKS_PER_MEMBER_MAX: usize = 4;
/// Distinct roots kept per member and block: one agreeing, one dissenting.
pub const ROOTS_PER_MEMBER_BLOCK_MAX: usize = 2;

/// Attestations by height, then block, then member.
#[derive(Default)]
pub struct Inbox {
    by_height: BTreeMap<u64, BTreeMap<Hash32, BTreeMap<PublicKey, Vec<SignedAttestation>>>>,
}

/// The attestations and evidence a child of one block carries.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ForParent {
    pub attestations: Vec<Attestation>,
    pub evidence: Vec<Evidence>,
}

impl Inbox {
    /// Keeps a signature-checked attestation by a member, if its height is
    /// in the window around `applied_height`. Returns whether it was kept.
    pub fn insert(&mut self, attestation: SignedAttestation, applied_height: u64) -> bool {
        let height = attestation.body.height;
        let low = applied_height.saturating_sub(ATTESTATION_HEIGHTS_BELOW_TIP);
        let high = applied_height.saturating_add(ATTESTATION_HEIGHTS_ABOVE_TIP);
        if height == 0 || height < low || height > high {
            return false;
        }
        let blocks = self.by_height.entry(height).or_default();
        let member = attestation.member;
        let attested_by_member = blocks
            .values()
            .filter(|members| members.contains_key(&member))
            .count();
        let block = attestation.body.block;
        let known = blocks.get(&block).is_some_and(|m| m.contains_key(&member));
        if !known && attested_by_member >= ATTESTED_BLOCKS_PER_MEMBER_MAX {
            return false;
        }
        let roots = blocks.entry(block).or_default().entry(member).or_default();
        // Two roots for one block from one member is itself a fault; keep
        // both so the dissenting one becomes evidence (`for_parent`).
        if roots.iter().any(|a| a.body.root == attestation.body.root)
            || roots.len() >= ROOTS_PER_MEMBER_BLOCK_MAX
        {
            return false;
        }
        roots.push(attestation);
        true
    }

    /// What the child of block `parent_hash` at `parent_height` with state
    /// root `parent_root` carries: members agreeing as attestations, the
    /// others as evidence, both sorted by member.
    pub fn for_parent(
        &self,
        parent_height: u64,
        parent_hash: &Hash32,
        parent_root: &Hash32,
    ) -> ForParent {
        let mut out = ForParent::default();
        if parent_height == 0 {
            return out;
        }
        let Some(members) = self
            .by_height
            .get(&parent_height)
            .and_then(|blocks| blocks.get(parent_hash))
        else {
            return out;
        };
        // BTreeMap iteration is in member order: both lists come out sorted.
        for (member, roots) in members {
            let dissent = roots.iter().find(|a| a.body.root != *parent_root);
            match (dissent, roots.first()) {
                (Some(dissent), _) => out.evidence.push(Evidence {
                    member: *member,
                    root: dissent.body.root,
                    signature: dissent.signature,
                }),
                (None, Some(agreeing)) => out.attestations.push(Attestation {
                    member: *member,
                    signature: agreeing.signature,
                }),
                (None, None) => {}
            }
        }
        out
    }

    /// Forgets heights that fell out of the window below `applied_height`.
    pub fn prune(&mut self, applied_height: u64) {
        let low = applied_height.saturating_sub(ATTESTATION_HEIGHTS_BELOW_TIP);
        self.by_height = self.by_height.split_off(&low);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fluence_chain::AttestationBody;
    use fluence_crypto::sign::SigningKey;
    use fluence_proto::DatasetId;

    const ROOT: Hash32 = Hash32([1; 32]);
    const BLOCK: Hash32 = Hash32([2; 32]);

    fn signed(key: &SigningKey, height: u64, block: Hash32, root: Hash32) -> SignedAttestation {
        SignedAttestation::sign(
            key,
            AttestationBody {
                dataset: DatasetId([3; 32]),
                height,
                block,
                root,
            },
        )
    }

    #[test]
    fn agreeing_members_attest_and_dissenters_become_evidence() {
        let keys: Vec<SigningKey> = (0..4).map(|i| SigningKey::from_seed(&[i; 32])).collect();
        let mut inbox = Inbox::default();
        for key in &keys[..3] {
            assert!(inbox.insert(signed(key, 5, BLOCK, ROOT), 4));
        }
        assert!(inbox.insert(signed(&keys[3], 5, BLOCK, Hash32([9; 32])), 4));
        // The same statement twice is kept once.
        assert!(!inbox.insert(signed(&keys[0], 5, BLOCK, ROOT), 4));
        // A member that also signs another root for the block is evidence.
        assert!(inbox.insert(signed(&keys[2], 5, BLOCK, Hash32([8; 32])), 4));
        let carried = inbox.for_parent(5, &BLOCK, &ROOT);
        assert_eq!(carried.attestations.len(), 2);
        assert_eq!(carried.evidence.len(), 2);
        assert!(carried
            .attestations
            .windows(2)
            .all(|w| w[0].member < w[1].member));
        assert!(carried
            .evidence
            .windows(2)
            .all(|w| w[0].member < w[1].member));
        // Nothing for another block at that height.
        assert_eq!(
            inbox.for_parent(5, &Hash32([0; 32]), &ROOT),
            ForParent::default()
        );
    }

    #[test]
    fn the_inbox_is_bounded_by_height_window_and_blocks_per_member() {
        let key = SigningKey::from_seed(&[1; 32]);
        let mut inbox = Inbox::default();
        assert!(!inbox.insert(
            signed(&key, 100 + ATTESTATION_HEIGHTS_ABOVE_TIP + 1, BLOCK, ROOT),
            100
        ));
        assert!(!inbox.insert(
            signed(&key, 100 - ATTESTATION_HEIGHTS_BELOW_TIP - 1, BLOCK, ROOT),
            100
        ));
        for i in 0..ATTESTED_BLOCKS_PER_MEMBER_MAX {
            assert!(inbox.insert(signed(&key, 101, Hash32([i as u8; 32]), ROOT), 100));
        }
        assert!(!inbox.insert(signed(&key, 101, Hash32([0xff; 32]), ROOT), 100));
        inbox.prune(200);
        assert_eq!(
            inbox.for_parent(101, &Hash32([0; 32]), &ROOT),
            ForParent::default()
        );
    }
}
