//! Golden records: every KMS operation is called with `aws-sdk-kms` (successes and
//! failures), its record is read back through `LookupEvents`, and compared with the JSON
//! file of the same name under `tests/golden/`. What differs from run to run (ids, times,
//! the SDK's user agent, the caller's address, key ids and grant ids) is replaced by a
//! placeholder first; everything else — the identity, which request parameters are kept
//! and under which names, the response elements, resources, error code and message — is
//! pinned. `UPDATE_GOLDEN=1` rewrites the files; review the diff before committing it.

use std::collections::BTreeMap;
use std::path::PathBuf;

use aws_sdk_kms::operation::RequestId;
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{
    DataKeyPairSpec, DataKeySpec, GrantOperation, KeySpec, KeyUsageType, MacAlgorithmSpec,
    MessageType, SigningAlgorithmSpec, Tag,
};
use serde_json::Value;

use crate::sandbox::{Sandbox, ACCOUNT_A, ACCOUNT_B, REGION};

/// The request id of an answer, successful or not.
fn request_id<T, E>(result: &Result<T, aws_sdk_kms::error::SdkError<E>>) -> String
where
    T: RequestId,
{
    match result {
        Ok(output) => output.request_id().expect("x-amzn-requestid").to_owned(),
        Err(e) => e
            .raw_response()
            .and_then(|r| r.headers().get("x-amzn-requestid"))
            .expect("x-amzn-requestid on the error")
            .to_owned(),
    }
}

/// The operations called, in order, each under the name of its golden file.
#[derive(Default)]
struct Cases {
    /// (golden name, account whose trail holds it, request id)
    calls: Vec<(&'static str, &'static str, String)>,
    /// Events the service emits itself (no request id): (golden name, event name, key ARN).
    service_events: Vec<(&'static str, &'static str, String)>,
    /// Volatile strings (key ids, grant ids, access key ids) and their placeholders.
    placeholders: Vec<(String, String)>,
}

impl Cases {
    fn add<T: RequestId, E>(
        &mut self,
        name: &'static str,
        result: &Result<T, aws_sdk_kms::error::SdkError<E>>,
    ) {
        self.add_in(name, ACCOUNT_A, result);
    }

    fn add_in<T: RequestId, E>(
        &mut self,
        name: &'static str,
        account: &'static str,
        result: &Result<T, aws_sdk_kms::error::SdkError<E>>,
    ) {
        self.calls.push((name, account, request_id(result)));
    }

    fn placeholder(&mut self, value: &str, name: &str) {
        self.placeholders.push((value.to_owned(), format!("<{name}>")));
    }
}

/// The record with every volatile value replaced by a placeholder.
fn normalized(record: &Value, placeholders: &[(String, String)]) -> Value {
    let mut text = record.to_string();
    for (value, placeholder) in placeholders {
        text = text.replace(value.as_str(), placeholder);
    }
    let mut v: Value = serde_json::from_str(&text).expect("JSON");
    // A service event's address and agent are fixed ("AWS Internal"): pinned, not hidden.
    let api_call = v["eventType"] == "AwsApiCall";
    for (field, placeholder) in [
        ("eventID", "<event-id>"),
        ("eventTime", "<event-time>"),
        ("requestID", "<request-id>"),
        ("userAgent", "<user-agent>"),
        ("sourceIPAddress", "<source-ip>"),
        ("sharedEventID", "<shared-event-id>"),
    ] {
        if !api_call && matches!(field, "userAgent" | "sourceIPAddress") {
            continue;
        }
        if let Some(slot) = v.get_mut(field) {
            *slot = Value::String(placeholder.to_owned());
        }
    }
    if let Some(response) = v.get_mut("responseElements") {
        normalize_dates(response);
    }
    v
}

fn normalize_dates(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for (k, item) in map.iter_mut() {
                if k.ends_with("Date") || k == "validTo" {
                    *item = Value::String("<date>".to_owned());
                } else {
                    normalize_dates(item);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(normalize_dates),
        _ => {}
    }
}

/// The service events named `name` about the key `arn`.
fn service_events<'a>(events: &'a [Value], name: &str, arn: &str) -> Vec<&'a Value> {
    events
        .iter()
        .filter(|e| {
            e["eventType"] == "AwsServiceEvent"
                && e["eventName"] == name
                && e["resources"][0]["ARN"] == arn
        })
        .collect()
}

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests").join("golden")
}

#[tokio::test]
async fn every_operation_s_record_matches_its_golden_file() {
    let sb = Sandbox::start().await;
    let kms = sb.kms(ACCOUNT_A);
    let mut c = Cases::default();
    c.placeholder(&sb.access_key(ACCOUNT_A).id, "access-key-id-a");
    c.placeholder(&sb.access_key(ACCOUNT_B).id, "access-key-id-b");
    let dev = format!("arn:aws:iam::{ACCOUNT_A}:user/dev");

    // Keys.
    let r = kms
        .create_key()
        .description("golden")
        .tags(Tag::builder().tag_key("Team").tag_value("Security").build().unwrap())
        .send()
        .await;
    c.add("CreateKey", &r);
    let key = r.unwrap().key_metadata.unwrap().key_id;
    c.placeholder(&key, "key-id");
    let other = sb.create_key(ACCOUNT_A).await;
    c.placeholder(&other, "other-key-id");
    let r = kms.describe_key().key_id(&key).send().await;
    c.add("DescribeKey", &r);
    let missing = "alias/does-not-exist";
    c.add("DescribeKey.NotFound", &kms.describe_key().key_id(missing).send().await);
    c.add("ListKeys", &kms.list_keys().limit(10).send().await);
    c.add(
        "UpdateKeyDescription",
        &kms.update_key_description().key_id(&key).description("golden, updated").send().await,
    );
    c.add("DisableKey", &kms.disable_key().key_id(&key).send().await);
    let r = kms.encrypt().key_id(&key).plaintext(Blob::new(b"secret".to_vec())).send().await;
    c.add("Encrypt.Disabled", &r);
    c.add("EnableKey", &kms.enable_key().key_id(&key).send().await);

    // Cryptographic operations.
    let r = kms
        .encrypt()
        .key_id(&key)
        .plaintext(Blob::new(b"golden secret".to_vec()))
        .encryption_context("Department", "Finance")
        .send()
        .await;
    c.add("Encrypt", &r);
    let blob = r.unwrap().ciphertext_blob.unwrap();
    let r = kms
        .decrypt()
        .ciphertext_blob(blob.clone())
        .encryption_context("Department", "Finance")
        .send()
        .await;
    c.add("Decrypt", &r);
    let r = kms.decrypt().ciphertext_blob(blob.clone()).send().await;
    c.add("Decrypt.InvalidCiphertext", &r);
    let r = kms
        .re_encrypt()
        .ciphertext_blob(blob)
        .source_encryption_context("Department", "Finance")
        .destination_key_id(&other)
        .destination_encryption_context("Department", "Legal")
        .send()
        .await;
    c.add("ReEncrypt", &r);
    let r = kms
        .generate_data_key()
        .key_id(&key)
        .key_spec(DataKeySpec::Aes256)
        .encryption_context("Purpose", "golden")
        .send()
        .await;
    c.add("GenerateDataKey", &r);
    let r = kms.generate_data_key_without_plaintext().key_id(&key).number_of_bytes(32).send().await;
    c.add("GenerateDataKeyWithoutPlaintext", &r);
    c.add("GenerateRandom", &kms.generate_random().number_of_bytes(16).send().await);
    let r = kms
        .generate_data_key_pair()
        .key_id(&key)
        .key_pair_spec(DataKeyPairSpec::EccNistP256)
        .send()
        .await;
    c.add("GenerateDataKeyPair", &r);
    let r = kms
        .generate_data_key_pair_without_plaintext()
        .key_id(&key)
        .key_pair_spec(DataKeyPairSpec::EccNistP256)
        .send()
        .await;
    c.add("GenerateDataKeyPairWithoutPlaintext", &r);

    // HMAC and signing keys.
    let hmac = kms
        .create_key()
        .key_spec(KeySpec::Hmac256)
        .key_usage(KeyUsageType::GenerateVerifyMac)
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap()
        .key_id;
    c.placeholder(&hmac, "hmac-key-id");
    let r = kms
        .generate_mac()
        .key_id(&hmac)
        .mac_algorithm(MacAlgorithmSpec::HmacSha256)
        .message(Blob::new(b"golden message".to_vec()))
        .send()
        .await;
    c.add("GenerateMac", &r);
    let mac = r.unwrap().mac.unwrap();
    let r = kms
        .verify_mac()
        .key_id(&hmac)
        .mac_algorithm(MacAlgorithmSpec::HmacSha256)
        .message(Blob::new(b"golden message".to_vec()))
        .mac(mac)
        .send()
        .await;
    c.add("VerifyMac", &r);
    let ecc = kms
        .create_key()
        .key_spec(KeySpec::EccNistP256)
        .key_usage(KeyUsageType::SignVerify)
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap()
        .key_id;
    c.placeholder(&ecc, "ecc-key-id");
    let r = kms
        .sign()
        .key_id(&ecc)
        .message(Blob::new(b"golden message".to_vec()))
        .message_type(MessageType::Raw)
        .signing_algorithm(SigningAlgorithmSpec::EcdsaSha256)
        .send()
        .await;
    c.add("Sign", &r);
    let signature = r.unwrap().signature.unwrap();
    let r = kms
        .verify()
        .key_id(&ecc)
        .message(Blob::new(b"golden message".to_vec()))
        .message_type(MessageType::Raw)
        .signing_algorithm(SigningAlgorithmSpec::EcdsaSha256)
        .signature(signature)
        .send()
        .await;
    c.add("Verify", &r);
    c.add("GetPublicKey", &kms.get_public_key().key_id(&ecc).send().await);

    // Aliases and tags.
    let r = kms.create_alias().alias_name("alias/golden").target_key_id(&key).send().await;
    c.add("CreateAlias", &r);
    let r = kms.update_alias().alias_name("alias/golden").target_key_id(&other).send().await;
    c.add("UpdateAlias", &r);
    c.add("ListAliases", &kms.list_aliases().key_id(&other).send().await);
    c.add("DeleteAlias", &kms.delete_alias().alias_name("alias/golden").send().await);
    let r = kms
        .tag_resource()
        .key_id(&key)
        .tags(Tag::builder().tag_key("Env").tag_value("test").build().unwrap())
        .send()
        .await;
    c.add("TagResource", &r);
    c.add("ListResourceTags", &kms.list_resource_tags().key_id(&key).send().await);
    c.add("UntagResource", &kms.untag_resource().key_id(&key).tag_keys("Env").send().await);

    // Key policies.
    c.add("GetKeyPolicy", &kms.get_key_policy().key_id(&key).policy_name("default").send().await);
    let policy = serde_json::json!({"Version": "2012-10-17", "Statement": [
        {"Sid": "owner", "Effect": "Allow", "Principal": {"AWS": format!("arn:aws:iam::{ACCOUNT_A}:root")},
         "Action": "kms:*", "Resource": "*"}]})
    .to_string();
    let r = kms.put_key_policy().key_id(&key).policy_name("default").policy(&policy).send().await;
    c.add("PutKeyPolicy", &r);
    c.add("ListKeyPolicies", &kms.list_key_policies().key_id(&key).send().await);

    // Rotation.
    let r = kms.enable_key_rotation().key_id(&key).rotation_period_in_days(90).send().await;
    c.add("EnableKeyRotation", &r);
    c.add("GetKeyRotationStatus", &kms.get_key_rotation_status().key_id(&key).send().await);
    c.add("RotateKeyOnDemand", &kms.rotate_key_on_demand().key_id(&key).send().await);
    let on_demand_arn = format!("arn:aws:kms:{REGION}:{ACCOUNT_A}:key/{key}");
    c.service_events.push(("RotateKey.OnDemand.ServiceEvent", "RotateKey", on_demand_arn));
    c.add("ListKeyRotations", &kms.list_key_rotations().key_id(&key).send().await);
    c.add("DisableKeyRotation", &kms.disable_key_rotation().key_id(&key).send().await);

    // Grants.
    let r = kms
        .create_grant()
        .key_id(&key)
        .grantee_principal(&dev)
        .retiring_principal(&dev)
        .operations(GrantOperation::Encrypt)
        .operations(GrantOperation::Decrypt)
        .name("golden-grant")
        .send()
        .await;
    c.add("CreateGrant", &r);
    let grant = r.unwrap().grant_id.unwrap();
    c.placeholder(&grant, "grant-id");
    let second = kms
        .create_grant()
        .key_id(&key)
        .grantee_principal(&dev)
        .operations(GrantOperation::Encrypt)
        .send()
        .await
        .unwrap()
        .grant_id
        .unwrap();
    c.placeholder(&second, "second-grant-id");
    c.add("ListGrants", &kms.list_grants().key_id(&key).send().await);
    let r = kms.list_retirable_grants().retiring_principal(&dev).send().await;
    c.add("ListRetirableGrants", &r);
    c.add("RetireGrant", &kms.retire_grant().key_id(&key).grant_id(&grant).send().await);
    c.add("RevokeGrant", &kms.revoke_grant().key_id(&key).grant_id(&second).send().await);

    // Imported key material (the token and the wrapped material are never recorded).
    let external = kms
        .create_key()
        .origin(aws_sdk_kms::types::OriginType::External)
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap()
        .key_id;
    c.placeholder(&external, "external-key-id");
    let r = kms
        .get_parameters_for_import()
        .key_id(&external)
        .wrapping_algorithm(aws_sdk_kms::types::AlgorithmSpec::RsaesOaepSha1)
        .wrapping_key_spec(aws_sdk_kms::types::WrappingKeySpec::Rsa2048)
        .send()
        .await;
    c.add("GetParametersForImport", &r);
    let params = r.unwrap();
    let wrapping = {
        use rsa::pkcs8::DecodePublicKey;
        rsa::RsaPublicKey::from_public_key_der(params.public_key().unwrap().as_ref()).unwrap()
    };
    let wrapped = wrapping
        .encrypt(&mut rand::rngs::OsRng, rsa::Oaep::new::<sha1::Sha1>(), &[7u8; 32])
        .unwrap();
    let r = kms
        .import_key_material()
        .key_id(&external)
        .import_token(params.import_token.unwrap())
        .encrypted_key_material(Blob::new(wrapped))
        .expiration_model(aws_sdk_kms::types::ExpirationModelType::KeyMaterialDoesNotExpire)
        .send()
        .await;
    c.add("ImportKeyMaterial", &r);
    let r = kms.delete_imported_key_material().key_id(&external).send().await;
    c.add("DeleteImportedKeyMaterial", &r);

    // Deletion.
    let r = kms.schedule_key_deletion().key_id(&other).pending_window_in_days(7).send().await;
    c.add("ScheduleKeyDeletion", &r);
    c.add("CancelKeyDeletion", &kms.cancel_key_deletion().key_id(&other).send().await);

    // Another account's key without a key policy that lets it in: refused, and on record
    // in both accounts.
    let arn = format!("arn:aws:kms:{REGION}:{ACCOUNT_A}:key/{key}");
    let r = sb
        .kms(ACCOUNT_B)
        .encrypt()
        .key_id(&arn)
        .plaintext(Blob::new(b"not yours".to_vec()))
        .send()
        .await;
    c.add_in("Encrypt.AccessDenied", ACCOUNT_B, &r);
    c.add_in("Encrypt.AccessDenied.KeyOwnerCopy", ACCOUNT_A, &r);

    // What the scheduler records itself: an automatic rotation and a deletion at the end
    // of its waiting period, once the clock has moved past both.
    let rotating = sb.create_key(ACCOUNT_A).await;
    c.placeholder(&rotating, "rotating-key-id");
    kms.enable_key_rotation().key_id(&rotating).rotation_period_in_days(90).send().await.unwrap();
    let doomed = sb.create_key(ACCOUNT_A).await;
    c.placeholder(&doomed, "doomed-key-id");
    kms.schedule_key_deletion().key_id(&doomed).pending_window_in_days(7).send().await.unwrap();
    sb.clock.advance_ms(90 * kms_core::schedule::DAY_MS);
    let key_arn = |id: &str| format!("arn:aws:kms:{REGION}:{ACCOUNT_A}:key/{id}");
    c.service_events.push(("RotateKey.ServiceEvent", "RotateKey", key_arn(&rotating)));
    c.service_events.push(("DeleteKey.ServiceEvent", "DeleteKey", key_arn(&doomed)));
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let events = sb.events(ACCOUNT_A).await;
        if c.service_events
            .iter()
            .all(|(_, name, arn)| !service_events(&events, name, arn).is_empty())
        {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the scheduler's events never came");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }

    compare_with_golden(&sb, &c).await;
}

async fn compare_with_golden(sb: &Sandbox, c: &Cases) {
    let mut trails: BTreeMap<&str, Vec<Value>> = BTreeMap::new();
    for account in [ACCOUNT_A, ACCOUNT_B] {
        trails.insert(account, sb.events(account).await);
    }
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let dir = golden_dir();
    let mut problems = Vec::new();
    let mut found: Vec<(&str, Value)> = Vec::new();
    for (name, account, request_id) in &c.calls {
        let matching: Vec<&Value> =
            trails[account].iter().filter(|e| e["requestID"] == request_id.as_str()).collect();
        assert_eq!(matching.len(), 1, "{name}: one record of request {request_id} in {account}");
        found.push((name, matching[0].clone()));
    }
    for (name, event_name, arn) in &c.service_events {
        let matching = service_events(&trails[ACCOUNT_A], event_name, arn);
        assert_eq!(matching.len(), 1, "{name}: one {event_name} of {arn}");
        found.push((name, matching[0].clone()));
    }
    for (name, record) in found {
        let got = normalized(&record, &c.placeholders);
        let path = dir.join(format!("{name}.json"));
        if update {
            std::fs::create_dir_all(&dir).unwrap();
            let text = serde_json::to_string_pretty(&got).unwrap() + "\n";
            std::fs::write(&path, text).unwrap();
            continue;
        }
        let Ok(text) = std::fs::read_to_string(&path) else {
            problems.push(format!(
                "{name}: no golden file {} (UPDATE_GOLDEN=1 writes it)",
                path.display()
            ));
            continue;
        };
        let expected: Value = serde_json::from_str(&text).expect("golden file is JSON");
        if got != expected {
            problems.push(format!(
                "{name}: record differs from {}\n--- golden\n{}\n--- got\n{}",
                path.display(),
                serde_json::to_string_pretty(&expected).unwrap(),
                serde_json::to_string_pretty(&got).unwrap()
            ));
        }
    }
    // A golden file no case produces any more is stale.
    let names: Vec<String> = c
        .calls
        .iter()
        .map(|(n, _, _)| n)
        .chain(c.service_events.iter().map(|(n, _, _)| n))
        .map(|n| format!("{n}.json"))
        .collect();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let file = entry.unwrap().file_name().to_string_lossy().into_owned();
        if !names.contains(&file) {
            problems.push(format!("stale golden file {file}"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
}
