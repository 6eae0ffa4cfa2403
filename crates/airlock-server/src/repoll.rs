//! A connection's future polled again at once when it wakes itself during its own poll.
//!
//! hyper wakes its connection task from inside that task's poll: when a handler first
//! polls a request body (to send `100 Continue` and read on), and when a response is
//! done and it turns to the next request. Tokio's multi-threaded scheduler treats a task
//! woken during its own poll as one that yields: it goes to the back of the run queue and
//! an idle worker is woken to steal it. On two cores each 1 KiB PUT thus crossed to the
//! other core and back, four context switches per request where nginx has two (W3).
//!
//! Polling again here keeps the connection on its core. The number of polls again is
//! bounded; past it the wake goes to the runtime as before, so a connection that keeps
//! waking itself (hyper yields every 16 reads of a long body) still lets others run.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::task::{Context, Poll, Wake, Waker};

use futures_util::task::AtomicWaker;

/// Polls of the inner future within one poll of ours, the first included.
const MAX_POLLS: usize = 4;

const IDLE: u8 = 0;
const POLLING: u8 = 1;
const WOKEN: u8 = 2;

/// Runs `inner`, polling it again at once (a few times at most) when it wakes itself.
pub(crate) struct Repoll<F> {
    inner: Pin<Box<F>>,
    state: Arc<State>,
    waker: Waker,
}

struct State {
    phase: AtomicU8,
    /// The runtime's waker for our task, for wakes that come between polls.
    outer: AtomicWaker,
}

impl<F: Future> Repoll<F> {
    pub(crate) fn new(inner: F) -> Self {
        let state = Arc::new(State {
            phase: AtomicU8::new(IDLE),
            outer: AtomicWaker::new(),
        });
        Self {
            inner: Box::pin(inner),
            waker: Waker::from(state.clone()),
            state,
        }
    }
}

impl Wake for State {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        // During a poll the poller sees the note and polls again; between polls the
        // runtime must hear of it.
        match self
            .phase
            .compare_exchange(POLLING, WOKEN, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) | Err(WOKEN) => {}
            Err(_) => self.outer.wake(),
        }
    }
}

impl<F: Future> Future for Repoll<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.get_mut();
        this.state.outer.register(cx.waker());
        let mut inner_cx = Context::from_waker(&this.waker);
        for _ in 0..MAX_POLLS {
            this.state.phase.store(POLLING, Ordering::Release);
            if let Poll::Ready(out) = this.inner.as_mut().poll(&mut inner_cx) {
                this.state.phase.store(IDLE, Ordering::Release);
                return Poll::Ready(out);
            }
            let settled = this.state.phase.compare_exchange(
                POLLING,
                IDLE,
                Ordering::AcqRel,
                Ordering::Acquire,
            );
            if settled.is_ok() {
                // Nobody woke it while it ran: a later wake goes to the runtime.
                return Poll::Pending;
            }
        }
        // It woke itself on every poll: let the runtime run others before it again.
        this.state.phase.store(IDLE, Ordering::Release);
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    use super::*;

    /// Counts the wakes the runtime would get.
    #[derive(Default)]
    struct Counter(AtomicUsize);

    impl Wake for Counter {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// Wakes itself during each of its first `wakes` polls, then is done; counts polls.
    struct WakesItself {
        wakes: usize,
        polls: Arc<AtomicUsize>,
    }

    impl Future for WakesItself {
        type Output = ();
        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            self.polls.fetch_add(1, Ordering::SeqCst);
            if self.wakes == 0 {
                return Poll::Ready(());
            }
            self.wakes -= 1;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }

    fn poll_once<F: Future>(future: &mut Repoll<F>, runtime: &Arc<Counter>) -> Poll<F::Output> {
        let waker = Waker::from(runtime.clone());
        Pin::new(future).poll(&mut Context::from_waker(&waker))
    }

    #[test]
    fn a_future_that_wakes_itself_a_few_times_finishes_in_one_poll_without_the_runtime() {
        let polls = Arc::new(AtomicUsize::new(0));
        let runtime = Arc::new(Counter::default());
        let wakes = MAX_POLLS - 1;
        let mut future = Repoll::new(WakesItself {
            wakes,
            polls: polls.clone(),
        });
        assert!(poll_once(&mut future, &runtime).is_ready());
        assert_eq!(polls.load(Ordering::SeqCst), MAX_POLLS);
        assert_eq!(runtime.0.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn one_that_keeps_waking_itself_is_handed_back_to_the_runtime_after_the_bound() {
        let polls = Arc::new(AtomicUsize::new(0));
        let runtime = Arc::new(Counter::default());
        let mut future = Repoll::new(WakesItself {
            wakes: usize::MAX,
            polls: polls.clone(),
        });
        assert!(poll_once(&mut future, &runtime).is_pending());
        assert_eq!(polls.load(Ordering::SeqCst), MAX_POLLS);
        assert_eq!(
            runtime.0.load(Ordering::SeqCst),
            1,
            "the runtime polls it again"
        );
        assert!(poll_once(&mut future, &runtime).is_pending());
        assert_eq!(polls.load(Ordering::SeqCst), 2 * MAX_POLLS);
    }

    #[test]
    fn a_wake_between_polls_reaches_the_runtime() {
        let runtime = Arc::new(Counter::default());
        let (tx, rx) = tokio::sync::oneshot::channel::<u8>();
        let mut future = Repoll::new(rx);
        assert!(poll_once(&mut future, &runtime).is_pending());
        assert_eq!(runtime.0.load(Ordering::SeqCst), 0);
        std::thread::spawn(move || tx.send(7))
            .join()
            .unwrap()
            .unwrap();
        assert_eq!(runtime.0.load(Ordering::SeqCst), 1);
        assert!(matches!(
            poll_once(&mut future, &runtime),
            Poll::Ready(Ok(7))
        ));
    }

    /// Wakes from other threads racing the poll's start and end are never lost: every
    /// message of a busy sender arrives, on a real multi-threaded runtime.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn wakes_from_other_threads_racing_the_polls_are_never_lost() {
        const MESSAGES: usize = 20_000;
        let (tx, mut rx) = tokio::sync::mpsc::channel::<usize>(4);
        let sender = std::thread::spawn(move || {
            for n in 0..MESSAGES {
                tx.blocking_send(n).unwrap();
                if n % 7 == 0 {
                    std::thread::yield_now();
                }
            }
        });
        let receiver = tokio::spawn(Repoll::new(async move {
            let mut got = 0;
            while let Some(n) = rx.recv().await {
                assert_eq!(n, got);
                got += 1;
            }
            got
        }));
        let got = tokio::time::timeout(Duration::from_secs(60), receiver)
            .await
            .expect("a wake was lost: the receiver stalled")
            .unwrap();
        sender.join().unwrap();
        assert_eq!(got, MESSAGES);
    }
}
