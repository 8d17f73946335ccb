//! Who may read the audit log: a tenant's principal only with an identity policy that
//! allows `cloudtrail:LookupEvents` (an auditor), and then only its own account's events;
//! `kms:*` does not include it; the platform operator reads every account's.

use aws_sdk_kms::error::ProvideErrorMetadata;
use serde_json::json;

use crate::sandbox::{Sandbox, ACCOUNT_A, ACCOUNT_B};

const AUDITOR: &str = "arn:aws:iam::111122223333:user/auditor";
const APP: &str = "arn:aws:iam::111122223333:user/app";

fn allow(action: &str) -> serde_json::Value {
    json!({"Version": "2012-10-17",
           "Statement": [{"Effect": "Allow", "Action": action, "Resource": "*"}]})
}

#[tokio::test]
async fn only_auditors_read_the_audit_log_and_only_their_account_s() {
    let sb = Sandbox::start_with_users(&[AUDITOR, APP]).await;
    sb.attach(APP, "use-kms", allow("kms:*")).await;
    sb.attach(AUDITOR, "audit-read", allow("cloudtrail:LookupEvents")).await;
    let key_a = sb.create_key(ACCOUNT_A).await;
    let key_b = sb.create_key(ACCOUNT_B).await;
    sb.kms_as(APP).describe_key().key_id(&key_a).send().await.expect("kms:* allows KMS");

    // kms:* is not permission to read the audit log.
    let refused = sb.cloudtrail_as(APP).lookup_events().send().await.expect_err("refused");
    assert_eq!(refused.code(), Some("AccessDeniedException"));
    assert_eq!(
        refused.message(),
        Some(
            "User: arn:aws:iam::111122223333:user/app is not authorized to perform: \
             cloudtrail:LookupEvents on resource: * because no identity-based policy allows the \
             cloudtrail:LookupEvents action"
        )
    );

    // The auditor reads account A's events, including the refusal, and none of B's.
    let mut events = Vec::new();
    let mut token = None;
    loop {
        let page = sb
            .cloudtrail_as(AUDITOR)
            .lookup_events()
            .set_next_token(token)
            .send()
            .await
            .expect("the auditor's policy allows LookupEvents");
        for e in page.events() {
            events.push(
                serde_json::from_str::<serde_json::Value>(e.cloud_trail_event().unwrap()).unwrap(),
            );
        }
        token = page.next_token().map(str::to_owned);
        if token.is_none() {
            break;
        }
    }
    assert!(events.iter().all(|e| e["recipientAccountId"] == ACCOUNT_A));
    assert!(events.iter().any(|e| e["eventName"] == "DescribeKey"
        && e["userIdentity"]["arn"] == APP
        && e["resources"][0]["ARN"].as_str().is_some_and(|a| a.ends_with(&key_a))));
    assert!(events.iter().any(|e| e["eventName"] == "LookupEvents"
        && e["eventSource"] == "cloudtrail.amazonaws.com"
        && e["userIdentity"]["arn"] == APP
        && e["errorCode"] == "AccessDenied"));
    let everything = serde_json::to_string(&events).unwrap();
    assert!(!everything.contains(&key_b), "nothing of account B");

    // An explicit Deny wins over the allow.
    sb.attach(
        AUDITOR,
        "no-audit",
        json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Deny", "Action": "cloudtrail:*", "Resource": "*"}]}),
    )
    .await;
    let denied = sb.cloudtrail_as(AUDITOR).lookup_events().send().await.expect_err("denied");
    assert_eq!(denied.code(), Some("AccessDeniedException"));

    // The platform operator needs no policy and reads every account's events.
    let (status, body) = sb
        .bearer_post(
            crate::sandbox::OPERATOR,
            "999988887777",
            json!({}),
            "CloudTrail_20131101.LookupEvents",
            json!({"MaxResults": 50, "LookupAttributes": [
                {"AttributeKey": "EventName", "AttributeValue": "CreateKey"}]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let page: serde_json::Value = serde_json::from_str(&body).unwrap();
    let accounts: std::collections::BTreeSet<String> = page["Events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let record: serde_json::Value =
                serde_json::from_str(e["CloudTrailEvent"].as_str().unwrap()).unwrap();
            record["recipientAccountId"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(accounts, [ACCOUNT_A.to_owned(), ACCOUNT_B.to_owned()].into());
}
