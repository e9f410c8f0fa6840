//! Query filters: the parsed form ([`Filter`], [`Expr`]), the parser
//! ([`parse_filter`]) and the evaluator ([`eval`]).
//!
//! Supported: implicit equality, `$eq $ne $gt $gte $lt $lte $in $nin $exists
//! $type $not $and $or $nor $text $comment $alwaysTrue $alwaysFalse`. Other MongoDB
//! operators (`$regex`, `$elemMatch`, `$size`, `$all`, `$mod`,
//! `$where`, `$expr`, geo and bitwise operators, …) are rejected with
//! [`QueryError::UnsupportedOperator`](super::QueryError::UnsupportedOperator);
//! unknown `$` names with MongoDB's "unknown operator" errors.
//!
//! The tree mirrors MongoDB's match expressions: `$ne` is `Not(Eq)`, `$nin`
//! is `Not(In)`, `$exists: false` is `Not(Exists)`, and `{a: {$not: {...}}}`
//! is `Not(And(...))` over the same path. Evaluation semantics are MongoDB's
//! exactly (see [`eval`] and [`super::path`]).

mod eval;
mod parse;
mod text;

pub use eval::{eval, EvalContext};
pub(crate) use parse::is_path_operator;
pub use parse::parse_filter;
pub use text::TextSearch;

use bson::Bson;

use super::path::FieldPath;

/// A parsed filter, ready to evaluate against documents and to plan.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    root: Expr,
}

impl Filter {
    pub(crate) fn new(root: Expr) -> Filter {
        Filter { root }
    }

    /// The filter's expression tree.
    pub fn expr(&self) -> &Expr {
        &self.root
    }

    /// The `$text` search of the filter, if it has one (MongoDB allows at
    /// most one per query).
    pub fn text_search(&self) -> Option<&TextSearch> {
        fn find(expr: &Expr) -> Option<&TextSearch> {
            match expr {
                Expr::Text(t) => Some(t),
                Expr::And(children) | Expr::Or(children) | Expr::Nor(children) => {
                    children.iter().find_map(find)
                }
                Expr::Not(child) => find(child),
                _ => None,
            }
        }
        find(&self.root)
    }
}

/// A comparison operator of a leaf predicate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    Eq,
    Gt,
    Gte,
    Lt,
    Lte,
}

impl CompareOp {
    /// The MongoDB operator name.
    pub fn name(self) -> &'static str {
        match self {
            CompareOp::Eq => "$eq",
            CompareOp::Gt => "$gt",
            CompareOp::Gte => "$gte",
            CompareOp::Lt => "$lt",
            CompareOp::Lte => "$lte",
        }
    }
}

/// What one `$type` operand names: a BSON type by its number, or the
/// alias `"number"` for every numeric type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TypeSet {
    /// A BSON element type number (1 double, 2 string, …, -1 minKey, 127
    /// maxKey).
    Code(i32),
    Number,
}

/// A node of a parsed filter.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// All children match (an empty `And` matches everything).
    And(Vec<Expr>),
    /// Any child matches.
    Or(Vec<Expr>),
    /// No child matches.
    Nor(Vec<Expr>),
    /// The child does not match (from `$ne`, `$nin`, `$exists: false`,
    /// `$not`).
    Not(Box<Expr>),
    /// Some candidate of `path` compares to `value` with `op`.
    Compare {
        path: FieldPath,
        op: CompareOp,
        value: Bson,
    },
    /// Some candidate of `path` equals one of `values` (a `null` among them
    /// also matches a missing field). The parser sorts `values` in BSON
    /// order.
    In { path: FieldPath, values: Vec<Bson> },
    /// `path` has some non-missing candidate.
    Exists { path: FieldPath },
    /// Some candidate of `path` has one of these BSON types (`$type`).
    Type {
        path: FieldPath,
        types: Vec<TypeSet>,
    },
    /// A `$text` search over the text-indexed paths.
    Text(TextSearch),
    /// `$alwaysTrue`.
    AlwaysTrue,
    /// `$alwaysFalse`.
    AlwaysFalse,
}
