//! All services in one process, for development
