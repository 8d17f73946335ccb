//! CloudTrail-shaped audit records and the append-only hash-chained sled store
