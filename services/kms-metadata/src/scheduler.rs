//! The transitions time makes due: automatic rotations and the end of deletion waiting
//! periods. Each tick asks the store what is due by its clock (so it catches up after
//! downtime), does the work through the other services, and records it in the audit log
//! as AWS does, with a service identity (`AwsServiceEvent`). Every step is idempotent, so
//! a tick that dies half-way is finished by the next one.
//!
//! One metadata replica owns a store, so one scheduler acts on each key; running several
//! replicas over one replicated store would need a lease, which this does not have yet.

use std::sync::Arc;
use std::time::Duration;

use kms_audit_log::{CloudTrailEvent, EventResource, UserIdentity};
use kms_bus::{crypto, policy, Bus, CallContext};
use kms_core::schedule::Due;
use kms_core::{Clock, KmsResult};
use kms_proto::v1 as wire;
use sha2::{Digest, Sha256};

use crate::store::MetadataStore;

pub(crate) async fn run(
    store: Arc<MetadataStore>,
    bus: Bus,
    clock: Arc<dyn Clock>,
    interval: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        match store.due() {
            Ok(due) => {
                for (key, transition) in due {
                    let outcome = match transition {
                        Due::Rotate => rotate(&store, &bus, clock.as_ref(), &key).await,
                        Due::Delete => delete(&store, &bus, clock.as_ref(), &key).await,
                        Due::ExpireMaterial => expire(&store, &bus, clock.as_ref(), &key).await,
                    };
                    if let Err(e) = outcome {
                        tracing::warn!(key_id = %key.key_id, ?transition, error = %e, "scheduled transition failed; will retry");
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "listing due transitions failed"),
        }
        tokio::select! {
            _ = stop.changed() => return,
            () = tokio::time::sleep(interval) => {}
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

async fn rotate(
    store: &MetadataStore,
    bus: &Bus,
    clock: &dyn Clock,
    key: &wire::KeyRecord,
) -> KmsResult<()> {
    let caller = owner(key);
    let ctx = CallContext { request_id: caller.request_id.clone() };
    let version = key.current_material_version + 1;
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
/// key and its aliases.
async fn delete(
    store: &MetadataStore,
    bus: &Bus,
    clock: &dyn Clock,
    key: &wire::KeyRecord,
) -> KmsResult<()> {
    let caller = owner(key);
    let ctx = CallContext { request_id: caller.request_id.clone() };
    bus.call::<crypto::DestroyMaterial>(
        &ctx,
        &wire::DestroyMaterialRequest { caller: Some(caller.clone()), key_id: key.key_id.clone() },
    )
    .await?;
    bus.call::<policy::DeletePolicies>(
        &ctx,
        &wire::DeletePoliciesRequest { caller: Some(caller), key_id: key.key_id.clone() },
    )
    .await?;
    publish(bus, clock, key, "DeleteKey", &format!("delete/{}", key.key_id)).await?;
    if store.remove_deleted_key(&key.key_id).await? {
        tracing::info!(key_id = %key.key_id, "key deleted at the end of its waiting period");
    }
    Ok(())
}

/// Imported material reached its ValidTo: delete it; the key waits for a re-import.
async fn expire(
    store: &MetadataStore,
    bus: &Bus,
    clock: &dyn Clock,
    key: &wire::KeyRecord,
) -> KmsResult<()> {
    let caller = owner(key);
    let ctx = CallContext { request_id: caller.request_id.clone() };
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
    // AWS's documented RotateKey / DeleteKey service events: the identity is the key's
    // account and the invoker only, and "AWS Internal" stands for address and agent.
    let internal = kms_audit_log::INVOKED_BY_SERVICE.to_owned();
    let event = CloudTrailEvent {
        event_version: kms_audit_log::EVENT_VERSION.to_owned(),
        user_identity: UserIdentity {
            account_id: Some(key.account.clone()),
            invoked_by: Some(internal.clone()),
            ..UserIdentity::default()
        },
        event_time: time::OffsetDateTime::from_unix_timestamp_nanos(
            i128::from(clock.now_ms()) * 1_000_000,
        )
        .unwrap_or_else(|_| time::OffsetDateTime::now_utc()),
        event_source: kms_audit_log::EVENT_SOURCE_KMS.to_owned(),
        event_name: name.to_owned(),
        aws_region: key.region.clone(),
        source_ip_address: internal.clone(),
        user_agent: internal,
        error_code: None,
        error_message: None,
        request_parameters: None,
        response_elements: None,
        request_id: String::new(),
        event_id: event_id.clone(),
        read_only: false,
        resources: vec![EventResource::kms_key(key.account.clone(), key.arn.clone())],
        event_type: kms_audit_log::EVENT_TYPE_SERVICE_EVENT.to_owned(),
        management_event: true,
        recipient_account_id: key.account.clone(),
        shared_event_id: None,
        // AWS's RotateKey names the kind of rotation and the key.
        service_event_details: (name == "RotateKey")
            .then(|| CloudTrailEvent::automatic_rotation_details(&key.key_id)),
        event_category: kms_audit_log::EVENT_CATEGORY_MANAGEMENT.to_owned(),
    };
    let body = event.to_json_bytes().map_err(|_| kms_core::KmsError::internal())?;
    kms_bus::publish_audit(bus, &key.account, &event_id, body).await
}
