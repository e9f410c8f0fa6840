//! A deliberately simple plaintext reference evaluator of MongoDB query and
//! update semantics over [`bson::Document`].
//!
//! It exists to be compared against the production evaluator in
//! `fluence-client` (the differential test), so it was written from MongoDB's
//! documentation, independently of that code, and favours obviously-correct
//! over fast: every query re-parses its filter, every path lookup clones.
//!
//! Where the documentation is silent the behaviour follows the MongoDB server
//! (the classic matcher, `src/mongo/db/matcher/path.cpp` and
//! `expression_leaf.cpp`, and its jstests `null_query_semantics.js`,
//! `sort_dotted_paths.js`, `sort_dotted_paths_positional.js`), which the unit
//! tests in `tests.rs` transcribe.
//!
//! Entry points:
//! - [`matches`](fn@matches): does a filter match a document?
//! - [`compare_values`]: MongoDB's BSON comparison / sort order.
//! - [`find`]: filter, sort, skip, limit, projection.
//! - [`apply_update`], [`upsert_seed`], [`upsert_document`]: updates.
//! - [`values_at`]: the values a query path reaches in a document.
//! - [`bson_identical`]: strict equality (type, value and field order), for
//!   comparing results; `bson`'s own `==` ignores field order.

mod compare;
mod filter;
mod find;
mod path;
mod update;

#[cfg(test)]
mod tests;

pub use compare::{bson_identical, compare_values, documents_identical};
pub use filter::{matches, text_words};
pub use find::find;
pub use path::values_at;
pub use update::{apply_update, is_replacement, upsert_document, upsert_seed};
