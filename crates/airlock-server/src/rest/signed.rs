//! Signed URLs on REST: minting them (`POST /v1/sandboxes/{id}/files/signed-url`) and
//! admitting a request that presents one instead of a token.

use std::sync::Arc;

use airlock_api::{SignUrl, SignedUrl};
use airlock_service::{ApiError, Principal, Service, SignedMethod, SignedRequest};
use axum::Extension;
use axum::extract::{Path, Request, State};

use crate::origin::Origin;

use super::failure::Answer;
use super::json::{Json, QueryParams};

/// The one route a signed URL may name.
const SIGNED_ROUTE: &str = "/v1/sandboxes/{id}/files/content";

pub async fn sign(
    State(service): State<Arc<Service>>,
    Extension(caller): Extension<Principal>,
    Path(id): Path<String>,
    Origin(origin): Origin,
    Json(req): Json<SignUrl>,
) -> Answer<axum::Json<SignedUrl>> {
    let mut signed = service.sign_url(&caller, &id, req)?;
    signed.url = format!("{origin}{}", signed.url);
    Ok(axum::Json(signed))
}

/// Whether a request carries a signature rather than a token.
pub fn presents_signature(request: &Request) -> bool {
    QueryParams::names(request.uri().query(), "signature")
}

/// The principal a signed request acts as. The service checks the signature against
/// the sandbox, method and `path` read here, which are the ones the handler acts on:
/// the route is the content route and `path` appears exactly once.
pub fn admit(service: &Service, request: &Request) -> Result<Principal, ApiError> {
    let matched = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(axum::extract::MatchedPath::as_str);
    if matched != Some(SIGNED_ROUTE) {
        return Err(refused("a signed URL reaches a file's content route only"));
    }
    let method = SignedMethod::from_request(request.method().as_str())
        .ok_or_else(|| refused("a signed URL is for GET, HEAD or PUT"))?;
    // The URI seen here may have lost its `/v1` (nested routers strip their prefix).
    let sandbox_id = request
        .uri()
        .path()
        .split('/')
        .skip_while(|segment| *segment != "sandboxes")
        .nth(1)
        .unwrap_or_default();
    let params = QueryParams::parse(request.uri().query().unwrap_or_default())?;
    service.authenticate_signed(&SignedRequest {
        sandbox_id,
        method,
        path: params.once("path")?,
        expires: params.once("expires")?,
        signature: params.once("signature")?,
    })
}

fn refused(message: &str) -> ApiError {
    ApiError::forbidden(message)
}
