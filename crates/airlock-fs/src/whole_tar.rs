//! Writing a tar stream that ends only when it is whole.
//!
//! tar's `Builder` writes the end-of-archive blocks when it is dropped, also when it is
//! dropped because packing failed. A reader (this engine's extractor among them) stops at
//! the first zero block, so a stream cut between two entries would then read as a whole,
//! smaller archive, and land as one. Here the archive is ended only when told; dropped
//! before that, the output is closed first and the builder's trailer goes nowhere.

use std::io::{self, Write};

/// The output of a [`WholeTar`], which refuses every write once closed.
pub struct Closable<W> {
    inner: W,
    closed: bool,
}

impl<W: Write> Write for Closable<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.closed {
            return Err(io::Error::other("the archive was cut short"));
        }
        self.inner.write(buf)
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        if self.closed {
            return Err(io::Error::other("the archive was cut short"));
        }
        self.inner.write_vectored(bufs)
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.closed {
            return Ok(());
        }
        self.inner.flush()
    }
}

/// A tar builder whose archive is ended only by [`WholeTar::finish`]; dropped before
/// that, it leaves the stream unended.
pub struct WholeTar<W: Write> {
    builder: Option<tar::Builder<Closable<W>>>,
}

impl<W: Write> WholeTar<W> {
    pub fn new(out: W) -> Self {
        Self {
            builder: Some(tar::Builder::new(Closable {
                inner: out,
                closed: false,
            })),
        }
    }

    /// The builder to append entries with.
    pub fn builder(&mut self) -> &mut tar::Builder<Closable<W>> {
        self.builder
            .as_mut()
            .expect("a WholeTar is used until finished")
    }

    /// Ends the archive and flushes its output.
    pub fn finish(mut self) -> io::Result<()> {
        match self.builder.take() {
            Some(builder) => builder.into_inner()?.flush(),
            None => Ok(()),
        }
    }
}

impl<W: Write> Drop for WholeTar<W> {
    fn drop(&mut self) {
        // Not finished: the builder's own drop would end the archive, so its output is
        // closed first.
        if let Some(builder) = self.builder.as_mut() {
            builder.get_mut().closed = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn add(tar: &mut WholeTar<&mut Vec<u8>>, name: &str) -> io::Result<()> {
        let mut header = tar::Header::new_gnu();
        header.set_size(5);
        header.set_mode(0o644);
        tar.builder().append_data(&mut header, name, &b"hello"[..])
    }

    fn entries(stream: &[u8]) -> (Vec<String>, bool) {
        let mut archive = tar::Archive::new(stream);
        let mut names = Vec::new();
        let mut whole = true;
        for entry in archive.entries().unwrap() {
            match entry {
                Ok(entry) => names.push(entry.path().unwrap().display().to_string()),
                Err(_) => whole = false,
            }
        }
        (names, whole)
    }

    #[test]
    fn a_finished_archive_is_ended() {
        let mut out = Vec::new();
        let mut tar = WholeTar::new(&mut out);
        add(&mut tar, "a").unwrap();
        tar.finish().unwrap();
        assert!(out.ends_with(&[0; 1024]));
        assert_eq!(entries(&out), (vec!["a".to_owned()], true));
    }

    #[test]
    fn an_archive_dropped_between_entries_is_left_unended() {
        let mut out = Vec::new();
        let mut tar = WholeTar::new(&mut out);
        add(&mut tar, "a").unwrap();
        drop(tar);
        // Header and one block of content: no end-of-archive after them.
        assert_eq!(out.len(), 1024);
        assert!(!out.ends_with(&[0; 512]), "the stream was ended");
    }

    #[test]
    fn a_plain_tar_builder_would_have_ended_it() {
        // What this module is for: tar's Builder ends the archive on drop.
        let mut out = Vec::new();
        let mut builder = tar::Builder::new(&mut out);
        let mut header = tar::Header::new_gnu();
        header.set_size(5);
        builder
            .append_data(&mut header, "a", &b"hello"[..])
            .unwrap();
        drop(builder);
        assert!(out.ends_with(&[0; 1024]));
    }
}
