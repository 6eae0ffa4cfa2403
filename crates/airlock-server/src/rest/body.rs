//! Streamed request bodies as blocking readers for the engine, with an idle timeout and a
//! lingering drain; every upload route (files, templates) reads its body this way.

use std::time::Duration;

use axum::body::Body;
use futures_util::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::io::{StreamReader, SyncIoBridge};

/// A transfer that sends nothing for this long is abandoned (and nothing is committed).
/// An idle timeout, not a total one: a slow but steady upload of any size finishes.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
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
        let mut stream = Box::pin(
            tokio_stream::StreamExt::timeout(body.into_data_stream(), IDLE_TIMEOUT).map(|item| {
                match item {
                    // ConnectionAborted marks it as the client's doing, not the disk's.
                    Ok(chunk) => chunk
                        .map_err(|e| std::io::Error::new(std::io::ErrorKind::ConnectionAborted, e)),
                    Err(_) => Err(idle_error()),
                }
            }),
        );
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

/// The error a reader sees when its client went quiet.
pub fn idle_error() -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        format!("client sent nothing for {} s", IDLE_TIMEOUT.as_secs()),
    )
}
