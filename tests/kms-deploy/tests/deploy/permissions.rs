//! The permission matrix as a real 3-node NATS cluster enforces it: every user against
//! every operation subject of the bus catalogue, the audit stream's and the change
//! announcements' subjects, and the JetStream API; then the calls the services make,
//! request by request, across nodes.

use std::collections::BTreeSet;
use std::time::Duration;

use futures::StreamExt;
use kms_bus::Operation;
use kms_deploy::{repo_root, Deployment, ServerErrors};

/// Every `kms.v1.<service>.<Operation>` subject of `libs/kms-bus/src/ops.rs`, read from
/// the source so an operation added there is checked here without anyone remembering.
fn catalogue() -> Vec<String> {
    let text = std::fs::read_to_string(repo_root().join("libs/kms-bus/src/ops.rs")).unwrap();
    let mut subjects = Vec::new();
    let mut service: Option<String> = None;
    for line in text.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("operations!(\"") {
            service = rest.split('"').next().map(str::to_owned);
        } else if line.starts_with(");") {
            service = None;
        } else if let (Some(service), Some((name, _))) = (&service, line.split_once('(')) {
            if !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric()) {
                subjects.push(format!("kms.v1.{service}.{name}"));
            }
        }
    }
    subjects
}

fn publish_subjects() -> Vec<String> {
    let mut subjects = catalogue();
    subjects.extend(
        [
            "kms.v1.audit-events.111122223333",
            "kms.v1.changes.111122223333.1234abcd-12ab-34cd-56ef-1234567890ab",
            "kms.v1.other.Anything",
            "$JS.API.INFO",
            "$JS.API.STREAM.INFO.KMS_AUDIT",
            "$JS.API.STREAM.CREATE.KMS_AUDIT",
            "$JS.API.STREAM.UPDATE.KMS_AUDIT",
            "$JS.API.STREAM.DELETE.KMS_AUDIT",
            "$JS.API.STREAM.PURGE.KMS_AUDIT",
            "$JS.API.STREAM.MSG.DELETE.KMS_AUDIT",
            "$JS.API.STREAM.CREATE.OTHER",
            "$JS.API.CONSUMER.INFO.KMS_AUDIT.kms-audit",
            "$JS.API.CONSUMER.CREATE.KMS_AUDIT.kms-audit",
            "$JS.API.CONSUMER.CREATE.KMS_AUDIT.rogue",
            "$JS.API.CONSUMER.DELETE.KMS_AUDIT.kms-audit",
            "$JS.API.CONSUMER.MSG.NEXT.KMS_AUDIT.kms-audit",
            "$JS.ACK.KMS_AUDIT.kms-audit.1.1.1.1700000000000000000.0",
            "_INBOX.kms-gateway.stolen",
            "_INBOX.kms-gateway.stolen.sync",
            "_INBOX.kms-metadata.stolen",
        ]
        .map(str::to_owned),
    );
    subjects
}

fn subscribe_cases() -> Vec<(String, Option<String>)> {
    let services = ["gateway", "metadata", "policy", "crypto", "audit"];
    let mut cases = Vec::new();
    for service in services {
        let subject = format!("kms.v1.{service}.>");
        cases.push((subject.clone(), None));
        cases.push((subject.clone(), Some(format!("kms-{service}"))));
        cases.push((subject, Some("rogue".to_owned())));
        cases.push((format!("_INBOX.kms-{service}.>"), None));
    }
    for subject in [
        ">",
        "kms.>",
        "kms.v1.>",
        "_INBOX.>",
        "kms.v1.changes.>",
        "kms.v1.audit-events.>",
        "$JS.API.>",
    ] {
        cases.push((subject.to_owned(), None));
    }
    cases
}

/// Waits (a few seconds at most) for the server to report a `kind` violation on `subject`.
async fn refused(errors: &ServerErrors, kind: &str, subject: &str) -> bool {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while tokio::time::Instant::now() < deadline {
        if errors.violations(kind).iter().any(|v| v == subject) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

fn case_name(subject: &str, queue: Option<&str>) -> String {
    match queue {
        Some(q) => format!("{subject} {q}"),
        None => subject.to_owned(),
    }
}

/// Waits until the server has reported at least `publish` publish and `subscribe`
/// subscription violations (or a few seconds pass), and returns what it reported.
async fn reported(
    errors: &ServerErrors,
    publish: usize,
    subscribe: usize,
) -> (BTreeSet<String>, BTreeSet<String>) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let p = errors.violations("Publish");
        let s = errors.violations("Subscription");
        if (p.len() >= publish && s.len() >= subscribe) || tokio::time::Instant::now() > deadline {
            return (p.into_iter().collect(), s.into_iter().collect());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[test]
fn the_catalogue_is_read_whole() {
    let subjects = catalogue();
    for expected in [
        kms_bus::metadata::CreateKey::subject(),
        kms_bus::metadata::SetImportedMaterial::subject(),
        kms_bus::crypto::Encrypt::subject(),
        kms_bus::crypto::VerifyMac::subject(),
        kms_bus::policy::DeletePolicies::subject(),
        kms_bus::audit::LookupEvents::subject(),
    ] {
        assert!(subjects.contains(&expected), "{expected} missing from {subjects:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_user_is_held_to_the_matrix() {
    let d = Deployment::start().await.unwrap();
    let publish = publish_subjects();
    let subscribe = subscribe_cases();
    for (i, user) in d.matrix.users.iter().enumerate() {
        let (client, errors) = d.raw(&user.service, i % 3).await.unwrap();
        for subject in &publish {
            client.publish(subject.clone(), "".into()).await.unwrap();
        }
        let mut subscriptions = Vec::new();
        for (subject, queue) in &subscribe {
            let sub = match queue {
                Some(q) => client.queue_subscribe(subject.clone(), q.clone()).await,
                None => client.subscribe(subject.clone()).await,
            };
            subscriptions.push(sub.unwrap());
        }
        // The server answers a PING only after the operations before it: every
        // violation is reported by the time the flush returns.
        client.flush().await.unwrap();

        let denied_publish: BTreeSet<String> =
            publish.iter().filter(|s| !user.may_publish(s)).cloned().collect();
        let denied_subscribe: BTreeSet<String> = subscribe
            .iter()
            .filter(|(s, q)| !user.may_subscribe(s, q.as_deref()))
            .map(|(s, q)| case_name(s, q.as_deref()))
            .collect();
        let (publish_violations, subscribe_violations) =
            reported(&errors, denied_publish.len(), denied_subscribe.len()).await;
        assert_eq!(publish_violations, denied_publish, "publish violations of {}", user.user);
        assert_eq!(subscribe_violations, denied_subscribe, "subscribe violations of {}", user.user);
        assert!(denied_publish.len() < publish.len(), "{} may publish something", user.user);
        drop(subscriptions);
    }
}

/// Answers every request on `kms.v1.<service>.>` (as the service, in its queue group)
/// with `<service> answered <subject>`, and counts what it saw.
async fn responder(
    d: &Deployment,
    service: &str,
    node: usize,
) -> tokio::sync::watch::Receiver<Vec<String>> {
    let (client, _) = d.raw(service, node).await.unwrap();
    let mut sub = client
        .queue_subscribe(format!("kms.v1.{service}.>"), format!("kms-{service}"))
        .await
        .unwrap();
    client.flush().await.unwrap();
    let (seen_tx, seen) = tokio::sync::watch::channel(Vec::new());
    let service = service.to_owned();
    tokio::spawn(async move {
        while let Some(message) = sub.next().await {
            let subject = message.subject.to_string();
            if let Some(reply) = message.reply {
                let answer = format!("{service} answered {subject}");
                // allow_responses: a reply to a request it received, whatever its inbox.
                let _ = client.publish(reply, answer.into()).await;
            }
            seen_tx.send_modify(|seen| seen.push(subject));
        }
    });
    seen
}

async fn request(client: &async_nats::Client, subject: &str) -> Result<String, String> {
    client
        .request(subject.to_owned(), "".into())
        .await
        .map(|m| String::from_utf8_lossy(&m.payload).into_owned())
        .map_err(|e| e.to_string())
}

/// A request that must be answered. Interest crosses the cluster's routes a moment after
/// a subscription is made, so a first "no responders" is retried for a few seconds.
async fn answer(client: &async_nats::Client, subject: &str) -> Result<String, String> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let result = request(client, subject).await;
        if result.is_ok() || tokio::time::Instant::now() > deadline {
            return result;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_reach_only_what_they_must() {
    let d = Deployment::start().await.unwrap();
    let metadata_seen = responder(&d, "metadata", 1).await;
    let crypto_seen = responder(&d, "crypto", 2).await;
    let _policy_seen = responder(&d, "policy", 0).await;
    let (gateway, _) = d.raw("gateway", 0).await.unwrap();
    let (crypto, crypto_errors) = d.raw("crypto", 2).await.unwrap();
    let (metadata, metadata_errors) = d.raw("metadata", 1).await.unwrap();
    let (policy, _) = d.raw("policy", 0).await.unwrap();

    // The gateway calls every service, across nodes, and gets the answers.
    assert_eq!(
        answer(&gateway, "kms.v1.metadata.ListKeys").await,
        Ok("metadata answered kms.v1.metadata.ListKeys".to_owned())
    );
    assert_eq!(
        answer(&gateway, "kms.v1.crypto.Decrypt").await,
        Ok("crypto answered kms.v1.crypto.Decrypt".to_owned())
    );
    assert_eq!(
        answer(&gateway, "kms.v1.policy.PutPolicy").await,
        Ok("policy answered kms.v1.policy.PutPolicy".to_owned())
    );

    // The crypto service cannot call the metadata service: refused, never delivered.
    assert!(request(&crypto, "kms.v1.metadata.ListKeys").await.is_err());
    assert!(refused(&crypto_errors, "Publish", "kms.v1.metadata.ListKeys").await);
    assert_eq!(*metadata_seen.borrow(), vec!["kms.v1.metadata.ListKeys".to_owned()]);

    // Nor listen to its requests, in its queue group or outside it.
    let mut spy = crypto.subscribe("kms.v1.metadata.>").await.unwrap();
    let mut queue_spy =
        crypto.queue_subscribe("kms.v1.metadata.>", "kms-metadata".into()).await.unwrap();
    crypto.flush().await.unwrap();
    assert!(answer(&gateway, "kms.v1.metadata.CreateKey").await.is_ok());
    assert!(refused(&crypto_errors, "Subscription", "kms.v1.metadata.>").await);
    assert!(refused(&crypto_errors, "Subscription", "kms.v1.metadata.> kms-metadata").await);
    let quiet = Duration::from_millis(300);
    assert!(tokio::time::timeout(quiet, spy.next()).await.is_err(), "the spy heard a request");
    assert!(
        tokio::time::timeout(quiet, queue_spy.next()).await.is_err(),
        "the spy heard a request"
    );

    // The metadata scheduler calls the crypto and policy operations of deletion,
    // rotation and expiry, and nothing else of theirs.
    for subject in [
        "kms.v1.crypto.DestroyMaterial",
        "kms.v1.crypto.CreateMaterial",
        "kms.v1.crypto.DeleteImportedMaterial",
        "kms.v1.policy.DeletePolicies",
    ] {
        let answered = answer(&metadata, subject).await;
        assert!(answered.as_deref().is_ok_and(|a| a.ends_with(subject)), "{subject}: {answered:?}");
    }
    for subject in ["kms.v1.crypto.Decrypt", "kms.v1.crypto.Encrypt", "kms.v1.policy.PutPolicy"] {
        assert!(request(&metadata, subject).await.is_err(), "metadata called {subject}");
        assert!(refused(&metadata_errors, "Publish", subject).await, "{subject}");
    }
    assert!(!crypto_seen.borrow().iter().any(|s| s == "kms.v1.crypto.Encrypt"));

    // No service reads another's replies: the gateway's inbox is its own.
    let mut snoop = metadata.subscribe("_INBOX.kms-gateway.>").await.unwrap();
    metadata.flush().await.unwrap();
    assert!(answer(&gateway, "kms.v1.crypto.GenerateDataKey").await.is_ok());
    assert!(tokio::time::timeout(quiet, snoop.next()).await.is_err(), "metadata read a reply");
    assert!(refused(&metadata_errors, "Subscription", "_INBOX.kms-gateway.>").await);

    // Change announcements: metadata and policy publish, the gateway hears them; the
    // crypto service can do neither.
    let mut changes = gateway.subscribe("kms.v1.changes.>").await.unwrap();
    gateway.flush().await.unwrap();
    let mut heard = BTreeSet::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    // Published until heard: the gateway's interest reaches the other nodes a moment
    // after it subscribed.
    while heard.len() < 2 {
        assert!(tokio::time::Instant::now() < deadline, "announcements heard: {heard:?}");
        metadata.publish("kms.v1.changes.111122223333.key-from-metadata", "".into()).await.unwrap();
        policy.publish("kms.v1.changes.111122223333.key-from-policy", "".into()).await.unwrap();
        if let Ok(Some(message)) =
            tokio::time::timeout(Duration::from_millis(100), changes.next()).await
        {
            heard.insert(message.subject.to_string());
        }
    }
    assert_eq!(
        heard,
        BTreeSet::from([
            "kms.v1.changes.111122223333.key-from-metadata".to_owned(),
            "kms.v1.changes.111122223333.key-from-policy".to_owned()
        ])
    );
    crypto.publish("kms.v1.changes.111122223333.key-from-crypto", "".into()).await.unwrap();
    crypto.flush().await.unwrap();
    assert!(
        refused(&crypto_errors, "Publish", "kms.v1.changes.111122223333.key-from-crypto").await
    );
    while let Ok(Some(message)) = tokio::time::timeout(quiet, changes.next()).await {
        assert!(!message.subject.ends_with("key-from-crypto"), "crypto announced a change");
    }
}
