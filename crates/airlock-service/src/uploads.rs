//! Resumable uploads: create, query, terminate, commit, and expire when abandoned (the
//! appends are `upload_append.rs`). The REST face speaks tus 1.0 over these.

use std::time::Duration;

use airlock_api::{ErrorCode, WriteResult};
use airlock_fs::{Checksums, FileOwner, PartialFile, SandboxFs, WriteOptions};

use super::files::{DEFAULT_FILE_MODE, parse, written};
use super::record::now_secs;
use super::records::SandboxUploads;
pub use super::upload_new::{ChunkChecksum, NewUpload};
use super::upload_record::{UploadRecord, new_upload_id};
use super::{Service, blocking};
use crate::ApiError;
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

pub(super) fn find(uploads: &SandboxUploads, upload: &str) -> Result<UploadRecord, ApiError> {
    match uploads.load(upload) {
        Ok(Some(record)) if record.expires_at > now_secs() => Ok(record),
        Ok(_) => Err(ApiError::not_found(format!(
            "no upload {upload} (finished, terminated, expired or never made)"
        ))),
        Err(e) => Err(ApiError::internal("reading an upload record", e)),
    }
}

/// Commits a complete upload. Whatever happens, the upload is over: a failure (a wrong
/// whole-file checksum, a destination that appeared meanwhile) removes the partial file.
pub(super) fn finish(
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
