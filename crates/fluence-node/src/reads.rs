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
//! In a cluster the height a read names is the member's last applied
//! finalized block. The store commits a block's writes before the chain
//! records the block, so a read checks that the chain tip it names has
//! the state root the page was read at, and reads again when a block was
//! applied in between (a few milliseconds at most).

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
/// Reads of store and chain tip before giving up on finding them at one
/// state (each apart by [`SETTLE_POLL`]): a block is applied to the store
/// and recorded in the chain within milliseconds.
const SETTLE_ATTEMPTS_MAX: usize = 100;
const SETTLE_POLL: Duration = Duration::from_millis(2);
/// Blocks looked at below the tip for one with its own certificate and
/// the state's root (a block finalized through a descendant has none).
const CERTIFIED_LOOKBACK_MAX: u64 = 16;
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
    /// The height whose state root is `state`'s, if the chain tip is at
    /// that state now.
    fn height_of(&self, state: &StatePin) -> Option<u64> {
        match self {
            Heights::Single => Some(state.seq),
            Heights::Cluster(replica) => {
                let tip = replica.applied();
                (tip.state_root == state.state_root).then_some(tip.height)
            }
        }
    }
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
    for _ in 0..SETTLE_ATTEMPTS_MAX {
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
        let Some(height) = heights.height_of(&state) else {
            std::thread::sleep(SETTLE_POLL);
            continue;
        };
        let state = ReadState {
            height,
            seq: state.seq,
            state_root: state.state_root,
        };
        let signed = signer.sign(query, page.docs, page.next, state);
        return Ok(Response::SignedPage(signed));
    }
    Err(unsettled())
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
    for _ in 0..SETTLE_ATTEMPTS_MAX {
        let (docs, state) = store
            .prove_docs(dataset, ids, PROVEN_BYTES_MAX)
            .map_err(|e| e.to_node_error())?;
        let tip = replica.applied();
        if tip.state_root != state.state_root {
            std::thread::sleep(SETTLE_POLL);
            continue;
        }
        if let Some(known) = known.filter(|k| k.state_root == state.state_root) {
            // The gateway holds this root verified at `known.height`; this
            // node's state is that state, whatever empty blocks followed.
            return Ok(Response::Proven(ProvenDocs {
                height: known.height,
                state_root: state.state_root,
                docs,
                certified: None,
            }));
        }
        let finalized = certified_block(replica, tip.height, &state)?;
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
        return Ok(Response::Proven(ProvenDocs {
            height: finalized.block.height,
            state_root: state.state_root,
            docs,
            certified: Some(CertifiedBlock {
                block,
                certificate: finalized.certificate,
            }),
        }));
    }
    Err(unsettled())
}

/// The newest block at or below `tip` with its own certificate whose state
/// root is `state`'s.
fn certified_block(
    replica: &Replica,
    tip: u64,
    state: &StatePin,
) -> Result<FinalizedBlock, NodeError> {
    let floor = tip.saturating_sub(CERTIFIED_LOOKBACK_MAX);
    for height in (floor..=tip).rev() {
        let Some(finalized) = replica
            .chain()
            .get(height)
            .map_err(|e| NodeError::Internal(format!("reading the chain: {e}")))?
        else {
            break;
        };
        if finalized.block.state_root != state.state_root {
            break;
        }
        if !finalized.certificate.is_empty() {
            return Ok(finalized);
        }
    }
    Err(NodeError::Unavailable(
        "no block holding this node's state has its own certificate yet".into(),
    ))
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
