//! Aggregation expressions: parsing (`"$a.b"`, `$$ROOT`, literals, objects,
//! arrays, `{$op: args}`) and evaluation against one document.
//!
//! Evaluation yields a [`Value`]: `None` is MongoDB's *missing* (a field
//! path that reaches nothing), distinct from `null`. Field paths follow the
//! aggregation rules, not the query ones: `"$a.b"` through an array of
//! documents gives the array of their `b` values (nested arrays keep their
//! shape; scalars and elements without `b` are dropped).

use bson::{Bson, Document};

use super::super::compare::values_equal;
use super::super::error::QueryError;
use super::super::limits::check_depth;
use super::super::path::validate_field_path;
use super::fields::NamedField;
use super::operators::{self, Func};

/// The result of an expression: `None` is *missing*.
pub type Value = Option<Bson>;

/// A parsed aggregation expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Literal(Bson),
    /// `"$a.b"`: a path in the current document.
    Field(Vec<String>),
    /// `"$$ROOT"` / `"$$CURRENT"`, optionally followed by a path.
    Root(Vec<String>),
    /// `"$$REMOVE"`: evaluates to missing.
    Remove,
    /// `{a: <expr>, ...}`: a document built field by field.
    Object(Vec<(String, Expr)>),
    Array(Vec<Expr>),
    /// `{$op: [args]}`.
    Call(Func, Vec<Expr>),
    /// `{$switch: {branches: [{case, then}], default}}`.
    Switch {
        branches: Vec<(Expr, Expr)>,
        default: Option<Box<Expr>>,
    },
    /// `$getField`, `$setField`, `$unsetField`.
    NamedField(Box<NamedField>),
}

/// Nesting of expressions allowed, well above what a person writes and
/// low enough that evaluation cannot exhaust the stack.
const EXPR_DEPTH_MAX: usize = 150;

impl Expr {
    /// Parses any value as an expression.
    pub fn parse(value: &Bson) -> Result<Expr, QueryError> {
        if let Bson::Document(d) = value {
            check_depth(d)?;
        }
        parse_at(value, 0)
    }

    /// Evaluates against `doc` (both `$$ROOT` and `$$CURRENT`).
    pub fn eval(&self, doc: &Document) -> Result<Value, QueryError> {
        Ok(match self {
            Expr::Literal(v) => Some(v.clone()),
            Expr::Field(parts) | Expr::Root(parts) if parts.is_empty() => {
                Some(Bson::Document(doc.clone()))
            }
            Expr::Field(parts) | Expr::Root(parts) => lookup(doc, parts),
            Expr::Remove => None,
            Expr::Object(fields) => {
                let mut out = Document::new();
                for (name, expr) in fields {
                    if let Some(v) = expr.eval(doc)? {
                        out.insert(name.clone(), v);
                    }
                }
                Some(Bson::Document(out))
            }
            Expr::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                for item in items {
                    // A missing element becomes null inside an array.
                    out.push(item.eval(doc)?.unwrap_or(Bson::Null));
                }
                Some(Bson::Array(out))
            }
            Expr::Call(func, args) => operators::call(*func, args, doc)?,
            Expr::NamedField(field) => field.eval(doc)?,
            Expr::Switch { branches, default } => {
                for (case, then) in branches {
                    if truthy(&case.eval(doc)?) {
                        return then.eval(doc);
                    }
                }
                match default {
                    Some(d) => d.eval(doc)?,
                    None => {
                        return Err(QueryError::Location {
                            code: 40066,
                            message: "$switch could not find a matching branch for an input, \
                                      and no default was specified."
                                .into(),
                        })
                    }
                }
            }
        })
    }
}

/// MongoDB's truthiness: false, null, undefined, missing and zero are false.
pub fn truthy(value: &Value) -> bool {
    match value {
        None | Some(Bson::Null | Bson::Undefined | Bson::Boolean(false)) => false,
        // NaN is not equal to zero, so it is true, as in MongoDB.
        Some(n @ (Bson::Int32(_) | Bson::Int64(_) | Bson::Double(_) | Bson::Decimal128(_))) => {
            !values_equal(n, &Bson::Int32(0))
        }
        Some(_) => true,
    }
}

/// The value at an aggregation field path (see the module docs).
pub fn lookup(doc: &Document, parts: &[String]) -> Value {
    let (first, rest) = parts.split_first()?;
    descend(doc.get(first)?, rest)
}

fn descend(value: &Bson, rest: &[String]) -> Value {
    if rest.is_empty() {
        return Some(value.clone());
    }
    match value {
        Bson::Document(d) => lookup(d, rest),
        Bson::Array(items) => Some(Bson::Array(
            items
                .iter()
                .filter(|e| matches!(e, Bson::Document(_) | Bson::Array(_)))
                .filter_map(|e| descend(e, rest))
                .collect(),
        )),
        _ => None,
    }
}

fn too_deep() -> QueryError {
    QueryError::bad_value(format!(
        "expression nested more than {EXPR_DEPTH_MAX} levels deep"
    ))
}

pub(super) fn parse_at(value: &Bson, depth: usize) -> Result<Expr, QueryError> {
    if depth > EXPR_DEPTH_MAX {
        return Err(too_deep());
    }
    match value {
        Bson::String(s) if s.starts_with("$$") => parse_variable(&s[2..]),
        Bson::String(s) if s.starts_with('$') => parse_field_path(&s[1..]),
        Bson::Array(items) => Ok(Expr::Array(
            items
                .iter()
                .map(|item| parse_at(item, depth + 1))
                .collect::<Result<_, _>>()?,
        )),
        Bson::Document(d) => parse_document(d, depth),
        other => Ok(Expr::Literal(other.clone())),
    }
}

fn split_path(path: &str) -> Vec<String> {
    path.split('.').map(str::to_string).collect()
}

fn parse_field_path(path: &str) -> Result<Expr, QueryError> {
    if path.is_empty() {
        return Err(QueryError::Location {
            code: 16872,
            message: "'$' by itself is not a valid FieldPath".into(),
        });
    }
    validate_field_path(path)?;
    Ok(Expr::Field(split_path(path)))
}

fn parse_variable(text: &str) -> Result<Expr, QueryError> {
    let (name, rest) = match text.split_once('.') {
        Some((name, rest)) => (name, Some(rest)),
        None => (text, None),
    };
    let parts = match rest {
        Some(rest) => {
            validate_field_path(rest)?;
            split_path(rest)
        }
        None => Vec::new(),
    };
    match name {
        "ROOT" | "CURRENT" => Ok(Expr::Root(parts)),
        "REMOVE" => Ok(Expr::Remove),
        "" => Err(QueryError::Location {
            code: 16869,
            message: "empty variable names are not allowed".into(),
        }),
        "NOW" | "CLUSTER_TIME" | "SEARCH_META" | "USER_ROLES" => {
            Err(QueryError::unsupported(format!("$${name}")))
        }
        other => Err(QueryError::Location {
            code: 17276,
            message: format!("Use of undefined variable: {other}"),
        }),
    }
}

fn parse_document(d: &Document, depth: usize) -> Result<Expr, QueryError> {
    let Some(first) = d.keys().next() else {
        return Ok(Expr::Object(Vec::new()));
    };
    if first.starts_with('$') {
        if d.len() != 1 {
            return Err(QueryError::Location {
                code: 15983,
                message: format!(
                    "an expression specification must contain exactly one field, the name of \
                     the expression. Found {} fields in {d}",
                    d.len()
                ),
            });
        }
        let argument = d.get(first).unwrap_or(&Bson::Null);
        return parse_operator(first, argument, depth);
    }
    let mut fields = Vec::with_capacity(d.len());
    for (name, value) in d {
        check_field_name(name)?;
        fields.push((name.clone(), parse_at(value, depth + 1)?));
    }
    Ok(Expr::Object(fields))
}

/// A field name of an expression object or a computed field.
pub(crate) fn check_field_name(name: &str) -> Result<(), QueryError> {
    if name.starts_with('$') {
        return Err(QueryError::Location {
            code: 16410,
            message: format!(
                "FieldPath field names may not start with '$'. Consider using $getField or \
                 $setField. (in '{name}')"
            ),
        });
    }
    if name.contains('.') {
        return Err(QueryError::Location {
            code: 16412,
            message: format!("FieldPath field names may not contain '.'. (in '{name}')"),
        });
    }
    if name.is_empty() {
        return Err(QueryError::Location {
            code: 15998,
            message: "FieldPath field names may not be empty strings.".into(),
        });
    }
    Ok(())
}

fn parse_operator(name: &str, argument: &Bson, depth: usize) -> Result<Expr, QueryError> {
    match name {
        "$literal" => return Ok(Expr::Literal(argument.clone())),
        "$cond" => return parse_cond(argument, depth),
        "$switch" => return parse_switch(argument, depth),
        "$getField" | "$setField" | "$unsetField" => {
            return Ok(Expr::NamedField(Box::new(NamedField::parse(
                name, argument, depth,
            )?)))
        }
        _ => {}
    }
    let func = Func::named(name)?;
    // `{$op: [a, b]}` passes a and b; `{$op: a}` passes a alone.
    let args = match argument {
        Bson::Array(items) => items
            .iter()
            .map(|item| parse_at(item, depth + 1))
            .collect::<Result<Vec<_>, _>>()?,
        other => vec![parse_at(other, depth + 1)?],
    };
    func.check_arity(args.len())?;
    Ok(Expr::Call(func, args))
}

fn parse_cond(argument: &Bson, depth: usize) -> Result<Expr, QueryError> {
    let parts: Vec<Expr> = match argument {
        Bson::Array(items) if items.len() == 3 => items
            .iter()
            .map(|item| parse_at(item, depth + 1))
            .collect::<Result<_, _>>()?,
        Bson::Array(items) => {
            return Err(QueryError::Location {
                code: 16020,
                message: format!(
                    "Expression $cond takes exactly 3 arguments. {} were passed in.",
                    items.len()
                ),
            })
        }
        Bson::Document(spec) => {
            for key in spec.keys() {
                if !matches!(key.as_str(), "if" | "then" | "else") {
                    return Err(QueryError::Location {
                        code: 17083,
                        message: format!("Unrecognized parameter to $cond: {key}"),
                    });
                }
            }
            let mut parts = Vec::with_capacity(3);
            for (key, code) in [("if", 17080), ("then", 17081), ("else", 17082)] {
                let value = spec.get(key).ok_or_else(|| QueryError::Location {
                    code,
                    message: format!("Missing '{key}' parameter to $cond"),
                })?;
                parts.push(parse_at(value, depth + 1)?);
            }
            parts
        }
        _ => {
            return Err(QueryError::Location {
                code: 16020,
                message: "Expression $cond takes exactly 3 arguments. 1 were passed in.".into(),
            })
        }
    };
    Ok(Expr::Call(Func::Cond, parts))
}

fn parse_switch(argument: &Bson, depth: usize) -> Result<Expr, QueryError> {
    let Bson::Document(spec) = argument else {
        return Err(QueryError::Location {
            code: 40060,
            message: format!(
                "$switch requires an object as an argument, found: {}",
                super::super::bson_type::type_name(argument)
            ),
        });
    };
    let mut branches = Vec::new();
    let mut default = None;
    for (key, value) in spec {
        match key.as_str() {
            "branches" => {
                let Bson::Array(items) = value else {
                    return Err(QueryError::Location {
                        code: 40061,
                        message: "$switch expected an array for 'branches'".into(),
                    });
                };
                for item in items {
                    let Bson::Document(branch) = item else {
                        return Err(QueryError::Location {
                            code: 40062,
                            message: "$switch expected each branch to be an object".into(),
                        });
                    };
                    let (Some(case), Some(then)) = (branch.get("case"), branch.get("then")) else {
                        return Err(QueryError::Location {
                            code: 40064,
                            message: "$switch requires each branch have a 'case' and 'then' \
                                      expression"
                                .into(),
                        });
                    };
                    if branch.len() != 2 {
                        return Err(QueryError::Location {
                            code: 40063,
                            message: format!(
                                "$switch found an unknown argument to a branch: {branch}"
                            ),
                        });
                    }
                    branches.push((parse_at(case, depth + 1)?, parse_at(then, depth + 1)?));
                }
            }
            "default" => default = Some(Box::new(parse_at(value, depth + 1)?)),
            other => {
                return Err(QueryError::Location {
                    code: 40067,
                    message: format!("$switch found an unknown argument: {other}"),
                })
            }
        }
    }
    if branches.is_empty() {
        return Err(QueryError::Location {
            code: 40068,
            message: "$switch requires at least one branch.".into(),
        });
    }
    Ok(Expr::Switch { branches, default })
}
