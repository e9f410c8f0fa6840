//! `$project`, `$addFields` / `$set` and `$unset`: reshaping documents with
//! included, excluded and computed fields.
//!
//! A specification becomes a tree of field names (dotted paths and nested
//! objects both become nesting). Semantics follow MongoDB's projection
//! executor:
//!
//! - inclusion keeps the listed fields in document order, then sets
//!   computed fields in specification order (replacing a field in place
//!   when it exists); `_id` is kept unless excluded;
//! - exclusion removes the listed fields; no computed fields are allowed;
//! - `$addFields` keeps everything and sets its computed fields;
//! - through an array, a nested specification applies to each element
//!   that is a document (or array); with computed fields, other elements
//!   are replaced by documents holding just the computed fields;
//! - a computed value that is missing (`$$REMOVE`, a missing field) sets
//!   nothing, and removes the field in `$addFields`.

use bson::{Bson, Document};

use super::super::error::QueryError;
use super::super::path::validate_field_path;
use super::expr::Expr;

/// A parsed `$project`, `$addFields` or `$unset`.
#[derive(Debug, Clone, PartialEq)]
pub struct Shape {
    mode: Mode,
    root: Node,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Inclusion,
    Exclusion,
    AddFields,
}

#[derive(Debug, Clone, Default, PartialEq)]
struct Node {
    /// In specification order; names are unique.
    fields: Vec<(String, Entry)>,
}

#[derive(Debug, Clone, PartialEq)]
enum Entry {
    Include,
    Exclude,
    Computed(Expr),
    Nested(Node),
}

fn project_error(code: i32, stage: &str, message: impl std::fmt::Display) -> QueryError {
    QueryError::Location {
        code,
        message: format!("Invalid {stage} :: caused by :: {message}"),
    }
}

impl Node {
    fn get(&self, name: &str) -> Option<&Entry> {
        self.fields.iter().find(|(n, _)| n == name).map(|(_, e)| e)
    }

    fn insert(
        &mut self,
        parts: &[String],
        entry: Entry,
        path: &str,
        stage: &str,
    ) -> Result<(), QueryError> {
        let collision = || project_error(31250, stage, format!("Path collision at {path}"));
        let Some((first, rest)) = parts.split_first() else {
            return Err(collision());
        };
        let position = self.fields.iter().position(|(n, _)| n == first);
        if rest.is_empty() {
            return match position {
                Some(_) => Err(collision()),
                None => {
                    self.fields.push((first.clone(), entry));
                    Ok(())
                }
            };
        }
        let index = match position {
            Some(i) => i,
            None => {
                self.fields
                    .push((first.clone(), Entry::Nested(Node::default())));
                self.fields.len() - 1
            }
        };
        match &mut self.fields[index].1 {
            Entry::Nested(node) => node.insert(rest, entry, path, stage),
            _ => Err(collision()),
        }
    }

    fn has_computed(&self) -> bool {
        self.fields.iter().any(|(_, e)| match e {
            Entry::Computed(_) => true,
            Entry::Nested(n) => n.has_computed(),
            _ => false,
        })
    }

    /// Visits every leaf with its dotted path.
    fn leaves<'a>(&'a self, prefix: &str, out: &mut Vec<(String, &'a Entry)>) {
        for (name, entry) in &self.fields {
            let path = if prefix.is_empty() {
                name.clone()
            } else {
                format!("{prefix}.{name}")
            };
            match entry {
                Entry::Nested(node) => node.leaves(&path, out),
                leaf => out.push((path, leaf)),
            }
        }
    }
}

fn split(path: &str) -> Vec<String> {
    path.split('.').map(str::to_string).collect()
}

/// How a value of a specification is read: flags count only in `$project`.
fn parse_entry(value: &Bson, flags: bool, path: &str, stage: &str) -> Result<Entry, QueryError> {
    Ok(match value {
        Bson::Boolean(b) if flags => {
            if *b {
                Entry::Include
            } else {
                Entry::Exclude
            }
        }
        n @ (Bson::Int32(_) | Bson::Int64(_) | Bson::Double(_) | Bson::Decimal128(_)) if flags => {
            if super::super::compare::values_equal(n, &Bson::Int32(0)) {
                Entry::Exclude
            } else {
                Entry::Include
            }
        }
        Bson::Document(d) if d.keys().next().is_some_and(|k| k.starts_with('$')) => {
            Entry::Computed(Expr::parse(value)?)
        }
        Bson::Document(d) => {
            if d.is_empty() {
                return Err(project_error(
                    51270,
                    stage,
                    format!("An empty sub-projection is not a valid value. Found empty object at path {path}"),
                ));
            }
            let mut node = Node::default();
            for (key, inner) in d {
                validate_field_path(key)?;
                let full = format!("{path}.{key}");
                let entry = parse_entry(inner, flags, &full, stage)?;
                node.insert(&split(key), entry, &full, stage)?;
            }
            Entry::Nested(node)
        }
        other => Entry::Computed(Expr::parse(other)?),
    })
}

impl Shape {
    /// Parses a `$project` specification.
    pub fn project(spec: &Document) -> Result<Shape, QueryError> {
        const STAGE: &str = "$project";
        if spec.is_empty() {
            return Err(project_error(
                51272,
                STAGE,
                "projection specification must have at least one field",
            ));
        }
        let mut root = Node::default();
        for (path, value) in spec {
            validate_field_path(path)?;
            let entry = parse_entry(value, true, path, STAGE)?;
            root.insert(&split(path), entry, path, STAGE)?;
        }
        let mut leaves = Vec::new();
        root.leaves("", &mut leaves);
        let excluded = leaves
            .iter()
            .find(|(p, e)| p != "_id" && matches!(e, Entry::Exclude));
        let included = leaves
            .iter()
            .find(|(_, e)| matches!(e, Entry::Include | Entry::Computed(_)));
        let mode = match (excluded, included) {
            (Some((path, _)), Some((_, Entry::Computed(_)))) => {
                return Err(project_error(
                    31252,
                    STAGE,
                    format!(
                        "Cannot use expression other than $meta in exclusion projection \
                         (excluding {path})"
                    ),
                ))
            }
            (Some((path, _)), Some(_)) => {
                return Err(project_error(
                    31254,
                    STAGE,
                    format!("Cannot do exclusion on field {path} in inclusion projection"),
                ))
            }
            (None, None) => Mode::Exclusion,
            (Some(_), None) => Mode::Exclusion,
            (None, Some(_)) => Mode::Inclusion,
        };
        if mode == Mode::Inclusion && root.get("_id").is_none() {
            root.fields.insert(0, ("_id".to_string(), Entry::Include));
        }
        Ok(Shape { mode, root })
    }

    /// Parses an `$addFields` / `$set` specification.
    pub fn add_fields(spec: &Document, stage: &str) -> Result<Shape, QueryError> {
        let mut root = Node::default();
        for (path, value) in spec {
            validate_field_path(path)?;
            let entry = parse_entry(value, false, path, stage)?;
            root.insert(&split(path), entry, path, stage)?;
        }
        Ok(Shape {
            mode: Mode::AddFields,
            root,
        })
    }

    /// Parses an `$unset` argument: a path or an array of paths.
    pub fn unset(spec: &Bson) -> Result<Shape, QueryError> {
        const STAGE: &str = "$unset";
        let paths: Vec<&str> = match spec {
            Bson::String(p) => vec![p.as_str()],
            Bson::Array(items) if !items.is_empty() => items
                .iter()
                .map(|item| match item {
                    Bson::String(p) => Ok(p.as_str()),
                    _ => Err(unset_type_error()),
                })
                .collect::<Result<_, _>>()?,
            _ => return Err(unset_type_error()),
        };
        let mut root = Node::default();
        for path in paths {
            validate_field_path(path)?;
            root.insert(&split(path), Entry::Exclude, path, STAGE)?;
        }
        Ok(Shape {
            mode: Mode::Exclusion,
            root,
        })
    }

    /// Reshapes `doc`.
    pub fn apply(&self, doc: &Document) -> Result<Document, QueryError> {
        match self.mode {
            Mode::Inclusion => include(&self.root, doc, doc),
            Mode::Exclusion => Ok(exclude(&self.root, doc)),
            Mode::AddFields => add(&self.root, doc, doc),
        }
    }
}

fn unset_type_error() -> QueryError {
    QueryError::Location {
        code: 31002,
        message: "$unset specification must be a string or an array containing only string \
                  values"
            .into(),
    }
}

fn include(node: &Node, doc: &Document, root: &Document) -> Result<Document, QueryError> {
    let mut out = Document::new();
    for (name, value) in doc {
        match (node.get(name), value) {
            (Some(Entry::Include), v) => {
                out.insert(name.clone(), v.clone());
            }
            (Some(Entry::Nested(sub)), Bson::Document(d)) => {
                out.insert(name.clone(), include(sub, d, root)?);
            }
            (Some(Entry::Nested(sub)), Bson::Array(items)) => {
                out.insert(name.clone(), include_array(sub, items, root)?);
            }
            _ => {}
        }
    }
    for (name, entry) in &node.fields {
        match entry {
            Entry::Computed(expr) => {
                if let Some(v) = expr.eval(root)? {
                    out.insert(name.clone(), v);
                }
            }
            Entry::Nested(sub) if sub.has_computed() && !out.contains_key(name) => {
                out.insert(name.clone(), include(sub, &Document::new(), root)?);
            }
            _ => {}
        }
    }
    Ok(out)
}

fn include_array(node: &Node, items: &[Bson], root: &Document) -> Result<Vec<Bson>, QueryError> {
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        match item {
            Bson::Document(d) => out.push(Bson::Document(include(node, d, root)?)),
            Bson::Array(inner) => out.push(Bson::Array(include_array(node, inner, root)?)),
            _ if node.has_computed() => {
                out.push(Bson::Document(include(node, &Document::new(), root)?))
            }
            _ => {}
        }
    }
    Ok(out)
}

fn exclude(node: &Node, doc: &Document) -> Document {
    let mut out = Document::new();
    for (name, value) in doc {
        match (node.get(name), value) {
            (Some(Entry::Exclude), _) => {}
            (Some(Entry::Nested(sub)), Bson::Document(d)) => {
                out.insert(name.clone(), exclude(sub, d));
            }
            (Some(Entry::Nested(sub)), Bson::Array(items)) => {
                out.insert(name.clone(), exclude_array(sub, items));
            }
            (_, v) => {
                out.insert(name.clone(), v.clone());
            }
        }
    }
    out
}

fn exclude_array(node: &Node, items: &[Bson]) -> Vec<Bson> {
    items
        .iter()
        .map(|item| match item {
            Bson::Document(d) => Bson::Document(exclude(node, d)),
            Bson::Array(inner) => Bson::Array(exclude_array(node, inner)),
            other => other.clone(),
        })
        .collect()
}

fn add(node: &Node, doc: &Document, root: &Document) -> Result<Document, QueryError> {
    let mut out = doc.clone();
    for (name, entry) in &node.fields {
        match entry {
            Entry::Computed(expr) => match expr.eval(root)? {
                Some(v) => {
                    out.insert(name.clone(), v);
                }
                None => {
                    out.remove(name);
                }
            },
            Entry::Nested(sub) => {
                let value = match out.get(name) {
                    Some(Bson::Document(d)) => Bson::Document(add(sub, d, root)?),
                    Some(Bson::Array(items)) => Bson::Array(add_array(sub, items, root)?),
                    _ => Bson::Document(add(sub, &Document::new(), root)?),
                };
                out.insert(name.clone(), value);
            }
            Entry::Include | Entry::Exclude => {}
        }
    }
    Ok(out)
}

fn add_array(node: &Node, items: &[Bson], root: &Document) -> Result<Vec<Bson>, QueryError> {
    items
        .iter()
        .map(|item| {
            Ok(match item {
                Bson::Document(d) => Bson::Document(add(node, d, root)?),
                Bson::Array(inner) => Bson::Array(add_array(node, inner, root)?),
                _ => Bson::Document(add(node, &Document::new(), root)?),
            })
        })
        .collect()
}
