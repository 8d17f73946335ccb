//! The metadata service: key records, aliases and tags in sled, and the key state
//! machine's transitions. It answers `kms.v1.metadata.*` on the bus; every write is
//! flushed to disk before the reply, so an acknowledged change survives a crash, and
//! announced on `kms.v1.changes.*` before the reply, so gateways drop cached key records.

mod scheduler;
mod store;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use kms_bus::{metadata as op, Bus, Router};
use store::MetadataStore;

/// Settings of the metadata service.
#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    /// Directory of the service's sled database.
    #[arg(
        long = "metadata-data-dir",
        env = "KMS_METADATA_DATA_DIR",
        default_value = ".data/metadata"
    )]
    pub data_dir: PathBuf,
    /// How often the scheduler looks for due rotations and deletions, in milliseconds.
    #[arg(
        long = "metadata-scheduler-interval-ms",
        env = "KMS_METADATA_SCHEDULER_INTERVAL_MS",
        default_value_t = 60_000
    )]
    pub scheduler_interval_ms: u64,
    /// Copies of the scheduler's claims bucket in JetStream (the NATS cluster's size, so
    /// claims survive the loss of a node).
    #[arg(
        long = "metadata-claim-replicas",
        env = "KMS_METADATA_CLAIM_REPLICAS",
        default_value_t = 1
    )]
    pub claim_replicas: usize,
    /// This replica's name in scheduler claims; defaults to the host name (the pod's name
    /// in a StatefulSet, stable across restarts).
    #[arg(long = "metadata-replica-name", env = "KMS_METADATA_REPLICA_NAME")]
    pub replica_name: Option<String>,
    /// Seconds after which another replica's unfinished claim may be taken over.
    #[arg(
        long = "metadata-claim-stale-after-s",
        env = "KMS_METADATA_CLAIM_STALE_AFTER_S",
        default_value_t = 60
    )]
    pub claim_stale_after_s: u64,
}

impl Config {
    pub fn for_test(data_dir: PathBuf) -> Self {
        Self {
            data_dir,
            scheduler_interval_ms: 50,
            claim_replicas: 1,
            replica_name: None,
            claim_stale_after_s: 60,
        }
    }

    fn claim_settings(&self) -> scheduler::ClaimSettings {
        let replica = self
            .replica_name
            .clone()
            .or_else(|| std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()))
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        scheduler::ClaimSettings {
            replicas: self.claim_replicas,
            replica,
            stale_after: Duration::from_secs(self.claim_stale_after_s),
        }
    }
}

/// Serves the metadata operations until `shutdown` resolves, on the system clock.
pub async fn run(
    config: Config,
    bus: Bus,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    run_with_clock(config, bus, Arc::new(kms_core::SystemClock), shutdown).await
}

/// Serves the metadata operations and runs the scheduler on `clock` until `shutdown`
/// resolves. Tests pass a clock they move.
pub async fn run_with_clock(
    config: Config,
    bus: Bus,
    clock: Arc<dyn kms_core::Clock>,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let store = Arc::new(
        MetadataStore::open(&config.data_dir, clock.clone())?.with_announcer(bus.client().clone()),
    );
    let (stop_scheduler, stop) = tokio::sync::watch::channel(false);
    let scheduler = tokio::spawn(scheduler::run(
        store.clone(),
        bus.clone(),
        clock,
        Duration::from_millis(config.scheduler_interval_ms.max(10)),
        config.claim_settings(),
        Arc::new(scheduler::SchedulerStats::default()),
        stop,
    ));
    let router = Router::new("metadata")
        .route::<op::CreateKey, _, _>(
            |s: Arc<MetadataStore>, r| async move { s.create_key(r).await },
        )
        .route::<op::ResolveKey, _, _>(|s: Arc<MetadataStore>, r| async move { s.resolve_key(r) })
        .route::<op::ListKeys, _, _>(|s: Arc<MetadataStore>, r| async move { s.list_keys(r) })
        .route::<op::ChangeKeyState, _, _>(|s: Arc<MetadataStore>, r| async move {
            s.change_key_state(r).await
        })
        .route::<op::UpdateDescription, _, _>(|s: Arc<MetadataStore>, r| async move {
            s.update_description(r).await
        })
        .route::<op::CreateAlias, _, _>(|s: Arc<MetadataStore>, r| async move {
            s.create_alias(r).await
        })
        .route::<op::UpdateAlias, _, _>(|s: Arc<MetadataStore>, r| async move {
            s.update_alias(r).await
        })
        .route::<op::DeleteAlias, _, _>(|s: Arc<MetadataStore>, r| async move {
            s.delete_alias(r).await
        })
        .route::<op::ListAliases, _, _>(|s: Arc<MetadataStore>, r| async move { s.list_aliases(r) })
        .route::<op::TagResource, _, _>(|s: Arc<MetadataStore>, r| async move {
            s.tag_resource(r).await
        })
        .route::<op::UntagResource, _, _>(|s: Arc<MetadataStore>, r| async move {
            s.untag_resource(r).await
        })
        .route::<op::ListResourceTags, _, _>(|s: Arc<MetadataStore>, r| async move {
            s.list_resource_tags(r)
        })
        .route::<op::SetKeyRotation, _, _>(|s: Arc<MetadataStore>, r| async move {
            s.set_key_rotation(r).await
        })
        .route::<op::RecordRotation, _, _>(|s: Arc<MetadataStore>, r| async move {
            s.record_rotation(r).await
        })
        .route::<op::SetImportedMaterial, _, _>(|s: Arc<MetadataStore>, r| async move {
            s.set_imported_material(r).await
        });
    let served = kms_bus::serve(&bus, store, router, Duration::from_secs(10), shutdown).await;
    let _ = stop_scheduler.send(true);
    scheduler.await?;
    served
}
