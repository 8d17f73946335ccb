//! Key metadata and the key state machine: which transitions are allowed, and which
//! operations a key in a given state may serve, with the errors AWS gives otherwise.

use crate::{ErrorCode, KmsError, KmsResult};

macro_rules! aws_enum {
    ($(#[$doc:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            /// Parses AWS's spelling; `None` for anything else.
            pub fn parse(s: &str) -> Option<Self> {
                match s { $($text => Some($name::$variant),)+ _ => None }
            }
        }
    };
}

aws_enum!(
    /// The state of a key, as DescribeKey reports it.
    KeyState {
        Enabled => "Enabled",
        Disabled => "Disabled",
        PendingDeletion => "PendingDeletion",
        PendingImport => "PendingImport",
    }
);

aws_enum!(
    /// What kind of material a key holds.
    KeySpec {
        SymmetricDefault => "SYMMETRIC_DEFAULT",
        Rsa2048 => "RSA_2048",
        Rsa3072 => "RSA_3072",
        Rsa4096 => "RSA_4096",
        EccNistP256 => "ECC_NIST_P256",
        EccNistP384 => "ECC_NIST_P384",
        EccNistP521 => "ECC_NIST_P521",
        EccSecgP256k1 => "ECC_SECG_P256K1",
        Hmac224 => "HMAC_224",
        Hmac256 => "HMAC_256",
        Hmac384 => "HMAC_384",
        Hmac512 => "HMAC_512",
    }
);

aws_enum!(
    /// What a key may be used for.
    KeyUsage {
        EncryptDecrypt => "ENCRYPT_DECRYPT",
        SignVerify => "SIGN_VERIFY",
        GenerateVerifyMac => "GENERATE_VERIFY_MAC",
        KeyAgreement => "KEY_AGREEMENT",
    }
);

aws_enum!(
    /// Where a key's material came from.
    Origin {
        AwsKms => "AWS_KMS",
        External => "EXTERNAL",
    }
);

impl KeySpec {
    pub fn is_hmac(self) -> bool {
        matches!(self, Self::Hmac224 | Self::Hmac256 | Self::Hmac384 | Self::Hmac512)
    }

    pub fn is_rsa(self) -> bool {
        matches!(self, Self::Rsa2048 | Self::Rsa3072 | Self::Rsa4096)
    }

    pub fn is_ecc(self) -> bool {
        matches!(
            self,
            Self::EccNistP256 | Self::EccNistP384 | Self::EccNistP521 | Self::EccSecgP256k1
        )
    }

    /// RSA and ECC keys: a private key in the service and a public key that may leave it.
    pub fn is_asymmetric(self) -> bool {
        self.is_rsa() || self.is_ecc()
    }

    /// The usages a key of this spec may have, as AWS allows them: symmetric keys encrypt,
    /// HMAC keys make MACs, RSA keys encrypt or sign, NIST curves sign or agree keys,
    /// secp256k1 only signs. The first is the one to suggest when a request names another.
    pub fn valid_usages(self) -> &'static [KeyUsage] {
        match self {
            Self::SymmetricDefault => &[KeyUsage::EncryptDecrypt],
            Self::Hmac224 | Self::Hmac256 | Self::Hmac384 | Self::Hmac512 => {
                &[KeyUsage::GenerateVerifyMac]
            }
            Self::Rsa2048 | Self::Rsa3072 | Self::Rsa4096 => {
                &[KeyUsage::EncryptDecrypt, KeyUsage::SignVerify]
            }
            Self::EccNistP256 | Self::EccNistP384 | Self::EccNistP521 => {
                &[KeyUsage::SignVerify, KeyUsage::KeyAgreement]
            }
            Self::EccSecgP256k1 => &[KeyUsage::SignVerify],
        }
    }

    /// Whether a key of this spec may have `usage`.
    pub fn allows_usage(self, usage: KeyUsage) -> bool {
        self.valid_usages().contains(&usage)
    }
}

/// A key's metadata as the domain sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRecord {
    pub key_id: String,
    pub account: String,
    pub region: String,
    pub arn: String,
    pub creation_date_ms: i64,
    pub description: String,
    pub state: KeyState,
    pub spec: KeySpec,
    pub usage: KeyUsage,
    pub origin: Origin,
    pub deletion_date_ms: Option<i64>,
    pub pending_window_days: Option<i32>,
    pub current_material_version: u32,
    pub rotation_enabled: bool,
    pub rotation_period_days: Option<i32>,
    pub next_rotation_date_ms: Option<i64>,
    /// When imported material expires (origin EXTERNAL with KEY_MATERIAL_EXPIRES).
    pub valid_to_ms: Option<i64>,
    /// An AWS managed key (alias/aws/<service>): tenants may use and read it, not manage it.
    pub aws_managed: bool,
}

/// A requested state transition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateChange {
    Enable,
    Disable,
    ScheduleDeletion { days: i32, now_ms: i64 },
    CancelDeletion,
}

/// Classes of operation, for the state checks AWS applies before doing anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Usage {
    /// Encrypt, Decrypt, ReEncrypt, GenerateDataKey*: needs an Enabled key.
    Cryptographic,
    /// Changes to metadata (description, tags, aliases): refused while PendingDeletion.
    Modify,
    /// DescribeKey, GetKeyPolicy, ListResourceTags...: any state.
    Read,
}

const DAY_MS: i64 = 24 * 60 * 60 * 1000;

impl KeyRecord {
    /// Applies a state transition, or explains in AWS's terms why it is refused.
    pub fn apply(&mut self, change: StateChange) -> KmsResult<()> {
        let pending = self.state == KeyState::PendingDeletion;
        match change {
            StateChange::Enable | StateChange::Disable if pending => {
                return Err(self.invalid_state());
            }
            StateChange::Enable | StateChange::Disable if self.state == KeyState::PendingImport => {
                return Err(self.invalid_state());
            }
            StateChange::Enable => self.state = KeyState::Enabled,
            StateChange::Disable => self.state = KeyState::Disabled,
            StateChange::ScheduleDeletion { .. } if pending => return Err(self.invalid_state()),
            StateChange::ScheduleDeletion { days, now_ms } => {
                crate::validate::pending_window_days(days)?;
                self.state = KeyState::PendingDeletion;
                self.pending_window_days = Some(days);
                self.deletion_date_ms = Some(now_ms + i64::from(days) * DAY_MS);
            }
            StateChange::CancelDeletion if !pending => {
                return Err(KmsError::new(
                    ErrorCode::InvalidState,
                    format!("{} is not pending deletion.", self.arn),
                ));
            }
            StateChange::CancelDeletion => {
                // As in AWS: a key whose deletion is cancelled comes back Disabled.
                self.state = KeyState::Disabled;
                self.pending_window_days = None;
                self.deletion_date_ms = None;
            }
        }
        Ok(())
    }

    /// Whether this key may serve an operation of the given class.
    pub fn check_usable(&self, usage: Usage) -> KmsResult<()> {
        match (usage, self.state) {
            (Usage::Read, _) => Ok(()),
            (Usage::Cryptographic, KeyState::Enabled) => Ok(()),
            (Usage::Cryptographic, KeyState::Disabled) => {
                Err(KmsError::new(ErrorCode::Disabled, format!("{} is disabled.", self.arn)))
            }
            (Usage::Modify, KeyState::Enabled | KeyState::Disabled | KeyState::PendingImport) => {
                Ok(())
            }
            (Usage::Cryptographic | Usage::Modify, _) => Err(self.invalid_state()),
        }
    }

    /// AWS managed keys refuse every management action to tenants, with the
    /// AccessDeniedException AWS gives (their key policy allows no such action).
    pub fn check_customer_managed(&self, principal: &str, action: &str) -> KmsResult<()> {
        if self.aws_managed {
            return Err(KmsError::new(
                ErrorCode::AccessDenied,
                format!(
                    "User: {principal} is not authorized to perform: kms:{action} on resource: {} because no resource-based policy allows the kms:{action} action",
                    self.arn
                ),
            ));
        }
        Ok(())
    }

    fn invalid_state(&self) -> KmsError {
        let state = match self.state {
            KeyState::PendingDeletion => "pending deletion",
            KeyState::PendingImport => "pending import",
            KeyState::Enabled => "enabled",
            KeyState::Disabled => "disabled",
        };
        KmsError::new(ErrorCode::InvalidState, format!("{} is {state}.", self.arn))
    }
}

/// A plain symmetric key in `state`, for unit tests across the crate.
#[cfg(test)]
pub(crate) fn test_key(state: KeyState) -> KeyRecord {
    KeyRecord {
        key_id: "k".into(),
        account: "111122223333".into(),
        region: "us-east-1".into(),
        arn: "arn:aws:kms:us-east-1:111122223333:key/k".into(),
        creation_date_ms: 0,
        description: String::new(),
        state,
        spec: KeySpec::SymmetricDefault,
        usage: KeyUsage::EncryptDecrypt,
        origin: Origin::AwsKms,
        deletion_date_ms: None,
        pending_window_days: None,
        current_material_version: 1,
        rotation_enabled: false,
        rotation_period_days: None,
        next_rotation_date_ms: None,
        valid_to_ms: None,
        aws_managed: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(state: KeyState) -> KeyRecord {
        test_key(state)
    }

    fn check(from: KeyState, change: StateChange, expected: Result<KeyState, ErrorCode>) {
        let mut k = key(from);
        let got = k.apply(change).map(|()| k.state).map_err(|e| e.code);
        assert_eq!(got, expected, "{from:?} --{change:?}-->");
    }

    #[test]
    fn transitions() {
        use KeyState::*;
        use StateChange::*;
        let schedule = ScheduleDeletion { days: 7, now_ms: 0 };
        check(Enabled, Disable, Ok(Disabled));
        check(Disabled, Enable, Ok(Enabled));
        check(Enabled, Enable, Ok(Enabled));
        check(Disabled, Disable, Ok(Disabled));
        check(Enabled, schedule, Ok(PendingDeletion));
        check(Disabled, schedule, Ok(PendingDeletion));
        check(PendingDeletion, schedule, Err(ErrorCode::InvalidState));
        check(PendingDeletion, Enable, Err(ErrorCode::InvalidState));
        check(PendingDeletion, Disable, Err(ErrorCode::InvalidState));
        check(PendingDeletion, CancelDeletion, Ok(Disabled));
        check(Enabled, CancelDeletion, Err(ErrorCode::InvalidState));
        check(Disabled, CancelDeletion, Err(ErrorCode::InvalidState));
        check(Enabled, ScheduleDeletion { days: 6, now_ms: 0 }, Err(ErrorCode::Validation));
        check(Enabled, ScheduleDeletion { days: 31, now_ms: 0 }, Err(ErrorCode::Validation));
        check(Enabled, ScheduleDeletion { days: 30, now_ms: 0 }, Ok(PendingDeletion));
    }

    #[test]
    fn deletion_date_and_cancel_clear_schedule() {
        let mut k = key(KeyState::Enabled);
        k.apply(StateChange::ScheduleDeletion { days: 7, now_ms: 1_000 }).unwrap();
        assert_eq!(k.deletion_date_ms, Some(1_000 + 7 * DAY_MS));
        assert_eq!(k.pending_window_days, Some(7));
        k.apply(StateChange::CancelDeletion).unwrap();
        assert_eq!((k.deletion_date_ms, k.pending_window_days), (None, None));
    }

    #[test]
    fn usability() {
        use KeyState::*;
        let cases = [
            (Enabled, Usage::Cryptographic, None),
            (Disabled, Usage::Cryptographic, Some(ErrorCode::Disabled)),
            (PendingDeletion, Usage::Cryptographic, Some(ErrorCode::InvalidState)),
            (PendingDeletion, Usage::Modify, Some(ErrorCode::InvalidState)),
            (Disabled, Usage::Modify, None),
            (PendingDeletion, Usage::Read, None),
        ];
        for (state, usage, expected) in cases {
            let got = key(state).check_usable(usage).err().map(|e| e.code);
            assert_eq!(got, expected, "{state:?} {usage:?}");
        }
    }

    #[test]
    fn enum_names_round_trip() {
        for s in KeyState::ALL {
            assert_eq!(KeyState::parse(s.as_str()), Some(*s));
        }
        for s in KeySpec::ALL {
            assert_eq!(KeySpec::parse(s.as_str()), Some(*s));
        }
        for u in KeyUsage::ALL {
            assert_eq!(KeyUsage::parse(u.as_str()), Some(*u));
        }
        assert_eq!(KeySpec::parse("SYMMETRIC_DEFAULT"), Some(KeySpec::SymmetricDefault));
        assert_eq!(KeySpec::parse("ECC_SECG_P256K1"), Some(KeySpec::EccSecgP256k1));
        for unsupported in ["SM2", "ECC_NIST_EDWARDS25519", "ML_DSA_44", "rsa_2048", ""] {
            assert_eq!(KeySpec::parse(unsupported), None, "{unsupported}");
        }
    }

    fn check_usages(spec: KeySpec, expected: &[&str]) {
        let got: Vec<&str> = spec.valid_usages().iter().map(|u| u.as_str()).collect();
        assert_eq!(got, expected, "{spec:?}");
        for usage in KeyUsage::ALL {
            assert_eq!(spec.allows_usage(*usage), expected.contains(&usage.as_str()));
        }
    }

    #[test]
    fn usages_per_spec_are_aws_s() {
        use KeySpec::*;
        check_usages(SymmetricDefault, &["ENCRYPT_DECRYPT"]);
        for hmac in [Hmac224, Hmac256, Hmac384, Hmac512] {
            check_usages(hmac, &["GENERATE_VERIFY_MAC"]);
            assert!(hmac.is_hmac() && !hmac.is_asymmetric());
        }
        for rsa in [Rsa2048, Rsa3072, Rsa4096] {
            check_usages(rsa, &["ENCRYPT_DECRYPT", "SIGN_VERIFY"]);
            assert!(rsa.is_rsa() && rsa.is_asymmetric() && !rsa.is_ecc());
        }
        for nist in [EccNistP256, EccNistP384, EccNistP521] {
            check_usages(nist, &["SIGN_VERIFY", "KEY_AGREEMENT"]);
            assert!(nist.is_ecc() && nist.is_asymmetric() && !nist.is_rsa());
        }
        check_usages(EccSecgP256k1, &["SIGN_VERIFY"]);
        assert!(!SymmetricDefault.is_asymmetric());
    }
}
