//! The policy service: who may do what. It keeps key policies, grants and identity
//! policies in sled and answers `kms.v1.policy.*`, including `Authorize`, the decision the
//! gateway asks for before every KMS call. Decisions come from `kms-policy-lang`; this
//! crate only loads what a decision needs and stores what changes it. Every change (a key
//! policy put, a grant created, retired or revoked, an identity policy put or deleted) is
//! announced on `kms.v1.changes.<account>.<key id | identity>` so that gateways drop the
//! decisions they cached.

mod authorize;
mod grants;
mod identity;
mod store;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use kms_bus::{policy as op, Bus, Router};

pub use identity::BootstrapFile;
use store::Store;

/// Settings of the policy service.
#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    /// Directory of the service's sled database.
    #[arg(long = "policy-data-dir", env = "KMS_POLICY_DATA_DIR", default_value = ".data/policy")]
    pub data_dir: PathBuf,
    /// JSON file of identity policies to attach at start-up when the principal does not
    /// have a policy of that name yet (see `BootstrapFile`).
    #[arg(long = "policy-bootstrap-file", env = "KMS_POLICY_BOOTSTRAP_FILE")]
    pub bootstrap_file: Option<PathBuf>,
}

impl Config {
    pub fn for_test(data_dir: PathBuf) -> Self {
        Self { data_dir, bootstrap_file: None }
    }
}

/// The subject a change to a key's policy or grants is announced on.
pub fn key_change_subject(account: &str, key_id: &str) -> String {
    format!("kms.v1.changes.{account}.{key_id}")
}

/// The subject a change to an account's identity policies is announced on.
pub fn identity_change_subject(account: &str) -> String {
    format!("kms.v1.changes.{account}.identity")
}

pub(crate) struct Service {
    store: Store,
    bus: Bus,
}

impl Service {
    /// Tells every gateway that decisions about this key may have changed. Published
    /// before the reply on the same connection, so a gateway hears of the change no later
    /// than it hears the answer.
    async fn announce(&self, subject: String) {
        if let Err(e) = self.bus.client().publish(subject, bytes::Bytes::new()).await {
            tracing::warn!(error = %e, "could not announce a policy change");
        }
    }
}

/// Serves the policy operations until `shutdown` resolves.
pub async fn run(
    config: Config,
    bus: Bus,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let store = Store::open(&config.data_dir)?;
    if let Some(path) = &config.bootstrap_file {
        let applied = store.bootstrap(path).await?;
        tracing::info!(applied, file = %path.display(), "identity policies bootstrapped");
    }
    let service = Arc::new(Service { store, bus: bus.clone() });
    let router = Router::new("policy")
        .route::<op::PutPolicy, _, _>(|s: Arc<Service>, r| async move { s.put_key_policy(r).await })
        .route::<op::GetPolicy, _, _>(|s: Arc<Service>, r| async move { s.store.get(r) })
        .route::<op::ListPolicies, _, _>(|s: Arc<Service>, r| async move { s.store.list(r) })
        .route::<op::DeletePolicies, _, _>(
            |s: Arc<Service>, r| async move { s.delete_key(r).await },
        )
        .route::<op::Authorize, _, _>(|s: Arc<Service>, r| async move { s.store.authorize(&r) })
        .route::<op::CreateGrant, _, _>(|s: Arc<Service>, r| async move { s.create_grant(r).await })
        .route::<op::ListGrants, _, _>(|s: Arc<Service>, r| async move { s.store.list_grants(&r) })
        .route::<op::ListRetirableGrants, _, _>(|s: Arc<Service>, r| async move {
            s.store.list_retirable_grants(&r)
        })
        .route::<op::RetireGrant, _, _>(|s: Arc<Service>, r| async move { s.retire_grant(r).await })
        .route::<op::RevokeGrant, _, _>(|s: Arc<Service>, r| async move { s.revoke_grant(r).await })
        .route::<op::PutIdentityPolicy, _, _>(|s: Arc<Service>, r| async move {
            s.put_identity_policy(r).await
        })
        .route::<op::GetIdentityPolicy, _, _>(|s: Arc<Service>, r| async move {
            s.store.get_identity_policy(&r)
        })
        .route::<op::DeleteIdentityPolicy, _, _>(|s: Arc<Service>, r| async move {
            s.delete_identity_policy(r).await
        })
        .route::<op::ListIdentityPolicies, _, _>(|s: Arc<Service>, r| async move {
            s.store.list_identity_policies(&r)
        });
    kms_bus::serve(&bus, service, router, Duration::from_secs(10), shutdown).await
}
