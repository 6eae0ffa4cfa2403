//! `/v1/sandboxes` lifecycle routes.

use std::sync::Arc;

use airlock_api::{CreateSandbox, Sandbox};
use axum::extract::{Path, State};
use axum::http::StatusCode;

use super::json::Json;
use crate::{ApiError, Service};

type Answer<T> = Result<axum::Json<T>, ApiError>;

pub async fn create(
    State(service): State<Arc<Service>>,
    Json(req): Json<CreateSandbox>,
) -> Result<(StatusCode, axum::Json<Sandbox>), ApiError> {
    Ok((StatusCode::CREATED, axum::Json(service.create(req).await?)))
}

pub async fn list(State(service): State<Arc<Service>>) -> axum::Json<Vec<Sandbox>> {
    axum::Json(service.list())
}

pub async fn get(State(service): State<Arc<Service>>, Path(id): Path<String>) -> Answer<Sandbox> {
    Ok(axum::Json(service.get(&id)?))
}

pub async fn start(State(service): State<Arc<Service>>, Path(id): Path<String>) -> Answer<Sandbox> {
    Ok(axum::Json(service.start(&id).await?))
}

pub async fn stop(State(service): State<Arc<Service>>, Path(id): Path<String>) -> Answer<Sandbox> {
    Ok(axum::Json(service.stop(&id).await?))
}

pub async fn delete(
    State(service): State<Arc<Service>>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    service.delete(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}
