//! The gateway as its own process: the HTTP API on `KMS_GATEWAY_LISTEN`, probes on
//! `KMS_HEALTH_LISTEN`.

use std::time::Duration;

use clap::Parser;
use kms_health::{HealthArgs, NatsArgs, Readiness};

#[derive(Parser)]
#[command(about = "KMS gateway: the AWS KMS API over HTTP, authenticated and audited")]
struct Cli {
    #[command(flatten)]
    config: kms_gateway::Config,
    #[command(flatten)]
    nats: NatsArgs,
    #[command(flatten)]
    health: HealthArgs,
}

/// jemalloc instead of the C library's allocator: under load the services allocate per
/// request (JSON, protobuf, sled nodes), and glibc's malloc took about a fifth of the CPU.
/// Measured side by side (BENCHMARKS.md): about 30 % more Encrypt/s, and less RSS under
/// load. Secrets are zeroized before they are freed, whichever allocator.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let telemetry = kms_telemetry::init_service("kms-gateway");
    let cli = Cli::parse();
    let bus = cli.nats.connect("kms-gateway", Duration::from_secs(5)).await?;
    // Every call ends in an audit record, so no audit stream, no readiness.
    let readiness = Readiness::new().nats(&bus).audit_stream(&bus);
    readiness.spawn(&cli.health).await?;
    let listen = cli.config.listen;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| anyhow::anyhow!("binding {listen}: {e}"))?;
    let shutdown = readiness.on_shutdown(kms_bus::shutdown_signal());
    let result = kms_gateway::run(cli.config, bus, listener, shutdown).await;
    telemetry.close().await;
    result
}
