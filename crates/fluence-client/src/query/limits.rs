//! Named limits of the query engine and the nesting-depth guard.
//!
//! The engine recurses over filters and over documents (comparison,
//! matching, projection). Inputs come from the network, so their nesting is
//! bounded before any recursive code sees them; the bounds mirror MongoDB's
//! so that anything MongoDB accepts is accepted here too.

use bson::{Bson, Document};

use super::error::QueryError;

/// Deepest nesting of `$and`/`$or`/`$nor`/`$not` in a filter (MongoDB's
/// maximum match-expression tree depth).
pub const FILTER_TREE_DEPTH_MAX: usize = 100;

/// Deepest nesting of documents and arrays in any BSON value the engine
/// accepts or produces (MongoDB's default maximum BSON object depth).
pub const BSON_DEPTH_MAX: usize = 200;

/// Largest array index an update may create by padding with nulls
/// (MongoDB refuses to backfill arrays past 1.5 million elements).
pub const ARRAY_BACKFILL_MAX: usize = 1_500_000;

/// Most fields in one sort specification (MongoDB's compound-key limit).
pub const SORT_FIELDS_MAX: usize = 32;

/// Checks that `doc` nests no deeper than [`BSON_DEPTH_MAX`].
///
/// Iterative on purpose: the value being checked is untrusted, so the check
/// itself must not be the recursion that overflows the stack.
pub fn check_depth(doc: &Document) -> Result<(), QueryError> {
    // (value, depth of the container holding it); the root document is depth 1.
    let mut stack: Vec<(&Bson, usize)> = doc.iter().map(|(_, v)| (v, 1)).collect();
    while let Some((value, depth)) = stack.pop() {
        let children: Box<dyn Iterator<Item = &Bson>> = match value {
            Bson::Document(d) => Box::new(d.iter().map(|(_, v)| v)),
            Bson::Array(a) => Box::new(a.iter()),
            Bson::JavaScriptCodeWithScope(c) => Box::new(c.scope.iter().map(|(_, v)| v)),
            _ => continue,
        };
        let child_depth = depth + 1;
        if child_depth > BSON_DEPTH_MAX {
            return Err(QueryError::Overflow {
                message: format!("BSONObj exceeds maximum nested object depth: {BSON_DEPTH_MAX}"),
            });
        }
        stack.extend(children.map(|v| (v, child_depth)));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::doc;

    fn nested(depth: usize) -> Document {
        let mut d = doc! {"leaf": 1};
        for _ in 1..depth {
            d = doc! {"x": d};
        }
        d
    }

    #[test]
    fn accepts_up_to_the_limit_and_rejects_beyond() {
        assert!(check_depth(&nested(BSON_DEPTH_MAX)).is_ok());
        let err = check_depth(&nested(BSON_DEPTH_MAX + 1)).unwrap_err();
        assert!(err.to_string().contains("maximum nested object depth"));
    }

    #[test]
    fn arrays_count_as_nesting() {
        let mut v = Bson::Int32(1);
        for _ in 0..BSON_DEPTH_MAX {
            v = Bson::Array(vec![v]);
        }
        assert!(check_depth(&doc! {"a": v}).is_err());
    }
}
