//! The daemon's metrics, exposed by `GET /metrics` (admin only) in the OpenMetrics text
//! format Prometheus scrapes. `prometheus-client` keeps the families and writes the
//! exposition. Faces report their requests here (by face, route template and status,
//! never by raw path, so label sets stay bounded); the service counts transfers, commands
//! and uploads itself, and reads sandbox states at scrape time.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::{ApiError, Principal, Service};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    face: &'static str,
    route: String,
    /// An HTTP status, or a gRPC one (0 to 16): a number, so counting one allocates
    /// nothing for it.
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    face: &'static str,
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FaceLabels {
    face: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: &'static str,
}

/// A running count of bytes (cheap to clone; clones share the count).
pub type ByteCounter = Counter;

/// A face's byte counters.
#[derive(Debug, Clone)]
pub struct FaceBytes {
    pub received: ByteCounter,
    pub sent: ByteCounter,
    /// Of `sent`, the bytes the kernel sent straight from their file (`sendfile`): how
    /// much of a face's download traffic never passed through the daemon's buffers.
    pub sent_from_file: ByteCounter,
}

/// Every family, registered once.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram, fn() -> Histogram>,
    bytes_in: Family<FaceLabels, Counter>,
    bytes_out: Family<FaceLabels, Counter>,
    bytes_from_file: Family<FaceLabels, Counter>,
    transfers: Gauge<i64, std::sync::atomic::AtomicI64>,
    execs: Counter<u64, AtomicU64>,
    uploads: Counter<u64, AtomicU64>,
    sandboxes: Family<StateLabels, Gauge>,
}

/// Time to a response's head: 1 ms to about 65 s.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("airlock");
        let metrics = Self {
            requests: Family::default(),
            latency: Family::new_with_constructor(latency_histogram),
            bytes_in: Family::default(),
            bytes_out: Family::default(),
            bytes_from_file: Family::default(),
            transfers: Gauge::default(),
            execs: Counter::default(),
            uploads: Counter::default(),
            sandboxes: Family::default(),
            registry: Registry::default(),
        };
        registry.register(
            "requests",
            "Requests answered, by face (rest, grpc), route template and status",
            metrics.requests.clone(),
        );
        registry.register(
            "request_duration_seconds",
            "Time from a request's arrival to its answer's head, by face and route",
            metrics.latency.clone(),
        );
        registry.register(
            "received_bytes",
            "Request body bytes received, by face",
            metrics.bytes_in.clone(),
        );
        registry.register(
            "sent_bytes",
            "Response body bytes sent, by face",
            metrics.bytes_out.clone(),
        );
        registry.register(
            "sendfile_bytes",
            "Response body bytes the kernel sent straight from their file (sendfile), by face",
            metrics.bytes_from_file.clone(),
        );
        registry.register(
            "transfers_in_flight",
            "File transfers streaming now: uploads with a body coming in, downloads and archives going out",
            metrics.transfers.clone(),
        );
        registry.register("execs", "Commands started", metrics.execs.clone());
        registry.register(
            "uploads",
            "Uploads committed (whole files, resumable uploads, archives)",
            metrics.uploads.clone(),
        );
        registry.register("sandboxes", "Sandboxes by state", metrics.sandboxes.clone());
        Self {
            registry,
            ..metrics
        }
    }
}

/// A transfer counted in flight while this lives.
#[derive(Debug)]
pub struct InFlight(Gauge<i64, std::sync::atomic::AtomicI64>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}

impl Metrics {
    /// One answered request. `route` is a template (`/v1/sandboxes/{id}`) or an RPC
    /// name, never a raw path.
    pub fn request(&self, face: &'static str, route: &str, status: u16, seconds: f64) {
        self.requests
            .get_or_create(&RequestLabels {
                face,
                route: route.to_owned(),
                status,
            })
            .inc();
        self.latency
            .get_or_create(&RouteLabels {
                face,
                route: route.to_owned(),
            })
            .observe(seconds);
    }

    /// The counters of body bytes coming in and going out through `face`, shown (at 0)
    /// from now on. A face takes them once and keeps them, so that counting a chunk is
    /// one atomic add, not a lookup.
    pub fn face_bytes(&self, face: &'static str) -> FaceBytes {
        let labels = FaceLabels { face };
        FaceBytes {
            received: self.bytes_in.get_or_create(&labels).clone(),
            sent: self.bytes_out.get_or_create(&labels).clone(),
            sent_from_file: self.bytes_from_file.get_or_create(&labels).clone(),
        }
    }

    pub(crate) fn transfer(&self) -> InFlight {
        self.transfers.inc();
        InFlight(self.transfers.clone())
    }

    pub(crate) fn exec_started(&self) {
        self.execs.inc();
    }

    pub(crate) fn upload_committed(&self) {
        self.uploads.inc();
    }
}

impl Service {
    /// The metrics the faces report into.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The exposition, for the admin alone: route names and tenants' activity are the
    /// operator's business.
    pub fn metrics_text(&self, caller: &Principal) -> Result<String, ApiError> {
        caller.require_admin("read metrics")?;
        let mut counts = [0i64; 3];
        for entry in self.entries() {
            let slot = match entry.record().state {
                airlock_api::SandboxState::Created => 0,
                airlock_api::SandboxState::Running => 1,
                _ => 2,
            };
            counts[slot] += 1;
        }
        for (state, count) in ["created", "running", "stopped"].into_iter().zip(counts) {
            self.metrics
                .sandboxes
                .get_or_create(&StateLabels { state })
                .set(count);
        }
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.metrics.registry)
            .map_err(|e| ApiError::internal("writing metrics", e))?;
        Ok(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_names_every_family() {
        let metrics = Metrics::default();
        metrics.request("rest", "/v1/sandboxes", 200, 0.004);
        let rest = metrics.face_bytes("rest");
        rest.sent.inc_by(10);
        metrics.face_bytes("rest").sent.inc_by(1);
        rest.received.inc_by(3);
        rest.sent_from_file.inc_by(7);
        // Counters taken and not used yet are shown at 0.
        let _grpc = metrics.face_bytes("grpc");
        let held = metrics.transfer();
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &metrics.registry).unwrap();
        for line in [
            r#"airlock_requests_total{face="rest",route="/v1/sandboxes",status="200"} 1"#,
            r#"airlock_sent_bytes_total{face="rest"} 11"#,
            r#"airlock_received_bytes_total{face="rest"} 3"#,
            r#"airlock_received_bytes_total{face="grpc"} 0"#,
            r#"airlock_sendfile_bytes_total{face="rest"} 7"#,
            r#"airlock_sendfile_bytes_total{face="grpc"} 0"#,
            "airlock_transfers_in_flight 1",
            "airlock_request_duration_seconds_bucket{le=\"0.008\",face=\"rest\",route=\"/v1/sandboxes\"} 1",
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
        drop(held);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &metrics.registry).unwrap();
        assert!(text.contains("airlock_transfers_in_flight 0"));
    }
}
