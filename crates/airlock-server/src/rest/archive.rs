//! `/v1/sandboxes/{id}/files/archive`: a directory tree as a tar (or tar.zst) stream, down
//! and up.

use std::sync::Arc;

use airlock_api::ArchiveResult;
use airlock_service::{ApiError, ArchiveFormat, ArchiveUpload, Principal, Service};
use axum::Extension;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::body::stream;
use super::failure::Answer;
use super::json::{Json, Query};

#[derive(Deserialize)]
pub struct DownloadQuery {
    path: String,
    format: Option<String>,
}

/// The tree as a stream; `format=tar` (default) or `tar.zst`.
pub async fn download(
    State(service): State<Arc<Service>>,
    Extension(caller): Extension<Principal>,
    Path(id): Path<String>,
    Query(q): Query<DownloadQuery>,
) -> Answer<Response> {
    let format = q.format.as_deref().map(ArchiveFormat::parse).transpose()?;
    let stream = service.archive(&caller, &id, &q.path, format).await?;
    let format = format.unwrap_or(ArchiveFormat::Tar);
    Ok((
        [(header::CONTENT_TYPE, format.content_type())],
        Body::from_stream(stream),
    )
        .into_response())
}

/// The chosen entries under a directory, as one stream (what a mirror pulls back).
pub async fn download_paths(
    State(service): State<Arc<Service>>,
    Extension(caller): Extension<Principal>,
    Path(id): Path<String>,
    Json(req): Json<airlock_api::PackPaths>,
) -> Answer<Response> {
    let format = req
        .format
        .as_deref()
        .map(ArchiveFormat::parse)
        .transpose()?;
    let stream = service
        .archive_paths(&caller, &id, &req.path, req.paths, format)
        .await?;
    let format = format.unwrap_or(ArchiveFormat::Tar);
    Ok((
        [(header::CONTENT_TYPE, format.content_type())],
        Body::from_stream(stream),
    )
        .into_response())
}

#[derive(Deserialize)]
pub struct UploadQuery {
    path: String,
    format: Option<String>,
    max_entries: Option<u64>,
    max_bytes: Option<u64>,
    mtimes: Option<bool>,
}

/// Extracts the body into `path`, all or nothing. Without `format`, a zstd body is told
/// by `Content-Encoding: zstd`, `Content-Type: application/zstd` or its first bytes.
/// `max_entries` and `max_bytes` may lower the daemon's limits, never raise them;
/// `mtimes=false` leaves each entry at the time it is written.
pub async fn upload(
    State(service): State<Arc<Service>>,
    Extension(caller): Extension<Principal>,
    Path(id): Path<String>,
    Query(q): Query<UploadQuery>,
    headers: HeaderMap,
    body: Body,
) -> Answer<axum::Json<ArchiveResult>> {
    let declared = |name: header::HeaderName, value: &str| {
        headers
            .get(name)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(value.as_bytes()))
    };
    refuse_foreign_media_type(&headers)?;
    let format = match q.format.as_deref() {
        Some(text) => Some(ArchiveFormat::parse(text)?),
        None if declared(header::CONTENT_ENCODING, "zstd")
            || declared(header::CONTENT_TYPE, "application/zstd") =>
        {
            Some(ArchiveFormat::TarZst)
        }
        None => None,
    };
    let upload = ArchiveUpload {
        path: q.path,
        format,
        max_entries: q.max_entries,
        max_bytes: q.max_bytes,
        mtimes: q.mtimes,
    };
    let made = service
        .extract_archive(&caller, &id, upload, stream(body))
        .await?;
    Ok(axum::Json(made))
}

/// An archive body is tar (maybe zstd-compressed), or untyped. Anything declared as
/// something else was most likely sent to the wrong route.
fn refuse_foreign_media_type(headers: &HeaderMap) -> Result<(), ApiError> {
    const ARCHIVE_TYPES: [&str; 6] = [
        "application/x-tar",
        "application/tar",
        "application/zstd",
        "application/x-zstd",
        "application/octet-stream",
        "application/x-gtar",
    ];
    let Some(declared) = headers.get(header::CONTENT_TYPE) else {
        return Ok(());
    };
    let essence = declared
        .to_str()
        .unwrap_or_default()
        .split(';')
        .next()
        .unwrap_or_default()
        .trim();
    if ARCHIVE_TYPES
        .iter()
        .any(|t| t.eq_ignore_ascii_case(essence))
    {
        return Ok(());
    }
    Err(ApiError::new(
        airlock_api::ErrorCode::UnsupportedMediaType,
        format!("an archive is application/x-tar or application/zstd, not {declared:?}"),
    ))
}
