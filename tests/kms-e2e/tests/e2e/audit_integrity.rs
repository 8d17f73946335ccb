//! Tamper evidence end to end: calls through `aws-sdk-kms`, digests forced over the bus
//! and signed by the audit service, the stopped service's store verified against them
//! with the public key the service publishes, then exported as CloudTrail log files and
//! digests; altering, deleting or reordering a record in the exported files is named by
//! the verifier down to the record.

use std::path::Path;
use std::time::Duration;

use aws_sdk_kms::operation::RequestId;
use aws_sdk_kms::primitives::Blob;
use kms_audit_log::{read_export, write_export, AuditStore, DigestPublicKey, Export, Problem};
use kms_bus::CallContext;

use crate::sandbox::{Sandbox, ACCOUNT_A, ACCOUNT_B};

fn ctx() -> CallContext {
    CallContext { request_id: "5d0a6c1e-0000-4000-8000-0000000000e2".into() }
}

/// A gzip member with stored (uncompressed) deflate blocks: enough to rewrite an export
/// file without a compression library.
fn gzip_stored(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
    let chunks: Vec<&[u8]> =
        if data.is_empty() { vec![&[]] } else { data.chunks(65_535).collect() };
    for (i, chunk) in chunks.iter().enumerate() {
        out.push(u8::from(i + 1 == chunks.len()));
        let len = chunk.len() as u16;
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(chunk);
    }
    let mut crc = 0xffff_ffffu32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xedb8_8320 } else { crc >> 1 };
        }
    }
    out.extend_from_slice(&(!crc).to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out
}

/// Rewrites the (single) log file of `account`'s export with `edit` applied to its records.
fn tamper_log(dir: &Path, account: &str, edit: impl FnOnce(&mut Vec<Vec<u8>>)) {
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.join(format!("AWSLogs/{account}/kms-audit-export.json"))).unwrap(),
    )
    .unwrap();
    let files = manifest["logFiles"].as_array().unwrap();
    assert_eq!(files.len(), 1);
    let path = dir.join(files[0]["path"].as_str().unwrap());
    let export = read_export(dir).unwrap().into_iter().find(|e| e.account == account).unwrap();
    let mut records: Vec<Vec<u8>> = export.records.into_iter().map(|r| r.event).collect();
    edit(&mut records);
    let mut body = b"{\"Records\":[".to_vec();
    body.extend_from_slice(&records.join(&b","[..]));
    body.extend_from_slice(b"]}");
    std::fs::write(path, gzip_stored(&body)).unwrap();
}

fn verify_dir(
    dir: &Path,
    account: &str,
    keys: &[DigestPublicKey],
) -> kms_audit_log::VerificationReport {
    read_export(dir).unwrap().into_iter().find(|e| e.account == account).unwrap().verify(Some(keys))
}

#[tokio::test]
async fn digests_sign_the_log_and_tampered_exports_are_located() {
    let mut sb = Sandbox::start_with_separate_audit().await;
    sb.wait_audit().await;
    let kms = sb.kms(ACCOUNT_A);
    let key = sb.create_key(ACCOUNT_A).await;
    let encrypted = kms
        .encrypt()
        .key_id(&key)
        .plaintext(Blob::new(b"digest me".to_vec()))
        .encryption_context("Department", "Finance")
        .send()
        .await
        .unwrap();
    let encrypt_request = encrypted.request_id().unwrap().to_owned();
    kms.decrypt()
        .ciphertext_blob(encrypted.ciphertext_blob().unwrap().clone())
        .encryption_context("Department", "Finance")
        .send()
        .await
        .unwrap();
    sb.create_key(ACCOUNT_B).await;
    // Every call above is in the store once lookups see them.
    let seen = sb.events(ACCOUNT_A).await;
    assert!(seen.iter().any(|e| e["requestID"] == encrypt_request.as_str()));

    // Force a digest pass and fetch the public key over the bus.
    let bus = kms_bus::Bus::connect(&sb.nats.url(), Duration::from_secs(5)).await.unwrap();
    let written =
        bus.call::<kms_bus::audit::WriteDigests>(&ctx(), &Default::default()).await.unwrap();
    let accounts: Vec<&str> = written.digests.iter().map(|d| d.account.as_str()).collect();
    assert!(accounts.contains(&ACCOUNT_A) && accounts.contains(&ACCOUNT_B), "{accounts:?}");
    let published =
        bus.call::<kms_bus::audit::GetDigestPublicKeys>(&ctx(), &Default::default()).await.unwrap();
    let keys: Vec<DigestPublicKey> =
        published.keys.iter().map(|k| DigestPublicKey::from_pem(&k.pem).unwrap()).collect();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].fingerprint, published.keys[0].fingerprint);

    // The stopped service's store verifies against the published key.
    sb.stop_audit(false).await;
    let store = AuditStore::open(sb.separate_audit_dir()).unwrap();
    let report = store.verify_account(ACCOUNT_A, &keys).unwrap();
    assert!(report.is_ok(), "{report:#?}");
    assert!(report.records_verified >= 4, "{report:#?}");
    assert_eq!(report.records_undigested, 0);
    assert!(store.verify_account(ACCOUNT_B, &keys).unwrap().is_ok());

    // Export A's log, and check it offline.
    let records = store.account_records(ACCOUNT_A, None).unwrap();
    let encrypt = records
        .iter()
        .find(|r| String::from_utf8_lossy(&r.event).contains(&encrypt_request))
        .unwrap()
        .clone();
    let encrypt_id: String = serde_json::from_slice::<serde_json::Value>(&encrypt.event).unwrap()
        ["eventID"]
        .as_str()
        .unwrap()
        .to_owned();
    let export = Export {
        account: ACCOUNT_A.into(),
        window: None,
        records: records.clone(),
        digests: store.digests(ACCOUNT_A).unwrap(),
        public_keys: store.digest_public_keys().unwrap(),
        missing_files: Vec::new(),
    };
    drop(store);
    let dir = tempfile::tempdir().unwrap();
    let summary = write_export(dir.path(), &export).unwrap();
    assert_eq!(summary.records, records.len());
    assert!(verify_dir(dir.path(), ACCOUNT_A, &keys).is_ok());
    let position = records.iter().position(|r| r.seq == encrypt.seq).unwrap();

    // Altered: the Encrypt record's encryption context rewritten.
    tamper_log(dir.path(), ACCOUNT_A, |r| {
        let text = String::from_utf8(r[position].clone()).unwrap();
        assert!(text.contains("Finance"));
        r[position] = text.replacen("Finance", "Payroll", 1).into_bytes();
    });
    assert_eq!(
        verify_dir(dir.path(), ACCOUNT_A, &keys).problems,
        [Problem::RecordChanged { seq: encrypt.seq, event_id: encrypt_id.clone(), digest: 1 }]
    );

    // Removed.
    write_export(dir.path(), &export).unwrap();
    tamper_log(dir.path(), ACCOUNT_A, |r| {
        r.remove(position);
    });
    assert_eq!(
        verify_dir(dir.path(), ACCOUNT_A, &keys).problems,
        [Problem::RecordRemoved { seq: encrypt.seq, event_id: encrypt_id.clone(), digest: 1 }]
    );

    // Moved to the end.
    write_export(dir.path(), &export).unwrap();
    tamper_log(dir.path(), ACCOUNT_A, |r| {
        let moved = r.remove(position);
        r.push(moved);
    });
    let report = verify_dir(dir.path(), ACCOUNT_A, &keys);
    assert!(
        report.problems.len() == 1
            && matches!(&report.problems[0], Problem::RecordReordered { event_id, .. } if *event_id == encrypt_id)
            || report.problems.iter().all(|p| matches!(p, Problem::RecordReordered { .. })),
        "{report:#?}"
    );
    assert!(!report.is_ok());

    // Signed by someone else: the export's own keys are not trusted over the pinned one.
    write_export(dir.path(), &export).unwrap();
    let rogue = read_export(dir.path()).unwrap().remove(0);
    let unpinned = rogue.verify(Some(&[]));
    assert!(unpinned.problems.iter().any(|p| matches!(p, Problem::DigestUnknownKey { .. })));
}
