//! The audit service: consumes the `KMS_AUDIT` JetStream stream with a durable consumer
//! into the append-only, hash-chained store of `kms-audit-log` in groups (one flush for
//! the messages already delivered), acknowledging messages only after they are stored
//! and flushed (one cumulative ack per group, see `consume`), and answers CloudTrail
//! `LookupEvents` queries on `kms.v1.audit.LookupEvents`. The stream is the source of truth: a lost store
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
    let durable = durable_consumer(&stream, store.last_stream_seq()).await?;
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

    let consuming = tokio::spawn(consume(
        stream.clone(),
        durable,
        store.clone(),
        applied_tx,
        stored_tx,
        stop_rx.clone(),
    ));
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
        // Cumulative: one ack per group (see `consume` for what that demands).
        ack_policy: consumer::AckPolicy::All,
        ack_wait: Duration::from_secs(30),
        deliver_policy,
        ..Default::default()
    }
}

/// The durable consumer `consume` reads, and the consumer (delivery) sequence its next
/// delivery will carry.
struct Durable {
    consumer: consumer::PullConsumer,
    next_delivery: u64,
}

/// The durable consumer that feeds the store, in a state `consume` may acknowledge
/// cumulatively from: acknowledging cumulatively (`AckPolicy::All`), with nothing
/// delivered and unacknowledged, and an ack floor the store has reached.
///
/// An existing consumer that is not in that state is deleted and created again to
/// deliver from the first stream sequence past both its ack floor and the store's last
/// applied one (the lower of the two; what lies between is delivered again and found
/// already applied, the store being idempotent per stream sequence):
/// - it acknowledges explicitly (created before `AckPolicy::All`; JetStream cannot change
///   a consumer's ack policy);
/// - it has deliveries nobody acknowledged (a previous run's or pass's prefetched
///   messages, or a failed group): under `AckPolicy::All` the next ack would cover them
///   though they may never have been stored;
/// - the store is behind what it acknowledged (the store was lost, or restored from an
///   older copy): the stream is the source of truth and the store is rebuilt by replay,
///   with the same hash chain.
async fn durable_consumer(
    stream: &jetstream::stream::Stream,
    applied: u64,
) -> anyhow::Result<Durable> {
    let mut start_after = applied;
    let existing: Result<consumer::PullConsumer, _> = stream.get_consumer(CONSUMER).await;
    if let Ok(current) = existing {
        let info = current
            .get_info()
            .await
            .map_err(|e| anyhow::anyhow!("reading the audit consumer: {e}"))?;
        let acked = info.ack_floor.stream_sequence;
        let cumulative = info.config.ack_policy == consumer::AckPolicy::All;
        if cumulative && acked <= applied && info.num_ack_pending == 0 {
            let next_delivery = info.delivered.consumer_sequence + 1;
            return Ok(Durable { consumer: current, next_delivery });
        }
        if acked > applied {
            tracing::warn!(applied, acked, "audit store is behind the stream; replaying");
        } else if !cumulative {
            tracing::info!(acked, applied, "recreating the audit consumer with cumulative acks");
        } else {
            tracing::info!(
                acked,
                unacknowledged = info.num_ack_pending,
                "audit consumer has unacknowledged deliveries; recreating it from its ack floor"
            );
        }
        start_after = acked.min(applied);
        stream
            .delete_consumer(CONSUMER)
            .await
            .map_err(|e| anyhow::anyhow!("resetting the audit consumer: {e}"))?;
    }
    let policy = if start_after == 0 {
        consumer::DeliverPolicy::All
    } else {
        consumer::DeliverPolicy::ByStartSequence { start_sequence: start_after + 1 }
    };
    let consumer: consumer::PullConsumer = stream
        .create_consumer(consumer_config(policy))
        .await
        .map_err(|e| anyhow::anyhow!("creating the audit consumer: {e}"))?;
    let next_delivery = consumer.cached_info().delivered.consumer_sequence + 1;
    Ok(Durable { consumer, next_delivery })
}

/// Most messages one group commit takes (see `consume`).
const GROUP_MAX: usize = 256;
/// How long a group waits for more messages after its first. No caller waits on it
/// (a call is answered once JetStream has its event); it only delays when the event
/// can be looked up, and it lets a group under load hold many events: the commit's
/// fixed costs (transaction, flush) are shared, and events of one second share index
/// entries (see kms-audit-log's `index`).
const GROUP_LINGER: Duration = Duration::from_millis(10);
/// Pause before a pass that follows a failed one.
const RETRY_PAUSE: Duration = Duration::from_secs(1);

/// Applies stream messages in order; acks only what is durably stored. Messages delivered
/// within `GROUP_LINGER` of one are committed with it as a group (one flush for all), so
/// under load the store's fsyncs do not limit how many events it takes per second.
///
/// Invariant: no message is acknowledged before its event is durably in the store
/// (flushed) or permanently rejected. The consumer acknowledges cumulatively
/// (`AckPolicy::All`, one ack publish per group): JetStream takes an ack of a message as
/// the ack of every message of a lower stream sequence it delivered and has not seen
/// acknowledged, whatever its state (a Nak'd message too, and a Term is such an ack as
/// well). So:
/// - A group is acknowledged with ONE ack of the last message of its settled prefix: the
///   messages before its first transient failure. Each is stored (appended now, or
///   found already applied) or permanently rejected (the event can never be stored:
///   logged, and settled by that cumulative ack rather than a Term, which would be one
///   more ack publish with the same effect).
/// - That ack is sent only while this pass has seen every delivery of the consumer, in
///   order: consecutive consumer (delivery) sequences from a state with nothing
///   unacknowledged (`durable_consumer`). A delivery lost on the way (a reconnect) could
///   otherwise be covered by the ack without ever being stored.
/// - Anything else ends the pass: a transient failure at index `t` (messages from `t`
///   on, and everything prefetched after them, are acknowledged by nothing, not even
///   Nak'd: a later cumulative ack would cover a Nak'd message before its redelivery),
///   a commit that failed as a whole (nothing of the group is acknowledged), or a gap
///   in the delivery sequences. The pull is dropped and, after `RETRY_PAUSE`, the
///   consumer is created again from its ack floor (its deliveries are now
///   unacknowledged), so the unsettled messages come again, in order, before anything
///   newer is acknowledged; what was stored meanwhile is found already applied.
async fn consume(
    stream: jetstream::stream::Stream,
    mut durable: Durable,
    store: Arc<AuditStore>,
    applied: watch::Sender<u64>,
    stored: watch::Sender<u64>,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    loop {
        if consume_pass(durable, &store, &applied, &stored, &mut stop).await? == Pass::Stopped {
            return Ok(());
        }
        durable = loop {
            tokio::select! {
                _ = stop.changed() => return Ok(()),
                () = tokio::time::sleep(RETRY_PAUSE) => {}
            }
            match durable_consumer(&stream, store.last_stream_seq()).await {
                Ok(durable) => break durable,
                Err(e) => tracing::warn!(error = %e, "audit consumer not recreated; retrying"),
            }
        };
    }
}

/// How a pass of `consume` ended.
#[derive(Debug, PartialEq, Eq)]
enum Pass {
    /// The service stops (or the message stream ended).
    Stopped,
    /// Something was left unsettled: start again from the consumer's ack floor.
    Interrupted,
}

/// One pass of `consume` over one pull of `durable`.
async fn consume_pass(
    durable: Durable,
    store: &Arc<AuditStore>,
    applied: &watch::Sender<u64>,
    stored: &watch::Sender<u64>,
    stop: &mut watch::Receiver<bool>,
) -> anyhow::Result<Pass> {
    use futures::FutureExt;
    let Durable { consumer, mut next_delivery } = durable;
    let mut messages = match consumer.messages().await {
        Ok(messages) => messages,
        Err(e) => {
            tracing::warn!(error = %e, "reading the audit stream failed; retrying");
            return Ok(Pass::Interrupted);
        }
    };
    loop {
        let first = tokio::select! {
            _ = stop.changed() => return Ok(Pass::Stopped),
            next = messages.next() => match next {
                Some(Ok(m)) => m,
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "audit stream read failed; continuing");
                    continue;
                }
                None => return Ok(Pass::Stopped),
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
        let mut interrupted = false;
        let mut events = Vec::with_capacity(group.len());
        let mut delivered = Vec::with_capacity(group.len());
        for message in group {
            let (seq, delivery) = match message.info() {
                Ok(info) => (info.stream_sequence, info.consumer_sequence),
                Err(_) => {
                    tracing::warn!("audit message without stream info");
                    continue;
                }
            };
            if delivery != next_delivery {
                tracing::warn!(
                    expected = next_delivery,
                    got = delivery,
                    "audit deliveries out of sequence (lost in a reconnect?); restarting from the ack floor"
                );
                interrupted = true;
                break;
            }
            next_delivery += 1;
            events.push((seq, message.payload.clone()));
            delivered.push(message);
        }
        if events.is_empty() {
            if interrupted {
                return Ok(Pass::Interrupted);
            }
            continue;
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
                return Ok(Pass::Interrupted);
            }
        };
        let _ = applied.send(store.last_stream_seq());
        let len = store.len();
        stored.send_if_modified(|n| std::mem::replace(n, len) != len);
        let settled = settled_prefix(&outcomes);
        for (message, outcome) in delivered.iter().zip(&outcomes).take(settled) {
            if let Err(e) = outcome {
                let seq = message.info().map(|i| i.stream_sequence).unwrap_or_default();
                tracing::error!(stream_seq = seq, error = %e, "audit event cannot be stored; dropping it");
            }
        }
        if let Some(Err(e)) = outcomes.get(settled) {
            let seq = delivered[settled].info().map(|i| i.stream_sequence).unwrap_or_default();
            tracing::warn!(stream_seq = seq, error = %e, "audit append failed; will retry");
            interrupted = true;
        }
        if let Some(last) = settled.checked_sub(1).map(|i| &delivered[i]) {
            if let Err(e) = last.ack_with(AckKind::Ack).await {
                let seq = last.info().map(|i| i.stream_sequence).unwrap_or_default();
                tracing::warn!(stream_seq = seq, error = %e, "audit ack failed; a later ack or a redelivery covers it");
            }
        }
        if interrupted {
            return Ok(Pass::Interrupted);
        }
    }
}

/// How many outcomes of a group, from its start, are settled: stored, or failed for good
/// (`is_permanent`). The first transient failure and everything after it are not.
fn settled_prefix(outcomes: &[Result<(), kms_audit_log::StoreError>]) -> usize {
    outcomes
        .iter()
        .position(|o| o.as_ref().is_err_and(|e| !e.is_permanent()))
        .unwrap_or(outcomes.len())
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

#[cfg(test)]
mod tests {
    use super::*;
    use kms_audit_log::StoreError;

    fn transient() -> Result<(), StoreError> {
        Err(StoreError::CorruptMeta("test"))
    }

    fn permanent() -> Result<(), StoreError> {
        Err(StoreError::InvalidEvent(kms_audit_log::InvalidEvent::NotJsonObject))
    }

    #[test]
    fn the_settled_prefix_ends_at_the_first_transient_failure() {
        assert_eq!(settled_prefix(&[]), 0);
        assert_eq!(settled_prefix(&[Ok(()), permanent(), Ok(())]), 3);
        assert_eq!(settled_prefix(&[Ok(()), permanent(), transient(), Ok(()), permanent()]), 2);
        assert_eq!(settled_prefix(&[transient(), Ok(())]), 0);
    }
}
