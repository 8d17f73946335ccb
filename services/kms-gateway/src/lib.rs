//! The gateway: the only public surface. It speaks the AWS KMS wire protocol (awsJson1_1
//! over HTTP `POST /` with `X-Amz-Target`) and CloudTrail's `LookupEvents`, authenticates
//! every request (SigV4 or JWT bearer), validates input as AWS does, fans the work out to
//! the services over NATS, and answers only after the call's CloudTrail record is stored
//! in the `KMS_AUDIT` stream. Every call is authorized by the policy service first. Its
//! only state is caches of allow decisions (`access`) and of key records (`key_cache`)
//! that change announcements clear; scale it by replicas.

mod access;
mod audit;
mod client_ip;
mod cloudtrail;
mod http;
mod key_cache;
mod ops;
mod params;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use kms_auth::{Authenticator, CredentialStore};
use kms_bus::{AuditStreamConfig, Bus};

/// Settings of the gateway.
#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    /// Address the HTTP API listens on.
    #[arg(long = "listen", env = "KMS_GATEWAY_LISTEN", default_value = "127.0.0.1:4566")]
    pub listen: SocketAddr,
    /// JSON file of access keys, JWT issuers and admin principals.
    #[arg(
        long = "credentials-file",
        env = "KMS_GATEWAY_CREDENTIALS_FILE",
        default_value = ".data/credentials.json"
    )]
    pub credentials_file: PathBuf,
    /// Region for callers whose credentials name none (JWT bearer tokens).
    #[arg(
        long = "default-region",
        env = "KMS_GATEWAY_DEFAULT_REGION",
        default_value = "us-east-1"
    )]
    pub default_region: String,
    /// JetStream replicas of the audit stream (3 in a NATS cluster).
    #[arg(
        long = "gateway-audit-stream-replicas",
        env = "KMS_GATEWAY_AUDIT_STREAM_REPLICAS",
        default_value_t = 1
    )]
    pub audit_stream_replicas: usize,
    /// Proxies (comma-separated addresses or CIDRs) whose `X-Forwarded-For` names the
    /// client; from anyone else the header is ignored.
    #[arg(
        long = "gateway-trusted-proxies",
        env = "KMS_GATEWAY_TRUSTED_PROXIES",
        value_delimiter = ',',
        value_parser = parse_cidr
    )]
    pub trusted_proxies: Vec<client_ip::Cidr>,
}

fn parse_cidr(text: &str) -> Result<client_ip::Cidr, String> {
    client_ip::Cidr::parse(text).ok_or_else(|| format!("'{text}' is not an address or CIDR"))
}

impl Config {
    pub fn for_test(credentials_file: PathBuf) -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            credentials_file,
            default_region: "us-east-1".to_owned(),
            audit_stream_replicas: 1,
            trusted_proxies: Vec::new(),
        }
    }
}

pub use client_ip::Cidr;

pub(crate) struct App {
    bus: Bus,
    auth: Authenticator,
    default_region: String,
    decisions: Arc<access::DecisionCache>,
    trusted_proxies: Vec<client_ip::Cidr>,
}

/// Serves the HTTP API on `listener` until `shutdown` resolves, then lets in-flight
/// requests finish.
pub async fn run(
    config: Config,
    bus: Bus,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let store = CredentialStore::load(&config.credentials_file).map_err(|e| {
        anyhow::anyhow!("loading credentials from {}: {e}", config.credentials_file.display())
    })?;
    kms_core::Region::parse(&config.default_region)
        .map_err(|e| anyhow::anyhow!("invalid default region: {}", e.message))?;
    kms_bus::ensure_audit_stream(
        &bus.jetstream(),
        &AuditStreamConfig { replicas: config.audit_stream_replicas },
    )
    .await?;
    let decisions = Arc::new(access::DecisionCache::default());
    let follower = access::follow_changes(bus.client().clone(), decisions.clone()).await?;
    let app = Arc::new(App {
        bus,
        auth: Authenticator::new(store),
        default_region: config.default_region,
        decisions,
        trusted_proxies: config.trusted_proxies,
    });
    // Spans and kms_gateway_http_* metrics per API request.
    let router = kms_telemetry::http::instrument(http::router(app));
    tracing::info!(address = %listener.local_addr()?, "gateway listening");
    axum::serve(listener, router.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(shutdown)
        .await?;
    follower.abort();
    tracing::info!("gateway stopped");
    Ok(())
}
