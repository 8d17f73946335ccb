//! Request authentication: AWS SigV4 verification and JWT bearer tokens
//!
//! The gateway speaks the AWS KMS API, so the `aws` CLI and the AWS SDKs sign their requests
//! with AWS Signature Version 4 using a static access key. This crate verifies those
//! signatures server-side: it rebuilds the canonical request from what arrived (method,
//! normalized and re-encoded path, sorted query, the signed headers trimmed and joined,
//! and the SHA-256 of the body), derives the signing key from the stored secret and the
//! credential scope, and compares signatures in constant time. Requests more than 5 minutes
//! from the server clock are refused, as AWS does. It also accepts `Authorization: Bearer`
//! JWTs from configured issuers, for callers that are not AWS SDKs.
//!
//! Kubernetes workloads need no long-lived key: `workload` verifies a pod's projected
//! service-account token and issues role-session credentials for it (the server side of
//! STS `AssumeRoleWithWebIdentity`), which requests then sign with; the session token
//! carries the session sealed under a key every gateway holds (`session`).
//!
//! The verifier is hand-written because no maintained crate verifies SigV4 on the server
//! side: the AWS crates (`aws-sigv4`) only sign. It is pinned by AWS's published SigV4 test
//! suite vectors (see the tests) and kept small enough to review.
//!
//! Secrets (secret access keys, HMAC issuer secrets, derived keys) live in
//! [`zeroize::Zeroizing`] buffers, are redacted from `Debug`, and never appear in errors.
//!
//! ```no_run
//! # fn demo(method: &http::Method, uri: &http::Uri, headers: &http::HeaderMap, body: &[u8])
//! # -> Result<(), Box<dyn std::error::Error>> {
//! use kms_auth::{Authenticator, CredentialStore};
//! let auth = Authenticator::new(CredentialStore::load("credentials.json")?);
//! match auth.authenticate(method, uri, headers, body, time::OffsetDateTime::now_utc()) {
//!     Ok(identity) => { let _ = identity.principal_arn; }
//!     Err(failure) => {
//!         let _ = (failure.error.http_status(), failure.error.aws_code(), failure.error.message());
//!     }
//! }
//! # Ok(()) }
//! ```

mod authenticator;
mod error;
mod identity;
mod jwt;
mod session;
mod sigv4;
mod store;
mod workload;

pub use authenticator::Authenticator;
pub use error::{AuthError, AuthFailure, StoreError};
pub use identity::{AuthMethod, Identity, SessionContext};
pub use session::{SealError, SessionKeys};
pub use store::{
    generate_dev_credentials, AccessKeyEntry, CredentialStore, JwtAlgorithm, JwtIssuerEntry,
};
pub use workload::{
    AssumeRoleRequest, IssuedCredentials, RoleBinding, ServiceAccount, StsError, StsFailure,
    WorkloadIdentity,
};
