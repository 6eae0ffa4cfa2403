//! `/v1/tokens` (the admin's API tokens for tenants) and `/v1/sandboxes/{id}/tokens`
//! (sandbox-scoped tokens).

use std::sync::Arc;

use airlock_api::{CreateSandboxToken, CreateToken, SandboxToken, TokenCreated, TokenInfo};
use airlock_service::{Principal, Service};
use axum::Extension;
use axum::extract::{Path, State};
use axum::http::StatusCode;

use super::failure::Answer;
use super::json::Json;

type Caller = Extension<Principal>;

pub async fn create(
    State(service): State<Arc<Service>>,
    Extension(caller): Caller,
    Json(req): Json<CreateToken>,
) -> Answer<(StatusCode, axum::Json<TokenCreated>)> {
    let made = service.create_token(&caller, req)?;
    Ok((StatusCode::CREATED, axum::Json(made)))
}

pub async fn list(
    State(service): State<Arc<Service>>,
    Extension(caller): Caller,
) -> Answer<axum::Json<Vec<TokenInfo>>> {
    Ok(axum::Json(service.list_tokens(&caller)?))
}

pub async fn revoke(
    State(service): State<Arc<Service>>,
    Extension(caller): Caller,
    Path(token): Path<String>,
) -> Answer<StatusCode> {
    service.revoke_token(&caller, &token)?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn create_for_sandbox(
    State(service): State<Arc<Service>>,
    Extension(caller): Caller,
    Path(id): Path<String>,
    Json(req): Json<CreateSandboxToken>,
) -> Answer<(StatusCode, axum::Json<SandboxToken>)> {
    let made = service.create_sandbox_token(&caller, &id, req)?;
    Ok((StatusCode::CREATED, axum::Json(made)))
}
