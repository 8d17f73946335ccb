//! `kms-server`: every service in one process (`run`), and `dev-init`, which creates a
//! development root key, credentials and an AWS CLI profile under the data directory.

use std::io::Write;
use std::path::PathBuf;

use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(about = "Self-hosted AWS KMS-compatible key management service, all in one process")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
#[allow(clippy::large_enum_variant, reason = "parsed once at start")]
enum Command {
    /// Create (once) the development root key, credentials and AWS CLI profile, and print
    /// the environment that points the `aws` CLI at the gateway.
    DevInit {
        #[arg(long, env = "KMS_DATA_DIR", default_value = ".data")]
        data_dir: PathBuf,
        #[arg(long, env = "KMS_ENDPOINT", default_value = "http://127.0.0.1:4566")]
        endpoint: String,
        #[arg(long, env = "KMS_GATEWAY_DEFAULT_REGION", default_value = "us-east-1")]
        region: String,
    },
    /// Run the gateway and every service.
    Run {
        #[arg(long, env = "KMS_DATA_DIR", default_value = ".data")]
        data_dir: PathBuf,
        #[command(flatten)]
        nats: kms_health::NatsArgs,
        #[command(flatten)]
        health: kms_health::HealthArgs,
        #[arg(long = "listen", env = "KMS_GATEWAY_LISTEN", default_value = "127.0.0.1:4566")]
        listen: std::net::SocketAddr,
        #[arg(long, env = "KMS_GATEWAY_DEFAULT_REGION", default_value = "us-east-1")]
        default_region: String,
        /// Root key file (64 hex characters); default `<data-dir>/root-key.hex`.
        #[arg(long, env = "KMS_CRYPTO_ROOT_KEY_FILE")]
        root_key_file: Option<PathBuf>,
        /// Credentials file; default `<data-dir>/credentials.json`.
        #[arg(long, env = "KMS_GATEWAY_CREDENTIALS_FILE")]
        credentials_file: Option<PathBuf>,
        /// Address of the audit service's gRPC API (`kmsctl audit ...`); not served
        /// when unset. Callers authenticate with the credentials file's JWT issuers.
        #[arg(long, env = "KMS_AUDIT_GRPC_LISTEN")]
        audit_grpc_listen: Option<std::net::SocketAddr>,
        /// Workload identity: Kubernetes token issuers and role bindings for STS
        /// `AssumeRoleWithWebIdentity` (see the README); off when unset.
        #[arg(long, env = "KMS_GATEWAY_WORKLOAD_IDENTITY_FILE")]
        workload_identity_file: Option<PathBuf>,
        /// Role-session sealing keys; default `<data-dir>/session-key.hex` when present.
        #[arg(long, env = "KMS_GATEWAY_SESSION_KEY_FILE")]
        session_key_file: Option<PathBuf>,
        /// PEM certificate chain: with `--tls-key-file`, the gateway serves HTTPS only.
        #[arg(long, env = "KMS_GATEWAY_TLS_CERT_FILE", requires = "tls_key_file")]
        tls_cert_file: Option<PathBuf>,
        /// PEM private key of the gateway's certificate.
        #[arg(long, env = "KMS_GATEWAY_TLS_KEY_FILE", requires = "tls_cert_file")]
        tls_key_file: Option<PathBuf>,
    },
}

/// jemalloc instead of the C library's allocator: under load the services allocate per
/// request (JSON, protobuf, sled nodes), and glibc's malloc took about a fifth of the CPU.
/// Measured side by side (BENCHMARKS.md): about 30 % more Encrypt/s, and less RSS under
/// load. Secrets are zeroized before they are freed, whichever allocator.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let telemetry = kms_telemetry::init_service("kms-server");
    let result = command(Cli::parse().command).await;
    telemetry.close().await;
    result
}

async fn command(command: Command) -> anyhow::Result<()> {
    match command {
        Command::DevInit { data_dir, endpoint, region } => {
            let setup = kms_server::dev_init(&data_dir, &endpoint, &region)?;
            let absolute = |p: PathBuf| std::fs::canonicalize(&p).unwrap_or(p);
            let setup = kms_server::DevSetup {
                root_key_file: absolute(setup.root_key_file),
                credentials_file: absolute(setup.credentials_file),
                aws_config_file: absolute(setup.aws_config_file),
                aws_credentials_file: absolute(setup.aws_credentials_file),
                identity_policies_file: absolute(setup.identity_policies_file),
                session_key_file: absolute(setup.session_key_file),
            };
            std::io::stdout().write_all(setup.env_lines(&endpoint, &region).as_bytes())?;
            Ok(())
        }
        Command::Run {
            data_dir,
            nats,
            health,
            listen,
            default_region,
            root_key_file,
            credentials_file,
            audit_grpc_listen,
            workload_identity_file,
            session_key_file,
            tls_cert_file,
            tls_key_file,
        } => {
            let credentials_file =
                credentials_file.unwrap_or_else(|| data_dir.join("credentials.json"));
            let mut config = kms_server::AllConfig::under(
                &data_dir,
                root_key_file.unwrap_or_else(|| data_dir.join("root-key.hex")),
                credentials_file.clone(),
            );
            config.audit.grpc_listen = audit_grpc_listen;
            config.audit.credentials_file = Some(credentials_file);
            config.gateway.listen = listen;
            config.gateway.default_region = default_region;
            config.gateway.workload_identity_file = workload_identity_file;
            config.gateway.tls_cert_file = tls_cert_file;
            config.gateway.tls_key_file = tls_key_file;
            if session_key_file.is_some() {
                config.gateway.session_key_file = session_key_file;
            }
            config.metadata.scheduler_interval_ms = 60_000;
            let bus = nats.connect("kms-server", std::time::Duration::from_secs(5)).await?;
            let readiness = kms_health::Readiness::new()
                .nats(&bus)
                .audit_stream(&bus)
                .metadata_answers(&bus)
                .policy_answers(&bus)
                .crypto_answers(&bus)
                .audit_answers(&bus);
            readiness.spawn(&health).await?;
            kms_health::spawn_audit_lag(&bus);
            let listener = tokio::net::TcpListener::bind(listen)
                .await
                .map_err(|e| anyhow::anyhow!("binding {listen}: {e}"))?;
            let shutdown = CancellationToken::new();
            let trigger = shutdown.clone();
            let signal = readiness.on_shutdown(kms_bus::shutdown_signal());
            tokio::spawn(async move {
                signal.await;
                trigger.cancel();
            });
            let clock = std::sync::Arc::new(kms_core::SystemClock);
            kms_server::run_all(config, bus, listener, clock, shutdown).await
        }
    }
}
