//! A local tree's walk on a thread of its own, running ahead of the packer.
//!
//! A tree upload used to walk the whole tree before it sent its first byte: for 10,000
//! small files that is a `stat` each, 15–25 ms in which neither the socket nor the daemon
//! had anything to do. `tar c` walks and packs as it goes; so does this, and the walk,
//! which only reads metadata, stays ahead of the packer that reads the files.

use std::io;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use super::local_tree::{LocalEntry, Walked};

/// Entries the walk may be ahead of the packer by.
const AHEAD: usize = 4096;

/// The packer's end: each walked item, then an error if the walk stopped before its end.
pub struct WalkAhead {
    rx: Receiver<Option<Walked>>,
    done: bool,
}

/// Starts `walk` on its own thread. `seen` is told of each entry as the walk finds it (the
/// progress bar's total grows with it).
pub fn walk_ahead(
    walk: impl Iterator<Item = Walked> + Send + 'static,
    seen: impl Fn(&LocalEntry) + Send + 'static,
) -> io::Result<WalkAhead> {
    let (tx, rx) = sync_channel(AHEAD);
    std::thread::Builder::new()
        .name("airlock-walk".into())
        .spawn(move || feed(walk, seen, tx))?;
    Ok(WalkAhead { rx, done: false })
}

fn feed(
    walk: impl Iterator<Item = Walked>,
    seen: impl Fn(&LocalEntry),
    tx: SyncSender<Option<Walked>>,
) {
    for walked in walk {
        if let Walked::Entry(entry) = &walked {
            seen(entry);
        }
        if tx.send(Some(walked)).is_err() {
            // The packer stopped; nobody wants the rest.
            return;
        }
    }
    // The end is said, not inferred from the channel closing: a walk that panicked
    // closes it too, and must not pass for a whole tree.
    let _ = tx.send(None);
}

impl Iterator for WalkAhead {
    type Item = io::Result<Walked>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.rx.recv() {
            Ok(Some(walked)) => Some(Ok(walked)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(_) => {
                self.done = true;
                Some(Err(io::Error::other(
                    "the walk of the local tree stopped before its end",
                )))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::transfer::local_tree::Kind;

    fn entry(name: &str) -> Walked {
        Walked::Entry(LocalEntry {
            rel: name.into(),
            kind: Kind::File,
            size: 1,
            mode: 0o644,
            mtime: 0,
        })
    }

    #[test]
    fn every_item_arrives_in_order_and_then_the_end() {
        let walk = vec![entry("a"), Walked::Problem("b: gone".into()), entry("c")];
        let seen = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = seen.clone();
        let got: Vec<Walked> = walk_ahead(walk.into_iter(), move |_| {
            counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        })
        .unwrap()
        .collect::<io::Result<_>>()
        .unwrap();
        let names: Vec<String> = got
            .iter()
            .map(|w| match w {
                Walked::Entry(e) => e.rel.display().to_string(),
                Walked::Problem(p) => p.clone(),
            })
            .collect();
        assert_eq!(names, ["a", "b: gone", "c"]);
        assert_eq!(seen.load(std::sync::atomic::Ordering::Relaxed), 2);
    }

    #[test]
    fn a_walk_that_dies_is_an_error_not_an_end() {
        let dying = [entry("a")]
            .into_iter()
            .chain(std::iter::from_fn(|| panic!("the walk broke")));
        let mut ahead = walk_ahead(dying, |_| {}).unwrap();
        assert!(matches!(ahead.next(), Some(Ok(Walked::Entry(_)))));
        let err = ahead.next().unwrap().unwrap_err();
        assert!(err.to_string().contains("stopped before its end"), "{err}");
        assert!(ahead.next().is_none());
    }
}
