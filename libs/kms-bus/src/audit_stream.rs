//! The `KMS_AUDIT` JetStream stream: the durable log of audit events. The gateway
//! publishes each event with its event id as message id (JetStream de-duplicates
//! retries) and answers its client only after the stream acknowledges; the audit service
//! consumes it into its store. Both sides declare the stream with the same settings.

use std::time::Duration;

use async_nats::jetstream::{self, stream};
use kms_core::{ErrorCode, KmsError};

pub const AUDIT_STREAM: &str = "KMS_AUDIT";
/// Deliberately outside `kms.v1.audit.>`, where the audit service answers queries: a
/// subject in both would reach the service as well as the stream.
const AUDIT_SUBJECT_PREFIX: &str = "kms.v1.audit-events";

/// The subject an account's events are published on.
pub fn audit_subject(account: &str) -> String {
    format!("{AUDIT_SUBJECT_PREFIX}.{account}")
}

#[derive(Debug, Clone)]
pub struct AuditStreamConfig {
    /// Copies JetStream keeps (1 on a single node, 3 in a cluster).
    pub replicas: usize,
}

impl Default for AuditStreamConfig {
    fn default() -> Self {
        Self { replicas: 1 }
    }
}

/// How long declaring the stream keeps trying: on a NATS cluster that has just formed,
/// electing the new stream's leader can take longer than one JetStream request's 5 s.
const DECLARE_FOR: Duration = Duration::from_secs(30);

/// Declares the stream (or finds it), retrying until `DECLARE_FOR` has passed.
pub async fn ensure_audit_stream(
    js: &jetstream::Context,
    config: &AuditStreamConfig,
) -> anyhow::Result<stream::Stream> {
    let deadline = tokio::time::Instant::now() + DECLARE_FOR;
    loop {
        let declared = js
            .get_or_create_stream(stream::Config {
                name: AUDIT_STREAM.to_owned(),
                subjects: vec![format!("{AUDIT_SUBJECT_PREFIX}.>")],
                storage: stream::StorageType::File,
                retention: stream::RetentionPolicy::Limits,
                num_replicas: config.replicas,
                duplicate_window: Duration::from_secs(120),
                ..Default::default()
            })
            .await;
        match declared {
            Ok(stream) => return Ok(stream),
            Err(e) if tokio::time::Instant::now() < deadline => {
                tracing::warn!(error = %e, "declaring the {AUDIT_STREAM} stream failed; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => anyhow::bail!("declaring the {AUDIT_STREAM} stream: {e}"),
        }
    }
}

/// Publishes one audit record (CloudTrail JSON) for `account` and waits until JetStream
/// acknowledges it as stored. The event id is the message id, so a retried publish is
/// stored once. Any failure is the retriable error the caller reports instead of a
/// success nobody audited.
pub async fn publish_audit(
    bus: &crate::Bus,
    account: &str,
    event_id: &str,
    record: Vec<u8>,
) -> Result<(), KmsError> {
    let unavailable = || {
        KmsError::new(
            ErrorCode::DependencyTimeout,
            "The audit log did not acknowledge the request. Retry the request.",
        )
    };
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Nats-Msg-Id", event_id);
    let ack = bus
        .jetstream()
        .publish_with_headers(audit_subject(account), headers, record.into())
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, "audit publish failed");
            unavailable()
        })?;
    ack.await.map_err(|e| {
        tracing::warn!(error = %e, "audit stream did not acknowledge");
        unavailable()
    })?;
    Ok(())
}
