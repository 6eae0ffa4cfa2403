//! Directories whose children the file system spreads over the disk.
//!
//! ext4 mounted without a journal (as on the machines here) will not hand out an inode
//! that was freed in the last 5 to 35 seconds: for each new inode it walks the group's
//! free slots from the start, looking each one's inode block up in the buffer cache and
//! skipping it while its deletion time is that recent. Every sandbox is some fifty
//! inodes made and, at its delete, freed; ext4 places a directory's children near it, so
//! with every sandbox under one parent a loop of creates and deletes piles thousands of
//! recently freed slots into one group, and each `mkdir` of the next skeleton walks them
//! all. By hand, after a few hundred cycles, create+start had risen from 5 to 15 ms, a
//! third of all samples in that walk (`recently_deleted` and the look-ups under it).
//!
//! A directory marked as the top of a hierarchy (`chattr +T`, `FS_TOPDIR_FL`) has ext4's
//! Orlov allocator place each child directory in a group chosen afresh from the child's
//! name hash (the emptiest group from there on), as it does for directories made at the
//! root of the file system; what goes inside each child then stays near it. Marking the
//! directory of sandboxes and the one of spare skeletons gives each sandbox a group of its
//! own, away from the slots the last ones freed.
//!
//! Only a placement hint: file systems that do not know the flag are left as they are.

use std::io;
use std::path::Path;

use rustix::fs::{IFlags, Mode, OFlags};

/// Makes `dir` (and its parents) if missing and asks the file system to spread the
/// directories made in it. Fails only when `dir` cannot be made or opened.
pub fn make_spreading_dir(dir: &Path) -> io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let handle = rustix::fs::open(
        dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let marked = rustix::fs::ioctl_getflags(&handle).and_then(|flags| {
        if flags.contains(IFlags::TOPDIR) {
            Ok(())
        } else {
            rustix::fs::ioctl_setflags(&handle, flags | IFlags::TOPDIR)
        }
    });
    if let Err(err) = marked {
        // tmpfs, overlayfs and others refuse the flag; nothing there piles up the same way.
        tracing::debug!(%err, dir = %dir.display(), "children of this directory stay near it");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// ext4's magic in `statfs`'s `f_type`.
    const EXT4_MAGIC: i64 = 0xEF53;

    fn on_ext4(path: &Path) -> bool {
        rustix::fs::statfs(path).unwrap().f_type as i64 == EXT4_MAGIC
    }

    fn flags(dir: &Path) -> IFlags {
        let handle =
            rustix::fs::open(dir, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty()).unwrap();
        rustix::fs::ioctl_getflags(&handle).unwrap()
    }

    #[test]
    fn ext4_marks_the_directory_and_only_it() {
        let home = tempfile::tempdir().unwrap();
        let dir = home.path().join("a/b/sandboxes");
        make_spreading_dir(&dir).unwrap();
        assert!(dir.is_dir());
        if !on_ext4(home.path()) {
            eprintln!("not ext4 here: only checked that the directory is made");
            return;
        }
        assert!(flags(&dir).contains(IFlags::TOPDIR));
        // Not inherited: a sandbox's own directories keep their children near them.
        let child = dir.join("one");
        std::fs::create_dir(&child).unwrap();
        assert!(!flags(&child).contains(IFlags::TOPDIR));
        assert!(!flags(home.path()).contains(IFlags::TOPDIR));
    }

    #[test]
    fn an_existing_directory_keeps_its_contents_and_other_flags() {
        let home = tempfile::tempdir().unwrap();
        let dir = home.path().join("skeletons");
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("kept"), b"still here").unwrap();
        let before = flags(&dir);
        make_spreading_dir(&dir).unwrap();
        make_spreading_dir(&dir).unwrap();
        assert_eq!(std::fs::read(dir.join("kept")).unwrap(), b"still here");
        let after = flags(&dir);
        assert!(after.contains(before), "{before:?} lost in {after:?}");
    }

    #[test]
    fn a_file_system_that_refuses_the_flag_still_gets_its_directory() {
        const TMPFS_MAGIC: i64 = 0x0102_1994;
        let shm = Path::new("/dev/shm");
        if !shm.is_dir() || rustix::fs::statfs(shm).unwrap().f_type as i64 != TMPFS_MAGIC {
            eprintln!("no tmpfs at /dev/shm here: nothing to check");
            return;
        }
        let home = tempfile::tempdir_in(shm).unwrap();
        let dir = home.path().join("sandboxes");
        make_spreading_dir(&dir).unwrap();
        assert!(dir.is_dir());
        assert!(!flags(&dir).contains(IFlags::TOPDIR));
    }

    #[test]
    fn a_file_in_the_way_is_an_error() {
        let home = tempfile::tempdir().unwrap();
        let dir = home.path().join("sandboxes");
        std::fs::write(&dir, b"not a directory").unwrap();
        assert!(make_spreading_dir(&dir).is_err());
        assert_eq!(std::fs::read(&dir).unwrap(), b"not a directory");
    }
}
