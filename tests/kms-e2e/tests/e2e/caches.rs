//! The gateway's caches of key records and allow decisions never outlive a change: a
//! disabled key, a moved or deleted alias and a revoked grant take effect on the very
//! next call, whether the change passed through this gateway or reached the metadata or
//! policy service over the bus without it (then only the services' change announcements
//! can clear the gateway's caches).

use std::time::Duration;

use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::GrantOperation;
use kms_proto::v1::{self as wire, change_key_state_request::Change};

use crate::sandbox::{error_code, Sandbox, ACCOUNT_A, REGION};

const APP: &str = "arn:aws:iam::111122223333:user/app";

fn caller() -> Option<wire::CallerContext> {
    Some(wire::CallerContext {
        account: ACCOUNT_A.into(),
        region: REGION.into(),
        principal: format!("arn:aws:iam::{ACCOUNT_A}:root"),
        request_id: "e2e-caches".into(),
    })
}

fn ctx() -> kms_bus::CallContext {
    kms_bus::CallContext { request_id: "e2e-caches".into() }
}

#[tokio::test]
async fn a_disabled_key_fails_on_the_very_next_call() {
    let sb = Sandbox::start().await;
    let kms = sb.kms(ACCOUNT_A);
    let key = sb.create_key(ACCOUNT_A).await;
    let encrypt = || kms.encrypt().key_id(&key).plaintext(Blob::new(b"x".to_vec())).send();
    encrypt().await.expect("enabled, and now cached");
    encrypt().await.expect("from the caches");

    kms.disable_key().key_id(&key).send().await.unwrap();
    assert_eq!(error_code(encrypt().await), "DisabledException", "through this gateway");
    kms.enable_key().key_id(&key).send().await.unwrap();
    encrypt().await.expect("enabled again at once");
    encrypt().await.expect("cached again");

    // Past the gateway: the metadata service's announcement alone clears the cache.
    let bus = kms_bus::Bus::connect(&sb.nats.url(), Duration::from_secs(5)).await.unwrap();
    bus.call::<kms_bus::metadata::ChangeKeyState>(
        &ctx(),
        &wire::ChangeKeyStateRequest {
            caller: caller(),
            key_id: key.clone(),
            change: Some(Change::Disable(true)),
        },
    )
    .await
    .unwrap();
    assert_eq!(error_code(encrypt().await), "DisabledException", "past this gateway");
}

#[tokio::test]
async fn a_moved_or_deleted_alias_resolves_anew_on_the_next_call() {
    let sb = Sandbox::start().await;
    let kms = sb.kms(ACCOUNT_A);
    let (first, second) = (sb.create_key(ACCOUNT_A).await, sb.create_key(ACCOUNT_A).await);
    kms.create_alias().alias_name("alias/hot").target_key_id(&first).send().await.unwrap();
    let key_of_encrypt = || async {
        kms.encrypt()
            .key_id("alias/hot")
            .plaintext(Blob::new(b"x".to_vec()))
            .send()
            .await
            .map(|r| r.key_id.unwrap_or_default())
    };
    assert!(key_of_encrypt().await.unwrap().ends_with(&first));
    assert!(key_of_encrypt().await.unwrap().ends_with(&first), "from the cache");

    let bus = kms_bus::Bus::connect(&sb.nats.url(), Duration::from_secs(5)).await.unwrap();
    let alias = |target: &str| wire::AliasRequest {
        caller: caller(),
        alias_name: "alias/hot".into(),
        target_key_id: target.to_owned(),
    };
    bus.call::<kms_bus::metadata::UpdateAlias>(&ctx(), &alias(&second)).await.unwrap();
    assert!(key_of_encrypt().await.unwrap().ends_with(&second), "the alias moved past the gateway");
    bus.call::<kms_bus::metadata::DeleteAlias>(&ctx(), &alias("")).await.unwrap();
    assert_eq!(
        error_code(
            kms.encrypt().key_id("alias/hot").plaintext(Blob::new(b"x".to_vec())).send().await
        ),
        "NotFoundException"
    );
}

#[tokio::test]
async fn a_grant_revoked_past_the_gateway_stops_the_next_call() {
    let sb = Sandbox::start_with_users(&[APP]).await;
    let (dev, app) = (sb.kms(ACCOUNT_A), sb.kms_as(APP));
    let key = sb.create_key(ACCOUNT_A).await;
    let grant = dev
        .create_grant()
        .key_id(&key)
        .grantee_principal(APP)
        .operations(GrantOperation::Encrypt)
        .send()
        .await
        .unwrap();
    let encrypt = || app.encrypt().key_id(&key).plaintext(Blob::new(b"x".to_vec())).send();
    encrypt().await.expect("granted, and now cached");
    encrypt().await.expect("from the caches");

    revoke_on_the_bus(&sb, &key, grant.grant_id.unwrap()).await;
    assert_eq!(error_code(encrypt().await), "AccessDeniedException");
}

/// The same for an operation with a side effect (CreateGrant): its cached allow is not
/// used before the gateway has applied the announcements NATS sent it (an echo round),
/// rather than checked afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grant_revoked_past_the_gateway_stops_the_next_grant_it_allowed() {
    let sb = Sandbox::start_with_users(&[APP]).await;
    let (dev, app) = (sb.kms(ACCOUNT_A), sb.kms_as(APP));
    let key = sb.create_key(ACCOUNT_A).await;
    let grant = dev
        .create_grant()
        .key_id(&key)
        .grantee_principal(APP)
        .operations(GrantOperation::CreateGrant)
        .operations(GrantOperation::Encrypt)
        .send()
        .await
        .unwrap();
    let pass_on = || {
        app.create_grant()
            .key_id(&key)
            .grantee_principal(APP)
            .operations(GrantOperation::Encrypt)
            .send()
    };
    pass_on().await.expect("granted, and now cached");
    pass_on().await.expect("from the caches");

    revoke_on_the_bus(&sb, &key, grant.grant_id.unwrap()).await;
    assert_eq!(error_code(pass_on().await), "AccessDeniedException");
}

/// Revokes a grant through the policy service directly, past every gateway: the only
/// news a gateway gets of it is the policy service's announcement.
async fn revoke_on_the_bus(sb: &Sandbox, key: &str, grant_id: String) {
    let bus = kms_bus::Bus::connect(&sb.nats.url(), Duration::from_secs(5)).await.unwrap();
    bus.call::<kms_bus::policy::RevokeGrant>(
        &ctx(),
        &wire::RevokeGrantRequest { caller: caller(), key_id: key.to_owned(), grant_id },
    )
    .await
    .unwrap();
}
