//! `kms-bench`: the load benchmark behind `make bench` (scripts/bench.sh), which starts
//! the system under test as its own processes (nats-server and `kms-server`, or the five
//! service binaries; every call authenticated, authorized and audited) and a peer (moto),
//! and runs:
//! - `load`: the workloads of `workloads` against the system and the peer in the same
//!   run, closed loop (fixed concurrency) and open loop (fixed offered rate), and reports
//!   requests/s, latency p50/p99/p99.9, errors, CPU seconds of the processes under test
//!   per 1,000 requests, each process's memory and share of the CPU, and the ratio of the
//!   two;
//! - `scale`: Encrypt and DescribeKey latency as the number of stored keys grows, uniform
//!   over every stored key (with many keys, mostly each key's first use: gateway cache
//!   misses) and over a hot set of the same keys at every size with warm caches; with a
//!   reference system, that hot set again on both systems in turn;
//! - `audit-scale`: LookupEvents latency over a store of many events, bulk-loaded and
//!   queried through `kms-audit-log`'s store API as the audit service does.
//!
//! Requests are SigV4-signed awsJson1_1 over keep-alive HTTP (`load`), cheaper than an
//! SDK so that the generator, which shares the machine, takes as little CPU as it can;
//! its own CPU time is reported too.

mod audit_scale;
mod load;
mod procfs;
mod sigv4;
mod workloads;

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use serde_json::json;

use crate::load::{Endpoint, Mode, Outcome};

#[derive(Parser, Debug)]
#[command(about = "Benchmark the KMS hot path")]
enum Command {
    Load(LoadArgs),
    Scale(ScaleArgs),
    AuditScale(audit_scale::Args),
}

/// The system under test (or the peer): where it listens, how to sign, which processes.
#[derive(clap::Args, Debug, Clone)]
struct Target {
    /// Endpoint URL of the system under test.
    #[arg(long)]
    endpoint: String,
    /// The credentials file `kms-server dev-init` wrote (its first access key signs).
    #[arg(long)]
    credentials_file: Option<PathBuf>,
    /// Process ids whose CPU and memory count as the system under test (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pids: Vec<u32>,
    #[arg(long, default_value = "us-east-1")]
    region: String,
    /// Name in the report.
    #[arg(long, default_value = "kms (this project)")]
    label: String,
}

#[derive(clap::Args, Debug)]
struct LoadArgs {
    #[command(flatten)]
    system: Target,
    /// Endpoint of the peer measured the same way in the same run (moto).
    #[arg(long)]
    peer_endpoint: Option<String>,
    #[arg(long, value_delimiter = ',')]
    peer_pids: Vec<u32>,
    #[arg(long, default_value = "moto")]
    peer_label: String,
    /// Closed-loop clients.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Offered rates (requests/s) of the open-loop Encrypt runs; empty: none.
    #[arg(long, value_delimiter = ',', default_value = "1000,5000")]
    open_rates: Vec<u64>,
    /// Most connections an open-loop run uses.
    #[arg(long, default_value_t = 128)]
    connections: usize,
    /// Seconds of warm-up before each measurement (not counted).
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Seconds each measurement lasts.
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
    /// Keys the spread workloads use.
    #[arg(long, default_value_t = 10_000)]
    spread: usize,
    /// Keys of the peer's spread workloads (default: as --spread).
    #[arg(long)]
    peer_spread: Option<usize>,
    /// Workloads (comma-separated) among encrypt, decrypt, gdk, policy-grant, sign, mixed.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "encrypt,decrypt,gdk,policy-grant,sign,mixed"
    )]
    workloads: Vec<String>,
    /// Setup calls (CreateKey, Encrypt, CreateGrant) in flight while preparing the keys.
    #[arg(long, default_value_t = 32)]
    create_concurrency: usize,
    /// Append the report to this file as well as printing it.
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(clap::Args, Debug)]
struct ScaleArgs {
    #[command(flatten)]
    system: Target,
    /// Numbers of stored keys to measure at, ascending.
    #[arg(long, value_delimiter = ',', default_value = "1000,100000")]
    sizes: Vec<usize>,
    /// Offered rate of each measurement (open loop).
    #[arg(long, default_value_t = 500)]
    rate: u64,
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
    /// CreateKey calls in flight while storing the keys (and calls in flight warming the
    /// hot set).
    #[arg(long, default_value_t = 32)]
    create_concurrency: usize,
    /// Keys of the hot set measured at every size: the first this many stored (at most the
    /// smallest size), each called once per operation before its measurement so that the
    /// gateway's caches are warm; 0: no hot-set rows.
    #[arg(long, default_value_t = 1000)]
    hot_keys: usize,
    /// A second system (fresh, as the first) that stores only the smallest size: its hot
    /// set is measured in turn with the first system's at the largest size, so that both
    /// sides of the comparison see the same moments of a noisy machine.
    #[arg(long)]
    reference_endpoint: Option<String>,
    #[arg(long)]
    reference_credentials_file: Option<PathBuf>,
    #[arg(long, value_delimiter = ',')]
    reference_pids: Vec<u32>,
    /// Rounds of the interleaved comparison (each measures both systems once).
    #[arg(long, default_value_t = 8)]
    reference_rounds: usize,
    #[arg(long)]
    out: Option<PathBuf>,
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s.max(0.0))
}

/// The endpoint and the caller identity of `target`.
fn connect(target: &Target) -> anyhow::Result<(Endpoint, workloads::Caller)> {
    let (id, secret, account, principal) = match &target.credentials_file {
        Some(path) => {
            let store = kms_auth::CredentialStore::load(path)
                .with_context(|| format!("credentials {}", path.display()))?;
            let key = store.access_keys().first().context("no access key")?;
            (
                key.access_key_id.clone(),
                key.secret_access_key.to_string(),
                key.account_id.clone(),
                key.principal_arn.clone(),
            )
        }
        // moto accepts any credentials; its default account.
        None => (
            "AKIAIOSFODNN7EXAMPLE".to_owned(),
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".to_owned(),
            "123456789012".to_owned(),
            "arn:aws:iam::123456789012:user/bench".to_owned(),
        ),
    };
    let signer = sigv4::Signer::new(&id, &secret, &target.region, "kms");
    Ok((Endpoint::new(&target.endpoint, signer)?, workloads::Caller { account, principal }))
}

async fn wait_ready(endpoint: &Endpoint) -> anyhow::Result<()> {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        match endpoint.call("TrentService.ListKeys", json!({"Limit": 1})).await {
            Ok(_) => return Ok(()),
            Err(e) if std::time::Instant::now() > deadline => return Err(e.context("not ready")),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// One measured row.
struct Row {
    workload: String,
    keys: usize,
    mode: String,
    outcome: Outcome,
}

fn rss_line(label: &str, pids: &[u32], when: &str) -> String {
    let parts: Vec<String> = pids
        .iter()
        .map(|p| format!("{} {:.0} MiB", procfs::name(*p), procfs::rss_mib(*p)))
        .collect();
    format!(
        "- {label}, RSS {when}: {}\n",
        if parts.is_empty() { "not measured".to_owned() } else { parts.join(", ") }
    )
}

/// Where the CPU of the system under test went during the measurements (warm-ups
/// included): each process's seconds and share, from `before` (as `pids`) to now.
fn cpu_shares_line(label: &str, pids: &[u32], before: &[f64]) -> String {
    let used: Vec<f64> =
        pids.iter().zip(before).map(|(p, b)| (procfs::cpu_seconds(*p) - b).max(0.0)).collect();
    let total: f64 = used.iter().sum();
    if pids.is_empty() || total <= 0.0 {
        return format!("- {label}, CPU of each process under load: not measured\n");
    }
    let parts: Vec<String> = pids
        .iter()
        .zip(&used)
        .map(|(p, u)| format!("{} {u:.1} s ({:.0} %)", procfs::name(*p), u / total * 100.0))
        .collect();
    format!("- {label}, CPU of each process under load: {}\n", parts.join(", "))
}

/// Samples the largest RSS of `pids` until the returned sender is dropped.
fn rss_sampler(
    pids: Vec<u32>,
) -> (tokio::sync::oneshot::Sender<()>, tokio::task::JoinHandle<Vec<f64>>) {
    let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
    let handle = tokio::spawn(async move {
        let mut max = vec![0.0f64; pids.len()];
        loop {
            for (m, p) in max.iter_mut().zip(&pids) {
                *m = m.max(procfs::rss_mib(*p));
            }
            tokio::select! {
                _ = &mut stopped => return max,
                () = tokio::time::sleep(Duration::from_millis(250)) => {}
            }
        }
    });
    (stop, handle)
}

async fn measure_target(
    args: &LoadArgs,
    target: &Target,
    spread: usize,
    report: &mut String,
) -> anyhow::Result<Vec<Row>> {
    let (endpoint, caller) = connect(target)?;
    wait_ready(&endpoint).await?;
    let setup = std::time::Instant::now();
    let (prepared, created) =
        workloads::prepare(&endpoint, &caller, spread, &args.workloads, args.create_concurrency)
            .await?;
    let seconds = setup.elapsed().as_secs_f64();
    eprintln!("{}: {created} keys ready in {seconds:.1} s", target.label);
    report.push_str(&format!(
        "- {}, setup: {created} keys created (with their ciphertexts and grants) in {seconds:.1} s, {} calls in flight\n",
        target.label, args.create_concurrency
    ));
    // The setup's audit events are still being stored: wait for the system to be idle.
    let (waited, settled) = procfs::settle(&target.pids, 0.05, Duration::from_secs(120)).await;
    report.push_str(&format!(
        "- {}, after setup: {} after {waited:.1} s (below 5 % of a core)\n",
        target.label,
        if settled { "idle" } else { "still busy" }
    ));
    report.push_str(&rss_line(&target.label, &target.pids, "at rest (keys created)"));
    let (stop, sampler) = rss_sampler(target.pids.clone());
    let cpu_before: Vec<f64> = target.pids.iter().map(|p| procfs::cpu_seconds(*p)).collect();
    let mut rows = Vec::new();
    let closed = Mode::Closed { concurrency: args.concurrency };
    for (workload, keys, pick) in &prepared {
        let outcome = load::run(
            &endpoint,
            pick.clone(),
            closed,
            secs(args.warmup),
            secs(args.duration),
            &target.pids,
        )
        .await;
        eprintln!("{}: {workload} x{keys} closed: {:.0}/s", target.label, outcome.rate());
        if let Some(e) = &outcome.first_error {
            eprintln!("  first error: {}", e.chars().take(300).collect::<String>());
        }
        rows.push(Row {
            workload: workload.clone(),
            keys: *keys,
            mode: format!("closed {}", args.concurrency),
            outcome,
        });
    }
    for rate in &args.open_rates {
        for (workload, keys, pick) in prepared.iter().filter(|(w, _, _)| w == "encrypt") {
            let mode = Mode::Open { rate: *rate, connections: args.connections };
            let outcome = load::run(
                &endpoint,
                pick.clone(),
                mode,
                secs(args.warmup),
                secs(args.duration),
                &target.pids,
            )
            .await;
            eprintln!(
                "{}: {workload} x{keys} open {rate}/s: p99 {:.2} ms",
                target.label,
                outcome.permille_ms(990)
            );
            rows.push(Row {
                workload: workload.clone(),
                keys: *keys,
                mode: format!("open {rate}/s"),
                outcome,
            });
        }
    }
    drop(stop);
    let max = sampler.await.unwrap_or_default();
    let parts: Vec<String> = target
        .pids
        .iter()
        .zip(max)
        .map(|(p, m)| format!("{} {m:.0} MiB", procfs::name(*p)))
        .collect();
    report.push_str(&format!("- {}, largest RSS under load: {}\n", target.label, parts.join(", ")));
    report.push_str(&cpu_shares_line(&target.label, &target.pids, &cpu_before));
    Ok(rows)
}

fn fmt_ms(v: f64) -> String {
    if v.is_nan() {
        "-".to_owned()
    } else {
        format!("{v:.2}")
    }
}

fn table(label: &str, rows: &[Row]) -> String {
    let mut t = format!(
        "\n#### {label}\n\n| workload | keys | mode | requests | errors | requests/s | p50 ms | p99 ms | p99.9 ms | CPU s / 1k req (SUT) | CPU s / 1k req (generator) |\n|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|\n"
    );
    for r in rows {
        let o = &r.outcome;
        #[allow(clippy::cast_precision_loss, reason = "request counts are far below 2^52")]
        let generator = o.generator_cpu_seconds / (o.latencies_us.len().max(1) as f64) * 1000.0;
        t.push_str(&format!(
            "| {} | {} | {} | {} | {} | {:.0} | {} | {} | {} | {} | {:.3} |\n",
            r.workload,
            r.keys,
            r.mode,
            o.latencies_us.len(),
            o.errors,
            o.rate(),
            fmt_ms(o.permille_ms(500)),
            fmt_ms(o.permille_ms(990)),
            fmt_ms(o.permille_ms(999)),
            if o.cpu_seconds > 0.0 {
                format!("{:.3}", o.cpu_per_thousand())
            } else {
                "-".to_owned()
            },
            generator,
        ));
    }
    t
}

async fn load_command(args: LoadArgs) -> anyhow::Result<()> {
    let mut report = format!(
        "\n### load — {} s warm-up, {} s per measurement, spread over {} keys\n\n",
        args.warmup, args.duration, args.spread
    );
    let system_rows = measure_target(&args, &args.system, args.spread, &mut report).await?;
    let peer_rows = match &args.peer_endpoint {
        Some(endpoint) => {
            let peer = Target {
                endpoint: endpoint.clone(),
                credentials_file: None,
                pids: args.peer_pids.clone(),
                region: args.system.region.clone(),
                label: args.peer_label.clone(),
            };
            let spread = args.peer_spread.unwrap_or(args.spread);
            Some(measure_target(&args, &peer, spread, &mut report).await?)
        }
        None => None,
    };
    report.push_str(&table(&args.system.label, &system_rows));
    if let Some(peer_rows) = &peer_rows {
        report.push_str(&table(&args.peer_label, peer_rows));
        report.push_str(&format!(
            "\n#### ratio ({} / {})\n\n| workload | keys | mode | throughput × | p50 ÷ |\n|---|---:|---|---:|---:|\n",
            args.system.label, args.peer_label
        ));
        for r in &system_rows {
            let Some(p) = peer_rows.iter().find(|p| {
                p.workload == r.workload && p.mode == r.mode && (p.keys == 1) == (r.keys == 1)
            }) else {
                continue;
            };
            let ratio = r.outcome.rate() / p.outcome.rate().max(1e-9);
            let latency = p.outcome.permille_ms(500) / r.outcome.permille_ms(500);
            report.push_str(&format!(
                "| {} | {} | {} | {ratio:.1} | {} |\n",
                r.workload,
                r.keys,
                r.mode,
                fmt_ms(latency)
            ));
        }
    }
    emit(&report, args.out.as_deref())
}

fn emit(report: &str, out: Option<&std::path::Path>) -> anyhow::Result<()> {
    std::io::stderr().write_all(report.as_bytes())?;
    if let Some(path) = out {
        let mut file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
        file.write_all(report.as_bytes())?;
    }
    Ok(())
}

/// Builds a request body for a key id.
type BodyOf = fn(&str) -> serde_json::Value;

/// The operations `scale` measures: name, target, body.
const SCALE_OPS: [(&str, &str, BodyOf); 2] = [
    (
        "Encrypt",
        "TrentService.Encrypt",
        |k| json!({"KeyId": k, "Plaintext": "aGVsbG8gd29ybGQ=", "EncryptionContext": {"app": "bench"}}),
    ),
    ("DescribeKey", "TrentService.DescribeKey", |k| json!({"KeyId": k})),
];

/// One open-loop run of `scale` over `keys`, uniformly; `used` says which of them this
/// operation has already been called on (updated). The outcome, requests sent and how
/// many of those were the operation's first call on their key.
async fn scale_run(
    endpoint: &Endpoint,
    args: &ScaleArgs,
    pids: &[u32],
    keys: &[String],
    used: &mut [bool],
    target: &'static str,
    body: BodyOf,
) -> (Outcome, u64, u64) {
    use rand::Rng;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::Arc;
    let requests: Arc<Vec<load::Prepared>> =
        Arc::new(keys.iter().map(|k| load::Prepared::new(target, &body(k))).collect());
    let seen: Arc<Vec<AtomicBool>> = Arc::new(used.iter().map(|&u| AtomicBool::new(u)).collect());
    let sent = Arc::new(AtomicU64::new(0));
    let first = Arc::new(AtomicU64::new(0));
    let pick: load::Picker = {
        let (seen, sent, first) = (seen.clone(), sent.clone(), first.clone());
        Arc::new(move |rng| {
            let i = rng.gen_range(0..requests.len());
            sent.fetch_add(1, Ordering::Relaxed);
            if !seen[i].swap(true, Ordering::Relaxed) {
                first.fetch_add(1, Ordering::Relaxed);
            }
            requests[i].clone()
        })
    };
    let mode = Mode::Open { rate: args.rate, connections: 64 };
    let o = load::run(endpoint, pick, mode, Duration::ZERO, secs(args.duration), pids).await;
    for (u, s) in used.iter_mut().zip(seen.iter()) {
        *u = s.load(Ordering::Relaxed);
    }
    (o, sent.load(Ordering::Relaxed), first.load(Ordering::Relaxed))
}

/// Relative change from `a` to `b`, e.g. "+21%".
fn fmt_change(a: f64, b: f64) -> String {
    if a.is_nan() || b.is_nan() || a <= 0.0 {
        "-".to_owned()
    } else {
        format!("{:+.0}%", (b / a - 1.0) * 100.0)
    }
}

/// The reference system of `scale`, when one was given.
fn reference_target(args: &ScaleArgs) -> Option<Target> {
    args.reference_endpoint.as_ref().map(|endpoint| Target {
        endpoint: endpoint.clone(),
        credentials_file: args.reference_credentials_file.clone(),
        pids: args.reference_pids.clone(),
        region: args.system.region.clone(),
        label: "reference".to_owned(),
    })
}

/// The median of `values` (NaN when empty).
fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

/// Encrypt over a warmed hot set of `large_hot.len()` keys, measured in turn on the
/// reference system (storing `--sizes`' smallest) and on the scale system (its largest),
/// the order swapped every round: run-to-run drift on a shared machine is as large as the
/// 10 % target, and alternating puts both sides in the same moments. Reports each
/// round and the median of the rounds' changes.
async fn interleaved_hot_set(
    args: &ScaleArgs,
    reference: &Target,
    large: &Endpoint,
    large_hot: &[String],
) -> anyhow::Result<String> {
    let (small, _) = connect(reference)?;
    wait_ready(&small).await?;
    let hot = large_hot.len();
    let smallest = args.sizes.iter().copied().min().unwrap_or(hot).max(hot);
    let mut small_hot = workloads::create_keys(
        &small,
        smallest,
        args.create_concurrency,
        "scale: reference CreateKey",
        |_| json!({"Description": "scale"}),
    )
    .await?;
    small_hot.truncate(hot);
    procfs::settle(&reference.pids, 0.05, Duration::from_secs(120)).await;
    let (name, target, body) = SCALE_OPS[0];
    for (endpoint, keys) in [(&small, &small_hot), (large, &large_hot.to_vec())] {
        let keys: std::sync::Arc<[String]> = keys.as_slice().into();
        load::setup_calls(endpoint, hot, args.create_concurrency, None, move |i| {
            (target, body(&keys[i]))
        })
        .await
        .with_context(|| format!("warming the hot set ({name})"))?;
    }
    let largest = args.sizes.iter().copied().max().unwrap_or(0);
    let mut text = format!(
        "\n#### hot set interleaved: {name} over {hot} warmed keys, {} s per run, on a system \
         storing {smallest} keys and on one storing {largest}, measured in turn\n\n\
         | round | order | {smallest} stored p50 ms | {smallest} stored p99 ms | {largest} stored p50 ms | {largest} stored p99 ms | change of p50 |\n\
         |---:|---|---:|---:|---:|---:|---:|\n",
        args.duration
    );
    let mut changes = Vec::new();
    let mut used = vec![true; hot];
    for round in 0..args.reference_rounds {
        let small_first = round % 2 == 0;
        let mut outcomes = [None, None];
        for side in if small_first { [0, 1] } else { [1, 0] } {
            let (endpoint, pids, keys) = if side == 0 {
                (&small, &reference.pids, small_hot.as_slice())
            } else {
                (large, &args.system.pids, large_hot)
            };
            let (o, _, _) = scale_run(endpoint, args, pids, keys, &mut used, target, body).await;
            outcomes[side] = Some(o);
        }
        let [Some(s), Some(l)] = outcomes else { unreachable!("both sides ran") };
        let (sp, lp) = (s.permille_ms(500), l.permille_ms(500));
        if sp > 0.0 && lp.is_finite() {
            changes.push((lp / sp - 1.0) * 100.0);
        }
        text.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} |\n",
            round + 1,
            if small_first { "small first" } else { "large first" },
            fmt_ms(sp),
            fmt_ms(s.permille_ms(990)),
            fmt_ms(lp),
            fmt_ms(l.permille_ms(990)),
            fmt_change(sp, lp)
        ));
        if s.errors + l.errors > 0 {
            text.push_str(&format!(
                "| | errors: {} (small), {} (large) | | | | | |\n",
                s.errors, l.errors
            ));
        }
    }
    let rounds = changes.len();
    text.push_str(&format!(
        "\nMedian change of {name} p50 over {rounds} interleaved rounds, {largest} vs {smallest} keys stored: {:+.0}%.\n",
        median(&mut changes)
    ));
    Ok(text)
}

async fn scale_command(args: ScaleArgs) -> anyhow::Result<()> {
    let (endpoint, _) = connect(&args.system)?;
    wait_ready(&endpoint).await?;
    let mut keys: Vec<String> = Vec::new();
    // Per operation, whether it has been called on each key (by index in `keys`).
    let mut used: [Vec<bool>; 2] = [Vec::new(), Vec::new()];
    let mut report = format!(
        "\n### scale — keys stored vs latency (open loop, {} requests/s, {} s per row)\n\n| keys stored | keys requested | operation | requests | first use | errors | p50 ms | p99 ms | p99.9 ms |\n|---:|---|---|---:|---:|---:|---:|---:|---:|\n",
        args.rate, args.duration
    );
    let mut creation = format!(
        "\n#### key creation (CreateKey, symmetric, {} in flight)\n\n| keys stored | keys created | seconds | keys/s |\n|---:|---:|---:|---:|\n",
        args.create_concurrency
    );
    // Encrypt (p50, first-use share) uniform and over the hot set at each size, for the
    // comparison under the table.
    type Encrypt = (f64, f64);
    let mut encrypt_rows: Vec<(usize, Encrypt, Encrypt)> = Vec::new();
    // The same hot set at every size: no more keys than the smallest size stores.
    let hot_set = args.hot_keys.min(args.sizes.iter().copied().min().unwrap_or(0));
    for size in &args.sizes {
        let missing = size.saturating_sub(keys.len());
        let started = std::time::Instant::now();
        let label = format!("scale: CreateKey toward {size}");
        keys.extend(
            workloads::create_keys(
                &endpoint,
                missing,
                args.create_concurrency,
                &label,
                |_| json!({"Description": "scale"}),
            )
            .await?,
        );
        for u in &mut used {
            u.resize(keys.len(), false);
        }
        let seconds = started.elapsed().as_secs_f64();
        #[allow(clippy::cast_precision_loss, reason = "key counts are far below 2^52")]
        let rate = missing as f64 / seconds.max(1e-9);
        eprintln!(
            "scale: {} keys stored ({missing} created in {seconds:.1} s, {rate:.0} keys/s)",
            keys.len()
        );
        creation.push_str(&format!("| {} | {missing} | {seconds:.1} | {rate:.0} |\n", keys.len()));
        // The creations' audit events are still being stored: wait for the system to be idle.
        let (waited, settled) =
            procfs::settle(&args.system.pids, 0.05, Duration::from_secs(300)).await;
        eprintln!("scale: {} after {waited:.1} s", if settled { "idle" } else { "still busy" });
        let hot = hot_set.min(keys.len());
        let mut encrypt = [(f64::NAN, f64::NAN); 2];
        // 1. Uniform over every stored key, as soon as they are stored (with many keys,
        //    most requests are their key's first use); 2. the hot set, warmed first.
        for (pass, encrypt) in encrypt.iter_mut().enumerate() {
            if pass == 1 && hot == 0 {
                continue;
            }
            let (range, requested) = if pass == 0 {
                (0..keys.len(), format!("uniform over all {}", keys.len()))
            } else {
                (0..hot, format!("hot set: first {hot}, warmed"))
            };
            for (op, (name, target, body)) in SCALE_OPS.into_iter().enumerate() {
                if pass == 1 {
                    // Warm-up: every hot key once (not measured), as the runs will call it.
                    let hot_keys: std::sync::Arc<[String]> = keys[..hot].into();
                    let started = std::time::Instant::now();
                    load::setup_calls(&endpoint, hot, args.create_concurrency, None, move |i| {
                        (target, body(&hot_keys[i]))
                    })
                    .await
                    .with_context(|| format!("warming the hot set ({name})"))?;
                    used[op][..hot].iter_mut().for_each(|u| *u = true);
                    eprintln!(
                        "scale: {name} warm-up over {hot} hot keys took {:.1} s",
                        started.elapsed().as_secs_f64()
                    );
                }
                let (o, sent, first) = scale_run(
                    &endpoint,
                    &args,
                    &args.system.pids,
                    &keys[range.clone()],
                    &mut used[op][range.clone()],
                    target,
                    body,
                )
                .await;
                #[allow(clippy::cast_precision_loss, reason = "request counts are far below 2^52")]
                let first_share = first as f64 / (sent as f64).max(1.0) * 100.0;
                if op == 0 {
                    *encrypt = (o.permille_ms(500), first_share);
                }
                report.push_str(&format!(
                    "| {} | {requested} | {name} | {} | {first_share:.0}% | {} | {} | {} | {} |\n",
                    keys.len(),
                    o.latencies_us.len(),
                    o.errors,
                    fmt_ms(o.permille_ms(500)),
                    fmt_ms(o.permille_ms(990)),
                    fmt_ms(o.permille_ms(999))
                ));
            }
        }
        encrypt_rows.push((keys.len(), encrypt[0], encrypt[1]));
    }
    let hot_text = if hot_set == 0 {
        "There are no hot-set rows (--hot-keys 0).".to_owned()
    } else {
        format!(
            "The hot-set rows use the same {hot_set} keys (the first stored) at every size, \
             each called once per operation just before (not measured): with warm caches \
             they isolate what storing more keys costs on the hot path."
        )
    };
    report.push_str(&format!(
        "\n*First use*: the share of requests that were the first call of that operation on \
         their key in this run of kms-bench; such calls miss the gateway's per-key cache of \
         allow decisions (and of key records, unless another call fetched the key) and pay an \
         Authorize (and a ResolveKey) round trip over the bus. The caches keep entries 5 \
         minutes, so keys used longer ago miss too: the column is a lower bound. {hot_text} \
         The uniform rows spread requests over every stored key: with many keys they are \
         dominated by first use (cache misses, whose round trips also read the larger store), \
         a real cost that a user calling that many keys uniformly would see. The target \
         (Encrypt latency with the most keys within 10% of that with the fewest) is read from \
         both pairs of Encrypt rows; both are shown, neither is preferred.\n"
    ));
    if let (Some(&(lo_n, lo_u, lo_h)), Some(&(hi_n, hi_u, hi_h))) =
        (encrypt_rows.first(), encrypt_rows.last())
    {
        if hi_n != lo_n {
            let hot = if hot_set == 0 {
                String::new()
            } else {
                format!(
                    "; hot set {} → {} ms ({})",
                    fmt_ms(lo_h.0),
                    fmt_ms(hi_h.0),
                    fmt_change(lo_h.0, hi_h.0)
                )
            };
            report.push_str(&format!(
                "\nEncrypt p50, {hi_n} vs {lo_n} keys stored: uniform over all keys {} → {} ms \
                 ({}; first use {:.0}% → {:.0}% of requests){hot}.\n",
                fmt_ms(lo_u.0),
                fmt_ms(hi_u.0),
                fmt_change(lo_u.0, hi_u.0),
                lo_u.1,
                hi_u.1,
            ));
        }
    }
    if let Some(reference) = reference_target(&args) {
        if hot_set > 0 && keys.len() > hot_set {
            report.push_str(
                &interleaved_hot_set(&args, &reference, &endpoint, &keys[..hot_set]).await?,
            );
        }
    }
    report.push_str(&creation);
    report.push('\n');
    report.push_str(&rss_line(&args.system.label, &args.system.pids, "after the scale runs"));
    emit(&report, args.out.as_deref())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Command::parse() {
        Command::Load(args) => load_command(args).await,
        Command::Scale(args) => scale_command(args).await,
        Command::AuditScale(args) => audit_scale::run(&args),
    }
}
