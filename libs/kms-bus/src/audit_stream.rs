//! The `KMS_AUDIT` JetStream stream: the durable log of audit events. The gateway
//! publishes each event with its event id as message id (JetStream de-duplicates
//! retries) and answers its client only after the stream acknowledges; the audit service
//! consumes it into its store. Both sides declare the stream with the same settings.

use std::time::Duration;

use async_nats::jetstream::{self, stream};

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

pub async fn ensure_audit_stream(
    js: &jetstream::Context,
    config: &AuditStreamConfig,
) -> anyhow::Result<stream::Stream> {
    js.get_or_create_stream(stream::Config {
        name: AUDIT_STREAM.to_owned(),
        subjects: vec![format!("{AUDIT_SUBJECT_PREFIX}.>")],
        storage: stream::StorageType::File,
        retention: stream::RetentionPolicy::Limits,
        num_replicas: config.replicas,
        duplicate_window: Duration::from_secs(120),
        ..Default::default()
    })
    .await
    .map_err(|e| anyhow::anyhow!("declaring the {AUDIT_STREAM} stream: {e}"))
}
