//! The nodes a client talks to: one node, or the members of the cluster
//! that replicates its datasets, each with the key it signs read answers
//! with.

use fluence_proto::PublicKey;

use crate::error::ClientError;

/// One node the client reaches through `transport`.
pub struct Member<T> {
    /// The node's identity key (its cluster member key), which signs its
    /// read answers. `None` only for a lone node whose key is not known
    /// (an in-process node of tests): its signatures are then checked for
    /// form only, and quorum reads and proofs are unavailable.
    pub key: Option<PublicKey>,
    /// How errors name it: an address or a configured name.
    pub label: String,
    pub transport: T,
}

impl<T> Member<T> {
    pub fn new(key: Option<PublicKey>, label: impl Into<String>, transport: T) -> Self {
        Member {
            key,
            label: label.into(),
            transport,
        }
    }

    /// The label and the start of the key, as errors print a member.
    pub fn name(&self) -> String {
        match &self.key {
            Some(key) => format!("{} (key {}…)", self.label, &key.to_hex()[..16]),
            None => self.label.clone(),
        }
    }
}

/// Checks a member list: at least one member, and with more than one,
/// every key known and no key twice (a quorum counts distinct members).
pub fn check_members<T>(members: &[Member<T>]) -> Result<(), ClientError> {
    if members.is_empty() {
        return Err(ClientError::InvalidRequest(
            "a client needs at least one node".into(),
        ));
    }
    if members.len() > fluence_proto::limits::CLUSTER_MEMBERS_MAX {
        return Err(ClientError::InvalidRequest(format!(
            "a cluster has at most {} members, not {}",
            fluence_proto::limits::CLUSTER_MEMBERS_MAX,
            members.len()
        )));
    }
    if members.len() > 1 {
        let mut keys = Vec::with_capacity(members.len());
        for member in members {
            let key = member.key.ok_or_else(|| {
                ClientError::InvalidRequest(format!(
                    "cluster member {} needs its member key",
                    member.label
                ))
            })?;
            keys.push(key);
        }
        keys.sort_unstable();
        if keys.windows(2).any(|pair| pair[0] == pair[1]) {
            return Err(ClientError::InvalidRequest(
                "a cluster member is listed twice".into(),
            ));
        }
    }
    Ok(())
}
