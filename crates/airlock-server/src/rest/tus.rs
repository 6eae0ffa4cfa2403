//! Resumable uploads under `/v1/sandboxes/{id}/uploads`, speaking tus 1.0.0: core,
//! creation, creation-with-upload, checksum (sha1, sha256), termination, expiration.
//! The destination travels in `Upload-Metadata` as `path`, with optional `mode` (octal),
//! `mtime` (epoch seconds), `sha256` (hex, of the whole file) and `overwrite` (`false`
//! refuses to replace).

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use airlock_api::{ErrorCode, FileMode};
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;

use super::body::BodyPump;
use super::files::parse_mtime;
use super::headers::{has_body, insert, text};
use crate::service::{ChunkChecksum, NewUpload, UploadState, parse_sha256};
use crate::{ApiError, Service};

const TUS_VERSION: &str = "1.0.0";
const EXTENSIONS: &str = "creation,creation-with-upload,checksum,termination,expiration";
const CHECKSUMS: &str = "sha1,sha256";
const CHUNK_TYPE: &str = "application/offset+octet-stream";

/// Every tus response says `Tus-Resumable`; every request but OPTIONS must too.
pub async fn tus_protocol(request: Request, next: Next) -> Response {
    let speaks_tus = request.method() == Method::OPTIONS
        || request
            .headers()
            .get("tus-resumable")
            .is_some_and(|v| v == TUS_VERSION);
    let mut response = if speaks_tus {
        next.run(request).await
    } else {
        let mut refused = ApiError::new(
            ErrorCode::BadRequest,
            format!("send Tus-Resumable: {TUS_VERSION}"),
        )
        .into_response();
        *refused.status_mut() = StatusCode::PRECONDITION_FAILED;
        refused
            .headers_mut()
            .insert("tus-version", HeaderValue::from_static(TUS_VERSION));
        refused
    };
    response
        .headers_mut()
        .insert("tus-resumable", HeaderValue::from_static(TUS_VERSION));
    response
}

/// Discovery: versions, extensions, checksum algorithms.
pub async fn options() -> Response {
    (
        StatusCode::NO_CONTENT,
        [
            ("tus-version", TUS_VERSION),
            ("tus-extension", EXTENSIONS),
            ("tus-checksum-algorithm", CHECKSUMS),
        ],
    )
        .into_response()
}

/// Creation (and creation-with-upload when the request carries a chunk).
pub async fn create(
    State(service): State<Arc<Service>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    if headers.contains_key("upload-defer-length") {
        return Err(ApiError::bad_request(
            "Upload-Defer-Length is not supported: send Upload-Length",
        ));
    }
    let length = number(&headers, "upload-length")?;
    let metadata = text(&headers, "upload-metadata").unwrap_or_default();
    let new = parse_metadata(metadata, length)?;
    let mut state = service.create_upload(&id, new).await?;
    let location = format!("/v1/sandboxes/{id}/uploads/{}", state.record.id);
    if state.done.is_none() && carries_chunk(&headers) {
        let checksum = chunk_checksum(&headers)?;
        let (reader, pump) = BodyPump::new(body);
        let appended = service
            .append_upload(&id, &state.record.id, 0, checksum, reader)
            .await;
        pump.finish().await;
        state = appended?;
    }
    let mut response = progress(StatusCode::CREATED, &state);
    insert(response.headers_mut(), header::LOCATION.as_str(), &location);
    Ok(response)
}

/// Where an upload stands.
pub async fn status(
    State(service): State<Arc<Service>>,
    Path((id, upload)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let record = service.upload_status(&id, &upload).await?;
    let mut response = progress(
        StatusCode::OK,
        &UploadState {
            record: record.clone(),
            done: None,
        },
    );
    let out = response.headers_mut();
    insert(out, "upload-length", &record.length.to_string());
    insert(out, header::CACHE_CONTROL.as_str(), "no-store");
    if !record.metadata.is_empty() {
        insert(out, "upload-metadata", &record.metadata);
    }
    Ok(response)
}

/// Appends a chunk at `Upload-Offset`.
pub async fn append(
    State(service): State<Arc<Service>>,
    Path((id, upload)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    if text(&headers, header::CONTENT_TYPE.as_str()) != Some(CHUNK_TYPE) {
        return Err(ApiError::new(
            ErrorCode::UnsupportedMediaType,
            format!("PATCH takes Content-Type: {CHUNK_TYPE}"),
        ));
    }
    let offset = number(&headers, "upload-offset")?;
    let checksum = chunk_checksum(&headers)?;
    let (reader, pump) = BodyPump::new(body);
    let state = service
        .append_upload(&id, &upload, offset, checksum, reader)
        .await;
    pump.finish().await;
    Ok(progress(StatusCode::NO_CONTENT, &state?))
}

/// Termination.
pub async fn terminate(
    State(service): State<Arc<Service>>,
    Path((id, upload)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    service.terminate_upload(&id, &upload).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The headers every answer about an upload carries; a finished one also names its file.
fn progress(status: StatusCode, state: &UploadState) -> Response {
    let mut response = status.into_response();
    let out = response.headers_mut();
    insert(out, "upload-offset", &state.record.offset.to_string());
    let expires = UNIX_EPOCH + Duration::from_secs(state.record.expires_at);
    if state.done.is_none() {
        insert(out, "upload-expires", &httpdate::fmt_http_date(expires));
    }
    if let Some(done) = &state.done {
        insert(out, "x-airlock-sha256", &done.sha256);
        insert(out, "x-airlock-path", &done.entry.path);
    }
    response
}

fn carries_chunk(headers: &HeaderMap) -> bool {
    has_body(headers) && text(headers, header::CONTENT_TYPE.as_str()) == Some(CHUNK_TYPE)
}

/// `Upload-Checksum: <algorithm> <base64 digest>`.
pub(crate) fn chunk_checksum(headers: &HeaderMap) -> Result<Option<ChunkChecksum>, ApiError> {
    let Some(value) = text(headers, "upload-checksum") else {
        return Ok(None);
    };
    let (algorithm, digest) = value
        .split_once(' ')
        .ok_or_else(|| ApiError::bad_request("Upload-Checksum is '<algorithm> <base64>'"))?;
    let expected = base64::engine::general_purpose::STANDARD
        .decode(digest.trim())
        .map_err(|_| ApiError::bad_request("Upload-Checksum's digest is not base64"))?;
    let hasher: Box<dyn sha2::digest::DynDigest + Send> = match algorithm {
        "sha1" => Box::new(sha1::Sha1::default()),
        "sha256" => Box::new(sha2::Sha256::default()),
        other => {
            return Err(ApiError::bad_request(format!(
                "checksum algorithm {other:?} is not one of {CHECKSUMS}"
            )));
        }
    };
    Ok(Some(ChunkChecksum { hasher, expected }))
}

/// `key base64value` pairs, comma-separated.
pub(crate) fn parse_metadata(raw: &str, length: u64) -> Result<NewUpload, ApiError> {
    let mut new = NewUpload {
        length,
        overwrite: true,
        metadata: raw.to_owned(),
        ..NewUpload::default()
    };
    for pair in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once(' ').unwrap_or((pair, ""));
        let value = base64::engine::general_purpose::STANDARD
            .decode(value.trim())
            .ok()
            .and_then(|v| String::from_utf8(v).ok())
            .ok_or_else(|| {
                ApiError::bad_request(format!("Upload-Metadata {key}: not base64 UTF-8"))
            })?;
        match key {
            "path" => new.path = value,
            "mode" => {
                new.mode = Some(
                    FileMode::parse_octal(&value)
                        .map_err(ApiError::bad_request)?
                        .0,
                )
            }
            "sha256" => {
                parse_sha256(&value)?;
                new.sha256 = Some(value.to_ascii_lowercase());
            }
            "overwrite" => new.overwrite = value != "false",
            // The same rule as every other write's mtime (whole seconds are kept).
            "mtime" => new.mtime = Some(parse_mtime(&value)?.0),
            _ => {}
        }
    }
    if new.path.is_empty() {
        return Err(ApiError::bad_request(
            "Upload-Metadata needs path (base64 of the absolute destination)",
        ));
    }
    Ok(new)
}

fn number(headers: &HeaderMap, name: &str) -> Result<u64, ApiError> {
    text(headers, name)
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| ApiError::bad_request(format!("{name} must be a non-negative integer")))
}
