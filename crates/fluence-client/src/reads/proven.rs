//! Lookups by `_id` proven against a finalized state root (r = 1).
//!
//! A member answers `ProveIds` with each document (or nothing) and its
//! Merkle proof against the state root of a finalized block at some
//! height, and that block with its finalization certificate unless the
//! gateway named the root as already verified. The gateway checks, in
//! order:
//!
//! 1. the block: it decodes, is of this dataset, at the height and with the
//!    state root the answer claims, and its certificate holds a quorum of
//!    valid signatures of the configured members over its hash
//!    (`fluence_chain::CertificateVerifier`); the root is then cached by
//!    height ([`RootCache`]), so a certificate is checked once per root;
//! 2. each proof, against that root (`fluence_proto::verify_proof`): it
//!    must be for the id asked, and prove presence with the digest of the
//!    served sealed document, or absence when none is served;
//! 3. the document's AEAD when it is decrypted, as for every read.
//!
//! Any failure is an `integrity_error` naming the member. A member that
//! cannot prove its state yet (no certified block for it), or cannot be
//! reached, is skipped for the next one.
//!
//! What a proof does not give: freshness. A certified root can be old; a
//! member may answer at the state of any finalized block it still holds
//! (it only serves its current one, but it may lag). Reads needing the
//! newest state use r ≥ 2.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use fluence_chain::{Block, CertificateVerifier};
use fluence_proto::limits::PROVE_IDS_MAX;
use fluence_proto::merkle::hash_sealed;
use fluence_proto::{
    verify_proof, CertifiedBlock, DatasetId, DocEntry, DocId, Encode, Hash32, KnownRoot, NodeError,
    ProvenDocs, PublicKey, Request, Response,
};

use super::quorum::response_kind;
use crate::error::ClientError;
use crate::members::Member;
use crate::transport::Transport;
use fluence_chain::history::Epoch;

/// Times every member is asked again when none could prove a read, and
/// the pause before the first of them (growing with each).
const PASSES_MAX: u32 = 2;
const PASS_PAUSE: std::time::Duration = std::time::Duration::from_millis(25);
/// Verified roots kept per dataset (the newest by height).
const ROOTS_PER_DATASET_MAX: usize = 64;
/// Datasets whose verified roots are kept.
const DATASETS_MAX: usize = 4096;

/// State roots whose certificates this gateway has checked, by dataset
/// and height.
#[derive(Default)]
pub struct RootCache {
    roots: Mutex<HashMap<DatasetId, BTreeMap<u64, Hash32>>>,
}

impl RootCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<DatasetId, BTreeMap<u64, Hash32>>> {
        // Every update is one map operation: a panic elsewhere cannot
        // leave the cache half-changed.
        self.roots.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The newest verified root of `dataset`.
    pub(crate) fn newest(&self, dataset: &DatasetId) -> Option<KnownRoot> {
        let roots = self.lock();
        let (height, state_root) = roots.get(dataset)?.last_key_value()?;
        Some(KnownRoot {
            height: *height,
            state_root: *state_root,
        })
    }

    pub(crate) fn contains(&self, dataset: &DatasetId, height: u64, root: &Hash32) -> bool {
        self.lock()
            .get(dataset)
            .and_then(|roots| roots.get(&height))
            .is_some_and(|known| known == root)
    }

    pub(crate) fn insert(&self, dataset: DatasetId, height: u64, root: Hash32) {
        let mut roots = self.lock();
        if roots.len() >= DATASETS_MAX && !roots.contains_key(&dataset) {
            // A gateway reading this many datasets re-checks a certificate
            // now and then; the bound keeps memory flat.
            roots.clear();
        }
        let by_height = roots.entry(dataset).or_default();
        by_height.insert(height, root);
        while by_height.len() > ROOTS_PER_DATASET_MAX {
            by_height.pop_first();
        }
    }
}

/// The documents among `ids` (sorted, without repeats), each proven, in id
/// order; absent ids are proven absent and left out.
pub(crate) async fn read<T: Transport>(
    members: &[Member<T>],
    epochs: &[Epoch],
    roots: &RootCache,
    dataset: DatasetId,
    ids: &[DocId],
) -> Result<Vec<DocEntry>, ClientError> {
    debug_assert!(ids.windows(2).all(|pair| pair[0] < pair[1]));
    let keys: Vec<PublicKey> = members.iter().filter_map(|m| m.key).collect();
    if keys.len() != members.len() {
        return Err(ClientError::InvalidRequest(
            "proofs need every member key of the cluster".into(),
        ));
    }
    // Without a route (members given directly), they are the genesis
    // membership.
    let genesis;
    let epochs = if epochs.is_empty() {
        genesis = [Epoch {
            epoch: fluence_proto::cluster::GENESIS_EPOCH,
            members: keys,
            base: None,
        }];
        &genesis[..]
    } else {
        epochs
    };
    let mut found = Vec::new();
    let mut unavailable = Vec::new();
    for chunk in ids.chunks(PROVE_IDS_MAX) {
        let mut remaining = chunk;
        let mut member = 0usize;
        let mut passes = 0u32;
        // Every answer proves at least one id or brings a new root, so
        // this ends; the bound only stops a member that loops.
        let mut answers_left = 2 * chunk.len() + 2 * members.len() * (PASSES_MAX as usize + 1) + 2;
        while !remaining.is_empty() {
            if member == members.len() && passes < PASSES_MAX {
                // Every member was busy (a block landing, a tip not yet
                // certified on its own): a moment later one usually is not.
                passes += 1;
                member = 0;
                tokio::time::sleep(PASS_PAUSE * passes).await;
            }
            let Some(asked) = members.get(member) else {
                return Err(ClientError::Unavailable(format!(
                    "no member could prove this read ({})",
                    unavailable.join("; ")
                )));
            };
            if answers_left == 0 {
                return Err(ClientError::Integrity(format!(
                    "{} keeps answering without proving the documents asked for",
                    asked.name()
                )));
            }
            answers_left -= 1;
            let request = Request::ProveIds {
                dataset,
                ids: remaining.to_vec(),
                known: roots.newest(&dataset),
            };
            let proven = match asked.transport.call(&request).await {
                Ok(Response::Proven(proven)) => proven,
                Ok(Response::Error(NodeError::Unavailable(why)))
                | Err(ClientError::Unavailable(why)) => {
                    unavailable.push(format!("{}: {why}", asked.name()));
                    member += 1;
                    continue;
                }
                Ok(Response::Error(error)) => return Err(ClientError::Node(error)),
                Ok(other) => {
                    return Err(ClientError::Integrity(format!(
                        "{} sent {} to a proven read",
                        asked.name(),
                        response_kind(&other)
                    )))
                }
                Err(error) => return Err(error),
            };
            let answer = check_proven(asked, epochs, roots, &dataset, remaining, &proven)?;
            found.extend(answer.docs);
            remaining = &remaining[answer.answered..];
        }
    }
    Ok(found)
}

/// One member's answer to a proven read, checked: the documents it proves
/// present (in id order) and how many of the ids asked it answered (a
/// prefix; the rest are asked again).
#[derive(Debug)]
pub struct ProvenAnswer {
    pub docs: Vec<DocEntry>,
    pub answered: usize,
}

/// Checks `member`'s answer `proven` to a proven read of `ids` (sorted,
/// without repeats) of `dataset`, for a cluster of `keys`: the certified
/// block and its certificate (or a root `roots` already holds verified,
/// which a newly verified one joins), then each proof against that root
/// and the document served with it. Any failure is an `integrity_error`
/// naming the member.
///
/// The pure core of a proven read, for callers that gather the answers
/// themselves (the consensus simulation); the network read of this module
/// uses it for every answer.
pub fn check_proven<T>(
    member: &Member<T>,
    epochs: &[Epoch],
    roots: &RootCache,
    dataset: &DatasetId,
    ids: &[DocId],
    proven: &ProvenDocs,
) -> Result<ProvenAnswer, ClientError> {
    let mut docs = Vec::new();
    let integrity = |what: String| ClientError::Integrity(format!("{}: {what}", member.name()));
    match &proven.certified {
        Some(certified) => {
            check_block(
                dataset,
                epochs,
                proven.height,
                &proven.state_root,
                certified,
            )
            .map_err(integrity)?;
            roots.insert(*dataset, proven.height, proven.state_root);
        }
        None if roots.contains(dataset, proven.height, &proven.state_root) => {}
        None => {
            return Err(integrity(format!(
            "answered at height {} with a root this gateway has not verified, without its block",
            proven.height
        )))
        }
    }
    if proven.docs.len() > ids.len() {
        return Err(integrity(
            "proved more documents than were asked for".into(),
        ));
    }
    if proven.docs.is_empty() && proven.certified.is_none() {
        return Err(integrity(
            "answered a proven read without proving anything".into(),
        ));
    }
    for (doc, id) in proven.docs.iter().zip(ids) {
        if doc.proof.doc != *id {
            return Err(integrity(format!(
                "sent the proof of {} where {id} was asked for",
                doc.proof.doc
            )));
        }
        let digest = verify_proof(dataset, &proven.state_root, &doc.proof)
            .map_err(|e| integrity(format!("the proof of document {id} does not verify: {e}")))?;
        match (digest, &doc.sealed) {
            (Some(digest), Some(sealed)) => {
                if digest.sealed.0 != hash_sealed(&sealed.to_bytes()) {
                    return Err(integrity(format!(
                        "served document {id} is not the one its proof commits to at root {}…",
                        &proven.state_root.to_hex()[..16]
                    )));
                }
                docs.push(DocEntry {
                    doc: *id,
                    sealed: sealed.clone(),
                });
            }
            (None, None) => {}
            (Some(_), None) => {
                return Err(integrity(format!(
                    "withheld document {id}, which its proof shows present"
                )))
            }
            (None, Some(_)) => {
                return Err(integrity(format!(
                    "served document {id}, which its proof shows absent"
                )))
            }
        }
    }
    Ok(ProvenAnswer {
        docs,
        answered: proven.docs.len(),
    })
}

/// Checks a certified block against the answer's claims and the members.
fn check_block(
    dataset: &DatasetId,
    epochs: &[Epoch],
    height: u64,
    root: &Hash32,
    certified: &CertifiedBlock,
) -> Result<(), String> {
    let block = Block::from_untrusted(&certified.block)
        .map_err(|e| format!("sent a block that does not decode: {e}"))?;
    if block.dataset != *dataset || block.height != height || block.state_root != *root {
        return Err(format!(
            "sent block {} of dataset {} with root {}…, not block {height} of this dataset with root {}…",
            block.height,
            block.dataset,
            &block.state_root.to_hex()[..16],
            &root.to_hex()[..16]
        ));
    }
    // The members of the epoch the block belongs to certified it: the
    // last epoch that began below its height (a change block itself is
    // the previous epoch's last). A certificate of any other epoch is
    // refused (`OtherEpoch`), never accepted under the wrong keys.
    let epoch = certifying_epoch(epochs, height)
        .ok_or_else(|| format!("no membership epoch is known for block {height}"))?;
    let verifier = CertificateVerifier::new(dataset, epoch.epoch, &epoch.members)
        .map_err(|e| e.to_string())?;
    verifier
        .verify(&block.hash(), &certified.certificate)
        .map_err(|e| format!("the certificate of block {height} is not valid: {e}"))
}

/// The epoch whose members certify the block at `height`: the last one
/// that began below it (`epochs` in order, genesis first).
pub fn certifying_epoch(epochs: &[Epoch], height: u64) -> Option<&Epoch> {
    epochs
        .iter()
        .rev()
        .find(|epoch| epoch.base.is_none() || epoch.base_height() < height)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_block_is_certified_by_the_epoch_it_belongs_to() {
        let epoch = |epoch: u64, base: Option<u64>| Epoch {
            epoch,
            members: vec![PublicKey([epoch as u8; 32])],
            base: base.map(|height| {
                let mut block = fluence_chain::Block::genesis(DatasetId([1; 32]));
                block.height = height;
                block
            }),
        };
        let epochs = [epoch(0, None), epoch(1, Some(10)), epoch(2, Some(20))];
        let at = |height| certifying_epoch(&epochs, height).map(|e| e.epoch);
        assert_eq!(at(1), Some(0));
        // A change block is its old epoch's last block.
        assert_eq!(at(10), Some(0));
        assert_eq!(at(11), Some(1));
        assert_eq!(at(20), Some(1));
        assert_eq!(at(21), Some(2));
        assert_eq!(at(1000), Some(2));
        assert_eq!(certifying_epoch(&[], 5), None);
    }
}
