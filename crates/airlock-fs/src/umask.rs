//! The process's umask, read once, so a file the engine creates where no sandbox can
//! reach it yet can be born with its final permission bits instead of being given them
//! by a second system call.

use std::sync::OnceLock;

/// Permission bits a new file created with `mode` would lose to the umask. Read from
/// `/proc/self/status` (setting the umask to read it would race other threads'
/// creates); where it cannot be read, every bit counts as lost, so callers set the mode
/// themselves.
pub fn lost_to_umask(mode: u32) -> u32 {
    static UMASK: OnceLock<u32> = OnceLock::new();
    mode & *UMASK.get_or_init(|| read_umask().unwrap_or(0o777))
}

fn read_umask() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    parse_umask(&status)
}

fn parse_umask(status: &str) -> Option<u32> {
    let line = status.lines().find_map(|l| l.strip_prefix("Umask:"))?;
    u32::from_str_radix(line.trim(), 8).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_umask_line_is_read_in_octal() {
        assert_eq!(
            parse_umask("Name:\tx\nUmask:\t0022\nState:\tR\n"),
            Some(0o022)
        );
        assert_eq!(parse_umask("Umask:\t0077"), Some(0o077));
        assert_eq!(parse_umask("Name:\tx\n"), None);
        assert_eq!(parse_umask("Umask:\tnope"), None);
    }

    #[test]
    fn this_process_has_a_umask_it_can_read() {
        assert!(read_umask().is_some());
    }
}
