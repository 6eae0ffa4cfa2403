//! Where the service keeps what it must remember across restarts: each sandbox's record
//! and each resumable upload's. The service holds a [`RecordStore`]; on one machine the
//! records are JSON files under the daemon's home ([`FileRecords`]), written atomically.
//! A backend whose gateway keeps no state of its own would keep them elsewhere (in the
//! cluster's API).

use std::fmt::Debug;
use std::io;
use std::sync::Arc;

use airlock_sandbox::Layout;

use crate::record::SandboxRecord;
use crate::upload_record::UploadRecord;

/// Sandbox and upload records.
pub trait RecordStore: Send + Sync + Debug {
    /// Saves a sandbox's record over the last one. The sandbox's storage must exist:
    /// a record is never what brings a sandbox into being, so a save racing a delete
    /// cannot bring one back.
    fn save_sandbox(&self, record: &SandboxRecord) -> io::Result<()>;
    /// Saves `change` made to the sandbox's record as the store holds it now, and
    /// answers what was saved: a change another daemon sharing the store made meanwhile
    /// (a timeout set through another gateway) is kept, not overwritten by this
    /// daemon's copy. `held` is that copy, which is what a store only this daemon
    /// writes holds.
    fn change_sandbox(
        &self,
        held: &SandboxRecord,
        change: &mut dyn FnMut(&mut SandboxRecord),
    ) -> io::Result<SandboxRecord> {
        let mut next = held.clone();
        change(&mut next);
        self.save_sandbox(&next)?;
        Ok(next)
    }
    /// Every sandbox that has storage, with its record; `NotFound` for one whose create
    /// never finished (storage made, no record yet).
    fn sandboxes(&self) -> io::Result<Vec<(String, io::Result<SandboxRecord>)>>;
    /// Saves an upload's record over the last one.
    fn save_upload(&self, sandbox: &str, record: &UploadRecord) -> io::Result<()>;
    /// Upload `id`'s record; `None` when there is none.
    fn load_upload(&self, sandbox: &str, id: &str) -> io::Result<Option<UploadRecord>>;
    /// Forgets upload `id` (nothing to forget is not an error).
    fn remove_upload(&self, sandbox: &str, id: &str) -> io::Result<()>;
    /// Every readable upload record of a sandbox.
    fn uploads(&self, sandbox: &str) -> Vec<UploadRecord>;
}

/// Records as files under the daemon's home, beside each sandbox's storage.
#[derive(Debug)]
pub struct FileRecords {
    layout: Layout,
}

impl FileRecords {
    /// The records of the daemon whose home `layout` describes.
    pub fn new(layout: Layout) -> Self {
        Self { layout }
    }
}

impl RecordStore for FileRecords {
    fn save_sandbox(&self, record: &SandboxRecord) -> io::Result<()> {
        record.save(&self.layout.sandbox(&record.id))
    }

    fn sandboxes(&self) -> io::Result<Vec<(String, io::Result<SandboxRecord>)>> {
        std::fs::create_dir_all(self.layout.sandboxes())?;
        let mut found = Vec::new();
        for dir in std::fs::read_dir(self.layout.sandboxes())?.flatten() {
            let id = dir.file_name().to_string_lossy().into_owned();
            let record = SandboxRecord::load(&self.layout.record(&id));
            found.push((id, record));
        }
        Ok(found)
    }

    fn save_upload(&self, sandbox: &str, record: &UploadRecord) -> io::Result<()> {
        record.save(&self.layout.uploads(sandbox))
    }

    fn load_upload(&self, sandbox: &str, id: &str) -> io::Result<Option<UploadRecord>> {
        UploadRecord::load(&self.layout.uploads(sandbox), id)
    }

    fn remove_upload(&self, sandbox: &str, id: &str) -> io::Result<()> {
        UploadRecord::remove(&self.layout.uploads(sandbox), id)
    }

    fn uploads(&self, sandbox: &str) -> Vec<UploadRecord> {
        UploadRecord::all(&self.layout.uploads(sandbox))
    }
}

/// One sandbox's upload records: what the upload state machine reads and writes.
#[derive(Debug, Clone)]
pub(crate) struct SandboxUploads {
    store: Arc<dyn RecordStore>,
    sandbox: String,
}

impl SandboxUploads {
    pub(crate) fn new(store: Arc<dyn RecordStore>, sandbox: &str) -> Self {
        Self {
            store,
            sandbox: sandbox.to_owned(),
        }
    }

    pub(crate) fn save(&self, record: &UploadRecord) -> io::Result<()> {
        self.store.save_upload(&self.sandbox, record)
    }

    pub(crate) fn load(&self, id: &str) -> io::Result<Option<UploadRecord>> {
        self.store.load_upload(&self.sandbox, id)
    }

    pub(crate) fn remove(&self, id: &str) -> io::Result<()> {
        self.store.remove_upload(&self.sandbox, id)
    }

    pub(crate) fn all(&self) -> Vec<UploadRecord> {
        self.store.uploads(&self.sandbox)
    }
}
