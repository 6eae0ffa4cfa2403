//! Which binary runs the helpers. The daemon starts one for every sandbox start and every
//! command, and loading the whole 180 MB `airlock` binary for it (relocating it, faulting
//! its pages in) took 1.5 ms more than loading `airlock-helper`, which holds the helpers
//! alone. So the daemon runs `airlock-helper` from beside its own binary when it is there
//! and was built with it, and its own binary otherwise.
//!
//! Both are held open from the daemon's start, not looked up by path at each spawn: a
//! binary replaced on disk while the daemon runs (an upgrade) never pairs a new helper
//! with an old daemon.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

/// This compilation of the crate, which a helper prints when asked `IDENTITY`.
pub const BUILD: &str = env!("AIRLOCK_HELPER_BUILD");

/// Hidden subcommand that prints [`BUILD`].
pub const IDENTITY: &str = "__airlock-build";

/// The small helper's name, beside the daemon's binary.
const NAME: &str = "airlock-helper";

static CHOSEN: OnceLock<Option<OwnedFd>> = OnceLock::new();

/// Chooses the helper binary now (the daemon calls this as it starts); later calls keep
/// the first choice.
pub fn choose() {
    CHOSEN.get_or_init(|| {
        let beside = std::env::current_exe().ok()?.with_file_name(NAME);
        let held = hold(&beside)?;
        if same_build(&held) {
            tracing::debug!(path = %beside.display(), "helpers run from the small helper binary");
            Some(held)
        } else {
            tracing::warn!(
                path = %beside.display(),
                "this airlock-helper is from another build; running helpers from the daemon's own binary"
            );
            None
        }
    });
}

/// The path to execute a helper from.
pub fn program() -> String {
    choose();
    match CHOSEN.get().and_then(Option::as_ref) {
        Some(fd) => format!("/proc/self/fd/{}", fd.as_raw_fd()),
        // The daemon's binary even if the file on disk was replaced since.
        None => "/proc/self/exe".to_owned(),
    }
}

/// `path` held open for executing.
fn hold(path: &Path) -> Option<OwnedFd> {
    use rustix::fs::{Mode, OFlags};
    let opened = rustix::fs::open(path, OFlags::PATH | OFlags::CLOEXEC, Mode::empty()).ok()?;
    let stat = rustix::fs::fstat(&opened).ok()?;
    if rustix::fs::FileType::from_raw_mode(stat.st_mode) != rustix::fs::FileType::RegularFile {
        return None;
    }
    Some(opened)
}

/// Whether the held binary answers [`IDENTITY`] with this build's stamp.
fn same_build(held: &OwnedFd) -> bool {
    Command::new(format!("/proc/self/fd/{}", held.as_raw_fd()))
        .arg(IDENTITY)
        .env_clear()
        .output()
        .is_ok_and(|out| out.status.success() && out.stdout.trim_ascii() == BUILD.as_bytes())
}
