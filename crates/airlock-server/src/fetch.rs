//! The daemon's HTTP(S) client for the service's outside documents (an OIDC issuer's
//! discovery document and keys): bounded in time and size, TLS by rustls with the web's
//! root certificates.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use airlock_service::Fetch;

/// A document larger than this is refused: discovery and key sets are a few KiB.
const MAX_DOCUMENT: usize = 1 << 20;

#[derive(Debug)]
pub struct HttpFetch(reqwest::Client);

impl HttpFetch {
    pub fn new() -> Result<Self, reqwest::Error> {
        reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::limited(3))
            .build()
            .map(Self)
    }
}

impl Fetch for HttpFetch {
    fn json<'a>(
        &'a self,
        url: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<serde_json::Value, String>> + Send + 'a>> {
        Box::pin(async move {
            let mut response = self
                .0
                .get(url)
                .send()
                .await
                .and_then(reqwest::Response::error_for_status)
                .map_err(|e| format!("{url}: {e}"))?;
            let mut body = Vec::new();
            while let Some(chunk) = response.chunk().await.map_err(|e| format!("{url}: {e}"))? {
                body.extend_from_slice(&chunk);
                if body.len() > MAX_DOCUMENT {
                    return Err(format!("{url}: larger than {MAX_DOCUMENT} bytes"));
                }
            }
            serde_json::from_slice(&body).map_err(|e| format!("{url}: {e}"))
        })
    }
}
