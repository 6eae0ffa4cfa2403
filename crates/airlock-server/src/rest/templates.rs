//! `/v1/templates`: list, register from a tar body, delete.

use std::sync::Arc;

use airlock_api::Template;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::StatusCode;

use super::body::BodyPump;
use crate::{ApiError, Service};

pub async fn list(State(service): State<Arc<Service>>) -> axum::Json<Vec<Template>> {
    axum::Json(service.templates())
}

/// The body is a tar stream of the root filesystem, unpacked as it arrives.
pub async fn register(
    State(service): State<Arc<Service>>,
    Path(name): Path<String>,
    body: Body,
) -> Result<(StatusCode, axum::Json<Template>), ApiError> {
    let (reader, pump) = BodyPump::new(body);
    let outcome = service.register_template(&name, reader).await;
    pump.finish().await;
    Ok((StatusCode::CREATED, axum::Json(outcome?)))
}

pub async fn delete(
    State(service): State<Arc<Service>>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    service.delete_template(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}
