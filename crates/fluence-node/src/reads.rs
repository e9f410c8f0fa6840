//! Answering reads a gateway can check (`fluence_proto::read`): pages
//! signed with the node's identity key at the state they were read at,
//! and documents proven against the state root of a finalized block.
//!
//! A node serves one state per dataset: its current one. A read pinned to
//! a state the node has not reached waits up to [`PIN_WAIT_MAX`] for it;
//! one pinned to a state it is past (or on another root) is answered
//! `NotAtState` with the node's own state, and the gateway asks again
//! there. Keeping old states servable would mean holding old redb read
//! transactions open (and their pages unreclaimed); one state costs
//! nothing.
//!
//! In a cluster the height a read names is the newest applied finalized
//! block whose state root is the state the page was read at. The chain
//! moves on while a long page is read (found a few blocks below the tip)
//! and records a block a moment after the store commits it (found once
//! recorded, within milliseconds).

use std::time::{Duration, Instant};

use fluence_chain::FinalizedBlock;
use fluence_crypto::sign::SigningKey;
use fluence_proto::limits::{MESSAGE_LEN_MAX, PROVEN_BYTES_MAX, PROVE_IDS_MAX};
use fluence_proto::{
    CertifiedBlock, DatasetId, DocId, Encode, FindQuery, KnownRoot, NodeError, ProvenDocs,
    PublicKey, ReadState, Response, Signature, SignedPage, StatePin, READ_ANSWER_SIGNING_DOMAIN,
};

use crate::cluster::Replica;
use crate::service::NodeStore;

/// How long a read pinned to a state this node has not reached yet waits
/// for it. A member one block behind catches up in milliseconds; one that
/// takes longer is told apart by the gateway (it answers `NotAtState`).
pub const PIN_WAIT_MAX: Duration = Duration::from_secs(2);
/// How often a waiting read looks at the store again.
const PIN_POLL: Duration = Duration::from_millis(5);
/// Looks at the chain tip before giving up on finding the block of a
/// state just read (each apart by [`SETTLE_POLL`]): the store commits a
/// block's writes and the chain records the block within milliseconds.
const SETTLE_ATTEMPTS_MAX: usize = 100;
const SETTLE_POLL: Duration = Duration::from_millis(2);
/// Blocks below the tip searched for the one whose state a read saw (the
/// chain moves on while a long page is read) and for one with its own
/// certificate (a block finalized through a descendant has none).
const LOOKBACK_BLOCKS_MAX: u64 = 64;
/// Room left in a proven answer for its framing and fixed fields.
const ANSWER_SLACK_BYTES: usize = 64 * 1024;

/// The key a node signs its read answers with: its identity key, which is
/// also its key as a cluster member.
pub struct ReadSigner {
    key: SigningKey,
    public: PublicKey,
}

impl ReadSigner {
    pub fn new(key: SigningKey) -> Self {
        let public = PublicKey(key.public_key());
        ReadSigner { key, public }
    }

    pub fn public_key(&self) -> PublicKey {
        self.public
    }

    fn sign(
        &self,
        query: &FindQuery,
        docs: Vec<fluence_proto::DocEntry>,
        next: Option<DocId>,
        state: ReadState,
    ) -> SignedPage {
        let mut page = SignedPage {
            docs,
            next,
            state,
            signer: self.public,
            signature: Signature([0; 64]),
        };
        let digest = page.digest(&query.hash());
        page.signature = Signature(self.key.sign(READ_ANSWER_SIGNING_DOMAIN, &digest));
        page
    }
}

/// The chain a read's height comes from: none for a single node (its seq
/// is its height), the dataset's replica for a cluster member.
pub enum Heights<'a> {
    Single,
    Cluster(&'a Replica),
}

impl Heights<'_> {
    /// The newest height whose state root is `state`'s.
    fn height_of(&self, state: &StatePin) -> Result<u64, NodeError> {
        match self {
            Heights::Single => Ok(state.seq),
            Heights::Cluster(replica) => {
                // Reads almost always see the newest applied state, whose
                // block the replica knows without reading the chain file
                // (which decodes whole blocks, megabytes for a big batch).
                let tip = replica.applied();
                if tip.state_root == state.state_root {
                    return Ok(tip.height);
                }
                let blocks = blocks_with_root(replica, state)?;
                let newest = blocks.first().ok_or_else(unsettled)?;
                Ok(newest.block.height)
            }
        }
    }
}

/// The applied blocks (newest first) whose state root is `state`'s, among
/// the [`LOOKBACK_BLOCKS_MAX`] below the chain tip. A state read a moment
/// ago may be some blocks old by now (found below the tip) or be the
/// block the chain is recording right now (found once it is recorded).
fn blocks_with_root(replica: &Replica, state: &StatePin) -> Result<Vec<FinalizedBlock>, NodeError> {
    for _ in 0..SETTLE_ATTEMPTS_MAX {
        let tip = replica.applied();
        let floor = tip.height.saturating_sub(LOOKBACK_BLOCKS_MAX);
        let mut found = Vec::new();
        for height in (floor.max(1)..=tip.height).rev() {
            let Some(finalized) = replica
                .chain()
                .get(height)
                .map_err(|e| NodeError::Internal(format!("reading the chain: {e}")))?
            else {
                break;
            };
            if finalized.block.state_root == state.state_root {
                found.push(finalized);
            } else if !found.is_empty() {
                // Roots only repeat across consecutive (empty) blocks.
                break;
            }
        }
        if !found.is_empty() {
            return Ok(found);
        }
        std::thread::sleep(SETTLE_POLL);
    }
    Ok(Vec::new())
}

/// Answers a `SignedFind`.
pub fn signed_find(
    store: &NodeStore,
    signer: &ReadSigner,
    heights: Heights<'_>,
    query: &FindQuery,
    at: Option<StatePin>,
) -> Result<Response, NodeError> {
    if let Some(pin) = &at {
        wait_for_seq(store, &query.dataset, pin.seq)?;
    }
    let (page, state) = store
        .find_with_state(
            &query.dataset,
            Some(&query.schema),
            &query.plan,
            query.after,
            query.page_docs_max as usize,
        )
        .map_err(|e| e.to_node_error())?;
    if let Some(pin) = at {
        if pin != state {
            return Err(not_at(&state));
        }
    }
    let height = heights.height_of(&state)?;
    let state = ReadState {
        height,
        seq: state.seq,
        state_root: state.state_root,
    };
    let signed = signer.sign(query, page.docs, page.next, state);
    Ok(Response::SignedPage(signed))
}

/// Answers a `ProveIds` on a cluster member.
pub fn prove_ids(
    store: &NodeStore,
    replica: &Replica,
    dataset: &DatasetId,
    ids: &[DocId],
    known: Option<KnownRoot>,
) -> Result<Response, NodeError> {
    if ids.is_empty() || ids.len() > PROVE_IDS_MAX {
        return Err(NodeError::BadRequest(format!(
            "a proven read asks for 1 to {PROVE_IDS_MAX} ids, not {}",
            ids.len()
        )));
    }
    if !ids.windows(2).all(|pair| pair[0] < pair[1]) {
        return Err(NodeError::BadRequest(
            "the ids of a proven read must be sorted, without repeats".into(),
        ));
    }
    let (docs, state) = store
        .prove_docs(dataset, ids, PROVEN_BYTES_MAX)
        .map_err(|e| e.to_node_error())?;
    if let Some(known) = known.filter(|k| k.state_root == state.state_root) {
        // The gateway holds this root verified at `known.height`; the
        // state read is that state, whatever empty blocks followed.
        return Ok(Response::Proven(ProvenDocs {
            height: known.height,
            state_root: state.state_root,
            docs,
            certified: None,
        }));
    }
    let blocks = blocks_with_root(replica, &state)?;
    if blocks.is_empty() {
        return Err(unsettled());
    }
    let Some(finalized) = blocks.into_iter().find(|f| !f.certificate.is_empty()) else {
        return Err(NodeError::Unavailable(
            "no block holding this node's state has its own certificate yet".into(),
        ));
    };
    let block = finalized.block.to_bytes();
    let docs_len: usize = docs.iter().map(|d| d.to_bytes().len()).sum();
    let room = MESSAGE_LEN_MAX.saturating_sub(ANSWER_SLACK_BYTES);
    // A block too large to travel with the documents goes alone: the
    // gateway verifies it and asks again naming the root as known.
    let docs = if block.len() + finalized.certificate.len() + docs_len > room {
        Vec::new()
    } else {
        docs
    };
    Ok(Response::Proven(ProvenDocs {
        height: finalized.block.height,
        state_root: state.state_root,
        docs,
        certified: Some(CertifiedBlock {
            block,
            certificate: finalized.certificate,
        }),
    }))
}

/// Waits until the dataset's seq reaches `seq` (or [`PIN_WAIT_MAX`]
/// passed); the caller then reads and compares the state itself.
fn wait_for_seq(store: &NodeStore, dataset: &DatasetId, seq: u64) -> Result<(), NodeError> {
    let deadline = Instant::now() + PIN_WAIT_MAX;
    loop {
        let info = store.info(dataset).map_err(|e| e.to_node_error())?;
        if info.seq >= seq || Instant::now() >= deadline {
            return Ok(());
        }
        std::thread::sleep(PIN_POLL);
    }
}

fn not_at(state: &StatePin) -> NodeError {
    NodeError::NotAtState {
        seq: state.seq,
        state_root: state.state_root,
    }
}

fn unsettled() -> NodeError {
    NodeError::Unavailable(
        "the node's store and chain did not settle on one state; try again".into(),
    )
}
