//! `POST /v1/sandboxes/{id}/files/batch`: many files in one multipart request. Each part
//! is streamed straight into its own atomic write as it arrives; a part that fails (a bad
//! path, a wrong checksum, a read-only target) gets its error and the rest go on.

use std::sync::Arc;

use airlock_api::{BatchItem, BatchResult, ErrorDetail};
use axum::extract::multipart::{Field, Multipart, MultipartRejection};
use axum::extract::{Path, State};
use serde::Deserialize;

use super::body::channel;
use super::files::put_options;
use super::json::Query;
use crate::{ApiError, Service};

#[derive(Deserialize)]
pub struct BatchQuery {
    /// Mode for parts that name none (`0644` by default).
    mode: Option<String>,
    parents: Option<bool>,
    overwrite: Option<bool>,
}

/// Each part's filename (or, failing that, its field name) is its absolute destination.
/// A part may carry `X-Airlock-Mode`, `X-Airlock-Mtime` and `X-Airlock-Sha256` headers.
pub async fn batch(
    State(service): State<Arc<Service>>,
    Path(id): Path<String>,
    Query(q): Query<BatchQuery>,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<axum::Json<BatchResult>, ApiError> {
    service.require(&id)?;
    let mut multipart = multipart.map_err(|e| {
        ApiError::bad_request(format!("batch takes a multipart/form-data body: {e}"))
    })?;
    let mut results = Vec::new();
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => break,
            Err(e) => return Err(broken(&results, &e.to_string())),
        };
        let path = field
            .file_name()
            .or(field.name())
            .unwrap_or_default()
            .to_owned();
        let (item, stream_broken) = write_part(&service, &id, &q, &path, field).await;
        results.push(item);
        if let Some(reason) = stream_broken {
            return Err(broken(&results, &reason));
        }
    }
    let failed = results.iter().filter(|r| r.error.is_some()).count() as u64;
    Ok(axum::Json(BatchResult {
        written: results.len() as u64 - failed,
        failed,
        results,
    }))
}

/// Writes one part; also says whether the multipart stream itself broke meanwhile.
async fn write_part(
    service: &Service,
    id: &str,
    q: &BatchQuery,
    path: &str,
    mut field: Field<'_>,
) -> (BatchItem, Option<String>) {
    let header = |name: &str| field.headers().get(name).and_then(|v| v.to_str().ok());
    let options = put_options(
        header("x-airlock-mode").or(q.mode.as_deref()),
        header("x-airlock-mtime"),
        header("x-airlock-sha256"),
        q.parents.unwrap_or(true),
        q.overwrite.unwrap_or(true),
    );
    let (tx, reader) = channel();
    let write = async {
        match options {
            Ok(put) => service.put_file(id, path, put, reader).await.map(|r| r.0),
            Err(e) => Err(e),
        }
    };
    // Feed the writer as the part arrives; once it has given up, keep reading (and
    // dropping) the part so the next one can be reached.
    let feed = async move {
        let broken = loop {
            match field.chunk().await {
                Ok(Some(chunk)) => {
                    let _ = tx.send(Ok(chunk)).await;
                }
                Ok(None) => break None,
                Err(e) => {
                    let reason = e.to_string();
                    let _ = tx.send(Err(aborted(&reason))).await;
                    break Some(reason);
                }
            }
        };
        // Dropping the sender ends the writer's stream.
        drop(tx);
        broken
    };
    let (outcome, broken) = tokio::join!(write, feed);
    let item = match outcome {
        Ok(result) => BatchItem {
            path: path.to_owned(),
            result: Some(result),
            error: None,
        },
        Err(e) => BatchItem {
            path: path.to_owned(),
            result: None,
            error: Some(ErrorDetail {
                code: e.code,
                message: e.message,
            }),
        },
    };
    (item, broken)
}

fn aborted(reason: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::ConnectionAborted, reason.to_owned())
}

/// The multipart stream itself broke: the parts before it stand (each was committed
/// whole), the broken one was not written, and nothing after it was read.
fn broken(results: &[BatchItem], reason: &str) -> ApiError {
    let written = results.iter().filter(|r| r.result.is_some()).count();
    ApiError::bad_request(format!(
        "malformed or interrupted multipart body after {} part(s) ({written} written and kept): {reason}",
        results.len()
    ))
}
