//! The process's Prometheus metrics, rendered on the health server's `/metrics`.
//!
//! Names follow `kms_<component>_<what>_<unit>`; every label comes from a bounded set:
//! service and operation names from the code's own catalogue, AWS error codes from the
//! closed error enum, HTTP statuses. Nothing from a request's contents (key ids,
//! principals, messages, and of course no plaintext or ciphertext) ever becomes a label.
//!
//! | metric | labels |
//! | --- | --- |
//! | `kms_bus_server_requests_total` | `service`, `operation`, `outcome` (`ok`/`error`) |
//! | `kms_bus_server_errors_total` | `service`, `operation`, `code` (AWS error code) |
//! | `kms_bus_server_request_duration_seconds` (histogram) | `service`, `operation` |
//! | `kms_bus_server_in_flight_requests` (gauge) | `service` |
//! | `kms_bus_client_requests_total` | `service`, `operation`, `outcome` |
//! | `kms_bus_client_errors_total` | `service`, `operation`, `code` |
//! | `kms_bus_client_request_duration_seconds` (histogram: NATS round trip) | `service`, `operation` |
//! | `kms_gateway_http_requests_total` | `operation`, `status` |
//! | `kms_gateway_http_errors_total` | `operation`, `code` |
//! | `kms_gateway_http_request_duration_seconds` (histogram) | `operation` |
//! | `kms_gateway_pending_deletion_key_requests_total` | `operation` |
//!
//! The last one exists for an alert: a key scheduled for deletion that something still
//! tries to use is about to break that something for good (AWS suggests the same alarm
//! on CloudTrail's "is pending deletion" errors). Its error code,
//! `KMSInvalidStateException`, also covers disabled and pending-import keys, so the
//! error counter cannot say it.

use std::sync::OnceLock;
use std::time::Duration;

pub use prometheus::IntGauge;
use prometheus::{
    HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder,
};

/// `Content-Type` of [`render`]'s output (Prometheus text format 0.0.4).
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Latency buckets, in seconds: sub-millisecond bus hops up to the 5 s call timeout.
const LATENCY_BUCKETS: [f64; 14] =
    [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// Every metric of one process, in one registry.
pub struct Metrics {
    registry: Registry,
    server_requests: IntCounterVec,
    server_errors: IntCounterVec,
    server_duration: HistogramVec,
    server_in_flight: IntGaugeVec,
    client_requests: IntCounterVec,
    client_errors: IntCounterVec,
    client_duration: HistogramVec,
    http_requests: IntCounterVec,
    http_errors: IntCounterVec,
    http_duration: HistogramVec,
    pending_deletion_uses: IntCounterVec,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

fn outcome(error_code: Option<&str>) -> &'static str {
    if error_code.is_some() {
        "error"
    } else {
        "ok"
    }
}

impl Metrics {
    /// A fresh registry with every metric registered (the process has one: [`global`]).
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let counter = IntCounterVec::new(Opts::new(name, help), labels)?;
            registry.register(Box::new(counter.clone()))?;
            Ok::<_, prometheus::Error>(counter)
        };
        let histogram = |name: &str, help: &str, labels: &[&str]| {
            let opts = HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.to_vec());
            let histogram = HistogramVec::new(opts, labels)?;
            registry.register(Box::new(histogram.clone()))?;
            Ok::<_, prometheus::Error>(histogram)
        };
        let op = ["service", "operation"];
        let with_outcome = ["service", "operation", "outcome"];
        let with_code = ["service", "operation", "code"];
        let server_in_flight = IntGaugeVec::new(
            Opts::new(
                "kms_bus_server_in_flight_requests",
                "Bus requests this process is serving now",
            ),
            &["service"],
        )?;
        registry.register(Box::new(server_in_flight.clone()))?;
        Ok(Self {
            server_requests: counter(
                "kms_bus_server_requests_total",
                "Bus requests served, by service, operation and outcome",
                &with_outcome,
            )?,
            server_errors: counter(
                "kms_bus_server_errors_total",
                "Bus requests answered with an error, by AWS error code",
                &with_code,
            )?,
            server_duration: histogram(
                "kms_bus_server_request_duration_seconds",
                "Time to serve a bus request, from receipt to reply",
                &op,
            )?,
            server_in_flight,
            client_requests: counter(
                "kms_bus_client_requests_total",
                "Bus calls made, by the service called, operation and outcome",
                &with_outcome,
            )?,
            client_errors: counter(
                "kms_bus_client_errors_total",
                "Bus calls that failed, by AWS error code (DependencyTimeoutException: no answer)",
                &with_code,
            )?,
            client_duration: histogram(
                "kms_bus_client_request_duration_seconds",
                "NATS round trip of a bus call, request to reply",
                &op,
            )?,
            http_requests: counter(
                "kms_gateway_http_requests_total",
                "API requests answered by the gateway, by operation and HTTP status",
                &["operation", "status"],
            )?,
            http_errors: counter(
                "kms_gateway_http_errors_total",
                "API requests answered with an error, by operation and AWS error code",
                &["operation", "code"],
            )?,
            http_duration: histogram(
                "kms_gateway_http_request_duration_seconds",
                "Time to answer an API request, audit record included",
                &["operation"],
            )?,
            pending_deletion_uses: counter(
                "kms_gateway_pending_deletion_key_requests_total",
                "Cryptographic requests refused because their key is pending deletion",
                &["operation"],
            )?,
            registry,
        })
    }

    /// The registry, for metrics a binary adds (e.g. the audit stream's lag).
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Records one served bus request.
    pub fn bus_served(
        &self,
        service: &str,
        operation: &str,
        error_code: Option<&str>,
        elapsed: Duration,
    ) {
        observe(
            (&self.server_requests, &self.server_errors, &self.server_duration),
            &[service, operation],
            error_code,
            elapsed,
        );
    }

    /// Counts a request in flight for `service` until the guard drops.
    pub fn bus_in_flight(&self, service: &str) -> InFlight {
        let gauge = self.server_in_flight.get_metric_with_label_values(&[service]).ok();
        if let Some(gauge) = &gauge {
            gauge.inc();
        }
        InFlight { gauge }
    }

    /// Records one bus call this process made to `service`.
    pub fn bus_called(
        &self,
        service: &str,
        operation: &str,
        error_code: Option<&str>,
        elapsed: Duration,
    ) {
        observe(
            (&self.client_requests, &self.client_errors, &self.client_duration),
            &[service, operation],
            error_code,
            elapsed,
        );
    }

    /// Records one API request the gateway answered.
    pub fn http_served(
        &self,
        operation: &str,
        status: u16,
        error_code: Option<&str>,
        elapsed: Duration,
    ) {
        let status = status.to_string();
        if let Ok(c) = self.http_requests.get_metric_with_label_values(&[operation, &status]) {
            c.inc();
        }
        if let Some(code) = error_code {
            if let Ok(c) = self.http_errors.get_metric_with_label_values(&[operation, code]) {
                c.inc();
            }
        }
        if let Ok(h) = self.http_duration.get_metric_with_label_values(&[operation]) {
            h.observe(elapsed.as_secs_f64());
        }
    }

    /// Records a cryptographic request refused because its key is pending deletion.
    pub fn pending_deletion_key_used(&self, operation: &str) {
        if let Ok(c) = self.pending_deletion_uses.get_metric_with_label_values(&[operation]) {
            c.inc();
        }
    }

    /// Creates the pending-deletion series of `operations` at 0 (see [`crate::http`]).
    pub fn pending_deletion_key_series(&self, operations: &[&str]) {
        for op in operations {
            // Only creates the child; the count stays 0.
            let _ = self.pending_deletion_uses.get_metric_with_label_values(&[op]);
        }
    }

    /// Registers a gauge of this process (`name` must be new).
    pub fn gauge(&self, name: &str, help: &str) -> Result<IntGauge, prometheus::Error> {
        let gauge = IntGauge::new(name, help)?;
        self.registry.register(Box::new(gauge.clone()))?;
        Ok(gauge)
    }

    /// Every metric in the Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Err(e) = TextEncoder::new().encode_utf8(&self.registry.gather(), &mut out) {
            tracing::warn!(error = %e, "could not render the metrics");
        }
        out
    }
}

fn observe(
    (requests, errors, duration): (&IntCounterVec, &IntCounterVec, &HistogramVec),
    labels: &[&str; 2],
    error_code: Option<&str>,
    elapsed: Duration,
) {
    let [service, operation] = *labels;
    if let Ok(c) = requests.get_metric_with_label_values(&[service, operation, outcome(error_code)])
    {
        c.inc();
    }
    if let Some(code) = error_code {
        if let Ok(c) = errors.get_metric_with_label_values(&[service, operation, code]) {
            c.inc();
        }
    }
    if let Ok(h) = duration.get_metric_with_label_values(&[service, operation]) {
        h.observe(elapsed.as_secs_f64());
    }
}

/// A request in flight; dropping it ends it.
#[derive(Debug)]
pub struct InFlight {
    gauge: Option<prometheus::IntGauge>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Some(gauge) = &self.gauge {
            gauge.dec();
        }
    }
}

/// The process's metrics; `None` only if registering them failed (logged once).
pub fn global() -> Option<&'static Metrics> {
    static GLOBAL: OnceLock<Option<Metrics>> = OnceLock::new();
    GLOBAL
        .get_or_init(|| {
            Metrics::new()
                .map_err(|e| tracing::error!(error = %e, "metrics are off: registering failed"))
                .ok()
        })
        .as_ref()
}

/// The process's metrics in the Prometheus text format.
pub fn render() -> String {
    global().map(Metrics::render).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
        text.lines().find(|l| l.starts_with(prefix))
    }

    #[test]
    fn bus_requests_errors_and_latency() {
        let m = Metrics::new().unwrap();
        m.bus_served("crypto", "Encrypt", None, Duration::from_millis(3));
        m.bus_served("crypto", "Encrypt", None, Duration::from_millis(30));
        m.bus_served("crypto", "Decrypt", Some("InvalidCiphertextException"), Duration::ZERO);
        m.bus_called(
            "metadata",
            "ResolveKey",
            Some("DependencyTimeoutException"),
            Duration::from_secs(5),
        );
        let text = m.render();
        for expected in [
            r#"kms_bus_server_requests_total{operation="Encrypt",outcome="ok",service="crypto"} 2"#,
            r#"kms_bus_server_requests_total{operation="Decrypt",outcome="error",service="crypto"} 1"#,
            r#"kms_bus_server_errors_total{code="InvalidCiphertextException",operation="Decrypt",service="crypto"} 1"#,
            r#"kms_bus_server_request_duration_seconds_count{operation="Encrypt",service="crypto"} 2"#,
            r#"kms_bus_server_request_duration_seconds_bucket{operation="Encrypt",service="crypto",le="0.005"} 1"#,
            r#"kms_bus_server_request_duration_seconds_bucket{operation="Encrypt",service="crypto",le="0.05"} 2"#,
            r#"kms_bus_server_request_duration_seconds_bucket{operation="Encrypt",service="crypto",le="+Inf"} 2"#,
            r#"kms_bus_client_requests_total{operation="ResolveKey",outcome="error",service="metadata"} 1"#,
            r#"kms_bus_client_errors_total{code="DependencyTimeoutException",operation="ResolveKey",service="metadata"} 1"#,
            r#"kms_bus_client_request_duration_seconds_sum{operation="ResolveKey",service="metadata"} 5"#,
        ] {
            assert!(text.lines().any(|l| l == expected), "missing {expected}\n{text}");
        }
        assert!(line(&text, "# TYPE kms_bus_server_request_duration_seconds histogram").is_some());
        assert!(line(&text, "# TYPE kms_bus_server_requests_total counter").is_some());
        assert!(
            line(&text, "kms_bus_server_errors_total{code=\"").into_iter().count() == 1,
            "no error series for the successful Encrypt calls\n{text}"
        );
    }

    #[test]
    fn in_flight_follows_the_guards() {
        let m = Metrics::new().unwrap();
        let gauge = |m: &Metrics| {
            line(&m.render(), "kms_bus_server_in_flight_requests{service=\"policy\"}")
                .map(str::to_owned)
        };
        let first = m.bus_in_flight("policy");
        let second = m.bus_in_flight("policy");
        assert_eq!(
            gauge(&m).as_deref(),
            Some("kms_bus_server_in_flight_requests{service=\"policy\"} 2")
        );
        drop(first);
        drop(second);
        assert_eq!(
            gauge(&m).as_deref(),
            Some("kms_bus_server_in_flight_requests{service=\"policy\"} 0")
        );
    }

    #[test]
    fn gateway_requests_by_operation_and_status() {
        let m = Metrics::new().unwrap();
        m.http_served("Encrypt", 200, None, Duration::from_millis(2));
        m.http_served("Decrypt", 400, Some("InvalidCiphertextException"), Duration::from_millis(2));
        let text = m.render();
        for expected in [
            r#"kms_gateway_http_requests_total{operation="Encrypt",status="200"} 1"#,
            r#"kms_gateway_http_requests_total{operation="Decrypt",status="400"} 1"#,
            r#"kms_gateway_http_errors_total{code="InvalidCiphertextException",operation="Decrypt"} 1"#,
            r#"kms_gateway_http_request_duration_seconds_count{operation="Encrypt"} 1"#,
        ] {
            assert!(text.lines().any(|l| l == expected), "missing {expected}\n{text}");
        }
    }

    #[test]
    fn pending_deletion_uses_by_operation() {
        let m = Metrics::new().unwrap();
        let series = |op: &str| {
            format!("kms_gateway_pending_deletion_key_requests_total{{operation=\"{op}\"}}")
        };
        assert!(line(&m.render(), &series("Decrypt")).is_none(), "no series before a use");
        m.pending_deletion_key_used("Decrypt");
        m.pending_deletion_key_used("Decrypt");
        m.pending_deletion_key_used("Sign");
        let text = m.render();
        assert_eq!(
            line(&text, &series("Decrypt")),
            Some(format!("{} 2", series("Decrypt")).as_str())
        );
        assert_eq!(line(&text, &series("Sign")), Some(format!("{} 1", series("Sign")).as_str()));
    }

    #[test]
    fn extra_gauges_and_names_are_checked() {
        let m = Metrics::new().unwrap();
        let lag = m.gauge("kms_audit_stream_pending_messages", "lag").unwrap();
        lag.set(7);
        assert!(m.render().lines().any(|l| l == "kms_audit_stream_pending_messages 7"));
        assert!(m.gauge("kms_audit_stream_pending_messages", "twice").is_err());
        assert!(m.gauge("not a name", "bad").is_err());
    }

    #[test]
    fn the_global_registry_renders() {
        global().unwrap().bus_served("audit", "LookupEvents", None, Duration::from_millis(1));
        assert!(render().contains("kms_bus_server_requests_total{operation=\"LookupEvents\""));
    }
}
