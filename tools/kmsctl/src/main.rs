//! `kmsctl`: the audit tools for the security team and operators (see `kmsctl --help`).

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<std::process::ExitCode> {
    kmsctl::run(kmsctl::Cli::parse()).await
}
