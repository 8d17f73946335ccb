//! The gateway: the only public surface. It speaks the AWS KMS wire protocol (awsJson1_1
//! over HTTP `POST /` with `X-Amz-Target`) and CloudTrail's `LookupEvents`, authenticates
//! every request (SigV4 or JWT bearer), validates input as AWS does, fans the work out to
//! the services over NATS, and answers only after the call's CloudTrail record is stored
//! in the `KMS_AUDIT` stream. It keeps no state of its own; scale it by replicas.

mod access;
mod audit;
mod cloudtrail;
mod http;
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
}

impl Config {
    pub fn for_test(credentials_file: PathBuf) -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            credentials_file,
            default_region: "us-east-1".to_owned(),
            audit_stream_replicas: 1,
        }
    }
}

pub(crate) struct App {
    bus: Bus,
    auth: Authenticator,
    default_region: String,
    decisions: Arc<access::DecisionCache>,
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
    });
    let router = http::router(app);
    tracing::info!(address = %listener.local_addr()?, "gateway listening");
    axum::serve(listener, router.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(shutdown)
        .await?;
    follower.abort();
    tracing::info!("gateway stopped");
    Ok(())
}
