//! The HTTP client the gateway reaches agents with.

use std::time::Duration;

/// How long reaching an agent may take before the call fails. A pod that died, or whose
/// node went away, drops the connection's SYNs rather than refusing them, and the
/// kernel retries a connect for about two minutes: the caller gets a clear error
/// sooner. The answer to a quick call (a lookup, say) is bounded too, per call
/// (`client::QUICK_ANSWER`); one that streams may take as long as it streams.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Idle time before the kernel probes a pooled connection (TCP keepalive), so one to a
/// vanished pod is eventually found dead rather than kept forever.
const KEEPALIVE: Duration = Duration::from_secs(30);

/// A client for one agent's calls.
pub(crate) fn agent_client() -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .tcp_keepalive(KEEPALIVE)
        .build()
        // Only a TLS backend failing to load makes building fail, and no TLS is asked for.
        .expect("building the agents' HTTP client")
}
