//! Fluence node storage engine: ciphertext documents, blind and ORE indexes, the write journal and the Merkle state root, one redb file per dataset.
//!
//! Owns: how a node stores what owners write (sealed documents and opaque
//! index values it cannot read), how it answers query plans over them, and
//! the state root clusters sign. Must not depend on networking (no tokio,
//! no libp2p): the node service calls it, after checking signatures.
//!
//! - [`Store`] opens `<dir>/datasets/<dataset-id-hex>.redb` files and serves
//!   [`Store::apply`], [`Store::find`], [`Store::info`], [`Store::list`],
//!   [`Store::journal`], [`Store::prove`] and [`Store::check`];
//!   [`Store::apply_sequence`] applies a cluster block's writes in one
//!   commit and [`Store::simulate_sequence`] tries them without one;
//!   [`Store::open_with`] sets the per-dataset page cache ([`StoreOptions`]);
//!   [`Store::snapshot`] exports a dataset's state page by page and
//!   [`Store::import`] rebuilds it on another node, checked against its
//!   state root.
//! - Range indexes are ordered by an [`OreOrder`] type parameter: the
//!   crypto crate's Lewi–Wu comparison in production, [`PlaintextOrder`]
//!   in tests.
//! - [`verify_proof`] checks a [`MerkleProof`] against a state root without
//!   any store, for readers that trust a signed root but not the node.
//!
//! The file layout, key encodings, state root and invariants are specified
//! in `DESIGN.md` beside this crate and in [`layout`] and [`merkle`].

mod apply;
mod error;
pub mod layout;
pub mod merkle;
mod order;
mod query;
mod store;

pub use apply::{REINDEX_CHUNK_DOCS_MAX, REINDEX_CHUNK_KEYS_MAX};
pub use error::{ApplyError, FindError, RedbError, StoreError};
pub use merkle::{verify_proof, DocDigest, MerkleProof, ProofError, BUCKET_DOCS_MAX};
pub use order::{
    range_key, FixedBytes, OreOrder, PlaintextOrder, RangeKey, MARKER_MAX, MARKER_MIN, MARKER_VALUE,
};
pub use query::{
    Page, CANDIDATES_PER_PAGE_MAX, ESTIMATE_SCAN_MAX, PAGE_BYTES_MAX, RANGE_CHUNK_DOCS_MAX,
};
pub use store::{
    Applied, CheckReport, Flush, Import, JournalEntry, SequenceError, Snapshot, SnapshotPage,
    Staged, Store, StoreOptions, CREATING_FILE_EXT, DATASETS_DIR, DATASET_CACHE_BYTES,
    DATASET_FILES_MAX, DATASET_FILE_EXT, IMPORTING_FILE_EXT, JOURNAL_BYTES_MAX, JOURNAL_READ_MAX,
};

#[cfg(test)]
mod send_sync {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn store_is_shareable_across_request_handlers() {
        assert_send_sync::<Store<PlaintextOrder>>();
    }

    #[test]
    fn a_staged_transaction_can_be_kept_by_another_thread() {
        fn assert_send<T: Send>() {}
        assert_send::<Staged>();
    }

    #[test]
    fn a_snapshot_can_be_served_from_any_thread() {
        assert_send_sync::<Snapshot>();
    }
}
