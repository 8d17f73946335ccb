//! One case per kind of tampering, each checking that the verifier names exactly the
//! record or digest touched and nothing else.

use super::*;
use crate::digest::tests::{other_signer, signer};
use crate::digest::DigestDraft;
use crate::testdata::{fixture, fixture_bytes, id, t, ACCT_A, ACCT_B};
use crate::AuditStore;

/// Account A's records (store seqs 1,2,3,5,7,8 | 10,12,13 | 15,16,18,20) under three
/// digests, and B's.
struct Case {
    records: Vec<AuditRecord>,
    digests: Vec<SignedDigest>,
    b_digests: Vec<SignedDigest>,
}

fn case() -> Case {
    let store = AuditStore::open_temporary().unwrap();
    let bytes = fixture_bytes();
    for (pass, range) in [(0..8), (8..14), (14..20)].into_iter().enumerate() {
        for i in range {
            store.append(i as u64 + 1, &bytes[i]).unwrap();
        }
        store.write_digests(signer(), t(5000 + pass as i64)).unwrap();
    }
    Case {
        records: store.account_records(ACCT_A, None).unwrap(),
        digests: store.digests(ACCT_A).unwrap(),
        b_digests: store.digests(ACCT_B).unwrap(),
    }
}

fn keys() -> Vec<DigestPublicKey> {
    vec![signer().public_key().clone()]
}

fn run(records: &[AuditRecord], digests: &[SignedDigest]) -> VerificationReport {
    verify(&VerifyInput {
        account: ACCT_A,
        records,
        digests,
        public_keys: &keys(),
        window: None,
        complete: true,
    })
}

/// Expects exactly `problems`.
fn check(records: &[AuditRecord], digests: &[SignedDigest], problems: &[Problem]) {
    let report = run(records, digests);
    assert_eq!(report.problems, problems, "{report:#?}");
}

fn position(records: &[AuditRecord], seq: u64) -> usize {
    records.iter().position(|r| r.seq == seq).unwrap()
}

/// Fixture index of store record `seq` (fixture `i` is record `i + 1`).
fn eid(seq: u64) -> String {
    id(seq as usize - 1)
}

#[test]
fn untouched_log_verifies() {
    let c = case();
    assert_eq!(c.digests.len(), 3);
    let report = run(&c.records, &c.digests);
    assert!(report.is_ok(), "{report:#?}");
    assert_eq!(report.records_checked, 13);
    assert_eq!(report.records_verified, 13);
    assert_eq!((report.digests_checked, report.digests_valid), (3, 3));
    // Input order does not matter.
    let mut shuffled = c.records.clone();
    shuffled.reverse();
    let mut digests = c.digests.clone();
    digests.reverse();
    assert!(run(&shuffled, &digests).is_ok());
    // Nothing at all is fine too.
    assert!(run(&[], &[]).is_ok());
}

#[test]
fn removed_records_are_named() {
    let c = case();
    for seq in [1, 8, 10, 20] {
        let mut records = c.records.clone();
        records.remove(position(&records, seq));
        let digest = match seq {
            1..=8 => 1,
            9..=14 => 2,
            _ => 3,
        };
        check(&records, &c.digests, &[Problem::RecordRemoved { seq, event_id: eid(seq), digest }]);
    }
    // Every record gone: each named, in order.
    let report = run(&[], &c.digests);
    assert_eq!(report.problems.len(), 13);
    assert!(report.problems.iter().all(|p| matches!(p, Problem::RecordRemoved { .. })));
}

#[test]
fn removal_hidden_by_renumbering_is_one_removal_and_no_reordering() {
    let c = case();
    let mut records = c.records.clone();
    let at = position(&records, 7);
    records.remove(at);
    for r in records.iter_mut().skip(at) {
        r.seq -= 1;
    }
    check(&records, &c.digests, &[Problem::RecordRemoved { seq: 7, event_id: eid(7), digest: 1 }]);
}

#[test]
fn changed_records_are_named() {
    let c = case();
    type Edit = fn(&str) -> String;
    let edits: [(u64, Edit); 4] = [
        (2, |s| s.replacen("\"Encrypt\"", "\"Decrypt\"", 1)),
        (13, |s| s.replacen("192.0.2.10", "198.51.100.7", 1)),
        // Whitespace only: the bytes differ, so the hash does.
        (20, |s| format!("{s} ")),
        // Not JSON any more: no eventID to match, found by its place.
        (5, |_| "garbage".to_owned()),
    ];
    for (seq, edit) in edits {
        let mut records = c.records.clone();
        let r = &mut records[position(&c.records, seq)];
        r.event = edit(std::str::from_utf8(&r.event).unwrap()).into_bytes();
        let digest = if seq <= 8 {
            1
        } else if seq <= 14 {
            2
        } else {
            3
        };
        check(&records, &c.digests, &[Problem::RecordChanged { seq, event_id: eid(seq), digest }]);
    }
}

#[test]
fn a_changed_event_id_is_a_change_in_place() {
    let c = case();
    let mut records = c.records.clone();
    let r = &mut records[position(&c.records, 12)];
    r.event =
        std::str::from_utf8(&r.event).unwrap().replacen(&eid(12), "forged-id", 1).into_bytes();
    check(
        &records,
        &c.digests,
        &[Problem::RecordChanged { seq: 12, event_id: eid(12), digest: 2 }],
    );
}

#[test]
fn inserted_records_are_named() {
    let c = case();
    let mut forged = fixture()[1].clone();
    forged.event_id = "forged".into();
    let forged = forged.to_json_bytes().unwrap();
    // Into a covered gap (4 was B's), and as an extra seq inside the range.
    for seq in [4, 11, 19] {
        let mut records = c.records.clone();
        records.push(AuditRecord { seq, event: forged.clone() });
        check(
            &records,
            &c.digests,
            &[Problem::RecordInserted { seq, event_id: Some("forged".into()) }],
        );
    }
    // A copy of a real record under a second seq.
    let mut records = c.records.clone();
    let copy = records[position(&c.records, 3)].event.clone();
    records.push(AuditRecord { seq: 6, event: copy });
    check(&records, &c.digests, &[Problem::RecordInserted { seq: 6, event_id: Some(eid(3)) }]);
}

#[test]
fn records_after_the_last_digest_are_pending_not_inserted() {
    let c = case();
    let mut records = c.records.clone();
    let mut late = fixture()[0].clone();
    late.event_id = "late".into();
    records.push(AuditRecord { seq: 21, event: late.to_json_bytes().unwrap() });
    let report = run(&records, &c.digests);
    assert!(report.is_ok(), "{report:#?}");
    assert_eq!(report.records_undigested, 1);
}

#[test]
fn reordered_records_are_named() {
    let c = case();
    // Two neighbours swapped: one of them is out of place.
    let mut records = c.records.clone();
    let (a, b) = (position(&records, 2), position(&records, 3));
    let (ea, eb) = (records[a].event.clone(), records[b].event.clone());
    records[a].event = eb;
    records[b].event = ea;
    let report = run(&records, &c.digests);
    assert_eq!(report.problems.len(), 1, "{report:#?}");
    assert!(matches!(&report.problems[0], Problem::RecordReordered { event_id, digest: 1, .. }
        if *event_id == eid(2) || *event_id == eid(3)));

    // One record moved far back (to the end): exactly that one.
    let mut records = c.records.clone();
    let moved = records.remove(position(&records, 5));
    records.push(AuditRecord { seq: 21, event: moved.event });
    check(
        &records,
        &c.digests,
        &[Problem::RecordReordered { seq: 21, event_id: eid(5), digest: 1 }],
    );

    // Across digests.
    let mut records = c.records.clone();
    let (a, b) = (position(&records, 1), position(&records, 20));
    let (ea, eb) = (records[a].event.clone(), records[b].event.clone());
    records[a].event = eb;
    records[b].event = ea;
    let report = run(&records, &c.digests);
    assert_eq!(report.problems.len(), 2, "both ends of a long swap are out of order: {report:#?}");
    assert!(report.problems.iter().all(|p| matches!(p, Problem::RecordReordered { .. })));
}

#[test]
fn several_tamperings_are_all_reported() {
    let c = case();
    let mut records = c.records.clone();
    records.remove(position(&records, 3));
    let r = &mut records[position(&c.records, 10) - 1];
    r.event.push(b' ');
    let mut forged = fixture()[1].clone();
    forged.event_id = "forged".into();
    records.push(AuditRecord { seq: 17, event: forged.to_json_bytes().unwrap() });
    check(
        &records,
        &c.digests,
        &[
            Problem::RecordRemoved { seq: 3, event_id: eid(3), digest: 1 },
            Problem::RecordChanged { seq: 10, event_id: eid(10), digest: 2 },
            Problem::RecordInserted { seq: 17, event_id: Some("forged".into()) },
        ],
    );
}

#[test]
fn a_missing_digest_is_named_and_its_records_unverified() {
    let c = case();
    let digests = vec![c.digests[0].clone(), c.digests[2].clone()];
    let report = run(&c.records, &digests);
    let mut expected = vec![Problem::DigestMissing { from: 2, to: 2 }];
    expected.extend(
        [10, 12, 13].map(|seq| Problem::RecordUnverified { seq, event_id: Some(eid(seq)) }),
    );
    assert_eq!(report.problems, expected, "{report:#?}");
    // The first digest missing in a complete view.
    let report = run(&c.records, &c.digests[1..]);
    assert_eq!(report.problems[0], Problem::DigestMissing { from: 1, to: 1 });
    // The newest digest gone: its records look pending (nothing newer vouches for them).
    let report = run(&c.records, &c.digests[..2]);
    assert!(report.is_ok());
    assert_eq!(report.records_undigested, 4);
}

#[test]
fn an_export_may_start_after_the_first_digest() {
    let c = case();
    let later: Vec<AuditRecord> = c.records.iter().filter(|r| r.seq > 8).cloned().collect();
    let report = verify(&VerifyInput {
        account: ACCT_A,
        records: &later,
        digests: &c.digests[1..],
        public_keys: &keys(),
        window: None,
        complete: false,
    });
    assert!(report.is_ok(), "{report:#?}");
    assert_eq!(report.records_verified, 7);
}

#[test]
fn an_altered_digest_fails_its_signature() {
    let c = case();
    // Hide record 12 by dropping it from the digest as well.
    let mut file = c.digests[1].file().unwrap();
    file.records.retain(|r| r.seq != 12);
    let forged = SignedDigest {
        body: serde_json::to_vec(&file).unwrap(),
        signature: c.digests[1].signature.clone(),
    };
    let mut records = c.records.clone();
    records.remove(position(&records, 12));
    let digests = vec![c.digests[0].clone(), forged, c.digests[2].clone()];
    let report = run(&records, &digests);
    assert_eq!(
        report.problems,
        [
            Problem::DigestBadSignature { digest: 2 },
            // Digest 3 still links the genuine digest 2, not the forgery.
            Problem::DigestChainBroken { digest: 3 },
            Problem::RecordUnverified { seq: 10, event_id: Some(eid(10)) },
            Problem::RecordUnverified { seq: 13, event_id: Some(eid(13)) },
        ],
        "{report:#?}"
    );
}

#[test]
fn a_digest_signed_by_another_key_is_refused() {
    let c = case();
    let store = AuditStore::open_temporary().unwrap();
    for (i, b) in fixture_bytes().iter().enumerate().take(8) {
        store.append(i as u64 + 1, b).unwrap();
    }
    store.write_digests(other_signer(), t(5000)).unwrap();
    let forged = store.digests(ACCT_A).unwrap().remove(0);
    let digests = vec![forged, c.digests[1].clone(), c.digests[2].clone()];
    let report = run(&c.records, &digests);
    let fingerprint = other_signer().public_key().fingerprint.clone();
    assert_eq!(report.problems[0], Problem::DigestUnknownKey { digest: 1, fingerprint });
    // Trusting both keys: the rogue digest verifies but digest 2 does not link it.
    let both = [keys(), vec![other_signer().public_key().clone()]].concat();
    let report = verify(&VerifyInput {
        account: ACCT_A,
        records: &c.records,
        digests: &digests,
        public_keys: &both,
        window: None,
        complete: true,
    });
    assert_eq!(report.problems, [Problem::DigestChainBroken { digest: 2 }], "{report:#?}");
}

#[test]
fn a_validly_signed_digest_with_a_broken_link_is_named() {
    let c = case();
    // Digest 3 re-issued (by the real key) linking digest 1 instead of 2.
    let d1 = &c.digests[0];
    let d3 = c.digests[2].file().unwrap();
    let mut relinked = DigestDraft {
        account: ACCT_A,
        previous: Some(d1),
        start_time: d3.digest_start_time.clone(),
        end_time: d3.digest_end_time.clone(),
        covered: d3.covered_seqs,
        records: d3.records.clone(),
        event_times: None,
    }
    .sign(signer())
    .unwrap();
    // It claims to be digest 2 now; put it in as a duplicate of 2.
    let report = run(&c.records, &[d1.clone(), c.digests[1].clone(), relinked.clone()]);
    assert!(report.problems.contains(&Problem::DigestDuplicate { digest: 2 }), "{report:#?}");
    // Make it claim sequence 3 by re-signing a patched body.
    let mut file = relinked.file().unwrap();
    file.digest_sequence = 3;
    let body = serde_json::to_vec(&file).unwrap();
    relinked = SignedDigest {
        signature: signer().sign(&crate::digest::string_to_sign(&file, &body)).unwrap(),
        body,
    };
    let report = run(&c.records, &[d1.clone(), c.digests[1].clone(), relinked]);
    assert_eq!(report.problems, [Problem::DigestChainBroken { digest: 3 }], "{report:#?}");
}

#[test]
fn swapped_signatures_fail() {
    let c = case();
    let mut digests = c.digests.clone();
    let s0 = digests[0].signature.clone();
    digests[0].signature = digests[1].signature.clone();
    digests[1].signature = s0;
    let report = run(&c.records, &digests);
    assert!(report.problems.contains(&Problem::DigestBadSignature { digest: 1 }));
    assert!(report.problems.contains(&Problem::DigestBadSignature { digest: 2 }));
}

#[test]
fn foreign_malformed_and_duplicate_digests() {
    let c = case();
    let mut digests = c.digests.clone();
    digests.push(c.b_digests[0].clone());
    digests.push(SignedDigest { body: b"{not json".to_vec(), signature: vec![] });
    digests.push(c.digests[0].clone());
    let report = run(&c.records, &digests);
    assert_eq!(
        report.problems,
        [
            Problem::DigestWrongAccount { digest: 1, account: ACCT_B.into() },
            Problem::DigestMalformed { index: 4 },
            Problem::DigestDuplicate { digest: 1 },
        ],
        "{report:#?}"
    );
}

#[test]
fn a_window_expects_only_its_records() {
    let c = case();
    let window = (t(240).unix_timestamp(), t(540).unix_timestamp());
    let inside: Vec<AuditRecord> =
        c.records.iter().filter(|r| [5, 7, 8, 10, 12].contains(&r.seq)).cloned().collect();
    let with = |records: &[AuditRecord]| {
        verify(&VerifyInput {
            account: ACCT_A,
            records,
            digests: &c.digests,
            public_keys: &keys(),
            window: Some(window),
            complete: true,
        })
    };
    let report = with(&inside);
    assert!(report.is_ok(), "{report:#?}");
    assert_eq!(report.records_verified, 5);
    let mut fewer = inside.clone();
    fewer.retain(|r| r.seq != 8);
    assert_eq!(
        with(&fewer).problems,
        [Problem::RecordRemoved { seq: 8, event_id: eid(8), digest: 1 }]
    );
}

#[test]
fn problems_read_well() {
    let p = Problem::RecordRemoved { seq: 7, event_id: "e-7".into(), digest: 2 };
    assert_eq!(p.to_string(), "record 7 (eventID e-7) removed; listed in digest 2");
    let json = serde_json::to_value(&p).unwrap();
    assert_eq!(json["kind"], "recordRemoved");
    assert_eq!(json["seq"], 7);
}

#[test]
fn longest_increasing_keeps_the_longest_agreeing_run() {
    let check = |values: &[usize], dropped: &[usize]| {
        let keep = longest_increasing(values);
        let mut out: Vec<usize> = (0..values.len()).filter(|i| !keep.contains(i)).collect();
        out.sort_unstable();
        assert_eq!(out, dropped, "{values:?}");
    };
    check(&[], &[]);
    check(&[0, 1, 2, 3], &[]);
    check(&[1, 0, 2, 3], &[0]);
    check(&[0, 1, 2, 3, 9, 4, 5, 6], &[4]);
    check(&[5, 0, 1, 2, 3, 4], &[0]);
    check(&[3, 2, 1, 0], &[0, 1, 2]);
}
