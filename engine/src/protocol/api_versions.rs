//! The ApiVersions answer: Tern's version table, plus the rules that let every client
//! generation negotiate with it.
//!
//! Two rules (DESIGN.md, "Kafka protocol pitfalls"):
//! - A request at a version we do not serve is still answered: error UNSUPPORTED_VERSION (35)
//!   in a **v0** body (the one layout every client can parse) carrying our ranges, so the
//!   client retries with a version we list. Kafka (`ApiVersionsRequest.getErrorResponse`,
//!   KIP-511) lists only the ApiVersions entry there; we list every API, a superset clients
//!   handle identically (they look up the ApiVersions entry).
//! - The v3+ body has four tagged fields: SupportedFeatures (0), FinalizedFeaturesEpoch (1),
//!   FinalizedFeatures (2), ZkMigrationReady (3). Kafka's generated writer emits a tagged field
//!   only when it differs from its default (empty list, -1, false). A KRaft Kafka 4 broker
//!   always has features (metadata.version, kraft.version, ...) so it sends tags 0, 1 and 2.
//!   Tern has no feature flags: it cannot truthfully advertise Kafka's `metadata.version`
//!   (clients such as the Java admin would then try feature-gated APIs Tern lacks), and
//!   librdkafka 2.0.2 (Debian's kcat) was measured failing against a broker that sent all
//!   four tags. So all four stay at their defaults and the tagged section is empty (one 0x00
//!   byte) — exactly what Kafka's own encoder writes for a broker without features, and what
//!   every client parses. `api_versions_v3_bytes_are_exact` pins the bytes.
//!
//! The response header is always v0 (see `response.rs`).

use bytes::Bytes;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiKey, ApiVersionsResponse};

use super::api::{self, SUPPORTED_APIS};
use super::error_code::ErrorCode;
use super::request::RequestMeta;
use super::response::{encode_response, EncodeError, Response};

/// The body to send for an ApiVersions request at `requested_version`, and the version to
/// encode it with: the requested one if Tern serves it, else 0 (with UNSUPPORTED_VERSION).
pub fn api_versions_response(requested_version: i16) -> (ApiVersionsResponse, i16) {
    let supported = api::is_supported(ApiKey::ApiVersions, requested_version);
    let mut response = ApiVersionsResponse::default();
    response.error_code =
        if supported { ErrorCode::None.code() } else { ErrorCode::UnsupportedVersion.code() };
    response.api_keys = SUPPORTED_APIS
        .iter()
        .map(|supported_api| {
            let mut entry = ApiVersion::default();
            entry.api_key = supported_api.key as i16;
            entry.min_version = api::advertised_min_version(supported_api);
            entry.max_version = supported_api.max_version;
            entry
        })
        .collect();
    response.throttle_time_ms = 0;
    // Features stay at their defaults (empty, -1, empty, false): see the module comment.
    debug_assert!(
        response.supported_features.is_empty() && response.finalized_features_epoch == -1
    );
    let encode_version = if supported { requested_version } else { 0 };
    (response, encode_version)
}

/// The complete answer (size prefix included) to an ApiVersions request whose version Tern
/// does not serve, i.e. to `RequestError::UnsupportedVersion { api_key: ApiVersions, .. }`.
pub fn unsupported_version_answer(correlation_id: i32) -> Result<Bytes, EncodeError> {
    let (body, version) = api_versions_response(i16::MAX);
    debug_assert_eq!(version, 0);
    let meta = RequestMeta {
        api_key: ApiKey::ApiVersions,
        api_version: version,
        correlation_id,
        client_id: None,
    };
    encode_response(&meta, &Response::ApiVersions(body))
}

#[cfg(test)]
mod tests;
