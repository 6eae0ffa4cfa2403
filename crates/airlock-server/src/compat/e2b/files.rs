//! envd's REST file routes under `/e2b/envd`: `GET /files` (the bytes, streamed, Range
//! too) and `POST /files` (multipart, several parts, or a raw octet-stream body, gzip
//! when it says so), answering the list of written entries. Every part and body streams
//! into its own atomic write.

use std::sync::Arc;

use airlock_service::{ApiError, ByteStream, PutFile, Service};
use axum::body::Body;
use axum::extract::multipart::{Multipart, MultipartRejection};
use axum::extract::{FromRequest, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::TryStreamExt;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Envd, Failure, resolve};
use crate::rest::body::stream;
use crate::rest::headers::insert;
use crate::rest::range::{ByteRange, ranged_body};
use crate::sendfile::SendQueue;

#[derive(Deserialize)]
/// envd's `username` is ignored (serde skips it): Airlock's sandboxes have one user.
pub struct FileQuery {
    path: Option<String>,
}

/// `GET /files?path=P`: the bytes, streamed; `Range` answers 206.
pub async fn read(
    State(service): State<Arc<Service>>,
    axum::Extension(envd): axum::Extension<Envd>,
    axum::extract::Query(q): axum::extract::Query<FileQuery>,
    queue: Option<axum::Extension<SendQueue>>,
    headers: HeaderMap,
) -> Result<Response, Failure> {
    let path = resolve(q.path.as_deref().unwrap_or_default())?;
    let (content, entry) = service.open_file(&envd.caller, &envd.id, &path).await?;
    let size = entry.size;
    let asked = headers.get(header::RANGE).and_then(|v| v.to_str().ok());
    let (body, range) = ranged_body(content, size, asked, queue.as_deref())
        .map_err(|()| ApiError::new(airlock_api::ErrorCode::BadRange, "range not satisfiable"))?;
    let len = range.map_or(size, |r| r.len);
    let mut response = Response::new(body);
    let out = response.headers_mut();
    out.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    out.insert(header::CONTENT_LENGTH, len.into());
    if let Some(ByteRange { start, len }) = range {
        let value = format!("bytes {start}-{}/{size}", start + len - 1);
        insert(out, header::CONTENT_RANGE.as_str(), &value);
        *response.status_mut() = StatusCode::PARTIAL_CONTENT;
    }
    Ok(response)
}

/// What one written file looks like in the answer.
fn written(path: &str) -> Value {
    let name = path.rsplit('/').next().unwrap_or(path);
    json!({"path": path, "name": name, "type": "file"})
}

/// `POST /files`: multipart parts named by their filename (or by `path` when there is
/// one part), or an octet-stream body written to `path`.
pub async fn write(
    State(service): State<Arc<Service>>,
    axum::Extension(envd): axum::Extension<Envd>,
    axum::extract::Query(q): axum::extract::Query<FileQuery>,
    request: Request,
) -> Result<Response, Failure> {
    let kind = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let put = || PutFile {
        parents: Some(true),
        ..PutFile::default()
    };
    if !kind.starts_with("multipart/") {
        let path = resolve(q.path.as_deref().ok_or_else(|| {
            ApiError::bad_request("an octet-stream upload names its file in `path`")
        })?)?;
        let gzip = request
            .headers()
            .get(header::CONTENT_ENCODING)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"gzip"));
        let body = stream(request.into_body());
        let body = if gzip { gunzip(body) } else { body };
        service
            .put_file(&envd.caller, &envd.id, &path, put(), body)
            .await?;
        return Ok(axum::Json(vec![written(&path)]).into_response());
    }
    let multipart: Result<Multipart, MultipartRejection> =
        Multipart::from_request(request, &()).await;
    let mut multipart =
        multipart.map_err(|e| ApiError::bad_request(format!("reading the multipart body: {e}")))?;
    let mut results = Vec::new();
    while let Some(field) = multipart
        .next_field()
        .await
        .map_err(|e| ApiError::bad_request(format!("reading the multipart body: {e}")))?
    {
        let named = q.path.as_deref().or(field.file_name()).unwrap_or_default();
        let path = resolve(named)?;
        let (outcome, broken) = crate::rest::multipart::stream_part(field, |body| {
            service.put_file(&envd.caller, &envd.id, &path, put(), body)
        })
        .await;
        outcome?;
        if let Some(reason) = broken {
            return Err(
                ApiError::bad_request(format!("the multipart body broke: {reason}")).into(),
            );
        }
        results.push(written(&path));
    }
    Ok(axum::Json(results).into_response())
}

/// A gzip body, inflated as it streams.
fn gunzip(body: ByteStream) -> ByteStream {
    let reader = tokio_util::io::StreamReader::new(body);
    let inflated = async_compression::tokio::bufread::GzipDecoder::new(reader);
    Box::pin(tokio_util::io::ReaderStream::new(inflated).map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("inflating gzip: {e}"),
        )
    }))
}

/// SeaCloud's `POST /file?path=`: the raw body, streamed, written to `path`.
pub async fn write_raw(
    State(service): State<Arc<Service>>,
    axum::Extension(envd): axum::Extension<Envd>,
    axum::extract::Query(q): axum::extract::Query<FileQuery>,
    body: Body,
) -> Result<Response, Failure> {
    let path = resolve(q.path.as_deref().unwrap_or_default())?;
    let put = PutFile {
        parents: Some(true),
        ..PutFile::default()
    };
    service
        .put_file(&envd.caller, &envd.id, &path, put, stream(body))
        .await?;
    Ok(axum::Json(vec![written(&path)]).into_response())
}

#[derive(Deserialize)]
pub struct Compose {
    source_paths: Vec<String>,
    destination: String,
}

/// `POST /files/compose {source_paths, destination}`: the sources, in order, into the
/// destination, atomically.
pub async fn compose(
    State(service): State<Arc<Service>>,
    axum::Extension(envd): axum::Extension<Envd>,
    crate::rest::json::Json(req): crate::rest::json::Json<Compose>,
) -> Result<Response, Failure> {
    let sources = req
        .source_paths
        .iter()
        .map(|p| resolve(p))
        .collect::<Result<Vec<_>, _>>()?;
    let destination = resolve(&req.destination)?;
    let request = airlock_api::ComposeFiles {
        sources,
        destination: destination.clone(),
        mode: None,
        overwrite: Some(true),
    };
    service
        .compose_files(&envd.caller, &envd.id, request)
        .await?;
    Ok(axum::Json(written(&destination)).into_response())
}
