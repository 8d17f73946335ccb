//! The transitions time makes due: automatic rotations and the end of deletion waiting
//! periods. Each tick asks the store what is due by its clock (so it catches up after
//! downtime), does the work through the other services, and records it in the audit log
//! as AWS does, with a service identity (`AwsServiceEvent`). Every step is idempotent, so
//! a tick that dies half-way is finished by the next one.
//!
//! Several metadata replicas may see the same transition due (during a rolling update,
//! or over copies of one store). Each transition is claimed in a JetStream key-value
//! bucket first (`claims.rs`): one replica does the work — new material, shredded
//! material, the audit record — and the others only apply its outcome to their own store.
//! Without the bucket the scheduler does nothing rather than risk doing a thing twice.

mod claims;
#[cfg(test)]
mod tests;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use kms_audit_log::CloudTrailEvent;
use kms_bus::{crypto, policy, Bus, CallContext};
use kms_core::schedule::Due;
use kms_core::{Clock, KmsResult};
use kms_proto::v1 as wire;
use sha2::{Digest, Sha256};

use crate::store::MetadataStore;
use claims::{Claim, Claims};

/// How this replica takes part in claiming transitions.
#[derive(Debug, Clone)]
pub(crate) struct ClaimSettings {
    /// Copies of the claims bucket (the NATS cluster's size in production).
    pub replicas: usize,
    /// This replica's name in its claims.
    pub replica: String,
    /// After how long an unfinished claim of another replica may be taken over.
    pub stale_after: Duration,
}

/// What one replica's scheduler did: transitions it performed, and transitions another
/// replica performed whose outcome it applied to its own store.
#[derive(Debug, Default)]
pub(crate) struct SchedulerStats {
    pub performed: AtomicU64,
    pub applied: AtomicU64,
}

/// The claim name of a transition: unique per key and occurrence.
fn transition_name(key: &wire::KeyRecord, due: Due) -> String {
    match due {
        Due::Rotate => format!("rotate.{}.{}", key.key_id, key.current_material_version + 1),
        Due::Delete => format!("delete.{}", key.key_id),
        Due::ExpireMaterial => {
            format!("expire.{}.{}", key.key_id, key.valid_to_ms.unwrap_or_default())
        }
    }
}

pub(crate) async fn run(
    store: Arc<MetadataStore>,
    bus: Bus,
    clock: Arc<dyn Clock>,
    interval: Duration,
    settings: ClaimSettings,
    stats: Arc<SchedulerStats>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut claims = None;
    loop {
        if claims.is_none() {
            match Claims::open(
                &bus.jetstream(),
                settings.replicas,
                settings.replica.clone(),
                settings.stale_after,
            )
            .await
            {
                Ok(opened) => claims = Some(opened),
                Err(e) => tracing::warn!(error = %e, "scheduler waits for its claims bucket"),
            }
        }
        if let Some(claims) = &claims {
            tick(&store, &bus, clock.as_ref(), claims, &stats).await;
        }
        tokio::select! {
            _ = stop.changed() => return,
            () = tokio::time::sleep(interval) => {}
        }
    }
}

/// The transitions due now, listed on the blocking pool: the listing reads and decodes
/// every stored key (about 110 ms for 100,000 keys on the benchmark machine), and on one of
/// the runtime's worker threads it stalled every call the process was serving meanwhile,
/// once a tick (DescribeKey p99.9 of 70–120 ms at 100,000 keys in `make bench`).
async fn list_due(store: &Arc<MetadataStore>) -> KmsResult<Vec<(wire::KeyRecord, Due)>> {
    let store = Arc::clone(store);
    tokio::task::spawn_blocking(move || store.due()).await.unwrap_or_else(|e| {
        Err(kms_core::KmsError::new(
            kms_core::ErrorCode::Internal,
            format!("listing due transitions stopped: {e}"),
        ))
    })
}

async fn tick(
    store: &Arc<MetadataStore>,
    bus: &Bus,
    clock: &dyn Clock,
    claims: &Claims,
    stats: &SchedulerStats,
) {
    let due = match list_due(store).await {
        Ok(due) => due,
        Err(e) => {
            tracing::warn!(error = %e, "listing due transitions failed");
            return;
        }
    };
    for (key, transition) in due {
        let name = transition_name(&key, transition);
        let effects = match claims.claim(&name).await {
            Ok(Claim::Mine) => true,
            Ok(Claim::Done) => false,
            Ok(Claim::Busy) | Err(_) => continue,
        };
        let outcome = match transition {
            Due::Rotate => rotate(store, bus, clock, &key, effects).await,
            Due::Delete => delete(store, bus, clock, &key, effects).await,
            Due::ExpireMaterial => expire(store, bus, clock, &key, effects).await,
        };
        match outcome {
            Ok(()) if effects => {
                if claims.finish(&name).await.is_ok() {
                    stats.performed.fetch_add(1, Ordering::Relaxed);
                }
            }
            Ok(()) => {
                stats.applied.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                tracing::warn!(key_id = %key.key_id, ?transition, error = %e, "scheduled transition failed; will retry");
            }
        }
    }
}

fn owner(key: &wire::KeyRecord) -> wire::CallerContext {
    wire::CallerContext {
        account: key.account.clone(),
        region: key.region.clone(),
        principal: "kms.amazonaws.com".to_owned(),
        request_id: uuid::Uuid::new_v4().to_string(),
    }
}

/// New material, the `RotateKey` record, then the store moves on (with `effects` false,
/// only the store: another replica made the material and the record).
async fn rotate(
    store: &MetadataStore,
    bus: &Bus,
    clock: &dyn Clock,
    key: &wire::KeyRecord,
    effects: bool,
) -> KmsResult<()> {
    let caller = owner(key);
    let ctx = CallContext { request_id: caller.request_id.clone() };
    let version = key.current_material_version + 1;
    if effects {
        bus.call::<crypto::CreateMaterial>(
            &ctx,
            &wire::CreateMaterialRequest {
                caller: Some(caller.clone()),
                key_id: key.key_id.clone(),
                key_spec: key.key_spec.clone(),
                material_version: version,
            },
        )
        .await?;
        // The event id is derived from key and version: a retried rotation records once.
        publish(bus, clock, key, "RotateKey", &format!("rotate/{}/{version}", key.key_id)).await?;
    }
    store
        .record_rotation(wire::RecordRotationRequest {
            caller: Some(caller),
            key_id: key.key_id.clone(),
            material_version: version,
            rotation_type: "AUTOMATIC".to_owned(),
        })
        .await?;
    tracing::info!(key_id = %key.key_id, version, "key rotated automatically");
    Ok(())
}

/// Crypto-shreds the material, drops the policies, records `DeleteKey`, then removes the
/// key and its aliases (with `effects` false, only the last step).
async fn delete(
    store: &MetadataStore,
    bus: &Bus,
    clock: &dyn Clock,
    key: &wire::KeyRecord,
    effects: bool,
) -> KmsResult<()> {
    if effects {
        let caller = owner(key);
        let ctx = CallContext { request_id: caller.request_id.clone() };
        bus.call::<crypto::DestroyMaterial>(
            &ctx,
            &wire::DestroyMaterialRequest {
                caller: Some(caller.clone()),
                key_id: key.key_id.clone(),
            },
        )
        .await?;
        bus.call::<policy::DeletePolicies>(
            &ctx,
            &wire::DeletePoliciesRequest { caller: Some(caller), key_id: key.key_id.clone() },
        )
        .await?;
        publish(bus, clock, key, "DeleteKey", &format!("delete/{}", key.key_id)).await?;
    }
    if store.remove_deleted_key(&key.key_id).await? {
        tracing::info!(key_id = %key.key_id, "key deleted at the end of its waiting period");
    }
    Ok(())
}

/// Imported material reached its ValidTo: delete it; the key waits for a re-import (with
/// `effects` false, only the key's state changes here).
async fn expire(
    store: &MetadataStore,
    bus: &Bus,
    clock: &dyn Clock,
    key: &wire::KeyRecord,
    effects: bool,
) -> KmsResult<()> {
    let caller = owner(key);
    let ctx = CallContext { request_id: caller.request_id.clone() };
    if effects {
        bus.call::<crypto::DeleteImportedMaterial>(
            &ctx,
            &wire::DeleteImportedMaterialRequest {
                caller: Some(caller.clone()),
                key_id: key.key_id.clone(),
            },
        )
        .await?;
        let seed = format!("expire/{}/{}", key.key_id, key.valid_to_ms.unwrap_or_default());
        publish(bus, clock, key, "DeleteExpiredKeyMaterial", &seed).await?;
    }
    store
        .set_imported_material(wire::SetImportedMaterialRequest {
            caller: Some(caller),
            key_id: key.key_id.clone(),
            present: false,
            expiration_model: String::new(),
            valid_to_ms: None,
        })
        .await?;
    tracing::info!(key_id = %key.key_id, "imported key material expired");
    Ok(())
}

/// Records a transition the service made itself, as CloudTrail does for KMS's own
/// `RotateKey` and `DeleteKey` events.
async fn publish(
    bus: &Bus,
    clock: &dyn Clock,
    key: &wire::KeyRecord,
    name: &str,
    seed: &str,
) -> KmsResult<()> {
    let digest = Sha256::digest(seed.as_bytes());
    let mut id = [0u8; 16];
    id.copy_from_slice(&digest[..16]);
    let event_id = uuid::Builder::from_random_bytes(id).into_uuid().to_string();
    let event_time =
        time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(clock.now_ms()) * 1_000_000)
            .unwrap_or_else(|_| time::OffsetDateTime::now_utc());
    // AWS's RotateKey names the kind of rotation and the key.
    let details =
        (name == "RotateKey").then(|| CloudTrailEvent::automatic_rotation_details(&key.key_id));
    let event = CloudTrailEvent::service_event(
        name,
        &key.account,
        &key.region,
        &key.arn,
        event_time,
        event_id.clone(),
        details,
    );
    let body = event.to_json_bytes().map_err(|_| kms_core::KmsError::internal())?;
    kms_bus::publish_audit(bus, &key.account, &event_id, body).await
}
