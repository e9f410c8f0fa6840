//! `$unwind`: one output document per element of an array field.
//!
//! The path is followed through sub-documents only (not through arrays).
//! A non-empty array yields one document per element; a scalar yields the
//! document unchanged; `null`, a missing field or an empty array yield
//! nothing unless `preserveNullAndEmptyArrays` (then the document, with an
//! empty array removed). `includeArrayIndex` adds the element's position as
//! a long (`null` when the value was not unwound from an array).

use bson::{Bson, Document};

use super::super::bson_type::type_name;
use super::super::error::QueryError;
use super::super::path::validate_field_path;

/// A parsed `$unwind` stage.
#[derive(Debug, Clone, PartialEq)]
pub struct Unwind {
    path: Vec<String>,
    index_field: Option<Vec<String>>,
    preserve: bool,
}

fn location(code: i32, message: impl Into<String>) -> QueryError {
    QueryError::Location {
        code,
        message: message.into(),
    }
}

fn parse_path(path: &str) -> Result<Vec<String>, QueryError> {
    let Some(rest) = path.strip_prefix('$') else {
        return Err(location(
            28818,
            format!("path option to $unwind stage should be prefixed with a '$': {path}"),
        ));
    };
    validate_field_path(rest)?;
    Ok(rest.split('.').map(str::to_string).collect())
}

impl Unwind {
    pub fn parse(spec: &Bson) -> Result<Unwind, QueryError> {
        match spec {
            Bson::String(path) => Ok(Unwind {
                path: parse_path(path)?,
                index_field: None,
                preserve: false,
            }),
            Bson::Document(options) => {
                let mut unwind = Unwind {
                    path: Vec::new(),
                    index_field: None,
                    preserve: false,
                };
                let mut has_path = false;
                for (key, value) in options {
                    match (key.as_str(), value) {
                        ("path", Bson::String(path)) => {
                            unwind.path = parse_path(path)?;
                            has_path = true;
                        }
                        ("path", other) => {
                            return Err(location(
                                28808,
                                format!(
                                    "Expected a string as the path for $unwind stage, got {}",
                                    type_name(other)
                                ),
                            ))
                        }
                        ("includeArrayIndex", Bson::String(field)) => {
                            if field.starts_with('$') {
                                return Err(location(
                                    28822,
                                    format!(
                                        "includeArrayIndex option to $unwind stage should not be \
                                         prefixed with a '$': {field}"
                                    ),
                                ));
                            }
                            validate_field_path(field)?;
                            unwind.index_field =
                                Some(field.split('.').map(str::to_string).collect());
                        }
                        ("includeArrayIndex", other) => {
                            return Err(location(
                                28810,
                                format!(
                                    "expected a non-empty string for the includeArrayIndex \
                                     option to $unwind stage, got {}",
                                    type_name(other)
                                ),
                            ))
                        }
                        ("preserveNullAndEmptyArrays", Bson::Boolean(b)) => unwind.preserve = *b,
                        ("preserveNullAndEmptyArrays", other) => {
                            return Err(location(
                                28809,
                                format!(
                                    "expected a boolean for the preserveNullAndEmptyArrays \
                                     option to $unwind stage, got {}",
                                    type_name(other)
                                ),
                            ))
                        }
                        (other, _) => {
                            return Err(location(
                                28811,
                                format!("unrecognized option to $unwind stage: {other}"),
                            ))
                        }
                    }
                }
                if !has_path {
                    return Err(location(28812, "No path specified to $unwind stage"));
                }
                Ok(unwind)
            }
            other => Err(location(
                15981,
                format!(
                    "expected either a string or an object as specification for $unwind stage, \
                     got {}",
                    type_name(other)
                ),
            )),
        }
    }

    /// The documents `doc` unwinds into, appended to `out`.
    pub fn run(&self, doc: Document, out: &mut Vec<Document>) {
        let with_index = |mut d: Document, index: Bson| {
            if let Some(field) = &self.index_field {
                set(&mut d, field, Some(index));
            }
            d
        };
        match get(&doc, &self.path) {
            Some(Bson::Array(items)) if !items.is_empty() => {
                let items = items.clone();
                for (i, item) in items.into_iter().enumerate() {
                    let mut copy = doc.clone();
                    set(&mut copy, &self.path, Some(item));
                    out.push(with_index(copy, Bson::Int64(i as i64)));
                }
            }
            Some(Bson::Array(_)) => {
                if self.preserve {
                    let mut copy = doc;
                    set(&mut copy, &self.path, None);
                    out.push(with_index(copy, Bson::Null));
                }
            }
            None | Some(Bson::Null | Bson::Undefined) => {
                if self.preserve {
                    out.push(with_index(doc, Bson::Null));
                }
            }
            Some(_) => out.push(with_index(doc, Bson::Null)),
        }
    }
}

/// The value at `parts`, through sub-documents only.
fn get<'a>(doc: &'a Document, parts: &[String]) -> Option<&'a Bson> {
    let (last, prefix) = parts.split_last()?;
    let mut current = doc;
    for part in prefix {
        match current.get(part)? {
            Bson::Document(sub) => current = sub,
            _ => return None,
        }
    }
    current.get(last)
}

/// Sets (or with `None` removes) the value at `parts`, creating
/// sub-documents (and replacing non-documents) on the way.
fn set(doc: &mut Document, parts: &[String], value: Option<Bson>) {
    let Some((first, rest)) = parts.split_first() else {
        return;
    };
    if rest.is_empty() {
        match value {
            Some(v) => {
                doc.insert(first.clone(), v);
            }
            None => {
                doc.remove(first);
            }
        }
        return;
    }
    if !matches!(doc.get(first), Some(Bson::Document(_))) {
        if value.is_none() {
            return;
        }
        doc.insert(first.clone(), Document::new());
    }
    if let Some(Bson::Document(sub)) = doc.get_mut(first) {
        set(sub, rest, value);
    }
}
