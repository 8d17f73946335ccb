//! Key policies through aws-sdk-kms: the default policy, replacing it, listing names, and
//! the refusals for malformed documents, oversize documents and unknown names.

use crate::sandbox::{error_code, Sandbox, ACCOUNT_A};

#[tokio::test]
async fn default_policy_put_get_and_list() {
    let sb = Sandbox::start().await;
    let kms = sb.kms(ACCOUNT_A);
    let id = sb.create_key(ACCOUNT_A).await;
    let default = kms.get_key_policy().key_id(&id).policy_name("default").send().await.unwrap();
    let doc: serde_json::Value = serde_json::from_str(default.policy().unwrap()).unwrap();
    assert_eq!(doc["Statement"][0]["Principal"]["AWS"], format!("arn:aws:iam::{ACCOUNT_A}:root"));
    assert_eq!(doc["Statement"][0]["Action"], "kms:*");

    let custom = serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "Enable IAM User Permissions", "Effect": "Allow",
             "Principal": {"AWS": format!("arn:aws:iam::{ACCOUNT_A}:root")}, "Action": "kms:*", "Resource": "*"},
            {"Sid": "Allow use of the key", "Effect": "Allow",
             "Principal": {"AWS": format!("arn:aws:iam::{ACCOUNT_A}:role/MyAppRole")},
             "Action": ["kms:Encrypt", "kms:Decrypt"], "Resource": "*"}
        ]
    })
    .to_string();
    kms.put_key_policy().key_id(&id).policy_name("default").policy(&custom).send().await.unwrap();
    let got = kms.get_key_policy().key_id(&id).send().await.unwrap();
    assert_eq!(got.policy(), Some(custom.as_str()));
    assert_eq!(got.policy_name(), Some("default"));
    let names = kms.list_key_policies().key_id(&id).send().await.unwrap();
    assert_eq!(names.policy_names(), ["default"]);

    let cases = [
        ("default", "{not json".to_owned(), "MalformedPolicyDocumentException"),
        ("default", r#"{"Version":"2012-10-17"}"#.to_owned(), "MalformedPolicyDocumentException"),
        (
            "default",
            format!(r#"{{"Statement":[{{}}],"Pad":"{}"}}"#, "x".repeat(32 * 1024)),
            "ValidationException",
        ),
        ("other", custom.clone(), "NotFoundException"),
    ];
    for (name, doc, expected) in cases {
        let code =
            error_code(kms.put_key_policy().key_id(&id).policy_name(name).policy(doc).send().await);
        assert_eq!(code, expected, "{name}");
    }
    assert_eq!(
        kms.get_key_policy().key_id(&id).send().await.unwrap().policy(),
        Some(custom.as_str()),
        "refused puts left the policy as it was"
    );
    assert_eq!(
        error_code(
            kms.get_key_policy().key_id("00000000-1111-2222-3333-444444444444").send().await
        ),
        "NotFoundException"
    );
}

#[tokio::test]
async fn create_key_with_policy_stores_it() {
    let sb = Sandbox::start().await;
    let kms = sb.kms(ACCOUNT_A);
    let policy = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::{ACCOUNT_A}:root"}},"Action":"kms:*","Resource":"*"}}]}}"#
    );
    let id = kms.create_key().policy(&policy).send().await.unwrap().key_metadata.unwrap().key_id;
    let got = kms.get_key_policy().key_id(&id).send().await.unwrap();
    assert_eq!(got.policy(), Some(policy.as_str()));
}

#[tokio::test]
async fn lockout_safety_check() {
    let sb = Sandbox::start().await;
    let kms = sb.kms(ACCOUNT_A);
    let id = sb.create_key(ACCOUNT_A).await;
    // Only another account may encrypt: the caller could never change this policy again.
    let locking = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::999999999999:root"},"Action":"kms:Encrypt","Resource":"*"}]}"#;
    let refused = kms.put_key_policy().key_id(&id).policy(locking).send().await;
    assert_eq!(
        crate::sandbox::error_message(refused),
        "The new key policy will not allow you to update the key policy in the future."
    );
    assert_eq!(
        error_code(kms.create_key().policy(locking).send().await),
        "MalformedPolicyDocumentException"
    );
    let unknown_principal = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"not-an-arn"},"Action":"kms:*","Resource":"*"}]}"#;
    assert_eq!(
        error_code(
            kms.put_key_policy()
                .key_id(&id)
                .policy(unknown_principal)
                .bypass_policy_lockout_safety_check(true)
                .send()
                .await
        ),
        "MalformedPolicyDocumentException"
    );
    kms.put_key_policy()
        .key_id(&id)
        .policy(locking)
        .bypass_policy_lockout_safety_check(true)
        .send()
        .await
        .unwrap();
    // Stored: exactly what the check warned of, the caller is now locked out.
    let locked = crate::sandbox::error_message(kms.get_key_policy().key_id(&id).send().await);
    assert!(locked.contains("is not authorized to perform: kms:GetKeyPolicy"), "{locked}");
    assert_eq!(
        error_code(kms.put_key_policy().key_id(&id).policy(locking).send().await),
        "AccessDeniedException"
    );
}
