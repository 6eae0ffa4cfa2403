//! Archive extraction against hostile archives and planted symlinks, and a faithful round
//! trip through pack and unpack.
#![allow(clippy::unwrap_used)]

mod common;

use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use sha2::Digest;

use common::{Scene, me, scene};

use airlock_fs::{FsError, Root, SandboxPath, UnpackLimits, Unpacked};

trait Unpacking {
    fn unpack(&self, archive: &[u8]) -> Result<Unpacked, FsError>;
    fn unpack_limited(&self, archive: &[u8], limits: UnpackLimits) -> Result<Unpacked, FsError>;
    fn dst(&self) -> PathBuf;
    fn dst_names(&self) -> Vec<String>;
}

/// Extraction owned by whoever runs the tests, within `limits`, with the archive's mtimes.
fn by_me(limits: UnpackLimits) -> airlock_fs::Unpacking {
    airlock_fs::Unpacking {
        owner: me(),
        limits,
        mtimes: airlock_fs::Mtimes::FromArchive,
    }
}

impl Unpacking for Scene {
    fn unpack(&self, archive: &[u8]) -> Result<Unpacked, FsError> {
        self.unpack_limited(archive, UnpackLimits::default())
    }

    fn unpack_limited(&self, archive: &[u8], limits: UnpackLimits) -> Result<Unpacked, FsError> {
        let root = Root::open(&self.root_dir).unwrap();
        let dst = SandboxPath::parse("/dst").unwrap();
        root.unpack(&dst, archive, by_me(limits))
    }

    fn dst(&self) -> PathBuf {
        self.root_dir.join("dst")
    }

    /// Names now in the target (staging directories would show up here).
    fn dst_names(&self) -> Vec<String> {
        let mut names: Vec<_> = fs::read_dir(self.dst())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
}

/// One raw tar entry, name and link written byte for byte (no `..` checks), so the
/// archive can be as hostile as a real attacker's.
struct Raw<'a> {
    name: &'a [u8],
    kind: tar::EntryType,
    link: &'a [u8],
    data: &'a [u8],
    mode: u32,
    claimed_size: Option<u64>,
}

fn raw(name: &[u8], kind: tar::EntryType) -> Raw<'_> {
    Raw {
        name,
        kind,
        link: b"",
        data: b"",
        mode: 0o644,
        claimed_size: None,
    }
}

fn tar_of(entries: &[Raw]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in entries {
        let mut header = tar::Header::new_gnu();
        header.as_old_mut().name[..e.name.len()].copy_from_slice(e.name);
        header.as_old_mut().linkname[..e.link.len()].copy_from_slice(e.link);
        header.set_entry_type(e.kind);
        header.set_mode(e.mode);
        header.set_mtime(1_600_000_000);
        header.set_size(e.claimed_size.unwrap_or(e.data.len() as u64));
        header.set_cksum();
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(e.data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.resize(out.len() + 1024, 0);
    out
}

fn file<'a>(name: &'a [u8], data: &'a [u8]) -> Raw<'a> {
    Raw {
        data,
        ..raw(name, tar::EntryType::Regular)
    }
}

fn link<'a>(name: &'a [u8], kind: tar::EntryType, target: &'a [u8]) -> Raw<'a> {
    Raw {
        link: target,
        ..raw(name, kind)
    }
}

fn is_bad_archive(result: Result<Unpacked, FsError>) -> bool {
    matches!(result, Err(FsError::BadArchive { .. }))
}

#[test]
fn dotdot_names_are_refused_and_nothing_is_extracted() {
    let s = scene("dst");
    let archive = tar_of(&[
        file(b"ok.txt", b"fine"),
        file(b"../../outside/sentinel", b"pwned"),
    ]);
    assert!(is_bad_archive(s.unpack(&archive)));
    s.sentinel_untouched();
    assert!(
        s.dst_names().is_empty(),
        "nothing partial: {:?}",
        s.dst_names()
    );
}

#[test]
fn absolute_names_land_inside_the_target() {
    let s = scene("dst");
    let host_path = s.outside.join("sentinel");
    let archive = tar_of(&[file(host_path.as_os_str().as_bytes(), b"inside")]);
    s.unpack(&archive).unwrap();
    s.sentinel_untouched();
    let landed = s.dst().join(host_path.strip_prefix("/").unwrap());
    assert_eq!(fs::read(landed).unwrap(), b"inside");
}

#[test]
fn a_file_through_an_archived_symlink_is_refused() {
    let s = scene("dst");
    for target in [s.outside.as_os_str().as_bytes(), b"../../../../../../.."] {
        let archive = tar_of(&[
            link(b"escape", tar::EntryType::Symlink, target),
            file(b"escape/sentinel", b"pwned"),
        ]);
        assert!(is_bad_archive(s.unpack(&archive)));
        s.sentinel_untouched();
        assert!(s.dst_names().is_empty());
    }
}

#[test]
fn a_symlink_planted_in_the_target_is_replaced_not_followed() {
    let s = scene("dst");
    symlink(&s.outside, s.dst().join("escape")).unwrap();
    let archive = tar_of(&[file(b"escape/sentinel", b"inside")]);
    s.unpack(&archive).unwrap();
    s.sentinel_untouched();
    let landed = s.dst().join("escape");
    assert!(fs::symlink_metadata(&landed).unwrap().is_dir());
    assert_eq!(fs::read(landed.join("sentinel")).unwrap(), b"inside");
}

#[test]
fn hard_links_reach_only_files_of_the_same_archive() {
    let s = scene("dst");
    let host = s.outside.join("sentinel");
    for target in [
        host.as_os_str().as_bytes(),
        b"../../outside/sentinel",
        b"nothing",
    ] {
        let archive = tar_of(&[link(b"grab", tar::EntryType::Link, target)]);
        assert!(is_bad_archive(s.unpack(&archive)), "{target:?}");
        s.sentinel_untouched();
        assert_eq!(fs::metadata(&host).unwrap().nlink(), 1);
    }
    let archive = tar_of(&[
        file(b"a/original", b"shared"),
        link(b"b/copy", tar::EntryType::Link, b"a/original"),
    ]);
    let report = s.unpack(&archive).unwrap();
    assert_eq!(report.hardlinks, 1);
    let (a, b) = (s.dst().join("a/original"), s.dst().join("b/copy"));
    assert_eq!(
        fs::metadata(&a).unwrap().ino(),
        fs::metadata(&b).unwrap().ino()
    );
}

#[test]
fn a_name_repeated_in_the_archive_is_replaced_by_its_last_entry_never_followed() {
    let s = scene("dst");
    let sentinel = s.outside.join("sentinel");
    let sentinel = sentinel.as_os_str().as_bytes();
    let archive = tar_of(&[
        file(b"twice", b"first"),
        file(b"twice", b"second"),
        // A symlink to the host first, then a file of that name: the file replaces
        // the link; nothing is written through it.
        link(b"lure", tar::EntryType::Symlink, sentinel),
        file(b"lure", b"inside"),
        file(b"becomes-link", b"plain"),
        link(b"becomes-link", tar::EntryType::Symlink, b"twice"),
        file(b"src", b"shared"),
        file(b"becomes-hardlink", b"mine"),
        link(b"becomes-hardlink", tar::EntryType::Link, b"src"),
    ]);
    let report = s.unpack(&archive).unwrap();
    assert_eq!((report.files, report.symlinks, report.hardlinks), (6, 2, 1));
    s.sentinel_untouched();
    let dst = s.dst();
    assert_eq!(fs::read(dst.join("twice")).unwrap(), b"second");
    assert!(fs::symlink_metadata(dst.join("lure")).unwrap().is_file());
    assert_eq!(fs::read(dst.join("lure")).unwrap(), b"inside");
    assert_eq!(
        fs::read_link(dst.join("becomes-link")).unwrap(),
        Path::new("twice")
    );
    assert_eq!(
        fs::metadata(dst.join("becomes-hardlink")).unwrap().ino(),
        fs::metadata(dst.join("src")).unwrap().ino()
    );
    assert_eq!(
        s.dst_names(),
        ["becomes-hardlink", "becomes-link", "lure", "src", "twice"]
    );
}

#[test]
fn a_directory_of_the_archive_is_never_replaced_by_a_later_file_of_its_name() {
    let s = scene("dst");
    for later in [
        file(b"d", b"file"),
        link(b"d", tar::EntryType::Symlink, b"/"),
    ] {
        let archive = tar_of(&[
            raw(b"d/", tar::EntryType::Directory),
            file(b"d/in", b"x"),
            later,
        ]);
        assert!(is_bad_archive(s.unpack(&archive)));
        assert!(s.dst_names().is_empty());
    }
}

#[test]
fn devices_and_fifos_are_skipped_and_setuid_is_stripped() {
    let s = scene("dst");
    let archive = tar_of(&[
        raw(b"null", tar::EntryType::Char),
        raw(b"disk", tar::EntryType::Block),
        raw(b"pipe", tar::EntryType::Fifo),
        Raw {
            mode: 0o6755,
            ..file(b"tool", b"#!/bin/sh\n")
        },
    ]);
    let report = s.unpack(&archive).unwrap();
    assert_eq!(report.skipped.len(), 3);
    assert_eq!(s.dst_names(), ["tool"]);
    let mode = fs::metadata(s.dst().join("tool"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o7777, 0o755);
}

/// A stale staging directory an SDK left on the client's disk comes along in the next
/// upload of that tree; its entries would be hidden where they land and swept as
/// leftovers, so they are skipped and said so, and everything else lands.
#[test]
fn entries_under_the_engines_reserved_names_are_skipped() {
    let s = scene("dst");
    let archive = tar_of(&[
        raw(
            b".airlock-unpack-0123456789abcdef/",
            tar::EntryType::Directory,
        ),
        file(b".airlock-unpack-0123456789abcdef/half", b"x"),
        file(b"sub/.airlock-tmp-fedcba9876543210", b"x"),
        link(
            b".airlock-upload-00000000000000aa",
            tar::EntryType::Symlink,
            b"kept",
        ),
        file(b"kept", b"kept"),
        file(b".airlock-unpack-not-hex-at-all", b"mine"),
    ]);
    let report = s.unpack(&archive).unwrap();
    let skipped: Vec<&str> = report.skipped.iter().map(|k| k.path.as_str()).collect();
    assert_eq!(skipped.len(), 4, "{skipped:?}");
    assert!(
        report.skipped.iter().all(|k| k.reason.contains("reserved")),
        "{:?}",
        report.skipped
    );
    // `sub` had no entry of its own, only the skipped one below it.
    assert_eq!(s.dst_names(), [".airlock-unpack-not-hex-at-all", "kept"]);
}

/// Every permission bit lands as the archive gives it, whether or not the umask would
/// take it from a new file: under 0o022 (most daemons'), 0o777 and 0o666 have bits it
/// clears, 0o644 and 0o000 none.
#[test]
fn files_get_the_archives_permission_bits_whatever_the_umask() {
    // Set, not inherited, so that the test means the same wherever it runs. nextest runs
    // each test in a process of its own; under `cargo test` 0o022 is the usual umask
    // anyway.
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o022));
    let s = scene("dst");
    let modes = [0o777, 0o666, 0o644, 0o640, 0o444, 0o000, 0o751];
    let names: Vec<String> = modes.iter().map(|m| format!("m{m:o}")).collect();
    let entries: Vec<_> = modes
        .iter()
        .zip(&names)
        .map(|(&mode, name)| Raw {
            mode,
            ..file(name.as_bytes(), b"data")
        })
        .collect();
    s.unpack(&tar_of(&entries)).unwrap();
    for (mode, name) in modes.iter().zip(&names) {
        let got = fs::metadata(s.dst().join(name))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(got & 0o7777, *mode, "{name}");
        assert_eq!(fs::read(s.dst().join(name)).unwrap(), b"data", "{name}");
    }
}

#[test]
fn limits_stop_bombs_before_they_land() {
    let s = scene("dst");
    let many: Vec<_> = (0..11).map(|i| format!("f{i}")).collect();
    let entries: Vec<_> = many.iter().map(|n| file(n.as_bytes(), b"x")).collect();
    let limits = UnpackLimits {
        max_entries: 10,
        ..UnpackLimits::default()
    };
    let result = s.unpack_limited(&tar_of(&entries), limits);
    assert!(
        matches!(result, Err(FsError::TooLarge { .. })),
        "{result:?}"
    );
    // A header claiming a terabyte is refused before a byte is written.
    let huge = Raw {
        claimed_size: Some(1 << 40),
        ..file(b"huge", b"")
    };
    let result = s.unpack(&tar_of(&[huge]));
    assert!(
        matches!(result, Err(FsError::TooLarge { .. })),
        "{result:?}"
    );
    assert!(s.dst_names().is_empty());
}

#[test]
fn truncated_and_garbage_archives_leave_nothing() {
    let s = scene("dst");
    let whole = tar_of(&[file(b"first", b"complete"), file(b"second", &[7u8; 5000])]);
    let cut = &whole[..512 * 4];
    assert!(is_bad_archive(s.unpack(cut)));
    let mut garbage = whole.clone();
    garbage[512 * 2 + 148] ^= 0x55; // the second header's checksum
    assert!(is_bad_archive(s.unpack(&garbage)));
    assert!(s.dst_names().is_empty(), "{:?}", s.dst_names());
}

#[test]
fn a_directory_in_the_target_is_never_replaced_by_a_file() {
    let s = scene("dst");
    fs::create_dir_all(s.dst().join("keep/inner")).unwrap();
    let archive = tar_of(&[file(b"keep", b"file")]);
    assert!(matches!(s.unpack(&archive), Err(FsError::Conflict { .. })));
    assert!(s.dst().join("keep/inner").is_dir());
}

#[test]
fn existing_files_are_replaced_and_directories_merged() {
    let s = scene("dst");
    fs::create_dir_all(s.dst().join("d")).unwrap();
    fs::write(s.dst().join("d/old"), b"stays").unwrap();
    fs::write(s.dst().join("d/file"), b"old").unwrap();
    let archive = tar_of(&[file(b"d/file", b"new"), file(b"d/added", b"+")]);
    s.unpack(&archive).unwrap();
    assert_eq!(fs::read(s.dst().join("d/old")).unwrap(), b"stays");
    assert_eq!(fs::read(s.dst().join("d/file")).unwrap(), b"new");
    assert_eq!(fs::read(s.dst().join("d/added")).unwrap(), b"+");
    assert_eq!(s.dst_names(), ["d"]);
}

/// A tree with every kind of thing pack must keep: modes, mtimes, symlinks (absolute,
/// relative, dangling), empty directories, unicode and non-UTF-8 names, long names.
fn build_tree(at: &Path) {
    fs::create_dir_all(at.join("src/empty")).unwrap();
    fs::create_dir_all(at.join("ünïcødé/日本")).unwrap();
    fs::write(at.join("src/main.rs"), b"fn main() {}\n").unwrap();
    fs::write(at.join("ünïcødé/日本/ファイル"), b"unicode").unwrap();
    let raw_name = OsStr::from_bytes(b"latin1-\xe9t\xe9");
    fs::write(at.join(raw_name), b"not utf-8").unwrap();
    let long = "n".repeat(200);
    fs::write(at.join("src").join(&long), vec![9u8; 70_000]).unwrap();
    fs::write(at.join("run.sh"), b"#!/bin/sh\n").unwrap();
    fs::set_permissions(at.join("run.sh"), fs::Permissions::from_mode(0o750)).unwrap();
    fs::set_permissions(at.join("src/empty"), fs::Permissions::from_mode(0o700)).unwrap();
    symlink("/etc/hostname", at.join("abs-link")).unwrap();
    symlink("../run.sh", at.join("src/rel-link")).unwrap();
    symlink("missing", at.join("dangling")).unwrap();
    for entry in walk(at) {
        let path = at.join(&entry);
        let t = filetime(1_500_000_000 + entry.as_os_str().len() as i64);
        rustix::fs::utimensat(
            rustix::fs::CWD,
            &path,
            &t,
            rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
        )
        .unwrap();
    }
}

fn filetime(secs: i64) -> rustix::fs::Timestamps {
    let t = rustix::fs::Timespec {
        tv_sec: secs,
        tv_nsec: 0,
    };
    rustix::fs::Timestamps {
        last_access: t,
        last_modification: t,
    }
}

/// Relative paths under `at`, deepest first so setting a child's time never disturbs a
/// parent's afterwards.
fn walk(at: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        for entry in fs::read_dir(at.join(&rel)).unwrap() {
            let entry = entry.unwrap();
            let child = rel.join(entry.file_name());
            if entry.file_type().unwrap().is_dir() {
                stack.push(child.clone());
            }
            out.push(child);
        }
    }
    out.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    out
}

/// What must survive a round trip: kind, mode, mtime, content, link target.
fn describe(at: &Path) -> Vec<String> {
    let mut out: Vec<String> = walk(at)
        .into_iter()
        .map(|rel| {
            let path = at.join(&rel);
            let meta = fs::symlink_metadata(&path).unwrap();
            let what = if meta.is_symlink() {
                format!("-> {:?}", fs::read_link(&path).unwrap())
            } else if meta.is_dir() {
                "dir".to_owned()
            } else {
                let digest = sha2::Sha256::digest(fs::read(&path).unwrap());
                format!("{} bytes sha256 {}", meta.len(), airlock_fs::hex(&digest))
            };
            let mode = if meta.is_symlink() {
                0
            } else {
                meta.mode() & 0o7777
            };
            format!("{rel:?} {what} mode {mode:o} mtime {}", meta.mtime())
        })
        .collect();
    out.sort();
    out
}

#[test]
fn pack_then_unpack_keeps_the_tree() {
    let s = scene("dst");
    let src = s.root_dir.join("src-tree");
    build_tree(&src);
    let root = Root::open(&s.root_dir).unwrap();
    let mut archive = Vec::new();
    root.pack(&SandboxPath::parse("/src-tree").unwrap(), &mut archive)
        .unwrap();
    let report = s.unpack(&archive).unwrap();
    assert_eq!(report.symlinks, 3);
    assert_eq!(describe(&src), describe(&s.dst()));
    assert!(s.dst_names().iter().all(|n| !n.starts_with(".airlock")));
}

/// Streams `count` copies of one directory entry, never holding the archive in memory.
struct RepeatedEntries {
    header: [u8; 512],
    left: u64,
    trailer: usize,
    at: usize,
}

impl RepeatedEntries {
    fn new(count: u64) -> Self {
        let mut header = tar::Header::new_gnu();
        header.set_path("d/").unwrap();
        header.set_entry_type(tar::EntryType::Directory);
        header.set_mode(0o755);
        header.set_size(0);
        header.set_cksum();
        Self {
            header: *header.as_bytes(),
            left: count,
            trailer: 1024,
            at: 0,
        }
    }
}

impl std::io::Read for RepeatedEntries {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.left == 0 {
            let n = buf.len().min(self.trailer);
            buf[..n].fill(0);
            self.trailer -= n;
            return Ok(n);
        }
        let n = buf.len().min(512 - self.at);
        buf[..n].copy_from_slice(&self.header[self.at..self.at + n]);
        self.at += n;
        if self.at == 512 {
            self.at = 0;
            self.left -= 1;
        }
        Ok(n)
    }
}

#[test]
fn a_million_entries_stop_at_the_entry_limit() {
    let s = scene("dst");
    let root = Root::open(&s.root_dir).unwrap();
    let dst = SandboxPath::parse("/dst").unwrap();
    let limits = UnpackLimits::default();
    let started = std::time::Instant::now();
    let result = root.unpack(
        &dst,
        RepeatedEntries::new(limits.max_entries + 1),
        by_me(limits),
    );
    eprintln!(
        "{} entries refused in {:?}",
        limits.max_entries + 1,
        started.elapsed()
    );
    assert!(
        matches!(result, Err(FsError::TooLarge { .. })),
        "{result:?}"
    );
    assert!(s.dst_names().is_empty(), "{:?}", s.dst_names());
}

#[test]
fn pax_sizes_that_disagree_with_the_header() {
    // A PAX `size` record overrides the ustar size field (POSIX). Claiming a terabyte
    // there is caught like a terabyte in the header; claiming less than the data that
    // follows misaligns the stream, which must end as a refused archive, never as stray
    // files or a panic.
    let pax = |size: &str| {
        let record = format!(" size={size}\n");
        let record = format!(
            "{}{record}",
            record.len() + (record.len() + 1).to_string().len()
        );
        let mut header = tar::Header::new_ustar();
        header.set_path("PaxHeaders/f").unwrap();
        header.set_entry_type(tar::EntryType::XHeader);
        header.set_size(record.len() as u64);
        header.set_cksum();
        let mut out = header.as_bytes().to_vec();
        out.extend_from_slice(record.as_bytes());
        out.resize(out.len().div_ceil(512) * 512, 0);
        out
    };
    let body = tar_of(&[file(b"f", &[b'x'; 3000]), file(b"g", b"after")]);

    let s = scene("dst");
    let mut huge = pax("1099511627776");
    huge.extend_from_slice(&body);
    let result = s.unpack(&huge);
    assert!(
        matches!(result, Err(FsError::TooLarge { .. })),
        "{result:?}"
    );
    assert!(s.dst_names().is_empty());

    for claimed in ["10", "0", "600"] {
        let mut lying = pax(claimed);
        lying.extend_from_slice(&body);
        let result = s.unpack(&lying);
        assert!(is_bad_archive(result), "PAX size {claimed}");
        assert!(
            s.dst_names().is_empty(),
            "PAX size {claimed}: {:?}",
            s.dst_names()
        );
    }
    s.sentinel_untouched();
}

/// This thread's effective user and group: what acting as an owner changes.
fn effective() -> (u32, u32) {
    (
        rustix::process::geteuid().as_raw(),
        rustix::process::getegid().as_raw(),
    )
}

/// Extraction for the sandbox's user (1000:1000) with `mtimes`, as the daemon does.
fn for_the_user(mtimes: airlock_fs::Mtimes) -> airlock_fs::Unpacking {
    airlock_fs::Unpacking {
        owner: airlock_fs::FileOwner::SANDBOX_USER,
        limits: UnpackLimits::default(),
        mtimes,
    }
}

#[test]
fn every_entry_is_the_owners_and_the_thread_is_itself_again_after() {
    if !rustix::process::geteuid().is_root() {
        return; // Only root can give files to another user.
    }
    let s = scene("dst");
    // A directory of root's already in the target: the archive's entries merge into it.
    fs::create_dir(s.dst().join("kept")).unwrap();
    let dir = || {
        let mut d = raw(b"d", tar::EntryType::Directory);
        d.mode = 0o500;
        d
    };
    let archive = tar_of(&[
        dir(),
        file(b"d/f", b"in a read-only directory"),
        file(b"kept/new", b"merged"),
        link(b"sym", tar::EntryType::Symlink, b"d/f"),
        link(b"hard", tar::EntryType::Link, b"d/f"),
        file(b"deep/er/g", b"parents made on the way"),
    ]);
    let root = Root::open(&s.root_dir).unwrap();
    let dst = SandboxPath::parse("/dst").unwrap();
    let report = std::thread::spawn(move || {
        let report = root.unpack(
            &dst,
            &archive[..],
            for_the_user(airlock_fs::Mtimes::FromArchive),
        );
        assert_eq!(effective(), (0, 0), "the thread is root again");
        report
    })
    .join()
    .unwrap()
    .unwrap();
    assert_eq!((report.files, report.symlinks, report.hardlinks), (3, 1, 1));
    for rel in [
        "d",
        "d/f",
        "kept/new",
        "sym",
        "hard",
        "deep",
        "deep/er",
        "deep/er/g",
    ] {
        let meta = fs::symlink_metadata(s.dst().join(rel)).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (1000, 1000), "{rel}");
    }
    // What was there keeps its owner; the archive's directory its mode.
    assert_eq!(fs::metadata(s.dst().join("kept")).unwrap().uid(), 0);
    let mode = fs::metadata(s.dst().join("d"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o500);
    assert_eq!(
        fs::read(s.dst().join("d/f")).unwrap(),
        b"in a read-only directory"
    );
    s.sentinel_untouched();
}

#[test]
fn a_hostile_archive_fails_for_the_owner_too_and_the_thread_is_itself_again() {
    let s = scene("dst");
    let escape = s.outside.to_string_lossy().into_owned();
    for archive in [
        tar_of(&[
            link(b"a", tar::EntryType::Symlink, escape.as_bytes()),
            file(b"a/sentinel", b"overwritten"),
        ]),
        tar_of(&[file(b"../sentinel", b"climbed")]),
        tar_of(&[link(b"h", tar::EntryType::Link, b"/etc/passwd")]),
    ] {
        let root = Root::open(&s.root_dir).unwrap();
        let dst = SandboxPath::parse("/dst").unwrap();
        let who = effective();
        let result = std::thread::spawn(move || {
            let result = root.unpack(&dst, &archive[..], for_the_user(airlock_fs::Mtimes::Now));
            assert_eq!(effective(), who, "the thread took back its identity");
            result
        })
        .join()
        .unwrap();
        assert!(is_bad_archive(result));
        assert!(s.dst_names().is_empty(), "{:?}", s.dst_names());
    }
    s.sentinel_untouched();
}

#[test]
fn mtimes_now_leaves_entries_at_the_time_they_are_written() {
    let s = scene("dst");
    let mut old = raw(b"old", tar::EntryType::Regular);
    old.data = b"x";
    let archive = tar_of(&[old, raw(b"dir", tar::EntryType::Directory)]);
    let root = Root::open(&s.root_dir).unwrap();
    let dst = SandboxPath::parse("/dst").unwrap();
    let mut how = for_the_user(airlock_fs::Mtimes::Now);
    how.owner = me();
    root.unpack(&dst, &archive[..], how).unwrap();
    let a_minute_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(60);
    for rel in ["old", "dir"] {
        let mtime = fs::metadata(s.dst().join(rel)).unwrap().modified().unwrap();
        assert!(mtime > a_minute_ago, "{rel}: {mtime:?}");
    }
    // The archive's own times, asked for, are kept.
    let mut how = for_the_user(airlock_fs::Mtimes::FromArchive);
    how.owner = me();
    fs::remove_dir_all(s.dst()).unwrap();
    root.unpack(&dst, &archive[..], how).unwrap();
    for rel in ["old", "dir"] {
        let mtime = fs::metadata(s.dst().join(rel)).unwrap().mtime();
        assert_eq!(mtime, 1_600_000_000, "{rel}");
    }
}
