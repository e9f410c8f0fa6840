//! Update documents: parsing (`$set`, `$inc`, … or a replacement document),
//! applying them to a document, and building the document an upsert
//! inserts.
//!
//! Operators: `$set`, `$unset`, `$inc`, `$mul`, `$min`, `$max`,
//! `$setOnInsert`, `$rename`, `$currentDate`, `$bit`, `$push` (with
//! `$each`, `$position`, `$slice`, `$sort`), `$addToSet` (with `$each`),
//! `$pop`, `$pull` (value equality or a condition) and `$pullAll`.
//! Positional paths (`a.$`, `a.$[]`, `a.$[id]`) are rejected as
//! unsupported. Pipeline updates are [`UpdatePipeline`]; [`UpdateSpec`]
//! holds either kind.
//!
//! As in MongoDB 5.0+:
//!
//! - an update whose first field starts with `$` is an operator update and
//!   every top-level field must be a known operator; otherwise it is a
//!   replacement document, which may not contain `$`-prefixed top-level
//!   fields;
//! - two paths of one update may not overlap (`a` and `a.b`), across
//!   operators too; both the source and the target of a `$rename` count;
//! - fields are updated in lexicographic path order (numeric components in
//!   numeric order), which decides where new fields are appended;
//! - `_id` may not change; a replacement keeps the original `_id`;
//! - a document counts as modified only if its bytes change (setting `1`
//!   over `1.0` modifies, setting `1` over `1` does not).
//!
//! Applying is atomic: on error the document is left untouched.

mod apply;
mod arith;
mod parse;
mod pipeline;
mod upsert;

pub use pipeline::{UpdatePipeline, UpdateSpec};
pub use upsert::upsert_seed;

use bson::{Bson, Document};

use super::compare::identical;
use super::error::QueryError;
use super::filter::Filter;
use super::limits::check_depth;
use super::path::FieldPath;

/// A parsed update.
#[derive(Debug, Clone, PartialEq)]
pub struct Update {
    kind: Kind,
}

#[derive(Debug, Clone, PartialEq)]
enum Kind {
    Replacement(Document),
    /// Operations sorted in application order.
    Operators(Vec<FieldOp>),
}

/// One operator applied to one path.
#[derive(Debug, Clone, PartialEq)]
struct FieldOp {
    path: FieldPath,
    op: Op,
}

#[derive(Debug, Clone, PartialEq)]
enum Op {
    Set(Bson),
    SetOnInsert(Bson),
    Unset,
    Inc(Bson),
    Mul(Bson),
    Min(Bson),
    Max(Bson),
    Push(PushSpec),
    AddToSet(Vec<Bson>),
    /// `true` removes the first element (`$pop: -1`), `false` the last.
    Pop {
        first: bool,
    },
    Pull(PullMatcher),
    PullAll(Vec<Bson>),
    /// Move the value at `from` to this op's path.
    Rename {
        from: FieldPath,
    },
    /// The current time as a Date, or as a Timestamp when `timestamp`.
    CurrentDate {
        timestamp: bool,
    },
    /// Bitwise operations applied in order; operands are Int32 or Int64.
    Bit(Vec<(BitOp, Bson)>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BitOp {
    And,
    Or,
    Xor,
}

#[derive(Debug, Clone, PartialEq)]
struct PushSpec {
    values: Vec<Bson>,
    position: Option<i64>,
    slice: Option<i64>,
    sort: Option<PushSort>,
}

#[derive(Debug, Clone, PartialEq)]
enum PushSort {
    /// Sort elements as whole values; `true` for descending.
    Whole(bool),
    /// Sort by fields of the elements: (path, descending).
    Fields(Vec<(FieldPath, bool)>),
}

#[derive(Debug, Clone, PartialEq)]
enum PullMatcher {
    /// Remove elements equal to this value.
    Equality(Bson),
    /// Remove document elements matching this filter (`{$pull: {a: {b: 1}}}`).
    Object(Filter),
    /// Remove elements matching operator conditions (`{$pull: {a: {$gt: 1}}}`),
    /// evaluated on `{"": element}`.
    Value(Filter),
}

impl Update {
    /// Parses an update document.
    pub fn parse(update: &Document) -> Result<Update, QueryError> {
        parse::parse_update(update)
    }

    /// True for a replacement document, false for an operator update.
    pub fn is_replacement(&self) -> bool {
        matches!(self.kind, Kind::Replacement(_))
    }

    /// Applies the update to an existing document; returns whether the
    /// document changed. `$setOnInsert` is ignored.
    pub fn apply(&self, doc: &mut Document) -> Result<bool, QueryError> {
        self.apply_with(doc, false)
    }

    /// The document an upsert inserts when nothing matched `filter`: the
    /// filter's equalities (see [`upsert_seed`]), then the update applied
    /// with `$setOnInsert` in effect (or, for a replacement, the replacement
    /// with the filter's `_id`). The caller adds a fresh `_id` if the result
    /// has none.
    pub fn apply_upsert(&self, filter: &Document) -> Result<Document, QueryError> {
        let mut doc = upsert_seed(filter)?;
        self.apply_with(&mut doc, true)?;
        Ok(doc)
    }

    fn apply_with(&self, doc: &mut Document, inserting: bool) -> Result<bool, QueryError> {
        let original_id = doc.get("_id").cloned();
        let updated = match &self.kind {
            Kind::Replacement(replacement) => replace(replacement, original_id.as_ref())?,
            Kind::Operators(ops) => {
                let mut work = doc.clone();
                for field_op in ops {
                    apply::apply_op(&mut work, field_op, inserting)?;
                }
                if let Some(id) = &original_id {
                    if !work.get("_id").is_some_and(|now| identical(now, id)) {
                        return Err(QueryError::ImmutableField {
                            message: "Performing an update on the path '_id' would modify the \
                                      immutable field '_id'"
                                .to_string(),
                        });
                    }
                }
                work
            }
        };
        check_depth(&updated)?;
        let changed = !super::compare::documents_identical(doc, &updated);
        *doc = updated;
        Ok(changed)
    }
}

/// The replacement with the original `_id` first.
fn replace(replacement: &Document, original_id: Option<&Bson>) -> Result<Document, QueryError> {
    let mut out = Document::new();
    match (original_id, replacement.get("_id")) {
        (Some(id), Some(new_id)) if !identical(id, new_id) => {
            return Err(QueryError::ImmutableField {
                message: format!(
                    "After applying the update, the (immutable) field '_id' was found to have \
                     been altered to _id: {new_id}"
                ),
            })
        }
        (Some(id), _) | (None, Some(id)) => {
            out.insert("_id", id.clone());
        }
        (None, None) => {}
    }
    for (key, value) in replacement {
        if key != "_id" {
            out.insert(key.clone(), value.clone());
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
