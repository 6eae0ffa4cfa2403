//! What the daemon hands a helper process. It travels as JSON in an inherited memfd, so
//! neither argv nor environment size limits apply; the helper's arguments name that
//! descriptor and, for the exec helper, the one holding the sandbox init's pidfd.

use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::PathBuf;

use serde::{Deserialize, Serialize, de::DeserializeOwned};

/// How to start a sandbox's init.
#[derive(Debug, Serialize, Deserialize)]
pub struct InitSpec {
    /// The sandbox's root view, mounted in the daemon's namespace.
    pub view: PathBuf,
    /// Host name inside.
    pub hostname: String,
    /// `cgroup.procs` files to join before anything else.
    pub cgroup_procs: Vec<PathBuf>,
    /// Size of the sandbox's /dev/shm, in MiB.
    pub shm_mb: u64,
}

/// How to run one command in a running sandbox.
#[derive(Debug, Serialize, Deserialize)]
pub struct ExecSpec {
    /// `cgroup.procs` files to join (the exec's own leaf groups).
    pub cgroup_procs: Vec<PathBuf>,
    /// The command.
    pub argv: Vec<String>,
    /// Its whole environment.
    pub env: Vec<(String, String)>,
    /// Working directory inside the sandbox.
    pub cwd: String,
    /// Directories the command may write (Landlock).
    pub writable: Vec<String>,
    /// User and group ids it runs as.
    pub uid: u32,
    /// See `uid`.
    pub gid: u32,
    /// Stdin is a terminal to claim as the command's controlling terminal.
    #[serde(default)]
    pub terminal: bool,
}

/// Reads the spec from the descriptor named by this helper's first argument after the
/// subcommand, takes the init's pidfd named by the second when there is one, and closes
/// every other inherited descriptor above stdio: a helper spawned at the same moment as
/// another inherits that one's descriptors too, and nothing of the daemon's may reach
/// the sandbox. Call first, before the helper does anything else.
pub fn read_spec<T: DeserializeOwned>() -> std::io::Result<(T, Option<OwnedFd>)> {
    let (spec_fd, init_fd) = descriptors(std::env::args().skip(2))?;
    read_spec_at(spec_fd, init_fd)
}

/// [`read_spec`] from descriptors already known: those the daemon passed in the helper's
/// arguments, or those the forker received for it.
pub fn read_spec_at<T: DeserializeOwned>(
    spec_fd: RawFd,
    init_fd: Option<RawFd>,
) -> std::io::Result<(T, Option<OwnedFd>)> {
    // SAFETY: the daemon (or the forker) left these descriptors open for us under these
    // numbers, and nothing else in this process owns them.
    let (mut file, init) = unsafe {
        (
            std::fs::File::from_raw_fd(spec_fd),
            init_fd.map(|fd| OwnedFd::from_raw_fd(fd)),
        )
    };
    let mut text = String::new();
    file.read_to_string(&mut text)?;
    drop(file);
    close_inherited_except(init.as_ref().map(AsRawFd::as_raw_fd));
    Ok((
        serde_json::from_str(&text).map_err(std::io::Error::other)?,
        init,
    ))
}

/// The spec's descriptor and the init's, from the helper's arguments: one or two distinct
/// numbers, none of them stdio.
fn descriptors(args: impl Iterator<Item = String>) -> std::io::Result<(RawFd, Option<RawFd>)> {
    let numbers = args
        .map(|a| a.parse::<RawFd>().ok().filter(|fd| *fd > 2))
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| std::io::Error::other("helper arguments are not descriptor numbers"))?;
    match numbers[..] {
        [spec] => Ok((spec, None)),
        [spec, init] if init != spec => Ok((spec, Some(init))),
        _ => Err(std::io::Error::other(
            "a helper takes one or two descriptors",
        )),
    }
}

/// Closes every descriptor from 3 up but `keep`.
pub(crate) fn close_inherited_except(keep: Option<RawFd>) {
    let close_range = |first: RawFd, last: u32| {
        // SAFETY: integer-only call; closing descriptors this process owns exclusively.
        unsafe { libc::syscall(libc::SYS_close_range, first as u32, last, 0u32) };
    };
    match keep {
        Some(fd) => {
            if fd > 3 {
                close_range(3, (fd - 1) as u32);
            }
            close_range(fd + 1, u32::MAX);
        }
        None => close_range(3, u32::MAX),
    }
}

/// Writes ourselves into each `cgroup.procs` file.
pub fn join_cgroups(files: &[PathBuf]) -> std::io::Result<()> {
    let pid = std::process::id().to_string();
    for file in files {
        std::fs::write(file, &pid).map_err(|e| {
            std::io::Error::new(e.kind(), format!("joining {}: {e}", file.display()))
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::descriptors;

    fn parse(args: &[&str]) -> Option<(i32, Option<i32>)> {
        descriptors(args.iter().map(|a| a.to_string())).ok()
    }

    #[test]
    fn takes_one_or_two_distinct_descriptors_above_stdio() {
        assert_eq!(parse(&["7"]), Some((7, None)));
        assert_eq!(parse(&["7", "12"]), Some((7, Some(12))));
        for bad in [
            &[][..],
            &["7", "7"],
            &["0"],
            &["7", "2"],
            &["-1"],
            &["7", "8", "9"],
            &["7x"],
            &[" 7"],
        ] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }
}
