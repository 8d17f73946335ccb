//! Logs, traces and metrics shared by every binary.
//!
//! - Logs: `tracing-subscriber` on stderr, filtered by `RUST_LOG` (default `info`), as JSON
//!   lines with `KMS_LOG_FORMAT=json` (production), multi-line with `pretty`, one line per
//!   event otherwise.
//! - Traces: when `OTEL_EXPORTER_OTLP_ENDPOINT` is set (off by default), the spans of this
//!   crate's and the services' code are exported over OTLP/gRPC, and the W3C `traceparent`
//!   that bus calls carry joins the spans of every service a request reaches into one
//!   trace ([`trace`]).
//! - Metrics: one Prometheus registry per process ([`metrics`]), rendered on the health
//!   server's `/metrics`; labels come from bounded sets only (services, operations, AWS
//!   error codes, HTTP statuses), never from request contents.
//!
//! `main` calls [`init_service`] once and [`Telemetry::shutdown`] before it exits.

pub mod http;
pub mod metrics;
pub mod trace;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// Filter of the log output when `RUST_LOG` is unset.
const DEFAULT_LOG_FILTER: &str = "info,async_nats=warn,sled=warn";

/// How log lines look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// One JSON object per line, span fields included: for log collectors.
    Json,
    /// Multi-line, coloured when on a terminal: for people.
    Pretty,
    /// One line per event.
    #[default]
    Text,
}

impl LogFormat {
    /// `json`, `pretty` or `text`; anything else is `text`.
    pub fn parse(value: &str) -> Self {
        match value.trim().to_ascii_lowercase().as_str() {
            "json" => Self::Json,
            "pretty" => Self::Pretty,
            _ => Self::Text,
        }
    }
}

/// What [`install`] sets up.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// `service.name` of exported spans (`kms-gateway`, ...).
    pub service: String,
    pub log_format: LogFormat,
    /// `RUST_LOG`-style filter of the log output; `None`, the default filter.
    pub log_filter: Option<String>,
    /// OTLP/gRPC endpoint (`http://collector:4317`); `None`, no trace export.
    pub otlp_endpoint: Option<String>,
}

impl Settings {
    /// Reads `KMS_LOG_FORMAT`, `RUST_LOG`, `OTEL_EXPORTER_OTLP_ENDPOINT` (or the
    /// traces-only `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) and `OTEL_SERVICE_NAME` (which
    /// overrides `service`).
    pub fn from_env(service: &str) -> Self {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        Self {
            service: var("OTEL_SERVICE_NAME").unwrap_or_else(|| service.to_owned()),
            log_format: var("KMS_LOG_FORMAT").map(|v| LogFormat::parse(&v)).unwrap_or_default(),
            log_filter: var("RUST_LOG"),
            otlp_endpoint: var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
                .or_else(|| var("OTEL_EXPORTER_OTLP_ENDPOINT")),
        }
    }
}

/// What [`install`] set up; [`Telemetry::shutdown`] sends the spans still buffered.
#[must_use = "call shutdown() before the process exits so buffered spans are sent"]
#[derive(Debug, Default)]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Whether spans are exported.
    pub fn exports_traces(&self) -> bool {
        self.provider.is_some()
    }

    /// Exports every finished span now.
    pub fn flush(&self) {
        if let Some(provider) = &self.provider {
            if let Err(e) = provider.force_flush() {
                tracing::warn!(error = %e, "could not flush spans");
            }
        }
    }

    /// [`Telemetry::shutdown`] off the async workers, which keep driving the exporter's
    /// connection meanwhile: what an async `main` calls last.
    pub async fn close(self) {
        if self.provider.is_some() {
            let _ = tokio::task::spawn_blocking(move || self.shutdown()).await;
        }
    }

    /// Exports the spans still buffered and stops the exporter (blocks).
    pub fn shutdown(self) {
        if let Some(provider) = self.provider {
            if let Err(e) = provider.shutdown() {
                tracing::warn!(error = %e, "could not flush spans at shutdown");
            }
        }
    }
}

/// Installs logging (and nothing else) with settings from the environment, as a process
/// that names no service. Safe to call more than once (later calls are no-ops).
pub fn init() {
    init_service("kms").shutdown_on_drop_never();
}

/// Installs logging, and trace export when an OTLP endpoint is configured, for `service`,
/// with settings from the environment ([`Settings::from_env`]). Must run inside a tokio
/// runtime (the OTLP exporter's connection lives there).
pub fn init_service(service: &str) -> Telemetry {
    install(Settings::from_env(service))
}

/// Installs the global subscriber as `settings` say. When a subscriber is already
/// installed (a second call, or tests sharing a process), nothing changes and no spans
/// are exported by this call.
pub fn install(settings: Settings) -> Telemetry {
    let filter = settings
        .log_filter
        .as_deref()
        .and_then(|f| EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| EnvFilter::new(DEFAULT_LOG_FILTER));
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let logs = match settings.log_format {
        LogFormat::Json => fmt.json().with_filter(filter).boxed(),
        LogFormat::Pretty => fmt.pretty().with_filter(filter).boxed(),
        LogFormat::Text => fmt.with_filter(filter).boxed(),
    };
    let (provider, exporter_error) = match settings.otlp_endpoint.as_deref() {
        Some(endpoint) => match tracer_provider(&settings.service, endpoint) {
            Ok(provider) => (Some(provider), None),
            Err(e) => (None, Some(e)),
        },
        None => (None, None),
    };
    let traces = provider.as_ref().map(|provider| {
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("kms"))
            .with_filter(span_targets())
    });
    let installed = tracing_subscriber::registry().with(logs).with(traces).try_init().is_ok();
    if let Some(e) = exporter_error {
        tracing::error!(error = %e, "trace export is off: the otlp exporter could not be built");
    }
    match provider {
        Some(provider) if installed => {
            tracing::info!(
                endpoint = settings.otlp_endpoint.as_deref().unwrap_or_default(),
                service = %settings.service,
                "exporting traces over otlp"
            );
            Telemetry { provider: Some(provider) }
        }
        Some(provider) => {
            let _ = provider.shutdown();
            Telemetry::default()
        }
        None => Telemetry::default(),
    }
}

impl Telemetry {
    /// `init` keeps the exporter for the life of the process.
    fn shutdown_on_drop_never(self) {
        std::mem::forget(self);
    }
}

/// The spans worth a trace: the project's own, at `info` and above. The exporter's own
/// transport (tonic, hyper, h2) stays out, or exporting would make spans to export.
fn span_targets() -> Targets {
    let ours = [
        "kms_telemetry",
        "kms_bus",
        "kms_health",
        "kms_gateway",
        "kms_metadata",
        "kms_policy",
        "kms_crypto",
        "kms_audit",
        "kms_server",
    ];
    ours.into_iter().fold(Targets::new().with_default(LevelFilter::OFF), |t, target| {
        t.with_target(target, LevelFilter::INFO)
    })
}

fn tracer_provider(
    service: &str,
    endpoint: &str,
) -> Result<SdkTracerProvider, opentelemetry_otlp::ExporterBuildError> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint)
        .with_timeout(std::time::Duration::from_secs(5))
        .build()?;
    let resource = Resource::builder().with_service_name(service.to_owned()).build();
    Ok(SdkTracerProvider::builder().with_batch_exporter(exporter).with_resource(resource).build())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_formats() {
        for (value, expected) in [
            ("json", LogFormat::Json),
            ("JSON", LogFormat::Json),
            (" pretty ", LogFormat::Pretty),
            ("text", LogFormat::Text),
            ("", LogFormat::Text),
            ("yaml", LogFormat::Text),
        ] {
            assert_eq!(LogFormat::parse(value), expected, "{value:?}");
        }
    }

    #[test]
    fn only_our_spans_are_traced() {
        let targets = span_targets();
        assert!(targets.would_enable("kms_bus::server", &tracing::Level::INFO));
        assert!(!targets.would_enable("kms_bus::server", &tracing::Level::DEBUG));
        assert!(!targets.would_enable("tonic::transport", &tracing::Level::INFO));
        assert!(!targets.would_enable("h2::proto", &tracing::Level::ERROR));
    }
}
