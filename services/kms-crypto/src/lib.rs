//! The crypto service
