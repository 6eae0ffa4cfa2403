//! Many files in one request: each part is written atomically on its own, and a part that
//! fails (a bad path, a wrong checksum, a read-only target) gets its own error while the
//! rest go on. REST carries the parts as multipart, gRPC as a client stream.

use airlock_api::{BatchItem, BatchResult, ErrorDetail};

use crate::body::ByteStream;
use crate::options::{PutFile, parse_mode};
use crate::{ApiError, Principal, Service};

/// What a batch gives the parts that say nothing of their own. Unlike a single write, a
/// batch makes missing parent directories unless told not to.
#[derive(Debug, Clone, Default)]
pub struct BatchDefaults {
    /// Mode for parts that name none (`0644` when this is absent too).
    pub mode: Option<u32>,
    /// Make missing parents (default true).
    pub parents: Option<bool>,
    /// Replace existing files (default true).
    pub overwrite: Option<bool>,
}

impl BatchDefaults {
    /// The defaults from their text forms (a query string).
    pub fn from_text(
        mode: Option<&str>,
        parents: Option<bool>,
        overwrite: Option<bool>,
    ) -> Result<Self, ApiError> {
        Ok(Self {
            mode: mode.map(parse_mode).transpose()?,
            parents,
            overwrite,
        })
    }
}

/// One part: where it goes and its own options, or why they were refused (which fails
/// that part alone).
#[derive(Debug)]
pub struct BatchPart {
    /// Absolute destination.
    pub path: String,
    /// The part's own options.
    pub put: Result<PutFile, ApiError>,
}

impl Service {
    /// Writes one part of a batch; its outcome is its result, never the batch's.
    pub async fn write_batch_part(
        &self,
        caller: &Principal,
        id: &str,
        defaults: &BatchDefaults,
        part: BatchPart,
        body: ByteStream,
    ) -> BatchItem {
        let outcome = match part.put {
            Ok(put) => {
                let put = PutFile {
                    mode: put.mode.or(defaults.mode),
                    parents: put.parents.or(defaults.parents).or(Some(true)),
                    overwrite: put.overwrite.or(defaults.overwrite),
                    ..put
                };
                self.put_file(caller, id, &part.path, put, body)
                    .await
                    .map(|(result, _)| result)
            }
            Err(refused) => Err(refused),
        };
        match outcome {
            Ok(result) => BatchItem {
                path: part.path,
                result: Some(result),
                error: None,
            },
            Err(e) => BatchItem {
                path: part.path,
                result: None,
                error: Some(ErrorDetail {
                    code: e.code,
                    message: e.message,
                }),
            },
        }
    }
}

/// The answer to a batch whose stream ended cleanly.
pub fn batch_result(results: Vec<BatchItem>) -> BatchResult {
    let failed = results.iter().filter(|r| r.error.is_some()).count() as u64;
    BatchResult {
        written: results.len() as u64 - failed,
        failed,
        results,
    }
}

/// The batch's own stream broke: the parts before it stand (each was committed whole),
/// the broken one was not written, and nothing after it was read.
pub fn batch_broken(results: &[BatchItem], reason: &str) -> ApiError {
    let written = results.iter().filter(|r| r.result.is_some()).count();
    ApiError::bad_request(format!(
        "malformed or interrupted batch after {} part(s) ({written} written and kept): {reason}",
        results.len()
    ))
}
