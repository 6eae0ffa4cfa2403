//! For tests: the deep trees a sandbox can make.

use rustix::fs::{Mode, OFlags};

/// Makes a chain of `depth` directories named `d` under `at`, as a process does with
/// `mkdir d; cd d` in a loop, with a file `f` at every `file_every`-th level and a file
/// `leaf` at the bottom.
pub(crate) fn chain(at: &std::path::Path, depth: usize, file_every: usize) {
    let file = |dir: &std::os::fd::OwnedFd, name: &str| {
        rustix::fs::openat(
            dir,
            name,
            OFlags::CREATE | OFlags::WRONLY,
            Mode::from_raw_mode(0o644),
        )
        .expect("file");
    };
    let mut dir =
        rustix::fs::open(at, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty()).expect("open");
    for level in 0..depth {
        rustix::fs::mkdirat(&dir, "d", Mode::from_raw_mode(0o755)).expect("mkdir");
        if level % file_every == 0 {
            file(&dir, "f");
        }
        dir = rustix::fs::openat(&dir, "d", OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty())
            .expect("open");
    }
    file(&dir, "leaf");
}

/// Runs `f` with this process allowed 256 open descriptors, fewer than a walk holding one
/// for each level of a 2,000-deep chain needs. The limit is the whole process's: a test
/// that calls this runs in a process of its own (`rusty_fork_test!`), or under plain
/// `cargo test` the tests beside it on other threads failed for want of descriptors,
/// and it for theirs.
pub(crate) fn with_few_descriptors<T>(f: impl FnOnce() -> T) -> T {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let before = getrlimit(Resource::Nofile);
    let low = Rlimit {
        current: Some(256),
        maximum: before.maximum,
    };
    setrlimit(Resource::Nofile, low).expect("lower the descriptor limit");
    let out = f();
    setrlimit(Resource::Nofile, before).expect("restore the descriptor limit");
    out
}

/// Runs `work` on a thread with a small stack and answers what it returns: a walk that
/// recursed per level would overflow it long before the bottom of a deep chain.
pub(crate) fn on_a_small_stack<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new()
        .stack_size(128 * 1024)
        .spawn(work)
        .expect("thread")
        .join()
        .expect("the walk overflowed or panicked")
}
