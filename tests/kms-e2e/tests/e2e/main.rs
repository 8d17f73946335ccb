//! One end-to-end test binary: a sandbox per test (real nats-server on a free port, every
//! service in-process on temp sled directories, the gateway on port 0), driven by the
//! official AWS SDK clients over SigV4.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a panic is a test failure with its message"
)]

mod sandbox;

mod aliases_tags;
mod asymmetric;
mod audit;
mod audit_golden;
mod audit_integrity;
mod audit_isolation;
mod audit_records;
mod auth;
mod authorization;
mod caches;
mod concurrency;
mod crypto;
mod durability;
mod import;
mod key_states;
mod keys;
mod lifecycle;
mod mac;
mod managed;
mod policies;
mod tenancy;
mod tls;
mod web_identity;
