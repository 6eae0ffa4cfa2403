//! The Connect protocol as envd speaks it to the E2B SDKs: the JSON codec, unary calls
//! (the body is the message) and server-streaming calls (5-byte envelopes: a flags byte
//! and a big-endian length; the last envelope, flagged 0x02, carries the end of the
//! stream and any error).

use airlock_service::ApiError;
use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Request};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::{Stream, StreamExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;

/// A request message is at most this large: envd's messages are small (files travel
/// over its REST routes).
pub const MESSAGE_LIMIT: usize = 4 << 20;
/// Flag of the envelope that ends a stream.
pub const END_STREAM: u8 = 0x02;
/// Flag of an envelope whose message is compressed.
const COMPRESSED: u8 = 0x01;

/// Connect's name and HTTP status for an error. Connect's codes are gRPC's, so the
/// gRPC face's mapping decides the code; Connect's specification gives each its status.
fn connect_code(err: &ApiError) -> (&'static str, StatusCode) {
    use tonic::Code;
    match crate::grpc::status::status(err.clone()).code() {
        Code::InvalidArgument => ("invalid_argument", StatusCode::BAD_REQUEST),
        Code::Unauthenticated => ("unauthenticated", StatusCode::UNAUTHORIZED),
        Code::PermissionDenied => ("permission_denied", StatusCode::FORBIDDEN),
        Code::NotFound => ("not_found", StatusCode::NOT_FOUND),
        Code::DeadlineExceeded => ("deadline_exceeded", StatusCode::GATEWAY_TIMEOUT),
        Code::AlreadyExists => ("already_exists", StatusCode::CONFLICT),
        Code::FailedPrecondition => ("failed_precondition", StatusCode::BAD_REQUEST),
        Code::ResourceExhausted => ("resource_exhausted", StatusCode::TOO_MANY_REQUESTS),
        Code::OutOfRange => ("out_of_range", StatusCode::BAD_REQUEST),
        Code::Unavailable => ("unavailable", StatusCode::SERVICE_UNAVAILABLE),
        Code::DataLoss => ("data_loss", StatusCode::INTERNAL_SERVER_ERROR),
        _ => ("internal", StatusCode::INTERNAL_SERVER_ERROR),
    }
}

/// The error object Connect sends, in a unary answer or a stream's end.
pub fn error_json(err: &ApiError) -> serde_json::Value {
    json!({"code": connect_code(err).0, "message": err.message})
}

/// A Connect error answer to a unary call.
pub struct ConnectError(pub ApiError);

impl From<ApiError> for ConnectError {
    fn from(err: ApiError) -> Self {
        Self(err)
    }
}

impl IntoResponse for ConnectError {
    fn into_response(self) -> Response {
        let (_, status) = connect_code(&self.0);
        (status, axum::Json(error_json(&self.0))).into_response()
    }
}

/// A unary call's answer.
pub type Unary<T> = Result<axum::Json<T>, ConnectError>;

/// A unary request message (`application/json`).
pub struct Message<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Message<T> {
    type Rejection = ConnectError;

    async fn from_request(request: Request, _state: &S) -> Result<Self, ConnectError> {
        let bytes = read_limited(request).await?;
        decode(&bytes).map(Message)
    }
}

/// A message in protobuf's JSON mapping; an empty one is `{}`, as Connect sends it.
fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ConnectError> {
    let text: &[u8] = if bytes.is_empty() { b"{}" } else { bytes };
    serde_json::from_slice(text)
        .map_err(|e| ApiError::bad_request(format!("malformed message: {e}")).into())
}

/// The one request message of a server-streaming call: one envelope.
pub struct Enveloped<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Enveloped<T> {
    type Rejection = ConnectError;

    async fn from_request(request: Request, _state: &S) -> Result<Self, ConnectError> {
        // Read whole, not just to the end of the first envelope: a body left unread
        // keeps hyper from reusing the connection, and a client that reuses it then
        // finds it closed under its next request (CI saw exactly that).
        let bytes = read_limited(request).await?;
        let malformed = || ApiError::bad_request("a streaming request is one Connect envelope");
        let (head, rest) = bytes.split_at_checked(5).ok_or_else(malformed)?;
        let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
        if head[0] & COMPRESSED != 0 {
            return Err(ApiError::bad_request("compressed Connect messages are not taken").into());
        }
        decode(rest.get(..len).ok_or_else(malformed)?).map(Enveloped)
    }
}

async fn read_limited(request: Request) -> Result<Bytes, ConnectError> {
    axum::body::to_bytes(request.into_body(), MESSAGE_LIMIT)
        .await
        .map_err(|e| ApiError::bad_request(format!("reading the message: {e}")).into())
}

/// One Connect envelope around `message`.
pub fn envelope(flags: u8, message: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(5 + message.len());
    out.push(flags);
    out.extend_from_slice(&(message.len() as u32).to_be_bytes());
    out.extend_from_slice(message);
    Bytes::from(out)
}

/// A server-streaming answer: each message in its envelope, then the end of the stream
/// (with the error, if one ended it).
pub fn stream<T: Serialize + Send + 'static>(
    messages: impl Stream<Item = Result<T, ApiError>> + Send + 'static,
) -> Response {
    let body = futures_util::stream::unfold(
        (Box::pin(messages), false),
        |(mut messages, done)| async move {
            if done {
                return None;
            }
            let frame = match messages.next().await {
                Some(Ok(message)) => {
                    let json = serde_json::to_vec(&message).unwrap_or_default();
                    return Some((envelope(0, &json), (messages, false)));
                }
                Some(Err(err)) => json!({"error": error_json(&err)}),
                None => json!({}),
            };
            let json = serde_json::to_vec(&frame).unwrap_or_default();
            Some((envelope(END_STREAM, &json), (messages, true)))
        },
    );
    (
        [(header::CONTENT_TYPE, "application/connect+json")],
        Body::from_stream(body.map(Ok::<_, std::convert::Infallible>)),
    )
        .into_response()
}

/// The envelopes of a streamed body as `(flags, message)`, each read whole as soon as its
/// last byte arrives, so a client stream is acted on while it is still open. A message
/// over the limit, a compressed one, or a body cut mid-envelope ends it with an error.
pub fn envelopes(body: Body) -> impl Stream<Item = Result<(u8, Bytes), ApiError>> + Send {
    let state = (body.into_data_stream(), bytes::BytesMut::new(), false);
    futures_util::stream::unfold(state, |(mut data, mut buf, done)| async move {
        if done {
            return None;
        }
        loop {
            if buf.len() >= 5 {
                let len = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize;
                if len > MESSAGE_LIMIT {
                    let err = ApiError::bad_request(format!(
                        "a Connect message is at most {MESSAGE_LIMIT} bytes"
                    ));
                    return Some((Err(err), (data, buf, true)));
                }
                if buf.len() >= 5 + len {
                    let flags = buf[0];
                    let message = buf.split_to(5 + len).freeze().slice(5..);
                    if flags & COMPRESSED != 0 {
                        let err =
                            ApiError::bad_request("compressed Connect messages are not taken");
                        return Some((Err(err), (data, buf, true)));
                    }
                    return Some((Ok((flags, message)), (data, buf, false)));
                }
            }
            match data.next().await {
                Some(Ok(chunk)) => buf.extend_from_slice(&chunk),
                Some(Err(e)) => {
                    let err = ApiError::bad_request(format!("reading the stream: {e}"));
                    return Some((Err(err), (data, buf, true)));
                }
                None if buf.is_empty() => return None,
                None => {
                    let err = ApiError::bad_request("the stream ended inside a Connect envelope");
                    return Some((Err(err), (data, buf, true)));
                }
            }
        }
    })
}
