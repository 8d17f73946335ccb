//! CloudTrail-shaped audit records and the append-only hash-chained sled store that
//! answers CloudTrail `LookupEvents`.
//!
//! The gateway builds a [`CloudTrailEvent`] per KMS API call and publishes its JSON to
//! JetStream; the audit service feeds each message to [`AuditStore::append`] (acking only
//! after it returns) and answers `LookupEvents` with [`AuditStore::lookup`] and
//! [`lookup_response_json`]. Event bodies are stored and returned verbatim and never
//! logged here.

mod event;
mod lookup;
mod record;
mod store;
#[cfg(test)]
mod testdata;

pub use event::{
    CloudTrailEvent, EventResource, UserIdentity, EVENT_CATEGORY_MANAGEMENT,
    EVENT_SOURCE_CLOUDTRAIL, EVENT_SOURCE_KMS, EVENT_TYPE_API_CALL, EVENT_VERSION,
    RESOURCE_TYPE_KMS_KEY,
};
pub use lookup::{
    lookup_response_json, AttributeProblem, LookupAttribute, LookupAttributeKey, LookupError,
    LookupEvent, LookupPage, LookupQuery, LookupResource, MAX_RESULTS_LIMIT,
};
pub use record::InvalidEvent;
pub use store::{AppendOutcome, AuditStore, ChainBreak, ChainError, StoreError};
