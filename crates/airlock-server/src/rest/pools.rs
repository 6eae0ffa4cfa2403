//! `/v1/warm-pools`: started sandboxes kept ready per template (admin only).

use std::sync::Arc;

use airlock_api::PoolInfo;
use airlock_service::{Principal, Service};
use axum::Extension;
use axum::extract::{Path, State};
use serde::Deserialize;

use super::failure::Answer;
use super::json::Json;

pub async fn list(
    State(service): State<Arc<Service>>,
    Extension(caller): Extension<Principal>,
) -> Answer<axum::Json<Vec<PoolInfo>>> {
    Ok(axum::Json(service.pools(&caller)?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SizePool {
    /// How many started sandboxes to keep ready; 0 empties the pool.
    size: usize,
}

pub async fn size(
    State(service): State<Arc<Service>>,
    Extension(caller): Extension<Principal>,
    Path(template): Path<String>,
    Json(req): Json<SizePool>,
) -> Answer<axum::Json<PoolInfo>> {
    Ok(axum::Json(service.size_pool(&caller, &template, req.size)?))
}
