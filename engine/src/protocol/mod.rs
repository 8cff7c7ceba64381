//! Kafka wire protocol: framing, request/response headers, API dispatch.
//!
//! Architecture invariant: this layer is pure. It never performs I/O, never sleeps and never
//! reads a clock; it turns bytes into typed requests and typed responses into bytes.
//!
//! Data flow for one connection (the broker drives it):
//! 1. [`frame::FrameDecoder`] splits the socket's byte stream into request frames, refusing
//!    sizes above the configured maximum before reserving anything.
//! 2. [`request::decode_request`] reads the header, checks the API and version against
//!    [`api::SUPPORTED_APIS`], bounds-checks the body and decodes it (`kafka-protocol`).
//! 3. The broker handles the typed [`request::Request`] and builds a [`response::Response`];
//!    [`api_versions`] builds the ApiVersions answer, [`error_code`] names error codes.
//! 4. [`response::encode_response`] produces the bytes to write, size prefix included.
//!
//! Record batches are not this layer's: [`crate::record_batch`] sits below both the protocol
//! and the log, which stores batches and must not know the wire.

pub mod api;
pub mod api_versions;
pub mod error_code;
pub mod frame;
#[doc(hidden)]
pub mod fuzzing;
pub mod outbound;
pub mod request;
pub mod response;
pub mod response_fit;
