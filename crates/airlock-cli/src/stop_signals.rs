//! How `airlock serve` and `airlock agent` are told to stop: SIGTERM (a supervisor, the
//! kubelet) or SIGINT (Ctrl-C).

use std::future::Future;

/// SIGTERM or SIGINT, caught from the moment this returns; call it in the runtime,
/// before the server says where it listens.
///
/// Caught early because the alternatives fail. The daemon once registered its handlers
/// only when its accept loop first polled for them, and that loop's `select!` may find a
/// connection ready and never poll the other branch: a SIGTERM in that window killed it
/// outright, its sandboxes left running. The agent had no handler at all, and a pod's
/// first process ignores a signal it does not handle, so every deleted sandbox pod
/// lingered until the kubelet's SIGKILL, 30 seconds later by default.
pub fn stop_signals() -> std::io::Result<impl Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    })
}
