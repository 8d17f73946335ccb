//! The audit service
