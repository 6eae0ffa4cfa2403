//! `/v1/sandboxes/{id}/files...`: download with ranges, streamed atomic upload, append and
//! offset writes, list, stat, mkdir, move, delete.

use std::io::SeekFrom;
use std::sync::Arc;
use std::time::Duration;

use airlock_api::{ErrorCode, FileEntry, FileList, FileMode, MakeDir, MoveFile, WriteResult};
use airlock_fs::Placement;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio_util::io::ReaderStream;

use super::body::BodyPump;
use super::headers::{insert, text};
use super::json::{Json, Query};
use super::range::{ByteRange, parse_range};
use crate::service::{FileBody, PutFile, mtime_text, parse_sha256};
use crate::{ApiError, Service};

/// Bytes per chunk when streaming a download.
const DOWNLOAD_CHUNK: usize = 256 * 1024;

#[derive(Deserialize)]
pub struct PathQuery {
    path: String,
}

pub async fn stat(
    State(service): State<Arc<Service>>,
    Path(id): Path<String>,
    Query(q): Query<PathQuery>,
) -> Result<axum::Json<FileEntry>, ApiError> {
    Ok(axum::Json(service.stat_file(&id, &q.path).await?))
}

#[derive(Deserialize)]
pub struct ListQuery {
    path: String,
    depth: Option<u32>,
    limit: Option<usize>,
    cursor: Option<String>,
    #[serde(default)]
    checksum: bool,
}

pub async fn list(
    State(service): State<Arc<Service>>,
    Path(id): Path<String>,
    Query(q): Query<ListQuery>,
) -> Result<axum::Json<FileList>, ApiError> {
    Ok(axum::Json(
        service
            .list_files(
                &id,
                &q.path,
                q.depth,
                q.limit,
                q.cursor.as_deref(),
                q.checksum,
            )
            .await?,
    ))
}

#[derive(Deserialize)]
pub struct DeleteQuery {
    path: String,
    #[serde(default)]
    recursive: bool,
}

pub async fn delete(
    State(service): State<Arc<Service>>,
    Path(id): Path<String>,
    Query(q): Query<DeleteQuery>,
) -> Result<StatusCode, ApiError> {
    service.remove_file(&id, &q.path, q.recursive).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn mkdir(
    State(service): State<Arc<Service>>,
    Path(id): Path<String>,
    Json(req): Json<MakeDir>,
) -> Result<(StatusCode, axum::Json<FileEntry>), ApiError> {
    let made = service
        .make_dir(&id, &req.path, req.mode, req.parents.unwrap_or(true))
        .await?;
    Ok((StatusCode::CREATED, axum::Json(made)))
}

pub async fn compose(
    State(service): State<Arc<Service>>,
    Path(id): Path<String>,
    Json(req): Json<airlock_api::ComposeFiles>,
) -> Result<axum::Json<WriteResult>, ApiError> {
    Ok(axum::Json(service.compose_files(&id, req).await?))
}

pub async fn rename(
    State(service): State<Arc<Service>>,
    Path(id): Path<String>,
    Json(req): Json<MoveFile>,
) -> Result<axum::Json<FileEntry>, ApiError> {
    Ok(axum::Json(
        service
            .move_file(&id, &req.from, &req.to, req.overwrite)
            .await?,
    ))
}

/// Raw bytes, streamed from the open file; `Range` answers 206.
pub async fn download(
    State(service): State<Arc<Service>>,
    Path(id): Path<String>,
    Query(q): Query<PathQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (content, entry) = service.open_file(&id, &q.path).await?;
    let size = entry.size;
    let range = match headers.get(header::RANGE) {
        Some(value) => match parse_range(value.to_str().unwrap_or(""), size) {
            Ok(range) => Some(range),
            Err(()) => return Ok(unsatisfiable(size)),
        },
        None => None,
    };
    let ByteRange { start, len } = range.unwrap_or(ByteRange {
        start: 0,
        len: size,
    });
    let body = match content {
        FileBody::Small(bytes) => {
            Body::from(bytes::Bytes::from(bytes).slice(start as usize..(start + len) as usize))
        }
        FileBody::Stream(file) => {
            let mut file = tokio::fs::File::from_std(file);
            if start > 0 {
                file.seek(SeekFrom::Start(start))
                    .await
                    .map_err(|e| ApiError::internal("seeking", e))?;
            }
            Body::from_stream(ReaderStream::with_capacity(file.take(len), DOWNLOAD_CHUNK))
        }
    };
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
    insert(out, header::ETAG.as_str(), &entry.etag());
    insert(out, "x-airlock-mode", &format!("{:04o}", entry.mode));
    insert(out, "x-airlock-mtime", &mtime_text(&entry));
    let modified = std::time::UNIX_EPOCH + Duration::from_secs(entry.mtime.max(0) as u64);
    insert(
        out,
        header::LAST_MODIFIED.as_str(),
        &httpdate::fmt_http_date(modified),
    );
    if range.is_some() {
        insert(
            out,
            header::CONTENT_RANGE.as_str(),
            &format!("bytes {start}-{}/{size}", start + len - 1),
        );
    }
    Ok(response)
}

fn unsatisfiable(size: u64) -> Response {
    let mut response = ApiError::new(
        ErrorCode::BadRange,
        format!("range not satisfiable for a file of {size} bytes"),
    )
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
    #[serde(default)]
    parents: bool,
    overwrite: Option<bool>,
    sha256: Option<String>,
}

/// The body is streamed to a temporary file and committed atomically when complete.
pub async fn upload(
    State(service): State<Arc<Service>>,
    Path(id): Path<String>,
    Query(q): Query<PutQuery>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let expected = q
        .sha256
        .as_deref()
        .or_else(|| text(&headers, "x-airlock-sha256"));
    let put = put_options(
        q.mode.as_deref(),
        q.mtime.as_deref(),
        expected,
        q.parents,
        q.overwrite.unwrap_or(true),
    )?;
    let (reader, pump) = BodyPump::new(body);
    let outcome = service.put_file(&id, &q.path, put, reader).await;
    pump.finish().await;
    let (result, created) = outcome?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, axum::Json(result)).into_response())
}

#[derive(Deserialize)]
pub struct PatchQuery {
    path: String,
    #[serde(default)]
    append: bool,
    offset: Option<u64>,
}

/// `append=true` or `offset=N`: changes the file in place.
pub async fn patch(
    State(service): State<Arc<Service>>,
    Path(id): Path<String>,
    Query(q): Query<PatchQuery>,
    body: Body,
) -> Result<axum::Json<WriteResult>, ApiError> {
    let at = match (q.append, q.offset) {
        (true, None) => Placement::Append,
        (false, Some(offset)) => Placement::Offset(offset),
        _ => {
            return Err(ApiError::bad_request(
                "give exactly one of append=true or offset=N",
            ));
        }
    };
    let (reader, pump) = BodyPump::new(body);
    let outcome = service.patch_file(&id, &q.path, at, reader).await;
    pump.finish().await;
    Ok(axum::Json(outcome?))
}

/// A whole-file write's options from their text forms (query or part headers).
pub(crate) fn put_options(
    mode: Option<&str>,
    mtime: Option<&str>,
    sha256: Option<&str>,
    parents: bool,
    overwrite: bool,
) -> Result<PutFile, ApiError> {
    Ok(PutFile {
        mode: mode
            .map(FileMode::parse_octal)
            .transpose()
            .map_err(ApiError::bad_request)?
            .map(|m| m.0),
        mtime: mtime.map(parse_mtime).transpose()?,
        parents,
        overwrite,
        expect_sha256: sha256.map(parse_sha256).transpose()?,
    })
}

/// Seconds since the epoch (fractions allowed) or RFC 3339.
pub(super) fn parse_mtime(text: &str) -> Result<(i64, u32), ApiError> {
    // The same range RFC 3339 can name; 1e300 would otherwise saturate to a nonsense time.
    const LAST_SECOND_OF_9999: f64 = 253_402_300_799.0;
    if let Ok(secs) = text.parse::<f64>() {
        if !(0.0..=LAST_SECOND_OF_9999).contains(&secs) {
            return Err(ApiError::bad_request(format!(
                "mtime {text:?} is outside 1970 to 9999"
            )));
        }
        return Ok((secs.trunc() as i64, (secs.fract() * 1e9) as u32));
    }
    let time = humantime::parse_rfc3339_weak(text).map_err(|_| {
        ApiError::bad_request(format!(
            "mtime {text:?} is neither epoch seconds nor RFC 3339"
        ))
    })?;
    let since = time
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|_| ApiError::bad_request("mtime before 1970"))?;
    Ok((since.as_secs() as i64, since.subsec_nanos()))
}
