//! The key-state table of the AWS KMS developer guide, cell by cell: every operation that
//! uses an existing key, against a key in each state (Enabled, Disabled, PendingImport —
//! a key for imported material — and PendingDeletion), must succeed or fail with the
//! error the guide names.

use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{AlgorithmSpec, OriginType, Tag, WrappingKeySpec};
use aws_sdk_kms::Client;

use crate::sandbox::{Sandbox, ACCOUNT_A};

const OK: &str = "ok";
const DISABLED: &str = "DisabledException";
const INVALID_STATE: &str = "KMSInvalidStateException";
const UNSUPPORTED: &str = "UnsupportedOperationException";

#[derive(Clone, Copy, Debug)]
enum State {
    Enabled,
    Disabled,
    PendingImport,
    PendingDeletion,
}

const STATES: [State; 4] =
    [State::Enabled, State::Disabled, State::PendingImport, State::PendingDeletion];

/// A key in `state`, with an alias and a ciphertext made while it could encrypt (none
/// for a key still waiting for its imported material).
struct Subject {
    key: String,
    alias: String,
    ciphertext: Option<Blob>,
}

async fn subject(kms: &Client, state: State, n: usize) -> Subject {
    let origin = if matches!(state, State::PendingImport) {
        OriginType::External
    } else {
        OriginType::AwsKms
    };
    let key = kms.create_key().origin(origin).send().await.unwrap().key_metadata.unwrap().key_id;
    let alias = format!("alias/state-{n}");
    kms.create_alias().alias_name(&alias).target_key_id(&key).send().await.unwrap();
    let ciphertext = match state {
        State::PendingImport => None,
        _ => Some(
            kms.encrypt()
                .key_id(&key)
                .plaintext(Blob::new(b"x".to_vec()))
                .send()
                .await
                .unwrap()
                .ciphertext_blob
                .unwrap(),
        ),
    };
    match state {
        State::Disabled => {
            kms.disable_key().key_id(&key).send().await.unwrap();
        }
        State::PendingDeletion => {
            kms.schedule_key_deletion()
                .key_id(&key)
                .pending_window_in_days(7)
                .send()
                .await
                .unwrap();
        }
        State::Enabled | State::PendingImport => {}
    }
    Subject { key, alias, ciphertext }
}

fn outcome<T, E: aws_sdk_kms::error::ProvideErrorMetadata>(r: Result<T, E>) -> String {
    match r {
        Ok(_) => OK.to_owned(),
        Err(e) => e.code().unwrap_or("no code").to_owned(),
    }
}

/// Runs operation `op` on the subject; `None` where the cell does not apply.
async fn run(kms: &Client, op: &str, s: &Subject, spare: &str) -> Option<String> {
    let k = s.key.as_str();
    let r = match op {
        "CancelKeyDeletion" => outcome(kms.cancel_key_deletion().key_id(k).send().await),
        "CreateAlias" => outcome(
            kms.create_alias()
                .alias_name(format!("{}-more", s.alias))
                .target_key_id(k)
                .send()
                .await,
        ),
        "DeleteAlias" => outcome(kms.delete_alias().alias_name(&s.alias).send().await),
        "DescribeKey" => outcome(kms.describe_key().key_id(k).send().await),
        "DisableKey" => outcome(kms.disable_key().key_id(k).send().await),
        "EnableKey" => outcome(kms.enable_key().key_id(k).send().await),
        "DisableKeyRotation" => outcome(kms.disable_key_rotation().key_id(k).send().await),
        "EnableKeyRotation" => outcome(kms.enable_key_rotation().key_id(k).send().await),
        "Encrypt" => {
            outcome(kms.encrypt().key_id(k).plaintext(Blob::new(b"y".to_vec())).send().await)
        }
        "Decrypt" => outcome(kms.decrypt().ciphertext_blob(s.ciphertext.clone()?).send().await),
        "GenerateDataKey" => {
            outcome(kms.generate_data_key().key_id(k).number_of_bytes(16).send().await)
        }
        "GenerateDataKeyWithoutPlaintext" => outcome(
            kms.generate_data_key_without_plaintext().key_id(k).number_of_bytes(16).send().await,
        ),
        "GetKeyPolicy" => outcome(kms.get_key_policy().key_id(k).send().await),
        "GetKeyRotationStatus" => outcome(kms.get_key_rotation_status().key_id(k).send().await),
        "GetParametersForImport" => outcome(
            kms.get_parameters_for_import()
                .key_id(k)
                .wrapping_algorithm(AlgorithmSpec::RsaesOaepSha256)
                .wrapping_key_spec(WrappingKeySpec::Rsa2048)
                .send()
                .await,
        ),
        "ListKeyPolicies" => outcome(kms.list_key_policies().key_id(k).send().await),
        "ListResourceTags" => outcome(kms.list_resource_tags().key_id(k).send().await),
        "PutKeyPolicy" => {
            outcome(kms.put_key_policy().key_id(k).policy(kms_policy_default()).send().await)
        }
        "ReEncrypt (destination)" => {
            let source = kms
                .encrypt()
                .key_id(spare)
                .plaintext(Blob::new(b"z".to_vec()))
                .send()
                .await
                .unwrap();
            outcome(
                kms.re_encrypt()
                    .ciphertext_blob(source.ciphertext_blob.unwrap())
                    .destination_key_id(k)
                    .send()
                    .await,
            )
        }
        "ScheduleKeyDeletion" => outcome(kms.schedule_key_deletion().key_id(k).send().await),
        "TagResource" => outcome(
            kms.tag_resource()
                .key_id(k)
                .tags(Tag::builder().tag_key("t").tag_value("v").build().unwrap())
                .send()
                .await,
        ),
        "UntagResource" => outcome(kms.untag_resource().key_id(k).tag_keys("t").send().await),
        "UpdateAlias (destination)" => {
            let name = format!("{}-moving", s.alias);
            kms.create_alias().alias_name(&name).target_key_id(spare).send().await.unwrap();
            outcome(kms.update_alias().alias_name(name).target_key_id(k).send().await)
        }
        "UpdateKeyDescription" => {
            outcome(kms.update_key_description().key_id(k).description("d").send().await)
        }
        other => panic!("no such operation in the table: {other}"),
    };
    Some(r)
}

fn kms_policy_default() -> String {
    format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::{ACCOUNT_A}:root"}},"Action":"kms:*","Resource":"*"}}]}}"#
    )
}

#[tokio::test]
async fn every_operation_in_every_state_behaves_as_the_key_state_table_says() {
    let sb = Sandbox::start().await;
    let kms = sb.kms(ACCOUNT_A);
    let spare = sb.create_key(ACCOUNT_A).await;
    // (operation, Enabled, Disabled, PendingImport, PendingDeletion)
    let table: &[(&str, [&str; 4])] = &[
        ("CancelKeyDeletion", [INVALID_STATE, INVALID_STATE, INVALID_STATE, OK]),
        ("CreateAlias", [OK, OK, OK, INVALID_STATE]),
        ("DeleteAlias", [OK, OK, OK, OK]),
        ("DescribeKey", [OK, OK, OK, OK]),
        ("DisableKey", [OK, OK, INVALID_STATE, INVALID_STATE]),
        ("EnableKey", [OK, OK, INVALID_STATE, INVALID_STATE]),
        ("DisableKeyRotation", [OK, DISABLED, UNSUPPORTED, INVALID_STATE]),
        ("EnableKeyRotation", [OK, DISABLED, UNSUPPORTED, INVALID_STATE]),
        ("Encrypt", [OK, DISABLED, INVALID_STATE, INVALID_STATE]),
        ("Decrypt", [OK, DISABLED, "n/a", INVALID_STATE]),
        ("GenerateDataKey", [OK, DISABLED, INVALID_STATE, INVALID_STATE]),
        ("GenerateDataKeyWithoutPlaintext", [OK, DISABLED, INVALID_STATE, INVALID_STATE]),
        ("GetKeyPolicy", [OK, OK, OK, OK]),
        ("GetKeyRotationStatus", [OK, OK, UNSUPPORTED, OK]),
        ("GetParametersForImport", [UNSUPPORTED, UNSUPPORTED, OK, UNSUPPORTED]),
        ("ListKeyPolicies", [OK, OK, OK, OK]),
        ("ListResourceTags", [OK, OK, OK, OK]),
        ("PutKeyPolicy", [OK, OK, OK, OK]),
        ("ReEncrypt (destination)", [OK, DISABLED, INVALID_STATE, INVALID_STATE]),
        ("ScheduleKeyDeletion", [OK, OK, OK, INVALID_STATE]),
        ("TagResource", [OK, OK, OK, INVALID_STATE]),
        ("UntagResource", [OK, OK, OK, INVALID_STATE]),
        ("UpdateAlias (destination)", [OK, OK, OK, INVALID_STATE]),
        ("UpdateKeyDescription", [OK, OK, OK, INVALID_STATE]),
    ];
    let mut mismatches = Vec::new();
    let mut n = 0;
    for (op, expected) in table {
        for (state, want) in STATES.iter().zip(expected) {
            n += 1;
            let s = subject(&kms, *state, n).await;
            if let Some(got) = run(&kms, op, &s, &spare).await {
                if got != *want {
                    mismatches.push(format!("{op} on a {state:?} key: expected {want}, got {got}"));
                }
            }
        }
    }
    assert!(mismatches.is_empty(), "key-state table mismatches:\n{}", mismatches.join("\n"));
}
