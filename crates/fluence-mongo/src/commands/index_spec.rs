//! MongoDB index specifications and the encrypted indexes they stand for.
//!
//! An ascending or descending single-field index is a `range` index, a
//! hashed index an `eq` index, and a text index (on one or more fields) a
//! `text` index per field. Several MongoDB indexes may share one encrypted
//! index (`{a: 1}` and `{a: -1}` both need `range` on `a`). The `_id_`
//! index stands for no encrypted index: documents are addressed by `_id`.
//!
//! Specifications are parsed with MongoDB's rules and error codes where
//! MongoDB has the feature; what Fluence cannot build (compound, partial,
//! sparse, TTL, geospatial, wildcard indexes, collations) is refused with
//! `CannotCreateIndex` (67) naming it, and unknown options with
//! `InvalidIndexSpecificationOption` (197), as MongoDB refuses them.

use bson::{doc, Bson, Document};
use fluence_client::descriptor::IndexSpec;
use fluence_client::query::{values_equal, IndexKindSpec};

use super::args::truthy;
use crate::error::*;

/// Longest index name accepted. MongoDB bounds names only through its
/// namespace limit; the catalog that stores them needs a bound of its own.
pub(super) const INDEX_NAME_LEN_MAX: usize = 1024;
/// The name of the index every collection has.
pub(super) const ID_INDEX_NAME: &str = "_id_";
/// MongoDB's name for the location "hashed indexes cannot be unique".
const HASHED_UNIQUE: i32 = 16764;

/// The options MongoDB knows that Fluence does not build.
const UNSUPPORTED_OPTIONS: &[&str] = &[
    "partialFilterExpression",
    "expireAfterSeconds",
    "storageEngine",
    "2dsphereIndexVersion",
    "bits",
    "min",
    "max",
    "bucketSize",
    "wildcardProjection",
    "prepareUnique",
    "clustered",
    "columnstoreProjection",
];

/// One MongoDB index as applications see it.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct MongoIndex {
    pub name: String,
    /// The key pattern: as given for a single field, `{_fts: "text",
    /// _ftsx: 1}` for a text index (as MongoDB stores it).
    pub key: Document,
    pub unique: bool,
    /// The encrypted indexes it stands for, in key order; empty for `_id_`.
    pub fields: Vec<IndexSpec>,
}

impl MongoIndex {
    /// The `_id_` index.
    pub fn id() -> MongoIndex {
        MongoIndex {
            name: ID_INDEX_NAME.to_string(),
            key: doc! {"_id": 1},
            unique: false,
            fields: Vec::new(),
        }
    }

    pub fn is_id(&self) -> bool {
        self.fields.is_empty()
    }

    pub fn is_text(&self) -> bool {
        self.fields
            .first()
            .is_some_and(|f| f.kind == IndexKindSpec::Text)
    }

    /// The index MongoDB would list for encrypted indexes that no stored
    /// name covers: `path_1` for `range`, `path_hashed` for `eq`, and one
    /// text index over all the given `text` specs.
    pub fn default_for(fields: Vec<IndexSpec>) -> MongoIndex {
        debug_assert!(!fields.is_empty());
        let key = match fields.first().map(|f| f.kind) {
            Some(IndexKindSpec::Text) => {
                let mut key = Document::new();
                for field in &fields {
                    key.insert(field.path.clone(), "text");
                }
                key
            }
            Some(IndexKindSpec::Eq) => doc! {fields[0].path.clone(): "hashed"},
            _ => doc! {fields[0].path.clone(): 1},
        };
        let name = default_name(&key);
        MongoIndex {
            name,
            key: normalized_key(key, &fields),
            unique: fields.iter().any(|f| f.unique),
            fields,
        }
    }

    /// Parses one entry of `createIndexes.indexes` (or of the catalog,
    /// which stores entries as `listIndexes` shows them).
    pub fn parse(spec: &Document) -> Result<MongoIndex, CommandError> {
        let key = match spec.get("key") {
            Some(Bson::Document(key)) => key,
            Some(other) => {
                return Err(CommandError::type_mismatch(format!(
                    "The field 'key' must be an object, but got {:?}",
                    other.element_type()
                )))
            }
            None => {
                return Err(CommandError::new(
                    FAILED_TO_PARSE,
                    format!(
                        "The 'key' field is a required property of an index specification: {spec}"
                    ),
                ))
            }
        };
        let unique = spec.get("unique").is_some_and(truthy);
        check_options(spec)?;
        let fields = key_fields(key, spec, unique)?;
        let name = match spec.get("name") {
            Some(Bson::String(name)) => check_name(name)?,
            Some(other) => {
                return Err(CommandError::type_mismatch(format!(
                    "The field 'name' must be a string, but got {:?}",
                    other.element_type()
                )))
            }
            // Drivers always name their indexes; a spec without one gets
            // the name they would have generated.
            None => default_name(key),
        };
        if fields.is_empty() {
            return Ok(MongoIndex {
                name,
                ..MongoIndex::id()
            });
        }
        Ok(MongoIndex {
            name,
            key: normalized_key(key.clone(), &fields),
            unique,
            fields,
        })
    }

    /// The entry `listIndexes` returns.
    pub fn describe(&self) -> Document {
        let mut out = doc! {"v": 2, "key": self.key.clone(), "name": &self.name};
        if self.unique {
            out.insert("unique", true);
        }
        if self.is_text() {
            let mut weights = Document::new();
            for field in &self.fields {
                weights.insert(field.path.clone(), 1);
            }
            out.insert("weights", weights);
            out.insert("default_language", "none");
            out.insert("language_override", "language");
            out.insert("textIndexVersion", 3);
        }
        out
    }

    /// Same key pattern (all text indexes share one, as in MongoDB).
    pub fn same_key(&self, other: &MongoIndex) -> bool {
        values_equal(
            &Bson::Document(self.key.clone()),
            &Bson::Document(other.key.clone()),
        )
    }

    /// Same key pattern, options and fields: creating it again is a no-op.
    pub fn identical(&self, other: &MongoIndex) -> bool {
        self.same_key(other)
            && self.unique == other.unique
            && self.fields.len() == other.fields.len()
            && self.fields.iter().all(|f| other.fields.contains(f))
    }
}

/// The name drivers and the shell generate: `field_value` pairs joined by
/// `_` (`a_1`, `a_-1`, `a_hashed`, `title_text_body_text`).
pub(super) fn default_name(key: &Document) -> String {
    let parts: Vec<String> = key
        .iter()
        .map(|(field, value)| {
            let value = match value {
                Bson::String(s) => s.clone(),
                Bson::Int32(i) => i.to_string(),
                Bson::Int64(i) => i.to_string(),
                Bson::Double(d) => d.to_string(),
                other => other.to_string(),
            };
            format!("{field}_{value}")
        })
        .collect();
    parts.join("_")
}

/// A text index's key as MongoDB stores it; others as given.
fn normalized_key(key: Document, fields: &[IndexSpec]) -> Document {
    if fields
        .first()
        .is_some_and(|f| f.kind == IndexKindSpec::Text)
    {
        doc! {"_fts": "text", "_ftsx": 1}
    } else {
        key
    }
}

fn cannot_create(message: impl Into<String>) -> CommandError {
    CommandError::new(CANNOT_CREATE_INDEX, message)
}

fn check_name(name: &str) -> Result<String, CommandError> {
    if name.is_empty() {
        return Err(cannot_create("The index name cannot be empty"));
    }
    if name == "*" {
        return Err(cannot_create("The index name '*' is not valid"));
    }
    if name.contains('\0') {
        return Err(cannot_create("The index name cannot contain a NUL byte"));
    }
    if name.len() > INDEX_NAME_LEN_MAX {
        return Err(cannot_create(format!(
            "The index name is longer than {INDEX_NAME_LEN_MAX} bytes"
        )));
    }
    Ok(name.to_string())
}

/// Refuses options Fluence does not implement; accepts those that change
/// nothing (`background`, `sparse: false`, the simple collation, the text
/// options `listIndexes` itself reports).
fn check_options(spec: &Document) -> Result<(), CommandError> {
    for (option, value) in spec {
        match option.as_str() {
            "key" | "name" | "unique" | "background" | "ns" | "weights" => {}
            "v" => match super::args::integral(value) {
                Some(1 | 2) => {}
                _ => {
                    return Err(cannot_create(format!(
                        "Invalid index specification {spec}; index version {value} is not supported, use 1 or 2"
                    )))
                }
            },
            "sparse" | "hidden" if !truthy(value) => {}
            "sparse" | "hidden" => {
                return Err(cannot_create(format!(
                    "{option} indexes are not supported by Fluence (index specification {spec})"
                )))
            }
            "collation" => match value {
                Bson::Document(c) if c.is_empty() || c.get_str("locale").ok() == Some("simple") => {}
                _ => {
                    return Err(cannot_create(format!(
                        "collation on an index is not supported by Fluence: only the simple \
                         collation exists (index specification {spec})"
                    )))
                }
            },
            "default_language" if value.as_str() == Some("none") => {}
            "language_override" if value.as_str() == Some("language") => {}
            "textIndexVersion" if super::args::integral(value) == Some(3) => {}
            "default_language" | "language_override" | "textIndexVersion" => {
                return Err(cannot_create(format!(
                    "{option}: {value} is not supported by Fluence: text search has no language \
                     stemming (index specification {spec})"
                )))
            }
            other if UNSUPPORTED_OPTIONS.contains(&other) => {
                return Err(cannot_create(format!(
                    "{other} is not supported by Fluence (index specification {spec})"
                )))
            }
            other => {
                return Err(CommandError::new(
                    INVALID_INDEX_SPECIFICATION_OPTION,
                    format!(
                        "The field '{other}' is not valid for an index specification. \
                         Specification: {spec}"
                    ),
                ))
            }
        }
    }
    Ok(())
}

/// The encrypted indexes a key pattern needs; empty for the `_id` index.
fn key_fields(
    key: &Document,
    spec: &Document,
    unique: bool,
) -> Result<Vec<IndexSpec>, CommandError> {
    if key.is_empty() {
        return Err(cannot_create("Index keys cannot be empty."));
    }
    let weights = match spec.get("weights") {
        None => None,
        Some(Bson::Document(w)) => Some(w),
        Some(_) => {
            return Err(CommandError::type_mismatch(
                "The field 'weights' must be an object",
            ))
        }
    };
    let text = key
        .iter()
        .any(|(field, value)| value.as_str() == Some("text") || field == "_fts");
    if !text && weights.is_some() {
        return Err(cannot_create(
            "the 'weights' option is only valid for text indexes",
        ));
    }
    if text {
        return text_fields(key, weights, unique);
    }
    if key.len() > 1 {
        return Err(cannot_create(format!(
            "compound indexes are not supported by Fluence (key {key}): create one index per field"
        )));
    }
    let (path, value) = key.iter().next().expect("key is not empty");
    check_path(path)?;
    let kind = match value {
        Bson::String(s) if s == "hashed" => {
            if unique {
                return Err(CommandError::new(
                    HASHED_UNIQUE,
                    "Currently hashed indexes cannot guarantee uniqueness. Use a regular index.",
                ));
            }
            IndexKindSpec::Eq
        }
        Bson::String(s)
            if matches!(
                s.as_str(),
                "2d" | "2dsphere" | "geoHaystack" | "columnstore"
            ) =>
        {
            return Err(cannot_create(format!(
                "{s} indexes are not supported by Fluence (key {key})"
            )))
        }
        Bson::String(s) => return Err(cannot_create(format!("Unknown index plugin '{s}'"))),
        v @ (Bson::Int32(_) | Bson::Int64(_) | Bson::Double(_) | Bson::Decimal128(_)) => {
            if values_equal(v, &Bson::Int32(0)) || matches!(v, Bson::Double(d) if d.is_nan()) {
                return Err(cannot_create(format!(
                    "Values in the index key pattern cannot be 0 or NaN (key {key})"
                )));
            }
            IndexKindSpec::Range
        }
        other => {
            return Err(cannot_create(format!(
                "Values in v:2 index key pattern cannot be of type {:?}. Only numbers > 0, \
                 numbers < 0, and strings are allowed.",
                other.element_type()
            )))
        }
    };
    if path == "_id" {
        if kind == IndexKindSpec::Range && !unique {
            return Ok(Vec::new());
        }
        return Err(id_refused(key));
    }
    Ok(vec![IndexSpec {
        unique,
        ..IndexSpec::new(path.clone(), kind)
    }])
}

fn id_refused(key: &Document) -> CommandError {
    cannot_create(format!(
        "Fluence indexes _id by document id; an index {key} on _id is not supported"
    ))
}

/// `{a: "text", b: "text"}`, or `{_fts: "text", _ftsx: 1}` with the fields
/// in `weights` (as `listIndexes` shows a text index).
fn text_fields(
    key: &Document,
    weights: Option<&Document>,
    unique: bool,
) -> Result<Vec<IndexSpec>, CommandError> {
    if unique {
        return Err(cannot_create(format!(
            "a text index cannot be unique (key {key})"
        )));
    }
    let paths: Vec<&String> = if key.contains_key("_fts") {
        let stored = doc! {"_fts": "text", "_ftsx": 1};
        if !values_equal(&Bson::Document(key.clone()), &Bson::Document(stored)) {
            return Err(cannot_create(format!(
                "compound text indexes are not supported by Fluence (key {key})"
            )));
        }
        match weights {
            Some(w) if !w.is_empty() => w.keys().collect(),
            _ => return Err(cannot_create(
                "a text index given as {_fts: 'text', _ftsx: 1} needs 'weights' naming its fields",
            )),
        }
    } else {
        if let Some((field, _)) = key.iter().find(|(_, v)| v.as_str() != Some("text")) {
            return Err(cannot_create(format!(
                "compound text indexes with non-text fields are not supported by Fluence (field \
                 '{field}' of key {key})"
            )));
        }
        if let Some(w) = weights {
            if let Some(extra) = w.keys().find(|k| !key.contains_key(k.as_str())) {
                return Err(cannot_create(format!(
                    "weights name '{extra}', which the text index key {key} does not"
                )));
            }
        }
        key.keys().collect()
    };
    if let Some((field, weight)) =
        weights.and_then(|w| w.iter().find(|(_, v)| !values_equal(v, &Bson::Int32(1))))
    {
        return Err(cannot_create(format!(
            "text index weights are not supported by Fluence (weight {weight} for '{field}'); \
             every field weighs 1"
        )));
    }
    let mut fields = Vec::with_capacity(paths.len());
    for path in paths {
        if path == "$**" || path.ends_with(".$**") {
            return Err(cannot_create(
                "wildcard text indexes ($**) are not supported by Fluence: name the fields",
            ));
        }
        check_path(path)?;
        if path == "_id" || path.starts_with("_id.") {
            return Err(id_refused(key));
        }
        fields.push(IndexSpec::new(path.clone(), IndexKindSpec::Text));
    }
    Ok(fields)
}

fn check_path(path: &str) -> Result<(), CommandError> {
    if path == "$**" || path.ends_with(".$**") {
        return Err(cannot_create(format!(
            "wildcard indexes ({path}) are not supported by Fluence"
        )));
    }
    if path.is_empty()
        || path.len() > fluence_client::descriptor::FIELD_PATH_LEN_MAX
        || path
            .split('.')
            .any(|part| part.is_empty() || part.starts_with('$'))
    {
        return Err(cannot_create(format!(
            "Index key contains an illegal field name: '{path}'"
        )));
    }
    if path.starts_with("_id.") {
        return Err(cannot_create(format!(
            "Fluence indexes _id by document id; an index on '{path}' is not supported"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(spec: Document) -> Result<MongoIndex, CommandError> {
        MongoIndex::parse(&spec)
    }

    fn code(spec: Document) -> i32 {
        parse(spec).unwrap_err().code
    }

    #[test]
    fn key_patterns_map_onto_index_kinds() {
        let range = parse(doc! {"key": {"a.b": -1}, "name": "down"}).unwrap();
        assert_eq!(
            range.fields,
            vec![IndexSpec::new("a.b", IndexKindSpec::Range)]
        );
        assert_eq!(range.key, doc! {"a.b": -1});
        assert_eq!(range.name, "down");
        let hashed = parse(doc! {"key": {"e": "hashed"}}).unwrap();
        assert_eq!(hashed.fields, vec![IndexSpec::new("e", IndexKindSpec::Eq)]);
        assert_eq!(hashed.name, "e_hashed");
        let text = parse(doc! {"key": {"title": "text", "body": "text"}}).unwrap();
        assert_eq!(text.name, "title_text_body_text");
        assert_eq!(text.key, doc! {"_fts": "text", "_ftsx": 1});
        assert_eq!(text.fields.len(), 2);
        assert!(text.is_text());
        let unique = parse(doc! {"key": {"email": 1}, "unique": true}).unwrap();
        assert!(unique.unique && unique.fields[0].unique);
        assert_eq!(unique.name, "email_1");
        assert!(parse(doc! {"key": {"_id": 1}, "name": "_id_"})
            .unwrap()
            .is_id());
    }

    #[test]
    fn listed_indexes_parse_back_to_themselves() {
        for spec in [
            doc! {"key": {"a": 1}, "name": "a_1", "unique": true},
            doc! {"key": {"a": "hashed"}, "name": "h"},
            doc! {"key": {"t": "text", "u": "text"}, "name": "tu"},
        ] {
            let index = parse(spec).unwrap();
            assert_eq!(MongoIndex::parse(&index.describe()).unwrap(), index);
        }
    }

    #[test]
    fn defaults_name_indexes_as_drivers_do() {
        let range = MongoIndex::default_for(vec![IndexSpec::new("age", IndexKindSpec::Range)]);
        assert_eq!(
            (range.name.as_str(), &range.key),
            ("age_1", &doc! {"age": 1})
        );
        let eq = MongoIndex::default_for(vec![IndexSpec::new("e", IndexKindSpec::Eq)]);
        assert_eq!(eq.name, "e_hashed");
        let text = MongoIndex::default_for(vec![
            IndexSpec::new("a", IndexKindSpec::Text),
            IndexSpec::new("b", IndexKindSpec::Text),
        ]);
        assert_eq!(text.name, "a_text_b_text");
        assert_eq!(default_name(&doc! {"a": -1}), "a_-1");
    }

    #[test]
    fn unsupported_indexes_and_options_are_named() {
        let refused = |spec: Document, needle: &str| {
            let error = parse(spec).unwrap_err();
            assert!(error.message.contains(needle), "{error:?}");
            error.code
        };
        assert_eq!(refused(doc! {"key": {"a": 1, "b": 1}}, "compound"), 67);
        assert_eq!(
            refused(doc! {"key": {"a": 1}, "sparse": true}, "sparse"),
            67
        );
        assert_eq!(
            refused(
                doc! {"key": {"a": 1}, "partialFilterExpression": {"a": 1}},
                "partialFilterExpression"
            ),
            67
        );
        assert_eq!(
            refused(
                doc! {"key": {"a": 1}, "expireAfterSeconds": 10},
                "expireAfterSeconds"
            ),
            67
        );
        assert_eq!(
            refused(
                doc! {"key": {"a": 1}, "collation": {"locale": "fr"}},
                "collation"
            ),
            67
        );
        assert_eq!(refused(doc! {"key": {"a": "2dsphere"}}, "2dsphere"), 67);
        assert_eq!(refused(doc! {"key": {"$**": 1}}, "wildcard"), 67);
        assert_eq!(refused(doc! {"key": {"a": 1}, "bogus": 1}, "bogus"), 197);
        assert_eq!(refused(doc! {"key": {"a": "text", "b": 1}}, "non-text"), 67);
        assert_eq!(refused(doc! {"key": {"a": 1, "_id": -1}}, "compound"), 67);
        assert_eq!(refused(doc! {"key": {"_id": "hashed"}}, "_id"), 67);
        assert_eq!(
            refused(doc! {"key": {"t": "text"}, "unique": true}, "unique"),
            67
        );
        assert_eq!(code(doc! {"key": {"h": "hashed"}, "unique": true}), 16764);
        assert_eq!(code(doc! {"key": {"a": 0}}), 67);
        assert_eq!(code(doc! {"key": {"a": "nope"}}), 67);
        assert_eq!(code(doc! {"key": {}}), 67);
        assert_eq!(code(doc! {"name": "x"}), 9);
        assert_eq!(code(doc! {"key": 1}), 14);
        assert_eq!(code(doc! {"key": {"a": 1}, "name": 5}), 14);
        assert_eq!(code(doc! {"key": {"a": 1}, "name": "*"}), 67);
        assert_eq!(code(doc! {"key": {"a": 1}, "name": "n".repeat(2000)}), 67);
        assert_eq!(code(doc! {"key": {"a..b": 1}}), 67);
        // Options that change nothing are accepted.
        parse(
            doc! {"key": {"a": 1}, "v": 2, "background": true, "sparse": false,
            "collation": {"locale": "simple"}},
        )
        .unwrap();
    }

    #[test]
    fn same_key_and_identical() {
        let up = parse(doc! {"key": {"a": 1}, "name": "x"}).unwrap();
        let up_double = parse(doc! {"key": {"a": 1.0}, "name": "y"}).unwrap();
        let down = parse(doc! {"key": {"a": -1}}).unwrap();
        assert!(up.same_key(&up_double) && up.identical(&up_double));
        assert!(!up.same_key(&down));
        let unique = parse(doc! {"key": {"a": 1}, "unique": true}).unwrap();
        assert!(up.same_key(&unique) && !up.identical(&unique));
        let t1 = parse(doc! {"key": {"a": "text"}}).unwrap();
        let t2 = parse(doc! {"key": {"b": "text"}}).unwrap();
        assert!(t1.same_key(&t2) && !t1.identical(&t2));
    }
}
