//! JSON ⇄ BSON at the API boundary. Requests use MongoDB Extended JSON
//! (relaxed or canonical: `{"$date": ...}`, `{"$oid": ...}`,
//! `{"$numberLong": ...}`); responses use relaxed Extended JSON, as
//! `mongoexport` does.

use bson::{Bson, Document};
use serde_json::Value;

pub fn to_document(value: Value, what: &str) -> Result<Document, String> {
    match Bson::try_from(value) {
        Ok(Bson::Document(doc)) => Ok(doc),
        Ok(other) => Err(format!(
            "{what} must be a JSON object, not {}",
            type_name(&other)
        )),
        Err(e) => Err(format!("{what} is not valid Extended JSON: {e}")),
    }
}

pub fn optional_document(
    body: &serde_json::Map<String, Value>,
    key: &str,
) -> Result<Option<Document>, String> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => to_document(value.clone(), key).map(Some),
    }
}

pub fn from_bson(value: Bson) -> Value {
    value.into_relaxed_extjson()
}

pub fn from_document(doc: Document) -> Value {
    from_bson(Bson::Document(doc))
}

fn type_name(value: &Bson) -> &'static str {
    match value {
        Bson::Array(_) => "an array",
        Bson::String(_) => "a string",
        Bson::Null => "null",
        Bson::Boolean(_) => "a boolean",
        Bson::Int32(_) | Bson::Int64(_) | Bson::Double(_) => "a number",
        _ => "a scalar",
    }
}
