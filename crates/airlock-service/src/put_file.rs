//! Whole-file writes, in two steps: everything that can refuse a write before its body
//! (the path, the caller's door to the sandbox, the options, an upload slot), then the
//! body. A face that must answer before it reads the body (REST's upgrade to a raw
//! body, where the client waits for the go-ahead) asks for the first step, answers, and
//! hands the body to the second; the others take both at once.

use std::sync::Arc;

use airlock_api::WriteResult;
use airlock_fs::{FileOwner, SandboxFs, SandboxPath, SocketBody, WriteOptions};

use super::{Service, blocking};
use crate::ApiError;
use crate::audit::Pending;
use crate::body::{BodyPump, ByteStream, Gathered, gather_small};
use crate::caps::{Slot, Work};
use crate::files::{DEFAULT_FILE_MODE, SMALL_FILE, at_once_or_blocking, parse, written};
use crate::options::PutFile;
use crate::principal::{Need, Principal};

/// A whole-file write admitted and waiting for its body. Dropped unwritten, it is
/// audited as abandoned.
pub struct AdmittedPut {
    audit: Pending,
    path: SandboxPath,
    root: Arc<dyn SandboxFs>,
    opts: WriteOptions,
    _slot: Slot,
}

/// Where a whole file's bytes come from.
pub enum PutBody {
    /// Chunks, as any face delivers them.
    Stream(ByteStream),
    /// The rest of a connection, for the engine to take from the socket itself.
    Socket(SocketBody),
}

impl Service {
    /// Streams `body` into `path`, atomically. Returns the result and whether it was new.
    pub async fn put_file(
        &self,
        caller: &Principal,
        id: &str,
        path: &str,
        put: PutFile,
        body: ByteStream,
    ) -> Result<(WriteResult, bool), ApiError> {
        let admitted = self.admit_put(caller, id, path, put)?;
        self.finish_put(admitted, PutBody::Stream(body)).await
    }

    /// Checks a whole-file write of `path` before its body: what would refuse it with
    /// the body in hand refuses it now.
    pub fn admit_put(
        &self,
        caller: &Principal,
        id: &str,
        path: &str,
        put: PutFile,
    ) -> Result<AdmittedPut, ApiError> {
        let audit = self.audit(caller, "file.write", Some(id)).path(path);
        let admitted = (|| {
            let path = parse(path)?;
            let root = self.root_of(caller, id, Need::Write)?;
            let put = put.checked()?;
            let slot = self.slot(id, Work::Upload)?;
            let opts = WriteOptions {
                mode: put.mode.unwrap_or(DEFAULT_FILE_MODE),
                owner: FileOwner::SANDBOX_USER,
                parents: put.parents.unwrap_or(false),
                overwrite: put.overwrite.unwrap_or(true),
                mtime: put.mtime,
                checks: put.checks,
            };
            Ok((path, root, opts, slot))
        })();
        match admitted {
            Ok((path, root, opts, slot)) => Ok(AdmittedPut {
                audit,
                path,
                root,
                opts,
                _slot: slot,
            }),
            Err(err) => audit.done(Err(err)),
        }
    }

    /// Writes an admitted put's body and commits it. Returns the result and whether the
    /// file was new.
    pub async fn finish_put(
        &self,
        admitted: AdmittedPut,
        body: PutBody,
    ) -> Result<(WriteResult, bool), ApiError> {
        let AdmittedPut {
            mut audit,
            path,
            root,
            opts,
            _slot,
        } = admitted;
        let result = match body {
            PutBody::Stream(body) => write_stream(root, path, opts, body).await,
            PutBody::Socket(body) => {
                blocking(move || {
                    let done = root.write_file_from_socket(&path, body, opts)?;
                    Ok::<_, ApiError>((written(&done), done.created))
                })
                .await?
            }
        };
        if let Ok(value) = &result {
            audit.bytes(value.0.entry.size);
            audit.checksums(&value.0);
            self.metrics.upload_committed();
        }
        audit.done(result)
    }
}

/// A body of chunks into `path`: one gathered whole if it is small, else pumped to a
/// blocking writer.
async fn write_stream(
    root: Arc<dyn SandboxFs>,
    path: SandboxPath,
    opts: WriteOptions,
    body: ByteStream,
) -> Result<(WriteResult, bool), ApiError> {
    let write = move |root: &dyn SandboxFs, content: &mut dyn std::io::BufRead| {
        let done = root.write_file(&path, content, opts)?;
        Ok::<_, ApiError>((written(&done), done.created))
    };
    match gather_small(body, SMALL_FILE as usize).await {
        Gathered::Whole(bytes) => {
            at_once_or_blocking(root, move |root| write(root, &mut &bytes[..])).await
        }
        Gathered::Stream(body) => {
            let (mut reader, pump) = BodyPump::new(body);
            let outcome = blocking(move || write(&*root, &mut reader)).await;
            pump.finish().await;
            outcome?
        }
    }
}
