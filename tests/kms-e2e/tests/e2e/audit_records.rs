//! Who the record says made the call, and in whose trail it lands: a call with another
//! account's key is recorded for the caller and for the key owner, as CloudTrail does, and
//! each account finds its own copy with `LookupEvents`.

use aws_sdk_kms::operation::RequestId;
use aws_sdk_kms::primitives::Blob;
use serde_json::json;

use crate::sandbox::{error_code, Sandbox, ACCOUNT_A, ACCOUNT_B, REGION};

fn by_request(events: &[serde_json::Value], request_id: &str) -> Vec<serde_json::Value> {
    events.iter().filter(|e| e["requestID"] == request_id).cloned().collect()
}

#[tokio::test]
async fn cross_account_call_is_in_both_accounts_trails_with_a_shared_event_id() {
    let sb = Sandbox::start().await;
    let (a, b) = (sb.kms(ACCOUNT_A), sb.kms(ACCOUNT_B));
    let key = sb.create_key(ACCOUNT_A).await;
    let arn = format!("arn:aws:kms:{REGION}:{ACCOUNT_A}:key/{key}");
    let shared = json!({"Version": "2012-10-17", "Statement": [
        {"Sid": "owner", "Effect": "Allow", "Principal": {"AWS": format!("arn:aws:iam::{ACCOUNT_A}:root")},
         "Action": "kms:*", "Resource": "*"},
        {"Sid": "partner", "Effect": "Allow", "Principal": {"AWS": format!("arn:aws:iam::{ACCOUNT_B}:root")},
         "Action": "kms:Encrypt", "Resource": "*"}]});
    a.put_key_policy().key_id(&key).policy(shared.to_string()).send().await.unwrap();

    let encrypted = b
        .encrypt()
        .key_id(&arn)
        .plaintext(Blob::new(b"cross-account".to_vec()))
        .send()
        .await
        .expect("the key policy and B's identity policy allow");
    let request_id = encrypted.request_id().unwrap().to_owned();
    let denied = b.decrypt().ciphertext_blob(encrypted.ciphertext_blob().unwrap().clone()).send();
    assert_eq!(error_code(denied.await), "AccessDeniedException");

    let (events_a, events_b) = (sb.events(ACCOUNT_A).await, sb.events(ACCOUNT_B).await);
    let (mine, theirs) = (by_request(&events_b, &request_id), by_request(&events_a, &request_id));
    assert_eq!((mine.len(), theirs.len()), (1, 1), "one record in each account's trail");
    let (mine, theirs) = (&mine[0], &theirs[0]);

    assert_eq!(mine["recipientAccountId"], ACCOUNT_B);
    assert_eq!(mine["userIdentity"]["type"], "IAMUser");
    assert_eq!(mine["userIdentity"]["arn"], format!("arn:aws:iam::{ACCOUNT_B}:user/dev"));
    assert_eq!(theirs["recipientAccountId"], ACCOUNT_A);
    assert_eq!(
        theirs["userIdentity"],
        json!({"type": "AWSAccount", "principalId": mine["userIdentity"]["principalId"],
               "accountId": ACCOUNT_B}),
        "the owner sees the caller as another account, not its user's name or key"
    );
    let shared_id = mine["sharedEventID"].as_str().expect("caller's copy has sharedEventID");
    assert_eq!(shared_id.len(), 36);
    assert_eq!(theirs["sharedEventID"], shared_id);
    assert_ne!(theirs["eventID"], mine["eventID"]);
    for record in [mine, theirs] {
        assert_eq!(record["eventName"], "Encrypt");
        assert_eq!(record["resources"][0]["ARN"], arn.as_str());
        assert_eq!(record["resources"][0]["accountId"], ACCOUNT_A);
        assert_eq!(record["requestParameters"]["keyId"], arn.as_str());
    }

    // The refused Decrypt (the key policy allows B only Encrypt) is on both sides too.
    let refused = |events: &[serde_json::Value]| {
        events
            .iter()
            .filter(|e| e["eventName"] == "Decrypt" && e["errorCode"] == "AccessDenied")
            .cloned()
            .collect::<Vec<_>>()
    };
    let (refused_b, refused_a) = (refused(&events_b), refused(&events_a));
    assert_eq!((refused_b.len(), refused_a.len()), (1, 1));
    assert_eq!(refused_a[0]["sharedEventID"], refused_b[0]["sharedEventID"]);
    assert_eq!(refused_a[0]["userIdentity"]["type"], "AWSAccount");

    // A call on one's own key is one record, without a sharedEventID.
    let own = a.describe_key().key_id(&key).send().await.unwrap();
    let own_records = by_request(&sb.events(ACCOUNT_A).await, own.request_id().unwrap());
    assert_eq!(own_records.len(), 1);
    assert!(own_records[0].get("sharedEventID").is_none());
    assert!(by_request(&sb.events(ACCOUNT_B).await, own.request_id().unwrap()).is_empty());
}
