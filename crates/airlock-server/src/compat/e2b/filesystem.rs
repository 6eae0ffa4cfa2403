//! envd's `filesystem.Filesystem` Connect service (JSON codec): Stat, MakeDir, Move,
//! ListDir (with depth) and Remove, over the service's file operations.

use std::sync::Arc;

use airlock_api::FileEntry;
use airlock_service::{ListFiles, Service};
use axum::extract::State;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::Envd;
use super::connect::{Message, Unary};
use super::resolve;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PathRequest {
    #[serde(default)]
    path: String,
    #[serde(default)]
    depth: Option<u32>,
}

#[derive(Deserialize)]
pub struct MoveRequest {
    #[serde(default)]
    source: String,
    #[serde(default)]
    destination: String,
}

#[derive(Serialize)]
pub struct EntryResponse {
    entry: Value,
}

#[derive(Serialize)]
pub struct ListResponse {
    entries: Vec<Value>,
}

/// The names envd's users go by: Airlock's sandboxes have `user` (1000) and `root`.
fn user_name(id: u32) -> String {
    match id {
        0 => "root".into(),
        1000 => "user".into(),
        other => other.to_string(),
    }
}

/// `-rw-r--r--` for a mode and kind, as Go's `FileMode.String` writes it.
fn permissions(kind: &str, mode: u32) -> String {
    let mut text = String::from(match kind {
        "dir" => "d",
        "symlink" => "L",
        _ => "-",
    });
    for shift in [6, 3, 0] {
        let bits = (mode >> shift) & 0o7;
        text.push(if bits & 4 != 0 { 'r' } else { '-' });
        text.push(if bits & 2 != 0 { 'w' } else { '-' });
        text.push(if bits & 1 != 0 { 'x' } else { '-' });
    }
    text
}

/// A file entry as envd's `EntryInfo`, in protobuf's JSON mapping (int64 as a string,
/// enums by name, the timestamp in RFC 3339).
pub fn entry_info(entry: &FileEntry) -> Value {
    let kind = match entry.kind.as_str() {
        "dir" => "FILE_TYPE_DIRECTORY",
        "symlink" => "FILE_TYPE_SYMLINK",
        _ => "FILE_TYPE_FILE",
    };
    let mut info = json!({
        "name": entry.name,
        "type": kind,
        "path": entry.path,
        "size": entry.size.to_string(),
        "mode": entry.mode.0,
        "permissions": permissions(&entry.kind, entry.mode.0),
        "owner": user_name(entry.uid),
        "group": user_name(entry.gid),
        "modifiedTime": entry.mtime,
        "isSymlink": entry.kind == "symlink",
    });
    if let Some(target) = &entry.symlink_target {
        info["symlinkTarget"] = json!(target);
    }
    info
}

pub async fn stat(
    State(service): State<Arc<Service>>,
    axum::Extension(envd): axum::Extension<Envd>,
    Message(req): Message<PathRequest>,
) -> Unary<EntryResponse> {
    let entry = service
        .stat_file(&envd.caller, &envd.id, &resolve(&req.path)?)
        .await?;
    Ok(axum::Json(EntryResponse {
        entry: entry_info(&entry),
    }))
}

/// envd makes the parents too, and an existing directory is `already_exists`.
pub async fn make_dir(
    State(service): State<Arc<Service>>,
    axum::Extension(envd): axum::Extension<Envd>,
    Message(req): Message<PathRequest>,
) -> Unary<EntryResponse> {
    let path = resolve(&req.path)?;
    if service
        .stat_file(&envd.caller, &envd.id, &path)
        .await
        .is_ok()
    {
        return Err(airlock_service::ApiError::conflict(format!("{path} already exists")).into());
    }
    let made = service
        .make_dir(&envd.caller, &envd.id, &path, None, Some(true))
        .await?;
    Ok(axum::Json(EntryResponse {
        entry: entry_info(&made),
    }))
}

pub async fn rename(
    State(service): State<Arc<Service>>,
    axum::Extension(envd): axum::Extension<Envd>,
    Message(req): Message<MoveRequest>,
) -> Unary<EntryResponse> {
    let (from, to) = (resolve(&req.source)?, resolve(&req.destination)?);
    let moved = service
        .move_file(&envd.caller, &envd.id, &from, &to, Some(true))
        .await?;
    Ok(axum::Json(EntryResponse {
        entry: entry_info(&moved),
    }))
}

/// Entries under `path`, `depth` levels down (1 when absent or 0), all pages.
pub async fn list_dir(
    State(service): State<Arc<Service>>,
    axum::Extension(envd): axum::Extension<Envd>,
    Message(req): Message<PathRequest>,
) -> Unary<ListResponse> {
    let path = resolve(&req.path)?;
    let listing = ListFiles {
        path,
        depth: Some(req.depth.unwrap_or(1).max(1)),
        ..ListFiles::default()
    };
    let all = service
        .list_all_files(&envd.caller, &envd.id, listing)
        .await?;
    let entries = all.iter().map(entry_info).collect();
    Ok(axum::Json(ListResponse { entries }))
}

#[derive(Serialize)]
pub struct Empty {}

pub async fn remove(
    State(service): State<Arc<Service>>,
    axum::Extension(envd): axum::Extension<Envd>,
    Message(req): Message<PathRequest>,
) -> Unary<Empty> {
    service
        .remove_file(&envd.caller, &envd.id, &resolve(&req.path)?, Some(true))
        .await?;
    Ok(axum::Json(Empty {}))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WatchRequest {
    #[serde(default)]
    path: String,
    #[serde(default)]
    recursive: bool,
    #[serde(default)]
    include_entry: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WatcherRequest {
    #[serde(default)]
    watcher_id: String,
}

/// An Airlock watch event as envd's `FilesystemEvent`: the name relative to the watched
/// directory and the kind by name; none for the events envd has no kind for (ready,
/// overflow, error).
fn filesystem_event(root: &str, event: &airlock_api::WatchEvent) -> Option<Value> {
    let kind = match event.kind.as_str() {
        "create" => "EVENT_TYPE_CREATE",
        "write" => "EVENT_TYPE_WRITE",
        "remove" => "EVENT_TYPE_REMOVE",
        "rename" => "EVENT_TYPE_RENAME",
        "chmod" => "EVENT_TYPE_CHMOD",
        _ => return None,
    };
    let name = event
        .path
        .strip_prefix(root)
        .unwrap_or(&event.path)
        .trim_start_matches('/');
    Some(json!({"name": name, "type": kind}))
}

/// Adds the entry an event names, when asked and when it is still there.
async fn with_entry(service: &Service, envd: &Envd, path: &str, mut event: Value) -> Value {
    if let Ok(entry) = service.stat_file(&envd.caller, &envd.id, path).await {
        event["entry"] = entry_info(&entry);
    }
    event
}

/// `WatchDir`: `start`, then the directory's events as they happen.
pub async fn watch_dir(
    State(service): State<Arc<Service>>,
    axum::Extension(envd): axum::Extension<Envd>,
    super::connect::Enveloped(req): super::connect::Enveloped<WatchRequest>,
) -> Result<axum::response::Response, super::connect::ConnectError> {
    use futures_util::StreamExt;
    let root = resolve(&req.path)?;
    let mut events = service
        .watch(&envd.caller, &envd.id, &root, Some(req.recursive))
        .await?;
    let _ready = events.next().await;
    let include = req.include_entry;
    let start = futures_util::stream::once(async { Ok(json!({"start": {}})) });
    let changes = events.filter_map(move |event| {
        let (service, envd, root) = (service.clone(), envd.clone(), root.clone());
        async move {
            let message = filesystem_event(&root, &event)?;
            let message = if include && event.kind != "remove" {
                with_entry(&service, &envd, &event.path, message).await
            } else {
                message
            };
            Some(Ok(json!({"filesystem": message})))
        }
    });
    Ok(super::connect::stream(start.chain(changes)))
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WatcherCreated {
    watcher_id: String,
}

pub async fn create_watcher(
    State(service): State<Arc<Service>>,
    axum::Extension(envd): axum::Extension<Envd>,
    Message(req): Message<WatchRequest>,
) -> Unary<WatcherCreated> {
    let path = resolve(&req.path)?;
    let watcher_id = service
        .create_watcher(&envd.caller, &envd.id, &path, req.recursive)
        .await?;
    Ok(axum::Json(WatcherCreated { watcher_id }))
}

#[derive(Serialize)]
pub struct WatcherEvents {
    events: Vec<Value>,
}

pub async fn get_watcher_events(
    State(service): State<Arc<Service>>,
    axum::Extension(envd): axum::Extension<Envd>,
    Message(req): Message<WatcherRequest>,
) -> Unary<WatcherEvents> {
    let (root, events) = service.watcher_events(&envd.caller, &envd.id, &req.watcher_id)?;
    let events = events
        .iter()
        .filter_map(|e| filesystem_event(&root, e))
        .collect();
    Ok(axum::Json(WatcherEvents { events }))
}

pub async fn remove_watcher(
    State(service): State<Arc<Service>>,
    axum::Extension(envd): axum::Extension<Envd>,
    Message(req): Message<WatcherRequest>,
) -> Unary<Empty> {
    service.remove_watcher(&envd.caller, &envd.id, &req.watcher_id)?;
    Ok(axum::Json(Empty {}))
}
