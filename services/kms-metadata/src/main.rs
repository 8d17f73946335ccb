//! The metadata service as its own process.

use std::time::Duration;

use clap::Parser;
use kms_health::{HealthArgs, NatsArgs, Readiness};

#[derive(Parser)]
#[command(about = "KMS metadata service: keys, aliases, tags")]
struct Cli {
    #[command(flatten)]
    config: kms_metadata::Config,
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
    let telemetry = kms_telemetry::init_service("kms-metadata");
    let cli = Cli::parse();
    let bus = cli.nats.connect("kms-metadata", Duration::from_secs(5)).await?;
    // The service subscribes only once its store is open: an answer on the bus means both.
    let readiness = Readiness::new().nats(&bus).metadata_answers(&bus);
    readiness.spawn(&cli.health).await?;
    let result =
        kms_metadata::run(cli.config, bus, readiness.on_shutdown(kms_bus::shutdown_signal())).await;
    telemetry.close().await;
    result
}
