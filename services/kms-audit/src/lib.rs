//! The audit service: consumes the `KMS_AUDIT` JetStream stream with a durable consumer
//! into the append-only, hash-chained store of `kms-audit-log`, acknowledging each
//! message only after it is stored and flushed, and answers CloudTrail `LookupEvents`
//! queries on `kms.v1.audit.LookupEvents`. The stream is the source of truth: a lost store
//! is rebuilt by replaying it.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, consumer, AckKind};
use futures::StreamExt;
use kms_audit_log::{lookup_response_json, AuditStore, LookupAttribute, LookupQuery};
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
}

impl Config {
    pub fn for_test(data_dir: PathBuf) -> Self {
        Self { data_dir, stream_replicas: 1 }
    }
}

struct State {
    store: Arc<AuditStore>,
    stream: jetstream::stream::Stream,
    applied: watch::Receiver<u64>,
}

/// Consumes the audit stream and serves lookups until `shutdown` resolves.
pub async fn run(
    config: Config,
    bus: Bus,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let store = Arc::new(AuditStore::open(&config.data_dir).map_err(|e| {
        anyhow::anyhow!("opening audit store at {}: {e}", config.data_dir.display())
    })?);
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
    let state = Arc::new(State { store: store.clone(), stream: stream.clone(), applied });
    let router = Router::new("audit")
        .route::<op::LookupEvents, _, _>(|s: Arc<State>, r| async move { lookup(&s, r).await });

    let (stop_tx, stop_rx) = watch::channel(false);
    let consuming = tokio::spawn(consume(consumer, store, applied_tx, stop_rx));
    let served = kms_bus::serve(&bus, state, router, Duration::from_secs(10), shutdown).await;
    let _ = stop_tx.send(true);
    consuming.await??;
    served
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

/// Applies stream messages in order; acks only what is durably stored.
async fn consume(
    consumer: consumer::PullConsumer,
    store: Arc<AuditStore>,
    applied: watch::Sender<u64>,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let mut messages =
        consumer.messages().await.map_err(|e| anyhow::anyhow!("reading the audit stream: {e}"))?;
    loop {
        let message = tokio::select! {
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
        let Ok(seq) = message.info().map(|i| i.stream_sequence) else {
            tracing::warn!("audit message without stream info");
            continue;
        };
        let payload = message.payload.clone();
        let target = store.clone();
        let outcome = tokio::task::spawn_blocking(move || target.append(seq, &payload)).await?;
        let ack = match outcome {
            Ok(_) => {
                let _ = applied.send(store.last_stream_seq());
                AckKind::Ack
            }
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
