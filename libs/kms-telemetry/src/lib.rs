//! Tracing set-up shared by every binary: one `init()` called from `main`, structured
//! output on stderr, level from `RUST_LOG` (default `info`). Set `KMS_LOG_FORMAT=json`
//! for machine-readable logs in Kubernetes.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. Safe to call more than once (later calls are no-ops).
pub fn init() {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,async_nats=warn,sled=warn"));
    let json = std::env::var("KMS_LOG_FORMAT").is_ok_and(|v| v == "json");
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = if json { builder.json().try_init() } else { builder.try_init() };
}
