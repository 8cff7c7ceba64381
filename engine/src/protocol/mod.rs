//! Kafka wire protocol: framing, request/response headers, API dispatch, record batches.
//!
//! Architecture invariant: this layer is pure. It never performs I/O, never sleeps and never
//! reads a clock; it turns bytes into typed requests and typed responses into bytes.

pub mod record_batch;
