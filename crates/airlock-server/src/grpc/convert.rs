//! The service's answers as protobuf messages: plain field-for-field encoding.

use airlock_api as api;
use airlock_proto::v1 as pb;

pub fn entry(e: api::FileEntry) -> pb::FileEntry {
    let kind = match e.kind.as_str() {
        "file" => pb::FileType::File,
        "dir" => pb::FileType::Directory,
        "symlink" => pb::FileType::Symlink,
        _ => pb::FileType::Other,
    };
    pb::FileEntry {
        name: e.name,
        path: e.path,
        r#type: kind as i32,
        size: e.size,
        mode: e.mode.0,
        mtime: e.mtime,
        uid: e.uid,
        gid: e.gid,
        symlink_target: e.symlink_target,
        sha256: e.sha256,
        crc64nvme: e.crc64nvme,
    }
}

pub fn written(w: api::WriteResult) -> pb::WriteResult {
    pb::WriteResult {
        entry: Some(entry(w.entry)),
        sha256: w.sha256,
        crc64nvme: w.crc64nvme,
    }
}

pub fn archive(a: api::ArchiveResult) -> pb::ArchiveResult {
    pb::ArchiveResult {
        path: a.path,
        entries: a.entries,
        files: a.files,
        dirs: a.dirs,
        symlinks: a.symlinks,
        hardlinks: a.hardlinks,
        bytes: a.bytes,
        skipped: a
            .skipped
            .into_iter()
            .map(|s| pb::SkippedEntry {
                path: s.path,
                reason: s.reason,
            })
            .collect(),
    }
}

pub fn upload(state: airlock_service::UploadState) -> pb::UploadStatus {
    pb::UploadStatus {
        upload_id: state.record.id,
        offset: state.record.offset,
        size_bytes: state.record.length,
        complete: state.done.is_some(),
        result: state.done.map(written),
        expires_at: state.record.expires_at,
    }
}

pub fn batch(result: api::BatchResult) -> pb::WriteFilesResponse {
    pb::WriteFilesResponse {
        written: result.written,
        failed: result.failed,
        results: result
            .results
            .into_iter()
            .map(|item| {
                let (code, message) = item.error.map_or((String::new(), String::new()), |e| {
                    (e.code.name(), e.message)
                });
                pb::WriteFilesResult {
                    path: item.path,
                    result: item.result.map(written),
                    error_code: code,
                    error_message: message,
                }
            })
            .collect(),
    }
}

pub fn watch_event(e: api::WatchEvent) -> pb::WatchEvent {
    pb::WatchEvent {
        r#type: e.kind,
        path: e.path,
        from: e.from,
        dir: e.dir,
        message: e.message,
    }
}

pub fn limits(l: api::Limits) -> pb::Limits {
    pb::Limits {
        memory_mb: l.memory_mb,
        pids: l.pids,
        cpus: l.cpus,
        disk_mb: l.disk_mb,
    }
}

pub fn sandbox(s: api::Sandbox) -> pb::Sandbox {
    let state = match s.state {
        api::SandboxState::Pending => pb::SandboxState::Pending,
        api::SandboxState::Created => pb::SandboxState::Created,
        api::SandboxState::Running => pb::SandboxState::Running,
        api::SandboxState::Stopped => pb::SandboxState::Stopped,
        _ => pb::SandboxState::Unspecified,
    };
    pb::Sandbox {
        id: s.id,
        template: s.template,
        state: state as i32,
        env: s.env.into_iter().collect(),
        limits: Some(limits(s.limits)),
        labels: s.labels.into_iter().collect(),
        owner: s.owner,
        readonly_paths: s.readonly_paths,
        created_at: s.created_at,
        started_at: s.started_at,
        expires_at: s.expires_at,
    }
}

/// A protobuf creation request as the service's request: the same fields, bytes for
/// file content.
pub fn create_request(r: pb::CreateSandboxRequest) -> api::CreateSandbox {
    let limits = r.limits.unwrap_or_default();
    api::CreateSandbox {
        template: r.template,
        env: r.env.into_iter().collect(),
        limits: api::Limits {
            memory_mb: limits.memory_mb,
            pids: limits.pids,
            cpus: limits.cpus,
            disk_mb: limits.disk_mb,
        },
        labels: r.labels.into_iter().collect(),
        start: r.start,
        ttl_secs: r.ttl_secs,
        files: r
            .files
            .into_iter()
            .map(|f| api::InjectedFile {
                path: f.path,
                content: None,
                content_b64: Some(api::exec::b64(&f.content)),
                mode: f.mode.map(api::FileMode),
                readonly: f.readonly,
            })
            .collect(),
    }
}
