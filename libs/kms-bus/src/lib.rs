//! NATS transport: typed request/reply clients and service dispatch over protobuf
