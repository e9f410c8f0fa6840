//! MongoDB query semantics for the gateway: filters, sorts, projections,
//! updates, and planning against encrypted indexes.
//!
//! Nodes cannot read documents, so the gateway does two things with a
//! query:
//!
//! 1. [`plan`] turns the filter into an [`IndexPlan`] the node can answer
//!    from its encrypted indexes. The plan is *sound*: it selects every
//!    document the filter matches (and usually more), given that an index on
//!    a path holds [`index_values`] of each document.
//! 2. After decrypting the node's candidates, the gateway applies the exact
//!    filter ([`eval`]), then [`SortSpec`], skip/limit and [`Projection`],
//!    all with MongoDB's semantics, so applications see what MongoDB would
//!    return.
//!
//! Writes use [`Update`] (operator updates and replacements, upserts via
//! [`Update::apply_upsert`] / [`upsert_seed`]) and [`UpdatePipeline`]
//! (pipeline-style updates); [`UpdateSpec`] is either.
//!
//! ```
//! use bson::doc;
//! use fluence_client::query::{eval, parse_filter, plan, EvalContext, IndexKindSpec, IndexPlan};
//!
//! let filter = parse_filter(&doc! {"tags": "red", "qty": {"$ne": 0}}).unwrap();
//! assert!(eval(&filter, &doc! {"tags": ["blue", "red"]}, &EvalContext::without_text()));
//! let indexes = [("tags".to_string(), IndexKindSpec::Eq)];
//! assert!(matches!(plan(&filter, &indexes).unwrap(), IndexPlan::Eq { .. }));
//! ```
//!
//! Module map: [`compare`] (BSON order and equality), `path` (dotted paths
//! with array semantics), `filter` (parse and evaluate), `sort`, `project`,
//! `update`, `plan`, [`aggregate`] (pipelines and expressions), [`limits`]
//! (nesting bounds) and [`QueryError`].
//!
//! # Differences from MongoDB
//!
//! Fluence follows the MongoDB server's code (match expressions, sort-key
//! generation, update semantics of 5.0+) except where listed here.
//!
//! **Operators not implemented** (rejected with
//! [`QueryError::UnsupportedOperator`], never silently ignored):
//! `$regex` (and regex literals as filter values, in `$in` or `$not`),
//! `$elemMatch`, `$size`, `$all`, `$mod`, bitwise and geo
//! operators, `$where`, `$expr`, `$jsonSchema`; projection operators
//! (`a.$`, `$slice`, `$elemMatch`, `$meta`) and computed projection fields;
//! positional update paths (`$`, `$[]`, `$[id]`); `$meta` sorts;
//! `$text` with `$caseSensitive: true` or `$diacriticSensitive: true`;
//! `$inc`/`$mul` where the stored value or the operand is a Decimal128 (the
//! bson crate has no decimal arithmetic; creating a missing field works).
//! Collations other than the simple (binary) one do not exist.
//!
//! **`$text`**:
//! - words come from the normaliser the caller passes in [`EvalContext`]
//!   (the one that built the text index), not from MongoDB's per-language
//!   stemmers and stop-word lists; `$language` is accepted and ignored;
//! - phrases match as a contiguous sequence of normalised words within one
//!   string, where MongoDB matches a case-insensitive substring (so
//!   `"coffee sh"` matches "coffee shop" in MongoDB, not here);
//! - there are no text scores; the text-indexed paths are the ones passed
//!   in, matched with ordinary path semantics (no `$**` wildcard index, no
//!   weights);
//! - `$text` may sit under `$or` next to unindexed clauses (MongoDB refuses
//!   to plan that); the plan then scans everything;
//! - with no text paths in the [`EvalContext`], `$text` matches nothing
//!   (planning reports the missing index, as MongoDB does).
//!
//! **Comparison**: Decimal128 values compare with doubles *exactly* (both
//! expanded to decimal digits); MongoDB first rounds the double to 34
//! significant digits, which can differ for doubles with longer expansions.
//! `undefined` sorts just below `null` and `{a: null}` matches `undefined`
//! values, as in MongoDB up to 7.0 (8.0 stopped matching `undefined`).
//!
//! **Sorting** is stable (equal keys keep the node's order); MongoDB does
//! not guarantee any order among equal keys. `$push` with `$sort` is stable
//! too.
//!
//! **Updates**: error messages that print a document print its `_id` and
//! values in the bson crate's notation (`{_id: 1}`, strings quoted) and
//! shorten long values.
//!
//! **Limits**: filters may nest `$and`/`$or`/`$nor`/`$not` 100 deep and all
//! BSON inputs and update results 200 deep ([`limits`]).

pub mod aggregate;
mod bson_type;
pub mod compare;
mod distinct;
mod error;
mod filter;
pub mod limits;
mod number;
mod path;
mod plan;
mod project;
mod sort;
mod update;

#[cfg(test)]
mod proptests;

pub use compare::{compare_bson, documents_identical, equality_key, values_equal};
pub use distinct::Distinct;
pub use error::QueryError;
pub use filter::{eval, parse_filter, CompareOp, EvalContext, Expr, Filter, TextSearch, TypeSet};
pub use path::{index_values, FieldPath};
pub use plan::{plan, IndexKindSpec, IndexPlan};
pub use project::Projection;
pub use sort::{SortKey, SortSpec};
pub use update::{upsert_seed, Update, UpdatePipeline, UpdateSpec};
