//! `$getField`, `$setField` and `$unsetField`: read, set or remove one
//! field named by a constant string, which, unlike a field path, may
//! contain `.` or start with `$` (wrapped in `$literal`). Pipeline updates
//! use them to write such fields (MongoDB 5.0+).

use bson::{Bson, Document};

use super::super::bson_type::type_name;
use super::super::error::QueryError;
use super::expr::{parse_at, Expr, Value};

/// Which of the three operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldOp {
    Get,
    Set,
    Unset,
}

impl FieldOp {
    fn name(self) -> &'static str {
        match self {
            FieldOp::Get => "$getField",
            FieldOp::Set => "$setField",
            FieldOp::Unset => "$unsetField",
        }
    }

    /// MongoDB's error locations for the operator: (unknown argument,
    /// missing field, missing input, missing value, input not an object,
    /// field not constant, field not a string).
    fn codes(self) -> [i32; 7] {
        match self {
            FieldOp::Get => [3041701, 3041702, 3041703, 0, 3041705, 5654602, 5654601],
            FieldOp::Set | FieldOp::Unset => [
                4161100, 4161102, 4161103, 4161104, 4161105, 4161106, 4161107,
            ],
        }
    }
}

/// A parsed `$getField` / `$setField` / `$unsetField`.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedField {
    op: FieldOp,
    field: String,
    input: Expr,
    /// The value `$setField` sets; `$$REMOVE` (or `$unsetField`) removes.
    value: Option<Expr>,
}

fn location(code: i32, message: String) -> QueryError {
    QueryError::Location { code, message }
}

impl NamedField {
    /// Parses the argument of operator `name`, one of the three.
    pub fn parse(name: &str, argument: &Bson, depth: usize) -> Result<NamedField, QueryError> {
        let op = match name {
            "$getField" => FieldOp::Get,
            "$setField" => FieldOp::Set,
            _ => FieldOp::Unset,
        };
        let [unknown, no_field, no_input, no_value, _, not_constant, not_string] = op.codes();
        let name = op.name();
        // `{$getField: "a"}` is short for `{field: "a", input: "$$CURRENT"}`.
        let spec = match argument {
            Bson::Document(spec)
                if op != FieldOp::Get || !spec.keys().any(|k| k.starts_with('$')) =>
            {
                spec.clone()
            }
            other if op == FieldOp::Get => {
                let mut spec = Document::new();
                spec.insert("field", other.clone());
                spec.insert("input", "$$CURRENT");
                spec
            }
            other => {
                return Err(location(
                    4161100,
                    format!(
                        "{name} only supports an object as its argument, not {}",
                        type_name(other)
                    ),
                ))
            }
        };
        for key in spec.keys() {
            let allowed = match op {
                FieldOp::Set => matches!(key.as_str(), "field" | "input" | "value"),
                FieldOp::Get | FieldOp::Unset => matches!(key.as_str(), "field" | "input"),
            };
            if !allowed {
                return Err(location(
                    unknown,
                    format!("{name} found an unknown argument: {key}"),
                ));
            }
        }
        let required = |key: &str, code: i32| {
            spec.get(key)
                .ok_or_else(|| location(code, format!("{name} requires '{key}' to be specified")))
        };
        let field = match parse_at(required("field", no_field)?, depth + 1)? {
            Expr::Literal(Bson::String(field)) => field,
            Expr::Literal(other) => {
                return Err(location(
                    not_string,
                    format!(
                        "{name} requires 'field' to evaluate to type String, but got {}",
                        type_name(&other)
                    ),
                ))
            }
            _ => {
                return Err(location(
                    not_constant,
                    format!(
                        "{name} requires 'field' to evaluate to a constant, but got a non-constant \
                         argument"
                    ),
                ))
            }
        };
        let input = match op {
            // `$getField` reads the current document when no input is given.
            FieldOp::Get if !spec.contains_key("input") => Expr::Root(Vec::new()),
            _ => parse_at(required("input", no_input)?, depth + 1)?,
        };
        let value = match op {
            FieldOp::Set => Some(parse_at(required("value", no_value)?, depth + 1)?),
            FieldOp::Get | FieldOp::Unset => None,
        };
        Ok(NamedField {
            op,
            field,
            input,
            value,
        })
    }

    pub fn eval(&self, doc: &Document) -> Result<Value, QueryError> {
        let input = match self.input.eval(doc)? {
            Some(Bson::Document(input)) => input,
            // A null or missing input gives null, as in MongoDB.
            None | Some(Bson::Null | Bson::Undefined) => return Ok(Some(Bson::Null)),
            Some(other) => {
                return Err(location(
                    self.op.codes()[4],
                    format!(
                        "{} requires 'input' to evaluate to type Object, but got {}",
                        self.op.name(),
                        type_name(&other)
                    ),
                ))
            }
        };
        match self.op {
            FieldOp::Get => Ok(input.get(&self.field).cloned()),
            FieldOp::Unset => Ok(Some(Bson::Document(without(input, &self.field)))),
            FieldOp::Set => {
                let value = match &self.value {
                    Some(value) => value.eval(doc)?,
                    None => None,
                };
                Ok(Some(Bson::Document(match value {
                    // Setting a field keeps its place; a new one goes last.
                    Some(value) => {
                        let mut out = input;
                        out.insert(self.field.clone(), value);
                        out
                    }
                    None => without(input, &self.field),
                })))
            }
        }
    }
}

fn without(mut input: Document, field: &str) -> Document {
    input.remove(field);
    input
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::{bson, doc};

    fn eval(expr: Bson, doc: &Document) -> Result<Value, QueryError> {
        Expr::parse(&expr)?.eval(doc)
    }

    #[test]
    fn fields_with_dots_and_dollars() {
        let d = doc! {"_id": 1, "a.b": 2, "$c": 3, "n": {"x": 1}};
        assert_eq!(
            eval(bson!({"$getField": "a.b"}), &d).unwrap(),
            Some(Bson::Int32(2))
        );
        assert_eq!(
            eval(
                bson!({"$getField": {"field": {"$literal": "$c"}, "input": "$$ROOT"}}),
                &d
            )
            .unwrap(),
            Some(Bson::Int32(3))
        );
        assert_eq!(eval(bson!({"$getField": "zz"}), &d).unwrap(), None);
        assert_eq!(
            eval(
                bson!({"$setField": {"field": {"$literal": "$a"}, "value": 1, "input": "$$ROOT"}}),
                &doc! {"_id": 1, "foo": {}}
            )
            .unwrap(),
            Some(Bson::Document(doc! {"_id": 1, "foo": {}, "$a": 1}))
        );
        assert_eq!(
            eval(
                bson!({"$setField": {"field": "x", "value": 5, "input": "$n"}}),
                &d
            )
            .unwrap(),
            Some(Bson::Document(doc! {"x": 5}))
        );
        assert_eq!(
            eval(
                bson!({"$setField": {"field": "x", "value": "$$REMOVE", "input": "$n"}}),
                &d
            )
            .unwrap(),
            Some(Bson::Document(doc! {}))
        );
        assert_eq!(
            eval(
                bson!({"$unsetField": {"field": "a.b", "input": "$$ROOT"}}),
                &d
            )
            .unwrap(),
            Some(Bson::Document(doc! {"_id": 1, "$c": 3, "n": {"x": 1}}))
        );
        assert_eq!(
            eval(
                bson!({"$setField": {"field": "x", "value": 1, "input": "$missing"}}),
                &d
            )
            .unwrap(),
            Some(Bson::Null)
        );
    }

    #[test]
    fn malformed_arguments_are_refused() {
        let d = doc! {"a": 1};
        let code = |expr: Bson| eval(expr, &d).unwrap_err().code();
        assert_eq!(
            code(bson!({"$setField": {"field": "x", "input": "$$ROOT"}})),
            4161104
        );
        assert_eq!(
            code(bson!({"$setField": {"value": 1, "input": "$$ROOT"}})),
            4161102
        );
        assert_eq!(
            code(bson!({"$setField": {"field": "$a", "value": 1, "input": "$$ROOT"}})),
            4161106
        );
        assert_eq!(
            code(bson!({"$setField": {"field": 1, "value": 1, "input": "$$ROOT"}})),
            4161107
        );
        assert_eq!(
            code(bson!({"$setField": {"field": "x", "value": 1, "input": "$a"}})),
            4161105
        );
        assert_eq!(
            code(bson!({"$unsetField": {"field": "x", "input": "$$ROOT", "value": 1}})),
            4161100
        );
        assert_eq!(
            code(bson!({"$getField": {"field": "x", "bogus": 1}})),
            3041701
        );
        assert_eq!(
            code(bson!({"$getField": {"field": "x", "input": "$a"}})),
            3041705
        );
    }
}
