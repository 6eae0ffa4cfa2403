//! Directory trees as tar streams, batch writes, and watching.

use airlock_api::{ArchiveResult, BatchResult, WatchEvent};
use futures_util::{Stream, TryStreamExt};
use reqwest::Method;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::files::copy_stream;
use crate::{Client, Error, json, ndjson_lines, send};

/// How a tree travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ArchiveFormat {
    /// Plain tar.
    #[default]
    Tar,
    /// tar compressed with zstd.
    TarZst,
}

impl ArchiveFormat {
    fn name(self) -> &'static str {
        match self {
            Self::Tar => "tar",
            Self::TarZst => "tar.zst",
        }
    }
}

/// Whose modification times an uploaded tree's entries get.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mtimes {
    /// Each entry's, from the archive (as `tar x` does).
    #[default]
    FromArchive,
    /// The time the daemon writes each (as `cp` without `-p` does), which also spares it
    /// a system call an entry.
    Now,
}

/// One file of a batch write.
#[derive(Debug)]
pub struct BatchFile {
    /// Absolute destination in the sandbox.
    pub path: String,
    /// Its content, streamed.
    pub body: reqwest::Body,
    /// Permission bits (`0644` when absent).
    pub mode: Option<u32>,
}

impl Client {
    /// Writes many files in one multipart request, each atomically; one bad file does
    /// not stop the others (see each result).
    pub async fn write_batch(&self, id: &str, files: Vec<BatchFile>) -> Result<BatchResult, Error> {
        let mut form = reqwest::multipart::Form::new();
        for file in files {
            let mut part = reqwest::multipart::Part::stream(file.body).file_name(file.path);
            if let Some(mode) = file.mode {
                let mut headers = reqwest::header::HeaderMap::new();
                if let Ok(value) = format!("{mode:o}").parse() {
                    headers.insert("x-airlock-mode", value);
                }
                part = part.headers(headers);
            }
            form = form.part("file", part);
        }
        json(
            self.request(Method::POST, &self.files_route(id, "/batch"))
                .multipart(form),
        )
        .await
    }

    /// Extracts a tar stream into `dir` (made if missing), all or nothing.
    pub async fn upload_archive(
        &self,
        id: &str,
        dir: &str,
        tar: impl AsyncRead + Send + 'static,
        format: ArchiveFormat,
    ) -> Result<ArchiveResult, Error> {
        let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::with_capacity(
            tar,
            crate::CHUNK,
        ));
        self.upload_archive_body(id, dir, body, format, Mtimes::FromArchive)
            .await
    }

    /// The same, for a body of any kind (e.g. a [`written_body`](crate::written_body) a
    /// packing thread fills), with the entries' mtimes as `mtimes` says.
    pub async fn upload_archive_body(
        &self,
        id: &str,
        dir: &str,
        body: impl Into<reqwest::Body>,
        format: ArchiveFormat,
        mtimes: Mtimes,
    ) -> Result<ArchiveResult, Error> {
        let mut request = self
            .request(Method::PUT, &self.files_route(id, "/archive"))
            .query(&[("path", dir), ("format", format.name())]);
        if mtimes == Mtimes::Now {
            request = request.query(&[("mtimes", "false")]);
        }
        json(request.body(body)).await
    }

    /// Streams the tree under `dir` as a tar (or tar.zst) into `out`; returns its size.
    pub async fn download_archive(
        &self,
        id: &str,
        dir: &str,
        format: ArchiveFormat,
        out: &mut (impl AsyncWrite + Unpin),
    ) -> Result<u64, Error> {
        let route = self.files_route(id, "/archive");
        let response = self
            .idempotent(|| {
                send(
                    self.request(Method::GET, &route)
                        .query(&[("path", dir), ("format", format.name())]),
                )
            })
            .await?;
        copy_stream(response.bytes_stream().map_err(Error::from), out).await
    }

    /// Streams only the chosen entries under `dir` (paths relative to it; a directory
    /// comes without its contents) as one tar into `out`: what a mirror pulls back when
    /// some files changed. Returns its size.
    pub async fn download_paths(
        &self,
        id: &str,
        dir: &str,
        paths: &[String],
        out: &mut (impl AsyncWrite + Unpin),
    ) -> Result<u64, Error> {
        let route = self.files_route(id, "/archive");
        let body = airlock_api::PackPaths {
            path: dir.to_owned(),
            paths: paths.to_vec(),
            format: None,
        };
        let response = self
            .idempotent(|| send(self.request(Method::POST, &route).json(&body)))
            .await?;
        copy_stream(response.bytes_stream().map_err(Error::from), out).await
    }

    /// Changes under `dir` as they happen. The first event is `ready`: the watch is in
    /// place. `overflow` means events were lost and the tree should be rescanned.
    pub async fn watch(
        &self,
        id: &str,
        dir: &str,
        recursive: bool,
    ) -> Result<impl Stream<Item = Result<WatchEvent, Error>> + use<>, Error> {
        let recursive = if recursive { "true" } else { "false" };
        let response = send(
            self.request(Method::GET, &self.files_route(id, "/watch"))
                .query(&[("path", dir), ("recursive", recursive)]),
        )
        .await?;
        Ok(ndjson_lines(response))
    }
}
