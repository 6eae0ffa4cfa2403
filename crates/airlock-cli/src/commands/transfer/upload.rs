//! Local → sandbox: one file (streamed, resumable when large) or a tree (one tar stream).

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use airlock_client::{ArchiveFormat, Client, FileChunks, Mtimes, WriteOptions, written_body};
use airlock_fs::{Checks, Hasher};
use anyhow::{Context, bail};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::local_tree::{Filter, Packed, Walked, walker, write_tar};
use super::progress::bar;
use super::resume_state::ResumeState;
use super::walk_ahead::walk_ahead;
use indicatif::ProgressBar;

/// Files larger than this go through a resumable upload.
const RESUMABLE_FROM: u64 = 8 << 20;

/// What an upload did, for `--json` and the summary line.
#[derive(Debug, serde::Serialize)]
pub struct Uploaded {
    pub destination: String,
    pub files: u64,
    pub bytes: u64,
    /// The file's CRC-64/NVME, as the daemon computed it (checked against the local
    /// file's for a resumable upload).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub crc64nvme: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resumed_from: Option<u64>,
    pub problems: Vec<String>,
}

/// Uploads one local file to `dest`. `keep_mtime` sends its mtime too.
pub async fn file(
    client: &Client,
    id: &str,
    local: &Path,
    dest: &str,
    keep_mtime: bool,
    quiet: bool,
) -> anyhow::Result<Uploaded> {
    let meta = std::fs::metadata(local).with_context(|| format!("reading {}", local.display()))?;
    let mode = meta.permissions().mode() & 0o777;
    let mtime = keep_mtime.then(|| meta.mtime());
    if meta.len() > RESUMABLE_FROM {
        return resumable(client, id, local, &meta, dest, mode, mtime, quiet).await;
    }
    let progress = bar(meta.len(), quiet, dest);
    let counted = progress.clone();
    let file = std::fs::File::open(local)?;
    let chunks = FileChunks::watched(file, move |chunk| counted.inc(chunk.len() as u64))?;
    let opts = WriteOptions {
        mode: Some(mode),
        mtime,
        parents: true,
        ..WriteOptions::default()
    };
    let written = client.write_body(id, dest, chunks, &opts).await?;
    progress.finish_and_clear();
    Ok(Uploaded {
        destination: dest.to_owned(),
        files: 1,
        bytes: written.entry.size,
        crc64nvme: Some(written.crc64nvme),
        resumed_from: None,
        problems: Vec::new(),
    })
}

/// A large file over the tus routes. The upload's URL is remembered locally, so running
/// the same copy again after an interruption continues where the daemon stopped receiving.
/// The file's CRC-64/NVME is computed on the way and must match the daemon's.
#[allow(clippy::too_many_arguments)]
async fn resumable(
    client: &Client,
    id: &str,
    local: &Path,
    meta: &std::fs::Metadata,
    dest: &str,
    mode: u32,
    mtime: Option<i64>,
    quiet: bool,
) -> anyhow::Result<Uploaded> {
    let state = ResumeState::for_upload(client.base_url(), id, local, dest, meta)?;
    // A remembered upload the daemon still knows resumes; anything else starts afresh.
    let known = match state.load() {
        Some(url) => client
            .upload_offset(&url)
            .await?
            .map(|offset| (url, offset)),
        None => None,
    };
    let resumed_from = known.as_ref().map(|(_, offset)| *offset);
    let (url, offset) = match known {
        Some(known) => known,
        None => (
            new_upload(client, id, dest, meta, mode, mtime, &state).await?,
            0,
        ),
    };
    // The bytes the daemon already has still count toward the local digest.
    let mut file = tokio::fs::File::open(local).await?;
    let mut hasher = Hasher::new(&Checks::default());
    let mut prefix = (&mut file).take(offset);
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = prefix.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    file.seek(std::io::SeekFrom::Start(offset)).await?;
    let progress = bar(meta.len(), quiet, dest);
    progress.set_position(offset);
    // The rest is hashed and counted on the thread that reads it.
    let (counted, digest) = (progress.clone(), Crc::new(hasher));
    let hashing = digest.clone();
    let watch = move |chunk: &[u8]| {
        counted.inc(chunk.len() as u64);
        hashing.update(chunk);
    };
    let done = client
        .upload_file(&url, offset, file.into_std().await, watch)
        .await?;
    progress.finish_and_clear();
    let local_crc = digest.finish();
    match done.crc64nvme {
        Some(remote) if remote == local_crc => {}
        Some(remote) => {
            bail!("{dest}: the daemon stored crc64nvme {remote}, the local file has {local_crc}")
        }
        None => bail!(
            "{dest}: the upload is not complete ({} of {} bytes); run the copy again",
            done.offset,
            meta.len()
        ),
    }
    state.clear();
    Ok(Uploaded {
        destination: dest.to_owned(),
        files: 1,
        bytes: meta.len(),
        crc64nvme: Some(local_crc),
        resumed_from,
        problems: Vec::new(),
    })
}

async fn new_upload(
    client: &Client,
    id: &str,
    dest: &str,
    meta: &std::fs::Metadata,
    mode: u32,
    mtime: Option<i64>,
    state: &ResumeState,
) -> anyhow::Result<String> {
    let url = client
        .create_upload(id, dest, meta.len(), Some(mode), mtime)
        .await?;
    state.save(&url)?;
    Ok(url)
}

/// Uploads the tree under `root` (selected by `filter`) into the sandbox directory `dir`,
/// as one tar stream packed while the tree is walked.
pub async fn tree(
    client: &Client,
    id: &str,
    root: &Path,
    dir: &str,
    filter: &Filter,
    keep_mtime: bool,
    quiet: bool,
) -> anyhow::Result<Uploaded> {
    let walk = walker(root, filter)?;
    // The total is not known until the walk ends; the bar's grows as it goes.
    let progress = bar(0, quiet, dir);
    let total = progress.clone();
    let entries = walk_ahead(walk, move |entry| total.inc_length(entry.size))?;
    let (result, packed) =
        send_entries(client, id, root, dir, entries, keep_mtime, progress).await?;
    let mut problems = packed.problems;
    problems.extend(
        result
            .skipped
            .iter()
            .map(|s| format!("{}: {}", s.path, s.reason)),
    );
    Ok(Uploaded {
        destination: dir.to_owned(),
        files: packed.files,
        bytes: packed.bytes,
        crc64nvme: None,
        resumed_from: None,
        problems,
    })
}

/// Streams the walked `entries` as one tar into `dir`, packed on a blocking thread
/// straight into the request body's chunks, counted on `progress`.
pub async fn send_entries(
    client: &Client,
    id: &str,
    root: &Path,
    dir: &str,
    entries: impl Iterator<Item = std::io::Result<Walked>> + Send + 'static,
    keep_mtime: bool,
    progress: ProgressBar,
) -> anyhow::Result<(airlock_api::ArchiveResult, Packed)> {
    let counted = progress.clone();
    let (mut writer, body) = written_body(move |n| counted.inc(n as u64));
    let root: PathBuf = root.to_path_buf();
    let packer = tokio::task::spawn_blocking(move || {
        match write_tar(&root, entries, &mut writer) {
            Ok(packed) => writer.finish().map(|()| packed),
            Err(e) => {
                // The daemon then sees a broken body and extracts nothing.
                writer.fail(std::io::Error::new(e.kind(), e.to_string()));
                Err(e)
            }
        }
    });
    // Without `-a`, the daemon leaves each entry at the time it writes it, as `cp`
    // does, rather than set the mtime its header carries: a system call a file less.
    let mtimes = if keep_mtime {
        Mtimes::FromArchive
    } else {
        Mtimes::Now
    };
    let sent = client
        .upload_archive_body(id, dir, body, ArchiveFormat::Tar, mtimes)
        .await;
    progress.finish_and_clear();
    let packed = packer.await?;
    let result = sent?;
    let packed = packed.context("reading the local tree")?;
    Ok((result, packed))
}

/// A checksum fed from the reading thread and read once the upload is done.
#[derive(Clone)]
struct Crc(std::sync::Arc<std::sync::Mutex<Option<Hasher>>>);

impl Crc {
    fn new(hasher: Hasher) -> Self {
        Self(std::sync::Arc::new(std::sync::Mutex::new(Some(hasher))))
    }

    fn update(&self, chunk: &[u8]) {
        if let Ok(mut hasher) = self.0.lock()
            && let Some(hasher) = hasher.as_mut()
        {
            hasher.update(chunk);
        }
    }

    /// The CRC-64/NVME of everything seen, hex.
    fn finish(self) -> String {
        let hasher = self.0.lock().ok().and_then(|mut h| h.take());
        let hasher = hasher.unwrap_or_else(|| Hasher::new(&Checks::default()));
        hasher.finish().crc64nvme_hex()
    }
}
