//! Every service in one process: the development deployment and the wiring the
//! end-to-end tests start. Each service keeps its own sled directory under one data
//! directory and shares the process's single NATS connection.

mod dev;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use kms_bus::Bus;
use tokio_util::sync::CancellationToken;

pub use dev::{
    dev_init, DevSetup, DEV_ACCOUNT, DEV_PRINCIPAL, DEV_SECOND_ACCOUNT, DEV_SECOND_PRINCIPAL,
    IDENTITY_POLICIES_FILE, SESSION_KEY_FILE,
};

/// Settings of the whole system, derived from one data directory.
#[derive(Debug, Clone)]
pub struct AllConfig {
    pub gateway: kms_gateway::Config,
    pub metadata: kms_metadata::Config,
    pub policy: kms_policy::Config,
    pub crypto: kms_crypto::Config,
    pub audit: kms_audit::Config,
    /// Whether this process runs the audit service (tests run it separately to stop it).
    pub run_audit: bool,
}

impl AllConfig {
    /// The layout under `data_dir`: one sled directory per service, the root key and
    /// the credentials file beside them (and the session key, when `dev-init` made one).
    pub fn under(data_dir: &Path, root_key_file: PathBuf, credentials_file: PathBuf) -> Self {
        let mut gateway = kms_gateway::Config::for_test(credentials_file);
        gateway.listen = std::net::SocketAddr::from(([127, 0, 0, 1], 4566));
        gateway.session_key_file = Some(data_dir.join(SESSION_KEY_FILE)).filter(|f| f.exists());
        let mut crypto = kms_crypto::Config::for_test(data_dir.join("crypto"), String::new());
        crypto.root_key_hex = None;
        crypto.root_key_file = Some(root_key_file);
        Self {
            gateway,
            metadata: kms_metadata::Config::for_test(data_dir.join("metadata")),
            policy: kms_policy::Config {
                data_dir: data_dir.join("policy"),
                bootstrap_file: Some(data_dir.join(IDENTITY_POLICIES_FILE)).filter(|f| f.exists()),
            },
            crypto,
            audit: kms_audit::Config::for_test(data_dir.join("audit")),
            run_audit: true,
        }
    }
}

/// How long the services get to finish after a shutdown request before `run_all` gives
/// up on them (a service waiting on an unreachable NATS would otherwise never return, and
/// the process never exit).
pub const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// Runs every service until `shutdown` is cancelled; if any stops with an error, the
/// others are stopped too and the first error is returned. Services still running
/// `SHUTDOWN_GRACE` after the shutdown are abandoned, with an error. `clock` drives
/// scheduled rotations and deletions (the system clock, or one a test moves).
pub async fn run_all(
    config: AllConfig,
    bus: Bus,
    listener: tokio::net::TcpListener,
    clock: Arc<dyn kms_core::Clock>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let mut tasks = tokio::task::JoinSet::new();
    let stop = shutdown.clone();
    tasks.spawn(kms_metadata::run_with_clock(
        config.metadata,
        bus.clone(),
        clock,
        stop.clone().cancelled_owned(),
    ));
    tasks.spawn(kms_policy::run(config.policy, bus.clone(), stop.clone().cancelled_owned()));
    tasks.spawn(kms_crypto::run(config.crypto, bus.clone(), stop.clone().cancelled_owned()));
    if config.run_audit {
        tasks.spawn(kms_audit::run(config.audit, bus.clone(), stop.clone().cancelled_owned()));
    }
    tasks.spawn(kms_gateway::run(config.gateway, bus, listener, stop.cancelled_owned()));
    let mut first_error = None;
    let services_done = async {
        while let Some(joined) = tasks.join_next().await {
            let result = joined.map_err(anyhow::Error::from).and_then(|r| r);
            if let Err(e) = result {
                tracing::error!(error = %e, "a service stopped with an error; stopping the others");
                shutdown.cancel();
                first_error.get_or_insert(e);
            } else if !shutdown.is_cancelled() {
                tracing::error!("a service stopped unexpectedly; stopping the others");
                shutdown.cancel();
            }
        }
    };
    let grace_over = async {
        shutdown.cancelled().await;
        tokio::time::sleep(SHUTDOWN_GRACE).await;
    };
    tokio::select! {
        () = services_done => first_error.map_or(Ok(()), Err),
        () = grace_over => {
            // Dropping the JoinSet aborts the services still running.
            tracing::error!(grace_s = SHUTDOWN_GRACE.as_secs(), "services did not stop in time; exiting anyway");
            Err(anyhow::anyhow!(
                "services did not stop within {} s of the shutdown request",
                SHUTDOWN_GRACE.as_secs()
            ))
        }
    }
}
