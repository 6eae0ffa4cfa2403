//! Keeping the event loop off the disk. `sendfile` reads a file's pages itself, and when
//! they are not in the page cache it waits for the disk, stalling every connection on
//! that worker thread. So before a window of a file is sent, its first and last pages are
//! probed without waiting (a one-byte `preadv2` with `RWF_NOWAIT`, which fails rather
//! than wait), and a window not in memory is read into the page cache on a blocking
//! thread first, by `sendfile` into `/dev/null`, which fetches the pages without copying
//! them. A window whose ends are cached but whose middle is not (a file partly evicted)
//! still waits on the worker; that is rare and bounded by one window.

use std::fs::File;
use std::io::IoSliceMut;
use std::sync::{Arc, LazyLock};

use rustix::io::ReadWriteFlags;

/// `/dev/null`, opened once, for [`read_in`].
static NULL: LazyLock<std::io::Result<File>> =
    LazyLock::new(|| File::options().write(true).open("/dev/null"));

/// Returns once bytes `[offset, offset + len)` of `file` are (very likely) in the page
/// cache.
pub async fn load(file: &Arc<File>, offset: u64, len: usize) {
    if len == 0 || cached(file, offset, len) {
        return;
    }
    let held = file.clone();
    // A failure here is the send's to report: it reads the same pages.
    let _ = tokio::task::spawn_blocking(move || read_in(&held, offset, len)).await;
}

/// Whether the window's first and last bytes can be read without waiting.
fn cached(file: &File, offset: u64, len: usize) -> bool {
    let last = offset + len as u64 - 1;
    [offset, last].into_iter().all(|at| {
        let mut byte = [0u8; 1];
        let mut bufs = [IoSliceMut::new(&mut byte)];
        matches!(
            rustix::io::preadv2(file, &mut bufs, at, ReadWriteFlags::NOWAIT),
            Ok(1)
        )
    })
}

/// Reads the window into the page cache, waiting for the disk.
fn read_in(file: &File, offset: u64, len: usize) {
    let Ok(null) = &*NULL else { return };
    let end = offset + len as u64;
    let mut at = offset;
    while at < end {
        let left = (end - at) as usize;
        match rustix::fs::sendfile(null, file, Some(&mut at), left) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn file_of(len: usize) -> (tempfile::TempDir, Arc<File>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let mut file = File::create(&path).unwrap();
        file.write_all(&vec![7u8; len]).unwrap();
        (dir, Arc::new(File::open(&path).unwrap()))
    }

    /// The file just written is in the page cache; dropping it from the cache (clean
    /// pages on ext4 go at `POSIX_FADV_DONTNEED`) makes the probe fail, and `load`
    /// brings it back.
    #[tokio::test]
    async fn a_window_out_of_memory_is_read_in() {
        let (_dir, file) = file_of(1 << 20);
        assert!(cached(&file, 0, 1 << 20));
        file.sync_all().unwrap();
        rustix::fs::fadvise(&*file, 0, None, rustix::fs::Advice::DontNeed).unwrap();
        assert!(!cached(&file, 0, 1 << 20));
        load(&file, 0, 1 << 20).await;
        assert!(cached(&file, 0, 1 << 20));
    }

    /// A window past the end of the file is never "cached": the send reports it short.
    #[test]
    fn a_window_past_the_end_is_not_cached() {
        let (_dir, file) = file_of(4096);
        assert!(!cached(&file, 0, 8192));
        read_in(&file, 0, 8192);
    }
}
