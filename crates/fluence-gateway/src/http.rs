//! Routes of the HTTP API (`/v1/...`) and their JSON error model.
//!
//! Every error is `{"error": {"code": "<stable code>", "message": "..."}}`
//! with a matching HTTP status; codes are listed in the OpenAPI document.

use std::future::Future;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bson::Document;
use fluence_client::descriptor::{kind_name, parse_kind, IndexSpec};
use fluence_client::{
    Client, ClientError, DatasetView, FindOptions, ReadOptions, ReadQuorum, Transport,
};
use serde_json::{json, Map, Value};

use crate::json::{from_bson, from_document, optional_document, to_document};

/// Largest request body accepted: room for a bulk insert of a few thousand
/// 1 KiB documents or one maximal 16 MiB document in Extended JSON.
pub const REQUEST_BODY_LEN_MAX: usize = 64 * 1024 * 1024;
/// Documents one insert request may carry.
pub const INSERT_DOCS_MAX: usize = 100_000;

const OPENAPI: &str = include_str!("openapi.json");

pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    /// Fields beside code and message (`disagreeing` of a
    /// `read_disagreement`).
    details: Map<String, Value>,
}

impl ApiError {
    fn bad_request(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            code: "bad_request",
            message: message.into(),
            details: Map::new(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut error = Map::new();
        error.insert("code".into(), json!(self.code));
        error.insert("message".into(), json!(self.message));
        error.extend(self.details);
        (self.status, Json(json!({ "error": error }))).into_response()
    }
}

impl From<ClientError> for ApiError {
    fn from(error: ClientError) -> Self {
        let status = match &error {
            ClientError::InvalidRequest(_) | ClientError::Query(_) => StatusCode::BAD_REQUEST,
            ClientError::DocumentTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ClientError::DatasetNotFound(_) | ClientError::IndexNotFound(_) => {
                StatusCode::NOT_FOUND
            }
            ClientError::DatasetExists(_)
            | ClientError::DuplicateKey { .. }
            | ClientError::UniqueViolation { .. }
            | ClientError::IndexConflict(_)
            | ClientError::Conflict(_) => StatusCode::CONFLICT,
            ClientError::Integrity(_)
            | ClientError::Node(_)
            | ClientError::ReadDisagreement { .. } => StatusCode::BAD_GATEWAY,
            ClientError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ClientError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        if status.is_server_error() {
            tracing::warn!(code = error.code(), %error, "request failed");
        }
        let mut details = Map::new();
        if let ClientError::ReadDisagreement { disagreeing, .. } = &error {
            details.insert("disagreeing".into(), json!(disagreeing));
        }
        ApiError {
            status,
            code: error.code(),
            message: error.to_string(),
            details,
        }
    }
}

type ApiResult = Result<Json<Value>, ApiError>;

/// The API over one client.
pub fn router<T: Transport>(client: Arc<Client<T>>) -> Router {
    Router::new()
        .route("/v1/openapi.json", get(openapi))
        .route("/v1/health", get(health))
        .route(
            "/v1/datasets",
            post(create_dataset::<T>).get(list_datasets::<T>),
        )
        .route(
            "/v1/datasets/{name}",
            get(describe_dataset::<T>).delete(drop_dataset::<T>),
        )
        .route("/v1/datasets/{name}/indexes", post(create_indexes::<T>))
        .route(
            "/v1/datasets/{name}/indexes/{kind}/{field}",
            axum::routing::delete(drop_index::<T>),
        )
        .route("/v1/datasets/{name}/documents", post(insert::<T>))
        .route("/v1/datasets/{name}/find", post(find::<T>))
        .route("/v1/datasets/{name}/count", post(count::<T>))
        .route("/v1/datasets/{name}/update", post(update::<T>))
        .route("/v1/datasets/{name}/delete", post(delete::<T>))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(REQUEST_BODY_LEN_MAX))
        .layer(axum::middleware::from_fn(refuse_declared_oversize))
        .with_state(client)
}

/// Serves the API on `addr` until `shutdown` completes.
pub async fn serve<T: Transport>(
    listener: tokio::net::TcpListener,
    client: Arc<Client<T>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(client))
        .with_graceful_shutdown(shutdown)
        .await
}

fn payload_too_large() -> ApiError {
    ApiError {
        status: StatusCode::PAYLOAD_TOO_LARGE,
        code: "payload_too_large",
        message: format!("request body is larger than {REQUEST_BODY_LEN_MAX} bytes"),
        details: Map::new(),
    }
}

/// Refuses a body whose declared length is over the limit before reading
/// any of it (the body limit alone would only stop reading at the limit).
async fn refuse_declared_oversize(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let declared = request
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match declared {
        Some(len) if len > REQUEST_BODY_LEN_MAX as u64 => payload_too_large().into_response(),
        _ => next.run(request).await,
    }
}

/// Parses a JSON object body, with errors a user can act on.
fn body_object(body: Result<Bytes, BytesRejection>) -> Result<Map<String, Value>, ApiError> {
    let bytes = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            payload_too_large()
        } else {
            ApiError::bad_request(rejection.body_text())
        }
    })?;
    let value: Value = if bytes.is_empty() {
        Value::Object(Map::new())
    } else {
        serde_json::from_slice(&bytes).map_err(|e| ApiError {
            status: StatusCode::BAD_REQUEST,
            code: "invalid_json",
            message: format!("request body is not valid JSON: {e}"),
            details: Map::new(),
        })?
    };
    match value {
        Value::Object(map) => Ok(map),
        _ => Err(ApiError::bad_request("request body must be a JSON object")),
    }
}

fn reject_unknown_fields(body: &Map<String, Value>, allowed: &[&str]) -> Result<(), ApiError> {
    match body.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(key) => Err(ApiError::bad_request(format!(
            "unknown field {key:?}; expected one of: {}",
            allowed.join(", ")
        ))),
        None => Ok(()),
    }
}

fn filter_of(body: &Map<String, Value>) -> Result<Document, ApiError> {
    Ok(optional_document(body, "filter")
        .map_err(ApiError::bad_request)?
        .unwrap_or_default())
}

fn bool_field(body: &Map<String, Value>, key: &str) -> Result<bool, ApiError> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(ApiError::bad_request(format!("{key} must be a boolean"))),
    }
}

fn integer_field(body: &Map<String, Value>, key: &str) -> Result<i64, ApiError> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(0),
        Some(Value::Number(n)) => n
            .as_i64()
            .ok_or_else(|| ApiError::bad_request(format!("{key} must be an integer"))),
        Some(_) => Err(ApiError::bad_request(format!("{key} must be an integer"))),
    }
}

/// The fields of a reading request that choose how it is verified.
const READ_FIELDS: [&str; 2] = ["readQuorum", "proof"];

/// `readQuorum`: members that must agree (an integer, `"majority"` for
/// 2f + 1, `"all"`); `proof`: Merkle proofs for a lookup by `_id` at
/// `readQuorum` 1. Absent fields take the gateway's defaults.
fn read_options(body: &Map<String, Value>) -> Result<ReadOptions, ApiError> {
    let quorum = match body.get("readQuorum") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => match n.as_u64() {
            Some(r) if r >= 1 => Some(ReadQuorum::Count(usize::try_from(r).unwrap_or(usize::MAX))),
            _ => {
                return Err(ApiError::bad_request(
                    "readQuorum must be a positive integer, \"majority\" or \"all\"",
                ))
            }
        },
        Some(Value::String(s)) if s == "majority" => Some(ReadQuorum::Majority),
        Some(Value::String(s)) if s == "all" => Some(ReadQuorum::All),
        Some(_) => {
            return Err(ApiError::bad_request(
                "readQuorum must be a positive integer, \"majority\" or \"all\"",
            ))
        }
    };
    let proof = match body.get("proof") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(_) => return Err(ApiError::bad_request("proof must be a boolean")),
    };
    Ok(ReadOptions { quorum, proof })
}

/// `base` and the read-choice fields: what a reading request accepts.
fn with_read_fields<'a>(base: &[&'a str]) -> Vec<&'a str> {
    base.iter().copied().chain(READ_FIELDS).collect()
}

fn specs_json(specs: &[IndexSpec]) -> Vec<Value> {
    specs
        .iter()
        .map(|i| json!({"field": i.path, "kind": kind_name(i.kind), "unique": i.unique}))
        .collect()
}

fn view_json(view: DatasetView) -> Value {
    json!({
        "name": view.name,
        "indexes": specs_json(&view.indexes),
        "building": specs_json(&view.building),
        "document_count": view.doc_count,
        "seq": view.seq,
        "state_root": view.state_root,
    })
}

async fn openapi() -> Response {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        OPENAPI,
    )
        .into_response()
}

async fn health() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

async fn not_found() -> ApiError {
    ApiError {
        status: StatusCode::NOT_FOUND,
        code: "not_found",
        message: "no such endpoint; see /v1/openapi.json".into(),
        details: Map::new(),
    }
}

async fn method_not_allowed() -> ApiError {
    ApiError {
        status: StatusCode::METHOD_NOT_ALLOWED,
        code: "method_not_allowed",
        message: "method not allowed on this endpoint; see /v1/openapi.json".into(),
        details: Map::new(),
    }
}

/// `indexes` is a list of `{"field": "age", "kind": "range"}` (with an
/// optional `"unique": true`) or an object `{"age": "range", "email":
/// ["eq", "text"]}`.
fn parse_indexes(value: Option<&Value>) -> Result<Vec<IndexSpec>, ApiError> {
    let spec = |field: &str, kind: &Value| -> Result<IndexSpec, ApiError> {
        let kind = kind
            .as_str()
            .ok_or_else(|| ApiError::bad_request("index kind must be a string"))?;
        Ok(IndexSpec::new(
            field,
            parse_kind(kind).map_err(ApiError::from)?,
        ))
    };
    match value {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| {
                let field = item.get("field").and_then(Value::as_str);
                let kind = item.get("kind");
                let unique = match item.get("unique") {
                    None => false,
                    Some(Value::Bool(unique)) => *unique,
                    Some(_) => return Err(ApiError::bad_request("\"unique\" must be a boolean")),
                };
                match (field, kind) {
                    (Some(field), Some(kind)) => Ok(IndexSpec {
                        unique,
                        ..spec(field, kind)?
                    }),
                    _ => Err(ApiError::bad_request(
                        "each index needs a \"field\" and a \"kind\"",
                    )),
                }
            })
            .collect(),
        Some(Value::Object(map)) => {
            let mut out = Vec::new();
            for (field, kinds) in map {
                match kinds {
                    Value::Array(kinds) => {
                        for kind in kinds {
                            out.push(spec(field, kind)?);
                        }
                    }
                    kind => out.push(spec(field, kind)?),
                }
            }
            Ok(out)
        }
        Some(_) => Err(ApiError::bad_request("indexes must be a list or an object")),
    }
}

async fn create_dataset<T: Transport>(
    State(client): State<Arc<Client<T>>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let body = body_object(body)?;
    reject_unknown_fields(&body, &["name", "indexes"])?;
    let name = body
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::bad_request("name (a string) is required"))?;
    let indexes = parse_indexes(body.get("indexes"))?;
    let view = client.create_dataset(name, indexes).await?;
    Ok((StatusCode::CREATED, Json(view_json(view))))
}

async fn list_datasets<T: Transport>(State(client): State<Arc<Client<T>>>) -> ApiResult {
    let views = client.list_datasets().await?;
    Ok(Json(
        json!({ "datasets": views.into_iter().map(view_json).collect::<Vec<_>>() }),
    ))
}

async fn describe_dataset<T: Transport>(
    State(client): State<Arc<Client<T>>>,
    Path(name): Path<String>,
) -> ApiResult {
    Ok(Json(view_json(client.describe(&name).await?)))
}

/// Body: `{"indexes": [...]}` as in dataset creation. Builds the new
/// indexes over the documents before answering.
async fn create_indexes<T: Transport>(
    State(client): State<Arc<Client<T>>>,
    Path(name): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let body = body_object(body)?;
    reject_unknown_fields(&body, &["indexes"])?;
    let indexes = parse_indexes(body.get("indexes"))?;
    if indexes.is_empty() {
        return Err(ApiError::bad_request(
            "indexes (a non-empty list) is required",
        ));
    }
    Ok(Json(view_json(
        client.create_indexes(&name, indexes).await?,
    )))
}

async fn drop_index<T: Transport>(
    State(client): State<Arc<Client<T>>>,
    Path((name, kind, field)): Path<(String, String, String)>,
) -> ApiResult {
    let spec = IndexSpec::new(field, parse_kind(&kind).map_err(ApiError::from)?);
    Ok(Json(view_json(
        client.drop_indexes(&name, vec![spec]).await?,
    )))
}

async fn drop_dataset<T: Transport>(
    State(client): State<Arc<Client<T>>>,
    Path(name): Path<String>,
) -> ApiResult {
    client.drop_dataset(&name).await?;
    Ok(Json(json!({ "dropped": name })))
}

/// Body: one document, `{"documents": [...]}`, or `{"document": {...}}`.
async fn insert<T: Transport>(
    State(client): State<Arc<Client<T>>>,
    Path(name): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let mut body = body_object(body)?;
    let values: Vec<Value> = if body.len() == 1 && body.contains_key("documents") {
        match body.remove("documents") {
            Some(Value::Array(items)) => items,
            _ => {
                return Err(ApiError::bad_request(
                    "documents must be an array of objects",
                ))
            }
        }
    } else if body.len() == 1 && matches!(body.get("document"), Some(Value::Object(_))) {
        body.remove("document").into_iter().collect()
    } else {
        vec![Value::Object(body)]
    };
    if values.is_empty() {
        return Err(ApiError::bad_request("no documents to insert"));
    }
    if values.len() > INSERT_DOCS_MAX {
        return Err(ApiError::bad_request(format!(
            "at most {INSERT_DOCS_MAX} documents per request"
        )));
    }
    let docs = values
        .into_iter()
        .enumerate()
        .map(|(i, v)| to_document(v, &format!("document {i}")))
        .collect::<Result<Vec<_>, _>>()
        .map_err(ApiError::bad_request)?;
    let result = client.insert(&name, docs).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "inserted_count": result.inserted_ids.len(),
            "inserted_ids": result.inserted_ids.into_iter().map(from_bson).collect::<Vec<_>>(),
        })),
    ))
}

async fn find<T: Transport>(
    State(client): State<Arc<Client<T>>>,
    Path(name): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let body = body_object(body)?;
    reject_unknown_fields(
        &body,
        &with_read_fields(&["filter", "sort", "skip", "limit", "projection"]),
    )?;
    let reads = read_options(&body)?;
    let skip = integer_field(&body, "skip")?;
    if skip < 0 {
        return Err(ApiError::bad_request("skip must not be negative"));
    }
    let options = FindOptions {
        filter: filter_of(&body)?,
        sort: optional_document(&body, "sort").map_err(ApiError::bad_request)?,
        skip: skip as u64,
        limit: integer_field(&body, "limit")?,
        projection: optional_document(&body, "projection").map_err(ApiError::bad_request)?,
    };
    let docs = reads.scope(client.find(&name, options)).await?;
    Ok(Json(
        json!({ "documents": docs.into_iter().map(from_document).collect::<Vec<_>>() }),
    ))
}

async fn count<T: Transport>(
    State(client): State<Arc<Client<T>>>,
    Path(name): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let body = body_object(body)?;
    reject_unknown_fields(&body, &with_read_fields(&["filter"]))?;
    let reads = read_options(&body)?;
    let filter = filter_of(&body)?;
    let count = reads.scope(client.count(&name, &filter)).await?;
    Ok(Json(json!({ "count": count })))
}

async fn update<T: Transport>(
    State(client): State<Arc<Client<T>>>,
    Path(name): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let body = body_object(body)?;
    reject_unknown_fields(
        &body,
        &with_read_fields(&["filter", "update", "multi", "upsert"]),
    )?;
    let reads = read_options(&body)?;
    let update = optional_document(&body, "update")
        .map_err(ApiError::bad_request)?
        .ok_or_else(|| ApiError::bad_request("update (an object) is required"))?;
    let filter = filter_of(&body)?;
    let (multi, upsert) = (bool_field(&body, "multi")?, bool_field(&body, "upsert")?);
    let result = reads
        .scope(client.update(&name, &filter, &update, multi, upsert))
        .await?;
    Ok(Json(json!({
        "matched_count": result.matched,
        "modified_count": result.modified,
        "upserted_id": result.upserted_id.map(from_bson),
    })))
}

async fn delete<T: Transport>(
    State(client): State<Arc<Client<T>>>,
    Path(name): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let body = body_object(body)?;
    reject_unknown_fields(&body, &with_read_fields(&["filter", "multi"]))?;
    let reads = read_options(&body)?;
    let filter = filter_of(&body)?;
    let multi = bool_field(&body, "multi")?;
    let deleted = reads.scope(client.delete(&name, &filter, multi)).await?;
    Ok(Json(json!({ "deleted_count": deleted })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use fluence_client::query::IndexKindSpec;

    fn spec(path: &str, kind: IndexKindSpec) -> IndexSpec {
        IndexSpec::new(path, kind)
    }

    #[test]
    fn indexes_parse_from_a_list_or_an_object() {
        let list = json!([
            {"field": "age", "kind": "range"},
            {"field": "a.b", "kind": "eq", "unique": true}
        ]);
        assert_eq!(
            parse_indexes(Some(&list)).ok().unwrap(),
            vec![
                spec("age", IndexKindSpec::Range),
                IndexSpec {
                    unique: true,
                    ..spec("a.b", IndexKindSpec::Eq)
                }
            ]
        );
        let object = json!({"email": "eq", "bio": ["text", "eq"]});
        assert_eq!(
            parse_indexes(Some(&object)).ok().unwrap(),
            vec![
                spec("email", IndexKindSpec::Eq),
                spec("bio", IndexKindSpec::Text),
                spec("bio", IndexKindSpec::Eq)
            ]
        );
        assert!(parse_indexes(None).ok().unwrap().is_empty());
    }

    #[test]
    fn bad_index_declarations_are_refused_with_their_reason() {
        for bad in [
            json!({"x": "hash"}),
            json!([{"field": "x"}]),
            json!([{"field": "x", "kind": "eq", "unique": "yes"}]),
            json!("eq"),
            json!({"x": 1}),
        ] {
            let error = parse_indexes(Some(&bad)).err().expect("refused");
            assert_eq!(error.status, StatusCode::BAD_REQUEST, "{bad}");
            assert!(!error.message.is_empty());
        }
    }

    #[test]
    fn bodies_must_be_json_objects() {
        let parse = |b: &'static [u8]| body_object(Ok(Bytes::from_static(b)));
        assert!(parse(b"").ok().unwrap().is_empty());
        assert_eq!(parse(b"{\"a\":").err().unwrap().code, "invalid_json");
        assert_eq!(parse(b"[1]").err().unwrap().code, "bad_request");
        assert_eq!(parse(b"{\"filter\": {}}").ok().unwrap().len(), 1);
    }

    #[test]
    fn unknown_fields_and_wrong_types_are_named() {
        let body = json!({"filter": {}, "limt": 5})
            .as_object()
            .unwrap()
            .clone();
        let error = reject_unknown_fields(&body, &["filter", "limit"])
            .err()
            .unwrap();
        assert!(error.message.contains("limt"));
        let body = json!({"multi": "yes", "skip": 1.5})
            .as_object()
            .unwrap()
            .clone();
        assert!(bool_field(&body, "multi").is_err());
        assert!(integer_field(&body, "skip").is_err());
        assert_eq!(integer_field(&body, "limit").ok(), Some(0));
    }

    #[test]
    fn client_errors_map_to_stable_codes_and_statuses() {
        let cases = [
            (
                ClientError::DatasetNotFound("x".into()),
                StatusCode::NOT_FOUND,
                "dataset_not_found",
            ),
            (
                ClientError::DuplicateKey {
                    id: "1".into(),
                    inserted: 0,
                },
                StatusCode::CONFLICT,
                "duplicate_key",
            ),
            (
                ClientError::DocumentTooLarge { size: 2, max: 1 },
                StatusCode::PAYLOAD_TOO_LARGE,
                "document_too_large",
            ),
            (
                ClientError::Integrity("forged".into()),
                StatusCode::BAD_GATEWAY,
                "integrity_error",
            ),
            (
                ClientError::Unavailable("down".into()),
                StatusCode::SERVICE_UNAVAILABLE,
                "node_unavailable",
            ),
            (
                ClientError::Internal("bug".into()),
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error",
            ),
            (
                ClientError::ReadDisagreement {
                    disagreeing: vec!["node-3".into()],
                    detail: "members answered differently".into(),
                },
                StatusCode::BAD_GATEWAY,
                "read_disagreement",
            ),
        ];
        for (error, status, code) in cases {
            let api = ApiError::from(error);
            assert_eq!((api.status, api.code), (status, code));
        }
    }

    #[test]
    fn a_disagreement_names_the_members_in_its_json() {
        let api = ApiError::from(ClientError::ReadDisagreement {
            disagreeing: vec!["node-3 (key 00ff…)".into()],
            detail: "x".into(),
        });
        assert_eq!(api.details["disagreeing"], json!(["node-3 (key 00ff…)"]));
    }

    #[test]
    fn read_choices_parse_from_the_body() {
        let parse = |v: Value| read_options(v.as_object().unwrap());
        let options = parse(json!({"readQuorum": 2, "proof": false}))
            .ok()
            .unwrap();
        assert_eq!(options.quorum, Some(ReadQuorum::Count(2)));
        assert_eq!(options.proof, Some(false));
        assert_eq!(
            parse(json!({"readQuorum": "majority"}))
                .ok()
                .unwrap()
                .quorum,
            Some(ReadQuorum::Majority)
        );
        assert_eq!(parse(json!({})).ok().unwrap(), ReadOptions::default());
        for bad in [
            json!({"readQuorum": 0}),
            json!({"readQuorum": -1}),
            json!({"readQuorum": 1.5}),
            json!({"readQuorum": "most"}),
            json!({"proof": "yes"}),
        ] {
            assert_eq!(
                parse(bad.clone()).err().unwrap().code,
                "bad_request",
                "{bad}"
            );
        }
    }

    #[test]
    fn the_openapi_document_is_valid_json_listing_every_route() {
        let doc: Value = serde_json::from_str(OPENAPI).unwrap();
        for path in [
            "/v1/datasets",
            "/v1/datasets/{name}",
            "/v1/datasets/{name}/documents",
            "/v1/datasets/{name}/find",
            "/v1/datasets/{name}/count",
            "/v1/datasets/{name}/update",
            "/v1/datasets/{name}/delete",
        ] {
            assert!(
                doc["paths"].get(path).is_some(),
                "{path} missing from openapi.json"
            );
        }
    }
}
