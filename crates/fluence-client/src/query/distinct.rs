//! The values `distinct` reports for a field path: every value the path
//! reaches, with arrays at the end of the path contributing their elements
//! (one level deep), deduplicated by value equality (`1` and `1.0` are one
//! value) and in MongoDB's value order.

use std::collections::HashSet;

use bson::{Bson, Document};

use super::compare::{compare_bson, equality_key};
use super::path::array_offset;

/// Collects the distinct values of `path` over `docs`.
#[derive(Debug, Default)]
pub struct Distinct {
    seen: HashSet<Vec<u8>>,
    values: Vec<Bson>,
}

impl Distinct {
    pub fn new() -> Distinct {
        Distinct::default()
    }

    /// Adds the values `path` (already split at dots) reaches in `doc`.
    pub fn add(&mut self, doc: &Document, path: &[String]) {
        let mut found = Vec::new();
        collect(doc, path, &mut found);
        for value in found {
            if self.seen.insert(equality_key(value)) {
                self.values.push(value.clone());
            }
        }
    }

    /// The values, in MongoDB's order of BSON values.
    pub fn finish(mut self) -> Vec<Bson> {
        self.values.sort_by(compare_bson);
        self.values
    }
}

fn collect<'a>(doc: &'a Document, path: &[String], out: &mut Vec<&'a Bson>) {
    let Some((first, rest)) = path.split_first() else {
        return;
    };
    if let Some(value) = doc.get(first) {
        collect_value(value, rest, out);
    }
}

fn collect_value<'a>(value: &'a Bson, rest: &[String], out: &mut Vec<&'a Bson>) {
    match value {
        Bson::Array(items) if rest.is_empty() => out.extend(items.iter()),
        _ if rest.is_empty() => out.push(value),
        Bson::Document(d) => collect(d, rest, out),
        Bson::Array(items) => {
            // `a.1` names a position as well as a field of each element.
            if let Some(item) = array_offset(&rest[0]).and_then(|i| items.get(i)) {
                collect_value(item, &rest[1..], out);
            }
            for item in items {
                if let Bson::Document(d) = item {
                    collect(d, rest, out);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::{bson, doc};

    fn distinct(docs: &[Document], path: &str) -> Vec<Bson> {
        let parts: Vec<String> = path.split('.').map(str::to_string).collect();
        let mut d = Distinct::new();
        for doc in docs {
            d.add(doc, &parts);
        }
        d.finish()
    }

    #[test]
    fn arrays_contribute_elements_and_equal_numbers_merge() {
        let docs = [
            doc! {"a": [1, 2, [3]]},
            doc! {"a": 1.0},
            doc! {"a": "x"},
            doc! {"b": 1},
            doc! {"a": null},
        ];
        assert_eq!(
            distinct(&docs, "a"),
            vec![Bson::Null, bson!(1), bson!(2), bson!("x"), bson!([3])]
        );
    }

    #[test]
    fn paths_go_through_documents_and_arrays() {
        let docs = [
            doc! {"a": [{"b": 1}, {"b": [2, 3]}, 4]},
            doc! {"a": {"b": 5}},
            doc! {"a": [[{"b": 9}], {"c": 1}]},
        ];
        assert_eq!(
            distinct(&docs, "a.b"),
            vec![bson!(1), bson!(2), bson!(3), bson!(5)]
        );
        assert_eq!(distinct(&docs, "a.0.b"), vec![bson!(1), bson!(9)]);
    }
}
