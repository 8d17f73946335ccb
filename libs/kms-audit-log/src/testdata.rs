//! Test fixture: twenty KMS audit events across two accounts, several users, keys, event
//! names and times (including ties and an event appended after later-timed ones), shared
//! by the store and lookup tests.

use serde_json::json;
use time::{Duration, OffsetDateTime};

use crate::event::{
    CloudTrailEvent, EventResource, UserIdentity, EVENT_CATEGORY_MANAGEMENT,
    EVENT_SOURCE_CLOUDTRAIL, EVENT_SOURCE_KMS, EVENT_TYPE_API_CALL, EVENT_VERSION,
};

pub(crate) const ACCT_A: &str = "111111111111";
pub(crate) const ACCT_B: &str = "222222222222";
pub(crate) const KEY_A1: &str = "1111aaaa-0000-4000-8000-000000000001";
pub(crate) const KEY_A2: &str = "1111aaaa-0000-4000-8000-000000000002";
pub(crate) const KEY_B1: &str = "2222bbbb-0000-4000-8000-000000000001";

pub(crate) fn base_time() -> OffsetDateTime {
    time::macros::datetime!(2026-11-23 10:00:00 UTC)
}

/// `base_time() + secs`.
pub(crate) fn t(secs: i64) -> OffsetDateTime {
    base_time() + Duration::seconds(secs)
}

pub(crate) fn key_arn(account: &str, key: &str) -> String {
    format!("arn:aws:kms:eu-west-1:{account}:key/{key}")
}

/// The `eventID` of fixture event `i`.
pub(crate) fn id(i: usize) -> String {
    format!("00000000-0000-4000-8000-{i:012}")
}

struct Row {
    account: &'static str,
    user: &'static str,
    access_key: Option<&'static str>,
    name: &'static str,
    read_only: bool,
    keys: &'static [&'static str],
    secs: i64,
}

const fn row(
    account: &'static str,
    user: &'static str,
    access_key: Option<&'static str>,
    name: &'static str,
    read_only: bool,
    keys: &'static [&'static str],
    secs: i64,
) -> Row {
    Row { account, user, access_key, name, read_only, keys, secs }
}

const A: &str = ACCT_A;
const B: &str = ACCT_B;
const ALICE: Option<&str> = Some("AKIAALICE");
const BOB: Option<&str> = Some("AKIABOB");
const CAROL: Option<&str> = Some("AKIACAROL");

/// Appended in this order, so fixture event `i` is store record `i + 1`.
const ROWS: [Row; 20] = [
    row(A, "alice", ALICE, "CreateKey", false, &[KEY_A1], 0), // 0
    row(A, "alice", ALICE, "Encrypt", true, &[KEY_A1], 60),
    row(A, "bob", BOB, "Decrypt", true, &[KEY_A1], 120),
    row(B, "carol", CAROL, "CreateKey", false, &[KEY_B1], 180),
    row(A, "alice", ALICE, "CreateKey", false, &[KEY_A2], 240),
    row(B, "carol", CAROL, "Encrypt", true, &[KEY_B1], 300), // 5
    row(A, "bob", BOB, "GenerateDataKey", true, &[KEY_A2], 360),
    row(A, "alice", ALICE, "DescribeKey", true, &[KEY_A1], 420),
    row(B, "dave", None, "ListKeys", true, &[], 480),
    row(A, "bob", BOB, "Encrypt", true, &[KEY_A2], 540),
    row(B, "carol", CAROL, "Decrypt", true, &[KEY_B1], 540), // 10
    row(A, "alice", ALICE, "Encrypt", true, &[KEY_A1], 540),
    row(A, "alice", ALICE, "DisableKey", false, &[KEY_A2], 720),
    row(B, "carol", CAROL, "ScheduleKeyDeletion", false, &[KEY_B1], 780),
    row(A, "bob", BOB, "Decrypt", true, &[KEY_A1], 840), // failed call
    row(A, "alice", ALICE, "LookupEvents", true, &[], 900), // 15, cloudtrail source
    row(B, "dave", None, "GenerateDataKey", true, &[KEY_B1], 960),
    row(A, "alice", ALICE, "ReEncrypt", true, &[KEY_A1, KEY_A2], 1020),
    row(B, "carol", CAROL, "DescribeKey", true, &[KEY_B1], 1080),
    row(A, "bob", BOB, "Encrypt", true, &[KEY_A1], 150), // 19: late arrival
];

pub(crate) fn fixture() -> Vec<CloudTrailEvent> {
    ROWS.iter()
        .enumerate()
        .map(|(i, r)| {
            let source =
                if r.name == "LookupEvents" { EVENT_SOURCE_CLOUDTRAIL } else { EVENT_SOURCE_KMS };
            let failed = i == 14;
            CloudTrailEvent {
                event_version: EVENT_VERSION.into(),
                user_identity: UserIdentity {
                    identity_type: Some("IAMUser".into()),
                    principal_id: Some(format!("AIDA{}", r.user.to_uppercase())),
                    arn: Some(format!("arn:aws:iam::{}:user/{}", r.account, r.user)),
                    account_id: Some(r.account.into()),
                    access_key_id: r.access_key.map(Into::into),
                    user_name: Some(r.user.into()),
                    ..UserIdentity::default()
                },
                event_time: t(r.secs),
                event_source: source.into(),
                event_name: r.name.into(),
                aws_region: "eu-west-1".into(),
                source_ip_address: "192.0.2.10".into(),
                user_agent: "aws-cli/2.15".into(),
                error_code: failed.then(|| "AccessDeniedException".into()),
                error_message: failed.then(|| "not authorized to perform kms:Decrypt".into()),
                request_parameters: r.keys.first().map(|k| json!({"keyId": key_arn(r.account, k)})),
                response_elements: None,
                request_id: format!("req-{i}"),
                event_id: id(i),
                read_only: r.read_only,
                resources: r
                    .keys
                    .iter()
                    .map(|k| EventResource::kms_key(r.account, key_arn(r.account, k)))
                    .collect(),
                event_type: EVENT_TYPE_API_CALL.into(),
                management_event: true,
                recipient_account_id: r.account.into(),
                shared_event_id: None,
                service_event_details: None,
                event_category: EVENT_CATEGORY_MANAGEMENT.into(),
                tls_details: None,
            }
        })
        .collect()
}

pub(crate) fn fixture_bytes() -> Vec<Vec<u8>> {
    fixture().iter().map(|e| e.to_json_bytes().unwrap()).collect()
}

/// A temporary store holding `events` (stream sequences 1, 2, ...): committed one at a
/// time with `group_sizes` empty, otherwise in groups of those sizes (the last repeated),
/// as the audit service commits under load, so that index entries hold several events.
pub(crate) fn store_of(events: &[Vec<u8>], group_sizes: &[usize]) -> crate::AuditStore {
    let store = crate::AuditStore::open_temporary().unwrap();
    let numbered: Vec<(u64, &[u8])> =
        events.iter().enumerate().map(|(i, b)| (i as u64 + 1, b.as_slice())).collect();
    let mut rest = numbered.as_slice();
    let mut sizes = group_sizes
        .iter()
        .copied()
        .chain(std::iter::repeat(group_sizes.last().copied().unwrap_or(1)));
    while !rest.is_empty() {
        let (group, after) = rest.split_at(sizes.next().unwrap_or(1).clamp(1, rest.len()));
        for outcome in store.append_batch(group).unwrap() {
            assert!(matches!(outcome, Ok(crate::AppendOutcome::Appended { .. })));
        }
        rest = after;
    }
    store
}
