//! `GET /v1/openapi.json`: the REST API described by machine (OpenAPI 3.1). The document
//! is kept honest by `tests/openapi.rs`, which fails when a route and the document
//! disagree either way: every route in the router is documented, and every documented
//! method of every path is routed while no undocumented one is.

use axum::http::header;
use axum::response::IntoResponse;

/// The document, as served.
const DOCUMENT: &str = include_str!("openapi.json");

pub async fn document() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], DOCUMENT)
}
