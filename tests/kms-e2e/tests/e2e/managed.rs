//! AWS managed keys through aws-sdk-kms: `alias/aws/<service>` is created on first use
//! (KeyManager AWS, yearly rotation), one per account and region, usable and readable by
//! the tenant but never manageable.

use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{KeyManagerType, Tag};

use crate::sandbox::{error_code, error_message, Sandbox, ACCOUNT_A, ACCOUNT_B};

#[tokio::test]
async fn created_on_first_use_and_never_manageable() {
    let sb = Sandbox::start().await;
    let kms = sb.kms(ACCOUNT_A);
    assert!(kms.delete_alias().alias_name("alias/aws/ebs").send().await.is_err());
    let aliases = kms.list_aliases().send().await.unwrap();
    assert!(
        aliases.aliases().iter().all(|a| a.alias_name() != Some("alias/aws/ebs")),
        "DeleteAlias of a reserved name creates no managed key"
    );
    let first =
        kms.describe_key().key_id("alias/aws/s3").send().await.unwrap().key_metadata.unwrap();
    assert_eq!(first.key_manager(), Some(&KeyManagerType::Aws));
    assert!(first.description().unwrap().contains("s3"));
    let id = first.key_id().to_owned();
    let again =
        kms.describe_key().key_id("alias/aws/s3").send().await.unwrap().key_metadata.unwrap();
    assert_eq!(again.key_id(), id, "one managed key per service");
    let aliases = kms.list_aliases().key_id(&id).send().await.unwrap();
    assert_eq!(aliases.aliases()[0].alias_name(), Some("alias/aws/s3"));

    let blob = kms
        .encrypt()
        .key_id("alias/aws/s3")
        .plaintext(Blob::new(b"managed".to_vec()))
        .send()
        .await
        .unwrap();
    let back = kms
        .decrypt()
        .ciphertext_blob(blob.ciphertext_blob().unwrap().clone())
        .send()
        .await
        .unwrap();
    assert_eq!(back.plaintext().unwrap().as_ref(), b"managed");

    let status = kms.get_key_rotation_status().key_id(&id).send().await.unwrap();
    assert!(status.key_rotation_enabled(), "AWS managed keys rotate every year");
    assert_eq!(status.rotation_period_in_days(), Some(365));
    assert_eq!(
        error_code(kms.enable_key_rotation().key_id(&id).send().await),
        "AccessDeniedException",
        "AWS's policy for managed keys allows no rotation changes"
    );
    let denied = error_message(kms.disable_key().key_id(&id).send().await);
    assert!(denied.contains("is not authorized to perform: kms:DisableKey"), "{denied}");
    for code in [
        error_code(kms.disable_key().key_id(&id).send().await),
        error_code(kms.schedule_key_deletion().key_id(&id).send().await),
        error_code(kms.put_key_policy().key_id(&id).policy(r#"{"Statement":[]}"#).send().await),
        error_code(kms.update_key_description().key_id(&id).description("mine").send().await),
        error_code(
            kms.tag_resource()
                .key_id(&id)
                .tags(Tag::builder().tag_key("k").tag_value("v").build().unwrap())
                .send()
                .await,
        ),
        error_code(kms.create_alias().alias_name("alias/mine").target_key_id(&id).send().await),
    ] {
        assert_eq!(code, "AccessDeniedException");
    }
    assert_eq!(
        error_code(kms.delete_alias().alias_name("alias/aws/s3").send().await),
        "NotAuthorizedException"
    );
    assert_eq!(
        error_code(kms.describe_key().key_id("alias/aws/not-a-service").send().await),
        "NotFoundException"
    );
    let policy = kms.get_key_policy().key_id(&id).send().await.unwrap();
    // AWS's managed-key policy, less its kms:ViaService condition (no AWS service stands
    // in front of this one): the account's principals use the key, nobody manages it.
    let document = policy.policy().unwrap();
    assert!(
        document.contains("kms:CallerAccount") && !document.contains("kms:PutKeyPolicy"),
        "{document}"
    );

    let other = sb.kms(ACCOUNT_B).describe_key().key_id("alias/aws/s3").send().await.unwrap();
    assert_ne!(other.key_metadata().unwrap().key_id(), id, "each account has its own");
}
