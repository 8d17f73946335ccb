//! The policy service
