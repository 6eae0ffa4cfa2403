//! The service calls backends and record stores synchronously, sometimes from its
//! blocking pool and sometimes from a runtime thread; the cluster's client is async.

use std::future::Future;

use tokio::runtime::Handle;

/// Runs `work` to its end on `runtime`, from whichever kind of thread calls.
pub(crate) fn wait<F: Future>(runtime: &Handle, work: F) -> F::Output {
    if Handle::try_current().is_ok() {
        // On a runtime thread: let the runtime move its other tasks elsewhere meanwhile.
        tokio::task::block_in_place(|| runtime.block_on(work))
    } else {
        runtime.block_on(work)
    }
}
