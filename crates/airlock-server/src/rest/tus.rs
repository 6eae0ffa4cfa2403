//! Resumable uploads under `/v1/sandboxes/{id}/uploads`, speaking tus 1.0.0: core,
//! creation, creation-with-upload, checksum (sha1, sha256), termination, expiration.
//! The destination travels in `Upload-Metadata` as `path`, with optional `mode` (octal),
//! `mtime` (epoch seconds), `sha256` and `crc64nvme` (hex, of the whole file, verified
//! at the commit), `checksum` (`sha256`: compute and report one) and `overwrite` (`false`
//! refuses to replace).

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use airlock_api::ErrorCode;
use airlock_service::{
    ApiError, AppendBody, ChunkChecksum, NewUpload, Principal, Service, UploadState,
};
use axum::Extension;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::body::stream;
use super::failure::{Answer, Failure};
use super::headers::{has_body, insert, text};
use super::raw_body::RawBody;

const TUS_VERSION: &str = "1.0.0";
const EXTENSIONS: &str = "creation,creation-with-upload,checksum,termination,expiration";
const CHECKSUMS: &str = airlock_service::CHUNK_CHECKSUMS;
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
        let mut refused = Failure(ApiError::new(
            ErrorCode::BadRequest,
            format!("send Tus-Resumable: {TUS_VERSION}"),
        ))
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
    Extension(caller): Extension<Principal>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Answer<Response> {
    if headers.contains_key("upload-defer-length") {
        return Err(ApiError::bad_request(
            "Upload-Defer-Length is not supported: send Upload-Length",
        )
        .into());
    }
    let length = number(&headers, "upload-length")?;
    let metadata = text(&headers, "upload-metadata").unwrap_or_default();
    let new = NewUpload::from_tus_metadata(metadata, length)?;
    let mut state = service.create_upload(&caller, &id, new).await?;
    let location = format!("/v1/sandboxes/{id}/uploads/{}", state.record.id);
    if state.done.is_none() && carries_chunk(&headers) {
        let checksum = chunk_checksum(&headers)?;
        state = service
            .append_upload(&caller, &id, &state.record.id, 0, checksum, stream(body))
            .await?;
    }
    let mut response = progress(StatusCode::CREATED, &state);
    insert(response.headers_mut(), header::LOCATION.as_str(), &location);
    Ok(response)
}

/// Where an upload stands.
pub async fn status(
    State(service): State<Arc<Service>>,
    Extension(caller): Extension<Principal>,
    Path((id, upload)): Path<(String, String)>,
) -> Answer<Response> {
    let record = service.upload_status(&caller, &id, &upload).await?;
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

/// Appends a chunk at `Upload-Offset`: a plain body, or a
/// [raw one](super::raw_body) the daemon takes from the socket itself.
pub async fn append(
    State(service): State<Arc<Service>>,
    Extension(caller): Extension<Principal>,
    Path((id, upload)): Path<(String, String)>,
    RawBody(raw): RawBody,
    headers: HeaderMap,
    body: Body,
) -> Answer<Response> {
    if text(&headers, header::CONTENT_TYPE.as_str()) != Some(CHUNK_TYPE) {
        return Err(ApiError::new(
            ErrorCode::UnsupportedMediaType,
            format!("PATCH takes Content-Type: {CHUNK_TYPE}"),
        )
        .into());
    }
    let offset = number(&headers, "upload-offset")?;
    let checksum = chunk_checksum(&headers)?;
    if let Some(raw) = raw {
        let admitted = service
            .admit_append(&caller, &id, &upload, offset, checksum, Some(raw.length()))
            .await?;
        return Ok(raw.take_over(move |body| async move {
            let state = service
                .finish_append(admitted, AppendBody::Socket(body))
                .await?;
            let mut response = progress(StatusCode::NO_CONTENT, &state);
            // Written on the raw connection, past the layer that says it on the `101`.
            insert(response.headers_mut(), "tus-resumable", TUS_VERSION);
            Ok(response)
        }));
    }
    let state = service
        .append_upload(&caller, &id, &upload, offset, checksum, stream(body))
        .await?;
    Ok(progress(StatusCode::NO_CONTENT, &state))
}

/// Termination.
pub async fn terminate(
    State(service): State<Arc<Service>>,
    Extension(caller): Extension<Principal>,
    Path((id, upload)): Path<(String, String)>,
) -> Answer<StatusCode> {
    service.terminate_upload(&caller, &id, &upload).await?;
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
        insert(out, "x-airlock-crc64nvme", &done.crc64nvme);
        if let Some(sha256) = &done.sha256 {
            insert(out, "x-airlock-sha256", sha256);
        }
        insert(out, "x-airlock-path", &done.entry.path);
    }
    response
}

fn carries_chunk(headers: &HeaderMap) -> bool {
    has_body(headers) && text(headers, header::CONTENT_TYPE.as_str()) == Some(CHUNK_TYPE)
}

/// `Upload-Checksum: <algorithm> <base64 digest>`, read by the service.
pub(crate) fn chunk_checksum(headers: &HeaderMap) -> Result<Option<ChunkChecksum>, ApiError> {
    text(headers, "upload-checksum")
        .map(ChunkChecksum::from_tus_header)
        .transpose()
}

fn number(headers: &HeaderMap, name: &str) -> Result<u64, ApiError> {
    text(headers, name)
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| ApiError::bad_request(format!("{name} must be a non-negative integer")))
}
