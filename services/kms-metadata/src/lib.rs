//! The metadata service
