//! Generated protobuf types for the bus: the wire contracts between the gateway and the
//! services. These are wire types only; domain types live in `kms-core` and conversion
//! happens at the edge.

#[allow(unreachable_pub, clippy::all, reason = "generated code")]
pub mod v1 {
    include!(concat!(env!("OUT_DIR"), "/kms.v1.rs"));
}

pub use prost::Message;
