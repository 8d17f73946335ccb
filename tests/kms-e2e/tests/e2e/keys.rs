//! Key lifecycle through aws-sdk-kms: create, describe by every reference form, list with
//! paging, enable/disable, description, scheduled deletion and its cancellation, and the
//! errors AWS gives for each misuse.

use aws_sdk_kms::types::{KeySpec, KeyState, KeyUsageType, Tag};

use crate::sandbox::{error_code, Sandbox, ACCOUNT_A, REGION};

#[tokio::test]
async fn create_and_describe_by_every_reference_form() {
    let sb = Sandbox::start().await;
    let kms = sb.kms(ACCOUNT_A);
    let created = kms
        .create_key()
        .description("My application encryption key")
        .key_usage(KeyUsageType::EncryptDecrypt)
        .tags(Tag::builder().tag_key("Environment").tag_value("Production").build().unwrap())
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap();
    let id = created.key_id().to_owned();
    let arn = format!("arn:aws:kms:{REGION}:{ACCOUNT_A}:key/{id}");
    assert_eq!(created.arn(), Some(arn.as_str()));
    assert_eq!(created.aws_account_id(), Some(ACCOUNT_A));
    assert_eq!(created.key_state(), Some(&KeyState::Enabled));
    assert!(created.enabled());
    assert_eq!(created.key_spec(), Some(&KeySpec::SymmetricDefault));
    assert_eq!(created.description(), Some("My application encryption key"));
    assert!(created.creation_date().is_some());
    assert_eq!(created.encryption_algorithms().len(), 1);

    kms.create_alias().alias_name("alias/app").target_key_id(&id).send().await.unwrap();
    let alias_arn = format!("arn:aws:kms:{REGION}:{ACCOUNT_A}:alias/app");
    for key_ref in [id.as_str(), arn.as_str(), "alias/app", alias_arn.as_str()] {
        let described =
            kms.describe_key().key_id(key_ref).send().await.unwrap().key_metadata.unwrap();
        assert_eq!(described.key_id(), id, "{key_ref}");
    }
    let missing = uuid_like();
    assert_eq!(error_code(kms.describe_key().key_id(&missing).send().await), "NotFoundException");
    assert_eq!(
        error_code(kms.describe_key().key_id("alias/nope").send().await),
        "NotFoundException"
    );
    assert_eq!(
        error_code(kms.describe_key().key_id("not-a-key").send().await),
        "NotFoundException"
    );
}

fn uuid_like() -> String {
    "00000000-1111-2222-3333-444444444444".to_owned()
}

#[tokio::test]
async fn list_keys_pages_with_limit_and_marker() {
    let sb = Sandbox::start().await;
    let kms = sb.kms(ACCOUNT_A);
    let mut created = Vec::new();
    for _ in 0..5 {
        created.push(sb.create_key(ACCOUNT_A).await);
    }
    let mut seen = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        let page = kms.list_keys().limit(2).set_marker(marker.clone()).send().await.unwrap();
        assert!(page.keys().len() <= 2);
        for k in page.keys() {
            assert_eq!(
                k.key_arn().unwrap(),
                format!("arn:aws:kms:{REGION}:{ACCOUNT_A}:key/{}", k.key_id().unwrap())
            );
            seen.push(k.key_id().unwrap().to_owned());
        }
        if !page.truncated() {
            assert!(page.next_marker().is_none());
            break;
        }
        marker = page.next_marker().map(str::to_owned);
    }
    created.sort();
    seen.sort();
    assert_eq!(seen, created);
    assert_eq!(error_code(kms.list_keys().limit(0).send().await), "ValidationException");
    assert_eq!(error_code(kms.list_keys().limit(1001).send().await), "ValidationException");
    assert_eq!(
        error_code(kms.list_keys().marker("garbage").send().await),
        "InvalidMarkerException"
    );
}

#[tokio::test]
async fn enable_disable_and_description() {
    let sb = Sandbox::start().await;
    let kms = sb.kms(ACCOUNT_A);
    let id = sb.create_key(ACCOUNT_A).await;
    let state = |id: String| {
        let kms = kms.clone();
        async move { kms.describe_key().key_id(id).send().await.unwrap().key_metadata.unwrap() }
    };
    kms.disable_key().key_id(&id).send().await.unwrap();
    let m = state(id.clone()).await;
    assert_eq!((m.key_state(), m.enabled()), (Some(&KeyState::Disabled), false));
    assert_eq!(
        error_code(kms.encrypt().key_id(&id).plaintext(b"x".to_vec().into()).send().await),
        "DisabledException"
    );
    kms.enable_key().key_id(&id).send().await.unwrap();
    assert_eq!(state(id.clone()).await.key_state(), Some(&KeyState::Enabled));
    kms.update_key_description().key_id(&id).description("renamed").send().await.unwrap();
    assert_eq!(state(id.clone()).await.description(), Some("renamed"));
    let too_long = "d".repeat(8193);
    assert_eq!(
        error_code(kms.update_key_description().key_id(&id).description(too_long).send().await),
        "ValidationException"
    );
    assert_eq!(
        state(id.clone()).await.description(),
        Some("renamed"),
        "refused change leaves the key as it was"
    );
}

#[tokio::test]
async fn scheduled_deletion_and_cancellation() {
    let sb = Sandbox::start().await;
    let kms = sb.kms(ACCOUNT_A);
    let id = sb.create_key(ACCOUNT_A).await;
    let default_window = sb.create_key(ACCOUNT_A).await;

    assert_eq!(
        error_code(kms.schedule_key_deletion().key_id(&id).pending_window_in_days(6).send().await),
        "ValidationException"
    );
    assert_eq!(
        error_code(kms.schedule_key_deletion().key_id(&id).pending_window_in_days(31).send().await),
        "ValidationException"
    );
    let scheduled =
        kms.schedule_key_deletion().key_id(&id).pending_window_in_days(7).send().await.unwrap();
    assert_eq!(scheduled.key_state(), Some(&KeyState::PendingDeletion));
    assert_eq!(scheduled.pending_window_in_days(), Some(7));
    let deletion = scheduled.deletion_date().unwrap().secs();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
        as i64;
    assert!((deletion - (now + 7 * 86400)).abs() < 120, "deletion date about 7 days out");
    let described = kms.describe_key().key_id(&id).send().await.unwrap().key_metadata.unwrap();
    assert_eq!(described.key_state(), Some(&KeyState::PendingDeletion));
    assert!(described.deletion_date().is_some());

    for code in [
        error_code(kms.encrypt().key_id(&id).plaintext(b"x".to_vec().into()).send().await),
        error_code(kms.enable_key().key_id(&id).send().await),
        error_code(kms.schedule_key_deletion().key_id(&id).send().await),
    ] {
        assert_eq!(code, "KMSInvalidStateException");
    }

    let cancelled = kms.cancel_key_deletion().key_id(&id).send().await.unwrap();
    assert_eq!(
        cancelled.key_id(),
        Some(format!("arn:aws:kms:{REGION}:{ACCOUNT_A}:key/{id}").as_str())
    );
    let after = kms.describe_key().key_id(&id).send().await.unwrap().key_metadata.unwrap();
    assert_eq!(
        after.key_state(),
        Some(&KeyState::Disabled),
        "a cancelled deletion leaves the key disabled"
    );
    assert!(after.deletion_date().is_none());
    assert_eq!(
        error_code(kms.cancel_key_deletion().key_id(&id).send().await),
        "KMSInvalidStateException"
    );

    let with_default = kms.schedule_key_deletion().key_id(&default_window).send().await.unwrap();
    assert_eq!(with_default.pending_window_in_days(), Some(30));
}

#[tokio::test]
async fn unsupported_and_invalid_create_parameters() {
    let sb = Sandbox::start().await;
    let kms = sb.kms(ACCOUNT_A);
    let too_long = "d".repeat(8193);
    assert_eq!(
        error_code(kms.create_key().description(too_long).send().await),
        "ValidationException"
    );
    let reserved = Tag::builder().tag_key("aws:reserved").tag_value("x").build().unwrap();
    assert_eq!(error_code(kms.create_key().tags(reserved).send().await), "TagException");
    assert_eq!(
        error_code(kms.create_key().policy("{not json").send().await),
        "MalformedPolicyDocumentException"
    );
    let keys = kms.list_keys().send().await.unwrap();
    assert!(keys.keys().is_empty(), "refused CreateKey calls leave no key behind");
}
