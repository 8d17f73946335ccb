//! The policy service as its own process.

use clap::Parser;

#[derive(Parser)]
#[command(about = "KMS policy service: key policies")]
struct Cli {
    #[command(flatten)]
    config: kms_policy::Config,
    /// NATS server to connect to.
    #[arg(long, env = "KMS_NATS_URL", default_value = "nats://127.0.0.1:4222")]
    nats_url: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    kms_telemetry::init();
    let cli = Cli::parse();
    let bus = kms_bus::Bus::connect(&cli.nats_url, std::time::Duration::from_secs(5)).await?;
    kms_policy::run(cli.config, bus, kms_bus::shutdown_signal()).await
}
