//! End-to-end tests of the whole system, driven by real clients (`aws-sdk-kms`,
//! `aws-sdk-cloudtrail`) against a real `nats-server` and the real services. The tests
//! live in `tests/e2e/`, one binary made of modules; this library is empty.
