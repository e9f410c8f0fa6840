//! One page read from r members that must agree.
//!
//! Each member answers a `SignedFind` with the page, the state it read
//! it at and its signature (`fluence_proto::read`). The gateway checks
//! every signature against that member's configured key (an answer signed
//! by any other key is refused), then:
//!
//! 1. all r answers at one state (seq and root) with one result hash: the
//!    page is accepted;
//! 2. at one state but different results, or at one seq on different
//!    roots: `read_disagreement`, naming which members answered what;
//! 3. at different states (a member one block behind, or a write landing
//!    between answers): the newest state any of them reported becomes the
//!    pin and the members not at it are asked again, pinned. A member
//!    behind the pin waits for it (up to 2 s, node side); one past it
//!    reports its state, which becomes the next pin. At most
//!    [`ROUNDS_MAX`] rounds, so members that never settle give
//!    `node_unavailable` rather than a loop.
//!
//! Heights may differ between agreeing answers: empty blocks change the
//! height, never the state, and the state root binds the whole state
//! (documents, indexes, seq). A member that cannot be reached, or is
//! still behind the pin after waiting, is replaced by the next configured
//! member not yet asked, so r < n reads survive members that are down.

use std::collections::BTreeMap;

use fluence_proto::{
    DocEntry, DocId, FindQuery, Hash32, NodeError, ReadState, Request, Response, SignedPage,
    StatePin, READ_ANSWER_SIGNING_DOMAIN,
};

use crate::error::ClientError;
use crate::members::Member;
use crate::transport::Transport;

/// Rounds of asking before members that keep moving are given up on.
pub(crate) const ROUNDS_MAX: usize = 4;

/// A page r members agreed on.
#[derive(Debug)]
pub struct Agreed {
    pub docs: Vec<DocEntry>,
    pub next: Option<DocId>,
    /// The agreed state, at the lowest height among the answers.
    pub state: ReadState,
}

/// What one member said.
enum Said {
    Page(SignedPage, Hash32),
    /// It is at another state than the pin.
    Elsewhere(StatePin),
    /// It could not answer now; another member may.
    Away(String),
}

/// Reads one page of `query` from `r` of `members` (in their order,
/// skipping members that cannot answer), starting at `pin` if given.
pub(crate) async fn read<T: Transport>(
    members: &[Member<T>],
    r: usize,
    query: &FindQuery,
    pin: Option<StatePin>,
) -> Result<Agreed, ClientError> {
    assert!(
        r >= 1 && r <= members.len(),
        "read quorum resolved against the members"
    );
    let query_hash = query.hash();
    let mut active: Vec<usize> = (0..r).collect();
    let mut spare = r..members.len();
    let mut answers: BTreeMap<usize, (SignedPage, Hash32)> = BTreeMap::new();
    let mut away: Vec<String> = Vec::new();
    let mut pin = pin;
    for _ in 0..ROUNDS_MAX {
        let asking: Vec<usize> = active
            .iter()
            .copied()
            .filter(|m| !answers.get(m).is_some_and(|(page, _)| at_pin(page, pin)))
            .collect();
        let said = futures::future::join_all(
            asking
                .iter()
                .map(|&m| ask(&members[m], query, &query_hash, pin)),
        )
        .await;
        let mut newer: Option<StatePin> = None;
        for (&m, said) in asking.iter().zip(said) {
            match said? {
                Said::Page(page, result) => {
                    answers.insert(m, (page, result));
                }
                Said::Elsewhere(state) => {
                    answers.remove(&m);
                    match pin {
                        Some(p) if state.seq == p.seq => {
                            return Err(disagreement_on_roots(members, m, state, p))
                        }
                        // Still behind after waiting: as good as down.
                        Some(p) if state.seq < p.seq => {
                            away.push(format!(
                                "{} is at seq {}, behind seq {}",
                                members[m].name(),
                                state.seq,
                                p.seq
                            ));
                            replace(&mut active, m, &mut spare, &away)?;
                        }
                        _ => {
                            if newer.is_none_or(|n| state.seq > n.seq) {
                                newer = Some(state);
                            }
                        }
                    }
                }
                Said::Away(why) => {
                    answers.remove(&m);
                    away.push(format!("{}: {why}", members[m].name()));
                    replace(&mut active, m, &mut spare, &away)?;
                }
            }
        }
        if let Some(state) = newer {
            pin = Some(state);
            continue;
        }
        if !active.iter().all(|m| answers.contains_key(m)) {
            continue;
        }
        match settle(members, &active, &mut answers)? {
            Settled::Agreed(agreed) => return Ok(agreed),
            Settled::AskAgainAt(newest) => pin = Some(newest),
        }
    }
    Err(ClientError::Unavailable(format!(
        "{r} members did not settle on one state of the dataset within {ROUNDS_MAX} rounds{}",
        if away.is_empty() {
            String::new()
        } else {
            format!(" ({})", away.join("; "))
        }
    )))
}

/// What one answer from each of r members amounts to.
#[derive(Debug)]
pub enum Settled {
    /// All at one state with one result.
    Agreed(Agreed),
    /// At different states (and no two on different roots at one seq):
    /// the members not at this state, the newest any of them reported,
    /// are asked again pinned to it.
    AskAgainAt(StatePin),
}

/// Checks one signed answer to `query` from each of `members` (`answers[i]`
/// from `members[i]`, all of them asked), as a quorum read does once every
/// member has answered: each signature against its member's key, then
/// whether they agree ([`Settled`]); a signature that fails or answers
/// that contradict each other are an error naming the members.
///
/// The pure core of a quorum read, for callers that gather the answers
/// themselves (the consensus simulation); the network read of this module
/// uses the same checks.
pub fn check_answers<T>(
    members: &[Member<T>],
    query: &FindQuery,
    answers: Vec<SignedPage>,
) -> Result<Settled, ClientError> {
    if answers.is_empty() || answers.len() != members.len() {
        return Err(ClientError::InvalidRequest(format!(
            "{} answers from {} members: a quorum check takes one answer per member",
            answers.len(),
            members.len()
        )));
    }
    let query_hash = query.hash();
    let mut checked = BTreeMap::new();
    for (m, page) in answers.into_iter().enumerate() {
        let result = check_signature(&members[m], &query_hash, &page)?;
        checked.insert(m, (page, result));
    }
    let active: Vec<usize> = (0..members.len()).collect();
    settle(members, &active, &mut checked)
}

/// Every active member answered (signatures checked): accepted if they
/// are at one state with one result, refused naming members if they
/// contradict each other, else the state to ask again at.
fn settle<T>(
    members: &[Member<T>],
    active: &[usize],
    answers: &mut BTreeMap<usize, (SignedPage, Hash32)>,
) -> Result<Settled, ClientError> {
    let states: Vec<StatePin> = active.iter().map(|m| answers[m].0.state.pin()).collect();
    let first = states[0];
    if states.iter().all(|s| *s == first) {
        return agree(members, active, answers).map(Settled::Agreed);
    }
    // Different states: the newest any member has becomes the pin.
    let newest = states
        .iter()
        .copied()
        .max_by_key(|s| s.seq)
        .unwrap_or(first);
    if states.iter().any(|s| s.seq == newest.seq && *s != newest) {
        return Err(disagreement_at_seq(members, active, &states, newest.seq));
    }
    Ok(Settled::AskAgainAt(newest))
}

fn at_pin(page: &SignedPage, pin: Option<StatePin>) -> bool {
    pin.is_none_or(|p| page.state.pin() == p)
}

/// Puts the next spare member in `m`'s place, or fails if none is left.
fn replace(
    active: &mut [usize],
    m: usize,
    spare: &mut std::ops::Range<usize>,
    away: &[String],
) -> Result<(), ClientError> {
    let Some(next) = spare.next() else {
        return Err(ClientError::Unavailable(format!(
            "too few members can answer this read ({})",
            away.join("; ")
        )));
    };
    for slot in active.iter_mut() {
        if *slot == m {
            *slot = next;
        }
    }
    Ok(())
}

/// One member's answer, its signature checked.
async fn ask<T: Transport>(
    member: &Member<T>,
    query: &FindQuery,
    query_hash: &Hash32,
    pin: Option<StatePin>,
) -> Result<Said, ClientError> {
    let request = Request::SignedFind {
        query: query.clone(),
        at: pin,
    };
    let response = match member.transport.call(&request).await {
        Ok(response) => response,
        Err(ClientError::Unavailable(why)) => return Ok(Said::Away(why)),
        Err(error) => return Err(error),
    };
    match response {
        Response::SignedPage(page) => {
            let result = check_signature(member, query_hash, &page)?;
            Ok(Said::Page(page, result))
        }
        Response::Error(NodeError::NotAtState { seq, state_root }) => {
            Ok(Said::Elsewhere(StatePin { seq, state_root }))
        }
        Response::Error(NodeError::Unavailable(why)) => Ok(Said::Away(why)),
        Response::Error(error) => Err(ClientError::Node(error)),
        other => Err(ClientError::Integrity(format!(
            "{} sent an unexpected answer to a read: {}",
            member.name(),
            response_kind(&other)
        ))),
    }
}

/// Checks that `page` is signed by `member`'s key over this query and
/// returns its result hash.
pub(crate) fn check_signature<T>(
    member: &Member<T>,
    query_hash: &Hash32,
    page: &SignedPage,
) -> Result<Hash32, ClientError> {
    if let Some(key) = member.key {
        if page.signer != key {
            return Err(ClientError::Integrity(format!(
                "the answer of {} is signed by key {}, which is not its member key",
                member.name(),
                page.signer
            )));
        }
    }
    let result = page.result_hash();
    let digest = fluence_proto::read::answer_digest(query_hash, &result, &page.state);
    fluence_crypto::sign::verify(
        &page.signer.0,
        READ_ANSWER_SIGNING_DOMAIN,
        &digest,
        &page.signature.0,
    )
    .map_err(|_| {
        ClientError::Integrity(format!(
            "the answer of {} carries a signature that does not verify",
            member.name()
        ))
    })?;
    Ok(result)
}

/// All active members answered at one state: accepted if their results
/// agree, else the members are named by what they answered.
fn agree<T>(
    members: &[Member<T>],
    active: &[usize],
    answers: &mut BTreeMap<usize, (SignedPage, Hash32)>,
) -> Result<Agreed, ClientError> {
    let mut groups: BTreeMap<Hash32, Vec<usize>> = BTreeMap::new();
    for &m in active {
        groups.entry(answers[&m].1).or_default().push(m);
    }
    let height = active
        .iter()
        .map(|m| answers[m].0.state.height)
        .min()
        .unwrap_or_default();
    if groups.len() == 1 {
        let (page, _) = answers
            .remove(&active[0])
            .expect("every active member answered");
        return Ok(Agreed {
            docs: page.docs,
            next: page.next,
            state: ReadState {
                height,
                ..page.state
            },
        });
    }
    let state = answers[&active[0]].0.state;
    let (disagreeing, described) = outvoted(members, active, groups, "answered");
    Err(ClientError::ReadDisagreement {
        disagreeing,
        detail: format!(
            "members answered differently at seq {} (root {}…): {described}",
            state.seq,
            &state.state_root.to_hex()[..16],
        ),
    })
}

/// Members split into groups by what they said: the members outvoted
/// (those outside the largest group when it is larger than every other;
/// else every member of `asked`, in its order) and a description of each
/// group, the largest first ("A, B {said} 1234…; C {said} abcd…").
fn outvoted<T>(
    members: &[Member<T>],
    asked: &[usize],
    groups: BTreeMap<Hash32, Vec<usize>>,
    said: &str,
) -> (Vec<String>, String) {
    let mut groups: Vec<(Hash32, Vec<usize>)> = groups.into_iter().collect();
    // The largest group first: with r ≥ 3 the others are the minority.
    groups.sort_by_key(|(_, group)| std::cmp::Reverse(group.len()));
    let described: Vec<String> = groups
        .iter()
        .map(|(what, group)| {
            let names: Vec<String> = group.iter().map(|&m| members[m].name()).collect();
            format!("{} {said} {}…", names.join(", "), &what.to_hex()[..16])
        })
        .collect();
    let disagreeing: Vec<String> = if groups.len() < 2 || groups[0].1.len() > groups[1].1.len() {
        groups[1..]
            .iter()
            .flat_map(|(_, group)| group.iter().map(|&m| members[m].name()))
            .collect()
    } else {
        asked.iter().map(|&m| members[m].name()).collect()
    };
    (disagreeing, described.join("; "))
}

/// Members answered at one seq on different roots: they hold different
/// states for one write sequence. Named are those outvoted by the
/// members on another root (all of them at that seq when no root has
/// more members than every other): at r = 2 neither can be believed over
/// the other.
fn disagreement_at_seq<T>(
    members: &[Member<T>],
    active: &[usize],
    states: &[StatePin],
    seq: u64,
) -> ClientError {
    let at_seq: Vec<usize> = active
        .iter()
        .zip(states)
        .filter(|(_, state)| state.seq == seq)
        .map(|(m, _)| *m)
        .collect();
    let mut groups: BTreeMap<Hash32, Vec<usize>> = BTreeMap::new();
    for (&m, state) in active.iter().zip(states) {
        if state.seq == seq {
            groups.entry(state.state_root).or_default().push(m);
        }
    }
    let (disagreeing, described) = outvoted(members, &at_seq, groups, "hold root");
    ClientError::ReadDisagreement {
        disagreeing,
        detail: format!("members hold different roots at seq {seq}: {described}"),
    }
}

/// Member `m` is at seq `state.seq` with another root than `other`: the
/// members hold different states for one write sequence.
fn disagreement_on_roots<T>(
    members: &[Member<T>],
    m: usize,
    state: StatePin,
    other: StatePin,
) -> ClientError {
    ClientError::ReadDisagreement {
        disagreeing: vec![members[m].name()],
        detail: format!(
            "{} holds root {}… at seq {}, where other members hold root {}…",
            members[m].name(),
            &state.state_root.to_hex()[..16],
            state.seq,
            &other.state_root.to_hex()[..16]
        ),
    }
}

pub(crate) fn response_kind(response: &Response) -> &'static str {
    match response {
        Response::Written { .. } => "a write acknowledgement",
        Response::Datasets(_) => "a dataset list",
        Response::Info(_) => "dataset information",
        Response::Page { .. } => "an unsigned page",
        Response::Error(_) => "an error",
        Response::SignedPage(_) => "a signed page",
        Response::Proven(_) => "proven documents",
        Response::Ops(_) => "an operations answer",
        Response::Offer(_) => "an answer to an offer",
        Response::Route(_) => "a route",
    }
}

#[cfg(test)]
mod tests {
    use fluence_crypto::sign::SigningKey;
    use fluence_proto::plan::Plan;
    use fluence_proto::{DatasetId, PublicKey, SealedDoc, Signature};

    use super::*;

    fn query() -> FindQuery {
        FindQuery {
            dataset: DatasetId([1; 32]),
            schema: Hash32([2; 32]),
            plan: Plan::All,
            after: None,
            page_docs_max: 10,
        }
    }

    fn key(i: u8) -> SigningKey {
        SigningKey::from_seed(&[i + 1; 32])
    }

    fn members(n: u8) -> Vec<Member<()>> {
        (0..n)
            .map(|i| Member::new(Some(PublicKey(key(i).public_key())), format!("m{i}"), ()))
            .collect()
    }

    fn doc(tag: u8) -> DocEntry {
        DocEntry {
            doc: DocId([7; 16]),
            sealed: SealedDoc {
                version: 1,
                wrapped_key: vec![0; 72],
                ciphertext: vec![tag; 8],
            },
        }
    }

    /// Member `i`'s signed page holding document version `tag` at (height,
    /// seq, root).
    fn page(i: u8, tag: u8, height: u64, seq: u64, root: u8) -> SignedPage {
        let signer = key(i);
        let mut page = SignedPage {
            docs: vec![doc(tag)],
            next: None,
            state: ReadState {
                height,
                seq,
                state_root: Hash32([root; 32]),
            },
            signer: PublicKey(signer.public_key()),
            signature: Signature([0; 64]),
        };
        let digest = page.digest(&query().hash());
        page.signature = Signature(signer.sign(READ_ANSWER_SIGNING_DOMAIN, &digest));
        page
    }

    fn named(result: Result<Settled, ClientError>) -> Vec<String> {
        match result {
            Err(ClientError::ReadDisagreement { disagreeing, .. }) => disagreeing,
            other => panic!("expected a read_disagreement, got {other:?}"),
        }
    }

    #[test]
    fn agreeing_answers_are_accepted_at_the_lowest_height() {
        let members = members(3);
        let answers = vec![
            page(0, 1, 9, 5, 3),
            page(1, 1, 8, 5, 3),
            page(2, 1, 9, 5, 3),
        ];
        match check_answers(&members, &query(), answers).unwrap() {
            Settled::Agreed(agreed) => {
                assert_eq!(agreed.docs, vec![doc(1)]);
                assert_eq!(agreed.state.height, 8);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_false_page_is_named_alone_when_outvoted_and_with_its_peer_at_two() {
        let three = members(3);
        for liar in 0..3u8 {
            let answers = (0..3)
                .map(|i| page(i, if i == liar { 2 } else { 1 }, 9, 5, 3))
                .collect();
            let name = three[liar as usize].name();
            assert_eq!(named(check_answers(&three, &query(), answers)), vec![name]);
        }
        let two = members(2);
        let answers = vec![page(0, 1, 9, 5, 3), page(1, 2, 9, 5, 3)];
        let names = named(check_answers(&two, &query(), answers));
        assert_eq!(names, vec![two[0].name(), two[1].name()]);
    }

    #[test]
    fn a_false_root_at_one_seq_is_named_by_the_majority_whatever_the_order() {
        // A member claiming another root for the same seq: the members on
        // the root most of them hold name it, wherever it is asked.
        let three = members(3);
        for liar in 0..3u8 {
            let answers = (0..3)
                .map(|i| page(i, 1, 9, 5, if i == liar { 4 } else { 3 }))
                .collect();
            let name = three[liar as usize].name();
            assert_eq!(named(check_answers(&three, &query(), answers)), vec![name]);
        }
        // With two, neither can be believed over the other.
        let two = members(2);
        for liar in 0..2u8 {
            let answers = (0..2)
                .map(|i| page(i, 1, 9, 5, if i == liar { 4 } else { 3 }))
                .collect();
            assert_eq!(
                named(check_answers(&two, &query(), answers)),
                vec![two[0].name(), two[1].name()]
            );
        }
    }

    #[test]
    fn answers_at_different_seqs_are_asked_again_at_the_newest() {
        let members = members(3);
        let answers = vec![
            page(0, 1, 9, 5, 3),
            page(1, 1, 10, 6, 4),
            page(2, 1, 9, 5, 3),
        ];
        match check_answers(&members, &query(), answers).unwrap() {
            Settled::AskAgainAt(pin) => {
                assert_eq!(pin.seq, 6);
                assert_eq!(pin.state_root, Hash32([4; 32]));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn answers_signed_by_another_key_or_miscounted_are_refused() {
        let members = members(2);
        // Member 1's answer signed by member 0's key.
        let answers = vec![page(0, 1, 9, 5, 3), page(0, 1, 9, 5, 3)];
        let error = check_answers(&members, &query(), answers).unwrap_err();
        assert_eq!(error.code(), "integrity_error", "{error}");
        assert!(error.to_string().contains(&members[1].name()), "{error}");
        // A page altered after signing.
        let mut altered = page(1, 1, 9, 5, 3);
        altered.docs = vec![doc(2)];
        let error =
            check_answers(&members, &query(), vec![page(0, 1, 9, 5, 3), altered]).unwrap_err();
        assert_eq!(error.code(), "integrity_error", "{error}");
        // One answer for two members.
        let error = check_answers(&members, &query(), vec![page(0, 1, 9, 5, 3)]).unwrap_err();
        assert_eq!(error.code(), "bad_request", "{error}");
    }
}
