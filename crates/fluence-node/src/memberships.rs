//! The datasets a node serves and the cluster of each: the owner-signed
//! `Create` that carries each dataset's genesis membership and every
//! finalized membership change since (its chain of custody,
//! [`fluence_chain::history`]), checked before they are kept and kept on
//! disk, per dataset `<data dir>/clusters/<dataset id>.create` (the
//! canonical encoding of the signed write) and, once its membership
//! changed, `<dataset id>.changes` (the certified changes), so a restarted
//! node knows its clusters and their current epoch before any member
//! speaks. A node that lost them (a wiped disk) or missed a change learns
//! them again from a member (`cluster::Replicas`, membership channel).

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use fluence_chain::genesis::verify_create;
use fluence_chain::history::{verify_certified_change, verify_history, Epoch, HistoryError};
use fluence_chain::{CertifiedChange, ClusterHistory};
use fluence_proto::{DatasetId, Decode, Encode, PublicKey, Reader, SignedWrite, Writer};

/// The largest `Create` file read back: a `Create` holds a descriptor
/// (at most 64 KiB), index declarations and at most 64 members.
pub const CREATE_FILE_LEN_MAX: u64 = 1024 * 1024;
/// The largest changes file read back.
pub const CHANGES_FILE_LEN_MAX: u64 = 64 * 1024 * 1024;

/// Why a membership is not kept.
#[derive(Debug, thiserror::Error)]
pub enum MembershipStoreError {
    #[error(transparent)]
    Invalid(#[from] fluence_chain::CreateError),
    #[error(transparent)]
    History(#[from] HistoryError),
    #[error("this node ({0}) is not a member of the cluster")]
    NotListed(PublicKey),
    #[error("dataset {0} is served by another cluster already")]
    Conflict(DatasetId),
    #[error("this node keeps memberships of at most {0} datasets")]
    Full(usize),
    #[error("dataset {0} is not served here")]
    Unknown(DatasetId),
    #[error("cannot write {path}: {error}")]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
}

/// What this node knows of one dataset's cluster.
#[derive(Debug, Clone)]
pub struct Cluster {
    pub create: Arc<SignedWrite>,
    pub changes: Vec<CertifiedChange>,
    /// The epoch the last change (or the `Create`) started.
    pub current: Epoch,
}

impl Cluster {
    /// The history a node that was not there checks.
    pub fn history(&self) -> ClusterHistory {
        ClusterHistory {
            create: (*self.create).clone(),
            changes: self.changes.clone(),
        }
    }
}

/// What a finalized change did to this node's membership.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeOutcome {
    /// This node serves the dataset in the new epoch.
    Member(Epoch),
    /// This node was the one replaced: the dataset is no longer kept.
    Departed,
}

/// The checked cluster of every dataset this node serves.
pub struct Memberships {
    dir: PathBuf,
    local: PublicKey,
    /// The most datasets kept: an acceptance reserves nothing, so
    /// `Create`s carrying acceptances gathered while the node had room
    /// could otherwise make it keep any number.
    capacity: usize,
    clusters: Mutex<HashMap<DatasetId, Arc<Cluster>>>,
    /// Held while a membership is checked against the kept ones and
    /// written, so two updates of one dataset racing in settle on one.
    writing: Mutex<()>,
}

impl Memberships {
    /// Loads the memberships kept in `dir` (created if missing) for the
    /// node with key `local`. A dataset whose files do not decode, do not
    /// verify or do not name this node in the current epoch is skipped
    /// with a warning (the node then learns that cluster again from its
    /// members, if it still is one).
    pub fn open(dir: &Path, local: PublicKey, capacity: usize) -> std::io::Result<Memberships> {
        std::fs::create_dir_all(dir)?;
        let mut clusters = HashMap::new();
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            if path.extension().and_then(|e| e.to_str()) != Some("create") {
                continue;
            }
            match read_cluster(&path, &local) {
                Ok(cluster) => {
                    clusters.insert(cluster.create.body.dataset, Arc::new(cluster));
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
            clusters: Mutex::new(clusters),
            writing: Mutex::new(()),
        })
    }

    /// The `Create` of `dataset`, if this node serves it.
    pub fn get(&self, dataset: &DatasetId) -> Option<Arc<SignedWrite>> {
        self.cluster(dataset)
            .map(|cluster| Arc::clone(&cluster.create))
    }

    /// What this node knows of `dataset`'s cluster, if it serves it.
    pub fn cluster(&self, dataset: &DatasetId) -> Option<Arc<Cluster>> {
        self.lock().get(dataset).cloned()
    }

    /// The member keys of `dataset`'s cluster in its current epoch, in
    /// order.
    pub fn members(&self, dataset: &DatasetId) -> Option<Vec<PublicKey>> {
        self.cluster(dataset)
            .map(|cluster| cluster.current.members.clone())
    }

    /// The datasets this node serves.
    pub fn datasets(&self) -> Vec<DatasetId> {
        self.lock().keys().copied().collect()
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
        if let Some(existing) = self.cluster(&dataset) {
            return if *existing.create == *create {
                Ok(Arc::clone(&existing.create))
            } else {
                Err(MembershipStoreError::Conflict(dataset))
            };
        }
        if self.len() >= self.capacity {
            return Err(MembershipStoreError::Full(self.capacity));
        }
        self.remove_file(&dataset, "changes")?;
        self.write_file(&dataset, "create", &create.to_bytes())?;
        let cluster = Arc::new(Cluster {
            create: Arc::new(create.clone()),
            changes: Vec::new(),
            current: Epoch {
                epoch: fluence_proto::cluster::GENESIS_EPOCH,
                members: genesis.keys(),
                base: None,
            },
        });
        self.lock().insert(dataset, Arc::clone(&cluster));
        Ok(Arc::clone(&cluster.create))
    }

    /// Keeps a finalized change of `dataset`'s current epoch after
    /// checking it and its proof against the current members. The change
    /// already kept is accepted again. A change that replaced this node
    /// removes the dataset's membership.
    pub fn add_change(
        &self,
        dataset: &DatasetId,
        certified: &CertifiedChange,
    ) -> Result<ChangeOutcome, MembershipStoreError> {
        let _writing = self.writing.lock().unwrap_or_else(PoisonError::into_inner);
        let kept = self
            .cluster(dataset)
            .ok_or(MembershipStoreError::Unknown(*dataset))?;
        if kept.changes.last().and_then(CertifiedChange::base) == certified.base() {
            return Ok(ChangeOutcome::Member(kept.current.clone()));
        }
        let next = verify_certified_change(dataset, &kept.current, certified, kept.changes.len())?;
        let mut changes = kept.changes.clone();
        changes.push(certified.clone());
        self.keep(dataset, &kept.create, changes, next)
    }

    /// Keeps a history a member sent after checking it from the owner's
    /// `Create` on: for a dataset not kept yet (this node must be a member
    /// of its current epoch), or one that extends the history kept. An
    /// older history than the one kept changes nothing.
    pub fn insert_history(
        &self,
        history: &ClusterHistory,
    ) -> Result<ChangeOutcome, MembershipStoreError> {
        let epochs = verify_history(history)?;
        let current = epochs.last().cloned().expect("at least the genesis epoch");
        let dataset = history.create.body.dataset;
        let _writing = self.writing.lock().unwrap_or_else(PoisonError::into_inner);
        match self.cluster(&dataset) {
            Some(kept) => {
                let diverged = !history.changes.starts_with(&kept.changes)
                    && !kept.changes.starts_with(&history.changes);
                if *kept.create != history.create || diverged {
                    return Err(MembershipStoreError::Conflict(dataset));
                }
                if history.changes.len() <= kept.changes.len() {
                    return Ok(ChangeOutcome::Member(kept.current.clone()));
                }
                self.keep(&dataset, &kept.create, history.changes.clone(), current)
            }
            None => {
                if !current.members.contains(&self.local) {
                    return Err(MembershipStoreError::NotListed(self.local));
                }
                if self.len() >= self.capacity {
                    return Err(MembershipStoreError::Full(self.capacity));
                }
                // Changes first: a `.create` is what makes a dataset kept
                // at start-up, so a crash between the two leaves nothing
                // (a stray `.changes` is replaced by the next write).
                let changes = history.changes.clone();
                self.write_file(&dataset, "changes", &encode_changes(&changes))?;
                self.write_file(&dataset, "create", &history.create.to_bytes())?;
                let cluster = Arc::new(Cluster {
                    create: Arc::new(history.create.clone()),
                    changes,
                    current: current.clone(),
                });
                self.lock().insert(dataset, cluster);
                Ok(ChangeOutcome::Member(current))
            }
        }
    }

    /// Writes `changes` and makes `current` the dataset's epoch, or
    /// forgets the dataset if this node is not in it.
    fn keep(
        &self,
        dataset: &DatasetId,
        create: &Arc<SignedWrite>,
        changes: Vec<CertifiedChange>,
        current: Epoch,
    ) -> Result<ChangeOutcome, MembershipStoreError> {
        if !current.members.contains(&self.local) {
            self.forget(dataset)?;
            return Ok(ChangeOutcome::Departed);
        }
        self.write_file(dataset, "changes", &encode_changes(&changes))?;
        let cluster = Arc::new(Cluster {
            create: Arc::clone(create),
            changes,
            current: current.clone(),
        });
        self.lock().insert(*dataset, cluster);
        Ok(ChangeOutcome::Member(current))
    }

    /// Removes the dataset's files, then forgets it.
    fn forget(&self, dataset: &DatasetId) -> Result<(), MembershipStoreError> {
        for extension in ["changes", "create"] {
            self.remove_file(dataset, extension)?;
        }
        self.lock().remove(dataset);
        Ok(())
    }

    /// Removes one of the dataset's files, if it is there.
    fn remove_file(
        &self,
        dataset: &DatasetId,
        extension: &str,
    ) -> Result<(), MembershipStoreError> {
        let path = self.path(dataset, extension);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(error) => Err(MembershipStoreError::Io { path, error }),
        }
    }

    fn path(&self, dataset: &DatasetId, extension: &str) -> PathBuf {
        self.dir.join(format!("{}.{extension}", dataset.to_hex()))
    }

    fn write_file(
        &self,
        dataset: &DatasetId,
        extension: &str,
        bytes: &[u8],
    ) -> Result<(), MembershipStoreError> {
        let path = self.path(dataset, extension);
        write_durably(&path, bytes).map_err(|error| MembershipStoreError::Io { path, error })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<DatasetId, Arc<Cluster>>> {
        self.clusters.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn encode_changes(changes: &[CertifiedChange]) -> Vec<u8> {
    let mut writer = Writer::new();
    writer.vec(changes);
    writer.into_bytes()
}

fn read_bounded(path: &Path, max: u64) -> Result<Vec<u8>, String> {
    let len = std::fs::metadata(path).map_err(|e| e.to_string())?.len();
    if len > max {
        return Err(format!("{len} bytes, above {max}"));
    }
    std::fs::read(path).map_err(|e| e.to_string())
}

fn read_cluster(path: &Path, local: &PublicKey) -> Result<Cluster, String> {
    let create = SignedWrite::from_bytes(&read_bounded(path, CREATE_FILE_LEN_MAX)?)
        .map_err(|e| e.to_string())?;
    let expected = format!("{}.create", create.body.dataset.to_hex());
    if path.file_name().and_then(|n| n.to_str()) != Some(expected.as_str()) {
        return Err("the file name does not match the dataset".into());
    }
    let changes_path = path.with_extension("changes");
    let changes = if changes_path.exists() {
        let bytes = read_bounded(&changes_path, CHANGES_FILE_LEN_MAX)?;
        let mut reader = Reader::new(&bytes);
        let changes = reader
            .vec(fluence_chain::HISTORY_CHANGES_MAX, "membership changes")
            .map_err(|e| e.to_string())?;
        reader.finish().map_err(|e| e.to_string())?;
        changes
    } else {
        Vec::new()
    };
    let history = ClusterHistory {
        create: create.clone(),
        changes,
    };
    let current = verify_history(&history)
        .map_err(|e| e.to_string())?
        .pop()
        .expect("at least the genesis epoch");
    if !current.members.contains(local) {
        return Err("this node is not a member".into());
    }
    Ok(Cluster {
        create: Arc::new(create),
        changes: history.changes,
        current,
    })
}

/// Writes `bytes` to a temporary file, syncs it and renames it over
/// `path`, so a crash leaves the old file or the new one, never half.
fn write_durably(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let temporary = path.with_extension("tmp");
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
