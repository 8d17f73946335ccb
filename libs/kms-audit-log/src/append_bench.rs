//! `append_batch` throughput, run by hand in release mode (A/B of store changes):
//!
//! ```text
//! AUDIT_BENCH_EVENTS=30000 AUDIT_BENCH_GROUP=48 cargo test --release -p kms-audit-log \
//!     --lib append_bench -- --ignored --nocapture
//! ```
//!
//! Realistic CloudTrail events (the fixture's shapes; unique eventIDs and request IDs,
//! 1,000 keys per account, 2,000 events per second of event time) are appended in groups
//! to a store on disk, each group flushed as the audit service does under load. Prints
//! events/s and the process's CPU seconds (every thread: sled's flusher included).

use std::time::Instant;

use crate::testdata::{fixture, key_arn, t};
use crate::{AppendOutcome, AuditStore, EventResource};

fn env(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// User + system CPU seconds of this process so far.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    // Fields after the command's closing parenthesis; utime and stime are fields 14, 15.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0
}

fn events(n: usize) -> Vec<Vec<u8>> {
    let shapes = fixture();
    (0..n)
        .map(|i| {
            let mut e = shapes[i % shapes.len()].clone();
            e.event_id = format!("{:08x}-0000-4000-8000-{:012x}", i / 7, i);
            e.request_id = format!("{:08x}-1111-4000-8000-{:012x}", i / 3, i);
            e.event_time = t((i / 2000) as i64);
            let account = e.recipient_account_id.clone();
            if !e.resources.is_empty() {
                let arn = key_arn(&account, &format!("{:08x}-2222-4000-8000-{:012}", 0, i % 1000));
                e.request_parameters = Some(serde_json::json!({ "keyId": arn }));
                e.resources = vec![EventResource::kms_key(&account, arn)];
            }
            e.to_json_bytes().unwrap()
        })
        .collect()
}

#[test]
#[ignore = "timing, run by hand in release mode"]
fn append_bench() {
    let (n, group) = (env("AUDIT_BENCH_EVENTS", 30_000), env("AUDIT_BENCH_GROUP", 48));
    let events = events(n);
    let dir =
        tempfile::tempdir_in(std::env::var("AUDIT_BENCH_DIR").unwrap_or("/tmp".into())).unwrap();
    let store = AuditStore::open(dir.path()).unwrap();
    let numbered: Vec<(u64, &[u8])> =
        events.iter().enumerate().map(|(i, b)| (i as u64 + 1, b.as_slice())).collect();
    let (cpu, start) = (cpu_seconds(), Instant::now());
    for chunk in numbered.chunks(group) {
        for outcome in store.append_batch(chunk).unwrap() {
            assert!(matches!(outcome, Ok(AppendOutcome::Appended { .. })));
        }
    }
    let (wall, cpu) = (start.elapsed().as_secs_f64(), cpu_seconds() - cpu);
    assert_eq!(store.len(), n as u64);
    let disk: u64 = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok()?.metadata().ok())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .sum();
    eprintln!(
        "append_bench group={group} events={n} wall_s={wall:.2} events_per_s={:.0} cpu_s={cpu:.2} \
         cpu_us_per_event={:.1} disk_mb={:.1}",
        n as f64 / wall,
        cpu * 1e6 / n as f64,
        disk as f64 / 1e6
    );
}
