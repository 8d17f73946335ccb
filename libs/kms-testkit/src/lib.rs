//! Test sandbox: a real nats-server on a free port with a temporary JetStream directory
