//! `kms-bench`: drives Encrypt, Decrypt and GenerateDataKey with the official
//! `aws-sdk-kms` client from many concurrent tasks for a fixed time, and reports
//! throughput and latency percentiles as a Markdown table. By default it starts the whole
//! system in-process (real nats-server, real sled directories, every call authenticated
//! and audited); with `--endpoint` it measures a server that is already running — this
//! one deployed elsewhere, or a peer such as moto — so both are measured the same way.

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use aws_sdk_kms::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::DataKeySpec;
use clap::Parser;

#[derive(Parser, Debug)]
#[command(about = "Benchmark the KMS hot path with aws-sdk-kms")]
struct Args {
    /// Measure this endpoint instead of starting the system in-process.
    #[arg(long)]
    endpoint: Option<String>,
    /// Access key for --endpoint.
    #[arg(long, default_value = "AKIAIOSFODNN7EXAMPLE")]
    access_key: String,
    /// Secret key for --endpoint.
    #[arg(long, default_value = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")]
    secret_key: String,
    #[arg(long, default_value = "us-east-1")]
    region: String,
    /// Name of the system in the report.
    #[arg(long, default_value = "kms (this project)")]
    label: String,
    /// Concurrent client tasks.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Seconds per operation.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Append the report to this file as well as printing it.
    #[arg(long)]
    out: Option<std::path::PathBuf>,
}

/// The system under test when it runs in-process: dropped at the end, which stops it.
struct Local {
    _nats: kms_testkit::NatsServer,
    _data: tempfile::TempDir,
    shutdown: tokio_util::sync::CancellationToken,
}

impl Drop for Local {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

async fn start_local(region: &str) -> anyhow::Result<(Local, String, String, String)> {
    let nats = kms_testkit::NatsServer::start().await?;
    let data = tempfile::tempdir()?;
    let setup = kms_server::dev_init(data.path(), "http://127.0.0.1:0", region)?;
    let store = kms_auth::CredentialStore::load(&setup.credentials_file)?;
    let key = store.access_keys().first().context("dev credentials")?;
    let (id, secret) = (key.access_key_id.clone(), key.secret_access_key.to_string());
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
    let endpoint = format!("http://{}", listener.local_addr()?);
    let mut config = kms_server::AllConfig::under(
        data.path(),
        setup.root_key_file.clone(),
        setup.credentials_file.clone(),
    );
    config.metadata.scheduler_interval_ms = 60_000;
    let bus = kms_bus::Bus::connect(&nats.url(), Duration::from_secs(5)).await?;
    let shutdown = tokio_util::sync::CancellationToken::new();
    tokio::spawn(kms_server::run_all(
        config,
        bus,
        listener,
        Arc::new(kms_core::SystemClock),
        shutdown.clone(),
    ));
    Ok((Local { _nats: nats, _data: data, shutdown }, endpoint, id, secret))
}

fn client(
    endpoint: &str,
    id: &str,
    secret: &str,
    region: &str,
    concurrency: usize,
) -> aws_sdk_kms::Client {
    let http =
        aws_smithy_http_client::Builder::new().pool_max_idle_per_host(concurrency).build_http();
    let config = aws_sdk_kms::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(region.to_owned()))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new(id, secret, None, None, "bench"))
        .http_client(http)
        .retry_config(aws_sdk_kms::config::retry::RetryConfig::disabled())
        .build();
    aws_sdk_kms::Client::from_conf(config)
}

/// Waits until the system answers a real call.
async fn wait_ready(kms: &aws_sdk_kms::Client) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if kms.list_keys().send().await.is_ok() {
            return Ok(());
        }
        anyhow::ensure!(Instant::now() < deadline, "the system did not become ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[derive(Clone, Copy, Debug)]
enum Op {
    Encrypt,
    Decrypt,
    GenerateDataKey,
}

struct Outcome {
    latencies_us: Vec<u64>,
    errors: u64,
    elapsed: Duration,
}

async fn one_call(
    kms: &aws_sdk_kms::Client,
    op: Op,
    key: &str,
    blob: &Blob,
    plaintext: &Blob,
) -> bool {
    match op {
        Op::Encrypt => kms.encrypt().key_id(key).plaintext(plaintext.clone()).send().await.is_ok(),
        Op::Decrypt => kms.decrypt().ciphertext_blob(blob.clone()).send().await.is_ok(),
        Op::GenerateDataKey => {
            kms.generate_data_key().key_id(key).key_spec(DataKeySpec::Aes256).send().await.is_ok()
        }
    }
}

async fn measure(
    kms: &aws_sdk_kms::Client,
    op: Op,
    key: &str,
    blob: &Blob,
    args: &Args,
) -> Outcome {
    let plaintext = Blob::new(vec![7u8; 512]);
    // A short warm-up fills connection pools and caches.
    for _ in 0..args.concurrency {
        one_call(kms, op, key, blob, &plaintext).await;
    }
    let start = Instant::now();
    let deadline = start + Duration::from_secs(args.seconds);
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..args.concurrency {
        let (kms, key, blob, plaintext) =
            (kms.clone(), key.to_owned(), blob.clone(), plaintext.clone());
        workers.spawn(async move {
            let (mut latencies, mut errors) = (Vec::new(), 0u64);
            while Instant::now() < deadline {
                let t = Instant::now();
                if one_call(&kms, op, &key, &blob, &plaintext).await {
                    latencies.push(u64::try_from(t.elapsed().as_micros()).unwrap_or(u64::MAX));
                } else {
                    errors += 1;
                }
            }
            (latencies, errors)
        });
    }
    let mut outcome = Outcome { latencies_us: Vec::new(), errors: 0, elapsed: Duration::ZERO };
    while let Some(Ok((latencies, errors))) = workers.join_next().await {
        outcome.latencies_us.extend(latencies);
        outcome.errors += errors;
    }
    outcome.elapsed = start.elapsed();
    outcome.latencies_us.sort_unstable();
    outcome
}

fn percentile_ms(sorted_us: &[u64], p: usize) -> String {
    if sorted_us.is_empty() {
        return "-".to_owned();
    }
    let index = (sorted_us.len() * p / 100).min(sorted_us.len() - 1);
    #[allow(clippy::cast_precision_loss, reason = "latencies are far below 2^52 us")]
    let ms = sorted_us[index] as f64 / 1000.0;
    format!("{ms:.2}")
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let (_local, endpoint, id, secret) = match &args.endpoint {
        Some(e) => (None, e.clone(), args.access_key.clone(), args.secret_key.clone()),
        None => {
            let (local, e, id, secret) = start_local(&args.region).await?;
            (Some(local), e, id, secret)
        }
    };
    let kms = client(&endpoint, &id, &secret, &args.region, args.concurrency);
    wait_ready(&kms).await?;
    let key = kms
        .create_key()
        .description("benchmark")
        .send()
        .await
        .context("create-key")?
        .key_metadata
        .context("key metadata")?
        .key_id;
    let blob = kms
        .encrypt()
        .key_id(&key)
        .plaintext(Blob::new(vec![7u8; 512]))
        .send()
        .await
        .context("encrypt")?
        .ciphertext_blob
        .context("ciphertext")?;

    let mut report = format!(
        "\n### {} — {} concurrent clients, {} s per operation\n\n| operation | requests | errors | requests/s | p50 ms | p90 ms | p99 ms |\n|---|---:|---:|---:|---:|---:|---:|\n",
        args.label, args.concurrency, args.seconds
    );
    for op in [Op::Encrypt, Op::Decrypt, Op::GenerateDataKey] {
        let o = measure(&kms, op, &key, &blob, &args).await;
        #[allow(clippy::cast_precision_loss, reason = "request counts are small")]
        let rate = o.latencies_us.len() as f64 / o.elapsed.as_secs_f64();
        report.push_str(&format!(
            "| {op:?} | {} | {} | {rate:.0} | {} | {} | {} |\n",
            o.latencies_us.len(),
            o.errors,
            percentile_ms(&o.latencies_us, 50),
            percentile_ms(&o.latencies_us, 90),
            percentile_ms(&o.latencies_us, 99),
        ));
    }
    std::io::stdout().write_all(report.as_bytes())?;
    if let Some(path) = &args.out {
        let mut file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
        file.write_all(report.as_bytes())?;
    }
    Ok(())
}
