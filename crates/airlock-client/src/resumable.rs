//! Resumable uploads over the daemon's tus 1.0 routes: create an upload, learn where it
//! stands, send the rest. A client that dies mid-way asks where the upload stands and
//! continues from there.

use base64::Engine as _;
use reqwest::Method;
use tokio::io::AsyncRead;

use crate::raw_body::{self, Feed};
use crate::{Client, Error, FileChunks, send};

const TUS: (&str, &str) = ("Tus-Resumable", "1.0.0");
const CHUNK_TYPE: &str = "application/offset+octet-stream";

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

    /// Sends the local `file` from its position (which must be `offset`) to its end to
    /// the upload at `url`, showing each piece to `seen` first (a progress bar, a
    /// checksum). Over plain HTTP, 8 MiB or more go as a raw body, which the daemon
    /// moves into the partial file in the kernel; anything else as
    /// [`FileChunks`](crate::FileChunks).
    pub async fn upload_file(
        &self,
        url: &str,
        offset: u64,
        file: std::fs::File,
        seen: impl FnMut(&[u8]) + Send + 'static,
    ) -> Result<UploadProgress, Error> {
        let length = crate::file_chunks::remaining(&file).map_err(Error::Local)?;
        let full = self.raw_request(Method::PATCH, url).build()?.url().clone();
        let extra = format!(
            "tus-resumable: {}\r\ncontent-type: {CHUNK_TYPE}\r\nupload-offset: {offset}\r\n",
            TUS.1
        );
        if let Some(upgraded) = raw_body::upgrade(self, "PATCH", &full, length, &extra).await? {
            let feed = Feed::Watched(Box::new(seen));
            let answer = upgraded.send(self, file, length, feed).await?;
            return progress(|name| answer.header(name), "the raw PATCH's answer");
        }
        let chunks = FileChunks::watched(file, seen).map_err(Error::Local)?;
        self.upload_body(url, offset, chunks).await
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
                .header("Content-Type", CHUNK_TYPE)
                .header("Upload-Offset", offset.to_string())
                .body(body),
        )
        .await?;
        progress(|name| crate::header_text(&response, name), "PATCH")
    }

    /// Abandons an upload.
    pub async fn terminate_upload(&self, url: &str) -> Result<(), Error> {
        send(self.raw_request(Method::DELETE, url).header(TUS.0, TUS.1))
            .await
            .map(drop)
    }
}

/// Where an upload stands, from an append's answer's headers.
fn progress(header: impl Fn(&str) -> Option<String>, what: &str) -> Result<UploadProgress, Error> {
    Ok(UploadProgress {
        offset: header("upload-offset")
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| Error::Protocol(format!("{what} without Upload-Offset")))?,
        crc64nvme: header("x-airlock-crc64nvme"),
        sha256: header("x-airlock-sha256"),
    })
}
