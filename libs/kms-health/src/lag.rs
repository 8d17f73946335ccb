//! The audit trail's lag as a metric: how many records of the `KMS_AUDIT` stream the
//! audit service's durable consumer has not yet stored (undelivered plus unacknowledged),
//! read from JetStream every few seconds by the process that runs the audit service.

use std::time::Duration;

use kms_bus::{Bus, AUDIT_STREAM};

/// The audit service's durable consumer.
const CONSUMER: &str = "kms-audit";
/// How often the lag is read; below Prometheus' usual scrape interval.
const EVERY: Duration = Duration::from_secs(10);

/// `kms_audit_stream_lag_messages`, and `kms_audit_stream_messages` (records the stream
/// holds), updated in the background for the life of the process.
pub fn spawn_audit_lag(bus: &Bus) {
    let Some(metrics) = kms_telemetry::metrics::global() else { return };
    let gauges = metrics
        .gauge(
            "kms_audit_stream_lag_messages",
            "Audit records in the KMS_AUDIT stream the audit service has not stored yet",
        )
        .and_then(|lag| {
            metrics
                .gauge("kms_audit_stream_messages", "Audit records the KMS_AUDIT stream holds")
                .map(|held| (lag, held))
        });
    let (lag, held) = match gauges {
        Ok(gauges) => gauges,
        Err(e) => {
            tracing::warn!(error = %e, "audit lag metric not registered");
            return;
        }
    };
    let js = bus.jetstream();
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(EVERY);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            let Ok(mut stream) = js.get_stream(AUDIT_STREAM).await else { continue };
            if let Ok(info) = stream.info().await {
                held.set(i64::try_from(info.state.messages).unwrap_or(i64::MAX));
            }
            match stream.consumer_info(CONSUMER).await {
                Ok(info) => {
                    let pending = info.num_pending.saturating_add(info.num_ack_pending as u64);
                    lag.set(i64::try_from(pending).unwrap_or(i64::MAX));
                }
                Err(e) => tracing::debug!(error = %e, "audit consumer info unavailable"),
            }
        }
    });
}
