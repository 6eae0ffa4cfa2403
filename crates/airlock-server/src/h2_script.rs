//! What each large gRPC download on an HTTP/2 connection has handed h2, byte for byte, so
//! the connection's stream (`h2_sendfile`) can send the file's part of it with `sendfile`.
//!
//! HTTP/1's downloads hand hyper *marks* (slices of a static buffer, never read), and the
//! stream knows them by their address (`sendfile.rs`). h2 breaks that: its encoder copies
//! the first bytes of nearly every DATA payload, and all of a small one, into its own
//! buffer, where a mark's bytes are just zeros. So here each download keeps a *script*:
//! its stream's DATA payload in order, as runs of real bytes (gRPC's message heads, the
//! header message, chunks read into memory) and runs of a file's window (its marks). The
//! stream follows the frames (`h2_frames`) and, for a stream with a script, sends each
//! byte by the script rather than by the buffer it finds it in.
//!
//! hyper does not say which stream a response is. A download learns it from the stream
//! before it yields any mark: its first chunks are real bytes read from the file, each
//! registered by its address as a *token*. When the connection's stream meets a token's
//! bytes in a DATA payload (h2 hands a payload beyond its copied head to the socket as the
//! chunk itself), that payload's stream is the download's, and its position there is the
//! token's position plus the offset into it. From then on (*bound*), the body yields
//! marks. A client whose flow-control windows keep every frame small enough to be
//! copied whole never binds its downloads, which then go as read + write.

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::sync::{Arc, Mutex, MutexGuard};

use airlock_service::{ByteStream, Receipt, SendsFiles};
use bytes::Bytes;

use crate::page_cache;
use crate::sendfile::{MARK_LEN, MARKS, is_mark};

/// A connection follows at most this many downloads at once; more go as read + write.
/// A bound download's script stays until its stream ends on the wire, which a client's
/// reset never shows: this bounds what such scripts hold (a file each).
const MAX_SCRIPTS: usize = 8;

/// Real chunks a download reads before it is bound.
const REAL_CHUNK: usize = 256 * 1024;

/// Tokens kept per download: enough for h2's send buffer ahead of the socket.
const MAX_TOKENS: usize = 4;

/// A run of a stream's DATA payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Segment {
    /// Bytes sent as they are.
    Real(u64),
    /// Bytes `[offset, offset + len)` of the download's file.
    File { offset: u64, len: u64 },
}

impl Segment {
    fn len(self) -> u64 {
        match self {
            Self::Real(len) | Self::File { len, .. } => len,
        }
    }
}

/// One download's script.
#[derive(Default)]
pub(crate) struct Script {
    pub(crate) file: Option<Arc<File>>,
    pub(crate) receipt: Option<Arc<Receipt>>,
    /// The stream's payload from position `front` on, as far as the body has yielded it.
    segments: VecDeque<Segment>,
    front: u64,
    /// Real chunks yielded before binding, kept (so their memory stays theirs) with their
    /// positions.
    tokens: VecDeque<(Bytes, u64)>,
    /// Windows of the file the body's marks stand for, in order, not yet yielded whole.
    marks: VecDeque<(u64, u64)>,
    /// Everything yielded so far.
    end: u64,
    /// Whether the connection's stream has tied it to its HTTP/2 stream.
    bound: bool,
}

impl Script {
    /// The segment `ahead` bytes past the front, cut to start there.
    pub(crate) fn at(&self, ahead: u64) -> Option<Segment> {
        let mut skip = ahead;
        for &segment in &self.segments {
            if skip < segment.len() {
                return Some(match segment {
                    Segment::Real(len) => Segment::Real(len - skip),
                    Segment::File { offset, len } => Segment::File {
                        offset: offset + skip,
                        len: len - skip,
                    },
                });
            }
            skip -= segment.len();
        }
        None
    }

    /// The front `n` bytes went out.
    pub(crate) fn consume(&mut self, mut n: u64) {
        while n > 0 {
            let Some(front) = self.segments.front_mut() else {
                unreachable!("consumed past the script (checked by `at` first)");
            };
            let take = n.min(front.len());
            *front = match *front {
                Segment::Real(len) => Segment::Real(len - take),
                Segment::File { offset, len } => Segment::File {
                    offset: offset + take,
                    len: len - take,
                },
            };
            if front.len() == 0 {
                self.segments.pop_front();
            }
            self.front += take;
            n -= take;
        }
    }

    fn push(&mut self, segment: Segment) {
        self.end += segment.len();
        match (self.segments.back_mut(), segment) {
            (Some(Segment::Real(last)), Segment::Real(more)) => *last += more,
            (
                Some(Segment::File { offset, len }),
                Segment::File {
                    offset: at,
                    len: more,
                },
            ) if *offset + *len == at => *len += more,
            _ => self.segments.push_back(segment),
        }
    }
}

/// The scripts of one connection.
#[derive(Default)]
pub(crate) struct Scripts {
    next_id: u64,
    pub(crate) scripts: HashMap<u64, Script>,
    /// Bound scripts by their stream.
    pub(crate) streams: HashMap<u32, u64>,
}

impl Scripts {
    /// The unbound download one of whose tokens holds the byte at `address`, and that
    /// byte's position in its stream's payload.
    pub(crate) fn token_at(&self, address: usize) -> Option<(u64, u64)> {
        self.scripts.iter().find_map(|(&id, script)| {
            script.tokens.iter().find_map(|(token, position)| {
                let start = token.as_ptr() as usize;
                (start..start + token.len())
                    .contains(&address)
                    .then(|| (id, position + (address - start) as u64))
            })
        })
    }

    /// Download `id`'s stream is `stream`, whose payload is at `position` now.
    pub(crate) fn bind(&mut self, id: u64, stream: u32, position: u64) {
        let Some(script) = self.scripts.get_mut(&id) else {
            return;
        };
        // Everything before is real bytes the stream has passed.
        let passed = position - script.front;
        script.consume(passed);
        script.tokens.clear();
        script.bound = true;
        self.streams.insert(stream, id);
    }

    /// `stream` ended on the wire: its script, if it had one, is done.
    pub(crate) fn ended(&mut self, stream: u32) {
        if let Some(id) = self.streams.remove(&stream) {
            self.scripts.remove(&id);
        }
    }
}

/// A connection's scripts, shared by its downloads and its stream.
#[derive(Clone, Default)]
pub struct H2Sends(Arc<Mutex<Scripts>>);

impl H2Sends {
    pub(crate) fn lock(&self) -> MutexGuard<'_, Scripts> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A script for a new download, unless the connection follows as many as it may.
    pub fn download(&self) -> Option<H2Download> {
        let mut scripts = self.lock();
        if scripts.scripts.len() >= MAX_SCRIPTS {
            return None;
        }
        let id = scripts.next_id;
        scripts.next_id += 1;
        scripts.scripts.insert(id, Script::default());
        Some(H2Download(Arc::new(Handle {
            sends: self.clone(),
            id,
        })))
    }
}

struct Handle {
    sends: H2Sends,
    id: u64,
}

impl Drop for Handle {
    /// An unbound script is dropped with its body: nothing of it needs the file. A bound
    /// one stays until its stream ends on the wire, as bytes of it may still be queued.
    fn drop(&mut self) {
        let mut scripts = self.sends.lock();
        if scripts.scripts.get(&self.id).is_some_and(|s| !s.bound) {
            scripts.scripts.remove(&self.id);
        }
    }
}

/// One download's side of its script: it makes the chunks ([`SendsFiles`]) and records
/// every frame of the body as it is yielded ([`Self::record`]).
#[derive(Clone)]
pub struct H2Download(Arc<Handle>);

impl H2Download {
    /// Queues a mark for bytes `[offset, offset + len)` of the file if the connection's
    /// stream has tied the download to its HTTP/2 stream; answers whether it did, so the
    /// body may yield that mark.
    fn queue_mark(&self, offset: u64, len: usize) -> bool {
        let Handle { sends, id } = &*self.0;
        let mut scripts = sends.lock();
        match scripts.scripts.get_mut(id) {
            Some(script) if script.bound => {
                script.marks.push_back((offset, len as u64));
                true
            }
            _ => false,
        }
    }

    /// Whether the connection's stream has tied it to its HTTP/2 stream.
    #[cfg(test)]
    fn is_bound(&self) -> bool {
        let Handle { sends, id } = &*self.0;
        sends.lock().scripts.get(id).is_some_and(|s| s.bound)
    }

    /// Whether a file's window was handed to it ([`SendsFiles::body`]).
    pub fn has_file(&self) -> bool {
        let Handle { sends, id } = &*self.0;
        sends
            .lock()
            .scripts
            .get(id)
            .is_some_and(|script| script.file.is_some())
    }

    /// `data`, a DATA frame's bytes the body yields next, enters the script.
    pub fn record(&self, data: &Bytes) {
        let Handle { sends, id } = &*self.0;
        let mut scripts = sends.lock();
        let Some(script) = scripts.scripts.get_mut(id) else {
            return;
        };
        if !is_mark(data) {
            if !script.bound && data.len() >= REAL_CHUNK / 4 {
                if script.tokens.len() == MAX_TOKENS {
                    script.tokens.pop_front();
                }
                let position = script.end;
                script.tokens.push_back((data.clone(), position));
            }
            script.push(Segment::Real(data.len() as u64));
            return;
        }
        let mut need = data.len() as u64;
        while need > 0 {
            let Some((offset, len)) = script.marks.front_mut() else {
                unreachable!("a mark yielded that its chunks did not queue");
            };
            let take = need.min(*len);
            let segment = Segment::File {
                offset: *offset,
                len: take,
            };
            *offset += take;
            *len -= take;
            if *len == 0 {
                script.marks.pop_front();
            }
            script.push(segment);
            need -= take;
        }
    }
}

impl SendsFiles for H2Download {
    /// Real chunks read from the file until the download is bound, then marks.
    fn body(&self, file: File, start: u64, len: u64, receipt: Arc<Receipt>) -> ByteStream {
        let file = Arc::new(file);
        {
            let mut scripts = self.0.sends.lock();
            if let Some(script) = scripts.scripts.get_mut(&self.0.id) {
                script.file = Some(file.clone());
                script.receipt = Some(receipt.clone());
            }
        }
        let end = start + len;
        let state = (self.clone(), file, start, receipt);
        let chunks = futures_util::stream::unfold(
            state,
            move |(download, file, offset, receipt)| async move {
                if offset >= end {
                    return None;
                }
                let left = end - offset;
                let mark = left.min(MARK_LEN as u64) as usize;
                let chunk = if download.queue_mark(offset, mark) {
                    page_cache::load(&file, offset, mark).await;
                    Ok(Bytes::from_static(&MARKS[..mark]))
                } else {
                    let len = left.min(REAL_CHUNK as u64) as usize;
                    read_at(&file, offset, len).await.inspect(|chunk| {
                        receipt.sent(chunk.len() as u64);
                    })
                };
                let next = chunk.as_ref().map_or(end, |c| offset + c.len() as u64);
                Some((chunk, (download, file, next, receipt)))
            },
        );
        Box::pin(chunks)
    }
}

/// Exactly `len` bytes of `file` from `offset`, read on a blocking thread; a file that
/// ends sooner is an error.
async fn read_at(file: &Arc<File>, offset: u64, len: usize) -> std::io::Result<Bytes> {
    let file = file.clone();
    tokio::task::spawn_blocking(move || {
        use std::os::unix::fs::FileExt;
        let mut buf = vec![0u8; len];
        file.read_exact_at(&mut buf, offset)?;
        Ok(Bytes::from(buf))
    })
    .await
    .map_err(std::io::Error::other)?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_script_reads_and_consumes_across_segments() {
        let mut script = Script::default();
        script.push(Segment::Real(5));
        script.push(Segment::Real(3));
        script.push(Segment::File {
            offset: 100,
            len: 10,
        });
        script.push(Segment::File {
            offset: 110,
            len: 10,
        });
        script.push(Segment::File {
            offset: 500,
            len: 4,
        });
        assert_eq!(script.segments.len(), 3, "runs merged");
        assert_eq!(script.at(0), Some(Segment::Real(8)));
        assert_eq!(script.at(7), Some(Segment::Real(1)));
        assert_eq!(
            script.at(8),
            Some(Segment::File {
                offset: 100,
                len: 20
            })
        );
        assert_eq!(
            script.at(27),
            Some(Segment::File {
                offset: 119,
                len: 1
            })
        );
        assert_eq!(
            script.at(28),
            Some(Segment::File {
                offset: 500,
                len: 4
            })
        );
        assert_eq!(script.at(32), None);
        script.consume(10);
        assert_eq!(
            script.at(0),
            Some(Segment::File {
                offset: 102,
                len: 18
            })
        );
        script.consume(22);
        assert_eq!(script.at(0), None);
        assert_eq!(script.front, 32);
    }

    #[test]
    fn a_token_binds_its_download_at_the_bytes_position() {
        let sends = H2Sends::default();
        let download = sends.download().unwrap();
        download.record(&Bytes::from_static(b"header message"));
        let chunk = Bytes::from(vec![7u8; REAL_CHUNK]);
        download.record(&chunk);
        let mut scripts = sends.lock();
        let at = chunk.as_ptr() as usize + 1000;
        let (id, position) = scripts.token_at(at).unwrap();
        assert_eq!(position, 14 + 1000);
        assert!(
            scripts
                .token_at(chunk.as_ptr() as usize + REAL_CHUNK)
                .is_none()
        );
        scripts.bind(id, 3, position);
        assert_eq!(scripts.streams[&3], id);
        let script = &scripts.scripts[&id];
        assert_eq!(script.at(0), Some(Segment::Real(REAL_CHUNK as u64 - 1000)));
        assert!(script.tokens.is_empty());
        drop(scripts);
        assert!(download.is_bound());
        // Bound: it stays past its body, until its stream ends.
        drop(download);
        assert_eq!(sends.lock().scripts.len(), 1);
        sends.lock().ended(3);
        assert!(sends.lock().scripts.is_empty());
    }

    #[test]
    fn an_unbound_script_goes_with_its_body_and_the_connection_follows_a_few() {
        let sends = H2Sends::default();
        let downloads: Vec<_> = (0..MAX_SCRIPTS)
            .map(|_| sends.download().unwrap())
            .collect();
        assert!(sends.download().is_none(), "no more than the cap");
        drop(downloads);
        assert!(sends.lock().scripts.is_empty());
        assert!(sends.download().is_some());
    }
}
