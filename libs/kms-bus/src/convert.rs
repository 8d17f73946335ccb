//! Conversions between wire messages and domain types, done once at the edge. A wire
//! record that does not describe a valid key is refused, not carried along.

use kms_core::{KeyRecord, KeySpec, KeyState, KeyUsage, KmsError, Origin};
use kms_proto::v1 as wire;

/// A wire key record as a domain record.
pub fn key_from_wire(k: &wire::KeyRecord) -> Result<KeyRecord, KmsError> {
    let bad = |field: &str| {
        KmsError::new(kms_core::ErrorCode::Internal, format!("stored key has invalid {field}"))
    };
    Ok(KeyRecord {
        key_id: k.key_id.clone(),
        account: k.account.clone(),
        region: k.region.clone(),
        arn: k.arn.clone(),
        creation_date_ms: k.creation_date_ms,
        description: k.description.clone(),
        state: KeyState::parse(&k.key_state).ok_or_else(|| bad("state"))?,
        spec: KeySpec::parse(&k.key_spec).ok_or_else(|| bad("spec"))?,
        usage: KeyUsage::parse(&k.key_usage).ok_or_else(|| bad("usage"))?,
        origin: Origin::parse(&k.origin).ok_or_else(|| bad("origin"))?,
        deletion_date_ms: k.deletion_date_ms,
        pending_window_days: k.pending_window_days,
        current_material_version: k.current_material_version,
        rotation_enabled: k.rotation_enabled,
        rotation_period_days: k.rotation_period_days,
        next_rotation_date_ms: k.next_rotation_date_ms,
        valid_to_ms: k.valid_to_ms,
        aws_managed: k.key_manager == "AWS",
    })
}

/// Writes a domain record's fields into a wire record, keeping the wire-only fields
/// (tags) that `into` already carries.
pub fn key_to_wire(k: &KeyRecord, into: &mut wire::KeyRecord) {
    into.key_id = k.key_id.clone();
    into.account = k.account.clone();
    into.region = k.region.clone();
    into.arn = k.arn.clone();
    into.creation_date_ms = k.creation_date_ms;
    into.description = k.description.clone();
    into.key_state = k.state.as_str().to_owned();
    into.key_spec = k.spec.as_str().to_owned();
    into.key_usage = k.usage.as_str().to_owned();
    into.origin = k.origin.as_str().to_owned();
    into.deletion_date_ms = k.deletion_date_ms;
    into.pending_window_days = k.pending_window_days;
    into.current_material_version = k.current_material_version;
    into.rotation_enabled = k.rotation_enabled;
    into.rotation_period_days = k.rotation_period_days;
    into.next_rotation_date_ms = k.next_rotation_date_ms;
    into.valid_to_ms = k.valid_to_ms;
    into.key_manager = if k.aws_managed { "AWS" } else { "CUSTOMER" }.to_owned();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_refusal() {
        let domain = KeyRecord {
            key_id: "k".into(),
            account: "111122223333".into(),
            region: "us-east-1".into(),
            arn: "arn".into(),
            creation_date_ms: 5,
            description: "d".into(),
            state: KeyState::PendingDeletion,
            spec: KeySpec::SymmetricDefault,
            usage: KeyUsage::EncryptDecrypt,
            origin: Origin::AwsKms,
            deletion_date_ms: Some(9),
            pending_window_days: Some(7),
            current_material_version: 2,
            rotation_enabled: true,
            rotation_period_days: Some(90),
            next_rotation_date_ms: Some(11),
            valid_to_ms: Some(12),
            aws_managed: true,
        };
        let mut w = wire::KeyRecord::default();
        key_to_wire(&domain, &mut w);
        assert_eq!(key_from_wire(&w).unwrap(), domain);
        w.key_state = "Melted".into();
        assert!(key_from_wire(&w).is_err());
    }
}
