//! Local directory trees: walked with .gitignore and --exclude rules, and written as a tar
//! stream (symlinks as symlinks, modes kept, mtimes kept when asked).

use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;

/// What a local entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
    Symlink,
}

/// One entry of a local tree, relative to its root.
#[derive(Debug, Clone)]
pub struct LocalEntry {
    pub rel: PathBuf,
    pub kind: Kind,
    pub size: u64,
    pub mode: u32,
    pub mtime: i64,
}

/// Which local paths to leave out.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub excludes: Vec<String>,
    pub gitignore: bool,
}

/// Every entry under `root` (not `root` itself), sorted, with what could not be read.
pub fn walk(root: &Path, filter: &Filter) -> anyhow::Result<(Vec<LocalEntry>, Vec<String>)> {
    let mut overrides = ignore::overrides::OverrideBuilder::new(root);
    for glob in &filter.excludes {
        overrides
            .add(&format!("!{glob}"))
            .with_context(|| format!("--exclude {glob:?} is not a valid glob"))?;
    }
    let walker = ignore::WalkBuilder::new(root)
        .standard_filters(false)
        .git_ignore(filter.gitignore)
        .git_exclude(filter.gitignore)
        .parents(filter.gitignore)
        .require_git(false)
        .follow_links(false)
        .overrides(overrides.build()?)
        .sort_by_file_name(|a, b| a.cmp(b))
        .build();
    let mut entries = Vec::new();
    let mut problems = Vec::new();
    for item in walker {
        let item = match item {
            Ok(item) => item,
            Err(e) => {
                problems.push(e.to_string());
                continue;
            }
        };
        if item.depth() == 0 {
            continue;
        }
        let path = item.path();
        let meta = match std::fs::symlink_metadata(path) {
            Ok(meta) => meta,
            Err(e) => {
                problems.push(format!("{}: {e}", path.display()));
                continue;
            }
        };
        let kind = if meta.file_type().is_symlink() {
            Kind::Symlink
        } else if meta.is_dir() {
            Kind::Dir
        } else if meta.is_file() {
            Kind::File
        } else {
            problems.push(format!(
                "{}: not a file, directory or symlink; left out",
                path.display()
            ));
            continue;
        };
        entries.push(LocalEntry {
            rel: path.strip_prefix(root).unwrap_or(path).to_path_buf(),
            kind,
            size: if kind == Kind::File { meta.len() } else { 0 },
            mode: meta.permissions().mode() & 0o7777,
            mtime: meta.mtime(),
        });
    }
    Ok((entries, problems))
}

/// Writes `entries` of `root` as a tar stream. A file that cannot be read is left out and
/// reported; a file that changes while read keeps the size its header says.
pub fn write_tar(
    root: &Path,
    entries: &[LocalEntry],
    keep_mtime: bool,
    out: impl Write,
) -> std::io::Result<Vec<String>> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut builder = tar::Builder::new(out);
    let mut problems = Vec::new();
    for entry in entries {
        let mut header = tar::Header::new_gnu();
        header.set_mode(entry.mode);
        header.set_mtime(if keep_mtime {
            entry.mtime.max(0) as u64
        } else {
            now
        });
        let path = root.join(&entry.rel);
        match entry.kind {
            Kind::Dir => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_size(0);
                builder.append_data(&mut header, &entry.rel, std::io::empty())?;
            }
            Kind::Symlink => match std::fs::read_link(&path) {
                Ok(target) => {
                    header.set_entry_type(tar::EntryType::Symlink);
                    header.set_size(0);
                    builder.append_link(&mut header, &entry.rel, target)?;
                }
                Err(e) => problems.push(format!("{}: {e}", path.display())),
            },
            Kind::File => match File::open(&path).and_then(|f| Ok((f.metadata()?.len(), f))) {
                Ok((size, file)) => {
                    header.set_entry_type(tar::EntryType::Regular);
                    header.set_size(size);
                    let exact = file.take(size).chain(std::io::repeat(0)).take(size);
                    builder.append_data(&mut header, &entry.rel, exact)?;
                }
                Err(e) => problems.push(format!("{}: {e}", path.display())),
            },
        }
    }
    builder.into_inner()?.flush()?;
    Ok(problems)
}
