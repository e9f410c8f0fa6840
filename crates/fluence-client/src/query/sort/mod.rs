//! Sort specifications (`{field: 1 | -1, ...}`) and sorting documents in
//! MongoDB's order.
//!
//! Each document's sort key is computed as MongoDB does (see [`keys`]): the
//! smallest element of an array field for ascending order and the largest
//! for descending, `null` for a missing field, `undefined` (below `null`)
//! for an empty array. Keys compare with [`compare_bson`](super::compare_bson).
//! Sorting is stable: documents with equal keys keep their input order.

mod keys;

use std::cmp::Ordering;

use bson::{Bson, Document};

use super::error::QueryError;
use super::limits::{check_depth, SORT_FIELDS_MAX};
use super::path::validate_field_path;

/// A parsed sort specification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SortSpec {
    paths: Vec<String>,
    descending: Vec<bool>,
}

/// The sort key of one document: one value per sort field.
#[derive(Debug, Clone, PartialEq)]
pub struct SortKey(Vec<Bson>);

impl SortKey {
    /// The key's values, in sort-field order.
    pub fn values(&self) -> &[Bson] {
        &self.0
    }
}

impl SortSpec {
    /// Parses `{field: 1 | -1, ...}`. Directions may be any numeric type
    /// equal to 1 or -1, as in MongoDB.
    pub fn parse(spec: &Document) -> Result<SortSpec, QueryError> {
        check_depth(spec)?;
        if spec.len() > SORT_FIELDS_MAX {
            return Err(QueryError::bad_value(format!(
                "cannot sort with more than {SORT_FIELDS_MAX} fields"
            )));
        }
        let mut paths = Vec::with_capacity(spec.len());
        let mut descending = Vec::with_capacity(spec.len());
        for (path, direction) in spec {
            validate_field_path(path)?;
            let desc = match direction {
                Bson::Document(d) if d.contains_key("$meta") => {
                    return Err(QueryError::unsupported("$meta"))
                }
                _ if super::compare::values_equal(direction, &Bson::Int32(1))
                    && is_number(direction) =>
                {
                    false
                }
                _ if super::compare::values_equal(direction, &Bson::Int32(-1))
                    && is_number(direction) =>
                {
                    true
                }
                _ => {
                    return Err(QueryError::Location {
                        code: 15975,
                        message: "$sort key ordering must be 1 (for ascending) or -1 (for \
                                  descending)"
                            .to_string(),
                    })
                }
            };
            paths.push(path.clone());
            descending.push(desc);
        }
        Ok(SortSpec { paths, descending })
    }

    /// True for `{}`: no reordering.
    pub fn is_empty(&self) -> bool {
        self.paths.is_empty()
    }

    /// The sort key of `doc`. Fails only for MongoDB's sort-time errors
    /// (parallel arrays, ambiguous numeric field names).
    pub fn key(&self, doc: &Document) -> Result<SortKey, QueryError> {
        keys::KeyGenerator::min_key(doc, &self.paths, &self.descending).map(SortKey)
    }

    /// Orders two keys of this specification.
    pub fn compare_keys(&self, a: &SortKey, b: &SortKey) -> Ordering {
        keys::compare_keys(&a.0, &b.0, &self.descending)
    }

    /// Sorts `docs` in place (stable).
    pub fn sort(&self, docs: &mut Vec<Document>) -> Result<(), QueryError> {
        self.sort_by(docs, |d| d)
    }

    /// Sorts any items holding documents (stable), e.g. `(id, Document)`.
    pub fn sort_by<T, F>(&self, items: &mut Vec<T>, doc_of: F) -> Result<(), QueryError>
    where
        F: Fn(&T) -> &Document,
    {
        if self.is_empty() {
            return Ok(());
        }
        // Keys first, so an error leaves `items` untouched.
        let keys = items
            .iter()
            .map(|item| self.key(doc_of(item)))
            .collect::<Result<Vec<_>, _>>()?;
        let mut order: Vec<usize> = (0..items.len()).collect();
        order.sort_by(|&a, &b| self.compare_keys(&keys[a], &keys[b]));
        let mut slots: Vec<Option<T>> = items.drain(..).map(Some).collect();
        items.extend(order.into_iter().filter_map(|i| slots[i].take()));
        Ok(())
    }
}

fn is_number(value: &Bson) -> bool {
    matches!(
        value,
        Bson::Int32(_) | Bson::Int64(_) | Bson::Double(_) | Bson::Decimal128(_)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::doc;

    fn ids(docs: &[Document]) -> Vec<i32> {
        docs.iter().map(|d| d.get_i32("_id").unwrap()).collect()
    }

    fn sorted(spec: Document, docs: &[Document]) -> Vec<i32> {
        let mut docs = docs.to_vec();
        SortSpec::parse(&spec).unwrap().sort(&mut docs).unwrap();
        ids(&docs)
    }

    #[test]
    fn parse_accepts_numeric_directions_only() {
        assert!(SortSpec::parse(&doc! {"a": 1, "b": -1_i64, "c": 1.0}).is_ok());
        for bad in [
            doc! {"a": 2},
            doc! {"a": "asc"},
            doc! {"a": true},
            doc! {"a": 0},
        ] {
            assert_eq!(
                SortSpec::parse(&bad).unwrap_err().to_string(),
                "$sort key ordering must be 1 (for ascending) or -1 (for descending)"
            );
        }
        assert!(matches!(
            SortSpec::parse(&doc! {"s": {"$meta": "textScore"}}),
            Err(QueryError::UnsupportedOperator { .. })
        ));
        assert_eq!(SortSpec::parse(&doc! {"": 1}).unwrap_err().code(), 40352);
        assert_eq!(SortSpec::parse(&doc! {"$a": 1}).unwrap_err().code(), 16410);
        assert!(SortSpec::parse(&doc! {}).unwrap().is_empty());
    }

    #[test]
    fn mixed_types_sort_in_bson_order() {
        let docs = [
            doc! {"_id": 1, "v": "b"},
            doc! {"_id": 2, "v": 10},
            doc! {"_id": 3},
            doc! {"_id": 4, "v": Bson::Null},
            doc! {"_id": 5, "v": 2.5},
            doc! {"_id": 6, "v": {"x": 1}},
            doc! {"_id": 7, "v": true},
            doc! {"_id": 8, "v": []},
        ];
        // [] (undefined) < missing == null (stable) < numbers < strings < objects < bools.
        assert_eq!(sorted(doc! {"v": 1}, &docs), vec![8, 3, 4, 5, 2, 1, 6, 7]);
        assert_eq!(sorted(doc! {"v": -1}, &docs), vec![7, 6, 1, 2, 5, 3, 4, 8]);
    }

    #[test]
    fn arrays_sort_by_min_ascending_and_max_descending() {
        // MongoDB manual, "Sort by an array field".
        let docs = [
            doc! {"_id": 1, "a": [1, 10]},
            doc! {"_id": 2, "a": [5]},
            doc! {"_id": 3, "a": 3},
        ];
        assert_eq!(sorted(doc! {"a": 1}, &docs), vec![1, 3, 2]);
        assert_eq!(sorted(doc! {"a": -1}, &docs), vec![1, 2, 3]);
    }

    #[test]
    fn compound_keys_and_stability() {
        let docs = [
            doc! {"_id": 1, "a": 1, "b": 2},
            doc! {"_id": 2, "a": 0, "b": 9},
            doc! {"_id": 3, "a": 1, "b": 1},
            doc! {"_id": 4, "a": 1, "b": 2},
        ];
        assert_eq!(sorted(doc! {"a": 1, "b": -1}, &docs), vec![2, 1, 4, 3]);
        assert_eq!(sorted(doc! {"a": -1}, &docs), vec![1, 3, 4, 2]);
    }

    #[test]
    fn dotted_paths_through_documents() {
        let docs = [
            doc! {"_id": 1, "a": {"b": 3}},
            doc! {"_id": 2, "a": {"b": 1}},
            doc! {"_id": 3, "a": [{"b": 2}, {"b": 0}]},
        ];
        assert_eq!(sorted(doc! {"a.b": 1}, &docs), vec![3, 2, 1]);
        assert_eq!(sorted(doc! {"a.b": -1}, &docs), vec![1, 3, 2]);
    }

    #[test]
    fn sort_errors_surface() {
        let mut docs = vec![doc! {"_id": 2}, doc! {"_id": 1, "a": [1], "b": [2]}];
        let spec = SortSpec::parse(&doc! {"a": 1, "b": 1}).unwrap();
        assert!(spec.sort(&mut docs).is_err());
        // Nothing is lost or reordered on error.
        assert_eq!(ids(&docs), vec![2, 1]);
    }
}
