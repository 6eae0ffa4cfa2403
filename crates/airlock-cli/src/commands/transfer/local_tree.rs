//! Local directory trees: walked with .gitignore and --exclude rules, and written as a tar
//! stream (symlinks as symlinks, modes and mtimes kept; whether the daemon applies the
//! mtimes is the upload's `mtimes` option).

use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

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

/// One step of a walk: an entry, or a path that could not be read (left out, reported).
#[derive(Debug)]
pub enum Walked {
    Entry(LocalEntry),
    Problem(String),
}

/// Every entry under `root` (not `root` itself), sorted, with what could not be read.
pub fn walk(root: &Path, filter: &Filter) -> anyhow::Result<(Vec<LocalEntry>, Vec<String>)> {
    let mut entries = Vec::new();
    let mut problems = Vec::new();
    for walked in walker(root, filter)? {
        match walked {
            Walked::Entry(entry) => entries.push(entry),
            Walked::Problem(problem) => problems.push(problem),
        }
    }
    Ok((entries, problems))
}

/// The walk of `root` as it goes, in the order of [`walk`]. A bad `--exclude` glob is an
/// error here, before anything is read.
pub fn walker(
    root: &Path,
    filter: &Filter,
) -> anyhow::Result<impl Iterator<Item = Walked> + Send + 'static> {
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
    let root = root.to_path_buf();
    Ok(walker.filter_map(move |item| match item {
        Ok(item) if item.depth() == 0 => None,
        Ok(item) => Some(examine(&root, item.path())),
        Err(e) => Some(Walked::Problem(e.to_string())),
    }))
}

/// What the walk found at `path`.
fn examine(root: &Path, path: &Path) -> Walked {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) => return Walked::Problem(format!("{}: {e}", path.display())),
    };
    let kind = if meta.file_type().is_symlink() {
        Kind::Symlink
    } else if meta.is_dir() {
        Kind::Dir
    } else if meta.is_file() {
        Kind::File
    } else {
        return Walked::Problem(format!(
            "{}: not a file, directory or symlink; left out",
            path.display()
        ));
    };
    Walked::Entry(LocalEntry {
        rel: path.strip_prefix(root).unwrap_or(path).to_path_buf(),
        kind,
        size: if kind == Kind::File { meta.len() } else { 0 },
        mode: meta.permissions().mode() & 0o7777,
        mtime: meta.mtime(),
    })
}

/// What [`write_tar`] packed, and what it left out.
#[derive(Debug, Default)]
pub struct Packed {
    pub files: u64,
    pub bytes: u64,
    pub problems: Vec<String>,
}

/// Writes the walked `entries` of `root` as a tar stream. A file that cannot be read is
/// left out and reported; a file that changes while read keeps the size its header says.
/// An error from `entries` stops the stream before its end, so nothing of it is taken
/// for a whole tree.
pub fn write_tar(
    root: &Path,
    entries: impl IntoIterator<Item = std::io::Result<Walked>>,
    out: impl Write,
) -> std::io::Result<Packed> {
    // Ended only when every entry is in: a stream cut between entries must not read
    // as a whole, smaller tree.
    let mut tar = airlock_fs::WholeTar::new(out);
    let mut packed = Packed::default();
    for walked in entries {
        let entry = match walked? {
            Walked::Entry(entry) => entry,
            Walked::Problem(problem) => {
                packed.problems.push(problem);
                continue;
            }
        };
        let mut header = tar::Header::new_gnu();
        header.set_mode(entry.mode);
        header.set_mtime(entry.mtime.max(0) as u64);
        let path = root.join(&entry.rel);
        match entry.kind {
            Kind::Dir => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_size(0);
                tar.builder()
                    .append_data(&mut header, &entry.rel, std::io::empty())?;
            }
            Kind::Symlink => match std::fs::read_link(&path) {
                Ok(target) => {
                    header.set_entry_type(tar::EntryType::Symlink);
                    header.set_size(0);
                    tar.builder().append_link(&mut header, &entry.rel, target)?;
                }
                Err(e) => packed.problems.push(format!("{}: {e}", path.display())),
            },
            Kind::File => match File::open(&path).and_then(|f| Ok((f.metadata()?.len(), f))) {
                Ok((size, file)) => {
                    header.set_entry_type(tar::EntryType::Regular);
                    header.set_size(size);
                    let exact = file.take(size).chain(std::io::repeat(0)).take(size);
                    tar.builder().append_data(&mut header, &entry.rel, exact)?;
                    packed.files += 1;
                    packed.bytes += size;
                }
                Err(e) => packed.problems.push(format!("{}: {e}", path.display())),
            },
        }
    }
    tar.finish()?;
    Ok(packed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_walk_error_stops_the_tar_before_its_end() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a"), b"first").unwrap();
        let walked = walk(dir.path(), &Filter::default()).unwrap().0;
        let entries = walked
            .into_iter()
            .map(|e| Ok(Walked::Entry(e)))
            .chain([Err(std::io::Error::other("the walk broke"))]);
        let mut out = Vec::new();
        let err = write_tar(dir.path(), entries, &mut out).unwrap_err();
        assert_eq!(err.to_string(), "the walk broke");
        // The first entry went out, but no end-of-archive blocks after it.
        assert!(!out.ends_with(&[0u8; 1024]), "the tar was ended");
    }

    #[test]
    fn packed_counts_what_went_into_the_stream() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("d")).unwrap();
        std::fs::write(dir.path().join("d/a"), b"12345").unwrap();
        std::fs::write(dir.path().join("b"), b"678").unwrap();
        let entries = walker(dir.path(), &Filter::default()).unwrap().map(Ok);
        let packed = write_tar(dir.path(), entries, std::io::sink()).unwrap();
        assert_eq!((packed.files, packed.bytes), (2, 8));
        assert!(packed.problems.is_empty());
    }
}
