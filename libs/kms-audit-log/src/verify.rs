//! The verifier: records + signed digests + public keys → a report naming every record
//! removed, changed, inserted or reordered and every digest that is missing, forged or
//! unlinked. Pure: it reads nothing but its arguments, so the same code checks the live
//! store (online) and an export on disk (offline).
//!
//! Records are matched to digest entries by `eventID`, then by sequence number (a record
//! whose `eventID` itself was altered). Order is judged relative to the digests: the
//! records that are not on the longest run agreeing with the digests' order are the ones
//! reported as moved, so deleting one record and renumbering the rest reports exactly one
//! removal and no reordering.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::digest::{
    record_hash_hex, string_to_sign, DigestFile, DigestPublicKey, SeqRange, SignedDigest,
};
use crate::event::parse_event_time;

/// One record as observed (from the store or an export).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    /// Store sequence number (in exports: as written by the store).
    pub seq: u64,
    /// The record's bytes.
    pub event: Vec<u8>,
}

/// What to verify.
#[derive(Debug, Clone, Copy)]
pub struct VerifyInput<'a> {
    /// The account whose records and digests these are.
    pub account: &'a str,
    /// Every record of the account in view (any order).
    pub records: &'a [AuditRecord],
    /// The account's digests (any order).
    pub digests: &'a [SignedDigest],
    /// Trusted public keys; digests are matched to them by fingerprint.
    pub public_keys: &'a [DigestPublicKey],
    /// Only digest entries whose `eventTime` lies in `[start, end]` (Unix seconds,
    /// inclusive) are expected among the records: an export of a time window.
    pub window: Option<(i64, i64)>,
    /// Digests are expected from the account's first (sequence 1): the whole log is in
    /// view. False for exports, whose first digest may link one not exported.
    pub complete: bool,
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Problem {
    /// A digest body that does not parse (`index` in the input).
    DigestMalformed { index: usize },
    /// A digest of another account among this account's.
    DigestWrongAccount { digest: u64, account: String },
    /// Signed by a key not among the trusted ones.
    DigestUnknownKey { digest: u64, fingerprint: String },
    /// The signature does not verify: the digest was altered or forged.
    DigestBadSignature { digest: u64 },
    /// Digests `from..=to` are absent.
    DigestMissing { from: u64, to: u64 },
    /// Two digests with the same sequence number.
    DigestDuplicate { digest: u64 },
    /// The digest's previous-digest hash or signature is not the previous digest's.
    DigestChainBroken { digest: u64 },
    /// Listed in `digest`, absent from the records.
    RecordRemoved { seq: u64, event_id: String, digest: u64 },
    /// Present, but its bytes are not the ones `digest` lists.
    RecordChanged { seq: u64, event_id: String, digest: u64 },
    /// Present in a range the digests cover, listed by none.
    RecordInserted { seq: u64, event_id: Option<String> },
    /// Present and unaltered, but out of the order the digests list.
    RecordReordered { seq: u64, event_id: String, digest: u64 },
    /// Present in a range whose digest is missing or invalid: nothing vouches for it.
    RecordUnverified { seq: u64, event_id: Option<String> },
    /// A file the export's manifest lists is missing or unreadable.
    FileMissing { path: String },
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::DigestMalformed { index } => write!(f, "digest #{index} does not parse"),
            Self::DigestWrongAccount { digest, account } => {
                write!(f, "digest {digest} belongs to account {account}")
            }
            Self::DigestUnknownKey { digest, fingerprint } => {
                write!(f, "digest {digest} is signed by unknown key {fingerprint}")
            }
            Self::DigestBadSignature { digest } => {
                write!(f, "digest {digest}: signature does not verify (altered or forged)")
            }
            Self::DigestMissing { from, to } if from == to => write!(f, "digest {from} is missing"),
            Self::DigestMissing { from, to } => write!(f, "digests {from}..={to} are missing"),
            Self::DigestDuplicate { digest } => write!(f, "digest {digest} appears twice"),
            Self::DigestChainBroken { digest } => {
                write!(f, "digest {digest} does not link the previous digest")
            }
            Self::RecordRemoved { seq, event_id, digest } => {
                write!(f, "record {seq} (eventID {event_id}) removed; listed in digest {digest}")
            }
            Self::RecordChanged { seq, event_id, digest } => {
                write!(f, "record {seq} (eventID {event_id}) changed since digest {digest}")
            }
            Self::RecordInserted { seq, event_id } => write!(
                f,
                "record {seq} (eventID {}) inserted: no digest lists it",
                event_id.as_deref().unwrap_or("?")
            ),
            Self::RecordReordered { seq, event_id, digest } => write!(
                f,
                "record {seq} (eventID {event_id}) moved out of the order digest {digest} lists"
            ),
            Self::RecordUnverified { seq, event_id } => write!(
                f,
                "record {seq} (eventID {}) is in a range no valid digest covers",
                event_id.as_deref().unwrap_or("?")
            ),
            Self::FileMissing { path } => write!(f, "file {path} is missing or unreadable"),
        }
    }
}

/// The verdict.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VerificationReport {
    pub account: String,
    pub digests_checked: u64,
    pub digests_valid: u64,
    pub records_checked: u64,
    /// Records matched, unaltered, to a valid digest.
    pub records_verified: u64,
    /// Records newer than the newest digest (not yet covered; not a problem).
    pub records_undigested: u64,
    /// Records in ranges only a missing or invalid digest covers (each also a problem).
    pub records_unverifiable: u64,
    pub problems: Vec<Problem>,
}

impl VerificationReport {
    /// True when nothing is wrong.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
}

struct Expected<'a> {
    /// Position in the digests' order.
    position: usize,
    digest: u64,
    entry: &'a crate::digest::DigestRecord,
}

fn event_id_of(event: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(event).ok()?;
    v.get("eventID")?.as_str().map(str::to_owned)
}

/// Verifies one account's records against its digests.
pub fn verify(input: &VerifyInput<'_>) -> VerificationReport {
    let mut report = VerificationReport {
        account: input.account.to_owned(),
        digests_checked: input.digests.len() as u64,
        records_checked: input.records.len() as u64,
        ..Default::default()
    };
    let problems = &mut report.problems;

    // 1. Digests: parse, authenticate, order, link.
    let keys: HashMap<&str, &DigestPublicKey> =
        input.public_keys.iter().map(|k| (k.fingerprint.as_str(), k)).collect();
    let mut parsed: BTreeMap<u64, (&SignedDigest, DigestFile, bool)> = BTreeMap::new();
    for (index, signed) in input.digests.iter().enumerate() {
        let Ok(file) = signed.file() else {
            problems.push(Problem::DigestMalformed { index });
            continue;
        };
        let n = file.digest_sequence;
        if file.aws_account_id != input.account {
            problems.push(Problem::DigestWrongAccount { digest: n, account: file.aws_account_id });
            continue;
        }
        let valid = match keys.get(file.digest_public_key_fingerprint.as_str()) {
            None => {
                problems.push(Problem::DigestUnknownKey {
                    digest: n,
                    fingerprint: file.digest_public_key_fingerprint.clone(),
                });
                false
            }
            Some(key) => {
                let ok = key.verifies(&string_to_sign(&file, &signed.body), &signed.signature);
                if !ok {
                    problems.push(Problem::DigestBadSignature { digest: n });
                }
                ok
            }
        };
        if parsed.contains_key(&n) {
            problems.push(Problem::DigestDuplicate { digest: n });
            continue;
        }
        parsed.insert(n, (signed, file, valid));
    }
    report.digests_valid = parsed.values().filter(|(_, _, valid)| *valid).count() as u64;

    let mut previous: Option<(u64, &SignedDigest)> = None;
    for (&n, (signed, file, _)) in &parsed {
        let expected_prev = match previous {
            None if input.complete => Some(0),
            None => None,
            Some((p, _)) => Some(p),
        };
        if let Some(p) = expected_prev {
            if n > p + 1 {
                problems.push(Problem::DigestMissing { from: p + 1, to: n - 1 });
            }
        }
        let linked = match previous {
            Some((p, prev)) if p + 1 == n => {
                file.previous_digest_hash_value.as_deref() == Some(prev.hash_hex().as_str())
                    && file.previous_digest_signature.as_deref()
                        == Some(hex::encode(&prev.signature).as_str())
            }
            // The first digest of the account links nothing.
            _ if n == 1 => {
                file.previous_digest_hash_value.is_none()
                    && file.previous_digest_signature.is_none()
            }
            // The previous one is missing (reported above) or not in view (an export).
            _ => true,
        };
        if !linked {
            problems.push(Problem::DigestChainBroken { digest: n });
        }
        previous = Some((n, signed));
    }

    // 2. What the valid digests say the records are, in order.
    let mut expected: HashMap<&str, Expected<'_>> = HashMap::new();
    let mut expected_by_seq: BTreeMap<u64, &str> = BTreeMap::new();
    let mut valid_ranges: Vec<SeqRange> = Vec::new();
    let mut any_range_end = 0u64;
    let mut position = 0usize;
    for (&n, (_, file, valid)) in &parsed {
        any_range_end = any_range_end.max(file.covered_seqs.to);
        if !*valid {
            continue;
        }
        valid_ranges.push(file.covered_seqs);
        for entry in &file.records {
            if let Some((start, end)) = input.window {
                let in_window = parse_event_time(&entry.event_time)
                    .map(|t| (start..=end).contains(&t.unix_timestamp()))
                    .unwrap_or(true);
                if !in_window {
                    continue;
                }
            }
            if expected.contains_key(entry.event_id.as_str()) {
                continue;
            }
            expected.insert(&entry.event_id, Expected { position, digest: n, entry });
            expected_by_seq.insert(entry.seq, &entry.event_id);
            position += 1;
        }
    }

    // 3. Match the records.
    let mut records: Vec<&AuditRecord> = input.records.iter().collect();
    records.sort_by_key(|r| r.seq);
    let mut matched: HashSet<&str> = HashSet::new();
    let mut unmatched: BTreeMap<u64, (&AuditRecord, Option<String>)> = BTreeMap::new();
    // (observed seq, expected position, event id, digest) of unaltered matches.
    let mut in_order: Vec<(u64, usize, String, u64)> = Vec::new();
    let mut changed: Vec<Problem> = Vec::new();
    for record in &records {
        let id = event_id_of(&record.event);
        match id.as_deref().and_then(|i| expected.get_key_value(i)) {
            Some((&key, e)) if !matched.contains(key) => {
                matched.insert(key);
                if record_hash_hex(&record.event) == e.entry.hash_value {
                    in_order.push((record.seq, e.position, key.to_owned(), e.digest));
                } else {
                    changed.push(Problem::RecordChanged {
                        seq: record.seq,
                        event_id: key.to_owned(),
                        digest: e.digest,
                    });
                }
            }
            _ => {
                // A record with an unknown or repeated id; a second copy of one seq is
                // kept apart from the first.
                let mut seq_key = record.seq;
                while unmatched.contains_key(&seq_key) {
                    seq_key = seq_key.saturating_add(u64::MAX / 2);
                }
                unmatched.insert(seq_key, (record, id));
            }
        }
    }

    // 4. Listed but not found: altered id in place (changed), or gone (removed).
    let mut removed: Vec<Problem> = Vec::new();
    let mut ids: Vec<&&str> = expected.keys().collect();
    ids.sort_by_key(|id| expected[**id].position);
    for id in ids {
        if matched.contains(*id) {
            continue;
        }
        let e = &expected[*id];
        match unmatched.remove(&e.entry.seq) {
            Some(_) => changed.push(Problem::RecordChanged {
                seq: e.entry.seq,
                event_id: (*id).to_owned(),
                digest: e.digest,
            }),
            None => removed.push(Problem::RecordRemoved {
                seq: e.entry.seq,
                event_id: (*id).to_owned(),
                digest: e.digest,
            }),
        }
    }

    // 5. Found but not listed.
    let mut inserted: Vec<Problem> = Vec::new();
    let mut unverified: Vec<Problem> = Vec::new();
    for (record, id) in unmatched.into_values() {
        if valid_ranges.iter().any(|r| r.contains(record.seq)) {
            inserted.push(Problem::RecordInserted { seq: record.seq, event_id: id });
        } else if record.seq > any_range_end {
            report.records_undigested += 1;
        } else {
            report.records_unverifiable += 1;
            unverified.push(Problem::RecordUnverified { seq: record.seq, event_id: id });
        }
    }

    // 6. Order: everything off the longest run agreeing with the digests moved.
    let keep = longest_increasing(&in_order.iter().map(|m| m.1).collect::<Vec<_>>());
    let mut reordered: Vec<Problem> = Vec::new();
    for (i, (seq, _, event_id, digest)) in in_order.iter().enumerate() {
        if keep.contains(&i) {
            report.records_verified += 1;
        } else {
            reordered.push(Problem::RecordReordered {
                seq: *seq,
                event_id: event_id.clone(),
                digest: *digest,
            });
        }
    }

    for list in [removed, changed, inserted, reordered, unverified] {
        problems.extend(list);
    }
    report
}

/// Indices of one longest strictly increasing subsequence of `values`.
fn longest_increasing(values: &[usize]) -> HashSet<usize> {
    // tails[k] = index of the smallest tail of an increasing run of length k + 1.
    let mut tails: Vec<usize> = Vec::new();
    let mut parent: Vec<Option<usize>> = vec![None; values.len()];
    for (i, &v) in values.iter().enumerate() {
        let k = tails.partition_point(|&t| values[t] < v);
        parent[i] = k.checked_sub(1).map(|p| tails[p]);
        if k == tails.len() {
            tails.push(i);
        } else {
            tails[k] = i;
        }
    }
    let mut out = HashSet::new();
    let mut cursor = tails.last().copied();
    while let Some(i) = cursor {
        out.insert(i);
        cursor = parent[i];
    }
    out
}

#[cfg(test)]
mod tests;
