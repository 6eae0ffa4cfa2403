//! One multipart part streamed into a writer as it arrives, shared by every face that
//! takes multipart uploads (batch, agent-sandbox's `/upload`, E2B's `POST /files`).

use std::future::Future;

use airlock_service::ByteStream;
use axum::extract::multipart::Field;
use tokio_stream::wrappers::ReceiverStream;

/// Chunks of one part queued toward the writer.
const PART_QUEUE: usize = 8;

/// Runs `write` on the part's bytes while feeding them to it. Answers what `write`
/// answered, and why the multipart stream itself broke, if it did. Once the writer has
/// given up, the rest of the part is read and dropped so the next part can be reached.
pub async fn stream_part<W, T>(
    mut field: Field<'_>,
    write: impl FnOnce(ByteStream) -> W,
) -> (T, Option<String>)
where
    W: Future<Output = T>,
{
    let (tx, rx) = tokio::sync::mpsc::channel(PART_QUEUE);
    let written = write(Box::pin(ReceiverStream::new(rx)));
    let feed = async move {
        let broken = loop {
            match field.chunk().await {
                Ok(Some(chunk)) => {
                    let _ = tx.send(Ok(chunk)).await;
                }
                Ok(None) => break None,
                Err(e) => {
                    let reason = e.to_string();
                    let aborted =
                        std::io::Error::new(std::io::ErrorKind::ConnectionAborted, reason.clone());
                    let _ = tx.send(Err(aborted)).await;
                    break Some(reason);
                }
            }
        };
        // Dropping the sender ends the writer's stream.
        drop(tx);
        broken
    };
    tokio::join!(written, feed)
}
