//! Export of one account's records in a time window as CloudTrail log files
//! (`{"Records": [...]}`, gzip), with the signed digests that cover them and the public
//! keys, laid out as CloudTrail lays out its bucket, and the reader that loads such a
//! directory back for offline verification.
//!
//! ```text
//! AWSLogs/<account>/kms-audit-export.json              manifest: window, files, sequence numbers
//! AWSLogs/<account>/CloudTrail/kms/YYYY/MM/DD/<account>_CloudTrail_kms_<time>_<n>.json.gz
//! AWSLogs/<account>/CloudTrail-Digest/kms/YYYY/MM/DD/<account>_CloudTrail-Digest_kms_<n>_<time>.json.gz
//!                                                      (+ `.signature`: hex SHA256withRSA)
//! AWSLogs/<account>/CloudTrail-Digest/public-keys.json
//! ```
//!
//! Records are written byte for byte as stored (the digests hash those bytes).

use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::digest::{record_hash_hex, DigestPublicKey, SignedDigest};
use crate::event::parse_event_time;
use crate::verify::{verify, AuditRecord, Problem, VerificationReport, VerifyInput};

/// Records per log file.
const RECORDS_PER_FILE: usize = 1000;
const MANIFEST: &str = "kms-audit-export.json";

/// One account's export, in memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Export {
    pub account: String,
    /// Inclusive window of event times (Unix seconds); `None` is everything.
    pub window: Option<(i64, i64)>,
    pub records: Vec<AuditRecord>,
    pub digests: Vec<SignedDigest>,
    pub public_keys: Vec<DigestPublicKey>,
    /// Files the manifest lists that could not be read (filled by `read_export`).
    pub missing_files: Vec<String>,
}

/// What `write_export` wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExportSummary {
    pub records: usize,
    pub log_files: usize,
    pub digest_files: usize,
}

/// Export I/O or format failure.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("export file {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("export file {path} is malformed: {reason}")]
    Malformed { path: PathBuf, reason: String },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ExportError + '_ {
    move |source| ExportError::Io { path: path.to_owned(), source }
}

fn malformed(path: &Path, reason: impl Into<String>) -> ExportError {
    ExportError::Malformed { path: path.to_owned(), reason: reason.into() }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Manifest {
    aws_account_id: String,
    window_start: Option<i64>,
    window_end: Option<i64>,
    log_files: Vec<LogFileEntry>,
    digest_files: Vec<String>,
    public_keys_file: String,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LogFileEntry {
    path: String,
    /// Hex SHA-256 of the uncompressed file, as CloudTrail's digests hash log files.
    hash_value: String,
    /// Store sequence number of each record in the file, in file order.
    seqs: Vec<u64>,
}

fn write_gz(path: &Path, bytes: &[u8]) -> Result<(), ExportError> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io(parent))?;
    }
    let file = std::fs::File::create(path).map_err(io(path))?;
    let mut gz = flate2::write::GzEncoder::new(file, flate2::Compression::default());
    gz.write_all(bytes).map_err(io(path))?;
    gz.finish().map_err(io(path))?.sync_all().map_err(io(path))
}

fn write_plain(path: &Path, bytes: &[u8]) -> Result<(), ExportError> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io(parent))?;
    }
    std::fs::write(path, bytes).map_err(io(path))
}

fn read_gz(path: &Path) -> Result<Vec<u8>, ExportError> {
    let file = std::fs::File::open(path).map_err(io(path))?;
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(file).read_to_end(&mut out).map_err(io(path))?;
    Ok(out)
}

/// A manifest path must stay inside the export directory.
fn inside(dir: &Path, relative: &str) -> Result<PathBuf, ExportError> {
    let rel = Path::new(relative);
    if rel.components().all(|c| matches!(c, Component::Normal(_))) {
        Ok(dir.join(rel))
    } else {
        Err(malformed(dir, format!("path {relative:?} leaves the export directory")))
    }
}

impl Export {
    /// The digests an export of `window` needs: those listing a record whose event time
    /// lies in the window, and every digest between the first and last of them (so the
    /// chain is unbroken). All of them when there is no window.
    pub fn select_digests(all: &[SignedDigest], window: Option<(i64, i64)>) -> Vec<SignedDigest> {
        let Some((start, end)) = window else { return all.to_vec() };
        let hits: Vec<usize> = all
            .iter()
            .enumerate()
            .filter(|(_, d)| {
                d.file().map_or(true, |f| {
                    f.records.iter().any(|r| {
                        parse_event_time(&r.event_time)
                            .map_or(true, |t| (start..=end).contains(&t.unix_timestamp()))
                    })
                })
            })
            .map(|(i, _)| i)
            .collect();
        match (hits.first(), hits.last()) {
            (Some(&first), Some(&last)) => all.get(first..=last).unwrap_or_default().to_vec(),
            _ => Vec::new(),
        }
    }

    /// Verifies the export; `trusted_keys` (obtained independently) replace the keys the
    /// export carries when given.
    pub fn verify(&self, trusted_keys: Option<&[DigestPublicKey]>) -> VerificationReport {
        let complete = self
            .digests
            .iter()
            .filter_map(|d| d.file().ok())
            .map(|f| f.digest_sequence)
            .min()
            .is_some_and(|first| first == 1);
        let mut report = verify(&VerifyInput {
            account: &self.account,
            records: &self.records,
            digests: &self.digests,
            public_keys: trusted_keys.unwrap_or(&self.public_keys),
            window: self.window,
            complete,
        });
        let missing =
            self.missing_files.iter().map(|path| Problem::FileMissing { path: path.clone() });
        report.problems.splice(0..0, missing);
        report
    }
}

fn log_file_name(account: &str, first_event: &[u8], n: usize) -> String {
    let time = serde_json::from_slice::<serde_json::Value>(first_event)
        .ok()
        .and_then(|v| v.get("eventTime").and_then(|t| t.as_str()).map(str::to_owned))
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".to_owned());
    let date = time.get(..10).unwrap_or("1970-01-01").replace('-', "/");
    let stamp: String = time.chars().filter(|c| c.is_ascii_alphanumeric()).collect();
    format!(
        "AWSLogs/{account}/CloudTrail/kms/{date}/{account}_CloudTrail_kms_{stamp}_{n:06}.json.gz"
    )
}

/// Writes `export` under `dir` (created if needed).
pub fn write_export(dir: &Path, export: &Export) -> Result<ExportSummary, ExportError> {
    let account = &export.account;
    let mut records: Vec<&AuditRecord> = export.records.iter().collect();
    records.sort_by_key(|r| r.seq);
    let mut log_files = Vec::new();
    for (n, chunk) in records.chunks(RECORDS_PER_FILE).enumerate() {
        let mut body = b"{\"Records\":[".to_vec();
        for (i, r) in chunk.iter().enumerate() {
            if i > 0 {
                body.push(b',');
            }
            body.extend_from_slice(&r.event);
        }
        body.extend_from_slice(b"]}");
        let first = chunk.first().map(|r| r.event.as_slice()).unwrap_or_default();
        let name = log_file_name(account, first, n + 1);
        write_gz(&dir.join(&name), &body)?;
        log_files.push(LogFileEntry {
            path: name,
            hash_value: record_hash_hex(&body),
            seqs: chunk.iter().map(|r| r.seq).collect(),
        });
    }
    let mut digest_files = Vec::new();
    for d in &export.digests {
        let file = d.file().map_err(|e| malformed(dir, format!("digest to export: {e}")))?;
        inside(dir, &file.digest_s3_object)?;
        write_gz(&dir.join(&file.digest_s3_object), &d.body)?;
        let sig = format!("{}.signature", file.digest_s3_object);
        write_plain(&dir.join(&sig), hex::encode(&d.signature).as_bytes())?;
        digest_files.push(file.digest_s3_object);
    }
    let keys_file = format!("AWSLogs/{account}/CloudTrail-Digest/public-keys.json");
    let keys = serde_json::to_vec_pretty(&export.public_keys)
        .map_err(|e| malformed(dir, e.to_string()))?;
    write_plain(&dir.join(&keys_file), &keys)?;
    let manifest = Manifest {
        aws_account_id: account.clone(),
        window_start: export.window.map(|w| w.0),
        window_end: export.window.map(|w| w.1),
        log_files,
        digest_files,
        public_keys_file: keys_file,
    };
    let summary = ExportSummary {
        records: records.len(),
        log_files: manifest.log_files.len(),
        digest_files: manifest.digest_files.len(),
    };
    let text = serde_json::to_vec_pretty(&manifest).map_err(|e| malformed(dir, e.to_string()))?;
    write_plain(&dir.join(format!("AWSLogs/{account}/{MANIFEST}")), &text)?;
    Ok(summary)
}

#[derive(Deserialize)]
struct LogFile<'a> {
    #[serde(borrow, rename = "Records")]
    records: Vec<&'a RawValue>,
}

/// Loads every account export under `dir` (each `AWSLogs/<account>/kms-audit-export.json`).
///
/// A log file that is missing or unreadable is not an error here: its records are simply
/// absent, which the verifier reports as removed.
pub fn read_export(dir: &Path) -> Result<Vec<Export>, ExportError> {
    let logs = dir.join("AWSLogs");
    let mut accounts: Vec<PathBuf> = std::fs::read_dir(&logs)
        .map_err(io(&logs))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join(MANIFEST).is_file())
        .collect();
    accounts.sort();
    let mut out = Vec::new();
    for account_dir in accounts {
        let path = account_dir.join(MANIFEST);
        let text = std::fs::read(&path).map_err(io(&path))?;
        let manifest: Manifest =
            serde_json::from_slice(&text).map_err(|e| malformed(&path, e.to_string()))?;
        let mut records = Vec::new();
        let mut missing_files = Vec::new();
        for entry in &manifest.log_files {
            let file = inside(dir, &entry.path)?;
            let Ok(body) = read_gz(&file) else {
                missing_files.push(entry.path.clone());
                continue;
            };
            let parsed: LogFile<'_> =
                serde_json::from_slice(&body).map_err(|e| malformed(&file, e.to_string()))?;
            for (i, raw) in parsed.records.iter().enumerate() {
                // Records beyond the manifest's list get numbers past the end of its run,
                // so they show up as inserted rather than vanish.
                let seq = entry.seqs.get(i).copied().unwrap_or_else(|| {
                    entry.seqs.last().copied().unwrap_or(0).saturating_add((i + 1) as u64)
                });
                records.push(AuditRecord { seq, event: raw.get().as_bytes().to_vec() });
            }
        }
        let mut digests = Vec::new();
        for name in &manifest.digest_files {
            let file = inside(dir, name)?;
            let Ok(body) = read_gz(&file) else {
                missing_files.push(name.clone());
                continue;
            };
            let sig_path = inside(dir, &format!("{name}.signature"))?;
            let signature = std::fs::read_to_string(&sig_path)
                .ok()
                .and_then(|s| hex::decode(s.trim()).ok())
                .unwrap_or_default();
            digests.push(SignedDigest { body, signature });
        }
        let keys_path = inside(dir, &manifest.public_keys_file)?;
        let public_keys = std::fs::read(&keys_path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        let window = manifest.window_start.zip(manifest.window_end);
        out.push(Export {
            account: manifest.aws_account_id,
            window,
            records,
            digests,
            public_keys,
            missing_files,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::tests::signer;
    use crate::testdata::{fixture_bytes, t, ACCT_A, ACCT_B};
    use crate::AuditStore;

    fn store() -> AuditStore {
        let store = AuditStore::open_temporary().unwrap();
        store.publish_digest_key(signer().public_key()).unwrap();
        let bytes = fixture_bytes();
        for (i, b) in bytes.iter().enumerate().take(10) {
            store.append(i as u64 + 1, b).unwrap();
        }
        store.write_digests(signer(), t(5000)).unwrap();
        for (i, b) in bytes.iter().enumerate().skip(10) {
            store.append(i as u64 + 1, b).unwrap();
        }
        store.write_digests(signer(), t(6000)).unwrap();
        store
    }

    fn export_of(store: &AuditStore, account: &str, window: Option<(i64, i64)>) -> Export {
        Export {
            account: account.into(),
            window,
            records: store.account_records(account, window).unwrap(),
            digests: Export::select_digests(&store.digests(account).unwrap(), window),
            public_keys: store.digest_public_keys().unwrap(),
            missing_files: Vec::new(),
        }
    }

    fn rewrite_log(dir: &Path, account: &str, f: impl FnOnce(&mut Vec<String>)) {
        let manifest: Manifest = serde_json::from_slice(
            &std::fs::read(dir.join(format!("AWSLogs/{account}/{MANIFEST}"))).unwrap(),
        )
        .unwrap();
        let path = dir.join(&manifest.log_files[0].path);
        let body = read_gz(&path).unwrap();
        let parsed: LogFile<'_> = serde_json::from_slice(&body).unwrap();
        let mut records: Vec<String> = parsed.records.iter().map(|r| r.get().to_owned()).collect();
        f(&mut records);
        write_gz(&path, format!("{{\"Records\":[{}]}}", records.join(",")).as_bytes()).unwrap();
    }

    #[test]
    fn export_round_trips_and_verifies_offline() {
        let store = store();
        let dir = tempfile::tempdir().unwrap();
        for account in [ACCT_A, ACCT_B] {
            let export = export_of(&store, account, None);
            let summary = write_export(dir.path(), &export).unwrap();
            assert_eq!(summary.records, export.records.len());
            assert_eq!(summary.log_files, 1);
        }
        let back = read_export(dir.path()).unwrap();
        assert_eq!(back.len(), 2);
        assert_eq!(back[0], export_of(&store, ACCT_A, None));
        for e in &back {
            let report = e.verify(None);
            assert!(report.is_ok(), "{report:?}");
            assert_eq!(report.records_verified, e.records.len() as u64);
        }
        // The log file is CloudTrail's shape.
        let manifest: Manifest = serde_json::from_slice(
            &std::fs::read(dir.path().join(format!("AWSLogs/{ACCT_A}/{MANIFEST}"))).unwrap(),
        )
        .unwrap();
        let log: serde_json::Value = serde_json::from_slice(
            &read_gz(&dir.path().join(&manifest.log_files[0].path)).unwrap(),
        )
        .unwrap();
        assert_eq!(log["Records"].as_array().unwrap().len(), 13);
        assert_eq!(log["Records"][0]["eventVersion"], "1.08");
        assert!(manifest.log_files[0]
            .path
            .starts_with(&format!("AWSLogs/{ACCT_A}/CloudTrail/kms/2026/11/23/")));
    }

    #[test]
    fn a_window_exports_only_its_records_and_still_verifies() {
        let store = store();
        let window = Some((t(240).unix_timestamp(), t(540).unix_timestamp()));
        let export = export_of(&store, ACCT_A, window);
        assert_eq!(export.records.len(), 5);
        let dir = tempfile::tempdir().unwrap();
        write_export(dir.path(), &export).unwrap();
        let back = read_export(dir.path()).unwrap().remove(0);
        assert_eq!(back.window, window);
        let report = back.verify(None);
        assert!(report.is_ok(), "{report:?}");
        assert_eq!(report.records_verified, 5);
    }

    #[test]
    fn tampered_exports_name_the_record() {
        let store = store();
        let export = export_of(&store, ACCT_A, None);
        let seq_of = |i: usize| export.records[i].seq;
        let dir = tempfile::tempdir().unwrap();

        write_export(dir.path(), &export).unwrap();
        rewrite_log(dir.path(), ACCT_A, |r| {
            r.remove(3);
        });
        let report = read_export(dir.path()).unwrap().remove(0).verify(None);
        assert!(
            matches!(report.problems.as_slice(), [Problem::RecordRemoved { seq, .. }] if *seq == seq_of(3)),
            "{report:?}"
        );

        write_export(dir.path(), &export).unwrap();
        rewrite_log(dir.path(), ACCT_A, |r| {
            r[5] = r[5].replacen("192.0.2.10", "198.51.100.9", 1);
        });
        let report = read_export(dir.path()).unwrap().remove(0).verify(None);
        assert!(
            matches!(report.problems.as_slice(), [Problem::RecordChanged { seq, .. }] if *seq == seq_of(5)),
            "{report:?}"
        );

        write_export(dir.path(), &export).unwrap();
        rewrite_log(dir.path(), ACCT_A, |r| r.swap(1, 2));
        let report = read_export(dir.path()).unwrap().remove(0).verify(None);
        assert!(
            matches!(report.problems.as_slice(), [Problem::RecordReordered { .. }]),
            "{report:?}"
        );

        // A forged digest (its signature file replaced by another's) is caught.
        write_export(dir.path(), &export).unwrap();
        let m: Manifest = serde_json::from_slice(
            &std::fs::read(dir.path().join(format!("AWSLogs/{ACCT_A}/{MANIFEST}"))).unwrap(),
        )
        .unwrap();
        let sig0 = dir.path().join(format!("{}.signature", m.digest_files[0]));
        let sig1 = dir.path().join(format!("{}.signature", m.digest_files[1]));
        std::fs::copy(&sig1, &sig0).unwrap();
        let report = read_export(dir.path()).unwrap().remove(0).verify(None);
        assert!(report.problems.contains(&Problem::DigestBadSignature { digest: 1 }), "{report:?}");

        // A deleted digest file.
        write_export(dir.path(), &export).unwrap();
        std::fs::remove_file(dir.path().join(&m.digest_files[0])).unwrap();
        let report = read_export(dir.path()).unwrap().remove(0).verify(None);
        assert!(!report.is_ok());
    }

    #[test]
    fn manifest_paths_cannot_escape() {
        let dir = tempfile::tempdir().unwrap();
        assert!(inside(dir.path(), "../etc/passwd").is_err());
        assert!(inside(dir.path(), "/etc/passwd").is_err());
        assert!(inside(dir.path(), "AWSLogs/1/x.json.gz").is_ok());
    }
}
