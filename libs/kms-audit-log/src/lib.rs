//! CloudTrail-shaped audit records and the append-only hash-chained sled store that
//! answers CloudTrail `LookupEvents`.
//!
//! The gateway builds a [`CloudTrailEvent`] per KMS API call and publishes its JSON to
//! JetStream; the audit service feeds each message to [`AuditStore::append`] (acking only
//! after it returns) and answers `LookupEvents` with [`AuditStore::lookup`] and
//! [`lookup_response_json`]. Event bodies are stored and returned verbatim and never
//! logged here.

#[cfg(test)]
mod append_bench;
mod digest;
mod event;
mod export;
mod index;
mod integrity;
mod lookup;
mod query;
mod record;
mod store;
#[cfg(test)]
mod testdata;
mod verify;

pub use digest::{
    DigestFile, DigestKeyError, DigestPublicKey, DigestRecord, DigestSignError, DigestSigner,
    SeqRange, SignedDigest, DIGEST_BUCKET, DIGEST_HASH_ALGORITHM, DIGEST_KEY_BITS,
    DIGEST_SIGNATURE_ALGORITHM,
};
pub use event::{
    derived_principal_id, format_event_time, CloudTrailEvent, EventResource, SessionAttributes,
    SessionContext, SessionIssuer, TlsDetails, UserIdentity, WebIdFederationData,
    EVENT_CATEGORY_MANAGEMENT, EVENT_SOURCE_CLOUDTRAIL, EVENT_SOURCE_KMS, EVENT_TYPE_API_CALL,
    EVENT_TYPE_SERVICE_EVENT, EVENT_VERSION, INVOKED_BY_SERVICE, RESOURCE_TYPE_KMS_KEY,
};
pub use export::{read_export, write_export, Export, ExportError, ExportSummary};
pub use integrity::DigestSummary;
pub use lookup::{
    lookup_response_json, AttributeProblem, LookupAttribute, LookupAttributeKey, LookupError,
    LookupEvent, LookupPage, LookupQuery, LookupResource, MAX_RESULTS_LIMIT,
};
pub use query::{
    Counts, EventFilter, GroupBy, QueryError, QueryEvent, QueryPage, MAX_QUERY_PAGE,
    MAX_SCAN_PER_PAGE,
};
pub use record::InvalidEvent;
pub use store::{AppendOutcome, AuditStore, ChainBreak, ChainError, StoreError};
pub use verify::{verify, AuditRecord, Problem, VerificationReport, VerifyInput};
