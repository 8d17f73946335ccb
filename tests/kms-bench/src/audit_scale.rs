//! LookupEvents over a large audit store: bulk-loads synthetic CloudTrail records (one
//! account, 10,000 keys, a few users and event names, `--rate` events per second of event
//! time) through `AuditStore::append_batch` in groups of `--group` — the same records,
//! indexes and hash chain the audit service writes, committed as it commits them under
//! load — then times `AuditStore::lookup` as the audit service calls it, for a selective
//! filter (one key's events) and broad ones (a user, an event name), and reports the
//! store's size on disk.
//!
//! The rate matters because the store groups index entries per second (kms-audit-log's
//! `index`): the default, 2,000 events/s with groups of 256 (the audit service's largest
//! group), is a million events from about eight busy minutes; `--rate 0.4` spreads them
//! over 30 days, where almost nothing groups.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use kms_audit_log::{AuditStore, LookupAttribute, LookupQuery};
use serde_json::json;

#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// Events to store.
    #[arg(long, default_value_t = 1_000_000)]
    events: u64,
    /// Directory of the store (created; removed afterwards unless --keep).
    #[arg(long)]
    dir: PathBuf,
    #[arg(long)]
    keep: bool,
    /// Events per second of event time (the events are in time order).
    #[arg(long, default_value_t = 2_000.0)]
    rate: f64,
    /// Events per group commit (the audit service commits at most 256 at once).
    #[arg(long, default_value_t = 256)]
    group: u64,
    /// Queries per filter.
    #[arg(long, default_value_t = 20)]
    queries: usize,
    #[arg(long)]
    out: Option<PathBuf>,
}

const ACCOUNT: &str = "111122223333";
const KEYS: u64 = 10_000;
const NAMES: [&str; 4] = ["Encrypt", "Decrypt", "GenerateDataKey", "Sign"];

fn key_arn(i: u64) -> String {
    format!("arn:aws:kms:us-east-1:{ACCOUNT}:key/00000000-0000-4000-8000-{i:012}")
}

fn event(i: u64, start: i64, rate: f64) -> Vec<u8> {
    let user = format!("user-{}", i % 7);
    let arn = key_arn(i.wrapping_mul(2_654_435_761) % KEYS);
    // In order, `rate` per second.
    let secs = start + (i as f64 / rate) as i64;
    let time = time::OffsetDateTime::from_unix_timestamp(secs)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    json!({
        "eventVersion": "1.08",
        "userIdentity": {"type": "IAMUser", "principalId": format!("{ACCOUNT}:{user}"),
            "arn": format!("arn:aws:iam::{ACCOUNT}:user/{user}"), "accountId": ACCOUNT,
            "accessKeyId": "AKIAEXAMPLE", "userName": user},
        "eventTime": time,
        "eventSource": "kms.amazonaws.com",
        "eventName": NAMES[usize::try_from(i % 4).unwrap_or(0)],
        "awsRegion": "us-east-1",
        "sourceIPAddress": "127.0.0.1",
        "userAgent": "kms-bench",
        "requestParameters": {"keyId": arn, "encryptionContext": {"app": "bench"}},
        "responseElements": null,
        "requestID": format!("req-{i}"),
        "eventID": format!("00000000-0000-4000-9000-{i:012}"),
        "readOnly": true,
        "resources": [{"accountId": ACCOUNT, "type": "AWS::KMS::Key", "ARN": arn}],
        "eventType": "AwsApiCall",
        "managementEvent": true,
        "recipientAccountId": ACCOUNT,
        "eventCategory": "Management"
    })
    .to_string()
    .into_bytes()
}

fn time_queries(
    store: &AuditStore,
    attribute: (&str, String),
    n: usize,
) -> anyhow::Result<(f64, f64, usize)> {
    let mut ms = Vec::with_capacity(n);
    let mut found = 0;
    for _ in 0..n {
        let query = LookupQuery {
            account: Some(ACCOUNT.to_owned()),
            lookup_attributes: vec![LookupAttribute {
                key: attribute.0.to_owned(),
                value: attribute.1.clone(),
            }],
            start_time: None,
            end_time: None,
            max_results: Some(50),
            next_token: None,
        };
        let t = Instant::now();
        let page = store.lookup(&query).map_err(|e| anyhow::anyhow!("lookup: {e}"))?;
        ms.push(t.elapsed().as_secs_f64() * 1000.0);
        found = page.events.len();
    }
    ms.sort_by(f64::total_cmp);
    Ok((ms[ms.len() / 2], ms[ms.len() - 1], found))
}

/// Bytes of the files under `dir`.
fn dir_size(dir: &std::path::Path) -> anyhow::Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        total += if meta.is_dir() { dir_size(&entry.path())? } else { meta.len() };
    }
    Ok(total)
}

fn describe_span(secs: f64) -> String {
    if secs >= 2.0 * 86_400.0 {
        format!("{:.0} days", secs / 86_400.0)
    } else if secs >= 2.0 * 3_600.0 {
        format!("{:.0} hours", secs / 3_600.0)
    } else {
        format!("{:.0} minutes", secs / 60.0)
    }
}

pub(crate) fn run(args: &Args) -> anyhow::Result<()> {
    anyhow::ensure!(!args.dir.exists(), "{} exists; give a new directory", args.dir.display());
    anyhow::ensure!(args.rate > 0.0 && args.group > 0, "--rate and --group must be positive");
    let store = AuditStore::open(&args.dir).map_err(|e| anyhow::anyhow!("open: {e}"))?;
    let span = args.events as f64 / args.rate;
    let start = time::OffsetDateTime::now_utc().unix_timestamp() - span as i64 - 86_400;
    let load = Instant::now();
    let mut i = 0;
    let mut reported = 0;
    while i < args.events {
        let end = (i + args.group).min(args.events);
        let events: Vec<Vec<u8>> = (i..end).map(|j| event(j, start, args.rate)).collect();
        let batch: Vec<(u64, &[u8])> =
            events.iter().zip(i..end).map(|(e, j)| (j + 1, e.as_slice())).collect();
        for outcome in store.append_batch(&batch).map_err(|e| anyhow::anyhow!("flush: {e}"))? {
            outcome.map_err(|e| anyhow::anyhow!("append: {e}"))?;
        }
        i = end;
        if i / 100_000 > reported {
            reported = i / 100_000;
            eprintln!("audit-scale: {i} events stored ({:.0} s)", load.elapsed().as_secs_f64());
        }
    }
    let loaded = load.elapsed().as_secs_f64();
    let bytes = dir_size(&args.dir)?;
    let mut report = format!(
        "\n### audit-scale — LookupEvents over {} stored events\n\n{} events per second of event time ({}), committed in groups of {}: bulk-loaded in {loaded:.0} s ({:.0} events/s); {:.0} MiB on disk after loading, {:.1} KiB per event.\n\n| filter | matching events | queries | p50 ms | max ms | events on the page |\n|---|---:|---:|---:|---:|---:|\n",
        store.len(),
        args.rate,
        describe_span(span),
        args.group,
        store.len() as f64 / loaded,
        bytes as f64 / 1_048_576.0,
        bytes as f64 / 1024.0 / store.len().max(1) as f64,
    );
    let filters = [
        ("ResourceName (one key)", ("ResourceName", key_arn(4242)), args.events / KEYS),
        ("Username (1 in 7)", ("Username", "user-3".to_owned()), args.events / 7),
        ("EventName (1 in 4)", ("EventName", "Decrypt".to_owned()), args.events / 4),
    ];
    for (label, attribute, matching) in filters {
        let (p50, max, found) = time_queries(&store, attribute, args.queries)?;
        report.push_str(&format!(
            "| {label} | ~{matching} | {} | {p50:.2} | {max:.2} | {found} |\n",
            args.queries
        ));
    }
    drop(store);
    if !args.keep {
        std::fs::remove_dir_all(&args.dir)?;
    }
    std::io::stderr().write_all(report.as_bytes())?;
    if let Some(path) = &args.out {
        let mut file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
        file.write_all(report.as_bytes())?;
    }
    Ok(())
}
