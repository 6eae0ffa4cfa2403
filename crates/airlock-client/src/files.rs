//! The file routes: stat, list, mkdir, remove, rename, compose, streamed read and write,
//! append, batch-free single files. Bodies stream both ways; nothing is buffered whole.

use airlock_api::{ComposeFiles, FileEntry, FileList, FileMode, MakeDir, MoveFile, WriteResult};
use bytes::Bytes;
use futures_util::{Stream, TryStreamExt};
use reqwest::Method;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use crate::file_sink::FileSink;
use crate::{Client, Error, FileChunks, json, send};

/// Options of a whole-file write.
#[derive(Debug, Clone, Default)]
pub struct WriteOptions {
    /// Permission bits (`0644` when absent).
    pub mode: Option<u32>,
    /// Modification time, seconds since the epoch.
    pub mtime: Option<i64>,
    /// Make missing parent directories.
    pub parents: bool,
    /// Refuse (409) to replace an existing file.
    pub no_overwrite: bool,
    /// The sha256 (hex) the content must have; a mismatch commits nothing.
    pub sha256: Option<String>,
    /// The CRC-64/NVME (16 hex digits) the content must have; a mismatch commits nothing.
    pub crc64nvme: Option<String>,
    /// Have the daemon compute and report the SHA-256 too (it always reports the
    /// CRC-64/NVME).
    pub report_sha256: bool,
}

/// What a download's headers say about the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Download {
    /// Bytes written out.
    pub size: u64,
    /// Permission bits.
    pub mode: Option<u32>,
    /// Modification time, RFC 3339.
    pub mtime: Option<String>,
}

impl Client {
    pub(crate) fn files_route(&self, id: &str, route: &str) -> String {
        format!("/sandboxes/{id}/files{route}")
    }

    /// `GET /content` of `path`, retried while the daemon cannot be reached.
    async fn get_content(&self, id: &str, path: &str) -> Result<reqwest::Response, Error> {
        let route = self.files_route(id, "/content");
        self.idempotent(|| send(self.request(Method::GET, &route).query(&[("path", path)])))
            .await
    }

    /// Describes one path (a symlink is described, not followed).
    pub async fn stat(&self, id: &str, path: &str) -> Result<FileEntry, Error> {
        let route = self.files_route(id, "/stat");
        self.idempotent(|| json(self.request(Method::GET, &route).query(&[("path", path)])))
            .await
    }

    /// One page of a listing, `depth` levels deep; with `checksum`, every file's sha256
    /// too (the daemon reads each file for it).
    pub async fn list_page(
        &self,
        id: &str,
        path: &str,
        depth: u32,
        cursor: Option<&str>,
        checksum: bool,
    ) -> Result<FileList, Error> {
        let route = self.files_route(id, "");
        let depth = depth.to_string();
        let mut query = vec![
            ("path", path),
            ("depth", depth.as_str()),
            ("limit", "10000"),
        ];
        if checksum {
            query.push(("checksum", "true"));
        }
        if let Some(cursor) = cursor {
            query.push(("cursor", cursor));
        }
        self.idempotent(|| json(self.request(Method::GET, &route).query(&query)))
            .await
    }

    /// A whole listing, following the pages.
    pub async fn list_files(
        &self,
        id: &str,
        path: &str,
        depth: u32,
        checksum: bool,
    ) -> Result<Vec<FileEntry>, Error> {
        let mut entries = Vec::new();
        let mut cursor = None;
        loop {
            let page = self
                .list_page(id, path, depth, cursor.as_deref(), checksum)
                .await?;
            entries.extend(page.entries);
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => return Ok(entries),
            }
        }
    }

    /// Makes a directory and its parents.
    pub async fn mkdir(&self, id: &str, path: &str, mode: Option<u32>) -> Result<FileEntry, Error> {
        let body = MakeDir {
            path: path.to_owned(),
            mode: mode.map(FileMode),
            parents: Some(true),
        };
        json(
            self.request(Method::POST, &self.files_route(id, "/mkdir"))
                .json(&body),
        )
        .await
    }

    /// Removes a path; a directory needs `recursive`.
    pub async fn remove(&self, id: &str, path: &str, recursive: bool) -> Result<(), Error> {
        let route = self.files_route(id, "");
        let recursive = if recursive { "true" } else { "false" };
        self.idempotent(|| {
            send(
                self.request(Method::DELETE, &route)
                    .query(&[("path", path), ("recursive", recursive)]),
            )
        })
        .await
        .map(drop)
    }

    /// Renames `from` to `to`.
    pub async fn rename(
        &self,
        id: &str,
        from: &str,
        to: &str,
        overwrite: bool,
    ) -> Result<FileEntry, Error> {
        let body = MoveFile {
            from: from.to_owned(),
            to: to.to_owned(),
            overwrite: Some(overwrite),
        };
        json(
            self.request(Method::POST, &self.files_route(id, "/move"))
                .json(&body),
        )
        .await
    }

    /// Concatenates `sources` into `destination`, atomically.
    pub async fn compose(&self, id: &str, req: &ComposeFiles) -> Result<WriteResult, Error> {
        json(
            self.request(Method::POST, &self.files_route(id, "/compose"))
                .json(req),
        )
        .await
    }

    /// Streams `content` into `path`, committed atomically when complete.
    pub async fn write(
        &self,
        id: &str,
        path: &str,
        content: impl AsyncRead + Send + 'static,
        opts: &WriteOptions,
    ) -> Result<WriteResult, Error> {
        let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::with_capacity(
            content,
            crate::CHUNK,
        ));
        self.write_body(id, path, body, opts).await
    }

    /// Streams a local file, from its current offset, into `path`: the cheapest way to
    /// upload one. A large file over plain HTTP goes as a raw body the kernels move
    /// from file to socket and from socket to file (`crate::raw_body`); any other is
    /// read with one copy per byte on this side, its length sent up front (see
    /// [`FileChunks`]).
    pub async fn write_file(
        &self,
        id: &str,
        path: &str,
        file: std::fs::File,
        opts: &WriteOptions,
    ) -> Result<WriteResult, Error> {
        let url = self.content_put(id, path, opts).build()?.url().clone();
        let file = match crate::raw_body::write_file(self, &url, file).await? {
            Ok(written) => return Ok(written),
            Err(file) => file,
        };
        let chunks = FileChunks::new(file).map_err(Error::Local)?;
        self.write_body(id, path, chunks, opts).await
    }

    /// Sends `body` into `path`, committed atomically when complete: e.g. a file's
    /// [`FileChunks::watched`] by a progress bar.
    pub async fn write_body(
        &self,
        id: &str,
        path: &str,
        body: impl Into<reqwest::Body>,
        opts: &WriteOptions,
    ) -> Result<WriteResult, Error> {
        json(self.content_put(id, path, opts).body(body)).await
    }

    /// The `PUT /content` request for `path` with `opts`, before its body.
    fn content_put(&self, id: &str, path: &str, opts: &WriteOptions) -> reqwest::RequestBuilder {
        let mut query = vec![("path", path.to_owned())];
        if let Some(mode) = opts.mode {
            query.push(("mode", format!("{mode:o}")));
        }
        if let Some(mtime) = opts.mtime {
            query.push(("mtime", mtime.to_string()));
        }
        if opts.parents {
            query.push(("parents", "true".into()));
        }
        if opts.no_overwrite {
            query.push(("overwrite", "false".into()));
        }
        if let Some(sha) = &opts.sha256 {
            query.push(("sha256", sha.clone()));
        }
        if let Some(crc) = &opts.crc64nvme {
            query.push(("crc64nvme", crc.clone()));
        }
        if opts.report_sha256 {
            query.push(("checksum", "sha256".into()));
        }
        self.request(Method::PUT, &self.files_route(id, "/content"))
            .query(&query)
    }

    /// Appends `content` to `path` (made if missing).
    pub async fn append(
        &self,
        id: &str,
        path: &str,
        content: impl Into<reqwest::Body>,
    ) -> Result<WriteResult, Error> {
        json(
            self.request(Method::POST, &self.files_route(id, "/content"))
                .query(&[("path", path), ("append", "true")])
                .body(content),
        )
        .await
    }

    /// The file's bytes as a stream of chunks.
    pub async fn read(
        &self,
        id: &str,
        path: &str,
    ) -> Result<impl Stream<Item = Result<Bytes, Error>> + use<>, Error> {
        let response = self.get_content(id, path).await?;
        Ok(response.bytes_stream().map_err(Error::from))
    }

    /// Streams the file into `out`; returns what its headers said.
    pub async fn read_to(
        &self,
        id: &str,
        path: &str,
        out: &mut (impl AsyncWrite + Unpin),
    ) -> Result<Download, Error> {
        let response = self.get_content(id, path).await?;
        let (mode, mtime) = described(|name| crate::header_text(&response, name));
        let size = copy_stream(response.bytes_stream().map_err(Error::from), out).await?;
        Ok(Download { size, mode, mtime })
    }

    /// Downloads `path` into a local file at its current offset: the cheap way to save one.
    /// Over plain HTTP the kernel moves the body from the socket into the file
    /// ([`crate::spliced`]); otherwise the response's chunks are written as they arrived,
    /// by one thread that gathers what has queued into one `writev` (tokio's `File` copies
    /// each chunk again first).
    pub async fn read_to_file(
        &self,
        id: &str,
        path: &str,
        file: std::fs::File,
    ) -> Result<Download, Error> {
        self.read_to_file_watched(id, path, file, |_| {}).await
    }

    /// The same, telling `seen` the size of each chunk as it arrives (a progress bar).
    pub async fn read_to_file_watched(
        &self,
        id: &str,
        path: &str,
        file: std::fs::File,
        mut seen: impl FnMut(usize) + Send,
    ) -> Result<Download, Error> {
        let file = match self.content_url(id, path) {
            Some(url) => match crate::spliced::read_to_file(self, &url, file, &mut seen).await? {
                Ok(done) => return Ok(done),
                Err(file) => file,
            },
            None => file,
        };
        let response = self.get_content(id, path).await?;
        let (mode, mtime) = described(|name| crate::header_text(&response, name));
        let mut stream = std::pin::pin!(response.bytes_stream().map_err(Error::from));
        let mut sink = FileSink::new(file);
        let mut size = 0;
        while let Some(chunk) = next_within_idle(&mut stream).await? {
            size += chunk.len() as u64;
            seen(chunk.len());
            sink.send(chunk).await.map_err(Error::Local)?;
        }
        sink.finish().await.map_err(Error::Local)?;
        Ok(Download { size, mode, mtime })
    }
}

/// The mode and mtime a download's headers give.
pub(crate) fn described(header: impl Fn(&str) -> Option<String>) -> (Option<u32>, Option<String>) {
    let mode = header("x-airlock-mode").and_then(|m| u32::from_str_radix(&m, 8).ok());
    (mode, header("x-airlock-mtime"))
}

impl Client {
    /// The URL of `GET /content` of `path` in sandbox `id`, its query encoded as reqwest
    /// encodes the one it sends for [`Client::read_to_file`]'s other path.
    fn content_url(&self, id: &str, path: &str) -> Option<reqwest::Url> {
        let route = self.files_route(id, "/content");
        let mut url = reqwest::Url::parse(&format!("{}/v1{route}", self.base)).ok()?;
        url.query_pairs_mut().append_pair("path", path);
        Some(url)
    }
}

/// The next chunk, or an error if the daemon sends nothing for [`crate::IDLE_TIMEOUT`].
async fn next_within_idle(
    stream: &mut (impl Stream<Item = Result<Bytes, Error>> + Unpin),
) -> Result<Option<Bytes>, Error> {
    tokio::time::timeout(crate::IDLE_TIMEOUT, stream.try_next())
        .await
        .map_err(|_| crate::stalled())?
}

/// Writes every chunk of `stream` to `out`; returns the byte count.
pub(crate) async fn copy_stream(
    stream: impl Stream<Item = Result<Bytes, Error>>,
    out: &mut (impl AsyncWrite + Unpin),
) -> Result<u64, Error> {
    let mut stream = std::pin::pin!(stream);
    let mut size = 0;
    while let Some(chunk) = next_within_idle(&mut stream).await? {
        out.write_all(&chunk).await.map_err(Error::Local)?;
        size += chunk.len() as u64;
    }
    out.flush().await.map_err(Error::Local)?;
    Ok(size)
}
