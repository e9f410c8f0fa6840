//! Indexes as MongoDB lists them. Every collection has the `_id_` index
//! (documents are addressed by `_id`); each encrypted index of the dataset
//! appears as the MongoDB index it answers for: `range` as an ascending
//! index `{path: 1}`, `eq` as a hashed index `{path: "hashed"}`, `text` as
//! a text index.

use bson::{doc, Bson, Document};
use fluence_client::descriptor::IndexSpec;
use fluence_client::query::IndexKindSpec;
use fluence_client::Transport;

use super::{collection_of, namespace, Gateway, Reply};

/// The `_id_` index every collection has.
fn id_index() -> Document {
    doc! {"v": 2, "key": {"_id": 1}, "name": "_id_"}
}

/// The MongoDB description of one encrypted index.
pub(super) fn describe_index(spec: &IndexSpec) -> Document {
    let path = spec.path.as_str();
    match spec.kind {
        IndexKindSpec::Range => doc! {"v": 2, "key": {path: 1}, "name": format!("{path}_1")},
        IndexKindSpec::Eq => {
            doc! {"v": 2, "key": {path: "hashed"}, "name": format!("{path}_hashed")}
        }
        IndexKindSpec::Text => doc! {
            "v": 2,
            "key": {"_fts": "text", "_ftsx": 1},
            "name": format!("{path}_text"),
            "weights": {path: 1},
            "default_language": "none",
            "language_override": "language",
            "textIndexVersion": 3,
        },
    }
}

impl<T: Transport> Gateway<T> {
    pub(super) async fn list_indexes(&self, db: &str, cmd: &Document) -> Reply {
        let ns = namespace(db, collection_of(cmd)?)?;
        let view = self.describe_collection(&ns).await?;
        let mut batch = vec![Bson::Document(id_index())];
        batch.extend(
            view.indexes
                .iter()
                .map(|spec| Bson::Document(describe_index(spec))),
        );
        // A handful of indexes: one batch, no cursor.
        Ok(doc! {"cursor": {"id": 0i64, "ns": ns, "firstBatch": batch}})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_map_onto_mongodb_index_types() {
        let spec = |path: &str, kind| IndexSpec::new(path, kind);
        assert_eq!(
            describe_index(&spec("a.b", IndexKindSpec::Range)),
            doc! {"v": 2, "key": {"a.b": 1}, "name": "a.b_1"}
        );
        assert_eq!(
            describe_index(&spec("c", IndexKindSpec::Eq))
                .get_document("key")
                .unwrap(),
            &doc! {"c": "hashed"}
        );
        let text = describe_index(&spec("body", IndexKindSpec::Text));
        assert_eq!(text.get_str("name").unwrap(), "body_text");
        assert_eq!(text.get_document("weights").unwrap(), &doc! {"body": 1});
    }
}
