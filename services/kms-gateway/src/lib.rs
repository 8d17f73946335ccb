//! The gateway: AWS KMS wire protocol, authentication, orchestration and audit emission
