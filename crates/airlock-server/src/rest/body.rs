//! Request bodies as the service takes them: streams of chunks, with the connection's
//! failures told apart (a stalled client from a vanished one).

use airlock_service::ByteStream;
use axum::body::Body;
use futures_util::StreamExt;

/// The body as a byte stream for the service.
pub fn stream(body: Body) -> ByteStream {
    Box::pin(
        body.into_data_stream()
            .map(|chunk| chunk.map_err(client_error)),
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
