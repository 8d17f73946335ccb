//! The load generator: raw SigV4-signed awsJson1_1 requests over keep-alive HTTP/1.1
//! (hyper's pooled client), in closed loop (a fixed number of clients, each sending its
//! next request when the previous one is answered) or open loop (requests scheduled at a
//! fixed rate whatever the answers do; a request's latency counts from when it was due,
//! so a stalled server shows in the percentiles instead of slowing the generator down).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use rand::Rng;

use crate::sigv4::{sha256_hex, Signer, CONTENT_TYPE};

/// One prepared request: its target, body and the body's SHA-256.
#[derive(Clone)]
pub(crate) struct Prepared {
    pub(crate) target: &'static str,
    pub(crate) body: Bytes,
    payload_hash: Arc<str>,
}

impl Prepared {
    pub(crate) fn new(target: &'static str, body: &serde_json::Value) -> Self {
        let body = Bytes::from(body.to_string());
        let payload_hash = sha256_hex(&body).into();
        Self { target, body, payload_hash }
    }
}

/// A keep-alive HTTP client for one endpoint and one access key.
#[derive(Clone)]
pub(crate) struct Endpoint {
    client: Client<HttpConnector, Full<Bytes>>,
    uri: hyper::Uri,
    host: Arc<str>,
    signer: Arc<Signer>,
}

impl Endpoint {
    pub(crate) fn new(url: &str, signer: Signer) -> anyhow::Result<Self> {
        let uri: hyper::Uri = url.parse().with_context(|| format!("endpoint {url}"))?;
        let host = uri.authority().context("endpoint without host")?.as_str().into();
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(1024)
            .build(connector);
        Ok(Self { client, uri, host, signer: Arc::new(signer) })
    }

    /// Sends one request; the status and body of the answer.
    pub(crate) async fn send(&self, request: &Prepared) -> anyhow::Result<(u16, Bytes)> {
        let (date, authorization) =
            self.signer.sign(&self.host, request.target, &request.payload_hash);
        let http = hyper::Request::post(self.uri.clone())
            .header("host", &*self.host)
            .header("content-type", CONTENT_TYPE)
            .header("x-amz-target", request.target)
            .header("x-amz-date", date)
            .header("x-amz-content-sha256", &*request.payload_hash)
            .header("authorization", authorization)
            .body(Full::new(request.body.clone()))?;
        let response = self.client.request(http).await?;
        let status = response.status().as_u16();
        let body = response.into_body().collect().await?.to_bytes();
        Ok((status, body))
    }

    /// Sends a request that must succeed and returns its JSON answer.
    pub(crate) async fn call(
        &self,
        target: &'static str,
        body: serde_json::Value,
    ) -> anyhow::Result<serde_json::Value> {
        let (status, answer) = self.send(&Prepared::new(target, &body)).await?;
        anyhow::ensure!(
            status == 200,
            "{target} answered {status}: {}",
            String::from_utf8_lossy(&answer)
        );
        Ok(serde_json::from_slice(&answer)?)
    }
}

/// Picks the next request of a workload.
pub(crate) type Picker = Arc<dyn Fn(&mut rand::rngs::SmallRng) -> Prepared + Send + Sync>;

/// Picks uniformly among prepared requests.
pub(crate) fn uniform(requests: Vec<Prepared>) -> Picker {
    let requests = Arc::new(requests);
    Arc::new(move |rng| requests[rng.gen_range(0..requests.len())].clone())
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum Mode {
    /// This many clients, each waiting for its answer.
    Closed { concurrency: usize },
    /// This many requests per second, over at most `connections` connections.
    Open { rate: u64, connections: usize },
}

/// What one measured interval produced.
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    pub(crate) latencies_us: Vec<u32>,
    pub(crate) errors: u64,
    pub(crate) elapsed: Duration,
    /// CPU seconds the processes under test used during the interval.
    pub(crate) cpu_seconds: f64,
    /// CPU seconds this generator used.
    pub(crate) generator_cpu_seconds: f64,
    pub(crate) first_error: Option<String>,
}

impl Outcome {
    pub(crate) fn rate(&self) -> f64 {
        #[allow(clippy::cast_precision_loss, reason = "request counts are far below 2^52")]
        let n = self.latencies_us.len() as f64;
        n / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The `p`-th permille latency in milliseconds (`latencies_us` sorted).
    pub(crate) fn permille_ms(&self, p: usize) -> f64 {
        if self.latencies_us.is_empty() {
            return f64::NAN;
        }
        let index = (self.latencies_us.len() * p / 1000).min(self.latencies_us.len() - 1);
        f64::from(self.latencies_us[index]) / 1000.0
    }

    /// CPU seconds of the system under test per 1,000 answered requests.
    pub(crate) fn cpu_per_thousand(&self) -> f64 {
        #[allow(clippy::cast_precision_loss, reason = "request counts are far below 2^52")]
        let n = self.latencies_us.len() as f64;
        if n == 0.0 {
            f64::NAN
        } else {
            self.cpu_seconds / n * 1000.0
        }
    }
}

struct Shared {
    endpoint: Endpoint,
    pick: Picker,
    errors: AtomicU64,
    first_error: std::sync::Mutex<Option<String>>,
}

impl Shared {
    async fn one(&self, rng: &mut rand::rngs::SmallRng) -> bool {
        let request = (self.pick)(rng);
        let failure = match self.endpoint.send(&request).await {
            Ok((200, _)) => return true,
            Ok((status, body)) => {
                format!("{} {status}: {}", request.target, String::from_utf8_lossy(&body))
            }
            Err(e) => format!("{}: {e}", request.target),
        };
        self.errors.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut first) = self.first_error.lock() {
            first.get_or_insert(failure);
        }
        false
    }
}

fn micros(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

/// Runs `pick`'s requests against `endpoint` for `warmup` (discarded), then for
/// `duration`, measuring the CPU of `pids`.
pub(crate) async fn run(
    endpoint: &Endpoint,
    pick: Picker,
    mode: Mode,
    warmup: Duration,
    duration: Duration,
    pids: &[u32],
) -> Outcome {
    let shared = Arc::new(Shared {
        endpoint: endpoint.clone(),
        pick,
        errors: AtomicU64::new(0),
        first_error: std::sync::Mutex::new(None),
    });
    if !warmup.is_zero() {
        let _ = interval(&shared, mode, warmup).await;
        shared.errors.store(0, Ordering::Relaxed);
        if let Ok(mut first) = shared.first_error.lock() {
            *first = None;
        }
    }
    let (cpu0, own0) =
        (crate::procfs::cpu_seconds_all(pids), crate::procfs::cpu_seconds(std::process::id()));
    let start = Instant::now();
    let mut latencies = interval(&shared, mode, duration).await;
    let elapsed = start.elapsed();
    let (cpu1, own1) =
        (crate::procfs::cpu_seconds_all(pids), crate::procfs::cpu_seconds(std::process::id()));
    latencies.sort_unstable();
    Outcome {
        latencies_us: latencies,
        errors: shared.errors.load(Ordering::Relaxed),
        elapsed,
        cpu_seconds: cpu1 - cpu0,
        generator_cpu_seconds: own1 - own0,
        first_error: shared.first_error.lock().ok().and_then(|f| f.clone()),
    }
}

async fn interval(shared: &Arc<Shared>, mode: Mode, duration: Duration) -> Vec<u32> {
    let start = Instant::now();
    let deadline = start + duration;
    let mut workers = tokio::task::JoinSet::new();
    match mode {
        Mode::Closed { concurrency } => {
            for i in 0..concurrency {
                let shared = shared.clone();
                workers.spawn(async move {
                    let mut rng =
                        <rand::rngs::SmallRng as rand::SeedableRng>::seed_from_u64(i as u64);
                    let mut latencies = Vec::new();
                    while Instant::now() < deadline {
                        let t = Instant::now();
                        if shared.one(&mut rng).await {
                            latencies.push(micros(t.elapsed()));
                        }
                    }
                    latencies
                });
            }
        }
        Mode::Open { rate, connections } => {
            let (tx, rx) = tokio::sync::mpsc::channel::<Instant>(1 << 20);
            let rx = Arc::new(tokio::sync::Mutex::new(rx));
            for i in 0..connections {
                let (shared, rx) = (shared.clone(), rx.clone());
                workers.spawn(async move {
                    let mut rng =
                        <rand::rngs::SmallRng as rand::SeedableRng>::seed_from_u64(i as u64);
                    let mut latencies = Vec::new();
                    loop {
                        let due = { rx.lock().await.recv().await };
                        let Some(due) = due else { break };
                        // A server that fell behind: what was due more than a second
                        // before the end is not sent, and counts as an error (missed).
                        if Instant::now() > deadline + Duration::from_secs(1) {
                            shared.errors.fetch_add(1, Ordering::Relaxed);
                            continue;
                        }
                        if shared.one(&mut rng).await {
                            latencies.push(micros(due.elapsed()));
                        }
                    }
                    latencies
                });
            }
            let period = Duration::from_secs_f64(1.0 / rate.max(1) as f64);
            let mut n: u32 = 0;
            loop {
                let due = start + period * n;
                if due >= deadline {
                    break;
                }
                tokio::time::sleep_until(due.into()).await;
                if tx.send(due).await.is_err() {
                    break;
                }
                n += 1;
            }
            drop(tx);
        }
    }
    let mut all = Vec::new();
    while let Some(joined) = workers.join_next().await {
        if let Ok(latencies) = joined {
            all.extend(latencies);
        }
    }
    all
}

/// Setup calls retried on a retriable failure after `BACKOFF_MS`, then twice as long each
/// time, at most `RETRIES` times.
const RETRIES: u32 = 5;
const BACKOFF_MS: u64 = 100;

/// Every this many setup calls done, their progress and rate go to stderr.
const PROGRESS_EVERY: u64 = 5_000;

/// Error codes (`__type`) worth retrying: the call may well succeed a moment later.
const RETRIABLE_CODES: &[&str] = &["ThrottlingException", "DependencyTimeoutException"];

/// Whether an answer that is not 200 is worth retrying: a 5xx, 429, or a retriable error
/// code (awsJson1_1 puts it in `__type`, possibly after a `namespace#`).
fn retriable(status: u16, body: &[u8]) -> bool {
    if status >= 500 || status == 429 {
        return true;
    }
    let code = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["__type"].as_str().map(str::to_owned))
        .unwrap_or_default();
    let code = code.rsplit('#').next().unwrap_or_default();
    RETRIABLE_CODES.contains(&code)
}

/// Sends one setup call until it succeeds, retrying retriable failures (and transport
/// errors, e.g. a pooled connection the server closed) a few times with a short
/// exponential backoff; any other failure is returned with the answer's text.
async fn setup_call(
    endpoint: &Endpoint,
    target: &'static str,
    body: &serde_json::Value,
) -> anyhow::Result<serde_json::Value> {
    let request = Prepared::new(target, body);
    let mut attempt = 0;
    loop {
        let failure = match endpoint.send(&request).await {
            Ok((200, answer)) => {
                return serde_json::from_slice(&answer)
                    .with_context(|| format!("{target}: answer is not JSON"));
            }
            Ok((status, answer)) => {
                let error = anyhow::anyhow!(
                    "{target} answered {status}: {}",
                    String::from_utf8_lossy(&answer)
                );
                if !retriable(status, &answer) {
                    return Err(error);
                }
                error
            }
            Err(e) => e.context(format!("{target}: request failed")),
        };
        if attempt >= RETRIES {
            return Err(failure.context(format!("{target}: still failing after {RETRIES} retries")));
        }
        if attempt == 0 {
            eprintln!("setup call failed, retrying: {failure:#}");
        }
        tokio::time::sleep(Duration::from_millis(BACKOFF_MS << attempt)).await;
        attempt += 1;
    }
}

/// Runs `count` setup calls made by `make(i)` with `concurrency` in flight (retrying
/// retriable failures; the first other failure ends the run); their answers in the order
/// of `i`. With a `label`, progress goes to stderr every `PROGRESS_EVERY` calls.
pub(crate) async fn setup_calls<F>(
    endpoint: &Endpoint,
    count: usize,
    concurrency: usize,
    label: Option<&str>,
    make: F,
) -> anyhow::Result<Vec<serde_json::Value>>
where
    F: Fn(usize) -> (&'static str, serde_json::Value) + Send + Sync + 'static,
{
    let make = Arc::new(make);
    let next = Arc::new(AtomicU64::new(0));
    let done_count = Arc::new(AtomicU64::new(0));
    let label: Option<Arc<str>> = label.map(Into::into);
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..concurrency.max(1).min(count.max(1)) {
        let (endpoint, make, next) = (endpoint.clone(), make.clone(), next.clone());
        let (done_count, label) = (done_count.clone(), label.clone());
        tasks.spawn(async move {
            let mut done = Vec::new();
            loop {
                let i = usize::try_from(next.fetch_add(1, Ordering::Relaxed)).unwrap_or(usize::MAX);
                if i >= count {
                    return Ok::<_, anyhow::Error>(done);
                }
                let (target, body) = make(i);
                done.push((i, setup_call(&endpoint, target, &body).await?));
                let n = done_count.fetch_add(1, Ordering::Relaxed) + 1;
                if let Some(label) = &label {
                    if n % PROGRESS_EVERY == 0 && n < count as u64 {
                        let elapsed = started.elapsed().as_secs_f64();
                        #[allow(clippy::cast_precision_loss, reason = "counts are far below 2^52")]
                        let rate = n as f64 / elapsed.max(1e-9);
                        eprintln!("{label}: {n}/{count} in {elapsed:.1} s ({rate:.0}/s)");
                    }
                }
            }
        });
    }
    let mut all = Vec::with_capacity(count);
    while let Some(joined) = tasks.join_next().await {
        all.extend(joined??);
    }
    all.sort_by_key(|(i, _)| *i);
    Ok(all.into_iter().map(|(_, a)| a).collect())
}
