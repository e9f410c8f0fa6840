//! Dotted paths and the values a path reaches in a document, with MongoDB's
//! array semantics for matching.
//!
//! For a path such as `a.b.c`, MongoDB does not look up one value: it walks
//! the document and produces every *candidate* a predicate is tried against
//! (a document matches when any candidate does). The rules, ported from the
//! server's `BSONElementIterator`:
//!
//! - Sub-documents are entered field by field.
//! - A missing field, or a scalar where the path continues, produces one
//!   *missing* candidate (this is why `{a: null}` matches documents without
//!   `a`, and `{"a.b": null}` matches `{a: 5}`).
//! - An array at the end of the path produces each element, then the array
//!   itself (`{a: 1}` and `{a: [1, 2]}` both match `[1, 2]`). Elements that
//!   are themselves arrays are not expanded further.
//! - An array in the middle of the path continues the rest of the path in
//!   every element that is a document. If the next component is a canonical
//!   array index (`0`, `1`, … without leading zeros) the element at that
//!   position is *also* followed: the rest of the path is applied to it, or,
//!   if the index was the last component, the element is produced as it is.
//!   Scalars inside such an array produce nothing (not even *missing*), and
//!   nested arrays are entered only through an explicit index.
//!
//! [`index_values`] is the set of values an index on a path must hold for a
//! document: exactly the non-missing candidates, so any predicate the planner
//! turns into an index lookup is satisfied by some indexed value whenever the
//! evaluator says the document matches.

use std::cmp::Ordering;
use std::ops::ControlFlow;

use bson::{Bson, Document};

use super::compare::{compare_bson, identical};
use super::error::QueryError;

/// A dotted field path, split into its components once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldPath {
    dotted: String,
    parts: Vec<String>,
}

impl FieldPath {
    /// Splits `dotted` at every `.`; empty components are kept (they can
    /// only ever match fields with empty names).
    pub fn new(dotted: &str) -> FieldPath {
        FieldPath {
            dotted: dotted.to_string(),
            parts: dotted.split('.').map(str::to_string).collect(),
        }
    }

    /// The path as written.
    pub fn as_str(&self) -> &str {
        &self.dotted
    }

    /// The components of the path.
    pub fn parts(&self) -> &[String] {
        &self.parts
    }
}

/// Checks a path used as a sort key or projection field with MongoDB's
/// `FieldPath` rules: non-empty, no empty component, no `$` prefix.
pub(crate) fn validate_field_path(path: &str) -> Result<(), QueryError> {
    if path.is_empty() {
        return Err(QueryError::Location {
            code: 40352,
            message: "FieldPath cannot be constructed with empty string".to_string(),
        });
    }
    for part in path.split('.') {
        if part.is_empty() {
            return Err(QueryError::Location {
                code: 15998,
                message: "FieldPath field names may not be empty strings.".to_string(),
            });
        }
        if part.starts_with('$') {
            return Err(QueryError::Location {
                code: 16410,
                message: format!(
                    "FieldPath field names may not start with '$'. Consider using $getField or \
                     $setField. (in path '{path}')"
                ),
            });
        }
    }
    Ok(())
}

/// The array position named by a path component, if it is one: ASCII digits
/// in canonical form, so `"01"` is a field name, not position 1 (MongoDB
/// compares the component with the element's field name `"1"`).
pub(crate) fn array_offset(part: &str) -> Option<usize> {
    if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if part.len() > 1 && part.starts_with('0') {
        return None;
    }
    part.parse().ok()
}

/// Calls `f` with every candidate `parts` reaches in `doc` (`None` is the
/// missing candidate), stopping early when `f` breaks.
pub(crate) fn visit_candidates<'a, F>(
    doc: &'a Document,
    parts: &[String],
    f: &mut F,
) -> ControlFlow<()>
where
    F: FnMut(Option<&'a Bson>) -> ControlFlow<()>,
{
    if parts.is_empty() {
        return ControlFlow::Continue(());
    }
    let mut current = doc;
    let mut index = 0;
    loop {
        let last = index + 1 == parts.len();
        match current.get(&parts[index]) {
            None => return f(None),
            Some(value @ Bson::Array(items)) => {
                return visit_array(value, items, &parts[index + 1..], f);
            }
            Some(value) if last => return f(Some(value)),
            Some(Bson::Document(sub)) => {
                current = sub;
                index += 1;
            }
            // A scalar where the path continues: MongoDB yields "missing".
            Some(_) => return f(None),
        }
    }
}

fn visit_array<'a, F>(
    array: &'a Bson,
    items: &'a [Bson],
    rest: &[String],
    f: &mut F,
) -> ControlFlow<()>
where
    F: FnMut(Option<&'a Bson>) -> ControlFlow<()>,
{
    if rest.is_empty() {
        for item in items {
            f(Some(item))?;
        }
        return f(Some(array));
    }
    let offset = array_offset(&rest[0]);
    for (position, item) in items.iter().enumerate() {
        let at_offset = offset == Some(position);
        match item {
            Bson::Document(sub) => {
                visit_candidates(sub, rest, f)?;
                if at_offset {
                    if rest.len() == 1 {
                        f(Some(item))?;
                    } else {
                        visit_candidates(sub, &rest[1..], f)?;
                    }
                }
            }
            _ if at_offset => {
                if rest.len() == 1 {
                    f(Some(item))?;
                } else if let Bson::Array(inner) = item {
                    visit_array(item, inner, &rest[1..], f)?;
                }
            }
            _ => {}
        }
    }
    ControlFlow::Continue(())
}

/// True if `pred` holds for any candidate `parts` reaches in `doc`.
pub(crate) fn any_candidate<F>(doc: &Document, parts: &[String], mut pred: F) -> bool
where
    F: FnMut(Option<&Bson>) -> bool,
{
    let mut found = false;
    let _ = visit_candidates(doc, parts, &mut |candidate| {
        if pred(candidate) {
            found = true;
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    });
    found
}

/// Every value an index on `path` must hold for `doc` so that index lookups
/// derived from a filter never miss a matching document: each array element
/// and each whole array along MongoDB's matching rules, sub-documents as whole
/// values; nothing for a missing field. Sorted by [`compare_bson`], without
/// exact duplicates.
pub fn index_values(doc: &Document, path: &str) -> Vec<Bson> {
    let path = FieldPath::new(path);
    let mut values: Vec<&Bson> = Vec::new();
    let _ = visit_candidates(doc, path.parts(), &mut |candidate| {
        if let Some(value) = candidate {
            values.push(value);
        }
        ControlFlow::Continue(())
    });
    values.sort_by(|a, b| compare_bson(a, b));
    // Drop exact duplicates; values that only compare equal (1 and 1.0) are
    // kept because an index layer may encode types separately.
    let mut out: Vec<Bson> = Vec::with_capacity(values.len());
    let mut run_start = 0;
    for value in values {
        if out
            .last()
            .is_some_and(|last| compare_bson(last, value) != Ordering::Equal)
        {
            run_start = out.len();
        }
        if !out[run_start..].iter().any(|seen| identical(seen, value)) {
            out.push(value.clone());
        }
    }
    out
}

/// The strings among the candidates of `path`: what a text index on `path`
/// tokenizes.
pub(crate) fn text_values<'a>(doc: &'a Document, path: &FieldPath) -> Vec<&'a str> {
    let mut out = Vec::new();
    let _ = visit_candidates(doc, path.parts(), &mut |candidate| {
        if let Some(Bson::String(s)) = candidate {
            out.push(s.as_str());
        }
        ControlFlow::Continue(())
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::{bson, doc};

    fn candidates(doc: &Document, path: &str) -> Vec<Option<Bson>> {
        let path = FieldPath::new(path);
        let mut out = Vec::new();
        let _ = visit_candidates(doc, path.parts(), &mut |c| {
            out.push(c.cloned());
            ControlFlow::Continue(())
        });
        out
    }

    fn some(v: Bson) -> Option<Bson> {
        Some(v)
    }

    #[test]
    fn plain_fields_and_subdocuments() {
        let d = doc! {"a": {"b": 1}};
        assert_eq!(candidates(&d, "a.b"), vec![some(bson!(1))]);
        assert_eq!(candidates(&d, "a"), vec![some(bson!({"b": 1}))]);
        assert_eq!(candidates(&d, "x"), vec![None]);
        assert_eq!(candidates(&d, "a.c"), vec![None]);
        // A scalar where the path continues is "missing".
        assert_eq!(candidates(&doc! {"a": 5}, "a.b"), vec![None]);
    }

    #[test]
    fn leaf_arrays_yield_elements_then_the_array() {
        let d = doc! {"a": [1, [2, 3]]};
        assert_eq!(
            candidates(&d, "a"),
            vec![
                some(bson!(1)),
                some(bson!([2, 3])),
                some(bson!([1, [2, 3]]))
            ]
        );
        assert_eq!(candidates(&doc! {"a": []}, "a"), vec![some(bson!([]))]);
    }

    #[test]
    fn arrays_of_documents_are_traversed() {
        let d = doc! {"a": [{"b": 1}, {"c": 2}, 7, {"b": [3]}]};
        assert_eq!(
            candidates(&d, "a.b"),
            vec![some(bson!(1)), None, some(bson!(3)), some(bson!([3]))]
        );
        // Scalars in a non-leaf array yield nothing at all.
        assert!(candidates(&doc! {"a": [1, 2]}, "a.b").is_empty());
        // Nested arrays are not entered implicitly.
        assert!(candidates(&doc! {"a": [[{"b": 1}]]}, "a.b").is_empty());
    }

    #[test]
    fn numeric_components_are_positions_and_field_names() {
        let d = doc! {"a": [10, [20, 21]]};
        assert_eq!(candidates(&d, "a.0"), vec![some(bson!(10))]);
        // The element at a position is produced as is, not expanded.
        assert_eq!(candidates(&d, "a.1"), vec![some(bson!([20, 21]))]);
        assert_eq!(candidates(&d, "a.1.0"), vec![some(bson!(20))]);
        assert!(candidates(&d, "a.5").is_empty());
        // "01" is a field name, never position 1.
        assert!(candidates(&d, "a.01").is_empty());

        // A document element is searched for a field named like the position
        // (missing here) and is also the element at that position.
        let d = doc! {"a": [{"b": 1}]};
        assert_eq!(candidates(&d, "a.0"), vec![None, some(bson!({"b": 1}))]);
        assert_eq!(candidates(&d, "a.0.b"), vec![None, some(bson!(1))]);
        let d = doc! {"a": [{"0": 5}]};
        assert_eq!(
            candidates(&d, "a.0"),
            vec![some(bson!(5)), some(bson!({"0": 5}))]
        );
    }

    #[test]
    fn index_values_are_sorted_and_skip_missing() {
        let d = doc! {"a": [{"b": 2}, {"b": [1, 2]}, {"c": 0}]};
        assert_eq!(
            index_values(&d, "a.b"),
            vec![bson!(1), bson!(2), bson!([1, 2])]
        );
        assert!(index_values(&d, "zz").is_empty());
        assert_eq!(
            index_values(&doc! {"a": [1, 1.0]}, "a"),
            vec![bson!(1), bson!(1.0), bson!([1, 1.0])]
        );
    }

    #[test]
    fn field_path_validation() {
        assert!(validate_field_path("a.b").is_ok());
        assert_eq!(validate_field_path("").unwrap_err().code(), 40352);
        assert_eq!(validate_field_path("a..b").unwrap_err().code(), 15998);
        assert_eq!(validate_field_path("a.$b").unwrap_err().code(), 16410);
    }

    #[test]
    fn array_offsets_are_canonical() {
        assert_eq!(array_offset("0"), Some(0));
        assert_eq!(array_offset("12"), Some(12));
        assert_eq!(array_offset("012"), None);
        assert_eq!(array_offset(""), None);
        assert_eq!(array_offset("1a"), None);
        assert_eq!(array_offset("99999999999999999999999"), None);
    }
}
