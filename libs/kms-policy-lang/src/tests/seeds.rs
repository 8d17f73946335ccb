//! Every policy in the project's seed documents (`/work/shared/seeds`), copied verbatim
//! (the placeholder `ACCOUNT-B` becomes 999999999999) with the calls each must allow and
//! deny. Fragments (a lone statement or Condition block) are wrapped in a document.

use super::*;
use crate::PolicyError;

/// Seed 000, "Resource-Based Policies": root delegation plus a key user.
const KEY_USER: &str = r#"{
  "Version": "2012-10-17",
  "Statement": [
    {
      "Sid": "Enable IAM User Permissions",
      "Effect": "Allow",
      "Principal": {"AWS": "arn:aws:iam::123456789012:root"},
      "Action": "kms:*",
      "Resource": "*"
    },
    {
      "Sid": "Allow use of the key",
      "Effect": "Allow",
      "Principal": {"AWS": "arn:aws:iam::123456789012:user/ExampleUser"},
      "Action": [
        "kms:Encrypt",
        "kms:Decrypt",
        "kms:ReEncrypt*",
        "kms:GenerateDataKey*",
        "kms:DescribeKey"
      ],
      "Resource": "*"
    }
  ]
}"#;

#[test]
fn seed_key_user() {
    let example = user(ACCT, "ExampleUser");
    let bob = user(ACCT, "bob");
    let r = root(ACCT);
    check_all(
        KEY_USER,
        PolicyKind::Key,
        &[
            (&example, "kms:Encrypt", plain, "allow:Allow use of the key"),
            (&example, "kms:Decrypt", plain, "allow:Allow use of the key"),
            (&example, "kms:ReEncryptFrom", plain, "allow:Allow use of the key"),
            (&example, "kms:ReEncryptTo", plain, "allow:Allow use of the key"),
            (&example, "kms:GenerateDataKey", plain, "allow:Allow use of the key"),
            (&example, "kms:GenerateDataKeyWithoutPlaintext", plain, "allow:Allow use of the key"),
            (&example, "kms:GenerateDataKeyPair", plain, "allow:Allow use of the key"),
            (&example, "kms:DescribeKey", plain, "allow:Allow use of the key"),
            (&example, "KMS:decrypt", plain, "allow:Allow use of the key"),
            // Not a key-user action: only the account delegation statement applies.
            (&example, "kms:ScheduleKeyDeletion", plain, "account:Enable IAM User Permissions"),
            (&example, "kms:PutKeyPolicy", plain, "account:Enable IAM User Permissions"),
            (&bob, "kms:Decrypt", plain, "account:Enable IAM User Permissions"),
            (&r, "kms:ScheduleKeyDeletion", plain, "account:Enable IAM User Permissions"),
            (&user(OTHER, "ExampleUser"), "kms:Decrypt", plain, "none"),
            ("s3.amazonaws.com", "kms:Decrypt", plain, "none"),
        ],
    );
    // The whole decision: ExampleUser needs no IAM policy, bob does.
    authz_all(
        KEY_USER,
        &[
            (&example, "kms:Decrypt", &[], false, "allow:key:Allow use of the key"),
            (&example, "kms:DisableKey", &[], false, "deny:no-identity"),
            (&bob, "kms:Decrypt", &[], false, "deny:no-identity"),
            (
                &bob,
                "kms:Decrypt",
                &[IAM_DECRYPT_ANY],
                false,
                "allow:both:Enable IAM User Permissions+0:#0",
            ),
            (&r, "kms:DisableKey", &[], false, "allow:root:Enable IAM User Permissions"),
            (
                &user(OTHER, "ExampleUser"),
                "kms:Decrypt",
                &[IAM_DECRYPT_ANY],
                false,
                "deny:no-resource",
            ),
        ],
    );
}

const IAM_DECRYPT_ANY: &str = r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"kms:Decrypt","Resource":"*"}}"#;

/// Seed 000, "Cross-Account Access" (ACCOUNT-B → 999999999999).
const CROSS_ACCOUNT_VIA_S3: &str = r#"{
  "Version": "2012-10-17",
  "Statement": [
    {
      "Sid": "AllowCrossAccountAccess",
      "Effect": "Allow",
      "Principal": {
        "AWS": "arn:aws:iam::999999999999:root"
      },
      "Action": [
        "kms:Decrypt",
        "kms:GenerateDataKey"
      ],
      "Resource": "*",
      "Condition": {
        "StringEquals": {
          "kms:ViaService": "s3.us-east-1.amazonaws.com"
        }
      }
    }
  ]
}"#;

fn via_s3(b: RequestContextBuilder) -> RequestContextBuilder {
    b.condition("kms:ViaService", "s3.us-east-1.amazonaws.com")
}

fn via_s3_west(b: RequestContextBuilder) -> RequestContextBuilder {
    b.condition("kms:ViaService", "s3.us-west-2.amazonaws.com")
}

fn via_ebs(b: RequestContextBuilder) -> RequestContextBuilder {
    b.condition("kms:ViaService", "ec2.us-east-1.amazonaws.com")
}

#[test]
fn seed_cross_account_via_service() {
    let b_user = user(OTHER, "analyst");
    let a_user = user(ACCT, "alice");
    check_all(
        CROSS_ACCOUNT_VIA_S3,
        PolicyKind::Key,
        &[
            (&b_user, "kms:Decrypt", via_s3, "account:AllowCrossAccountAccess"),
            (&b_user, "kms:GenerateDataKey", via_s3, "account:AllowCrossAccountAccess"),
            (&b_user, "kms:Decrypt", plain, "none"),
            (&b_user, "kms:Decrypt", via_s3_west, "none"),
            (&b_user, "kms:Decrypt", via_ebs, "none"),
            (&b_user, "kms:Encrypt", via_s3, "none"),
            (&a_user, "kms:Decrypt", via_s3, "none"),
        ],
    );
    let b_identity = r#"{"Version":"2012-10-17","Statement":[{"Sid":"UseSharedKey","Effect":"Allow",
        "Action":["kms:Decrypt","kms:GenerateDataKey"],
        "Resource":"arn:aws:kms:us-east-1:123456789012:key/*"}]}"#;
    for (extra, identity, want) in [
        (via_s3 as Extra, &[b_identity][..], "allow:both:AllowCrossAccountAccess+0:UseSharedKey"),
        (via_s3, &[], "deny:no-identity"),
        (plain, &[b_identity], "deny:no-resource"),
    ] {
        let got = authz(
            CROSS_ACCOUNT_VIA_S3,
            identity,
            &GrantAllowance::None,
            extra(call(&b_user, "kms:Decrypt")),
        );
        assert_eq!(authz_summary(&got), want);
    }
    // The seed as written, with its placeholder account, is not a valid key policy.
    let raw = CROSS_ACCOUNT_VIA_S3.replace("999999999999", "ACCOUNT-B");
    assert_eq!(Policy::parse(&raw, PolicyKind::Key), Err(PolicyError::InvalidPrincipal));
}

/// Seed 000, "Principle of Least Privilege".
const ENCRYPTION_ONLY: &str = r#"{
  "Version": "2012-10-17",
  "Statement": [
    {
      "Sid": "AllowEncryptionOnly",
      "Effect": "Allow",
      "Principal": {
        "AWS": "arn:aws:iam::123456789012:role/ApplicationRole"
      },
      "Action": [
        "kms:Encrypt",
        "kms:GenerateDataKey"
      ],
      "Resource": "*",
      "Condition": {
        "StringEquals": {
          "kms:EncryptionContext:Application": "MyApp"
        }
      }
    }
  ]
}"#;

fn ec_myapp(b: RequestContextBuilder) -> RequestContextBuilder {
    b.encryption_context([("Application", "MyApp")])
}
fn ec_myapp_lower_key(b: RequestContextBuilder) -> RequestContextBuilder {
    b.encryption_context([("application", "MyApp")])
}
fn ec_myapp_lower_value(b: RequestContextBuilder) -> RequestContextBuilder {
    b.encryption_context([("Application", "myapp")])
}
fn ec_myapp_plus(b: RequestContextBuilder) -> RequestContextBuilder {
    b.encryption_context([("Application", "MyApp"), ("Env", "prod")])
}
fn ec_other(b: RequestContextBuilder) -> RequestContextBuilder {
    b.encryption_context([("Application", "Other")])
}

#[test]
fn seed_least_privilege_encryption_context() {
    let app = session(ACCT, "ApplicationRole", "i-0abc");
    let other_role = session(ACCT, "OtherRole", "i-0abc");
    check_all(
        ENCRYPTION_ONLY,
        PolicyKind::Key,
        &[
            (&app, "kms:Encrypt", ec_myapp, "allow:AllowEncryptionOnly"),
            (&app, "kms:GenerateDataKey", ec_myapp, "allow:AllowEncryptionOnly"),
            (&app, "kms:Encrypt", ec_myapp_plus, "allow:AllowEncryptionOnly"),
            (&app, "kms:Encrypt", plain, "none"),
            (&app, "kms:Encrypt", ec_other, "none"),
            // The context key after the prefix is case-sensitive, and StringEquals values.
            (&app, "kms:Encrypt", ec_myapp_lower_key, "none"),
            (&app, "kms:Encrypt", ec_myapp_lower_value, "none"),
            (&app, "kms:Decrypt", ec_myapp, "none"),
            (&app, "kms:GenerateDataKeyWithoutPlaintext", ec_myapp, "none"),
            (&other_role, "kms:Encrypt", ec_myapp, "none"),
            (&session(OTHER, "ApplicationRole", "x"), "kms:Encrypt", ec_myapp, "none"),
        ],
    );
    // The role ARN named with a path matches sessions of that role when the caller says
    // which role it is; a role of the same name on another path does not.
    let with_path = ENCRYPTION_ONLY.replace("role/ApplicationRole", "role/apps/ApplicationRole");
    check(&with_path, ec_myapp(call(&app, "kms:Encrypt")), "allow:AllowEncryptionOnly");
    check(
        &with_path,
        ec_myapp(call(&app, "kms:Encrypt"))
            .role_arn("arn:aws:iam::123456789012:role/apps/ApplicationRole"),
        "allow:AllowEncryptionOnly",
    );
    check(
        &with_path,
        ec_myapp(call(&app, "kms:Encrypt"))
            .role_arn("arn:aws:iam::123456789012:role/ApplicationRole"),
        "none",
    );
}

/// Seed 000, "Conditional Access Controls": a lone Condition block, wrapped.
const CONDITIONAL: &str = r#"{
  "Version": "2012-10-17",
  "Statement": [{
    "Sid": "Conditional",
    "Effect": "Allow",
    "Principal": {"AWS": "arn:aws:iam::123456789012:role/MyAppRole"},
    "Action": "kms:CreateGrant",
    "Resource": "*",
  "Condition": {
    "StringEquals": {
      "kms:ViaService": "s3.us-east-1.amazonaws.com"
    },
    "Bool": {
      "kms:GrantIsForAWSResource": "true"
    },
    "DateGreaterThan": {
      "aws:CurrentTime": "2023-01-01T00:00:00Z"
    }
  }
  }]
}"#;

#[test]
fn seed_conditional_access_controls() {
    let app = session(ACCT, "MyAppRole", "s");
    fn all(b: RequestContextBuilder) -> RequestContextBuilder {
        via_s3(b).condition("kms:GrantIsForAWSResource", "true")
    }
    fn upper_true(b: RequestContextBuilder) -> RequestContextBuilder {
        via_s3(b).condition("kms:GrantIsForAWSResource", "TRUE")
    }
    fn not_for_resource(b: RequestContextBuilder) -> RequestContextBuilder {
        via_s3(b).condition("kms:GrantIsForAWSResource", "false")
    }
    fn too_early(b: RequestContextBuilder) -> RequestContextBuilder {
        all(b).current_time(time::macros::datetime!(2022-12-31 23:59:59 UTC))
    }
    fn exactly_then(b: RequestContextBuilder) -> RequestContextBuilder {
        all(b).current_time(time::macros::datetime!(2023-01-01 00:00:00 UTC))
    }
    fn no_grant_key(b: RequestContextBuilder) -> RequestContextBuilder {
        via_s3(b)
    }
    check_all(
        CONDITIONAL,
        PolicyKind::Key,
        &[
            (&app, "kms:CreateGrant", all, "allow:Conditional"),
            (&app, "kms:CreateGrant", upper_true, "allow:Conditional"),
            (&app, "kms:CreateGrant", not_for_resource, "none"),
            (&app, "kms:CreateGrant", no_grant_key, "none"),
            (&app, "kms:CreateGrant", too_early, "none"),
            (&app, "kms:CreateGrant", exactly_then, "none"),
            (&app, "kms:Decrypt", all, "none"),
        ],
    );
}

/// Seed 000, "Cross-Account EBS Snapshot Sharing": a lone statement (ACCOUNT-B →
/// 999999999999), wrapped.
const ACCOUNT_B_ACCESS: &str = r#"{"Statement": [{
  "Sid": "AllowAccountBAccess",
  "Effect": "Allow",
  "Principal": {"AWS": "arn:aws:iam::999999999999:root"},
  "Action": [
    "kms:Decrypt",
    "kms:GenerateDataKey",
    "kms:CreateGrant"
  ],
  "Resource": "*"
}]}"#;

#[test]
fn seed_account_b_snapshot_sharing() {
    let b_admin = user(OTHER, "admin");
    let b_ident = r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":["kms:Decrypt","kms:CreateGrant"],"Resource":"*"}}"#;
    authz_all(
        ACCOUNT_B_ACCESS,
        &[
            (&b_admin, "kms:CreateGrant", &[b_ident], false, "allow:both:AllowAccountBAccess+0:#0"),
            (&b_admin, "kms:Decrypt", &[b_ident], false, "allow:both:AllowAccountBAccess+0:#0"),
            // The key policy allows it but the identity side does not.
            (&b_admin, "kms:GenerateDataKey", &[b_ident], false, "deny:no-identity"),
            (&b_admin, "kms:ReEncryptFrom", &[b_ident], false, "deny:no-resource"),
            // Account B's root needs no identity policy.
            (&root(OTHER), "kms:GenerateDataKey", &[], false, "allow:root:AllowAccountBAccess"),
            // No statement for account A at all: even its root is refused.
            (&root(ACCT), "kms:Decrypt", &[], false, "deny:no-resource"),
        ],
    );
}

/// Seed 000, "Shared KMS keys": a lone statement, wrapped.
const MULTI_SERVICE: &str = r#"{"Version": "2012-10-17", "Statement": {
  "Sid": "AllowMultiServiceAccess",
  "Effect": "Allow",
  "Principal": {"AWS": "arn:aws:iam::123456789012:root"},
  "Action": ["kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey"],
  "Resource": "*",
  "Condition": {
    "StringEquals": {
      "kms:ViaService": [
        "s3.us-east-1.amazonaws.com",
        "lambda.us-east-1.amazonaws.com",
        "rds.us-east-1.amazonaws.com"
      ]
    }
  }
}}"#;

#[test]
fn seed_multi_service() {
    let alice = user(ACCT, "alice");
    fn via_lambda(b: RequestContextBuilder) -> RequestContextBuilder {
        b.condition("kms:ViaService", "lambda.us-east-1.amazonaws.com")
    }
    fn via_rds(b: RequestContextBuilder) -> RequestContextBuilder {
        b.condition("kms:ViaService", "rds.us-east-1.amazonaws.com")
    }
    check_all(
        MULTI_SERVICE,
        PolicyKind::Key,
        &[
            (&alice, "kms:Encrypt", via_s3, "account:AllowMultiServiceAccess"),
            (&alice, "kms:Decrypt", via_lambda, "account:AllowMultiServiceAccess"),
            (&alice, "kms:GenerateDataKey", via_rds, "account:AllowMultiServiceAccess"),
            (&alice, "kms:Decrypt", via_ebs, "none"),
            (&alice, "kms:Decrypt", plain, "none"),
            (&alice, "kms:ReEncryptFrom", via_s3, "none"),
        ],
    );
}

/// Seed 000, "Access Control": role restricted to S3 and an encryption context.
const RESTRICT_TO_SERVICES: &str = r#"{
  "Version": "2012-10-17",
  "Statement": [
    {
      "Sid": "RestrictToSpecificServices",
      "Effect": "Allow",
      "Principal": {"AWS": "arn:aws:iam::123456789012:role/ApplicationRole"},
      "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
      "Resource": "*",
      "Condition": {
        "StringEquals": {
          "kms:ViaService": ["s3.us-east-1.amazonaws.com"],
          "kms:EncryptionContext:application": "MySecureApp"
        }
      }
    }
  ]
}"#;

#[test]
fn seed_restrict_to_services() {
    let app = session(ACCT, "ApplicationRole", "web");
    fn both(b: RequestContextBuilder) -> RequestContextBuilder {
        via_s3(b).encryption_context([("application", "MySecureApp")])
    }
    fn wrong_case_key(b: RequestContextBuilder) -> RequestContextBuilder {
        via_s3(b).encryption_context([("Application", "MySecureApp")])
    }
    fn context_only(b: RequestContextBuilder) -> RequestContextBuilder {
        b.encryption_context([("application", "MySecureApp")])
    }
    check_all(
        RESTRICT_TO_SERVICES,
        PolicyKind::Key,
        &[
            (&app, "kms:Decrypt", both, "allow:RestrictToSpecificServices"),
            (&app, "kms:GenerateDataKey", both, "allow:RestrictToSpecificServices"),
            (&app, "kms:Decrypt", wrong_case_key, "none"),
            (&app, "kms:Decrypt", context_only, "none"),
            (&app, "kms:Decrypt", via_s3, "none"),
            (&app, "kms:Encrypt", both, "none"),
        ],
    );
}

/// Seed 000, CLI section: root, key users, and grants only for AWS resources.
const PERSISTENT_RESOURCES: &str = r#"{
  "Version": "2012-10-17",
  "Statement": [
    {
      "Sid": "Enable IAM User Permissions",
      "Effect": "Allow",
      "Principal": {"AWS": "arn:aws:iam::123456789012:root"},
      "Action": "kms:*",
      "Resource": "*"
    },
    {
      "Sid": "Allow use of the key for encryption",
      "Effect": "Allow",
      "Principal": {"AWS": "arn:aws:iam::123456789012:role/MyAppRole"},
      "Action": [
        "kms:Encrypt",
        "kms:Decrypt",
        "kms:ReEncrypt*",
        "kms:GenerateDataKey*",
        "kms:DescribeKey"
      ],
      "Resource": "*"
    },
    {
      "Sid": "Allow attachment of persistent resources",
      "Effect": "Allow",
      "Principal": {"AWS": "arn:aws:iam::123456789012:role/MyAppRole"},
      "Action": [
        "kms:CreateGrant",
        "kms:ListGrants",
        "kms:RevokeGrant"
      ],
      "Resource": "*",
      "Condition": {
        "Bool": {"kms:GrantIsForAWSResource": "true"}
      }
    }
  ]
}"#;

#[test]
fn seed_grants_for_aws_resources() {
    let app = session(ACCT, "MyAppRole", "s");
    fn for_resource(b: RequestContextBuilder) -> RequestContextBuilder {
        b.condition("kms:GrantIsForAWSResource", "true")
    }
    fn not_for_resource(b: RequestContextBuilder) -> RequestContextBuilder {
        b.condition("kms:GrantIsForAWSResource", "false")
    }
    check_all(
        PERSISTENT_RESOURCES,
        PolicyKind::Key,
        &[
            (
                &app,
                "kms:CreateGrant",
                for_resource,
                "allow:Allow attachment of persistent resources",
            ),
            (
                &app,
                "kms:ListGrants",
                for_resource,
                "allow:Allow attachment of persistent resources",
            ),
            (&app, "kms:CreateGrant", not_for_resource, "account:Enable IAM User Permissions"),
            (&app, "kms:CreateGrant", plain, "account:Enable IAM User Permissions"),
            (&app, "kms:ReEncryptTo", plain, "allow:Allow use of the key for encryption"),
            (
                &app,
                "kms:GenerateDataKeyPairWithoutPlaintext",
                plain,
                "allow:Allow use of the key for encryption",
            ),
        ],
    );
    authz_all(
        PERSISTENT_RESOURCES,
        &[
            (&app, "kms:CreateGrant", &[], false, "deny:no-identity"),
            (&app, "kms:Decrypt", &[], false, "allow:key:Allow use of the key for encryption"),
            (&app, "kms:Sign", &[], true, "allow:grant:g1"),
        ],
    );
}

/// Seed 001, "Default Key Policy".
const DEFAULT: &str = r#"{
  "Version": "2012-10-17",
  "Statement": [
    {
      "Sid": "Enable IAM User Permissions",
      "Effect": "Allow",
      "Principal": {
        "AWS": "arn:aws:iam::123456789012:root"
      },
      "Action": "kms:*",
      "Resource": "*"
    }
  ]
}"#;

#[test]
fn seed_default_key_policy() {
    let ours = crate::default_key_policy(ACCT);
    for text in [DEFAULT, ours.as_str()] {
        authz_all(
            text,
            &[
                (
                    &root(ACCT),
                    "kms:ScheduleKeyDeletion",
                    &[],
                    false,
                    "allow:root:Enable IAM User Permissions",
                ),
                (&user(ACCT, "alice"), "kms:Decrypt", &[], false, "deny:no-identity"),
                (
                    &user(ACCT, "alice"),
                    "kms:Decrypt",
                    &[IAM_DECRYPT_ANY],
                    false,
                    "allow:both:Enable IAM User Permissions+0:#0",
                ),
                (
                    &user(ACCT, "alice"),
                    "kms:Encrypt",
                    &[IAM_DECRYPT_ANY],
                    false,
                    "deny:no-identity",
                ),
                (
                    &user(OTHER, "mallory"),
                    "kms:Decrypt",
                    &[IAM_DECRYPT_ANY],
                    false,
                    "deny:no-resource",
                ),
                (&root(OTHER), "kms:Decrypt", &[], false, "deny:no-resource"),
                ("s3.amazonaws.com", "kms:Decrypt", &[], false, "deny:no-resource"),
            ],
        );
    }
}

/// Seed 001, "Custom Key Policy": key users, key administrators, S3.
const CUSTOM: &str = r#"{
  "Version": "2012-10-17",
  "Statement": [
    {
      "Sid": "Allow use of the key for encryption",
      "Effect": "Allow",
      "Principal": {
        "AWS": [
          "arn:aws:iam::123456789012:role/MyApplicationRole",
          "arn:aws:iam::123456789012:user/alice"
        ]
      },
      "Action": [
        "kms:Encrypt",
        "kms:Decrypt",
        "kms:ReEncrypt*",
        "kms:GenerateDataKey*",
        "kms:DescribeKey"
      ],
      "Resource": "*"
    },
    {
      "Sid": "Allow key administrators",
      "Effect": "Allow",
      "Principal": {
        "AWS": "arn:aws:iam::123456789012:role/KeyAdmin"
      },
      "Action": [
        "kms:Create*",
        "kms:Describe*",
        "kms:Enable*",
        "kms:List*",
        "kms:Put*",
        "kms:Update*",
        "kms:Revoke*",
        "kms:Disable*",
        "kms:Get*",
        "kms:Delete*",
        "kms:TagResource",
        "kms:UntagResource",
        "kms:ScheduleKeyDeletion",
        "kms:CancelKeyDeletion"
      ],
      "Resource": "*"
    },
    {
      "Sid": "Allow S3 to use key",
      "Effect": "Allow",
      "Principal": {
        "Service": "s3.amazonaws.com"
      },
      "Action": [
        "kms:Decrypt",
        "kms:GenerateDataKey"
      ],
      "Resource": "*"
    }
  ]
}"#;

#[test]
fn seed_key_administrators_vs_users() {
    let alice = user(ACCT, "alice");
    let app = session(ACCT, "MyApplicationRole", "s");
    let admin = session(ACCT, "KeyAdmin", "ops");
    let users = "allow:Allow use of the key for encryption";
    let admins = "allow:Allow key administrators";
    check_all(
        CUSTOM,
        PolicyKind::Key,
        &[
            (&alice, "kms:Encrypt", plain, users),
            (&alice, "kms:Decrypt", plain, users),
            (&app, "kms:ReEncryptFrom", plain, users),
            (&app, "kms:GenerateDataKeyWithoutPlaintext", plain, users),
            (&alice, "kms:DescribeKey", plain, users),
            (&alice, "kms:ScheduleKeyDeletion", plain, "none"),
            (&alice, "kms:PutKeyPolicy", plain, "none"),
            (&app, "kms:CreateGrant", plain, "none"),
            (&admin, "kms:PutKeyPolicy", plain, admins),
            (&admin, "kms:CreateAlias", plain, admins),
            (&admin, "kms:GetKeyRotationStatus", plain, admins),
            (&admin, "kms:DisableKeyRotation", plain, admins),
            (&admin, "kms:ScheduleKeyDeletion", plain, admins),
            (&admin, "kms:DescribeKey", plain, admins),
            (&admin, "kms:Decrypt", plain, "none"),
            (&admin, "kms:Encrypt", plain, "none"),
            (&admin, "kms:Sign", plain, "none"),
            ("s3.amazonaws.com", "kms:Decrypt", plain, "allow:Allow S3 to use key"),
            ("S3.AMAZONAWS.COM", "kms:GenerateDataKey", plain, "allow:Allow S3 to use key"),
            ("s3.amazonaws.com", "kms:Encrypt", plain, "none"),
            ("lambda.amazonaws.com", "kms:Decrypt", plain, "none"),
            (&root(ACCT), "kms:Decrypt", plain, "none"),
            (&user(ACCT, "bob"), "kms:Decrypt", plain, "none"),
        ],
    );
    // No root statement: IAM policies cannot help anyone, not even the root user.
    authz_all(
        CUSTOM,
        &[
            (&user(ACCT, "bob"), "kms:Decrypt", &[IAM_DECRYPT_ANY], false, "deny:no-resource"),
            (&root(ACCT), "kms:PutKeyPolicy", &[], false, "deny:no-resource"),
            ("s3.amazonaws.com", "kms:Decrypt", &[], false, "allow:key:Allow S3 to use key"),
        ],
    );
    // The lockout check: admins keep PutKeyPolicy, users would lock themselves out.
    let policy = parse(CUSTOM, PolicyKind::Key);
    assert!(crate::lockout_safety_check(&policy, &call(&admin, "kms:CreateKey").build()));
    assert!(!crate::lockout_safety_check(&policy, &call(&alice, "kms:PutKeyPolicy").build()));
    assert!(!crate::lockout_safety_check(&policy, &call(&root(ACCT), "kms:PutKeyPolicy").build()));
}

/// Seed 001, "IAM Policy Example".
const IAM_EXAMPLE: &str = r#"{
  "Version": "2012-10-17",
  "Statement": [
    {
      "Effect": "Allow",
      "Action": [
        "kms:Encrypt",
        "kms:Decrypt",
        "kms:GenerateDataKey"
      ],
      "Resource": "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    }
  ]
}"#;

#[test]
fn seed_identity_policy_on_one_key() {
    let alice = user(ACCT, "alice");
    check_all(
        IAM_EXAMPLE,
        PolicyKind::Identity,
        &[
            (&alice, "kms:Encrypt", plain, "allow:#0"),
            (&alice, "kms:decrypt", plain, "allow:#0"),
            (&alice, "kms:GenerateDataKey", plain, "allow:#0"),
            (&alice, "kms:GenerateDataKeyPair", plain, "none"),
            (&alice, "kms:ReEncryptFrom", plain, "none"),
        ],
    );
    let other_key = RequestContext::builder(
        &alice,
        PrincipalType::User,
        "kms:Decrypt",
        "arn:aws:kms:us-east-1:123456789012:key/ffffffff-12ab-34cd-56ef-1234567890ab",
    );
    check_kind(IAM_EXAMPLE, PolicyKind::Identity, other_key, "none");
    authz_all(
        DEFAULT,
        &[(
            &alice,
            "kms:Encrypt",
            &[IAM_EXAMPLE],
            false,
            "allow:both:Enable IAM User Permissions+0:#0",
        )],
    );
    // It is not a key policy: no principal.
    assert_eq!(Policy::parse(IAM_EXAMPLE, PolicyKind::Key), Err(PolicyError::MissingPrincipal));
}

/// Seed 001, "Cross-Account Access": key-owner statement (wrapped) and the external
/// account's identity policy.
const EXTERNAL_ACCOUNT_KEY: &str = r#"{"Version": "2012-10-17", "Statement": [{
  "Sid": "Allow external account",
  "Effect": "Allow",
  "Principal": {
    "AWS": "arn:aws:iam::999999999999:root"
  },
  "Action": [
    "kms:Encrypt",
    "kms:Decrypt",
    "kms:GenerateDataKey"
  ],
  "Resource": "*"
}]}"#;

const EXTERNAL_ACCOUNT_IAM: &str = r#"{
  "Version": "2012-10-17",
  "Statement": [
    {
      "Effect": "Allow",
      "Action": [
        "kms:Encrypt",
        "kms:Decrypt",
        "kms:GenerateDataKey"
      ],
      "Resource": "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    }
  ]
}"#;

#[test]
fn seed_cross_account_both_sides() {
    let ext = user(OTHER, "dev");
    let ext_role = session(OTHER, "Worker", "w1");
    let both = "allow:both:Allow external account+0:#0";
    authz_all(
        EXTERNAL_ACCOUNT_KEY,
        &[
            (&ext, "kms:Encrypt", &[EXTERNAL_ACCOUNT_IAM], false, both),
            (&ext_role, "kms:GenerateDataKey", &[EXTERNAL_ACCOUNT_IAM], false, both),
            (&ext, "kms:Encrypt", &[], false, "deny:no-identity"),
            (&ext, "kms:ReEncryptTo", &[EXTERNAL_ACCOUNT_IAM], false, "deny:no-resource"),
            (
                &user(ACCT, "alice"),
                "kms:Encrypt",
                &[EXTERNAL_ACCOUNT_IAM],
                false,
                "deny:no-resource",
            ),
            (
                &user("111111111111", "eve"),
                "kms:Encrypt",
                &[EXTERNAL_ACCOUNT_IAM],
                false,
                "deny:no-resource",
            ),
            // A grant lets the external principal in without either policy.
            (&user("111111111111", "eve"), "kms:Encrypt", &[], true, "allow:grant:g1"),
        ],
    );
}

/// Seed 001, "Scenario 1": S3 plus two named decrypters.
const S3_BUCKET_KEY: &str = r#"{
    "Version": "2012-10-17",
    "Statement": [
        {
            "Sid": "Allow S3 to use key",
            "Effect": "Allow",
            "Principal": {"Service": "s3.amazonaws.com"},
            "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
            "Resource": "*"
        },
        {
            "Sid": "Allow specific users to decrypt",
            "Effect": "Allow",
            "Principal": {
                "AWS": [
                    "arn:aws:iam::123456789012:user/alice",
                    "arn:aws:iam::123456789012:role/DataAnalyst"
                ]
            },
            "Action": "kms:Decrypt",
            "Resource": "*"
        }
    ]
}"#;

#[test]
fn seed_s3_bucket_key() {
    let users = "allow:Allow specific users to decrypt";
    check_all(
        S3_BUCKET_KEY,
        PolicyKind::Key,
        &[
            ("s3.amazonaws.com", "kms:GenerateDataKey", plain, "allow:Allow S3 to use key"),
            ("s3.amazonaws.com", "kms:Decrypt", plain, "allow:Allow S3 to use key"),
            ("s3.amazonaws.com", "kms:Encrypt", plain, "none"),
            ("arn:aws:iam::123456789012:user/alice", "kms:Decrypt", plain, users),
            ("arn:aws:iam::123456789012:user/alice", "kms:Encrypt", plain, "none"),
            ("arn:aws:iam::123456789012:user/Alice", "kms:Decrypt", plain, "none"),
            (
                "arn:aws:sts::123456789012:assumed-role/DataAnalyst/jane",
                "kms:Decrypt",
                plain,
                users,
            ),
            ("arn:aws:iam::123456789012:role/DataAnalyst", "kms:Decrypt", plain, users),
            (
                "arn:aws:sts::123456789012:assumed-role/DataAnalyst/jane",
                "kms:GenerateDataKey",
                plain,
                "none",
            ),
            ("arn:aws:iam::123456789012:user/DataAnalyst", "kms:Decrypt", plain, "none"),
        ],
    );
}

/// Seed 001, "Scenario 2: Cross-Account Data Sharing": key policy, bucket policy and the
/// Account B user's identity policy.
const SHARED_DATA_KEY: &str = r#"{
    "Version": "2012-10-17",
    "Statement": [
        {
            "Sid": "Allow Account A admin",
            "Effect": "Allow",
            "Principal": {
                "AWS": "arn:aws:iam::123456789012:root"
            },
            "Action": "kms:*",
            "Resource": "*"
        },
        {
            "Sid": "Allow Account B to decrypt",
            "Effect": "Allow",
            "Principal": {
                "AWS": "arn:aws:iam::999999999999:root"
            },
            "Action": [
                "kms:Decrypt",
                "kms:DescribeKey"
            ],
            "Resource": "*"
        }
    ]
}"#;

const SHARED_BUCKET_POLICY: &str = r#"{
    "Version": "2012-10-17",
    "Statement": [{
        "Effect": "Allow",
        "Principal": {"AWS": "arn:aws:iam::999999999999:root"},
        "Action": ["s3:GetObject"],
        "Resource": "arn:aws:s3:::shared-bucket/*"
    }]
}"#;

const ACCOUNT_B_USER_POLICY: &str = r#"{
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Action": ["s3:GetObject"],
            "Resource": "arn:aws:s3:::shared-bucket/*"
        },
        {
            "Effect": "Allow",
            "Action": ["kms:Decrypt", "kms:DescribeKey"],
            "Resource": "arn:aws:kms:us-east-1:123456789012:key/*"
        }
    ]
}"#;

#[test]
fn seed_cross_account_data_sharing() {
    let b_user = user(OTHER, "reader");
    authz_all(
        SHARED_DATA_KEY,
        &[
            (
                &b_user,
                "kms:Decrypt",
                &[ACCOUNT_B_USER_POLICY],
                false,
                "allow:both:Allow Account B to decrypt+0:#1",
            ),
            (
                &b_user,
                "kms:DescribeKey",
                &[ACCOUNT_B_USER_POLICY],
                false,
                "allow:both:Allow Account B to decrypt+0:#1",
            ),
            (&b_user, "kms:Encrypt", &[ACCOUNT_B_USER_POLICY], false, "deny:no-resource"),
            (&b_user, "kms:Decrypt", &[], false, "deny:no-identity"),
            (
                &root(ACCT),
                "kms:ScheduleKeyDeletion",
                &[],
                false,
                "allow:root:Allow Account A admin",
            ),
            (
                &user(ACCT, "alice"),
                "kms:Decrypt",
                &[ACCOUNT_B_USER_POLICY],
                false,
                "allow:both:Allow Account A admin+0:#1",
            ),
        ],
    );
    // The bucket policy is a resource policy with a principal: it parses, and allows no
    // KMS call.
    check(SHARED_BUCKET_POLICY, call(&b_user, "kms:Decrypt"), "none");
    let s3_ctx = RequestContext::builder(
        &b_user,
        PrincipalType::User,
        "s3:GetObject",
        "arn:aws:s3:::shared-bucket/data.csv",
    )
    .resource_account(ACCT);
    check(SHARED_BUCKET_POLICY, s3_ctx, "account:#0");
    // The identity policy's S3 statement does not cover KMS.
    check_kind(
        ACCOUNT_B_USER_POLICY,
        PolicyKind::Identity,
        call(&b_user, "kms:Decrypt"),
        "allow:#1",
    );
    check_kind(ACCOUNT_B_USER_POLICY, PolicyKind::Identity, call(&b_user, "kms:Encrypt"), "none");
}

/// Seed 001, "Scenario 4: Compliance (HIPAA)": a policy variable in an encryption
/// context condition.
const HIPAA: &str = r#"{
    "Version": "2012-10-17",
    "Statement": [
        {
            "Sid": "Allow authorized users only",
            "Effect": "Allow",
            "Principal": {
                "AWS": [
                    "arn:aws:iam::123456789012:role/HealthcareApp",
                    "arn:aws:iam::123456789012:role/DoctorPortal"
                ]
            },
            "Action": [
                "kms:Encrypt",
                "kms:Decrypt",
                "kms:GenerateDataKey"
            ],
            "Resource": "*",
            "Condition": {
                "StringEquals": {
                    "kms:EncryptionContext:PatientID": "${aws:username}"
                }
            }
        }
    ]
}"#;

#[test]
fn seed_hipaa_policy_variable() {
    let app = session(ACCT, "HealthcareApp", "patient-12345");
    fn patient(b: RequestContextBuilder) -> RequestContextBuilder {
        b.encryption_context([
            ("PatientID", "patient-12345"),
            ("RecordType", "MedicalHistory"),
            ("AccessedBy", "doctor-67890"),
        ])
    }
    fn patient_and_username(b: RequestContextBuilder) -> RequestContextBuilder {
        patient(b).username("patient-12345")
    }
    fn other_username(b: RequestContextBuilder) -> RequestContextBuilder {
        patient(b).username("patient-99999")
    }
    check_all(
        HIPAA,
        PolicyKind::Key,
        &[
            // Role sessions carry no aws:username, so as in AWS the variable never
            // resolves and the statement never matches: the seed policy allows nobody.
            (&app, "kms:Decrypt", patient, "none"),
            (&session(ACCT, "DoctorPortal", "d"), "kms:Encrypt", patient, "none"),
            // Were the key present, the substituted value would be compared.
            (&app, "kms:Decrypt", patient_and_username, "allow:Allow authorized users only"),
            (&app, "kms:Decrypt", other_username, "none"),
        ],
    );
    // Under the 2008 version variables are literal text.
    let old = HIPAA.replace("2012-10-17", "2008-10-17");
    fn literal(b: RequestContextBuilder) -> RequestContextBuilder {
        b.encryption_context([("PatientID", "${aws:username}")]).username("x")
    }
    check(&old, literal(call(&app, "kms:Decrypt")), "allow:Allow authorized users only");
    check(&old, patient_and_username(call(&app, "kms:Decrypt")), "none");
    check(HIPAA, literal(call(&app, "kms:Decrypt")), "none");
}

#[test]
fn every_seed_parses() {
    for (text, kind) in [
        (KEY_USER, PolicyKind::Key),
        (CROSS_ACCOUNT_VIA_S3, PolicyKind::Key),
        (ENCRYPTION_ONLY, PolicyKind::Key),
        (CONDITIONAL, PolicyKind::Key),
        (ACCOUNT_B_ACCESS, PolicyKind::Key),
        (MULTI_SERVICE, PolicyKind::Key),
        (RESTRICT_TO_SERVICES, PolicyKind::Key),
        (PERSISTENT_RESOURCES, PolicyKind::Key),
        (DEFAULT, PolicyKind::Key),
        (CUSTOM, PolicyKind::Key),
        (IAM_EXAMPLE, PolicyKind::Identity),
        (EXTERNAL_ACCOUNT_KEY, PolicyKind::Key),
        (EXTERNAL_ACCOUNT_IAM, PolicyKind::Identity),
        (S3_BUCKET_KEY, PolicyKind::Key),
        (SHARED_DATA_KEY, PolicyKind::Key),
        (SHARED_BUCKET_POLICY, PolicyKind::Key),
        (ACCOUNT_B_USER_POLICY, PolicyKind::Identity),
        (HIPAA, PolicyKind::Key),
    ] {
        let policy = parse(text, kind);
        assert!(policy.statement_count() >= 1);
        assert_eq!(policy.kind(), kind);
        if kind == PolicyKind::Identity {
            assert_eq!(Policy::parse(text, PolicyKind::Key), Err(PolicyError::MissingPrincipal));
        } else {
            assert_eq!(
                Policy::parse(text, PolicyKind::Identity),
                Err(PolicyError::PrincipalInIdentityPolicy)
            );
        }
    }
}
