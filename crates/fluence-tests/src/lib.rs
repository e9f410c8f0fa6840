//! Test support shared by Fluence's cross-crate tests.
//!
//! Owns the plaintext reference evaluator of MongoDB filter semantics (written
//! independently of `fluence-client::query`, so the differential test compares
//! two implementations rather than one with itself) and random generators of
//! documents and filters. Nothing here ships in a binary.
//!
//! - [`reference`](mod@reference): `matches`, `compare_values`, `find`, `apply_update`,
//!   `upsert_seed`, written from MongoDB's documentation for clarity, not speed.
//! - [`gen`]: proptest strategies over one small vocabulary of fields and
//!   values (`arb_documents`, `arb_collection_and_filter`, `arb_filter`,
//!   `arb_update`, `arb_sort`, `arb_projection`, `arb_skip_limit`).

pub mod gen;
pub mod reference;
