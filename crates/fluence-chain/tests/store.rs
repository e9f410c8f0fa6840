//! The finalized-block store on real files: append order, reopen, and
//! refusal of blocks that do not extend the tip.

mod common;

use common::{child, insert, members, test_owner};
use fluence_chain::{Block, ChainStore, ChainStoreError, FinalizedBlock};
use fluence_proto::{DatasetId, Hash32};

fn finalized(block: Block, certificate: &[u8]) -> FinalizedBlock {
    FinalizedBlock {
        block,
        certificate: certificate.to_vec(),
    }
}

#[test]
fn blocks_append_in_order_and_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let owner = test_owner(1);
    let genesis = Block::genesis(owner.dataset);
    let first = child(&genesis, vec![owner.create()], Hash32([1; 32]));
    let second = child(&first, vec![insert(&owner, 1, 1)], Hash32([2; 32]));
    {
        let store = ChainStore::open(dir.path(), owner.dataset).unwrap();
        assert_eq!(store.tip().unwrap().hash, genesis.hash());
        assert_eq!(store.tip().unwrap().height, 0);
        store.append(&finalized(first.clone(), b"cert-1")).unwrap();
        let tip = store.append(&finalized(second.clone(), b"")).unwrap();
        assert_eq!(tip.hash, second.hash());
        assert_eq!(tip.state_root, Hash32([2; 32]));
        // The tip is kept in memory after the genesis read: appends move it.
        assert_eq!(store.tip().unwrap(), tip);
    }
    let store = ChainStore::open(dir.path(), owner.dataset).unwrap();
    let tip = store.tip().unwrap();
    assert_eq!((tip.height, tip.hash), (2, second.hash()));
    assert_eq!(
        store.get(1).unwrap().unwrap(),
        finalized(first.clone(), b"cert-1")
    );
    assert_eq!(store.get(3).unwrap(), None);
    assert_eq!(store.get(0).unwrap(), None);
    let first_insert = insert(&owner, 1, 1);
    let location = store
        .find_write(&first_insert.body.digest())
        .unwrap()
        .unwrap();
    assert_eq!((location.height, location.seq), (2, 1));
    assert_eq!(
        store
            .find_write(&insert(&owner, 2, 2).body.digest())
            .unwrap(),
        None
    );
    let all = store.range(1, 10).unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[1].block, second);
}

#[test]
fn only_the_next_block_of_the_tip_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let owner = test_owner(2);
    let store = ChainStore::open(dir.path(), owner.dataset).unwrap();
    let genesis = Block::genesis(owner.dataset);
    let first = child(&genesis, vec![], Hash32([0; 32]));
    let second = child(&first, vec![], Hash32([0; 32]));
    assert!(matches!(
        store.append(&finalized(second.clone(), b"")),
        Err(ChainStoreError::NotNext { tip: 0, found: 2 })
    ));
    let mut fork = first.clone();
    fork.parent = Hash32([9; 32]);
    assert!(matches!(
        store.append(&finalized(fork, b"")),
        Err(ChainStoreError::WrongParent { height: 1, .. })
    ));
    store.append(&finalized(first.clone(), b"")).unwrap();
    assert!(matches!(
        store.append(&finalized(first, b"")),
        Err(ChainStoreError::NotNext { tip: 1, found: 1 })
    ));
    let foreign = child(&Block::genesis(DatasetId([4; 32])), vec![], Hash32([0; 32]));
    assert!(matches!(
        store.append(&finalized(foreign, b"")),
        Err(ChainStoreError::ForeignBlock { .. })
    ));
}

#[test]
fn a_chain_file_of_another_dataset_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let a = DatasetId([1; 32]);
    let b = DatasetId([2; 32]);
    drop(ChainStore::open(dir.path(), a).unwrap());
    std::fs::rename(
        ChainStore::path_in(dir.path(), &a),
        ChainStore::path_in(dir.path(), &b),
    )
    .unwrap();
    assert!(matches!(
        ChainStore::open(dir.path(), b),
        Err(ChainStoreError::WrongDataset { .. })
    ));
}

#[test]
fn a_damaged_record_is_a_typed_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let owner = test_owner(3);
    let genesis = Block::genesis(owner.dataset);
    let first = child(&genesis, vec![owner.create()], Hash32([1; 32]));
    drop({
        let store = ChainStore::open(dir.path(), owner.dataset).unwrap();
        store.append(&finalized(first, b"c")).unwrap();
        store
    });
    // Overwrite the record with garbage through redb itself.
    {
        let db = redb::Database::open(ChainStore::path_in(dir.path(), &owner.dataset)).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let definition: redb::TableDefinition<u64, &[u8]> =
                redb::TableDefinition::new("blocks");
            let mut table = txn.open_table(definition).unwrap();
            table.insert(1u64, &[1u8, 2, 3][..]).unwrap();
        }
        txn.commit().unwrap();
    }
    let store = ChainStore::open(dir.path(), owner.dataset).unwrap();
    assert!(matches!(store.get(1), Err(ChainStoreError::Corrupt(_))));
    assert!(matches!(store.tip(), Err(ChainStoreError::Corrupt(_))));
}

#[test]
fn a_chain_can_start_at_a_certified_floor() {
    let dir = tempfile::tempdir().unwrap();
    let owner = test_owner(4);
    let genesis = Block::genesis(owner.dataset);
    let first = child(&genesis, vec![owner.create()], Hash32([1; 32]));
    let second = child(&first, vec![insert(&owner, 1, 1)], Hash32([2; 32]));
    let third = child(&second, vec![insert(&owner, 2, 2)], Hash32([3; 32]));
    {
        let store = ChainStore::open(dir.path(), owner.dataset).unwrap();
        assert_eq!(store.floor_height().unwrap(), None);
        // A floor needs its own certificate, and is never genesis.
        assert!(matches!(
            store.install_floor(&finalized(second.clone(), b"")),
            Err(ChainStoreError::FloorWithoutCertificate)
        ));
        assert!(matches!(
            store.install_floor(&finalized(genesis.clone(), b"c")),
            Err(ChainStoreError::FloorWithoutCertificate)
        ));
        let tip = store
            .install_floor(&finalized(second.clone(), b"cert-2"))
            .unwrap();
        assert_eq!((tip.height, tip.hash), (2, second.hash()));
        // Only an empty chain takes a floor.
        assert!(matches!(
            store.install_floor(&finalized(third.clone(), b"cert-3")),
            Err(ChainStoreError::FloorOnNonEmpty { tip: 2 })
        ));
        store.append(&finalized(third.clone(), b"")).unwrap();
    }
    let store = ChainStore::open(dir.path(), owner.dataset).unwrap();
    assert_eq!(store.floor_height().unwrap(), Some(2));
    assert_eq!(
        store.floor().unwrap(),
        Some(finalized(second.clone(), b"cert-2"))
    );
    assert_eq!(store.tip().unwrap().hash, third.hash());
    assert_eq!(store.get(1).unwrap(), None);
    assert_eq!(store.range(0, 10).unwrap().len(), 2);
    // The floor's writes are known; the ones below it are not.
    let at_floor = store
        .find_write(&insert(&owner, 1, 1).body.digest())
        .unwrap()
        .unwrap();
    assert_eq!((at_floor.height, at_floor.seq), (2, 1));
    assert_eq!(
        store.find_write(&owner.create().body.digest()).unwrap(),
        None
    );
}

#[test]
fn a_later_epochs_first_block_can_be_a_floor_without_a_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let owner = test_owner(9);
    let genesis = Block::genesis(owner.dataset);
    let first = child(&genesis, vec![owner.create()], Hash32([1; 32]));
    let mut change_block = child(&first, Vec::new(), Hash32([1; 32]));
    let keys = members(5);
    change_block.change = Some(fluence_testkit::replacement(
        &owner.dataset,
        1,
        &keys[..4],
        2,
        &keys[4],
    ));
    let after = child(&change_block, Vec::new(), Hash32([1; 32]));
    {
        let store = ChainStore::open(dir.path(), owner.dataset).unwrap();
        // Only a block carrying a membership change starts an epoch.
        assert!(matches!(
            store.install_epoch_base(&first),
            Err(ChainStoreError::FloorWithoutCertificate)
        ));
        let tip = store.install_epoch_base(&change_block).unwrap();
        assert_eq!((tip.height, tip.hash), (2, change_block.hash()));
        assert!(matches!(
            store.install_epoch_base(&change_block),
            Err(ChainStoreError::FloorOnNonEmpty { tip: 2 })
        ));
        store.append(&finalized(after.clone(), b"cert-3")).unwrap();
    }
    let store = ChainStore::open(dir.path(), owner.dataset).unwrap();
    assert_eq!(store.floor_height().unwrap(), Some(2));
    assert_eq!(store.floor().unwrap(), Some(finalized(change_block, b"")));
    assert_eq!(store.tip().unwrap().hash, after.hash());
}
