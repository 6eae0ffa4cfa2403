//! `/v1/sandboxes` lifecycle routes.

use std::sync::Arc;

use airlock_api::{CreateSandbox, Sandbox};
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
    Json(req): Json<CreateSandbox>,
) -> Answer<(StatusCode, axum::Json<Sandbox>)> {
    let made = service.create(&caller, req).await?;
    Ok((StatusCode::CREATED, axum::Json(made)))
}

pub async fn list(
    State(service): State<Arc<Service>>,
    Extension(caller): Caller,
) -> Answer<axum::Json<Vec<Sandbox>>> {
    Ok(axum::Json(service.list(&caller)?))
}

pub async fn get(
    State(service): State<Arc<Service>>,
    Extension(caller): Caller,
    Path(id): Path<String>,
) -> Answer<axum::Json<Sandbox>> {
    Ok(axum::Json(service.get(&caller, &id)?))
}

pub async fn start(
    State(service): State<Arc<Service>>,
    Extension(caller): Caller,
    Path(id): Path<String>,
) -> Answer<axum::Json<Sandbox>> {
    Ok(axum::Json(service.start(&caller, &id).await?))
}

pub async fn stop(
    State(service): State<Arc<Service>>,
    Extension(caller): Caller,
    Path(id): Path<String>,
) -> Answer<axum::Json<Sandbox>> {
    Ok(axum::Json(service.stop(&caller, &id).await?))
}

pub async fn delete(
    State(service): State<Arc<Service>>,
    Extension(caller): Caller,
    Path(id): Path<String>,
) -> Answer<StatusCode> {
    service.delete(&caller, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
