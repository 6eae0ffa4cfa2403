//! Where the daemon lives when nobody says otherwise; shared by `airlock serve` and clients.

use std::path::PathBuf;

/// The port the daemon listens on when none is given.
pub const DEFAULT_PORT: u16 = 7711;

/// `AIRLOCK_HOME`, else `/var/lib/airlock` for root and `~/.local/share/airlock` otherwise.
pub fn default_home() -> PathBuf {
    if let Some(home) = std::env::var_os("AIRLOCK_HOME") {
        return PathBuf::from(home);
    }
    // SAFETY: geteuid has no arguments and cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        return PathBuf::from("/var/lib/airlock");
    }
    let base = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .unwrap_or_else(|| PathBuf::from("."));
    base.join("airlock")
}

/// `AIRLOCK_URL`, else the local daemon's default address.
pub fn default_url() -> String {
    std::env::var("AIRLOCK_URL").unwrap_or_else(|_| format!("http://127.0.0.1:{DEFAULT_PORT}"))
}
