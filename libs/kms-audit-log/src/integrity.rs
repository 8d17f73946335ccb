//! The store's side of integrity: digest passes that sign what was appended since the
//! last pass (one digest per account with new records), the published keys, and the reads
//! the verifier and exports need (an account's records, its digests).

use std::collections::BTreeMap;

use sled::transaction::ConflictableTransactionError;
use sled::Transactional;
use time::OffsetDateTime;

use crate::digest::{
    record_hash_hex, DigestDraft, DigestPublicKey, DigestRecord, DigestSigner, SeqRange,
    SignedDigest,
};
use crate::event::format_event_time;
use crate::record::{time_prefix, EventView, Scope, StoredRecord};
use crate::store::{be_u64, txn_err, AuditStore, StoreError};
use crate::verify::{verify, AuditRecord, VerificationReport, VerifyInput};

const META_DIGEST_CURSOR: &[u8] = b"digest_cursor";

/// One digest a pass wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestSummary {
    pub account: String,
    pub sequence: u64,
    pub records: usize,
}

fn account_prefix(account: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + account.len());
    out.extend_from_slice(&u32::try_from(account.len()).unwrap_or(u32::MAX).to_be_bytes());
    out.extend_from_slice(account.as_bytes());
    out
}

fn secs_to_text(secs: i64) -> String {
    OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| format_event_time(t).ok())
        .unwrap_or_default()
}

impl AuditStore {
    /// Records `key` as a digest key (idempotent), so digests it signs stay verifiable
    /// after the key is replaced.
    pub fn publish_digest_key(&self, key: &DigestPublicKey) -> Result<(), StoreError> {
        self.digest_keys.insert(key.fingerprint.as_bytes(), key.pem.as_bytes())?;
        kms_sled_guard::flush(&self.db)?;
        Ok(())
    }

    /// Every key that has been published, in fingerprint order.
    pub fn digest_public_keys(&self) -> Result<Vec<DigestPublicKey>, StoreError> {
        let mut out = Vec::new();
        for item in self.digest_keys.iter() {
            let (fp, pem) = item?;
            let fingerprint = String::from_utf8(fp.to_vec())
                .map_err(|_| StoreError::CorruptMeta("digest key fingerprint"))?;
            let pem = String::from_utf8(pem.to_vec())
                .map_err(|_| StoreError::CorruptMeta("digest key"))?;
            out.push(DigestPublicKey { fingerprint, pem });
        }
        Ok(out)
    }

    /// The highest record sequence covered by digests (0 before the first pass).
    pub fn digest_cursor(&self) -> Result<u64, StoreError> {
        match self.meta.get(META_DIGEST_CURSOR)? {
            None => Ok(0),
            Some(v) => be_u64(&v).ok_or(StoreError::CorruptMeta("digest_cursor")),
        }
    }

    /// Writes, for every account with records appended since the last pass, a digest
    /// listing them, linked to the account's previous digest and signed by `signer`.
    /// Durable (flushed) before returning. Passes are serialized.
    pub fn write_digests(
        &self,
        signer: &DigestSigner,
        now: OffsetDateTime,
    ) -> Result<Vec<DigestSummary>, StoreError> {
        let _pass = self.digest_lock.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let cursor = self.digest_cursor()?;
        let head = self.len();
        if head <= cursor {
            return Ok(Vec::new());
        }
        let mut per_account: BTreeMap<String, Vec<(DigestRecord, i64)>> = BTreeMap::new();
        for item in self.records.range((cursor + 1).to_be_bytes()..=head.to_be_bytes()) {
            let (k, v) = item?;
            let seq = be_u64(&k).ok_or(StoreError::CorruptMeta("records key"))?;
            let rec = StoredRecord::decode(&v).ok_or(StoreError::CorruptRecord { seq })?;
            let view =
                EventView::parse(&rec.event).map_err(|_| StoreError::CorruptRecord { seq })?;
            per_account.entry(view.recipient_account_id).or_default().push((
                DigestRecord {
                    seq,
                    event_id: view.event_id,
                    event_time: secs_to_text(view.event_time),
                    hash_value: record_hash_hex(&rec.event),
                },
                view.event_time,
            ));
        }
        let end_time = format_event_time(now).map_err(|_| StoreError::CorruptMeta("clock"))?;
        let mut written = Vec::new();
        let mut summaries = Vec::new();
        for (account, entries) in per_account {
            let previous = self.last_digest(&account)?;
            let previous_file = previous
                .as_ref()
                .map(SignedDigest::file)
                .transpose()
                .map_err(|_| StoreError::CorruptMeta("digest"))?;
            let oldest = entries.iter().map(|e| e.1).min().unwrap_or_default();
            let newest = entries.iter().map(|e| e.1).max().unwrap_or_default();
            let draft = DigestDraft {
                account: &account,
                previous: previous.as_ref(),
                start_time: previous_file
                    .as_ref()
                    .map_or_else(|| secs_to_text(oldest), |p| p.digest_end_time.clone()),
                end_time: end_time.clone(),
                covered: SeqRange {
                    from: previous_file.as_ref().map_or(1, |p| p.covered_seqs.to + 1),
                    to: head,
                },
                event_times: Some((secs_to_text(oldest), secs_to_text(newest))),
                records: entries.into_iter().map(|e| e.0).collect(),
            };
            let records = draft.records.len();
            let signed = draft.sign(signer)?;
            let sequence = previous_file.map_or(1, |p| p.digest_sequence + 1);
            let mut key = account_prefix(&account);
            key.extend_from_slice(&sequence.to_be_bytes());
            written.push((key, signed.encode()));
            summaries.push(DigestSummary { account, sequence, records });
        }
        kms_sled_guard::exclusively(|| {
            (&self.digests, &self.meta).transaction(|(digests, meta)| {
                for (k, v) in &written {
                    digests.insert(k.as_slice(), v.as_slice())?;
                }
                meta.insert(META_DIGEST_CURSOR, &head.to_be_bytes())?;
                Ok::<_, ConflictableTransactionError<()>>(())
            })
        })
        .map_err(txn_err)?;
        kms_sled_guard::flush(&self.db)?;
        Ok(summaries)
    }

    fn last_digest(&self, account: &str) -> Result<Option<SignedDigest>, StoreError> {
        match self.digests.scan_prefix(account_prefix(account)).next_back() {
            None => Ok(None),
            Some(item) => {
                let (_, v) = item?;
                SignedDigest::decode(&v).map(Some).ok_or(StoreError::CorruptMeta("digest"))
            }
        }
    }

    /// Every digest of `account`, oldest first.
    pub fn digests(&self, account: &str) -> Result<Vec<SignedDigest>, StoreError> {
        let mut out = Vec::new();
        for item in self.digests.scan_prefix(account_prefix(account)) {
            let (_, v) = item?;
            out.push(SignedDigest::decode(&v).ok_or(StoreError::CorruptMeta("digest"))?);
        }
        Ok(out)
    }

    /// Every account with at least one record, in order.
    pub fn accounts(&self) -> Result<Vec<String>, StoreError> {
        // Account-scoped time keys start `1 | len | account`; skip from one to the next.
        let mut out = Vec::new();
        let mut from = vec![1u8];
        while let Some(item) = self.idx_time.range(from.clone()..).next() {
            let (key, _) = item?;
            let len = key
                .get(1..5)
                .and_then(|b| b.try_into().ok())
                .map(u32::from_be_bytes)
                .ok_or(StoreError::CorruptMeta("time index key"))? as usize;
            let account = key.get(5..5 + len).ok_or(StoreError::CorruptMeta("time index key"))?;
            out.push(
                String::from_utf8(account.to_vec())
                    .map_err(|_| StoreError::CorruptMeta("time index key"))?,
            );
            from = key.get(..5 + len).unwrap_or_default().to_vec();
            from.extend_from_slice(&[0xff; 17]);
        }
        Ok(out)
    }

    /// The records of `account` (optionally only those whose event time lies in the
    /// inclusive window of Unix seconds), by sequence number. Index entries whose record
    /// is gone are skipped: the verifier reports the absence.
    pub fn account_records(
        &self,
        account: &str,
        window: Option<(i64, i64)>,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let prefix = time_prefix(Scope::Account(account));
        let (start, end) = window.unwrap_or((i64::MIN, i64::MAX));
        let mut seqs: Vec<u64> = crate::index::oldest_first(&self.idx_time, &prefix, start, end)?
            .into_iter()
            .map(|(_, seq)| seq)
            .collect();
        seqs.sort_unstable();
        seqs.dedup();
        let mut out = Vec::with_capacity(seqs.len());
        for seq in seqs {
            if let Some(v) = self.records.get(seq.to_be_bytes())? {
                // A record rewritten into garbage is handed over as its raw bytes.
                let event = StoredRecord::decode(&v).map_or_else(|| v.to_vec(), |r| r.event);
                out.push(AuditRecord { seq, event });
            }
        }
        Ok(out)
    }

    /// Records with sequence numbers after `after`, oldest first, at most `limit`.
    pub fn records_after(&self, after: u64, limit: usize) -> Result<Vec<AuditRecord>, StoreError> {
        let mut out = Vec::new();
        let Some(from) = after.checked_add(1) else { return Ok(out) };
        for item in self.records.range(from.to_be_bytes()..).take(limit) {
            let (k, v) = item?;
            let seq = be_u64(&k).ok_or(StoreError::CorruptMeta("records key"))?;
            let rec = StoredRecord::decode(&v).ok_or(StoreError::CorruptRecord { seq })?;
            out.push(AuditRecord { seq, event: rec.event });
        }
        Ok(out)
    }

    /// Verifies `account`'s stored records against its stored digests with the given
    /// trusted keys (pass keys obtained independently of this store where possible).
    pub fn verify_account(
        &self,
        account: &str,
        public_keys: &[DigestPublicKey],
    ) -> Result<VerificationReport, StoreError> {
        let records = self.account_records(account, None)?;
        let digests = self.digests(account)?;
        Ok(verify(&VerifyInput {
            account,
            records: &records,
            digests: &digests,
            public_keys,
            window: None,
            complete: true,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::tests::signer;
    use crate::testdata::{fixture, fixture_bytes, id, t, ACCT_A, ACCT_B};

    fn filled() -> AuditStore {
        let store = AuditStore::open_temporary().unwrap();
        for (i, b) in fixture_bytes().iter().enumerate() {
            store.append(i as u64 + 1, b).unwrap();
        }
        store
    }

    #[test]
    fn a_pass_writes_one_linked_digest_per_account_with_new_records() {
        let store = filled();
        let keys = [signer().public_key().clone()];
        store.publish_digest_key(&keys[0]).unwrap();
        assert_eq!(store.digest_public_keys().unwrap(), keys);
        let first = store.write_digests(signer(), t(2000)).unwrap();
        assert_eq!(
            first,
            [
                DigestSummary { account: ACCT_A.into(), sequence: 1, records: 13 },
                DigestSummary { account: ACCT_B.into(), sequence: 1, records: 7 },
            ]
        );
        assert_eq!(store.digest_cursor().unwrap(), 20);
        // Nothing new: nothing written.
        assert!(store.write_digests(signer(), t(2100)).unwrap().is_empty());
        let mut late = fixture()[0].clone();
        late.event_id = "late".into();
        store.append(100, &late.to_json_bytes().unwrap()).unwrap();
        let second = store.write_digests(signer(), t(2200)).unwrap();
        assert_eq!(second, [DigestSummary { account: ACCT_A.into(), sequence: 2, records: 1 }]);

        let a = store.digests(ACCT_A).unwrap();
        assert_eq!(a.len(), 2);
        let (d1, d2) = (a[0].file().unwrap(), a[1].file().unwrap());
        assert_eq!(d1.previous_digest_hash_value, None);
        assert_eq!(d2.previous_digest_hash_value, Some(a[0].hash_hex()));
        assert_eq!(d2.previous_digest_signature, Some(hex::encode(&a[0].signature)));
        assert_eq!(d1.covered_seqs, SeqRange { from: 1, to: 20 });
        assert_eq!(d2.covered_seqs, SeqRange { from: 21, to: 21 });
        assert_eq!(d1.records[0].event_id, id(0));
        assert_eq!(d1.digest_signature_algorithm, "SHA256withRSA");
        assert_eq!(d2.digest_start_time, d1.digest_end_time);
        assert_eq!(d1.oldest_event_time.as_deref(), Some("2026-11-23T10:00:00Z"));
        assert_eq!(store.accounts().unwrap(), [ACCT_A, ACCT_B]);

        for account in [ACCT_A, ACCT_B] {
            let report = store.verify_account(account, &keys).unwrap();
            assert!(report.is_ok(), "{report:?}");
            assert_eq!(report.records_verified, report.records_checked);
        }
        // A record appended after the last pass is pending, not a problem.
        let mut later = fixture()[0].clone();
        later.event_id = "later".into();
        store.append(101, &later.to_json_bytes().unwrap()).unwrap();
        let report = store.verify_account(ACCT_A, &keys).unwrap();
        assert!(report.is_ok());
        assert_eq!(report.records_undigested, 1);
    }

    #[test]
    fn account_records_and_windows() {
        let store = filled();
        let a = store.account_records(ACCT_A, None).unwrap();
        assert_eq!(a.len(), 13);
        assert!(a.windows(2).all(|w| w[0].seq < w[1].seq));
        let window = store
            .account_records(ACCT_A, Some((t(240).unix_timestamp(), t(540).unix_timestamp())))
            .unwrap();
        assert_eq!(window.iter().map(|r| r.seq).collect::<Vec<_>>(), [5, 7, 8, 10, 12]);
        assert_eq!(store.records_after(18, 10).unwrap().len(), 2);
        assert_eq!(store.records_after(20, 10).unwrap().len(), 0);
        assert_eq!(store.records_after(u64::MAX, 10).unwrap().len(), 0);
    }
}
