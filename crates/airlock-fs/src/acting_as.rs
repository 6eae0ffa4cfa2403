//! Extracting an archive as the user who will own its files.
//!
//! A root thread that takes the owner's effective user and group ids (and the owner's group
//! alone as its supplementary groups) creates every entry already owned by them: no
//! `fchown` an entry, which was a tenth of a 10,000-file tree's upload. While it acts, the
//! kernel clears the thread's effective capabilities, so an archive is written with no
//! more power over files than the sandbox's own user has, whatever a bug elsewhere let it
//! name.
//!
//! Linux keeps credentials per thread. The C library's `seteuid` and `setgroups` change
//! every thread of the process; the raw system calls used here (rustix's `thread` module)
//! change only the calling one, and the guard puts them back before the thread does
//! anything else. The real and saved ids stay root's throughout, so no process of the
//! owner's may signal or trace the thread. One effect is process-wide: the kernel marks
//! a process whose credentials change as not dumpable (no core dump), and the guard puts
//! back what the daemon started with.

use std::marker::PhantomData;
use std::sync::OnceLock;

use rustix::process::{
    DumpableBehavior, Gid, Uid, dumpable_behavior, getegid, geteuid, getgroups,
    set_dumpable_behavior,
};
use rustix::thread::{set_thread_groups, set_thread_res_gid, set_thread_res_uid};

use crate::FileOwner;

/// This thread acting as a file owner, until dropped.
pub(crate) struct ActingAs {
    dumpable: Option<DumpableBehavior>,
    euid: Uid,
    egid: Gid,
    groups: Vec<Gid>,
    /// Credentials belong to the thread that took them: the guard must not move.
    _this_thread: PhantomData<*const ()>,
}

impl ActingAs {
    /// Takes `owner`'s ids on this thread when the thread is root and the owner is not.
    /// `None` otherwise, or when the kernel refuses (a daemon without `CAP_SETUID`): the
    /// caller then gives each entry its owner itself.
    pub(crate) fn owner(owner: FileOwner) -> Option<Self> {
        let euid = geteuid();
        if !euid.is_root() || owner.uid == 0 {
            return None;
        }
        // Read once, before any thread first acts: later, another thread's acting may
        // have changed it for the moment.
        let dumpable = *AS_STARTED.get_or_init(|| dumpable_behavior().ok());
        let saved = Self {
            dumpable,
            euid,
            egid: getegid(),
            groups: getgroups().ok()?,
            _this_thread: PhantomData,
        };
        // Groups first: once the user is not root, the thread may change neither. A
        // failure part way leaves the guard to undo what was done.
        let gid = Gid::from_raw(owner.gid);
        set_thread_groups(&[gid]).ok()?;
        set_thread_res_gid(None, Some(gid), None).ok()?;
        set_thread_res_uid(None, Some(Uid::from_raw(owner.uid)), None).ok()?;
        Some(saved)
    }
}

impl Drop for ActingAs {
    fn drop(&mut self) {
        // The user first: root's capabilities come back with it (its real and saved ids
        // are still root's), and with them the right to restore the groups.
        let restored = set_thread_res_uid(None, Some(self.euid), None)
            .and_then(|()| set_thread_res_gid(None, Some(self.egid), None))
            .and_then(|()| set_thread_groups(&self.groups));
        if restored.is_err() || geteuid() != self.euid || getegid() != self.egid {
            // A pool thread left as another user would go on to create files as that
            // user, or fail, for whatever request ran on it next.
            eprintln!("airlock: a thread could not take back its own identity; aborting");
            std::process::abort();
        }
        if let Some(dumpable) = self.dumpable {
            let _ = set_dumpable_behavior(dumpable);
        }
    }
}

/// Whether the process was dumpable before any thread acted.
static AS_STARTED: OnceLock<Option<DumpableBehavior>> = OnceLock::new();

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `f` on a thread of its own, so a test never changes the harness's threads.
    fn on_a_thread<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
        std::thread::spawn(f).join().expect("thread")
    }

    const USER: FileOwner = FileOwner {
        uid: 1000,
        gid: 1000,
    };

    #[test]
    fn acting_takes_the_owners_ids_and_gives_them_back() {
        if !geteuid().is_root() {
            return; // Only root can act as another user.
        }
        let private = tempfile::tempdir().expect("tempdir");
        let shut = private.path().to_owned();
        std::fs::set_permissions(&shut, std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .expect("chmod");
        on_a_thread(move || {
            let before = (geteuid(), getegid(), getgroups().expect("groups"));
            {
                let _acting = ActingAs::owner(USER).expect("acting");
                assert_eq!(geteuid().as_raw(), 1000);
                assert_eq!(getegid().as_raw(), 1000);
                assert_eq!(getgroups().expect("groups"), vec![Gid::from_raw(1000)]);
                // The real id stays root's: no process of the user's may signal the thread.
                assert!(rustix::process::getuid().is_root());
                // No capability over files: root's private directory is shut to it.
                let err = std::fs::read_dir(&shut).map(drop).unwrap_err();
                assert_eq!(err.kind(), std::io::ErrorKind::PermissionDenied);
            }
            assert_eq!((geteuid(), getegid(), getgroups().expect("groups")), before);
            std::fs::read_dir(&shut).expect("open to root again");
            assert_eq!(
                dumpable_behavior().expect("dumpable"),
                DumpableBehavior::Dumpable,
                "the process may dump core again"
            );
        });
    }

    #[test]
    fn a_panic_while_acting_still_gives_the_ids_back() {
        if !geteuid().is_root() {
            return;
        }
        on_a_thread(|| {
            let unwound = std::panic::catch_unwind(|| {
                let _acting = ActingAs::owner(USER).expect("acting");
                panic!("mid-archive");
            });
            assert!(unwound.is_err());
            assert!(geteuid().is_root());
            assert!(getegid().is_root());
        });
    }

    #[test]
    fn root_owned_files_and_other_threads_are_left_alone() {
        assert!(ActingAs::owner(FileOwner::ROOT).is_none());
        if !geteuid().is_root() {
            assert!(ActingAs::owner(USER).is_none());
            return;
        }
        // A thread that was there before keeps root's identity meanwhile. (One started by
        // the acting thread would inherit the owner's: extraction starts none.)
        let (ask, asked) = std::sync::mpsc::channel::<()>();
        let (tell, told) = std::sync::mpsc::channel();
        let other = std::thread::spawn(move || {
            for () in asked {
                tell.send(geteuid()).expect("send");
            }
        });
        on_a_thread(move || {
            let _acting = ActingAs::owner(USER).expect("acting");
            ask.send(()).expect("ask");
            assert!(told.recv().expect("told").is_root());
        });
        other.join().expect("other thread");
    }
}
