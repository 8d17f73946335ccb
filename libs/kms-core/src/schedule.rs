//! Key rotation rules and the transitions that time makes due: which keys rotate now,
//! which are deleted now. Pure, so "not a second earlier" is a unit test, not a wait.

use crate::{ErrorCode, KeyRecord, KeySpec, KeyState, KmsError, KmsResult, Origin};

pub const DEFAULT_ROTATION_PERIOD_DAYS: i32 = 365;
pub const MIN_ROTATION_PERIOD_DAYS: i32 = 90;
pub const MAX_ROTATION_PERIOD_DAYS: i32 = 2560;
/// AWS allows this many on-demand rotations over a key's life.
pub const MAX_ON_DEMAND_ROTATIONS: usize = 25;
pub const DAY_MS: i64 = 24 * 60 * 60 * 1000;

/// `RotationPeriodInDays`: default 365, within 90..=2560.
pub fn rotation_period_days(value: Option<i64>) -> KmsResult<i32> {
    match value {
        None => Ok(DEFAULT_ROTATION_PERIOD_DAYS),
        Some(days)
            if (i64::from(MIN_ROTATION_PERIOD_DAYS)..=i64::from(MAX_ROTATION_PERIOD_DAYS))
                .contains(&days) =>
        {
            i32::try_from(days).map_err(|_| KmsError::validation("rotation period out of range"))
        }
        Some(days) => Err(crate::validate::constraint(
            "rotationPeriodInDays",
            Some(&days.to_string()),
            if days < i64::from(MIN_ROTATION_PERIOD_DAYS) {
                "have value greater than or equal to 90"
            } else {
                "have value less than or equal to 2560"
            },
        )),
    }
}

/// Whether a key's material can rotate at all: symmetric keys with material KMS made.
pub fn check_rotation_supported(key: &KeyRecord) -> KmsResult<()> {
    if key.aws_managed {
        return Err(KmsError::new(
            ErrorCode::UnsupportedOperation,
            format!("{} is an AWS managed key: it rotates every year and its rotation cannot be changed.", key.arn),
        ));
    }
    if key.spec != KeySpec::SymmetricDefault || key.origin != Origin::AwsKms {
        return Err(KmsError::new(
            ErrorCode::UnsupportedOperation,
            format!("{} does not support automatic or on-demand rotation.", key.arn),
        ));
    }
    Ok(())
}

/// Rotation settings and on-demand rotations need an Enabled key: AWS answers
/// DisabledException for a disabled one and KMSInvalidStateException otherwise.
pub fn check_rotation_state(key: &KeyRecord) -> KmsResult<()> {
    key.check_usable(crate::Usage::Cryptographic)
}

/// What time has made due for a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    /// The waiting period is over: destroy the key.
    Delete,
    /// Automatic rotation time has come.
    Rotate,
    /// Imported material has reached its ValidTo: delete it, back to PendingImport.
    ExpireMaterial,
}

/// The transition due for `key` at `now_ms`, if any. Deletion wins over rotation; a key
/// that is not Enabled does not rotate.
pub fn due(key: &KeyRecord, now_ms: i64) -> Option<Due> {
    match key.state {
        KeyState::PendingDeletion => {
            key.deletion_date_ms.filter(|date| now_ms >= *date).map(|_| Due::Delete)
        }
        KeyState::Enabled | KeyState::Disabled
            if key.valid_to_ms.is_some_and(|valid_to| now_ms >= valid_to) =>
        {
            Some(Due::ExpireMaterial)
        }
        KeyState::Enabled if key.rotation_enabled => {
            key.next_rotation_date_ms.filter(|date| now_ms >= *date).map(|_| Due::Rotate)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Usage;

    fn key(state: KeyState) -> KeyRecord {
        crate::key::test_key(state)
    }

    #[test]
    fn deletion_is_due_at_its_date_and_not_a_millisecond_earlier() {
        let mut k = key(KeyState::Enabled);
        k.apply(crate::StateChange::ScheduleDeletion { days: 7, now_ms: 1_000 }).unwrap();
        let date = 1_000 + 7 * DAY_MS;
        assert_eq!(due(&k, date - 1), None);
        assert_eq!(due(&k, date), Some(Due::Delete));
        assert_eq!(due(&k, date + DAY_MS), Some(Due::Delete), "catches up after downtime");
        k.apply(crate::StateChange::CancelDeletion).unwrap();
        assert_eq!(due(&k, date + DAY_MS), None, "a cancelled deletion never happens");
    }

    #[test]
    fn rotation_is_due_only_for_enabled_keys_with_rotation_on() {
        let mut k = key(KeyState::Enabled);
        k.next_rotation_date_ms = Some(500);
        assert_eq!(due(&k, 1_000), None, "rotation off");
        k.rotation_enabled = true;
        assert_eq!(due(&k, 499), None);
        assert_eq!(due(&k, 500), Some(Due::Rotate));
        k.state = KeyState::Disabled;
        assert_eq!(due(&k, 1_000), None, "disabled keys do not rotate");
        k.state = KeyState::PendingDeletion;
        k.deletion_date_ms = Some(2_000);
        assert_eq!(due(&k, 1_000), None);
        assert_eq!(due(&k, 2_000), Some(Due::Delete));
    }

    #[test]
    fn imported_material_expires_at_valid_to() {
        let mut k = key(KeyState::Enabled);
        k.origin = Origin::External;
        k.valid_to_ms = Some(1_000);
        assert_eq!(due(&k, 999), None);
        assert_eq!(due(&k, 1_000), Some(Due::ExpireMaterial));
        k.state = KeyState::PendingImport;
        assert_eq!(due(&k, 2_000), None, "already without material");
    }

    #[test]
    fn rotation_periods() {
        let cases = [(None, Ok(365)), (Some(90), Ok(90)), (Some(2560), Ok(2560))];
        for (input, expected) in cases {
            assert_eq!(rotation_period_days(input).map_err(|e| e.code), expected);
        }
        for bad in [Some(89), Some(2561), Some(-1)] {
            assert_eq!(rotation_period_days(bad).map_err(|e| e.code), Err(ErrorCode::Validation));
        }
    }

    #[test]
    fn rotation_needs_an_enabled_symmetric_kms_key() {
        assert!(check_rotation_supported(&key(KeyState::Enabled)).is_ok());
        assert!(check_rotation_state(&key(KeyState::Enabled)).is_ok());
        let disabled = check_rotation_state(&key(KeyState::Disabled)).unwrap_err();
        assert_eq!(disabled.code, ErrorCode::Disabled);
        let pending = check_rotation_state(&key(KeyState::PendingDeletion)).unwrap_err();
        assert_eq!(pending.code, ErrorCode::InvalidState);
        assert!(key(KeyState::Enabled).check_usable(Usage::Read).is_ok());
    }
}
