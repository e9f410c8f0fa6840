//! Which values a query predicate sees at a dotted path.
//!
//! MongoDB evaluates a predicate on `a.b.c` against every value the path can
//! reach, and the predicate matches if it matches any of them
//! (<https://www.mongodb.com/docs/manual/tutorial/query-arrays/>,
//! <https://www.mongodb.com/docs/manual/tutorial/query-array-of-documents/>,
//! <https://www.mongodb.com/docs/manual/core/document/#dot-notation>). The
//! reachable values, as the server's matcher produces them
//! (`BSONElementIterator`, src/mongo/db/matcher/path.cpp):
//!
//! 1. Walk down through embedded documents. A missing field, or a scalar where
//!    a document was needed, gives one "missing" value.
//! 2. When the path ends at an array: every element (an element that is itself
//!    an array is *not* opened further), then the array itself. So `{a: 1}`
//!    matches `{a: [1, 2]}` and `{a: [1, 2]}` matches it too, but `{a: 1}` does
//!    not match `{a: [[1, 2]]}`. An empty array gives just itself.
//! 3. When an array is met with path left over, each element is looked at:
//!    - an embedded document: the whole remaining path is resolved inside it
//!      (rule 1 applies, so a document lacking the field gives "missing");
//!    - if the next path component is a number equal to the element's
//!      position (`a.1`), the element itself is taken (and, with more path
//!      left, resolved further: a document by rule 1, an array by rule 3);
//!      a document element at that position is tried both ways;
//!    - any other element (a scalar, or an array not picked by position)
//!      gives nothing at all: `{a: [1, 2]}` has *no* value at `a.b`, not even
//!      "missing", so `{"a.b": null}` does not match it (see the jstest
//!      `null_query_semantics.js`);
//!    - no "whole array" value is produced in this case.
//!
//! A predicate that is given no values at all does not match (so `$exists:
//! true` and `$eq: null` are both false on `{a: [1, 2]}` for `a.b`, and their
//! negations true).

use bson::{Array, Bson, Document};

/// One value reached by a path: `None` is "missing" (MongoDB's EOO element).
pub(crate) type Reached = Option<Bson>;

/// Splits a dotted path into its components. `"a.b.0"` -> `["a", "b", "0"]`.
pub(crate) fn split_path(path: &str) -> Vec<&str> {
    path.split('.').collect()
}

/// True for a path component that can address an array position: all ASCII
/// digits. (Position 1 is spelled "1"; "01" is never a position because it is
/// compared with the element's field name "1" as a string.)
pub(crate) fn is_array_index(component: &str) -> bool {
    !component.is_empty() && component.bytes().all(|b| b.is_ascii_digit())
}

/// The values a query on `path` is tested against in `doc` (see the module
/// documentation), with "missing" left out: what `$exists: true` sees.
pub fn values_at(doc: &Document, path: &str) -> Vec<Bson> {
    query_values(doc, path).into_iter().flatten().collect()
}

/// All values the path reaches in `doc`, for the query matcher.
pub(crate) fn query_values(doc: &Document, path: &str) -> Vec<Reached> {
    values_in_document(doc, &split_path(path))
}

/// Rule 1: walk down through documents until the path ends or an array is met.
fn values_in_document(doc: &Document, parts: &[&str]) -> Vec<Reached> {
    let (first, rest) = parts
        .split_first()
        .expect("a path has at least one component");
    match doc.get(*first) {
        None => vec![None],
        Some(Bson::Array(items)) => values_in_array(items, rest),
        Some(value) if rest.is_empty() => vec![Some(value.clone())],
        Some(Bson::Document(sub)) => values_in_document(sub, rest),
        // A scalar cannot have sub-fields: the path is missing here.
        Some(_) => vec![None],
    }
}

/// Rules 2 and 3: an array was reached and `rest` is what is left of the path.
fn values_in_array(items: &Array, rest: &[&str]) -> Vec<Reached> {
    let mut out = Vec::new();

    // Rule 2: the path ends at the array.
    if rest.is_empty() {
        out.extend(items.iter().map(|item| Some(item.clone())));
        out.push(Some(Bson::Array(items.clone())));
        return out;
    }

    // Rule 3: path left over.
    let next = rest[0];
    let after_next = &rest[1..];
    for (position, item) in items.iter().enumerate() {
        let picked_by_position = is_array_index(next) && next == position.to_string();

        if let Bson::Document(sub) = item {
            // The remaining path, `next` included, is looked up in the element.
            out.extend(values_in_document(sub, rest));
        }
        if picked_by_position {
            if after_next.is_empty() {
                // `a.1` ends at the element: the element itself, not opened
                // even if it is an array.
                out.push(Some(item.clone()));
            } else {
                match item {
                    Bson::Document(sub) => out.extend(values_in_document(sub, after_next)),
                    Bson::Array(inner) => out.extend(values_in_array(inner, after_next)),
                    // A scalar has no sub-fields: nothing.
                    _ => {}
                }
            }
        }
        // Any other element gives nothing.
    }
    out
}
