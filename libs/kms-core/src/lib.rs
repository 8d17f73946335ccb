//! Domain types, validation, the key state machine and AWS error codes
