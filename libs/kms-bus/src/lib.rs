//! The NATS bus: how the gateway and the services talk. Request/reply on
//! `kms.v1.<service>.<Operation>` with protobuf payloads in a [`Reply`] envelope, one
//! connection per process, queue groups so replicas share load, deadlines carried in
//! headers, and a retriable `DependencyTimeoutException` when nobody answers in time.
//! Also the JetStream stream that carries the audit trail.
//!
//! [`Reply`]: kms_proto::v1::Reply

mod audit_stream;
mod client;
mod codes;
mod convert;
mod ops;
mod server;

pub use audit_stream::{
    audit_subject, ensure_audit_stream, publish_audit, AuditStreamConfig, AUDIT_STREAM,
};
pub use client::{Bus, CallContext, NatsAuth};
pub use codes::{error_from_wire, error_to_wire};
pub use convert::{key_from_wire, key_to_wire};
pub use ops::{audit, crypto, metadata, policy, Operation};
pub use server::{serve, shutdown_signal, Router};
