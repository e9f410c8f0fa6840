//! Sort keys of a document, as MongoDB computes them.
//!
//! MongoDB sorts a document by the keys an index on the sort pattern would
//! hold for it: the server's `SortKeyGenerator` runs the B-tree key
//! generator and takes the smallest key in the sort order. This is a port of
//! `BtreeKeyGenerator::getKeys`:
//!
//! - a missing field gives `null`; an empty array gives `undefined` (so `[]`
//!   sorts before `null`);
//! - one array along the paths is expanded, one key per element (elements
//!   that are documents continue the path, other elements give `null` for
//!   the rest of the path), so ascending order uses the smallest element and
//!   descending the largest;
//! - paths sharing that array are expanded together (for `{a.b: 1, a.c: 1}`
//!   the keys pair `b` and `c` of the same element);
//! - two different arrays at once are "parallel arrays", an error;
//! - numeric components index into arrays (`a.0`), and an array reached that
//!   way at the end of a path is kept whole.

use std::cmp::Ordering;

use bson::{Bson, Document};

use super::super::compare::compare_bson;
use super::super::error::QueryError;
use super::super::path::array_offset;

static NULL: Bson = Bson::Null;
static UNDEFINED: Bson = Bson::Undefined;

/// Where the key generator looks up the next path component.
#[derive(Clone, Copy)]
enum Container<'a> {
    Doc(&'a Document),
    /// An array read as a document whose field names are positions.
    Array(&'a [Bson]),
    /// The empty object MongoDB substitutes for array elements that are not
    /// documents.
    Empty,
}

impl<'a> Container<'a> {
    fn get(self, name: &str) -> Option<&'a Bson> {
        match self {
            Container::Doc(d) => d.get(name),
            Container::Array(items) => array_offset(name).and_then(|i| items.get(i)),
            Container::Empty => None,
        }
    }
}

/// `dotted_path_support::extractElementAtPathOrArrayAlongPath`: follows
/// `path` through documents and stops at the first array, leaving the rest
/// of the path in `path`.
fn extract_at_path_or_array<'a>(mut obj: Container<'a>, path: &mut &'a str) -> Option<&'a Bson> {
    loop {
        let (head, tail) = match path.find('.') {
            Some(i) => (&path[..i], &path[i + 1..]),
            None => (*path, &path[path.len()..]),
        };
        let sub = obj.get(head);
        *path = tail;
        match sub {
            None => return None,
            Some(value @ Bson::Array(_)) => return Some(value),
            Some(value) if path.is_empty() => return Some(value),
            Some(Bson::Document(d)) => obj = Container::Doc(d),
            Some(_) => return None,
        }
    }
}

/// A path component that selects one element of the array being expanded
/// (`PositionalPathInfo` in the server).
#[derive(Clone, Copy, Default)]
struct Positional<'a> {
    indexed: Option<&'a Bson>,
    remaining: &'a str,
    dotted: Option<&'a Bson>,
}

/// Finds the smallest compound key of a document under per-field directions.
pub(super) struct KeyGenerator<'a, 'd> {
    descending: &'d [bool],
    best: Option<Vec<&'a Bson>>,
}

impl<'a, 'd> KeyGenerator<'a, 'd> {
    /// The first key, in sort order, of `doc` for `paths`.
    pub(super) fn min_key(
        doc: &'a Document,
        paths: &'a [String],
        descending: &'d [bool],
    ) -> Result<Vec<Bson>, QueryError> {
        let mut generator = KeyGenerator {
            descending,
            best: None,
        };
        let mut names: Vec<&'a str> = paths.iter().map(String::as_str).collect();
        let mut fixed: Vec<&'a Bson> = vec![&NULL; paths.len()];
        let positional = vec![Positional::default(); paths.len()];
        generator.keys_with_array(&mut names, &mut fixed, Container::Doc(doc), &positional)?;
        Ok(generator
            .best
            .map(|key| key.into_iter().cloned().collect())
            // Every document yields at least one key; all-null is MongoDB's
            // fallback should none be produced.
            .unwrap_or_else(|| vec![Bson::Null; paths.len()]))
    }

    fn offer(&mut self, key: &[&'a Bson]) {
        let better = match &self.best {
            None => true,
            Some(best) => compare_keys(key, best, self.descending) == Ordering::Less,
        };
        if better {
            self.best = Some(key.to_vec());
        }
    }

    fn extract_next(
        obj: Container<'a>,
        positional: &Positional<'a>,
        field: &mut &'a str,
    ) -> Result<(Option<&'a Bson>, bool), QueryError> {
        let first = field.split('.').next().unwrap_or("");
        let have_obj_field = obj.get(first).is_some();
        if have_obj_field && positional.indexed.is_some() {
            return Err(QueryError::Location {
                code: 16746,
                message: format!(
                    "Ambiguous field name found in array (do not use numeric field names in \
                     embedded elements in an array), field: '{first}'"
                ),
            });
        }
        if have_obj_field {
            return Ok((extract_at_path_or_array(obj, field), false));
        }
        if let Some(indexed) = positional.indexed {
            *field = positional.remaining;
            return Ok((positional.dotted, matches!(indexed, Bson::Array(_))));
        }
        Ok((None, false))
    }

    fn keys_with_array(
        &mut self,
        names: &mut [&'a str],
        fixed: &mut [&'a Bson],
        obj: Container<'a>,
        positional: &[Positional<'a>],
    ) -> Result<(), QueryError> {
        let mut array: Option<&'a Bson> = None;
        let mut array_fields = Vec::new();
        let mut may_expand = true;
        for i in 0..names.len() {
            if names[i].is_empty() {
                continue;
            }
            let (element, nested) = Self::extract_next(obj, &positional[i], &mut names[i])?;
            match element {
                None => {
                    fixed[i] = &NULL;
                    names[i] = "";
                }
                Some(value @ Bson::Array(_)) => {
                    array_fields.push(i);
                    match array {
                        None => array = Some(value),
                        Some(seen) if !std::ptr::eq(seen, value) => {
                            return Err(QueryError::bad_value(
                                "cannot sort with keys that are parallel arrays",
                            ))
                        }
                        Some(_) => {}
                    }
                    if nested {
                        may_expand = false;
                    }
                }
                Some(value) => fixed[i] = value,
            }
        }
        let Some(array_value @ Bson::Array(items)) = array else {
            self.offer(fixed);
            return Ok(());
        };
        if items.is_empty() {
            let none = vec![Positional::default(); names.len()];
            return self.element_keys(
                names,
                fixed,
                &UNDEFINED,
                array_value,
                &array_fields,
                true,
                &none,
            );
        }
        // Components that index into this array are resolved once, up front.
        let mut sub_positional = vec![Positional::default(); names.len()];
        for i in 0..names.len() {
            if names[i].is_empty() {
                continue;
            }
            let part = names[i].split('.').next().unwrap_or("");
            let indexed = Container::Array(items).get(part);
            if indexed.is_none() {
                continue;
            }
            let mut remaining = names[i];
            let dotted = extract_at_path_or_array(Container::Array(items), &mut remaining);
            sub_positional[i] = Positional {
                indexed,
                remaining,
                dotted,
            };
        }
        for item in items {
            self.element_keys(
                names,
                fixed,
                item,
                array_value,
                &array_fields,
                may_expand,
                &sub_positional,
            )?;
        }
        Ok(())
    }

    /// `_getKeysArrEltFixed`: keys for one element of the expanded array.
    #[allow(clippy::too_many_arguments)]
    fn element_keys(
        &mut self,
        names: &[&'a str],
        fixed: &[&'a Bson],
        element: &'a Bson,
        array_value: &'a Bson,
        array_fields: &[usize],
        may_expand: bool,
        positional: &[Positional<'a>],
    ) -> Result<(), QueryError> {
        let mut names = names.to_vec();
        let mut fixed = fixed.to_vec();
        for &i in array_fields {
            if names[i].is_empty() {
                // The path ends at the array: the element is the key, unless
                // the array was reached through an explicit position.
                fixed[i] = if may_expand { element } else { array_value };
            }
        }
        let obj = match element {
            Bson::Document(d) => Container::Doc(d),
            _ => Container::Empty,
        };
        self.keys_with_array(&mut names, &mut fixed, obj, positional)
    }
}

/// Compares compound keys field by field, reversing descending fields.
pub(super) fn compare_keys<A: std::borrow::Borrow<Bson>, B: std::borrow::Borrow<Bson>>(
    a: &[A],
    b: &[B],
    descending: &[bool],
) -> Ordering {
    for ((x, y), desc) in a.iter().zip(b.iter()).zip(descending) {
        let order = compare_bson(x.borrow(), y.borrow());
        let order = if *desc { order.reverse() } else { order };
        if order != Ordering::Equal {
            return order;
        }
    }
    Ordering::Equal
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::{bson, doc};

    fn key(doc: &Document, paths: &[&str], descending: &[bool]) -> Result<Vec<Bson>, QueryError> {
        let paths: Vec<String> = paths.iter().map(|p| p.to_string()).collect();
        KeyGenerator::min_key(doc, &paths, descending)
    }

    #[test]
    fn scalars_missing_and_empty_arrays() {
        assert_eq!(
            key(&doc! {"a": 3}, &["a"], &[false]).unwrap(),
            vec![bson!(3)]
        );
        assert_eq!(key(&doc! {}, &["a"], &[false]).unwrap(), vec![Bson::Null]);
        assert_eq!(
            key(&doc! {"a": []}, &["a"], &[false]).unwrap(),
            vec![Bson::Undefined]
        );
        assert_eq!(
            key(&doc! {"a": []}, &["a.b"], &[false]).unwrap(),
            vec![Bson::Null]
        );
        assert_eq!(
            key(&doc! {"a": 1}, &["a.b"], &[false]).unwrap(),
            vec![Bson::Null]
        );
    }

    #[test]
    fn arrays_use_min_ascending_and_max_descending() {
        let d = doc! {"a": [3, 1, "x", [0]]};
        assert_eq!(key(&d, &["a"], &[false]).unwrap(), vec![bson!(1)]);
        assert_eq!(key(&d, &["a"], &[true]).unwrap(), vec![bson!([0])]);
    }

    #[test]
    fn arrays_of_documents_and_missing_elements() {
        let d = doc! {"a": [{"b": 5}, {"c": 1}, 7]};
        // The element without b, and the scalar, both give null.
        assert_eq!(key(&d, &["a.b"], &[false]).unwrap(), vec![Bson::Null]);
        assert_eq!(key(&d, &["a.b"], &[true]).unwrap(), vec![bson!(5)]);
    }

    #[test]
    fn shared_arrays_pair_fields_of_the_same_element() {
        let d = doc! {"a": [{"b": 1, "c": 9}, {"b": 2, "c": 0}]};
        assert_eq!(
            key(&d, &["a.b", "a.c"], &[false, false]).unwrap(),
            vec![bson!(1), bson!(9)]
        );
        assert_eq!(
            key(&d, &["a.c", "a.b"], &[false, false]).unwrap(),
            vec![bson!(0), bson!(2)]
        );
    }

    #[test]
    fn parallel_arrays_are_an_error() {
        let d = doc! {"a": [1, 2], "b": [3, 4]};
        assert_eq!(
            key(&d, &["a", "b"], &[false, false])
                .unwrap_err()
                .to_string(),
            "cannot sort with keys that are parallel arrays"
        );
        // One array and a scalar are fine.
        assert_eq!(
            key(&doc! {"a": [2, 1], "b": 3}, &["a", "b"], &[false, false]).unwrap(),
            vec![bson!(1), bson!(3)]
        );
    }

    #[test]
    fn positional_components() {
        let d = doc! {"a": [[5, 1], {"b": 2}]};
        // "a.0" reaches a nested array through a position: kept whole.
        assert_eq!(key(&d, &["a.0"], &[false]).unwrap(), vec![bson!([5, 1])]);
        assert_eq!(key(&d, &["a.1.b"], &[false]).unwrap(), vec![bson!(2)]);
        let d = doc! {"a": [{"0": 1}]};
        assert_eq!(key(&d, &["a.0"], &[false]).unwrap_err().code(), 16746);
    }
}
