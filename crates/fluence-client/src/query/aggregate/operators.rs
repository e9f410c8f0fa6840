//! The expression operators: arithmetic, comparison, boolean, conditional,
//! string, array, type and conversion operators, with MongoDB's null
//! handling (most operators give `null` for a null or missing argument),
//! numeric type promotion (Int32 widens to Int64 and Int64 to Double on
//! overflow) and error messages.
//!
//! Decimal128 arithmetic is not implemented (the bson crate has none) and
//! is reported as unsupported; comparisons of decimals work.

use std::cmp::Ordering;

use bson::{Bson, Document};

use super::super::bson_type::type_name;
use super::super::compare::{compare_bson, values_equal};
use super::super::error::QueryError;
use super::expr::{truthy, Expr, Value};

/// MongoDB's `InvalidPipelineOperator`.
pub(crate) const INVALID_PIPELINE_OPERATOR: i32 = 168;
/// MongoDB's `ConversionFailure`.
const CONVERSION_FAILURE: i32 = 241;

/// An implemented expression operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Func {
    Add,
    Subtract,
    Multiply,
    Divide,
    Mod,
    Abs,
    Ceil,
    Floor,
    Round,
    Trunc,
    Eq,
    Ne,
    Gt,
    Gte,
    Lt,
    Lte,
    Cmp,
    And,
    Or,
    Not,
    Cond,
    IfNull,
    Concat,
    ToUpper,
    ToLower,
    StrLenCp,
    Split,
    Size,
    ArrayElemAt,
    In,
    IsArray,
    First,
    Last,
    ConcatArrays,
    MergeObjects,
    Type,
    ToString,
    ToInt,
    ToLong,
    ToDouble,
    ToBool,
}

/// Expression operators MongoDB has that Fluence does not implement; they
/// are refused as unsupported rather than as unknown.
const KNOWN_UNSUPPORTED: &[&str] = &[
    "$let",
    "$map",
    "$filter",
    "$reduce",
    "$zip",
    "$range",
    "$slice",
    "$reverseArray",
    "$sortArray",
    "$indexOfArray",
    "$arrayToObject",
    "$objectToArray",
    "$allElementsTrue",
    "$anyElementTrue",
    "$setUnion",
    "$setIntersection",
    "$setDifference",
    "$setEquals",
    "$setIsSubset",
    "$dateToString",
    "$dateFromString",
    "$dateToParts",
    "$dateFromParts",
    "$dateAdd",
    "$dateSubtract",
    "$dateDiff",
    "$dateTrunc",
    "$year",
    "$month",
    "$week",
    "$dayOfMonth",
    "$dayOfWeek",
    "$dayOfYear",
    "$hour",
    "$minute",
    "$second",
    "$millisecond",
    "$isoWeek",
    "$isoWeekYear",
    "$isoDayOfWeek",
    "$toDate",
    "$toObjectId",
    "$toDecimal",
    "$convert",
    "$regexMatch",
    "$regexFind",
    "$regexFindAll",
    "$replaceOne",
    "$replaceAll",
    "$trim",
    "$ltrim",
    "$rtrim",
    "$substr",
    "$substrBytes",
    "$substrCP",
    "$strLenBytes",
    "$indexOfBytes",
    "$indexOfCP",
    "$strcasecmp",
    "$sqrt",
    "$pow",
    "$exp",
    "$ln",
    "$log",
    "$log10",
    "$sin",
    "$cos",
    "$tan",
    "$function",
    "$accumulator",
    "$meta",
    "$rand",
    "$sampleRate",
    "$binarySize",
    "$bsonSize",
    "$avg",
    "$min",
    "$max",
    "$sum",
    "$stdDevPop",
    "$stdDevSamp",
    "$isNumber",
    "$median",
    "$percentile",
    "$toHashedIndexKey",
    "$tsSecond",
    "$tsIncrement",
];

impl Func {
    /// The operator called `name`; unknown names get MongoDB's error.
    pub fn named(name: &str) -> Result<Func, QueryError> {
        Ok(match name {
            "$add" => Func::Add,
            "$subtract" => Func::Subtract,
            "$multiply" => Func::Multiply,
            "$divide" => Func::Divide,
            "$mod" => Func::Mod,
            "$abs" => Func::Abs,
            "$ceil" => Func::Ceil,
            "$floor" => Func::Floor,
            "$round" => Func::Round,
            "$trunc" => Func::Trunc,
            "$eq" => Func::Eq,
            "$ne" => Func::Ne,
            "$gt" => Func::Gt,
            "$gte" => Func::Gte,
            "$lt" => Func::Lt,
            "$lte" => Func::Lte,
            "$cmp" => Func::Cmp,
            "$and" => Func::And,
            "$or" => Func::Or,
            "$not" => Func::Not,
            "$ifNull" => Func::IfNull,
            "$concat" => Func::Concat,
            "$toUpper" => Func::ToUpper,
            "$toLower" => Func::ToLower,
            "$strLenCP" => Func::StrLenCp,
            "$split" => Func::Split,
            "$size" => Func::Size,
            "$arrayElemAt" => Func::ArrayElemAt,
            "$in" => Func::In,
            "$isArray" => Func::IsArray,
            "$first" => Func::First,
            "$last" => Func::Last,
            "$concatArrays" => Func::ConcatArrays,
            "$mergeObjects" => Func::MergeObjects,
            "$type" => Func::Type,
            "$toString" => Func::ToString,
            "$toInt" => Func::ToInt,
            "$toLong" => Func::ToLong,
            "$toDouble" => Func::ToDouble,
            "$toBool" => Func::ToBool,
            other if KNOWN_UNSUPPORTED.contains(&other) => {
                return Err(QueryError::unsupported(format!("expression {other}")))
            }
            other => {
                return Err(QueryError::Location {
                    code: INVALID_PIPELINE_OPERATOR,
                    message: format!("Unrecognized expression '{other}'"),
                })
            }
        })
    }

    fn name(self) -> &'static str {
        match self {
            Func::Add => "$add",
            Func::Subtract => "$subtract",
            Func::Multiply => "$multiply",
            Func::Divide => "$divide",
            Func::Mod => "$mod",
            Func::Abs => "$abs",
            Func::Ceil => "$ceil",
            Func::Floor => "$floor",
            Func::Round => "$round",
            Func::Trunc => "$trunc",
            Func::Eq => "$eq",
            Func::Ne => "$ne",
            Func::Gt => "$gt",
            Func::Gte => "$gte",
            Func::Lt => "$lt",
            Func::Lte => "$lte",
            Func::Cmp => "$cmp",
            Func::And => "$and",
            Func::Or => "$or",
            Func::Not => "$not",
            Func::Cond => "$cond",
            Func::IfNull => "$ifNull",
            Func::Concat => "$concat",
            Func::ToUpper => "$toUpper",
            Func::ToLower => "$toLower",
            Func::StrLenCp => "$strLenCP",
            Func::Split => "$split",
            Func::Size => "$size",
            Func::ArrayElemAt => "$arrayElemAt",
            Func::In => "$in",
            Func::IsArray => "$isArray",
            Func::First => "$first",
            Func::Last => "$last",
            Func::ConcatArrays => "$concatArrays",
            Func::MergeObjects => "$mergeObjects",
            Func::Type => "$type",
            Func::ToString => "$toString",
            Func::ToInt => "$toInt",
            Func::ToLong => "$toLong",
            Func::ToDouble => "$toDouble",
            Func::ToBool => "$toBool",
        }
    }

    /// Checks the number of arguments against the operator's arity.
    pub fn check_arity(self, n: usize) -> Result<(), QueryError> {
        let (min, max) = match self {
            Func::Add
            | Func::Multiply
            | Func::And
            | Func::Or
            | Func::Concat
            | Func::ConcatArrays
            | Func::MergeObjects => (0, usize::MAX),
            Func::IfNull => (2, usize::MAX),
            Func::Round | Func::Trunc => (1, 2),
            Func::Cond => (3, 3),
            Func::Subtract
            | Func::Divide
            | Func::Mod
            | Func::Eq
            | Func::Ne
            | Func::Gt
            | Func::Gte
            | Func::Lt
            | Func::Lte
            | Func::Cmp
            | Func::Split
            | Func::ArrayElemAt
            | Func::In => (2, 2),
            _ => (1, 1),
        };
        if n >= min && n <= max {
            return Ok(());
        }
        let name = self.name();
        Err(if min == max {
            QueryError::Location {
                code: 16020,
                message: format!(
                    "Expression {name} takes exactly {min} arguments. {n} were passed in."
                ),
            }
        } else if max == usize::MAX {
            QueryError::Location {
                code: 16020,
                message: format!(
                    "Expression {name} takes at least {min} arguments, and {n} were passed in."
                ),
            }
        } else {
            QueryError::Location {
                code: 28667,
                message: format!(
                    "Expression {name} takes at least {min} arguments, and at most {max}, but {n} \
                     were passed in."
                ),
            }
        })
    }
}

fn type_of(value: &Value) -> &'static str {
    value.as_ref().map_or("missing", type_name)
}

fn nullish(value: &Value) -> bool {
    matches!(value, None | Some(Bson::Null | Bson::Undefined))
}

/// Evaluates `func` over unevaluated `args` (some operators short-circuit).
pub(crate) fn call(func: Func, args: &[Expr], doc: &Document) -> Result<Value, QueryError> {
    match func {
        Func::And => {
            for arg in args {
                if !truthy(&arg.eval(doc)?) {
                    return Ok(Some(Bson::Boolean(false)));
                }
            }
            return Ok(Some(Bson::Boolean(true)));
        }
        Func::Or => {
            for arg in args {
                if truthy(&arg.eval(doc)?) {
                    return Ok(Some(Bson::Boolean(true)));
                }
            }
            return Ok(Some(Bson::Boolean(false)));
        }
        Func::Cond => {
            let branch = if truthy(&args[0].eval(doc)?) {
                &args[1]
            } else {
                &args[2]
            };
            return branch.eval(doc);
        }
        Func::IfNull => {
            let (last, rest) = args.split_last().expect("arity checked: at least 2");
            for arg in rest {
                let value = arg.eval(doc)?;
                if !nullish(&value) {
                    return Ok(value);
                }
            }
            return last.eval(doc);
        }
        _ => {}
    }
    let values = args
        .iter()
        .map(|a| a.eval(doc))
        .collect::<Result<Vec<Value>, _>>()?;
    apply(func, values)
}

fn apply(func: Func, mut v: Vec<Value>) -> Result<Value, QueryError> {
    let name = func.name();
    Ok(match func {
        Func::Add => add(v)?,
        Func::Subtract => subtract(&v[0], &v[1])?,
        Func::Multiply => {
            if v.iter().any(nullish) {
                return Ok(Some(Bson::Null));
            }
            let mut product = Num::Int(1);
            for value in &v {
                let n = numeric(value).ok_or_else(|| {
                    QueryError::type_mismatch(format!(
                        "$multiply only supports numeric types, not {}",
                        type_of(value)
                    ))
                })??;
                product = product.mul(n);
            }
            Some(product.to_bson())
        }
        Func::Divide => {
            if nullish(&v[0]) || nullish(&v[1]) {
                return Ok(Some(Bson::Null));
            }
            match (numeric(&v[0]), numeric(&v[1])) {
                (Some(a), Some(b)) => {
                    let (a, b) = (a?.as_f64(), b?.as_f64());
                    if b == 0.0 {
                        return Err(QueryError::bad_value("can't $divide by zero"));
                    }
                    Some(Bson::Double(a / b))
                }
                _ => {
                    return Err(QueryError::type_mismatch(format!(
                        "$divide only supports numeric types, not {} and {}",
                        type_of(&v[0]),
                        type_of(&v[1])
                    )))
                }
            }
        }
        Func::Mod => {
            if nullish(&v[0]) || nullish(&v[1]) {
                return Ok(Some(Bson::Null));
            }
            match (numeric(&v[0]), numeric(&v[1])) {
                (Some(a), Some(b)) => Some(modulo(a?, b?)?.to_bson()),
                _ => {
                    return Err(QueryError::type_mismatch(format!(
                        "$mod only supports numeric types, not {} and {}",
                        type_of(&v[0]),
                        type_of(&v[1])
                    )))
                }
            }
        }
        Func::Abs | Func::Ceil | Func::Floor | Func::Round | Func::Trunc => {
            if nullish(&v[0]) {
                return Ok(Some(Bson::Null));
            }
            let n = numeric(&v[0]).ok_or_else(|| {
                QueryError::type_mismatch(format!(
                    "{name} only supports numeric types, not {}",
                    type_of(&v[0])
                ))
            })??;
            let place = match v.get(1) {
                None => 0,
                Some(p) => match p.as_ref().and_then(integral) {
                    Some(p) if (-20..=100).contains(&p) => p,
                    _ => {
                        return Err(QueryError::Location {
                            code: 51083,
                            message: format!(
                                "cannot apply {name} with precision value {} value must be in \
                                 [-20, 100]",
                                p.as_ref().map_or("missing".into(), ToString::to_string)
                            ),
                        })
                    }
                },
            };
            Some(unary_numeric(func, n, place)?.to_bson())
        }
        Func::Eq | Func::Ne | Func::Gt | Func::Gte | Func::Lt | Func::Lte => {
            let order = compare_values(&v[0], &v[1]);
            let result = match func {
                Func::Eq => order == Ordering::Equal,
                Func::Ne => order != Ordering::Equal,
                Func::Gt => order == Ordering::Greater,
                Func::Gte => order != Ordering::Less,
                Func::Lt => order == Ordering::Less,
                _ => order != Ordering::Greater,
            };
            Some(Bson::Boolean(result))
        }
        Func::Cmp => Some(Bson::Int32(match compare_values(&v[0], &v[1]) {
            Ordering::Less => -1,
            Ordering::Equal => 0,
            Ordering::Greater => 1,
        })),
        Func::Not => Some(Bson::Boolean(!truthy(&v[0]))),
        Func::Concat => {
            let mut out = String::new();
            for value in &v {
                match value {
                    None | Some(Bson::Null | Bson::Undefined) => return Ok(Some(Bson::Null)),
                    Some(Bson::String(s)) => out.push_str(s),
                    Some(other) => {
                        return Err(QueryError::Location {
                            code: 16702,
                            message: format!(
                                "$concat only supports strings, not {}",
                                type_name(other)
                            ),
                        })
                    }
                }
            }
            Some(Bson::String(out))
        }
        Func::ToUpper | Func::ToLower => {
            let text = if nullish(&v[0]) {
                String::new()
            } else {
                to_string(&v[0], name)?.unwrap_or_default()
            };
            Some(Bson::String(if func == Func::ToUpper {
                text.to_uppercase()
            } else {
                text.to_lowercase()
            }))
        }
        Func::StrLenCp => match &v[0] {
            Some(Bson::String(s)) => Some(Bson::Int32(
                i32::try_from(s.chars().count()).unwrap_or(i32::MAX),
            )),
            other => {
                return Err(QueryError::Location {
                    code: 34471,
                    message: format!(
                        "$strLenCP requires a string argument, found: {}",
                        type_of(other)
                    ),
                })
            }
        },
        Func::Split => match (&v[0], &v[1]) {
            (a, _) if nullish(a) => Some(Bson::Null),
            (Some(Bson::String(s)), Some(Bson::String(sep))) => {
                if sep.is_empty() {
                    return Err(QueryError::Location {
                        code: 40087,
                        message: "$split requires a non-empty separator".into(),
                    });
                }
                Some(Bson::Array(
                    s.split(sep.as_str())
                        .map(|p| Bson::String(p.to_string()))
                        .collect(),
                ))
            }
            (Some(Bson::String(_)), other) => {
                return Err(QueryError::Location {
                    code: 40086,
                    message: format!(
                        "$split requires an expression that evaluates to a string as a second \
                         argument, found: {}",
                        type_of(other)
                    ),
                })
            }
            (other, _) => {
                return Err(QueryError::Location {
                    code: 40085,
                    message: format!(
                        "$split requires an expression that evaluates to a string as a first \
                         argument, found: {}",
                        type_of(other)
                    ),
                })
            }
        },
        Func::Size => match &v[0] {
            Some(Bson::Array(items)) => {
                Some(Bson::Int32(i32::try_from(items.len()).unwrap_or(i32::MAX)))
            }
            other => {
                return Err(QueryError::Location {
                    code: 17124,
                    message: format!(
                        "The argument to $size must be an array. Type of the argument was: {}",
                        type_of(other)
                    ),
                })
            }
        },
        Func::ArrayElemAt => {
            if nullish(&v[0]) || nullish(&v[1]) {
                return Ok(Some(Bson::Null));
            }
            let Some(Bson::Array(items)) = &v[0] else {
                return Err(QueryError::Location {
                    code: 28689,
                    message: format!(
                        "$arrayElemAt's first argument must be an array, but is {}",
                        type_of(&v[0])
                    ),
                });
            };
            let index = v[1]
                .as_ref()
                .and_then(integral)
                .ok_or_else(|| QueryError::Location {
                    code: 28690,
                    message: format!(
                        "$arrayElemAt's second argument must be a numeric value, but is {}",
                        type_of(&v[1])
                    ),
                })?;
            element_at(items, index)
        }
        Func::In => match &v[1] {
            Some(Bson::Array(items)) => {
                Some(Bson::Boolean(v[0].as_ref().is_some_and(|x| {
                    items.iter().any(|item| values_equal(x, item))
                })))
            }
            other => {
                return Err(QueryError::Location {
                    code: 40081,
                    message: format!(
                        "$in requires an array as a second argument, found: {}",
                        type_of(other)
                    ),
                })
            }
        },
        Func::IsArray => Some(Bson::Boolean(matches!(v[0], Some(Bson::Array(_))))),
        Func::First | Func::Last => match &v[0] {
            a if nullish(a) => Some(Bson::Null),
            Some(Bson::Array(items)) => {
                let item = if func == Func::First {
                    items.first()
                } else {
                    items.last()
                };
                item.cloned()
            }
            other => {
                return Err(QueryError::Location {
                    code: 28689,
                    message: format!(
                        "{name}'s argument must be an array, but is {}",
                        type_of(other)
                    ),
                })
            }
        },
        Func::ConcatArrays => {
            let mut out = Vec::new();
            for value in &v {
                match value {
                    a if nullish(a) => return Ok(Some(Bson::Null)),
                    Some(Bson::Array(items)) => out.extend(items.iter().cloned()),
                    other => {
                        return Err(QueryError::Location {
                            code: 28664,
                            message: format!(
                                "$concatArrays only supports arrays, not {}",
                                type_of(other)
                            ),
                        })
                    }
                }
            }
            Some(Bson::Array(out))
        }
        Func::MergeObjects => {
            let mut out = Document::new();
            for value in v.drain(..) {
                match value {
                    None | Some(Bson::Null | Bson::Undefined) => {}
                    Some(Bson::Document(d)) => {
                        for (k, val) in d {
                            out.insert(k, val);
                        }
                    }
                    Some(other) => {
                        return Err(QueryError::Location {
                            code: 40400,
                            message: format!(
                                "$mergeObjects requires object inputs, but input {other} is of \
                                 type {}",
                                type_name(&other)
                            ),
                        })
                    }
                }
            }
            Some(Bson::Document(out))
        }
        Func::Type => Some(Bson::String(type_of(&v[0]).to_string())),
        Func::ToString => {
            if nullish(&v[0]) {
                return Ok(Some(Bson::Null));
            }
            to_string(&v[0], name)?.map(Bson::String)
        }
        Func::ToInt | Func::ToLong | Func::ToDouble | Func::ToBool => {
            if nullish(&v[0]) {
                return Ok(Some(Bson::Null));
            }
            let value = v[0].as_ref().expect("not nullish");
            Some(convert(func, value)?)
        }
        Func::And | Func::Or | Func::Cond | Func::IfNull => {
            unreachable!("short-circuiting operators are evaluated in `call`")
        }
    })
}

/// Aggregation order: missing sorts below every value.
pub(crate) fn compare_values(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        (Some(x), Some(y)) => compare_bson(x, y),
    }
}

fn element_at(items: &[Bson], index: i64) -> Value {
    let len = i64::try_from(items.len()).unwrap_or(i64::MAX);
    let at = if index < 0 { len + index } else { index };
    if at < 0 {
        return None;
    }
    items.get(usize::try_from(at).ok()?).cloned()
}

/// An integer given as Int32, Int64 or an integral Double.
pub(crate) fn integral(value: &Bson) -> Option<i64> {
    match value {
        Bson::Int32(i) => Some(i64::from(*i)),
        Bson::Int64(i) => Some(*i),
        Bson::Double(d) if d.fract() == 0.0 && d.abs() < 9.0e18 => Some(*d as i64),
        _ => None,
    }
}

/// A number with MongoDB's aggregation type promotion.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Num {
    Int(i32),
    Long(i64),
    Double(f64),
}

impl Num {
    pub(crate) fn as_f64(self) -> f64 {
        match self {
            Num::Int(i) => f64::from(i),
            Num::Long(i) => i as f64,
            Num::Double(d) => d,
        }
    }

    fn as_i64(self) -> i64 {
        match self {
            Num::Int(i) => i64::from(i),
            Num::Long(i) => i,
            Num::Double(d) => d as i64,
        }
    }

    pub(crate) fn to_bson(self) -> Bson {
        match self {
            Num::Int(i) => Bson::Int32(i),
            Num::Long(i) => Bson::Int64(i),
            Num::Double(d) => Bson::Double(d),
        }
    }

    fn combine(
        self,
        other: Num,
        int: fn(i64, i64) -> Option<i64>,
        float: fn(f64, f64) -> f64,
    ) -> Num {
        match (self, other) {
            (Num::Double(_), _) | (_, Num::Double(_)) => {
                Num::Double(float(self.as_f64(), other.as_f64()))
            }
            (Num::Int(a), Num::Int(b)) => {
                // Two 32-bit operands always fit in 64 bits.
                let wide = int(i64::from(a), i64::from(b)).unwrap_or(0);
                i32::try_from(wide).map_or(Num::Long(wide), Num::Int)
            }
            _ => match int(self.as_i64(), other.as_i64()) {
                Some(v) => Num::Long(v),
                None => Num::Double(float(self.as_f64(), other.as_f64())),
            },
        }
    }

    pub(crate) fn add(self, other: Num) -> Num {
        self.combine(other, i64::checked_add, |a, b| a + b)
    }

    fn sub(self, other: Num) -> Num {
        self.combine(other, i64::checked_sub, |a, b| a - b)
    }

    fn mul(self, other: Num) -> Num {
        self.combine(other, i64::checked_mul, |a, b| a * b)
    }
}

/// The number in `value`; `None` if it is not a number, an error for a
/// Decimal128 (no decimal arithmetic).
pub(crate) fn numeric(value: &Value) -> Option<Result<Num, QueryError>> {
    match value.as_ref()? {
        Bson::Int32(i) => Some(Ok(Num::Int(*i))),
        Bson::Int64(i) => Some(Ok(Num::Long(*i))),
        Bson::Double(d) => Some(Ok(Num::Double(*d))),
        Bson::Decimal128(_) => Some(Err(QueryError::unsupported(
            "arithmetic on Decimal128 values",
        ))),
        _ => None,
    }
}

fn add(values: Vec<Value>) -> Result<Value, QueryError> {
    let mut sum = Num::Int(0);
    let mut date: Option<i64> = None;
    for value in &values {
        if nullish(value) {
            return Ok(Some(Bson::Null));
        }
        if let Some(Bson::DateTime(d)) = value {
            if date.is_some() {
                return Err(QueryError::Location {
                    code: 16612,
                    message: "only one date allowed in an $add expression".into(),
                });
            }
            date = Some(d.timestamp_millis());
            continue;
        }
        let n = numeric(value).ok_or_else(|| {
            QueryError::type_mismatch(format!(
                "$add only supports numeric or date types, not {}",
                type_of(value)
            ))
        })??;
        sum = sum.add(n);
    }
    Ok(Some(match date {
        Some(millis) => {
            let offset = match sum {
                Num::Double(d) => d.round() as i64,
                other => other.as_i64(),
            };
            Bson::DateTime(bson::DateTime::from_millis(millis.saturating_add(offset)))
        }
        None => sum.to_bson(),
    }))
}

fn subtract(a: &Value, b: &Value) -> Result<Value, QueryError> {
    if nullish(a) || nullish(b) {
        return Ok(Some(Bson::Null));
    }
    Ok(Some(match (a, b) {
        (Some(Bson::DateTime(x)), Some(Bson::DateTime(y))) => {
            Bson::Int64(x.timestamp_millis().saturating_sub(y.timestamp_millis()))
        }
        (Some(Bson::DateTime(x)), _) if numeric(b).is_some() => {
            let n = numeric(b).expect("checked")?;
            let offset = match n {
                Num::Double(d) => d.round() as i64,
                other => other.as_i64(),
            };
            Bson::DateTime(bson::DateTime::from_millis(
                x.timestamp_millis().saturating_sub(offset),
            ))
        }
        _ => match (numeric(a), numeric(b)) {
            (Some(x), Some(y)) => x?.sub(y?).to_bson(),
            _ => {
                return Err(QueryError::type_mismatch(format!(
                    "can't $subtract {} from {}",
                    type_of(b),
                    type_of(a)
                )))
            }
        },
    }))
}

fn modulo(a: Num, b: Num) -> Result<Num, QueryError> {
    let by_zero = || QueryError::Location {
        code: 16610,
        message: "can't $mod by zero".into(),
    };
    match (a, b) {
        (Num::Double(_), _) | (_, Num::Double(_)) => {
            if b.as_f64() == 0.0 {
                return Err(by_zero());
            }
            Ok(Num::Double(a.as_f64() % b.as_f64()))
        }
        (Num::Int(x), Num::Int(y)) => {
            // wrapping_rem: i32::MIN % -1 is 0, not an overflow panic.
            x.checked_rem(y)
                .or_else(|| (y == -1).then_some(0))
                .map(Num::Int)
                .ok_or_else(by_zero)
        }
        _ => {
            let (x, y) = (a.as_i64(), b.as_i64());
            x.checked_rem(y)
                .or_else(|| (y == -1).then_some(0))
                .map(Num::Long)
                .ok_or_else(by_zero)
        }
    }
}

fn unary_numeric(func: Func, n: Num, place: i64) -> Result<Num, QueryError> {
    Ok(match (func, n) {
        (Func::Abs, Num::Int(i)) => i.checked_abs().map_or(Num::Long(-i64::from(i)), Num::Int),
        (Func::Abs, Num::Long(i)) => {
            Num::Long(i.checked_abs().ok_or_else(|| QueryError::Location {
                code: 28680,
                message: "can't take $abs of long long min".into(),
            })?)
        }
        (Func::Abs, Num::Double(d)) => Num::Double(d.abs()),
        (Func::Ceil, Num::Double(d)) => Num::Double(d.ceil()),
        (Func::Floor, Num::Double(d)) => Num::Double(d.floor()),
        (Func::Ceil | Func::Floor, other) => other,
        (Func::Round | Func::Trunc, Num::Double(d)) => {
            let scale = 10f64.powi(i32::try_from(place).unwrap_or(0));
            let scaled = d * scale;
            let done = if func == Func::Round {
                scaled.round_ties_even()
            } else {
                scaled.trunc()
            };
            Num::Double(if scale.is_finite() && scale != 0.0 {
                done / scale
            } else {
                d
            })
        }
        (Func::Round | Func::Trunc, other) if place >= 0 => other,
        (Func::Round | Func::Trunc, other) => {
            // Rounding an integer to tens, hundreds, …: exact in i64.
            let unit = 10i64.checked_pow(u32::try_from(-place).unwrap_or(u32::MAX));
            let Some(unit) = unit else {
                return Ok(match other {
                    Num::Int(_) => Num::Int(0),
                    _ => Num::Long(0),
                });
            };
            let x = other.as_i64();
            let down = x - x % unit;
            let result = if func == Func::Trunc {
                down
            } else {
                let rest = (x % unit).abs() * 2;
                let away = if x < 0 { down - unit } else { down + unit };
                match rest.cmp(&unit) {
                    Ordering::Less => down,
                    Ordering::Greater => away,
                    // Halves round to the even multiple.
                    Ordering::Equal if (down / unit) % 2 == 0 => down,
                    Ordering::Equal => away,
                }
            };
            match other {
                Num::Int(_) => i32::try_from(result).map_or(Num::Long(result), Num::Int),
                _ => Num::Long(result),
            }
        }
        _ => n,
    })
}

/// `$toString`'s conversion; `None` never (kept as an option for callers
/// that pass missing through).
fn to_string(value: &Value, name: &str) -> Result<Option<String>, QueryError> {
    let Some(value) = value else {
        return Ok(None);
    };
    Ok(Some(match value {
        Bson::String(s) => s.clone(),
        Bson::Int32(i) => i.to_string(),
        Bson::Int64(i) => i.to_string(),
        Bson::Double(d) => format_double(*d),
        Bson::Decimal128(d) => d.to_string(),
        Bson::Boolean(b) => b.to_string(),
        Bson::ObjectId(id) => id.to_hex(),
        Bson::DateTime(d) => format_date(d.timestamp_millis()),
        other => {
            return Err(QueryError::Location {
                code: CONVERSION_FAILURE,
                message: format!(
                    "Unsupported conversion from {} to string in {name}",
                    type_name(other)
                ),
            })
        }
    }))
}

/// Doubles as MongoDB prints them: integral values without a fraction.
pub(crate) fn format_double(d: f64) -> String {
    if d.is_nan() {
        "NaN".into()
    } else if d.is_infinite() {
        if d > 0.0 { "Infinity" } else { "-Infinity" }.into()
    } else {
        d.to_string()
    }
}

/// ISO-8601 in UTC with milliseconds, as `$toString` prints dates.
pub(crate) fn format_date(millis: i64) -> String {
    let days = millis.div_euclid(86_400_000);
    let ms_of_day = millis.rem_euclid(86_400_000);
    // Howard Hinnant's days-to-civil algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        ms_of_day / 3_600_000,
        ms_of_day / 60_000 % 60,
        ms_of_day / 1000 % 60,
        ms_of_day % 1000
    )
}

fn conversion_error(value: &Bson, target: &str) -> QueryError {
    QueryError::Location {
        code: CONVERSION_FAILURE,
        message: format!(
            "Failed to convert {} value {value} to {target} in $convert with no onError value",
            type_name(value)
        ),
    }
}

fn convert(func: Func, value: &Bson) -> Result<Bson, QueryError> {
    let target = match func {
        Func::ToInt => "int",
        Func::ToLong => "long",
        Func::ToDouble => "double",
        _ => "bool",
    };
    let fail = || conversion_error(value, target);
    if func == Func::ToBool {
        return Ok(Bson::Boolean(match value {
            Bson::Boolean(b) => *b,
            n @ (Bson::Int32(_) | Bson::Int64(_) | Bson::Double(_) | Bson::Decimal128(_)) => {
                !values_equal(n, &Bson::Int32(0))
            }
            _ => true,
        }));
    }
    // The value as a wide integer or a double first.
    let number: Num = match value {
        Bson::Int32(i) => Num::Int(*i),
        Bson::Int64(i) => Num::Long(*i),
        Bson::Double(d) => Num::Double(*d),
        Bson::Boolean(b) => Num::Int(i32::from(*b)),
        Bson::DateTime(d) if func != Func::ToInt => Num::Long(d.timestamp_millis()),
        Bson::String(s) => {
            let s = s.trim();
            match func {
                Func::ToDouble => Num::Double(s.parse::<f64>().map_err(|_| fail())?),
                _ => Num::Long(s.parse::<i64>().map_err(|_| fail())?),
            }
        }
        _ => return Err(fail()),
    };
    Ok(match func {
        Func::ToDouble => Bson::Double(number.as_f64()),
        _ => {
            let wide = match number {
                Num::Double(d) if !d.is_finite() || d.abs() >= 9.2e18 => return Err(fail()),
                Num::Double(d) => d.trunc() as i64,
                other => other.as_i64(),
            };
            if func == Func::ToInt {
                Bson::Int32(i32::try_from(wide).map_err(|_| fail())?)
            } else {
                Bson::Int64(wide)
            }
        }
    })
}
