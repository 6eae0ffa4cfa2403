//! Connect's binary protobuf codec, as a translation around the JSON handlers: a request
//! in `application/proto` (unary) or `application/connect+proto` (streaming) is decoded
//! with envd's descriptors (`proto/envd`) and handed on in protobuf's JSON mapping; the
//! answer is encoded back the same way. The handlers, and the rules behind them, stay
//! one. Errors stay JSON, as Connect has them in every codec: a unary error is a non-200
//! JSON body, a stream's end is a JSON envelope.

use std::sync::LazyLock;

use airlock_service::ApiError;
use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures_util::{Stream, StreamExt};
use prost::Message as _;
use prost_reflect::{DescriptorPool, DeserializeOptions, DynamicMessage, MessageDescriptor};

use super::connect::{ConnectError, END_STREAM, envelope, envelopes};

/// The most a unary answer may be when it is encoded again (listings are the largest).
const ANSWER_LIMIT: usize = 64 << 20;

static ENVD: LazyLock<DescriptorPool> = LazyLock::new(|| {
    DescriptorPool::decode(airlock_proto::ENVD_DESCRIPTOR_SET)
        .expect("the envd descriptors are compiled into the binary")
});

/// The request and answer types of the method a path names (`/process.Process/Start`).
fn method(path: &str) -> Option<(MessageDescriptor, MessageDescriptor)> {
    let mut parts = path.rsplit('/');
    let name = parts.next()?;
    let service = ENVD.get_service_by_name(parts.next()?)?;
    let method = service.methods().find(|m| m.name() == name)?;
    Some((method.input(), method.output()))
}

/// Binary message → its JSON mapping.
fn to_json(descriptor: &MessageDescriptor, binary: &[u8]) -> Result<Bytes, ApiError> {
    let message = DynamicMessage::decode(descriptor.clone(), binary)
        .map_err(|e| ApiError::bad_request(format!("malformed protobuf message: {e}")))?;
    serde_json::to_vec(&message)
        .map(Bytes::from)
        .map_err(|e| ApiError::internal("encoding a message as JSON", e))
}

/// JSON mapping → binary message. Fields the handler added beyond the schema are dropped.
fn to_binary(descriptor: &MessageDescriptor, json: &[u8]) -> Result<Bytes, ApiError> {
    let options = DeserializeOptions::new().deny_unknown_fields(false);
    let mut reader = serde_json::Deserializer::from_slice(json);
    let message =
        DynamicMessage::deserialize_with_options(descriptor.clone(), &mut reader, &options)
            .map_err(|e| ApiError::internal("encoding an answer as protobuf", e))?;
    Ok(Bytes::from(message.encode_to_vec()))
}

/// The codec a request speaks, from its content type.
#[derive(Clone, Copy, PartialEq)]
enum Codec {
    Json,
    Unary,
    Streaming,
}

fn codec(request: &Request) -> Codec {
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    match content_type.split(';').next().unwrap_or_default().trim() {
        "application/proto" => Codec::Unary,
        "application/connect+proto" => Codec::Streaming,
        _ => Codec::Json,
    }
}

/// The middleware: JSON requests pass untouched; binary ones are translated both ways.
pub async fn binary_codec(mut request: Request, next: Next) -> Response {
    let codec = codec(&request);
    if codec == Codec::Json {
        return next.run(request).await;
    }
    let Some((input, output)) = method(request.uri().path()) else {
        // An unknown method: the router answers it.
        return next.run(request).await;
    };
    let (json_type, binary_type) = match codec {
        Codec::Unary => ("application/json", "application/proto"),
        _ => ("application/connect+json", "application/connect+proto"),
    };
    request
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(json_type));
    request.headers_mut().remove(header::CONTENT_LENGTH);
    let body = std::mem::take(request.body_mut());
    *request.body_mut() = if codec == Codec::Unary {
        match axum::body::to_bytes(body, super::connect::MESSAGE_LIMIT).await {
            Ok(binary) => match to_json(&input, &binary) {
                Ok(json) => Body::from(json),
                Err(err) => return ConnectError(err).into_response(),
            },
            Err(e) => {
                let err = ApiError::bad_request(format!("reading the message: {e}"));
                return ConnectError(err).into_response();
            }
        }
    } else {
        request_stream(translate(envelopes(body), move |message| {
            to_json(&input, &message)
        }))
    };
    let answer = next.run(request).await;
    if answer.status() != StatusCode::OK {
        return answer;
    }
    let (mut parts, body) = answer.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts
        .headers
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(binary_type));
    let body = if codec == Codec::Unary {
        let json = match axum::body::to_bytes(body, ANSWER_LIMIT).await {
            Ok(json) => json,
            Err(e) => {
                return ConnectError(ApiError::internal("reading an answer", e)).into_response();
            }
        };
        match to_binary(&output, &json) {
            Ok(binary) => Body::from(binary),
            Err(err) => return ConnectError(err).into_response(),
        }
    } else {
        answer_stream(translate(envelopes(body), move |message| {
            to_binary(&output, &message)
        }))
    };
    Response::from_parts(parts, body)
}

/// Re-frames a stream of envelopes with each message translated. The end-of-stream
/// envelope is JSON in every codec and passes as it is. The first error ends the stream.
fn translate(
    envelopes: impl Stream<Item = Result<(u8, Bytes), ApiError>> + Send + 'static,
    convert: impl Fn(Bytes) -> Result<Bytes, ApiError> + Send + 'static,
) -> impl Stream<Item = Result<Bytes, ApiError>> + Send {
    envelopes.scan(false, move |ended, item| {
        if *ended {
            return std::future::ready(None);
        }
        let translated = item.and_then(|(flags, message)| {
            if flags & END_STREAM != 0 {
                Ok(envelope(flags, &message))
            } else {
                convert(message).map(|m| envelope(flags, &m))
            }
        });
        *ended = translated.is_err();
        std::future::ready(Some(translated))
    })
}

/// A request stream: an error reaches the handler as a failed read.
fn request_stream(stream: impl Stream<Item = Result<Bytes, ApiError>> + Send + 'static) -> Body {
    Body::from_stream(stream.map(|item| item.map_err(|e| std::io::Error::other(e.message))))
}

/// An answer stream: an error becomes the stream's JSON end envelope.
fn answer_stream(stream: impl Stream<Item = Result<Bytes, ApiError>> + Send + 'static) -> Body {
    Body::from_stream(stream.map(|item| {
        Ok::<_, std::convert::Infallible>(item.unwrap_or_else(|err| {
            let end = serde_json::json!({"error": super::connect::error_json(&err)});
            envelope(END_STREAM, end.to_string().as_bytes())
        }))
    }))
}

/// For the fuzzer: `binary` read as the request of envd's method number `pick` (in
/// file order), put in JSON and encoded again; that must read back to the same JSON.
pub fn fuzz_roundtrip(pick: usize, binary: &[u8]) -> bool {
    let methods: Vec<_> = ENVD
        .services()
        .flat_map(|s| s.methods().collect::<Vec<_>>())
        .collect();
    let input = methods[pick % methods.len()].input();
    let Ok(json) = to_json(&input, binary) else {
        return false;
    };
    let again = to_binary(&input, &json).expect("a message's JSON mapping reads back");
    let json_again = to_json(&input, &again).expect("an encoded message decodes");
    let parse = |j: &[u8]| serde_json::from_slice::<serde_json::Value>(j).expect("JSON");
    assert_eq!(parse(&json), parse(&json_again));
    true
}
