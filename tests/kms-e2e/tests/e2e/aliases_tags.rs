//! Aliases and tags through aws-sdk-kms: create, move, list (with and without a key
//! filter), delete, the alias naming rules, and tag merge/remove/list with AWS's limits.

use aws_sdk_kms::types::Tag;

use crate::sandbox::{error_code, Sandbox, ACCOUNT_A, REGION};

fn tag(k: &str, v: &str) -> Tag {
    Tag::builder().tag_key(k).tag_value(v).build().unwrap()
}

#[tokio::test]
async fn alias_lifecycle_and_rules() {
    let sb = Sandbox::start().await;
    let kms = sb.kms(ACCOUNT_A);
    let (k1, k2) = (sb.create_key(ACCOUNT_A).await, sb.create_key(ACCOUNT_A).await);
    kms.create_alias()
        .alias_name("alias/my-application-key")
        .target_key_id(&k1)
        .send()
        .await
        .unwrap();
    kms.create_alias()
        .alias_name("alias/second")
        .target_key_id(format!("arn:aws:kms:{REGION}:{ACCOUNT_A}:key/{k1}"))
        .send()
        .await
        .unwrap();

    let all = kms.list_aliases().send().await.unwrap();
    let names: Vec<&str> = all.aliases().iter().filter_map(|a| a.alias_name()).collect();
    assert_eq!(names, ["alias/my-application-key", "alias/second"]);
    let first = &all.aliases()[0];
    assert_eq!(
        first.alias_arn(),
        Some(format!("arn:aws:kms:{REGION}:{ACCOUNT_A}:alias/my-application-key").as_str())
    );
    assert_eq!(first.target_key_id(), Some(k1.as_str()));
    assert!(first.creation_date().is_some());

    let paged = kms.list_aliases().limit(1).send().await.unwrap();
    assert!(paged.truncated());
    let rest =
        kms.list_aliases().limit(1).marker(paged.next_marker().unwrap()).send().await.unwrap();
    assert_eq!(rest.aliases()[0].alias_name(), Some("alias/second"));

    kms.update_alias()
        .alias_name("alias/my-application-key")
        .target_key_id(&k2)
        .send()
        .await
        .unwrap();
    let moved = kms.describe_key().key_id("alias/my-application-key").send().await.unwrap();
    assert_eq!(moved.key_metadata().unwrap().key_id(), k2);
    let for_k2 = kms.list_aliases().key_id(&k2).send().await.unwrap();
    assert_eq!(for_k2.aliases().len(), 1);
    let for_k1 = kms.list_aliases().key_id(&k1).send().await.unwrap();
    assert_eq!(for_k1.aliases()[0].alias_name(), Some("alias/second"));

    kms.delete_alias().alias_name("alias/second").send().await.unwrap();
    assert_eq!(
        error_code(kms.describe_key().key_id("alias/second").send().await),
        "NotFoundException"
    );
    assert_eq!(
        error_code(kms.delete_alias().alias_name("alias/second").send().await),
        "NotFoundException"
    );

    let cases = [
        ("alias/my-application-key", k1.as_str(), "AlreadyExistsException"),
        ("alias/aws/s3", k1.as_str(), "NotAuthorizedException"),
        ("no-prefix", k1.as_str(), "ValidationException"),
        ("alias/bad name", k1.as_str(), "ValidationException"),
        ("alias/x", "00000000-1111-2222-3333-444444444444", "NotFoundException"),
        ("alias/x", "alias/my-application-key", "ValidationException"),
    ];
    for (name, target, expected) in cases {
        let code =
            error_code(kms.create_alias().alias_name(name).target_key_id(target).send().await);
        assert_eq!(code, expected, "{name} -> {target}");
    }
    assert_eq!(
        error_code(kms.update_alias().alias_name("alias/none").target_key_id(&k1).send().await),
        "NotFoundException"
    );
    kms.schedule_key_deletion().key_id(&k1).pending_window_in_days(7).send().await.unwrap();
    assert_eq!(
        error_code(kms.create_alias().alias_name("alias/late").target_key_id(&k1).send().await),
        "KMSInvalidStateException"
    );
}

#[tokio::test]
async fn tags_merge_remove_list_and_limits() {
    let sb = Sandbox::start().await;
    let kms = sb.kms(ACCOUNT_A);
    let id = kms
        .create_key()
        .tags(tag("Environment", "Production"))
        .tags(tag("Application", "Database"))
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap()
        .key_id;
    kms.tag_resource()
        .key_id(&id)
        .tags(tag("CostCenter", "Engineering"))
        .tags(tag("Environment", "Staging"))
        .send()
        .await
        .unwrap();
    let list = kms.list_resource_tags().key_id(&id).send().await.unwrap();
    let tags: Vec<(&str, &str)> =
        list.tags().iter().map(|t| (t.tag_key(), t.tag_value())).collect();
    assert_eq!(
        tags,
        [("Application", "Database"), ("CostCenter", "Engineering"), ("Environment", "Staging")]
    );
    assert!(!list.truncated());

    let page = kms.list_resource_tags().key_id(&id).limit(2).send().await.unwrap();
    assert!(page.truncated());
    let rest = kms
        .list_resource_tags()
        .key_id(&id)
        .limit(2)
        .marker(page.next_marker().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(rest.tags().len(), 1);

    kms.untag_resource()
        .key_id(&id)
        .tag_keys("CostCenter")
        .tag_keys("Application")
        .send()
        .await
        .unwrap();
    let left = kms.list_resource_tags().key_id(&id).send().await.unwrap();
    assert_eq!(left.tags().len(), 1);

    assert_eq!(
        error_code(kms.tag_resource().key_id(&id).tags(tag("aws:x", "y")).send().await),
        "TagException"
    );
    let mut too_many = kms.tag_resource().key_id(&id);
    for i in 0..50 {
        too_many = too_many.tags(tag(&format!("k{i}"), "v"));
    }
    assert_eq!(error_code(too_many.send().await), "LimitExceededException");
    assert_eq!(
        kms.list_resource_tags().key_id(&id).send().await.unwrap().tags().len(),
        1,
        "nothing changed"
    );
    assert_eq!(
        error_code(
            kms.list_resource_tags().key_id("00000000-1111-2222-3333-444444444444").send().await
        ),
        "NotFoundException"
    );
}
