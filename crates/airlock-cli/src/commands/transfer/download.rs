//! Sandbox → local: one file (streamed into a temporary file, then renamed) or a tree (one
//! tar stream, extracted with the same confined engine the daemon uses, so a hostile tree
//! in the sandbox cannot reach outside the local destination).

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use airlock_client::{ArchiveFormat, Client};
use anyhow::Context;

use super::progress::{ProgressWriter, bar};

/// What a download did.
#[derive(Debug, serde::Serialize)]
pub struct Downloaded {
    pub destination: String,
    pub files: u64,
    pub bytes: u64,
    pub problems: Vec<String>,
}

/// Downloads one sandbox file to the local path `dest`, atomically.
pub async fn file(
    client: &Client,
    id: &str,
    src: &str,
    size: u64,
    dest: &Path,
    keep_mtime: bool,
    quiet: bool,
) -> anyhow::Result<Downloaded> {
    let dir = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let temp = tempfile_in(&dir)?;
    let progress = bar(size, quiet, src);
    let counted = progress.clone();
    // Not fsynced before the rename, like `cp` and the daemon's own writes: a power loss
    // soon after may lose it; a crash of this process or the daemon cannot.
    let got = client
        .read_to_file_watched(id, src, temp.reopen()?, move |n| counted.inc(n as u64))
        .await?;
    progress.finish_and_clear();
    if let Some(mode) = got.mode {
        std::fs::set_permissions(temp.path(), std::fs::Permissions::from_mode(mode & 0o777))?;
    }
    if keep_mtime
        && let Some(mtime) = got
            .mtime
            .as_deref()
            .and_then(|m| humantime::parse_rfc3339(m).ok())
    {
        temp.as_file().set_modified(mtime)?;
    }
    temp.persist(dest)
        .with_context(|| format!("writing {}", dest.display()))?;
    Ok(Downloaded {
        destination: dest.display().to_string(),
        files: 1,
        bytes: got.size,
        problems: Vec::new(),
    })
}

/// Downloads the sandbox tree under `src` into the local directory `dest` (made if
/// missing), or with `only`, just those entries of it (paths relative to `src`), in one
/// stream either way. Modes and mtimes come as they are in the sandbox. All or nothing: a
/// download that breaks off leaves `dest` as it was (and not made).
pub async fn tree(
    client: &Client,
    id: &str,
    src: &str,
    dest: &Path,
    quiet: bool,
    only: Option<&[String]>,
) -> anyhow::Result<Downloaded> {
    let made = !dest.exists();
    std::fs::create_dir_all(dest).with_context(|| format!("making {}", dest.display()))?;
    let fetched: anyhow::Result<Downloaded> = async {
        let root = airlock_fs::Root::open(dest)?;
        let (reader, mut writer) = tokio::io::duplex(256 * 1024);
        let runtime = tokio::runtime::Handle::current();
        let me = airlock_fs::FileOwner {
            uid: rustix::process::geteuid().as_raw(),
            gid: rustix::process::getegid().as_raw(),
        };
        let whole = Arc::new(AtomicBool::new(false));
        let input = EndsOnlyWhenWhole {
            inner: tokio_util::io::SyncIoBridge::new_with_handle(reader, runtime),
            whole: Arc::clone(&whole),
        };
        let unpack = tokio::task::spawn_blocking(move || {
            let top = airlock_fs::SandboxPath::parse("/")?;
            root.unpack(&top, input, airlock_fs::Unpacking::by(me))
        });
        let progress = bar(0, quiet, src);
        let mut counted = ProgressWriter::new(&mut writer, progress.clone());
        let got = match only {
            Some(paths) => client.download_paths(id, src, paths, &mut counted).await,
            None => {
                client
                    .download_archive(id, src, ArchiveFormat::Tar, &mut counted)
                    .await
            }
        };
        drop(counted);
        // Said before the stream ends (the writer's drop), so the extraction reads it then.
        whole.store(got.is_ok(), Ordering::Release);
        drop(writer);
        progress.finish_and_clear();
        let unpacked = unpack.await?;
        got?;
        let report = unpacked.with_context(|| format!("extracting into {}", dest.display()))?;
        Ok(Downloaded {
            destination: dest.display().to_string(),
            files: report.files,
            bytes: report.bytes,
            problems: report
                .skipped
                .iter()
                .map(|s| format!("{}: {}", s.path, s.reason))
                .collect(),
        })
    }
    .await;
    if fetched.is_err() && made {
        // Only if it is still empty: nothing of the tree was merged into it.
        let _ = std::fs::remove_dir(dest);
    }
    fetched
}

/// The download's bytes as the extraction reads them, whose end is an error unless the
/// download completed. A tar cut off between two entries reads like a whole one, so
/// without this a broken download would be merged into the destination as if complete.
struct EndsOnlyWhenWhole<R> {
    inner: R,
    whole: Arc<AtomicBool>,
}

impl<R: Read> Read for EndsOnlyWhenWhole<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && !buf.is_empty() && !self.whole.load(Ordering::Acquire) {
            return Err(std::io::Error::other("the download broke off"));
        }
        Ok(n)
    }
}

fn tempfile_in(dir: &Path) -> anyhow::Result<tempfile::NamedTempFile> {
    tempfile::Builder::new()
        .prefix(".airlock-cp-")
        .tempfile_in(dir)
        .with_context(|| format!("writing into {}", dir.display()))
}
