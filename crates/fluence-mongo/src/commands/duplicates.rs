//! Duplicate key errors (11000) as MongoDB reports them: the index, and
//! `keyPattern` / `keyValue` fields drivers expose to applications
//! (pymongo's `DuplicateKeyError.details`, the Node driver's
//! `MongoServerError.keyValue`).
//!
//! The client reports which `_id` or which uniquely indexed field refused a
//! write; the MongoDB index it belongs to comes from the index catalog, and
//! the value from the document the write would have stored, when the
//! command knows it.

use bson::{doc, Bson, Document};
use fluence_client::query::UpdateSpec;
use fluence_client::{ClientError, FindOptions, Transport};

use super::index_spec::ID_INDEX_NAME;
use super::Gateway;
use crate::error::*;

/// True for the errors [`Gateway::duplicate`] describes.
pub(super) fn is_duplicate(error: &ClientError) -> bool {
    matches!(
        error,
        ClientError::DuplicateKey { .. } | ClientError::UniqueViolation { .. }
    )
}

/// The value at a dotted path through sub-documents; `None` past an array
/// (a multikey value MongoDB would report element by element).
fn value_at<'a>(doc: &'a Document, path: &str) -> Option<&'a Bson> {
    let mut parts = path.split('.');
    let mut value = doc.get(parts.next()?)?;
    for part in parts {
        value = value.as_document()?.get(part)?;
    }
    (!matches!(value, Bson::Array(_))).then_some(value)
}

/// `E11000 duplicate key error collection: <ns> index: <name> dup key:
/// { <path>: <value> }`, with `keyPattern` and, when known, `keyValue`.
fn duplicate_error(
    ns: &str,
    index: &str,
    key_pattern: Document,
    path: &str,
    value: Option<&Bson>,
    shown: &str,
) -> CommandError {
    let shown = value.map_or_else(|| shown.to_string(), ToString::to_string);
    let mut info = doc! {"keyPattern": key_pattern};
    if let Some(value) = value {
        info.insert("keyValue", doc! {path: value.clone()});
    }
    CommandError::new(
        DUPLICATE_KEY,
        format!("E11000 duplicate key error collection: {ns} index: {index} dup key: {{ {path}: {shown} }}"),
    )
    .with_info(info)
}

impl<T: Transport> Gateway<T> {
    /// The MongoDB error of a write to `db.collection` (dataset `ns`) that
    /// a duplicate `_id` or unique index value refused; `written` is the
    /// document the write would have stored, if known. Other errors map
    /// as usual.
    pub(super) async fn duplicate(
        &self,
        db: &str,
        collection: &str,
        ns: &str,
        error: ClientError,
        written: Option<&Document>,
    ) -> CommandError {
        match error {
            ClientError::DuplicateKey { id, .. } => duplicate_error(
                ns,
                ID_INDEX_NAME,
                doc! {"_id": 1},
                "_id",
                written.and_then(|d| d.get("_id")),
                &id,
            ),
            ClientError::UniqueViolation { path, .. } => {
                // The index as the application created it; without the
                // catalog, the name drivers would have given it.
                let index = self
                    .mongo_indexes(db, collection, ns)
                    .await
                    .ok()
                    .and_then(|list| {
                        list.into_iter()
                            .find(|i| i.unique && i.fields.iter().any(|f| f.path == path))
                    });
                let (name, key) = match index {
                    Some(index) => (index.name, index.key),
                    None => (format!("{path}_1"), doc! {path.clone(): 1}),
                };
                let value = written.and_then(|d| value_at(d, &path));
                duplicate_error(ns, &name, key, &path, value, "?")
            }
            other => other.into(),
        }
    }

    /// The document a single-document update of `ns` would have written:
    /// the first match (in `sort` order) updated, or the upsert. Used only
    /// to report the value of a refused write, so a failure to compute it
    /// is `None`.
    pub(super) async fn preview_update(
        &self,
        ns: &str,
        filter: &Document,
        sort: Option<&Document>,
        update: &UpdateSpec,
        upsert: bool,
    ) -> Option<Document> {
        let options = FindOptions {
            filter: filter.clone(),
            sort: sort.cloned(),
            limit: 1,
            ..FindOptions::default()
        };
        match self.client.find(ns, options).await.ok()?.into_iter().next() {
            Some(mut doc) => update.apply(&mut doc).ok().map(|_| doc),
            None if upsert => update.apply_upsert(filter).ok(),
            None => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_read_through_sub_documents_only() {
        let d = doc! {"a": {"b": 1}, "t": [1, 2], "s": "x"};
        assert_eq!(value_at(&d, "a.b"), Some(&Bson::Int32(1)));
        assert_eq!(value_at(&d, "s"), Some(&Bson::String("x".into())));
        assert_eq!(value_at(&d, "t"), None);
        assert_eq!(value_at(&d, "a.c"), None);
        assert_eq!(value_at(&d, "s.x"), None);
    }

    #[test]
    fn errors_carry_key_pattern_and_value() {
        let value = Bson::String("a@x".into());
        let error = duplicate_error(
            "d.c",
            "email_1",
            doc! {"email": 1},
            "email",
            Some(&value),
            "?",
        );
        assert_eq!(error.code, 11000);
        assert_eq!(
            error.message,
            "E11000 duplicate key error collection: d.c index: email_1 dup key: { email: \"a@x\" }"
        );
        let reply = error.to_reply();
        assert_eq!(
            reply.get_document("keyPattern").unwrap(),
            &doc! {"email": 1}
        );
        assert_eq!(
            reply.get_document("keyValue").unwrap(),
            &doc! {"email": "a@x"}
        );
        let unknown = duplicate_error("d.c", "_id_", doc! {"_id": 1}, "_id", None, "7");
        assert!(unknown.message.ends_with("{ _id: 7 }"));
        assert!(!unknown.to_write_error(0).contains_key("keyValue"));
    }
}
