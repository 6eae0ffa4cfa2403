//! Reading and writing the headers the routes share.

use axum::http::{HeaderMap, HeaderValue, header};

/// A header's value as text, if present and printable.
pub fn text<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Sets a header; a value that is not a valid header value is left out.
pub fn insert(headers: &mut HeaderMap, name: &str, value: &str) {
    if let (Ok(name), Ok(value)) = (
        header::HeaderName::try_from(name),
        HeaderValue::try_from(value),
    ) {
        headers.insert(name, value);
    }
}
