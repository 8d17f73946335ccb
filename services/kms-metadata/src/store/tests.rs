//! Store behaviour a caller sees: scoping by account and region, alias rules, paging,
//! tag limits, state transitions, and durability across a reopen.

use super::*;

const A: &str = "111122223333";
const B: &str = "444455556666";

fn ctx(account: &str, region: &str) -> Option<wire::CallerContext> {
    Some(wire::CallerContext {
        account: account.into(),
        region: region.into(),
        principal: format!("arn:aws:iam::{account}:user/t"),
        request_id: "r".into(),
    })
}

fn record(account: &str, region: &str) -> wire::KeyRecord {
    let key_id = uuid::Uuid::new_v4().to_string();
    wire::KeyRecord {
        arn: key_arn(region, account, &key_id),
        key_id,
        account: account.into(),
        region: region.into(),
        creation_date_ms: 1,
        key_state: "Enabled".into(),
        key_spec: "SYMMETRIC_DEFAULT".into(),
        key_usage: "ENCRYPT_DECRYPT".into(),
        origin: "AWS_KMS".into(),
        current_material_version: 1,
        ..Default::default()
    }
}

async fn create(store: &MetadataStore, account: &str, region: &str) -> String {
    let key = record(account, region);
    let id = key.key_id.clone();
    store
        .create_key(wire::CreateKeyRequest {
            caller: ctx(account, region),
            key: Some(key),
            managed_alias: String::new(),
        })
        .await
        .unwrap();
    id
}

fn resolve(store: &MetadataStore, account: &str, region: &str, key_ref: &str) -> KmsResult<String> {
    store
        .resolve_key(wire::ResolveKeyRequest {
            caller: ctx(account, region),
            key_ref: key_ref.into(),
            ..Default::default()
        })
        .map(|r| r.key.unwrap().key_id)
}

fn resolve_across(
    store: &MetadataStore,
    account: &str,
    key_ref: &str,
    from_ciphertext: bool,
) -> KmsResult<String> {
    store
        .resolve_key(wire::ResolveKeyRequest {
            caller: ctx(account, "us-east-1"),
            key_ref: key_ref.into(),
            cross_account: true,
            from_ciphertext,
        })
        .map(|r| r.key.unwrap().key_id)
}

#[tokio::test]
async fn other_accounts_keys_resolve_only_by_arn_when_allowed() {
    let (_dir, store) = open();
    let id = create(&store, A, "us-east-1").await;
    let arn = format!("arn:aws:kms:us-east-1:{A}:key/{id}");
    let other = "444455556666";
    assert_eq!(resolve(&store, other, "us-east-1", &arn).unwrap_err().code, ErrorCode::NotFound);
    assert_eq!(resolve_across(&store, other, &arn, false).unwrap(), id);
    assert_eq!(
        resolve_across(&store, other, &id, false).unwrap_err().code,
        ErrorCode::NotFound,
        "a bare key id names a key of the caller's own account"
    );
    assert_eq!(resolve_across(&store, other, &id, true).unwrap(), id, "a ciphertext's key id");
    let elsewhere = format!("arn:aws:kms:eu-west-1:{A}:key/{id}");
    assert_eq!(
        resolve_across(&store, other, &elsewhere, false).unwrap_err().code,
        ErrorCode::NotFound
    );
    let err = store
        .resolve_key(wire::ResolveKeyRequest {
            caller: ctx(other, "eu-west-1"),
            key_ref: id.clone(),
            cross_account: true,
            from_ciphertext: true,
        })
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::NotFound, "keys are regional, also from a ciphertext");
}

fn open() -> (tempfile::TempDir, MetadataStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = MetadataStore::open(dir.path(), Arc::new(kms_core::SystemClock)).unwrap();
    (dir, store)
}

#[tokio::test]
async fn keys_are_scoped_to_account_and_region() {
    let (_d, store) = open();
    let id = create(&store, A, "us-east-1").await;
    assert_eq!(resolve(&store, A, "us-east-1", &id).unwrap(), id);
    let arn = key_arn("us-east-1", A, &id);
    assert_eq!(resolve(&store, A, "us-east-1", &arn).unwrap(), id);
    for (account, region, key_ref) in [
        (B, "us-east-1", id.as_str()),
        (A, "eu-west-1", id.as_str()),
        (B, "us-east-1", arn.as_str()),
        (A, "eu-west-1", arn.as_str()),
    ] {
        let err = resolve(&store, account, region, key_ref).unwrap_err();
        assert_eq!(err.code, ErrorCode::NotFound, "{account} {region} {key_ref}");
    }
}

#[tokio::test]
async fn aliases_resolve_move_and_delete() {
    let (_d, store) = open();
    let k1 = create(&store, A, "us-east-1").await;
    let k2 = create(&store, A, "us-east-1").await;
    let alias = |name: &str, target: &str| wire::AliasRequest {
        caller: ctx(A, "us-east-1"),
        alias_name: name.into(),
        target_key_id: target.into(),
    };
    store.create_alias(alias("alias/app", &k1)).await.unwrap();
    assert_eq!(resolve(&store, A, "us-east-1", "alias/app").unwrap(), k1);
    let arn = alias_arn("us-east-1", A, "alias/app");
    assert_eq!(resolve(&store, A, "us-east-1", &arn).unwrap(), k1);
    assert_eq!(resolve(&store, B, "us-east-1", "alias/app").unwrap_err().code, ErrorCode::NotFound);
    let dup = store.create_alias(alias("alias/app", &k2)).await.unwrap_err();
    assert_eq!(dup.code, ErrorCode::AlreadyExists);
    store.update_alias(alias("alias/app", &k2)).await.unwrap();
    assert_eq!(resolve(&store, A, "us-east-1", "alias/app").unwrap(), k2);
    let listed = store
        .list_aliases(wire::ListAliasesRequest {
            caller: ctx(A, "us-east-1"),
            key_id: k1.clone(),
            limit: 50,
            marker: String::new(),
        })
        .unwrap();
    assert!(listed.aliases.is_empty());
    store.delete_alias(alias("alias/app", "")).await.unwrap();
    assert_eq!(resolve(&store, A, "us-east-1", "alias/app").unwrap_err().code, ErrorCode::NotFound);
    let missing = store.delete_alias(alias("alias/app", "")).await.unwrap_err();
    assert_eq!(missing.code, ErrorCode::NotFound);
    let foreign = create(&store, B, "us-east-1").await;
    let err = store.create_alias(alias("alias/x", &foreign)).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::NotFound);
}

/// ResolveKey names the key's aliases (`kms:ResourceAliases`), also after a reopen.
#[tokio::test]
async fn resolved_keys_carry_their_alias_names_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let names = |store: &MetadataStore, key: &str| {
        store
            .resolve_key(wire::ResolveKeyRequest {
                caller: ctx(A, "us-east-1"),
                key_ref: key.into(),
                ..Default::default()
            })
            .unwrap()
            .key
            .unwrap()
            .alias_names
    };
    let (k1, k2) = {
        let store = MetadataStore::open(dir.path(), Arc::new(kms_core::SystemClock)).unwrap();
        let k1 = create(&store, A, "us-east-1").await;
        let k2 = create(&store, A, "us-east-1").await;
        let alias = |name: &str, target: &str| wire::AliasRequest {
            caller: ctx(A, "us-east-1"),
            alias_name: name.into(),
            target_key_id: target.into(),
        };
        store.create_alias(alias("alias/b", &k1)).await.unwrap();
        store.create_alias(alias("alias/a", &k1)).await.unwrap();
        store.create_alias(alias("alias/moved", &k1)).await.unwrap();
        store.update_alias(alias("alias/moved", &k2)).await.unwrap();
        store.create_alias(alias("alias/gone", &k2)).await.unwrap();
        store.delete_alias(alias("alias/gone", "")).await.unwrap();
        assert_eq!(names(&store, &k1), ["alias/a", "alias/b"]);
        assert_eq!(names(&store, &k2), ["alias/moved"]);
        (k1, k2)
    };
    let store = MetadataStore::open(dir.path(), Arc::new(kms_core::SystemClock)).unwrap();
    assert_eq!(names(&store, &k1), ["alias/a", "alias/b"]);
    assert_eq!(names(&store, &k2), ["alias/moved"]);
    assert_eq!(names(&store, "alias/a"), ["alias/a", "alias/b"], "also when resolved by alias");
}

#[tokio::test]
async fn list_keys_pages_without_gaps_or_duplicates() {
    let (_d, store) = open();
    let mut created = Vec::new();
    for _ in 0..7 {
        created.push(create(&store, A, "us-east-1").await);
    }
    create(&store, B, "us-east-1").await;
    create(&store, A, "eu-west-1").await;
    let mut seen = Vec::new();
    let mut marker = String::new();
    loop {
        let page = store
            .list_keys(wire::ListKeysRequest {
                caller: ctx(A, "us-east-1"),
                limit: 3,
                marker: marker.clone(),
            })
            .unwrap();
        assert!(page.keys.len() <= 3);
        seen.extend(page.keys.into_iter().map(|k| k.key_id));
        if page.next_marker.is_empty() {
            break;
        }
        marker = page.next_marker;
    }
    created.sort();
    assert_eq!(seen, created);
    let bad = store
        .list_keys(wire::ListKeysRequest {
            caller: ctx(A, "us-east-1"),
            limit: 3,
            marker: "junk".into(),
        })
        .unwrap_err();
    assert_eq!(bad.code, ErrorCode::InvalidMarker);
}

#[tokio::test]
async fn tags_merge_remove_and_limit() {
    let (_d, store) = open();
    let id = create(&store, A, "us-east-1").await;
    let tag = |k: &str, v: &str| wire::Tag { key: k.into(), value: v.into() };
    let tag_req =
        |tags| wire::TagResourceRequest { caller: ctx(A, "us-east-1"), key_id: id.clone(), tags };
    store.tag_resource(tag_req(vec![tag("b", "1"), tag("a", "2")])).await.unwrap();
    store.tag_resource(tag_req(vec![tag("b", "3")])).await.unwrap();
    let list = |marker: &str, limit| {
        store
            .list_resource_tags(wire::ListTagsRequest {
                caller: ctx(A, "us-east-1"),
                key_id: id.clone(),
                limit,
                marker: marker.into(),
            })
            .unwrap()
    };
    assert_eq!(list("", 50).tags, vec![tag("a", "2"), tag("b", "3")]);
    let first = list("", 1);
    assert_eq!((first.tags.len(), first.next_marker.as_str()), (1, "a"));
    assert_eq!(list("a", 1).tags, vec![tag("b", "3")]);
    store
        .untag_resource(wire::UntagResourceRequest {
            caller: ctx(A, "us-east-1"),
            key_id: id.clone(),
            tag_keys: vec!["a".into(), "zz".into()],
        })
        .await
        .unwrap();
    assert_eq!(list("", 50).tags, vec![tag("b", "3")]);
    let many: Vec<wire::Tag> = (0..50).map(|i| tag(&format!("k{i}"), "v")).collect();
    let err = store.tag_resource(tag_req(many)).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::LimitExceeded);
    assert_eq!(
        list("", 50).tags,
        vec![tag("b", "3")],
        "a refused change leaves the tags as they were"
    );
}

#[tokio::test]
async fn state_changes_persist_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let id;
    {
        let store = MetadataStore::open(dir.path(), Arc::new(kms_core::SystemClock)).unwrap();
        id = create(&store, A, "us-east-1").await;
        let change = |c| wire::ChangeKeyStateRequest {
            caller: ctx(A, "us-east-1"),
            key_id: id.clone(),
            change: Some(c),
        };
        store.change_key_state(change(Change::Disable(true))).await.unwrap();
        let k = store
            .change_key_state(change(Change::ScheduleDeletionDays(7)))
            .await
            .unwrap()
            .key
            .unwrap();
        assert_eq!(k.key_state, "PendingDeletion");
        assert!(k.deletion_date_ms.is_some());
        let err = store.change_key_state(change(Change::Enable(true))).await.unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidState);
        let err =
            store.change_key_state(change(Change::ScheduleDeletionDays(3))).await.unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidState);
    }
    let store = MetadataStore::open(dir.path(), Arc::new(kms_core::SystemClock)).unwrap();
    let k = store
        .resolve_key(wire::ResolveKeyRequest {
            caller: ctx(A, "us-east-1"),
            key_ref: id.clone(),
            ..Default::default()
        })
        .unwrap()
        .key
        .unwrap();
    assert_eq!(k.key_state, "PendingDeletion");
}

#[tokio::test]
async fn rotation_settings_records_and_limits() {
    let clock = kms_core::ManualClock::starting_now();
    let dir = tempfile::tempdir().unwrap();
    let store = MetadataStore::open(dir.path(), Arc::new(clock.clone())).unwrap();
    let id = create(&store, A, "us-east-1").await;
    let set = |enabled, days| wire::SetKeyRotationRequest {
        caller: ctx(A, "us-east-1"),
        key_id: id.clone(),
        enabled,
        rotation_period_days: days,
    };
    let k = store.set_key_rotation(set(true, 90)).await.unwrap().key.unwrap();
    assert!(k.rotation_enabled);
    assert_eq!(k.next_rotation_date_ms, Some(clock.now_ms() + 90 * schedule::DAY_MS));
    assert_eq!(
        store.set_key_rotation(set(true, 89)).await.unwrap_err().code,
        ErrorCode::Validation
    );
    assert!(store.due().unwrap().is_empty());
    clock.advance_ms(90 * schedule::DAY_MS);
    let due = store.due().unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].1, Due::Rotate);

    let record = |version, kind: &str| wire::RecordRotationRequest {
        caller: ctx(A, "us-east-1"),
        key_id: id.clone(),
        material_version: version,
        rotation_type: kind.into(),
    };
    let k = store.record_rotation(record(2, "AUTOMATIC")).await.unwrap().key.unwrap();
    assert_eq!(k.current_material_version, 2);
    assert_eq!(k.next_rotation_date_ms, Some(clock.now_ms() + 90 * schedule::DAY_MS));
    assert!(store.due().unwrap().is_empty(), "the schedule moved on");
    let again = store.record_rotation(record(2, "AUTOMATIC")).await.unwrap().key.unwrap();
    assert_eq!(again.rotations.len(), 1, "a retried record changes nothing");
    for v in 3..3 + schedule::MAX_ON_DEMAND_ROTATIONS as u32 {
        store.record_rotation(record(v, "ON_DEMAND")).await.unwrap();
    }
    let over = store.record_rotation(record(100, "ON_DEMAND")).await.unwrap_err();
    assert_eq!(over.code, ErrorCode::LimitExceeded);
    let k = store.set_key_rotation(set(false, 0)).await.unwrap().key.unwrap();
    assert!(!k.rotation_enabled && k.next_rotation_date_ms.is_none());
}

#[tokio::test]
async fn deletion_removes_the_key_and_its_aliases_only_when_due() {
    let clock = kms_core::ManualClock::starting_now();
    let dir = tempfile::tempdir().unwrap();
    let store = MetadataStore::open(dir.path(), Arc::new(clock.clone())).unwrap();
    let id = create(&store, A, "us-east-1").await;
    let keep = create(&store, A, "us-east-1").await;
    for (name, target) in [("alias/doomed", &id), ("alias/kept", &keep)] {
        let r = wire::AliasRequest {
            caller: ctx(A, "us-east-1"),
            alias_name: name.into(),
            target_key_id: target.clone(),
        };
        store.create_alias(r).await.unwrap();
    }
    let change = wire::ChangeKeyStateRequest {
        caller: ctx(A, "us-east-1"),
        key_id: id.clone(),
        change: Some(Change::ScheduleDeletionDays(7)),
    };
    store.change_key_state(change).await.unwrap();
    clock.advance_ms(7 * schedule::DAY_MS - 1);
    assert!(store.due().unwrap().is_empty(), "not a millisecond early");
    assert!(!store.remove_deleted_key(&id).await.unwrap());
    clock.advance_ms(1);
    assert_eq!(store.due().unwrap().len(), 1);
    assert!(store.remove_deleted_key(&id).await.unwrap());
    assert_eq!(resolve(&store, A, "us-east-1", &id).unwrap_err().code, ErrorCode::NotFound);
    assert_eq!(
        resolve(&store, A, "us-east-1", "alias/doomed").unwrap_err().code,
        ErrorCode::NotFound
    );
    assert_eq!(resolve(&store, A, "us-east-1", "alias/kept").unwrap(), keep);
    let listed = store
        .list_keys(wire::ListKeysRequest {
            caller: ctx(A, "us-east-1"),
            limit: 10,
            marker: String::new(),
        })
        .unwrap();
    assert_eq!(listed.keys.len(), 1);
    assert!(!store.remove_deleted_key(&id).await.unwrap(), "removing twice is a no-op");
}

#[tokio::test]
async fn a_managed_key_and_its_alias_are_created_together_once() {
    let (_d, store) = open();
    let create = |key: wire::KeyRecord| wire::CreateKeyRequest {
        caller: ctx(A, "us-east-1"),
        key: Some(key),
        managed_alias: "alias/aws/s3".into(),
    };
    let first = record(A, "us-east-1");
    let first_id = first.key_id.clone();
    let made = store.create_key(create(first)).await.unwrap().key.unwrap();
    assert_eq!(made.key_id, first_id);
    assert_eq!(resolve(&store, A, "us-east-1", "alias/aws/s3").unwrap(), first_id);
    // A racing second first-use gets the key that won.
    let again = store.create_key(create(record(A, "us-east-1"))).await.unwrap().key.unwrap();
    assert_eq!(again.key_id, first_id);
    let listed = store
        .list_keys(wire::ListKeysRequest {
            caller: ctx(A, "us-east-1"),
            limit: 10,
            marker: String::new(),
        })
        .unwrap();
    assert_eq!(listed.keys.len(), 1, "the loser's record was not stored");
}
