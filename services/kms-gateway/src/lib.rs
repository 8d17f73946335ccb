//! The gateway: the only public surface. It speaks the AWS KMS wire protocol (awsJson1_1
//! over HTTP `POST /` with `X-Amz-Target`) and CloudTrail's `LookupEvents`, authenticates
//! every request (SigV4 or JWT bearer), validates input as AWS does, fans the work out to
//! the services over NATS, and answers only after the call's CloudTrail record is stored
//! in the `KMS_AUDIT` stream. Every call is authorized by the policy service first. Its
//! only state is caches of allow decisions (`access`) and of key records (`key_cache`)
//! that change announcements clear; scale it by replicas. It also answers STS
//! `AssumeRoleWithWebIdentity` for Kubernetes workloads (`sts`); the temporary credentials
//! carry their session sealed under a key all replicas share, so any replica accepts them.

mod access;
mod audit;
mod changes;
mod client_ip;
mod cloudtrail;
mod http;
mod key_cache;
mod ops;
mod params;
mod sts;
mod tls;

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
    /// Workload identity (JSON): Kubernetes token issuers with their JWKS files, and which
    /// namespace/service account may assume which role through STS
    /// `AssumeRoleWithWebIdentity`. Needs `--session-key-file`.
    #[arg(long = "workload-identity-file", env = "KMS_GATEWAY_WORKLOAD_IDENTITY_FILE")]
    pub workload_identity_file: Option<PathBuf>,
    /// Keys (64 hex characters per line; the first seals) of role-session tokens; every
    /// gateway replica needs the same file to accept the temporary credentials.
    #[arg(long = "session-key-file", env = "KMS_GATEWAY_SESSION_KEY_FILE")]
    pub session_key_file: Option<PathBuf>,
    /// PEM certificate chain: with `--tls-key-file`, the API is served over HTTPS only.
    #[arg(long = "tls-cert-file", env = "KMS_GATEWAY_TLS_CERT_FILE", requires = "tls_key_file")]
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key of the certificate.
    #[arg(long = "tls-key-file", env = "KMS_GATEWAY_TLS_KEY_FILE", requires = "tls_cert_file")]
    pub tls_key_file: Option<PathBuf>,
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
            workload_identity_file: None,
            session_key_file: None,
            tls_cert_file: None,
            tls_key_file: None,
        }
    }
}

pub use client_ip::Cidr;

pub(crate) struct App {
    bus: Bus,
    auth: Authenticator,
    default_region: String,
    decisions: Arc<access::DecisionCache>,
    /// Applies change announcements to `decisions`; calls wait on it before a cache hit.
    changes: Arc<changes::Changes>,
    trusted_proxies: Vec<client_ip::Cidr>,
    /// STS `AssumeRoleWithWebIdentity`, when configured.
    workload: Option<kms_auth::WorkloadIdentity>,
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
    let session_keys = config
        .session_key_file
        .as_ref()
        .map(|path| {
            kms_auth::SessionKeys::load(path)
                .map_err(|e| anyhow::anyhow!("loading session keys from {}: {e}", path.display()))
        })
        .transpose()?;
    let workload = match (&config.workload_identity_file, &session_keys) {
        (None, _) => None,
        (Some(path), Some(keys)) => {
            Some(kms_auth::WorkloadIdentity::load(path, keys.clone()).map_err(|e| {
                anyhow::anyhow!("loading workload identity from {}: {e}", path.display())
            })?)
        }
        (Some(_), None) => {
            anyhow::bail!(
                "a workload identity file needs a session key file (KMS_GATEWAY_SESSION_KEY_FILE)"
            )
        }
    };
    let mut auth = Authenticator::new(store);
    if let Some(keys) = session_keys {
        auth = auth.with_session_keys(keys);
    }
    kms_core::Region::parse(&config.default_region)
        .map_err(|e| anyhow::anyhow!("invalid default region: {}", e.message))?;
    kms_bus::ensure_audit_stream(
        &bus.jetstream(),
        &AuditStreamConfig { replicas: config.audit_stream_replicas },
    )
    .await?;
    let decisions = Arc::new(access::DecisionCache::default());
    let (changes, follower) = changes::follow(bus.client().clone(), decisions.clone()).await?;
    let app = Arc::new(App {
        bus,
        auth,
        default_region: config.default_region,
        decisions,
        changes,
        trusted_proxies: config.trusted_proxies,
        workload,
    });
    // Spans and kms_gateway_http_* metrics per API request.
    let router = kms_telemetry::http::instrument(http::router(app));
    let service = router.into_make_service_with_connect_info::<tls::Peer>();
    match (&config.tls_cert_file, &config.tls_key_file) {
        (Some(cert), Some(key)) => {
            let listener = tls::TlsListener::new(listener, tls::server_config(cert, key)?)?;
            let address = axum::serve::Listener::local_addr(&listener)?.addr;
            tracing::info!(%address, "gateway listening (HTTPS)");
            axum::serve(listener, service).with_graceful_shutdown(shutdown).await?;
        }
        _ => {
            tracing::info!(address = %listener.local_addr()?, "gateway listening");
            axum::serve(listener, service).with_graceful_shutdown(shutdown).await?;
        }
    }
    follower.abort();
    tracing::info!("gateway stopped");
    Ok(())
}
