//! Key rotation: EnableKeyRotation, DisableKeyRotation, GetKeyRotationStatus,
//! RotateKeyOnDemand, ListKeyRotations. New material is made by the crypto service and
//! then made current by the metadata service; older versions keep decrypting because
//! every ciphertext names the version it was made with.

use kms_bus::{crypto as crypto_op, metadata};
use kms_core::schedule;
use kms_core::KmsResult;
use kms_proto::v1 as wire;
use serde_json::{json, Value};

use super::keys::paged;
use super::{epoch_seconds, limit, Call, Output};
use crate::access::Access;
use crate::params::Params;

async fn set_rotation(call: &Call<'_>, key_ref: &str, enabled: bool, days: i32) -> KmsResult<()> {
    let access = if enabled {
        Access::to("kms:EnableKeyRotation").condition("kms:RotationPeriodInDays", days.to_string())
    } else {
        Access::to("kms:DisableKeyRotation")
    };
    let key = call.resolve_key_only(key_ref, "KeyId", access).await?;
    call.call::<metadata::SetKeyRotation>(&wire::SetKeyRotationRequest {
        caller: call.caller(),
        key_id: key.key_id,
        enabled,
        rotation_period_days: days,
    })
    .await?;
    Ok(())
}

/// Rotation status and history may be read for rotatable keys and for AWS managed keys
/// (which rotate every year on their own).
fn check_rotation_readable(key: &wire::KeyRecord) -> KmsResult<()> {
    let domain = kms_bus::key_from_wire(key)?;
    if domain.aws_managed {
        return Ok(());
    }
    schedule::check_rotation_supported(&domain)
}

pub(super) async fn enable_key_rotation(call: &Call<'_>, p: &Params) -> KmsResult<Output> {
    let key_ref = p.str("KeyId")?;
    let days = schedule::rotation_period_days(p.opt_i64("RotationPeriodInDays")?)?;
    set_rotation(call, key_ref, true, days).await?;
    Ok(Output::new(json!({})))
}

pub(super) async fn disable_key_rotation(call: &Call<'_>, p: &Params) -> KmsResult<Output> {
    set_rotation(call, p.str("KeyId")?, false, 0).await?;
    Ok(Output::new(json!({})))
}

pub(super) async fn get_key_rotation_status(call: &Call<'_>, p: &Params) -> KmsResult<Output> {
    let key = call
        .resolve_key_only(
            p.str("KeyId")?,
            "KeyId",
            Access::cross_account("kms:GetKeyRotationStatus"),
        )
        .await?;
    check_rotation_readable(&key)?;
    let mut body = json!({ "KeyRotationEnabled": key.rotation_enabled, "KeyId": key.arn });
    if let Some(obj) = body.as_object_mut() {
        if let Some(days) = key.rotation_period_days {
            obj.insert("RotationPeriodInDays".into(), json!(days));
        }
        if let Some(next) = key.next_rotation_date_ms {
            obj.insert("NextRotationDate".into(), epoch_seconds(next));
        }
    }
    Ok(Output::new(body))
}

pub(super) async fn rotate_key_on_demand(call: &Call<'_>, p: &Params) -> KmsResult<Output> {
    let key = call
        .resolve_key_only(p.str("KeyId")?, "KeyId", Access::to("kms:RotateKeyOnDemand"))
        .await?;
    let domain = kms_bus::key_from_wire(&key)?;
    schedule::check_rotation_supported(&domain)?;
    schedule::check_rotation_state(&domain)?;
    let on_demand = key.rotations.iter().filter(|r| r.rotation_type == "ON_DEMAND").count();
    if on_demand >= schedule::MAX_ON_DEMAND_ROTATIONS {
        return Err(kms_core::KmsError::new(
            kms_core::ErrorCode::LimitExceeded,
            format!(
                "A key may be rotated on demand at most {} times.",
                schedule::MAX_ON_DEMAND_ROTATIONS
            ),
        ));
    }
    let version = key.current_material_version + 1;
    call.call::<crypto_op::CreateMaterial>(&wire::CreateMaterialRequest {
        caller: call.caller(),
        key_id: key.key_id.clone(),
        key_spec: key.key_spec.clone(),
        material_version: version,
    })
    .await?;
    call.call::<metadata::RecordRotation>(&wire::RecordRotationRequest {
        caller: call.caller(),
        key_id: key.key_id.clone(),
        material_version: version,
        rotation_type: "ON_DEMAND".to_owned(),
    })
    .await?;
    // As AWS does, the new material is also on record as the service's own RotateKey.
    let event = kms_audit_log::CloudTrailEvent::service_event(
        "RotateKey",
        &key.account,
        &key.region,
        &key.arn,
        time::OffsetDateTime::now_utc(),
        kms_audit_log::CloudTrailEvent::new_event_id(),
        Some(kms_audit_log::CloudTrailEvent::rotation_details("ON_DEMAND", &key.key_id)),
    );
    crate::audit::publish(call.bus, event).await?;
    Ok(Output::recorded(json!({ "KeyId": key.arn }), json!({ "keyId": key.arn })))
}

pub(super) async fn list_key_rotations(call: &Call<'_>, p: &Params) -> KmsResult<Output> {
    let limit = usize::try_from(limit(p, 100, 1000)?).unwrap_or(100);
    let key =
        call.resolve_key_only(p.str("KeyId")?, "KeyId", Access::to("kms:ListKeyRotations")).await?;
    check_rotation_readable(&key)?;
    // The marker is the material version of the last rotation already returned.
    let after = match p.opt_str("Marker")? {
        None => 0,
        Some(m) => m.parse::<u32>().map_err(|_| {
            kms_core::KmsError::new(kms_core::ErrorCode::InvalidMarker, "The marker is not valid")
        })?,
    };
    let remaining: Vec<&wire::RotationEntry> =
        key.rotations.iter().filter(|r| r.material_version > after).collect();
    let page = &remaining[..remaining.len().min(limit)];
    let rotations: Vec<Value> = page
        .iter()
        .map(|r| {
            json!({
                "KeyId": key.arn,
                "KeyMaterialId": kms_crypto_core::key_material_id(&key.key_id, r.material_version),
                "RotationDate": epoch_seconds(r.rotation_date_ms),
                "RotationType": r.rotation_type,
            })
        })
        .collect();
    let next = if remaining.len() > page.len() {
        page.last().map(|r| r.material_version.to_string()).unwrap_or_default()
    } else {
        String::new()
    };
    Ok(Output::new(paged(json!({ "Rotations": rotations }), next)))
}
