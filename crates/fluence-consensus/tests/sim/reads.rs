//! Reads in the simulation: every running member answers a read of an
//! acknowledged document by id the way a node answers one (see
//! `fluence-node`'s `reads`: a page signed with its key at its store's
//! state, naming the newest block of its chain with that state's root; the
//! document proven against a block of that root that carries its own
//! certificate). The read liar forges its answers and signs them; the
//! gateway's own checks (`fluence_client::reads::{check_answers,
//! check_proven}`) judge every answer:
//!
//! - each honest member's proven answer passes (and, once the member has
//!   applied the write, proves the acknowledged document); the liar's is
//!   refused, naming it;
//! - members at one seq answer as a quorum: honest ones agree on the page,
//!   and any quorum holding the liar is refused naming it (alone, when the
//!   honest members outnumber it there).

use fluence_client::reads::{check_answers, check_proven, RootCache, Settled};
use fluence_client::{ClientError, Member};
use fluence_crypto::sign::SigningKey;
use fluence_proto::limits::PROVEN_BYTES_MAX;
use fluence_proto::plan::Plan;
use fluence_proto::{
    CertifiedBlock, DatasetId, DocEntry, DocId, Encode, FindQuery, Hash32, ProvenDocs, PublicKey,
    ReadState, SealedDoc, Signature, SignedPage, READ_ANSWER_SIGNING_DOMAIN,
};

use super::cluster::{Handle, Node};

/// Blocks below a member's chain tip searched for the block of its state
/// (as a node does).
const LOOKBACK_BLOCKS_MAX: u64 = 64;

/// How the liar lies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forgery {
    /// Serves another document's sealed bytes under the id asked for.
    OtherDocument,
    /// Leaves the document out, as an older state would (when it holds
    /// the document; otherwise it serves another document).
    Withheld,
    /// Claims a state root its state does not have.
    WrongRoot,
}

impl Forgery {
    pub const ALL: [Forgery; 3] = [
        Forgery::OtherDocument,
        Forgery::Withheld,
        Forgery::WrongRoot,
    ];
}

/// What the read checks saw over a run.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ReadTally {
    pub rounds: u64,
    pub honest_proofs_accepted: u64,
    pub documents_proven: u64,
    pub lies_refused_by_proof: u64,
    pub quorums_agreed: u64,
    pub quorums_refused_naming_liar: u64,
}

/// One member's answers to a read of one id.
struct Answers {
    page: SignedPage,
    proven: ProvenDocs,
}

/// A read of `id` by id, as a gateway plans it.
fn query(handle: &Handle, dataset: DatasetId, id: DocId) -> Option<FindQuery> {
    let info = handle.store().info(&dataset).ok()?;
    Some(FindQuery {
        dataset,
        schema: fluence_proto::schema_digest(&info.indexes),
        plan: Plan::Ids(vec![id]),
        after: None,
        page_docs_max: 16,
    })
}

/// The applied blocks, newest first, whose state root is `root`, among
/// the newest [`LOOKBACK_BLOCKS_MAX`].
fn blocks_with_root(handle: &Handle, root: &Hash32) -> Vec<fluence_chain::FinalizedBlock> {
    let tip = handle.applied().height;
    let floor = tip.saturating_sub(LOOKBACK_BLOCKS_MAX).max(1);
    let mut found = Vec::new();
    for height in (floor..=tip).rev() {
        let Ok(Some(finalized)) = handle.chain().get(height) else {
            break;
        };
        if finalized.block.state_root == *root {
            found.push(finalized);
        } else if !found.is_empty() {
            break;
        }
    }
    found
}

/// Whether `handle` can answer a proven read now: its chain holds a block
/// of its store's state with that block's own certificate.
pub fn answerable(handle: &Handle, dataset: DatasetId) -> bool {
    let Ok(info) = handle.store().info(&dataset) else {
        return false;
    };
    blocks_with_root(handle, &info.state_root)
        .iter()
        .any(|f| !f.certificate.is_empty())
}

fn sign(key: &SigningKey, query: &FindQuery, page: &mut SignedPage) {
    let digest = page.digest(&query.hash());
    page.signature = Signature(key.sign(READ_ANSWER_SIGNING_DOMAIN, &digest));
}

/// A member's honest answers to `query` (a read of `id`), or `None` when
/// it cannot answer now (no dataset yet, or no block of its state on its
/// chain yet, or none of them certified on its own: a node answers
/// "unavailable" then).
fn answer(handle: &Handle, key: &SigningKey, query: &FindQuery, id: DocId) -> Option<Answers> {
    let dataset = query.dataset;
    let store = handle.store();
    let (page, state) = store
        .find_with_state(
            &dataset,
            Some(&query.schema),
            &query.plan,
            query.after,
            query.page_docs_max as usize,
        )
        .ok()?;
    let (docs, proven_state) = store.prove_docs(&dataset, &[id], PROVEN_BYTES_MAX).ok()?;
    assert_eq!(state, proven_state, "the store moved between two reads");
    let blocks = blocks_with_root(handle, &state.state_root);
    let newest = blocks.first()?;
    let certified = blocks.iter().find(|f| !f.certificate.is_empty())?;
    let mut page = SignedPage {
        docs: page.docs,
        next: page.next,
        state: ReadState {
            height: newest.block.height,
            seq: state.seq,
            state_root: state.state_root,
        },
        signer: PublicKey(key.public_key()),
        signature: Signature([0; 64]),
    };
    sign(key, query, &mut page);
    let proven = ProvenDocs {
        height: certified.block.height,
        state_root: state.state_root,
        docs,
        certified: Some(CertifiedBlock {
            block: certified.block.to_bytes(),
            certificate: certified.certificate.clone(),
        }),
    };
    Some(Answers { page, proven })
}

/// Turns the liar's honest `answers` into `forgery`, signed with its key.
fn forge(
    answers: &mut Answers,
    forgery: Forgery,
    key: &SigningKey,
    query: &FindQuery,
    id: DocId,
    other: &SealedDoc,
) {
    let holds = !answers.page.docs.is_empty();
    let forgery = match forgery {
        // Leaving out a document it does not hold yet is no lie.
        Forgery::Withheld if !holds => Forgery::OtherDocument,
        forgery => forgery,
    };
    match forgery {
        Forgery::OtherDocument => {
            answers.page.docs = vec![DocEntry {
                doc: id,
                sealed: other.clone(),
            }];
            answers.proven.docs[0].sealed = Some(other.clone());
        }
        Forgery::Withheld => {
            answers.page.docs.clear();
            answers.proven.docs[0].sealed = None;
        }
        Forgery::WrongRoot => {
            let mut root = answers.page.state.state_root.0;
            root[0] ^= 0xff;
            answers.page.state.state_root = Hash32(root);
            answers.proven.state_root = Hash32(root);
        }
    }
    sign(key, query, &mut answers.page);
}

/// The acknowledged document read: every honest member at or past the
/// write's `seq` must prove exactly `sealed`.
pub struct Expected<'a> {
    pub sealed: &'a SealedDoc,
    pub seq: u64,
}

/// One read of `id` from every running member, the liar (`liar`, an index
/// into `nodes`) forging its answers, judged as a gateway judges them.
/// Panics on any verdict the gateway must not reach.
#[allow(clippy::too_many_arguments)]
pub fn read_round(
    nodes: &[Node],
    liar: usize,
    dataset: DatasetId,
    id: DocId,
    expected: Expected<'_>,
    other: &SealedDoc,
    forgery: Forgery,
    tally: &mut ReadTally,
) {
    tally.rounds += 1;
    let members: Vec<Member<()>> = nodes
        .iter()
        .enumerate()
        .map(|(i, node)| Member::new(Some(node.public_key()), format!("member {i}"), ()))
        .collect();
    let keys: Vec<PublicKey> = nodes.iter().map(Node::public_key).collect();
    let genesis = [fluence_chain::Epoch {
        epoch: fluence_proto::cluster::GENESIS_EPOCH,
        members: keys.clone(),
        base: None,
    }];
    let mut answered: Vec<(usize, FindQuery, Answers)> = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        let Some(handle) = node.handle.as_ref() else {
            continue;
        };
        if handle.syncing() {
            continue;
        }
        let Some(query) = query(handle, dataset, id) else {
            continue;
        };
        let key = SigningKey::from_seed(&node.secret);
        let Some(mut answers) = answer(handle, &key, &query, id) else {
            continue;
        };
        if i == liar {
            forge(&mut answers, forgery, &key, &query, id, other);
        }
        answered.push((i, query, answers));
    }

    // r = 1 with proofs: every answer on its own.
    for (i, _, answers) in &answered {
        let verdict = check_proven(
            &members[*i],
            &genesis,
            &RootCache::default(),
            &dataset,
            &[id],
            &answers.proven,
        );
        if *i == liar {
            match verdict {
                Err(ClientError::Integrity(why)) if why.contains(&members[*i].name()) => {
                    tally.lies_refused_by_proof += 1;
                }
                other => panic!("the liar's {forgery:?} answer got past its proof: {other:?}"),
            }
            continue;
        }
        let proven = verdict.unwrap_or_else(|e| panic!("member {i}'s honest proof refused: {e}"));
        assert_eq!(proven.answered, 1);
        tally.honest_proofs_accepted += 1;
        if answers.page.state.seq >= expected.seq {
            assert_eq!(
                proven.docs,
                vec![DocEntry {
                    doc: id,
                    sealed: expected.sealed.clone(),
                }],
                "member {i} does not prove the acknowledged document"
            );
            tally.documents_proven += 1;
        }
    }

    // r ≥ 2: the members at one seq, as a quorum: the honest ones among
    // them must agree, and with the liar (placed differently each round:
    // the checks must not depend on order) they must be refused.
    let liar_name = members[liar].name();
    let mut seqs: Vec<u64> = answered.iter().map(|(_, _, a)| a.page.state.seq).collect();
    seqs.sort_unstable();
    seqs.dedup();
    for seq in seqs {
        let mut group: Vec<&(usize, FindQuery, Answers)> = answered
            .iter()
            .filter(|(_, _, a)| a.page.state.seq == seq)
            .collect();
        let turn = (tally.rounds as usize) % group.len();
        group.rotate_left(turn);
        let honest: Vec<&(usize, FindQuery, Answers)> = group
            .iter()
            .copied()
            .filter(|(i, _, _)| *i != liar)
            .collect();
        if honest.len() >= 2 {
            match quorum_check(&keys, &honest) {
                Ok(Settled::Agreed(agreed)) => {
                    assert_eq!(agreed.docs, honest[0].2.page.docs, "agreed on another page");
                    tally.quorums_agreed += 1;
                }
                other => panic!(
                    "{} honest members at seq {seq} do not agree: {other:?}",
                    honest.len()
                ),
            }
        }
        if group.len() < 2 || honest.len() == group.len() {
            continue;
        }
        match quorum_check(&keys, &group) {
            Err(ClientError::ReadDisagreement {
                disagreeing,
                detail,
            }) => {
                assert!(
                    disagreeing.contains(&liar_name),
                    "a refused quorum does not name the liar ({forgery:?}): {disagreeing:?}, {detail}"
                );
                if honest.len() >= 2 {
                    assert_eq!(
                        disagreeing,
                        vec![liar_name.clone()],
                        "outvoted by {} honest members, the liar alone is named ({forgery:?}): {detail}",
                        honest.len()
                    );
                }
                tally.quorums_refused_naming_liar += 1;
            }
            other => panic!(
                "a quorum of {} with the liar ({forgery:?}) was not refused: {other:?}",
                group.len()
            ),
        }
    }
}

/// The gateway's verdict on `group`'s pages as one quorum read.
fn quorum_check(
    keys: &[PublicKey],
    group: &[&(usize, FindQuery, Answers)],
) -> Result<Settled, ClientError> {
    let quorum: Vec<Member<()>> = group
        .iter()
        .map(|(i, _, _)| Member::new(Some(keys[*i]), format!("member {i}"), ()))
        .collect();
    let pages: Vec<SignedPage> = group.iter().map(|(_, _, a)| a.page.clone()).collect();
    check_answers(&quorum, &group[0].1, pages)
}
