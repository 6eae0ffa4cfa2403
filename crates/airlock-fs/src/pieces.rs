//! A blocking reader over a body that arrives in pieces (a network stream's chunks): the
//! engine reads each piece where it lies, and the caller says only how to wait for the
//! next one.
//!
//! Why: a bridge that went back to the async runtime on every `read` cost an unpacked
//! tar of small files a runtime entry per header and per file; this reader waits only
//! when the piece in hand is used up.

use std::io::{self, BufRead, Read};

/// Where a [`PieceReader`]'s pieces come from. `next_piece` may block: the reader is for
/// a blocking thread.
pub trait Pieces {
    /// A piece of the body.
    type Piece: AsRef<[u8]>;
    /// The next piece, an error that broke the body, or `None` at its end.
    fn next_piece(&mut self) -> Option<io::Result<Self::Piece>>;
}

/// Reads a body from its pieces, asking for the next only when one is used up, and
/// never again once the body has ended.
pub struct PieceReader<P: Pieces> {
    source: P,
    piece: Option<P::Piece>,
    at: usize,
    ended: bool,
}

impl<P: Pieces> PieceReader<P> {
    pub fn new(source: P) -> Self {
        Self {
            source,
            piece: None,
            at: 0,
            ended: false,
        }
    }

    fn left(&self) -> &[u8] {
        self.piece
            .as_ref()
            .map_or(&[], |piece| &piece.as_ref()[self.at..])
    }

    /// Waits until bytes are in hand or the body has ended.
    fn refill(&mut self) -> io::Result<()> {
        while self.left().is_empty() && !self.ended {
            self.at = 0;
            self.piece = None;
            match self.source.next_piece() {
                Some(Ok(piece)) => self.piece = Some(piece),
                Some(Err(e)) => return Err(e),
                None => self.ended = true,
            }
        }
        Ok(())
    }
}

impl<P: Pieces> Read for PieceReader<P> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        self.refill()?;
        let left = self.left();
        let n = left.len().min(buf.len());
        buf[..n].copy_from_slice(&left[..n]);
        self.at += n;
        Ok(n)
    }
}

impl<P: Pieces> BufRead for PieceReader<P> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        self.refill()?;
        Ok(self.left())
    }

    fn consume(&mut self, n: usize) {
        self.at += n.min(self.left().len());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pieces from a list; asking past its end is a bug the reader must not have.
    struct Listed(std::vec::IntoIter<io::Result<&'static [u8]>>, bool);

    impl Pieces for Listed {
        type Piece = &'static [u8];
        fn next_piece(&mut self) -> Option<io::Result<&'static [u8]>> {
            assert!(!self.1, "asked for a piece after the end");
            let next = self.0.next();
            self.1 = next.is_none();
            next
        }
    }

    fn reader(pieces: Vec<io::Result<&'static [u8]>>) -> PieceReader<Listed> {
        PieceReader::new(Listed(pieces.into_iter(), false))
    }

    #[test]
    fn small_reads_cross_pieces_in_order_and_the_end_stays_the_end() {
        let mut r = reader(vec![Ok(b"ab"), Ok(b""), Ok(b"cdefg"), Ok(b"h")]);
        let (mut out, mut buf) = (Vec::new(), [0; 3]);
        loop {
            match r.read(&mut buf).unwrap() {
                0 => break,
                n => out.extend_from_slice(&buf[..n]),
            }
        }
        assert_eq!(out, b"abcdefgh");
        assert_eq!(r.read(&mut buf).unwrap(), 0);
        assert!(r.fill_buf().unwrap().is_empty());
    }

    #[test]
    fn buf_read_sees_each_piece_whole_and_lines_span_pieces() {
        let mut r = reader(vec![Ok(b"one\ntw"), Ok(b"o\nthree")]);
        assert_eq!(r.fill_buf().unwrap(), b"one\ntw");
        r.consume(4);
        assert_eq!(r.fill_buf().unwrap(), b"tw");
        let lines: Vec<String> = r.lines().map(Result::unwrap).collect();
        assert_eq!(lines, ["two", "three"]);
    }

    #[test]
    fn a_broken_body_fails_after_what_came_before_it() {
        let broke = io::Error::from(io::ErrorKind::ConnectionAborted);
        let mut r = reader(vec![Ok(b"abcd"), Err(broke)]);
        let mut out = Vec::new();
        let err = r.read_to_end(&mut out).unwrap_err();
        assert_eq!(
            (out.as_slice(), err.kind()),
            (&b"abcd"[..], io::ErrorKind::ConnectionAborted)
        );
    }
}
