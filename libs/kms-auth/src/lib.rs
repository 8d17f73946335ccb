//! Request authentication: AWS SigV4 verification and JWT bearer tokens
