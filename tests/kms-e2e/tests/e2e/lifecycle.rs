//! Time-driven key life through aws-sdk-kms with a clock the test moves: on-demand and
//! automatic rotation (every version keeps decrypting, ReEncrypt moves to the current
//! one), and deletion at the end of the waiting period (material shredded, key and aliases
//! gone, `DeleteKey` recorded by the service) — not a moment before.

use std::time::Duration;

use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::RotationType;
use kms_core::schedule::DAY_MS;

use crate::sandbox::{error_code, Sandbox, ACCOUNT_A};

/// The material version a ciphertext blob names (bytes 17..21 of our format).
fn version_of(blob: &Blob) -> u32 {
    let b = blob.as_ref();
    u32::from_be_bytes([b[17], b[18], b[19], b[20]])
}

/// Polls `check` until it holds; the scheduler runs every 50 ms in tests.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test]
async fn on_demand_rotation_keeps_old_ciphertexts_and_reencrypt_moves_them() {
    let sb = Sandbox::start().await;
    let kms = sb.kms(ACCOUNT_A);
    let id = sb.create_key(ACCOUNT_A).await;
    let encrypt = |text: &'static [u8]| {
        let kms = kms.clone();
        let id = id.clone();
        async move {
            kms.encrypt()
                .key_id(id)
                .plaintext(Blob::new(text))
                .send()
                .await
                .unwrap()
                .ciphertext_blob
                .unwrap()
        }
    };
    let old = encrypt(b"before rotation").await;
    assert_eq!(version_of(&old), 1);
    let rotated = kms.rotate_key_on_demand().key_id(&id).send().await.unwrap();
    assert!(rotated.key_id().unwrap().ends_with(&id));
    let new = encrypt(b"after rotation").await;
    assert_eq!(version_of(&new), 2, "new ciphertexts use the new material");
    for (blob, text) in [(&old, &b"before rotation"[..]), (&new, &b"after rotation"[..])] {
        let back = kms.decrypt().ciphertext_blob(blob.clone()).send().await.unwrap();
        assert_eq!(back.plaintext().unwrap().as_ref(), text);
    }
    let moved =
        kms.re_encrypt().ciphertext_blob(old.clone()).destination_key_id(&id).send().await.unwrap();
    assert_eq!(
        version_of(moved.ciphertext_blob().unwrap()),
        2,
        "ReEncrypt moves to the current version"
    );

    let rotations = kms.list_key_rotations().key_id(&id).send().await.unwrap();
    assert_eq!(rotations.rotations().len(), 1);
    assert_eq!(rotations.rotations()[0].rotation_type(), Some(&RotationType::OnDemand));
    assert!(rotations.rotations()[0].rotation_date().is_some());
    let material_id = rotations.rotations()[0].key_material_id().unwrap();
    assert!(
        material_id.len() == 64 && material_id.bytes().all(|b| b.is_ascii_hexdigit()),
        "{material_id}"
    );

    kms.disable_key().key_id(&id).send().await.unwrap();
    assert_eq!(
        error_code(kms.rotate_key_on_demand().key_id(&id).send().await),
        "DisabledException"
    );
    assert_eq!(
        error_code(
            kms.rotate_key_on_demand().key_id("00000000-1111-2222-3333-444444444444").send().await
        ),
        "NotFoundException"
    );
}

#[tokio::test]
async fn automatic_rotation_follows_the_clock() {
    let sb = Sandbox::start().await;
    let kms = sb.kms(ACCOUNT_A);
    let id = sb.create_key(ACCOUNT_A).await;
    let status = kms.get_key_rotation_status().key_id(&id).send().await.unwrap();
    assert!(!status.key_rotation_enabled());
    assert_eq!(
        error_code(kms.enable_key_rotation().key_id(&id).rotation_period_in_days(89).send().await),
        "ValidationException"
    );
    kms.enable_key_rotation().key_id(&id).rotation_period_in_days(90).send().await.unwrap();
    let status = kms.get_key_rotation_status().key_id(&id).send().await.unwrap();
    assert!(status.key_rotation_enabled());
    assert_eq!(status.rotation_period_in_days(), Some(90));
    assert!(status.next_rotation_date().is_some());
    let old = kms
        .encrypt()
        .key_id(&id)
        .plaintext(Blob::new(b"v1".to_vec()))
        .send()
        .await
        .unwrap()
        .ciphertext_blob
        .unwrap();

    sb.clock.advance_ms(90 * DAY_MS);
    eventually("the automatic rotation", || {
        let kms = kms.clone();
        let id = id.clone();
        async move { !kms.list_key_rotations().key_id(id).send().await.unwrap().rotations().is_empty() }
    })
    .await;
    let rotations = kms.list_key_rotations().key_id(&id).send().await.unwrap();
    assert_eq!(rotations.rotations()[0].rotation_type(), Some(&RotationType::Automatic));
    let new = kms
        .encrypt()
        .key_id(&id)
        .plaintext(Blob::new(b"v2".to_vec()))
        .send()
        .await
        .unwrap()
        .ciphertext_blob
        .unwrap();
    assert_eq!(version_of(&new), 2);
    let back = kms.decrypt().ciphertext_blob(old).send().await.unwrap();
    assert_eq!(back.plaintext().unwrap().as_ref(), b"v1");
    let events = sb.events(ACCOUNT_A).await;
    let rotate = events.iter().find(|e| e["eventName"] == "RotateKey").expect("RotateKey recorded");
    assert_eq!(rotate["eventType"], "AwsServiceEvent");

    kms.disable_key_rotation().key_id(&id).send().await.unwrap();
    let status = kms.get_key_rotation_status().key_id(&id).send().await.unwrap();
    assert!(!status.key_rotation_enabled());
    kms.schedule_key_deletion().key_id(&id).send().await.unwrap();
    assert_eq!(
        error_code(kms.enable_key_rotation().key_id(&id).send().await),
        "KMSInvalidStateException"
    );
}

#[tokio::test]
async fn deletion_happens_at_the_end_of_the_waiting_period_and_not_before() {
    let sb = Sandbox::start().await;
    let kms = sb.kms(ACCOUNT_A);
    let witness = sb.create_key(ACCOUNT_A).await;
    let doomed = sb.create_key(ACCOUNT_A).await;
    let survivor = sb.create_key(ACCOUNT_A).await;
    kms.create_alias().alias_name("alias/doomed").target_key_id(&doomed).send().await.unwrap();
    let blob = kms
        .encrypt()
        .key_id(&doomed)
        .plaintext(Blob::new(b"shred me".to_vec()))
        .send()
        .await
        .unwrap()
        .ciphertext_blob
        .unwrap();

    // The witness is due a day before the doomed key: once the witness is gone, the
    // scheduler has run at a time when the doomed key still had a day to live.
    kms.schedule_key_deletion().key_id(&witness).pending_window_in_days(7).send().await.unwrap();
    sb.clock.advance_ms(DAY_MS);
    let scheduled =
        kms.schedule_key_deletion().key_id(&doomed).pending_window_in_days(7).send().await.unwrap();
    assert!(scheduled.deletion_date().is_some());
    sb.clock.advance_ms(6 * DAY_MS);
    eventually("the witness's deletion", || {
        let kms = kms.clone();
        let witness = witness.clone();
        async move { kms.describe_key().key_id(witness).send().await.is_err() }
    })
    .await;
    let still = kms.describe_key().key_id(&doomed).send().await.unwrap();
    assert_eq!(still.key_metadata().unwrap().key_id(), doomed, "not deleted before its date");
    assert_eq!(
        error_code(kms.encrypt().key_id(&doomed).plaintext(Blob::new(b"x".to_vec())).send().await),
        "KMSInvalidStateException"
    );

    sb.clock.advance_ms(DAY_MS);
    eventually("the deletion", || {
        let kms = kms.clone();
        let doomed = doomed.clone();
        async move { kms.describe_key().key_id(doomed).send().await.is_err() }
    })
    .await;
    assert_eq!(error_code(kms.describe_key().key_id(&doomed).send().await), "NotFoundException");
    assert_eq!(
        error_code(kms.describe_key().key_id("alias/doomed").send().await),
        "NotFoundException"
    );
    assert_eq!(
        error_code(kms.decrypt().ciphertext_blob(blob).send().await),
        "InvalidCiphertextException"
    );
    let keys = kms.list_keys().send().await.unwrap();
    let ids: Vec<&str> = keys.keys().iter().filter_map(|k| k.key_id()).collect();
    assert_eq!(ids, [survivor.as_str()]);
    let events = sb.events(ACCOUNT_A).await;
    let deleted: Vec<_> = events.iter().filter(|e| e["eventName"] == "DeleteKey").collect();
    assert_eq!(deleted.len(), 2, "DeleteKey recorded once per key");
    assert!(deleted
        .iter()
        .all(|e| e["eventType"] == "AwsServiceEvent" && e["recipientAccountId"] == ACCOUNT_A));
    assert!(deleted.iter().any(|e| e["resources"][0]["ARN"].as_str().unwrap().ends_with(&doomed)));
}
