//! Parsing a filter document into an [`Expr`] tree, with MongoDB's shape
//! checks and error wording (from the server's `MatchExpressionParser`).

use bson::{Bson, Document};

use super::super::compare::{compare_bson, values_equal};
use super::super::error::QueryError;
use super::super::limits::{check_depth, FILTER_TREE_DEPTH_MAX};
use super::super::number::Number;
use super::super::path::FieldPath;
use super::text::TextSearch;
use super::{CompareOp, Expr, Filter, TypeSet};

/// Parses a MongoDB filter document.
pub fn parse_filter(filter: &Document) -> Result<Filter, QueryError> {
    check_depth(filter)?;
    let mut parser = Parser { text_seen: false };
    let root = parser.parse_document(
        filter,
        Level {
            depth: 0,
            under_nor: false,
        },
    )?;
    Ok(Filter::new(root))
}

/// Path operators Fluence implements (parsed in `parse_operator`).
const SUPPORTED_PATH_OPERATORS: &[&str] = &[
    "$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$exists", "$type", "$not",
];

/// Whether `name` is one of MongoDB's path (field-level) query operators,
/// implemented or not. `$pull` uses this to tell a condition on element
/// values from a query on element documents, as MongoDB does.
pub(crate) fn is_path_operator(name: &str) -> bool {
    SUPPORTED_PATH_OPERATORS.contains(&name) || UNSUPPORTED_PATH_OPERATORS.contains(&name)
}

/// Path operators MongoDB has and Fluence does not implement.
const UNSUPPORTED_PATH_OPERATORS: &[&str] = &[
    "$regex",
    "$options",
    "$elemMatch",
    "$size",
    "$all",
    "$mod",
    "$bitsAllSet",
    "$bitsAllClear",
    "$bitsAnySet",
    "$bitsAnyClear",
    "$geoWithin",
    "$geoIntersects",
    "$within",
    "$near",
    "$nearSphere",
    "$geoNear",
    "$jsonSchema",
];

/// Top-level operators MongoDB has and Fluence does not implement.
const UNSUPPORTED_TOP_LEVEL_OPERATORS: &[&str] = &["$where", "$expr", "$jsonSchema", "$sampleRate"];

#[derive(Debug, Clone, Copy)]
struct Level {
    /// Nesting of `$and`/`$or`/`$nor`/`$not` above this point.
    depth: usize,
    /// Inside a `$nor`, where MongoDB refuses `$text`.
    under_nor: bool,
}

impl Level {
    fn deeper(self, under_nor: bool) -> Result<Level, QueryError> {
        let depth = self.depth + 1;
        if depth > FILTER_TREE_DEPTH_MAX {
            return Err(QueryError::bad_value(format!(
                "exceeded maximum query tree depth of {FILTER_TREE_DEPTH_MAX}"
            )));
        }
        Ok(Level {
            depth,
            under_nor: self.under_nor || under_nor,
        })
    }
}

struct Parser {
    text_seen: bool,
}

impl Parser {
    fn parse_document(&mut self, doc: &Document, level: Level) -> Result<Expr, QueryError> {
        let mut children = Vec::new();
        for (key, value) in doc {
            if key.starts_with('$') {
                if let Some(expr) = self.parse_top_level_operator(key, value, level)? {
                    children.push(expr);
                }
            } else if is_expression_document(value) {
                if let Bson::Document(sub) = value {
                    self.parse_sub(key, sub, level, &mut children)?;
                }
            } else if matches!(value, Bson::RegularExpression(_)) {
                return Err(QueryError::unsupported("$regex"));
            } else {
                children.push(compare_leaf(key, CompareOp::Eq, value)?);
            }
        }
        Ok(single_or_and(children))
    }

    fn parse_top_level_operator(
        &mut self,
        key: &str,
        value: &Bson,
        level: Level,
    ) -> Result<Option<Expr>, QueryError> {
        let expr = match key {
            "$and" => Expr::And(self.parse_tree(key, value, level.deeper(false)?)?),
            "$or" => Expr::Or(self.parse_tree(key, value, level.deeper(false)?)?),
            "$nor" => Expr::Nor(self.parse_tree(key, value, level.deeper(true)?)?),
            "$text" => {
                // MongoDB's canonical-query validation.
                if level.under_nor {
                    return Err(QueryError::bad_value("text expression not allowed in nor"));
                }
                if self.text_seen {
                    return Err(QueryError::bad_value("Too many text expressions"));
                }
                self.text_seen = true;
                Expr::Text(TextSearch::parse(value)?)
            }
            "$comment" => return Ok(None),
            "$alwaysTrue" | "$alwaysFalse" => {
                let is_one = Number::of(value).is_some() && values_equal(value, &Bson::Int32(1));
                if !is_one {
                    return Err(QueryError::failed_to_parse(format!(
                        "{key} must be an integer value of 1"
                    )));
                }
                if key == "$alwaysTrue" {
                    Expr::AlwaysTrue
                } else {
                    Expr::AlwaysFalse
                }
            }
            // DBRef fields are plain equality on the field of that name.
            "$ref" | "$id" | "$db" => compare_leaf(key, CompareOp::Eq, value)?,
            _ if UNSUPPORTED_TOP_LEVEL_OPERATORS.contains(&key) => {
                return Err(QueryError::unsupported(key))
            }
            _ => {
                return Err(QueryError::UnknownTopLevelOperator {
                    operator: key.to_string(),
                })
            }
        };
        Ok(Some(expr))
    }

    fn parse_tree(
        &mut self,
        name: &str,
        value: &Bson,
        level: Level,
    ) -> Result<Vec<Expr>, QueryError> {
        let Bson::Array(items) = value else {
            return Err(QueryError::bad_value(format!("{name} must be an array")));
        };
        if items.is_empty() {
            return Err(QueryError::bad_value(
                "$and/$or/$nor must be a nonempty array",
            ));
        }
        items
            .iter()
            .map(|item| match item {
                Bson::Document(d) => self.parse_document(d, level),
                _ => Err(QueryError::bad_value(
                    "$or/$and/$nor entries need to be full objects",
                )),
            })
            .collect()
    }

    /// Parses `{path: {$op: value, ...}}`; each operator becomes one child of
    /// the enclosing conjunction.
    fn parse_sub(
        &mut self,
        path: &str,
        sub: &Document,
        level: Level,
        out: &mut Vec<Expr>,
    ) -> Result<(), QueryError> {
        for (op, value) in sub {
            out.push(self.parse_sub_field(path, op, value, level)?);
        }
        Ok(())
    }

    fn parse_sub_field(
        &mut self,
        path: &str,
        op: &str,
        value: &Bson,
        level: Level,
    ) -> Result<Expr, QueryError> {
        let is_regex = matches!(value, Bson::RegularExpression(_));
        let range = |op| {
            if is_regex {
                return Err(QueryError::bad_value(format!(
                    "Can't have RegEx as arg to predicate over field '{path}'."
                )));
            }
            compare_leaf(path, op, value)
        };
        match op {
            "$eq" => compare_leaf(path, CompareOp::Eq, value),
            "$ne" => {
                if is_regex {
                    return Err(QueryError::bad_value("Can't have regex as arg to $ne."));
                }
                Ok(Expr::Not(Box::new(compare_leaf(
                    path,
                    CompareOp::Eq,
                    value,
                )?)))
            }
            "$gt" => range(CompareOp::Gt),
            "$gte" => range(CompareOp::Gte),
            "$lt" => range(CompareOp::Lt),
            "$lte" => range(CompareOp::Lte),
            "$in" => in_leaf(path, "$in", value),
            "$nin" => Ok(Expr::Not(Box::new(in_leaf(path, "$nin", value)?))),
            "$exists" => {
                let exists = Expr::Exists {
                    path: FieldPath::new(path),
                };
                Ok(if true_value(value) {
                    exists
                } else {
                    Expr::Not(Box::new(exists))
                })
            }
            "$type" => Ok(Expr::Type {
                path: FieldPath::new(path),
                types: parse_types(value)?,
            }),
            "$not" => {
                let level = level.deeper(false)?;
                let inner = match value {
                    Bson::RegularExpression(_) => return Err(QueryError::unsupported("$regex")),
                    Bson::Document(d) if d.is_empty() => {
                        return Err(QueryError::bad_value("$not cannot be empty"))
                    }
                    Bson::Document(d) => d,
                    _ => return Err(QueryError::bad_value("$not needs a regex or a document")),
                };
                let mut children = Vec::new();
                self.parse_sub(path, inner, level, &mut children)?;
                Ok(Expr::Not(Box::new(single_or_and(children))))
            }
            "$where" => Err(QueryError::bad_value("$where cannot be applied to a field")),
            _ if UNSUPPORTED_PATH_OPERATORS.contains(&op) => {
                // `$options` only ever accompanies `$regex`.
                let name = if op == "$options" { "$regex" } else { op };
                Err(QueryError::unsupported(name))
            }
            _ => Err(QueryError::UnknownOperator {
                operator: op.to_string(),
            }),
        }
    }
}

/// `$type`'s operand: a type alias or number, or a non-empty array of
/// them.
fn parse_types(value: &Bson) -> Result<Vec<TypeSet>, QueryError> {
    let one = |v: &Bson| -> Result<TypeSet, QueryError> {
        match v {
            Bson::String(alias) => type_alias(alias)
                .ok_or_else(|| QueryError::bad_value(format!("Unknown type name alias: {alias}"))),
            n @ (Bson::Int32(_) | Bson::Int64(_) | Bson::Double(_)) => {
                let code = match n {
                    Bson::Int32(i) => Some(*i),
                    Bson::Int64(i) => i32::try_from(*i).ok(),
                    Bson::Double(d) if d.fract() == 0.0 => Some(*d as i32),
                    _ => None,
                };
                match code {
                    Some(c @ (-1 | 1..=19 | 127)) => Ok(TypeSet::Code(c)),
                    _ => Err(QueryError::bad_value(format!(
                        "Invalid numerical type code: {n}"
                    ))),
                }
            }
            other => Err(QueryError::type_mismatch(format!(
                "type must be represented as a number or a string, not {other}"
            ))),
        }
    };
    match value {
        Bson::Array(items) if items.is_empty() => Err(QueryError::failed_to_parse(
            "a $type array must not be empty",
        )),
        Bson::Array(items) => items.iter().map(one).collect(),
        other => Ok(vec![one(other)?]),
    }
}

/// MongoDB's `$type` aliases.
fn type_alias(alias: &str) -> Option<TypeSet> {
    let code = match alias {
        "number" => return Some(TypeSet::Number),
        "double" => 1,
        "string" => 2,
        "object" => 3,
        "array" => 4,
        "binData" => 5,
        "undefined" => 6,
        "objectId" => 7,
        "bool" => 8,
        "date" => 9,
        "null" => 10,
        "regex" => 11,
        "dbPointer" => 12,
        "javascript" => 13,
        "symbol" => 14,
        "javascriptWithScope" => 15,
        "int" => 16,
        "timestamp" => 17,
        "long" => 18,
        "decimal" => 19,
        "minKey" => -1,
        "maxKey" => 127,
        _ => return None,
    };
    Some(TypeSet::Code(code))
}

fn single_or_and(mut children: Vec<Expr>) -> Expr {
    if children.len() == 1 {
        if let Some(only) = children.pop() {
            return only;
        }
    }
    Expr::And(children)
}

fn compare_leaf(path: &str, op: CompareOp, value: &Bson) -> Result<Expr, QueryError> {
    if matches!(value, Bson::Undefined) {
        return Err(QueryError::bad_value("cannot compare to undefined"));
    }
    Ok(Expr::Compare {
        path: FieldPath::new(path),
        op,
        value: value.clone(),
    })
}

fn in_leaf(path: &str, name: &str, value: &Bson) -> Result<Expr, QueryError> {
    let Bson::Array(items) = value else {
        return Err(QueryError::bad_value(format!("{name} needs an array")));
    };
    for item in items {
        if is_expression_document(item) {
            return Err(QueryError::bad_value("cannot nest $ under $in"));
        }
        if matches!(item, Bson::RegularExpression(_)) {
            return Err(QueryError::unsupported("$regex"));
        }
        if matches!(item, Bson::Undefined) {
            return Err(QueryError::bad_value(
                "InMatchExpression equality cannot be undefined",
            ));
        }
    }
    // Sorted once here so evaluation can binary-search long lists.
    let mut values = items.clone();
    values.sort_by(compare_bson);
    Ok(Expr::In {
        path: FieldPath::new(path),
        values,
    })
}

/// MongoDB's notion of an operator document: a non-empty document whose
/// first field starts with `$`, unless it is a DBRef (`$ref` and `$id`).
pub(crate) fn is_expression_document(value: &Bson) -> bool {
    let Bson::Document(d) = value else {
        return false;
    };
    let Some((first, _)) = d.iter().next() else {
        return false;
    };
    first.starts_with('$') && !(d.contains_key("$ref") && d.contains_key("$id"))
}

/// `BSONElement::trueValue`: false for `false`, numeric zero, null and
/// undefined; true for everything else (NaN included).
pub(crate) fn true_value(value: &Bson) -> bool {
    match value {
        Bson::Boolean(b) => *b,
        Bson::Null | Bson::Undefined => false,
        // NaN is not equal to zero, so it is true, as in MongoDB.
        Bson::Int32(_) | Bson::Int64(_) | Bson::Double(_) | Bson::Decimal128(_) => {
            !values_equal(value, &Bson::Int32(0))
        }
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::doc;

    fn err(filter: Document) -> QueryError {
        parse_filter(&filter).unwrap_err()
    }

    fn msg(filter: Document) -> String {
        err(filter).to_string()
    }

    #[test]
    fn builds_the_mongodb_tree() {
        let f = parse_filter(&doc! {"a": 1, "b": {"$ne": 2, "$gt": 0}}).unwrap();
        assert_eq!(
            f.expr(),
            &Expr::And(vec![
                Expr::Compare {
                    path: FieldPath::new("a"),
                    op: CompareOp::Eq,
                    value: Bson::Int32(1)
                },
                Expr::Not(Box::new(Expr::Compare {
                    path: FieldPath::new("b"),
                    op: CompareOp::Eq,
                    value: Bson::Int32(2)
                })),
                Expr::Compare {
                    path: FieldPath::new("b"),
                    op: CompareOp::Gt,
                    value: Bson::Int32(0)
                },
            ])
        );
        // A single condition is not wrapped; $comment disappears.
        let f = parse_filter(&doc! {"a": {"$exists": false}, "$comment": "x"}).unwrap();
        assert_eq!(
            f.expr(),
            &Expr::Not(Box::new(Expr::Exists {
                path: FieldPath::new("a")
            }))
        );
    }

    #[test]
    fn literal_documents_versus_operator_documents() {
        // First field without $: a literal embedded document.
        let f = parse_filter(&doc! {"a": {"b": 1, "$gt": 2}}).unwrap();
        assert!(matches!(
            f.expr(),
            Expr::Compare {
                op: CompareOp::Eq,
                ..
            }
        ));
        // DBRefs are literals even though they start with $.
        let f = parse_filter(&doc! {"a": {"$ref": "c", "$id": 1}}).unwrap();
        assert!(matches!(
            f.expr(),
            Expr::Compare {
                op: CompareOp::Eq,
                ..
            }
        ));
        // First field with $: every field must be an operator.
        assert_eq!(msg(doc! {"a": {"$gt": 1, "b": 2}}), "unknown operator: b");
    }

    #[test]
    fn unknown_and_unsupported_operators_are_named() {
        assert_eq!(msg(doc! {"a": {"$foo": 1}}), "unknown operator: $foo");
        assert_eq!(msg(doc! {"$foo": 1}), "unknown top level operator: $foo");
        assert_eq!(msg(doc! {"a": {"$text": 1}}), "unknown operator: $text");
        for (filter, op) in [
            (doc! {"a": {"$regex": "x"}}, "$regex"),
            (doc! {"a": {"$options": "i", "$regex": "x"}}, "$regex"),
            (doc! {"a": {"$elemMatch": {"b": 1}}}, "$elemMatch"),
            (doc! {"a": {"$size": 1}}, "$size"),
            (doc! {"a": {"$all": [1]}}, "$all"),
            (doc! {"$where": "true"}, "$where"),
            (doc! {"$expr": {"$eq": ["$a", 1]}}, "$expr"),
        ] {
            assert_eq!(
                err(filter),
                QueryError::UnsupportedOperator {
                    operator: op.to_string()
                }
            );
        }
        let re = Bson::RegularExpression(bson::Regex {
            pattern: "x".try_into().unwrap(),
            options: "".try_into().unwrap(),
        });
        assert!(matches!(
            err(doc! {"a": re.clone()}),
            QueryError::UnsupportedOperator { .. }
        ));
        assert!(matches!(
            err(doc! {"a": {"$in": [re.clone()]}}),
            QueryError::UnsupportedOperator { .. }
        ));
        assert!(matches!(
            err(doc! {"a": {"$not": re.clone()}}),
            QueryError::UnsupportedOperator { .. }
        ));
        assert_eq!(
            msg(doc! {"a": {"$gt": re.clone()}}),
            "Can't have RegEx as arg to predicate over field 'a'."
        );
        assert_eq!(
            msg(doc! {"a": {"$ne": re.clone()}}),
            "Can't have regex as arg to $ne."
        );
        // $eq against a regex is plain value equality.
        assert!(parse_filter(&doc! {"a": {"$eq": re}}).is_ok());
        assert_eq!(
            msg(doc! {"a": {"$where": "x"}}),
            "$where cannot be applied to a field"
        );
    }

    #[test]
    fn shapes_are_validated_with_mongodb_messages() {
        assert_eq!(msg(doc! {"a": {"$in": 1}}), "$in needs an array");
        assert_eq!(msg(doc! {"a": {"$nin": "x"}}), "$nin needs an array");
        assert_eq!(
            msg(doc! {"a": {"$in": [{"$gt": 1}]}}),
            "cannot nest $ under $in"
        );
        assert_eq!(msg(doc! {"$and": 1}), "$and must be an array");
        assert_eq!(msg(doc! {"$or": {}}), "$or must be an array");
        assert_eq!(
            msg(doc! {"$and": []}),
            "$and/$or/$nor must be a nonempty array"
        );
        assert_eq!(
            msg(doc! {"$nor": [1]}),
            "$or/$and/$nor entries need to be full objects"
        );
        assert_eq!(
            msg(doc! {"a": {"$not": 1}}),
            "$not needs a regex or a document"
        );
        assert_eq!(msg(doc! {"a": {"$not": {}}}), "$not cannot be empty");
        assert_eq!(msg(doc! {"a": {"$not": {"b": 1}}}), "unknown operator: b");
        assert_eq!(
            msg(doc! {"a": Bson::Undefined}),
            "cannot compare to undefined"
        );
        assert_eq!(
            msg(doc! {"a": {"$lt": Bson::Undefined}}),
            "cannot compare to undefined"
        );
        assert_eq!(
            msg(doc! {"$alwaysTrue": 2}),
            "$alwaysTrue must be an integer value of 1"
        );
        assert!(parse_filter(&doc! {"$alwaysFalse": 1.0}).is_ok());
    }

    #[test]
    fn exists_takes_any_value_by_truthiness() {
        for (value, exists) in [
            (Bson::Boolean(true), true),
            (Bson::Boolean(false), false),
            (Bson::Int32(0), false),
            (Bson::Double(0.5), true),
            (Bson::Null, false),
            (Bson::String("false".into()), true),
        ] {
            let f = parse_filter(&doc! {"a": {"$exists": value}}).unwrap();
            assert_eq!(matches!(f.expr(), Expr::Exists { .. }), exists);
        }
    }

    #[test]
    fn text_placement_rules() {
        assert!(parse_filter(&doc! {"$or": [{"$text": {"$search": "x"}}, {"a": 1}]}).is_ok());
        assert_eq!(
            msg(doc! {"$nor": [{"$text": {"$search": "x"}}]}),
            "text expression not allowed in nor"
        );
        assert_eq!(
            msg(doc! {"$text": {"$search": "x"}, "$and": [{"$text": {"$search": "y"}}]}),
            "Too many text expressions"
        );
        let f = parse_filter(&doc! {"$and": [{"$text": {"$search": "x"}}]}).unwrap();
        assert_eq!(f.text_search().map(|t| t.search()), Some("x"));
    }

    #[test]
    fn depth_is_bounded() {
        let nested_not = |levels: usize| {
            let mut inner = doc! {"$eq": 1};
            for _ in 0..levels {
                inner = doc! {"$not": inner};
            }
            doc! {"a": inner}
        };
        assert!(parse_filter(&nested_not(FILTER_TREE_DEPTH_MAX)).is_ok());
        assert!(msg(nested_not(FILTER_TREE_DEPTH_MAX + 1))
            .contains("exceeded maximum query tree depth"));
        // Deeply nested BSON is refused before any recursion.
        let mut deep = doc! {"a": 1};
        for _ in 0..150 {
            deep = doc! {"$and": [deep]};
        }
        assert!(msg(deep).contains("maximum nested object depth"));
    }
}
