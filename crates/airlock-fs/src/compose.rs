//! Concatenating files into one, committed atomically like any whole-file write.

use std::fs::File;
use std::io::Read;

use crate::{FsResult, Root, SandboxPath, WriteOptions, Written};

impl Root {
    /// Writes the concatenation of `sources` (regular files, read in order) to `dest`.
    /// `dest` may be one of the sources: the result is built aside and renamed in.
    pub fn compose(
        &self,
        sources: &[SandboxPath],
        dest: &SandboxPath,
        opts: WriteOptions,
    ) -> FsResult<Written> {
        let files = sources
            .iter()
            .map(|s| self.open_read(s).map(|(file, _)| file))
            .collect::<FsResult<Vec<File>>>()?;
        let concat = Concat {
            files: files.into_iter().collect(),
            current: None,
        };
        let mut concat = std::io::BufReader::with_capacity(crate::write::BUFFER, concat);
        self.write_file(dest, &mut concat, opts)
    }
}

/// Reads files one after another.
struct Concat {
    files: std::collections::VecDeque<File>,
    current: Option<File>,
}

impl Read for Concat {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            if self.current.is_none() {
                match self.files.pop_front() {
                    Some(next) => self.current = Some(next),
                    None => return Ok(0),
                }
            }
            let n = self.current.as_mut().map_or(Ok(0), |f| f.read(buf))?;
            if n > 0 || buf.is_empty() {
                return Ok(n);
            }
            self.current = None;
        }
    }
}
