//! `WriteFiles`: many files in one client stream. Each file's chunks stream into the
//! service's batch writer; the service decides each file's defaults and result.

use std::sync::Arc;

use airlock_api::BatchItem;
use airlock_proto::v1 as pb;
use airlock_proto::v1::write_files_request::Payload;
use airlock_service::{
    BatchDefaults, BatchPart, ChecksumText, Need, Principal, PutFile, Service, batch_broken,
    batch_result,
};
use bytes::Bytes;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Status, Streaming};

use super::convert;
use super::status::{invalid, status};

/// Chunks of one file queued toward the service.
const FILE_QUEUE: usize = 8;

/// The file being written: where its chunks go, and its outcome.
struct Open {
    chunks: mpsc::Sender<std::io::Result<Bytes>>,
    done: JoinHandle<BatchItem>,
}

pub async fn write_files(
    service: &Arc<Service>,
    caller: &Principal,
    mut incoming: Streaming<pb::WriteFilesRequest>,
) -> Result<pb::WriteFilesResponse, Status> {
    let start = match incoming.message().await? {
        Some(pb::WriteFilesRequest {
            payload: Some(Payload::Start(start)),
        }) => start,
        _ => return Err(invalid("the first message of WriteFiles must be `start`")),
    };
    service
        .require(caller, &start.sandbox_id, Need::Write)
        .map_err(status)?;
    let defaults = BatchDefaults {
        mode: start.mode,
        parents: start.parents,
        overwrite: start.overwrite,
    };
    let mut results = Vec::new();
    let mut open: Option<Open> = None;
    loop {
        let message = match incoming.message().await {
            Ok(Some(message)) => message,
            Ok(None) => break,
            Err(broke) => {
                if let Some(file) = open.take() {
                    let _ = file.chunks.send(Err(aborted(broke.message()))).await;
                    results.push(finish(file).await?);
                }
                return Err(status(batch_broken(&results, broke.message())));
            }
        };
        match message.payload {
            Some(Payload::File(file)) => {
                if let Some(previous) = open.take() {
                    results.push(finish(previous).await?);
                }
                open = Some(begin(service, caller, &start.sandbox_id, &defaults, file));
            }
            Some(Payload::Chunk(chunk)) => match &open {
                // A file that has given up takes no more; the rest are still read.
                Some(file) => {
                    let _ = file.chunks.send(Ok(chunk)).await;
                }
                None => return Err(invalid("a chunk came before any `file`")),
            },
            _ => return Err(invalid("`start` may only come first")),
        }
    }
    if let Some(last) = open.take() {
        results.push(finish(last).await?);
    }
    Ok(convert::batch(batch_result(results)))
}

fn begin(
    service: &Arc<Service>,
    caller: &Principal,
    id: &str,
    defaults: &BatchDefaults,
    file: pb::WriteFilesFile,
) -> Open {
    let put = PutFile::from_text(
        None,
        file.mtime.as_deref(),
        ChecksumText {
            algorithm: file.checksum.as_deref(),
            crc64nvme: file.crc64nvme.as_deref(),
            sha256: file.sha256.as_deref(),
        },
        None,
        None,
    )
    .map(|put| PutFile {
        mode: file.mode,
        ..put
    });
    let part = BatchPart {
        path: file.path,
        put,
    };
    let (chunks, rx) = mpsc::channel(FILE_QUEUE);
    let (service, caller, id, defaults) = (
        service.clone(),
        caller.clone(),
        id.to_owned(),
        defaults.clone(),
    );
    let done = tokio::spawn(async move {
        let body = airlock_service::byte_stream(ReceiverStream::new(rx));
        service
            .write_batch_part(&caller, &id, &defaults, part, body)
            .await
    });
    Open { chunks, done }
}

async fn finish(file: Open) -> Result<BatchItem, Status> {
    // Dropping the sender ends that file's stream.
    drop(file.chunks);
    file.done
        .await
        .map_err(|e| status(airlock_service::ApiError::internal("writing a file", e)))
}

fn aborted(why: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::ConnectionAborted, why.to_owned())
}
