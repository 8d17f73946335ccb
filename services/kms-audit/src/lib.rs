//! The audit service: consumes the `KMS_AUDIT` JetStream stream with a durable consumer
//! into the append-only, hash-chained store of `kms-audit-log` in groups (one flush for
//! the messages already delivered), acknowledging each message only after it is stored
//! and flushed, and answers CloudTrail `LookupEvents`
//! queries on `kms.v1.audit.LookupEvents`. The stream is the source of truth: a lost store
//! is rebuilt by replaying it.
//!
//! It also signs digests of what it stored (periodically, on `kms.v1.audit.WriteDigests`
//! and at shutdown) with an RSA key whose public half it publishes
//! (`kms.v1.audit.GetDigestPublicKeys`), and serves the security team's gRPC
//! `AuditService` (`grpc.rs`) when given an address.

mod grpc;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, consumer, AckKind};
use futures::StreamExt;
use kms_audit_log::{
    lookup_response_json, AuditStore, DigestSigner, LookupAttribute, LookupQuery, DIGEST_KEY_BITS,
};
use kms_bus::{audit as op, AuditStreamConfig, Bus, Router};
use kms_core::{KmsError, KmsResult};
use kms_proto::v1 as wire;
use tokio::sync::watch;

const CONSUMER: &str = "kms-audit";
/// How long a lookup waits for events already acknowledged to the gateway to be applied.
const CATCH_UP: Duration = Duration::from_secs(5);

/// Settings of the audit service.
#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    /// Directory of the service's sled database.
    #[arg(long = "audit-data-dir", env = "KMS_AUDIT_DATA_DIR", default_value = ".data/audit")]
    pub data_dir: PathBuf,
    /// JetStream replicas of the audit stream (3 in a NATS cluster).
    #[arg(long = "audit-stream-replicas", env = "KMS_AUDIT_STREAM_REPLICAS", default_value_t = 1)]
    pub stream_replicas: usize,
    /// RSA private key (PKCS#8 PEM) that signs digests. Unset: one is generated once and
    /// kept as `digest-key.pem` in the data directory (development and tests only).
    #[arg(long = "audit-digest-key-file", env = "KMS_AUDIT_DIGEST_KEY_FILE")]
    pub digest_key_file: Option<PathBuf>,
    /// Seconds between digest passes; 0 writes digests only on request and at shutdown.
    #[arg(
        long = "audit-digest-interval-secs",
        env = "KMS_AUDIT_DIGEST_INTERVAL_SECS",
        default_value_t = 3600
    )]
    pub digest_interval_secs: u64,
    /// Address of the gRPC `AuditService`; unset: not served.
    #[arg(long = "audit-grpc-listen", env = "KMS_AUDIT_GRPC_LISTEN")]
    pub grpc_listen: Option<SocketAddr>,
    /// The credentials file (the gateway's): its JWT issuers authenticate gRPC callers and
    /// its admin principals are platform auditors. Unset: every gRPC call is refused.
    #[arg(long = "audit-credentials-file", env = "KMS_AUDIT_CREDENTIALS_FILE")]
    pub credentials_file: Option<PathBuf>,
    /// IAM role name (`arn:aws:iam::<account>:role/[path/]<name>`) whose holders may read
    /// their own account's audit events over gRPC.
    #[arg(
        long = "audit-auditor-role",
        env = "KMS_AUDIT_AUDITOR_ROLE",
        default_value = "kms-auditor"
    )]
    pub auditor_role: String,
    /// Principal ARNs (comma-separated) that may read every account's events over gRPC,
    /// besides the credentials file's admin principals.
    #[arg(
        long = "audit-platform-auditors",
        env = "KMS_AUDIT_PLATFORM_AUDITORS",
        value_delimiter = ','
    )]
    pub platform_auditors: Vec<String>,
}

impl Config {
    pub fn for_test(data_dir: PathBuf) -> Self {
        Self {
            data_dir,
            stream_replicas: 1,
            digest_key_file: None,
            digest_interval_secs: 3600,
            grpc_listen: None,
            credentials_file: None,
            auditor_role: "kms-auditor".to_owned(),
            platform_auditors: Vec::new(),
        }
    }
}

pub(crate) struct State {
    pub(crate) store: Arc<AuditStore>,
    stream: jetstream::stream::Stream,
    applied: watch::Receiver<u64>,
    /// The store's record count, for live tails.
    pub(crate) stored: watch::Receiver<u64>,
    pub(crate) signer: Arc<DigestSigner>,
    /// Becomes true when the service stops (ends live tails).
    pub(crate) stopping: watch::Receiver<bool>,
}

/// Loads the digest key, or generates and keeps one under `data_dir` when none is
/// configured. The key is never logged.
async fn digest_signer(config: &Config) -> anyhow::Result<DigestSigner> {
    let configured = config.digest_key_file.is_some();
    let path =
        config.digest_key_file.clone().unwrap_or_else(|| config.data_dir.join("digest-key.pem"));
    let loaded = tokio::task::spawn_blocking(move || -> anyhow::Result<DigestSigner> {
        if configured || path.exists() {
            let pem = zeroizing_read(&path)?;
            return DigestSigner::from_pkcs8_pem(&pem)
                .map_err(|e| anyhow::anyhow!("digest key {}: {e}", path.display()));
        }
        tracing::warn!(path = %path.display(), "no digest key configured; generating a development key");
        let (signer, pem) = DigestSigner::generate(DIGEST_KEY_BITS)?;
        write_private(&path, pem.as_bytes())?;
        Ok(signer)
    })
    .await??;
    Ok(loaded)
}

fn zeroizing_read(path: &Path) -> anyhow::Result<zeroize::Zeroizing<String>> {
    std::fs::read_to_string(path)
        .map(zeroize::Zeroizing::new)
        .map_err(|e| anyhow::anyhow!("reading the digest key {}: {e}", path.display()))
}

fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .map_err(|e| anyhow::anyhow!("writing the digest key {}: {e}", path.display()))?;
    file.write_all(bytes)?;
    file.sync_all()?;
    Ok(())
}

/// Consumes the audit stream and serves lookups (and the gRPC API when
/// `config.grpc_listen` is set) until `shutdown` resolves.
pub async fn run(
    config: Config,
    bus: Bus,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let listener = match config.grpc_listen {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| anyhow::anyhow!("binding the audit gRPC address {addr}: {e}"))?,
        ),
        None => None,
    };
    run_with(config, bus, listener, shutdown).await
}

/// As [`run`], serving the gRPC API on `grpc_listener` when given (tests bind port 0).
pub async fn run_with(
    config: Config,
    bus: Bus,
    grpc_listener: Option<tokio::net::TcpListener>,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let store = Arc::new(AuditStore::open(&config.data_dir).map_err(|e| {
        anyhow::anyhow!("opening audit store at {}: {e}", config.data_dir.display())
    })?);
    let signer = Arc::new(digest_signer(&config).await?);
    store.publish_digest_key(signer.public_key())?;
    tracing::info!(fingerprint = %signer.public_key().fingerprint, "audit digest key ready");
    let verify = store.clone();
    match tokio::task::spawn_blocking(move || verify.verify_chain()).await? {
        Ok(n) => tracing::info!(records = n, "audit hash chain verified"),
        Err(e) => {
            tracing::error!(error = %e, "audit hash chain verification failed: the store was altered")
        }
    }
    let js = bus.jetstream();
    let stream =
        kms_bus::ensure_audit_stream(&js, &AuditStreamConfig { replicas: config.stream_replicas })
            .await?;
    let consumer = durable_consumer(&stream, store.last_stream_seq()).await?;
    let (applied_tx, applied) = watch::channel(store.last_stream_seq());
    let (stored_tx, stored) = watch::channel(store.len());
    let (stop_tx, stop_rx) = watch::channel(false);
    let state = Arc::new(State {
        store: store.clone(),
        stream: stream.clone(),
        applied,
        stored,
        signer: signer.clone(),
        stopping: stop_rx.clone(),
    });
    let router = Router::new("audit")
        .route::<op::LookupEvents, _, _>(|s: Arc<State>, r| async move { lookup(&s, r).await })
        .route::<op::WriteDigests, _, _>(|s: Arc<State>, _r| async move { write_digests(&s).await })
        .route::<op::GetDigestPublicKeys, _, _>(|s: Arc<State>, _r| async move {
            public_keys(&s).await
        });

    let consuming =
        tokio::spawn(consume(consumer, store.clone(), applied_tx, stored_tx, stop_rx.clone()));
    let digesting =
        tokio::spawn(digest_timer(state.clone(), config.digest_interval_secs, stop_rx.clone()));
    let grpc = match grpc_listener {
        Some(listener) => {
            let auth = grpc::Access::new(&config)?;
            let addr = listener.local_addr()?;
            tracing::info!(%addr, "audit gRPC API listening");
            Some(tokio::spawn(grpc::serve(state.clone(), auth, listener, stop_rx.clone())))
        }
        None => None,
    };
    let served =
        kms_bus::serve(&bus, state.clone(), router, Duration::from_secs(10), shutdown).await;
    let _ = stop_tx.send(true);
    consuming.await??;
    digesting.await?;
    if let Some(grpc) = grpc {
        grpc.await??;
    }
    // Cover everything stored so far, so a stopped service leaves nothing unsigned.
    if let Err(e) = write_digests(&state).await {
        tracing::warn!(error = %e, "final digest pass failed");
    }
    served
}

/// Writes digests every `interval_secs` (never when 0) until stopped.
async fn digest_timer(state: Arc<State>, interval_secs: u64, mut stop: watch::Receiver<bool>) {
    if interval_secs == 0 {
        return;
    }
    let mut ticks = tokio::time::interval(Duration::from_secs(interval_secs));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = ticks.tick() => {
                if let Err(e) = write_digests(&state).await {
                    tracing::warn!(error = %e, "digest pass failed; retrying at the next tick");
                }
            }
        }
    }
}

/// One digest pass.
pub(crate) async fn write_digests(state: &State) -> KmsResult<wire::WriteDigestsResponse> {
    let (store, signer) = (state.store.clone(), state.signer.clone());
    let written = tokio::task::spawn_blocking(move || {
        store.write_digests(&signer, time::OffsetDateTime::now_utc())
    })
    .await
    .map_err(|_| KmsError::internal())?
    .map_err(|e| {
        tracing::error!(error = %e, "digest pass failed");
        KmsError::internal()
    })?;
    for d in &written {
        tracing::info!(account = %d.account, sequence = d.sequence, records = d.records, "audit digest written");
    }
    Ok(wire::WriteDigestsResponse {
        digests: written
            .into_iter()
            .map(|d| wire::DigestWritten {
                account: d.account,
                sequence: d.sequence,
                records: d.records as u64,
            })
            .collect(),
    })
}

async fn public_keys(state: &State) -> KmsResult<wire::GetDigestPublicKeysResponse> {
    let current = state.signer.public_key().fingerprint.clone();
    let keys = state.store.digest_public_keys().map_err(|e| {
        tracing::error!(error = %e, "reading digest keys failed");
        KmsError::internal()
    })?;
    Ok(wire::GetDigestPublicKeysResponse {
        keys: keys
            .into_iter()
            .map(|k| wire::DigestPublicKey {
                current: k.fingerprint == current,
                fingerprint: k.fingerprint,
                pem: k.pem,
            })
            .collect(),
    })
}

fn consumer_config(deliver_policy: consumer::DeliverPolicy) -> consumer::pull::Config {
    consumer::pull::Config {
        durable_name: Some(CONSUMER.to_owned()),
        ack_policy: consumer::AckPolicy::Explicit,
        ack_wait: Duration::from_secs(30),
        deliver_policy,
        ..Default::default()
    }
}

/// The durable consumer that feeds the store. If the store is behind what the consumer
/// has already acknowledged (it was lost, or restored from an older copy), the consumer is
/// recreated to deliver again from the first record the store lacks: the stream is the
/// source of truth and the store is rebuilt by replay, with the same hash chain.
async fn durable_consumer(
    stream: &jetstream::stream::Stream,
    applied: u64,
) -> anyhow::Result<consumer::PullConsumer> {
    let existing: Result<consumer::PullConsumer, _> = stream.get_consumer(CONSUMER).await;
    if let Ok(current) = existing {
        let acked = current
            .get_info()
            .await
            .map(|info| info.ack_floor.stream_sequence)
            .map_err(|e| anyhow::anyhow!("reading the audit consumer: {e}"))?;
        if acked <= applied {
            return Ok(current);
        }
        tracing::warn!(applied, acked, "audit store is behind the stream; replaying");
        stream
            .delete_consumer(CONSUMER)
            .await
            .map_err(|e| anyhow::anyhow!("resetting the audit consumer: {e}"))?;
    }
    let policy = if applied == 0 {
        consumer::DeliverPolicy::All
    } else {
        consumer::DeliverPolicy::ByStartSequence { start_sequence: applied + 1 }
    };
    stream
        .create_consumer(consumer_config(policy))
        .await
        .map_err(|e| anyhow::anyhow!("creating the audit consumer: {e}"))
}

/// Most messages one group commit takes (see `consume`).
const GROUP_MAX: usize = 256;
/// How long a group waits for more messages after its first. No caller waits on it
/// (a call is answered once JetStream has its event); it only delays when the event
/// can be looked up, and it lets a group under load hold many events: the commit's
/// fixed costs (transaction, flush) are shared, and events of one second share index
/// entries (see kms-audit-log's `index`).
const GROUP_LINGER: Duration = Duration::from_millis(10);

/// Applies stream messages in order; acks only what is durably stored. Messages delivered
/// within `GROUP_LINGER` of one are committed with it as a group (one flush for all), so
/// under load the store's fsyncs do not limit how many events it takes per second.
async fn consume(
    consumer: consumer::PullConsumer,
    store: Arc<AuditStore>,
    applied: watch::Sender<u64>,
    stored: watch::Sender<u64>,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    use futures::FutureExt;
    let mut messages =
        consumer.messages().await.map_err(|e| anyhow::anyhow!("reading the audit stream: {e}"))?;
    loop {
        let first = tokio::select! {
            _ = stop.changed() => return Ok(()),
            next = messages.next() => match next {
                Some(Ok(m)) => m,
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "audit stream read failed; continuing");
                    continue;
                }
                None => return Ok(()),
            },
        };
        let mut group = vec![first];
        let linger_until = tokio::time::Instant::now() + GROUP_LINGER;
        while group.len() < GROUP_MAX {
            let next = match messages.next().now_or_never() {
                Some(next) => next,
                None => match tokio::time::timeout_at(linger_until, messages.next()).await {
                    Ok(next) => next,
                    Err(_) => break,
                },
            };
            match next {
                Some(Ok(m)) => group.push(m),
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "audit stream read failed; continuing");
                    break;
                }
                None => break,
            }
        }
        let mut events = Vec::with_capacity(group.len());
        let mut delivered = Vec::with_capacity(group.len());
        for message in group {
            match message.info().map(|i| i.stream_sequence) {
                Ok(seq) => {
                    events.push((seq, message.payload.clone()));
                    delivered.push(message);
                }
                Err(_) => tracing::warn!("audit message without stream info"),
            }
        }
        let target = store.clone();
        let outcomes = tokio::task::spawn_blocking(move || {
            let batch: Vec<(u64, &[u8])> = events.iter().map(|(s, p)| (*s, p.as_ref())).collect();
            target
                .append_batch(&batch)
                .map(|o| o.into_iter().map(|r| r.map(|_| ())).collect::<Vec<_>>())
        })
        .await?;
        let outcomes: Vec<Result<(), kms_audit_log::StoreError>> = match outcomes {
            Ok(outcomes) => outcomes,
            Err(e) => {
                tracing::warn!(error = %e, "audit flush failed; the group will be redelivered");
                for message in &delivered {
                    let _ = message.ack_with(AckKind::Nak(Some(Duration::from_secs(1)))).await;
                }
                continue;
            }
        };
        let _ = applied.send(store.last_stream_seq());
        let len = store.len();
        stored.send_if_modified(|n| std::mem::replace(n, len) != len);
        for (message, outcome) in delivered.iter().zip(outcomes) {
            let seq = message.info().map(|i| i.stream_sequence).unwrap_or_default();
            let ack = match outcome {
                Ok(()) => AckKind::Ack,
                Err(e) if e.is_permanent() => {
                    tracing::error!(stream_seq = seq, error = %e, "audit event cannot be stored; terminating it");
                    AckKind::Term
                }
                Err(e) => {
                    tracing::warn!(stream_seq = seq, error = %e, "audit append failed; will retry");
                    AckKind::Nak(Some(Duration::from_secs(1)))
                }
            };
            if let Err(e) = message.ack_with(ack).await {
                tracing::warn!(stream_seq = seq, error = %e, "audit ack failed; the message will be redelivered");
            }
        }
    }
}

/// Waits until every event the stream has acknowledged so far is in the store, so a
/// caller who just got an answer finds its event.
async fn catch_up(state: &State) {
    let Ok(info) = state.stream.get_info().await else { return };
    let last = info.state.last_sequence;
    let mut applied = state.applied.clone();
    let _ = tokio::time::timeout(CATCH_UP, applied.wait_for(|seq| *seq >= last)).await;
}

async fn lookup(
    state: &State,
    r: wire::LookupEventsRequest,
) -> KmsResult<wire::LookupEventsResponse> {
    let caller = r.caller.ok_or_else(|| KmsError::validation("missing caller context"))?;
    let time = |ms: Option<i64>| -> KmsResult<Option<time::OffsetDateTime>> {
        ms.map(|ms| {
            time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
                .map_err(|_| KmsError::validation("time out of range"))
        })
        .transpose()
    };
    let query = LookupQuery {
        account: if r.all_accounts { None } else { Some(caller.account) },
        lookup_attributes: r
            .attributes
            .into_iter()
            .map(|a| LookupAttribute { key: a.key, value: a.value })
            .collect(),
        start_time: time(r.start_time_ms)?,
        end_time: time(r.end_time_ms)?,
        max_results: (r.max_results > 0).then_some(r.max_results),
        next_token: (!r.next_token.is_empty()).then_some(r.next_token),
    };
    catch_up(state).await;
    let store = state.store.clone();
    let page = tokio::task::spawn_blocking(move || store.lookup(&query))
        .await
        .map_err(|_| KmsError::internal())?;
    match page {
        Ok(page) => Ok(wire::LookupEventsResponse {
            response_json: lookup_response_json(&page).to_string(),
            ..Default::default()
        }),
        Err(e) if e.is_client_error() => Ok(wire::LookupEventsResponse {
            error_code: e.aws_code().to_owned(),
            error_message: e.to_string(),
            ..Default::default()
        }),
        Err(e) => {
            tracing::error!(error = %e, "audit lookup failed");
            Err(KmsError::internal())
        }
    }
}
