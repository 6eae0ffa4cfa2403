//! Resumable uploads: create, append at the agreed offset (optionally checksummed), query,
//! terminate, and expire when abandoned. The REST face speaks tus 1.0 over these.

use std::io::{BufRead, Write};
use std::time::Duration;

use airlock_api::{ErrorCode, WriteResult};
use airlock_fs::{Checksums, FileOwner, FsError, Hasher, PartialFile, SandboxFs, WriteOptions};

use super::files::{DEFAULT_FILE_MODE, parse, written};
use super::record::now_secs;
use super::records::SandboxUploads;
pub use super::upload_new::{ChunkChecksum, NewUpload};
use super::upload_record::{UploadRecord, new_upload_id};
use super::{Service, blocking};
use crate::ApiError;
use crate::body::{BodyPump, ByteStream};
use crate::caps::Work;
use crate::{Need, Principal};

/// Where an upload stands after a request.
#[derive(Debug, Clone)]
pub struct UploadState {
    pub record: UploadRecord,
    /// The finished file, once the last byte is in.
    pub done: Option<WriteResult>,
}

impl Service {
    /// Registers an upload and makes its empty partial file. A zero-length upload is
    /// complete at once.
    pub async fn create_upload(
        &self,
        caller: &Principal,
        id: &str,
        new: NewUpload,
    ) -> Result<UploadState, ApiError> {
        let audit = self
            .audit(caller, "upload.create", Some(id))
            .path(&new.path);
        let result = async {
            let dest = parse(&new.path)?;
            if let Some(mode) = new.mode {
                crate::options::check_mode(mode)?;
            }
            let record = UploadRecord {
                id: new_upload_id(),
                path: dest.to_string(),
                length: new.length,
                offset: 0,
                mode: new.mode,
                mtime: new.mtime,
                overwrite: new.overwrite.unwrap_or(true),
                sha256: new.sha256,
                crc64nvme: new.crc64nvme,
                checksum: new.checksum,
                partial: String::new(),
                metadata: new.metadata,
                expires_at: now_secs() + self.upload_expiry.as_secs(),
            };
            let uploads = self.uploads_of(id);
            self.on_root(caller, id, Need::Write, move |root| {
                let mut record = record;
                record.partial = root.create_partial(&dest, true, FileOwner::SANDBOX_USER)?;
                if let Err(e) = uploads.save(&record) {
                    let _ = root.discard_partial(&dest, &record.partial);
                    return Err(ApiError::internal("saving an upload record", e));
                }
                if record.length == 0 {
                    return finish(root, &uploads, record, None);
                }
                Ok(UploadState { record, done: None })
            })
            .await
        }
        .await;
        audit.done(result)
    }

    /// Where upload `upload` stands (404 when unknown, finished or expired). An upload
    /// whose last byte is in but whose commit a crash cut short is committed now, so a
    /// client told "complete" finds its file.
    pub async fn upload_status(
        &self,
        caller: &Principal,
        id: &str,
        upload: &str,
    ) -> Result<UploadRecord, ApiError> {
        self.require(caller, id, Need::Write)?;
        // A request still appending (its client gone, the daemon not yet aware) is asked
        // to stop first, so the offset answered is the one the next append must give.
        let _busy = self.upload_claims.take(id, upload).await?;
        let uploads = self.uploads_of(id);
        let record = {
            let (uploads, upload) = (uploads.clone(), upload.to_owned());
            blocking(move || find(&uploads, &upload)).await??
        };
        if record.offset < record.length {
            return Ok(record);
        }
        self.on_root(caller, id, Need::Write, move |root| {
            let record = find(&uploads, &record.id)?;
            if record.offset < record.length {
                return Ok(record);
            }
            tracing::warn!(upload = %record.id, "committing an upload a crash left complete");
            finish(root, &uploads, record, None).map(|state| state.record)
        })
        .await
    }

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
        let mut audit = self.audit(caller, "upload.append", Some(id)).target(upload);
        let result = async {
            let root = self.root_of(caller, id, Need::Write)?;
            let busy = self.upload_claims.take(id, upload).await?;
            let _slot = self.slot(id, Work::Upload)?;
            let uploads = self.uploads_of(id);
            let upload = upload.to_owned();
            let expiry = self.upload_expiry;
            let (body, pump) = BodyPump::new(busy.stoppable(body));
            let outcome = blocking(move || {
                let root = &root;
                let mut record = find(&uploads, &upload)?;
                if offset != record.offset {
                    return Err(ApiError::conflict(format!(
                        "Upload-Offset is {offset} but the upload stands at {}",
                        record.offset
                    )));
                }
                let Appended { kept, ended, whole } = append(&**root, &record, checksum, body);
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
            pump.finish().await;
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

    /// Abandons an upload: its partial file and record go.
    pub async fn terminate_upload(
        &self,
        caller: &Principal,
        id: &str,
        upload: &str,
    ) -> Result<(), ApiError> {
        let audit = self.audit(caller, "upload.cancel", Some(id)).target(upload);
        let result = async {
            self.require(caller, id, Need::Write)?;
            let _busy = self.upload_claims.take(id, upload).await?;
            let uploads = self.uploads_of(id);
            let upload = upload.to_owned();
            self.on_root(caller, id, Need::Write, move |root| {
                let record = find(&uploads, &upload)?;
                forget(root, &uploads, &record);
                Ok(())
            })
            .await
        }
        .await;
        audit.done(result)
    }

    /// Removes abandoned uploads, forever.
    pub async fn expire_uploads_forever(self: std::sync::Arc<Self>) {
        let tick = (self.upload_expiry / 2).clamp(Duration::from_secs(1), Duration::from_secs(60));
        loop {
            tokio::time::sleep(tick).await;
            for entry in self.entries() {
                let uploads = self.uploads_of(&entry.id);
                let now = now_secs();
                for record in uploads.all() {
                    if record.expires_at > now {
                        continue;
                    }
                    // One in use is not abandoned: left to its request.
                    let Ok(_busy) = self.upload_claims.try_claim(&entry.id, &record.id) else {
                        continue;
                    };
                    let Ok(root) = self.root_unchecked(&entry.id) else {
                        continue;
                    };
                    let uploads = uploads.clone();
                    // All bytes in but never committed (a crash came between): the file
                    // is whole, so it is committed rather than thrown away.
                    let _ = blocking(move || {
                        if record.offset == record.length {
                            let _ = finish(&*root, &uploads, record, None);
                        } else {
                            forget(&*root, &uploads, &record);
                        }
                    })
                    .await;
                    tracing::info!(id = %entry.id, "abandoned upload expired");
                }
            }
        }
    }
}

fn find(uploads: &SandboxUploads, upload: &str) -> Result<UploadRecord, ApiError> {
    match uploads.load(upload) {
        Ok(Some(record)) if record.expires_at > now_secs() => Ok(record),
        Ok(_) => Err(ApiError::not_found(format!(
            "no upload {upload} (finished, terminated, expired or never made)"
        ))),
        Err(e) => Err(ApiError::internal("reading an upload record", e)),
    }
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
    mut body: impl BufRead,
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
    let mut whole = (record.offset == 0).then(|| Hasher::new(&checks));
    let (copied, result) = copy_counted(&mut body, &mut file, room + 1, &mut checksum, &mut whole);
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
            whole: whole
                .filter(|_| copied == room)
                .map(|hasher| (file, hasher.finish())),
        },
    }
}

/// Copies at most `limit` bytes, hashing into the checksum if any; returns how many were
/// written and how the copy ended. Each piece is written from the reader's own buffer,
/// as the socket delivered it: one copy fewer than reading it into ours first.
fn copy_counted(
    from: &mut impl BufRead,
    to: &mut impl Write,
    limit: u64,
    checksum: &mut Option<ChunkChecksum>,
    whole: &mut Option<Hasher>,
) -> (u64, std::io::Result<()>) {
    let mut copied = 0u64;
    while copied < limit {
        let piece = match from.fill_buf() {
            Ok(piece) => piece,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return (copied, Err(e)),
        };
        let n = usize::try_from(limit - copied).map_or(piece.len(), |left| piece.len().min(left));
        if n == 0 {
            break;
        }
        let piece = &piece[..n];
        if let Err(e) = to.write_all(piece) {
            return (copied, Err(e));
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
    (copied, to.flush())
}

/// Commits a complete upload. Whatever happens, the upload is over: a failure (a wrong
/// whole-file checksum, a destination that appeared meanwhile) removes the partial file.
fn finish(
    root: &dyn SandboxFs,
    uploads: &SandboxUploads,
    record: UploadRecord,
    whole: Option<(Box<dyn PartialFile>, Checksums)>,
) -> Result<UploadState, ApiError> {
    let dest = parse(&record.path)?;
    let mut opts = WriteOptions::new(
        record.mode.unwrap_or(DEFAULT_FILE_MODE),
        FileOwner::SANDBOX_USER,
    );
    opts.overwrite = record.overwrite;
    opts.mtime = record.mtime.map(|secs| (secs, 0));
    opts.checks = record.checks()?;
    let committed = match whole {
        Some((file, checksums)) => {
            root.commit_partial_written(&dest, &record.partial, opts, &*file, checksums)
        }
        None => root.commit_partial(&dest, &record.partial, opts),
    };
    if committed.is_err() {
        forget(root, uploads, &record);
    } else if let Err(e) = uploads.remove(&record.id) {
        tracing::warn!(%e, "removing a finished upload's record");
    }
    let done = match committed {
        Ok(done) => done,
        Err(mismatch) if mismatch.kind() == airlock_fs::FsErrorKind::ChecksumMismatch => {
            return Err(ApiError::new(
                ErrorCode::ChecksumMismatch,
                mismatch.to_string(),
            ));
        }
        Err(other) => return Err(other.into()),
    };
    Ok(UploadState {
        record,
        done: Some(written(&done)),
    })
}

/// Removes an upload's partial file and record.
fn forget(root: &dyn SandboxFs, uploads: &SandboxUploads, record: &UploadRecord) {
    if let Ok(dest) = parse(&record.path)
        && let Err(e) = root.discard_partial(&dest, &record.partial)
    {
        tracing::warn!(%e, "removing a partial upload");
    }
    if let Err(e) = uploads.remove(&record.id) {
        tracing::warn!(%e, "removing an upload record");
    }
}
