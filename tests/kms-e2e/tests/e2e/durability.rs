//! Restarting everything (services and nats-server) loses nothing acknowledged: keys,
//! states, aliases, tags, policies and audit events survive, and old ciphertexts still
//! decrypt.

use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{KeyState, Tag};

use crate::sandbox::{Sandbox, ACCOUNT_A};

#[tokio::test]
async fn restart_keeps_everything_acknowledged() {
    let mut sb = Sandbox::start().await;
    let id;
    let blob;
    let disabled;
    let policy = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Sid":"keep","Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::{ACCOUNT_A}:root"}},"Action":"kms:*","Resource":"*"}}]}}"#
    );
    {
        let kms = sb.kms(ACCOUNT_A);
        id = sb.create_key(ACCOUNT_A).await;
        disabled = sb.create_key(ACCOUNT_A).await;
        kms.create_alias().alias_name("alias/durable").target_key_id(&id).send().await.unwrap();
        kms.tag_resource()
            .key_id(&id)
            .tags(Tag::builder().tag_key("Team").tag_value("Core").build().unwrap())
            .send()
            .await
            .unwrap();
        kms.put_key_policy()
            .key_id(&id)
            .policy_name("default")
            .policy(&policy)
            .send()
            .await
            .unwrap();
        kms.disable_key().key_id(&disabled).send().await.unwrap();
        blob = kms
            .encrypt()
            .key_id("alias/durable")
            .plaintext(Blob::new(b"survives restarts".to_vec()))
            .encryption_context("k", "v")
            .send()
            .await
            .unwrap()
            .ciphertext_blob
            .unwrap();
    }
    let before = sb.events(ACCOUNT_A).await;

    sb.restart().await;

    let kms = sb.kms(ACCOUNT_A);
    let back =
        kms.decrypt().ciphertext_blob(blob).encryption_context("k", "v").send().await.unwrap();
    assert_eq!(back.plaintext().unwrap().as_ref(), b"survives restarts");
    let via_alias = kms.describe_key().key_id("alias/durable").send().await.unwrap();
    assert_eq!(via_alias.key_metadata().unwrap().key_id(), id);
    let state = kms.describe_key().key_id(&disabled).send().await.unwrap();
    assert_eq!(state.key_metadata().unwrap().key_state(), Some(&KeyState::Disabled));
    let tags = kms.list_resource_tags().key_id(&id).send().await.unwrap();
    assert_eq!(tags.tags()[0].tag_value(), "Core");
    let got = kms.get_key_policy().key_id(&id).send().await.unwrap();
    assert_eq!(got.policy(), Some(policy.as_str()));
    assert_eq!(kms.list_keys().send().await.unwrap().keys().len(), 2);

    let after = sb.events(ACCOUNT_A).await;
    let ids = |events: &[serde_json::Value]| -> std::collections::BTreeSet<String> {
        events.iter().map(|e| e["eventID"].as_str().unwrap().to_owned()).collect()
    };
    let (before_ids, after_ids) = (ids(&before), ids(&after));
    assert!(before_ids.is_subset(&after_ids), "every event from before the restart is still there");
    assert_eq!(after_ids.len(), after.len(), "no event stored twice");
    assert!(after.iter().any(|e| e["eventName"] == "Decrypt"), "new events keep coming");
}

/// A pod being deleted while its NATS is unreachable (the cluster is going down too)
/// must still exit: the services get `SHUTDOWN_GRACE` to finish, then `run_all` returns.
#[tokio::test]
async fn services_stop_even_when_nats_is_gone() {
    let mut sb = Sandbox::start().await;
    sb.create_key(ACCOUNT_A).await;
    let patience = kms_server::SHUTDOWN_GRACE + std::time::Duration::from_secs(10);
    let (took, result) = sb
        .stop_without_nats(patience)
        .await
        .expect("the services stop within the grace period although NATS is gone");
    assert!(took <= kms_server::SHUTDOWN_GRACE + std::time::Duration::from_secs(2), "{took:?}");
    // Whether every service finished by itself or the grace ran out, run_all returns; an
    // error names the reason.
    if let Err(e) = result {
        assert!(e.to_string().contains("did not stop"), "{e}");
    }
}
