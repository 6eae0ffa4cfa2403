//! Reading and writing the headers the routes share.

use axum::http::{HeaderMap, HeaderName, HeaderValue, header};

/// A header's value as text, if present and printable.
pub fn text<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Sets a header named by text; a name or value that is not valid is left out.
pub fn insert(headers: &mut HeaderMap, name: &str, value: &str) {
    if let Ok(name) = HeaderName::try_from(name) {
        set(headers, name, value.to_owned());
    }
}

/// The file headers every download carries, named once rather than parsed (and, being
/// no standard names, allocated) per response.
pub const X_AIRLOCK_MODE: HeaderName = HeaderName::from_static("x-airlock-mode");
pub const X_AIRLOCK_MTIME: HeaderName = HeaderName::from_static("x-airlock-mtime");

/// Sets a header to a value made for it, taking the text without copying it; a value
/// that is not a valid header value is left out.
pub fn set(headers: &mut HeaderMap, name: HeaderName, value: String) {
    if let Ok(value) = HeaderValue::try_from(value) {
        headers.insert(name, value);
    }
}

/// Whether a request announces a body (chunked, or a non-zero Content-Length).
pub fn has_body(headers: &HeaderMap) -> bool {
    headers.contains_key(header::TRANSFER_ENCODING)
        || headers
            .get(header::CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes() != b"0")
}

/// Asks the client to close the connection after this answer: what is left of a refused
/// request's body would otherwise be read as the next request.
pub fn close_connection(response: &mut axum::response::Response) {
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
}
