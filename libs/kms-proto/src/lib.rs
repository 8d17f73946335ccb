//! Generated protobuf types for the bus: the wire contracts between the gateway and the
//! services. These are wire types only; domain types live in `kms-core` and conversion
//! happens at the edge. With the `grpc` feature, also the audit service's gRPC API.

#[allow(unreachable_pub, clippy::all, reason = "generated code")]
pub mod v1 {
    include!(concat!(env!("OUT_DIR"), "/kms.v1.rs"));
}

/// The audit service's gRPC API (`kms.audit.v1.AuditService`): messages, the tonic
/// server trait and the client.
#[cfg(feature = "grpc")]
#[allow(unreachable_pub, clippy::all, reason = "generated code")]
pub mod audit_v1 {
    include!(concat!(env!("OUT_DIR"), "/kms.audit.v1.rs"));
}

pub use prost::Message;
