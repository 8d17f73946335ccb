//! Tracing initialisation shared by every binary
