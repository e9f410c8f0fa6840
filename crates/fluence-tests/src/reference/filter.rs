//! Query filters: parsing and evaluation.
//!
//! Supported: implicit equality, `$eq $ne $gt $gte $lt $lte $in $nin $exists
//! $not` on fields, `$and $or $nor $text` at the top level of a filter or of a
//! `$and/$or/$nor` clause. Anything else (`$regex`, `$elemMatch`, `$size`,
//! `$type`, `$expr`, regular-expression values, ...) is an error, never a
//! silent mismatch.
//!
//! References:
//! - comparison operators: <https://www.mongodb.com/docs/manual/reference/operator/query-comparison/>
//! - null and missing: <https://www.mongodb.com/docs/manual/tutorial/query-for-null-fields/>
//! - `$ne`: "selects the documents where the value of the field is not equal
//!   to the specified value. This includes documents that do not contain the
//!   field." (<https://www.mongodb.com/docs/manual/reference/operator/query/ne/>)
//! - `$nin`: same for "not in" (<https://www.mongodb.com/docs/manual/reference/operator/query/nin/>)
//! - `$not`: "selects the documents that do not match the operator expression.
//!   This includes documents that do not contain the field."
//!   (<https://www.mongodb.com/docs/manual/reference/operator/query/not/>)
//! - `$nor`: "selects the documents that fail all the query expressions"
//!   (<https://www.mongodb.com/docs/manual/reference/operator/query/nor/>)
//! - type bracketing: "For most data types, comparison operators only perform
//!   comparisons on fields where the BSON type matches the query value's type."
//!   (<https://www.mongodb.com/docs/manual/reference/method/db.collection.find/#type-bracketing>)

use std::cmp::Ordering;

use bson::{Bson, Document};

use super::compare::{compare_values, is_nan, type_rank, MISSING_RANK};
use super::path::query_values;

/// A parsed filter.
#[derive(Clone, Debug)]
pub(crate) enum Expr {
    /// All must match. The empty filter `{}` is `And([])`, which matches.
    And(Vec<Expr>),
    /// At least one must match.
    Or(Vec<Expr>),
    /// None may match.
    Nor(Vec<Expr>),
    /// `$ne`, `$nin`, `$not` and `$exists: false` are negations.
    Not(Box<Expr>),
    /// `$eq $gt $gte $lt $lte` (and implicit equality).
    Compare {
        path: String,
        op: CompareOp,
        operand: Bson,
    },
    /// `$in`.
    In { path: String, operands: Vec<Bson> },
    /// `$exists: true`.
    Exists { path: String },
    /// `$text: {$search: ...}`, split into wanted words and, for terms
    /// written `-word`, excluded words.
    Text {
        words: Vec<String>,
        excluded: Vec<String>,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CompareOp {
    Eq,
    Gt,
    Gte,
    Lt,
    Lte,
}

/// Does `filter` match `doc`?
///
/// `text_paths` are the fields covered by the collection's text index: `$text`
/// looks for its words in the strings at those paths. A filter using `$text`
/// with no text paths is an error (MongoDB: "text index required").
///
/// The filter is fully parsed before it is evaluated, so a malformed filter is
/// an error for every document, whatever short-circuiting would have done.
pub fn matches(filter: &Document, doc: &Document, text_paths: &[&str]) -> Result<bool, String> {
    let expr = parse_filter(filter, text_paths)?;
    Ok(eval(&expr, doc, text_paths))
}

/// Parses a filter and checks it can be evaluated with these text paths.
pub(crate) fn parse_filter(filter: &Document, text_paths: &[&str]) -> Result<Expr, String> {
    let expr = parse_clauses(filter)?;
    if uses_text(&expr) && text_paths.is_empty() {
        return Err("$text needs a text index: no text paths were given".to_string());
    }
    Ok(expr)
}

/// Checks a filter is well formed, whatever text index there is.
pub(crate) fn check_filter_syntax(filter: &Document) -> Result<(), String> {
    parse_clauses(filter).map(|_| ())
}

fn uses_text(expr: &Expr) -> bool {
    match expr {
        Expr::And(children) | Expr::Or(children) | Expr::Nor(children) => {
            children.iter().any(uses_text)
        }
        Expr::Not(child) => uses_text(child),
        Expr::Text { .. } => true,
        _ => false,
    }
}

// ---------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------

/// A filter document: its fields are implicitly ANDed.
fn parse_clauses(filter: &Document) -> Result<Expr, String> {
    let mut clauses = Vec::new();
    for (key, value) in filter {
        let clause = match key.as_str() {
            "$and" => Expr::And(parse_clause_list(key, value)?),
            "$or" => Expr::Or(parse_clause_list(key, value)?),
            "$nor" => Expr::Nor(parse_clause_list(key, value)?),
            "$text" => parse_text(value)?,
            other if other.starts_with('$') => {
                return Err(format!("unknown top level operator: {other}"))
            }
            path => parse_field_condition(path, value)?,
        };
        clauses.push(clause);
    }
    Ok(Expr::And(clauses))
}

/// `$and`, `$or` and `$nor` take a non-empty array of filter documents.
fn parse_clause_list(operator: &str, value: &Bson) -> Result<Vec<Expr>, String> {
    let Bson::Array(items) = value else {
        return Err(format!("{operator} must be an array"));
    };
    if items.is_empty() {
        return Err(format!("{operator} must be a nonempty array"));
    }
    items
        .iter()
        .map(|item| match item {
            Bson::Document(clause) => parse_clauses(clause),
            _ => Err(format!("{operator} argument's entries must be objects")),
        })
        .collect()
}

/// `$text: {$search: "words"}`. Only `$search` is accepted.
fn parse_text(value: &Bson) -> Result<Expr, String> {
    let Bson::Document(spec) = value else {
        return Err("$text expects an object".to_string());
    };
    let mut search = None;
    for (key, value) in spec {
        match (key.as_str(), value) {
            ("$search", Bson::String(s)) => search = Some(s.clone()),
            ("$search", _) => return Err("$search must be a string".to_string()),
            (other, _) => {
                return Err(format!(
                    "unsupported $text option {other} (only $search is)"
                ))
            }
        }
    }
    let search = search.ok_or("$text needs $search")?;
    // MongoDB: a term preceded by whitespace and a hyphen is negated; a
    // hyphen inside a term only separates words.
    let (mut words, mut excluded) = (Vec::new(), Vec::new());
    for term in search.split_whitespace() {
        match term.strip_prefix('-') {
            Some(negated) => excluded.extend(text_words(negated)),
            None => words.extend(text_words(term)),
        }
    }
    Ok(Expr::Text { words, excluded })
}

/// The condition on one field: `{path: value}`.
///
/// A document whose first key starts with `$` is a set of operators (all its
/// keys must then be operators); any other value, documents included, is an
/// exact-equality match.
fn parse_field_condition(path: &str, value: &Bson) -> Result<Expr, String> {
    match value {
        Bson::Document(ops) if first_key_is_operator(ops) => parse_operators(path, ops),
        Bson::RegularExpression(_) => {
            Err("regular-expression matching is not supported by the reference evaluator".into())
        }
        _ => compare_expr(path, CompareOp::Eq, value),
    }
}

pub(crate) fn first_key_is_operator(doc: &Document) -> bool {
    doc.keys().next().is_some_and(|key| key.starts_with('$'))
}

/// `{$gt: 1, $lt: 5, ...}` on a field: all must hold.
fn parse_operators(path: &str, ops: &Document) -> Result<Expr, String> {
    let mut parts = Vec::new();
    for (op, operand) in ops {
        let part = match op.as_str() {
            "$eq" => compare_expr(path, CompareOp::Eq, operand)?,
            "$gt" => compare_expr(path, CompareOp::Gt, operand)?,
            "$gte" => compare_expr(path, CompareOp::Gte, operand)?,
            "$lt" => compare_expr(path, CompareOp::Lt, operand)?,
            "$lte" => compare_expr(path, CompareOp::Lte, operand)?,
            "$ne" => Expr::Not(Box::new(compare_expr(path, CompareOp::Eq, operand)?)),
            "$in" => in_expr(path, "$in", operand)?,
            "$nin" => Expr::Not(Box::new(in_expr(path, "$nin", operand)?)),
            "$exists" => {
                let exists = Expr::Exists {
                    path: path.to_string(),
                };
                if truthy(operand) {
                    exists
                } else {
                    Expr::Not(Box::new(exists))
                }
            }
            "$not" => match operand {
                Bson::Document(inner) if inner.is_empty() => {
                    return Err("$not cannot be empty".to_string())
                }
                Bson::Document(inner) => Expr::Not(Box::new(parse_operators(path, inner)?)),
                Bson::RegularExpression(_) => {
                    return Err("$not with a regular expression is not supported".to_string())
                }
                _ => return Err("$not needs a regex or a document".to_string()),
            },
            other => return Err(format!("unknown operator: {other}")),
        };
        parts.push(part);
    }
    Ok(if parts.len() == 1 {
        parts.pop().expect("one part")
    } else {
        Expr::And(parts)
    })
}

fn compare_expr(path: &str, op: CompareOp, operand: &Bson) -> Result<Expr, String> {
    if matches!(operand, Bson::Undefined) {
        return Err("cannot compare to undefined".to_string());
    }
    if op != CompareOp::Eq && matches!(operand, Bson::RegularExpression(_)) {
        return Err("cannot use a regular expression with a range operator".to_string());
    }
    Ok(Expr::Compare {
        path: path.to_string(),
        op,
        operand: operand.clone(),
    })
}

fn in_expr(path: &str, operator: &str, operand: &Bson) -> Result<Expr, String> {
    let Bson::Array(items) = operand else {
        return Err(format!("{operator} needs an array"));
    };
    for item in items {
        match item {
            Bson::Undefined => return Err(format!("{operator} cannot contain undefined")),
            Bson::RegularExpression(_) => {
                return Err(format!(
                    "regular expressions in {operator} are not supported"
                ))
            }
            Bson::Document(d) if first_key_is_operator(d) => {
                return Err(format!("cannot nest $ under {operator}"))
            }
            _ => {}
        }
    }
    Ok(Expr::In {
        path: path.to_string(),
        operands: items.clone(),
    })
}

/// BSON "truthiness" as `$exists` reads its argument: false, 0, null and
/// undefined are false; everything else is true.
fn truthy(value: &Bson) -> bool {
    match value {
        Bson::Boolean(b) => *b,
        Bson::Int32(i) => *i != 0,
        Bson::Int64(i) => *i != 0,
        Bson::Double(f) => *f != 0.0,
        Bson::Null | Bson::Undefined => false,
        _ => true,
    }
}

// ---------------------------------------------------------------------------
// Evaluation
// ---------------------------------------------------------------------------

pub(crate) fn eval(expr: &Expr, doc: &Document, text_paths: &[&str]) -> bool {
    match expr {
        Expr::And(children) => children.iter().all(|c| eval(c, doc, text_paths)),
        Expr::Or(children) => children.iter().any(|c| eval(c, doc, text_paths)),
        Expr::Nor(children) => !children.iter().any(|c| eval(c, doc, text_paths)),
        Expr::Not(child) => !eval(child, doc, text_paths),
        Expr::Compare { path, op, operand } => query_values(doc, path)
            .iter()
            .any(|value| compare_matches(*op, value.as_ref(), operand)),
        Expr::In { path, operands } => query_values(doc, path)
            .iter()
            .any(|value| in_matches(value.as_ref(), operands)),
        Expr::Exists { path } => query_values(doc, path).iter().any(Option::is_some),
        Expr::Text { words, excluded } => text_matches(doc, words, excluded, text_paths),
    }
}

/// Null, undefined and missing are the three "null-ish" values.
fn is_nullish(value: Option<&Bson>) -> bool {
    matches!(value, None | Some(Bson::Null) | Some(Bson::Undefined))
}

/// One comparison against one reached value (`None` = missing).
///
/// Follows the server's `ComparisonMatchExpression::matchesSingleElement`:
/// 1. Values of different type ranks never match (type bracketing), except:
///    - null against missing/undefined counts as equal, so `$eq: null`,
///      `$gte: null` and `$lte: null` match a missing field (and `$gt: null`,
///      `$lt: null` do not);
///    - a MinKey operand is below everything and a MaxKey operand above
///      everything (`{$gt: MinKey}` matches any value, even a missing one).
/// 2. NaN: equal to NaN; for `$gt/$lt` never matches; for `$gte/$lte`
///    matches only NaN against NaN. (NaN sorts below all numbers, but range
///    queries do not follow that order for NaN.)
/// 3. Otherwise [`compare_values`] decides.
fn compare_matches(op: CompareOp, value: Option<&Bson>, operand: &Bson) -> bool {
    let value_rank = value.map(type_rank).unwrap_or(MISSING_RANK);
    let operand_rank = type_rank(operand);
    if value_rank != operand_rank {
        if is_nullish(value) && is_nullish(Some(operand)) {
            return matches!(op, CompareOp::Eq | CompareOp::Gte | CompareOp::Lte);
        }
        return match operand {
            Bson::MaxKey => matches!(op, CompareOp::Lt | CompareOp::Lte),
            Bson::MinKey => matches!(op, CompareOp::Gt | CompareOp::Gte),
            _ => false,
        };
    }
    // Same rank. A missing value has the rank of undefined, which is never an
    // operand (rejected when parsing), so `value` is present here.
    let Some(value) = value else {
        return false;
    };
    if op != CompareOp::Eq && (is_nan(value) || is_nan(operand)) {
        let both_nan = is_nan(value) && is_nan(operand);
        return match op {
            CompareOp::Gt | CompareOp::Lt => false,
            _ => both_nan,
        };
    }
    let order = compare_values(value, operand);
    match op {
        CompareOp::Eq => order == Ordering::Equal,
        CompareOp::Gt => order == Ordering::Greater,
        CompareOp::Gte => order != Ordering::Less,
        CompareOp::Lt => order == Ordering::Less,
        CompareOp::Lte => order != Ordering::Greater,
    }
}

/// `$in`: the value equals one of the operands. "If the field holds an array,
/// then the $in operator selects the documents whose field holds an array that
/// contains at least one element that matches a value in the specified array"
/// (that is the element-wise traversal in `query_values`). A null operand
/// also matches missing and undefined, like `$eq: null`.
fn in_matches(value: Option<&Bson>, operands: &[Bson]) -> bool {
    let has_null = operands.iter().any(|o| matches!(o, Bson::Null));
    match value {
        None | Some(Bson::Undefined) if has_null => true,
        None => false,
        Some(value) => operands
            .iter()
            .any(|operand| compare_values(value, operand) == Ordering::Equal),
    }
}

/// The words of a text, as Fluence's `$text` defines them: lowercased, split
/// on every character that is not alphanumeric (Unicode), empty pieces
/// dropped. `"Cherry-red PIE!"` -> `["cherry", "red", "pie"]`.
///
/// (This is simpler than MongoDB's text search: no stemming, no stop words,
/// no phrases; negated terms are handled by the `$text` parser.)
pub fn text_words(text: &str) -> Vec<String> {
    text.to_lowercase()
        .split(|c: char| !c.is_alphanumeric())
        .filter(|word| !word.is_empty())
        .map(str::to_string)
        .collect()
}

/// `$text`: some search word is among the words of some string reached by
/// some text path (strings inside arrays included: the traversal yields
/// array elements), and no excluded word is.
fn text_matches(
    doc: &Document,
    search_words: &[String],
    excluded: &[String],
    text_paths: &[&str],
) -> bool {
    let mut doc_words = Vec::new();
    for path in text_paths {
        for value in query_values(doc, path).into_iter().flatten() {
            if let Bson::String(s) = value {
                doc_words.extend(text_words(&s));
            }
        }
    }
    search_words.iter().any(|word| doc_words.contains(word))
        && !excluded.iter().any(|word| doc_words.contains(word))
}
