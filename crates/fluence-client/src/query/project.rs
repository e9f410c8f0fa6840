//! Find projections: `{a: 1, "b.c": 1}` (inclusion) or `{a: 0}` (exclusion).
//!
//! Semantics of MongoDB 4.4+ find projections:
//!
//! - values are booleans or numbers (non-zero includes);
//! - `_id` is included unless the projection says `_id: 0`/`false`, and may
//!   be given either way in any projection; every other field must agree on
//!   inclusion or exclusion ("Cannot do exclusion on field b in inclusion
//!   projection");
//! - a path and its prefix in one projection collide ("Path collision at
//!   a.b remaining portion b");
//! - inclusion keeps fields in document order; through arrays it keeps the
//!   projected parts of each sub-document (nested arrays are entered, other
//!   elements dropped) and keeps an embedded document even when none of the
//!   projected sub-fields exist (`{"a.b": 1}` on `{a: {c: 1}}` gives `{a: {}}`);
//! - exclusion removes the paths, entering arrays the same way and leaving
//!   other elements alone.
//!
//! Positional (`a.$`), `$slice`, `$elemMatch`, `$meta` and computed fields
//! are rejected as unsupported.

use std::collections::BTreeMap;

use bson::{Bson, Document};

use super::compare::values_equal;
use super::error::QueryError;
use super::limits::check_depth;
use super::path::validate_field_path;

/// A parsed projection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Projection {
    mode: Mode,
    tree: Node,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// `{}`: documents are returned whole.
    Identity,
    Inclusion,
    Exclusion,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Node {
    children: BTreeMap<String, Child>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Child {
    /// The path ends here: the whole value is included or excluded.
    Leaf,
    Node(Node),
}

impl Projection {
    /// Parses a find projection.
    pub fn parse(spec: &Document) -> Result<Projection, QueryError> {
        check_depth(spec)?;
        if spec.is_empty() {
            return Ok(Projection {
                mode: Mode::Identity,
                tree: Node::default(),
            });
        }
        let mut id_included: Option<bool> = None;
        let mut inclusion: Option<bool> = None;
        let mut paths: Vec<(&str, bool)> = Vec::new();
        for (path, value) in spec {
            if path == "$" || path.ends_with(".$") || path.contains(".$.") {
                return Err(QueryError::unsupported("positional projection ($)"));
            }
            validate_field_path(path)?;
            let include = projection_flag(path, value)?;
            if path == "_id" {
                id_included = Some(include);
            } else {
                match inclusion {
                    None => inclusion = Some(include),
                    Some(true) if !include => {
                        return Err(QueryError::Location {
                            code: 31254,
                            message: format!(
                                "Cannot do exclusion on field {path} in inclusion projection"
                            ),
                        })
                    }
                    Some(false) if include => {
                        return Err(QueryError::Location {
                            code: 31253,
                            message: format!(
                                "Cannot do inclusion on field {path} in exclusion projection"
                            ),
                        })
                    }
                    Some(_) => {}
                }
            }
            paths.push((path, include));
        }
        // Only `_id` given: `{_id: 1}` includes just `_id`, `{_id: 0}` excludes it.
        let inclusion = inclusion.unwrap_or(id_included == Some(true));
        let mut tree = Node::default();
        for (path, include) in &paths {
            if *include == inclusion {
                tree.insert(path)?;
            }
        }
        if inclusion {
            let mentions_id = paths
                .iter()
                .any(|(p, _)| p.split('.').next() == Some("_id"));
            if id_included != Some(false) && !mentions_id {
                tree.insert("_id")?;
            }
        }
        Ok(Projection {
            mode: if inclusion {
                Mode::Inclusion
            } else {
                Mode::Exclusion
            },
            tree,
        })
    }

    /// Applies the projection to one document.
    pub fn apply(&self, doc: &Document) -> Document {
        match self.mode {
            Mode::Identity => doc.clone(),
            Mode::Inclusion => include_document(doc, &self.tree),
            Mode::Exclusion => exclude_document(doc, &self.tree),
        }
    }
}

fn projection_flag(path: &str, value: &Bson) -> Result<bool, QueryError> {
    match value {
        Bson::Boolean(b) => Ok(*b),
        Bson::Int32(_) | Bson::Int64(_) | Bson::Double(_) | Bson::Decimal128(_) => {
            Ok(!values_equal(value, &Bson::Int32(0)))
        }
        Bson::Document(d) => match d.keys().next() {
            Some(op) if op.starts_with('$') => Err(QueryError::unsupported(op.as_str())),
            _ => Err(QueryError::unsupported(format!(
                "computed projection field '{path}'"
            ))),
        },
        _ => Err(QueryError::unsupported(format!(
            "computed projection field '{path}'"
        ))),
    }
}

impl Node {
    fn insert(&mut self, path: &str) -> Result<(), QueryError> {
        let parts: Vec<&str> = path.split('.').collect();
        let mut node = self;
        for (i, part) in parts.iter().enumerate() {
            let last = i + 1 == parts.len();
            if last {
                if node.children.contains_key(*part) {
                    return Err(collision(path, None));
                }
                node.children.insert(part.to_string(), Child::Leaf);
                return Ok(());
            }
            let child = node
                .children
                .entry(part.to_string())
                .or_insert_with(|| Child::Node(Node::default()));
            node = match child {
                Child::Node(next) => next,
                Child::Leaf => return Err(collision(path, Some(&parts[i + 1..].join(".")))),
            };
        }
        Ok(())
    }
}

fn collision(path: &str, remaining: Option<&str>) -> QueryError {
    match remaining {
        Some(rest) => QueryError::Location {
            code: 31249,
            message: format!("Path collision at {path} remaining portion {rest}"),
        },
        None => QueryError::Location {
            code: 31250,
            message: format!("Path collision at {path}"),
        },
    }
}

fn include_document(doc: &Document, node: &Node) -> Document {
    let mut out = Document::new();
    for (key, value) in doc {
        match node.children.get(key) {
            Some(Child::Leaf) => {
                out.insert(key.clone(), value.clone());
            }
            Some(Child::Node(sub)) => {
                if let Some(projected) = include_value(value, sub) {
                    out.insert(key.clone(), projected);
                }
            }
            None => {}
        }
    }
    out
}

fn include_value(value: &Bson, node: &Node) -> Option<Bson> {
    match value {
        Bson::Document(d) => Some(Bson::Document(include_document(d, node))),
        Bson::Array(items) => Some(Bson::Array(
            items
                .iter()
                .filter_map(|i| include_value(i, node))
                .collect(),
        )),
        // Sub-fields of a scalar do not exist: the value is dropped.
        _ => None,
    }
}

fn exclude_document(doc: &Document, node: &Node) -> Document {
    let mut out = Document::new();
    for (key, value) in doc {
        match node.children.get(key) {
            Some(Child::Leaf) => {}
            Some(Child::Node(sub)) => {
                out.insert(key.clone(), exclude_value(value, sub));
            }
            None => {
                out.insert(key.clone(), value.clone());
            }
        }
    }
    out
}

fn exclude_value(value: &Bson, node: &Node) -> Bson {
    match value {
        Bson::Document(d) => Bson::Document(exclude_document(d, node)),
        Bson::Array(items) => Bson::Array(items.iter().map(|i| exclude_value(i, node)).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::doc;

    fn project(spec: Document, doc: Document) -> Document {
        Projection::parse(&spec).unwrap().apply(&doc)
    }

    fn err(spec: Document) -> String {
        Projection::parse(&spec).unwrap_err().to_string()
    }

    fn inventory() -> Document {
        doc! {
            "_id": 1, "item": "journal", "status": "A",
            "size": {"h": 14, "w": 21, "uom": "cm"},
            "instock": [{"warehouse": "A", "qty": 5}, 3, [{"qty": 1, "x": 0}]]
        }
    }

    #[test]
    fn inclusion_keeps_id_and_document_order() {
        // MongoDB manual, "Project Fields to Return from Query".
        assert_eq!(
            project(doc! {"status": 1, "item": 1}, inventory()),
            doc! {"_id": 1, "item": "journal", "status": "A"}
        );
        assert_eq!(
            project(doc! {"item": 1, "_id": 0}, inventory()),
            doc! {"item": "journal"}
        );
        assert_eq!(project(doc! {"_id": 1}, inventory()), doc! {"_id": 1});
    }

    #[test]
    fn exclusion_removes_fields() {
        assert_eq!(
            project(doc! {"status": 0, "instock": 0, "size": 0}, inventory()),
            doc! {"_id": 1, "item": "journal"}
        );
        assert_eq!(
            project(doc! {"_id": 0}, doc! {"_id": 1, "a": 2}),
            doc! {"a": 2}
        );
        assert_eq!(
            project(
                doc! {"size.uom": 0, "_id": 1},
                doc! {"size": {"h": 1, "uom": "cm"}}
            ),
            doc! {"size": {"h": 1}}
        );
    }

    #[test]
    fn dotted_paths_through_documents_and_arrays() {
        assert_eq!(
            project(doc! {"size.uom": 1, "_id": 0}, inventory()),
            doc! {"size": {"uom": "cm"}}
        );
        assert_eq!(
            project(doc! {"instock.qty": 1, "_id": 0}, inventory()),
            doc! {"instock": [{"qty": 5}, [{"qty": 1}]]}
        );
        assert_eq!(
            project(
                doc! {"instock.qty": 0, "_id": 0, "item": 0, "status": 0, "size": 0},
                inventory()
            ),
            doc! {"instock": [{"warehouse": "A"}, 3, [{"x": 0}]]}
        );
        // An embedded document stays even if none of its projected fields exist.
        assert_eq!(
            project(doc! {"a.b": 1, "_id": 0}, doc! {"a": {"c": 1}, "d": 1}),
            doc! {"a": {}}
        );
        // A scalar has no sub-fields: dropped by inclusion.
        assert_eq!(project(doc! {"a.b": 1, "_id": 0}, doc! {"a": 5}), doc! {});
    }

    #[test]
    fn mixing_inclusion_and_exclusion_is_an_error() {
        assert_eq!(
            err(doc! {"a": 1, "b": 0}),
            "Cannot do exclusion on field b in inclusion projection"
        );
        assert_eq!(
            err(doc! {"a": false, "b": true}),
            "Cannot do inclusion on field b in exclusion projection"
        );
        // _id may go either way.
        assert!(Projection::parse(&doc! {"a": 1, "_id": 0}).is_ok());
        assert!(Projection::parse(&doc! {"a": 0, "_id": 1}).is_ok());
    }

    #[test]
    fn path_collisions() {
        assert_eq!(
            err(doc! {"size": 1, "size.uom": 1}),
            "Path collision at size.uom remaining portion uom"
        );
        assert_eq!(
            err(doc! {"size.uom": 1, "size": 1}),
            "Path collision at size"
        );
    }

    #[test]
    fn unsupported_forms() {
        for spec in [
            doc! {"a.$": 1},
            doc! {"a": {"$slice": 1}},
            doc! {"a": {"$elemMatch": {"b": 1}}},
            doc! {"a": "literal"},
            doc! {"a": {"b": 1}},
        ] {
            assert!(matches!(
                Projection::parse(&spec),
                Err(QueryError::UnsupportedOperator { .. })
            ));
        }
        assert_eq!(
            Projection::parse(&doc! {"a..b": 1}).unwrap_err().code(),
            15998
        );
    }

    #[test]
    fn empty_projection_returns_documents_whole() {
        assert_eq!(project(doc! {}, inventory()), inventory());
    }
}
