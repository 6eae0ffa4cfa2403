//! Streamed request bodies as blocking readers for the engine, with a lingering drain;
//! every upload route (files, templates) reads its body this way. (Stalled clients are
//! cut off by `idle_body`, which wraps every request body.)

use std::time::Duration;

use axum::body::Body;
use futures_util::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::io::{StreamReader, SyncIoBridge};

/// How long a refused upload's remaining body is still read and discarded.
const LINGER: Duration = Duration::from_secs(2);
/// Body chunks queued between the connection and the writing thread.
const PUMP_DEPTH: usize = 8;

/// A request body as a blocking reader for the engine, fed by a pump task. The reader
/// gives up when the client goes quiet. If the writer gives up first (quota, bad path,
/// checksum), the pump keeps draining what the client is still sending for a moment, as
/// nginx's lingering close does, so the client gets to read our error answer instead of a
/// broken pipe.
pub struct BodyPump {
    pump: tokio::task::JoinHandle<()>,
}

pub type BodyReader =
    SyncIoBridge<StreamReader<ReceiverStream<std::io::Result<bytes::Bytes>>, bytes::Bytes>>;

impl BodyPump {
    /// The reader for the engine, and the pump to `finish` once the engine is done.
    pub fn new(body: Body) -> (BodyReader, Self) {
        let (tx, reader) = channel();
        let mut stream = body
            .into_data_stream()
            .map(|chunk| chunk.map_err(client_error));
        let pump = tokio::spawn(async move {
            while let Some(item) = stream.next().await {
                if tx.send(item).await.is_err() {
                    let drain = async { while let Some(Ok(_)) = stream.next().await {} };
                    let _ = tokio::time::timeout(LINGER, drain).await;
                    return;
                }
            }
        });
        (reader, Self { pump })
    }

    /// Waits until the body is consumed or the lingering drain is over.
    pub async fn finish(self) {
        let _ = self.pump.await;
    }
}

/// A bounded channel whose receiving end is a blocking reader for the engine: what a
/// route feeds when its bytes come from somewhere other than a whole request body (one
/// part of a multipart upload, say).
pub fn channel() -> (
    tokio::sync::mpsc::Sender<std::io::Result<bytes::Bytes>>,
    BodyReader,
) {
    let (tx, rx) = tokio::sync::mpsc::channel(PUMP_DEPTH);
    (
        tx,
        SyncIoBridge::new(StreamReader::new(ReceiverStream::new(rx))),
    )
}

/// A body error as the engine sees it: a stalled client stays a timeout; anything else
/// is marked ConnectionAborted, the client's doing rather than the disk's.
pub fn client_error(error: axum::Error) -> std::io::Error {
    use std::io::{Error, ErrorKind};
    let stalled = std::iter::successors(Some(&error as &dyn std::error::Error), |e| e.source())
        .filter_map(|e| e.downcast_ref::<Error>())
        .find(|io| io.kind() == ErrorKind::TimedOut)
        .map(|io| Error::new(ErrorKind::TimedOut, io.to_string()));
    stalled.unwrap_or_else(|| Error::new(ErrorKind::ConnectionAborted, error))
}
