//! Resumable uploads over the daemon's tus 1.0 routes: create an upload, learn where it
//! stands, send the rest. A client that dies mid-way asks where the upload stands and
//! continues from there.

use base64::Engine as _;
use reqwest::Method;
use tokio::io::AsyncRead;

use crate::{Client, Error, send};

const TUS: (&str, &str) = ("Tus-Resumable", "1.0.0");

/// Where an upload stands after a chunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadProgress {
    /// Bytes the daemon holds.
    pub offset: u64,
    /// Set once the last byte is in: the file's CRC-64/NVME (hex), as the daemon
    /// computed it.
    pub crc64nvme: Option<String>,
    /// Set once the last byte is in, when the upload asked for it: the file's sha256.
    pub sha256: Option<String>,
}

impl Client {
    /// Registers an upload of `length` bytes to `dest`; returns its URL path
    /// (`/v1/sandboxes/{id}/uploads/{upload}`), to keep for resuming.
    pub async fn create_upload(
        &self,
        id: &str,
        dest: &str,
        length: u64,
        mode: Option<u32>,
        mtime: Option<i64>,
    ) -> Result<String, Error> {
        let b64 = |text: &str| base64::engine::general_purpose::STANDARD.encode(text);
        let mut metadata = format!("path {}", b64(dest));
        if let Some(mode) = mode {
            metadata += &format!(",mode {}", b64(&format!("{mode:o}")));
        }
        if let Some(mtime) = mtime {
            metadata += &format!(",mtime {}", b64(&mtime.to_string()));
        }
        let response = send(
            self.request(Method::POST, &format!("/sandboxes/{id}/uploads"))
                .header(TUS.0, TUS.1)
                .header("Upload-Length", length.to_string())
                .header("Upload-Metadata", metadata),
        )
        .await?;
        crate::header_text(&response, "location")
            .ok_or_else(|| Error::Protocol("upload created without a Location".into()))
    }

    /// How many bytes of the upload at `url` the daemon holds; `None` when the upload is
    /// gone (finished, terminated or expired).
    pub async fn upload_offset(&self, url: &str) -> Result<Option<u64>, Error> {
        let response = self
            .idempotent(|| send(self.raw_request(Method::HEAD, url).header(TUS.0, TUS.1)))
            .await;
        match response {
            Ok(response) => response
                .headers()
                .get("upload-offset")
                .and_then(|v| v.to_str().ok()?.parse().ok())
                .map(Some)
                .ok_or_else(|| Error::Protocol("HEAD without Upload-Offset".into())),
            Err(Error::Api { status: 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Sends `body` (the bytes from `offset` on) to the upload at `url`.
    pub async fn upload_chunk(
        &self,
        url: &str,
        offset: u64,
        body: impl AsyncRead + Send + 'static,
    ) -> Result<UploadProgress, Error> {
        let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::with_capacity(
            body,
            crate::CHUNK,
        ));
        self.upload_body(url, offset, body).await
    }

    /// Sends `body` (the bytes from `offset` on, e.g. [`FileChunks`](crate::FileChunks)
    /// of a file sought to `offset`) to the upload at `url`.
    pub async fn upload_body(
        &self,
        url: &str,
        offset: u64,
        body: impl Into<reqwest::Body>,
    ) -> Result<UploadProgress, Error> {
        let response = send(
            self.raw_request(Method::PATCH, url)
                .header(TUS.0, TUS.1)
                .header("Content-Type", "application/offset+octet-stream")
                .header("Upload-Offset", offset.to_string())
                .body(body),
        )
        .await?;
        let header = |name: &str| crate::header_text(&response, name);
        Ok(UploadProgress {
            offset: header("upload-offset")
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| Error::Protocol("PATCH without Upload-Offset".into()))?,
            crc64nvme: header("x-airlock-crc64nvme"),
            sha256: header("x-airlock-sha256"),
        })
    }

    /// Abandons an upload.
    pub async fn terminate_upload(&self, url: &str) -> Result<(), Error> {
        send(self.raw_request(Method::DELETE, url).header(TUS.0, TUS.1))
            .await
            .map(drop)
    }
}
