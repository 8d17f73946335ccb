//! The audit trail as the security team sees it through `aws-sdk-cloudtrail`: one
//! CloudTrail record per call, successful or not, with the right fields, findable by
//! every lookup attribute, scoped to the caller's account, and never holding a secret.

use aws_sdk_cloudtrail::types::{LookupAttribute, LookupAttributeKey};
use aws_sdk_kms::operation::RequestId;
use aws_sdk_kms::primitives::Blob;
use base64::Engine;

use crate::sandbox::{error_code, AccessKey, Sandbox, ACCOUNT_A, ACCOUNT_B, REGION};

fn by_request<'a>(events: &'a [serde_json::Value], request_id: &str) -> &'a serde_json::Value {
    let matching: Vec<_> = events.iter().filter(|e| e["requestID"] == request_id).collect();
    assert_eq!(matching.len(), 1, "exactly one record for request {request_id}");
    matching[0]
}

#[tokio::test]
async fn every_call_has_one_complete_record_and_no_secret() {
    let sb = Sandbox::start().await;
    let kms = sb.kms(ACCOUNT_A);
    let access_key = sb.access_key(ACCOUNT_A);
    let created = kms.create_key().description("audited").send().await.unwrap();
    let create_request = created.request_id().unwrap().to_owned();
    let key_id = created.key_metadata().unwrap().key_id().to_owned();
    let key_arn = format!("arn:aws:kms:{REGION}:{ACCOUNT_A}:key/{key_id}");

    let secret_text = b"TOP-SECRET-PLAINTEXT-4242".to_vec();
    let encrypted = kms
        .encrypt()
        .key_id(&key_id)
        .plaintext(Blob::new(secret_text.clone()))
        .encryption_context("Department", "Finance")
        .send()
        .await
        .unwrap();
    let encrypt_request = encrypted.request_id().unwrap().to_owned();
    let data_key =
        kms.generate_data_key().key_id(&key_id).number_of_bytes(32).send().await.unwrap();
    let data_key_plaintext = data_key.plaintext().unwrap().as_ref().to_vec();
    let failed =
        kms.decrypt().ciphertext_blob(encrypted.ciphertext_blob().unwrap().clone()).send().await;
    let failed_request = failed
        .as_ref()
        .err()
        .and_then(|e| e.raw_response())
        .and_then(|r| r.headers().get("x-amzn-requestid").map(str::to_owned));
    assert_eq!(error_code(failed), "InvalidCiphertextException");
    let random = kms.generate_random().number_of_bytes(32).send().await.unwrap();

    let events = sb.events(ACCOUNT_A).await;

    let create = by_request(&events, &create_request);
    assert_eq!(create["eventVersion"], "1.08");
    assert_eq!(create["eventSource"], "kms.amazonaws.com");
    assert_eq!(create["eventName"], "CreateKey");
    assert_eq!(create["awsRegion"], REGION);
    assert_eq!(create["sourceIPAddress"], "127.0.0.1");
    assert!(
        create["userAgent"].as_str().unwrap().contains("aws-sdk-rust"),
        "{}",
        create["userAgent"]
    );
    assert_eq!(create["userIdentity"]["type"], "IAMUser");
    assert_eq!(create["userIdentity"]["arn"], format!("arn:aws:iam::{ACCOUNT_A}:user/dev"));
    assert_eq!(create["userIdentity"]["accountId"], ACCOUNT_A);
    assert_eq!(create["userIdentity"]["accessKeyId"], access_key.id);
    assert_eq!(create["userIdentity"]["userName"], "dev");
    assert_eq!(create["requestParameters"]["description"], "audited");
    assert_eq!(create["responseElements"]["keyMetadata"]["keyId"], key_id.as_str());
    assert_eq!(create["responseElements"]["keyMetadata"]["aWSAccountId"], ACCOUNT_A);
    assert_eq!(create["readOnly"], false);
    assert_eq!(create["resources"][0]["ARN"], key_arn.as_str());
    assert_eq!(create["resources"][0]["type"], "AWS::KMS::Key");
    assert_eq!(create["resources"][0]["accountId"], ACCOUNT_A);
    assert_eq!(create["eventType"], "AwsApiCall");
    assert_eq!(create["managementEvent"], true);
    assert_eq!(create["recipientAccountId"], ACCOUNT_A);
    assert_eq!(create["eventCategory"], "Management");
    assert!(create["eventID"].as_str().is_some_and(|id| id.len() == 36));
    assert!(create["eventTime"].as_str().is_some_and(|t| t.ends_with('Z')));
    assert!(create.get("errorCode").is_none());

    let encrypt = by_request(&events, &encrypt_request);
    assert_eq!(encrypt["eventName"], "Encrypt");
    assert_eq!(encrypt["readOnly"], true);
    assert_eq!(encrypt["requestParameters"]["keyId"], key_id.as_str());
    assert_eq!(encrypt["requestParameters"]["encryptionContext"]["Department"], "Finance");
    assert!(encrypt["responseElements"].is_null());

    let failure = by_request(&events, &failed_request.expect("failed call has a request id"));
    assert_eq!(failure["eventName"], "Decrypt");
    assert_eq!(failure["errorCode"], "InvalidCiphertextException");
    assert!(failure.get("errorMessage").is_some());

    // Every call so far is there: readiness probes plus the five above.
    for name in ["CreateKey", "Encrypt", "GenerateDataKey", "Decrypt", "GenerateRandom"] {
        assert!(events.iter().any(|e| e["eventName"] == name), "{name} recorded");
    }

    // No plaintext, data key or random bytes, raw, base64 or hex, anywhere.
    let everything = serde_json::to_string(&events).unwrap();
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    for secret in [
        secret_text.as_slice(),
        data_key_plaintext.as_slice(),
        random.plaintext().unwrap().as_ref(),
    ] {
        assert!(!everything.contains(&b64(secret)), "base64 secret in audit log");
        assert!(!everything.contains(&hex(secret)), "hex secret in audit log");
    }
    assert!(!everything.contains("TOP-SECRET-PLAINTEXT"));
    assert!(
        !everything.contains(&b64(encrypted.ciphertext_blob().unwrap().as_ref())),
        "no ciphertext either"
    );
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn lookup_attributes_time_paging_and_account_scope() {
    let sb = Sandbox::start().await;
    let kms = sb.kms(ACCOUNT_A);
    let k1 = sb.create_key(ACCOUNT_A).await;
    let k2 = sb.create_key(ACCOUNT_A).await;
    kms.describe_key().key_id(&k1).send().await.unwrap();
    kms.encrypt().key_id(&k1).plaintext(Blob::new(b"x".to_vec())).send().await.unwrap();
    sb.create_key(ACCOUNT_B).await;
    let trail = sb.cloudtrail(ACCOUNT_A);

    let lookup = |key: LookupAttributeKey, value: String| {
        let trail = trail.clone();
        async move {
            let attribute = LookupAttribute::builder()
                .attribute_key(key)
                .attribute_value(value)
                .build()
                .unwrap();
            let page = trail.lookup_events().lookup_attributes(attribute).send().await.unwrap();
            page.events().iter().map(|e| e.to_owned()).collect::<Vec<_>>()
        }
    };
    let creates = lookup(LookupAttributeKey::EventName, "CreateKey".into()).await;
    assert_eq!(creates.len(), 2, "account B's CreateKey is not visible to A");
    assert!(creates
        .iter()
        .all(|e| e.event_name() == Some("CreateKey")
            && e.event_source() == Some("kms.amazonaws.com")));
    assert!(creates[0].event_time().unwrap() >= creates[1].event_time().unwrap(), "newest first");

    let k1_arn = format!("arn:aws:kms:{REGION}:{ACCOUNT_A}:key/{k1}");
    let k1_events = lookup(LookupAttributeKey::ResourceName, k1_arn.clone()).await;
    let names: std::collections::BTreeSet<_> =
        k1_events.iter().filter_map(|e| e.event_name()).collect();
    assert_eq!(names, ["CreateKey", "DescribeKey", "Encrypt"].into_iter().collect());
    assert!(k1_events
        .iter()
        .all(|e| e.resources().iter().any(|r| r.resource_name() == Some(k1_arn.as_str()))));
    assert!(!k1_events.iter().any(|e| e.cloud_trail_event().unwrap().contains(&k2)));

    let writes = lookup(LookupAttributeKey::ReadOnly, "false".into()).await;
    assert!(!writes.is_empty() && writes.iter().all(|e| e.read_only() == Some("false")));
    let by_user = lookup(LookupAttributeKey::Username, "dev".into()).await;
    assert!(by_user.len() >= 4);
    let access_key = sb.access_key(ACCOUNT_A).id;
    let by_key = lookup(LookupAttributeKey::AccessKeyId, access_key.clone()).await;
    assert!(by_key.iter().all(|e| e.access_key_id() == Some(access_key.as_str())));
    let one = lookup(LookupAttributeKey::EventId, creates[0].event_id().unwrap().to_owned()).await;
    assert_eq!(one.len(), 1);

    // Paging with MaxResults walks everything exactly once.
    let all = sb.events(ACCOUNT_A).await;
    let mut ids = Vec::new();
    let mut token = None;
    loop {
        let page = trail.lookup_events().max_results(2).set_next_token(token).send().await.unwrap();
        assert!(page.events().len() <= 2);
        ids.extend(page.events().iter().filter_map(|e| e.event_id().map(str::to_owned)));
        token = page.next_token().map(str::to_owned);
        if token.is_none() {
            break;
        }
    }
    let unique: std::collections::BTreeSet<_> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "no duplicates across pages");
    assert!(ids.len() >= all.len(), "paging sees every event seen before it");

    // A time window before any event is empty; an empty window is refused.
    let past = aws_sdk_cloudtrail::primitives::DateTime::from_secs(1_000_000_000);
    let earlier = aws_sdk_cloudtrail::primitives::DateTime::from_secs(1_000_000_100);
    let empty = trail.lookup_events().start_time(past).end_time(earlier).send().await.unwrap();
    assert!(empty.events().is_empty());
    let backwards = trail.lookup_events().start_time(earlier).end_time(past).send().await;
    let code = backwards
        .err()
        .and_then(|e| aws_sdk_cloudtrail::error::ProvideErrorMetadata::code(&e).map(str::to_owned));
    assert_eq!(code.as_deref(), Some("InvalidTimeRangeException"));

    let b_events = sb.events(ACCOUNT_B).await;
    assert!(b_events.iter().all(|e| e["recipientAccountId"] == ACCOUNT_B));
    assert!(!serde_json::to_string(&b_events).unwrap().contains(&k1));
}

#[tokio::test]
async fn failed_authentication_with_a_known_key_is_recorded() {
    let sb = Sandbox::start().await;
    let good = sb.access_key(ACCOUNT_A);
    let forged = sb.kms_with(AccessKey { secret: "y".repeat(40), ..good.clone() }, REGION);
    assert_eq!(
        error_code(forged.describe_key().key_id("alias/anything").send().await),
        "InvalidSignatureException"
    );
    let events = sb.events(ACCOUNT_A).await;
    let denied: Vec<_> =
        events.iter().filter(|e| e["errorCode"] == "InvalidSignatureException").collect();
    assert_eq!(denied.len(), 1);
    assert_eq!(denied[0]["eventName"], "DescribeKey");
    assert_eq!(denied[0]["userIdentity"]["accessKeyId"], good.id);
}

#[tokio::test]
async fn no_call_succeeds_without_its_audit_record() {
    let sb = Sandbox::start().await;
    let kms = sb.kms(ACCOUNT_A);
    kms.generate_random().number_of_bytes(8).send().await.unwrap();
    // Take the audit stream away: the gateway can no longer get an acknowledgement.
    let client = async_nats::connect(sb.nats.url()).await.unwrap();
    async_nats::jetstream::new(client).delete_stream(kms_bus::AUDIT_STREAM).await.unwrap();
    assert_eq!(
        error_code(kms.generate_random().number_of_bytes(8).send().await),
        "DependencyTimeoutException"
    );
}

fn event_ids(events: &[serde_json::Value]) -> Vec<String> {
    events.iter().map(|e| e["eventID"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn audit_outage_loses_nothing_and_a_lost_store_is_rebuilt_by_replay() {
    let mut sb = Sandbox::start_with_separate_audit().await;
    sb.wait_audit().await;
    let kms = sb.kms(ACCOUNT_A);

    // With the audit service down, calls still succeed: the stream holds their records.
    sb.stop_audit(false).await;
    let mut request_ids = Vec::new();
    for _ in 0..5 {
        let out = kms.generate_random().number_of_bytes(8).send().await.unwrap();
        request_ids.push(out.request_id().unwrap().to_owned());
    }
    sb.start_audit().await;
    sb.wait_audit().await;
    let events = sb.events(ACCOUNT_A).await;
    for id in &request_ids {
        let n = events.iter().filter(|e| e["requestID"] == id.as_str()).count();
        assert_eq!(n, 1, "the call made during the outage is recorded exactly once");
    }
    let ids = event_ids(&events);
    let unique: std::collections::BTreeSet<_> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "nothing doubled");

    // The store is lost entirely: replaying the stream rebuilds it.
    sb.stop_audit(true).await;
    sb.start_audit().await;
    sb.wait_audit().await;
    let replayed = event_ids(&sb.events(ACCOUNT_A).await);
    let replayed_set: std::collections::BTreeSet<_> = replayed.iter().collect();
    assert_eq!(replayed_set.len(), replayed.len(), "nothing doubled by the replay");
    for id in &ids {
        assert!(replayed_set.contains(id), "event {id} is back after the replay");
    }
    sb.stop_audit(false).await;
    let store = kms_audit_log::AuditStore::open(sb.separate_audit_dir()).unwrap();
    let verified = store.verify_chain().unwrap();
    assert!(verified as usize >= replayed.len(), "the rebuilt hash chain verifies");
}
