//! Deployment tests, one binary: the NATS subject permissions enforced by a real 3-node
//! cluster (`permissions`), the real services working under their own NATS users
//! (`services`), the rendered configuration in step with the matrix (`rendered`),
//! the services' metrics and traces (`observability`), a real Prometheus scraping them
//! and evaluating the alerting rules (`prometheus`), and NATS over mutual TLS with nkeys,
//! and route authentication (`security`).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a panic is a test failure with its message"
)]

mod observability;
mod permissions;
mod prometheus;
mod rendered;
mod security;
mod services;
