//! Grants as KMS applies them: which operations a grant may name, whether a stored grant
//! allows one call, and the checks CreateGrant makes. The grant store (the policy service)
//! finds the grants of a key and grantee; this module decides, purely.
//!
//! AWS rules followed:
//! - A grant allows a call when its grantee principal is the caller (exact ARN), its
//!   operations include the call's operation, and its encryption-context constraint, if
//!   any, holds.
//! - Constraints apply only to operations that take an encryption context (the symmetric
//!   cryptographic operations); DescribeKey, RetireGrant, GetPublicKey, Sign, GenerateMac
//!   and the like ignore them. In a constraint, context *keys* compare case-insensitively,
//!   values case-sensitively.
//! - `EncryptionContextEquals`: the request's context is exactly the constraint.
//!   `EncryptionContextSubset`: the request's context holds every pair of the constraint.
//! - A grant that includes CreateGrant lets its grantee create grants only with an equally
//!   strict or stricter constraint, and only for operations the grant itself allows.

use std::collections::BTreeMap;

/// Every operation a grant may allow, by its AWS name.
pub const GRANT_OPERATIONS: &[&str] = &[
    "Decrypt",
    "Encrypt",
    "GenerateDataKey",
    "GenerateDataKeyWithoutPlaintext",
    "ReEncryptFrom",
    "ReEncryptTo",
    "Sign",
    "Verify",
    "GetPublicKey",
    "CreateGrant",
    "RetireGrant",
    "DescribeKey",
    "GenerateDataKeyPair",
    "GenerateDataKeyPairWithoutPlaintext",
    "GenerateMac",
    "VerifyMac",
    "DeriveSharedSecret",
];

/// Operations whose requests carry an encryption context, where constraints apply.
const CONTEXT_OPERATIONS: &[&str] = &[
    "Decrypt",
    "Encrypt",
    "GenerateDataKey",
    "GenerateDataKeyWithoutPlaintext",
    "ReEncryptFrom",
    "ReEncryptTo",
    "GenerateDataKeyPair",
    "GenerateDataKeyPairWithoutPlaintext",
];

/// The grant operation behind a policy action (`kms:Decrypt` → `Decrypt`), if a grant can
/// allow that action at all.
pub fn grant_operation(action: &str) -> Option<&'static str> {
    let name = action.strip_prefix("kms:")?;
    GRANT_OPERATIONS.iter().copied().find(|op| *op == name)
}

/// The operations a grant for a key of this usage may allow, as AWS permits them
/// (`ENCRYPT_DECRYPT` symmetric keys, `SIGN_VERIFY`, `GENERATE_VERIFY_MAC`, asymmetric
/// `ENCRYPT_DECRYPT` and `KEY_AGREEMENT`). Any key allows DescribeKey, CreateGrant and
/// RetireGrant.
pub fn operations_for_key(key_spec: &str, key_usage: &str) -> Vec<&'static str> {
    let mut ops = vec!["DescribeKey", "CreateGrant", "RetireGrant"];
    match (key_spec, key_usage) {
        ("SYMMETRIC_DEFAULT", _) => ops.extend([
            "Decrypt",
            "Encrypt",
            "GenerateDataKey",
            "GenerateDataKeyWithoutPlaintext",
            "ReEncryptFrom",
            "ReEncryptTo",
            "GenerateDataKeyPair",
            "GenerateDataKeyPairWithoutPlaintext",
        ]),
        (_, "SIGN_VERIFY") => ops.extend(["Sign", "Verify", "GetPublicKey"]),
        (_, "GENERATE_VERIFY_MAC") => ops.extend(["GenerateMac", "VerifyMac"]),
        (_, "KEY_AGREEMENT") => ops.extend(["DeriveSharedSecret", "GetPublicKey"]),
        (_, "ENCRYPT_DECRYPT") => {
            ops.extend(["Decrypt", "Encrypt", "ReEncryptFrom", "ReEncryptTo", "GetPublicKey"]);
        }
        _ => {}
    }
    ops
}

/// A grant's encryption-context constraint.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum GrantConstraint {
    #[default]
    None,
    Equals(BTreeMap<String, String>),
    Subset(BTreeMap<String, String>),
}

/// What a stored grant says, as far as deciding a call needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GrantTerms<'a> {
    pub grantee_principal: &'a str,
    pub operations: &'a [String],
    pub constraint: &'a GrantConstraint,
}

fn lower_keys(context: &BTreeMap<String, String>) -> BTreeMap<String, &str> {
    context.iter().map(|(k, v)| (k.to_lowercase(), v.as_str())).collect()
}

impl GrantConstraint {
    /// Whether a request with this encryption context satisfies the constraint.
    pub fn holds(&self, request_context: &BTreeMap<String, String>) -> bool {
        match self {
            Self::None => true,
            Self::Equals(required) => lower_keys(required) == lower_keys(request_context),
            Self::Subset(required) => {
                let request = lower_keys(request_context);
                lower_keys(required).iter().all(|(k, v)| request.get(k) == Some(v))
            }
        }
    }

    /// Whether `self` (a new grant's constraint) is at least as strict as `parent` (the
    /// constraint of the grant whose CreateGrant permission creates it): every context
    /// the new constraint admits, the parent admits too.
    pub fn at_least_as_strict_as(&self, parent: &Self) -> bool {
        match (parent, self) {
            (Self::None, _) => true,
            (_, Self::None) => false,
            (Self::Equals(p), Self::Equals(c)) => lower_keys(p) == lower_keys(c),
            (Self::Equals(_), Self::Subset(_)) => false,
            (Self::Subset(p), Self::Equals(c) | Self::Subset(c)) => {
                let child = lower_keys(c);
                lower_keys(p).iter().all(|(k, v)| child.get(k) == Some(v))
            }
        }
    }
}

/// Whether this grant allows `principal` to perform `action` (`kms:Decrypt`) with a request
/// carrying `request_context`. A grant to a role also serves the role's sessions, as in AWS.
pub fn grant_allows(
    grant: &GrantTerms<'_>,
    principal: &str,
    action: &str,
    request_context: &BTreeMap<String, String>,
) -> bool {
    let Some(operation) = grant_operation(action) else { return false };
    let grantee = grant.grantee_principal == principal
        || crate::context::session_role_arn(principal).as_deref() == Some(grant.grantee_principal);
    if !grantee || !grant.operations.iter().any(|o| o == operation) {
        return false;
    }
    !CONTEXT_OPERATIONS.contains(&operation) || grant.constraint.holds(request_context)
}

/// Whether a grant's grantee is the caller's whole account (`arn:aws:iam::<account>:root`
/// or the bare 12-digit account id). AWS then lets the account's principals use the
/// grant only as far as their identity policies allow the operation: the account's
/// administrator delegates it, as with a key policy naming the account.
pub fn grantee_is_account(grantee: &str, account: &str) -> bool {
    grantee == account
        || grantee.strip_prefix("arn:aws:iam::").and_then(|r| r.strip_suffix(":root"))
            == Some(account)
}

/// A grant token: not secret (AWS's are not either), it names its grant. `AQ`, the grant
/// id (64 hex digits), and 32 hex digits of the issuer's randomness so that each
/// CreateGrant answer gets a token of its own.
pub fn grant_token(grant_id: &str, nonce_hex: &str) -> String {
    format!("AQ{grant_id}{nonce_hex}")
}

/// The grant id a token names, or `None` for a string that is not a grant token.
pub fn grant_id_of_token(token: &str) -> Option<&str> {
    let rest = token.strip_prefix("AQ")?;
    let hex = |s: &str| s.bytes().all(|b| b.is_ascii_hexdigit());
    (rest.len() == 96 && hex(rest)).then(|| &rest[..64])
}

/// Whether a grant id has the shape KMS gives them (64 hex digits).
pub fn is_grant_id(id: &str) -> bool {
    id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    const ALICE: &str = "arn:aws:iam::111122223333:user/alice";

    fn ops(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn grantee_and_operation_must_match() {
        let operations = ops(&["Decrypt", "DescribeKey"]);
        let grant = GrantTerms {
            grantee_principal: ALICE,
            operations: &operations,
            constraint: &GrantConstraint::None,
        };
        let none = BTreeMap::new();
        assert!(grant_allows(&grant, ALICE, "kms:Decrypt", &none));
        assert!(grant_allows(&grant, ALICE, "kms:DescribeKey", &none));
        assert!(!grant_allows(&grant, ALICE, "kms:Encrypt", &none));
        assert!(!grant_allows(&grant, "arn:aws:iam::111122223333:user/bob", "kms:Decrypt", &none));
        assert!(!grant_allows(&grant, ALICE, "kms:PutKeyPolicy", &none), "not a grant operation");
        assert!(!grant_allows(&grant, ALICE, "Decrypt", &none), "actions carry the kms: prefix");
        assert!(grantee_is_account("arn:aws:iam::111122223333:root", "111122223333"));
        assert!(grantee_is_account("111122223333", "111122223333"));
        assert!(!grantee_is_account("arn:aws:iam::111122223333:root", "444455556666"));
        assert!(!grantee_is_account(ALICE, "111122223333"));
    }

    #[test]
    fn a_grant_to_a_role_serves_its_sessions() {
        let operations = ops(&["Decrypt"]);
        let role = "arn:aws:iam::111122223333:role/App";
        let grant = GrantTerms {
            grantee_principal: role,
            operations: &operations,
            constraint: &GrantConstraint::None,
        };
        let none = BTreeMap::new();
        let session = "arn:aws:sts::111122223333:assumed-role/App/pod-1";
        assert!(grant_allows(&grant, role, "kms:Decrypt", &none));
        assert!(grant_allows(&grant, session, "kms:Decrypt", &none));
        assert!(!grant_allows(
            &grant,
            "arn:aws:sts::111122223333:assumed-role/Other/pod-1",
            "kms:Decrypt",
            &none
        ));
        assert!(!grant_allows(
            &grant,
            "arn:aws:sts::444455556666:assumed-role/App/pod-1",
            "kms:Decrypt",
            &none
        ));
        // A grant to one session is that session's only.
        let grant = GrantTerms { grantee_principal: session, ..grant };
        assert!(!grant_allows(
            &grant,
            "arn:aws:sts::111122223333:assumed-role/App/pod-2",
            "kms:Decrypt",
            &none
        ));
    }

    #[test]
    fn constraints_apply_to_context_operations_only() {
        let operations = ops(&["Decrypt", "DescribeKey", "RetireGrant"]);
        let constraint = GrantConstraint::Subset(ctx(&[("Department", "Finance")]));
        let grant = GrantTerms {
            grantee_principal: ALICE,
            operations: &operations,
            constraint: &constraint,
        };
        assert!(grant_allows(&grant, ALICE, "kms:Decrypt", &ctx(&[("Department", "Finance")])));
        assert!(grant_allows(
            &grant,
            ALICE,
            "kms:Decrypt",
            &ctx(&[("Department", "Finance"), ("Project", "x")])
        ));
        assert!(
            grant_allows(&grant, ALICE, "kms:Decrypt", &ctx(&[("department", "Finance")])),
            "constraint keys compare case-insensitively"
        );
        assert!(
            !grant_allows(&grant, ALICE, "kms:Decrypt", &ctx(&[("Department", "finance")])),
            "values are case-sensitive"
        );
        assert!(!grant_allows(&grant, ALICE, "kms:Decrypt", &BTreeMap::new()));
        assert!(grant_allows(&grant, ALICE, "kms:DescribeKey", &BTreeMap::new()));
        assert!(grant_allows(&grant, ALICE, "kms:RetireGrant", &BTreeMap::new()));
    }

    #[test]
    fn equals_needs_the_exact_context() {
        let c = GrantConstraint::Equals(ctx(&[("a", "1"), ("b", "2")]));
        assert!(c.holds(&ctx(&[("b", "2"), ("a", "1")])));
        assert!(c.holds(&ctx(&[("A", "1"), ("b", "2")])));
        assert!(!c.holds(&ctx(&[("a", "1")])));
        assert!(!c.holds(&ctx(&[("a", "1"), ("b", "2"), ("c", "3")])));
        assert!(GrantConstraint::None.holds(&ctx(&[("x", "y")])));
        assert!(GrantConstraint::Subset(BTreeMap::new()).holds(&BTreeMap::new()));
    }

    #[test]
    fn strictness_of_derived_grants() {
        let subset_a = GrantConstraint::Subset(ctx(&[("a", "1")]));
        let subset_ab = GrantConstraint::Subset(ctx(&[("a", "1"), ("b", "2")]));
        let equals_ab = GrantConstraint::Equals(ctx(&[("a", "1"), ("b", "2")]));
        let equals_a = GrantConstraint::Equals(ctx(&[("A", "1")]));
        assert!(subset_ab.at_least_as_strict_as(&subset_a));
        assert!(equals_ab.at_least_as_strict_as(&subset_a));
        assert!(!subset_a.at_least_as_strict_as(&subset_ab));
        assert!(!GrantConstraint::None.at_least_as_strict_as(&subset_a));
        assert!(subset_a.at_least_as_strict_as(&GrantConstraint::None));
        assert!(equals_a.at_least_as_strict_as(&GrantConstraint::Equals(ctx(&[("a", "1")]))));
        assert!(!subset_ab.at_least_as_strict_as(&equals_ab), "a subset admits more contexts");
        assert!(!equals_ab.at_least_as_strict_as(&equals_a));
    }

    #[test]
    fn tokens_name_their_grant() {
        let id = "a".repeat(64);
        let token = grant_token(&id, &"0123456789abcdef".repeat(2));
        assert_eq!(grant_id_of_token(&token), Some(id.as_str()));
        assert!(is_grant_id(&id));
        for bad in
            ["", "AQ", "not a token", &token[1..], &format!("{token}0"), &token.replace('a', "z")]
        {
            assert_eq!(grant_id_of_token(bad), None, "{bad}");
        }
        assert!(!is_grant_id("abc"));
    }

    #[test]
    fn operations_by_key_type() {
        let symmetric = operations_for_key("SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT");
        assert!(symmetric.contains(&"Decrypt") && symmetric.contains(&"GenerateDataKeyPair"));
        assert!(!symmetric.contains(&"Sign") && !symmetric.contains(&"GetPublicKey"));
        let hmac = operations_for_key("HMAC_256", "GENERATE_VERIFY_MAC");
        assert!(hmac.contains(&"GenerateMac") && !hmac.contains(&"Decrypt"));
        let signing = operations_for_key("ECC_NIST_P256", "SIGN_VERIFY");
        assert!(signing.contains(&"Sign") && signing.contains(&"GetPublicKey"));
        let rsa = operations_for_key("RSA_2048", "ENCRYPT_DECRYPT");
        assert!(rsa.contains(&"Decrypt") && !rsa.contains(&"GenerateDataKey"));
        for key_ops in [symmetric, hmac, signing, rsa] {
            assert!(key_ops.iter().all(|op| GRANT_OPERATIONS.contains(op)));
            assert!(key_ops.contains(&"DescribeKey") && key_ops.contains(&"RetireGrant"));
        }
        assert_eq!(grant_operation("kms:ReEncryptFrom"), Some("ReEncryptFrom"));
        assert_eq!(grant_operation("kms:ReEncrypt*"), None);
    }
}
