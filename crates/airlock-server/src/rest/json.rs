//! JSON bodies, read whatever the Content-Type says (curl users send form types), with
//! failures answered in the API's own error shape.

use axum::extract::{FromRequest, Request};
use http_body_util::BodyExt;
use serde::de::DeserializeOwned;

use airlock_service::ApiError;

use super::failure::Failure;

/// A JSON request body.
pub struct Json<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Json<T> {
    type Rejection = Failure;

    async fn from_request(request: Request, _: &S) -> Result<Self, Failure> {
        // A declared size over the limit is refused before waiting for a single byte.
        let declared = request
            .headers()
            .get(axum::http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        if declared.is_some_and(|n| n > super::JSON_BODY_LIMIT as u64) {
            return Err(Failure(too_large()));
        }
        // The limit is the extractor's own, not axum's `DefaultBodyLimit`: a route that
        // also takes streamed bodies has no such cap, and a chunked JSON request to it
        // was once read whole, however large.
        let limited = http_body_util::Limited::new(request.into_body(), super::JSON_BODY_LIMIT);
        let bytes = match limited.collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(e) if e.is::<http_body_util::LengthLimitError>() => {
                return Err(Failure(too_large()));
            }
            Err(e) => return Err(Failure(unread(e))),
        };
        let body: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
            b"{}"
        } else {
            &bytes
        };
        serde_json::from_slice(body)
            .map(Json)
            .map_err(|e| Failure(ApiError::bad_request(format!("malformed JSON body: {e}"))))
    }
}

/// Why a body could not be read: a client that went quiet (408, as for any body), or one
/// whose stream broke.
fn unread(error: Box<dyn std::error::Error + Send + Sync>) -> ApiError {
    let error = match error.downcast::<axum::Error>() {
        Ok(body) => super::body::client_error(*body),
        Err(other) => std::io::Error::new(std::io::ErrorKind::ConnectionAborted, other),
    };
    let code = if error.kind() == std::io::ErrorKind::TimedOut {
        airlock_api::ErrorCode::Timeout
    } else {
        airlock_api::ErrorCode::BadRequest
    };
    ApiError::new(code, format!("reading the request body: {error}"))
}

fn too_large() -> ApiError {
    ApiError::new(
        airlock_api::ErrorCode::TooLarge,
        format!(
            "request body is larger than {} MiB",
            super::JSON_BODY_LIMIT >> 20
        ),
    )
}

/// Query parameters, with failures answered in the API's error shape. Every value must
/// decode to UTF-8: a path's bytes would otherwise be silently replaced by U+FFFD.
pub struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> axum::extract::FromRequestParts<S> for Query<T> {
    type Rejection = Failure;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Failure> {
        let query = parts.uri.query().unwrap_or_default();
        if percent_encoding::percent_decode_str(query)
            .decode_utf8()
            .is_err()
        {
            return Err(Failure(ApiError::bad_request(
                "the query is not UTF-8 once decoded; names that are not UTF-8 travel in archives",
            )));
        }
        // The common case in one pass. axum's extractor tracks where in the query each
        // value came from, for its error message: asked again only for that message.
        if let Ok(parsed) = serde_urlencoded::from_str(query) {
            return Ok(Query(parsed));
        }
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| Query(q.0))
            .map_err(|e| {
                Failure(ApiError::bad_request(format!(
                    "bad query: {}",
                    e.body_text()
                )))
            })
    }
}

/// A query string's parameters in order, repeats kept: a signature check must see a
/// doubled parameter, and a filter may hold several.
pub struct QueryParams(pub Vec<(String, String)>);

impl QueryParams {
    pub fn parse(query: &str) -> Result<Self, ApiError> {
        let uri: axum::http::Uri = format!("/?{query}")
            .parse()
            .map_err(|_| ApiError::bad_request("bad query"))?;
        axum::extract::Query::<Vec<(String, String)>>::try_from_uri(&uri)
            .map(|q| Self(q.0))
            .map_err(|e| ApiError::bad_request(format!("bad query: {}", e.body_text())))
    }

    /// Whether a raw query names `name`, without decoding it.
    pub fn names(query: Option<&str>, name: &str) -> bool {
        query.is_some_and(|q| {
            q.split('&')
                .any(|pair| pair.split('=').next() == Some(name))
        })
    }

    /// The value of `name`, which may appear once at most.
    pub fn at_most_once(&self, name: &str) -> Result<Option<&str>, ApiError> {
        let mut found = self.0.iter().filter(|(key, _)| key == name);
        match (found.next(), found.next()) {
            (first, None) => Ok(first.map(|(_, value)| value.as_str())),
            _ => Err(ApiError::bad_request(format!(
                "`{name}` appears more than once"
            ))),
        }
    }

    /// The value of `name`, which must appear exactly once.
    pub fn once(&self, name: &str) -> Result<&str, ApiError> {
        self.at_most_once(name)?
            .ok_or_else(|| ApiError::bad_request(format!("`{name}` is missing")))
    }
}

#[cfg(test)]
mod tests {
    use axum::extract::FromRequestParts;
    use serde::Deserialize;

    use super::Query;

    #[derive(Debug, Deserialize, PartialEq)]
    struct Asked {
        path: String,
        parents: Option<bool>,
    }

    async fn parse(uri: &str) -> Result<Asked, String> {
        let (mut parts, ()) = axum::http::Request::builder()
            .uri(uri)
            .body(())
            .unwrap()
            .into_parts();
        Query::<Asked>::from_request_parts(&mut parts, &())
            .await
            .map(|q| q.0)
            .map_err(|failure| failure.0.message)
    }

    /// What axum's own extractor makes of `uri`.
    fn axum_parse(uri: &str) -> Option<Asked> {
        let uri: axum::http::Uri = uri.parse().unwrap();
        axum::extract::Query::<Asked>::try_from_uri(&uri)
            .ok()
            .map(|q| q.0)
    }

    /// The one-pass parse takes what axum's takes, and a query it refuses is still
    /// answered with axum's message, which names the field at fault.
    #[tokio::test]
    async fn queries_parse_as_axum_parses_them_and_fail_with_its_message() {
        let asked = |path: &str, parents| Asked {
            path: path.into(),
            parents,
        };
        assert_eq!(parse("/x?path=/a%20b").await, Ok(asked("/a b", None)));
        assert_eq!(
            parse("/x?parents=true&path=%2Fa+b&other=1").await,
            Ok(asked("/a b", Some(true)))
        );
        for uri in [
            "/x?path=/a%20b",
            "/x?parents=true&path=%2Fa+b&other=1",
            "/x?path=/a&path=/b",
            "/x?path=&parents=false",
            "/x?path=/a&parents=maybe",
            "/x?parents=true",
        ] {
            assert_eq!(parse(uri).await.ok(), axum_parse(uri), "{uri}");
        }
        let wrong = parse("/x?path=/a&parents=maybe").await.unwrap_err();
        assert!(
            wrong.starts_with("bad query: ") && wrong.contains("parents"),
            "{wrong}"
        );
        let missing = parse("/x?parents=true").await.unwrap_err();
        assert!(missing.contains("path"), "{missing}");
        let not_utf8 = parse("/x?path=/%FF").await.unwrap_err();
        assert!(not_utf8.contains("not UTF-8"), "{not_utf8}");
    }
}
