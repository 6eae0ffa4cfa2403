//! Directory trees as tar streams, both ways, optionally zstd-compressed.

use std::io::Read;

use airlock_api::{ArchiveResult, SkippedEntry};
use airlock_fs::{FileOwner, Mtimes, UnpackLimits, Unpacking};

use super::files::parse;
use super::{Service, blocking};
use crate::ApiError;
use crate::audit::Counted;
use crate::body::{BodyPump, ByteStream};
use crate::caps::Work;
use crate::packed_stream::PackedStream;
use crate::{Need, Principal};

/// Buffer between the packing thread and the response.
const ARCHIVE_PIPE: usize = 256 * 1024;
/// zstd level for downloads: fast, and still a good ratio on source trees.
const ZSTD_LEVEL: i32 = 3;
/// Largest zstd window accepted on upload (2^24 = 16 MiB), so a crafted frame cannot make
/// the daemon reserve gigabytes. `zstd -19` stays within it; `--long` frames are refused.
const ZSTD_WINDOW_LOG_MAX: u32 = 24;
/// The magic number that starts every zstd frame.
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// Most entries one `archive_paths` may name.
const MAX_CHOSEN: usize = 100_000;

/// An archive as it is read: a stream of tar (or tar.zst) bytes.
pub type TarStream = Counted<PackedStream>;

/// How a tree travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveFormat {
    /// Plain tar.
    Tar,
    /// tar compressed with zstd.
    TarZst,
}

impl ArchiveFormat {
    /// `tar` or `tar.zst` (also `tar+zstd`, `tzst`).
    pub fn parse(text: &str) -> Result<Self, ApiError> {
        match text {
            "tar" => Ok(Self::Tar),
            "tar.zst" | "tar+zstd" | "tzst" => Ok(Self::TarZst),
            other => Err(ApiError::bad_request(format!(
                "format {other:?} is not tar or tar.zst"
            ))),
        }
    }

    /// The media type of a download.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Tar => "application/x-tar",
            Self::TarZst => "application/zstd",
        }
    }
}

impl Service {
    /// The tree under `path` as a tar stream, packed on a blocking thread as it is read.
    pub async fn archive(
        &self,
        caller: &Principal,
        id: &str,
        path: &str,
        format: Option<ArchiveFormat>,
    ) -> Result<TarStream, ApiError> {
        let audit = self.audit(caller, "archive.download", Some(id)).path(path);
        let packed = self.packed(caller, id, path, format, |root, dir, sink| {
            root.pack(dir, sink).map(drop)
        });
        match packed.await {
            Ok(stream) => Ok(Counted::new(stream, audit).in_flight(self.metrics.transfer())),
            Err(err) => audit.done(Err(err)),
        }
    }

    /// The chosen entries under `path` (paths relative to it) as one tar stream: what a
    /// mirror pulls back when only some files changed, in one request instead of one per
    /// file. A directory named alone comes without its contents.
    pub async fn archive_paths(
        &self,
        caller: &Principal,
        id: &str,
        path: &str,
        paths: Vec<String>,
        format: Option<ArchiveFormat>,
    ) -> Result<TarStream, ApiError> {
        if paths.is_empty() || paths.len() > MAX_CHOSEN {
            return Err(ApiError::bad_request(format!(
                "name 1 to {MAX_CHOSEN} paths to pack"
            )));
        }
        // Every name is checked before the answer starts, so a bad one is a 400, not a
        // stream cut short.
        let dir = parse(path)?;
        for rel in &paths {
            let full = parse(&format!("{dir}/{rel}"))?;
            if !full.starts_with(&dir) || full == dir || rel.starts_with('/') {
                return Err(ApiError::bad_request(format!(
                    "{rel:?} names no entry below {dir}"
                )));
            }
        }
        let audit = self.audit(caller, "archive.download", Some(id)).path(path);
        let packed = self.packed(caller, id, path, format, move |root, dir, sink| {
            root.pack_paths(dir, &paths, sink).map(drop)
        });
        match packed.await {
            Ok(stream) => Ok(Counted::new(stream, audit).in_flight(self.metrics.transfer())),
            Err(err) => audit.done(Err(err)),
        }
    }

    /// Checks `path` is a directory, then streams what `pack` writes, compressed if asked.
    async fn packed(
        &self,
        caller: &Principal,
        id: &str,
        path: &str,
        format: Option<ArchiveFormat>,
        pack: impl FnOnce(
            &dyn airlock_fs::SandboxFs,
            &airlock_fs::SandboxPath,
            &mut dyn std::io::Write,
        ) -> Result<(), airlock_fs::FsError>
        + Send
        + 'static,
    ) -> Result<PackedStream, ApiError> {
        let path = parse(path)?;
        let format = format.unwrap_or(ArchiveFormat::Tar);
        let root = self.root_of(caller, id, Need::Read)?;
        // Refuse a missing or non-directory path with a clean 4xx before streaming starts.
        let (root, path) = blocking(move || {
            root.require_dir(&path)?;
            Ok::<_, airlock_fs::FsError>((root, path))
        })
        .await??;
        let (reader, writer) = tokio::io::duplex(ARCHIVE_PIPE);
        let (told, outcome) = tokio::sync::oneshot::channel();
        let runtime = tokio::runtime::Handle::current();
        tokio::task::spawn_blocking(move || {
            let mut sink = std::io::BufWriter::with_capacity(
                ARCHIVE_PIPE,
                tokio_util::io::SyncIoBridge::new_with_handle(writer, runtime),
            );
            let packed = match format {
                ArchiveFormat::Tar => pack(&*root, &path, &mut sink),
                ArchiveFormat::TarZst => zstd::stream::write::Encoder::new(sink, ZSTD_LEVEL)
                    .map_err(|e| io_error(&path, e))
                    .and_then(|mut encoder| {
                        pack(&*root, &path, &mut encoder)?;
                        encoder.finish().map(drop).map_err(|e| io_error(&path, e))
                    }),
            };
            if let Err(err) = &packed {
                // No tar trailer was written (`WholeTar`), and the stream ends
                // with this error, so no client takes what came for the whole tree.
                tracing::warn!(%path, %err, "archive ended early");
            }
            let _ = told.send(packed);
        });
        let stream = PackedStream::new(
            tokio_util::io::ReaderStream::with_capacity(reader, ARCHIVE_PIPE),
            outcome,
        );
        Ok(stream.started().await?)
    }

    /// Extracts a tar stream (plain or zstd; `None` tells by the first bytes) into `path`,
    /// all or nothing.
    pub async fn extract_archive(
        &self,
        caller: &Principal,
        id: &str,
        upload: ArchiveUpload,
        body: ByteStream,
    ) -> Result<ArchiveResult, ApiError> {
        let audit = self
            .audit(caller, "archive.upload", Some(id))
            .path(&upload.path);
        let result = async {
            let dir = parse(&upload.path)?;
            let how = upload.unpacking();
            let format = upload.format;
            let root = self.root_of(caller, id, Need::Write)?;
            let _slot = self.slot(id, Work::Upload)?;
            let (reader, pump) = BodyPump::new(body);
            let outcome = blocking(move || {
                let (format, mut body) = sniff(format, reader).map_err(|e| io_error(&dir, e))?;
                let report = match format {
                    ArchiveFormat::Tar => root.unpack(&dir, &mut body, how)?,
                    ArchiveFormat::TarZst => {
                        let mut decoder = zstd::stream::read::Decoder::new(body)
                            .map_err(|e| io_error(&dir, e))?;
                        decoder
                            .window_log_max(ZSTD_WINDOW_LOG_MAX)
                            .map_err(|e| io_error(&dir, e))?;
                        root.unpack(&dir, &mut decoder, how)?
                    }
                };
                Ok(ArchiveResult {
                    path: dir.to_string(),
                    entries: report.entries,
                    files: report.files,
                    dirs: report.dirs,
                    symlinks: report.symlinks,
                    hardlinks: report.hardlinks,
                    bytes: report.bytes,
                    skipped: report
                        .skipped
                        .into_iter()
                        .map(|s| SkippedEntry {
                            path: s.path,
                            reason: s.reason.clone().into_owned(),
                        })
                        .collect(),
                })
            })
            .await;
            pump.finish().await;
            outcome?
        }
        .await;
        if result.is_ok() {
            self.metrics.upload_committed();
        }
        audit.done(result)
    }
}

/// An archive upload as the client describes it.
#[derive(Debug, Clone, Default)]
pub struct ArchiveUpload {
    /// The directory to extract into.
    pub path: String,
    /// `None`: told by the stream's first bytes.
    pub format: Option<ArchiveFormat>,
    /// Lowers the daemon's entry limit; never raises it.
    pub max_entries: Option<u64>,
    /// Lowers the daemon's byte limit; never raises it.
    pub max_bytes: Option<u64>,
    /// `Some(false)`: entries get the time they are written, not the archive's mtimes
    /// (what `cp` without `-p` does). Unset keeps the archive's.
    pub mtimes: Option<bool>,
}

impl ArchiveUpload {
    /// Entries for the sandbox's user, within the daemon's limits lowered where the client
    /// asked, with the mtimes the client asked for.
    fn unpacking(&self) -> Unpacking {
        Unpacking {
            owner: FileOwner::SANDBOX_USER,
            limits: self.limits(),
            mtimes: match self.mtimes {
                Some(false) => Mtimes::Now,
                Some(true) | None => Mtimes::FromArchive,
            },
        }
    }

    /// The daemon's limits, lowered where the client asked.
    fn limits(&self) -> UnpackLimits {
        let most = UnpackLimits::default();
        UnpackLimits {
            max_entries: self
                .max_entries
                .map_or(most.max_entries, |n| n.min(most.max_entries)),
            max_bytes: self
                .max_bytes
                .map_or(most.max_bytes, |n| n.min(most.max_bytes)),
        }
    }
}

/// The format named, or the one the stream starts like; the peeked bytes are put back.
fn sniff(
    format: Option<ArchiveFormat>,
    mut body: impl Read,
) -> std::io::Result<(ArchiveFormat, impl Read)> {
    let mut head = [0u8; 4];
    let mut got = 0;
    if format.is_none() {
        while got < head.len() {
            match body.read(&mut head[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
    let format = format.unwrap_or(if head == ZSTD_MAGIC {
        ArchiveFormat::TarZst
    } else {
        ArchiveFormat::Tar
    });
    Ok((
        format,
        std::io::Cursor::new(head).take(got as u64).chain(body),
    ))
}

fn io_error(path: &airlock_fs::SandboxPath, err: std::io::Error) -> airlock_fs::FsError {
    airlock_fs::FsError::Io {
        path: path.to_string(),
        source: err,
    }
}
