//! Authorization through aws-sdk-kms, as AWS decides it: identity policies for the users
//! an account's default key policy delegates to, key policies that name other accounts,
//! grants with encryption-context constraints, and changes that take effect on the very
//! next call — including through the gateway's decision cache when the change reaches the
//! policy service without passing this gateway.

use std::time::Duration;

use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{GrantConstraints, GrantOperation};
use serde_json::json;

use crate::sandbox::{error_code, error_message, Sandbox, ACCOUNT_A, ACCOUNT_B, REGION};

const APP: &str = "arn:aws:iam::111122223333:user/app";
const DEV_A: &str = "arn:aws:iam::111122223333:user/dev";
const DEV_B: &str = "arn:aws:iam::444455556666:user/dev";

fn key_arn(account: &str, key_id: &str) -> String {
    format!("arn:aws:kms:{REGION}:{account}:key/{key_id}")
}

#[tokio::test]
async fn identity_policies_decide_for_the_accounts_users() {
    let sb = Sandbox::start_with_users(&[APP]).await;
    let app = sb.kms_as(APP);
    let denied = error_message(app.create_key().send().await);
    assert_eq!(
        denied,
        format!(
            "User: {APP} is not authorized to perform: kms:CreateKey on resource: * because no \
             identity-based policy allows the kms:CreateKey action"
        )
    );
    let key = sb.create_key(ACCOUNT_A).await;
    let arn = key_arn(ACCOUNT_A, &key);
    let encrypt = |dept: &'static str| {
        app.encrypt()
            .key_id(&key)
            .plaintext(Blob::new(b"payload".to_vec()))
            .encryption_context("dept", dept)
            .send()
    };
    let denied = error_message(encrypt("finance").await);
    assert_eq!(
        denied,
        format!(
            "User: {APP} is not authorized to perform: kms:Encrypt on resource: {arn} because no \
             identity-based policy allows the kms:Encrypt action"
        ),
        "the default key policy delegates to IAM; no identity policy allows yet"
    );

    sb.attach(
        APP,
        "finance-encrypt",
        json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
            "Action": "kms:Encrypt", "Resource": arn,
            "Condition": {"StringEquals": {"kms:EncryptionContext:dept": "finance"}}}]}),
    )
    .await;
    encrypt("finance").await.expect("the identity policy allows finance");
    assert_eq!(error_code(encrypt("hr").await), "AccessDeniedException");
    assert_eq!(
        error_code(app.decrypt().ciphertext_blob(Blob::new(vec![1; 64])).send().await),
        "InvalidCiphertextException",
        "a ciphertext naming no key is invalid before anything is authorized"
    );

    let (status, listed) = sb.admin("ListPrincipalPolicies", json!({"PrincipalArn": APP})).await;
    assert_eq!((status, listed.contains("finance-encrypt")), (200, true), "{listed}");
    let (status, body) = sb
        .admin(
            "DeletePrincipalPolicy",
            json!({"PrincipalArn": APP, "PolicyName": "finance-encrypt"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        error_code(encrypt("finance").await),
        "AccessDeniedException",
        "a deleted identity policy stops allowing on the next call"
    );

    // A user cannot widen its own rights: kms:* does not include the IAM actions.
    let widen = json!({"PrincipalArn": DEV_A, "PolicyName": "more", "PolicyDocument":
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#});
    let (status, body) = sb.admin_as(DEV_A, ACCOUNT_A, "PutPrincipalPolicy", widen.clone()).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("not authorized to perform: iam:PutUserPolicy"), "{body}");
    // The account root may; another account's principal may not.
    let root = format!("arn:aws:iam::{ACCOUNT_A}:root");
    let (status, body) = sb.admin_as(&root, ACCOUNT_A, "PutPrincipalPolicy", widen.clone()).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = sb
        .admin_as(DEV_B, ACCOUNT_B, "ListPrincipalPolicies", json!({"PrincipalArn": DEV_A}))
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("AccessDeniedException"), "{body}");

    // Denied calls are in the audit log with the principal who tried.
    let events = sb.events(ACCOUNT_A).await;
    let denial = events
        .iter()
        .find(|e| e["eventName"] == "Encrypt" && e["errorCode"] == "AccessDenied")
        .expect("the denied Encrypt is recorded");
    assert_eq!(denial["userIdentity"]["arn"], APP);
    assert!(denial["errorMessage"].as_str().unwrap().contains("kms:Encrypt"));
}

#[tokio::test]
async fn key_policy_changes_take_effect_on_the_next_call() {
    let sb = Sandbox::start().await;
    let kms = sb.kms(ACCOUNT_A);
    let key = sb.create_key(ACCOUNT_A).await;
    let encrypt = || kms.encrypt().key_id(&key).plaintext(Blob::new(b"x".to_vec())).send();
    encrypt().await.expect("allowed and now cached");
    encrypt().await.expect("allowed from the cache");
    let deny_encrypt = json!({"Version": "2012-10-17", "Statement": [
        {"Sid": "root", "Effect": "Allow", "Principal": {"AWS": format!("arn:aws:iam::{ACCOUNT_A}:root")},
         "Action": "kms:*", "Resource": "*"},
        {"Sid": "no-encrypt", "Effect": "Deny", "Principal": {"AWS": DEV_A},
         "Action": "kms:Encrypt", "Resource": "*"}]});
    kms.put_key_policy().key_id(&key).policy(deny_encrypt.to_string()).send().await.unwrap();
    let denied = error_message(encrypt().await);
    assert!(
        denied.ends_with("with an explicit deny in a resource-based policy"),
        "an explicit deny wins at once: {denied}"
    );
    kms.describe_key().key_id(&key).send().await.expect("other actions still allowed");

    // The same through the bus, past this gateway: only the policy service's change
    // announcement can make the gateway forget its cached allow.
    let second = sb.create_key(ACCOUNT_A).await;
    kms.encrypt().key_id(&second).plaintext(Blob::new(b"x".to_vec())).send().await.unwrap();
    let bus = kms_bus::Bus::connect(&sb.nats.url(), Duration::from_secs(5)).await.unwrap();
    let caller = kms_proto::v1::CallerContext {
        account: ACCOUNT_A.into(),
        region: REGION.into(),
        principal: format!("arn:aws:iam::{ACCOUNT_A}:root"),
        request_id: "e2e".into(),
    };
    bus.call::<kms_bus::policy::PutPolicy>(
        &kms_bus::CallContext { request_id: "e2e".into() },
        &kms_proto::v1::PutPolicyRequest {
            caller: Some(caller),
            key_id: second.clone(),
            policy_name: "default".into(),
            document: deny_encrypt.to_string(),
        },
    )
    .await
    .unwrap();
    assert_eq!(
        error_code(kms.encrypt().key_id(&second).plaintext(Blob::new(b"x".to_vec())).send().await),
        "AccessDeniedException",
        "the announcement reached the gateway before the next call"
    );
}

#[tokio::test]
async fn cross_account_use_needs_both_sides() {
    let sb = Sandbox::start_with_users(&[]).await;
    let (a, b) = (sb.kms(ACCOUNT_A), sb.kms(ACCOUNT_B));
    let key = sb.create_key(ACCOUNT_A).await;
    let arn = key_arn(ACCOUNT_A, &key);
    let encrypt_from_b =
        || b.encrypt().key_id(&arn).plaintext(Blob::new(b"shared".to_vec())).send();
    let denied = error_message(encrypt_from_b().await);
    assert_eq!(
        denied,
        format!(
            "User: {DEV_B} is not authorized to perform: kms:Encrypt on resource: {arn} because no \
             resource-based policy allows the kms:Encrypt action"
        )
    );
    assert_eq!(
        error_code(b.encrypt().key_id(&key).plaintext(Blob::new(b"x".to_vec())).send().await),
        "NotFoundException",
        "a bare key id is looked up in the caller's own account"
    );
    assert_eq!(
        error_code(b.disable_key().key_id(&arn).send().await),
        "NotFoundException",
        "management operations never cross accounts"
    );

    let shared = json!({"Version": "2012-10-17", "Statement": [
        {"Sid": "owner", "Effect": "Allow", "Principal": {"AWS": format!("arn:aws:iam::{ACCOUNT_A}:root")},
         "Action": "kms:*", "Resource": "*"},
        {"Sid": "partner", "Effect": "Allow", "Principal": {"AWS": format!("arn:aws:iam::{ACCOUNT_B}:root")},
         "Action": ["kms:Encrypt", "kms:Decrypt", "kms:DescribeKey"], "Resource": "*"}]});
    a.put_key_policy().key_id(&key).policy(shared.to_string()).send().await.unwrap();
    let blob = encrypt_from_b().await.expect("key policy and B's identity policy allow");
    let back = b
        .decrypt()
        .ciphertext_blob(blob.ciphertext_blob().unwrap().clone())
        .send()
        .await
        .expect("B decrypts its ciphertext under A's key");
    assert_eq!(back.plaintext().unwrap().as_ref(), b"shared");
    assert_eq!(back.key_id(), Some(arn.as_str()));
    let described = b.describe_key().key_id(&arn).send().await.unwrap();
    assert_eq!(described.key_metadata().unwrap().aws_account_id(), Some(ACCOUNT_A));

    // B's side: without its identity policy the key policy alone is not enough.
    let (status, body) = sb
        .admin(
            "DeletePrincipalPolicy",
            json!({"PrincipalArn": DEV_B, "PolicyName": "kms-full-access"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let denied = error_message(encrypt_from_b().await);
    assert!(
        denied.ends_with("because no identity-based policy allows the kms:Encrypt action"),
        "{denied}"
    );
    let denied = error_message(
        b.decrypt().ciphertext_blob(blob.ciphertext_blob().unwrap().clone()).send().await,
    );
    assert!(
        denied.contains("kms:Decrypt on the resource associated with this ciphertext"),
        "{denied}"
    );
}

/// A grant whose grantee is another account's root: that account's principals use it as
/// far as their own identity policies allow, as AWS delegates it; the key policy does not
/// name the account.
#[tokio::test]
async fn a_grant_to_an_account_is_delegated_to_its_identity_policies() {
    let sb = Sandbox::start_with_users(&[]).await;
    let (a, b) = (sb.kms(ACCOUNT_A), sb.kms(ACCOUNT_B));
    let key = sb.create_key(ACCOUNT_A).await;
    let arn = key_arn(ACCOUNT_A, &key);
    let encrypt_from_b =
        || b.encrypt().key_id(&arn).plaintext(Blob::new(b"via grant".to_vec())).send();
    assert_eq!(error_code(encrypt_from_b().await), "AccessDeniedException");
    a.create_grant()
        .key_id(&key)
        .grantee_principal(format!("arn:aws:iam::{ACCOUNT_B}:root"))
        .operations(GrantOperation::Encrypt)
        .operations(GrantOperation::Decrypt)
        .send()
        .await
        .unwrap();
    let sealed = encrypt_from_b().await.expect("B's user: the grant and its identity policy allow");
    let opened = b
        .decrypt()
        .ciphertext_blob(sealed.ciphertext_blob().unwrap().clone())
        .send()
        .await
        .unwrap();
    assert_eq!(opened.plaintext().unwrap().as_ref(), b"via grant");
    assert_eq!(
        error_code(b.describe_key().key_id(&arn).send().await),
        "AccessDeniedException",
        "only the granted operations"
    );
    // Without an identity policy that allows it, the grant to the account is not enough.
    let (status, body) = sb
        .admin(
            "DeletePrincipalPolicy",
            json!({"PrincipalArn": DEV_B, "PolicyName": "kms-full-access"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let denied = error_message(encrypt_from_b().await);
    assert!(denied.starts_with(&format!("User: {DEV_B} is not authorized")), "{denied}");
}

#[tokio::test]
async fn grants_allow_what_they_say_until_revoked() {
    let sb = Sandbox::start_with_users(&[APP]).await;
    let (dev, app) = (sb.kms(ACCOUNT_A), sb.kms_as(APP));
    let key = sb.create_key(ACCOUNT_A).await;
    let seal = |dept: &'static str| {
        dev.encrypt()
            .key_id(&key)
            .plaintext(Blob::new(dept.as_bytes().to_vec()))
            .encryption_context("dept", dept)
            .send()
    };
    let finance = seal("finance").await.unwrap().ciphertext_blob.unwrap();
    let hr = seal("hr").await.unwrap().ciphertext_blob.unwrap();
    let open = |blob: &Blob, dept: &'static str| {
        app.decrypt().ciphertext_blob(blob.clone()).encryption_context("dept", dept).send()
    };
    assert_eq!(error_code(open(&finance, "finance").await), "AccessDeniedException");

    let constraint =
        GrantConstraints::builder().encryption_context_subset("dept", "finance").build();
    let grant = dev
        .create_grant()
        .key_id(&key)
        .grantee_principal(APP)
        .operations(GrantOperation::Decrypt)
        .operations(GrantOperation::RetireGrant)
        .constraints(constraint.clone())
        .name("finance-reader")
        .send()
        .await
        .unwrap();
    let grant_id = grant.grant_id().unwrap().to_owned();
    assert_eq!(grant_id.len(), 64);
    assert_eq!(
        open(&finance, "finance").await.unwrap().plaintext().unwrap().as_ref(),
        b"finance",
        "the grant allows at once"
    );
    assert_eq!(
        error_code(open(&hr, "hr").await),
        "AccessDeniedException",
        "the constraint keeps other contexts out"
    );
    assert_eq!(
        error_code(app.encrypt().key_id(&key).plaintext(Blob::new(b"x".to_vec())).send().await),
        "AccessDeniedException",
        "only the granted operations"
    );

    let again = dev
        .create_grant()
        .key_id(&key)
        .grantee_principal(APP)
        .operations(GrantOperation::RetireGrant)
        .operations(GrantOperation::Decrypt)
        .constraints(constraint)
        .name("finance-reader")
        .send()
        .await
        .unwrap();
    assert_eq!(again.grant_id(), Some(grant_id.as_str()), "same name and terms: same grant");
    let listed = dev.list_grants().key_id(&key).send().await.unwrap();
    assert_eq!(listed.grants().len(), 1);
    let shown = &listed.grants()[0];
    assert_eq!(shown.grantee_principal(), Some(APP));
    assert_eq!(shown.issuing_account(), Some(format!("arn:aws:iam::{ACCOUNT_A}:root").as_str()));
    assert_eq!(
        shown.constraints().unwrap().encryption_context_subset().unwrap().get("dept"),
        Some(&"finance".to_owned())
    );

    dev.revoke_grant().key_id(&key).grant_id(&grant_id).send().await.unwrap();
    assert_eq!(
        error_code(open(&finance, "finance").await),
        "AccessDeniedException",
        "a revoked grant stops at the next call, cached allow or not"
    );
    assert_eq!(
        error_code(dev.revoke_grant().key_id(&key).grant_id(&grant_id).send().await),
        "NotFoundException"
    );

    // Retiring: the grantee may retire a grant that allows RetireGrant, by its token.
    let token = dev
        .create_grant()
        .key_id(&key)
        .grantee_principal(APP)
        .retiring_principal(DEV_A)
        .operations(GrantOperation::RetireGrant)
        .operations(GrantOperation::DescribeKey)
        .send()
        .await
        .unwrap()
        .grant_token
        .unwrap();
    app.describe_key().key_id(&key).send().await.expect("granted DescribeKey");
    let retirable = dev.list_retirable_grants().retiring_principal(DEV_A).send().await.unwrap();
    assert_eq!(retirable.grants().len(), 1);
    app.retire_grant().grant_token(&token).send().await.expect("the grantee retires it");
    assert_eq!(error_code(app.describe_key().key_id(&key).send().await), "AccessDeniedException");
    assert!(dev.list_grants().key_id(&key).send().await.unwrap().grants().is_empty());

    // Refusals as AWS gives them.
    assert_eq!(
        error_code(
            dev.create_grant()
                .key_id(&key)
                .grantee_principal(APP)
                .operations(GrantOperation::Sign)
                .send()
                .await
        ),
        "ValidationException",
        "Sign is not an operation of a symmetric key"
    );
    assert_eq!(
        error_code(
            dev.encrypt()
                .key_id(&key)
                .plaintext(Blob::new(b"x".to_vec()))
                .grant_tokens("not-a-token")
                .send()
                .await
        ),
        "InvalidGrantTokenException"
    );
    assert_eq!(
        error_code(
            dev.create_grant()
                .key_id(&key)
                .grantee_principal(APP)
                .operations(GrantOperation::Decrypt)
                .dry_run(true)
                .send()
                .await
        ),
        "DryRunOperationException"
    );
    assert!(dev.list_grants().key_id(&key).send().await.unwrap().grants().is_empty());

    // A grant works across accounts without any key policy change.
    let arn = key_arn(ACCOUNT_A, &key);
    dev.create_grant()
        .key_id(&key)
        .grantee_principal(DEV_B)
        .operations(GrantOperation::Encrypt)
        .send()
        .await
        .unwrap();
    sb.kms(ACCOUNT_B)
        .encrypt()
        .key_id(&arn)
        .plaintext(Blob::new(b"via grant".to_vec()))
        .send()
        .await
        .expect("the grant lets the other account's user encrypt");
}

/// `kms:ResourceAliases` is the key's aliases at the time of the call: creating, moving
/// or deleting an alias changes what the policy allows on the very next call.
#[tokio::test]
async fn resource_aliases_follow_the_keys_aliases() {
    let sb = Sandbox::start_with_users(&[APP]).await;
    let (dev, app) = (sb.kms(ACCOUNT_A), sb.kms_as(APP));
    let key = sb.create_key(ACCOUNT_A).await;
    let other = sb.create_key(ACCOUNT_A).await;
    let policy = json!({"Version": "2012-10-17", "Statement": [
        {"Sid": "owner", "Effect": "Allow", "Principal": {"AWS": format!("arn:aws:iam::{ACCOUNT_A}:root")},
         "Action": "kms:*", "Resource": "*"},
        {"Sid": "finance keys", "Effect": "Allow", "Principal": {"AWS": APP},
         "Action": "kms:Encrypt", "Resource": "*",
         "Condition": {"ForAnyValue:StringLike": {"kms:ResourceAliases": "alias/finance-*"}}}]});
    dev.put_key_policy().key_id(&key).policy(policy.to_string()).send().await.unwrap();
    let encrypt = || app.encrypt().key_id(&key).plaintext(Blob::new(b"q3".to_vec())).send();
    assert_eq!(error_code(encrypt().await), "AccessDeniedException", "no alias yet");

    dev.create_alias()
        .alias_name("alias/finance-reports")
        .target_key_id(&key)
        .send()
        .await
        .unwrap();
    encrypt().await.expect("the key now has a finance alias");
    dev.update_alias()
        .alias_name("alias/finance-reports")
        .target_key_id(&other)
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(encrypt().await), "AccessDeniedException", "the alias moved away");
    dev.create_alias().alias_name("alias/finance-2027").target_key_id(&key).send().await.unwrap();
    encrypt().await.expect("another finance alias");
    dev.delete_alias().alias_name("alias/finance-2027").send().await.unwrap();
    assert_eq!(error_code(encrypt().await), "AccessDeniedException", "the alias is gone");
}

/// The seed's service-bound conditions, as AWS treats a direct call: no AWS service stands
/// in front of this one, so `kms:ViaService` is absent and a grant made by the caller
/// itself is not for an AWS resource (`kms:GrantIsForAWSResource` is false).
#[tokio::test]
async fn service_bound_conditions_refuse_direct_calls() {
    let sb = Sandbox::start_with_users(&[APP]).await;
    let (dev, app) = (sb.kms(ACCOUNT_A), sb.kms_as(APP));
    let key = sb.create_key(ACCOUNT_A).await;
    let owner = json!({"Sid": "owner", "Effect": "Allow",
        "Principal": {"AWS": format!("arn:aws:iam::{ACCOUNT_A}:root")}, "Action": "kms:*", "Resource": "*"});
    let put = |statements: serde_json::Value| {
        let policy = json!({"Version": "2012-10-17", "Statement": statements});
        dev.put_key_policy().key_id(&key).policy(policy.to_string()).send()
    };
    let encrypt = || app.encrypt().key_id(&key).plaintext(Blob::new(b"x".to_vec())).send();
    let grant = || {
        app.create_grant()
            .key_id(&key)
            .grantee_principal(DEV_A)
            .operations(GrantOperation::Decrypt)
            .send()
    };

    put(json!([owner, {"Sid": "through S3 only", "Effect": "Allow", "Principal": {"AWS": APP},
        "Action": ["kms:Encrypt", "kms:Decrypt", "kms:CreateGrant"], "Resource": "*",
        "Condition": {"StringEquals": {"kms:ViaService": "s3.us-east-1.amazonaws.com"},
                      "Bool": {"kms:GrantIsForAWSResource": "true"}}}]))
    .await
    .unwrap();
    assert_eq!(error_code(encrypt().await), "AccessDeniedException");
    assert_eq!(error_code(grant().await), "AccessDeniedException");

    // What the gateway supplies: no ViaService at all, and GrantIsForAWSResource false.
    put(json!([owner,
        {"Sid": "direct use", "Effect": "Allow", "Principal": {"AWS": APP},
         "Action": "kms:Encrypt", "Resource": "*",
         "Condition": {"Null": {"kms:ViaService": "true"}}},
        {"Sid": "direct grants", "Effect": "Allow", "Principal": {"AWS": APP},
         "Action": "kms:CreateGrant", "Resource": "*",
         "Condition": {"Bool": {"kms:GrantIsForAWSResource": "false"}}}]))
    .await
    .unwrap();
    encrypt().await.expect("a direct call has no kms:ViaService");
    grant().await.expect("a direct grant is not for an AWS resource");
}

#[tokio::test]
async fn principal_tags_reach_policy_conditions() {
    let sb = Sandbox::start_with_users(&[]).await;
    let key = sb.create_key(ACCOUNT_A).await;
    let tagged = "arn:aws:iam::111122223333:user/tagged";
    // Allowed only when the encryption context names the caller's own team tag.
    sb.attach(
        tagged,
        "own-team",
        json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "kms:Encrypt",
            "Resource": "*", "Condition": {"StringEquals": {
                "kms:EncryptionContext:team": "${aws:PrincipalTag/team}"}}}]}),
    )
    .await;
    let (status, body) = encrypt_as(&sb, tagged, &key, "payments", "payments").await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = encrypt_as(&sb, tagged, &key, "payments", "billing").await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("AccessDeniedException"), "{body}");
    let (status, body) = encrypt_as(&sb, tagged, &key, "billing", "billing").await;
    assert_eq!(status, 200, "the tag, not the principal, decides: {body}");
}

/// Encrypt over a bearer token whose principal carries the tag `team`.
async fn encrypt_as(
    sb: &Sandbox,
    principal: &str,
    key: &str,
    team: &str,
    context_team: &str,
) -> (u16, String) {
    let body =
        json!({"KeyId": key, "Plaintext": "aGVsbG8=", "EncryptionContext": {"team": context_team}});
    sb.bearer_post(principal, ACCOUNT_A, json!({ "team": team }), "TrentService.Encrypt", body)
        .await
}
