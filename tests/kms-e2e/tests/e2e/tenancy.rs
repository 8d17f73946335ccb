//! Tenants and regions are walls: another account, or the same account in another
//! region, never uses a key, alias or ciphertext it does not own unless the key's policy
//! or a grant shares it (see `authorization`). Key ids and alias names resolve in the
//! caller's own account; ARNs of another account's keys are refused as AWS refuses them,
//! with AccessDeniedException.

use aws_sdk_kms::primitives::Blob;

use crate::sandbox::{error_code, Sandbox, ACCOUNT_A, ACCOUNT_B, REGION};

#[tokio::test]
async fn another_account_sees_nothing() {
    let sb = Sandbox::start().await;
    let a = sb.kms(ACCOUNT_A);
    let b = sb.kms(ACCOUNT_B);
    let id = sb.create_key(ACCOUNT_A).await;
    let arn = format!("arn:aws:kms:{REGION}:{ACCOUNT_A}:key/{id}");
    a.create_alias().alias_name("alias/shared-name").target_key_id(&id).send().await.unwrap();
    let blob = a
        .encrypt()
        .key_id(&id)
        .plaintext(Blob::new(b"tenant A".to_vec()))
        .send()
        .await
        .unwrap()
        .ciphertext_blob
        .unwrap();

    let alias_arn = format!("arn:aws:kms:{REGION}:{ACCOUNT_A}:alias/shared-name");
    for (key_ref, code) in [
        (id.as_str(), "NotFoundException"),
        ("alias/shared-name", "NotFoundException"),
        (arn.as_str(), "AccessDeniedException"),
        (alias_arn.as_str(), "AccessDeniedException"),
    ] {
        assert_eq!(error_code(b.describe_key().key_id(key_ref).send().await), code, "{key_ref}");
        assert_eq!(
            error_code(
                b.encrypt().key_id(key_ref).plaintext(Blob::new(b"x".to_vec())).send().await
            ),
            code,
            "{key_ref}"
        );
    }
    assert_eq!(error_code(b.disable_key().key_id(&arn).send().await), "NotFoundException");
    assert_eq!(
        error_code(b.schedule_key_deletion().key_id(&arn).send().await),
        "NotFoundException"
    );
    assert_eq!(error_code(b.get_key_policy().key_id(&arn).send().await), "NotFoundException");
    assert_eq!(error_code(b.list_resource_tags().key_id(&arn).send().await), "NotFoundException");
    let denied =
        crate::sandbox::error_message(b.decrypt().ciphertext_blob(blob.clone()).send().await);
    assert!(
        denied.contains("kms:Decrypt on the resource associated with this ciphertext"),
        "a foreign ciphertext is refused without naming its key: {denied}"
    );
    assert!(b.list_keys().send().await.unwrap().keys().is_empty());
    assert!(b.list_aliases().send().await.unwrap().aliases().is_empty());

    // The same alias name is free in the other account.
    let own = sb.create_key(ACCOUNT_B).await;
    b.create_alias().alias_name("alias/shared-name").target_key_id(&own).send().await.unwrap();
    let resolved = b.describe_key().key_id("alias/shared-name").send().await.unwrap();
    assert_eq!(resolved.key_metadata().unwrap().key_id(), own);
    // ...and account A still has its key, untouched.
    let back = a.decrypt().ciphertext_blob(blob).send().await.unwrap();
    assert_eq!(back.plaintext().unwrap().as_ref(), b"tenant A");
    assert_eq!(
        a.describe_key()
            .key_id("alias/shared-name")
            .send()
            .await
            .unwrap()
            .key_metadata()
            .unwrap()
            .key_id(),
        id
    );
}

#[tokio::test]
async fn keys_are_regional() {
    let sb = Sandbox::start().await;
    let east = sb.kms(ACCOUNT_A);
    let west = sb.kms_in(ACCOUNT_A, "eu-west-1");
    let id = sb.create_key(ACCOUNT_A).await;
    let blob = east
        .encrypt()
        .key_id(&id)
        .plaintext(Blob::new(b"regional".to_vec()))
        .send()
        .await
        .unwrap()
        .ciphertext_blob
        .unwrap();

    assert_eq!(error_code(west.describe_key().key_id(&id).send().await), "NotFoundException");
    let east_arn = format!("arn:aws:kms:{REGION}:{ACCOUNT_A}:key/{id}");
    assert_eq!(error_code(west.describe_key().key_id(&east_arn).send().await), "NotFoundException");
    assert_eq!(
        error_code(west.decrypt().ciphertext_blob(blob).send().await),
        "InvalidCiphertextException"
    );
    assert!(west.list_keys().send().await.unwrap().keys().is_empty());

    let west_key = west.create_key().send().await.unwrap().key_metadata.unwrap();
    assert_eq!(
        west_key.arn(),
        Some(format!("arn:aws:kms:eu-west-1:{ACCOUNT_A}:key/{}", west_key.key_id()).as_str())
    );
    assert_eq!(east.list_keys().send().await.unwrap().keys().len(), 1);
}
