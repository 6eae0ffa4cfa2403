//! Locks held across a store's writes (a record's save, the tokens' update), taken from
//! runtime threads without stalling the runtime.
//!
//! A worker thread that blocks on a plain lock keeps its core, and with it the task in
//! its LIFO slot, which no other worker may steal (tokio 1.54). When the lock's holder
//! is waiting on exactly that task (a cluster's client runs its connection as a task),
//! neither moves until the client's own timeout, minutes later. A contended lock here
//! is waited for inside `block_in_place`, which hands the core, LIFO task included,
//! to another thread first.

use std::sync::{Mutex, MutexGuard, TryLockError};

use tokio::runtime::{Handle, RuntimeFlavor};

/// `lock`'s guard; waits for it off the runtime's core when another holds it.
pub(crate) fn lock_for_save<T>(lock: &Mutex<T>) -> MutexGuard<'_, T> {
    match lock.try_lock() {
        Ok(guard) => guard,
        Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
        Err(TryLockError::WouldBlock) => {
            let wait = || lock.lock().unwrap_or_else(|p| p.into_inner());
            match Handle::try_current() {
                Ok(runtime) if runtime.runtime_flavor() == RuntimeFlavor::MultiThread => {
                    tokio::task::block_in_place(wait)
                }
                _ => wait(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

    /// One holder waits (in `block_in_place`, as the cluster's client does) for a task
    /// that the lock's other taker woke just before it asked for the lock, which puts
    /// that task in its worker's LIFO slot. Answers whether the holder heard from the
    /// task before giving up.
    fn holder_hears_the_woken_task(take: fn(&Mutex<()>) -> MutexGuard<'_, ()>) -> bool {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let heard = runtime.block_on(async move {
            let lock = Arc::new(Mutex::new(()));
            let (held_tx, held_rx) = tokio::sync::oneshot::channel::<()>();
            let (go_tx, go_rx) = tokio::sync::oneshot::channel::<()>();
            let (answer_tx, answer_rx) = tokio::sync::oneshot::channel::<()>();
            // The task the holder waits for; it runs once woken.
            tokio::spawn(async move {
                if go_rx.await.is_ok() {
                    let _ = answer_tx.send(());
                }
            });
            let holder = tokio::spawn({
                let lock = lock.clone();
                async move {
                    let _guard = lock.lock().unwrap();
                    let _ = held_tx.send(());
                    let runtime = Handle::current();
                    tokio::task::block_in_place(|| {
                        runtime.block_on(tokio::time::timeout(Duration::from_secs(3), answer_rx))
                    })
                    .is_ok()
                }
            });
            let taker = tokio::spawn(async move {
                held_rx.await.unwrap();
                // Wakes the waiting task into this worker's LIFO slot, then waits.
                go_tx.send(()).unwrap();
                drop(take(&lock));
            });
            let heard = holder.await.unwrap();
            taker.await.unwrap();
            heard
        });
        runtime.shutdown_timeout(Duration::from_secs(1));
        heard
    }

    #[test]
    fn a_contended_lock_does_not_strand_the_task_its_holder_waits_for() {
        assert!(holder_hears_the_woken_task(lock_for_save));
    }

    #[test]
    fn a_plain_lock_would_strand_it() {
        // The hazard the helper exists for, shown on this tokio: if a release makes the
        // LIFO slot stealable, this fails and the helper may go.
        fn plain(lock: &Mutex<()>) -> MutexGuard<'_, ()> {
            lock.lock().unwrap()
        }
        assert!(!holder_hears_the_woken_task(plain));
    }
}
