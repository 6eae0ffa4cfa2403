//! Watching a directory of a sandbox: a thread per watch reads inotify and feeds a bounded
//! queue. A client that reads too slowly loses events and is told so (an `overflow`
//! event), instead of the queue growing without bound.

use std::time::Duration;

use airlock_api as api;
use airlock_fs::{LossyQueue, WatchEvent, WatchFeed};
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;

/// A watch's events as clients see them, `ready` first.
pub type WatchEvents = std::pin::Pin<Box<dyn futures_util::Stream<Item = api::WatchEvent> + Send>>;

use super::files::parse;
use super::{Service, blocking};
use crate::ApiError;
use crate::caps::Work;
use crate::{Need, Principal};

/// Events buffered for one client.
const QUEUE: usize = 1024;
/// How often the watch thread checks that its client and sandbox are still there.
const TICK: Duration = Duration::from_millis(200);

impl Service {
    /// Starts watching `path` (recursively if asked). The first event is `ready`, sent
    /// once the watch is in place, so a client knows that every change after it is seen.
    /// Events arrive until the client drops the stream, the directory goes away, or the
    /// sandbox is deleted.
    pub async fn watch(
        &self,
        caller: &Principal,
        id: &str,
        path: &str,
        recursive: Option<bool>,
    ) -> Result<WatchEvents, ApiError> {
        // The door first: a caller that may not reach the sandbox learns nothing of
        // its tenant's counts.
        self.require(caller, id, Need::Read)?;
        let slot = self.slot(id, Work::Watch)?;
        let events = self
            .watch_raw(caller, id, path, recursive.unwrap_or(false))
            .await?;
        let ready = api::WatchEvent {
            kind: "ready".into(),
            path: path.to_owned(),
            from: None,
            dir: true,
            message: None,
        };
        // The tenant's slot is held as long as the stream is.
        let events = ReceiverStream::new(events).map(move |e| {
            let _held = &slot;
            as_clients_see_it(e)
        });
        Ok(Box::pin(
            futures_util::stream::once(async move { ready }).chain(events),
        ))
    }

    async fn watch_raw(
        &self,
        caller: &Principal,
        id: &str,
        path: &str,
        recursive: bool,
    ) -> Result<mpsc::Receiver<WatchEvent>, ApiError> {
        let closed = self.entry(caller, id, Need::Read)?.closed.clone();
        let path = parse(path)?;
        let root = self.root_of(caller, id, Need::Read)?;
        let watcher = blocking(move || root.watch(&path, recursive)).await??;
        let (tx, rx) = mpsc::channel(QUEUE);
        std::thread::Builder::new()
            .name("airlock-watch".into())
            .spawn(move || pump(watcher, tx, closed))
            .map_err(|e| ApiError::internal("starting a watch", e))?;
        Ok(rx)
    }
}

fn pump(mut watcher: Box<dyn WatchFeed>, tx: mpsc::Sender<WatchEvent>, closed: CancellationToken) {
    let mut queue = LossyQueue::default();
    let mut batch = Vec::new();
    while !closed.is_cancelled() && !tx.is_closed() && watcher.is_alive() {
        if let Err(err) = watcher.next_events(&mut batch, TICK) {
            tracing::warn!(%err, "watch ended");
            return;
        }
        queue.tell_lost(|e| tx.try_send(e).is_ok());
        for event in batch.drain(..) {
            queue.offer(event, |e| tx.try_send(e).is_ok());
        }
    }
}

/// An engine event as clients see it (the engine's watcher already left out its own
/// work in progress).
fn as_clients_see_it(e: WatchEvent) -> api::WatchEvent {
    api::WatchEvent {
        kind: e.kind.name().into(),
        path: e.path,
        from: e.from,
        dir: e.is_dir,
        message: e.message,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use airlock_fs::{Root, SandboxPath, WatchKind};

    #[test]
    fn a_slow_reader_gets_an_overflow_instead_of_a_growing_queue() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("w")).unwrap();
        let root = Root::open(dir.path()).unwrap();
        let watcher = root
            .watch(&SandboxPath::parse("/w").unwrap(), true)
            .unwrap();
        let (tx, mut rx) = mpsc::channel(4);
        let closed = CancellationToken::new();
        let stop = closed.clone();
        let thread = std::thread::spawn(move || pump(Box::new(watcher), tx, closed));
        for i in 0..100 {
            std::fs::write(dir.path().join(format!("w/f{i}")), b"x").unwrap();
        }
        // Nobody reads until the writer is done: the queue holds 4, the rest is lost.
        std::thread::sleep(TICK * 3);
        let mut kinds = Vec::new();
        while let Ok(event) = rx.try_recv() {
            kinds.push(event.kind);
        }
        std::thread::sleep(TICK * 2);
        while let Ok(event) = rx.try_recv() {
            kinds.push(event.kind);
        }
        stop.cancel();
        thread.join().unwrap();
        assert!(kinds.len() <= 4 + 1 + 4, "bounded: {kinds:?}");
        assert!(kinds.contains(&WatchKind::Overflow), "{kinds:?}");
    }
}
