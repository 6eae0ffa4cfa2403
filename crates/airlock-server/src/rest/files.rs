//! `/v1/sandboxes/{id}/files...`: download with ranges, streamed atomic upload, append and
//! offset writes, list, stat, mkdir, move, delete.

use std::sync::Arc;
use std::time::Duration;

use airlock_api::{ErrorCode, FileEntry, FileList, MakeDir, MoveFile, WriteResult};
use airlock_service::{
    ApiError, ChecksumText, ListFiles, PatchFile, Principal, PutBody, PutFile, Service, mtime_text,
};
use axum::Extension;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::body::stream;
use super::failure::{Answer, Failure};
use super::headers::{X_AIRLOCK_MODE, X_AIRLOCK_MTIME, insert, set, text};
use super::json::{Json, Query};
use super::range::{ByteRange, ranged_body};
use super::raw_body::RawBody;
use crate::sendfile::SendQueue;

type Caller = Extension<Principal>;

#[derive(Deserialize)]
pub struct PathQuery {
    path: String,
}

pub async fn stat(
    State(service): State<Arc<Service>>,
    Extension(caller): Caller,
    Path(id): Path<String>,
    Query(q): Query<PathQuery>,
) -> Answer<axum::Json<FileEntry>> {
    Ok(axum::Json(service.stat_file(&caller, &id, &q.path).await?))
}

#[derive(Deserialize)]
pub struct ListQuery {
    path: String,
    depth: Option<u32>,
    limit: Option<usize>,
    cursor: Option<String>,
    checksum: Option<bool>,
}

pub async fn list(
    State(service): State<Arc<Service>>,
    Extension(caller): Caller,
    Path(id): Path<String>,
    Query(q): Query<ListQuery>,
) -> Answer<axum::Json<FileList>> {
    let req = ListFiles {
        path: q.path,
        depth: q.depth,
        limit: q.limit,
        cursor: q.cursor,
        checksum: q.checksum,
    };
    Ok(axum::Json(service.list_files(&caller, &id, req).await?))
}

#[derive(Deserialize)]
pub struct DeleteQuery {
    path: String,
    recursive: Option<bool>,
}

pub async fn delete(
    State(service): State<Arc<Service>>,
    Extension(caller): Caller,
    Path(id): Path<String>,
    Query(q): Query<DeleteQuery>,
) -> Answer<StatusCode> {
    service
        .remove_file(&caller, &id, &q.path, q.recursive)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn mkdir(
    State(service): State<Arc<Service>>,
    Extension(caller): Caller,
    Path(id): Path<String>,
    Json(req): Json<MakeDir>,
) -> Answer<(StatusCode, axum::Json<FileEntry>)> {
    let made = service
        .make_dir(&caller, &id, &req.path, req.mode, req.parents)
        .await?;
    Ok((StatusCode::CREATED, axum::Json(made)))
}

pub async fn compose(
    State(service): State<Arc<Service>>,
    Extension(caller): Caller,
    Path(id): Path<String>,
    Json(req): Json<airlock_api::ComposeFiles>,
) -> Answer<axum::Json<WriteResult>> {
    Ok(axum::Json(service.compose_files(&caller, &id, req).await?))
}

pub async fn rename(
    State(service): State<Arc<Service>>,
    Extension(caller): Caller,
    Path(id): Path<String>,
    Json(req): Json<MoveFile>,
) -> Answer<axum::Json<FileEntry>> {
    Ok(axum::Json(
        service
            .move_file(&caller, &id, &req.from, &req.to, req.overwrite)
            .await?,
    ))
}

/// Raw bytes, streamed from the open file; `Range` answers 206.
pub async fn download(
    State(service): State<Arc<Service>>,
    Extension(caller): Caller,
    Path(id): Path<String>,
    Query(q): Query<PathQuery>,
    queue: Option<Extension<SendQueue>>,
    headers: HeaderMap,
) -> Answer<Response> {
    let (content, entry) = service.open_file(&caller, &id, &q.path).await?;
    let size = entry.size;
    let asked = headers.get(header::RANGE).map(|v| v.to_str().unwrap_or(""));
    let Ok((body, range)) = ranged_body(content, size, asked, queue.as_deref()) else {
        return Ok(unsatisfiable(size));
    };
    let ByteRange { start, len } = range.unwrap_or(ByteRange {
        start: 0,
        len: size,
    });
    let mut response = Response::new(body);
    *response.status_mut() = if range.is_some() {
        StatusCode::PARTIAL_CONTENT
    } else {
        StatusCode::OK
    };
    let out = response.headers_mut();
    out.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    out.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    out.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    set(out, header::ETAG, entry.etag());
    set(out, X_AIRLOCK_MODE, format!("{:04o}", entry.mode));
    set(out, X_AIRLOCK_MTIME, mtime_text(&entry));
    let modified = std::time::UNIX_EPOCH + Duration::from_secs(entry.mtime.max(0) as u64);
    set(
        out,
        header::LAST_MODIFIED,
        httpdate::fmt_http_date(modified),
    );
    if range.is_some() {
        set(
            out,
            header::CONTENT_RANGE,
            format!("bytes {start}-{}/{size}", start + len - 1),
        );
    }
    Ok(response)
}

fn unsatisfiable(size: u64) -> Response {
    let mut response = Failure(ApiError::new(
        ErrorCode::BadRange,
        format!("range not satisfiable for a file of {size} bytes"),
    ))
    .into_response();
    insert(
        response.headers_mut(),
        header::CONTENT_RANGE.as_str(),
        &format!("bytes */{size}"),
    );
    response
}

#[derive(Deserialize)]
pub struct PutQuery {
    path: String,
    mode: Option<String>,
    mtime: Option<String>,
    parents: Option<bool>,
    overwrite: Option<bool>,
    sha256: Option<String>,
    crc64nvme: Option<String>,
    checksum: Option<String>,
}

/// The body is streamed to a temporary file and committed atomically when complete.
pub async fn upload(
    State(service): State<Arc<Service>>,
    Extension(caller): Caller,
    Path(id): Path<String>,
    Query(q): Query<PutQuery>,
    RawBody(raw): RawBody,
    headers: HeaderMap,
    body: Body,
) -> Answer<Response> {
    let checksums = ChecksumText {
        algorithm: either(&q.checksum, &headers, "x-airlock-checksum"),
        crc64nvme: either(&q.crc64nvme, &headers, "x-airlock-crc64nvme"),
        sha256: either(&q.sha256, &headers, "x-airlock-sha256"),
    };
    let put = PutFile::from_text(
        q.mode.as_deref(),
        q.mtime.as_deref(),
        checksums,
        q.parents,
        q.overwrite,
    )?;
    if let Some(raw) = raw {
        let admitted = service.admit_put(&caller, &id, &q.path, put)?;
        return Ok(raw.take_over(move |body| async move {
            written(service.finish_put(admitted, PutBody::Socket(body)).await)
        }));
    }
    written(
        service
            .put_file(&caller, &id, &q.path, put, stream(body))
            .await,
    )
}

/// A whole-file write's answer: 201 for a new file, 200 for a replaced one.
fn written(result: Result<(WriteResult, bool), ApiError>) -> Answer<Response> {
    let (result, created) = result?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, axum::Json(result)).into_response())
}

/// An option from the query string, or else from its header.
fn either<'a>(query: &'a Option<String>, headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    query.as_deref().or_else(|| text(headers, name))
}

#[derive(Deserialize)]
pub struct PatchQuery {
    path: String,
    append: Option<bool>,
    offset: Option<u64>,
    checksum: Option<String>,
}

/// `append=true` or `offset=N`: changes the file in place.
pub async fn patch(
    State(service): State<Arc<Service>>,
    Extension(caller): Caller,
    Path(id): Path<String>,
    Query(q): Query<PatchQuery>,
    body: Body,
) -> Answer<axum::Json<WriteResult>> {
    let patch = PatchFile {
        append: q.append,
        offset: q.offset,
        checks: ChecksumText {
            algorithm: q.checksum.as_deref(),
            ..ChecksumText::default()
        }
        .parse()?,
    };
    let written = service
        .patch_file(&caller, &id, &q.path, patch, stream(body))
        .await?;
    Ok(axum::Json(written))
}
