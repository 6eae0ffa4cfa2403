//! Watches a client polls instead of holding open (E2B's `CreateWatcher` and
//! `GetWatcherEvents`, what its synchronous SDK uses): each keeps a bounded queue of
//! events until the next poll. A watcher nobody polls for [`IDLE`] is dropped, and with
//! it its slot of the tenant's watch cap.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use airlock_api::WatchEvent;
use futures_util::StreamExt;

use crate::record::random_hex;
use crate::{ApiError, Need, Principal, Service};

/// Events kept between two polls; past this, new ones are dropped and the next poll
/// ends with one `overflow` event.
const QUEUE: usize = 10_000;
/// A watcher not polled for this long is dropped.
const IDLE: Duration = Duration::from_secs(600);

/// One sandbox's polled watchers.
#[derive(Debug, Default)]
pub struct Watchers {
    table: Mutex<BTreeMap<String, Polled>>,
}

#[derive(Debug)]
struct Polled {
    /// The watched directory, as the caller named it.
    root: String,
    queue: Arc<Mutex<Queue>>,
    polled: Instant,
    /// The task that moves the watch's events into the queue.
    task: tokio::task::AbortHandle,
}

#[derive(Debug, Default)]
struct Queue {
    events: VecDeque<WatchEvent>,
    overflowed: bool,
}

impl Drop for Polled {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Service {
    /// Starts a watch whose events wait for [`Service::watcher_events`]; answers its id
    /// once the watch is in place.
    pub async fn create_watcher(
        &self,
        caller: &Principal,
        id: &str,
        path: &str,
        recursive: bool,
    ) -> Result<String, ApiError> {
        let watchers = self.entry(caller, id, Need::Read)?.watchers.clone();
        let mut events = self.watch(caller, id, path, Some(recursive)).await?;
        let _ready = events.next().await;
        let queue = Arc::new(Mutex::new(Queue::default()));
        let filling = queue.clone();
        let task = tokio::spawn(async move {
            while let Some(event) = events.next().await {
                let mut queue = filling.lock().unwrap_or_else(|p| p.into_inner());
                if queue.events.len() >= QUEUE {
                    queue.overflowed = true;
                } else {
                    queue.events.push_back(event);
                }
            }
        });
        let watcher_id = random_hex::<8>();
        let mut table = watchers.table.lock().unwrap_or_else(|p| p.into_inner());
        table.retain(|_, w| w.polled.elapsed() < IDLE);
        table.insert(
            watcher_id.clone(),
            Polled {
                root: path.to_owned(),
                queue,
                polled: Instant::now(),
                task: task.abort_handle(),
            },
        );
        Ok(watcher_id)
    }

    /// The watched directory and the events since the last poll, oldest first.
    pub fn watcher_events(
        &self,
        caller: &Principal,
        id: &str,
        watcher_id: &str,
    ) -> Result<(String, Vec<WatchEvent>), ApiError> {
        let watchers = self.entry(caller, id, Need::Read)?.watchers.clone();
        let mut table = watchers.table.lock().unwrap_or_else(|p| p.into_inner());
        let watcher = table
            .get_mut(watcher_id)
            .ok_or_else(|| ApiError::not_found(format!("no watcher {watcher_id}")))?;
        watcher.polled = Instant::now();
        let mut queue = watcher.queue.lock().unwrap_or_else(|p| p.into_inner());
        let mut events: Vec<WatchEvent> = queue.events.drain(..).collect();
        if std::mem::take(&mut queue.overflowed) {
            events.push(WatchEvent {
                kind: "overflow".into(),
                path: String::new(),
                from: None,
                dir: false,
                message: Some(format!("more than {QUEUE} events between two polls")),
            });
        }
        Ok((watcher.root.clone(), events))
    }

    /// Stops a watcher.
    pub fn remove_watcher(
        &self,
        caller: &Principal,
        id: &str,
        watcher_id: &str,
    ) -> Result<(), ApiError> {
        let watchers = self.entry(caller, id, Need::Read)?.watchers.clone();
        let mut table = watchers.table.lock().unwrap_or_else(|p| p.into_inner());
        table
            .remove(watcher_id)
            .map(drop)
            .ok_or_else(|| ApiError::not_found(format!("no watcher {watcher_id}")))
    }
}
