//! The combined KMS decision: key policy, identity policies and grants, cross-account
//! rules, root delegation, access-denied messages, the lockout check and the default
//! policy.

use super::*;
use crate::{default_key_policy, lockout_safety_check, AuthzDecision};

const ALLOW_KMS_ALL: &str = r#"{"Version":"2012-10-17","Statement":{"Sid":"IamAll","Effect":"Allow","Action":"kms:*","Resource":"*"}}"#;
const DENY_DECRYPT: &str = r#"{"Version":"2012-10-17","Statement":{"Sid":"IamNoDecrypt","Effect":"Deny","Action":"kms:Decrypt","Resource":"*"}}"#;
const OTHER_KEY_ONLY: &str = r#"{"Version":"2012-10-17","Statement":{"Sid":"OtherKey","Effect":"Allow","Action":"kms:*","Resource":"arn:aws:kms:us-east-1:123456789012:key/other"}}"#;

/// Root delegation, a named same-account user, a named external user, a conditional
/// wildcard, and a Deny.
const KEY_POLICY: &str = r#"{"Version":"2012-10-17","Statement":[
    {"Sid":"Root","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:root"},"Action":"kms:*","Resource":"*"},
    {"Sid":"Alice","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:user/alice"},"Action":["kms:Decrypt","kms:Encrypt"],"Resource":"*"},
    {"Sid":"ExtBob","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::999999999999:user/bob"},"Action":"kms:Decrypt","Resource":"*"},
    {"Sid":"ViaS3","Effect":"Allow","Principal":{"AWS":"*"},"Action":"kms:GenerateDataKey","Resource":"*",
     "Condition":{"StringEquals":{"kms:ViaService":"s3.us-east-1.amazonaws.com","kms:CallerAccount":["123456789012","999999999999"]}}},
    {"Sid":"NoDeletion","Effect":"Deny","Principal":"*","Action":"kms:ScheduleKeyDeletion","Resource":"*"}
]}"#;

#[test]
fn combinations() {
    let alice = user(ACCT, "alice");
    let carol = user(ACCT, "carol");
    let bob = user(OTHER, "bob");
    let eve = user(OTHER, "eve");
    authz_all(
        KEY_POLICY,
        &[
            // Same account, named directly: no identity policy needed.
            (&alice, "kms:Decrypt", &[], false, "allow:key:Alice"),
            // An explicit deny in an identity policy still wins.
            (&alice, "kms:Decrypt", &[DENY_DECRYPT], false, "deny:id0:IamNoDecrypt"),
            (&alice, "kms:Decrypt", &[ALLOW_KMS_ALL, DENY_DECRYPT], false, "deny:id1:IamNoDecrypt"),
            // Root delegation: carol needs an identity allow for this key.
            (&carol, "kms:Decrypt", &[], false, "deny:no-identity"),
            (&carol, "kms:Decrypt", &[ALLOW_KMS_ALL], false, "allow:both:Root+0:IamAll"),
            (&carol, "kms:Decrypt", &[OTHER_KEY_ONLY], false, "deny:no-identity"),
            (
                &carol,
                "kms:Decrypt",
                &[OTHER_KEY_ONLY, ALLOW_KMS_ALL],
                false,
                "allow:both:Root+1:IamAll",
            ),
            (&alice, "kms:DisableKey", &[ALLOW_KMS_ALL], false, "allow:both:Root+0:IamAll"),
            // Explicit deny in the key policy beats the root user, identity policies, grants.
            (&root(ACCT), "kms:ScheduleKeyDeletion", &[], false, "deny:key:NoDeletion"),
            (&alice, "kms:ScheduleKeyDeletion", &[ALLOW_KMS_ALL], true, "deny:key:NoDeletion"),
            (&carol, "kms:Decrypt", &[DENY_DECRYPT], true, "deny:id0:IamNoDecrypt"),
            (&root(ACCT), "kms:DisableKey", &[], false, "allow:root:Root"),
            // Cross-account, named directly: the identity side is needed too.
            (&bob, "kms:Decrypt", &[], false, "deny:no-identity"),
            (&bob, "kms:Decrypt", &[ALLOW_KMS_ALL], false, "allow:both:ExtBob+0:IamAll"),
            (&bob, "kms:Decrypt", &[OTHER_KEY_ONLY], false, "deny:no-identity"),
            (&bob, "kms:Encrypt", &[ALLOW_KMS_ALL], false, "deny:no-resource"),
            // Another principal of the external account is not named.
            (&eve, "kms:Decrypt", &[ALLOW_KMS_ALL], false, "deny:no-resource"),
            // The external account's root is not named either.
            (&root(OTHER), "kms:Decrypt", &[], false, "deny:no-resource"),
            // Grants allow, across accounts too.
            (&eve, "kms:Decrypt", &[], true, "allow:grant:g1"),
            (&carol, "kms:Decrypt", &[], true, "allow:grant:g1"),
            (&bob, "kms:Decrypt", &[], true, "allow:grant:g1"),
        ],
    );
    // The AWS-managed-key pattern: {"AWS":"*"} constrained by kms:CallerAccount and
    // kms:ViaService.
    let stranger = user("111111111111", "x");
    let via =
        |b: RequestContextBuilder| b.condition("kms:ViaService", "s3.us-east-1.amazonaws.com");
    for (caller, identity, want) in [
        (carol.as_str(), &[][..], "allow:key:ViaS3"),
        (bob.as_str(), &[][..], "deny:no-identity"),
        (bob.as_str(), &[ALLOW_KMS_ALL][..], "allow:both:ViaS3+0:IamAll"),
        (stranger.as_str(), &[ALLOW_KMS_ALL][..], "deny:no-resource"),
    ] {
        let got = authz(
            KEY_POLICY,
            identity,
            &GrantAllowance::None,
            via(call(caller, "kms:GenerateDataKey")),
        );
        assert_eq!(authz_summary(&got), want, "{caller}");
    }
    let without_via =
        authz(KEY_POLICY, &[], &GrantAllowance::None, call(&carol, "kms:GenerateDataKey"));
    assert_eq!(authz_summary(&without_via), "deny:no-identity");
}

#[test]
fn root_of_another_account() {
    // A key policy naming another account's root lets that root in without identity
    // policies (root users have every permission in their account).
    let policy = r#"{"Statement":{"Sid":"Ext","Effect":"Allow","Principal":{"AWS":"999999999999"},"Action":"kms:Decrypt","Resource":"*"}}"#;
    authz_all(
        policy,
        &[
            (&root(OTHER), "kms:Decrypt", &[], false, "allow:root:Ext"),
            (&user(OTHER, "u"), "kms:Decrypt", &[], false, "deny:no-identity"),
            (
                &session(OTHER, "R", "s"),
                "kms:Decrypt",
                &[ALLOW_KMS_ALL],
                false,
                "allow:both:Ext+0:IamAll",
            ),
            (&root(ACCT), "kms:Decrypt", &[], false, "deny:no-resource"),
        ],
    );
}

#[test]
fn grant_without_id() {
    let got = authz(
        r#"{"Statement":{"Effect":"Deny","Principal":"*","Action":"kms:Sign","Resource":"*"}}"#,
        &[],
        &GrantAllowance::Allowed { grant_id: None },
        call(&user(ACCT, "x"), "kms:Decrypt"),
    );
    assert_eq!(authz_summary(&got), "allow:grant:-");
    assert!(got.is_allowed());
    assert_eq!(got.deciding_statement(), None);
}

#[test]
fn deciding_statements() {
    let ctx = call(&user(ACCT, "alice"), "kms:Decrypt");
    let got = authz(KEY_POLICY, &[DENY_DECRYPT], &GrantAllowance::None, ctx);
    let (source, statement) = got.deciding_statement().unwrap();
    assert_eq!(source, PolicySource::IdentityPolicy(0));
    assert_eq!(statement, &StatementRef { index: 0, sid: Some("IamNoDecrypt".to_owned()) });
    assert_eq!(statement.to_string(), "statement 0 (Sid \"IamNoDecrypt\")");
    let got = authz(
        KEY_POLICY,
        &[ALLOW_KMS_ALL],
        &GrantAllowance::None,
        call(&user(ACCT, "carol"), "kms:Decrypt"),
    );
    let (source, statement) = got.deciding_statement().unwrap();
    assert_eq!((source, statement.index), (PolicySource::KeyPolicy, 0));
    assert_eq!(StatementRef { index: 3, sid: None }.to_string(), "statement 3");
}

#[test]
fn access_denied_messages() {
    let alice = user(ACCT, "alice");
    let rows: Vec<(RequestContextBuilder, &[&str], String)> = vec![
        (
            call(&user(ACCT, "carol"), "kms:Encrypt"),
            &[],
            format!("User: arn:aws:iam::123456789012:user/carol is not authorized to perform: kms:Encrypt on resource: {KEY} because no identity-based policy allows the kms:Encrypt action"),
        ),
        (
            call(&user(OTHER, "eve"), "kms:Decrypt"),
            &[ALLOW_KMS_ALL],
            format!("User: arn:aws:iam::999999999999:user/eve is not authorized to perform: kms:Decrypt on resource: {KEY} because no resource-based policy allows the kms:Decrypt action"),
        ),
        (
            call(&alice, "kms:ScheduleKeyDeletion"),
            &[],
            format!("User: arn:aws:iam::123456789012:user/alice is not authorized to perform: kms:ScheduleKeyDeletion on resource: {KEY} with an explicit deny in a resource-based policy"),
        ),
        (
            call(&alice, "kms:Decrypt"),
            &[DENY_DECRYPT],
            format!("User: arn:aws:iam::123456789012:user/alice is not authorized to perform: kms:Decrypt on resource: {KEY} with an explicit deny in an identity-based policy"),
        ),
        (
            call(&alice, "kms:Decrypt").resource_description("the resource associated with this ciphertext"),
            &[DENY_DECRYPT],
            "User: arn:aws:iam::123456789012:user/alice is not authorized to perform: kms:Decrypt on the resource associated with this ciphertext with an explicit deny in an identity-based policy".to_owned(),
        ),
        (
            call(&session(OTHER, "Worker", "w"), "kms:Decrypt").resource_description("the resource associated with this ciphertext"),
            &[],
            "User: arn:aws:sts::999999999999:assumed-role/Worker/w is not authorized to perform: kms:Decrypt on the resource associated with this ciphertext because no resource-based policy allows the kms:Decrypt action".to_owned(),
        ),
    ];
    for (b, identity, want) in rows {
        let ctx = b.build();
        let identity: Vec<Policy> =
            identity.iter().map(|p| parse(p, PolicyKind::Identity)).collect();
        let key = parse(KEY_POLICY, PolicyKind::Key);
        let got = authorize(&AuthzRequest {
            context: &ctx,
            key_policy: &key,
            identity_policies: &identity,
            grant: &GrantAllowance::None,
        });
        assert!(!got.is_allowed());
        assert_eq!(got.access_denied_message(&ctx), want);
    }
    let ctx = call(&alice, "kms:Decrypt").build();
    let allowed = AuthzDecision::Allowed(crate::AllowBasis::Grant { grant_id: None });
    assert_eq!(allowed.access_denied_message(&ctx), "");
}

#[test]
fn lockout_safety() {
    let admin = session(ACCT, "KeyAdmin", "ops");
    let alice = user(ACCT, "alice");
    let cases: &[(&str, &str, bool)] = &[
        (&default_key_policy(ACCT), &alice, true),
        (&default_key_policy(ACCT), &root(ACCT), true),
        (&default_key_policy(ACCT), &user(OTHER, "x"), false),
        (
            r#"{"Statement":{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:role/KeyAdmin"},"Action":"kms:Put*","Resource":"*"}}"#,
            &admin,
            true,
        ),
        (
            r#"{"Statement":{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:role/KeyAdmin"},"Action":"kms:Decrypt","Resource":"*"}}"#,
            &admin,
            false,
        ),
        (
            r#"{"Statement":{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:role/KeyAdmin"},"NotAction":"kms:PutKeyPolicy","Resource":"*"}}"#,
            &admin,
            false,
        ),
        (
            r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"kms:*","Resource":"*"},{"Effect":"Deny","Principal":"*","Action":"kms:PutKeyPolicy","Resource":"*"}]}"#,
            &admin,
            false,
        ),
        (
            r#"{"Statement":{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:user/alice"},"Action":"kms:*","Resource":"*"}}"#,
            &admin,
            false,
        ),
    ];
    for (policy, caller, want) in cases {
        let policy = parse(policy, PolicyKind::Key);
        // Whatever the caller is doing now (CreateKey), the check is about PutKeyPolicy.
        let ctx = call(caller, "kms:CreateKey").build();
        assert_eq!(lockout_safety_check(&policy, &ctx), *want, "{caller}");
        assert_eq!(ctx.action(), "kms:CreateKey");
    }
}

#[test]
fn default_policy_text() {
    let text = default_key_policy("111122223333");
    assert_eq!(
        text,
        r#"{
  "Version" : "2012-10-17",
  "Id" : "key-default-1",
  "Statement" : [ {
    "Sid" : "Enable IAM User Permissions",
    "Effect" : "Allow",
    "Principal" : {
      "AWS" : "arn:aws:iam::111122223333:root"
    },
    "Action" : "kms:*",
    "Resource" : "*"
  } ]
}"#
    );
    let policy = parse(&text, PolicyKind::Key);
    assert_eq!(policy.version(), Some("2012-10-17"));
    assert_eq!(policy.id(), Some("key-default-1"));
    assert_eq!(policy.statement_count(), 1);
}

#[test]
fn reencrypt_checks_both_actions() {
    // ReEncrypt needs kms:ReEncryptFrom on the source key and kms:ReEncryptTo on the
    // destination: with_action derives the second request from the first.
    let policy = parse(
        r#"{"Statement":{"Sid":"From","Effect":"Allow","Principal":"*","Action":"kms:ReEncryptFrom","Resource":"*"}}"#,
        PolicyKind::Key,
    );
    let from = call(&user(ACCT, "alice"), "kms:ReEncryptFrom").build();
    let to = from.with_action("kms:ReEncryptTo");
    assert!(matches!(evaluate_policy(&policy, &from), Decision::Allow { .. }));
    assert_eq!(evaluate_policy(&policy, &to), Decision::NoMatch);
    assert_eq!(to.principal_arn(), from.principal_arn());
}

#[test]
fn identity_document_as_key_policy_fails_closed() {
    let ctx = call(&user(ACCT, "alice"), "kms:Decrypt").build();
    let wrong = parse(ALLOW_KMS_ALL, PolicyKind::Identity);
    let got = authorize(&AuthzRequest {
        context: &ctx,
        key_policy: &wrong,
        identity_policies: &[],
        grant: &GrantAllowance::None,
    });
    assert_eq!(authz_summary(&got), "deny:no-resource");
}
