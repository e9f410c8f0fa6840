//! Verified reads: how many members must agree on an answer (the read
//! quorum r), and whether lookups by `_id` come with Merkle proofs.
//!
//! - **r = 1** (default): one member answers; its answer is signed (so a
//!   false one is evidence against it) and every document is
//!   authenticated by its AEAD, but a member can still answer with an
//!   authentic older version or leave documents out.
//! - **r ≥ 2** ([`quorum`]): r members answer the same query at the same
//!   state; the gateway accepts only r signed answers with the same
//!   result hash and state root, checking each signature against the
//!   configured member keys, and otherwise names the members that
//!   disagree (`read_disagreement`).
//! - **proofs** ([`proven`], r = 1, lookups by `_id` only): each document
//!   (or its absence) comes with a Merkle proof against the state root of
//!   a finalized block, whose certificate (2f + 1 member signatures) the
//!   gateway checks once per root.
//!
//! The defaults are the client's [`ReadConfig`]; a request overrides them
//! with [`ReadOptions::scope`] (the gateway's `readQuorum` and `proof` body
//! fields, MongoDB's `readConcern`).

use std::future::Future;

pub(crate) mod proven;
pub(crate) mod quorum;

pub use proven::{certifying_epoch, check_proven, ProvenAnswer, RootCache};
pub use quorum::{check_answers, Agreed, Settled};

use crate::error::ClientError;

/// How many members must agree on a read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReadQuorum {
    /// Exactly this many members (1 ≤ r ≤ n).
    Count(usize),
    /// 2f + 1 of n = 3f + 1 members (n − f for other sizes): answers
    /// that outvote any f faulty members.
    Majority,
    /// Every member.
    All,
}

impl ReadQuorum {
    /// The number of members this asks for in a cluster of `n`.
    pub fn resolve(self, n: usize) -> Result<usize, ClientError> {
        let r = match self {
            ReadQuorum::Count(r) => r,
            ReadQuorum::Majority => n - (n.saturating_sub(1)) / 3,
            ReadQuorum::All => n,
        };
        if r == 0 || r > n {
            return Err(ClientError::InvalidRequest(format!(
                "read quorum {r} is not between 1 and the {n} member{} this gateway reads from",
                if n == 1 { "" } else { "s" }
            )));
        }
        Ok(r)
    }
}

/// A client's read defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadConfig {
    pub quorum: ReadQuorum,
    /// Whether r = 1 lookups by `_id` come with Merkle proofs when the
    /// request does not say.
    pub proofs: bool,
}

impl Default for ReadConfig {
    fn default() -> Self {
        ReadConfig {
            quorum: ReadQuorum::Count(1),
            proofs: false,
        }
    }
}

/// One request's read choices; `None` takes the client's default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReadOptions {
    pub quorum: Option<ReadQuorum>,
    pub proof: Option<bool>,
}

tokio::task_local! {
    static READ_OPTIONS: ReadOptions;
}

impl ReadOptions {
    /// Runs `work` with these options applying to every read it makes
    /// through a client (a cursor keeps the options it was opened with).
    pub async fn scope<F: Future>(self, work: F) -> F::Output {
        READ_OPTIONS.scope(self, work).await
    }

    /// The options of the running request.
    pub(crate) fn current() -> ReadOptions {
        READ_OPTIONS
            .try_with(|options| *options)
            .unwrap_or_default()
    }
}

/// A request's read choices, resolved against the client's defaults and
/// members.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct ReadChoice {
    /// Members that must agree.
    pub quorum: usize,
    /// Lookups by `_id` are proven (then `quorum` is 1).
    pub proof: bool,
}

impl ReadChoice {
    /// Resolves `options` for a client with `config` reading from `n`
    /// members; `keys_known` says whether every member key is configured
    /// (proofs check certificates against them).
    pub fn resolve(
        options: ReadOptions,
        config: &ReadConfig,
        n: usize,
        keys_known: bool,
    ) -> Result<ReadChoice, ClientError> {
        let quorum = options.quorum.unwrap_or(config.quorum).resolve(n)?;
        let proof = match options.proof {
            Some(true) if quorum > 1 => {
                return Err(ClientError::InvalidRequest(format!(
                    "\"proof\": true applies to reads at read quorum 1, not {quorum}: a quorum of signed answers is its own check"
                )))
            }
            Some(true) if !keys_known => {
                return Err(ClientError::InvalidRequest(
                    "\"proof\": true needs the cluster's member keys to check certificates; this gateway has none"
                        .into(),
                ))
            }
            Some(proof) => proof,
            // A lone node has no certified blocks to prove against.
            None => config.proofs && quorum == 1 && keys_known && n > 1,
        };
        Ok(ReadChoice { quorum, proof })
    }

    /// Whether the request asked for proofs itself (so a query that
    /// cannot be proven is an error rather than read without).
    pub fn proof_required(options: &ReadOptions) -> bool {
        options.proof == Some(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quorums_resolve_against_the_cluster_size() {
        assert_eq!(ReadQuorum::Majority.resolve(4).unwrap(), 3);
        assert_eq!(ReadQuorum::Majority.resolve(7).unwrap(), 5);
        assert_eq!(ReadQuorum::Majority.resolve(1).unwrap(), 1);
        assert_eq!(ReadQuorum::All.resolve(4).unwrap(), 4);
        assert_eq!(ReadQuorum::Count(2).resolve(4).unwrap(), 2);
        for bad in [0, 5] {
            let error = ReadQuorum::Count(bad).resolve(4).unwrap_err();
            assert_eq!(error.code(), "bad_request");
            assert!(error.to_string().contains("4 members"), "{error}");
        }
    }

    #[test]
    fn proofs_apply_at_quorum_one_with_known_keys() {
        let config = ReadConfig {
            quorum: ReadQuorum::Count(1),
            proofs: true,
        };
        let choice = ReadChoice::resolve(ReadOptions::default(), &config, 4, true).unwrap();
        assert_eq!(
            choice,
            ReadChoice {
                quorum: 1,
                proof: true
            }
        );
        // A default never turns into an error: at r = 2 it is just off.
        let at_two = ReadOptions {
            quorum: Some(ReadQuorum::Count(2)),
            proof: None,
        };
        assert!(!ReadChoice::resolve(at_two, &config, 4, true).unwrap().proof);
        // Asked for explicitly where it cannot apply: a clear error.
        let explicit = ReadOptions {
            quorum: Some(ReadQuorum::Count(2)),
            proof: Some(true),
        };
        assert!(ReadChoice::resolve(explicit, &config, 4, true).is_err());
        let no_keys = ReadOptions {
            quorum: None,
            proof: Some(true),
        };
        assert!(ReadChoice::resolve(no_keys, &config, 1, false).is_err());
        assert!(
            !ReadChoice::resolve(ReadOptions::default(), &config, 1, false)
                .unwrap()
                .proof
        );
        assert!(
            !ReadChoice::resolve(ReadOptions::default(), &config, 1, true)
                .unwrap()
                .proof,
            "a lone node has nothing to prove against"
        );
    }
}
