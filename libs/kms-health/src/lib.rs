//! What every service binary shares around its `run`: the flags that say how it reaches
//! NATS (URL, its own user or nkey or credentials file, TLS, its reply-subject prefix),
//! and the small HTTP server Kubernetes probes and Prometheus scrapes: `/healthz` answers
//! while the process runs, `/readyz` while the process is connected to NATS and its
//! service answers on the bus (which it does only once its store is open), `/metrics`
//! renders the process's metrics.
//!
//! `main.rs` files use it; the services' `run` functions know nothing of it.

mod lag;
mod nats;
mod server;

pub use lag::spawn_audit_lag;
pub use nats::NatsArgs;
pub use server::{HealthArgs, Readiness};
