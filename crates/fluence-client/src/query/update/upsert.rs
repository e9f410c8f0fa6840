//! The document an upsert starts from when nothing matches its filter.
//!
//! As in MongoDB, the seed holds the filter's equality conditions:
//! implicit equality and `$eq` at the top level or inside `$and` (and inside
//! a single-clause `$or`, which the server simplifies away), and `$in` with
//! one value. Dotted paths create sub-documents (numeric components become
//! field names, not array positions). Other conditions contribute nothing.
//! Two equalities on the same or overlapping paths are an error. `_id`, if
//! present, is moved to the front.

use bson::{Bson, Document};

use super::super::error::QueryError;
use super::super::filter::{parse_filter, CompareOp, Expr};
use super::super::path::FieldPath;
use super::apply::{write, Action};
use super::parse::is_prefix;

/// Builds the seed document of an upsert from its filter.
pub fn upsert_seed(filter: &Document) -> Result<Document, QueryError> {
    let parsed = parse_filter(filter)?;
    let mut equalities: Vec<(&FieldPath, &Bson)> = Vec::new();
    collect(parsed.expr(), &mut equalities);
    for (i, (a, _)) in equalities.iter().enumerate() {
        for (b, _) in &equalities[i + 1..] {
            if a.parts() == b.parts() {
                return Err(not_single_value(format!(
                    "cannot infer query fields to set, path '{}' is matched twice",
                    a.as_str()
                )));
            }
            if is_prefix(a.parts(), b.parts()) || is_prefix(b.parts(), a.parts()) {
                return Err(not_single_value(format!(
                    "cannot infer query fields to set, both paths '{}' and '{}' are matched",
                    b.as_str(),
                    a.as_str()
                )));
            }
        }
    }
    let mut seed = Document::new();
    for (path, value) in equalities {
        write(&mut seed, path.parts(), true, |_| {
            Ok(Action::Set(value.clone()))
        })?;
    }
    if let Some(id) = seed.remove("_id") {
        let mut ordered = Document::new();
        ordered.insert("_id", id);
        ordered.extend(seed);
        seed = ordered;
    }
    Ok(seed)
}

fn not_single_value(message: String) -> QueryError {
    // MongoDB's NotSingleValueField.
    QueryError::Location { code: 54, message }
}

fn collect<'a>(expr: &'a Expr, out: &mut Vec<(&'a FieldPath, &'a Bson)>) {
    match expr {
        Expr::Compare {
            path,
            op: CompareOp::Eq,
            value,
        } => out.push((path, value)),
        Expr::In { path, values } if values.len() == 1 => out.push((path, &values[0])),
        Expr::And(children) => children.iter().for_each(|c| collect(c, out)),
        Expr::Or(children) if children.len() == 1 => collect(&children[0], out),
        _ => {}
    }
}
