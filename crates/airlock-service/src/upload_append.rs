//! Appends to a resumable upload at the agreed offset (optionally checksummed), in two
//! steps as whole-file writes are (`put_file.rs`): everything that can refuse the append
//! before its body, then the body. A face that answers before it reads the body (REST's
//! raw body) asks for the first step, answers, and hands the body to the second.

use std::io::{BufRead, Write};
use std::sync::Arc;

use airlock_api::ErrorCode;
use airlock_fs::{Checksums, FsError, Hasher, Moved, PartialFile, SandboxFs, SocketBody};

use super::files::parse;
use super::record::now_secs;
use super::upload_record::UploadRecord;
use super::uploads::{ChunkChecksum, UploadState, find, finish};
use super::{Service, blocking};
use crate::ApiError;
use crate::audit::Pending;
use crate::body::{BodyPump, ByteStream};
use crate::caps::{Slot, Work};
use crate::{Need, Principal};

/// An append admitted and waiting for its body. Dropped unsent, it is audited as
/// abandoned.
pub struct AdmittedAppend {
    audit: Pending,
    sandbox: String,
    upload: String,
    offset: u64,
    checksum: Option<ChunkChecksum>,
    root: Arc<dyn SandboxFs>,
    _slot: Slot,
}

/// Where an append's bytes come from.
pub enum AppendBody {
    /// Chunks, as any face delivers them.
    Stream(ByteStream),
    /// The rest of a connection, for the engine to take from the socket itself.
    Socket(SocketBody),
}

impl Service {
    /// Appends `body` at `offset`, which must be where the upload stands. Bytes that
    /// arrive are kept even if the client goes away, unless a chunk checksum was sent
    /// (then the chunk counts only whole and correct). The last byte commits the file.
    pub async fn append_upload(
        &self,
        caller: &Principal,
        id: &str,
        upload: &str,
        offset: u64,
        checksum: Option<ChunkChecksum>,
        body: ByteStream,
    ) -> Result<UploadState, ApiError> {
        let admitted = self
            .admit_append(caller, id, upload, offset, checksum, None)
            .await?;
        self.finish_append(admitted, AppendBody::Stream(body)).await
    }

    /// Checks an append before its body. `raw` is the length of a body the engine will
    /// take from the socket itself: such an append must also start where the upload
    /// stands and end within it now, since the client waits for the go-ahead, and
    /// carries no chunk checksum (its bytes never pass through the daemon to be hashed
    /// on the way; the whole file's checksum, given at creation, still holds it).
    pub async fn admit_append(
        &self,
        caller: &Principal,
        id: &str,
        upload: &str,
        offset: u64,
        checksum: Option<ChunkChecksum>,
        raw: Option<u64>,
    ) -> Result<AdmittedAppend, ApiError> {
        let audit = self.audit(caller, "upload.append", Some(id)).target(upload);
        // Asked here: the checksum's hasher may not be shared across the awaits below.
        let checksummed = checksum.is_some();
        let admitted = async {
            let root = self.root_of(caller, id, Need::Write)?;
            let slot = self.slot(id, Work::Upload)?;
            if let Some(length) = raw {
                if checksummed {
                    return Err(ApiError::bad_request(
                        "a raw body cannot carry Upload-Checksum: send the chunk as a plain \
                         body, or give the file's checksum when creating the upload",
                    ));
                }
                let (uploads, upload) = (self.uploads_of(id), upload.to_owned());
                let record = blocking(move || find(&uploads, &upload)).await??;
                starts_at(&record, offset)?;
                fits(&record, length)?;
            }
            Ok((root, slot))
        }
        .await;
        match admitted {
            Ok((root, slot)) => Ok(AdmittedAppend {
                audit,
                sandbox: id.to_owned(),
                upload: upload.to_owned(),
                offset,
                checksum,
                root,
                _slot: slot,
            }),
            Err(err) => audit.done(Err(err)),
        }
    }

    /// Writes an admitted append's body and, after the last byte, commits the file.
    pub async fn finish_append(
        &self,
        admitted: AdmittedAppend,
        body: AppendBody,
    ) -> Result<UploadState, ApiError> {
        let AdmittedAppend {
            mut audit,
            sandbox,
            upload,
            offset,
            checksum,
            root,
            _slot,
        } = admitted;
        let result = async {
            let busy = self.upload_claims.take(&sandbox, &upload).await?;
            let uploads = self.uploads_of(&sandbox);
            let expiry = self.upload_expiry;
            // A newer request for the upload stops this one after what has arrived: a
            // stream ends, a socket's reading is shut.
            let (source, pump, stopping) = match body {
                AppendBody::Stream(body) => {
                    let (reader, pump) = BodyPump::new(busy.stoppable(body));
                    (Source::Read(Box::new(reader)), Some(pump), None)
                }
                AppendBody::Socket(body) => {
                    let stopper = body
                        .stopper()
                        .map_err(|e| ApiError::internal("a raw body's connection", e))?;
                    let stopped = busy.stopped();
                    let watch = tokio::spawn(async move {
                        stopped.await;
                        stopper.stop();
                    });
                    (Source::Socket(body), None, Some(watch))
                }
            };
            let outcome = blocking(move || {
                let root = &root;
                let mut record = find(&uploads, &upload)?;
                starts_at(&record, offset)?;
                let Appended { kept, ended, whole } = append(&**root, &record, checksum, source);
                record.offset += kept;
                record.expires_at = now_secs() + expiry.as_secs();
                uploads
                    .save(&record)
                    .map_err(|e| ApiError::internal("saving an upload record", e))?;
                ended?;
                if record.offset == record.length {
                    return finish(&**root, &uploads, record, whole);
                }
                Ok(UploadState { record, done: None })
            })
            .await;
            // The file is as the engine left it: a newer request may go on from here.
            let taken_over = busy.taken_over();
            drop(busy);
            if let Some(pump) = pump {
                pump.finish().await;
            }
            if let Some(watch) = stopping {
                watch.abort();
            }
            match outcome? {
                // What it had is saved; the client (if it is still there) must ask where
                // the upload stands, as after any conflict.
                Err(_) if taken_over => Err(ApiError::conflict(
                    "a newer request for this upload took it over; ask where it stands",
                )),
                outcome => outcome,
            }
        }
        .await;
        if let Ok(value) = &result {
            audit.set_path(&value.record.path);
            if let Some(done) = &value.done {
                audit.bytes(done.entry.size);
                audit.checksums(done);
                self.metrics.upload_committed();
            }
        }
        audit.done(result)
    }
}

/// Refuses an append that does not start where the upload stands.
fn starts_at(record: &UploadRecord, offset: u64) -> Result<(), ApiError> {
    if offset == record.offset {
        return Ok(());
    }
    Err(ApiError::conflict(format!(
        "Upload-Offset is {offset} but the upload stands at {}",
        record.offset
    )))
}

/// Refuses a chunk of `length` bytes that would go past the upload's end.
fn fits(record: &UploadRecord, length: u64) -> Result<(), ApiError> {
    if length <= record.length - record.offset {
        return Ok(());
    }
    Err(ApiError::new(
        ErrorCode::TooLarge,
        format!("the chunk goes past Upload-Length {}", record.length),
    ))
}

/// An append's bytes, on the blocking thread that writes them.
enum Source {
    Read(Box<dyn BufRead + Send>),
    Socket(SocketBody),
}

/// What one request added to an upload.
struct Appended {
    /// Bytes that stay (counted even when the request then failed).
    kept: u64,
    /// How the request ended.
    ended: Result<(), ApiError>,
    /// For an upload sent whole in this one request: the file as written, and its
    /// checksums, so committing it needs no second read.
    whole: Option<(Box<dyn PartialFile>, Checksums)>,
}

/// Writes the chunk after what the partial file holds.
fn append(
    root: &dyn SandboxFs,
    record: &UploadRecord,
    checksum: Option<ChunkChecksum>,
    body: Source,
) -> Appended {
    let failed = |error: ApiError| Appended {
        kept: 0,
        ended: Err(error),
        whole: None,
    };
    let dest = match parse(&record.path) {
        Ok(dest) => dest,
        Err(e) => return failed(e),
    };
    let io = |e| ApiError::from(FsError::from_io(dest.as_str(), e));
    let mut file = match root.open_partial(&dest, &record.partial) {
        Ok(file) => file,
        Err(e) => return failed(e.into()),
    };
    // Whatever an earlier broken request left past the agreed offset goes.
    if let Err(e) = file.cut_to(record.offset) {
        return failed(io(e));
    }
    let room = record.length - record.offset;
    let mut checksum = checksum;
    let checks = match record.checks() {
        Ok(checks) => checks,
        Err(e) => return failed(e),
    };
    let whole = (record.offset == 0).then(|| Hasher::new(&checks));
    let (copied, result, sums) = match body {
        Source::Read(mut reader) => {
            copy_counted(&mut reader, &mut file, room, &mut checksum, whole)
        }
        Source::Socket(mut body) => match file.local() {
            // A file on this machine: the kernel moves the bytes into it.
            Some(local) => {
                if let Err(e) = fits(record, body.length()) {
                    return failed(e);
                }
                // Checksums of the whole file only when this body completes it.
                let whole = whole.filter(|_| body.length() == room);
                let Moved { bytes, ended } = body.append_to(local, whole);
                match ended {
                    Ok(sums) => (bytes, Ok(()), sums),
                    Err(e) => (bytes, Err(e), None),
                }
            }
            None => {
                let mut reader = body.into_reader();
                copy_counted(&mut reader, &mut file, room, &mut checksum, whole)
            }
        },
    };
    let mut discard = |error: ApiError| match file.cut_to(record.offset) {
        Ok(()) => failed(error),
        Err(e) => failed(io(e)),
    };
    if copied > room {
        return discard(ApiError::new(
            ErrorCode::TooLarge,
            format!("the chunk goes past Upload-Length {}", record.length),
        ));
    }
    let chunk_matches = checksum.map(|sum| sum.hasher.finalize().as_ref() == sum.expected);
    match (result, chunk_matches) {
        // Without a checksum, every byte that arrived counts, even from a broken request.
        (Err(e), None) => Appended {
            kept: copied,
            ended: Err(io(e)),
            whole: None,
        },
        (Err(e), Some(_)) => discard(io(e)),
        (Ok(()), Some(false)) => discard(ApiError::new(
            ErrorCode::ChecksumMismatch,
            "the chunk does not match its Upload-Checksum; it was discarded",
        )),
        (Ok(()), _) => Appended {
            kept: copied,
            ended: Ok(()),
            whole: sums.filter(|_| copied == room).map(|sums| (file, sums)),
        },
    }
}

/// Copies up to one byte more than `room` (so a chunk too long is seen), hashing into
/// the chunk's checksum and the whole file's hasher if any; answers how many bytes were
/// written, how the copy ended, and the whole file's checksums. Each piece is written
/// from the reader's own buffer, as the socket delivered it: one copy fewer than
/// reading it into ours first.
fn copy_counted(
    from: &mut impl BufRead,
    to: &mut impl Write,
    room: u64,
    checksum: &mut Option<ChunkChecksum>,
    mut whole: Option<Hasher>,
) -> (u64, std::io::Result<()>, Option<Checksums>) {
    let limit = room + 1;
    let mut copied = 0u64;
    while copied < limit {
        let piece = match from.fill_buf() {
            Ok(piece) => piece,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return (copied, Err(e), None),
        };
        let n = usize::try_from(limit - copied).map_or(piece.len(), |left| piece.len().min(left));
        if n == 0 {
            break;
        }
        let piece = &piece[..n];
        if let Err(e) = to.write_all(piece) {
            return (copied, Err(e), None);
        }
        if let Some(sum) = checksum.as_mut() {
            sum.hasher.update(piece);
        }
        if let Some(hasher) = whole.as_mut() {
            hasher.update(piece);
        }
        from.consume(n);
        copied += n as u64;
    }
    (copied, to.flush(), whole.map(Hasher::finish))
}
