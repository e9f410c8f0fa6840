//! The datasets a node serves and the cluster of each: the owner-signed
//! `Create` that carries each dataset's genesis membership, checked
//! before it is kept and kept on disk, one file per dataset
//! (`<data dir>/clusters/<dataset id>.create`, the canonical encoding of
//! the signed write), so a restarted node knows its clusters before any
//! member speaks. A node that lost them (a wiped disk) learns them again
//! from a member (`cluster::Replicas`, membership channel).

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use fluence_chain::genesis::verify_create;
use fluence_proto::{DatasetId, Decode, Encode, PublicKey, SignedWrite};

/// The largest `Create` file read back: a `Create` holds a descriptor
/// (at most 64 KiB), index declarations and at most 64 members.
pub const CREATE_FILE_LEN_MAX: u64 = 1024 * 1024;

/// Why a membership is not kept.
#[derive(Debug, thiserror::Error)]
pub enum MembershipStoreError {
    #[error(transparent)]
    Invalid(#[from] fluence_chain::CreateError),
    #[error("this node ({0}) is not a member of the cluster")]
    NotListed(PublicKey),
    #[error("dataset {0} is served by another cluster already")]
    Conflict(DatasetId),
    #[error("this node keeps memberships of at most {0} datasets")]
    Full(usize),
    #[error("cannot write {path}: {error}")]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
}

/// The checked `Create` of every dataset this node serves.
pub struct Memberships {
    dir: PathBuf,
    local: PublicKey,
    /// The most datasets kept: an acceptance reserves nothing, so
    /// `Create`s carrying acceptances gathered while the node had room
    /// could otherwise make it keep any number.
    capacity: usize,
    creates: Mutex<HashMap<DatasetId, Arc<SignedWrite>>>,
    /// Held while a membership is checked against the kept ones and
    /// written, so two `Create`s of one dataset racing in settle on one.
    writing: Mutex<()>,
}

impl Memberships {
    /// Loads the memberships kept in `dir` (created if missing) for the
    /// node with key `local`. A file that does not decode, does not
    /// verify or does not name this node is skipped with a warning (the
    /// node then learns that cluster again from its members).
    pub fn open(dir: &Path, local: PublicKey, capacity: usize) -> std::io::Result<Memberships> {
        std::fs::create_dir_all(dir)?;
        let mut creates = HashMap::new();
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            if path.extension().and_then(|e| e.to_str()) != Some("create") {
                continue;
            }
            match read_create(&path, &local) {
                Ok(create) => {
                    creates.insert(create.body.dataset, Arc::new(create));
                }
                Err(reason) => {
                    tracing::warn!(path = %path.display(), %reason, "skipping a membership file");
                }
            }
        }
        Ok(Memberships {
            dir: dir.to_path_buf(),
            local,
            capacity,
            creates: Mutex::new(creates),
            writing: Mutex::new(()),
        })
    }

    /// The `Create` of `dataset`, if this node serves it.
    pub fn get(&self, dataset: &DatasetId) -> Option<Arc<SignedWrite>> {
        self.lock().get(dataset).cloned()
    }

    /// The member keys of `dataset`'s cluster, in order.
    pub fn members(&self, dataset: &DatasetId) -> Option<Vec<PublicKey>> {
        let create = self.get(dataset)?;
        fluence_chain::genesis::genesis_of(&create).map(|genesis| genesis.keys())
    }

    /// How many datasets this node serves.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Checks `create` (owner signature, every acceptance, this node
    /// listed) and keeps it durably. The same `Create` again is accepted;
    /// another one for a dataset already served is a conflict.
    pub fn insert(&self, create: &SignedWrite) -> Result<Arc<SignedWrite>, MembershipStoreError> {
        let genesis = verify_create(create)?;
        if !genesis.keys().contains(&self.local) {
            return Err(MembershipStoreError::NotListed(self.local));
        }
        let dataset = create.body.dataset;
        let _writing = self.writing.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(existing) = self.get(&dataset) {
            return if *existing == *create {
                Ok(existing)
            } else {
                Err(MembershipStoreError::Conflict(dataset))
            };
        }
        if self.len() >= self.capacity {
            return Err(MembershipStoreError::Full(self.capacity));
        }
        let path = self.dir.join(format!("{}.create", dataset.to_hex()));
        write_durably(&path, &create.to_bytes())
            .map_err(|error| MembershipStoreError::Io { path, error })?;
        let create = Arc::new(create.clone());
        self.lock()
            .entry(dataset)
            .or_insert_with(|| Arc::clone(&create));
        Ok(create)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<DatasetId, Arc<SignedWrite>>> {
        self.creates.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn read_create(path: &Path, local: &PublicKey) -> Result<SignedWrite, String> {
    let len = std::fs::metadata(path).map_err(|e| e.to_string())?.len();
    if len > CREATE_FILE_LEN_MAX {
        return Err(format!("{len} bytes, above {CREATE_FILE_LEN_MAX}"));
    }
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    let create = SignedWrite::from_bytes(&bytes).map_err(|e| e.to_string())?;
    let genesis = verify_create(&create).map_err(|e| e.to_string())?;
    if !genesis.keys().contains(local) {
        return Err("this node is not a member".into());
    }
    let expected = format!("{}.create", create.body.dataset.to_hex());
    if path.file_name().and_then(|n| n.to_str()) != Some(expected.as_str()) {
        return Err("the file name does not match the dataset".into());
    }
    Ok(create)
}

/// Writes `bytes` to a temporary file, syncs it and renames it over
/// `path`, so a crash leaves the old file or the new one, never half.
fn write_durably(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let temporary = path.with_extension("create.tmp");
    {
        let mut file = std::fs::File::create(&temporary)?;
        file.write_all(bytes)?;
        file.sync_all()?;
    }
    std::fs::rename(&temporary, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use fluence_crypto::sign::SigningKey;
    use fluence_testkit::Owner;

    #[test]
    fn no_more_datasets_than_the_capacity_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let keys: Vec<SigningKey> = (1..=4u8).map(|i| SigningKey::from_seed(&[i; 32])).collect();
        let local = PublicKey(keys[0].public_key());
        let memberships = Memberships::open(dir.path(), local, 2).unwrap();
        let create = |tag: u8| Owner::new([9; 32], [tag; 32]).create_for_cluster(&keys);
        memberships.insert(&create(1)).unwrap();
        memberships.insert(&create(2)).unwrap();
        assert!(matches!(
            memberships.insert(&create(3)),
            Err(MembershipStoreError::Full(2))
        ));
        // A dataset already kept is still answered as before.
        memberships.insert(&create(1)).unwrap();
        assert_eq!(memberships.len(), 2);
    }

    #[test]
    fn kept_memberships_survive_a_restart_and_bad_ones_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let keys: Vec<SigningKey> = (1..=4u8).map(|i| SigningKey::from_seed(&[i; 32])).collect();
        let local = PublicKey(keys[1].public_key());
        let owner = Owner::new([9; 32], [3; 32]);
        let create = owner.create_for_cluster(&keys);
        let memberships = Memberships::open(dir.path(), local, 8).unwrap();
        memberships.insert(&create).unwrap();
        // The same again is fine; another cluster for the dataset is not.
        memberships.insert(&create).unwrap();
        let others: Vec<SigningKey> = [1u8, 2, 3, 40]
            .iter()
            .map(|i| SigningKey::from_seed(&[*i; 32]))
            .collect();
        assert!(matches!(
            memberships.insert(&owner.create_for_cluster(&others)),
            Err(MembershipStoreError::Conflict(_))
        ));
        // Not listed, and no cluster at all.
        let elsewhere: Vec<SigningKey> = (30..34u8)
            .map(|i| SigningKey::from_seed(&[i; 32]))
            .collect();
        let stranger = Owner::new([9; 32], [4; 32]);
        assert!(matches!(
            memberships.insert(&stranger.create_for_cluster(&elsewhere)),
            Err(MembershipStoreError::NotListed(_))
        ));
        assert!(matches!(
            memberships.insert(&stranger.create()),
            Err(MembershipStoreError::Invalid(_))
        ));
        // A forged acceptance is refused.
        let mut forged = stranger.create_for_cluster(&keys);
        if let fluence_proto::Action::Create {
            cluster: Some(genesis),
            ..
        } = &mut forged.body.action
        {
            genesis.members[3].acceptance = fluence_proto::Signature([1; 64]);
        }
        assert!(memberships.insert(&forged).is_err());

        let reopened = Memberships::open(dir.path(), local, 8).unwrap();
        assert_eq!(reopened.len(), 1);
        assert_eq!(
            reopened.members(&owner.dataset).unwrap(),
            keys.iter()
                .map(|k| PublicKey(k.public_key()))
                .collect::<Vec<_>>()
        );
        // A corrupted file is skipped, not trusted.
        let path = dir
            .path()
            .join(format!("{}.create", owner.dataset.to_hex()));
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(&path, bytes).unwrap();
        assert!(Memberships::open(dir.path(), local, 8).unwrap().is_empty());
    }
}
