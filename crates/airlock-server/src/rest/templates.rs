//! `/v1/templates`: list, register from a tar body, delete.

use std::sync::Arc;

use airlock_api::Template;
use airlock_service::{Principal, Service};
use axum::Extension;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::StatusCode;

use super::body::stream;
use super::failure::Answer;

pub async fn list(
    State(service): State<Arc<Service>>,
    Extension(caller): Extension<Principal>,
) -> Answer<axum::Json<Vec<Template>>> {
    Ok(axum::Json(service.templates(&caller)?))
}

/// The body is a tar stream of the root filesystem, unpacked as it arrives.
pub async fn register(
    State(service): State<Arc<Service>>,
    Extension(caller): Extension<Principal>,
    Path(name): Path<String>,
    body: Body,
) -> Answer<(StatusCode, axum::Json<Template>)> {
    let made = service
        .register_template(&caller, &name, stream(body))
        .await?;
    Ok((StatusCode::CREATED, axum::Json(made)))
}

pub async fn delete(
    State(service): State<Arc<Service>>,
    Extension(caller): Extension<Principal>,
    Path(name): Path<String>,
) -> Answer<StatusCode> {
    service.delete_template(&caller, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}
