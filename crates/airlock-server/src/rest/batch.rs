//! `POST /v1/sandboxes/{id}/files/batch`: many files in one multipart request. Each part
//! streams straight into the service's batch writer as it arrives; the service decides
//! each part's defaults and result.

use std::sync::Arc;

use airlock_api::BatchResult;
use airlock_service::{
    BatchDefaults, BatchPart, ChecksumText, Need, Principal, PutFile, Service, batch_broken,
    batch_result,
};
use axum::Extension;
use axum::extract::multipart::{Field, Multipart, MultipartRejection};
use axum::extract::{Path, State};
use serde::Deserialize;

use super::failure::{Answer, Failure};
use super::json::Query;

#[derive(Deserialize)]
pub struct BatchQuery {
    mode: Option<String>,
    parents: Option<bool>,
    overwrite: Option<bool>,
}

/// Each part's filename (or, failing that, its field name) is its absolute destination.
/// A part may carry `X-Airlock-Mode`, `X-Airlock-Mtime`, `X-Airlock-Checksum`,
/// `X-Airlock-Crc64nvme` and `X-Airlock-Sha256` headers.
pub async fn batch(
    State(service): State<Arc<Service>>,
    Extension(caller): Extension<Principal>,
    Path(id): Path<String>,
    Query(q): Query<BatchQuery>,
    multipart: Result<Multipart, MultipartRejection>,
) -> Answer<axum::Json<BatchResult>> {
    service.require(&caller, &id, Need::Write)?;
    let defaults = BatchDefaults::from_text(q.mode.as_deref(), q.parents, q.overwrite)?;
    let mut multipart = multipart.map_err(|e| {
        Failure(airlock_service::ApiError::bad_request(format!(
            "batch takes a multipart/form-data body: {e}"
        )))
    })?;
    let mut results = Vec::new();
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => break,
            Err(e) => return Err(batch_broken(&results, &e.to_string()).into()),
        };
        let (item, stream_broken) = write_part(&service, &caller, &id, &defaults, field).await;
        results.push(item);
        if let Some(reason) = stream_broken {
            return Err(batch_broken(&results, &reason).into());
        }
    }
    Ok(axum::Json(batch_result(results)))
}

/// Writes one part; also says whether the multipart stream itself broke meanwhile.
async fn write_part(
    service: &Service,
    caller: &Principal,
    id: &str,
    defaults: &BatchDefaults,
    field: Field<'_>,
) -> (airlock_api::BatchItem, Option<String>) {
    let header = |name: &str| field.headers().get(name).and_then(|v| v.to_str().ok());
    let part = BatchPart {
        path: field
            .file_name()
            .or(field.name())
            .unwrap_or_default()
            .to_owned(),
        put: PutFile::from_text(
            header("x-airlock-mode"),
            header("x-airlock-mtime"),
            ChecksumText {
                algorithm: header("x-airlock-checksum"),
                crc64nvme: header("x-airlock-crc64nvme"),
                sha256: header("x-airlock-sha256"),
            },
            None,
            None,
        ),
    };
    super::multipart::stream_part(field, |body| {
        service.write_batch_part(caller, id, defaults, part, body)
    })
    .await
}
