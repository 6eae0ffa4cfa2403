//! Where each byte of the daemon's HTTP/2 output falls. A server's output is frames from
//! its first byte (its preface is a SETTINGS frame), each a 9-byte head giving the
//! payload's length, type, flags and stream, then the payload. [`FrameCursor`] follows
//! them as the bytes are written, so the connection's stream (`h2_sendfile`) knows whose
//! DATA payload the next byte is.

/// A frame head's length.
pub(crate) const HEAD_LEN: usize = 9;
/// The DATA frame type.
pub(crate) const DATA: u8 = 0x0;
/// The HEADERS frame type.
pub(crate) const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const END_STREAM: u8 = 0x1;
/// The flag of a DATA frame whose payload carries padding (h2 never sends one).
pub(crate) const PADDED: u8 = 0x8;

/// What the next bytes of the output are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Next {
    /// The next this many bytes (at most) of a frame's head.
    Head(usize),
    /// The rest, `left` bytes, of the payload of a frame of type `kind` on `stream`.
    Payload {
        kind: u8,
        flags: u8,
        stream: u32,
        left: usize,
    },
}

/// The position in the output: within a frame's head, or within its payload.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct FrameCursor {
    head: [u8; HEAD_LEN],
    head_len: usize,
    kind: u8,
    flags: u8,
    stream: u32,
    left: usize,
}

impl FrameCursor {
    pub(crate) fn next(&self) -> Next {
        if self.head_len < HEAD_LEN {
            return Next::Head(HEAD_LEN - self.head_len);
        }
        Next::Payload {
            kind: self.kind,
            flags: self.flags,
            stream: self.stream,
            left: self.left,
        }
    }

    /// Takes the next bytes of a head (no more than [`Next::Head`] said). Answers the
    /// stream whose sending a frame just finished ends, if one did.
    pub(crate) fn take_head(&mut self, bytes: &[u8]) -> Option<u32> {
        let end = self.head_len + bytes.len();
        assert!(end <= HEAD_LEN, "more head bytes than a head holds");
        self.head[self.head_len..end].copy_from_slice(bytes);
        self.head_len = end;
        if end < HEAD_LEN {
            return None;
        }
        let h = self.head;
        self.left = u32::from_be_bytes([0, h[0], h[1], h[2]]) as usize;
        self.kind = h[3];
        self.flags = h[4];
        self.stream = u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & 0x7fff_ffff;
        if self.left == 0 {
            return self.finish();
        }
        None
    }

    /// Takes `n` bytes of the payload (no more than [`Next::Payload`] left); answers as
    /// [`Self::take_head`] does.
    pub(crate) fn take_payload(&mut self, n: usize) -> Option<u32> {
        assert!(
            self.head_len == HEAD_LEN && n <= self.left,
            "payload bytes past the frame"
        );
        self.left -= n;
        if self.left == 0 && n > 0 {
            return self.finish();
        }
        None
    }

    fn finish(&mut self) -> Option<u32> {
        self.head_len = 0;
        let ends = match self.kind {
            DATA | HEADERS => self.flags & END_STREAM != 0,
            RST_STREAM => true,
            _ => false,
        };
        (ends && self.stream != 0).then_some(self.stream)
    }
}

/// A frame's head, as the tests write frames.
#[cfg(test)]
pub(crate) fn head(len: usize, kind: u8, flags: u8, stream: u32) -> Vec<u8> {
    let mut h = (len as u32).to_be_bytes()[1..].to_vec();
    h.extend([kind, flags]);
    h.extend(stream.to_be_bytes());
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Frames fed a byte at a time: each head read whole across the pieces, each
    /// payload's length and stream known, and the frames that end a stream reported.
    #[test]
    fn frames_are_followed_a_byte_at_a_time() {
        let mut out = head(6, 0x4, 0, 0); // SETTINGS
        out.extend([0; 6]);
        out.extend(head(3, DATA, 0, 1));
        out.extend(b"abc");
        out.extend(head(0, DATA, END_STREAM, 3)); // empty, ends stream 3
        out.extend(head(2, HEADERS, END_STREAM | 0x4, 1)); // trailers end stream 1
        out.extend([0x88, 0x89]);
        out.extend(head(4, RST_STREAM, 0, 5));
        out.extend([0, 0, 0, 8]);
        let mut cursor = FrameCursor::default();
        let mut ended = vec![];
        let mut data = vec![];
        for byte in out {
            let done = match cursor.next() {
                Next::Head(want) => {
                    assert!(want >= 1);
                    cursor.take_head(&[byte])
                }
                Next::Payload {
                    kind, stream, left, ..
                } => {
                    assert!(left >= 1);
                    if kind == DATA {
                        data.push((stream, byte));
                    }
                    cursor.take_payload(1)
                }
            };
            ended.extend(done);
        }
        assert_eq!(ended, [3, 1, 5]);
        assert_eq!(data, [(1, b'a'), (1, b'b'), (1, b'c')]);
        assert_eq!(cursor.next(), Next::Head(HEAD_LEN));
    }

    /// The reserved bit of a stream id is not part of it.
    #[test]
    fn the_reserved_bit_is_dropped() {
        let mut cursor = FrameCursor::default();
        cursor.take_head(&head(1, DATA, 0, 0x8000_0007));
        assert_eq!(
            cursor.next(),
            Next::Payload {
                kind: DATA,
                flags: 0,
                stream: 7,
                left: 1
            }
        );
    }
}
