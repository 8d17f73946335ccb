use super::*;
use crate::testdata::{fixture, id, key_arn, store_of, t, ACCT_A, ACCT_B, KEY_A1, KEY_A2, KEY_B1};

/// The fixture, with encryption contexts and source IPs on a few events.
fn store() -> AuditStore {
    store_of(&fixture_bytes(), &[])
}

/// The same events committed in groups of 6, as under load (grouped index entries).
fn grouped_store() -> AuditStore {
    store_of(&fixture_bytes(), &[6])
}

fn fixture_bytes() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for (i, mut e) in fixture().into_iter().enumerate() {
        if [1, 9, 11].contains(&i) {
            e.request_parameters = Some(serde_json::json!({
                "keyId": "k", "encryptionContext": {"Department": if i == 9 { "Legal" } else { "Finance" }}
            }));
        }
        if [2, 6].contains(&i) {
            e.source_ip_address = "198.51.100.7".into();
        }
        out.push(e.to_json_bytes().unwrap());
    }
    out
}

fn filter(account: Option<&str>) -> EventFilter {
    EventFilter { account: account.map(Into::into), ..EventFilter::default() }
}

/// Runs `f` in one page and in pages of 2, expecting fixture events `expected` newest first.
fn check(s: &AuditStore, f: EventFilter, expected: &[usize]) {
    let want: Vec<String> = expected.iter().map(|&i| id(i)).collect();
    let page = s.query(&f, 1000, None).unwrap();
    let got: Vec<String> = page.events.iter().map(|e| e.event_id.clone()).collect();
    assert_eq!(got, want, "{f:?}");
    assert!(page.next_token.is_none());
    let mut paged = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = s.query(&f, 2, token.as_deref()).unwrap();
        paged.extend(page.events.iter().map(|e| e.event_id.clone()));
        token = page.next_token;
        if token.is_none() {
            break;
        }
    }
    assert_eq!(paged, want, "paged {f:?}");
}

#[test]
fn every_filter() {
    for s in [store(), grouped_store()] {
        every_filter_in(&s);
    }
}

fn every_filter_in(s: &AuditStore) {
    let a = || filter(Some(ACCT_A));
    let cases: Vec<(EventFilter, Vec<usize>)> = vec![
        (a(), vec![17, 15, 14, 12, 11, 9, 7, 6, 4, 19, 2, 1, 0]),
        (EventFilter { key: Some(key_arn(ACCT_A, KEY_A2)), ..a() }, vec![17, 12, 9, 6, 4]),
        (EventFilter { key: Some(KEY_A2.into()), ..a() }, vec![17, 12, 9, 6, 4]),
        (EventFilter { key: Some(KEY_B1.into()), ..a() }, vec![]),
        (EventFilter { key: Some(KEY_B1.into()), ..filter(None) }, vec![18, 16, 13, 10, 5, 3]),
        (
            EventFilter { principal: Some(format!("arn:aws:iam::{ACCT_A}:user/bob")), ..a() },
            vec![14, 9, 6, 19, 2],
        ),
        (EventFilter { event_names: vec!["Decrypt".into()], ..a() }, vec![14, 2]),
        (
            EventFilter { event_names: vec!["Decrypt".into(), "Encrypt".into()], ..a() },
            vec![14, 11, 9, 19, 2, 1],
        ),
        (
            EventFilter { event_names: vec!["Encrypt".into(), "Decrypt".into()], ..filter(None) },
            vec![14, 11, 10, 9, 5, 19, 2, 1],
        ),
        (EventFilter { error_code: Some("AccessDeniedException".into()), ..a() }, vec![14]),
        (
            EventFilter {
                error_code: Some("AccessDeniedException".into()),
                ..filter(Some(ACCT_B))
            },
            vec![],
        ),
        (EventFilter { context_key: Some("Department".into()), ..a() }, vec![11, 9, 1]),
        (
            EventFilter {
                context_key: Some("Department".into()),
                context_value: Some("Finance".into()),
                ..a()
            },
            vec![11, 1],
        ),
        (EventFilter { source_ip: Some("198.51.100.7".into()), ..a() }, vec![6, 2]),
        (
            EventFilter {
                start: Some(t(240).unix_timestamp()),
                end: Some(t(540).unix_timestamp()),
                ..a()
            },
            vec![11, 9, 7, 6, 4],
        ),
        // Several filters at once.
        (
            EventFilter {
                key: Some(KEY_A1.into()),
                event_names: vec!["Encrypt".into()],
                start: Some(t(100).unix_timestamp()),
                ..a()
            },
            vec![11, 19],
        ),
        (
            EventFilter {
                key: Some(KEY_A1.into()),
                principal: Some(format!("arn:aws:iam::{ACCT_A}:user/bob")),
                event_names: vec!["Decrypt".into()],
                ..a()
            },
            vec![14, 2],
        ),
    ];
    for (f, expected) in cases {
        check(s, f, &expected);
    }
}

#[test]
fn accounts_are_isolated_by_the_index_and_rechecked() {
    let s = store();
    let page = s.query(&filter(Some(ACCT_B)), 1000, None).unwrap();
    assert!(page.events.iter().all(|e| e.account == ACCT_B));
    assert_eq!(page.events.len(), 7);
    let f = EventFilter {
        principal: Some(format!("arn:aws:iam::{ACCT_A}:user/alice")),
        ..filter(Some(ACCT_B))
    };
    assert!(s.query(&f, 10, None).unwrap().events.is_empty());
}

#[test]
fn the_most_selective_index_is_walked() {
    let s = store();
    // One error in thirteen events: the planner walks the error-code index, not time.
    let f =
        EventFilter { error_code: Some("AccessDeniedException".into()), ..filter(Some(ACCT_A)) };
    assert_eq!(s.query(&f, 10, None).unwrap().scanned, 1);
    let f = EventFilter {
        event_names: vec!["Decrypt".into()],
        source_ip: Some("198.51.100.7".into()),
        ..filter(Some(ACCT_A))
    };
    let page = s.query(&f, 10, None).unwrap();
    assert_eq!(page.scanned, 2);
    assert_eq!(page.events.len(), 1);
}

#[test]
fn tokens_are_bound_to_their_filter_and_validated() {
    let s = store();
    let f = filter(Some(ACCT_A));
    let token = s.query(&f, 2, None).unwrap().next_token.unwrap();
    assert!(s.query(&f, 5, Some(&token)).is_ok());
    let other = filter(Some(ACCT_B));
    assert!(matches!(s.query(&other, 2, Some(&token)), Err(QueryError::InvalidPageToken)));
    assert!(matches!(s.query(&f, 2, Some("junk")), Err(QueryError::InvalidPageToken)));
    // Event-name order does not change the filter.
    let names =
        |n: [&str; 2]| EventFilter { event_names: n.map(Into::into).to_vec(), ..filter(None) };
    let t1 = s.query(&names(["Encrypt", "Decrypt"]), 1, None).unwrap().next_token.unwrap();
    assert!(s.query(&names(["Decrypt", "Encrypt"]), 1, Some(&t1)).is_ok());
    let bad_range = EventFilter { start: Some(10), end: Some(9), ..filter(None) };
    assert!(matches!(s.query(&bad_range, 1, None), Err(QueryError::InvalidTimeRange)));
    let value_only = EventFilter { context_value: Some("x".into()), ..filter(None) };
    assert!(matches!(s.query(&value_only, 1, None), Err(QueryError::ContextValueWithoutKey)));
}

#[test]
fn counts_group_per_bucket() {
    for s in [store(), grouped_store()] {
        counts_group_per_bucket_in(&s);
    }
}

fn counts_group_per_bucket_in(s: &AuditStore) {
    let f = EventFilter { key: Some(KEY_A1.into()), ..filter(Some(ACCT_A)) };
    let by_name = s.counts(&f, GroupBy::EventName, 3600, u64::MAX).unwrap();
    let hour = t(0).unix_timestamp();
    assert_eq!(by_name.total, 8);
    assert_eq!(by_name.buckets.get(&(hour, "Encrypt".into())), Some(&3));
    assert_eq!(by_name.buckets.get(&(hour, "Decrypt".into())), Some(&2));
    let by_principal = s.counts(&f, GroupBy::Principal, 300, u64::MAX).unwrap();
    let bob = format!("arn:aws:iam::{ACCT_A}:user/bob");
    let bob_total: u64 =
        by_principal.buckets.iter().filter(|((_, p), _)| *p == bob).map(|(_, n)| n).sum();
    assert_eq!(bob_total, 3);
    assert_eq!(
        by_principal.buckets.get(&(hour, bob)),
        Some(&2),
        "120s and 150s fall in the first 5 minutes"
    );
    let by_key = s.counts(&filter(Some(ACCT_A)), GroupBy::Key, 86_400, u64::MAX).unwrap();
    assert_eq!(by_key.buckets.get(&(hour - hour % 86_400, key_arn(ACCT_A, KEY_A1))), Some(&8));
    assert_eq!(by_key.buckets.get(&(hour - hour % 86_400, "-".into())), Some(&1));
    assert!(matches!(s.counts(&f, GroupBy::Key, 0, 1), Err(QueryError::InvalidBucket)));
    let capped = s.counts(&filter(None), GroupBy::Key, 60, 5).unwrap();
    assert_eq!(capped.scanned, 5);
}

#[test]
fn tails_filter_new_records() {
    let s = store();
    let f = EventFilter { event_names: vec!["CreateKey".into()], ..filter(Some(ACCT_A)) };
    let (records, last) = s.tail_after(&f, 0, 100).unwrap();
    assert_eq!(records.iter().map(|r| r.seq).collect::<Vec<_>>(), [1, 5]);
    assert_eq!(last, 20);
    let (records, last) = s.tail_after(&f, 20, 100).unwrap();
    assert!(records.is_empty());
    assert_eq!(last, 20);
    assert!(f.matches(&fixture()[0].to_json_bytes().unwrap()));
    assert!(!f.matches(b"junk"));
}

#[test]
fn old_stores_are_reindexed_on_open() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = AuditStore::open(dir.path()).unwrap();
        for (i, e) in fixture().into_iter().enumerate() {
            s.append(i as u64 + 1, &e.to_json_bytes().unwrap()).unwrap();
        }
        // Make it look like a version-1 store: no new index entries, no version mark.
        let scope_codes = [9u8, 10, 11, 12, 13];
        let stale: Vec<_> = s
            .idx_attr
            .iter()
            .keys()
            .map(|k| k.unwrap())
            .filter(|k| {
                let code_at = if k[0] == 0 {
                    1
                } else {
                    5 + u32::from_be_bytes(k[1..5].try_into().unwrap()) as usize
                };
                scope_codes.contains(&k[code_at])
            })
            .collect();
        assert!(!stale.is_empty());
        for k in stale {
            s.idx_attr.remove(k).unwrap();
        }
        s.meta.remove(b"index_version").unwrap();
        let f = EventFilter { error_code: Some("AccessDeniedException".into()), ..filter(None) };
        assert!(s.query(&f, 10, None).unwrap().events.is_empty());
    }
    let s = AuditStore::open(dir.path()).unwrap();
    let f = EventFilter { error_code: Some("AccessDeniedException".into()), ..filter(None) };
    assert_eq!(s.query(&f, 10, None).unwrap().events.len(), 1);
}
