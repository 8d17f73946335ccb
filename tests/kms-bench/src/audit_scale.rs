//! LookupEvents over a large audit store: bulk-loads synthetic CloudTrail records (one
//! account, 10,000 keys, a few users and event names, spread over 30 days) through
//! `AuditStore::append_batch` — the same records, indexes and hash chain the audit
//! service writes — then times `AuditStore::lookup` as the audit service calls it, for a
//! selective filter (one key's events) and a broad one (an event name).

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

fn event(i: u64, start: i64) -> Vec<u8> {
    let user = format!("user-{}", i % 7);
    let arn = key_arn(i.wrapping_mul(2_654_435_761) % KEYS);
    // 30 days, in order.
    let secs = start + i64::try_from(i * 2_592_000 / 1_000_000).unwrap_or(0);
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

pub(crate) fn run(args: &Args) -> anyhow::Result<()> {
    anyhow::ensure!(!args.dir.exists(), "{} exists; give a new directory", args.dir.display());
    let store = AuditStore::open(&args.dir).map_err(|e| anyhow::anyhow!("open: {e}"))?;
    let start = time::OffsetDateTime::now_utc().unix_timestamp() - 40 * 86_400;
    let load = Instant::now();
    let mut i = 0;
    while i < args.events {
        let end = (i + 10_000).min(args.events);
        let events: Vec<Vec<u8>> = (i..end).map(|j| event(j, start)).collect();
        let batch: Vec<(u64, &[u8])> =
            events.iter().zip(i..end).map(|(e, j)| (j + 1, e.as_slice())).collect();
        for outcome in store.append_batch(&batch).map_err(|e| anyhow::anyhow!("flush: {e}"))? {
            outcome.map_err(|e| anyhow::anyhow!("append: {e}"))?;
        }
        i = end;
        if i % 100_000 == 0 {
            eprintln!("audit-scale: {i} events stored ({:.0} s)", load.elapsed().as_secs_f64());
        }
    }
    let loaded = load.elapsed().as_secs_f64();
    let mut report = format!(
        "\n### audit-scale — LookupEvents over {} stored events (bulk-loaded in {loaded:.0} s, {:.0} events/s with group commit of 10,000)\n\n| filter | matching events | queries | p50 ms | max ms | events on the page |\n|---|---:|---:|---:|---:|---:|\n",
        store.len(),
        store.len() as f64 / loaded
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
