//! Statement semantics of one policy: Deny over Allow, the Not* elements, action
//! wildcards and case, and every principal form.

use super::*;

#[test]
fn deny_overrides_allow() {
    let policy = r#"{"Version":"2012-10-17","Statement":[
        {"Sid":"AllowAll","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:user/alice"},"Action":"kms:*","Resource":"*"},
        {"Sid":"NoDelete","Effect":"Deny","Principal":"*","Action":["kms:ScheduleKeyDeletion","kms:Delete*"],"Resource":"*"},
        {"Sid":"NoPlainHttp","Effect":"Deny","Principal":"*","Action":"kms:*","Resource":"*","Condition":{"Bool":{"aws:SecureTransport":"false"}}}
    ]}"#;
    let alice = user(ACCT, "alice");
    check_all(
        policy,
        PolicyKind::Key,
        &[
            (&alice, "kms:Decrypt", plain, "allow:AllowAll"),
            (&alice, "kms:ScheduleKeyDeletion", plain, "deny:NoDelete"),
            (&alice, "kms:DeleteAlias", plain, "deny:NoDelete"),
            (&alice, "kms:deleteimportedkeymaterial", plain, "deny:NoDelete"),
            (&alice, "kms:Decrypt", |b| b.secure_transport(false), "deny:NoPlainHttp"),
            (&alice, "kms:Decrypt", |b| b.secure_transport(true), "allow:AllowAll"),
            (&user(ACCT, "bob"), "kms:Decrypt", plain, "none"),
            (&user(ACCT, "bob"), "kms:ScheduleKeyDeletion", plain, "deny:NoDelete"),
        ],
    );
    // The first matching Deny in document order is reported, wherever the Allow is.
    let order = r#"{"Statement":[
        {"Effect":"Deny","Principal":"*","Action":"kms:Encrypt","Resource":"*"},
        {"Sid":"D2","Effect":"Deny","Principal":"*","Action":"kms:*","Resource":"*"},
        {"Sid":"A","Effect":"Allow","Principal":"*","Action":"kms:*","Resource":"*"}]}"#;
    check(order, call(&alice, "kms:Encrypt"), "deny:#0");
    check(order, call(&alice, "kms:Decrypt"), "deny:D2");
}

#[test]
fn actions_wildcards_and_case() {
    let policy = |action: &str| {
        format!(
            r#"{{"Statement":{{"Effect":"Allow","Principal":"*","Action":{action},"Resource":"*"}}}}"#
        )
    };
    let alice = user(ACCT, "alice");
    for (action, called, want) in [
        (r#""kms:*""#, "kms:Decrypt", true),
        (r#""*""#, "kms:Decrypt", true),
        (r#""kms:*""#, "s3:GetObject", false),
        (r#""kms:ReEncrypt*""#, "kms:ReEncryptFrom", true),
        (r#""kms:ReEncrypt*""#, "kms:ReEncryptTo", true),
        (r#""kms:ReEncrypt*""#, "kms:Encrypt", false),
        (r#""kms:GenerateDataKey*""#, "kms:GenerateDataKey", true),
        (r#""kms:GenerateDataKey*""#, "kms:GenerateDataKeyWithoutPlaintext", true),
        (r#""kms:GenerateDataKey*""#, "kms:GenerateDataKeyPair", true),
        (r#""kms:GenerateDataKey*""#, "kms:GenerateRandom", false),
        (r#""kms:GenerateDataKey""#, "kms:GenerateDataKeyPair", false),
        (r#""kms:Decrypt""#, "kms:decrypt", true),
        (r#""kms:Decrypt""#, "KMS:DECRYPT", true),
        (r#""KMS:decrypt""#, "kms:Decrypt", true),
        (r#""kms:Decrypt""#, "kms:Decrypt2", false),
        (r#""kms:Get*""#, "kms:GetKeyPolicy", true),
        (r#""kms:Get*""#, "kms:GenerateMac", false),
        (r#""kms:*Grant*""#, "kms:ListRetirableGrants", true),
        (r#""kms:?ncrypt""#, "kms:Encrypt", true),
        (r#""kms:?ncrypt""#, "kms:ReEncrypt", false),
        (r#"["kms:Encrypt","kms:Decrypt"]"#, "kms:Decrypt", true),
        (r#"["kms:Encrypt","kms:Decrypt"]"#, "kms:Sign", false),
    ] {
        let got = matches!(
            evaluate_policy(
                &parse(&policy(action), PolicyKind::Key),
                &call(&alice, called).build()
            ),
            Decision::Allow { .. }
        );
        assert_eq!(got, want, "{action} vs {called}");
    }
}

#[test]
fn not_action() {
    // "Everything but key management" for a user, and a deny of everything except use.
    let policy = r#"{"Statement":[
        {"Sid":"AllButAdmin","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:user/alice"},
         "NotAction":["kms:Put*","kms:ScheduleKeyDeletion","kms:Disable*"],"Resource":"*"},
        {"Sid":"OnlyUse","Effect":"Deny","Principal":{"AWS":"arn:aws:iam::123456789012:user/bob"},
         "NotAction":["kms:Encrypt","kms:Decrypt","kms:ReEncrypt*","kms:GenerateDataKey*"],"Resource":"*"},
        {"Sid":"BobAll","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:user/bob"},"Action":"*","Resource":"*"}]}"#;
    let alice = user(ACCT, "alice");
    let bob = user(ACCT, "bob");
    check_all(
        policy,
        PolicyKind::Key,
        &[
            (&alice, "kms:Decrypt", plain, "allow:AllButAdmin"),
            (&alice, "kms:CreateGrant", plain, "allow:AllButAdmin"),
            (&alice, "kms:PutKeyPolicy", plain, "none"),
            (&alice, "kms:putkeypolicy", plain, "none"),
            (&alice, "kms:DisableKey", plain, "none"),
            (&bob, "kms:ReEncryptTo", plain, "allow:BobAll"),
            (&bob, "kms:GenerateDataKeyPair", plain, "allow:BobAll"),
            (&bob, "kms:CreateGrant", plain, "deny:OnlyUse"),
            (&bob, "kms:ScheduleKeyDeletion", plain, "deny:OnlyUse"),
        ],
    );
}

#[test]
fn principal_forms() {
    let policy = |principal: &str| {
        format!(
            r#"{{"Statement":{{"Sid":"S","Effect":"Allow","Principal":{principal},"Action":"kms:*","Resource":"*"}}}}"#
        )
    };
    let alice = user(ACCT, "alice");
    let sess = session(ACCT, "App", "i-1");
    let r = root(ACCT);
    let s3 = "s3.amazonaws.com";
    let rows: &[(&str, &str, &str)] = &[
        (r#""*""#, &alice, "allow:S"),
        (r#""*""#, s3, "allow:S"),
        (r#""*""#, &r, "allow:S"),
        (r#"{"AWS":"*"}"#, &alice, "allow:S"),
        (r#"{"AWS":"*"}"#, &sess, "allow:S"),
        (r#"{"AWS":"*"}"#, s3, "none"),
        (r#"{"AWS":"123456789012"}"#, &alice, "account:S"),
        (r#"{"AWS":"123456789012"}"#, &r, "account:S"),
        (r#"{"AWS":"123456789012"}"#, &sess, "account:S"),
        (r#"{"AWS":"999999999999"}"#, &alice, "none"),
        (r#"{"AWS":"arn:aws:iam::123456789012:root"}"#, &r, "account:S"),
        (r#"{"AWS":"arn:aws:iam::123456789012:root"}"#, s3, "none"),
        (r#"{"AWS":"arn:aws:iam::123456789012:user/alice"}"#, &alice, "allow:S"),
        (r#"{"AWS":"arn:aws:iam::123456789012:user/alice"}"#, &r, "none"),
        (r#"{"AWS":"arn:aws:iam::999999999999:user/alice"}"#, &alice, "none"),
        (r#"{"AWS":"arn:aws:iam::123456789012:role/App"}"#, &sess, "allow:S"),
        (r#"{"AWS":"arn:aws:iam::123456789012:role/service-role/App"}"#, &sess, "allow:S"),
        (r#"{"AWS":"arn:aws:iam::123456789012:role/App2"}"#, &sess, "none"),
        (r#"{"AWS":"arn:aws:iam::999999999999:role/App"}"#, &sess, "none"),
        (
            r#"{"AWS":"arn:aws:iam::123456789012:role/App"}"#,
            "arn:aws:iam::123456789012:role/App",
            "allow:S",
        ),
        (r#"{"AWS":"arn:aws:sts::123456789012:assumed-role/App/i-1"}"#, &sess, "allow:S"),
        (r#"{"AWS":"arn:aws:sts::123456789012:assumed-role/App/i-2"}"#, &sess, "none"),
        (r#"{"AWS":"arn:aws:iam::123456789012:user/App"}"#, &sess, "none"),
        (
            r#"{"AWS":["arn:aws:iam::999999999999:root","arn:aws:iam::123456789012:user/alice"]}"#,
            &alice,
            "allow:S",
        ),
        (
            r#"{"AWS":["arn:aws:iam::123456789012:root","arn:aws:iam::123456789012:user/alice"]}"#,
            &alice,
            "allow:S",
        ),
        (
            r#"{"AWS":"arn:aws:iam::123456789012:user/alice","Service":"s3.amazonaws.com"}"#,
            s3,
            "allow:S",
        ),
        (r#"{"Service":"s3.amazonaws.com"}"#, s3, "allow:S"),
        (r#"{"Service":"s3.amazonaws.com"}"#, "logs.amazonaws.com", "none"),
        (r#"{"Service":"s3.amazonaws.com"}"#, &alice, "none"),
    ];
    for (principal, caller, want) in rows {
        check(&policy(principal), call(caller, "kms:Decrypt"), want);
    }
    // A web-identity session is a role session.
    let web = RequestContext::builder(
        "arn:aws:sts::123456789012:assumed-role/WebApp/user@example.com",
        PrincipalType::WebIdentity,
        "kms:Decrypt",
        KEY,
    );
    check(&policy(r#"{"AWS":"arn:aws:iam::123456789012:role/WebApp"}"#), web, "allow:S");
}

#[test]
fn deny_naming_an_account_covers_its_principals() {
    let policy = r#"{"Statement":[
        {"Sid":"Everyone","Effect":"Allow","Principal":"*","Action":"kms:*","Resource":"*"},
        {"Sid":"NotThem","Effect":"Deny","Principal":{"AWS":"999999999999"},"Action":"kms:*","Resource":"*"}]}"#;
    check(policy, call(&user(OTHER, "x"), "kms:Decrypt"), "deny:NotThem");
    check(policy, call(&session(OTHER, "R", "s"), "kms:Decrypt"), "deny:NotThem");
    check(policy, call(&root(OTHER), "kms:Decrypt"), "deny:NotThem");
    check(policy, call(&user(ACCT, "x"), "kms:Decrypt"), "allow:Everyone");
}

#[test]
fn principal_scope_prefers_the_named_principal() {
    let policy = r#"{"Statement":[
        {"Sid":"Root","Effect":"Allow","Principal":{"AWS":"123456789012"},"Action":"kms:*","Resource":"*"},
        {"Sid":"Alice","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:user/alice"},"Action":"kms:Decrypt","Resource":"*"}]}"#;
    check(policy, call(&user(ACCT, "alice"), "kms:Decrypt"), "allow:Alice");
    check(policy, call(&user(ACCT, "alice"), "kms:Encrypt"), "account:Root");
}

#[test]
fn not_principal() {
    // Deny everyone except the listed identities: a session is excluded only when its
    // account, its role and the session itself are all listed.
    let policy = |listed: &str| {
        format!(
            r#"{{"Statement":[
            {{"Sid":"Allow","Effect":"Allow","Principal":"*","Action":"kms:*","Resource":"*"}},
            {{"Sid":"DenyOthers","Effect":"Deny","NotPrincipal":{{"AWS":{listed}}},"Action":"kms:*","Resource":"*"}}]}}"#
        )
    };
    let sess = session(ACCT, "Admin", "ops");
    let all_three = r#"["arn:aws:iam::123456789012:root","arn:aws:iam::123456789012:role/Admin","arn:aws:sts::123456789012:assumed-role/Admin/ops"]"#;
    let role_only = r#""arn:aws:iam::123456789012:role/Admin""#;
    let user_and_account = r#"["123456789012","arn:aws:iam::123456789012:user/alice"]"#;
    let rows: &[(&str, &str, &str)] = &[
        (all_three, &sess, "allow:Allow"),
        (all_three, &session(ACCT, "Admin", "other"), "deny:DenyOthers"),
        (all_three, &user(ACCT, "alice"), "deny:DenyOthers"),
        (all_three, &root(ACCT), "allow:Allow"),
        (role_only, &sess, "deny:DenyOthers"),
        (user_and_account, &user(ACCT, "alice"), "allow:Allow"),
        (user_and_account, &user(ACCT, "bob"), "deny:DenyOthers"),
        (user_and_account, &user(OTHER, "alice"), "deny:DenyOthers"),
        (r#""arn:aws:iam::123456789012:user/alice""#, &user(ACCT, "alice"), "deny:DenyOthers"),
        (r#""*""#, &user(ACCT, "alice"), "allow:Allow"),
    ];
    for (listed, caller, want) in rows {
        check(&policy(listed), call(caller, "kms:Decrypt"), want);
    }
    // NotPrincipal with Allow grants everyone not listed.
    let allow_others = r#"{"Statement":{"Sid":"N","Effect":"Allow","NotPrincipal":{"Service":"s3.amazonaws.com"},"Action":"kms:Decrypt","Resource":"*"}}"#;
    check(allow_others, call("s3.amazonaws.com", "kms:Decrypt"), "none");
    check(allow_others, call("logs.amazonaws.com", "kms:Decrypt"), "allow:N");
    check(allow_others, call(&user(OTHER, "x"), "kms:Decrypt"), "allow:N");
}

#[test]
fn identity_policy_ignores_principal_and_uses_sids() {
    let policy = r#"{"Version":"2012-10-17","Statement":[
        {"Sid":"Use","Effect":"Allow","Action":["kms:Encrypt","kms:Decrypt"],"Resource":"arn:aws:kms:*:123456789012:key/*"},
        {"Effect":"Deny","Action":"kms:Decrypt","Resource":"*","Condition":{"StringNotEquals":{"kms:EncryptionContext:Department":"Finance"}}}]}"#;
    check_all(
        policy,
        PolicyKind::Identity,
        &[
            (&user(ACCT, "alice"), "kms:Encrypt", plain, "allow:Use"),
            (&user(OTHER, "alice"), "kms:Encrypt", plain, "allow:Use"),
            (&user(ACCT, "alice"), "kms:Decrypt", plain, "deny:#1"),
            (
                &user(ACCT, "alice"),
                "kms:Decrypt",
                |b| b.encryption_context([("Department", "Finance")]),
                "allow:Use",
            ),
            (
                &user(ACCT, "alice"),
                "kms:Decrypt",
                |b| b.encryption_context([("Department", "HR")]),
                "deny:#1",
            ),
            (&user(ACCT, "alice"), "kms:Sign", plain, "none"),
        ],
    );
}
